//! Postgres logical replication source connector: pgoutput over a small CopyBoth client.
//!
//! Class `io.debezium.connector.postgresql.PostgresConnector`, configured with Debezium's
//! names (see [`config`]). Events are Debezium envelopes on `<topic.prefix>.<schema>.<table>`.
//!
//! ```text
//!   CREATE_REPLICATION_SLOT s LOGICAL pgoutput EXPORT_SNAPSHOT
//!        │ consistent point C, snapshot "0000-1"
//!        ├──────────────► SQL conns (snapshot.max.threads): BEGIN REPEATABLE READ;
//!        │                 SET TRANSACTION SNAPSHOT '0000-1'; read the captured tables
//!        │                 (op r)                                = all commits before C
//!        ▼
//!   START_REPLICATION SLOT s LOGICAL C (proto_version 1, publication_names p)
//!                          stream (op c/u/d/t)                   = all commits after C
//! ```
//!
//! # Snapshot
//!
//! With `snapshot.mode` `initial`, `initial_only` or `when_needed` and no usable offset, the
//! task (re)creates the slot with an exported snapshot and reads every captured table on
//! `snapshot.max.threads` connections (default 1, as in Debezium), each in a REPEATABLE READ
//! transaction that imports the same snapshot ([`snapshot`]); one table is read by one
//! connection, in chunks of `snapshot.fetch.size` rows: by primary-key range
//! (`WHERE (pk) > (last) ORDER BY pk LIMIT n`), or through a server-side cursor for tables
//! without a primary key. The replication connection stays idle until the snapshot is read,
//! then streams from the slot's consistent point: the seam has no gap and no duplicate. The
//! last row of each chunk carries `{"lsn": C, "snapshot": true, "snapshot_progress": {"done":
//! [finished tables], "after": [[table, last key], ..]}}`; the snapshot's last row is marked
//! `snapshot: last` and its offset `last_snapshot_record: true` (a row kept waiting 5 s for
//! the next chunk is released unmarked, so that its progress commits; progress that lists
//! every captured table as done also counts as a finished snapshot). Progress (rows done /
//! estimate from `pg_class.reltuples`) goes to the task's
//! [`ProgressHandle`](tributary_runtime::progress::ProgressHandle). A slot whose confirmed
//! LSN is past the stored offset is not the one the offsets came from (re-created, or moved
//! by another consumer): the task refuses it, or takes a new snapshot with `when_needed`.
//!
//! Crash guarantee: the exported snapshot dies with the connection, so a snapshot that did
//! not finish is finished from the live tables while streaming from the slot's position
//! ([`backfill`]): finished tables and committed chunks are not read again; each remaining
//! chunk is read between two watermarks (`pg_logical_emit_message`) and reconciled with the
//! changes streamed between them, as in DBLog and Debezium's incremental snapshots, so the
//! consumed state still equals the table. Rows of chunks that were emitted but not yet
//! committed at the crash are read again (op `r`, at-least-once). A table without a primary
//! key that was not finished is read again whole. When the offsets carry no progress (the
//! crash came before the first chunk was committed), the slot is gone, or the mode is
//! `initial_only`, a new snapshot is taken on a new slot instead.
//!
//! # Streaming
//!
//! pgoutput protocol version 1: Relation messages build the table schema (re-sent on every
//! session, and after every schema change: a changed column list gives a new schema version),
//! Type messages refresh the enum/domain catalog, Begin/Commit delimit transactions,
//! Insert/Update/Delete/Truncate become `c`/`u`/`d`/`t` events (`t` is skipped by default, as
//! in Debezium's `skipped.operations=t`), logical decoding messages go to
//! `<topic.prefix>.message`. Values arrive as text in the pinned session format
//! (`DateStyle=ISO`, `TimeZone=UTC`, `IntervalStyle=postgres`, `extra_float_digits=3`,
//! `bytea_output=hex`) and are converted by type OID ([`schema`]). Unchanged TOAST values
//! (`u`) become [`Value::Unavailable`](tributary_runtime::model::Value::Unavailable) unless
//! the old tuple (REPLICA IDENTITY FULL) supplies them.
//!
//! # Offsets
//!
//! Source partition `{"server": <topic.prefix>}`. Only the last record of a transaction
//! carries an offset, `{"lsn": <commit end LSN>, "lsn_commit": .., "txId": ..}` with order
//! `[end_lsn, 0, 0]`: the server always re-sends whole transactions, so resuming inside one
//! is impossible. When the runtime calls `commit()` with an offset (its records are durable
//! in the topic log), the standby status update reports that LSN as written/flushed/applied;
//! nothing else ever moves it. A restart sends `START_REPLICATION` at the committed LSN, so at
//! most the transactions after the last acknowledged one are delivered again.
//!
//! Why a keepalive may advance the confirmed LSN: the walsender sends a keepalive carrying its
//! sent position once it has decoded everything up to there. If no transaction is open in our
//! stream at that moment, every change before that position that the publication selects has
//! already reached us; confirming it only tells the server it may skip commits before it
//! (`confirmed_flush_lsn`), while WAL of still-running transactions is kept by the slot's
//! `restart_lsn` (see the PostgreSQL docs, "Logical Decoding Concepts" and
//! `pg_replication_slots`). The task therefore records such positions and, every
//! `heartbeat.interval.ms`, emits a heartbeat record (`__debezium-heartbeat.<prefix>`) carrying
//! that position as its offset; once the record is durable, `commit()` confirms it. So WAL
//! does not pile up while only unpublished tables change. Each heartbeat also runs
//! `heartbeat.action.query` and `pg_logical_emit_message(false, '__tributary_heartbeat', '')`
//! so that this database's WAL moves even when only other databases write.
//!
//! # TLS
//!
//! `database.sslmode` (libpq's modes) applies to both connection kinds, the tokio-postgres SQL
//! connections and the replication connection, through one rustls configuration built when
//! the config is validated (so unreadable or unparsable `database.sslrootcert`,
//! `database.sslcert`, `database.sslkey` files are config errors). See [`tls`].
//!
//! # Errors
//!
//! Network failures are transient (the runtime restarts the task with backoff, which resumes
//! from the committed LSN). Setup problems found by the preflight ([`slot::preflight`]:
//! `wal_level`, REPLICATION role, free slots and WAL senders, publication, REPLICA IDENTITY,
//! slot active elsewhere) are definite and say how to fix them. A missing or invalidated slot
//! with stored offsets is definite unless `snapshot.mode=when_needed`, which takes a new
//! snapshot. A refused TLS handshake (untrusted CA, wrong host name) or a server that will not
//! do what `database.sslmode` asks is definite and names the setting to change. Row values
//! never appear in errors or logs.

pub mod backfill;
pub mod config;
pub mod decode;
pub mod error;
pub mod replication;
pub mod schema;
pub mod slot;
pub mod snapshot;
pub mod source;
pub mod tls;

pub use source::{PostgresConnector, PostgresPlugin};
