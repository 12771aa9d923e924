//! The initial snapshot: every captured table read by `snapshot.max.threads` connections that
//! each import the snapshot exported by `CREATE_REPLICATION_SLOT ... EXPORT_SNAPSHOT` into a
//! REPEATABLE READ transaction.
//!
//! The imported snapshot sees exactly the transactions committed before the slot's
//! consistent point, and the stream starts at that point: together they cover every change
//! once. Every reader sees the same snapshot, so reading tables in parallel changes nothing
//! in what is read. Tables are read in chunks of `snapshot.fetch.size` rows, by primary-key
//! range (keyset pagination) or, without a primary key, through a server-side cursor, so
//! memory stays bounded (one chunk per reader waits in the channel while the task encodes
//! another, and each reader reads its next one meanwhile).
//!
//! [`TableQuery`] is shared with the resumed snapshot ([`crate::backfill`]), which reads the
//! same key ranges outside any snapshot, between watermarks.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::{Client, SimpleQueryMessage, SimpleQueryRow};
use tracing::{debug, info};

use tributary_runtime::model::TableId;

use crate::config::PgConfig;
use crate::error::PgError;
use crate::replication::{quote_ident, quote_literal};
use crate::slot::{CatalogColumn, connect_sql, table_columns};

const CURSOR: &str = "tributary_snapshot";

/// How to read one table: its catalog columns (select-list order) and primary key.
pub struct TableQuery {
    pub table: TableId,
    pub columns: Vec<CatalogColumn>,
    /// `SELECT <columns> FROM <table>`.
    select: String,
    /// Select-list positions and quoted names of the primary key, in key order; empty when
    /// the table has none.
    key: Vec<(usize, String)>,
}

impl TableQuery {
    /// Reads the table's columns; `None` when the table no longer exists.
    pub async fn load(client: &Client, table: &TableId) -> Result<Option<TableQuery>, PgError> {
        let columns = table_columns(client, table).await?;
        if columns.is_empty() {
            return Ok(None);
        }
        let list: Vec<String> = columns.iter().map(|c| quote_ident(&c.name)).collect();
        let select = format!("SELECT {} FROM {}", list.join(", "), qualified(table));
        let mut key: Vec<(i32, usize, String)> = columns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.pk_position.map(|p| (p, i, quote_ident(&c.name))))
            .collect();
        key.sort_unstable();
        Ok(Some(TableQuery {
            table: table.clone(),
            columns,
            select,
            key: key.into_iter().map(|(_, i, n)| (i, n)).collect(),
        }))
    }

    /// Whether the table has a primary key (then it is read in key ranges).
    pub fn keyed(&self) -> bool {
        !self.key.is_empty()
    }

    /// Names of the primary-key columns, in key order.
    pub fn key_names(&self) -> Vec<String> {
        self.key
            .iter()
            .filter_map(|(i, _)| self.columns.get(*i).map(|c| c.name.clone()))
            .collect()
    }

    /// Every row, in no particular order.
    pub fn all_sql(&self) -> &str {
        &self.select
    }

    /// At most `limit` rows with a key after `after` (all when `None`), in key order.
    pub fn chunk_sql(&self, after: Option<&[String]>, limit: usize) -> String {
        let names: Vec<&str> = self.key.iter().map(|(_, n)| n.as_str()).collect();
        let names = names.join(", ");
        let range = match after {
            Some(last) => {
                let lits: Vec<String> = last.iter().map(|v| quote_literal(v)).collect();
                format!(" WHERE ({names}) > ({})", lits.join(", "))
            }
            None => String::new(),
        };
        format!("{}{range} ORDER BY {names} LIMIT {limit}", self.select)
    }

    /// The primary key of `row` as text, for the next range.
    pub fn key_of(&self, row: &SimpleQueryRow) -> Result<Vec<String>, PgError> {
        self.key
            .iter()
            .map(|(i, _)| row.get(*i).map(str::to_owned))
            .collect::<Option<Vec<String>>>()
            .ok_or_else(|| PgError::Protocol(format!("primary key of {} read as NULL", self.table)))
    }
}

/// One chunk: the table, its catalog columns (on the table's first chunk), the rows, the key
/// of the last row (keyed tables) and whether the table is finished.
pub struct Chunk {
    pub table: TableId,
    pub columns: Option<Vec<CatalogColumn>>,
    pub rows: Vec<SimpleQueryRow>,
    pub last_key: Option<Vec<String>>,
    pub table_done: bool,
}

pub fn rows_of(messages: Vec<SimpleQueryMessage>) -> Vec<SimpleQueryRow> {
    messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .collect()
}

/// Runs `sql` and returns its rows; errors name `what`.
pub async fn query_rows(
    client: &Client,
    sql: &str,
    what: impl FnOnce() -> String,
) -> Result<Vec<SimpleQueryRow>, PgError> {
    match client.simple_query(sql).await {
        Ok(messages) => Ok(rows_of(messages)),
        Err(e) => Err(PgError::sql(what())(e)),
    }
}

/// Sum of `pg_class.reltuples` of `tables` (the planner's estimate; 0 for unknown).
pub async fn estimate_rows(client: &Client, tables: &[TableId]) -> Result<u64, PgError> {
    let mut total = 0u64;
    for t in tables {
        let sql = format!(
            "SELECT greatest(reltuples, 0)::int8 FROM pg_class WHERE oid = to_regclass({})",
            quote_literal(&qualified(t))
        );
        let rows = query_rows(client, &sql, || format!("estimating rows of {t}")).await?;
        total += rows
            .first()
            .and_then(|r| r.get(0))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Ok(total)
}

/// Reads the captured tables on parallel connections; chunks arrive through a channel.
pub struct Snapshotter {
    rx: mpsc::Receiver<Result<Chunk, PgError>>,
    readers: Vec<JoinHandle<()>>,
    pub rows_done: u64,
    pub rows_estimate: u64,
}

impl Drop for Snapshotter {
    fn drop(&mut self) {
        for r in &self.readers {
            r.abort();
        }
    }
}

impl Snapshotter {
    /// Opens up to `snapshot.max.threads` connections (never more than there are tables),
    /// each in a REPEATABLE READ transaction on the exported snapshot, and starts reading.
    /// Every import finishes before this returns: the exported snapshot lives only while the
    /// replication connection stays idle, and an import error surfaces here.
    pub async fn begin(
        cfg: &PgConfig,
        snapshot_name: &str,
        tables: Vec<TableId>,
    ) -> Result<Snapshotter, PgError> {
        let threads = cfg.snapshot_max_threads.clamp(1, tables.len().max(1));
        let mut clients = Vec::with_capacity(threads);
        for _ in 0..threads {
            let client = connect_sql(cfg).await?;
            client
                .batch_execute(&format!(
                    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
                    quote_literal(snapshot_name)
                ))
                .await
                .map_err(PgError::sql("importing the exported snapshot"))?;
            clients.push(client);
        }
        let rows_estimate = match clients.first() {
            Some(c) => estimate_rows(c, &tables).await?,
            None => 0,
        };
        info!(
            tables = tables.len(),
            rows_estimate,
            readers = threads,
            "snapshot started"
        );
        let queue = Arc::new(Mutex::new(VecDeque::from(tables)));
        let (tx, rx) = mpsc::channel(threads);
        let readers = clients
            .into_iter()
            .enumerate()
            .map(|(n, client)| {
                tokio::spawn(read_tables(
                    n,
                    client,
                    queue.clone(),
                    cfg.snapshot_fetch_size,
                    tx.clone(),
                ))
            })
            .collect();
        Ok(Snapshotter {
            rx,
            readers,
            rows_done: 0,
            rows_estimate,
        })
    }

    /// The next chunk of rows from any reader, or `None` when every table has been read.
    /// Chunks of one table arrive in key order; tables interleave. Cancel-safe.
    pub async fn next_chunk(&mut self) -> Result<Option<Chunk>, PgError> {
        match self.rx.recv().await {
            None => {
                // Every reader has ended; each ends cleanly only after its last table, so one
                // that panicked must not pass for a finished snapshot.
                for reader in std::mem::take(&mut self.readers) {
                    if let Err(e) = reader.await {
                        return Err(PgError::Protocol(format!("a snapshot reader failed: {e}")));
                    }
                }
                Ok(None)
            }
            Some(Err(e)) => Err(e),
            Some(Ok(chunk)) => {
                self.rows_done += chunk.rows.len() as u64;
                Ok(Some(chunk))
            }
        }
    }
}

/// One reader: takes tables from the shared queue until it is empty, then commits its
/// transaction. An error goes down the channel and ends the reader.
async fn read_tables(
    n: usize,
    client: Client,
    queue: Arc<Mutex<VecDeque<TableId>>>,
    fetch: usize,
    tx: mpsc::Sender<Result<Chunk, PgError>>,
) {
    let result = async {
        loop {
            let next = match queue.lock() {
                Ok(mut q) => q.pop_front(),
                Err(_) => {
                    return Err(PgError::Protocol(
                        "the snapshot's table queue was poisoned by a failed reader".into(),
                    ));
                }
            };
            let Some(table) = next else { break };
            debug!(reader = n, table = %table, "snapshot reader takes a table");
            if !read_table(&client, &table, fetch, &tx).await? {
                return Ok(());
            }
        }
        client
            .batch_execute("COMMIT")
            .await
            .map_err(PgError::sql("ending the snapshot transaction"))
    }
    .await;
    if let Err(e) = result {
        let _ = tx.send(Err(e)).await;
    }
}

/// Sends the chunks of one table; `false` when the receiver is gone.
async fn read_table(
    client: &Client,
    table: &TableId,
    fetch: usize,
    tx: &mpsc::Sender<Result<Chunk, PgError>>,
) -> Result<bool, PgError> {
    let Some(query) = TableQuery::load(client, table).await? else {
        return Err(PgError::Setup(format!(
            "table {table} disappeared during the snapshot"
        )));
    };
    let mut columns = Some(query.columns.clone());
    let mut last_key: Option<Vec<String>> = None;
    if !query.keyed() {
        client
            .batch_execute(&format!(
                "DECLARE {CURSOR} NO SCROLL CURSOR FOR {}",
                query.all_sql()
            ))
            .await
            .map_err(PgError::sql(format!("reading table {table}")))?;
    }
    loop {
        let sql = if query.keyed() {
            query.chunk_sql(last_key.as_deref(), fetch)
        } else {
            format!("FETCH FORWARD {fetch} FROM {CURSOR}")
        };
        let rows = query_rows(client, &sql, || format!("reading table {table}")).await?;
        let table_done = rows.len() < fetch;
        if query.keyed()
            && let Some(last) = rows.last()
        {
            last_key = Some(query.key_of(last)?);
        }
        if table_done && !query.keyed() {
            client
                .batch_execute(&format!("CLOSE {CURSOR}"))
                .await
                .map_err(PgError::sql(format!("reading table {table}")))?;
        }
        let chunk = Chunk {
            table: table.clone(),
            columns: columns.take(),
            rows,
            last_key: last_key.clone(),
            table_done,
        };
        if tx.send(Ok(chunk)).await.is_err() {
            return Ok(false);
        }
        if table_done {
            info!(table = %table, "snapshot of table done");
            return Ok(true);
        }
    }
}

pub fn qualified(t: &TableId) -> String {
    format!("{}.{}", quote_ident(&t.namespace), quote_ident(&t.name))
}
