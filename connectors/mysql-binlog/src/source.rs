//! The plugin, the preflight and the source task (snapshot, then stream).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mysql_async::Conn;
use mysql_async::prelude::Queryable as _;
use tracing::{info, warn};
use tributary_runtime::config::{ConfigDef, ConfigErrors, Parsed};
use tributary_runtime::connector::{
    Connector, ConnectorKind, Plugin, SourceConnector, SourceTask, SourceTaskContext,
};
use tributary_runtime::converter::json::ValueModes;
use tributary_runtime::error::ConnectorError;
use tributary_runtime::offsets::StoredOffset;
use tributary_runtime::progress::ProgressHandle;
use tributary_runtime::record::{SourcePartition, SourceRecord};

use crate::binlog::{
    BinlogReader, DumpMode, StartPosition, dump_mode, mysql_gtid_mode_on, open_stream,
};
use crate::config::{MARIADB_CLASS, MYSQL_CLASS, MySqlConfig, SnapshotMode, config_def, validate};
use crate::error::MySqlError;
use crate::gtid::{GtidState, MySqlGtidSet, is_mysql_gtid_set};
use crate::history::{self, SchemaHistory, history_partition};
use crate::snapshot::{Cursor, Snapshot, captured_tables, read_position, wire_from_json};
use crate::stream::{StreamPump, Streamer};
use crate::tls::ServerOpts;

/// The MySQL/MariaDB binlog source plugin (both Debezium classes).
pub struct MySqlPlugin;

impl Plugin for MySqlPlugin {
    fn class(&self) -> &'static str {
        MYSQL_CLASS
    }

    fn aliases(&self) -> &'static [&'static str] {
        &[MARIADB_CLASS, "mysql", "mariadb", "MariaDbConnector"]
    }

    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Source
    }

    fn config_def(&self) -> ConfigDef {
        config_def()
    }

    fn validate(&self, name: &str, config: &Parsed) -> Result<Connector, ConfigErrors> {
        let cfg = validate(name, config)?;
        for w in &cfg.warnings {
            warn!(connector = %name, "{w}");
        }
        Ok(Connector::Source(Arc::new(MySqlSource::new(cfg))))
    }
}

/// A validated connector.
pub struct MySqlSource {
    pub cfg: Arc<MySqlConfig>,
    /// How every connection of this connector reaches the server (TLS included).
    server: ServerOpts,
}

impl MySqlSource {
    pub fn new(cfg: MySqlConfig) -> MySqlSource {
        let server = ServerOpts::new(&cfg);
        MySqlSource {
            cfg: Arc::new(cfg),
            server,
        }
    }

    /// Client options for this server (no database selected), with `database.ssl.*`.
    pub fn server(&self) -> &ServerOpts {
        &self.server
    }

    /// A connection as every part of the connector makes it.
    pub async fn connect(&self) -> Result<Conn, MySqlError> {
        self.server.connect().await
    }

    /// The partition of every record: `{"server": "<topic.prefix>"}`.
    pub fn partition(&self) -> SourcePartition {
        SourcePartition::from_json(&serde_json::json!({ "server": &*self.cfg.prefix }))
    }

    /// Every reason the server is not ready, each with its fix.
    pub async fn preflight(&self) -> Result<(), MySqlError> {
        let mut conn = self.connect().await?;
        let version: String = conn
            .query_first("SELECT VERSION()")
            .await
            .map_err(|e| MySqlError::query("SELECT VERSION()", e))?
            .unwrap_or_default();
        let mariadb = version.to_ascii_lowercase().contains("mariadb");
        let vars: Vec<(String, String)> = conn
            .query(
                "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin', 'binlog_format', \
                 'binlog_row_image', 'binlog_row_metadata', 'log_bin_compress', 'binlog_checksum')",
            )
            .await
            .map_err(|e| MySqlError::query("SHOW GLOBAL VARIABLES", e))?;
        let get = |name: &str| {
            vars.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let mut problems = Vec::new();
        let mut expect = |name: &str, want: &str, fix: &str| {
            let got = get(name);
            if !got.as_deref().is_some_and(|g| g.eq_ignore_ascii_case(want)) {
                problems.push(format!(
                    "{name} is {} but must be {want}: {fix}",
                    got.as_deref().unwrap_or("not available on this server")
                ));
            }
        };
        expect(
            "log_bin",
            "ON",
            "start the server with log-bin=mysql-bin in the [mysqld] section and restart it",
        );
        expect(
            "binlog_format",
            "ROW",
            "run SET GLOBAL binlog_format=ROW and set binlog_format=ROW in the server config",
        );
        expect(
            "binlog_row_image",
            "FULL",
            "run SET GLOBAL binlog_row_image=FULL and set it in the server config",
        );
        expect(
            "binlog_row_metadata",
            "FULL",
            "run SET GLOBAL binlog_row_metadata=FULL and set it in the server config \
             (needs MySQL 8.0.1+ or MariaDB 10.5+)",
        );
        if mariadb {
            expect(
                "log_bin_compress",
                "OFF",
                "run SET GLOBAL log_bin_compress=OFF and set it in the server config \
                 (compressed binlog events cannot be decoded)",
            );
        }

        // Privileges.
        let grants: Vec<String> = conn
            .query("SHOW GRANTS FOR CURRENT_USER()")
            .await
            .map_err(|e| MySqlError::query("SHOW GRANTS", e))?;
        let text = grants.join("\n").to_ascii_uppercase();
        let global: Vec<&str> = text.lines().filter(|l| l.contains(" ON *.* ")).collect();
        let has = |privilege: &str| {
            global
                .iter()
                .any(|l| l.contains("ALL PRIVILEGES") || l.contains(privilege))
        };
        let user = &self.cfg.user;
        let mut missing = Vec::new();
        if !has("REPLICATION SLAVE") && !has("REPLICATION REPLICA") {
            missing.push("REPLICATION SLAVE");
        }
        if !has("REPLICATION CLIENT") && !has("BINLOG MONITOR") {
            missing.push("REPLICATION CLIENT");
        }
        if self.cfg.snapshot_mode.reads_rows() {
            if !has("SELECT") && !text.contains("GRANT SELECT") {
                missing.push("SELECT");
            }
            if self.cfg.snapshot_lock && !has("RELOAD") {
                missing.push("RELOAD");
            }
        }
        if !missing.is_empty() {
            problems.push(format!(
                "user {user} lacks {}: run GRANT {} ON *.* TO '{user}'@'%'",
                missing.join(", "),
                missing.join(", ")
            ));
        }

        // Included tables exist.
        let tables = captured_tables(&mut conn, &self.cfg).await?;
        for pattern in self.cfg.filters.table_include_patterns() {
            let found = tables
                .iter()
                .any(|(d, t)| pattern.is_match(&format!("{d}.{t}")));
            if !found {
                let shown = pattern
                    .as_str()
                    .trim_start_matches("^(?:")
                    .trim_end_matches(")$");
                problems.push(format!(
                    "table.include.list entry {shown:?} matches no table the user {user} can see: \
                     check the name (db.table) or GRANT SELECT on it"
                ));
            }
        }
        let _ = conn.disconnect().await;
        if problems.is_empty() {
            Ok(())
        } else {
            Err(MySqlError::Preflight(format!(
                "server {} is not ready for change data capture: {}",
                self.cfg.target(),
                problems.join("; ")
            )))
        }
    }
}

#[async_trait]
impl SourceConnector for MySqlSource {
    async fn check(&self) -> Result<(), ConnectorError> {
        Ok(self.preflight().await?)
    }

    fn value_modes(&self) -> ValueModes {
        self.cfg.value_modes.clone()
    }

    async fn check_offset(
        &self,
        partition: &serde_json::Value,
        offset: &serde_json::Value,
    ) -> Result<(), ConnectorError> {
        Ok(self.check_position(partition, offset).await?)
    }

    async fn open_task(
        &self,
        ctx: SourceTaskContext,
    ) -> Result<Box<dyn SourceTask>, ConnectorError> {
        Ok(Box::new(self.open(ctx).await?))
    }
}

impl MySqlSource {
    /// A position set through the offsets API must name this connector's partition and a
    /// binlog file the server still has, at a position inside it.
    async fn check_position(
        &self,
        partition: &serde_json::Value,
        offset: &serde_json::Value,
    ) -> Result<(), MySqlError> {
        let ours = self.partition();
        if SourcePartition::from_json(partition) == history_partition(&self.cfg.prefix) {
            return Err(MySqlError::Position(
                "this partition holds the connector's schema history and cannot be set by \
                 hand; remove it (offset null) to have the connector read the table \
                 definitions from information_schema when it starts"
                    .into(),
            ));
        }
        if SourcePartition::from_json(partition) != ours {
            return Err(MySqlError::Position(format!(
                "partition {partition} is not this connector's; use {{\"server\": \"{}\"}}",
                self.cfg.prefix
            )));
        }
        let stored = [StoredOffset {
            partition: ours.clone(),
            offset: tributary_runtime::record::SourceOffset {
                value: offset.clone(),
                order: Default::default(),
            },
        }];
        let pos = match parse_offset(&stored, &ours) {
            Ok(Resume::Stream(pos) | Resume::Snapshot(pos, _)) => pos,
            Ok(Resume::Nothing) => return Ok(()),
            Err(e) => {
                return Err(MySqlError::Position(format!(
                    "not a binlog position ({e}); expected {{\"file\": \"mysql-bin.000003\", \"pos\": 4}}"
                )));
            }
        };
        let mut conn = self.connect().await?;
        let logs: Vec<mysql_async::Row> = conn
            .query("SHOW BINARY LOGS")
            .await
            .map_err(|e| MySqlError::query("SHOW BINARY LOGS", e))?;
        let _ = conn.disconnect().await;
        let files: Vec<(String, u64)> = logs
            .into_iter()
            .filter_map(|mut r| Some((r.take::<String, _>(0)?, r.take::<u64, _>(1)?)))
            .collect();
        let Some((_, size)) = files.iter().find(|(f, _)| *f == pos.file) else {
            let range = match (files.first(), files.last()) {
                (Some((a, _)), Some((b, _))) => format!("{a} to {b}"),
                _ => "none".to_owned(),
            };
            return Err(MySqlError::Position(format!(
                "binlog file {} is not on the server (SHOW BINARY LOGS lists {range}); \
                 it was purged or never existed",
                pos.file
            )));
        };
        if pos.pos < 4 || pos.pos > *size {
            return Err(MySqlError::Position(format!(
                "pos {} is outside binlog file {} (4 to {size})",
                pos.pos, pos.file
            )));
        }
        Ok(())
    }
}

/// What the stored offset says.
enum Resume {
    Nothing,
    Snapshot(StartPosition, Cursor),
    Stream(StartPosition),
}

fn parse_offset(
    offsets: &[StoredOffset],
    partition: &SourcePartition,
) -> Result<Resume, MySqlError> {
    let Some(stored) = offsets.iter().find(|o| &o.partition == partition) else {
        return Ok(Resume::Nothing);
    };
    let v = &stored.offset.value;
    let file = v
        .get("file")
        .and_then(|f| f.as_str())
        .ok_or_else(|| MySqlError::BadOffset(format!("no file in {v}")))?
        .to_owned();
    let pos = v
        .get("pos")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| MySqlError::BadOffset(format!("no pos in {v}")))?;
    let row = v
        .get("row")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    // `gtids` is MariaDB's state (`0-1-100,1-2-7`) or MySQL's executed set
    // (`uuid:1-5:7,uuid2:1-3`); the text says which.
    let text = v.get("gtids").and_then(|g| g.as_str()).unwrap_or("");
    let (gtids, mysql_gtids) = if is_mysql_gtid_set(text) {
        let set = MySqlGtidSet::parse(text).map_err(MySqlError::BadOffset)?;
        (GtidState::default(), Some(set))
    } else {
        let state = GtidState::parse(text).map_err(MySqlError::BadOffset)?;
        (state, None)
    };
    let position = StartPosition {
        file,
        pos,
        by_gtid: !gtids.is_empty() || mysql_gtids.as_ref().is_some_and(|s| !s.is_empty()),
        gtids,
        mysql_gtids,
        skip_rows: row,
    };
    if v.get("snapshot").and_then(serde_json::Value::as_bool) == Some(true) {
        let table = v
            .get("snapshot_table")
            .and_then(|t| t.as_str())
            .unwrap_or_default()
            .to_owned();
        let last_key = match v.get("snapshot_key") {
            Some(serde_json::Value::Array(items)) => Some(
                items
                    .iter()
                    .map(wire_from_json)
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| MySqlError::BadOffset(format!("bad snapshot_key in {v}")))?,
            ),
            _ => None,
        };
        return Ok(Resume::Snapshot(position, Cursor { table, last_key }));
    }
    Ok(Resume::Stream(position))
}

enum Phase {
    Snapshot(Box<Snapshot>),
    Streaming(StreamPump),
    /// `initial_only` after the snapshot: nothing more to do.
    Done,
}

/// The running task.
pub struct MySqlTask {
    source: Arc<MySqlConfig>,
    server: ServerOpts,
    partition: SourcePartition,
    mariadb: bool,
    phase: Option<Phase>,
    progress: ProgressHandle,
    /// Schema-change records to send before anything else (seeding the schema history).
    pending: Vec<SourceRecord>,
}

impl MySqlSource {
    async fn open(&self, ctx: SourceTaskContext) -> Result<MySqlTask, MySqlError> {
        let cfg = self.cfg.clone();
        let partition = self.partition();
        let mut conn = self.connect().await?;
        self.server.log_negotiated(&mut conn).await;
        let version: String = conn
            .query_first("SELECT VERSION()")
            .await
            .map_err(|e| MySqlError::query("SELECT VERSION()", e))?
            .unwrap_or_default();
        let mariadb = version.to_ascii_lowercase().contains("mariadb");
        let connector = cfg.flavor.connector_name();
        let mut resume = parse_offset(&ctx.offsets, &partition)?;

        // A stored position that is gone: new snapshot (when_needed) or a clear error.
        // MySQL resuming by GTID: gone when the server purged transactions not in our set.
        let mut purged_gtids = None;
        if let Resume::Stream(pos) = &resume
            && !mariadb
            && let Some(ours) = &pos.mysql_gtids
            && dump_mode(pos, false, true) == DumpMode::MySqlGtid
            && mysql_gtid_mode_on(&mut conn).await?
        {
            let row: Option<mysql_async::Row> = conn
                .query_first("SELECT @@GLOBAL.gtid_purged")
                .await
                .map_err(|e| MySqlError::query("reading @@gtid_purged", e))?;
            let text = row
                .and_then(|mut r| crate::rows::text(&mut r, 0))
                .unwrap_or_default();
            let purged = MySqlGtidSet::parse(&text).map_err(|e| {
                MySqlError::Unsupported(format!("cannot read @@gtid_purged {text:?}: {e}"))
            })?;
            purged_gtids = Some(ours.missing(&purged));
        }
        if let (Resume::Stream(pos), Some(missing)) = (&resume, &purged_gtids)
            && !missing.is_empty()
        {
            if cfg.snapshot_mode == SnapshotMode::WhenNeeded {
                warn!(connector = %cfg.name, missing = %missing, "the server purged GTIDs not read yet; taking a new snapshot (snapshot.mode=when_needed)");
                resume = Resume::Nothing;
            } else {
                return Err(MySqlError::Purged {
                    position: format!("{}:{} (GTID {})", pos.file, pos.pos, pos.gtids_text()),
                    detail: format!(
                        "the server purged transactions {missing} that were not read yet \
                         (they are in @@gtid_purged, not in the stored GTID set)"
                    ),
                });
            }
        }
        if let Resume::Stream(pos) = &resume
            && purged_gtids.is_none()
        {
            let logs: Vec<mysql_async::Row> = conn
                .query("SHOW BINARY LOGS")
                .await
                .map_err(|e| MySqlError::query("SHOW BINARY LOGS", e))?;
            let present = logs
                .into_iter()
                .any(|mut r| r.take::<String, _>(0).as_deref() == Some(pos.file.as_str()));
            let by_gtid = mariadb && pos.by_gtid;
            if !present && !by_gtid {
                if cfg.snapshot_mode == SnapshotMode::WhenNeeded {
                    warn!(connector = %cfg.name, file = %pos.file, "stored binlog file was purged; taking a new snapshot (snapshot.mode=when_needed)");
                    resume = Resume::Nothing;
                } else {
                    return Err(MySqlError::Purged {
                        position: format!("{}:{}", pos.file, pos.pos),
                        detail: format!("{} is not in SHOW BINARY LOGS", pos.file),
                    });
                }
            }
        }

        // The schema history (include.schema.changes): stored, or read again.
        let resumes_snapshot =
            matches!(resume, Resume::Snapshot(..)) && cfg.snapshot_mode.reads_rows();
        let history = history::plan(
            &cfg,
            &ctx.offsets,
            &partition,
            match &resume {
                Resume::Stream(p) | Resume::Snapshot(p, _) => Some(p),
                Resume::Nothing => None,
            },
            resumes_snapshot,
            mariadb,
        );
        let pending;
        let phase = match resume {
            Resume::Stream(pos) => {
                ctx.progress.set_phase("streaming");
                let (history, seeds) =
                    history::start(&mut conn, &cfg, history, &pos, mariadb).await?;
                pending = seeds;
                let _ = conn.disconnect().await;
                self.stream_phase(&pos, mariadb, &ctx.progress, history)
                    .await?
            }
            Resume::Snapshot(pos, cursor) if cfg.snapshot_mode.reads_rows() => {
                ctx.progress.set_phase("snapshot");
                let mut snap = Snapshot::begin(
                    conn,
                    cfg.clone(),
                    partition.clone(),
                    connector,
                    mariadb,
                    Some((pos, cursor)),
                    history,
                )
                .await?;
                pending = snap.take_seed_records();
                Phase::Snapshot(Box::new(snap))
            }
            Resume::Snapshot(pos, _) => {
                let (history, seeds) =
                    history::start(&mut conn, &cfg, history, &pos, mariadb).await?;
                pending = seeds;
                let _ = conn.disconnect().await;
                self.stream_phase(&pos, mariadb, &ctx.progress, history)
                    .await?
            }
            Resume::Nothing => match cfg.snapshot_mode {
                SnapshotMode::Initial | SnapshotMode::InitialOnly | SnapshotMode::WhenNeeded => {
                    ctx.progress.set_phase("snapshot");
                    let mut snap = Snapshot::begin(
                        conn,
                        cfg.clone(),
                        partition.clone(),
                        connector,
                        mariadb,
                        None,
                        history,
                    )
                    .await?;
                    pending = snap.take_seed_records();
                    Phase::Snapshot(Box::new(snap))
                }
                SnapshotMode::NoData | SnapshotMode::Never => {
                    let pos = if cfg.snapshot_mode == SnapshotMode::NoData {
                        read_position(&mut conn, mariadb).await?
                    } else {
                        oldest_binlog(&mut conn).await?
                    };
                    // With `never` the definitions are today's while the stream starts at
                    // the oldest binlog (see the history module).
                    let (history, seeds) =
                        history::start(&mut conn, &cfg, history, &pos, mariadb).await?;
                    pending = seeds;
                    let _ = conn.disconnect().await;
                    ctx.progress.set_phase("streaming");
                    self.stream_phase(&pos, mariadb, &ctx.progress, history)
                        .await?
                }
            },
        };
        Ok(MySqlTask {
            source: cfg,
            server: self.server.clone(),
            partition,
            mariadb,
            phase: Some(phase),
            progress: ctx.progress,
            pending,
        })
    }

    async fn stream_phase(
        &self,
        pos: &StartPosition,
        mariadb: bool,
        progress: &ProgressHandle,
        history: Option<Box<SchemaHistory>>,
    ) -> Result<Phase, MySqlError> {
        start_streaming(
            self.cfg.clone(),
            self.server.clone(),
            self.partition(),
            mariadb,
            pos,
            progress.clone(),
            history,
        )
        .await
    }
}

/// Opens the replica connection at `pos` and starts the pump task that reads it.
async fn start_streaming(
    cfg: Arc<MySqlConfig>,
    server: ServerOpts,
    partition: SourcePartition,
    mariadb: bool,
    pos: &StartPosition,
    progress: ProgressHandle,
    mut history: Option<Box<SchemaHistory>>,
) -> Result<Phase, MySqlError> {
    if let Some(h) = history.as_mut() {
        h.start_stream(&server).await?;
    }
    let stream = open_stream(&server, &cfg, mariadb, pos).await?;
    let reader = BinlogReader::new(
        cfg.clone(),
        partition.clone(),
        pos,
        cfg.flavor.connector_name(),
    )
    .with_history(history);
    Ok(Phase::Streaming(StreamPump::spawn(Streamer {
        stream,
        reader,
        cfg,
        server,
        partition,
        progress,
    })))
}

impl MySqlTask {
    async fn poll_inner(&mut self) -> Result<Vec<SourceRecord>, MySqlError> {
        if !self.pending.is_empty() {
            return Ok(std::mem::take(&mut self.pending));
        }
        let Some(phase) = self.phase.take() else {
            return Ok(Vec::new());
        };
        match phase {
            Phase::Done => {
                self.phase = Some(Phase::Done);
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok(Vec::new())
            }
            Phase::Snapshot(mut snap) => match snap.next_page().await? {
                Some(records) => {
                    self.progress
                        .set_snapshot(snap.rows_done, snap.rows_estimated.max(snap.rows_done));
                    self.phase = Some(Phase::Snapshot(snap));
                    Ok(records)
                }
                None => {
                    info!(connector = %self.source.name, rows = snap.rows_done, "snapshot finished");
                    self.progress.set_snapshot(snap.rows_done, snap.rows_done);
                    let pos = snap.position.clone();
                    let history = snap.take_history();
                    if let Ok(conn) = snap.finish().await {
                        let _ = conn.disconnect().await;
                    }
                    if self.source.snapshot_mode == SnapshotMode::InitialOnly {
                        self.progress.set_phase("done");
                        self.phase = Some(Phase::Done);
                        return Ok(Vec::new());
                    }
                    self.progress.set_phase("streaming");
                    self.phase = Some(
                        start_streaming(
                            self.source.clone(),
                            self.server.clone(),
                            self.partition.clone(),
                            self.mariadb,
                            &pos,
                            self.progress.clone(),
                            history,
                        )
                        .await?,
                    );
                    Ok(Vec::new())
                }
            },
            Phase::Streaming(mut pump) => {
                let result = pump.next().await;
                self.phase = Some(Phase::Streaming(pump));
                result
            }
        }
    }
}

#[async_trait]
impl SourceTask for MySqlTask {
    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectorError> {
        Ok(self.poll_inner().await?)
    }

    async fn close(&mut self) {
        match self.phase.take() {
            Some(Phase::Streaming(pump)) => pump.close().await,
            Some(Phase::Snapshot(snap)) => {
                if let Ok(conn) = snap.finish().await {
                    let _ = conn.disconnect().await;
                }
            }
            _ => {}
        }
    }
}

/// Debezium's `snapshot.mode=never`: the first binlog file the server still has.
async fn oldest_binlog(conn: &mut Conn) -> Result<StartPosition, MySqlError> {
    let logs: Vec<mysql_async::Row> = conn
        .query("SHOW BINARY LOGS")
        .await
        .map_err(|e| MySqlError::query("SHOW BINARY LOGS", e))?;
    let first = logs
        .into_iter()
        .next()
        .and_then(|mut r| r.take::<String, _>(0))
        .unwrap_or_default();
    Ok(StartPosition {
        file: first,
        pos: 4,
        gtids: GtidState::default(),
        mysql_gtids: None,
        skip_rows: 0,
        by_gtid: false,
    })
}

#[cfg(test)]
mod tests {
    use mysql_async::binlog::events::Event;
    use tributary_runtime::record::{Payload, SourceOffset};

    use super::*;
    use crate::binlog::test_events::{Events, config};

    const A: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const B: &str = "4e11fa47-71ca-11e1-9e33-c80aa9429562";

    fn partition() -> SourcePartition {
        SourcePartition::from_json(&serde_json::json!({ "server": "srv" }))
    }

    fn resume_from(value: serde_json::Value) -> StartPosition {
        let stored = [StoredOffset {
            partition: partition(),
            offset: SourceOffset {
                value,
                order: Default::default(),
            },
        }];
        match parse_offset(&stored, &partition()).expect("parses") {
            Resume::Stream(pos) => pos,
            _ => panic!("not a streaming position"),
        }
    }

    fn uuid(text: &str) -> [u8; 16] {
        let set = MySqlGtidSet::parse(&format!("{text}:1")).expect("uuid");
        *set.sids().next().expect("one sid").0
    }

    /// Feeds `events`; the ids of the rows emitted and the last offset.
    fn feed(reader: &mut BinlogReader, events: &[Event]) -> (Vec<i64>, Option<serde_json::Value>) {
        let mut out = Vec::new();
        for ev in events {
            reader.handle(ev, &mut out).expect("event handled");
        }
        let offset = out
            .iter()
            .rev()
            .find_map(|r| r.offset.clone())
            .map(|o| o.value);
        let ids = out
            .into_iter()
            .filter_map(|r| match r.payload {
                Payload::Change(e) => match e.after?.0.first() {
                    Some(tributary_runtime::model::Value::Int(n)) => Some(*n),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        (ids, offset)
    }

    #[test]
    fn mysql_offset_round_trip_mid_transaction() {
        // The snapshot's position: file/pos plus the executed set (gtid_mode=ON).
        let snapshot_at = StartPosition {
            file: "binlog.000003".into(),
            pos: 4,
            gtids: GtidState::default(),
            mysql_gtids: Some(MySqlGtidSet::parse(&format!("{A}:1-10,{B}:1-3")).expect("set")),
            skip_rows: 0,
            by_gtid: false,
        };
        assert_eq!(
            crate::binlog::dump_mode(&snapshot_at, false, true),
            DumpMode::FilePos,
            "after a snapshot the stream starts at its exact file/position"
        );
        let mut reader = BinlogReader::new(config(&[]), partition(), &snapshot_at, "mysql");
        let mut ev = Events::at(4);
        let first = ev.transaction(Some((uuid(A), 11)), &[&[1]]);
        let (ids, _) = feed(&mut reader, &first);
        assert_eq!(ids, [1]);

        // A transaction of three rows events (GTID, BEGIN, TABLE_MAP, rows x3, XID); the task
        // stops after the second rows event.
        let txn_start = ev.pos;
        let second = ev.transaction(Some((uuid(B), 4)), &[&[2, 3], &[4], &[5]]);
        let (ids, offset) = feed(&mut reader, &second[..5]);
        assert_eq!(ids, [2, 3, 4]);
        let offset = offset.expect("offset");
        assert_eq!(
            offset,
            serde_json::json!({
                "file": "binlog.000003", "pos": txn_start, "row": 3,
                "gtids": format!("{A}:1-11,{B}:1-3"),
            })
        );

        // Resume: GTID set before the transaction, three rows of it to skip.
        let pos = resume_from(offset);
        assert_eq!(pos.file, "binlog.000003");
        assert_eq!(pos.pos, u64::from(txn_start));
        assert_eq!(pos.skip_rows, 3);
        assert!(pos.by_gtid);
        assert!(pos.gtids.is_empty(), "not a MariaDB state");
        let set = pos.mysql_gtids.clone().expect("MySQL set");
        assert_eq!(set.to_string(), format!("{A}:1-11,{B}:1-3"));
        assert_eq!(pos.gtids_text(), format!("{A}:1-11,{B}:1-3"));
        assert_eq!(
            crate::binlog::dump_mode(&pos, false, true),
            DumpMode::MySqlGtid
        );
        assert_eq!(
            crate::binlog::dump_mode(&pos, false, false),
            DumpMode::FilePos
        );
        // The request's SID blocks: half-open intervals.
        let sids = set.to_sids();
        assert_eq!(sids.len(), 2);
        assert_eq!(
            sids[0].intervals(),
            &[mysql_common::packets::GnoInterval::new(1, 12)]
        );
        assert_eq!(
            sids[1].intervals(),
            &[mysql_common::packets::GnoInterval::new(1, 4)]
        );

        // The server sends the first transaction not in the set: the interrupted one, whole.
        let mut resumed = BinlogReader::new(config(&[]), partition(), &pos, "mysql");
        let mut again = Events::at(txn_start);
        let replay = again.transaction(Some((uuid(B), 4)), &[&[2, 3], &[4], &[5]]);
        let (ids, offset) = feed(&mut resumed, &replay);
        assert_eq!(
            ids,
            [5],
            "rows already delivered are skipped, none repeated"
        );
        assert_eq!(
            offset.expect("offset"),
            serde_json::json!({
                "file": "binlog.000003", "pos": txn_start, "row": 4,
                "gtids": format!("{A}:1-11,{B}:1-3"),
            })
        );
        let boundary = resumed.boundary_offset().expect("boundary").value;
        assert_eq!(
            boundary["gtids"],
            serde_json::json!(format!("{A}:1-11,{B}:1-4"))
        );
        assert_eq!(boundary["row"], serde_json::json!(0));
        // A resume at the boundary skips nothing and asks for the whole set.
        let pos = resume_from(boundary);
        assert_eq!(pos.skip_rows, 0);
        assert_eq!(
            pos.mysql_gtids.expect("set").to_string(),
            format!("{A}:1-11,{B}:1-4")
        );
    }

    #[test]
    fn mariadb_and_file_offsets_parse_as_before() {
        let pos = resume_from(serde_json::json!({
            "file": "mysql-bin.000002", "pos": 900, "row": 2, "gtids": "0-1-100,1-2-7",
        }));
        assert_eq!(pos.gtids.to_string(), "0-1-100,1-2-7");
        assert_eq!(pos.mysql_gtids, None);
        assert!(pos.by_gtid);
        assert_eq!(pos.skip_rows, 2);
        assert_eq!(
            crate::binlog::dump_mode(&pos, true, false),
            DumpMode::MariaDbGtid
        );

        let pos = resume_from(serde_json::json!({ "file": "mysql-bin.000002", "pos": 900 }));
        assert!(pos.gtids.is_empty());
        assert_eq!(pos.mysql_gtids, None);
        assert!(!pos.by_gtid);
        assert_eq!(
            crate::binlog::dump_mode(&pos, true, false),
            DumpMode::FilePos
        );
        assert_eq!(
            crate::binlog::dump_mode(&pos, false, true),
            DumpMode::FilePos
        );

        let stored = [StoredOffset {
            partition: partition(),
            offset: SourceOffset {
                value: serde_json::json!({"file": "f.1", "pos": 4, "gtids": format!("{A}:x")}),
                order: Default::default(),
            },
        }];
        assert!(matches!(
            parse_offset(&stored, &partition()),
            Err(MySqlError::BadOffset(_))
        ));
    }
}
