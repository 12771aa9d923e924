//! The one error type of the REST API, rendered as Kafka Connect's error body
//! `{"error_code": 404, "message": "..."}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracing::error;

use crate::config::ConfigErrors;
use crate::worker::WorkerError;
use crate::worker::admin::AdminError;

/// An error response: status code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    error_code: u16,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// Kafka Connect's 400 for an invalid connector config, listing every `field: reason`.
    pub fn invalid_config(errors: &ConfigErrors) -> Self {
        let mut message = format!(
            "Connector configuration is invalid and contains the following {} error(s):",
            errors.0.len()
        );
        for e in &errors.0 {
            message.push('\n');
            message.push_str(&e.to_string());
        }
        message.push_str("\nYou can also find the above list of errors at the endpoint `/connector-plugins/{connectorType}/config/validate`");
        Self::bad_request(message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&Body {
            error_code: self.status.as_u16(),
            message: &self.message,
        })
        .unwrap_or_else(|_| {
            br#"{"error_code":500,"message":"error body could not be encoded"}"#.to_vec()
        });
        let mut response = (self.status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body was not read: the connection cannot serve another request.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// Renders an internal failure: the chain goes to the log, the client gets the summary.
fn internal_from(err: &(dyn std::error::Error + 'static)) -> ApiError {
    let mut chain = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        chain.push_str(": ");
        chain.push_str(&c.to_string());
        cause = c.source();
    }
    error!(error = %chain, "request failed");
    ApiError::internal(chain)
}

impl From<WorkerError> for ApiError {
    fn from(err: WorkerError) -> Self {
        match &err {
            WorkerError::InvalidConfig(errors) => ApiError::invalid_config(errors),
            WorkerError::NotFound(name) => {
                ApiError::not_found(format!("Connector {name} not found"))
            }
            WorkerError::AlreadyExists(name) => {
                ApiError::conflict(format!("Connector {name} already exists"))
            }
            WorkerError::Storage { .. } | WorkerError::Io { .. } => internal_from(&err),
        }
    }
}

impl From<AdminError> for ApiError {
    fn from(err: AdminError) -> Self {
        match err {
            AdminError::Worker(e) => e.into(),
            AdminError::TaskNotFound { connector, task } => {
                ApiError::not_found(format!("Task {connector}-{task} not found"))
            }
            e @ AdminError::NotStopped(_) => ApiError::bad_request(e.to_string()),
            AdminError::BadRequest(message) => ApiError::bad_request(message),
            e @ AdminError::Storage { .. } => internal_from(&e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn body_has_kafka_connect_shape() {
        let response = ApiError::not_found("Connector x not found").into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        let json: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"error_code": 404, "message": "Connector x not found"})
        );
    }

    #[test]
    fn invalid_config_lists_every_field() {
        let mut errors = ConfigErrors::default();
        errors.push("a.b", "is required");
        errors.push("c", "must be an integer, got \"x\"");
        let e = ApiError::invalid_config(&errors);
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("2 error(s)"), "{}", e.message);
        assert!(e.message.contains("\na.b: is required\n"), "{}", e.message);
        assert!(
            e.message.contains("\nc: must be an integer"),
            "{}",
            e.message
        );
    }
}
