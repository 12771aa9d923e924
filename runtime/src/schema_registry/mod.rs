//! A Confluent-compatible Schema Registry, built in for the embedded storage.
//!
//! Serves the part of Confluent's REST API that converters and clients use
//! (<https://docs.confluent.io/platform/current/schema-registry/develop/api.html>):
//!
//! ```text
//! GET    /subjects                                  GET/PUT/DELETE /config[/{subject}]
//! GET    /subjects/{s}/versions                     GET  /schemas/ids/{id}[/schema|/versions|/subjects]
//! POST   /subjects/{s}/versions      (register)     POST /compatibility/subjects/{s}/versions[/{v}]
//! GET    /subjects/{s}/versions/{v}[/schema]        POST /subjects/{s}   (lookup)
//! DELETE /subjects/{s}
//! ```
//!
//! Avro schemas only. State lives in `schema-registry.json` in the data directory
//! ([`SchemaStore::open`]), replaced atomically on every change. Errors use Confluent's body
//! `{"error_code": 40901, "message": "..."}` with the HTTP status its first digits name.
//!
//! The worker installs its store with [`install_embedded`]; converters configured without
//! `schema.registry.url` register through it in process (no HTTP).

mod compat;
mod store;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value as J, json};

pub use compat::{Incompatibility, Schema as AvroSchema, check as check_compatibility};
pub use store::{LEVELS, Registered, RegistryError, SchemaStore, canonical};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

static EMBEDDED: OnceLock<RwLock<Option<Arc<SchemaStore>>>> = OnceLock::new();

/// Makes `store` the registry that converters without a `schema.registry.url` use.
pub fn install_embedded(store: Arc<SchemaStore>) {
    let slot = EMBEDDED.get_or_init(|| RwLock::new(None));
    *slot.write().unwrap_or_else(|p| p.into_inner()) = Some(store);
}

/// Opens the registry store in `<data_dir>/schema-registry/` and installs it for the
/// converters: what the worker calls when it runs the embedded storage (then it mounts
/// [`router`] with the returned store, or runs [`serve`]).
pub fn open_embedded(data_dir: &std::path::Path) -> std::io::Result<Arc<SchemaStore>> {
    let store = Arc::new(SchemaStore::open(data_dir.join("schema-registry"))?);
    install_embedded(store.clone());
    Ok(store)
}

/// The store installed by [`install_embedded`], if any.
pub fn embedded() -> Option<Arc<SchemaStore>> {
    EMBEDDED
        .get()
        .and_then(|slot| slot.read().unwrap_or_else(|p| p.into_inner()).clone())
}

/// The registry's HTTP API over `store`, without `GET /` so it can be mounted beside the
/// Kafka Connect API on the worker's port ([`serve`] adds `GET /` for a standalone registry).
pub fn router(store: Arc<SchemaStore>) -> Router {
    Router::new()
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register),
        )
        .route("/subjects/{subject}/versions/{version}", get(get_version))
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_version_schema),
        )
        .route("/schemas/ids/{id}", get(get_schema))
        .route("/schemas/ids/{id}/schema", get(get_raw_schema))
        .route("/schemas/ids/{id}/versions", get(get_id_versions))
        .route("/schemas/ids/{id}/subjects", get(get_id_subjects))
        .route(
            "/schemas/types",
            get(|| async { reply(StatusCode::OK, json!(["AVRO"])) }),
        )
        .route("/config", get(get_global_config).put(put_global_config))
        .route(
            "/config/{subject}",
            get(get_subject_config)
                .put(put_subject_config)
                .delete(delete_subject_config),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(compat_all),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compat_version),
        )
        .with_state(store)
}

/// Serves the registry on `addr` until the future is dropped.
pub async fn serve(addr: SocketAddr, store: Arc<SchemaStore>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_listener(listener, store).await
}

/// Serves the registry on an already bound listener (e.g. port 0 in tests).
pub async fn serve_listener(
    listener: tokio::net::TcpListener,
    store: Arc<SchemaStore>,
) -> std::io::Result<()> {
    let app = router(store).route("/", get(|| async { reply(StatusCode::OK, json!({})) }));
    axum::serve(listener, app).await
}

type Store = State<Arc<SchemaStore>>;
type Params = Query<HashMap<String, String>>;

fn reply(status: StatusCode, body: J) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        body.to_string(),
    )
        .into_response()
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        reply(
            status,
            json!({"error_code": self.code, "message": self.message}),
        )
    }
}

type Result<T> = std::result::Result<T, RegistryError>;

/// Runs a store operation that may write (and fsync) the state file off the async threads.
async fn blocking<T: Send + 'static>(
    store: &Arc<SchemaStore>,
    op: impl FnOnce(&SchemaStore) -> Result<T> + Send + 'static,
) -> Result<T> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || op(&store))
        .await
        .map_err(|e| RegistryError::new(50001, format!("Error in the backend data store: {e}")))?
}

fn flag(params: &HashMap<String, String>, name: &str) -> bool {
    params
        .get(name)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// `{"schema": "...", "schemaType": "AVRO", "references": []}` from a request body.
fn schema_body(body: &[u8]) -> Result<String> {
    let bad = |m: String| RegistryError::new(42201, format!("Invalid schema: {m}"));
    let json: J = serde_json::from_slice(body)
        .map_err(|e| RegistryError::new(400, format!("Unrecognized request body: {e}")))?;
    let ty = json.get("schemaType").and_then(J::as_str).unwrap_or("AVRO");
    if ty != "AVRO" {
        return Err(bad(format!(
            "schemaType {ty} is not supported by this registry; only AVRO"
        )));
    }
    if json
        .get("references")
        .and_then(J::as_array)
        .is_some_and(|r| !r.is_empty())
    {
        return Err(bad(
            "schema references are not supported by this registry".into()
        ));
    }
    json.get("schema")
        .and_then(J::as_str)
        .map(str::to_owned)
        .ok_or_else(|| bad("the body has no \"schema\" string".into()))
}

fn registered(r: &Registered) -> J {
    json!({"subject": r.subject, "version": r.version, "id": r.id, "schema": r.schema})
}

fn parse_id(id: &str) -> Result<u32> {
    id.parse()
        .map_err(|_| RegistryError::new(40403, format!("Schema {id} not found")))
}

async fn list_subjects(State(s): Store, Query(q): Params) -> Response {
    reply(StatusCode::OK, json!(s.subjects(flag(&q, "deleted"))))
}

async fn list_versions(State(s): Store, Path(subject): Path<String>) -> Result<Response> {
    Ok(reply(StatusCode::OK, json!(s.versions(&subject)?)))
}

async fn register(State(s): Store, Path(subject): Path<String>, body: Bytes) -> Result<Response> {
    let schema = schema_body(&body)?;
    let r = blocking(&s, move |s| s.register(&subject, &schema)).await?;
    Ok(reply(
        StatusCode::OK,
        json!({"id": r.id, "subject": r.subject, "version": r.version}),
    ))
}

async fn lookup(State(s): Store, Path(subject): Path<String>, body: Bytes) -> Result<Response> {
    let schema = schema_body(&body)?;
    Ok(reply(
        StatusCode::OK,
        registered(&s.lookup(&subject, &schema)?),
    ))
}

async fn delete_subject(
    State(s): Store,
    Path(subject): Path<String>,
    Query(q): Params,
) -> Result<Response> {
    let permanent = flag(&q, "permanent");
    let versions = blocking(&s, move |s| s.delete_subject(&subject, permanent)).await?;
    Ok(reply(StatusCode::OK, json!(versions)))
}

async fn get_version(
    State(s): Store,
    Path((subject, version)): Path<(String, String)>,
) -> Result<Response> {
    Ok(reply(
        StatusCode::OK,
        registered(&s.version(&subject, &version)?),
    ))
}

async fn get_version_schema(
    State(s): Store,
    Path((subject, version)): Path<(String, String)>,
) -> Result<Response> {
    let r = s.version(&subject, &version)?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        r.schema,
    )
        .into_response())
}

async fn get_schema(State(s): Store, Path(id): Path<String>) -> Result<Response> {
    Ok(reply(
        StatusCode::OK,
        json!({"schema": s.schema_by_id(parse_id(&id)?)?}),
    ))
}

async fn get_raw_schema(State(s): Store, Path(id): Path<String>) -> Result<Response> {
    let schema = s.schema_by_id(parse_id(&id)?)?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        schema,
    )
        .into_response())
}

async fn get_id_versions(State(s): Store, Path(id): Path<String>) -> Result<Response> {
    let list: Vec<J> = s
        .id_versions(parse_id(&id)?)?
        .into_iter()
        .map(|(subject, version)| json!({"subject": subject, "version": version}))
        .collect();
    Ok(reply(StatusCode::OK, J::Array(list)))
}

async fn get_id_subjects(State(s): Store, Path(id): Path<String>) -> Result<Response> {
    let mut subjects: Vec<String> = s
        .id_versions(parse_id(&id)?)?
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    subjects.dedup();
    Ok(reply(StatusCode::OK, json!(subjects)))
}

fn level_body(body: &[u8]) -> Result<String> {
    let json: J = serde_json::from_slice(body)
        .map_err(|e| RegistryError::new(400, format!("Unrecognized request body: {e}")))?;
    json.get("compatibility")
        .or_else(|| json.get("compatibilityLevel"))
        .and_then(J::as_str)
        .map(str::to_uppercase)
        .ok_or_else(|| {
            RegistryError::new(
                42203,
                "Invalid compatibility level: the body has no \"compatibility\"",
            )
        })
}

async fn get_global_config(State(s): Store) -> Response {
    reply(
        StatusCode::OK,
        json!({"compatibilityLevel": s.compatibility(None)}),
    )
}

async fn put_global_config(State(s): Store, body: Bytes) -> Result<Response> {
    let level = level_body(&body)?;
    let l = level.clone();
    blocking(&s, move |s| s.set_compatibility(None, Some(&l))).await?;
    Ok(reply(StatusCode::OK, json!({"compatibility": level})))
}

async fn get_subject_config(
    State(s): Store,
    Path(subject): Path<String>,
    Query(q): Params,
) -> Result<Response> {
    match (
        s.subject_compatibility(&subject),
        flag(&q, "defaultToGlobal"),
    ) {
        (Some(level), _) => Ok(reply(StatusCode::OK, json!({"compatibilityLevel": level}))),
        (None, true) => Ok(reply(
            StatusCode::OK,
            json!({"compatibilityLevel": s.compatibility(None)}),
        )),
        (None, false) => Err(RegistryError::new(
            40408,
            format!("Subject '{subject}' does not have subject-level compatibility configured"),
        )),
    }
}

async fn put_subject_config(
    State(s): Store,
    Path(subject): Path<String>,
    body: Bytes,
) -> Result<Response> {
    let level = level_body(&body)?;
    let l = level.clone();
    blocking(&s, move |s| s.set_compatibility(Some(&subject), Some(&l))).await?;
    Ok(reply(StatusCode::OK, json!({"compatibility": level})))
}

async fn delete_subject_config(State(s): Store, Path(subject): Path<String>) -> Result<Response> {
    let level = s.subject_compatibility(&subject).ok_or_else(|| {
        RegistryError::new(
            40408,
            format!("Subject '{subject}' does not have subject-level compatibility configured"),
        )
    })?;
    blocking(&s, move |s| s.set_compatibility(Some(&subject), None)).await?;
    Ok(reply(StatusCode::OK, json!({"compatibilityLevel": level})))
}

fn compat_reply(problems: Vec<String>, verbose: bool) -> Response {
    let mut body = json!({"is_compatible": problems.is_empty()});
    if verbose {
        body["messages"] = json!(problems);
    }
    reply(StatusCode::OK, body)
}

async fn compat_all(
    State(s): Store,
    Path(subject): Path<String>,
    Query(q): Params,
    body: Bytes,
) -> Result<Response> {
    let schema = schema_body(&body)?;
    Ok(compat_reply(
        s.check_compatibility(&subject, &schema, None)?,
        flag(&q, "verbose"),
    ))
}

async fn compat_version(
    State(s): Store,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Params,
    body: Bytes,
) -> Result<Response> {
    let schema = schema_body(&body)?;
    Ok(compat_reply(
        s.check_compatibility(&subject, &schema, Some(&version))?,
        flag(&q, "verbose"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn call(app: &Router, method: &str, uri: &str, body: J) -> (u16, J) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", CONTENT_TYPE)
            .body(Body::from(body.to_string()))
            .expect("request");
        let resp = app.clone().oneshot(req).await.expect("response");
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(J::Null))
    }

    #[tokio::test]
    async fn confluent_api_shapes() {
        let app = router(Arc::new(SchemaStore::in_memory()));
        let v1 = r#"{"type":"record","name":"V","fields":[{"name":"id","type":"int"}]}"#;
        let bad = r#"{"type":"record","name":"V","fields":[{"name":"id","type":"string"}]}"#;
        let (st, body) = call(
            &app,
            "POST",
            "/subjects/t-value/versions",
            json!({"schema": v1}),
        )
        .await;
        assert_eq!((st, body["id"].clone()), (200, json!(1)));
        let (st, body) = call(&app, "GET", "/subjects/t-value/versions/latest", J::Null).await;
        assert_eq!(st, 200);
        assert_eq!(body["version"], 1);
        let (st, body) = call(
            &app,
            "POST",
            "/subjects/t-value/versions",
            json!({"schema": bad}),
        )
        .await;
        assert_eq!(st, 409);
        assert_eq!(body["error_code"], 40901);
        let (st, body) = call(
            &app,
            "POST",
            "/compatibility/subjects/t-value/versions/latest?verbose=true",
            json!({"schema": bad}),
        )
        .await;
        assert_eq!((st, body["is_compatible"].clone()), (200, json!(false)));
        assert!(
            body["messages"][0]
                .as_str()
                .is_some_and(|m| m.contains("TYPE_MISMATCH"))
        );
        let (st, body) = call(&app, "GET", "/schemas/ids/9", J::Null).await;
        assert_eq!((st, body["error_code"].clone()), (404, json!(40403)));
        let (st, body) = call(&app, "GET", "/subjects/nope/versions", J::Null).await;
        assert_eq!((st, body["error_code"].clone()), (404, json!(40401)));
        let (st, body) = call(&app, "PUT", "/config", json!({"compatibility": "full"})).await;
        assert_eq!((st, body), (200, json!({"compatibility": "FULL"})));
        let (st, body) = call(
            &app,
            "PUT",
            "/config/t-value",
            json!({"compatibility": "SOMETIMES"}),
        )
        .await;
        assert_eq!((st, body["error_code"].clone()), (422, json!(42203)));
        let (st, body) = call(
            &app,
            "POST",
            "/subjects/t-value/versions",
            json!({"schema": "{not json"}),
        )
        .await;
        assert_eq!((st, body["error_code"].clone()), (422, json!(42201)));
    }
}
