//! `GET /openapi.json`: an OpenAPI 3 document of the API, written by hand from [`ENDPOINTS`]
//! (a test checks that every endpoint listed here is routed).

use axum::Json;
use serde_json::{Map, Value, json};

/// Method, path, summary, success status, request body schema (if any).
pub const ENDPOINTS: &[(&str, &str, &str, u16, Option<&str>)] = &[
    (
        "get",
        "/",
        "Worker version, commit and cluster id",
        200,
        None,
    ),
    (
        "get",
        "/health",
        "Liveness (never requires authentication)",
        200,
        None,
    ),
    (
        "get",
        "/metrics",
        "Prometheus metrics (text format; never requires authentication)",
        200,
        None,
    ),
    (
        "get",
        "/connectors",
        "Connector names; ?expand=status and/or ?expand=info for details",
        200,
        None,
    ),
    (
        "post",
        "/connectors",
        "Create a connector: {name, config, initial_state?}; 409 if it exists",
        201,
        Some("CreateConnector"),
    ),
    (
        "get",
        "/connectors/{name}",
        "Connector info: name, config (secrets hidden), tasks, type",
        200,
        None,
    ),
    (
        "delete",
        "/connectors/{name}",
        "Delete a connector (offsets are kept)",
        204,
        None,
    ),
    (
        "get",
        "/connectors/{name}/config",
        "The connector's config (secrets hidden)",
        200,
        None,
    ),
    (
        "put",
        "/connectors/{name}/config",
        "Create (201) or replace (200) the config; tasks restart",
        200,
        Some("Config"),
    ),
    (
        "patch",
        "/connectors/{name}/config",
        "Merge keys into the config; null removes a key",
        200,
        Some("ConfigPatch"),
    ),
    (
        "get",
        "/connectors/{name}/status",
        "Connector and task states, worker id, trace on failure",
        200,
        None,
    ),
    (
        "get",
        "/connectors/{name}/tasks",
        "Tasks with their configs",
        200,
        None,
    ),
    (
        "get",
        "/connectors/{name}/tasks/{task}/status",
        "One task's state",
        200,
        None,
    ),
    (
        "post",
        "/connectors/{name}/tasks/{task}/restart",
        "Restart one task",
        204,
        None,
    ),
    (
        "put",
        "/connectors/{name}/pause",
        "Pause: stop polling, keep resources",
        202,
        None,
    ),
    (
        "put",
        "/connectors/{name}/resume",
        "Resume a paused or stopped connector",
        202,
        None,
    ),
    (
        "put",
        "/connectors/{name}/stop",
        "Stop: shut tasks down and release resources",
        202,
        None,
    ),
    (
        "post",
        "/connectors/{name}/restart",
        "Restart; ?includeTasks=&onlyFailed= answer 202 with the status",
        204,
        None,
    ),
    (
        "get",
        "/connectors/{name}/progress",
        "Snapshot progress, rates and lag per task (extension)",
        200,
        None,
    ),
    (
        "get",
        "/connectors/{name}/topics",
        "Topics the connector used since start or reset",
        200,
        None,
    ),
    (
        "put",
        "/connectors/{name}/topics/reset",
        "Forget the connector's active topics",
        202,
        None,
    ),
    (
        "get",
        "/connectors/{name}/offsets",
        "Committed offsets (KIP-875 shape)",
        200,
        None,
    ),
    (
        "patch",
        "/connectors/{name}/offsets",
        "Alter offsets (connector must be STOPPED); null offset removes; a source's positions are checked against its server unless ?force=true",
        200,
        Some("Offsets"),
    ),
    (
        "delete",
        "/connectors/{name}/offsets",
        "Reset all offsets (connector must be STOPPED)",
        200,
        None,
    ),
    (
        "get",
        "/connector-plugins",
        "Installed connector plugins: class, type, version",
        200,
        None,
    ),
    (
        "get",
        "/connector-plugins/{plugin}/config",
        "Config definition of a plugin",
        200,
        None,
    ),
    (
        "put",
        "/connector-plugins/{plugin}/config/validate",
        "Validate a config: per-field errors",
        200,
        Some("Config"),
    ),
    ("get", "/admin/loggers", "Log levels", 200, None),
    (
        "get",
        "/admin/loggers/{logger}",
        "Effective level of one logger",
        200,
        None,
    ),
    (
        "put",
        "/admin/loggers/{logger}",
        "Set a logger's level: {\"level\": \"DEBUG\"}",
        200,
        Some("LogLevel"),
    ),
    (
        "get",
        "/topics",
        "Topics of the embedded log (extension)",
        200,
        None,
    ),
    (
        "get",
        "/topics/{topic}/records",
        "Records decoded as JSON: ?partition=&offset=&limit= (extension)",
        200,
        None,
    ),
    ("get", "/openapi.json", "This document", 200, None),
];

fn parameters(path: &str, method: &str) -> Vec<Value> {
    let mut params: Vec<Value> = path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            let schema = if name == "task" {
                json!({"type": "integer", "minimum": 0})
            } else {
                json!({"type": "string"})
            };
            json!({"name": name, "in": "path", "required": true, "schema": schema})
        })
        .collect();
    let query: &[(&str, &str)] = match (method, path) {
        ("get", "/connectors") => &[("expand", "string")],
        ("post", "/connectors/{name}/restart") => {
            &[("includeTasks", "boolean"), ("onlyFailed", "boolean")]
        }
        ("get", "/topics/{topic}/records") => &[
            ("partition", "integer"),
            ("offset", "integer"),
            ("limit", "integer"),
        ],
        ("put", "/admin/loggers/{logger}") => &[("scope", "string")],
        _ => &[],
    };
    params.extend(query.iter().map(|(name, ty)| json!({"name": name, "in": "query", "required": false, "schema": {"type": ty}})));
    params
}

/// The document.
pub fn spec() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for (method, path, summary, status, body) in ENDPOINTS {
        let mut responses = Map::new();
        responses.insert(status.to_string(), json!({"description": "success"}));
        for code in ["400", "401", "404", "409"] {
            responses.insert(code.into(), json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}));
        }
        let mut op = json!({"summary": summary, "parameters": parameters(path, method), "responses": responses});
        if let Some(schema) = body {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = op;
    }
    let string_map = json!({"type": "object", "additionalProperties": {"type": "string"}});
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Tributary REST API",
            "version": crate::VERSION,
            "description": "Kafka Connect's REST API (same bodies and status codes) plus extensions. Errors are {\"error_code\": N, \"message\": \"...\"}.",
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Error": {"type": "object", "required": ["error_code", "message"], "properties": {"error_code": {"type": "integer"}, "message": {"type": "string"}}},
                "Config": string_map,
                "ConfigPatch": {"type": "object", "additionalProperties": {"type": "string", "nullable": true}},
                "CreateConnector": {"type": "object", "required": ["name", "config"], "properties": {
                    "name": {"type": "string"}, "config": string_map,
                    "initial_state": {"type": "string", "enum": ["RUNNING", "PAUSED", "STOPPED"]}}},
                "Offsets": {"type": "object", "required": ["offsets"], "properties": {"offsets": {"type": "array", "items": {
                    "type": "object", "required": ["partition"], "properties": {"partition": {"type": "object"}, "offset": {"type": "object", "nullable": true}}}}}},
                "LogLevel": {"type": "object", "required": ["level"], "properties": {"level": {"type": "string"}}},
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
            },
        },
    })
}

pub async fn document() -> Json<Value> {
    Json(spec())
}
