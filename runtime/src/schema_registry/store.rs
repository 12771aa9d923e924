//! The registry's state: schemas by id, subjects with their versions, compatibility levels.
//! Persisted as one JSON file in the data directory, replaced atomically on every change.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::compat::{self, Schema};

/// Compatibility levels, Confluent's names.
pub const LEVELS: &[&str] = &[
    "NONE",
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
];

/// A registry error with Confluent's error code (the HTTP status is its first three digits).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct RegistryError {
    pub code: u32,
    pub message: String,
}

impl RegistryError {
    pub fn new(code: u32, message: impl Into<String>) -> Self {
        RegistryError {
            code,
            message: message.into(),
        }
    }

    pub fn http_status(&self) -> u16 {
        let status = if self.code < 1000 {
            self.code
        } else {
            self.code / 100
        };
        u16::try_from(status).unwrap_or(500)
    }

    fn subject_not_found(subject: &str) -> Self {
        RegistryError::new(40401, format!("Subject '{subject}' not found."))
    }
}

/// One registered version of a subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionEntry {
    pub version: u32,
    pub id: u32,
    #[serde(default)]
    pub deleted: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Subject {
    versions: Vec<VersionEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    compatibility: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    compatibility: String,
    /// Schema text (canonical JSON) by id; ids start at 1.
    schemas: BTreeMap<u32, String>,
    subjects: BTreeMap<String, Subject>,
}

impl Default for State {
    fn default() -> Self {
        State {
            compatibility: "BACKWARD".into(),
            schemas: BTreeMap::new(),
            subjects: BTreeMap::new(),
        }
    }
}

/// A subject's version with its schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Registered {
    pub subject: String,
    pub version: u32,
    pub id: u32,
    pub schema: String,
}

/// The registry store. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct SchemaStore {
    path: Option<PathBuf>,
    state: Mutex<State>,
}

/// Canonical text of a schema: parsed and re-serialised compactly, so whitespace does not
/// make a different schema.
pub fn canonical(schema: &str) -> Result<String, RegistryError> {
    let json: serde_json::Value = serde_json::from_str(schema)
        .map_err(|e| RegistryError::new(42201, format!("Invalid schema: {e}")))?;
    Schema::parse(schema).map_err(|e| RegistryError::new(42201, format!("Invalid schema: {e}")))?;
    Ok(json.to_string())
}

impl SchemaStore {
    /// A store kept in memory only.
    pub fn in_memory() -> Self {
        SchemaStore {
            path: None,
            state: Mutex::new(State::default()),
        }
    }

    /// Opens (or creates) the store in `dir` (`schema-registry.json`).
    pub fn open(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        crate::durable_file::create_dir_durable(&dir)?;
        let path = dir.join("schema-registry.json");
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::other(format!("{} is corrupt: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(e),
        };
        Ok(SchemaStore {
            path: Some(path),
            state: Mutex::new(state),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn persist(&self, state: &State) -> Result<(), RegistryError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let bytes = serde_json::to_vec(state).map_err(|e| {
            RegistryError::new(50001, format!("Error in the backend data store: {e}"))
        })?;
        crate::durable_file::write_atomic(path, &bytes)
            .map_err(|e| RegistryError::new(50001, format!("Error in the backend data store: {e}")))
    }

    pub fn subjects(&self, deleted: bool) -> Vec<String> {
        self.lock()
            .subjects
            .iter()
            .filter(|(_, s)| deleted || s.versions.iter().any(|v| !v.deleted))
            .map(|(n, _)| n.clone())
            .collect()
    }

    pub fn versions(&self, subject: &str) -> Result<Vec<u32>, RegistryError> {
        let state = self.lock();
        let live: Vec<u32> = state
            .subjects
            .get(subject)
            .map(|s| {
                s.versions
                    .iter()
                    .filter(|v| !v.deleted)
                    .map(|v| v.version)
                    .collect()
            })
            .unwrap_or_default();
        if live.is_empty() {
            return Err(RegistryError::subject_not_found(subject));
        }
        Ok(live)
    }

    pub fn schema_by_id(&self, id: u32) -> Result<String, RegistryError> {
        self.lock()
            .schemas
            .get(&id)
            .cloned()
            .ok_or_else(|| RegistryError::new(40403, format!("Schema {id} not found")))
    }

    /// Subjects and versions that use schema `id`.
    pub fn id_versions(&self, id: u32) -> Result<Vec<(String, u32)>, RegistryError> {
        let state = self.lock();
        if !state.schemas.contains_key(&id) {
            return Err(RegistryError::new(40403, format!("Schema {id} not found")));
        }
        Ok(state
            .subjects
            .iter()
            .flat_map(|(name, s)| {
                s.versions
                    .iter()
                    .filter(|v| v.id == id && !v.deleted)
                    .map(move |v| (name.clone(), v.version))
            })
            .collect())
    }

    /// A version of a subject: a number, or `latest` / `-1`.
    pub fn version(&self, subject: &str, version: &str) -> Result<Registered, RegistryError> {
        let state = self.lock();
        let s = state
            .subjects
            .get(subject)
            .filter(|s| s.versions.iter().any(|v| !v.deleted))
            .ok_or_else(|| RegistryError::subject_not_found(subject))?;
        let entry = match version {
            "latest" | "-1" => s.versions.iter().rev().find(|v| !v.deleted),
            n => {
                let n: u32 = n.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    RegistryError::new(
                        42202,
                        format!("The specified version '{version}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""),
                    )
                })?;
                s.versions.iter().find(|v| v.version == n && !v.deleted)
            }
        }
        .ok_or_else(|| RegistryError::new(40402, format!("Version {version} not found.")))?;
        Ok(Registered {
            subject: subject.to_owned(),
            version: entry.version,
            id: entry.id,
            schema: state.schemas.get(&entry.id).cloned().unwrap_or_default(),
        })
    }

    /// The subject's version holding this schema (`POST /subjects/{s}`).
    pub fn lookup(&self, subject: &str, schema: &str) -> Result<Registered, RegistryError> {
        let text = canonical(schema)?;
        let state = self.lock();
        let s = state
            .subjects
            .get(subject)
            .ok_or_else(|| RegistryError::subject_not_found(subject))?;
        s.versions
            .iter()
            .filter(|v| !v.deleted)
            .find(|v| state.schemas.get(&v.id) == Some(&text))
            .map(|v| Registered {
                subject: subject.to_owned(),
                version: v.version,
                id: v.id,
                schema: text.clone(),
            })
            .ok_or_else(|| RegistryError::new(40403, "Schema not found"))
    }

    /// The level in force for a subject.
    pub fn compatibility(&self, subject: Option<&str>) -> String {
        let state = self.lock();
        subject
            .and_then(|s| state.subjects.get(s))
            .and_then(|s| s.compatibility.clone())
            .unwrap_or_else(|| state.compatibility.clone())
    }

    /// The subject's own level, if set.
    pub fn subject_compatibility(&self, subject: &str) -> Option<String> {
        self.lock()
            .subjects
            .get(subject)
            .and_then(|s| s.compatibility.clone())
    }

    pub fn set_compatibility(
        &self,
        subject: Option<&str>,
        level: Option<&str>,
    ) -> Result<(), RegistryError> {
        if let Some(level) = level
            && !LEVELS.contains(&level)
        {
            return Err(RegistryError::new(
                42203,
                format!(
                    "Invalid compatibility level. Valid values are {}",
                    LEVELS.join(", ")
                ),
            ));
        }
        let mut state = self.lock();
        match subject {
            None => state.compatibility = level.unwrap_or("BACKWARD").to_owned(),
            Some(s) => {
                state
                    .subjects
                    .entry(s.to_owned())
                    .or_default()
                    .compatibility = level.map(str::to_owned)
            }
        }
        self.persist(&state)
    }

    /// Problems of `schema` against the versions its level says to check, or against one
    /// version. Each entry is a human-readable message in Confluent's style.
    pub fn check_compatibility(
        &self,
        subject: &str,
        schema: &str,
        version: Option<&str>,
    ) -> Result<Vec<String>, RegistryError> {
        let text = canonical(schema)?;
        let level = self.compatibility(Some(subject));
        let state = self.lock();
        let live: Vec<&VersionEntry> = state
            .subjects
            .get(subject)
            .map(|s| s.versions.iter().filter(|v| !v.deleted).collect())
            .unwrap_or_default();
        let against: Vec<&VersionEntry> = match version {
            None => match level.ends_with("_TRANSITIVE") {
                true => live,
                false => live.last().copied().into_iter().collect(),
            },
            Some(v) => {
                drop(state);
                let r = self.version(subject, v)?;
                return self.problems(&text, &[(r.version, r.schema)], &level);
            }
        };
        let old: Vec<(u32, String)> = against
            .iter()
            .map(|v| {
                (
                    v.version,
                    state.schemas.get(&v.id).cloned().unwrap_or_default(),
                )
            })
            .collect();
        drop(state);
        self.problems(&text, &old, &level)
    }

    fn problems(
        &self,
        new: &str,
        old: &[(u32, String)],
        level: &str,
    ) -> Result<Vec<String>, RegistryError> {
        let new_schema = Schema::parse(new)
            .map_err(|e| RegistryError::new(42201, format!("Invalid schema: {e}")))?;
        let mut out = Vec::new();
        for (version, text) in old {
            let Ok(old_schema) = Schema::parse(text) else {
                continue;
            };
            let mut found = Vec::new();
            if level.starts_with("BACKWARD") || level.starts_with("FULL") {
                found.extend(compat::check(&new_schema, &old_schema));
            }
            if level.starts_with("FORWARD") || level.starts_with("FULL") {
                found.extend(compat::check(&old_schema, &new_schema));
            }
            if found.is_empty() {
                continue;
            }
            // Confluent's verbose messages: one entry per problem, then the version and level.
            for p in found {
                out.push(format!(
                    "{{errorType:'{}', description:'{}', additionalInfo:'{}'}}",
                    p.kind, p.description, p.path
                ));
            }
            out.push(format!("{{oldSchemaVersion: {version}}}"));
            out.push(format!("{{compatibility: '{level}'}}"));
        }
        Ok(out)
    }

    /// Registers a schema under a subject: the existing id when this subject already has
    /// it, else a new version after the compatibility check (40901 when it fails).
    pub fn register(&self, subject: &str, schema: &str) -> Result<Registered, RegistryError> {
        let text = canonical(schema)?;
        if let Ok(existing) = self.lookup(subject, &text) {
            return Ok(existing);
        }
        let problems = self.check_compatibility(subject, &text, None)?;
        if !problems.is_empty() {
            return Err(RegistryError::new(
                40901,
                format!(
                    "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]",
                    problems.join(", ")
                ),
            ));
        }
        let mut state = self.lock();
        let id = match state.schemas.iter().find(|(_, s)| **s == text) {
            Some((id, _)) => *id,
            None => {
                let id = state.schemas.keys().next_back().map_or(1, |k| k + 1);
                state.schemas.insert(id, text.clone());
                id
            }
        };
        let s = state.subjects.entry(subject.to_owned()).or_default();
        let version = s.versions.last().map_or(1, |v| v.version + 1);
        s.versions.push(VersionEntry {
            version,
            id,
            deleted: false,
        });
        self.persist(&state)?;
        Ok(Registered {
            subject: subject.to_owned(),
            version,
            id,
            schema: text,
        })
    }

    /// Deletes a subject (soft, or `permanent` after a soft delete); returns its versions.
    pub fn delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<Vec<u32>, RegistryError> {
        let mut state = self.lock();
        let s = state
            .subjects
            .get_mut(subject)
            .ok_or_else(|| RegistryError::subject_not_found(subject))?;
        let versions: Vec<u32> = s.versions.iter().map(|v| v.version).collect();
        if permanent {
            state.subjects.remove(subject);
        } else {
            if s.versions.iter().all(|v| v.deleted) {
                return Err(RegistryError::new(
                    40404,
                    format!(
                        "Subject '{subject}' was soft deleted.Set permanent=true to delete permanently"
                    ),
                ));
            }
            s.versions.iter_mut().for_each(|v| v.deleted = true);
        }
        self.persist(&state)?;
        Ok(versions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"{"type":"record","name":"V","fields":[{"name":"id","type":"int"}]}"#;
    const V2: &str = r#"{"type":"record","name":"V","fields":[{"name":"id","type":"long"},{"name":"n","type":["null","string"],"default":null}]}"#;
    const BAD: &str = r#"{"type":"record","name":"V","fields":[{"name":"id","type":"long"},{"name":"must","type":"string"}]}"#;

    #[test]
    fn registers_evolves_and_rejects() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SchemaStore::open(dir.path()).expect("open");
        let a = store.register("t-value", V1).expect("v1");
        assert_eq!((a.id, a.version), (1, 1));
        let again = store.register("t-value", &format!(" {V1} ")).expect("same");
        assert_eq!((again.id, again.version), (1, 1));
        let b = store.register("t-value", V2).expect("v2");
        assert_eq!((b.id, b.version), (2, 2));
        let err = store.register("t-value", BAD).expect_err("incompatible");
        assert_eq!(err.code, 40901);
        assert_eq!(err.http_status(), 409);
        assert!(err.message.contains("\"t-value\""), "{}", err.message);
        assert!(err.message.contains("'must'"), "{}", err.message);
        // Same schema, other subject: same id, version 1.
        let c = store.register("u-value", V1).expect("u");
        assert_eq!((c.id, c.version), (1, 1));
        drop(store);
        let reopened = SchemaStore::open(dir.path()).expect("reopen");
        assert_eq!(reopened.versions("t-value").expect("versions"), [1, 2]);
        assert_eq!(reopened.version("t-value", "latest").expect("latest").id, 2);
        assert_eq!(
            reopened.register("t-value", BAD).expect_err("still").code,
            40901
        );
        reopened
            .set_compatibility(Some("t-value"), Some("NONE"))
            .expect("none");
        assert_eq!(
            reopened.register("t-value", BAD).expect("accepted").version,
            3
        );
    }
}
