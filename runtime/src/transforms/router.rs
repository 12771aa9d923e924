//! Topic routing: Kafka's `RegexRouter` and Debezium's `ByLogicalTableRouter`.

use std::sync::Arc;

use regex::Regex;

use super::config::{Props, java_replacement};
use super::structs::Fields;
use super::{Transform, fail};
use crate::data::{ConnectRecord, ConnectSchema, ConnectType, Data, SchemaAndValue};
use crate::error::ConnectorError;

/// `org.apache.kafka.connect.transforms.RegexRouter`: when the whole topic matches `regex`,
/// it becomes `replacement` (`$1` refers to groups).
#[derive(Debug)]
pub struct RegexRouter {
    regex: Option<Regex>,
    replacement: String,
}

impl RegexRouter {
    pub fn new(p: &Props<'_>) -> Self {
        let pattern = p.required("regex");
        let replacement = java_replacement(&p.required("replacement"));
        RegexRouter {
            regex: p.full_regex("regex", &pattern),
            replacement,
        }
    }
}

/// The topic after a full-match replacement, if it matched.
fn reroute(regex: &Regex, replacement: &str, topic: &str) -> Option<String> {
    regex
        .is_match(topic)
        .then(|| regex.replace(topic, replacement).into_owned())
}

impl Transform for RegexRouter {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, ConnectorError> {
        if let Some(re) = &self.regex
            && let Some(topic) = reroute(re, &self.replacement, &record.topic)
        {
            record.topic = topic.into();
        }
        Ok(Some(record))
    }
}

/// `io.debezium.transforms.ByLogicalTableRouter`: routes the records of several physical
/// tables (e.g. shards) to one logical topic. With `key.enforce.uniqueness` (default true)
/// the key gets a field (`key.field.name`, default `__dbz__physicalTableIdentifier`) holding
/// the original topic (or `key.field.regex` / `key.field.replacement` of it), so keys of
/// different shards stay distinct. Record schema names follow the new topic.
#[derive(Debug)]
pub struct ByLogicalTableRouter {
    regex: Option<Regex>,
    replacement: String,
    enforce_uniqueness: bool,
    key_field: String,
    key_field_regex: Option<Regex>,
    key_field_replacement: String,
}

impl ByLogicalTableRouter {
    pub fn new(p: &Props<'_>) -> Self {
        let pattern = p.required("topic.regex");
        let replacement = java_replacement(&p.required("topic.replacement"));
        let key_field_regex = p
            .get("key.field.regex")
            .and_then(|r| p.full_regex("key.field.regex", r));
        let key_field_replacement = java_replacement(&p.string("key.field.replacement", ""));
        if key_field_regex.is_some() && key_field_replacement.is_empty() {
            p.error(
                "key.field.replacement",
                "is required when key.field.regex is set",
            );
        }
        // Accepted for compatibility; they tune Debezium's caches and name adjustment.
        p.get("logical.table.cache.size");
        p.get("schema.name.adjustment.mode");
        ByLogicalTableRouter {
            regex: p.full_regex("topic.regex", &pattern),
            replacement,
            enforce_uniqueness: p.bool("key.enforce.uniqueness", true),
            key_field: p.string("key.field.name", "__dbz__physicalTableIdentifier"),
            key_field_regex,
            key_field_replacement,
        }
    }
}

/// `<old topic>.<suffix>` renamed to `<new topic>.<suffix>`.
fn renamed(schema: &ConnectSchema, new_topic: &str) -> Option<String> {
    let name = schema.name.as_deref()?;
    let suffix = name.rsplit('.').next()?;
    matches!(suffix, "Key" | "Value" | "Envelope").then(|| format!("{new_topic}.{suffix}"))
}

impl Transform for ByLogicalTableRouter {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, ConnectorError> {
        let Some(re) = &self.regex else {
            return Ok(Some(record));
        };
        let Some(topic) = reroute(re, &self.replacement, &record.topic) else {
            return Ok(Some(record));
        };
        let original = record.topic.to_string();
        if let Some(key) = record.key.take() {
            let mut fields = Fields::of_side(&key).ok_or_else(|| {
                fail(format!(
                    "ByLogicalTableRouter: the key of {original} is not a struct"
                ))
            })?;
            if let Some(schema) = key.schema.as_deref() {
                fields.rename_schema(renamed(schema, &topic).or_else(|| schema.name.clone()));
            }
            if self.enforce_uniqueness {
                let id = match &self.key_field_regex {
                    Some(kre) => kre
                        .replace(&original, self.key_field_replacement.as_str())
                        .into_owned(),
                    None => original.clone(),
                };
                fields.set(
                    &self.key_field,
                    Some(ConnectSchema::new(ConnectType::String)),
                    Data::String(id),
                );
            }
            record.key = Some(fields.into_side());
        }
        if let Some(value) = record.value.take() {
            record.value = Some(rename_envelope(value, &topic));
        }
        record.topic = topic.into();
        Ok(Some(record))
    }
}

/// Renames the envelope and its row schemas after the new topic.
fn rename_envelope(value: SchemaAndValue, topic: &str) -> SchemaAndValue {
    let Some(schema) = value.schema.as_deref() else {
        return value;
    };
    let Some(new_name) = renamed(schema, topic) else {
        return value;
    };
    let Some(mut fields) = Fields::of_side(&value) else {
        return value;
    };
    fields.rename_schema(Some(new_name));
    for item in &mut fields.items {
        if (item.name == "before" || item.name == "after")
            && let Some(s) = &mut item.schema
            && let Some(n) = renamed(s, topic)
        {
            s.name = Some(n);
        }
    }
    let out = fields.into_side();
    SchemaAndValue {
        schema: out
            .schema
            .or_else(|| value.schema.clone())
            .map(|s| Arc::new((*s).clone())),
        value: out.value,
    }
}
