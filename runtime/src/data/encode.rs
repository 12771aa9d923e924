//! [`ConnectRecord`]s to topic bytes with a connector's converters: what the source runner
//! uses after transforms changed a record (the untransformed path writes straight from the
//! typed event, see [`crate::converter`]).
//!
//! - Avro: the record's Connect schema rendered by [`avro::to_avro`], resolved in the
//!   registry exactly as [`crate::converter::avro_converter`] does (same subject strategies,
//!   auto-register / use-latest, records projected onto the latest schema when it is another
//!   one), so a transform that adds or drops a field registers a new version of the subject.
//!   Ids are cached per topic and schema text (latest ones for `latest.cache.ttl.sec`).
//! - JSON: Kafka's `JsonConverter` (`{"schema", "payload"}` with `schemas.enable=true`).
//! - String: text as is, anything else as JSON.
//!
//! Records without a schema (schema-less JSON) are written by Avro as a JSON string
//! (`io.debezium.data.Json`), like schema-less source records.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde_json::{Map, Value as J};
use tracing::info;

use super::{ConnectRecord, ConnectSchema, ConnectType, Data, SchemaAndValue};
use crate::config::{RawConfig, Secret};
use crate::converter::avro::{avro_full_name, to_avro, write_bytes, write_long, write_str};
use crate::converter::avro_converter::{
    AvroSettings, CachedWriter, JSON_STRING_SCHEMA, SubjectStrategy,
};
use crate::converter::registry_client::{
    Projections, RegistryClient, RegistryTarget, Resolve, Writer,
};
use crate::converter::{AVRO_CONVERTER, STRING_CONVERTER, latest_ttl};
use crate::error::ConnectorError;
use crate::record::TopicRecord;

#[derive(Debug)]
enum Side {
    Json { schemas: bool },
    String,
    Avro(AvroSide),
}

#[derive(Debug)]
struct AvroSide {
    settings: AvroSettings,
    is_key: bool,
    /// (topic, Avro schema text) -> what to write with, until when.
    writers: Mutex<HashMap<(Arc<str>, String), CachedWriter>>,
    projections: Projections,
}

/// Encodes transformed records with a connector's `key.converter*` / `value.converter*`.
#[derive(Debug)]
pub struct DataEncoder {
    key: Side,
    value: Side,
}

fn flag(config: &RawConfig, key: &str, default: bool) -> bool {
    config
        .get(key)
        .map_or(default, |v| v.trim().eq_ignore_ascii_case("true"))
}

/// One side's converter. Settings were already checked by
/// [`RecordEncoder::from_config`](crate::converter::RecordEncoder::from_config); anything
/// unreadable here falls back to the defaults.
fn side(config: &RawConfig, side: &str) -> Side {
    let setting = |name: &str| format!("{side}.converter.{name}");
    match config.get(&format!("{side}.converter")).map(String::as_str) {
        Some(STRING_CONVERTER) => Side::String,
        Some(AVRO_CONVERTER) => {
            let url = config
                .get(&setting("schema.registry.url"))
                .and_then(|u| u.split(',').map(str::trim).find(|u| !u.is_empty()));
            let auth =
                match config
                    .get(&setting("basic.auth.credentials.source"))
                    .map(String::as_str)
                {
                    None | Some("USER_INFO") => config
                        .get(&setting("basic.auth.user.info"))
                        .and_then(|info| {
                            let (user, password) = info.split_once(':').unwrap_or((info, ""));
                            (!user.is_empty()).then(|| (user.to_owned(), Secret::new(password)))
                        }),
                    _ => None,
                };
            let target = url
                .and_then(|u| RegistryClient::new(u, auth).ok())
                .map_or(RegistryTarget::Embedded, |c| {
                    RegistryTarget::Http(Arc::new(c))
                });
            let resolve = match (
                flag(config, &setting("use.latest.version"), false),
                flag(config, &setting("auto.register.schemas"), true),
            ) {
                (true, _) => Resolve::Latest,
                (false, true) => Resolve::Register,
                (false, false) => Resolve::Lookup,
            };
            let strategy = config
                .get(&setting(&format!("{side}.subject.name.strategy")))
                .and_then(|s| SubjectStrategy::parse(s))
                .unwrap_or(SubjectStrategy::TopicName);
            // Already checked by `RecordEncoder::from_config`.
            let latest_ttl = latest_ttl(
                config,
                &setting("latest.cache.ttl.sec"),
                &mut crate::config::ConfigErrors::default(),
            );
            Side::Avro(AvroSide {
                settings: AvroSettings {
                    target,
                    resolve,
                    strategy,
                    latest_ttl,
                },
                is_key: side == "key",
                writers: Mutex::new(HashMap::new()),
                projections: Projections::default(),
            })
        }
        _ => Side::Json {
            schemas: flag(config, &setting("schemas.enable"), false),
        },
    }
}

impl DataEncoder {
    pub fn from_config(converters: &RawConfig) -> Self {
        DataEncoder {
            key: side(converters, "key"),
            value: side(converters, "value"),
        }
    }

    /// Encodes a record's key, value (`None` stays a tombstone) and headers.
    pub async fn encode(
        &self,
        record: &ConnectRecord,
        buf: &mut Vec<u8>,
    ) -> Result<TopicRecord, ConnectorError> {
        let key = match &record.key {
            Some(k) => Some(self.key.encode(&record.topic, k, buf).await?),
            None => None,
        };
        let value = match &record.value {
            Some(v) => Some(self.value.encode(&record.topic, v, buf).await?),
            None => None,
        };
        Ok(TopicRecord {
            key,
            value,
            headers: record.headers.clone(),
            timestamp_ms: record.timestamp_ms,
        })
    }
}

fn encode_error(topic: &str, e: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::definite(format!(
        "cannot encode a transformed record for topic {topic}: {e}"
    ))
}

impl Side {
    async fn encode(
        &self,
        topic: &Arc<str>,
        side: &SchemaAndValue,
        buf: &mut Vec<u8>,
    ) -> Result<Bytes, ConnectorError> {
        let schema = side.schema.as_deref();
        match self {
            Side::Json { schemas } => {
                let payload = to_json(schema, &side.value).map_err(|e| encode_error(topic, e))?;
                let doc = match schemas {
                    true => serde_json::json!({
                        "schema": schema.map(ConnectSchema::to_connect_json),
                        "payload": payload,
                    }),
                    false => payload,
                };
                Ok(Bytes::from(doc.to_string()))
            }
            Side::String => match &side.value {
                Data::String(s) => Ok(Bytes::from(s.clone())),
                other => Ok(Bytes::from(
                    to_json(schema, other)
                        .map_err(|e| encode_error(topic, e))?
                        .to_string(),
                )),
            },
            Side::Avro(avro) => {
                buf.clear();
                match schema {
                    Some(schema) => {
                        let text = to_avro(schema).to_string();
                        let record_name = match &schema.ty {
                            ConnectType::Struct(_) => {
                                avro_full_name(schema.name.as_deref().unwrap_or("ConnectDefault"))
                            }
                            _ => schema
                                .name
                                .clone()
                                .unwrap_or_else(|| "ConnectDefault".into()),
                        };
                        let writer = avro.writer(topic, &record_name, text).await?;
                        writer.write(buf, |out| {
                            write_avro(schema, &side.value, out).map_err(|e| encode_error(topic, e))
                        })?;
                    }
                    None => {
                        let writer = avro
                            .writer(
                                topic,
                                "io.debezium.data.Json",
                                JSON_STRING_SCHEMA.to_owned(),
                            )
                            .await?;
                        let json =
                            to_json(None, &side.value).map_err(|e| encode_error(topic, e))?;
                        writer.write(buf, |out| {
                            write_str(out, &json.to_string());
                            Ok(())
                        })?;
                    }
                }
                Ok(Bytes::copy_from_slice(buf))
            }
        }
    }
}

impl AvroSide {
    async fn writer(
        &self,
        topic: &Arc<str>,
        record: &str,
        text: String,
    ) -> Result<Writer, ConnectorError> {
        let cache_key = (topic.clone(), text);
        if let Some(writer) = self
            .writers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&cache_key)
            .and_then(CachedWriter::fresh)
        {
            return Ok(writer.clone());
        }
        let subject = self.settings.strategy.subject(topic, self.is_key, record);
        let what = format!(
            "{} schema of transformed records for {topic}",
            if self.is_key { "key" } else { "value" }
        );
        let expires = self.settings.expiry();
        let writer = self
            .settings
            .target
            .resolve(
                &subject,
                &cache_key.1,
                self.settings.resolve,
                &what,
                &self.projections,
            )
            .await?;
        info!(subject = %subject, schema_id = writer.id, projected = writer.is_projected(), "avro schema of transformed records resolved");
        self.writers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                cache_key,
                CachedWriter {
                    writer: writer.clone(),
                    expires,
                },
            );
        Ok(writer)
    }
}

/// Writes `data` as Avro binary under the Avro rendering of `schema` ([`avro::to_avro`]).
pub fn write_avro(schema: &ConnectSchema, data: &Data, buf: &mut Vec<u8>) -> Result<(), String> {
    if schema.optional {
        // Optional schemas render as ["null", T], or [T, "null"] when there is a default.
        let (value_branch, null_branch) = if schema.default.is_some() {
            (0, 1)
        } else {
            (1, 0)
        };
        if data.is_null() {
            write_long(buf, null_branch);
            return Ok(());
        }
        write_long(buf, value_branch);
    }
    let what = || {
        schema
            .name
            .clone()
            .unwrap_or_else(|| format!("{:?}", schema.ty))
    };
    let mismatch = || format!("a {} value does not fit schema {}", kind_of(data), what());
    match (&schema.ty, data) {
        (_, Data::Null) => return Err(format!("null in required schema {}", what())),
        (ConnectType::Boolean, Data::Boolean(b)) => buf.push(u8::from(*b)),
        (ConnectType::Int8 | ConnectType::Int16 | ConnectType::Int32 | ConnectType::Int64, d) => {
            write_long(buf, d.as_i64().ok_or_else(mismatch)?)
        }
        (ConnectType::Float32, Data::Float32(f)) => buf.extend_from_slice(&f.to_le_bytes()),
        (ConnectType::Float32, Data::Float64(f)) => {
            buf.extend_from_slice(&(*f as f32).to_le_bytes())
        }
        (ConnectType::Float64, Data::Float64(f)) => buf.extend_from_slice(&f.to_le_bytes()),
        (ConnectType::Float64, Data::Float32(f)) => {
            buf.extend_from_slice(&f64::from(*f).to_le_bytes())
        }
        (ConnectType::String, Data::String(s)) => write_str(buf, s),
        (ConnectType::Bytes, Data::Bytes(b)) => write_bytes(buf, b),
        (ConnectType::Array(items), Data::Array(values)) => {
            if !values.is_empty() {
                write_long(buf, values.len() as i64);
                for v in values {
                    write_avro(items, v, buf)?;
                }
            }
            buf.push(0);
        }
        (ConnectType::Map(keys, values), Data::Map(entries)) => {
            let string_keys = keys.ty == ConnectType::String && !keys.optional;
            if !entries.is_empty() {
                write_long(buf, entries.len() as i64);
                for (k, v) in entries {
                    if string_keys {
                        write_str(buf, k.as_str().ok_or_else(mismatch)?);
                    } else {
                        write_avro(keys, k, buf)?;
                    }
                    write_avro(values, v, buf)?;
                }
            }
            buf.push(0);
        }
        (ConnectType::Struct(fields), Data::Struct(values)) => {
            if fields.len() != values.len() {
                return Err(format!(
                    "struct {} has {} fields but {} values",
                    what(),
                    fields.len(),
                    values.len()
                ));
            }
            for (f, v) in fields.iter().zip(values) {
                write_avro(&f.schema, v, buf).map_err(|e| format!("field {}: {e}", f.name))?;
            }
        }
        _ => return Err(mismatch()),
    }
    Ok(())
}

fn kind_of(data: &Data) -> &'static str {
    match data {
        Data::Null => "null",
        Data::Boolean(_) => "boolean",
        Data::Int8(_) | Data::Int16(_) | Data::Int32(_) | Data::Int64(_) => "integer",
        Data::Float32(_) | Data::Float64(_) => "float",
        Data::String(_) => "string",
        Data::Bytes(_) => "bytes",
        Data::Array(_) => "array",
        Data::Map(_) => "map",
        Data::Struct(_) => "struct",
    }
}

/// Kafka's `JsonConverter` payload: structs as objects (field names from the schema), bytes
/// (and `Decimal`s) as base64, maps with text keys as objects, other maps as `[k, v]` pairs.
pub fn to_json(schema: Option<&ConnectSchema>, data: &Data) -> Result<J, String> {
    Ok(match data {
        Data::Null => J::Null,
        Data::Boolean(b) => J::from(*b),
        Data::Int8(n) => J::from(*n),
        Data::Int16(n) => J::from(*n),
        Data::Int32(n) => J::from(*n),
        Data::Int64(n) => J::from(*n),
        Data::Float32(f) => serde_json::Number::from_f64(f64::from(*f)).map_or(J::Null, J::Number),
        Data::Float64(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Data::String(s) => J::from(s.as_str()),
        Data::Bytes(b) => J::from(BASE64.encode(b)),
        Data::Array(items) => {
            let item_schema = match schema.map(|s| &s.ty) {
                Some(ConnectType::Array(i)) => Some(&**i),
                _ => None,
            };
            J::Array(
                items
                    .iter()
                    .map(|i| to_json(item_schema, i))
                    .collect::<Result<_, _>>()?,
            )
        }
        Data::Map(entries) => {
            let (ks, vs) = match schema.map(|s| &s.ty) {
                Some(ConnectType::Map(k, v)) => (Some(&**k), Some(&**v)),
                _ => (None, None),
            };
            if entries.iter().all(|(k, _)| k.as_str().is_some()) {
                let mut m = Map::new();
                for (k, v) in entries {
                    m.insert(k.as_str().unwrap_or_default().to_owned(), to_json(vs, v)?);
                }
                J::Object(m)
            } else {
                J::Array(
                    entries
                        .iter()
                        .map(|(k, v)| Ok(J::Array(vec![to_json(ks, k)?, to_json(vs, v)?])))
                        .collect::<Result<_, String>>()?,
                )
            }
        }
        Data::Struct(values) => {
            let Some(ConnectType::Struct(fields)) = schema.map(|s| &s.ty) else {
                return Err("a struct value has no struct schema".into());
            };
            let mut m = Map::new();
            for (f, v) in fields.iter().zip(values) {
                m.insert(f.name.clone(), to_json(Some(&f.schema), v)?);
            }
            J::Object(m)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ConnectField;

    #[test]
    fn avro_binary_follows_the_rendered_schema() {
        let schema = ConnectSchema {
            name: Some("t.Value".into()),
            ..ConnectSchema::new(ConnectType::Struct(vec![
                ConnectField {
                    name: "id".into(),
                    schema: ConnectSchema::new(ConnectType::Int32),
                },
                ConnectField {
                    name: "s".into(),
                    schema: ConnectSchema::new(ConnectType::String).optional(true),
                },
            ]))
        }
        .optional(true);
        let mut buf = Vec::new();
        write_avro(
            &schema,
            &Data::Struct(vec![Data::Int32(-3), Data::String("hé".into())]),
            &mut buf,
        )
        .expect("encode");
        // union branch 1 (the record), id=-3 -> 5, s: branch 1, len 3.
        assert_eq!(buf, [2, 5, 2, 6, b'h', 0xc3, 0xa9]);
        buf.clear();
        write_avro(&schema, &Data::Null, &mut buf).expect("null");
        assert_eq!(buf, [0]);
        let required = ConnectSchema::new(ConnectType::Int64);
        assert!(write_avro(&required, &Data::Null, &mut buf).is_err());
        assert!(write_avro(&required, &Data::String("x".into()), &mut buf).is_err());
    }

    #[test]
    fn json_payloads_use_field_names() {
        let schema = ConnectSchema::new(ConnectType::Struct(vec![
            ConnectField {
                name: "id".into(),
                schema: ConnectSchema::new(ConnectType::Int64),
            },
            ConnectField {
                name: "b".into(),
                schema: ConnectSchema::new(ConnectType::Bytes),
            },
        ]));
        let json = to_json(
            Some(&schema),
            &Data::Struct(vec![
                Data::Int64(1),
                Data::Bytes(Bytes::from_static(b"\x01\x02")),
            ]),
        )
        .expect("json");
        assert_eq!(json, serde_json::json!({"id": 1, "b": "AQI="}));
    }
}
