//! The plugin, the preflight and the source task (snapshot, then stream).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use mysql_async::prelude::Queryable as _;
use mysql_async::{BinlogStream, Conn, Opts, OptsBuilder};
use tracing::{info, warn};
use tributary_runtime::config::{ConfigDef, ConfigErrors, Parsed};
use tributary_runtime::connector::{
    Connector, ConnectorKind, Plugin, SourceConnector, SourceTask, SourceTaskContext,
};
use tributary_runtime::converter::json::ValueModes;
use tributary_runtime::error::ConnectorError;
use tributary_runtime::offsets::StoredOffset;
use tributary_runtime::progress::ProgressHandle;
use tributary_runtime::record::{Payload, SourcePartition, SourceRecord};

use crate::binlog::{BinlogReader, StartPosition, open_stream};
use crate::config::{MARIADB_CLASS, MYSQL_CLASS, MySqlConfig, SnapshotMode, config_def, validate};
use crate::error::MySqlError;
use crate::gtid::GtidState;
use crate::snapshot::{Cursor, Snapshot, captured_tables, read_position, wire_from_json};

/// The MySQL/MariaDB binlog source plugin (both Debezium classes).
/// How long a streaming batch may wait for more records once it holds one.
const STREAM_LINGER: Duration = Duration::from_millis(10);

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
        Ok(Connector::Source(Arc::new(MySqlSource {
            cfg: Arc::new(cfg),
        })))
    }
}

/// A validated connector.
pub struct MySqlSource {
    pub cfg: Arc<MySqlConfig>,
}

impl MySqlSource {
    /// Client options for this server (no database selected).
    pub fn opts(&self) -> Opts {
        let cfg = &self.cfg;
        OptsBuilder::default()
            .ip_or_hostname(cfg.hostname.clone())
            .tcp_port(cfg.port)
            .user(Some(cfg.user.clone()))
            .pass(cfg.password.as_ref().map(|p| p.expose().to_owned()))
            .prefer_socket(false)
            .into()
    }

    async fn connect(&self) -> Result<Conn, MySqlError> {
        Conn::new(self.opts())
            .await
            .map_err(|source| MySqlError::connect(self.cfg.target(), source))
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

    async fn open_task(
        &self,
        ctx: SourceTaskContext,
    ) -> Result<Box<dyn SourceTask>, ConnectorError> {
        Ok(Box::new(self.open(ctx).await?))
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
    let gtids = GtidState::parse(v.get("gtids").and_then(|g| g.as_str()).unwrap_or(""))
        .map_err(MySqlError::BadOffset)?;
    let position = StartPosition {
        file,
        pos,
        by_gtid: !gtids.is_empty(),
        gtids,
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
    Streaming {
        stream: Box<BinlogStream>,
        reader: Box<BinlogReader>,
    },
    /// `initial_only` after the snapshot: nothing more to do.
    Done,
}

/// The running task.
pub struct MySqlTask {
    source: Arc<MySqlConfig>,
    opts: Opts,
    partition: SourcePartition,
    connector: &'static str,
    mariadb: bool,
    phase: Option<Phase>,
    progress: ProgressHandle,
    last_heartbeat: Instant,
    last_heartbeat_offset: Option<serde_json::Value>,
    batch: usize,
    /// When the binlog bytes behind the server were last measured (for `/metrics`).
    last_lag_check: Instant,
}

impl MySqlSource {
    async fn open(&self, ctx: SourceTaskContext) -> Result<MySqlTask, MySqlError> {
        let cfg = self.cfg.clone();
        let partition = self.partition();
        let mut conn = self.connect().await?;
        let version: String = conn
            .query_first("SELECT VERSION()")
            .await
            .map_err(|e| MySqlError::query("SELECT VERSION()", e))?
            .unwrap_or_default();
        let mariadb = version.to_ascii_lowercase().contains("mariadb");
        let connector = cfg.flavor.connector_name();
        let mut resume = parse_offset(&ctx.offsets, &partition)?;

        // A stored position that is gone: new snapshot (when_needed) or a clear error.
        if let Resume::Stream(pos) = &resume {
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

        let phase = match resume {
            Resume::Stream(pos) => {
                ctx.progress.set_phase("streaming");
                let _ = conn.disconnect().await;
                self.stream_phase(&pos, mariadb).await?
            }
            Resume::Snapshot(pos, cursor) if cfg.snapshot_mode.reads_rows() => {
                ctx.progress.set_phase("snapshot");
                let snap = Snapshot::begin(
                    conn,
                    cfg.clone(),
                    partition.clone(),
                    connector,
                    mariadb,
                    Some((pos, cursor)),
                )
                .await?;
                Phase::Snapshot(Box::new(snap))
            }
            Resume::Snapshot(pos, _) => {
                let _ = conn.disconnect().await;
                self.stream_phase(&pos, mariadb).await?
            }
            Resume::Nothing => match cfg.snapshot_mode {
                SnapshotMode::Initial | SnapshotMode::InitialOnly | SnapshotMode::WhenNeeded => {
                    ctx.progress.set_phase("snapshot");
                    let snap = Snapshot::begin(
                        conn,
                        cfg.clone(),
                        partition.clone(),
                        connector,
                        mariadb,
                        None,
                    )
                    .await?;
                    Phase::Snapshot(Box::new(snap))
                }
                SnapshotMode::NoData => {
                    let pos = read_position(&mut conn, mariadb).await?;
                    let _ = conn.disconnect().await;
                    ctx.progress.set_phase("streaming");
                    self.stream_phase(&pos, mariadb).await?
                }
                SnapshotMode::Never => {
                    // Debezium's `never`: read the whole binlog the server still has.
                    let logs: Vec<mysql_async::Row> = conn
                        .query("SHOW BINARY LOGS")
                        .await
                        .map_err(|e| MySqlError::query("SHOW BINARY LOGS", e))?;
                    let first = logs
                        .into_iter()
                        .next()
                        .and_then(|mut r| r.take::<String, _>(0))
                        .unwrap_or_default();
                    let _ = conn.disconnect().await;
                    ctx.progress.set_phase("streaming");
                    let pos = StartPosition {
                        file: first,
                        pos: 4,
                        gtids: GtidState::default(),
                        skip_rows: 0,
                        by_gtid: false,
                    };
                    self.stream_phase(&pos, mariadb).await?
                }
            },
        };
        Ok(MySqlTask {
            source: cfg,
            opts: self.opts(),
            partition,
            connector,
            mariadb,
            phase: Some(phase),
            progress: ctx.progress,
            last_heartbeat: Instant::now(),
            last_heartbeat_offset: None,
            batch: 8192,
            last_lag_check: Instant::now(),
        })
    }

    async fn stream_phase(&self, pos: &StartPosition, mariadb: bool) -> Result<Phase, MySqlError> {
        let stream = open_stream(self.opts(), &self.cfg, mariadb, pos).await?;
        let reader = BinlogReader::new(
            self.cfg.clone(),
            self.partition(),
            pos,
            self.cfg.flavor.connector_name(),
        );
        Ok(Phase::Streaming {
            stream: Box::new(stream),
            reader: Box::new(reader),
        })
    }
}

impl MySqlTask {
    async fn poll_inner(&mut self) -> Result<Vec<SourceRecord>, MySqlError> {
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
                    let conn = snap.finish().await;
                    let _ = conn.disconnect().await;
                    if self.source.snapshot_mode == SnapshotMode::InitialOnly {
                        self.progress.set_phase("done");
                        self.phase = Some(Phase::Done);
                        return Ok(Vec::new());
                    }
                    self.progress.set_phase("streaming");
                    let stream =
                        open_stream(self.opts.clone(), &self.source, self.mariadb, &pos).await?;
                    let reader = BinlogReader::new(
                        self.source.clone(),
                        self.partition.clone(),
                        &pos,
                        self.connector,
                    );
                    self.phase = Some(Phase::Streaming {
                        stream: Box::new(stream),
                        reader: Box::new(reader),
                    });
                    Ok(Vec::new())
                }
            },
            Phase::Streaming {
                mut stream,
                mut reader,
            } => {
                let result = self.stream_batch(&mut stream, &mut reader).await;
                self.phase = Some(Phase::Streaming { stream, reader });
                result
            }
        }
    }

    async fn stream_batch(
        &mut self,
        stream: &mut BinlogStream,
        reader: &mut BinlogReader,
    ) -> Result<Vec<SourceRecord>, MySqlError> {
        let mut out = Vec::new();
        let hard = tokio::time::Instant::now() + Duration::from_millis(500);
        // When the first record of a batch arrived: a batch is handed over at most
        // `STREAM_LINGER` later (like Kafka's `linger.ms`), so a steady stream of small
        // transactions is not held back waiting for the server to pause.
        let mut first_at: Option<tokio::time::Instant> = None;
        loop {
            if out.len() >= self.batch {
                break;
            }
            if first_at.is_none() && !out.is_empty() {
                first_at = Some(tokio::time::Instant::now());
            }
            let deadline = match first_at {
                None => hard,
                Some(first) => hard.min(first + STREAM_LINGER),
            };
            if !reader.next(stream, deadline, &mut out).await? {
                break;
            }
        }
        if let Some(last) = out.iter().rev().find_map(|r| match &r.payload {
            Payload::Change(e) => Some(e.source.ts_ms),
            _ => None,
        }) {
            self.progress.set_source_ts(last);
        }
        if self.last_lag_check.elapsed() >= Duration::from_secs(5) {
            self.last_lag_check = Instant::now();
            self.report_binlog_lag(reader).await;
        }
        tracing::trace!(connector = %self.source.name, records = out.len(), "stream batch");
        if out.iter().any(|r| r.offset.is_some()) {
            self.last_heartbeat = Instant::now();
        } else if self.source.heartbeat_ms > 0
            && self.last_heartbeat.elapsed() >= Duration::from_millis(self.source.heartbeat_ms)
            && !reader.in_transaction()
            && let Some(offset) = reader.boundary_offset()
            && self.last_heartbeat_offset.as_ref() != Some(&offset.value)
        {
            self.last_heartbeat = Instant::now();
            self.last_heartbeat_offset = Some(offset.value.clone());
            out.push(SourceRecord {
                topic: Arc::from(format!("__debezium-heartbeat.{}", self.source.prefix)),
                payload: Payload::Json {
                    key: Some(serde_json::json!({ "serverName": &*self.source.prefix })),
                    value: serde_json::json!({ "ts_ms": crate::now_ms() }),
                },
                partition: self.partition.clone(),
                offset: Some(offset),
            });
        }
        Ok(out)
    }
}

impl MySqlTask {
    /// Reports the binlog bytes the task is behind the server: from the last transaction
    /// boundary read to the end of the newest binlog file (`SHOW BINARY LOGS` sizes).
    /// Best effort: a failed measurement leaves the last value.
    async fn report_binlog_lag(&self, reader: &BinlogReader) {
        let Some(at) = reader.boundary_offset() else {
            return;
        };
        let (Some(file), Some(pos)) = (at.value["file"].as_str(), at.value["pos"].as_u64()) else {
            return;
        };
        let Ok(mut conn) = Conn::new(self.opts.clone()).await else {
            return;
        };
        let logs: Result<Vec<mysql_async::Row>, _> = conn.query("SHOW BINARY LOGS").await;
        let _ = conn.disconnect().await;
        let Ok(logs) = logs else {
            return;
        };
        let mut behind = None;
        for mut row in logs {
            let (Some(name), Some(size)) = (row.take::<String, _>(0), row.take::<u64, _>(1)) else {
                continue;
            };
            // Binlog file names share a prefix and a fixed-width sequence number.
            match name.as_str().cmp(file) {
                std::cmp::Ordering::Equal => behind = Some(size.saturating_sub(pos)),
                std::cmp::Ordering::Greater => behind = behind.map(|b: u64| b + size),
                std::cmp::Ordering::Less => {}
            }
        }
        if let Some(bytes) = behind {
            self.progress.set_lag_bytes(bytes);
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
            Some(Phase::Streaming { stream, .. }) => {
                let _ = tokio::time::timeout(Duration::from_secs(2), stream.close()).await;
            }
            Some(Phase::Snapshot(snap)) => {
                let conn = snap.finish().await;
                let _ = conn.disconnect().await;
            }
            _ => {}
        }
    }
}
