//! The initial snapshot: a consistent read of every captured table, aligned with a binlog
//! position so streaming continues exactly where the snapshot's view ends.
//!
//! ```text
//!  FLUSH TABLES WITH READ LOCK            (snapshot.locking.mode=minimal; needs RELOAD)
//!  START TRANSACTION WITH CONSISTENT SNAPSHOT
//!  SHOW MASTER STATUS, @@gtid_binlog_pos  -> the stream's start position
//!    (MySQL with gtid_mode=ON: its Executed_Gtid_Set)
//!  read table schemas (information_schema)
//!  UNLOCK TABLES                          (the lock is held only for the lines above)
//!  per table, keyset pages:  SELECT .. WHERE (pk) > (last pk) ORDER BY pk LIMIT fetch.size
//! ```
//!
//! The last record of each page carries an offset with the snapshot position plus the chunk
//! cursor (table and last key read), so a restart continues after the last durable page
//! instead of starting over. While a page is converted and encoded, the next page's query
//! already runs on its own task (same connection, same transaction; `Prefetch`).
//! A resumed snapshot reads the remaining rows in a *new* consistent view while streaming
//! still starts at the original position: rows changed in between are read in their newer
//! state and their changes are streamed again afterwards. The final state a consumer builds
//! is the table's; it may see such rows twice (at-least-once across a crash, exactly-once
//! otherwise). Tables without a primary key are read in pages by position within one view;
//! after a crash in the middle of such a table it is read again from its first row.

use std::sync::Arc;

use mysql_async::prelude::Queryable as _;
use mysql_async::{Conn, Row as ServerRow, Value as Wire};
use tracing::info;
use tributary_runtime::model::{ChangeEvent, Op, Row, SnapshotMarker, SourceInfo, Value};
use tributary_runtime::record::{
    OffsetOrder, Payload, SourceOffset, SourcePartition, SourceRecord,
};

use crate::binlog::{StartPosition, file_index};
use crate::config::MySqlConfig;
use crate::decode::{Origin, convert};
use crate::error::MySqlError;
use crate::gtid::{GtidState, MySqlGtidSet};
use crate::history::{self, HistoryStart, SchemaHistory};
use crate::rows;
use crate::schema::{InfoColumn, TableInfo, from_information_schema};

/// Where a snapshot stands: which table, and the last key read in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    /// `db.table` being read.
    pub table: String,
    /// Key of the last row read (`None`: start of the table).
    pub last_key: Option<Vec<Wire>>,
}

/// A page: table index, last key read before it, rows read before it (keyless tables).
type PageId = (usize, Option<Vec<Wire>>, u64);
type PageRows = Result<Vec<ServerRow>, mysql_async::Error>;

/// A page query running on its own task while the previous page is converted and encoded;
/// it holds the snapshot's connection (still inside the snapshot transaction) until awaited.
struct Prefetch {
    page: PageId,
    task: tokio::task::JoinHandle<(Conn, PageRows)>,
}

/// Runs a page query, handing the connection back with the result.
async fn page_query(mut conn: Conn, sql: String, params: Vec<Wire>) -> (Conn, PageRows) {
    let rows = if params.is_empty() {
        conn.exec(sql.as_str(), ()).await
    } else {
        conn.exec(sql.as_str(), params).await
    };
    (conn, rows)
}

/// A running snapshot.
pub struct Snapshot {
    /// `None` while a [`Prefetch`] holds it.
    conn: Option<Conn>,
    prefetch: Option<Prefetch>,
    cfg: Arc<MySqlConfig>,
    partition: SourcePartition,
    connector: &'static str,
    pub position: StartPosition,
    tables: Vec<Arc<TableInfo>>,
    index: usize,
    last_key: Option<Vec<Wire>>,
    /// Rows read by position in a keyless table.
    keyless_offset: u64,
    pub rows_done: u64,
    pub rows_estimated: u64,
    /// The last record of the previous page, held back until we know whether it is the
    /// snapshot's last (`source.snapshot=last`).
    pending: Option<SourceRecord>,
    ts_ms: i64,
    /// The schema history (`include.schema.changes`), handed to the stream afterwards.
    history: Option<Box<SchemaHistory>>,
    /// Schema-change records of the captured tables, sent before the first row.
    seed_records: Vec<SourceRecord>,
}

fn q(e: mysql_async::Error, what: &str) -> MySqlError {
    MySqlError::query(what, e)
}

/// Quotes an identifier with backticks.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Lists captured base tables, sorted (the order a resumed snapshot relies on).
pub async fn captured_tables(
    conn: &mut Conn,
    cfg: &MySqlConfig,
) -> Result<Vec<(String, String)>, MySqlError> {
    let rows: Vec<ServerRow> = conn
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
             WHERE TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_SCHEMA, TABLE_NAME",
        )
        .await
        .map_err(|e| q(e, "listing tables"))?;
    Ok(rows
        .into_iter()
        .filter_map(|mut r| Some((rows::text(&mut r, 0)?, rows::text(&mut r, 1)?)))
        .filter(|(db, t)| cfg.filters.table(db, t))
        .collect())
}

/// Reads a table's columns from `information_schema`.
pub async fn load_table(
    conn: &mut Conn,
    cfg: &MySqlConfig,
    db: &str,
    table: &str,
) -> Result<TableInfo, MySqlError> {
    let found: Vec<ServerRow> = conn
        .exec(
            "SELECT c.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_TYPE, c.IS_NULLABLE, \
                    c.NUMERIC_PRECISION, c.NUMERIC_SCALE, c.DATETIME_PRECISION, \
                    c.CHARACTER_SET_NAME, k.ORDINAL_POSITION \
             FROM information_schema.COLUMNS c \
             LEFT JOIN information_schema.KEY_COLUMN_USAGE k \
               ON k.TABLE_SCHEMA = c.TABLE_SCHEMA AND k.TABLE_NAME = c.TABLE_NAME \
              AND k.COLUMN_NAME = c.COLUMN_NAME AND k.CONSTRAINT_NAME = 'PRIMARY' \
             WHERE c.TABLE_SCHEMA = ? AND c.TABLE_NAME = ? ORDER BY c.ORDINAL_POSITION",
            (db, table),
        )
        .await
        .map_err(|e| q(e, "reading information_schema.COLUMNS"))?;
    let info: Vec<InfoColumn> = found
        .into_iter()
        .filter_map(|mut r| {
            Some(InfoColumn {
                name: rows::text(&mut r, 0)?,
                data_type: rows::text(&mut r, 1).unwrap_or_default(),
                column_type: rows::text(&mut r, 2).unwrap_or_default(),
                nullable: rows::text(&mut r, 3).as_deref() == Some("YES"),
                precision: rows::number(&mut r, 4).map(|v| v as u32),
                scale: rows::number(&mut r, 5).map(|v| v as u32),
                datetime_precision: rows::number(&mut r, 6).map(|v| v as u32),
                charset: rows::text(&mut r, 7),
                in_primary_key: rows::number(&mut r, 8).map(|v| v as u32),
            })
        })
        .collect();
    Ok(from_information_schema(cfg, db, table, &info))
}

/// Current binlog position and GTID state: MariaDB's `@@gtid_binlog_pos`, or MySQL's
/// executed GTID set when it runs with `gtid_mode=ON` (read by the same statement as the
/// file and position, so the two describe the same point).
pub async fn read_position(conn: &mut Conn, mariadb: bool) -> Result<StartPosition, MySqlError> {
    // MySQL 8.4 removed SHOW MASTER STATUS (8.2+ and MariaDB 10.5.2+ know the new name).
    let status: Option<mysql_async::Row> = match conn.query_first("SHOW BINARY LOG STATUS").await {
        Ok(row) => row,
        Err(mysql_async::Error::Server(e)) if e.code == 1064 => conn
            .query_first("SHOW MASTER STATUS")
            .await
            .map_err(|e| q(e, "SHOW MASTER STATUS"))?,
        Err(e) => return Err(q(e, "SHOW BINARY LOG STATUS")),
    };
    let Some(mut status) = status else {
        return Err(MySqlError::Preflight(
            "log_bin is OFF: the server writes no binlog. Start it with log_bin=ON \
             (log-bin=mysql-bin in the [mysqld] section) and restart it"
                .into(),
        ));
    };
    let file = rows::text(&mut status, 0).unwrap_or_default();
    let pos = rows::number(&mut status, 1).unwrap_or(4);
    // File, Position, Binlog_Do_DB, Binlog_Ignore_DB, then Executed_Gtid_Set on MySQL only
    // (MariaDB has no fifth column; callers that only want the file and position pass
    // `mariadb = false` whatever the server).
    let mysql_gtids =
        if !mariadb && status.len() > 4 && crate::binlog::mysql_gtid_mode_on(conn).await? {
            let text = rows::text(&mut status, 4).unwrap_or_default();
            Some(MySqlGtidSet::parse(&text).map_err(MySqlError::BadOffset)?)
        } else {
            None
        };
    let gtids = if mariadb {
        let row: Option<ServerRow> = conn
            .query_first("SELECT @@GLOBAL.gtid_binlog_pos")
            .await
            .map_err(|e| q(e, "reading @@gtid_binlog_pos"))?;
        let text = row.and_then(|mut r| rows::text(&mut r, 0));
        GtidState::parse(&text.unwrap_or_default()).map_err(MySqlError::BadOffset)?
    } else {
        GtidState::default()
    };
    Ok(StartPosition {
        file,
        pos,
        gtids,
        mysql_gtids,
        skip_rows: 0,
        by_gtid: false,
    })
}

impl Snapshot {
    /// Opens the consistent view. With `resume`, keeps the original position and continues
    /// after the cursor.
    pub async fn begin(
        mut conn: Conn,
        cfg: Arc<MySqlConfig>,
        partition: SourcePartition,
        connector: &'static str,
        mariadb: bool,
        resume: Option<(StartPosition, Cursor)>,
        history: HistoryStart,
    ) -> Result<Snapshot, MySqlError> {
        conn.query_drop("SET SESSION time_zone = '+00:00'")
            .await
            .map_err(|e| q(e, "SET time_zone"))?;
        conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .await
            .map_err(|e| q(e, "SET TRANSACTION ISOLATION LEVEL"))?;
        let names = captured_tables(&mut conn, &cfg).await?;
        let lock = resume.is_none() && !matches!(cfg_locking(&cfg), Locking::None);
        if lock {
            conn.query_drop("FLUSH TABLES WITH READ LOCK")
                .await
                .map_err(|e| {
                    MySqlError::Preflight(format!(
                        "FLUSH TABLES WITH READ LOCK failed ({e}); grant the RELOAD privilege to \
                     {} (GRANT RELOAD ON *.* TO ...) or set snapshot.locking.mode=none",
                        cfg.user
                    ))
                })?;
        }
        let started = conn
            .query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            .await;
        let position = match started {
            Ok(()) => read_position(&mut conn, mariadb).await,
            Err(e) => Err(q(e, "START TRANSACTION WITH CONSISTENT SNAPSHOT")),
        };
        // MariaDB reports the binlog position of the consistent snapshot itself, exact even
        // without the lock; the GTID state is only exact under the lock.
        let position = match position {
            Ok(mut p) if mariadb => {
                let status: Vec<ServerRow> = conn
                    .query("SHOW SESSION STATUS LIKE 'binlog_snapshot_%'")
                    .await
                    .map_err(|e| q(e, "SHOW STATUS LIKE 'binlog_snapshot_%'"))?;
                for mut row in status {
                    let (Some(k), Some(v)) = (rows::text(&mut row, 0), rows::text(&mut row, 1))
                    else {
                        continue;
                    };
                    match k.to_ascii_lowercase().as_str() {
                        "binlog_snapshot_file" if !v.is_empty() => p.file = v,
                        "binlog_snapshot_position" => p.pos = v.parse().unwrap_or(p.pos),
                        _ => {}
                    }
                }
                if !lock {
                    p.gtids = GtidState::default();
                }
                Ok(p)
            }
            other => other,
        };
        let mut tables = Vec::with_capacity(names.len());
        let mut load_err = None;
        let mut seeded = None;
        if let Ok(p) = &position {
            for (db, t) in &names {
                match load_table(&mut conn, &cfg, db, t).await {
                    Ok(info) => tables.push(Arc::new(info)),
                    Err(e) => {
                        load_err = Some(e);
                        break;
                    }
                }
            }
            // The definitions for tableChanges, also under the lock: DDL is not
            // transactional, so information_schema shows the position's tables only while
            // the lock holds DDL back.
            if let (None, HistoryStart::Seed { generation }) = (&load_err, &history) {
                let at = resume.as_ref().map_or(p, |(r, _)| r);
                match history::seed(&mut conn, &cfg, &names, at, *generation, mariadb).await {
                    Ok(s) => seeded = Some(s),
                    Err(e) => load_err = Some(e),
                }
            }
        }
        if lock {
            conn.query_drop("UNLOCK TABLES")
                .await
                .map_err(|e| q(e, "UNLOCK TABLES"))?;
        }
        let fresh_position = position?;
        if let Some(e) = load_err {
            return Err(e);
        }
        let (history, seed_records) = match (history, seeded) {
            (HistoryStart::Continue(h), _) => (Some(h), Vec::new()),
            (_, Some((h, records))) => (Some(Box::new(h)), records),
            _ => (None, Vec::new()),
        };
        let estimate: Option<u64> = conn
            .query_first(format!(
                "SELECT CAST(COALESCE(SUM(TABLE_ROWS), 0) AS UNSIGNED) FROM information_schema.TABLES \
                 WHERE (TABLE_SCHEMA, TABLE_NAME) IN ({})",
                if names.is_empty() {
                    "('', '')".to_owned()
                } else {
                    names
                        .iter()
                        .map(|(d, t)| format!("('{}', '{}')", d.replace('\'', "''"), t.replace('\'', "''")))
                        .collect::<Vec<_>>()
                        .join(",")
                }
            ))
            .await
            .map_err(|e| q(e, "estimating row counts"))?;

        let (position, index, last_key) = match resume {
            None => (fresh_position, 0, None),
            Some((pos, cursor)) => {
                let index = tables
                    .iter()
                    .position(|t| t.schema.id.to_string() == cursor.table)
                    .unwrap_or_else(|| {
                        // The table is gone or no longer captured: continue with the next one.
                        tables
                            .iter()
                            .position(|t| t.schema.id.to_string() > cursor.table)
                            .unwrap_or(tables.len())
                    });
                let key = tables
                    .get(index)
                    .filter(|t| t.schema.id.to_string() == cursor.table)
                    .and(cursor.last_key);
                (pos, index, key)
            }
        };
        info!(
            connector = %cfg.name,
            tables = tables.len(),
            rows_estimated = estimate.unwrap_or(0),
            file = %position.file,
            pos = position.pos,
            gtids = %position.gtids_text(),
            resumed_at_table = index,
            "snapshot started"
        );
        Ok(Snapshot {
            conn: Some(conn),
            prefetch: None,
            cfg,
            partition,
            connector,
            position,
            tables,
            index,
            last_key,
            keyless_offset: 0,
            rows_done: 0,
            rows_estimated: estimate.unwrap_or(0),
            pending: None,
            ts_ms: crate::now_ms(),
            history,
            seed_records,
        })
    }

    /// The schema-change records to send before the first row (once).
    pub fn take_seed_records(&mut self) -> Vec<SourceRecord> {
        std::mem::take(&mut self.seed_records)
    }

    /// The schema history, for the stream that follows.
    pub fn take_history(&mut self) -> Option<Box<SchemaHistory>> {
        self.history.take()
    }

    /// Reads the next page. Returns `None` once every table is read (the held-back last
    /// record is then released with `snapshot=last` and the streaming offset).
    pub async fn next_page(&mut self) -> Result<Option<Vec<SourceRecord>>, MySqlError> {
        let mut out = Vec::new();
        while self.index < self.tables.len() {
            let info = self.tables[self.index].clone();
            let page = self.read_page(&info).await?;
            if page.is_empty() {
                self.index += 1;
                self.last_key = None;
                self.keyless_offset = 0;
                continue;
            }
            if let Some(p) = self.pending.take() {
                out.push(p);
            }
            let n = page.len();
            for (i, (row, key)) in page.into_iter().enumerate() {
                // Only the page's last row carries the cursor: a restart repeats at most the
                // page being read, and no row pays for an offset it does not need.
                if i + 1 == n {
                    let cursor_key = (!info.schema.key.is_empty()).then_some(key);
                    let mut record = self.record(&info, row);
                    record.offset = Some(self.cursor_offset(&info, cursor_key.as_deref()));
                    self.pending = Some(record);
                } else {
                    out.push(self.record(&info, row));
                }
            }
            self.rows_done += n as u64;
            return Ok(Some(out));
        }
        // Done: release the last record as `last`, carrying the streaming start offset.
        match self.pending.take() {
            Some(mut last) => {
                if let Payload::Change(e) = &mut last.payload {
                    e.source.snapshot = SnapshotMarker::Last;
                }
                last.offset = Some(crate::binlog::offset(
                    &self.position.file,
                    self.position.pos,
                    0,
                    self.position.gtids_text(),
                ));
                Ok(Some(vec![last]))
            }
            None => Ok(None),
        }
    }

    /// The page query after `last_key` (keyed) or at `offset` (keyless).
    fn page_sql(
        &self,
        info: &TableInfo,
        last_key: Option<&[Wire]>,
        offset: u64,
    ) -> (String, Vec<Wire>) {
        let cols: Vec<String> = info.schema.columns.iter().map(|c| ident(&c.name)).collect();
        let key_cols: Vec<String> = info.schema.key.iter().map(|&i| cols[i].clone()).collect();
        let table = format!(
            "{}.{}",
            ident(&info.schema.id.namespace),
            ident(&info.schema.id.name)
        );
        let limit = self.cfg.fetch_size;
        if key_cols.is_empty() {
            (
                format!(
                    "SELECT {} FROM {table} LIMIT {limit} OFFSET {offset}",
                    cols.join(", "),
                ),
                Vec::new(),
            )
        } else {
            let order = key_cols.join(", ");
            match last_key {
                None => (
                    format!(
                        "SELECT {} FROM {table} ORDER BY {order} LIMIT {limit}",
                        cols.join(", ")
                    ),
                    Vec::new(),
                ),
                Some(key) => (
                    format!(
                        "SELECT {} FROM {table} WHERE ({order}) > ({}) ORDER BY {order} LIMIT {limit}",
                        cols.join(", "),
                        vec!["?"; key.len()].join(", ")
                    ),
                    key.to_vec(),
                ),
            }
        }
    }

    /// Takes the connection back from a running prefetch: the page it read and its rows.
    async fn reclaim(&mut self) -> Result<Option<(PageId, PageRows)>, MySqlError> {
        let Some(p) = self.prefetch.take() else {
            return Ok(None);
        };
        let (conn, rows) = p.task.await.map_err(|e| {
            MySqlError::Unsupported(format!("the snapshot's page query task failed: {e}"))
        })?;
        self.conn = Some(conn);
        Ok(Some((p.page, rows)))
    }

    async fn read_page(&mut self, info: &TableInfo) -> Result<Vec<(Row, Vec<Wire>)>, MySqlError> {
        let page = (self.index, self.last_key.clone(), self.keyless_offset);
        let rows = match self.reclaim().await? {
            Some((read, rows)) if read == page => rows,
            // A prefetch of another page (none is issued that is not the next): discard it.
            _ => {
                let (sql, params) =
                    self.page_sql(info, self.last_key.as_deref(), self.keyless_offset);
                let conn = self
                    .conn
                    .take()
                    .ok_or_else(|| MySqlError::Unsupported("snapshot connection lost".into()))?;
                let (conn, rows) = page_query(conn, sql, params).await;
                self.conn = Some(conn);
                rows
            }
        }
        .map_err(|e| q(e, "snapshot page query"))?;
        // The next page of this table is read while this one is converted and encoded; an
        // empty page ends the table (and its query costs one round trip).
        if let Some(last) = rows.last() {
            // The state this page leaves (see the end of this function): the last row's key
            // (empty for keyless tables) and the rows read so far.
            let next_key: Vec<Wire> = info
                .schema
                .key
                .iter()
                .map(|&i| last.as_ref(i).cloned().unwrap_or(Wire::NULL))
                .collect();
            let next_offset = self.keyless_offset + rows.len() as u64;
            let (sql, params) = self.page_sql(info, Some(&next_key), next_offset);
            if let Some(conn) = self.conn.take() {
                self.prefetch = Some(Prefetch {
                    page: (self.index, Some(next_key), next_offset),
                    task: tokio::spawn(page_query(conn, sql, params)),
                });
            }
        }
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let wires = row.unwrap();
            let key: Vec<Wire> = info
                .schema
                .key
                .iter()
                .map(|&i| wires.get(i).cloned().unwrap_or(Wire::NULL))
                .collect();
            let mut values = Vec::with_capacity(wires.len());
            for (wire, plan) in wires.into_iter().zip(&info.plans) {
                values.push(convert(wire, plan, Origin::Snapshot).map_err(|e| {
                    MySqlError::Unsupported(format!(
                        "cannot decode a snapshot row of {}: {e}",
                        info.schema.id
                    ))
                })?);
            }
            out.push((Row(values), key));
        }
        if let Some((_, key)) = out.last() {
            self.last_key = Some(key.clone());
        }
        self.keyless_offset += out.len() as u64;
        Ok(out)
    }

    /// A snapshot row, without an offset.
    fn record(&self, info: &Arc<TableInfo>, row: Row) -> SourceRecord {
        let source = SourceInfo {
            connector: self.connector,
            name: self.cfg.prefix.clone(),
            ts_ms: self.ts_ms,
            snapshot: SnapshotMarker::True,
            db: Arc::from(info.schema.id.namespace.as_str()),
            schema: None,
            table: Some(Arc::from(info.schema.id.name.as_str())),
            extra: vec![
                ("server_id", Value::Int(0)),
                ("gtid", Value::Null),
                ("file", Value::Text(self.position.file.clone())),
                ("pos", Value::Int(self.position.pos as i64)),
                ("row", Value::Int(0)),
                ("thread", Value::Null),
                ("query", Value::Null),
            ],
        };
        let event = ChangeEvent {
            op: Op::Read,
            table: info.schema.clone(),
            before: None,
            after: Some(row),
            source,
            transaction: None,
            processed_ts_ms: crate::now_ms(),
            headers: Vec::new(),
        };
        SourceRecord {
            topic: info.topic.clone(),
            payload: Payload::Change(Box::new(event)),
            partition: self.partition.clone(),
            offset: None,
        }
    }

    /// The offset of a page's last row: the snapshot position and the cursor after it.
    fn cursor_offset(&self, info: &TableInfo, key: Option<&[Wire]>) -> SourceOffset {
        let mut value = serde_json::json!({
            "file": self.position.file,
            "pos": self.position.pos,
            "row": 0,
            "snapshot": true,
            "snapshot_table": info.schema.id.to_string(),
            "snapshot_key": key.map(|k| k.iter().map(wire_to_json).collect::<Vec<_>>()),
        });
        let gtids = self.position.gtids_text();
        if !gtids.is_empty() {
            value["gtids"] = serde_json::Value::String(gtids);
        }
        SourceOffset {
            value,
            order: OffsetOrder([file_index(&self.position.file), self.position.pos, 0]),
        }
    }

    /// Ends the snapshot transaction and hands the connection back.
    pub async fn finish(mut self) -> Result<Conn, MySqlError> {
        let _ = self.reclaim().await?;
        let mut conn = self
            .conn
            .take()
            .ok_or_else(|| MySqlError::Unsupported("snapshot connection lost".into()))?;
        let _ = conn.query_drop("COMMIT").await;
        Ok(conn)
    }
}

enum Locking {
    Minimal,
    None,
}

fn cfg_locking(cfg: &MySqlConfig) -> Locking {
    if cfg.snapshot_lock {
        Locking::Minimal
    } else {
        Locking::None
    }
}

/// A key value as JSON for the offset: `{"i":..}`, `{"u":..}`, `{"s":"hex"}`, `{"f":..}`,
/// `{"d":[y,m,d,h,mi,s,us]}`, `{"t":[neg,d,h,mi,s,us]}`, `null`.
pub fn wire_to_json(w: &Wire) -> serde_json::Value {
    use serde_json::json;
    match w {
        Wire::NULL => serde_json::Value::Null,
        Wire::Int(v) => json!({ "i": v }),
        Wire::UInt(v) => json!({ "u": v }),
        Wire::Float(v) => json!({ "f": f64::from(*v) }),
        Wire::Double(v) => json!({ "f": v }),
        Wire::Bytes(b) => json!({ "s": b.iter().map(|x| format!("{x:02x}")).collect::<String>() }),
        Wire::Date(y, m, d, h, mi, s, us) => json!({ "d": [y, m, d, h, mi, s, us] }),
        Wire::Time(neg, d, h, mi, s, us) => json!({ "t": [neg, d, h, mi, s, us] }),
    }
}

/// Inverse of [`wire_to_json`].
pub fn wire_from_json(v: &serde_json::Value) -> Option<Wire> {
    if v.is_null() {
        return Some(Wire::NULL);
    }
    let obj = v.as_object()?;
    let (tag, val) = obj.iter().next()?;
    let arr = |n: usize| -> Option<Vec<u64>> {
        let a = val.as_array()?;
        (a.len() == n).then(|| {
            a.iter()
                .map(|x| {
                    x.as_u64()
                        .or_else(|| x.as_bool().map(u64::from))
                        .unwrap_or(0)
                })
                .collect()
        })
    };
    Some(match tag.as_str() {
        "i" => Wire::Int(val.as_i64()?),
        "u" => Wire::UInt(val.as_u64()?),
        "f" => Wire::Double(val.as_f64()?),
        "s" => {
            let hex = val.as_str()?;
            let bytes: Option<Vec<u8>> = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok())
                .collect();
            Wire::Bytes(bytes?)
        }
        "d" => {
            let a = arr(7)?;
            Wire::Date(
                a[0] as u16,
                a[1] as u8,
                a[2] as u8,
                a[3] as u8,
                a[4] as u8,
                a[5] as u8,
                a[6] as u32,
            )
        }
        "t" => {
            let a = arr(6)?;
            Wire::Time(
                a[0] != 0,
                a[1] as u32,
                a[2] as u8,
                a[3] as u8,
                a[4] as u8,
                a[5] as u32,
            )
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_round_trip_through_offsets() {
        for w in [
            Wire::NULL,
            Wire::Int(-5),
            Wire::UInt(u64::MAX),
            Wire::Double(1.5),
            Wire::Bytes(b"a\x00'b".to_vec()),
            Wire::Date(2024, 2, 29, 1, 2, 3, 4),
            Wire::Time(true, 1, 2, 3, 4, 5),
        ] {
            assert_eq!(wire_from_json(&wire_to_json(&w)), Some(w));
        }
        assert_eq!(wire_from_json(&serde_json::json!({"x": 1})), None);
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(ident("a`b"), "`a``b`");
    }
}
