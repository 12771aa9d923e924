//! Debezium's `ExtractNewRecordState` (event flattening): replaces the change-event envelope
//! with the row state after the change.
//!
//! `delete.tombstone.handling.mode`:
//!
//! | mode | delete event | tombstone |
//! |---|---|---|
//! | `drop` | dropped | dropped |
//! | `tombstone` (default) | dropped | kept |
//! | `rewrite` | `before` with `__deleted=true` | dropped |
//! | `rewrite-with-tombstone` | `before` with `__deleted=true` | kept |
//! | `delete-to-tombstone` | becomes a tombstone | dropped |
//!
//! The older `delete.handling.mode` (drop, none, rewrite) + `drop.tombstones` map onto these.
//! Records that are not change events (heartbeats, schema changes) pass unchanged.

use bytes::Bytes;
use tracing::debug;

use super::config::Props;
use super::structs::{Fields, to_text};
use super::{Transform, fail};
use crate::data::{ConnectRecord, ConnectSchema, ConnectType, Data, SchemaAndValue};
use crate::error::ConnectorError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Drop,
    Tombstone,
    Rewrite,
    RewriteWithTombstone,
    DeleteToTombstone,
}

/// `io.debezium.transforms.ExtractNewRecordState`.
#[derive(Debug)]
pub struct ExtractNewRecordState {
    mode: Mode,
    add_fields: Vec<FieldRef>,
    add_fields_prefix: String,
    add_headers: Vec<FieldRef>,
    add_headers_prefix: String,
    route_by_field: Option<String>,
}

/// A field of the envelope to copy: `op`, `ts_ms`, `table` (a `source` field),
/// `source.ts_ms`, `transaction.id`.
#[derive(Debug, Clone)]
struct FieldRef {
    path: Vec<String>,
    /// Output name without the prefix: `op`, `source_ts_ms`; `name:alias` renames.
    name: String,
}

impl FieldRef {
    fn parse(spec: &str) -> FieldRef {
        let (path, alias) = match spec.split_once(':') {
            Some((p, a)) => (p.trim(), Some(a.trim())),
            None => (spec, None),
        };
        FieldRef {
            path: path.split('.').map(str::to_owned).collect(),
            name: alias.map_or_else(|| path.replace('.', "_"), str::to_owned),
        }
    }

    /// The referenced field of the envelope: top-level first, then `source`.
    fn resolve<'a>(&self, envelope: &'a Fields) -> Option<(Option<&'a ConnectSchema>, &'a Data)> {
        let (first, rest) = self.path.split_first()?;
        let (mut schema, mut value) = match envelope.get(first) {
            Some(item) => (item.schema.as_ref(), &item.value),
            None if rest.is_empty() => {
                let source = envelope.get("source")?;
                return crate::data::field_of(source.schema.as_ref(), &source.value, first);
            }
            None => return None,
        };
        for part in rest {
            let (s, v) = crate::data::field_of(schema, value, part)?;
            schema = s;
            value = v;
        }
        Some((schema, value))
    }
}

impl ExtractNewRecordState {
    pub fn new(p: &Props<'_>) -> Self {
        let legacy_delete = p.get("delete.handling.mode");
        let legacy_tombstones = p.get("drop.tombstones");
        let mode = match p.get("delete.tombstone.handling.mode") {
            Some(_) => match p.one_of(
                "delete.tombstone.handling.mode",
                &[
                    "drop",
                    "tombstone",
                    "rewrite",
                    "rewrite-with-tombstone",
                    "delete-to-tombstone",
                ],
                "tombstone",
            ) {
                "drop" => Mode::Drop,
                "rewrite" => Mode::Rewrite,
                "rewrite-with-tombstone" => Mode::RewriteWithTombstone,
                "delete-to-tombstone" => Mode::DeleteToTombstone,
                _ => Mode::Tombstone,
            },
            None if legacy_delete.is_some() || legacy_tombstones.is_some() => {
                let drop_tombstones = p.bool("drop.tombstones", true);
                match (
                    p.one_of("delete.handling.mode", &["drop", "none", "rewrite"], "drop"),
                    drop_tombstones,
                ) {
                    ("drop", true) => Mode::Drop,
                    ("drop", false) => Mode::Tombstone,
                    ("none", _) => Mode::DeleteToTombstone,
                    (_, true) => Mode::Rewrite,
                    (_, false) => Mode::RewriteWithTombstone,
                }
            }
            None => Mode::Tombstone,
        };
        let refs = |name: &str| {
            p.list(name)
                .iter()
                .map(|s| FieldRef::parse(s))
                .collect::<Vec<_>>()
        };
        ExtractNewRecordState {
            mode,
            add_fields: refs("add.fields"),
            add_fields_prefix: p.string("add.fields.prefix", "__"),
            add_headers: refs("add.headers"),
            add_headers_prefix: p.string("add.headers.prefix", "__"),
            route_by_field: p.get("route.by.field").map(str::to_owned),
        }
    }
}

impl Transform for ExtractNewRecordState {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, ConnectorError> {
        let Some(value) = &record.value else {
            return Ok(match self.mode {
                Mode::Tombstone | Mode::RewriteWithTombstone => Some(record),
                _ => None,
            });
        };
        let Some(envelope) = Fields::of_side(value) else {
            return Ok(Some(record));
        };
        let op = match envelope.get("op").and_then(|i| i.value.as_str()) {
            Some(op) if envelope.contains("after") || envelope.contains("before") => op.to_owned(),
            _ => return Ok(Some(record)), // not a change event
        };
        let deleted = op == "d";
        let rewrite = matches!(self.mode, Mode::Rewrite | Mode::RewriteWithTombstone);
        if op == "t" {
            debug!(topic = %record.topic, "truncate event dropped by ExtractNewRecordState");
            return Ok(None);
        }
        if deleted {
            match self.mode {
                Mode::Drop | Mode::Tombstone => return Ok(None),
                Mode::DeleteToTombstone => {
                    record.value = None;
                    return Ok(Some(record));
                }
                Mode::Rewrite | Mode::RewriteWithTombstone => {}
            }
        }
        let image_name = if deleted { "before" } else { "after" };
        let image = envelope
            .get(image_name)
            .filter(|i| !i.value.is_null())
            .ok_or_else(|| {
                fail(format!(
                    "{op:?} event of {} has no {image_name} image",
                    record.topic
                ))
            })?;
        let mut row = Fields::of(image.schema.as_ref(), &image.value).ok_or_else(|| {
            fail(format!(
                "the {image_name} image of a {} event is not a struct",
                record.topic
            ))
        })?;
        if let Some(field) = &self.route_by_field {
            let routed = row
                .get(field)
                .filter(|i| !i.value.is_null())
                .ok_or_else(|| {
                    fail(format!(
                        "route.by.field: the row has no value in field {field:?}"
                    ))
                })?;
            record.topic = to_text(&routed.value).into();
        }
        for r in &self.add_fields {
            let (schema, value) = r
                .resolve(&envelope)
                .map(|(s, v)| (s.cloned(), v.clone()))
                .unwrap_or((None, Data::Null));
            let schema = schema
                .unwrap_or_else(|| ConnectSchema::new(ConnectType::String))
                .optional(true);
            row.set(
                &format!("{}{}", self.add_fields_prefix, r.name),
                Some(schema),
                value,
            );
        }
        if rewrite {
            row.set(
                "__deleted",
                Some(ConnectSchema::new(ConnectType::String).optional(true)),
                Data::String(deleted.to_string()),
            );
        }
        for r in &self.add_headers {
            let text = match r.resolve(&envelope) {
                Some((_, v)) if !v.is_null() => to_text(v),
                _ => continue,
            };
            record.headers.push((
                format!("{}{}", self.add_headers_prefix, r.name),
                Bytes::from(text),
            ));
        }
        let (schema, value) = row.into_parts();
        record.value = Some(SchemaAndValue {
            schema: schema.map(std::sync::Arc::new),
            value,
        });
        Ok(Some(record))
    }
}
