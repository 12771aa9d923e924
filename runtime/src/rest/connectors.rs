//! `/connectors`: create, read, update (PUT replaces, PATCH merges), delete, lifecycle
//! (pause, resume, stop, restart), status and tasks, with Kafka Connect's bodies and codes.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::RestState;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::redact::{HIDDEN, definition_for, redacted_config, restore_hidden};
use crate::config::{ConnectorConfig, connector_from_json};
use crate::worker::WorkerError;
use crate::worker::admin::RestartRequest;
use crate::worker::state::{ConnectorStatus, TargetState};

/// `{"name", "config", "tasks": [{"connector", "task"}], "type"}`.
fn info_json(state: &RestState, config: &ConnectorConfig, status: &ConnectorStatus) -> Value {
    let def = definition_for(state.worker.registry(), &config.config);
    let tasks: Vec<Value> = status
        .tasks
        .iter()
        .map(|t| json!({"connector": config.name, "task": t.id}))
        .collect();
    json!({
        "name": config.name,
        "config": redacted_config(Some(&config.name), &config.config, def.as_ref()),
        "tasks": tasks,
        "type": status.kind,
    })
}

async fn load_info(state: &RestState, name: &str) -> Result<Value, ApiError> {
    let config = state.worker.connector_config(name).await?;
    let status = state.worker.status(name).await?;
    Ok(info_json(state, &config, &status))
}

/// `GET /connectors` and `?expand=status|info` (either or both).
pub async fn list(
    State(state): State<RestState>,
    ApiQuery(query): ApiQuery<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let names = state.worker.list().await;
    let expand_status = query.iter().any(|(k, v)| k == "expand" && v == "status");
    let expand_info = query.iter().any(|(k, v)| k == "expand" && v == "info");
    if !expand_status && !expand_info {
        return Ok(Json(json!(names)));
    }
    let mut out = Map::new();
    for name in names {
        let mut entry = Map::new();
        // A connector deleted meanwhile is skipped, not an error.
        let Ok(status) = state.worker.status(&name).await else {
            continue;
        };
        if expand_info {
            let Ok(config) = state.worker.connector_config(&name).await else {
                continue;
            };
            entry.insert("info".into(), info_json(&state, &config, &status));
        }
        if expand_status {
            entry.insert(
                "status".into(),
                serde_json::to_value(&status).map_err(|e| ApiError::internal(e.to_string()))?,
            );
        }
        out.insert(name, Value::Object(entry));
    }
    Ok(Json(Value::Object(out)))
}

/// `POST /connectors` with `{"name", "config", "initial_state"?}`: 201, 409 if it exists,
/// 400 listing every invalid field.
pub async fn create(
    State(state): State<RestState>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let _writing = state.write().await;
    let Value::Object(mut object) = body else {
        return Err(ApiError::bad_request(
            "request body must be a JSON object {\"name\": ..., \"config\": {...}}",
        ));
    };
    let initial = match object.remove("initial_state") {
        None | Some(Value::Null) => TargetState::Running,
        Some(Value::String(s)) => match s.as_str() {
            "RUNNING" => TargetState::Running,
            "PAUSED" => TargetState::Paused,
            "STOPPED" => TargetState::Stopped,
            other => {
                return Err(ApiError::bad_request(format!(
                    "initial_state: must be RUNNING, PAUSED or STOPPED, got {other:?}"
                )));
            }
        },
        Some(_) => {
            return Err(ApiError::bad_request(
                "initial_state: must be a string (RUNNING, PAUSED or STOPPED)",
            ));
        }
    };
    if !object.contains_key("config") {
        let mut message =
            "config: is required (the body is {\"name\": ..., \"config\": {...}})".to_owned();
        for key in object.keys().filter(|k| *k != "name") {
            message.push_str(&format!("; {key}: unknown top-level key"));
        }
        return Err(ApiError::bad_request(message));
    }
    let config = connector_from_json(Value::Object(object), None)
        .map_err(|e| ApiError::invalid_config(&e))?;
    let name = config.name.clone();
    if state.worker.contains(&name).await {
        return Err(WorkerError::AlreadyExists(name).into());
    }
    state.worker.check_live(&config).await?;
    state.worker.create(config, initial).await?;
    let info = load_info(&state, &name).await?;
    let mut response = (StatusCode::CREATED, Json(info)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/connectors/{name}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `GET /connectors/{name}`.
pub async fn info(
    State(state): State<RestState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(load_info(&state, &name).await?))
}

/// `GET /connectors/{name}/config`: the flat map, `name` included, secrets hidden.
pub async fn get_config(
    State(state): State<RestState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let config = state.worker.connector_config(&name).await?;
    let def = definition_for(state.worker.registry(), &config.config);
    Ok(Json(Value::Object(redacted_config(
        Some(&name),
        &config.config,
        def.as_ref(),
    ))))
}

/// `PUT /connectors/{name}/config` with the flat map: 201 when created, 200 when updated
/// (the tasks restart with the new config).
pub async fn put_config(
    State(state): State<RestState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let _writing = state.write().await;
    let Value::Object(mut object) = body else {
        return Err(ApiError::bad_request(
            "request body must be a JSON object of configuration keys",
        ));
    };
    match object.get("name") {
        Some(Value::String(n)) if *n != name => {
            return Err(ApiError::bad_request(format!(
                "Connector name configuration ({n}) doesn't match connector name in the URL ({name})"
            )));
        }
        Some(Value::String(_)) | None => {}
        Some(_) => return Err(ApiError::bad_request("name: must be a string")),
    }
    object.insert("name".into(), Value::String(name.clone()));
    let mut config = connector_from_json(Value::Object(object), Some(&name))
        .map_err(|e| ApiError::invalid_config(&e))?;
    state.ensure_not_file_managed(&name, "change its config")?;
    if let Ok(current) = state.worker.connector_config(&name).await {
        restore_hidden(&mut config.config, &current.config);
    }
    state.worker.check_live(&config).await?;
    let created = state.worker.upsert_config(config).await?;
    let info = load_info(&state, &name).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(info)).into_response())
}

/// `PATCH /connectors/{name}/config`: merges the given keys; `null` removes one.
pub async fn patch_config(
    State(state): State<RestState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let _writing = state.write().await;
    let Value::Object(object) = body else {
        return Err(ApiError::bad_request(
            "request body must be a JSON object of configuration keys (null removes a key)",
        ));
    };
    let mut patch = BTreeMap::new();
    let mut errors = Vec::new();
    for (key, value) in object {
        let value = match value {
            Value::Null => None,
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Array(_) | Value::Object(_) => {
                errors.push(format!("{key}: must be a string, number, boolean or null"));
                continue;
            }
        };
        if key == "name" {
            if value.as_deref() != Some(name.as_str()) {
                errors.push(format!(
                    "name: cannot be changed or removed (the connector is {name})"
                ));
            }
            continue;
        }
        if value.as_deref() == Some(HIDDEN) {
            // Sent back as read: keep the stored secret.
            continue;
        }
        patch.insert(key, value);
    }
    if !errors.is_empty() {
        return Err(ApiError::bad_request(errors.join("; ")));
    }
    state.ensure_not_file_managed(&name, "change its config")?;
    state.worker.patch_config(&name, patch).await?;
    Ok(Json(load_info(&state, &name).await?))
}

/// `GET /connectors/{name}/status`: connector and task states; `trace` on failure.
pub async fn status(
    State(state): State<RestState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ConnectorStatus>, ApiError> {
    Ok(Json(state.worker.status(&name).await?))
}

/// `GET /connectors/{name}/tasks`: `[{"id": {"connector", "task"}, "config": {...}}]`.
pub async fn tasks(
    State(state): State<RestState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let config = state.worker.connector_config(&name).await?;
    let status = state.worker.status(&name).await?;
    let def = definition_for(state.worker.registry(), &config.config);
    let tasks: Vec<Value> = status
        .tasks
        .iter()
        .map(|t| {
            let mut task_config = redacted_config(Some(&name), &config.config, def.as_ref());
            task_config.insert("task.id".into(), Value::String(t.id.to_string()));
            json!({"id": {"connector": name, "task": t.id}, "config": task_config})
        })
        .collect();
    Ok(Json(Value::Array(tasks)))
}

/// `GET /connectors/{name}/tasks/{task}/status`.
pub async fn task_status(
    State(state): State<RestState>,
    ApiPath((name, task)): ApiPath<(String, u32)>,
) -> Result<Json<Value>, ApiError> {
    let status = state.worker.status(&name).await?;
    let task_status =
        status.tasks.iter().find(|t| t.id == task).ok_or_else(|| {
            ApiError::not_found(format!("No status found for task {name}-{task}"))
        })?;
    serde_json::to_value(task_status)
        .map(Json)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// `POST /connectors/{name}/tasks/{task}/restart`: 204.
pub async fn restart_task(
    State(state): State<RestState>,
    ApiPath((name, task)): ApiPath<(String, u32)>,
) -> Result<StatusCode, ApiError> {
    let _writing = state.write().await;
    state.worker.restart_task(&name, task).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /connectors/{name}/pause`: 202.
pub async fn pause(
    State(state): State<RestState>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let _writing = state.write().await;
    state.worker.pause(&name).await?;
    Ok(StatusCode::ACCEPTED)
}

/// `PUT /connectors/{name}/resume`: 202.
pub async fn resume(
    State(state): State<RestState>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let _writing = state.write().await;
    state.worker.resume(&name).await?;
    Ok(StatusCode::ACCEPTED)
}

/// `PUT /connectors/{name}/stop`: 202; tasks shut down and release their resources.
pub async fn stop(
    State(state): State<RestState>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let _writing = state.write().await;
    state.worker.stop(&name).await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Deserialize)]
pub struct RestartQuery {
    #[serde(rename = "includeTasks", default)]
    include_tasks: bool,
    #[serde(rename = "onlyFailed", default)]
    only_failed: bool,
}

/// `POST /connectors/{name}/restart?includeTasks=&onlyFailed=`: 204 without options (tasks
/// re-created), else 202 with the status after the restart.
pub async fn restart(
    State(state): State<RestState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<RestartQuery>,
) -> Result<Response, ApiError> {
    let _writing = state.write().await;
    if !query.include_tasks && !query.only_failed {
        state.worker.restart(&name).await?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let status = state
        .worker
        .restart_connector(
            &name,
            RestartRequest {
                include_tasks: query.include_tasks,
                only_failed: query.only_failed,
            },
        )
        .await?;
    Ok((StatusCode::ACCEPTED, Json(status)).into_response())
}

/// `DELETE /connectors/{name}`: 204; offsets are kept, as Kafka Connect does.
pub async fn delete(
    State(state): State<RestState>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let _writing = state.write().await;
    if !state.worker.contains(&name).await {
        return Err(ApiError::not_found(format!("Connector {name} not found")));
    }
    state.ensure_not_file_managed(&name, "delete it")?;
    state.worker.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /connectors/{name}/progress` (extension): per task phase, records, rate, snapshot
/// rows done/estimated with percent and ETA, and lag.
pub async fn progress(
    State(state): State<RestState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let snapshots = state.worker.progress(&name).await?;
    let tasks: Vec<Value> = snapshots
        .into_iter()
        .enumerate()
        .map(|(id, p)| {
            let mut v = serde_json::to_value(p).unwrap_or(Value::Null);
            if let Value::Object(m) = &mut v {
                m.insert("id".into(), json!(id));
            }
            v
        })
        .collect();
    Ok(Json(json!({"name": name, "tasks": tasks})))
}
