//! Where the Avro converter registers and looks up schemas: a Confluent Schema Registry over
//! HTTP, or the built-in one in process.
//!
//! Errors are classified once here: a registry rejection (409 incompatible, 422 invalid) or
//! a missing subject is definite (the task fails with the registry's message, which names the
//! subject and the field); network errors and 5xx are transient (the task restarts with
//! backoff and re-encodes, nothing is skipped).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value as J, json};

use super::projection::Projection;
use super::wire;
use crate::config::Secret;
use crate::error::ConnectorError;
use crate::schema_registry::{RegistryError, SchemaStore};

/// A registry reached over HTTP.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    base: String,
    http: reqwest::Client,
    auth: Option<(String, Secret)>,
}

/// What to do with a schema the converter derived (`auto.register.schemas`,
/// `use.latest.version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolve {
    /// Register it (idempotent) and use its id.
    Register,
    /// Use the id it already has under the subject (error when it has none).
    Lookup,
    /// Write with the subject's latest version: records are projected onto it when it is not
    /// the derived schema ([`super::projection`]); an error when they cannot be.
    Latest,
}

/// What records of one derived schema are written with: the schema id of the wire header
/// and, under `use.latest.version` with a latest schema other than the derived one, the
/// projection onto it. Without a projection (every other case) writing costs nothing more.
#[derive(Debug, Clone)]
pub struct Writer {
    pub id: u32,
    projection: Option<Arc<LatestProjection>>,
}

#[derive(Debug)]
struct LatestProjection {
    subject: String,
    plan: Arc<Projection>,
}

impl Writer {
    /// Writes with schema `id` as derived.
    pub fn new(id: u32) -> Self {
        Writer {
            id,
            projection: None,
        }
    }

    /// Whether records are rewritten into another schema than the derived one.
    pub fn is_projected(&self) -> bool {
        self.projection.is_some()
    }

    /// Replaces `buf` with the wire header and the datum `encode` writes with the derived
    /// schema (projected onto the latest schema when needed: encoded aside, then rewritten).
    pub fn write(
        &self,
        buf: &mut Vec<u8>,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), ConnectorError>,
    ) -> Result<(), ConnectorError> {
        buf.clear();
        wire::write_header(buf, self.id);
        let Some(latest) = &self.projection else {
            return encode(buf);
        };
        let mut datum = Vec::with_capacity(buf.capacity());
        encode(&mut datum)?;
        latest.plan.project(&datum, buf).map_err(|e| {
            ConnectorError::definite(format!(
                "use.latest.version: a record cannot be written with the latest schema of subject {} (id {}): {e}",
                latest.subject, self.id
            ))
        })
    }
}

/// Projection plans by latest schema id and derived schema text: compiled once per pair,
/// however many table versions, tasks' caches or latest-schema refreshes lead to it.
#[derive(Debug, Default)]
pub struct Projections(Mutex<HashMap<(u32, String), Arc<Projection>>>);

impl Projections {
    fn get_or_compile(
        &self,
        latest_id: u32,
        derived: &str,
        latest: &str,
    ) -> Result<Arc<Projection>, super::projection::ProjectionError> {
        let key = (latest_id, derived.to_owned());
        if let Some(plan) = self.0.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(plan.clone());
        }
        let plan = Arc::new(Projection::compile(derived, latest)?);
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, plan.clone());
        Ok(plan)
    }
}

impl RegistryClient {
    /// `url`: the first of `schema.registry.url`'s comma-separated URLs; `auth`: user and
    /// password from `basic.auth.user.info`.
    pub fn new(url: &str, auth: Option<(String, Secret)>) -> Result<Self, ConnectorError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| {
                ConnectorError::config("cannot build the schema registry client").with_source(e)
            })?;
        Ok(RegistryClient {
            base: url.trim_end_matches('/').to_owned(),
            http,
            auth,
        })
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<J>,
    ) -> Result<J, RegistryError> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("accept", "application/vnd.schemaregistry.v1+json");
        if let Some((user, password)) = &self.auth {
            req = req.basic_auth(user, Some(password.expose()));
        }
        if let Some(body) = body {
            req = req
                .header("content-type", "application/vnd.schemaregistry.v1+json")
                .body(body.to_string());
        }
        let resp = req.send().await.map_err(|e| {
            RegistryError::new(
                50003,
                format!("cannot reach the schema registry at {}: {e}", self.base),
            )
        })?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| {
            RegistryError::new(50003, format!("schema registry response cut short: {e}"))
        })?;
        let json: J = serde_json::from_slice(&bytes).unwrap_or(J::Null);
        if (200..300).contains(&status) {
            return Ok(json);
        }
        let code = json
            .get("error_code")
            .and_then(J::as_u64)
            .and_then(|c| u32::try_from(c).ok())
            .unwrap_or(u32::from(status));
        let message = json.get("message").and_then(J::as_str).map_or_else(
            || String::from_utf8_lossy(&bytes).into_owned(),
            str::to_owned,
        );
        Err(RegistryError::new(
            code,
            format!("HTTP {status}: {message}"),
        ))
    }

    /// `POST /subjects/{s}/versions`: the schema's id.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let r = self
            .send(
                reqwest::Method::POST,
                &format!("/subjects/{}/versions", encode(subject)),
                Some(json!({"schema": schema})),
            )
            .await?;
        id_of(&r)
    }

    /// `POST /subjects/{s}`: the id this subject already has for the schema.
    pub async fn lookup(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let r = self
            .send(
                reqwest::Method::POST,
                &format!("/subjects/{}", encode(subject)),
                Some(json!({"schema": schema})),
            )
            .await?;
        id_of(&r)
    }

    /// `GET /subjects/{s}/versions/latest`: id and schema text.
    pub async fn latest(&self, subject: &str) -> Result<(u32, String), RegistryError> {
        let r = self
            .send(
                reqwest::Method::GET,
                &format!("/subjects/{}/versions/latest", encode(subject)),
                None,
            )
            .await?;
        let schema = r
            .get("schema")
            .and_then(J::as_str)
            .unwrap_or_default()
            .to_owned();
        Ok((id_of(&r)?, schema))
    }

    /// `GET /schemas/ids/{id}`: the schema text.
    pub async fn schema(&self, id: u32) -> Result<String, RegistryError> {
        let r = self
            .send(reqwest::Method::GET, &format!("/schemas/ids/{id}"), None)
            .await?;
        r.get("schema")
            .and_then(J::as_str)
            .map(str::to_owned)
            .ok_or_else(|| RegistryError::new(50003, "schema registry answered without a schema"))
    }
}

fn id_of(r: &J) -> Result<u32, RegistryError> {
    r.get("id")
        .and_then(J::as_u64)
        .and_then(|id| u32::try_from(id).ok())
        .ok_or_else(|| {
            RegistryError::new(
                50003,
                format!("schema registry answered without an id: {r}"),
            )
        })
}

fn encode(subject: &str) -> String {
    subject
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// The registry a converter talks to.
#[derive(Debug, Clone)]
pub enum RegistryTarget {
    Http(Arc<RegistryClient>),
    /// The worker's built-in registry ([`crate::schema_registry::install_embedded`]).
    Embedded,
}

impl RegistryTarget {
    /// What to write records of `schema` with under `subject`. `what` names the schema in
    /// errors, e.g. "value schema of table shop.orders"; `plans` caches projections
    /// ([`Resolve::Latest`]).
    pub async fn resolve(
        &self,
        subject: &str,
        schema: &str,
        how: Resolve,
        what: &str,
        plans: &Projections,
    ) -> Result<Writer, ConnectorError> {
        let result = match self {
            RegistryTarget::Http(client) => match how {
                Resolve::Register => client.register(subject, schema).await.map(Found::Id),
                Resolve::Lookup => client.lookup(subject, schema).await.map(Found::Id),
                Resolve::Latest => client
                    .latest(subject)
                    .await
                    .map(|(id, text)| Found::Latest(id, text)),
            },
            RegistryTarget::Embedded => {
                let store: Arc<SchemaStore> = crate::schema_registry::embedded().ok_or_else(|| {
                    ConnectorError::config(
                        "no schema registry: set value.converter.schema.registry.url (and key.converter.schema.registry.url), or run with the embedded storage, which serves the built-in registry",
                    )
                })?;
                let (s, sc) = (subject.to_owned(), schema.to_owned());
                tokio::task::spawn_blocking(move || match how {
                    Resolve::Register => store.register(&s, &sc).map(|r| Found::Id(r.id)),
                    Resolve::Lookup => store.lookup(&s, &sc).map(|r| Found::Id(r.id)),
                    Resolve::Latest => store
                        .version(&s, "latest")
                        .map(|r| Found::Latest(r.id, r.schema)),
                })
                .await
                .map_err(|e| {
                    ConnectorError::transient("schema registry task failed").with_source(e)
                })?
            }
        };
        match result.map_err(|e| classify(e, subject, what))? {
            Found::Id(id) => Ok(Writer::new(id)),
            Found::Latest(id, latest) => latest_writer(id, &latest, schema, subject, what, plans),
        }
    }
}

/// What the registry answered.
enum Found {
    Id(u32),
    /// `use.latest.version`: the latest schema's id and text.
    Latest(u32, String),
}

impl RegistryTarget {
    /// The schema text registered under `id` (what a reader needs to decode a record).
    pub async fn schema_by_id(&self, id: u32) -> Result<String, ConnectorError> {
        let result = match self {
            RegistryTarget::Http(client) => client.schema(id).await,
            RegistryTarget::Embedded => {
                let store: Arc<SchemaStore> = crate::schema_registry::embedded().ok_or_else(|| {
                    ConnectorError::config(
                        "no schema registry to read Avro records with: set value.converter.schema.registry.url (and key.converter.schema.registry.url), or run with the embedded storage, which serves the built-in registry",
                    )
                })?;
                tokio::task::spawn_blocking(move || store.schema_by_id(id))
                    .await
                    .map_err(|e| {
                        ConnectorError::transient("schema registry task failed").with_source(e)
                    })?
            }
        };
        result.map_err(|e| match e.code {
            c if c >= 50000 || (500..600).contains(&c) => ConnectorError::transient(format!(
                "schema registry unavailable while reading schema id {id}: {}",
                e.message
            )),
            _ => ConnectorError::definite(format!(
                "schema id {id} is not in the schema registry ({}); the record was written with another registry",
                e.message
            )),
        })
    }
}

/// `use.latest.version`: write with the latest schema `(id, latest)`. When it is the derived
/// schema (compared as JSON: the common case) records are written as derived; otherwise they
/// are projected onto it ([`super::projection`]), which fails here, definitely, when no record
/// could be written with it (a field without default, an incompatible type).
fn latest_writer(
    id: u32,
    latest: &str,
    derived: &str,
    subject: &str,
    what: &str,
    plans: &Projections,
) -> Result<Writer, ConnectorError> {
    let parse = |t: &str| serde_json::from_str::<J>(t).ok();
    if parse(latest).is_some() && parse(latest) == parse(derived) {
        return Ok(Writer::new(id));
    }
    let plan = plans.get_or_compile(id, derived, latest).map_err(|e| {
        ConnectorError::definite(format!(
            "use.latest.version: the {what} cannot be written with the latest schema of subject \
             {subject} (id {id}): {e}. Register a version the records fit (a default for every \
             field they lack, types they promote to) or set use.latest.version=false"
        ))
    })?;
    if plan.is_identity() {
        return Ok(Writer::new(id));
    }
    Ok(Writer {
        id,
        projection: Some(Arc::new(LatestProjection {
            subject: subject.to_owned(),
            plan,
        })),
    })
}

/// Transient for unreachable registries and server errors, definite for rejections.
fn classify(e: RegistryError, subject: &str, what: &str) -> ConnectorError {
    let message = format!(
        "schema registry rejected the {what} for subject {subject}: {}",
        e.message
    );
    match e.code {
        c if c >= 50000 || (500..600).contains(&c) => ConnectorError::transient(format!(
            "schema registry unavailable for subject {subject}: {}",
            e.message
        )),
        40401 | 40403 => ConnectorError::definite(format!(
            "{message} (auto.register.schemas=false: register the schema first, or enable auto.register.schemas)"
        )),
        _ => ConnectorError::definite(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_path_encoded() {
        assert_eq!(encode("srv.shop.orders-value"), "srv.shop.orders-value");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn rejections_are_definite_outages_transient() {
        let e = classify(
            RegistryError::new(40901, "incompatible: field x"),
            "t-value",
            "value schema of table a.b",
        );
        assert_eq!(e.kind, crate::error::ErrorKind::Definite);
        assert!(e.to_string().contains("t-value") && e.to_string().contains("field x"));
        let e = classify(RegistryError::new(50003, "down"), "t-value", "value schema");
        assert_eq!(e.kind, crate::error::ErrorKind::Transient);
    }
}
