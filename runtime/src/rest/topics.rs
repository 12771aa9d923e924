//! Topics: Kafka Connect's per-connector active topics, and (extensions) the topics of the
//! embedded log with their records decoded as JSON.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::RestState;
use super::error::ApiError;
use super::extract::{ApiPath, ApiQuery};
use crate::log::{LogError, ReadCursor};

/// Records returned by one `/records` call at most.
pub const MAX_RECORDS: usize = 1000;
const DEFAULT_RECORDS: usize = 100;
/// Bytes read by one `/records` call at most (about).
const MAX_READ_BYTES: usize = 4 << 20;

/// `GET /connectors/{name}/topics`: `{"<name>": {"topics": [...]}}`.
pub async fn connector_topics(
    State(state): State<RestState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let topics = state.worker.active_topics(&name).await?;
    let mut out = Map::new();
    out.insert(name, json!({ "topics": topics }));
    Ok(Json(Value::Object(out)))
}

/// `PUT /connectors/{name}/topics/reset`: 202.
pub async fn reset_connector_topics(
    State(state): State<RestState>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.worker.reset_active_topics(&name).await?;
    Ok(StatusCode::ACCEPTED)
}

/// `GET /topics` (extension): partitions with start and end offsets and sizes.
pub async fn list(State(state): State<RestState>) -> Result<Json<Value>, ApiError> {
    let topics = state
        .worker
        .store()
        .list_topics()
        .await
        .map_err(|e| ApiError::internal(e.trace()))?;
    serde_json::to_value(topics)
        .map(Json)
        .map_err(|e| ApiError::internal(e.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsQuery {
    #[serde(default)]
    partition: u32,
    /// First offset to return; the log start when absent.
    offset: Option<u64>,
    /// At most this many records (capped at [`MAX_RECORDS`]).
    limit: Option<usize>,
}

/// Key or value bytes as JSON when they parse, else as text.
fn decode(bytes: Option<&[u8]>) -> Value {
    match bytes {
        None => Value::Null,
        Some(b) => serde_json::from_slice(b)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(b).into_owned())),
    }
}

/// `GET /topics/{topic}/records?partition=&offset=&limit=` (extension).
pub async fn records(
    State(state): State<RestState>,
    ApiPath(topic): ApiPath<String>,
    ApiQuery(query): ApiQuery<RecordsQuery>,
) -> Result<Json<Value>, ApiError> {
    let log = state
        .worker
        .embedded_log()
        .cloned()
        .ok_or_else(|| ApiError::not_found("records can only be read from the embedded log"))?;
    let partition = log
        .partition(&topic, query.partition)
        .map_err(|e| match e {
            LogError::UnknownTopic(_) => ApiError::not_found(format!("topic {topic} not found")),
            LogError::UnknownPartition { .. } => ApiError::not_found(format!(
                "topic {topic} has no partition {}",
                query.partition
            )),
            other => ApiError::internal(other.to_string()),
        })?;
    let limit = query.limit.unwrap_or(DEFAULT_RECORDS).clamp(1, MAX_RECORDS);
    let start = query.offset.unwrap_or_else(|| partition.log_start());
    let reader = partition.clone();
    let read = tokio::task::spawn_blocking(move || {
        reader.read(ReadCursor::at(start), limit, MAX_READ_BYTES)
    })
    .await
    .map_err(|e| ApiError::internal(format!("read task failed: {e}")))?;
    let (records, next) = read.map_err(|e| match e {
        LogError::OffsetOutOfRange { log_start, offset, .. } => ApiError::bad_request(format!(
            "offset {offset} is before the log start {log_start} (deleted by retention); use offset={log_start}"
        )),
        other => ApiError::internal(other.to_string()),
    })?;
    let records: Vec<Value> = records
        .into_iter()
        .map(|(offset, r)| {
            let headers: Map<String, Value> = r
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        Value::String(String::from_utf8_lossy(v).into_owned()),
                    )
                })
                .collect();
            json!({
                "offset": offset,
                "timestamp": r.timestamp_ms,
                "key": decode(r.key.as_deref()),
                "value": decode(r.value.as_deref()),
                "headers": headers,
            })
        })
        .collect();
    Ok(Json(json!({
        "topic": topic,
        "partition": query.partition,
        "records": records,
        "next_offset": next.offset.max(start),
        "log_start_offset": partition.log_start(),
        "high_watermark": partition.high_watermark(),
    })))
}
