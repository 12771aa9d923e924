//! The plugin, the validated connector and the source task.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_postgres::Client;
use tracing::{debug, info, warn};

use tributary_runtime::config::{ConfigDef, ConfigErrors, Parsed};
use tributary_runtime::connector::{
    Connector, ConnectorKind, Plugin, SourceConnector, SourceTask, SourceTaskContext,
};
use tributary_runtime::converter::json::ValueModes;
use tributary_runtime::error::ConnectorError;
use tributary_runtime::model::{
    ChangeEvent, Op, Row, SchemaRef, SnapshotMarker, SourceInfo, TableId, TableSchema,
    TransactionInfo, Value,
};
use tributary_runtime::offsets::StoredOffset;
use tributary_runtime::progress::ProgressHandle;
use tributary_runtime::record::{
    OffsetOrder, Payload, SourceOffset, SourcePartition, SourceRecord,
};

use crate::backfill::{Backfill, SnapshotProgress, WATERMARK_PREFIX, Window};
use crate::config::{self, PgConfig, SnapshotMode};
use crate::decode::{PgOutput, Relation, TupleValue, decode};
use crate::error::PgError;
use crate::replication::{
    Lsn, PG_EPOCH_OFFSET_MICROS, ReplicationConnection, StatusWriter, StreamMessage, StreamReader,
};
use crate::schema::{Kind, TypeCatalog, ValueParser, build_column};
use crate::slot::{self, CatalogColumn};
use crate::snapshot::{Snapshotter, TableQuery, query_rows};

/// Prefix of the logical decoding messages the connector emits itself as heartbeats.
pub const HEARTBEAT_MESSAGE_PREFIX: &str = "__tributary_heartbeat";

/// How long the snapshot holds its last row back waiting for the next chunk.
const HOLD_BACK: Duration = Duration::from_secs(5);

/// `io.debezium.connector.postgresql.PostgresConnector`.
pub struct PostgresPlugin;

impl Plugin for PostgresPlugin {
    fn class(&self) -> &'static str {
        "io.debezium.connector.postgresql.PostgresConnector"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["postgres", "postgresql", "PostgresConnector"]
    }

    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Source
    }

    fn config_def(&self) -> ConfigDef {
        config::config_def()
    }

    fn validate(&self, name: &str, parsed: &Parsed) -> Result<Connector, ConfigErrors> {
        let cfg = config::validate(name, parsed)?;
        Ok(Connector::Source(Arc::new(PostgresConnector {
            cfg: Arc::new(cfg),
        })))
    }
}

/// A validated Postgres source.
pub struct PostgresConnector {
    cfg: Arc<PgConfig>,
}

impl PostgresConnector {
    pub fn config(&self) -> &PgConfig {
        &self.cfg
    }

    /// A position set through the offsets API must name this connector's partition and an
    /// LSN the slot can still stream from: not behind its `confirmed_flush_lsn` (the server
    /// has let that WAL go) and not past the server's current WAL end. Without a slot any
    /// LSN is accepted; the task then reports the missing slot as it does on start.
    async fn check_position(
        &self,
        partition: &serde_json::Value,
        offset: &serde_json::Value,
    ) -> Result<(), PgError> {
        let ours = serde_json::json!({ "server": self.cfg.topic_prefix });
        if SourcePartition::from_json(partition) != SourcePartition::from_json(&ours) {
            return Err(PgError::Position(format!(
                "partition {partition} is not this connector's; use {ours}"
            )));
        }
        let Some(lsn) = offset
            .get("lsn")
            .and_then(serde_json::Value::as_u64)
            .map(Lsn)
        else {
            return Err(PgError::Position(format!(
                "not a Postgres position: {offset} has no numeric \"lsn\" \
                 (e.g. {{\"lsn\": 24023128}})"
            )));
        };
        let client = slot::connect_sql(&self.cfg).await?;
        let wal_end: Option<String> = client
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await
            .map_err(PgError::sql("reading pg_current_wal_lsn()"))?
            .get(0);
        if let Some(end) = wal_end.as_deref().and_then(Lsn::parse)
            && lsn > end
        {
            return Err(PgError::Position(format!(
                "LSN {lsn} is past the server's current WAL end {end}"
            )));
        }
        if let Some(info) = slot::slot_info(&client, &self.cfg.slot_name).await?
            && let Some(confirmed) = info.confirmed_flush
            && lsn < confirmed
        {
            return Err(PgError::Position(format!(
                "LSN {lsn} is behind the confirmed position {confirmed} of replication slot {}: \
                 the server no longer keeps that WAL for it, so a slot cannot go back. Use an \
                 LSN at or after {confirmed}, or drop the slot and delete the offsets to take a \
                 new snapshot",
                self.cfg.slot_name
            )));
        }
        Ok(())
    }
}

#[async_trait]
impl SourceConnector for PostgresConnector {
    async fn check(&self) -> Result<(), ConnectorError> {
        slot::preflight(&self.cfg)
            .await
            .map_err(ConnectorError::from)
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
        Ok(Box::new(PgTask::open(self.cfg.clone(), ctx).await?))
    }
}

/// A captured table at one schema version, with how to read its values.
#[derive(Debug)]
pub struct CapturedTable {
    pub schema: SchemaRef,
    /// `source.schema` and `source.table`, shared by every event.
    pub schema_name: Arc<str>,
    pub table_name: Arc<str>,
    pub topic: Arc<str>,
    /// For each schema column: its index in the source tuple and how to convert it.
    pub sources: Vec<(usize, Kind)>,
}

/// `(name, type oid, type modifier)` of a source column.
type SourceColumn<'a> = (&'a str, u32, i32);

fn build_table(
    cfg: &PgConfig,
    catalog: &TypeCatalog,
    id: &TableId,
    source: &[SourceColumn<'_>],
    catalog_columns: &[CatalogColumn],
    previous: Option<&SchemaRef>,
) -> Result<CapturedTable, PgError> {
    let mut columns = Vec::new();
    let mut sources = Vec::new();
    for (i, (name, oid, modifier)) in source.iter().enumerate() {
        if !cfg.captures_column(id, name) {
            continue;
        }
        let resolved = catalog.resolve(*oid, *modifier, cfg.interval_mode);
        let kind = resolved.kind.clone();
        let nullable = !catalog_columns
            .iter()
            .any(|c| c.name == *name && c.not_null);
        columns.push(build_column(name, resolved, nullable));
        sources.push((i, kind));
    }
    let key = match cfg.key_columns.get(id) {
        Some(names) => names
            .iter()
            .map(|n| {
                columns.iter().position(|c| &c.name == n).ok_or_else(|| {
                    PgError::Setup(format!(
                        "message.key.columns: table {id} has no captured column {n}"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => {
            let mut pk: Vec<(i32, usize)> = catalog_columns
                .iter()
                .filter_map(|c| {
                    let pos = c.pk_position?;
                    let idx = columns.iter().position(|col| col.name == c.name)?;
                    Some((pos, idx))
                })
                .collect();
            pk.sort_unstable();
            pk.into_iter().map(|(_, i)| i).collect()
        }
    };
    let schema = match previous {
        Some(prev) if prev.columns == columns && prev.key == key => prev.clone(),
        Some(prev) => Arc::new(prev.evolve(columns, key)),
        None => Arc::new(TableSchema {
            id: id.clone(),
            version: 1,
            columns,
            key,
        }),
    };
    Ok(CapturedTable {
        schema_name: Arc::from(id.namespace.as_str()),
        table_name: Arc::from(id.name.as_str()),
        topic: Arc::from(cfg.topic(id)),
        schema,
        sources,
    })
}

/// What the reader task forwards.
#[derive(Debug)]
enum Item {
    /// A pgoutput message and the WAL position of its `XLogData`.
    Msg(Lsn, PgOutput),
    /// The server's WAL end, seen while no transaction was open: everything before it was
    /// forwarded already.
    Idle(Lsn),
    Failed(PgError),
}

/// An open transaction in the stream.
struct Txn {
    xid: u32,
    commit_ts_ms: i64,
    events: u64,
    per_table: HashMap<TableId, u64>,
    begin_sent: bool,
}

enum Phase {
    Snapshot {
        snapshotter: Box<Snapshotter>,
        /// Held idle until the snapshot is read; then streams from `consistent_point`.
        replication: Box<ReplicationConnection>,
        consistent_point: Lsn,
    },
    Streaming,
    /// `initial_only`: nothing more to do.
    Done,
}

struct PgTask {
    cfg: Arc<PgConfig>,
    server_name: Arc<str>,
    db_name: Arc<str>,
    sql: Client,
    catalog: TypeCatalog,
    parser: ValueParser,
    partition: SourcePartition,
    progress: ProgressHandle,
    phase: Phase,
    rx: Option<mpsc::Receiver<Vec<Item>>>,
    flushed: watch::Sender<Lsn>,
    reader: Option<JoinHandle<()>>,
    relations: HashMap<u32, Option<Arc<CapturedTable>>>,
    schemas: HashMap<TableId, SchemaRef>,
    snapshot_tables: HashMap<TableId, Arc<CapturedTable>>,
    snapshot_index: u64,
    /// What the initial snapshot has read so far (goes into its chunk offsets).
    snapshot_progress: SnapshotProgress,
    /// The captured tables when the task opened.
    captured: Vec<TableId>,
    /// A snapshot interrupted by a crash, finished while streaming ([`crate::backfill`]).
    backfill: Option<Backfill>,
    txn: Option<Txn>,
    /// The last record produced, held back until we know whether it ends its transaction
    /// (or the snapshot), so that it can carry the offset.
    pending: Option<SourceRecord>,
    last_order: OffsetOrder,
    last_commit_lsn: Lsn,
    idle: Option<Lsn>,
    last_heartbeat: Instant,
    last_lag_check: Instant,
    heartbeat_warned: bool,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn pg_ts_to_ms(pg_micros: i64) -> i64 {
    (pg_micros + PG_EPOCH_OFFSET_MICROS) / 1000
}

/// What a stored offset says.
struct Resume {
    lsn: Lsn,
    snapshot_incomplete: bool,
    /// How far the unfinished snapshot got (absent in offsets of older versions).
    progress: Option<SnapshotProgress>,
}

fn resume_point(offsets: &[StoredOffset], partition: &SourcePartition) -> Option<Resume> {
    let o = offsets.iter().find(|o| &o.partition == partition)?;
    let v = &o.offset.value;
    let lsn = Lsn(v.get("lsn")?.as_u64()?);
    let in_snapshot = v.get("snapshot").and_then(|s| s.as_bool()) == Some(true);
    let last = v.get("last_snapshot_record").and_then(|s| s.as_bool()) == Some(true);
    let progress = v
        .get("snapshot_progress")
        .and_then(SnapshotProgress::from_json);
    Some(Resume {
        lsn,
        snapshot_incomplete: (in_snapshot || progress.is_some()) && !last,
        progress,
    })
}

impl PgTask {
    async fn open(cfg: Arc<PgConfig>, ctx: SourceTaskContext) -> Result<PgTask, PgError> {
        let partition =
            SourcePartition::from_json(&serde_json::json!({ "server": cfg.topic_prefix }));
        let sql = slot::connect_sql(&cfg).await?;
        let catalog = slot::load_types(&sql).await?;
        let tables = slot::captured_tables(&sql, &cfg).await?;
        slot::ensure_publication(&sql, &cfg, &tables).await?;
        let mut resume = resume_point(&ctx.offsets, &partition);
        // Progress that covers every captured table is a finished snapshot whose last row
        // went out unmarked (released early while another reader was still busy).
        if let Some(r) = resume.as_mut()
            && r.snapshot_incomplete
            && r.progress
                .as_ref()
                .is_some_and(|p| tables.iter().all(|t| p.done.contains(t)))
        {
            r.snapshot_incomplete = false;
        }
        info!(
            slot = %cfg.slot_name,
            stored_offsets = ctx.offsets.len(),
            resume_lsn = %resume.as_ref().map_or(Lsn(0), |r| r.lsn),
            snapshot_incomplete = resume.as_ref().is_some_and(|r| r.snapshot_incomplete),
            "opening postgres source task"
        );
        let info = slot::slot_info(&sql, &cfg.slot_name).await?;
        if let Some(pid) = info.as_ref().and_then(|i| i.active_pid) {
            return Err(PgError::Server {
                code: "55006".into(),
                message: format!(
                    "replication slot {} is active in another session (pid {pid}); stop the other consumer or choose another slot.name",
                    cfg.slot_name
                ),
                context: "opening the task".into(),
            });
        }
        let lost = info
            .as_ref()
            .map(|i| i.wal_status.as_deref() == Some("lost"));
        // Our offsets are stored before the server hears of them, so the slot's confirmed
        // position is never past them; when it is, the slot is not the one they were taken
        // from (re-created, or moved by another consumer) and the changes in between would be
        // skipped silently.
        let slot_ahead = match (&resume, &info) {
            (Some(r), Some(i)) => i.confirmed_flush.filter(|c| *c > r.lsn),
            _ => None,
        };
        let snapshot_modes = matches!(
            cfg.snapshot_mode,
            SnapshotMode::Initial | SnapshotMode::InitialOnly | SnapshotMode::WhenNeeded
        );
        // Decide: snapshot (fresh slot with an exported snapshot), finish an interrupted
        // snapshot while streaming (backfill), or stream.
        let mut backfill = None;
        let snapshot = match (&resume, lost) {
            (Some(r), Some(false))
                if r.snapshot_incomplete
                    && slot_ahead.is_none()
                    && snapshot_modes
                    && cfg.snapshot_mode != SnapshotMode::InitialOnly
                    && r.progress.is_some() =>
            {
                let progress = r.progress.clone().unwrap_or_default();
                info!(
                    slot = %cfg.slot_name,
                    lsn = %r.lsn,
                    tables_done = progress.done.len(),
                    tables_started = progress.after.len(),
                    "previous snapshot did not finish; reading the remaining chunks between watermarks while streaming"
                );
                backfill = Some(Backfill::new(progress, &tables, now_ms() as u64));
                false
            }
            (Some(r), _) if r.snapshot_incomplete && snapshot_modes => {
                info!(slot = %cfg.slot_name, "previous snapshot did not finish; taking a new one");
                true
            }
            (Some(r), None | Some(true)) => {
                if cfg.snapshot_mode == SnapshotMode::WhenNeeded {
                    warn!(slot = %cfg.slot_name, lsn = %r.lsn, "replication slot missing or invalidated; taking a new snapshot (snapshot.mode=when_needed)");
                    true
                } else {
                    let what = if lost.is_some() {
                        "was invalidated (the server removed WAL it still needed; see max_slot_wal_keep_size)"
                    } else {
                        "does not exist"
                    };
                    return Err(PgError::SlotLost(format!(
                        "slot.name: replication slot {} {what}, but the connector's offsets say it streamed up to LSN {}; changes after that are lost to this slot. Use snapshot.mode=when_needed to take a new snapshot, or reset the connector's offsets",
                        cfg.slot_name, r.lsn
                    )));
                }
            }
            (Some(r), Some(false)) if slot_ahead.is_some() => {
                let confirmed = slot_ahead.unwrap_or(r.lsn);
                if cfg.snapshot_mode == SnapshotMode::WhenNeeded {
                    warn!(slot = %cfg.slot_name, lsn = %r.lsn, %confirmed, "replication slot is past the connector's offsets; taking a new snapshot (snapshot.mode=when_needed)");
                    true
                } else {
                    return Err(PgError::SlotLost(format!(
                        "slot.name: replication slot {} has confirmed LSN {confirmed}, past the connector's offset {}: it was re-created or another consumer moved it, and the changes in between are lost to this connector. Use snapshot.mode=when_needed to take a new snapshot, or reset the connector's offsets",
                        cfg.slot_name, r.lsn
                    )));
                }
            }
            (Some(_), Some(false)) => false,
            (None, _) => snapshot_modes,
        };
        let (flushed, _) = watch::channel(Lsn(0));
        let mut task = PgTask {
            parser: ValueParser {
                decimal: cfg.value_modes.decimal,
                interval: cfg.interval_mode,
            },
            server_name: Arc::from(cfg.topic_prefix.as_str()),
            db_name: Arc::from(cfg.dbname.as_str()),
            cfg: cfg.clone(),
            sql,
            catalog,
            partition,
            progress: ctx.progress,
            phase: Phase::Streaming,
            rx: None,
            flushed,
            reader: None,
            relations: HashMap::new(),
            schemas: HashMap::new(),
            snapshot_tables: HashMap::new(),
            snapshot_index: 0,
            snapshot_progress: SnapshotProgress::default(),
            captured: tables.clone(),
            backfill: None,
            txn: None,
            pending: None,
            last_order: OffsetOrder::default(),
            last_commit_lsn: Lsn(0),
            idle: None,
            last_heartbeat: Instant::now(),
            last_lag_check: Instant::now() - Duration::from_secs(3600),
            heartbeat_warned: false,
        };
        if snapshot {
            if info.is_some() {
                info!(slot = %cfg.slot_name, "dropping the old replication slot before a new snapshot");
                slot::drop_slot(&task.sql, &cfg.slot_name).await?;
            }
            let mut replication =
                ReplicationConnection::connect(&slot::connect_params(&cfg)).await?;
            let created = replication.create_slot(&cfg.slot_name, true).await?;
            let name = created.snapshot_name.clone().ok_or_else(|| {
                PgError::Protocol("CREATE_REPLICATION_SLOT exported no snapshot".into())
            })?;
            info!(slot = %cfg.slot_name, consistent_point = %created.consistent_point, "replication slot created with an exported snapshot");
            let snapshotter = Snapshotter::begin(&cfg, &name, tables).await?;
            task.progress.set_phase("snapshot");
            task.progress
                .set_snapshot(0, snapshotter.rows_estimate.max(1));
            task.last_order = OffsetOrder([created.consistent_point.0, 0, 0]);
            task.phase = Phase::Snapshot {
                snapshotter: Box::new(snapshotter),
                replication: Box::new(replication),
                consistent_point: created.consistent_point,
            };
        } else {
            let mut replication =
                ReplicationConnection::connect(&slot::connect_params(&cfg)).await?;
            let start = match (&resume, &info) {
                (Some(r), _) => r.lsn,
                (None, Some(i)) => i.confirmed_flush.unwrap_or_default(),
                (None, None) => {
                    let created = replication.create_slot(&cfg.slot_name, false).await?;
                    info!(slot = %cfg.slot_name, lsn = %created.consistent_point, "replication slot created (no snapshot)");
                    created.consistent_point
                }
            };
            task.last_order = OffsetOrder([start.0, 0, 0]);
            task.start_streaming(replication, start).await?;
            if let Some(mut b) = backfill {
                b.rows_estimate = crate::snapshot::estimate_rows(&task.sql, &task.captured).await?;
                task.progress
                    .set_phase("snapshot (resumed while streaming)");
                task.progress.set_snapshot(0, b.rows_estimate.max(1));
                task.backfill = Some(b);
            }
        }
        Ok(task)
    }

    async fn start_streaming(
        &mut self,
        mut replication: ReplicationConnection,
        start: Lsn,
    ) -> Result<(), PgError> {
        let interval = self.status_interval(&mut replication).await;
        let stream = replication
            .start_replication(&self.cfg.slot_name, start, &self.cfg.publication_name)
            .await
            .map_err(|e| match e {
                PgError::Server { code, message, .. } if code == "42704" => PgError::SlotLost(format!(
                    "slot.name: replication slot {} does not exist ({message}); restart with snapshot.mode=when_needed or recreate the slot",
                    self.cfg.slot_name
                )),
                PgError::Server { code, message, .. } if code == "42704" || message.contains("publication") => {
                    PgError::Setup(format!(
                        "publication.name: {message}. Create the publication or set publication.autocreate.mode (code {code})"
                    ))
                }
                other => other,
            })?;
        info!(slot = %self.cfg.slot_name, start = %start, publication = %self.cfg.publication_name, "streaming started");
        self.flushed.send_replace(start);
        let (reader, writer) = stream.split();
        let (tx, rx) = mpsc::channel(64);
        let flushed = self.flushed.subscribe();
        self.reader = Some(tokio::spawn(run_reader(
            reader, writer, tx, flushed, interval,
        )));
        self.rx = Some(rx);
        self.phase = Phase::Streaming;
        self.progress.set_phase("streaming");
        self.last_heartbeat = Instant::now();
        Ok(())
    }

    /// `status.update.interval.ms`, but at most a third of the server's `wal_sender_timeout`:
    /// while the task is backpressured (a large transaction draining into a slow log) the
    /// reader does not see the server's keepalive requests queued behind the data, and only
    /// these periodic updates keep the walsender from timing out.
    async fn status_interval(&self, replication: &mut ReplicationConnection) -> Duration {
        let configured = self.cfg.status_update_interval;
        let timeout = match replication.simple_query("SHOW wal_sender_timeout").await {
            Ok(rows) => rows
                .first()
                .and_then(|r| r.first().cloned().flatten())
                .and_then(|t| crate::replication::parse_pg_duration(&t)),
            Err(e) => {
                warn!(error = %e, "cannot read wal_sender_timeout; status updates every status.update.interval.ms");
                None
            }
        };
        match timeout {
            Some(t) if t / 3 < configured => {
                let capped = (t / 3).max(Duration::from_millis(100));
                info!(
                    wal_sender_timeout_ms = t.as_millis() as u64,
                    status_interval_ms = capped.as_millis() as u64,
                    "status updates more often than status.update.interval.ms, within the server's wal_sender_timeout"
                );
                capped
            }
            _ => configured,
        }
    }

    fn source_info(
        &self,
        table: &CapturedTable,
        ts_ms: i64,
        snapshot: SnapshotMarker,
        lsn: Lsn,
        xid: Option<u32>,
    ) -> SourceInfo {
        SourceInfo {
            connector: "postgresql",
            name: self.server_name.clone(),
            ts_ms,
            snapshot,
            db: self.db_name.clone(),
            schema: Some(table.schema_name.clone()),
            table: Some(table.table_name.clone()),
            extra: vec![
                (
                    "sequence",
                    Value::Text(format!("[\"{}\",\"{}\"]", self.last_commit_lsn.0, lsn.0)),
                ),
                (
                    "txId",
                    xid.map_or(Value::Null, |x| Value::Int(i64::from(x))),
                ),
                ("lsn", Value::Int(lsn.0 as i64)),
                ("xmin", Value::Null),
            ],
        }
    }

    /// `id` as its catalog columns describe it (snapshot reads have no Relation message), a
    /// new schema version when they differ from the one last seen.
    fn catalog_table(
        &mut self,
        id: &TableId,
        columns: &[CatalogColumn],
    ) -> Result<Arc<CapturedTable>, PgError> {
        let source: Vec<SourceColumn<'_>> = columns
            .iter()
            .map(|c| (c.name.as_str(), c.type_oid, c.type_modifier))
            .collect();
        let table = build_table(
            &self.cfg,
            &self.catalog,
            id,
            &source,
            columns,
            self.schemas.get(id),
        )?;
        self.schemas.insert(id.clone(), table.schema.clone());
        Ok(Arc::new(table))
    }

    /// A snapshot row (`op: r`) read at `lsn`.
    fn read_record(
        &self,
        table: &CapturedTable,
        values: Row,
        marker: SnapshotMarker,
        lsn: Lsn,
        ts: i64,
        offset: Option<SourceOffset>,
    ) -> SourceRecord {
        let event = ChangeEvent {
            op: Op::Read,
            table: table.schema.clone(),
            before: None,
            after: Some(values),
            source: self.source_info(table, ts, marker, lsn, None),
            transaction: None,
            processed_ts_ms: ts,
            headers: Vec::new(),
        };
        SourceRecord {
            topic: table.topic.clone(),
            payload: Payload::Change(Box::new(event)),
            partition: self.partition.clone(),
            offset,
        }
    }

    /// Pushes `record` as the new held-back record, releasing the previous one into `out`.
    fn push(&mut self, out: &mut Vec<SourceRecord>, record: SourceRecord) {
        if let Some(prev) = self.pending.replace(record) {
            out.push(prev);
        }
    }

    fn convert_row<'a>(
        &self,
        table: &CapturedTable,
        get: impl Fn(usize) -> Option<TupleRef<'a>>,
        old: Option<&Row>,
    ) -> Result<Row, PgError> {
        let mut values = Vec::with_capacity(table.sources.len());
        for (i, (src, kind)) in table.sources.iter().enumerate() {
            let v = match get(*src) {
                None | Some(TupleRef::Null) => Value::Null,
                Some(TupleRef::Unchanged) => match old.and_then(|r| r.get(i)) {
                    Some(v) if !matches!(v, Value::Unavailable) => v.clone(),
                    _ => Value::Unavailable,
                },
                Some(TupleRef::Text(text)) => self.parser.parse(kind, text).map_err(|e| {
                    PgError::Protocol(format!(
                        "column {} of {}: {e}",
                        table.schema.columns.get(i).map_or("?", |c| c.name.as_str()),
                        table.schema.id
                    ))
                })?,
            };
            values.push(v);
        }
        Ok(Row(values))
    }

    // ---------------------------------------------------------------- snapshot

    async fn poll_snapshot(&mut self) -> Result<Vec<SourceRecord>, PgError> {
        let Phase::Snapshot { snapshotter, .. } = &mut self.phase else {
            return Ok(Vec::new());
        };
        // The last row read is held back so that the snapshot's very last row can be marked
        // `last`; when the readers are slow to send more (a big table on another connection),
        // it is released so that its chunk's progress commits. `recv` is cancel-safe.
        let chunk = match tokio::time::timeout(HOLD_BACK, snapshotter.next_chunk()).await {
            Ok(chunk) => chunk?,
            Err(_) => return Ok(self.pending.take().into_iter().collect()),
        };
        let (done, estimate) = (snapshotter.rows_done, snapshotter.rows_estimate);
        let Some(chunk) = chunk else {
            return self.finish_snapshot().await;
        };
        self.progress.set_snapshot(done, estimate.max(done));
        if let Some(columns) = &chunk.columns {
            let table = self.catalog_table(&chunk.table, columns)?;
            self.snapshot_tables.insert(chunk.table.clone(), table);
        }
        let table = self
            .snapshot_tables
            .get(&chunk.table)
            .cloned()
            .ok_or_else(|| {
                PgError::Protocol(format!("snapshot chunk of unknown table {}", chunk.table))
            })?;
        let Phase::Snapshot {
            consistent_point, ..
        } = &self.phase
        else {
            return Ok(Vec::new());
        };
        let cp = *consistent_point;
        let ts = now_ms();
        let mut out = Vec::with_capacity(chunk.rows.len());
        self.snapshot_progress.chunk_read(
            &chunk.table,
            chunk.last_key.as_deref(),
            chunk.table_done,
        );
        let rows = chunk.rows.len();
        for (n, row) in chunk.rows.iter().enumerate() {
            let values = self.convert_row(&table, |i| row.get(i).map(TupleRef::Text), None)?;
            self.snapshot_index += 1;
            let marker = if self.snapshot_index == 1 {
                SnapshotMarker::First
            } else {
                SnapshotMarker::True
            };
            // The chunk's last row carries the snapshot's progress: once it is durable, a
            // restart goes on after this chunk.
            let offset = (n + 1 == rows).then(|| {
                let order = OffsetOrder([cp.0, 0, self.snapshot_index]);
                self.last_order = order;
                SourceOffset {
                    value: serde_json::json!({
                        "lsn": cp.0,
                        "snapshot": true,
                        "last_snapshot_record": false,
                        "snapshot_progress": self.snapshot_progress.to_json(),
                    }),
                    order,
                }
            });
            let record = self.read_record(&table, values, marker, cp, ts, offset);
            self.push(&mut out, record);
        }
        Ok(out)
    }

    async fn finish_snapshot(&mut self) -> Result<Vec<SourceRecord>, PgError> {
        let phase = std::mem::replace(&mut self.phase, Phase::Done);
        let Phase::Snapshot {
            replication,
            consistent_point,
            snapshotter,
        } = phase
        else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        if let Some(mut last) = self.pending.take() {
            if let Payload::Change(e) = &mut last.payload {
                e.source.snapshot = SnapshotMarker::Last;
            }
            let order = OffsetOrder([consistent_point.0, 0, self.snapshot_index]);
            self.last_order = order;
            last.offset = Some(SourceOffset {
                value: serde_json::json!({"lsn": consistent_point.0, "snapshot": true, "last_snapshot_record": true}),
                order,
            });
            out.push(last);
        }
        info!(rows = snapshotter.rows_done, "snapshot done");
        self.progress
            .set_snapshot(snapshotter.rows_done, snapshotter.rows_done);
        if self.cfg.snapshot_mode == SnapshotMode::InitialOnly {
            replication.close().await;
            self.progress.set_phase("done");
            return Ok(out);
        }
        self.start_streaming(*replication, consistent_point).await?;
        Ok(out)
    }

    // ---------------------------------------------------------------- resumed snapshot

    /// `value` plus the resumed snapshot's progress while one runs, so that whichever offset
    /// is committed last says how far the snapshot got.
    fn with_progress(&self, mut value: serde_json::Value) -> serde_json::Value {
        if let Some(b) = &self.backfill
            && !b.finished()
            && let Some(map) = value.as_object_mut()
        {
            map.insert("snapshot_progress".into(), b.progress_json.clone());
        }
        value
    }

    fn window_open(&self) -> bool {
        self.backfill
            .as_ref()
            .and_then(|b| b.window.as_ref())
            .is_some_and(|w| w.open)
    }

    /// A streamed change of `table` (its before/after images): drops the rows it touches
    /// from the open window's chunk.
    fn backfill_saw(&mut self, table: &CapturedTable, rows: &[&Row]) {
        if let Some(w) = self.backfill.as_mut().and_then(|b| b.window.as_mut()) {
            w.saw(&table.schema, rows);
        }
    }

    /// Between polls: when no window is open, opens one over the next chunk (low watermark,
    /// SELECT, high watermark), or ends the resumed snapshot when nothing is left.
    async fn backfill_step(&mut self) -> Result<(), PgError> {
        let Some(b) = self.backfill.as_mut() else {
            return Ok(());
        };
        if b.window.is_some() {
            return Ok(());
        }
        if b.retries > crate::backfill::MAX_RETRIES {
            let table = b
                .queue
                .front()
                .map(|w| w.table.to_string())
                .unwrap_or_default();
            return Err(PgError::Setup(format!(
                "table {table} changed during each of {} attempts to read a chunk of it after \
                 the interrupted snapshot, in ways its rows cannot be matched by primary key \
                 (no primary key, or a REPLICA IDENTITY that leaves key columns out); give it \
                 a primary key with the default or full replica identity, or pause its \
                 writers until the snapshot finishes",
                b.retries
            )));
        }
        let Some(work) = b.queue.pop_front() else {
            let rows = b.rows_done;
            self.backfill = None;
            info!(rows, "interrupted snapshot finished while streaming");
            self.progress.set_snapshot(rows, rows);
            self.progress.set_phase("streaming");
            return Ok(());
        };
        let id = b.next_id;
        b.next_id += 1;
        let (low, high) = (b.watermark(id, false), b.watermark(id, true));
        let Some(query) = TableQuery::load(&self.sql, &work.table).await? else {
            // Dropped since: nothing to read.
            warn!(table = %work.table, "table of the interrupted snapshot no longer exists");
            if let Some(b) = self.backfill.as_mut() {
                b.progress.chunk_read(&work.table, None, true);
                b.progress_json = b.progress.to_json();
            }
            return Ok(());
        };
        self.emit_watermark(&low).await?;
        let sql = if query.keyed() {
            query.chunk_sql(work.after.as_deref(), self.cfg.snapshot_fetch_size)
        } else {
            query.all_sql().to_owned()
        };
        let rows = query_rows(&self.sql, &sql, || format!("reading table {}", work.table)).await?;
        self.emit_watermark(&high).await?;
        let (last_key, table_done) = if query.keyed() {
            let last = match rows.last() {
                Some(r) => Some(query.key_of(r)?),
                None => work.after.clone(),
            };
            (last, rows.len() < self.cfg.snapshot_fetch_size)
        } else {
            (None, true)
        };
        let table = self.catalog_table(&work.table, &query.columns)?;
        let converted = rows
            .iter()
            .map(|row| self.convert_row(&table, |i| row.get(i).map(TupleRef::Text), None))
            .collect::<Result<Vec<_>, _>>()?;
        debug!(table = %work.table, rows = converted.len(), window = id, "backfill window opened");
        let window = Window::new(
            id,
            work,
            table,
            query.key_names(),
            converted,
            last_key,
            table_done,
        );
        if let Some(b) = self.backfill.as_mut() {
            b.window = Some(window);
        }
        Ok(())
    }

    async fn emit_watermark(&self, content: &str) -> Result<(), PgError> {
        self.sql
            .execute(
                "SELECT pg_logical_emit_message(true, $1, $2)",
                &[&WATERMARK_PREFIX, &content],
            )
            .await
            .map_err(PgError::sql(
                "writing a snapshot watermark with pg_logical_emit_message (the role needs \
                 EXECUTE on it, as for heartbeats)",
            ))?;
        Ok(())
    }

    /// A watermark reached the stream: the low one opens the window; the high one emits
    /// what is left of the chunk as `r` events carrying the new progress.
    fn on_watermark(
        &mut self,
        content: &[u8],
        lsn: Lsn,
        out: &mut Vec<SourceRecord>,
    ) -> Result<(), PgError> {
        let Some(b) = self.backfill.as_mut() else {
            return Ok(());
        };
        match b.is_watermark(content) {
            None => Ok(()),
            Some(false) => {
                if let Some(w) = b.window.as_mut() {
                    w.open = true;
                }
                Ok(())
            }
            Some(true) => {
                let Some(window) = b.window.take() else {
                    return Ok(());
                };
                if b.close(&window) {
                    debug!(table = %window.work.table, "keyless table changed inside its window; reading it again");
                    return Ok(());
                }
                let last = b.finished();
                let (id, read) = (window.id, window.read());
                let (table, rows) = window.into_rows();
                debug!(table = %table.schema.id, window = id, read, emitted = rows.len(), "backfill window closed");
                b.rows_done += rows.len() as u64;
                let (done, estimate) = (b.rows_done, b.rows_estimate);
                self.progress.set_snapshot(done, estimate.max(done));
                let ts = now_ms();
                let n = rows.len();
                for (i, values) in rows.into_iter().enumerate() {
                    let marker = if last && i + 1 == n {
                        SnapshotMarker::Last
                    } else {
                        SnapshotMarker::True
                    };
                    // The watermark's transaction ends right after: its Commit gives the last
                    // row the offset, with the progress that includes this chunk.
                    let record = self.read_record(&table, values, marker, lsn, ts, None);
                    self.push(out, record);
                }
                Ok(())
            }
        }
    }

    // ---------------------------------------------------------------- streaming

    async fn poll_stream(&mut self) -> Result<Vec<SourceRecord>, PgError> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
        let mut out = Vec::new();
        self.backfill_step().await?;
        while let Some(rx) = self.rx.as_mut() {
            let items = if out.is_empty() {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(items)) => items,
                    Ok(None) => {
                        return Err(PgError::io(
                            "postgres replication stream",
                            std::io::Error::other("the stream reader stopped"),
                        ));
                    }
                    Err(_) => break,
                }
            } else {
                match rx.try_recv() {
                    Ok(items) => items,
                    Err(_) => break,
                }
            };
            for item in items {
                self.handle(item, &mut out).await?;
            }
            if out.len() >= self.cfg.max_batch_size {
                break;
            }
        }
        self.maybe_heartbeat(&mut out).await?;
        self.maybe_check_lag().await;
        Ok(out)
    }

    async fn handle(&mut self, item: Item, out: &mut Vec<SourceRecord>) -> Result<(), PgError> {
        let (lsn, msg) = match item {
            Item::Failed(e) => return Err(e),
            Item::Idle(lsn) => {
                if self.txn.is_none() {
                    self.idle = Some(lsn);
                }
                return Ok(());
            }
            Item::Msg(lsn, msg) => (lsn, msg),
        };
        match msg {
            PgOutput::Begin { commit_ts, xid, .. } => {
                self.txn = Some(Txn {
                    xid,
                    commit_ts_ms: pg_ts_to_ms(commit_ts),
                    events: 0,
                    per_table: HashMap::new(),
                    begin_sent: false,
                });
            }
            PgOutput::Commit {
                commit_lsn,
                end_lsn,
                ..
            } => {
                let txn = self.txn.take();
                if let Some(txn) = &txn
                    && txn.begin_sent
                {
                    let end = self.transaction_end(txn, end_lsn);
                    self.push(out, end);
                }
                self.last_commit_lsn = commit_lsn;
                match self.pending.take() {
                    Some(mut last) => {
                        let order = OffsetOrder([end_lsn.0, 0, 0]);
                        last.offset = Some(SourceOffset {
                            value: self.with_progress(serde_json::json!({
                                "lsn": end_lsn.0,
                                "lsn_commit": commit_lsn.0,
                                "txId": txn.as_ref().map(|t| t.xid),
                                "ts_usec": txn.as_ref().map(|t| t.commit_ts_ms * 1000),
                            })),
                            order,
                        });
                        self.last_order = order;
                        self.idle = None;
                        out.push(last);
                    }
                    // Nothing captured in this transaction: its end is a safe idle point.
                    None => self.idle = Some(end_lsn),
                }
            }
            PgOutput::Origin => {}
            PgOutput::Relation(r) => self.on_relation(r).await?,
            PgOutput::Type { oid, .. } => {
                if !self.catalog.knows(oid) {
                    self.catalog = slot::load_types(&self.sql).await?;
                }
            }
            PgOutput::Insert { relation, new } => {
                let Some(table) = self.table(relation)? else {
                    return Ok(());
                };
                // A skipped operation still reconciles an open snapshot window.
                if self.cfg.skipped_operations.contains(&Op::Create) && !self.window_open() {
                    return Ok(());
                }
                let after = self.convert_row(&table, tuple_get(&new), None)?;
                self.backfill_saw(&table, &[&after]);
                if self.cfg.skipped_operations.contains(&Op::Create) {
                    return Ok(());
                }
                self.emit_change(out, &table, Op::Create, None, Some(after), lsn);
            }
            PgOutput::Update { relation, old, new } => {
                let Some(table) = self.table(relation)? else {
                    return Ok(());
                };
                // A skipped operation still reconciles an open snapshot window.
                if self.cfg.skipped_operations.contains(&Op::Update) && !self.window_open() {
                    return Ok(());
                }
                let before = match &old {
                    Some((_, tuple)) => Some(self.convert_row(&table, tuple_get(tuple), None)?),
                    None => None,
                };
                // Only a full old row (`O`, REPLICA IDENTITY FULL) can supply unchanged TOAST.
                let full_old = matches!(&old, Some((b'O', _)));
                let after = self.convert_row(
                    &table,
                    tuple_get(&new),
                    if full_old { before.as_ref() } else { None },
                )?;
                match &before {
                    Some(b) => self.backfill_saw(&table, &[b, &after]),
                    None => self.backfill_saw(&table, &[&after]),
                }
                if self.cfg.skipped_operations.contains(&Op::Update) {
                    return Ok(());
                }
                self.emit_change(out, &table, Op::Update, before, Some(after), lsn);
            }
            PgOutput::Delete { relation, old, .. } => {
                let Some(table) = self.table(relation)? else {
                    return Ok(());
                };
                // A skipped operation still reconciles an open snapshot window.
                if self.cfg.skipped_operations.contains(&Op::Delete) && !self.window_open() {
                    return Ok(());
                }
                let before = self.convert_row(&table, tuple_get(&old), None)?;
                self.backfill_saw(&table, &[&before]);
                if self.cfg.skipped_operations.contains(&Op::Delete) {
                    return Ok(());
                }
                self.emit_change(out, &table, Op::Delete, Some(before.clone()), None, lsn);
                if self.cfg.tombstones_on_delete {
                    let tombstone = SourceRecord {
                        topic: table.topic.clone(),
                        payload: Payload::Tombstone {
                            table: table.schema.clone(),
                            row: before,
                        },
                        partition: self.partition.clone(),
                        offset: None,
                    };
                    self.push(out, tombstone);
                }
            }
            PgOutput::Truncate { relations, .. } => {
                for rel in &relations {
                    if let Some(table) = self.table(*rel)?
                        && let Some(w) = self.backfill.as_mut().and_then(|b| b.window.as_mut())
                    {
                        w.truncated(&table.schema.id);
                    }
                }
                if self.cfg.skipped_operations.contains(&Op::Truncate) {
                    return Ok(());
                }
                for rel in relations {
                    if let Some(table) = self.table(rel)? {
                        self.emit_change(out, &table, Op::Truncate, None, None, lsn);
                    }
                }
            }
            PgOutput::Message {
                transactional,
                lsn: msg_lsn,
                prefix,
                content,
            } => {
                if prefix == WATERMARK_PREFIX {
                    return self.on_watermark(&content, msg_lsn, out);
                }
                if prefix == HEARTBEAT_MESSAGE_PREFIX {
                    if !transactional && self.txn.is_none() {
                        self.idle = Some(msg_lsn);
                    }
                    return Ok(());
                }
                use base64_encode::encode;
                let ts = self.txn.as_ref().map_or_else(now_ms, |t| t.commit_ts_ms);
                let record = SourceRecord {
                    topic: Arc::from(self.cfg.message_topic()),
                    payload: Payload::Json {
                        key: Some(serde_json::json!({ "prefix": prefix })),
                        value: serde_json::json!({
                            "op": "m",
                            "ts_ms": now_ms(),
                            "source": {
                                "connector": "postgresql",
                                "name": self.cfg.topic_prefix,
                                "ts_ms": ts,
                                "db": self.cfg.dbname,
                                "lsn": msg_lsn.0,
                                "txId": self.txn.as_ref().map(|t| t.xid),
                            },
                            "message": {"prefix": prefix, "content": encode(&content)},
                        }),
                    },
                    partition: self.partition.clone(),
                    offset: None,
                };
                if transactional {
                    self.push(out, record);
                } else if self.txn.is_none() {
                    // A message outside a transaction is its own unit: resuming after it is
                    // correct.
                    let order = OffsetOrder([msg_lsn.0, 1, 0]).max(self.last_order);
                    let mut record = record;
                    if order > self.last_order {
                        record.offset = Some(SourceOffset {
                            value: self.with_progress(serde_json::json!({"lsn": msg_lsn.0})),
                            order,
                        });
                        self.last_order = order;
                    }
                    if let Some(prev) = self.pending.take() {
                        out.push(prev);
                    }
                    out.push(record);
                }
            }
        }
        Ok(())
    }

    fn table(&self, relation: u32) -> Result<Option<Arc<CapturedTable>>, PgError> {
        match self.relations.get(&relation) {
            Some(t) => Ok(t.clone()),
            None => Err(PgError::Protocol(format!(
                "change for relation {relation} before its Relation message"
            ))),
        }
    }

    async fn on_relation(&mut self, r: Relation) -> Result<(), PgError> {
        let id = TableId::new(r.namespace.clone(), r.name.clone());
        if !self.cfg.captures(&id) {
            self.relations.insert(r.oid, None);
            return Ok(());
        }
        if r.columns.iter().any(|c| !self.catalog.knows(c.type_oid)) {
            self.catalog = slot::load_types(&self.sql).await?;
        }
        let catalog_columns = slot::table_columns(&self.sql, &id).await?;
        let source: Vec<SourceColumn<'_>> = r
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.type_oid, c.type_modifier))
            .collect();
        let table = build_table(
            &self.cfg,
            &self.catalog,
            &id,
            &source,
            &catalog_columns,
            self.schemas.get(&id),
        )?;
        debug!(table = %id, version = table.schema.version, identity = %(r.replica_identity as char), "relation");
        self.schemas.insert(id, table.schema.clone());
        self.relations.insert(r.oid, Some(Arc::new(table)));
        Ok(())
    }

    fn emit_change(
        &mut self,
        out: &mut Vec<SourceRecord>,
        table: &CapturedTable,
        op: Op,
        before: Option<Row>,
        after: Option<Row>,
        lsn: Lsn,
    ) {
        let (xid, ts) = self
            .txn
            .as_ref()
            .map_or((None, now_ms()), |t| (Some(t.xid), t.commit_ts_ms));
        let mut transaction = None;
        if self.cfg.provide_transaction_metadata {
            let begin = match self.txn.as_mut() {
                Some(txn) => {
                    txn.events += 1;
                    let per = txn.per_table.entry(table.schema.id.clone()).or_insert(0);
                    *per += 1;
                    transaction = Some(TransactionInfo {
                        id: Arc::from(format!("{}:{}", txn.xid, lsn.0)),
                        total_order: txn.events,
                        data_collection_order: *per,
                    });
                    !std::mem::replace(&mut txn.begin_sent, true)
                }
                None => false,
            };
            if begin && let Some(txn) = self.txn.as_ref() {
                let record = self.transaction_begin(txn);
                self.push(out, record);
            }
        }
        let event = ChangeEvent {
            op,
            table: table.schema.clone(),
            before,
            after,
            source: self.source_info(table, ts, SnapshotMarker::False, lsn, xid),
            transaction,
            processed_ts_ms: now_ms(),
            headers: Vec::new(),
        };
        let record = SourceRecord {
            topic: table.topic.clone(),
            payload: Payload::Change(Box::new(event)),
            partition: self.partition.clone(),
            offset: None,
        };
        self.push(out, record);
    }

    fn transaction_id(&self, txn: &Txn) -> String {
        // Debezium: "<txId>:<lsn>" where lsn is the commit's.
        format!("{}", txn.xid)
    }

    fn transaction_begin(&self, txn: &Txn) -> SourceRecord {
        let id = self.transaction_id(txn);
        SourceRecord {
            topic: Arc::from(self.cfg.transaction_topic()),
            payload: Payload::Json {
                key: Some(serde_json::json!({ "id": id })),
                value: serde_json::json!({
                    "status": "BEGIN",
                    "id": id,
                    "event_count": null,
                    "data_collections": null,
                    "ts_ms": txn.commit_ts_ms,
                }),
            },
            partition: self.partition.clone(),
            offset: None,
        }
    }

    fn transaction_end(&self, txn: &Txn, _end: Lsn) -> SourceRecord {
        let id = self.transaction_id(txn);
        let collections: Vec<serde_json::Value> = txn
            .per_table
            .iter()
            .map(|(t, n)| serde_json::json!({"data_collection": t.to_string(), "event_count": n}))
            .collect();
        SourceRecord {
            topic: Arc::from(self.cfg.transaction_topic()),
            payload: Payload::Json {
                key: Some(serde_json::json!({ "id": id })),
                value: serde_json::json!({
                    "status": "END",
                    "id": id,
                    "event_count": txn.events,
                    "data_collections": collections,
                    "ts_ms": txn.commit_ts_ms,
                }),
            },
            partition: self.partition.clone(),
            offset: None,
        }
    }

    /// Every `heartbeat.interval.ms`: run the action query, emit a logical decoding message
    /// (so this database's WAL moves and the stream reaches a new position), and, when the
    /// stream is idle past the last offset, a heartbeat record carrying that position.
    async fn maybe_heartbeat(&mut self, out: &mut Vec<SourceRecord>) -> Result<(), PgError> {
        let Some(interval) = self.cfg.heartbeat_interval else {
            return Ok(());
        };
        if self.last_heartbeat.elapsed() < interval {
            return Ok(());
        }
        self.last_heartbeat = Instant::now();
        if let Some(q) = &self.cfg.heartbeat_action_query
            && let Err(e) = self.sql.batch_execute(q).await
        {
            warn!(error = %e, "heartbeat.action.query failed");
        }
        if let Err(e) = self
            .sql
            .execute(
                "SELECT pg_logical_emit_message(false, $1, '')",
                &[&HEARTBEAT_MESSAGE_PREFIX],
            )
            .await
            && !self.heartbeat_warned
        {
            self.heartbeat_warned = true;
            warn!(error = %e, "pg_logical_emit_message is not allowed for this role; heartbeats rely on server keepalives and heartbeat.action.query");
        }
        if self.txn.is_some() || self.pending.is_some() {
            return Ok(());
        }
        let Some(idle) = self.idle else {
            return Ok(());
        };
        let order = OffsetOrder([idle.0, 1, 0]);
        if order <= self.last_order {
            return Ok(());
        }
        self.last_order = order;
        out.push(SourceRecord {
            topic: Arc::from(self.cfg.heartbeat_topic()),
            payload: Payload::Json {
                key: Some(serde_json::json!({ "serverName": self.cfg.topic_prefix })),
                value: serde_json::json!({ "ts_ms": now_ms() }),
            },
            partition: self.partition.clone(),
            offset: Some(SourceOffset {
                value: self.with_progress(serde_json::json!({ "lsn": idle.0 })),
                order,
            }),
        });
        Ok(())
    }

    async fn maybe_check_lag(&mut self) {
        if self.last_lag_check.elapsed() < Duration::from_secs(10) {
            return;
        }
        self.last_lag_check = Instant::now();
        match slot::slot_lag_bytes(&self.sql, &self.cfg.slot_name).await {
            Ok(Some(lag)) => {
                self.progress.set_lag_bytes(u64::try_from(lag).unwrap_or(0));
                self.progress
                    .set_phase(&format!("streaming (slot lag {lag} bytes)"));
                debug!(slot = %self.cfg.slot_name, lag_bytes = lag, "slot lag");
            }
            Ok(None) => {}
            Err(e) => debug!(error = %e, "cannot read slot lag"),
        }
    }
}

/// A borrowed tuple value.
enum TupleRef<'a> {
    Null,
    Unchanged,
    Text(&'a str),
}

fn tuple_get<'a>(tuple: &'a [TupleValue]) -> impl Fn(usize) -> Option<TupleRef<'a>> + 'a {
    move |i| {
        Some(match tuple.get(i)? {
            TupleValue::Null => TupleRef::Null,
            TupleValue::Unchanged => TupleRef::Unchanged,
            TupleValue::Text(b) => match std::str::from_utf8(b) {
                Ok(s) => TupleRef::Text(s),
                Err(_) => TupleRef::Null,
            },
        })
    }
}

mod base64_encode {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    /// Standard base64 with padding.
    pub fn encode(data: &[u8]) -> String {
        let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
        for chunk in data.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[cfg(test)]
    #[test]
    fn encodes() {
        assert_eq!(encode(b"hello"), "aGVsbG8=");
        assert_eq!(encode(b""), "");
        assert_eq!(encode(b"ab"), "YWI=");
    }
}

/// Reads the replication stream, decodes pgoutput, answers keepalives and sends standby
/// status updates with the flushed LSN the task last learned from `commit()`.
async fn run_reader(
    mut reader: StreamReader,
    mut writer: StatusWriter,
    tx: mpsc::Sender<Vec<Item>>,
    mut flushed: watch::Receiver<Lsn>,
    interval: Duration,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut in_txn = false;
    let mut batch: Vec<Item> = Vec::with_capacity(512);
    let result: Result<(), PgError> = async {
        loop {
            tokio::select! {
                biased;
                changed = flushed.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    let lsn = *flushed.borrow_and_update();
                    writer.send_status(lsn, false).await?;
                }
                _ = ticker.tick() => {
                    let lsn = *flushed.borrow();
                    writer.send_status(lsn, false).await?;
                }
                msg = reader.next() => {
                    match msg? {
                        StreamMessage::XLogData { start, data, .. } => {
                            let decoded = decode(data)?;
                            match &decoded {
                                PgOutput::Begin { .. } => in_txn = true,
                                PgOutput::Commit { .. } => in_txn = false,
                                _ => {}
                            }
                            batch.push(Item::Msg(start, decoded));
                        }
                        StreamMessage::Keepalive { wal_end, reply_requested } => {
                            if reply_requested {
                                let lsn = *flushed.borrow();
                                writer.send_status(lsn, false).await?;
                            }
                            if !in_txn {
                                batch.push(Item::Idle(wal_end));
                            }
                        }
                    }
                    if batch.len() >= 512 || !reader.has_buffered_frame() {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(512));
                        // Keep answering the server while the task is slow to take the batch.
                        let permit = loop {
                            tokio::select! {
                                permit = tx.reserve() => match permit {
                                    Ok(p) => break p,
                                    Err(_) => return Ok(()),
                                },
                                _ = ticker.tick() => {
                                    let lsn = *flushed.borrow();
                                    writer.send_status(lsn, false).await?;
                                }
                            }
                        };
                        permit.send(full);
                    }
                }
            }
        }
    }
    .await;
    if let Err(e) = result {
        let _ = tx.send(vec![Item::Failed(e)]).await;
    }
    writer.close().await;
}

#[async_trait]
impl SourceTask for PgTask {
    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectorError> {
        let result = match &self.phase {
            Phase::Snapshot { .. } => self.poll_snapshot().await,
            Phase::Streaming => self.poll_stream().await,
            Phase::Done => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok(Vec::new())
            }
        };
        let records = result.map_err(ConnectorError::from)?;
        Ok(records)
    }

    async fn commit(&mut self, committed: &[StoredOffset]) -> Result<(), ConnectorError> {
        for o in committed {
            if o.partition != self.partition {
                continue;
            }
            if o.offset.value.get("snapshot").and_then(|v| v.as_bool()) == Some(true) {
                continue;
            }
            if let Some(lsn) = o.offset.value.get("lsn").and_then(|v| v.as_u64()) {
                let lsn = Lsn(lsn);
                self.flushed.send_if_modified(|cur| {
                    if lsn > *cur {
                        *cur = lsn;
                        true
                    } else {
                        false
                    }
                });
                debug!(lsn = %lsn, "flushed LSN acknowledged to the server");
            }
        }
        Ok(())
    }

    async fn close(&mut self) {
        if let Some(handle) = self.reader.take() {
            // Dropping the receiver ends the reader after its current step; abort to be sure.
            self.rx = None;
            handle.abort();
            let _ = handle.await;
        }
        if let Phase::Snapshot { .. } = self.phase {
            let phase = std::mem::replace(&mut self.phase, Phase::Done);
            if let Phase::Snapshot { replication, .. } = phase {
                replication.close().await;
            }
        }
        if self.cfg.slot_drop_on_stop {
            // The walsender may take a moment to exit after the connection closes.
            for _ in 0..50 {
                match slot::slot_info(&self.sql, &self.cfg.slot_name).await {
                    Ok(Some(info)) if info.active_pid.is_some() => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    _ => break,
                }
            }
            match slot::drop_slot(&self.sql, &self.cfg.slot_name).await {
                Ok(()) => {
                    info!(slot = %self.cfg.slot_name, "replication slot dropped (slot.drop.on.stop)")
                }
                Err(e) => {
                    warn!(slot = %self.cfg.slot_name, error = %e, "cannot drop replication slot")
                }
            }
        }
    }
}
