//! Records as they travel: from a source task, into a topic, out to a sink task.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::model::{ChangeEvent, Row, SchemaRef};

/// A record as stored in a topic partition: opaque key and value bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRecord {
    pub key: Option<Bytes>,
    /// `None` is a tombstone.
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Bytes)>,
    /// Record timestamp, ms since the epoch.
    pub timestamp_ms: i64,
}

impl TopicRecord {
    /// Approximate bytes this record occupies, for batching and metrics.
    pub fn size(&self) -> usize {
        self.key.as_ref().map_or(0, |k| k.len())
            + self.value.as_ref().map_or(0, |v| v.len())
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
            + 16
    }
}

/// A topic and partition number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TopicPartition {
    pub topic: Arc<str>,
    pub partition: u32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<Arc<str>>, partition: u32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// A record read from a topic, handed to a sink task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkRecord {
    pub topic: Arc<str>,
    pub partition: u32,
    pub offset: u64,
    pub record: TopicRecord,
}

/// Next offsets to consume, per topic partition (Kafka's committed-offset convention).
pub type ConsumerOffsets = BTreeMap<TopicPartition, u64>;

/// A source partition in Kafka Connect's sense: the stream an offset belongs to, e.g.
/// `{"server": "inventory"}` for a MySQL server. A JSON object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourcePartition(pub Arc<str>);

impl SourcePartition {
    /// Builds a partition from a JSON object, canonicalised so equal objects compare equal.
    pub fn from_json(value: &serde_json::Value) -> Self {
        SourcePartition(Arc::from(value.to_string()))
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.0).unwrap_or(serde_json::Value::Null)
    }
}

/// Total order of offsets within one source partition, compared lexicographically:
/// MySQL `(binlog file index, position, row)`, Postgres `(lsn, event in transaction, 0)`,
/// datagen `(sequence, 0, 0)`. The offset store uses it to refuse moving backwards.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct OffsetOrder(pub [u64; 3]);

/// A resumable position in a source partition: the Kafka Connect offset object plus its order.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceOffset {
    /// Kafka Connect offset, e.g. `{"file": "mysql-bin.000003", "pos": 154, "row": 2}`.
    pub value: serde_json::Value,
    pub order: OffsetOrder,
}

/// What a source record carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// A row change, encoded by the connector's converters.
    Change(Box<ChangeEvent>),
    /// A tombstone for a deleted key (Kafka log compaction): key only, null value. `row` is
    /// the deleted row; its key columns make the record key.
    Tombstone { table: SchemaRef, row: Row },
    /// A flat row, as Kafka Connect's JDBC source emits it: no key, the value is the row as a
    /// struct of the table's columns (named after the table), no Debezium envelope.
    Row { table: SchemaRef, row: Row },
    /// An already-shaped JSON record: schema changes, transaction metadata, heartbeats.
    Json {
        key: Option<serde_json::Value>,
        value: serde_json::Value,
    },
}

/// One record produced by a source task.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    pub topic: Arc<str>,
    pub payload: Payload,
    pub partition: SourcePartition,
    /// Present when resuming right after this record is correct. Records without an offset
    /// only move the commit point when a later record with an offset is durable.
    pub offset: Option<SourceOffset>,
}
