//! `datagen`: a deterministic synthetic change-event source.
//!
//! Event `seq` (0, 1, 2, ...) is a pure function of `(seed, seq)`: its table, key, operation
//! and values. Every event carries its `seq` in the row, so a test can prove that nothing was
//! lost. The offset is `{"seq": <last emitted>}`; a restart resumes at the next sequence.
//! Updates and deletes pick keys from the key space without tracking which exist (the data is
//! synthetic); `before` holds the key columns only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;

use crate::config::{ConfigDef, ConfigErrors, FieldType, Parsed};
use crate::connector::{
    Connector, ConnectorKind, Plugin, SourceConnector, SourceTask, SourceTaskContext,
};
use crate::error::ConnectorError;
use crate::model::{
    ChangeEvent, Column, DataType, Decimal, Op, Row, SnapshotMarker, SourceInfo, TableId,
    TableSchema, Value,
};
use crate::progress::ProgressHandle;
use crate::record::{OffsetOrder, Payload, SourceOffset, SourcePartition, SourceRecord};

pub struct DatagenPlugin;

impl Plugin for DatagenPlugin {
    fn class(&self) -> &'static str {
        "io.tributary.connect.DatagenConnector"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["datagen"]
    }

    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Source
    }

    fn config_def(&self) -> ConfigDef {
        ConfigDef::new()
            .optional(
                "topic.prefix",
                FieldType::String,
                "datagen",
                "Topics are <topic.prefix>.<table>.",
            )
            .optional(
                "tables",
                FieldType::List,
                "orders",
                "Table names to generate changes for.",
            )
            .optional(
                "key.space",
                FieldType::Int {
                    min: 1,
                    max: i64::MAX,
                },
                "1000",
                "Number of distinct keys per table.",
            )
            .optional(
                "ops.mix",
                FieldType::String,
                "insert=70,update=20,delete=10",
                "Relative weights of insert, update and delete.",
            )
            .optional(
                "rate",
                FieldType::Int {
                    min: 0,
                    max: i64::MAX,
                },
                "0",
                "Events per second; 0 is as fast as possible.",
            )
            .optional(
                "total",
                FieldType::Int {
                    min: 0,
                    max: i64::MAX,
                },
                "0",
                "Stop after this many events; 0 never stops.",
            )
            .optional(
                "seed",
                FieldType::Int {
                    min: i64::MIN,
                    max: i64::MAX,
                },
                "42",
                "Seed of the deterministic generator.",
            )
            .optional(
                "batch.size",
                FieldType::Int {
                    min: 1,
                    max: 100_000,
                },
                "1024",
                "Events per poll.",
            )
            .optional(
                "tombstones.on.delete",
                FieldType::Bool,
                "false",
                "Emit a tombstone after each delete.",
            )
    }

    fn validate(&self, name: &str, config: &Parsed) -> Result<Connector, ConfigErrors> {
        let mut errors = ConfigErrors::default();
        let mix = match parse_mix(&config.string("ops.mix")) {
            Ok(m) => m,
            Err(e) => {
                errors.push("ops.mix", e);
                [1, 0, 0]
            }
        };
        let tables = config.list("tables");
        if tables.is_empty() {
            errors.push("tables", "must name at least one table");
        }
        let prefix = config.string("topic.prefix");
        for t in &tables {
            if let Err(e) = crate::log::validate_topic_name(&format!("{prefix}.{t}")) {
                errors.push("tables", e.to_string());
            }
        }
        let settings = DatagenSettings {
            name: Arc::from(name),
            prefix: Arc::from(prefix.as_str()),
            tables,
            key_space: config.int("key.space").unwrap_or(1000) as u64,
            mix,
            rate: config.int("rate").unwrap_or(0) as u64,
            total: config.int("total").unwrap_or(0) as u64,
            seed: config.int("seed").unwrap_or(42) as u64,
            batch: config.int("batch.size").unwrap_or(1024) as usize,
            tombstones: config.bool("tombstones.on.delete"),
        };
        errors.into_result(Connector::Source(Arc::new(settings)))
    }
}

fn parse_mix(text: &str) -> Result<[u64; 3], String> {
    let mut mix = [0u64; 3];
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("expected op=weight, got {part:?}"))?;
        let weight: u64 = v
            .trim()
            .parse()
            .map_err(|_| format!("weight of {k} must be a whole number, got {v:?}"))?;
        let slot = match k.trim() {
            "insert" => 0,
            "update" => 1,
            "delete" => 2,
            other => {
                return Err(format!(
                    "unknown operation {other:?}; use insert, update, delete"
                ));
            }
        };
        mix[slot] = weight;
    }
    if mix.iter().sum::<u64>() == 0 {
        return Err("at least one weight must be positive".into());
    }
    Ok(mix)
}

#[derive(Debug, Clone)]
struct DatagenSettings {
    name: Arc<str>,
    prefix: Arc<str>,
    tables: Vec<String>,
    key_space: u64,
    mix: [u64; 3],
    rate: u64,
    total: u64,
    seed: u64,
    batch: usize,
    tombstones: bool,
}

#[async_trait]
impl SourceConnector for DatagenSettings {
    async fn open_task(
        &self,
        ctx: SourceTaskContext,
    ) -> Result<Box<dyn SourceTask>, ConnectorError> {
        let partition = SourcePartition::from_json(&serde_json::json!({ "datagen": &*self.name }));
        let next_seq = ctx
            .offsets
            .iter()
            .find(|o| o.partition == partition)
            .and_then(|o| {
                o.offset
                    .value
                    .get("seq")
                    .and_then(serde_json::Value::as_u64)
            })
            .map_or(0, |s| s + 1);
        let schemas = self
            .tables
            .iter()
            .map(|t| Arc::new(table_schema(&self.prefix, t)))
            .collect();
        let topics = self
            .tables
            .iter()
            .map(|t| Arc::from(format!("{}.{t}", self.prefix)))
            .collect();
        ctx.progress.set_phase("streaming");
        Ok(Box::new(DatagenTask {
            settings: self.clone(),
            partition,
            next_seq,
            schemas,
            topics,
            progress: ctx.progress,
            started: Instant::now(),
            start_seq: next_seq,
        }))
    }
}

fn table_schema(prefix: &str, table: &str) -> TableSchema {
    TableSchema {
        id: TableId::new(prefix, table),
        version: 1,
        columns: vec![
            Column::new("id", DataType::Int64, "bigint").not_null(),
            Column::new("seq", DataType::Int64, "bigint").not_null(),
            Column::new("name", DataType::Text, "varchar(64)"),
            Column::new(
                "amount",
                DataType::Decimal {
                    precision: 12,
                    scale: 2,
                },
                "decimal(12,2)",
            ),
            Column::new(
                "created_at",
                DataType::Timestamp { precision: 6 },
                "datetime(6)",
            ),
            Column::new("note", DataType::Text, "text"),
            Column::new("active", DataType::Bool, "boolean"),
            Column::new("payload", DataType::Json, "json"),
        ],
        key: vec![0],
    }
}

struct DatagenTask {
    settings: DatagenSettings,
    partition: SourcePartition,
    next_seq: u64,
    schemas: Vec<Arc<TableSchema>>,
    topics: Vec<Arc<str>>,
    progress: ProgressHandle,
    started: Instant,
    start_seq: u64,
}

/// SplitMix64: a tiny, well-distributed hash for deterministic generation.
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl DatagenTask {
    fn event(&self, seq: u64, now_ms: i64) -> (Arc<str>, ChangeEvent) {
        let s = &self.settings;
        let h = mix64(s.seed ^ mix64(seq));
        let table = (h % s.tables.len() as u64) as usize;
        let key = (mix64(h) % s.key_space) as i64;
        let total: u64 = s.mix.iter().sum();
        let pick = (h >> 32) % total;
        let op = if pick < s.mix[0] {
            Op::Create
        } else if pick < s.mix[0] + s.mix[1] {
            Op::Update
        } else {
            Op::Delete
        };
        let schema = self.schemas[table].clone();
        let full = Row(vec![
            Value::Int(key),
            Value::Int(seq as i64),
            Value::Text(format!("customer-{}", h % 100_000)),
            Value::Decimal(Decimal::from_i128(i128::from(h % 10_000_000), 2)),
            Value::Timestamp(now_ms * 1000),
            Value::Text(NOTE.to_owned()),
            Value::Bool(h & 1 == 0),
            Value::Json(format!("{{\"seq\":{seq},\"tag\":\"t{}\"}}", h % 16)),
        ]);
        let key_only = Row(vec![
            Value::Int(key),
            Value::Int(seq as i64),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
        ]);
        let (before, after) = match op {
            Op::Create => (None, Some(full)),
            Op::Update => (Some(key_only), Some(full)),
            _ => (Some(key_only), None),
        };
        let event = ChangeEvent {
            op,
            table: schema.clone(),
            before,
            after,
            source: SourceInfo {
                connector: "datagen",
                name: s.name.clone(),
                ts_ms: now_ms,
                snapshot: SnapshotMarker::False,
                db: s.prefix.clone(),
                schema: None,
                table: Some(Arc::from(schema.id.name.as_str())),
                extra: vec![("seq", Value::UInt(seq))],
            },
            transaction: None,
            processed_ts_ms: now_ms,
            headers: vec![("datagen.seq".to_owned(), Bytes::from(seq.to_string()))],
        };
        (self.topics[table].clone(), event)
    }
}

const NOTE: &str = "Synthetic change event from Tributary's datagen connector: a note of about two hundred bytes so that records have a realistic size for benchmarks and tests of the log.";

#[async_trait]
impl SourceTask for DatagenTask {
    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectorError> {
        let s = &self.settings;
        let mut want = s.batch as u64;
        if s.total > 0 {
            want = want.min(s.total.saturating_sub(self.next_seq));
            if want == 0 {
                self.progress.set_phase("done");
                tokio::time::sleep(Duration::from_millis(200)).await;
                return Ok(Vec::new());
            }
        }
        if s.rate > 0 {
            // Emit no faster than `rate`: wait until the schedule allows the next batch.
            let emitted = self.next_seq - self.start_seq;
            let due = Duration::from_secs_f64(emitted as f64 / s.rate as f64);
            let elapsed = self.started.elapsed();
            if due > elapsed {
                tokio::time::sleep((due - elapsed).min(Duration::from_millis(500))).await;
            }
            let allowed = (self.started.elapsed().as_secs_f64() * s.rate as f64) as u64;
            want = want.min(allowed.saturating_sub(emitted).max(1));
        }
        let now_ms = crate::converter::now_ms();
        let mut out = Vec::with_capacity(want as usize * 2);
        for _ in 0..want {
            let seq = self.next_seq;
            self.next_seq += 1;
            let (topic, event) = self.event(seq, now_ms);
            let tombstone = (s.tombstones && event.op == Op::Delete).then(|| Payload::Tombstone {
                table: event.table.clone(),
                row: event.before.clone().unwrap_or_default(),
            });
            let offset = SourceOffset {
                value: serde_json::json!({ "seq": seq }),
                order: OffsetOrder([seq, 0, 0]),
            };
            match tombstone {
                None => out.push(SourceRecord {
                    topic,
                    payload: Payload::Change(Box::new(event)),
                    partition: self.partition.clone(),
                    offset: Some(offset),
                }),
                Some(t) => {
                    out.push(SourceRecord {
                        topic: topic.clone(),
                        payload: Payload::Change(Box::new(event)),
                        partition: self.partition.clone(),
                        offset: None,
                    });
                    out.push(SourceRecord {
                        topic,
                        payload: t,
                        partition: self.partition.clone(),
                        offset: Some(offset),
                    });
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawConfig;
    use crate::registry::Registry;

    fn settings(extra: &[(&str, &str)]) -> Arc<dyn SourceConnector> {
        let mut raw: RawConfig = [("connector.class".to_string(), "datagen".to_string())]
            .into_iter()
            .collect();
        raw.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let validated = Registry::with_builtins()
            .validate(&crate::config::ConnectorConfig {
                name: "gen".into(),
                config: raw,
            })
            .expect("valid");
        match validated.connector {
            Connector::Source(s) => s,
            Connector::Sink(_) => panic!("datagen is a source"),
        }
    }

    async fn open(
        src: &Arc<dyn SourceConnector>,
        offsets: Vec<crate::offsets::StoredOffset>,
    ) -> Box<dyn SourceTask> {
        src.open_task(SourceTaskContext {
            connector: Arc::from("gen"),
            task_id: 0,
            offsets,
            progress: ProgressHandle::new(),
            value_modes: Default::default(),
        })
        .await
        .expect("task")
    }

    fn seqs(records: &[SourceRecord]) -> Vec<u64> {
        records
            .iter()
            .filter_map(|r| r.offset.as_ref().map(|o| o.order.0[0]))
            .collect()
    }

    #[tokio::test]
    async fn deterministic_and_resumable() {
        let src = settings(&[("total", "10"), ("batch.size", "4"), ("tables", "a,b")]);
        let mut task = open(&src, vec![]).await;
        let mut all = Vec::new();
        for _ in 0..3 {
            all.extend(task.poll().await.expect("poll"));
        }
        assert_eq!(seqs(&all), (0..10).collect::<Vec<_>>());
        assert!(task.poll().await.expect("poll").is_empty(), "total reached");

        let resume = crate::offsets::StoredOffset {
            partition: all[5].partition.clone(),
            offset: all[5].offset.clone().expect("offset"),
        };
        let mut task = open(&src, vec![resume]).await;
        let again = task.poll().await.expect("poll");
        assert_eq!(seqs(&again), vec![6, 7, 8, 9]);
        assert_eq!(
            identity(&again[0]),
            identity(&all[6]),
            "same event for the same seq"
        );
    }

    #[test]
    fn bad_mix_is_rejected_with_reason() {
        assert!(
            parse_mix("insert=1,upsert=2")
                .expect_err("upsert is not an operation")
                .contains("unknown operation \"upsert\"")
        );
        assert!(parse_mix("insert=0").is_err());
        assert_eq!(
            parse_mix("insert=70, update=20,delete=10"),
            Ok([70, 20, 10])
        );
    }

    /// Table, op and row values except the generation-time timestamp (column 4).
    fn identity(r: &SourceRecord) -> (String, &'static str, Vec<Value>) {
        let Payload::Change(e) = &r.payload else {
            panic!("change expected")
        };
        let row = e.after.as_ref().or(e.before.as_ref()).expect("row");
        let values = row
            .0
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 4)
            .map(|(_, v)| v.clone())
            .collect();
        (e.table.id.to_string(), e.op.code(), values)
    }
}
