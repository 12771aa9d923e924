//! Connector config definitions in the style of Kafka Connect's `ConfigDef`.
//!
//! Kafka Connect configs are flat maps of dotted string keys (`"database.port": "3306"`). A
//! connector declares its fields once (name, type, default, documentation); the same table
//! parses and type-checks a raw config, rejects unknown keys with a did-you-mean, and serves
//! `/connector-plugins/{type}/config`. Every error names the field and the reason.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

/// A raw connector config: flat dotted keys to string values.
pub type RawConfig = BTreeMap<String, String>;

/// The type of a field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FieldType {
    String,
    /// A secret: never printed, redacted in REST responses.
    Password,
    Int {
        min: i64,
        max: i64,
    },
    Bool,
    /// One of a fixed set of values (compared case-insensitively, stored lowercase).
    Enum {
        values: &'static [&'static str],
    },
    /// Comma-separated list.
    List,
}

/// How much a field matters (Kafka Connect's importance, shown by `/config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Importance {
    High,
    Medium,
    Low,
}

/// One declared field.
#[derive(Debug, Clone, Serialize)]
pub struct FieldDef {
    pub name: &'static str,
    #[serde(flatten)]
    pub ty: FieldType,
    pub default: Option<&'static str>,
    pub required: bool,
    pub importance: Importance,
    pub doc: &'static str,
}

/// A field error: the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every error found in a config (all of them, not just the first).
#[derive(Debug, Clone, PartialEq, Eq, Default, thiserror::Error)]
pub struct ConfigErrors(pub Vec<FieldError>);

impl ConfigErrors {
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    pub fn single(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut errors = ConfigErrors::default();
        errors.push(field, message);
        errors
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when no error was recorded.
    pub fn into_result<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A set of declared fields plus key prefixes handled elsewhere.
#[derive(Debug, Clone, Default)]
pub struct ConfigDef {
    fields: Vec<FieldDef>,
    /// Keys with these prefixes are accepted (passed through to a sub-component).
    prefixes: Vec<&'static str>,
    /// Keys accepted and ignored, with the reason logged as a warning.
    ignored: Vec<(&'static str, &'static str)>,
}

impl ConfigDef {
    pub fn new() -> Self {
        Self::default()
    }

    fn add(
        mut self,
        name: &'static str,
        ty: FieldType,
        default: Option<&'static str>,
        required: bool,
        importance: Importance,
        doc: &'static str,
    ) -> Self {
        self.fields.push(FieldDef {
            name,
            ty,
            default,
            required,
            importance,
            doc,
        });
        self
    }

    /// A field that must be present.
    pub fn required(self, name: &'static str, ty: FieldType, doc: &'static str) -> Self {
        self.add(name, ty, None, true, Importance::High, doc)
    }

    /// A field with a default.
    pub fn optional(
        self,
        name: &'static str,
        ty: FieldType,
        default: &'static str,
        doc: &'static str,
    ) -> Self {
        self.add(name, ty, Some(default), false, Importance::Medium, doc)
    }

    /// A field that may be absent and has no default.
    pub fn maybe(self, name: &'static str, ty: FieldType, doc: &'static str) -> Self {
        self.add(name, ty, None, false, Importance::Medium, doc)
    }

    /// Accept any key with this prefix (e.g. `transforms.`).
    pub fn prefix(mut self, prefix: &'static str) -> Self {
        self.prefixes.push(prefix);
        self
    }

    /// Accept a key (or, ending in `.`, a prefix) and ignore it with a warning.
    pub fn ignore(mut self, key: &'static str, reason: &'static str) -> Self {
        self.ignored.push((key, reason));
        self
    }

    /// Adds another definition's fields, prefixes and ignored keys.
    pub fn merge(mut self, other: ConfigDef) -> Self {
        for f in other.fields {
            if !self.fields.iter().any(|x| x.name == f.name) {
                self.fields.push(f);
            }
        }
        self.prefixes.extend(other.prefixes);
        self.ignored.extend(other.ignored);
        self
    }

    pub fn fields(&self) -> &[FieldDef] {
        &self.fields
    }

    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Parses and type-checks `raw`; collects every error.
    pub fn parse(&self, raw: &RawConfig) -> Result<Parsed, ConfigErrors> {
        let mut errors = ConfigErrors::default();
        let mut values = BTreeMap::new();
        let mut warnings = Vec::new();
        for (key, value) in raw {
            if let Some(def) = self.field(key) {
                match check_value(def, value) {
                    Ok(v) => {
                        values.insert(def.name, v);
                    }
                    Err(message) => errors.push(key.clone(), message),
                }
            } else if self.prefixes.iter().any(|p| key.starts_with(p)) {
                // Handled by a sub-component.
            } else if let Some((_, reason)) = self
                .ignored
                .iter()
                .find(|(k, _)| k == key || (k.ends_with('.') && key.starts_with(k)))
            {
                warnings.push(format!("{key}: ignored, {reason}"));
            } else {
                errors.push(key.clone(), unknown_key_message(key, self));
            }
        }
        for def in &self.fields {
            if values.contains_key(def.name) {
                continue;
            }
            match (def.required, def.default) {
                (true, _) => errors.push(def.name, "is required"),
                (false, Some(default)) => match check_value(def, default) {
                    Ok(v) => {
                        values.insert(def.name, v);
                    }
                    Err(message) => errors.push(def.name, format!("bad default: {message}")),
                },
                (false, None) => {}
            }
        }
        errors.into_result(Parsed {
            values,
            prefixed: raw
                .iter()
                .filter(|(k, _)| self.prefixes.iter().any(|p| k.starts_with(p)))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            warnings,
        })
    }
}

fn check_value(def: &FieldDef, value: &str) -> Result<Value, String> {
    let trimmed = value.trim();
    match def.ty {
        FieldType::String => Ok(Value::Str(value.to_owned())),
        FieldType::Password => Ok(Value::Secret(Secret(value.to_owned()))),
        FieldType::Int { min, max } => {
            let n: i64 = trimmed
                .parse()
                .map_err(|_| format!("must be an integer, got {value:?}"))?;
            if n < min || n > max {
                return Err(format!("must be between {min} and {max}, got {n}"));
            }
            Ok(Value::Int(n))
        }
        FieldType::Bool => match trimmed.to_ascii_lowercase().as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("must be true or false, got {value:?}")),
        },
        FieldType::Enum { values } => {
            let lower = trimmed.to_ascii_lowercase();
            if values.iter().any(|v| v.eq_ignore_ascii_case(&lower)) {
                Ok(Value::Str(lower))
            } else {
                let suggestion = did_you_mean(&lower, values.iter().copied())
                    .map(|s| format!(" (did you mean {s:?}?)"))
                    .unwrap_or_default();
                Err(format!(
                    "must be one of {}, got {value:?}{suggestion}",
                    values.join(", ")
                ))
            }
        }
        FieldType::List => Ok(Value::List(
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        )),
    }
}

fn unknown_key_message(key: &str, def: &ConfigDef) -> String {
    let candidates = def.fields.iter().map(|f| f.name);
    match did_you_mean(key, candidates) {
        Some(s) => format!("unknown configuration key (did you mean {s:?}?)"),
        None => "unknown configuration key".to_owned(),
    }
}

/// The closest candidate by edit distance, if close enough to be a likely typo.
pub fn did_you_mean<'a>(input: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (input.len() / 4).max(2);
    candidates
        .map(|c| (levenshtein(input, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A secret value: its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for handing to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Secret(Secret),
    Int(i64),
    Bool(bool),
    List(Vec<String>),
}

/// A type-checked config. Getters are infallible for declared fields with defaults; asking
/// for an undeclared field is a programming error and returns a neutral value.
#[derive(Debug, Clone)]
pub struct Parsed {
    values: BTreeMap<&'static str, Value>,
    prefixed: RawConfig,
    /// Ignored keys, with why.
    pub warnings: Vec<String>,
}

impl Parsed {
    pub fn str(&self, name: &str) -> Option<&str> {
        match self.values.get(name) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    pub fn string(&self, name: &str) -> String {
        self.str(name).unwrap_or_default().to_owned()
    }

    pub fn secret(&self, name: &str) -> Option<Secret> {
        match self.values.get(name) {
            Some(Value::Secret(s)) => Some(s.clone()),
            _ => None,
        }
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        match self.values.get(name) {
            Some(Value::Int(n)) => Some(*n),
            _ => None,
        }
    }

    pub fn bool(&self, name: &str) -> bool {
        matches!(self.values.get(name), Some(Value::Bool(true)))
    }

    pub fn list(&self, name: &str) -> Vec<String> {
        match self.values.get(name) {
            Some(Value::List(l)) => l.clone(),
            _ => Vec::new(),
        }
    }

    pub fn is_set(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// Keys accepted through a prefix, with the prefix stripped.
    pub fn with_prefix(&self, prefix: &str) -> RawConfig {
        self.prefixed
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|s| (s.to_owned(), v.clone())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def() -> ConfigDef {
        ConfigDef::new()
            .required("database.hostname", FieldType::String, "host")
            .optional(
                "database.port",
                FieldType::Int { min: 1, max: 65535 },
                "3306",
                "port",
            )
            .optional(
                "snapshot.mode",
                FieldType::Enum {
                    values: &["initial", "never"],
                },
                "initial",
                "mode",
            )
            .maybe("database.password", FieldType::Password, "password")
            .optional(
                "tombstones.on.delete",
                FieldType::Bool,
                "true",
                "tombstones",
            )
            .prefix("transforms.")
            .ignore(
                "database.history.",
                "schema history is kept with the offsets",
            )
    }

    fn raw(pairs: &[(&str, &str)]) -> RawConfig {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_types_and_defaults() {
        let p = def()
            .parse(&raw(&[
                ("database.hostname", "db"),
                ("database.password", "hunter2"),
                ("snapshot.mode", "NEVER"),
                ("transforms.unwrap.type", "x"),
                ("database.history.kafka.topic", "h"),
            ]))
            .expect("valid");
        assert_eq!(p.str("database.hostname"), Some("db"));
        assert_eq!(p.int("database.port"), Some(3306));
        assert_eq!(p.str("snapshot.mode"), Some("never"));
        assert!(p.bool("tombstones.on.delete"));
        assert_eq!(
            p.secret("database.password").map(|s| s.expose().to_owned()),
            Some("hunter2".into())
        );
        assert_eq!(
            format!("{:?}", p.secret("database.password")),
            "Some([redacted])"
        );
        assert_eq!(p.with_prefix("transforms."), raw(&[("unwrap.type", "x")]));
        assert_eq!(p.warnings.len(), 1);
    }

    #[test]
    fn reports_every_error_with_field_and_reason() {
        let err = def()
            .parse(&raw(&[
                ("database.port", "0"),
                ("snapshot.mode", "intial"),
                ("database.hostnme", "db"),
                ("tombstones.on.delete", "yes"),
            ]))
            .expect_err("invalid");
        let text = err.to_string();
        assert!(
            text.contains("database.port: must be between 1 and 65535, got 0"),
            "{text}"
        );
        assert!(text.contains("snapshot.mode: must be one of initial, never, got \"intial\" (did you mean \"initial\"?)"), "{text}");
        assert!(
            text.contains(
                "database.hostnme: unknown configuration key (did you mean \"database.hostname\"?)"
            ),
            "{text}"
        );
        assert!(
            text.contains("tombstones.on.delete: must be true or false"),
            "{text}"
        );
        assert!(text.contains("database.hostname: is required"), "{text}");
        assert_eq!(err.0.len(), 5);
    }

    #[test]
    fn far_off_keys_get_no_suggestion() {
        let err = def()
            .parse(&raw(&[("database.hostname", "h"), ("zzz", "1")]))
            .expect_err("unknown");
        assert_eq!(err.to_string(), "zzz: unknown configuration key");
    }
}
