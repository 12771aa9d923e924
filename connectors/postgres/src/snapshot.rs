//! The initial snapshot: every captured table read inside one REPEATABLE READ transaction
//! that imports the snapshot exported by `CREATE_REPLICATION_SLOT ... EXPORT_SNAPSHOT`.
//!
//! The imported snapshot sees exactly the transactions committed before the slot's
//! consistent point, and the stream starts at that point: together they cover every change
//! once. Tables are read in chunks of `snapshot.fetch.size` rows, by primary-key range
//! (keyset pagination) or, without a primary key, through a server-side cursor, so memory
//! stays bounded and each poll returns promptly.

use std::collections::VecDeque;

use tokio_postgres::{Client, SimpleQueryMessage, SimpleQueryRow};
use tracing::info;

use tributary_runtime::model::TableId;

use crate::config::PgConfig;
use crate::error::PgError;
use crate::replication::{quote_ident, quote_literal};
use crate::slot::{CatalogColumn, connect_sql, table_columns};

const CURSOR: &str = "tributary_snapshot";

/// Reads the captured tables chunk by chunk.
pub struct Snapshotter {
    client: Client,
    tables: VecDeque<TableId>,
    current: Option<Current>,
    fetch: usize,
    pub rows_done: u64,
    pub rows_estimate: u64,
}

/// The table being read.
struct Current {
    table: TableId,
    /// `SELECT <columns> FROM <table>`.
    select: String,
    /// Select-list positions and quoted names of the primary key, in key order; empty when
    /// the table has none (then a server-side cursor is used).
    key: Vec<(usize, String)>,
    /// Key of the last row read (text), for the next range.
    last_key: Option<Vec<String>>,
}

/// One chunk: the table, its catalog columns (select-list order) and the rows.
pub struct Chunk {
    pub table: TableId,
    pub columns: Option<Vec<CatalogColumn>>,
    pub rows: Vec<SimpleQueryRow>,
}

fn rows_of(messages: Vec<SimpleQueryMessage>) -> Vec<SimpleQueryRow> {
    messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .collect()
}

impl Snapshotter {
    /// Opens a connection and a REPEATABLE READ transaction on the exported snapshot.
    pub async fn begin(
        cfg: &PgConfig,
        snapshot_name: &str,
        tables: Vec<TableId>,
    ) -> Result<Snapshotter, PgError> {
        let client = connect_sql(cfg).await?;
        client
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
                quote_literal(snapshot_name)
            ))
            .await
            .map_err(PgError::sql("importing the exported snapshot"))?;
        let mut rows_estimate = 0u64;
        for t in &tables {
            let sql = format!(
                "SELECT greatest(reltuples, 0)::int8 FROM pg_class WHERE oid = {}::regclass",
                quote_literal(&qualified(t))
            );
            let rows = rows_of(
                client
                    .simple_query(&sql)
                    .await
                    .map_err(PgError::sql(format!("estimating rows of {t}")))?,
            );
            rows_estimate += rows
                .first()
                .and_then(|r| r.get(0))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
        info!(tables = tables.len(), rows_estimate, "snapshot started");
        Ok(Snapshotter {
            client,
            tables: tables.into(),
            current: None,
            fetch: cfg.snapshot_fetch_size,
            rows_done: 0,
            rows_estimate,
        })
    }

    /// The next chunk of rows, or `None` when every table has been read (the transaction is
    /// then committed). Tables with a primary key are read in key ranges
    /// (`WHERE (pk) > (last) ORDER BY pk LIMIT n`); others through a server-side cursor.
    pub async fn next_chunk(&mut self) -> Result<Option<Chunk>, PgError> {
        loop {
            let mut columns = None;
            if self.current.is_none() {
                let Some(t) = self.tables.pop_front() else {
                    self.client
                        .batch_execute("COMMIT")
                        .await
                        .map_err(PgError::sql("ending the snapshot transaction"))?;
                    return Ok(None);
                };
                let cols = table_columns(&self.client, &t).await?;
                let list: Vec<String> = cols.iter().map(|c| quote_ident(&c.name)).collect();
                let select = format!("SELECT {} FROM {}", list.join(", "), qualified(&t));
                let mut key: Vec<(i32, usize, String)> = cols
                    .iter()
                    .enumerate()
                    .filter_map(|(i, c)| c.pk_position.map(|p| (p, i, quote_ident(&c.name))))
                    .collect();
                key.sort_unstable();
                let key: Vec<(usize, String)> = key.into_iter().map(|(_, i, n)| (i, n)).collect();
                if key.is_empty() {
                    self.client
                        .batch_execute(&format!("DECLARE {CURSOR} NO SCROLL CURSOR FOR {select}"))
                        .await
                        .map_err(PgError::sql(format!("reading table {t}")))?;
                }
                columns = Some(cols);
                self.current = Some(Current {
                    table: t,
                    select,
                    key,
                    last_key: None,
                });
            }
            let Some(current) = self.current.as_mut() else {
                continue;
            };
            let table = current.table.clone();
            let sql = if current.key.is_empty() {
                format!("FETCH FORWARD {} FROM {CURSOR}", self.fetch)
            } else {
                let names: Vec<&str> = current.key.iter().map(|(_, n)| n.as_str()).collect();
                let names = names.join(", ");
                let range = match &current.last_key {
                    Some(last) => {
                        let lits: Vec<String> = last.iter().map(|v| quote_literal(v)).collect();
                        format!(" WHERE ({names}) > ({})", lits.join(", "))
                    }
                    None => String::new(),
                };
                format!(
                    "{}{range} ORDER BY {names} LIMIT {}",
                    current.select, self.fetch
                )
            };
            let rows = rows_of(
                self.client
                    .simple_query(&sql)
                    .await
                    .map_err(PgError::sql(format!("reading table {table}")))?,
            );
            if !current.key.is_empty()
                && let Some(last) = rows.last()
            {
                let key: Option<Vec<String>> = current
                    .key
                    .iter()
                    .map(|(i, _)| last.get(*i).map(str::to_owned))
                    .collect();
                current.last_key = Some(key.ok_or_else(|| {
                    PgError::Protocol(format!("primary key of {table} read as NULL"))
                })?);
            }
            if rows.len() < self.fetch {
                if current.key.is_empty() {
                    self.client
                        .batch_execute(&format!("CLOSE {CURSOR}"))
                        .await
                        .map_err(PgError::sql(format!("reading table {table}")))?;
                }
                self.current = None;
                info!(table = %table, "snapshot of table done");
            }
            if rows.is_empty() && columns.is_none() {
                continue;
            }
            self.rows_done += rows.len() as u64;
            return Ok(Some(Chunk {
                table,
                columns,
                rows,
            }));
        }
    }
}

fn qualified(t: &TableId) -> String {
    format!("{}.{}", quote_ident(&t.namespace), quote_ident(&t.name))
}
