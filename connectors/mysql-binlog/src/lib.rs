//! MySQL/MariaDB binlog source connector: Debezium's MySQL and MariaDB connectors' configs
//! and events, as a task of the Tributary runtime.
//!
//! ```text
//!   snapshot (consistent view at binlog position P)      streaming from P
//!   ─────────────────────────────────────────────────┐   ┌──────────────────────────────
//!   op=r rows, keyset pages, offset = P + cursor      └──▶ op=c/u/d rows, offset = txn
//!   last row: snapshot=last, offset = P                    start + row index
//! ```
//!
//! # Snapshot
//! See [`snapshot`]: `FLUSH TABLES WITH READ LOCK`, `START TRANSACTION WITH CONSISTENT
//! SNAPSHOT`, read `SHOW MASTER STATUS` and `@@gtid_binlog_pos` (MySQL with `gtid_mode=ON`:
//! its `Executed_Gtid_Set`), read schemas, `UNLOCK
//! TABLES`; then each captured table is read in primary-key pages. On MariaDB the position
//! is the snapshot's own (`binlog_snapshot_file`/`binlog_snapshot_position`), exact even with
//! `snapshot.locking.mode=none` (the GTID state is then left out of the offsets, so resumes
//! go by file/position). The stream starts at the
//! position read under the lock, so the seam has no gap and no duplicate. Every record's
//! offset carries the chunk cursor; after a crash the snapshot continues after the last
//! durable row (guarantee documented in [`snapshot`]).
//!
//! # Streaming
//! See [`binlog`]: a replica connection (`COM_REGISTER_SLAVE` + `COM_BINLOG_DUMP`, with
//! `@mariadb_slave_capability=4` on MariaDB so GTID events are real), CRC32 of every event
//! verified, MariaDB GTID/GTID_LIST/BINLOG_CHECKPOINT parsed by hand ([`gtid`]). Table
//! schemas come from each `TABLE_MAP`'s full row metadata ([`schema`]), so an `ALTER TABLE`
//! mid-stream yields the right columns on both sides. Compressed, encrypted and unknown
//! events stop the task with an error; they are never skipped. The reader runs on its own
//! task behind a bounded channel ([`stream`]), so decoding overlaps with the runtime's
//! encoding and appending; batches keep their order and their offsets.
//!
//! # Offsets
//! Partition `{"server": "<topic.prefix>"}`. A streamed row's offset is
//! `{"file", "pos": <start of its transaction>, "row": <captured rows of the transaction up
//! to and including it>, "gtids": <GTID state of completed transactions>}`, ordered by
//! `(file index, pos, row)`; `gtids` is MariaDB's state (`0-1-100,1-2-7`) or MySQL's executed
//! set (`uuid:1-5:7,uuid2:1-3`). A resume restarts at the transaction's first event (by GTID
//! when the state is known: `@slave_connect_state` on MariaDB, `COM_BINLOG_DUMP_GTID` on
//! MySQL with `gtid_mode=ON`; else by file/position) and skips the `row` rows already
//! delivered, so a transaction is never split nor repeated. Heartbeats
//! (`heartbeat.interval.ms`) carry the position after the last complete transaction.
//! Table schema versions are not stored: every resume starts at a transaction start, whose
//! `TABLE_MAP` events re-derive the schema the rows were written with. Version numbers
//! restart at 1 in a new task.
//!
//! With `include.schema.changes` (the default) a second partition, `{"server": "<topic.prefix>",
//! "history": true}`, holds the captured tables' definitions after the last DDL that named
//! one: the `tableChanges` of schema-change events are the table as of their binlog position,
//! also in catch-up and after a restart (see [`history`]).
//!
//! # Errors
//! Connection loss and deadlocks are transient (the runtime restarts the task from the
//! committed offset). Server misconfiguration (preflight), a purged binlog position, a bad
//! checksum and undecodable events are definite: the task fails with a message that says
//! what to change. `snapshot.mode=when_needed` takes a new snapshot instead of failing when
//! the stored binlog file is gone (on MySQL resuming by GTID: when `@@gtid_purged` holds
//! transactions the stored set lacks).

pub mod binlog;
pub mod config;
pub mod decode;
pub mod error;
pub mod gtid;
pub mod history;
pub mod image;
mod rows;
pub mod schema;
pub mod snapshot;
pub mod source;
mod stream;
pub mod tls;

pub use source::{MySqlPlugin, MySqlSource};

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
