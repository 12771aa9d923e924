//! `/connectors/{name}/offsets` (KIP-875): read in any state; alter (PATCH) and reset
//! (DELETE) only while the connector is STOPPED.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::RestState;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::worker::admin::ConnectorOffset;

/// `{"offsets": [{"partition": {...}, "offset": {...}}]}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffsetsBody {
    pub offsets: Vec<ConnectorOffset>,
}

/// `GET /connectors/{name}/offsets`.
pub async fn get_offsets(
    State(state): State<RestState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<OffsetsBody>, ApiError> {
    let offsets = state.worker.connector_offsets(&name).await?;
    Ok(Json(OffsetsBody { offsets }))
}

/// `?force=true` on `PATCH .../offsets` (a Tributary extension).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlterQuery {
    #[serde(default)]
    force: bool,
}

/// `PATCH /connectors/{name}/offsets[?force=true]`: sets the given partitions' offsets
/// (`null` removes). A source's new positions are first checked against its server (a
/// purged binlog, an LSN behind the slot are refused); `force=true` skips that check, for
/// positions the operator knows better than the server (e.g. a server being restored).
pub async fn alter_offsets(
    State(state): State<RestState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<AlterQuery>,
    ApiJson(body): ApiJson<OffsetsBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let _writing = state.write().await;
    state
        .worker
        .alter_offsets(&name, body.offsets, query.force)
        .await?;
    Ok(Json(
        json!({"message": "The offsets for this connector have been altered successfully"}),
    ))
}

/// `DELETE /connectors/{name}/offsets`: removes every offset.
pub async fn reset_offsets(
    State(state): State<RestState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let _writing = state.write().await;
    state.worker.reset_offsets(&name).await?;
    Ok(Json(
        json!({"message": "The offsets for this connector have been reset successfully"}),
    ))
}
