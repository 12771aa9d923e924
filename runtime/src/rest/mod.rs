//! The REST control plane: Kafka Connect's REST API (same paths, bodies and status codes)
//! plus a few extensions (`/topics`, `/connectors/{name}/progress`, `/health`,
//! `/openapi.json`), on axum.
//!
//! ```text
//!  request ─► CatchPanic ─► body limit (1 MiB, 413) ─► route ─► auth (all but /health)
//!          ─► handler (connectors, offsets, plugins, topics, loggers) ─► Worker
//!  every error ─► ApiError ─► {"error_code": N, "message": "..."}
//! ```
//!
//! Secrets in connector configs are shown as `[hidden]` in every response (see
//! [`redact`]); sending `[hidden]` back for a key that has a value keeps that value, so a
//! config can be read, edited and written back. Connectors that come from a connectors
//! directory (GitOps) refuse config changes and deletes over REST with a 409 naming the file.

mod auth;
mod connectors;
mod error;
mod extract;
pub mod gitops;
pub mod loggers;
mod offsets;
mod openapi;
mod plugins;
pub mod redact;
mod topics;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::{error, info};

pub use auth::Authenticator;
pub use error::ApiError;

use crate::config::{ConfigErrors, RestConfig, RestTlsConfig};
use crate::error::ConnectorError;
use crate::worker::Worker;
use gitops::DirectoryReconciler;
use loggers::LogLevels;

/// Largest request body accepted; larger ones get a 413.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// What the handlers share.
#[derive(Clone)]
pub struct RestState {
    worker: Arc<Worker>,
    auth: Option<Arc<Authenticator>>,
    loggers: Arc<dyn LogLevels>,
    reconciler: Option<Arc<DirectoryReconciler>>,
    /// Serialises changes (create, update, delete, lifecycle, offsets), so two requests for
    /// one name cannot both create it; shared with the directory reconciler.
    writes: Arc<tokio::sync::Mutex<()>>,
    /// `GET /`'s `kafka_cluster_id`, asked of the storage once it answers.
    cluster_id: Arc<tokio::sync::OnceCell<String>>,
}

impl RestState {
    /// State without authentication, with log levels kept but not applied (see
    /// [`loggers`]) and without a connectors directory.
    pub fn new(worker: Arc<Worker>) -> Self {
        RestState {
            worker,
            auth: None,
            loggers: Arc::new(loggers::ReloadableLevels::detached("info")),
            reconciler: None,
            writes: Arc::default(),
            cluster_id: Arc::default(),
        }
    }

    /// Requires credentials on every endpoint but `/health`.
    pub fn with_auth(mut self, auth: Authenticator) -> Self {
        self.auth = Some(Arc::new(auth));
        self
    }

    /// Serves `/admin/loggers` from these levels.
    pub fn with_loggers(mut self, loggers: Arc<dyn LogLevels>) -> Self {
        self.loggers = loggers;
        self
    }

    /// Refuses REST config changes to connectors managed by this directory.
    pub fn with_reconciler(mut self, reconciler: Arc<DirectoryReconciler>) -> Self {
        self.writes = reconciler.write_lock();
        self.reconciler = Some(reconciler);
        self
    }

    pub fn worker(&self) -> &Arc<Worker> {
        &self.worker
    }

    /// Held while a request changes connectors.
    async fn write(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.writes.lock().await
    }

    /// 409 if `name` is managed by a connector file.
    fn ensure_not_file_managed(&self, name: &str, action: &str) -> Result<(), ApiError> {
        match self.reconciler.as_ref().and_then(|r| r.managed_file(name)) {
            Some(path) => Err(ApiError::conflict(format!(
                "connector {name} is managed by the file {}; {action} by editing or removing that file",
                path.display()
            ))),
            None => Ok(()),
        }
    }
}

/// The whole API as an axum router.
pub fn router(state: RestState) -> Router {
    let protected = Router::new()
        .route("/", get(root))
        .route(
            "/connectors",
            get(connectors::list).post(connectors::create),
        )
        .route(
            "/connectors/{name}",
            get(connectors::info).delete(connectors::delete),
        )
        .route(
            "/connectors/{name}/config",
            get(connectors::get_config)
                .put(connectors::put_config)
                .patch(connectors::patch_config),
        )
        .route("/connectors/{name}/status", get(connectors::status))
        .route("/connectors/{name}/tasks", get(connectors::tasks))
        .route(
            "/connectors/{name}/tasks/{task}/status",
            get(connectors::task_status),
        )
        .route(
            "/connectors/{name}/tasks/{task}/restart",
            post(connectors::restart_task),
        )
        .route("/connectors/{name}/pause", put(connectors::pause))
        .route("/connectors/{name}/resume", put(connectors::resume))
        .route("/connectors/{name}/stop", put(connectors::stop))
        .route("/connectors/{name}/restart", post(connectors::restart))
        .route("/connectors/{name}/progress", get(connectors::progress))
        .route("/connectors/{name}/topics", get(topics::connector_topics))
        .route(
            "/connectors/{name}/topics/reset",
            put(topics::reset_connector_topics),
        )
        .route(
            "/connectors/{name}/offsets",
            get(offsets::get_offsets)
                .patch(offsets::alter_offsets)
                .delete(offsets::reset_offsets),
        )
        .route("/connector-plugins", get(plugins::list))
        .route("/connector-plugins/{plugin}/config", get(plugins::config))
        .route(
            "/connector-plugins/{plugin}/config/validate",
            put(plugins::validate),
        )
        .route("/admin/loggers", get(loggers::list))
        .route(
            "/admin/loggers/{logger}",
            get(loggers::get).put(loggers::set),
        )
        .route("/topics", get(topics::list))
        .route("/topics/{topic}/records", get(topics::records))
        .route("/openapi.json", get(openapi::document))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require,
        ));
    // The built-in schema registry's API (`/subjects`, `/schemas`, `/config`,
    // `/compatibility`) on the same port, behind the same authentication.
    let registry = match state.worker.schema_registry() {
        Some(store) => crate::schema_registry::router(store.clone()).route_layer(
            axum::middleware::from_fn_with_state(state.clone(), auth::require),
        ),
        None => Router::new(),
    };
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .merge(protected)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state)
        .merge(registry)
}

async fn root(State(state): State<RestState>) -> Json<serde_json::Value> {
    Json(json!({
        "version": crate::VERSION,
        "commit": option_env!("TRIBUTARY_COMMIT").unwrap_or("unknown"),
        "kafka_cluster_id": cluster_id(&state).await,
    }))
}

/// The Kafka cluster's id on the Kafka storage (cached once the broker answered; `null`
/// while it cannot be asked); on the embedded log, which is no Kafka cluster, a stable id
/// naming this worker.
async fn cluster_id(state: &RestState) -> Option<String> {
    let store = state.worker.store().clone();
    let worker_id = state.worker.worker_id().to_owned();
    let asked = state
        .cluster_id
        .get_or_try_init(|| async move {
            Ok::<_, ConnectorError>(
                store
                    .cluster_id()
                    .await?
                    .unwrap_or_else(|| format!("tributary-embedded-{worker_id}")),
            )
        })
        .await;
    match asked {
        Ok(id) => Some(id.clone()),
        Err(e) => {
            tracing::warn!(error = %e, "cannot ask the Kafka cluster for its id");
            None
        }
    }
}

async fn health(State(state): State<RestState>) -> Json<serde_json::Value> {
    let connectors = state.worker.list().await;
    Json(json!({"status": "UP", "version": crate::VERSION, "connectors": connectors.len()}))
}

/// Prometheus scrape endpoint; open like `/health` (scrapers rarely carry credentials).
async fn metrics(State(state): State<RestState>) -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(&state.worker).await,
    )
}

async fn not_found() -> ApiError {
    ApiError::not_found("HTTP 404 Not Found")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "HTTP 405 Method Not Allowed",
    )
}

fn panic_response(payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default();
    error!(panic = %detail, "request handler panicked");
    ApiError::internal("internal error while handling the request (see the worker log)")
        .into_response()
}

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {address}: the port is busy (another process listens there)")]
    PortBusy {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {address}")]
    Bind {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid REST configuration: {0}")]
    Config(ConfigErrors),
    #[error("cannot load the TLS certificate or key: {0}")]
    Tls(String),
    #[error("the REST server failed")]
    Serve(#[source] std::io::Error),
}

/// A bound listener, ready to serve.
pub struct Listener {
    listener: std::net::TcpListener,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
}

impl Listener {
    /// Binds `rest.listen` and loads `rest.tls`; fails early and clearly when the port is
    /// taken or the certificate is unusable.
    pub fn bind(config: &RestConfig) -> Result<Self, ServeError> {
        let address: SocketAddr = config.listen.parse().map_err(|_| {
            ServeError::Config(ConfigErrors::single(
                "rest.listen",
                format!(
                    "must be host:port with an IP address, got {:?}",
                    config.listen
                ),
            ))
        })?;
        let listener = std::net::TcpListener::bind(address).map_err(|source| {
            if source.kind() == std::io::ErrorKind::AddrInUse {
                ServeError::PortBusy {
                    address: config.listen.clone(),
                    source,
                }
            } else {
                ServeError::Bind {
                    address: config.listen.clone(),
                    source,
                }
            }
        })?;
        let tls = config.tls.as_ref().map(load_tls).transpose()?;
        Ok(Listener { listener, tls })
    }

    /// The bound address (the real port when 0 was asked for).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves `router` until `shutdown` resolves, then finishes in-flight requests (at most
    /// a few seconds).
    pub async fn serve(
        self,
        router: Router,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let handle = axum_server::Handle::new();
        let stopper = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            stopper.graceful_shutdown(Some(Duration::from_secs(5)));
        });
        let address = self.local_addr();
        let service = router.into_make_service();
        match self.tls {
            Some(tls) => {
                info!(address = ?address, "REST API listening (HTTPS)");
                axum_server::from_tcp_rustls(self.listener, tls)
                    .map_err(ServeError::Serve)?
                    .handle(handle)
                    .first_request_timeout(Duration::from_secs(30))
                    .serve(service)
                    .await
            }
            None => {
                info!(address = ?address, "REST API listening (HTTP)");
                axum_server::from_tcp(self.listener)
                    .map_err(ServeError::Serve)?
                    .handle(handle)
                    .first_request_timeout(Duration::from_secs(30))
                    .serve(service)
                    .await
            }
        }
        .map_err(ServeError::Serve)
    }
}

fn load_tls(config: &RestTlsConfig) -> Result<axum_server::tls_rustls::RustlsConfig, ServeError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&config.cert_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            ServeError::Tls(format!(
                "rest.tls.cert_file {}: {e}",
                config.cert_file.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(ServeError::Tls(format!(
            "rest.tls.cert_file {}: no certificate in the file",
            config.cert_file.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&config.key_file).map_err(|e| {
        ServeError::Tls(format!(
            "rest.tls.key_file {}: {e}",
            config.key_file.display()
        ))
    })?;
    // An explicit provider: other crates in the binary may enable a second one, and rustls
    // then refuses to pick a default.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            ServeError::Tls(format!(
                "certificate and key do not form a usable pair: {e}"
            ))
        })?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(axum_server::tls_rustls::RustlsConfig::from_config(
        Arc::new(server),
    ))
}
