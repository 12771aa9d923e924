//! Converters turn source records into topic records (key and value bytes).
//!
//! Kafka Connect names: `key.converter` / `value.converter`. This runtime implements
//! `org.apache.kafka.connect.json.JsonConverter` with `schemas.enable=false` now; Avro with a
//! schema registry is issue 6 and plugs in behind [`RecordEncoder`].

pub mod json;

use bytes::Bytes;

use crate::config::{ConfigErrors, RawConfig};
use crate::error::ConnectorError;
use crate::record::{Payload, SourceRecord, TopicRecord};
use json::{EnvelopeJson, RowJson, ValueModes};

pub const JSON_CONVERTER: &str = "org.apache.kafka.connect.json.JsonConverter";

/// Encodes source records into topic records.
#[derive(Debug, Clone)]
pub struct RecordEncoder {
    modes: ValueModes,
}

impl RecordEncoder {
    /// Builds the encoder from a connector's `key.converter*` / `value.converter*` settings.
    pub fn from_config(converters: &RawConfig, modes: ValueModes) -> Result<Self, ConfigErrors> {
        let mut errors = ConfigErrors::default();
        for side in ["key", "value"] {
            let class_key = format!("{side}.converter");
            if let Some(class) = converters.get(&class_key)
                && class != JSON_CONVERTER
            {
                errors.push(
                    class_key.clone(),
                    format!("{class} is not supported yet; use {JSON_CONVERTER} (Avro arrives with the schema registry)"),
                );
            }
            let schemas_key = format!("{side}.converter.schemas.enable");
            if converters
                .get(&schemas_key)
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
            {
                errors.push(
                    schemas_key,
                    "schemas.enable=true is not supported yet; set it to false",
                );
            }
        }
        errors.into_result(RecordEncoder { modes })
    }

    pub fn modes(&self) -> &ValueModes {
        &self.modes
    }

    /// Encodes one record. `timestamp_ms` becomes the record timestamp.
    pub fn encode(
        &self,
        record: &SourceRecord,
        buf: &mut Vec<u8>,
    ) -> Result<TopicRecord, ConnectorError> {
        let enc_err = |e: serde_json::Error| {
            ConnectorError::definite(format!("cannot encode record for {}", record.topic))
                .with_source(e)
        };
        match &record.payload {
            Payload::Change(event) => {
                let key = match event.table.key.is_empty() {
                    true => None,
                    false => {
                        let row = event.after.as_ref().or(event.before.as_ref());
                        match row {
                            Some(row) => {
                                buf.clear();
                                serde_json::to_writer(
                                    &mut *buf,
                                    &RowJson {
                                        table: &event.table,
                                        row,
                                        modes: &self.modes,
                                        columns: Some(&event.table.key),
                                    },
                                )
                                .map_err(enc_err)?;
                                Some(Bytes::copy_from_slice(buf))
                            }
                            None => None,
                        }
                    }
                };
                buf.clear();
                serde_json::to_writer(
                    &mut *buf,
                    &EnvelopeJson {
                        event,
                        modes: &self.modes,
                    },
                )
                .map_err(enc_err)?;
                Ok(TopicRecord {
                    key,
                    value: Some(Bytes::copy_from_slice(buf)),
                    headers: event.headers.clone(),
                    timestamp_ms: event.source.ts_ms,
                })
            }
            Payload::Tombstone { table, row } => {
                buf.clear();
                serde_json::to_writer(
                    &mut *buf,
                    &RowJson {
                        table,
                        row,
                        modes: &self.modes,
                        columns: Some(&table.key),
                    },
                )
                .map_err(enc_err)?;
                Ok(TopicRecord {
                    key: Some(Bytes::copy_from_slice(buf)),
                    value: None,
                    headers: Vec::new(),
                    timestamp_ms: now_ms(),
                })
            }
            Payload::Json { key, value } => Ok(TopicRecord {
                key: key.as_ref().map(|k| Bytes::from(k.to_string())),
                value: Some(Bytes::from(value.to_string())),
                headers: Vec::new(),
                timestamp_ms: now_ms(),
            }),
        }
    }
}

/// Wall-clock time in ms since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
