//! The change event: Debezium's envelope semantics as a typed Rust value.

use std::sync::Arc;

use bytes::Bytes;

use super::schema::SchemaRef;
use super::value::{Row, Value};

/// What happened to the row (Debezium's `op`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `c`: insert.
    Create,
    /// `u`: update.
    Update,
    /// `d`: delete.
    Delete,
    /// `r`: row read by a snapshot.
    Read,
    /// `t`: table truncated.
    Truncate,
    /// `m`: logical decoding message (Postgres `pg_logical_emit_message`).
    Message,
}

impl Op {
    pub fn code(self) -> &'static str {
        match self {
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Read => "r",
            Op::Truncate => "t",
            Op::Message => "m",
        }
    }
}

/// Debezium's `source.snapshot` marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMarker {
    /// Streamed change, not part of a snapshot.
    False,
    True,
    First,
    /// The last row of the snapshot.
    Last,
    /// Row read by an incremental snapshot.
    Incremental,
}

impl SnapshotMarker {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotMarker::False => "false",
            SnapshotMarker::True => "true",
            SnapshotMarker::First => "first",
            SnapshotMarker::Last => "last",
            SnapshotMarker::Incremental => "incremental",
        }
    }
}

/// The `source` block: common fields plus the connector's own (file/pos/gtid, lsn/txId, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct SourceInfo {
    /// Connector type name as Debezium writes it: `mysql`, `mariadb`, `postgresql`, `datagen`.
    pub connector: &'static str,
    /// The logical server name (`topic.prefix`).
    pub name: Arc<str>,
    /// When the change was committed in the source, in ms since the epoch.
    pub ts_ms: i64,
    pub snapshot: SnapshotMarker,
    /// MySQL database or Postgres database name.
    pub db: Arc<str>,
    /// Postgres schema; `None` for MySQL.
    pub schema: Option<Arc<str>>,
    pub table: Option<Arc<str>>,
    /// Connector-specific fields in the order Debezium writes them.
    pub extra: Vec<(&'static str, Value)>,
}

/// Debezium's `transaction` block.
#[derive(Debug, Clone, PartialEq)]
pub struct TransactionInfo {
    pub id: Arc<str>,
    /// Position of this event among all events of the transaction, from 1.
    pub total_order: u64,
    /// Position among the events of this table in the transaction, from 1.
    pub data_collection_order: u64,
}

/// A row change (or truncate/message) with everything a converter needs to encode it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    pub op: Op,
    /// Schema of `before`, `after` and the key, at the version in force for this change.
    pub table: SchemaRef,
    pub before: Option<Row>,
    pub after: Option<Row>,
    pub source: SourceInfo,
    pub transaction: Option<TransactionInfo>,
    /// When the connector processed the event, in ms since the epoch (envelope `ts_ms`).
    pub processed_ts_ms: i64,
    /// Extra record headers.
    pub headers: Vec<(String, Bytes)>,
}

impl ChangeEvent {
    /// The key columns' values, taken from `after`, or `before` for deletes.
    /// `None` when the table has no key.
    pub fn key_values(&self) -> Option<Vec<&Value>> {
        if self.table.key.is_empty() {
            return None;
        }
        let row = self.after.as_ref().or(self.before.as_ref())?;
        self.table.key.iter().map(|&i| row.get(i)).collect()
    }
}
