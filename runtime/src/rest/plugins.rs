//! `/connector-plugins`: the plugins this worker has, their config definitions (from the
//! same `ConfigDef` that parses configs) and Kafka Connect's validation response.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};

use super::RestState;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath};
use super::redact::redacted_value;
use crate::config::{
    ConfigErrors, ConnectorConfig, FieldDef, FieldType, Importance, RawConfig,
    validate_connector_name,
};
use crate::connector::Plugin;
use crate::registry::{Registry, common_config_def, sink_config_def};

/// `GET /connector-plugins`: `[{"class", "type", "version"}]`.
pub async fn list(State(state): State<RestState>) -> Json<Value> {
    let plugins: Vec<Value> = state
        .worker
        .registry()
        .plugins()
        .iter()
        .map(|p| json!({"class": p.class(), "type": p.kind(), "version": p.version()}))
        .collect();
    Json(Value::Array(plugins))
}

fn find_plugin(registry: &Registry, name: &str) -> Result<Arc<dyn Plugin>, ApiError> {
    registry.find(name).ok_or_else(|| {
        let known: Vec<&str> = registry.plugins().iter().map(|p| p.class()).collect();
        ApiError::not_found(format!(
            "Failed to find any class that implements Connector and which name matches {name}; known: {}",
            known.join(", ")
        ))
    })
}

/// The group a field is shown in (Kafka Connect groups the validation response).
fn group_of(field: &str, plugin: &dyn Plugin) -> String {
    if field == "name" || common_config_def().field(field).is_some() {
        "Common".into()
    } else if sink_config_def().field(field).is_some() {
        "Sink".into()
    } else {
        plugin
            .class()
            .rsplit('.')
            .next()
            .unwrap_or(plugin.class())
            .to_owned()
    }
}

fn type_name(ty: FieldType) -> &'static str {
    match ty {
        FieldType::String | FieldType::Enum { .. } => "STRING",
        FieldType::Password => "PASSWORD",
        FieldType::Int { min, max } if min >= i64::from(i32::MIN) && max <= i64::from(i32::MAX) => {
            "INT"
        }
        FieldType::Int { .. } => "LONG",
        FieldType::Bool => "BOOLEAN",
        FieldType::List => "LIST",
    }
}

fn importance_name(importance: Importance) -> &'static str {
    match importance {
        Importance::High => "HIGH",
        Importance::Medium => "MEDIUM",
        Importance::Low => "LOW",
    }
}

/// Kafka Connect's `ConfigKeyInfo`.
fn definition(field: &FieldDef, group: &str, order: usize) -> Value {
    json!({
        "name": field.name,
        "type": type_name(field.ty),
        "required": field.required,
        "default_value": field.default,
        "importance": importance_name(field.importance),
        "documentation": field.doc,
        "group": group,
        "width": "NONE",
        "display_name": field.name,
        "dependents": [],
        "order": order,
    })
}

const NAME_FIELD: FieldDef = FieldDef {
    name: "name",
    ty: FieldType::String,
    default: None,
    required: true,
    importance: Importance::High,
    doc: "Globally unique name of the connector: ASCII letters, digits, '.', '_' and '-'.",
};

/// Every field of a plugin, `name` first.
fn fields(plugin: &dyn Plugin) -> Vec<FieldDef> {
    std::iter::once(NAME_FIELD)
        .chain(Registry::config_def(plugin).fields().iter().cloned())
        .collect()
}

/// `GET /connector-plugins/{plugin}/config`: the definition of every field.
pub async fn config(
    State(state): State<RestState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let plugin = find_plugin(state.worker.registry(), &name)?;
    let defs: Vec<Value> = fields(plugin.as_ref())
        .iter()
        .enumerate()
        .map(|(i, f)| definition(f, &group_of(f.name, plugin.as_ref()), i + 1))
        .collect();
    Ok(Json(Value::Array(defs)))
}

/// Flattens a validation body (strings, numbers, booleans; lists joined with commas).
fn flat_config(object: Map<String, Value>, errors: &mut ConfigErrors) -> RawConfig {
    let mut raw = RawConfig::new();
    for (key, value) in object {
        let text = match value {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Array(items)
                if items
                    .iter()
                    .all(|i| i.is_string() || i.is_number() || i.is_boolean()) =>
            {
                items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(",")
            }
            _ => {
                errors.push(key, "must be a string, number, boolean or a list of them");
                continue;
            }
        };
        raw.insert(key, text);
    }
    raw
}

/// `PUT /connector-plugins/{plugin}/config/validate`: always 200 for a well-formed body,
/// with `error_count` and per-field `errors`, as Kafka Connect answers.
pub async fn validate(
    State(state): State<RestState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let registry = state.worker.registry();
    let plugin = find_plugin(registry, &name)?;
    let Value::Object(object) = body else {
        return Err(ApiError::bad_request(
            "request body must be a JSON object of configuration keys",
        ));
    };
    let mut errors = ConfigErrors::default();
    let mut raw = flat_config(object, &mut errors);
    match raw.get("connector.class") {
        None => {
            raw.insert("connector.class".into(), plugin.class().to_owned());
        }
        Some(class) => {
            if registry
                .find(class)
                .is_none_or(|p| p.class() != plugin.class())
            {
                return Err(ApiError::bad_request(format!(
                    "Included connector type {class} does not match request type {name}"
                )));
            }
        }
    }
    let connector_name = raw
        .remove("name")
        .unwrap_or_else(|| "validation".to_owned());
    if let Err(reason) = validate_connector_name(&connector_name) {
        errors.push("name", reason);
    }
    let config = ConnectorConfig {
        name: connector_name.clone(),
        config: raw,
    };
    if let Err(e) = state.worker.validate(&config) {
        errors.0.extend(e.0);
    }
    let error_count = errors.0.len();
    let mut by_field: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in errors.0 {
        by_field.entry(e.field).or_default().push(e.message);
    }
    let def = Registry::config_def(plugin.as_ref());
    let mut groups: Vec<String> = Vec::new();
    let mut configs = Vec::new();
    for (i, field) in fields(plugin.as_ref()).iter().enumerate() {
        let group = group_of(field.name, plugin.as_ref());
        if !groups.contains(&group) {
            groups.push(group.clone());
        }
        let value = if field.name == "name" {
            Some(connector_name.clone())
        } else {
            config
                .config
                .get(field.name)
                .cloned()
                .or(field.default.map(str::to_owned))
        };
        let recommended: Vec<&str> = match field.ty {
            FieldType::Enum { values } => values.to_vec(),
            FieldType::Bool => vec!["true", "false"],
            _ => Vec::new(),
        };
        configs.push(json!({
            "definition": definition(field, &group, i + 1),
            "value": {
                "name": field.name,
                "value": value.map(|v| redacted_value(field.name, &v, Some(&def))),
                "recommended_values": recommended,
                "errors": by_field.remove(field.name).unwrap_or_default(),
                "visible": true,
            }
        }));
    }
    // Errors on keys the plugin does not define (unknown keys, typos).
    for (key, messages) in by_field {
        let order = configs.len() + 1;
        configs.push(json!({
            "definition": {
                "name": key, "type": "STRING", "required": false, "default_value": null, "importance": "LOW",
                "documentation": "not a configuration key of this connector", "group": "Unknown", "width": "NONE",
                "display_name": key, "dependents": [], "order": order,
            },
            "value": {
                "name": key,
                "value": config.config.get(&key).map(|v| redacted_value(&key, v, Some(&def))),
                "recommended_values": [],
                "errors": messages,
                "visible": true,
            }
        }));
        if !groups.iter().any(|g| g == "Unknown") {
            groups.push("Unknown".into());
        }
    }
    Ok(Json(json!({
        "name": plugin.class(),
        "error_count": error_count,
        "groups": groups,
        "configs": configs,
    })))
}
