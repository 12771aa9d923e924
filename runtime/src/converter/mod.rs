//! Converters turn source records into topic records (key and value bytes).
//!
//! Kafka Connect names: `key.converter` / `value.converter`, each one of
//! - `org.apache.kafka.connect.json.JsonConverter` ([`json`], and [`json_schema`] with
//!   `schemas.enable=true`),
//! - `io.confluent.connect.avro.AvroConverter` ([`avro_converter`]: Debezium-shaped Avro in
//!   the Confluent wire format, schemas registered in a Confluent Schema Registry, or in the
//!   built-in one ([`crate::schema_registry`]) when no `schema.registry.url` is set; with
//!   `use.latest.version=true` records are projected onto the subject's latest schema,
//!   [`projection`]),
//! - `org.apache.kafka.connect.storage.StringConverter` (the schema-less JSON text).
//!
//! Schemas come from one derivation ([`connect`]) so Avro and JSON agree.

pub mod avro;
pub mod avro_converter;
pub mod connect;
pub mod json;
pub mod json_schema;
pub mod projection;
pub mod registry_client;
pub mod wire;

use std::sync::Arc;

use bytes::Bytes;

use crate::config::{ConfigErrors, RawConfig, Secret};
use crate::error::ConnectorError;
use crate::model::{Row, SchemaRef};
use crate::record::{Payload, SourceRecord, TopicRecord};
use avro_converter::{AvroConverter, AvroSettings, SubjectStrategy};
use json::{EnvelopeJson, RowJson, ValueModes};
use json_schema::WithSchema;
use registry_client::{RegistryClient, RegistryTarget, Resolve};

pub const JSON_CONVERTER: &str = "org.apache.kafka.connect.json.JsonConverter";
pub const AVRO_CONVERTER: &str = "io.confluent.connect.avro.AvroConverter";
pub const STRING_CONVERTER: &str = "org.apache.kafka.connect.storage.StringConverter";

/// One side's converter.
#[derive(Debug, Clone)]
pub(crate) enum Converter {
    Json { schemas: bool },
    String,
    Avro(Arc<AvroConverter>),
}

/// Encodes source records into topic records.
#[derive(Debug, Clone)]
pub struct RecordEncoder {
    modes: ValueModes,
    key: Converter,
    value: Converter,
}

fn bool_setting(config: &RawConfig, key: &str, default: bool, errors: &mut ConfigErrors) -> bool {
    match config.get(key).map(|v| v.trim().to_ascii_lowercase()) {
        None => default,
        Some(v) if v == "true" => true,
        Some(v) if v == "false" => false,
        Some(v) => {
            errors.push(key, format!("must be true or false, got {v:?}"));
            default
        }
    }
}

/// `latest.cache.ttl.sec`: `-1` (the default, Confluent's too) keeps a latest schema until
/// the table version changes or the task restarts; `N > 0` fetches it again after N seconds.
pub(crate) fn latest_ttl(
    config: &RawConfig,
    key: &str,
    errors: &mut ConfigErrors,
) -> Option<std::time::Duration> {
    let text = config.get(key)?.trim();
    match text.parse::<i64>() {
        Ok(-1) => None,
        Ok(n) if n > 0 => Some(std::time::Duration::from_secs(n.unsigned_abs())),
        _ => {
            errors.push(
                key,
                format!("must be -1 (keep the latest schema) or a positive number of seconds, got {text:?}"),
            );
            None
        }
    }
}

pub(crate) fn side_converter(
    config: &RawConfig,
    side: &str,
    errors: &mut ConfigErrors,
) -> Converter {
    let class_key = format!("{side}.converter");
    let setting = |name: &str| format!("{side}.converter.{name}");
    match config
        .get(&class_key)
        .map(String::as_str)
        .unwrap_or(JSON_CONVERTER)
    {
        JSON_CONVERTER => Converter::Json {
            schemas: bool_setting(config, &setting("schemas.enable"), false, errors),
        },
        STRING_CONVERTER => Converter::String,
        AVRO_CONVERTER => {
            let url = config
                .get(&setting("schema.registry.url"))
                .and_then(|u| u.split(',').map(str::trim).find(|u| !u.is_empty()));
            let auth = match config
                .get(&setting("basic.auth.credentials.source"))
                .map(String::as_str)
                .unwrap_or("USER_INFO")
            {
                "USER_INFO" => config
                    .get(&setting("basic.auth.user.info"))
                    .and_then(|info| {
                        let (user, password) = info.split_once(':').unwrap_or((info, ""));
                        (!user.is_empty()).then(|| (user.to_owned(), Secret::new(password)))
                    }),
                "URL" => None, // credentials in the URL: reqwest sends them as basic auth
                other => {
                    errors.push(
                        setting("basic.auth.credentials.source"),
                        format!("must be USER_INFO or URL, got {other:?}"),
                    );
                    None
                }
            };
            let target = match url {
                None => RegistryTarget::Embedded,
                Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                    match RegistryClient::new(u, auth) {
                        Ok(client) => RegistryTarget::Http(Arc::new(client)),
                        Err(e) => {
                            errors.push(setting("schema.registry.url"), e.to_string());
                            RegistryTarget::Embedded
                        }
                    }
                }
                Some(u) => {
                    errors.push(
                        setting("schema.registry.url"),
                        format!("must be an http:// or https:// URL, got {u:?}"),
                    );
                    RegistryTarget::Embedded
                }
            };
            let auto_register =
                bool_setting(config, &setting("auto.register.schemas"), true, errors);
            let use_latest = bool_setting(config, &setting("use.latest.version"), false, errors);
            let resolve = match (use_latest, auto_register) {
                (true, _) => Resolve::Latest,
                (false, true) => Resolve::Register,
                (false, false) => Resolve::Lookup,
            };
            let latest_ttl = latest_ttl(config, &setting("latest.cache.ttl.sec"), errors);
            let strategy_key = setting(&format!("{side}.subject.name.strategy"));
            let strategy = match config.get(&strategy_key) {
                None => SubjectStrategy::TopicName,
                Some(s) => SubjectStrategy::parse(s).unwrap_or_else(|| {
                    errors.push(
                        strategy_key.clone(),
                        format!("unknown subject name strategy {s:?}; use TopicNameStrategy, RecordNameStrategy or TopicRecordNameStrategy"),
                    );
                    SubjectStrategy::TopicName
                }),
            };
            Converter::Avro(Arc::new(AvroConverter::new(
                AvroSettings {
                    target,
                    resolve,
                    strategy,
                    latest_ttl,
                },
                side == "key",
            )))
        }
        other => {
            errors.push(
                class_key,
                format!("unknown converter {other:?}; use {JSON_CONVERTER}, {AVRO_CONVERTER} or {STRING_CONVERTER}"),
            );
            Converter::String
        }
    }
}

fn json_error(topic: &str) -> impl Fn(serde_json::Error) -> ConnectorError + '_ {
    move |e| ConnectorError::definite(format!("cannot encode record for {topic}")).with_source(e)
}

/// Writes `payload` as JSON: wrapped in `{"schema", "payload"}` when the converter has
/// `schemas.enable=true` (`schema` is only derived then).
fn write_json<P: serde::Serialize>(
    buf: &mut Vec<u8>,
    topic: &str,
    schemas: bool,
    schema: impl FnOnce() -> serde_json::Value,
    payload: P,
) -> Result<(), ConnectorError> {
    let written = if schemas {
        serde_json::to_writer(
            &mut *buf,
            &WithSchema {
                schema: &schema(),
                payload,
            },
        )
    } else {
        serde_json::to_writer(&mut *buf, &payload)
    };
    written.map_err(json_error(topic))
}

impl Converter {
    async fn encode_row(
        &self,
        topic: &Arc<str>,
        table: &SchemaRef,
        row: &Row,
        modes: &ValueModes,
        buf: &mut Vec<u8>,
    ) -> Result<Bytes, ConnectorError> {
        let payload = RowJson {
            table,
            row,
            modes,
            columns: Some(&table.key),
        };
        buf.clear();
        match self {
            Converter::Json { schemas } => write_json(
                buf,
                topic,
                *schemas,
                || {
                    connect::key_schema(topic, table, modes)
                        .map(|s| s.to_connect_json())
                        .unwrap_or_default()
                },
                payload,
            )?,
            Converter::String => {
                write_json(buf, topic, false, || serde_json::Value::Null, payload)?
            }
            Converter::Avro(avro) => avro.encode_key(topic, table, row, modes, buf).await?,
        }
        Ok(Bytes::copy_from_slice(buf))
    }

    /// A flat row as the value: Kafka Connect's JDBC source shape (no envelope).
    async fn encode_flat_row(
        &self,
        topic: &Arc<str>,
        table: &SchemaRef,
        row: &Row,
        modes: &ValueModes,
        buf: &mut Vec<u8>,
    ) -> Result<Bytes, ConnectorError> {
        let payload = RowJson {
            table,
            row,
            modes,
            columns: None,
        };
        buf.clear();
        match self {
            Converter::Json { schemas } => write_json(
                buf,
                topic,
                *schemas,
                || connect::flat_row_schema(table, modes).to_connect_json(),
                payload,
            )?,
            Converter::String => {
                write_json(buf, topic, false, || serde_json::Value::Null, payload)?
            }
            Converter::Avro(avro) => avro.encode_flat_row(topic, table, row, modes, buf).await?,
        }
        Ok(Bytes::copy_from_slice(buf))
    }

    async fn encode_envelope(
        &self,
        topic: &Arc<str>,
        event: &crate::model::ChangeEvent,
        modes: &ValueModes,
        buf: &mut Vec<u8>,
    ) -> Result<Bytes, ConnectorError> {
        let payload = EnvelopeJson { event, modes };
        buf.clear();
        match self {
            Converter::Json { schemas } => write_json(
                buf,
                topic,
                *schemas,
                || {
                    connect::envelope_schema(topic, &event.table, &event.source, modes)
                        .to_connect_json()
                },
                payload,
            )?,
            Converter::String => {
                write_json(buf, topic, false, || serde_json::Value::Null, payload)?
            }
            Converter::Avro(avro) => avro.encode_envelope(topic, event, modes, buf).await?,
        }
        Ok(Bytes::copy_from_slice(buf))
    }

    async fn encode_json(
        &self,
        topic: &Arc<str>,
        value: &serde_json::Value,
        buf: &mut Vec<u8>,
    ) -> Result<Bytes, ConnectorError> {
        Ok(match self {
            Converter::Json { schemas: true } => {
                Bytes::from(serde_json::json!({"schema": null, "payload": value}).to_string())
            }
            Converter::Json { schemas: false } => Bytes::from(value.to_string()),
            Converter::String => match value {
                serde_json::Value::String(s) => Bytes::from(s.clone()),
                other => Bytes::from(other.to_string()),
            },
            Converter::Avro(avro) => {
                avro.encode_json(topic, value, buf).await?;
                Bytes::copy_from_slice(buf)
            }
        })
    }
}

impl RecordEncoder {
    /// Builds the encoder from a connector's `key.converter*` / `value.converter*` settings.
    pub fn from_config(converters: &RawConfig, modes: ValueModes) -> Result<Self, ConfigErrors> {
        let mut errors = ConfigErrors::default();
        let key = side_converter(converters, "key", &mut errors);
        let value = side_converter(converters, "value", &mut errors);
        errors.into_result(RecordEncoder { modes, key, value })
    }

    pub fn modes(&self) -> &ValueModes {
        &self.modes
    }

    /// Encodes one record. Async because a new table version may need a schema registered
    /// (once per table version; later records of it hit the cache).
    pub async fn encode(
        &self,
        record: &SourceRecord,
        buf: &mut Vec<u8>,
    ) -> Result<TopicRecord, ConnectorError> {
        let topic = &record.topic;
        match &record.payload {
            Payload::Change(event) => {
                let key = match (
                    event.table.key.is_empty(),
                    event.after.as_ref().or(event.before.as_ref()),
                ) {
                    (false, Some(row)) => Some(
                        self.key
                            .encode_row(topic, &event.table, row, &self.modes, buf)
                            .await?,
                    ),
                    _ => None,
                };
                let value = self
                    .value
                    .encode_envelope(topic, event, &self.modes, buf)
                    .await?;
                Ok(TopicRecord {
                    key,
                    value: Some(value),
                    headers: event.headers.clone(),
                    timestamp_ms: event.source.ts_ms,
                })
            }
            Payload::Tombstone { table, row } => Ok(TopicRecord {
                key: Some(
                    self.key
                        .encode_row(topic, table, row, &self.modes, buf)
                        .await?,
                ),
                value: None,
                headers: Vec::new(),
                timestamp_ms: now_ms(),
            }),
            Payload::Row { table, row } => Ok(TopicRecord {
                key: None,
                value: Some(
                    self.value
                        .encode_flat_row(topic, table, row, &self.modes, buf)
                        .await?,
                ),
                headers: Vec::new(),
                timestamp_ms: now_ms(),
            }),
            Payload::Json { key, value } => {
                let key = match key {
                    Some(k) => Some(self.key.encode_json(topic, k, buf).await?),
                    None => None,
                };
                Ok(TopicRecord {
                    key,
                    value: Some(self.value.encode_json(topic, value, buf).await?),
                    headers: Vec::new(),
                    timestamp_ms: now_ms(),
                })
            }
        }
    }
}

/// Wall-clock time in ms since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{Column, DataType, TableId, TableSchema, Value};
    use crate::record::SourcePartition;
    use crate::schema_registry::{self, SchemaStore};

    fn encoder(pairs: &[(&str, &str)]) -> Result<RecordEncoder, ConfigErrors> {
        let config: RawConfig = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        RecordEncoder::from_config(&config, ValueModes::default())
    }

    fn tombstone() -> SourceRecord {
        let table = Arc::new(TableSchema {
            id: TableId::new("db", "unit_tombstone"),
            version: 1,
            columns: vec![
                Column::new("id", DataType::Int32, "int").not_null(),
                Column::new("v", DataType::Text, "text"),
            ],
            key: vec![0],
        });
        SourceRecord {
            topic: Arc::from("srv.db.unit_tombstone"),
            payload: Payload::Tombstone {
                table,
                row: Row(vec![Value::Int(-2), Value::Null]),
            },
            partition: SourcePartition::from_json(&serde_json::json!({})),
            offset: None,
        }
    }

    #[tokio::test]
    async fn tombstones_keep_the_key_in_every_format() {
        let mut buf = Vec::new();
        let json = encoder(&[]).expect("json");
        let r = json.encode(&tombstone(), &mut buf).await.expect("encode");
        assert_eq!(
            (r.key.as_deref(), r.value),
            (Some(&b"{\"id\":-2}"[..]), None)
        );

        let with_schema = encoder(&[("key.converter.schemas.enable", "true")]).expect("json");
        let r = with_schema
            .encode(&tombstone(), &mut buf)
            .await
            .expect("encode");
        let key: serde_json::Value =
            serde_json::from_slice(r.key.as_deref().expect("key")).expect("json");
        assert_eq!(key["payload"], serde_json::json!({"id": -2}));
        assert_eq!(key["schema"]["name"], "srv.db.unit_tombstone.Key");
        assert_eq!(key["schema"]["fields"][0]["type"], "int32");

        schema_registry::install_embedded(Arc::new(SchemaStore::in_memory()));
        let avro = encoder(&[("key.converter", AVRO_CONVERTER)]).expect("avro");
        let r = avro.encode(&tombstone(), &mut buf).await.expect("encode");
        let key = r.key.expect("key");
        let (id, body) = wire::read_header(&key).expect("framed");
        assert!(id >= 1);
        assert_eq!(body, [3]); // zig-zag -2
        assert_eq!(r.value, None);
    }

    #[tokio::test]
    async fn string_converter_and_schemaless_records() {
        let mut buf = Vec::new();
        let enc = encoder(&[
            ("key.converter", STRING_CONVERTER),
            ("value.converter.schemas.enable", "true"),
        ])
        .expect("config");
        let record = SourceRecord {
            topic: Arc::from("srv"),
            payload: Payload::Json {
                key: Some(serde_json::json!("srv")),
                value: serde_json::json!({"ddl": "CREATE TABLE t (id int)"}),
            },
            partition: SourcePartition::from_json(&serde_json::json!({})),
            offset: None,
        };
        let r = enc.encode(&record, &mut buf).await.expect("encode");
        assert_eq!(r.key.as_deref(), Some(&b"srv"[..]));
        let value: serde_json::Value =
            serde_json::from_slice(r.value.as_deref().expect("value")).expect("json");
        assert_eq!(
            value,
            serde_json::json!({"schema": null, "payload": {"ddl": "CREATE TABLE t (id int)"}})
        );
    }

    #[tokio::test]
    async fn flat_rows_have_no_key_and_the_row_as_value() {
        let table = Arc::new(TableSchema {
            id: TableId::new("db.public", "unit_flat_row"),
            version: 1,
            columns: vec![
                Column::new("id", DataType::Int64, "int8").not_null(),
                Column::new("v", DataType::Text, "text"),
            ],
            key: Vec::new(),
        });
        let record = SourceRecord {
            topic: Arc::from("jdbc-unit_flat_row"),
            payload: Payload::Row {
                table,
                row: Row(vec![Value::Int(-2), Value::Text("x".into())]),
            },
            partition: SourcePartition::from_json(&serde_json::json!({})),
            offset: None,
        };
        let mut buf = Vec::new();
        let enc = encoder(&[("value.converter.schemas.enable", "true")]).expect("json");
        let r = enc.encode(&record, &mut buf).await.expect("encode");
        assert_eq!(r.key, None);
        let value: serde_json::Value =
            serde_json::from_slice(r.value.as_deref().expect("value")).expect("json");
        assert_eq!(value["payload"], serde_json::json!({"id": -2, "v": "x"}));
        assert_eq!(value["schema"]["name"], "unit_flat_row");
        assert_eq!(value["schema"]["fields"][1]["optional"], true);

        schema_registry::install_embedded(Arc::new(SchemaStore::in_memory()));
        let avro = encoder(&[("value.converter", AVRO_CONVERTER)]).expect("avro");
        let r = avro.encode(&record, &mut buf).await.expect("encode");
        assert_eq!(r.key, None);
        let value = r.value.expect("value");
        let (_, body) = wire::read_header(&value).expect("framed");
        // id -2 (zig-zag 3), then the union branch of the optional string and "x".
        assert_eq!(body, [3, 2, 2, b'x']);
    }

    #[tokio::test]
    async fn use_latest_version_writes_with_the_latest_schema() {
        let store = Arc::new(SchemaStore::in_memory());
        schema_registry::install_embedded(store.clone());
        let table = Arc::new(TableSchema {
            id: TableId::new("db", "unit_latest"),
            version: 1,
            columns: vec![
                Column::new("id", DataType::Int32, "int").not_null(),
                Column::new("v", DataType::Text, "text"),
            ],
            key: Vec::new(),
        });
        let record = SourceRecord {
            topic: Arc::from("jdbc-unit_latest"),
            payload: Payload::Row {
                table,
                row: Row(vec![Value::Int(-2), Value::Text("x".into())]),
            },
            partition: SourcePartition::from_json(&serde_json::json!({})),
            offset: None,
        };
        let mut buf = Vec::new();
        let registering = encoder(&[("value.converter", AVRO_CONVERTER)]).expect("avro");
        let derived = registering.encode(&record, &mut buf).await.expect("encode");
        let subject = "jdbc-unit_latest-value";
        let v1 = store.version(subject, "latest").expect("registered");
        // A newer version: `v` dropped, `n` added with a default, `id` widened to long.
        let mut schema: serde_json::Value = serde_json::from_str(&v1.schema).expect("json");
        schema["fields"] = serde_json::json!([
            {"name": "id", "type": "long"},
            {"name": "n", "type": "int", "default": 7},
        ]);
        let v2 = store
            .register(subject, &schema.to_string())
            .expect("compatible");
        let latest = encoder(&[
            ("value.converter", AVRO_CONVERTER),
            ("value.converter.use.latest.version", "true"),
            ("value.converter.auto.register.schemas", "false"),
        ])
        .expect("avro");
        let r = latest.encode(&record, &mut buf).await.expect("encode");
        let value = r.value.expect("value");
        let (id, body) = wire::read_header(&value).expect("framed");
        assert_eq!(id, v2.id);
        assert_eq!(body, [3, 14]); // id -2, n 7
        let reader = crate::data::decode::AvroReader::compile(&v2.schema).expect("schema");
        let mut input = body;
        assert_eq!(
            reader.read(&mut input),
            Ok(crate::data::Data::Struct(vec![
                crate::data::Data::Int64(-2),
                crate::data::Data::Int32(7)
            ]))
        );
        // The derived encoding was another one, under the first id.
        let derived = derived.value.expect("value");
        assert_eq!(wire::read_header(&derived).map(|(id, _)| id), Some(v1.id));
        assert_eq!(store.versions(subject).expect("versions"), [1, 2]);

        let errors = encoder(&[
            ("value.converter", AVRO_CONVERTER),
            ("value.converter.latest.cache.ttl.sec", "0"),
        ])
        .expect_err("0");
        assert_eq!(errors.0[0].field, "value.converter.latest.cache.ttl.sec");
    }

    #[test]
    fn bad_settings_name_the_field() {
        let errors = encoder(&[
            ("value.converter", "io.confluent.connect.avro.AvroConverter"),
            ("value.converter.schema.registry.url", "localhost:8081"),
            ("value.converter.auto.register.schemas", "yes"),
            ("value.converter.value.subject.name.strategy", "Mine"),
            ("key.converter.schemas.enable", "1"),
        ])
        .expect_err("invalid");
        let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "key.converter.schemas.enable",
                "value.converter.schema.registry.url",
                "value.converter.auto.register.schemas",
                "value.converter.value.subject.name.strategy"
            ]
        );
    }
}
