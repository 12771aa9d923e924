//! The binlog stream: replica connection, event verification and decoding into records.
//!
//! Every event's CRC32 is verified here (mysql_common strips checksums without checking).
//! MariaDB's own events are parsed in [`crate::gtid`]. Any event that may carry rows and
//! cannot be decoded (compressed events 165-171, encryption, unknown types) stops the task
//! with an error instead of being skipped.
//!
//! Positions: the stream is requested by GTID when the stored position has a GTID state and
//! the server can use it (MariaDB: `@slave_connect_state`; MySQL with `gtid_mode=ON`:
//! `COM_BINLOG_DUMP_GTID` with the executed set), else by file/position (see
//! [`dump_mode`]). Either way it restarts at the first event of the transaction the offset
//! is in, and the offset's `row` count of rows is skipped there.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use bitvec::slice::BitSlice;
use futures::StreamExt as _;
use mysql_async::binlog::events::{
    Event, EventData, QueryEvent, RotateEvent, RowsEventData, TableMapEvent,
};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::prelude::Queryable as _;
use mysql_async::{BinlogStream, BinlogStreamRequest};
use tracing::{debug, info};
use tributary_runtime::model::{
    ChangeEvent, Op, Row, SnapshotMarker, SourceInfo, TransactionInfo, Value,
};
use tributary_runtime::record::{
    OffsetOrder, Payload, SourceOffset, SourcePartition, SourceRecord,
};

use crate::config::MySqlConfig;
use crate::decode::{Origin, convert, convert_decimal};
use crate::error::MySqlError;
use crate::gtid::{GtidState, MySqlGtid, MySqlGtidSet, parse_gtid_event};
use crate::history::{Ddl, SchemaHistory};
use crate::image::{Cell, Image, ImageReader};
use crate::schema::{TableInfo, from_table_map};
use crate::tls::ServerOpts;

/// Where to start reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartPosition {
    pub file: String,
    pub pos: u64,
    /// MariaDB state of completed transactions; when non-empty (and the server is MariaDB)
    /// the stream starts by GTID, which survives binlog file renames and failover.
    pub gtids: GtidState,
    /// MySQL: the executed GTID set of completed transactions at this position (`None`
    /// when unknown: `gtid_mode` not ON, or a position without one). When present the
    /// reader keeps it up to date and writes it into offsets; a resume on a server with
    /// `gtid_mode=ON` requests the stream with it (`COM_BINLOG_DUMP_GTID`).
    pub mysql_gtids: Option<MySqlGtidSet>,
    /// Rows of the first transaction already delivered (skipped on resume).
    pub skip_rows: u64,
    /// Request the stream by GTID (`@slave_connect_state`, `COM_BINLOG_DUMP_GTID`) rather
    /// than file/position, when the server allows it (see [`dump_mode`]).
    pub by_gtid: bool,
}

impl StartPosition {
    /// The GTID position of the offset's `gtids`: MariaDB's state, or MySQL's executed set
    /// (`uuid:1-5:7-9,uuid2:1-3`, as `@@gtid_executed` prints it and Debezium stores it);
    /// empty when there is none.
    pub fn gtids_text(&self) -> String {
        if !self.gtids.is_empty() {
            return self.gtids.to_string();
        }
        match &self.mysql_gtids {
            Some(set) => set.to_string(),
            None => String::new(),
        }
    }
}

/// How the binlog stream is requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpMode {
    /// `COM_BINLOG_DUMP` at the stored file and position.
    FilePos,
    /// MariaDB: `COM_BINLOG_DUMP` after `SET @slave_connect_state = <state>`.
    MariaDbGtid,
    /// MySQL: `COM_BINLOG_DUMP_GTID` with the executed set; the server sends every
    /// transaction not in it.
    MySqlGtid,
}

/// How to request the stream from `start`: by GTID when the position asks for it
/// (`by_gtid`: a resume), has a state of the server's kind and, on MySQL, the server runs
/// with `gtid_mode=ON` (`mysql_gtid_mode_on`; `COM_BINLOG_DUMP_GTID` is refused with OFF
/// and cannot carry anonymous transactions in the mixed modes); else by file/position.
pub fn dump_mode(start: &StartPosition, mariadb: bool, mysql_gtid_mode_on: bool) -> DumpMode {
    if !start.by_gtid {
        return DumpMode::FilePos;
    }
    if mariadb {
        if start.gtids.is_empty() {
            DumpMode::FilePos
        } else {
            DumpMode::MariaDbGtid
        }
    } else if mysql_gtid_mode_on && start.mysql_gtids.as_ref().is_some_and(|s| !s.is_empty()) {
        DumpMode::MySqlGtid
    } else {
        DumpMode::FilePos
    }
}

/// The numeric suffix of a binlog file name: `mysql-bin.000042` → 42.
pub fn file_index(file: &str) -> u64 {
    file.rsplit('.')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The offset object of a position; `gtids` is the GTID position's text (MariaDB state or
/// MySQL set, see [`StartPosition::gtids_text`]), left out when empty.
pub fn offset(file: &str, pos: u64, row: u64, gtids: String) -> SourceOffset {
    let mut value = serde_json::json!({ "file": file, "pos": pos, "row": row });
    if !gtids.is_empty() {
        value["gtids"] = serde_json::Value::String(gtids);
    }
    SourceOffset {
        value,
        order: OffsetOrder([file_index(file), pos, row]),
    }
}

/// Opens a replica connection and requests the binlog from `start` (how: [`dump_mode`]).
pub async fn open_stream(
    server: &ServerOpts,
    cfg: &MySqlConfig,
    mariadb: bool,
    start: &StartPosition,
) -> Result<BinlogStream, MySqlError> {
    let mut conn = server.connect().await?;
    // Asked only when it matters: a MySQL position that would go by GTID.
    let gtid_mode_on = !mariadb
        && dump_mode(start, false, true) == DumpMode::MySqlGtid
        && mysql_gtid_mode_on(&mut conn).await?;
    let mode = dump_mode(start, mariadb, gtid_mode_on);
    let mut session = Vec::new();
    if mariadb {
        // Without capability 4 MariaDB replaces its GTID events by dummies.
        session.push("SET @mariadb_slave_capability = 4".to_owned());
    }
    // Server heartbeats at most a second apart keep an idle connection alive through NATs
    // and proxies, and let `heartbeat.interval.ms` records follow an idle server.
    let period_ms = match cfg.heartbeat_ms {
        0 => 1000,
        ms => ms.min(1000),
    };
    session.push(format!(
        "SET @master_heartbeat_period = {}",
        period_ms.saturating_mul(1_000_000)
    ));
    if mode == DumpMode::MariaDbGtid {
        session.push(format!(
            "SET @slave_connect_state = '{}', @slave_gtid_strict_mode = 0, @slave_gtid_ignore_duplicates = 0",
            start.gtids
        ));
    }
    for sql in session {
        conn.query_drop(&sql)
            .await
            .map_err(|e| MySqlError::query("replica session setup", e))?;
    }
    info!(
        connector = %cfg.name,
        file = %start.file,
        pos = start.pos,
        gtids = %start.gtids_text(),
        mode = ?mode,
        skip_rows = start.skip_rows,
        "requesting binlog"
    );
    // By GTID the server finds the first file itself: no file name, position 4.
    let (file, pos) = match mode {
        DumpMode::FilePos => (start.file.as_str(), start.pos),
        DumpMode::MariaDbGtid | DumpMode::MySqlGtid => ("", 4),
    };
    let mut request = BinlogStreamRequest::new(cfg.server_id)
        .with_filename(file.as_bytes())
        .with_pos(pos);
    if mode == DumpMode::MySqlGtid
        && let Some(set) = &start.mysql_gtids
    {
        request = request.with_gtid().with_gtid_set(set.to_sids());
    }
    conn.get_binlog_stream(request)
        .await
        .map_err(|e| classify_stream_error(e, start))
}

/// Whether a MySQL server runs with `gtid_mode=ON` (the only mode in which every
/// transaction has a GTID and `COM_BINLOG_DUMP_GTID` can resume from a set). `false` on
/// servers without the variable (MariaDB).
pub async fn mysql_gtid_mode_on(conn: &mut mysql_async::Conn) -> Result<bool, MySqlError> {
    let row: Option<mysql_async::Row> = match conn.query_first("SELECT @@GLOBAL.gtid_mode").await {
        Ok(row) => row,
        // ER_UNKNOWN_SYSTEM_VARIABLE
        Err(mysql_async::Error::Server(e)) if e.code == 1193 => return Ok(false),
        Err(e) => return Err(MySqlError::query("reading @@gtid_mode", e)),
    };
    let mode = row.and_then(|mut r| crate::rows::text(&mut r, 0));
    Ok(mode.is_some_and(|m| m.eq_ignore_ascii_case("ON")))
}

/// Server errors 1236 (ER_MASTER_FATAL_ERROR_READING_BINLOG) mean the position is gone.
pub fn classify_stream_error(err: mysql_async::Error, start: &StartPosition) -> MySqlError {
    if let mysql_async::Error::Server(ref e) = err
        && e.code == 1236
    {
        let gtids = start.gtids_text();
        return MySqlError::Purged {
            position: if gtids.is_empty() {
                format!("{}:{}", start.file, start.pos)
            } else {
                format!("{}:{} (GTID {gtids})", start.file, start.pos)
            },
            detail: e.message.clone(),
        };
    }
    MySqlError::query("binlog stream", err)
}

/// Verifies an event's CRC32 (computed over the 19-byte header and the body).
fn verify_checksum(ev: &Event, file: &str) -> Result<(), MySqlError> {
    let Some(stored) = ev.checksum() else {
        return Ok(());
    };
    let stored = u32::from_le_bytes(stored);
    let h = ev.header();
    let mut flags = h.flags_raw();
    let is_fde = h.event_type_raw() == 15;
    if is_fde {
        // LOG_EVENT_BINLOG_IN_USE_F is cleared before checksumming.
        flags &= !0x1;
    }
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&h.timestamp().to_le_bytes());
    hasher.update(&[h.event_type_raw()]);
    hasher.update(&h.server_id().to_le_bytes());
    hasher.update(&h.event_size().to_le_bytes());
    hasher.update(&h.log_pos().to_le_bytes());
    hasher.update(&flags.to_le_bytes());
    hasher.update(ev.data());
    if is_fde {
        hasher.update(&[1]); // the checksum algorithm byte: CRC32
    }
    let computed = hasher.finalize();
    if computed != stored {
        return Err(MySqlError::Checksum {
            file: file.to_owned(),
            pos: u64::from(h.log_pos().saturating_sub(h.event_size())),
            event_type: h.event_type_raw(),
            stored,
            computed,
        });
    }
    Ok(())
}

/// CRC32 of an event whose trailing checksum mysql_common did not strip (the fake ROTATE
/// sent before the format description): `Some(body)` when the last 4 bytes are its checksum.
fn strip_trailing_checksum<'a>(ev: &Event, data: &'a [u8]) -> Option<&'a [u8]> {
    let (body, crc) = data.split_at_checked(data.len().checked_sub(4)?)?;
    let h = ev.header();
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&h.timestamp().to_le_bytes());
    hasher.update(&[h.event_type_raw()]);
    hasher.update(&h.server_id().to_le_bytes());
    hasher.update(&h.event_size().to_le_bytes());
    hasher.update(&h.log_pos().to_le_bytes());
    hasher.update(&h.flags_raw().to_le_bytes());
    hasher.update(body);
    (hasher.finalize().to_le_bytes() == crc).then_some(body)
}

/// The file name in a ROTATE body whose checksum did not verify (MariaDB's fake ROTATE at
/// the start of a stream): binlog names are `<base>.<digits>`, so the four checksum bytes are
/// dropped when that leaves such a name and the whole body is not one. Looking at the last
/// byte alone is not enough: one checksum in 25 ends in an ASCII digit.
fn fake_rotate_name(raw: &[u8]) -> &[u8] {
    let well_formed = |b: &[u8]| {
        b.iter().rposition(|&c| c == b'.').is_some_and(|dot| {
            let suffix = &b[dot + 1..];
            !suffix.is_empty() && suffix.iter().all(u8::is_ascii_digit)
        })
    };
    match raw.len().checked_sub(4) {
        Some(n) if !well_formed(raw) && well_formed(&raw[..n]) => &raw[..n],
        _ => raw,
    }
}

/// Where a row sits in the binlog, for its `source` block and offset.
struct RowAt {
    event_pos: u64,
    row_index: u64,
    ts_ms: i64,
    server_id: u32,
    /// The event's last row: its record carries the offset.
    carries_offset: bool,
    /// When the rows event was decoded (Debezium's `ts_ms` of the envelope).
    processed_ts_ms: i64,
}

/// The transaction being read.
#[derive(Debug, Default)]
struct Txn {
    /// Position of its first event (GTID or BEGIN), where a resume restarts.
    start: u64,
    gtid: Option<String>,
    maria: Option<crate::gtid::MariaGtid>,
    /// MySQL GTID, added to the executed set at commit.
    mysql: Option<MySqlGtid>,
    /// Row changes seen so far in it (filtered tables included, so the count is stable).
    rows: u64,
    /// Rows of this transaction delivered before a restart.
    skip: u64,
    /// Events emitted in it, for transaction metadata.
    emitted: u64,
    per_table: HashMap<Arc<str>, u64>,
    ts_ms: i64,
    open: bool,
}

/// Decodes binlog events into source records and tracks the resumable position.
pub struct BinlogReader {
    cfg: Arc<MySqlConfig>,
    partition: SourcePartition,
    connector: &'static str,
    file: String,
    /// Completed transactions (MariaDB GTIDs).
    gtids: GtidState,
    /// Whether `gtids` covers every domain (it started from a full state); a partial state
    /// is never written into offsets, so such resumes go by file/position.
    gtids_complete: bool,
    /// MySQL: the executed GTID set of completed transactions, when the start position had
    /// one (a set built from the stream alone would lack everything before it, and a resume
    /// with it would have the server send all of that again).
    mysql_gtids: Option<MySqlGtidSet>,
    txn: Txn,
    /// Rows to skip in the first transaction (resume inside a transaction).
    pending_skip: u64,
    tables: HashMap<u64, Option<Arc<TableInfo>>>,
    tmes: HashMap<u64, TableMapEvent<'static>>,
    versions: HashMap<(String, String), (Vec<u8>, Arc<TableInfo>)>,
    /// Position after the last complete transaction (for heartbeats).
    boundary: Option<(String, u64)>,
    /// The `source.db` and `source.table` names of the last table version emitted, shared
    /// by its events instead of copied into each.
    source_names: Option<(Arc<TableInfo>, Arc<str>, Arc<str>)>,
    pub events_read: u64,
    pub bytes_read: u64,
    /// The captured tables' definitions for `tableChanges` (`include.schema.changes` only).
    history: Option<Box<SchemaHistory>>,
}

impl BinlogReader {
    pub fn new(
        cfg: Arc<MySqlConfig>,
        partition: SourcePartition,
        start: &StartPosition,
        connector: &'static str,
    ) -> Self {
        BinlogReader {
            cfg,
            partition,
            connector,
            file: start.file.clone(),
            gtids: start.gtids.clone(),
            gtids_complete: !start.gtids.is_empty(),
            mysql_gtids: start.mysql_gtids.clone(),
            txn: Txn::default(),
            pending_skip: start.skip_rows,
            tables: HashMap::new(),
            tmes: HashMap::new(),
            versions: HashMap::new(),
            boundary: None,
            source_names: None,
            events_read: 0,
            bytes_read: 0,
            history: None,
        }
    }

    /// Follows DDL in this schema history (`include.schema.changes=true`).
    pub fn with_history(mut self, history: Option<Box<SchemaHistory>>) -> Self {
        self.history = history;
        self
    }

    /// The offset of the last transaction boundary seen, if any (for heartbeats).
    pub fn boundary_offset(&self) -> Option<SourceOffset> {
        self.boundary
            .as_ref()
            .map(|(f, p)| offset(f, *p, 0, self.offset_gtids_text()))
    }

    pub fn in_transaction(&self) -> bool {
        self.txn.open
    }

    /// Reads the next event from `stream` (waiting at most until `deadline`) and appends its
    /// records to `out`. `Ok(false)` when the deadline passed without an event.
    pub async fn next(
        &mut self,
        stream: &mut BinlogStream,
        deadline: tokio::time::Instant,
        out: &mut Vec<SourceRecord>,
    ) -> Result<bool, MySqlError> {
        let item = match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => {
                tracing::trace!(connector = %self.cfg.name, "no binlog event before the deadline");
                return Ok(false);
            }
            Ok(None) => {
                return Err(MySqlError::Query {
                    what: "binlog stream ended by the server".into(),
                    source: mysql_async::Error::Driver(mysql_async::DriverError::ConnectionClosed),
                });
            }
            Ok(Some(item)) => item,
        };
        let ev = item.map_err(|e| {
            classify_stream_error(
                e,
                &StartPosition {
                    file: self.file.clone(),
                    pos: self.boundary.as_ref().map_or(0, |b| b.1),
                    gtids: self.gtids.clone(),
                    mysql_gtids: self.mysql_gtids.clone(),
                    skip_rows: 0,
                    by_gtid: false,
                },
            )
        })?;
        self.handle(&ev, out)?;
        if let Some(history) = self.history.as_mut()
            && history.has_pending()
        {
            history.resolve_pending(out).await?;
        }
        Ok(true)
    }

    fn decode_err(&self, what: &str, pos: u64, source: std::io::Error) -> MySqlError {
        MySqlError::Decode {
            what: what.to_owned(),
            file: self.file.clone(),
            pos,
            source,
        }
    }

    /// Handles one event.
    pub fn handle(&mut self, ev: &Event, out: &mut Vec<SourceRecord>) -> Result<(), MySqlError> {
        let h = ev.header();
        let ty = h.event_type_raw();
        let end = u64::from(h.log_pos());
        let start = end.saturating_sub(u64::from(h.event_size()));
        self.events_read += 1;
        self.bytes_read += u64::from(h.event_size());
        let ts_ms = i64::from(h.timestamp()) * 1000;
        tracing::trace!(connector = %self.cfg.name, event_type = ty, file = %self.file, pos = start, "binlog event");

        if ty == 4 {
            // ROTATE. The fake one sent before the format description keeps its checksum
            // in the body (mysql_common did not know the algorithm yet).
            let rotate: RotateEvent<'_> = ev
                .read_event()
                .map_err(|e| self.decode_err("ROTATE event", start, e))?;
            let raw = rotate.name_raw();
            let name_bytes = if ev.checksum().is_none() {
                // Before the format description the checksum stays in the body: drop it
                // when it verifies, or when it is what keeps the name from ending in the
                // file number (MariaDB's fake ROTATE).
                strip_trailing_checksum(ev, raw).unwrap_or_else(|| fake_rotate_name(raw))
            } else {
                verify_checksum(ev, &self.file)?;
                raw
            };
            let name = String::from_utf8_lossy(name_bytes).into_owned();
            debug!(connector = %self.cfg.name, file = %name, pos = rotate.position(), "binlog rotate");
            self.file = name;
            return Ok(());
        }
        verify_checksum(ev, &self.file)?;

        match ty {
            // FORMAT_DESCRIPTION, STOP, INTVAR, RAND, USER_VAR, HEARTBEAT, ROWS_QUERY,
            // PREVIOUS_GTIDS, ANONYMOUS_GTID, TRANSACTION_PAYLOAD (mysql_async yields the
            // decompressed inner events next), ANNOTATE_ROWS, BINLOG_CHECKPOINT, GTID_LIST.
            15 | 3 | 5 | 13 | 14 | 27 | 29 | 34 | 35 | 40 | 160 | 161 | 163 => Ok(()),
            // MySQL GTID: starts a transaction; its `uuid:gno` joins the executed set at
            // commit. (ANONYMOUS_GTID, 34, has none: BEGIN starts that transaction.)
            33 => {
                let Some(EventData::GtidEvent(g)) = ev
                    .read_data()
                    .map_err(|e| self.decode_err("GTID event", start, e))?
                else {
                    return Err(self.decode_err(
                        "GTID event",
                        start,
                        std::io::Error::new(std::io::ErrorKind::InvalidData, "not a GTID event"),
                    ));
                };
                let gtid = MySqlGtid {
                    uuid: g.sid(),
                    gno: g.gno(),
                };
                self.begin(start, Some(gtid.to_string()), ts_ms);
                self.txn.mysql = Some(gtid);
                Ok(())
            }
            162 => {
                let g = parse_gtid_event(ev.data(), h.server_id()).ok_or_else(|| {
                    self.decode_err(
                        "MariaDB GTID event",
                        start,
                        std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "short event body"),
                    )
                })?;
                self.begin(start, Some(g.gtid.to_string()), ts_ms);
                self.txn.maria = Some(g.gtid);
                Ok(())
            }
            2 => self.query(ev, start, end, ts_ms, out),
            16 => {
                self.commit(end, out);
                Ok(())
            }
            19 => self.table_map(ev, start),
            23..=25 | 30..=32 => self.rows(ev, ty, start, ts_ms, out),
            164 => Err(MySqlError::Unsupported(format!(
                "binlog at {}:{start} is encrypted (START_ENCRYPTION event); this connector \
                 cannot decrypt it: disable encrypt_binlog for the captured server",
                self.file
            ))),
            165..=171 => Err(MySqlError::Unsupported(format!(
                "compressed binlog event (type {ty}) at {}:{start}: compressed events are not \
                 supported and cannot be skipped without losing changes; run SET GLOBAL \
                 log_bin_compress=OFF on the server, then take a new snapshot \
                 (snapshot.mode=when_needed or reset the offsets) because these events stay \
                 in the binlog",
                self.file
            ))),
            39 => Err(MySqlError::Unsupported(format!(
                "partial JSON update rows event at {}:{start}; set binlog_row_value_options='' \
                 on the server (full JSON images are required)",
                self.file
            ))),
            other => Err(MySqlError::Unsupported(format!(
                "unknown binlog event type {other} at {}:{start}; refusing to skip an event \
                 that may carry row changes",
                self.file
            ))),
        }
    }

    fn begin(&mut self, start: u64, gtid: Option<String>, ts_ms: i64) {
        self.txn = Txn {
            start,
            gtid,
            maria: None,
            mysql: None,
            rows: 0,
            skip: std::mem::take(&mut self.pending_skip),
            emitted: 0,
            per_table: HashMap::new(),
            ts_ms,
            open: true,
        };
    }

    fn commit(&mut self, end: u64, out: &mut Vec<SourceRecord>) {
        if self.cfg.transaction_metadata && self.txn.emitted > 0 {
            let id = self.txn_id();
            let per_table: Vec<serde_json::Value> = self
                .txn
                .per_table
                .iter()
                .map(|(t, n)| serde_json::json!({"data_collection": &**t, "event_count": n}))
                .collect();
            out.push(SourceRecord {
                topic: Arc::from(format!("{}.transaction", self.cfg.prefix)),
                payload: Payload::Json {
                    key: Some(serde_json::json!({ "id": id })),
                    value: serde_json::json!({
                        "status": "END", "id": id, "event_count": self.txn.emitted,
                        "data_collections": per_table, "ts_ms": self.txn.ts_ms,
                    }),
                },
                partition: self.partition.clone(),
                offset: None,
            });
        }
        if let Some(g) = self.txn.maria {
            self.gtids.apply(g);
        }
        if let (Some(g), Some(set)) = (self.txn.mysql, self.mysql_gtids.as_mut()) {
            set.add(g);
        }
        self.txn.open = false;
        self.pending_skip = 0;
        self.boundary = Some((self.file.clone(), end));
    }

    fn txn_id(&self) -> String {
        match &self.txn.gtid {
            Some(g) => g.clone(),
            None => format!("file={},pos={}", self.file, self.txn.start),
        }
    }

    fn query(
        &mut self,
        ev: &Event,
        start: u64,
        end: u64,
        ts_ms: i64,
        out: &mut Vec<SourceRecord>,
    ) -> Result<(), MySqlError> {
        let q: QueryEvent<'_> = ev
            .read_event()
            .map_err(|e| self.decode_err("QUERY event", start, e))?;
        let sql = q.query();
        let trimmed = sql.trim();
        if trimmed.eq_ignore_ascii_case("BEGIN") {
            if !self.txn.open || self.txn.gtid.is_none() {
                self.begin(start, None, ts_ms);
            }
            return Ok(());
        }
        if trimmed.eq_ignore_ascii_case("COMMIT") {
            self.commit(end, out);
            return Ok(());
        }
        // Anything else is DDL (or a statement-format change we do not capture): an implicit
        // commit. Table schemas follow from the next TABLE_MAP's row metadata; the schema
        // history (include.schema.changes) follows it for the record's tableChanges.
        let db = ddl_database(trimmed).unwrap_or_else(|| q.schema().into_owned());
        let ddl = match self.history.as_mut() {
            Some(h) => h.on_ddl(&self.file, start, end, &q.schema(), trimmed),
            None => Ddl::Plain,
        };
        let (table_changes, refresh, history) = match ddl {
            Ddl::Plain => (Vec::new(), Vec::new(), false),
            Ddl::Delivered => {
                self.commit(end, out);
                return Ok(());
            }
            Ddl::History { changes, refresh } => (changes, refresh, true),
        };
        let mut history_record = None;
        if self.cfg.include_schema_changes
            && (history || (!db.is_empty() && self.cfg.filters.database(&db)))
        {
            if history {
                history_record = Some(out.len());
            }
            out.push(SourceRecord {
                topic: self.cfg.prefix.clone(),
                payload: Payload::Json {
                    key: Some(serde_json::json!({ "databaseName": db })),
                    value: serde_json::json!({
                        "source": {
                            "version": tributary_runtime::VERSION,
                            "connector": self.connector,
                            "name": &*self.cfg.prefix,
                            "ts_ms": ts_ms,
                            "db": db,
                            "file": self.file,
                            "pos": start,
                            "server_id": ev.header().server_id(),
                            "gtid": self.txn.gtid,
                        },
                        "ts_ms": crate::now_ms(),
                        "databaseName": db,
                        "schemaName": null,
                        "ddl": trimmed,
                        "tableChanges": table_changes,
                    }),
                },
                partition: self.partition.clone(),
                offset: None,
            });
        }
        self.commit(end, out);
        // A history record carries the history right after the DDL, on its own partition.
        let gtids = self.offset_gtids();
        if let (Some(index), Some(h)) = (history_record, self.history.as_mut())
            && let Some(record) = out.get_mut(index)
        {
            record.partition = h.partition().clone();
            record.offset = Some(h.offset(&self.file, end, &gtids));
            h.set_pending(index, refresh);
        }
        // The DDL record's position is the boundary after it; attach it to the last record.
        if let Some(last) = out.last_mut()
            && last.offset.is_none()
            && let Some(o) = self.boundary_offset()
        {
            last.offset = Some(o);
        }
        Ok(())
    }

    fn table_map(&mut self, ev: &Event, start: u64) -> Result<(), MySqlError> {
        let tme: TableMapEvent<'_> = ev
            .read_event()
            .map_err(|e| self.decode_err("TABLE_MAP event", start, e))?;
        let db = tme.database_name().into_owned();
        let table = tme.table_name().into_owned();
        let id = tme.table_id();
        if !self.cfg.filters.table(&db, &table) {
            self.tables.insert(id, None);
            return Ok(());
        }
        tracing::trace!(connector = %self.cfg.name, table_id = id, table = %format!("{db}.{table}"), "table map");
        self.tmes.insert(id, tme.clone().into_owned());
        // The event body after the 6-byte id and 2-byte flags identifies the schema.
        let fingerprint = ev.data().get(8..).unwrap_or_default();
        let key = (db.clone(), table.clone());
        if let Some((fp, info)) = self.versions.get(&key)
            && fp.as_slice() == fingerprint
        {
            self.tables.insert(id, Some(info.clone()));
            return Ok(());
        }
        let version = self
            .versions
            .get(&key)
            .map_or(1, |(_, i)| i.schema.version + 1);
        let info = from_table_map(&tme, &self.cfg, version)
            .map_err(MySqlError::Unsupported)?
            .ok_or_else(|| {
                MySqlError::Preflight(format!(
                    "TABLE_MAP of {db}.{table} at {}:{start} has no column names: \
                     binlog_row_metadata must be FULL. Run SET GLOBAL binlog_row_metadata=FULL \
                     (and set it in the server config)",
                    self.file
                ))
            })?;
        if version > 1 {
            info!(connector = %self.cfg.name, table = %format!("{db}.{table}"), version, "table schema changed");
        }
        let info = Arc::new(info);
        self.versions
            .insert(key, (fingerprint.to_vec(), info.clone()));
        self.tables.insert(id, Some(info));
        Ok(())
    }

    fn rows(
        &mut self,
        ev: &Event,
        ty: u8,
        start: u64,
        ts_ms: i64,
        out: &mut Vec<SourceRecord>,
    ) -> Result<(), MySqlError> {
        let data = ev
            .read_data()
            .map_err(|e| self.decode_err("rows event", start, e))?;
        let Some(EventData::RowsEvent(rows)) = data else {
            return Err(MySqlError::Unsupported(format!(
                "rows event type {ty} at {}:{start} could not be read",
                self.file
            )));
        };
        let table_id = rows.table_id();
        let Some(entry) = self.tables.get(&table_id) else {
            return Err(MySqlError::Unsupported(format!(
                "rows event at {}:{start} refers to table id {table_id} without a TABLE_MAP",
                self.file
            )));
        };
        // Tables not captured are not decoded (row indexes count captured rows only).
        let Some(info) = entry.clone() else {
            return Ok(());
        };
        let op = match rows {
            RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => Op::Create,
            RowsEventData::UpdateRowsEventV1(_) | RowsEventData::UpdateRowsEvent(_) => Op::Update,
            _ => Op::Delete,
        };
        if !self.txn.open {
            // Rows outside GTID/BEGIN (not written by ROW format servers): own transaction.
            self.begin(start, None, ts_ms);
        }
        let skipped = self.cfg.skipped_ops.contains(&op);
        let server_id = ev.header().server_id();
        let image_err = |file: &str, e: io::Error| MySqlError::Decode {
            what: "row image".into(),
            file: file.to_owned(),
            pos: start,
            source: e,
        };
        // Our image reader (layout cached per table version), or mysql_common's row
        // iterator for MySQL's partial JSON updates.
        let mut images = match rows {
            RowsEventData::PartialUpdateRowsEvent(_) => {
                let Some(tme) = self.tmes.get(&table_id) else {
                    return Err(MySqlError::Unsupported(format!(
                        "no table map for table id {table_id} at {}:{start}",
                        self.file
                    )));
                };
                Images::Generic(rows.rows(tme))
            }
            _ => {
                let bits = |b: &BitSlice<u8>| b.iter().by_vals().collect();
                let reader = ImageReader::new(
                    rows.rows_data(),
                    &info.wire,
                    rows.columns_before_image().map(bits),
                    rows.columns_after_image().map(bits),
                )
                .map_err(|e| image_err(&self.file, e))?;
                Images::Direct(reader)
            }
        };
        let mut decoded = Vec::new();
        while let Some(row) = images.next_row() {
            let (before, after) = row.map_err(|e| image_err(&self.file, e))?;
            self.txn.rows += 1;
            if self.txn.rows <= self.txn.skip || skipped {
                continue;
            }
            let before = before.map(|r| decode_row(r, &info)).transpose();
            let after = after.map(|r| decode_row(r, &info)).transpose();
            let (before, after) = match (before, after) {
                (Ok(b), Ok(a)) => (b, a),
                (Err(e), _) | (_, Err(e)) => {
                    return Err(MySqlError::Unsupported(format!(
                        "cannot decode a row of {} at {}:{start}: {e}",
                        info.schema.id, self.file
                    )));
                }
            };
            decoded.push((self.txn.rows, before, after));
        }
        // Only the event's last record carries the offset: the ack tracker commits the
        // offset of the newest durable record, and a resume skips whole rows up to it, so
        // per-row offsets inside one event would only be built to be dropped.
        let last = decoded.len();
        let processed_ts_ms = crate::now_ms();
        for (i, (row_index, before, after)) in decoded.into_iter().enumerate() {
            let at = RowAt {
                event_pos: start,
                row_index,
                ts_ms,
                server_id,
                carries_offset: i + 1 == last,
                processed_ts_ms,
            };
            self.emit(op, &info, before, after, at, out);
        }
        Ok(())
    }

    fn emit(
        &mut self,
        op: Op,
        info: &Arc<TableInfo>,
        before: Option<Row>,
        after: Option<Row>,
        at: RowAt,
        out: &mut Vec<SourceRecord>,
    ) {
        let RowAt {
            event_pos,
            row_index,
            ts_ms,
            server_id,
            carries_offset,
            processed_ts_ms,
        } = at;
        let transaction = if self.cfg.transaction_metadata {
            let table_name: Arc<str> = Arc::from(info.schema.id.to_string());
            if self.txn.emitted == 0 {
                let id = self.txn_id();
                out.push(SourceRecord {
                    topic: Arc::from(format!("{}.transaction", self.cfg.prefix)),
                    payload: Payload::Json {
                        key: Some(serde_json::json!({ "id": id })),
                        value: serde_json::json!({
                            "status": "BEGIN", "id": id, "event_count": null,
                            "data_collections": null, "ts_ms": self.txn.ts_ms,
                        }),
                    },
                    partition: self.partition.clone(),
                    offset: None,
                });
            }
            self.txn.emitted += 1;
            let id = self.txn_id();
            let n = self.txn.per_table.entry(table_name.clone()).or_insert(0);
            *n += 1;
            Some(TransactionInfo {
                id: Arc::from(id),
                total_order: self.txn.emitted,
                data_collection_order: *n,
            })
        } else {
            self.txn.emitted += 1;
            None
        };
        let extra = vec![
            ("server_id", Value::Int(i64::from(server_id))),
            (
                "gtid",
                self.txn
                    .gtid
                    .as_ref()
                    .map_or(Value::Null, |g| Value::Text(g.clone())),
            ),
            ("file", Value::Text(self.file.clone())),
            ("pos", Value::Int(event_pos as i64)),
            ("row", Value::Int(row_index as i64 - 1)),
            ("thread", Value::Null),
            ("query", Value::Null),
        ];
        let (db, table) = match &self.source_names {
            Some((of, db, table)) if Arc::ptr_eq(of, info) => (db.clone(), table.clone()),
            _ => {
                let db: Arc<str> = Arc::from(info.schema.id.namespace.as_str());
                let table: Arc<str> = Arc::from(info.schema.id.name.as_str());
                self.source_names = Some((info.clone(), db.clone(), table.clone()));
                (db, table)
            }
        };
        let source = SourceInfo {
            connector: self.connector,
            name: self.cfg.prefix.clone(),
            ts_ms,
            snapshot: SnapshotMarker::False,
            db,
            schema: None,
            table: Some(table),
            extra,
        };
        let tombstone = (op == Op::Delete && self.cfg.tombstones).then(|| Payload::Tombstone {
            table: info.schema.clone(),
            row: before.clone().unwrap_or_default(),
        });
        let event = ChangeEvent {
            op,
            table: info.schema.clone(),
            before,
            after,
            source,
            transaction,
            processed_ts_ms,
            headers: Vec::new(),
        };
        let off = carries_offset.then(|| {
            offset(
                &self.file,
                self.txn.start,
                row_index,
                self.gtids_before_txn(),
            )
        });
        let change = SourceRecord {
            topic: info.topic.clone(),
            payload: Payload::Change(Box::new(event)),
            partition: self.partition.clone(),
            offset: None,
        };
        out.push(change);
        if let Some(t) = tombstone {
            out.push(SourceRecord {
                topic: info.topic.clone(),
                payload: t,
                partition: self.partition.clone(),
                offset: None,
            });
        }
        if let Some(last) = out.last_mut() {
            last.offset = off;
        }
    }

    /// The GTID position a resume inside the current transaction must hand to the server:
    /// every completed transaction (this one is not: it joins the state at its commit).
    fn gtids_before_txn(&self) -> String {
        self.offset_gtids_text()
    }

    /// The MariaDB state for offsets (empty unless it is complete).
    fn offset_gtids(&self) -> GtidState {
        if self.gtids_complete {
            self.gtids.clone()
        } else {
            GtidState::default()
        }
    }

    /// The `gtids` text of offsets: the complete MariaDB state, else the MySQL executed set.
    fn offset_gtids_text(&self) -> String {
        if self.gtids_complete {
            self.gtids.to_string()
        } else {
            self.mysql_gtids
                .as_ref()
                .map(MySqlGtidSet::to_string)
                .unwrap_or_default()
        }
    }
}

/// The row images of one rows event, from whichever reader applies.
enum Images<'a> {
    Direct(ImageReader<'a>),
    Generic(mysql_async::binlog::events::RowsEventRows<'a>),
}

impl<'a> Images<'a> {
    #[allow(clippy::type_complexity)]
    fn next_row(&mut self) -> Option<io::Result<(Option<Image<'a>>, Option<Image<'a>>)>> {
        match self {
            Images::Direct(reader) => reader.next_row(),
            Images::Generic(rows) => rows.next().map(|row| {
                let cells = |r: mysql_async::binlog::row::BinlogRow| {
                    r.unwrap()
                        .into_iter()
                        .map(Cell::Wire)
                        .collect::<Image<'a>>()
                };
                row.map(|(before, after)| (before.map(cells), after.map(cells)))
            }),
        }
    }
}

/// Decodes the captured columns of one row image.
fn decode_row(mut values: Image<'_>, info: &TableInfo) -> Result<Row, String> {
    let mut out = Vec::with_capacity(info.plans.len());
    for plan in &info.plans {
        let null = || Cell::Wire(BinlogValue::Value(mysql_async::Value::NULL));
        let cell = match values.get_mut(plan.source_index) {
            Some(v) => std::mem::replace(v, null()),
            None => null(),
        };
        let wire = match cell {
            Cell::Decimal(d) => {
                out.push(convert_decimal(d, plan)?);
                continue;
            }
            Cell::Wire(BinlogValue::Value(v)) => v,
            Cell::Wire(other) => mysql_async::Value::try_from(other).map_err(|e| e.to_string())?,
        };
        out.push(convert(wire, plan, Origin::Binlog)?);
    }
    Ok(Row(out))
}

/// The database a DDL statement changes: the qualifier of its first `db.table` name, or the
/// name after `DATABASE`/`SCHEMA`. `None` when the statement names no database (the
/// session's default database applies).
pub fn ddl_database(sql: &str) -> Option<String> {
    static RE: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    let re = RE
        .get_or_init(|| {
            regex::Regex::new(
                r"(?is)^\s*(?:create|alter|drop|rename|truncate)\b.*?\b(table|database|schema|view|index\s+\S+\s+on)\s+(?:if\s+(?:not\s+)?exists\s+)?(`(?:[^`]|``)+`|[\w$]+)(?:\s*\.\s*(`(?:[^`]|``)+`|[\w$]+))?",
            )
            .ok()
        })
        .as_ref()?;
    let caps = re.captures(sql)?;
    let unquote = |s: &str| s.trim_matches('`').replace("``", "`");
    let kind = caps.get(1)?.as_str().to_ascii_lowercase();
    let first = unquote(caps.get(2)?.as_str());
    if caps.get(3).is_some() || kind == "database" || kind == "schema" {
        Some(first)
    } else {
        None
    }
}

/// Binlog events built by hand as a MySQL 8 server writes them (no checksums), for tests.
#[cfg(test)]
pub(crate) mod test_events {
    use std::sync::Arc;

    use mysql_common::binlog::consts::BinlogVersion;
    use mysql_common::binlog::events::{Event, FormatDescriptionEvent, GtidEvent};
    use mysql_common::proto::MySerialize as _;

    use crate::config::MySqlConfig;

    /// The table the events change: `inv.t (id INT NOT NULL PRIMARY KEY)`.
    pub const TABLE_ID: u64 = 71;

    /// A validated MySQL connector config with `extra` settings.
    pub fn config(extra: &[(&str, &str)]) -> Arc<MySqlConfig> {
        let mut pairs = vec![
            ("connector.class", crate::config::MYSQL_CLASS),
            ("database.hostname", "127.0.0.1"),
            ("database.user", "cdc"),
            ("topic.prefix", "srv"),
        ];
        pairs.extend_from_slice(extra);
        let raw: tributary_runtime::config::RawConfig = pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let def = tributary_runtime::registry::Registry::config_def(&crate::MySqlPlugin);
        let parsed = def.parse(&raw).expect("parses");
        Arc::new(crate::config::validate("t", &parsed).expect("valid"))
    }

    /// Events at increasing positions of one binlog file.
    pub struct Events {
        pub pos: u32,
        fde: FormatDescriptionEvent<'static>,
    }

    impl Events {
        pub fn at(pos: u32) -> Self {
            Events {
                pos,
                fde: FormatDescriptionEvent::new(BinlogVersion::Version4),
            }
        }

        /// An event of type `ty` with `body`, ending where the next one starts.
        pub fn event(&mut self, ty: u8, body: &[u8]) -> Event {
            let size = 19 + body.len() as u32;
            let end = self.pos + size;
            let mut bytes = Vec::with_capacity(size as usize);
            bytes.extend_from_slice(&1_700_000_000u32.to_le_bytes());
            bytes.push(ty);
            bytes.extend_from_slice(&1u32.to_le_bytes()); // server id
            bytes.extend_from_slice(&size.to_le_bytes());
            bytes.extend_from_slice(&end.to_le_bytes());
            bytes.extend_from_slice(&0u16.to_le_bytes());
            bytes.extend_from_slice(body);
            self.pos = end;
            Event::read(&self.fde, &bytes[..]).expect("event reads back")
        }

        /// GTID_EVENT (33) of `uuid:gno`, as mysql_common writes it (flags, sid, gno, then
        /// the logical clock, commit timestamps, length and server versions).
        pub fn gtid(&mut self, uuid: [u8; 16], gno: u64) -> Event {
            let mut body = Vec::new();
            GtidEvent::new(uuid, gno)
                .with_last_committed(3)
                .with_sequence_number(4)
                .serialize(&mut body);
            self.event(33, &body)
        }

        /// ANONYMOUS_GTID_EVENT (34): a transaction without a GTID.
        pub fn anonymous_gtid(&mut self) -> Event {
            let mut body = Vec::new();
            GtidEvent::new([0; 16], 0).serialize(&mut body);
            self.event(34, &body)
        }

        /// QUERY_EVENT (2) of `sql` in database `inv`.
        pub fn query(&mut self, sql: &str) -> Event {
            let mut body = Vec::new();
            body.extend_from_slice(&9u32.to_le_bytes()); // thread id
            body.extend_from_slice(&0u32.to_le_bytes()); // execution time
            body.push(3); // schema length
            body.extend_from_slice(&0u16.to_le_bytes()); // error code
            body.extend_from_slice(&0u16.to_le_bytes()); // status variables length
            body.extend_from_slice(b"inv\0");
            body.extend_from_slice(sql.as_bytes());
            self.event(2, &body)
        }

        /// TABLE_MAP_EVENT (19) of `inv.t` with full row metadata.
        pub fn table_map(&mut self) -> Event {
            let mut body = Vec::new();
            body.extend_from_slice(&TABLE_ID.to_le_bytes()[..6]);
            body.extend_from_slice(&1u16.to_le_bytes()); // flags
            body.extend_from_slice(&[3, b'i', b'n', b'v', 0]);
            body.extend_from_slice(&[1, b't', 0]);
            body.push(1); // column count
            body.push(3); // MYSQL_TYPE_LONG
            body.push(0); // no type metadata
            body.push(0); // null bitmap: NOT NULL
            // Optional metadata: SIGNEDNESS (signed), COLUMN_NAME ("id"), SIMPLE_PRIMARY_KEY.
            body.extend_from_slice(&[1, 1, 0x00]);
            body.extend_from_slice(&[4, 3, 2, b'i', b'd']);
            body.extend_from_slice(&[8, 1, 0]);
            self.event(19, &body)
        }

        /// WRITE_ROWS_EVENT (30, v2) of `inv.t` inserting `ids`.
        pub fn write_rows(&mut self, ids: &[i32]) -> Event {
            let mut body = Vec::new();
            body.extend_from_slice(&TABLE_ID.to_le_bytes()[..6]);
            body.extend_from_slice(&1u16.to_le_bytes()); // flags: end of statement
            body.extend_from_slice(&2u16.to_le_bytes()); // extra data: none
            body.push(1); // column count
            body.push(0x01); // columns present
            for id in ids {
                body.push(0x00); // null bitmap
                body.extend_from_slice(&id.to_le_bytes());
            }
            self.event(30, &body)
        }

        /// XID_EVENT (16): the commit.
        pub fn xid(&mut self) -> Event {
            self.event(16, &77u64.to_le_bytes())
        }

        /// One transaction `uuid:gno` (or anonymous) inserting one row per entry of `events`.
        pub fn transaction(
            &mut self,
            gtid: Option<([u8; 16], u64)>,
            events: &[&[i32]],
        ) -> Vec<Event> {
            let mut out = vec![match gtid {
                Some((uuid, gno)) => self.gtid(uuid, gno),
                None => self.anonymous_gtid(),
            }];
            out.push(self.query("BEGIN"));
            out.push(self.table_map());
            for ids in events {
                out.push(self.write_rows(ids));
            }
            out.push(self.xid());
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_events::{Events, config};
    use super::*;
    use tributary_runtime::model::Value;

    #[test]
    fn ddl_database_is_found() {
        assert_eq!(
            ddl_database("ALTER TABLE inv.t ADD c INT").as_deref(),
            Some("inv")
        );
        assert_eq!(
            ddl_database("create table if not exists `a``b`.`t` (id int)").as_deref(),
            Some("a`b")
        );
        assert_eq!(
            ddl_database("DROP DATABASE IF EXISTS x").as_deref(),
            Some("x")
        );
        assert_eq!(
            ddl_database("CREATE INDEX i ON d.t (c)").as_deref(),
            Some("d")
        );
        assert_eq!(ddl_database("ALTER TABLE t ADD c INT"), None);
        assert_eq!(ddl_database("GRANT SELECT ON *.* TO x"), None);
    }

    #[test]
    fn fake_rotate_name_drops_a_checksum_whatever_its_bytes() {
        assert_eq!(fake_rotate_name(b"mysql-bin.000007"), b"mysql-bin.000007");
        // A checksum whose last byte is an ASCII digit (the case the old check missed).
        assert_eq!(
            fake_rotate_name(b"mysql-bin.000007\x91\xfe\x10\x33"),
            b"mysql-bin.000007"
        );
        assert_eq!(
            fake_rotate_name(b"mysql-bin.000007abc9"),
            b"mysql-bin.000007"
        );
        assert_eq!(
            fake_rotate_name(b"mysql-bin.000007\x00\x01\x02\x03"),
            b"mysql-bin.000007"
        );
        // Too short or no name to recover: left as it is.
        assert_eq!(fake_rotate_name(b"abc"), b"abc");
    }

    #[test]
    fn file_index_and_offset_order() {
        assert_eq!(file_index("binlog.000042"), 42);
        let o = offset("binlog.000042", 100, 3, String::new());
        assert_eq!(o.order, OffsetOrder([42, 100, 3]));
        assert!(o.value.get("gtids").is_none());
    }

    const A: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const B: &str = "4e11fa47-71ca-11e1-9e33-c80aa9429562";

    fn uuid(text: &str) -> [u8; 16] {
        let set = MySqlGtidSet::parse(&format!("{text}:1")).expect("uuid");
        *set.sids().next().expect("one sid").0
    }

    fn start(mysql_gtids: Option<&str>) -> StartPosition {
        StartPosition {
            file: "binlog.000003".into(),
            pos: 4,
            gtids: GtidState::default(),
            mysql_gtids: mysql_gtids.map(|t| MySqlGtidSet::parse(t).expect("set")),
            skip_rows: 0,
            by_gtid: false,
        }
    }

    fn reader(start: &StartPosition) -> BinlogReader {
        let partition = SourcePartition::from_json(&serde_json::json!({ "server": "srv" }));
        BinlogReader::new(config(&[]), partition, start, "mysql")
    }

    /// Feeds `events`, returning the change records' `(id, source.gtid, offset)`.
    fn feed(
        reader: &mut BinlogReader,
        events: &[Event],
    ) -> Vec<(i64, Option<String>, Option<serde_json::Value>)> {
        let mut out = Vec::new();
        for ev in events {
            reader.handle(ev, &mut out).expect("event handled");
        }
        out.into_iter()
            .filter_map(|r| match r.payload {
                Payload::Change(e) => {
                    let id = match e.after.as_ref().and_then(|row| row.0.first()) {
                        Some(Value::Int(n)) => *n,
                        other => panic!("unexpected id {other:?}"),
                    };
                    let gtid = e.source.extra.iter().find(|(k, _)| *k == "gtid").and_then(
                        |(_, v)| match v {
                            Value::Text(t) => Some(t.to_string()),
                            _ => None,
                        },
                    );
                    Some((id, gtid, r.offset.map(|o| o.value)))
                }
                _ => None,
            })
            .collect()
    }

    fn gtids_of(offset: Option<SourceOffset>) -> Option<String> {
        offset?.value.get("gtids")?.as_str().map(str::to_owned)
    }

    #[test]
    fn mysql_gtid_event_names_the_transaction() {
        let mut r = reader(&start(Some(&format!("{A}:1-10"))));
        let mut ev = Events::at(4);
        let txn_start = ev.pos;
        let rows = feed(&mut r, &ev.transaction(Some((uuid(A), 11)), &[&[1]]));
        assert_eq!(
            rows,
            vec![(
                1,
                Some(format!("{A}:11")),
                Some(serde_json::json!({
                    "file": "binlog.000003", "pos": txn_start, "row": 1,
                    // Inside the transaction: the set before it.
                    "gtids": format!("{A}:1-10"),
                }))
            )]
        );
        // Committed: the transaction joins the set.
        assert_eq!(gtids_of(r.boundary_offset()), Some(format!("{A}:1-11")));
        assert_eq!(
            r.boundary_offset().expect("boundary").value["pos"],
            serde_json::json!(ev.pos)
        );
    }

    #[test]
    fn mysql_executed_set_accumulates_across_transactions() {
        let mut r = reader(&start(Some(&format!("{A}:1-10"))));
        let mut ev = Events::at(4);
        for (u, gno, want) in [
            (A, 11, format!("{A}:1-11")),
            (B, 5, format!("{A}:1-11,{B}:5")),
            // Not contiguous: a gap stays a gap.
            (A, 13, format!("{A}:1-11:13,{B}:5")),
            (B, 6, format!("{A}:1-11:13,{B}:5-6")),
            // Filling the gap merges the intervals.
            (A, 12, format!("{A}:1-13,{B}:5-6")),
        ] {
            let before = gtids_of(r.boundary_offset());
            let rows = feed(
                &mut r,
                &ev.transaction(Some((uuid(u), gno)), &[&[gno as i32]]),
            );
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0].1, Some(format!("{u}:{gno}")));
            let offset_gtids = rows[0].2.as_ref().and_then(|o| o.get("gtids")).cloned();
            if let Some(before) = before {
                assert_eq!(offset_gtids, Some(serde_json::Value::String(before)));
            }
            assert_eq!(gtids_of(r.boundary_offset()), Some(want));
        }
        // An anonymous transaction has no GTID and leaves the set alone.
        let rows = feed(&mut r, &ev.transaction(None, &[&[99]]));
        assert_eq!(rows[0].1, None);
        assert_eq!(
            gtids_of(r.boundary_offset()),
            Some(format!("{A}:1-13,{B}:5-6"))
        );
    }

    #[test]
    fn mysql_gtids_without_a_start_set_stay_out_of_offsets() {
        // A start position without a set (gtid_mode not ON when it was read): the set seen
        // in the stream alone would lack all earlier transactions.
        let mut r = reader(&start(None));
        let mut ev = Events::at(4);
        let rows = feed(&mut r, &ev.transaction(Some((uuid(A), 11)), &[&[1]]));
        assert_eq!(rows[0].1, Some(format!("{A}:11")));
        assert!(rows[0].2.as_ref().is_some_and(|o| o.get("gtids").is_none()));
        assert_eq!(gtids_of(r.boundary_offset()), None);
    }

    #[test]
    fn mysql_transaction_metadata_uses_the_gtid() {
        let partition = SourcePartition::from_json(&serde_json::json!({ "server": "srv" }));
        let cfg = config(&[("provide.transaction.metadata", "true")]);
        let mut r = BinlogReader::new(cfg, partition, &start(Some(&format!("{A}:1-10"))), "mysql");
        let mut ev = Events::at(4);
        let mut out = Vec::new();
        for e in ev.transaction(Some((uuid(A), 11)), &[&[1]]) {
            r.handle(&e, &mut out).expect("handled");
        }
        let ids: Vec<_> = out
            .iter()
            .filter_map(|rec| match &rec.payload {
                Payload::Json { value, .. } => value.get("id").cloned(),
                Payload::Change(e) => e.transaction.as_ref().map(|t| serde_json::json!(&*t.id)),
                _ => None,
            })
            .collect();
        let id = serde_json::json!(format!("{A}:11"));
        assert_eq!(ids, vec![id.clone(), id.clone(), id]);
    }

    #[test]
    fn dump_mode_decision() {
        let mysql = StartPosition {
            by_gtid: true,
            ..start(Some(&format!("{A}:1-10")))
        };
        assert_eq!(dump_mode(&mysql, false, true), DumpMode::MySqlGtid);
        // gtid_mode not ON (OFF or a mixed mode): file/position.
        assert_eq!(dump_mode(&mysql, false, false), DumpMode::FilePos);
        // A MySQL set means nothing to MariaDB.
        assert_eq!(dump_mode(&mysql, true, true), DumpMode::FilePos);
        // Right after a snapshot (by_gtid false) the exact file/position is used.
        let fresh = start(Some(&format!("{A}:1-10")));
        assert_eq!(dump_mode(&fresh, false, true), DumpMode::FilePos);
        // An empty set: nothing to resume by.
        let empty = StartPosition {
            by_gtid: true,
            ..start(Some(""))
        };
        assert_eq!(dump_mode(&empty, false, true), DumpMode::FilePos);

        let maria = StartPosition {
            gtids: GtidState::parse("0-1-100").expect("state"),
            by_gtid: true,
            ..start(None)
        };
        assert_eq!(dump_mode(&maria, true, false), DumpMode::MariaDbGtid);
        assert_eq!(dump_mode(&maria, false, true), DumpMode::FilePos);
        let plain = start(None);
        assert_eq!(dump_mode(&plain, true, false), DumpMode::FilePos);
        assert_eq!(dump_mode(&plain, false, true), DumpMode::FilePos);
    }

    #[test]
    fn purged_errors_name_the_gtid_set() {
        let err = mysql_async::Error::Server(mysql_async::ServerError {
            code: 1236,
            message: "purged".into(),
            state: "HY000".into(),
        });
        let e = classify_stream_error(err, &start(Some(&format!("{A}:1-10"))));
        assert!(e.to_string().contains(&format!("GTID {A}:1-10")), "{e}");
    }
}
