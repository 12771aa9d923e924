//! Confluent's `AvroConverter`: derives the Avro schema of a table version, resolves its id
//! in the schema registry under the configured subject, caches the id per table version and
//! writes records in the Confluent wire format.
//!
//! The cache is keyed by topic and table id and holds the table version (and for values the
//! `source` shape) it was built for; a new table version re-derives the schema and
//! registers it, so column additions, drops and widenings become new subject versions. A
//! registry rejection is a definite error naming the subject and the registry's reasons.
//!
//! # `use.latest.version`
//!
//! Records are written with the subject's latest schema and its id. The latest schema is
//! fetched when a table version is first encoded (so again after a schema change or a task
//! restart) and then kept, like Confluent's serializer with its default
//! `latest.cache.ttl.sec=-1`; with `latest.cache.ttl.sec=N` the cached codec expires after N
//! seconds and the next record fetches the latest schema again (registering a new version
//! takes effect then, without a restart). When the latest schema is the derived one, records
//! are written as derived (no cost per record); otherwise they are encoded as derived and
//! projected onto it by a plan compiled once per (derived schema, latest id)
//! ([`super::projection`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::info;

use super::avro::{self, RowPlan, SourceShape, avro_full_name, to_avro};
use super::connect::{self, ConnectSchema};
use super::json::ValueModes;
use super::registry_client::{Projections, RegistryTarget, Resolve, Writer};
use crate::error::ConnectorError;
use crate::model::{ChangeEvent, Row, SchemaRef, SourceInfo, TableId};

/// `key.subject.name.strategy` / `value.subject.name.strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectStrategy {
    /// `<topic>-key` / `<topic>-value` (Confluent's default).
    TopicName,
    /// The record's full name.
    RecordName,
    /// `<topic>-<record full name>`.
    TopicRecordName,
}

impl SubjectStrategy {
    /// Parses a class name (`io.confluent.kafka.serializers.subject.TopicNameStrategy`) or
    /// its simple name.
    pub fn parse(text: &str) -> Option<Self> {
        match text.rsplit('.').next().unwrap_or(text) {
            "TopicNameStrategy" => Some(SubjectStrategy::TopicName),
            "RecordNameStrategy" => Some(SubjectStrategy::RecordName),
            "TopicRecordNameStrategy" => Some(SubjectStrategy::TopicRecordName),
            _ => None,
        }
    }

    pub fn subject(self, topic: &str, is_key: bool, record: &str) -> String {
        match self {
            SubjectStrategy::TopicName => {
                format!("{topic}-{}", if is_key { "key" } else { "value" })
            }
            SubjectStrategy::RecordName => record.to_owned(),
            SubjectStrategy::TopicRecordName => format!("{topic}-{record}"),
        }
    }
}

/// Settings of one side (key or value) of an Avro converter.
#[derive(Debug, Clone)]
pub struct AvroSettings {
    pub target: RegistryTarget,
    pub resolve: Resolve,
    pub strategy: SubjectStrategy,
    /// `latest.cache.ttl.sec`: how long a latest schema ([`Resolve::Latest`]) is used before
    /// it is fetched again; `None` (`-1`, the default): until the table version changes.
    pub latest_ttl: Option<Duration>,
}

impl AvroSettings {
    /// When what is resolved now must be resolved again: only latest schemas with a TTL.
    pub fn expiry(&self) -> Option<Instant> {
        match self.resolve {
            Resolve::Latest => self.latest_ttl.map(|ttl| Instant::now() + ttl),
            Resolve::Register | Resolve::Lookup => None,
        }
    }
}

/// Whether something resolved with [`AvroSettings::expiry`] `expires` is still to be used.
fn fresh(expires: Option<Instant>) -> bool {
    expires.is_none_or(|at| Instant::now() < at)
}

/// A resolved [`Writer`] and when to resolve it again ([`AvroSettings::expiry`]).
#[derive(Debug, Clone)]
pub struct CachedWriter {
    pub writer: Writer,
    pub expires: Option<Instant>,
}

impl CachedWriter {
    /// The writer, while it is still to be used.
    pub fn fresh(&self) -> Option<&Writer> {
        fresh(self.expires).then_some(&self.writer)
    }
}

#[derive(Debug)]
struct TableCodec {
    version: u32,
    shape: Option<SourceShape>,
    writer: Writer,
    expires: Option<Instant>,
    plan: RowPlan,
}

/// Looked up twice per record (key and value side): a fast, non-cryptographic hasher (the
/// keys are topic and table names, not attacker-chosen at this point).
type FastState = foldhash::fast::RandomState;
type TableCache = HashMap<Arc<str>, HashMap<TableId, Arc<TableCodec>, FastState>, FastState>;

/// One side of an Avro converter with its schema-id cache.
#[derive(Debug)]
pub struct AvroConverter {
    settings: AvroSettings,
    is_key: bool,
    tables: Mutex<TableCache>,
    json_writers: Mutex<HashMap<Arc<str>, CachedWriter>>,
    projections: Projections,
}

/// The Avro schema of schema-less records (schema changes, heartbeats): a JSON string.
pub const JSON_STRING_SCHEMA: &str =
    r#"{"type":"string","connect.version":1,"connect.name":"io.debezium.data.Json"}"#;

impl AvroConverter {
    pub fn new(settings: AvroSettings, is_key: bool) -> Self {
        AvroConverter {
            settings,
            is_key,
            tables: Mutex::new(HashMap::default()),
            json_writers: Mutex::new(HashMap::new()),
            projections: Projections::default(),
        }
    }

    /// The registry this side resolves schemas in.
    pub fn target(&self) -> &RegistryTarget {
        &self.settings.target
    }

    fn cached(
        &self,
        topic: &str,
        table: &SchemaRef,
        source: Option<&SourceInfo>,
    ) -> Option<Arc<TableCodec>> {
        let tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        let codec = tables.get(topic)?.get(&table.id)?;
        let fits = codec.version == table.version
            && match (&codec.shape, source) {
                (Some(shape), Some(src)) => shape.matches(src),
                (None, None) => true,
                _ => false,
            }
            && fresh(codec.expires);
        fits.then(|| codec.clone())
    }

    async fn prepare(
        &self,
        topic: &Arc<str>,
        table: &SchemaRef,
        source: Option<&SourceInfo>,
        modes: &ValueModes,
    ) -> Result<Arc<TableCodec>, ConnectorError> {
        let (schema, plan, what): (ConnectSchema, RowPlan, &str) = match source {
            // The value side without a source block: a flat row (`Payload::Row`).
            None if !self.is_key => (
                connect::flat_row_schema(table, modes),
                RowPlan::new(table, None, modes),
                "value schema",
            ),
            None => (
                connect::key_schema(topic, table, modes).ok_or_else(|| {
                    ConnectorError::definite(format!("table {} has no key to encode", table.id))
                })?,
                RowPlan::new(table, Some(&table.key), modes),
                "key schema",
            ),
            Some(src) => (
                connect::envelope_schema(topic, table, src, modes),
                RowPlan::new(table, None, modes),
                "value schema",
            ),
        };
        let text = to_avro(&schema).to_string();
        let record = avro_full_name(schema.name.as_deref().unwrap_or_default());
        let subject = self.settings.strategy.subject(topic, self.is_key, &record);
        let what = format!("{what} of table {} version {}", table.id, table.version);
        let expires = self.settings.expiry();
        let writer = self
            .settings
            .target
            .resolve(
                &subject,
                &text,
                self.settings.resolve,
                &what,
                &self.projections,
            )
            .await?;
        info!(subject = %subject, schema_id = writer.id, projected = writer.is_projected(), table = %table.id, table_version = table.version, "avro schema resolved");
        let codec = Arc::new(TableCodec {
            version: table.version,
            shape: source.map(SourceShape::of),
            writer,
            expires,
            plan,
        });
        self.tables
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(topic.clone())
            .or_default()
            .insert(table.id.clone(), codec.clone());
        Ok(codec)
    }

    /// Writes the key record (the table's key columns of `row`) into `buf`.
    pub async fn encode_key(
        &self,
        topic: &Arc<str>,
        table: &SchemaRef,
        row: &Row,
        modes: &ValueModes,
        buf: &mut Vec<u8>,
    ) -> Result<(), ConnectorError> {
        let codec = match self.cached(topic, table, None) {
            Some(c) => c,
            None => self.prepare(topic, table, None, modes).await?,
        };
        codec.writer.write(buf, |out| {
            avro::encode_row(&codec.plan, row, modes, out)
                .map_err(|e| encode_error(topic, &table.id, e))
        })
    }

    /// Writes a flat row (every column of `row`, no envelope) as the value into `buf`.
    pub async fn encode_flat_row(
        &self,
        topic: &Arc<str>,
        table: &SchemaRef,
        row: &Row,
        modes: &ValueModes,
        buf: &mut Vec<u8>,
    ) -> Result<(), ConnectorError> {
        let codec = match self.cached(topic, table, None) {
            Some(c) => c,
            None => self.prepare(topic, table, None, modes).await?,
        };
        codec.writer.write(buf, |out| {
            avro::encode_row(&codec.plan, row, modes, out)
                .map_err(|e| encode_error(topic, &table.id, e))
        })
    }

    /// Writes Debezium's envelope for `event` into `buf`.
    pub async fn encode_envelope(
        &self,
        topic: &Arc<str>,
        event: &ChangeEvent,
        modes: &ValueModes,
        buf: &mut Vec<u8>,
    ) -> Result<(), ConnectorError> {
        let codec = match self.cached(topic, &event.table, Some(&event.source)) {
            Some(c) => c,
            None => {
                self.prepare(topic, &event.table, Some(&event.source), modes)
                    .await?
            }
        };
        codec.writer.write(buf, |out| {
            avro::encode_envelope(&codec.plan, codec.shape.as_ref(), event, modes, out)
                .map_err(|e| encode_error(topic, &event.table.id, e))
        })
    }

    /// Writes a schema-less JSON document as an Avro string (`io.debezium.data.Json`).
    pub async fn encode_json(
        &self,
        topic: &Arc<str>,
        value: &serde_json::Value,
        buf: &mut Vec<u8>,
    ) -> Result<(), ConnectorError> {
        let cached = self
            .json_writers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(topic)
            .and_then(CachedWriter::fresh)
            .cloned();
        let writer = match cached {
            Some(writer) => writer,
            None => {
                let subject =
                    self.settings
                        .strategy
                        .subject(topic, self.is_key, "io.debezium.data.Json");
                let expires = self.settings.expiry();
                let writer = self
                    .settings
                    .target
                    .resolve(
                        &subject,
                        JSON_STRING_SCHEMA,
                        self.settings.resolve,
                        "JSON string schema",
                        &self.projections,
                    )
                    .await?;
                self.json_writers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(
                        topic.clone(),
                        CachedWriter {
                            writer: writer.clone(),
                            expires,
                        },
                    );
                writer
            }
        };
        writer.write(buf, |out| {
            avro::write_str(out, &value.to_string());
            Ok(())
        })
    }
}

fn encode_error(topic: &str, table: &TableId, e: avro::EncodeError) -> ConnectorError {
    ConnectorError::definite(format!(
        "cannot encode a record of table {table} for topic {topic} as Avro: {e}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_strategies() {
        let t = "srv.shop.orders";
        let r = "srv.shop.orders.Envelope";
        assert_eq!(
            SubjectStrategy::TopicName.subject(t, false, r),
            "srv.shop.orders-value"
        );
        assert_eq!(
            SubjectStrategy::TopicName.subject(t, true, r),
            "srv.shop.orders-key"
        );
        assert_eq!(SubjectStrategy::RecordName.subject(t, false, r), r);
        assert_eq!(
            SubjectStrategy::TopicRecordName.subject(t, false, r),
            "srv.shop.orders-srv.shop.orders.Envelope"
        );
        assert_eq!(
            SubjectStrategy::parse("io.confluent.kafka.serializers.subject.RecordNameStrategy"),
            Some(SubjectStrategy::RecordName)
        );
        assert_eq!(SubjectStrategy::parse("Nope"), None);
    }
}
