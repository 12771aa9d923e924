//! Debezium's outbox `EventRouter`: turns inserts into an outbox table into events on a topic
//! per aggregate type.
//!
//! For each insert (`op` c or r) the row's `payload` column (`table.field.event.payload`)
//! becomes the value, `aggregateid` (`table.field.event.key`) the key, `id`
//! (`table.field.event.id`) the `id` header, and the topic is `route.topic.replacement`
//! applied to `aggregatetype` (`route.by.field`) matched by `route.topic.regex` (default
//! `outbox.event.<aggregatetype>`). Deletes and tombstones are dropped (outbox rows are
//! usually deleted right after insert); updates are dropped with a warning
//! (`table.op.invalid.behavior=warn`) or fail the task (`error`, `fatal`).
//! `table.fields.additional.placement=col:header[:alias],col:envelope[:alias]` copies more
//! columns into headers or next to `payload` in the value.

use std::sync::Arc;

use bytes::Bytes;
use regex::Regex;
use tracing::{debug, warn};

use super::config::{Props, java_replacement};
use super::structs::{Fields, json_to_data, to_text};
use super::{Transform, fail};
use crate::data::{ConnectRecord, ConnectSchema, ConnectType, Data, SchemaAndValue};
use crate::error::ConnectorError;
use crate::model::time::parse_timestamp_tz;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Placement {
    Header,
    Envelope,
}

#[derive(Debug, Clone)]
struct Additional {
    column: String,
    placement: Placement,
    alias: String,
}

#[derive(Debug)]
pub struct EventRouter {
    id: String,
    key: String,
    event_type: String,
    timestamp: Option<String>,
    payload: String,
    route_by: String,
    regex: Option<Regex>,
    replacement: String,
    tombstone_on_empty: bool,
    expand_json: bool,
    additional: Vec<Additional>,
    fail_on_update: bool,
}

impl EventRouter {
    pub fn new(p: &Props<'_>) -> Self {
        let mut additional = Vec::new();
        for spec in p.list("table.fields.additional.placement") {
            let parts: Vec<&str> = spec.split(':').map(str::trim).collect();
            let placement = match parts.get(1).copied() {
                Some("header") => Some(Placement::Header),
                Some("envelope") => Some(Placement::Envelope),
                Some("partition") => {
                    p.error("table.fields.additional.placement", format!("{spec:?}: partition placement is not supported; the partition follows the key"));
                    None
                }
                _ => {
                    p.error(
                        "table.fields.additional.placement",
                        format!("{spec:?} is not column:header|envelope[:alias]"),
                    );
                    None
                }
            };
            if let (Some(placement), Some(column)) =
                (placement, parts.first().filter(|c| !c.is_empty()))
            {
                additional.push(Additional {
                    column: (*column).to_owned(),
                    placement,
                    alias: parts.get(2).map_or(*column, |a| *a).to_owned(),
                });
            }
        }
        let regex_text = p.string("route.topic.regex", "(?<routedByValue>.*)");
        let fail_on_update = p.one_of(
            "table.op.invalid.behavior",
            &["warn", "error", "fatal"],
            "warn",
        ) != "warn";
        EventRouter {
            id: p.string("table.field.event.id", "id"),
            key: p.string("table.field.event.key", "aggregateid"),
            event_type: p.string("table.field.event.type", "type"),
            timestamp: p.get("table.field.event.timestamp").map(str::to_owned),
            payload: p.string("table.field.event.payload", "payload"),
            route_by: p.string("route.by.field", "aggregatetype"),
            regex: p.full_regex("route.topic.regex", &regex_text),
            replacement: java_replacement(
                &p.string("route.topic.replacement", "outbox.event.${routedByValue}"),
            ),
            tombstone_on_empty: p.bool("route.tombstone.on.empty.payload", false),
            expand_json: p.bool("table.expand.json.payload", false),
            additional,
            fail_on_update,
        }
    }

    fn timestamp_ms(&self, row: &Fields) -> Option<i64> {
        let item = row.get(self.timestamp.as_deref()?)?;
        let name = item.schema.as_ref().and_then(|s| s.name.as_deref());
        match (&item.value, name) {
            (Data::String(s), _) => parse_timestamp_tz(s).map(|us| us.div_euclid(1000)),
            (v, Some("io.debezium.time.MicroTimestamp")) => {
                v.as_i64().map(|us| us.div_euclid(1000))
            }
            (v, Some("io.debezium.time.NanoTimestamp")) => {
                v.as_i64().map(|ns| ns.div_euclid(1_000_000))
            }
            (v, _) => v.as_i64(),
        }
    }
}

impl Transform for EventRouter {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, ConnectorError> {
        let Some(value) = &record.value else {
            return Ok(None);
        };
        let Some(envelope) = Fields::of_side(value) else {
            return Ok(Some(record));
        };
        let Some(op) = envelope
            .get("op")
            .and_then(|i| i.value.as_str())
            .map(str::to_owned)
        else {
            return Ok(Some(record));
        };
        match op.as_str() {
            "c" | "r" => {}
            "d" => {
                debug!(topic = %record.topic, "outbox delete ignored");
                return Ok(None);
            }
            other => {
                let message = format!(
                    "outbox table {} got a {other:?} event; only inserts are routed",
                    record.topic
                );
                if self.fail_on_update {
                    return Err(fail(message));
                }
                warn!(topic = %record.topic, op = other, "{message}; ignored");
                return Ok(None);
            }
        }
        let after = envelope
            .get("after")
            .filter(|i| !i.value.is_null())
            .ok_or_else(|| {
                fail(format!(
                    "outbox insert on {} has no after image",
                    record.topic
                ))
            })?;
        let row = Fields::of(after.schema.as_ref(), &after.value)
            .ok_or_else(|| fail("outbox row is not a struct"))?;
        let column = |name: &str| {
            row.get(name)
                .ok_or_else(|| fail(format!("outbox row has no column {name:?}; set the table.field.event.* / route.by.field settings")))
        };
        let routed = to_text(&column(&self.route_by)?.value);
        let topic = match &self.regex {
            Some(re) if re.is_match(&routed) => {
                re.replace(&routed, self.replacement.as_str()).into_owned()
            }
            _ => routed.clone(),
        };
        let key = column(&self.key)?;
        let id = column(&self.id)?;
        let payload = column(&self.payload)?;
        let _ = &self.event_type; // the type column is only copied when placed explicitly
        let mut headers = std::mem::take(&mut record.headers);
        headers.push(("id".into(), Bytes::from(to_text(&id.value))));
        let (payload_schema, payload_value) = match (&payload.value, self.expand_json) {
            (Data::String(text), true) => match serde_json::from_str::<serde_json::Value>(text) {
                Ok(json) => {
                    let (mut schema, data) = json_to_data(&json, &format!("{topic}.Payload"));
                    if schema.name.is_none() && matches!(schema.ty, ConnectType::Struct(_)) {
                        schema.name = Some(format!("{topic}.Payload"));
                    }
                    (Some(schema), data)
                }
                Err(e) => {
                    warn!(topic = %topic, error = %e, "outbox payload is not JSON; kept as text");
                    (payload.schema.clone(), payload.value.clone())
                }
            },
            _ => (payload.schema.clone(), payload.value.clone()),
        };
        let mut envelope_extra = Vec::new();
        for extra in &self.additional {
            let item = column(&extra.column)?;
            match extra.placement {
                Placement::Header => {
                    if !item.value.is_null() {
                        headers.push((extra.alias.clone(), Bytes::from(to_text(&item.value))));
                    }
                }
                Placement::Envelope => envelope_extra.push((
                    extra.alias.clone(),
                    item.schema.clone(),
                    item.value.clone(),
                )),
            }
        }
        let value = if payload_value.is_null() && self.tombstone_on_empty {
            None
        } else if envelope_extra.is_empty() {
            Some(SchemaAndValue {
                schema: value.schema.as_ref().and(payload_schema).map(Arc::new),
                value: payload_value,
            })
        } else {
            let mut out = Fields::empty(Some(format!("{topic}.Value")), value.schema.is_some());
            out.set("payload", payload_schema, payload_value);
            for (name, schema, v) in envelope_extra {
                out.set(&name, schema, v);
            }
            Some(out.into_side())
        };
        if let Some(ts) = self.timestamp_ms(&row) {
            record.timestamp_ms = ts;
        } else if let Some(ts) = envelope.get("ts_ms").and_then(|i| i.value.as_i64()) {
            record.timestamp_ms = ts;
        }
        record.key = Some(SchemaAndValue {
            schema: key.schema.clone().map(|s: ConnectSchema| Arc::new(s)),
            value: key.value.clone(),
        });
        record.value = value;
        record.headers = headers;
        record.topic = topic.into();
        Ok(Some(record))
    }
}
