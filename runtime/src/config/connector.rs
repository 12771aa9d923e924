//! Connector config documents: Kafka Connect's `{name, config}` shape in JSON or YAML, with
//! flat dotted keys or the same keys nested, and `${...}` interpolation for secrets.

use std::path::Path;

use serde_json::Value as Json;

use super::def::{ConfigErrors, RawConfig};

/// A connector's name and raw (uninterpolated) config as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorConfig {
    pub name: String,
    pub config: RawConfig,
}

impl ConnectorConfig {
    pub fn class(&self) -> Option<&str> {
        self.config.get("connector.class").map(String::as_str)
    }

    /// Kafka Connect's JSON shape: `{"name": ..., "config": {...}}`.
    pub fn to_json(&self) -> Json {
        let mut config = serde_json::Map::new();
        config.insert("name".into(), Json::String(self.name.clone()));
        for (k, v) in &self.config {
            config.insert(k.clone(), Json::String(v.clone()));
        }
        serde_json::json!({ "name": self.name, "config": config })
    }
}

/// Checks a connector name: it becomes a file name and part of URLs and group ids.
pub fn validate_connector_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > 200 {
        return Err("must be at most 200 characters".into());
    }
    if name.starts_with('.') || name.starts_with('-') {
        return Err("must not start with '.' or '-'".into());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err("may contain only ASCII letters, digits, '.', '_' and '-'".into());
    }
    Ok(())
}

/// Parses a connector document from JSON or YAML text (`origin` names it in errors; its
/// extension picks the parser, YAML being a superset of JSON for anything else).
pub fn parse_connector_document(
    text: &str,
    origin: &Path,
) -> Result<ConnectorConfig, ConfigErrors> {
    let is_json = origin.extension().is_some_and(|e| e == "json");
    let doc: Json = if is_json {
        serde_json::from_str(text)
            .map_err(|e| ConfigErrors::single("<document>", format!("invalid JSON: {e}")))?
    } else {
        serde_saphyr::from_str(text)
            .map_err(|e| ConfigErrors::single("<document>", format!("invalid YAML: {e}")))?
    };
    let fallback_name = origin
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    connector_from_json(doc, Some(&fallback_name))
}

/// Builds a connector config from a JSON value of either shape:
/// `{"name": "x", "config": {...}}` or a flat/nested map containing `connector.class`.
pub fn connector_from_json(
    doc: Json,
    fallback_name: Option<&str>,
) -> Result<ConnectorConfig, ConfigErrors> {
    let Json::Object(mut top) = doc else {
        return Err(ConfigErrors::single(
            "<document>",
            "must be an object with \"name\" and \"config\"",
        ));
    };
    let mut errors = ConfigErrors::default();
    let name_value = top.remove("name");
    let config_value = top.remove("config");
    let body = match config_value {
        Some(config) => {
            for key in top.keys() {
                errors.push(
                    key.clone(),
                    "unknown top-level key (expected only \"name\" and \"config\")",
                );
            }
            config
        }
        None => Json::Object(top),
    };
    let mut flat = RawConfig::new();
    match body {
        Json::Object(map) => flatten("", &Json::Object(map), &mut flat, &mut errors),
        _ => errors.push("config", "must be an object of configuration keys"),
    }
    // Kafka Connect allows the name inside config too; they must agree.
    let inner_name = flat.remove("name");
    let name = match (name_value, inner_name) {
        (Some(Json::String(n)), Some(inner)) if n != inner => {
            errors.push(
                "config.name",
                format!("{inner:?} differs from the connector name {n:?}"),
            );
            n
        }
        (Some(Json::String(n)), _) => n,
        (Some(_), _) => {
            errors.push("name", "must be a string");
            String::new()
        }
        (None, Some(inner)) => inner,
        (None, None) => fallback_name.unwrap_or_default().to_owned(),
    };
    if let Err(reason) = validate_connector_name(&name) {
        errors.push("name", reason);
    }
    if !flat.contains_key("connector.class") {
        errors.push("connector.class", "is required");
    }
    errors.into_result(ConnectorConfig { name, config: flat })
}

fn flatten(prefix: &str, value: &Json, out: &mut RawConfig, errors: &mut ConfigErrors) {
    let key = prefix.to_owned();
    match value {
        Json::Object(map) => {
            for (k, v) in map {
                let full = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&full, v, out, errors);
            }
        }
        Json::String(s) => insert(out, errors, key, s.clone()),
        Json::Number(n) => insert(out, errors, key, n.to_string()),
        Json::Bool(b) => insert(out, errors, key, b.to_string()),
        Json::Array(items) => {
            let mut parts = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Json::String(s) => parts.push(s.clone()),
                    Json::Number(n) => parts.push(n.to_string()),
                    Json::Bool(b) => parts.push(b.to_string()),
                    _ => errors.push(
                        key.clone(),
                        "list items must be strings, numbers or booleans",
                    ),
                }
            }
            insert(out, errors, key, parts.join(","));
        }
        Json::Null => errors.push(key, "must not be null (remove the key to use the default)"),
    }
}

fn insert(out: &mut RawConfig, errors: &mut ConfigErrors, key: String, value: String) {
    match out.entry(key) {
        std::collections::btree_map::Entry::Occupied(e) => {
            errors.push(e.key().clone(), "given twice (once flat, once nested)");
        }
        std::collections::btree_map::Entry::Vacant(e) => {
            e.insert(value);
        }
    }
}

/// Resolves `${VAR}`, `${env:VAR}`, `${file:/path}` (whole file, trimmed) and
/// `${file:/path:key}` (a key of a Java properties file, as Kafka's FileConfigProvider) in
/// every value. Done when a task starts, so secrets are never persisted resolved.
pub fn interpolate(raw: &RawConfig) -> Result<RawConfig, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let mut out = RawConfig::new();
    for (key, value) in raw {
        match interpolate_value(value) {
            Ok(v) => {
                out.insert(key.clone(), v);
            }
            Err(message) => errors.push(key.clone(), message),
        }
    }
    errors.into_result(out)
}

fn interpolate_value(value: &str) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unterminated ${...} placeholder (missing '}')".to_owned())?;
        let reference = &after[..end];
        match resolve(reference) {
            Ok(v) => out.push_str(&v),
            // Kafka Connect substitutes only `${provider:...}`: a bare `${name}` that is not an
            // environment variable is left as written (Debezium's outbox router uses
            // `${routedByValue}` in `route.topic.replacement`).
            Err(_) if !reference.contains(':') && std::env::var_os(reference).is_none() => {
                out.push_str(&rest[start..start + 2 + end + 1]);
            }
            Err(e) => return Err(e),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn resolve(reference: &str) -> Result<String, String> {
    if let Some(spec) = reference.strip_prefix("file:") {
        // `/path` or `/path:key`; a path never contains ':' in the second form's key part.
        let (path, key) = match spec.rsplit_once(':') {
            Some((p, k)) if !k.contains('/') && !p.is_empty() => (p, Some(k)),
            _ => (spec, None),
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| {
                let cwd = std::env::current_dir()
                    .map_or_else(|_| "?".to_owned(), |d| d.display().to_string());
                format!("cannot read {path} for ${{file:...}} (relative paths are from the working directory {cwd}): {e}")
            })?;
        return match key {
            None => Ok(text.trim_end_matches(['\n', '\r']).to_owned()),
            Some(key) => text
                .lines()
                .map(str::trim)
                .filter(|l| !l.starts_with('#') && !l.starts_with('!'))
                .find_map(|l| {
                    let (k, v) = l.split_once(['=', ':'])?;
                    (k.trim() == key).then(|| v.trim().to_owned())
                })
                .ok_or_else(|| format!("key {key:?} not found in {path}")),
        };
    }
    let var = reference.strip_prefix("env:").unwrap_or(reference);
    std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn kafka_connect_json_shape() {
        let text = r#"{"name":"mysql-source","config":{"connector.class":"io.debezium.connector.mysql.MySqlConnector","database.port":3306,"database.include.list":"ecommerce"}}"#;
        let c = parse_connector_document(text, Path::new("x.json")).expect("valid");
        assert_eq!(c.name, "mysql-source");
        assert_eq!(
            c.config.get("database.port").map(String::as_str),
            Some("3306")
        );
    }

    #[test]
    fn nested_yaml_flattens_to_dotted_keys() {
        let text = "name: orders\nconfig:\n  connector.class: datagen\n  database:\n    hostname: db\n    port: 3306\n  table.include.list: [a.b, c.d]\n";
        let c = parse_connector_document(text, Path::new("orders.yaml")).expect("valid");
        assert_eq!(
            c.config.get("database.hostname").map(String::as_str),
            Some("db")
        );
        assert_eq!(
            c.config.get("database.port").map(String::as_str),
            Some("3306")
        );
        assert_eq!(
            c.config.get("table.include.list").map(String::as_str),
            Some("a.b,c.d")
        );
    }

    #[test]
    fn flat_document_takes_name_from_file() {
        let c = parse_connector_document("connector.class: datagen\n", Path::new("dir/gen.yaml"))
            .expect("valid");
        assert_eq!(c.name, "gen");
    }

    #[test]
    fn bad_documents_name_the_field() {
        let err = parse_connector_document("name: x/y\nconfig:\n  a: null\n", Path::new("x.yaml"))
            .expect_err("bad");
        let text = err.to_string();
        assert!(text.contains("name: may contain only"), "{text}");
        assert!(text.contains("a: must not be null"), "{text}");
        assert!(text.contains("connector.class: is required"), "{text}");
        let err = parse_connector_document("name: [", Path::new("x.yaml")).expect_err("bad yaml");
        assert!(
            err.to_string().starts_with("<document>: invalid YAML"),
            "{err}"
        );
        let err = parse_connector_document("{\"name\":1}", Path::new("x.json")).expect_err("bad");
        assert!(err.to_string().contains("name: must be a string"), "{err}");
    }

    #[test]
    fn interpolation_from_env_and_files() {
        let mut secret = tempfile::NamedTempFile::new().expect("tmp");
        writeln!(secret, "# creds\nuser=alice\npassword = s3cret").expect("write");
        let path = secret.path().display().to_string();
        let raw: RawConfig = [
            ("a".to_string(), format!("${{file:{path}:password}}")),
            ("b".to_string(), "pre-${env:PATH}-post".to_string()),
            (
                "c".to_string(),
                "${env:TRIBUTARY_TEST_SURELY_UNSET}".to_string(),
            ),
            // Not a provider reference: left as written (Debezium's `${routedByValue}`).
            ("d".to_string(), "${routedByValue}.events".to_string()),
        ]
        .into_iter()
        .collect();
        let err = interpolate(&raw).expect_err("c is unset");
        assert_eq!(err.0.len(), 1);
        assert_eq!(err.0[0].field, "c");
        assert!(
            err.0[0].message.contains("TRIBUTARY_TEST_SURELY_UNSET"),
            "{err}"
        );
        let ok: RawConfig = raw.into_iter().filter(|(k, _)| k != "c").collect();
        let out = interpolate(&ok).expect("resolved");
        assert_eq!(out["a"], "s3cret");
        assert_eq!(out["d"], "${routedByValue}.events");
        assert!(out["b"].starts_with("pre-/") && out["b"].ends_with("-post"));
    }
}
