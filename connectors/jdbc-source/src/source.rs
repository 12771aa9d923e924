//! The polling task: resolves tables to targets, queries each when it is due, and turns rows
//! into flat records with Kafka Connect offsets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::json;
use tracing::{info, warn};

use tributary_runtime::config::did_you_mean;
use tributary_runtime::connector::{SourceTask, SourceTaskContext};
use tributary_runtime::error::ConnectorError;
use tributary_runtime::model::{Row, SchemaRef, TableId, TableSchema};
use tributary_runtime::offsets::StoredOffset;
use tributary_runtime::progress::ProgressHandle;
use tributary_runtime::record::{Payload, SourcePartition, SourceRecord};

use crate::config::{DialectKind, JdbcSourceConfig, Mode};
use crate::dialect::{Connection, Decoder, Described, Sql, TableRef};
use crate::error::JdbcError;
use crate::query::{Criteria, Position};
use crate::schema::{Adjust, adjust_value, is_integral, is_temporal};

/// One table (or the custom query) and how to poll it.
#[derive(Debug, Clone)]
pub struct Target {
    pub table: Option<TableRef>,
    /// Kafka Connect's source partition, as JSON.
    pub partition: serde_json::Value,
    pub topic: Arc<str>,
    pub schema: SchemaRef,
    pub decoders: Vec<Decoder>,
    pub adjusts: Vec<Adjust>,
    /// `SELECT <columns> FROM <table>` without a filter.
    pub select: String,
    pub criteria: Criteria,
}

fn setup(message: String) -> JdbcError {
    JdbcError::Setup(message)
}

/// Finds a configured column among the described ones: exact, then case-insensitive.
fn find_column(
    described: &[Described],
    name: &str,
    field: &str,
    what: &str,
) -> Result<usize, JdbcError> {
    if let Some(i) = described.iter().position(|d| d.column.column.name == name) {
        return Ok(i);
    }
    if let Some(i) = described
        .iter()
        .position(|d| d.column.column.name.eq_ignore_ascii_case(name))
    {
        return Ok(i);
    }
    let names: Vec<&str> = described
        .iter()
        .map(|d| d.column.column.name.as_str())
        .collect();
    let hint = did_you_mean(name, names.iter().copied())
        .map(|s| format!(" (did you mean {s:?}?)"))
        .unwrap_or_default();
    Err(setup(format!(
        "{field}: {what} has no column {name:?}{hint}; its columns are {}",
        names.join(", ")
    )))
}

/// Builds the polling target of a table or query from its described columns.
fn build_target(
    cfg: &JdbcSourceConfig,
    sql: Sql,
    table: Option<TableRef>,
    described: Vec<Described>,
    version: u32,
) -> Result<Target, JdbcError> {
    let what = match &table {
        Some(t) => format!("table {}", t.fqn()),
        None => "the custom query".to_owned(),
    };
    if described.is_empty() {
        return Err(setup(format!(
            "{what} has no columns (does it exist and may this user read it?)"
        )));
    }
    let check_not_null = |i: usize, field: &str| -> Result<(), JdbcError> {
        let c = &described[i].column.column;
        if cfg.validate_non_null && c.nullable && table.is_some() {
            return Err(setup(format!(
                "{field}: column {} of {what} is nullable; rows where it is NULL would never be read. Make it NOT NULL or set validate.non.null=false",
                c.name
            )));
        }
        Ok(())
    };
    let incrementing = if cfg.mode.uses_incrementing() {
        let index = match &cfg.incrementing_column {
            Some(name) => find_column(&described, name, "incrementing.column.name", &what)?,
            None => described.iter().position(|d| d.auto_increment).ok_or_else(|| {
                setup(format!(
                    "incrementing.column.name: {what} has no auto-increment column to detect; name the strictly increasing column"
                ))
            })?,
        };
        let c = &described[index].column.column;
        if !is_integral(&c.data_type) {
            return Err(setup(format!(
                "incrementing.column.name: column {} of {what} is {}, not an integer",
                c.name, c.sql_type
            )));
        }
        check_not_null(index, "incrementing.column.name")?;
        Some((index, sql.ident(&c.name)))
    } else {
        None
    };
    let mut timestamps = Vec::new();
    let mut naive = Vec::new();
    if cfg.mode.uses_timestamp() {
        for name in &cfg.timestamp_columns {
            let index = find_column(&described, name, "timestamp.column.name", &what)?;
            let c = &described[index].column;
            if !is_temporal(&c.column.data_type) {
                return Err(setup(format!(
                    "timestamp.column.name: column {} of {what} is {}, not a timestamp or date",
                    c.column.name, c.column.sql_type
                )));
            }
            // Coalesced columns may be null as long as one is set (Kafka Connect checks
            // only a single timestamp column).
            if cfg.timestamp_columns.len() == 1 {
                check_not_null(index, "timestamp.column.name")?;
            }
            naive.push(c.naive_time);
            timestamps.push((index, sql.ident(&c.column.name)));
        }
        if sql.kind == DialectKind::MySql
            && !cfg.timezone.is_utc()
            && naive.iter().any(|n| *n != naive[0])
        {
            return Err(setup(format!(
                "timestamp.column.name: {what} mixes DATETIME and TIMESTAMP columns, which compare in different zones when db.timezone is not UTC; use columns of one type"
            )));
        }
    }
    let columns: Vec<String> = described
        .iter()
        .map(|d| sql.ident(&d.column.column.name))
        .collect();
    let (select, partition, topic, id) = match (&table, &cfg.query) {
        (Some(t), _) => (
            format!("SELECT {} FROM {}", columns.join(", "), sql.table(t)),
            json!({"protocol": "1", "table": t.fqn()}),
            format!("{}{}", cfg.topic_prefix, t.name),
            TableId::new(
                [t.catalog.as_deref(), t.schema.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join("."),
                t.name.clone(),
            ),
        ),
        (None, Some(q)) => (
            format!("SELECT {} FROM ({q}) tributary_query", columns.join(", ")),
            json!({"query": "query"}),
            cfg.topic_prefix.clone(),
            TableId::new("", "query"),
        ),
        (None, None) => return Err(setup("neither a table nor a query to poll".into())),
    };
    if let Err(e) = tributary_runtime::log::validate_topic_name(&topic) {
        return Err(setup(format!(
            "topic.prefix: the topic of {what}, {topic:?}, is not valid: {e}"
        )));
    }
    Ok(Target {
        table,
        partition,
        topic: Arc::from(topic),
        schema: Arc::new(TableSchema {
            id,
            version,
            columns: described.iter().map(|d| d.column.column.clone()).collect(),
            key: Vec::new(),
        }),
        decoders: described.iter().map(|d| d.decoder.clone()).collect(),
        adjusts: described.iter().map(|d| d.column.adjust).collect(),
        select,
        criteria: Criteria {
            mode: cfg.mode,
            incrementing,
            timestamps,
            naive: naive.first().copied().unwrap_or(true),
            timezone: cfg.timezone.clone(),
            sql,
        },
    })
}

/// The tables to poll: listed, filtered by the include/exclude lists, each described and
/// checked. Fails when an included table is missing or a configured column does not fit.
pub async fn resolve(
    cfg: &JdbcSourceConfig,
    conn: &mut Connection,
) -> Result<Vec<Target>, JdbcError> {
    let sql = Sql {
        kind: conn.kind(),
        quote: cfg.quote_identifiers,
    };
    if let Some(q) = &cfg.query {
        let described = conn.describe_query(q, cfg.numeric_mapping).await?;
        return Ok(vec![build_target(cfg, sql, None, described, 1)?]);
    }
    let all = conn.tables(&cfg.table_types).await?;
    for entry in &cfg.include {
        if !all.iter().any(|t| t.matches(entry)) {
            let names: Vec<String> = all.iter().map(|t| t.name.clone()).collect();
            let hint = did_you_mean(entry, names.iter().map(String::as_str))
                .map(|s| format!(" (did you mean {s:?}?)"))
                .unwrap_or_default();
            let db = cfg.url.database.as_deref().unwrap_or("the database");
            return Err(setup(format!(
                "table.include.list/table.whitelist: no table {entry:?} in {db} that this user can read{hint}"
            )));
        }
    }
    let selected: Vec<TableRef> = all
        .into_iter()
        .filter(|t| cfg.include.is_empty() || cfg.include.iter().any(|e| t.matches(e)))
        .filter(|t| !cfg.exclude.iter().any(|e| t.matches(e)))
        .collect();
    let mut targets = Vec::with_capacity(selected.len());
    for table in selected {
        let described = conn.describe(&table, cfg.numeric_mapping).await?;
        targets.push(build_target(cfg, sql, Some(table), described, 1)?);
    }
    Ok(targets)
}

/// A target with its polling state.
struct Polled {
    target: Target,
    partition: SourcePartition,
    position: Position,
    next_due: Instant,
}

/// The running task.
pub struct JdbcTask {
    cfg: Arc<JdbcSourceConfig>,
    conn: Option<Connection>,
    tables: Vec<Polled>,
    restored: Vec<StoredOffset>,
    next_refresh: Instant,
    progress: ProgressHandle,
    /// This task's share of the tables: `(task_id, task_count)`.
    share: (u32, u32),
}

/// Whether the table at `index` (in the sorted table list) belongs to task `task_id` of
/// `task_count`: tables are dealt round-robin, as Kafka Connect groups them.
pub fn owns(index: usize, task_id: u32, task_count: u32) -> bool {
    task_count <= 1 || index % task_count as usize == task_id as usize
}

impl JdbcTask {
    pub async fn open(
        cfg: Arc<JdbcSourceConfig>,
        ctx: SourceTaskContext,
        task_count: u32,
    ) -> Result<JdbcTask, ConnectorError> {
        let mut task = JdbcTask {
            cfg,
            conn: None,
            tables: Vec::new(),
            restored: ctx.offsets,
            next_refresh: Instant::now(),
            progress: ctx.progress,
            share: (ctx.task_id, task_count),
        };
        task.refresh().await?;
        task.progress.set_phase("polling");
        Ok(task)
    }

    async fn connection(&mut self) -> Result<&mut Connection, JdbcError> {
        if self.conn.is_none() {
            self.conn = Some(Connection::open(&self.cfg.url).await?);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| JdbcError::Setup("connection lost".into()))
    }

    /// The stored position of a partition: protocol 1, or Kafka Connect's older protocol 0
    /// (`{"table": "<name>"}`), so offsets of an upgraded connector are honoured.
    fn restored_position(&self, target: &Target) -> Option<Position> {
        let v0 = target.table.as_ref().map(|t| json!({"table": t.name}));
        self.restored
            .iter()
            .find(|o| o.partition.to_json() == target.partition)
            .or_else(|| {
                self.restored
                    .iter()
                    .find(|o| Some(o.partition.to_json()) == v0)
            })
            .map(|o| Position::from_offset(&o.offset.value))
    }

    async fn initial_position(&mut self, target: &Target) -> Result<Position, JdbcError> {
        if let Some(p) = self.restored_position(target) {
            return Ok(p);
        }
        Ok(match self.cfg.timestamp_initial {
            Some(-1) => Position {
                incrementing: None,
                timestamp_us: Some(self.connection().await?.now_micros().await?),
            },
            Some(ms) => Position {
                incrementing: None,
                timestamp_us: Some(ms.saturating_mul(1000)),
            },
            None => Position::default(),
        })
    }

    /// Re-lists and re-describes the tables: new tables join, dropped ones leave, changed
    /// ones get a new schema version. Positions of known tables are kept.
    async fn refresh(&mut self) -> Result<(), JdbcError> {
        let cfg = self.cfg.clone();
        let targets = resolve(&cfg, self.connection().await?).await?;
        let mut next = Vec::with_capacity(targets.len());
        for (i, mut target) in targets.into_iter().enumerate() {
            if !owns(i, self.share.0, self.share.1) {
                continue;
            }
            match self
                .tables
                .iter()
                .position(|p| p.target.partition == target.partition)
            {
                Some(k) => {
                    let old = self.tables.swap_remove(k);
                    if old.target.schema.columns != target.schema.columns {
                        Arc::make_mut(&mut target.schema).version = old.target.schema.version + 1;
                        info!(connector = %cfg.name, topic = %target.topic, version = target.schema.version, "table columns changed");
                    } else {
                        target.schema = old.target.schema.clone();
                    }
                    next.push(Polled { target, ..old });
                }
                None => {
                    let position = self.initial_position(&target).await?;
                    info!(connector = %cfg.name, topic = %target.topic, "polling table");
                    next.push(Polled {
                        partition: SourcePartition::from_json(&target.partition),
                        target,
                        position,
                        next_due: Instant::now(),
                    });
                }
            }
        }
        if next.is_empty() {
            warn!(connector = %cfg.name, "no table to poll; new tables are picked up every table.poll.interval.ms");
        }
        self.tables = next;
        self.next_refresh = Instant::now() + cfg.table_poll_interval;
        Ok(())
    }

    fn adjust(&self, target: &Target, row: Row) -> Result<Row, JdbcError> {
        let mut values = Vec::with_capacity(row.0.len());
        for ((value, adjust), column) in row
            .0
            .into_iter()
            .zip(&target.adjusts)
            .zip(&target.schema.columns)
        {
            values.push(
                adjust_value(value, *adjust, &self.cfg.timezone).map_err(|e| {
                    JdbcError::Value(format!("{}: column {}: {e}", target.topic, column.name))
                })?,
            );
        }
        Ok(Row(values))
    }

    /// Queries one table once; returns its records and whether it is caught up.
    async fn poll_table(&mut self, index: usize) -> Result<(Vec<SourceRecord>, bool), JdbcError> {
        let cfg = self.cfg.clone();
        let limit = cfg.batch_max_rows;
        let (target, position) = {
            let p = &self.tables[index];
            (p.target.clone(), p.position)
        };
        let end_us = if cfg.mode.uses_timestamp() {
            self.connection().await?.now_micros().await? - cfg.timestamp_delay.as_micros() as i64
        } else {
            0
        };
        let suffix = match cfg.query_suffix.trim() {
            "" => String::new(),
            s => format!(" {s}"),
        };
        let sql = format!(
            "{}{suffix}",
            target
                .criteria
                .next_rows(&target.select, &position, end_us, limit)
        );
        let raw = self
            .connection()
            .await?
            .fetch(&sql, &target.decoders)
            .await?;
        let full = raw.len() >= limit && cfg.mode != Mode::Bulk;
        let mut rows = Vec::with_capacity(raw.len());
        for row in raw {
            let row = self.adjust(&target, row)?;
            let at = target
                .criteria
                .position_of(&row)
                .map_err(|e| JdbcError::Value(format!("{}: {e}", target.topic)))?;
            rows.push((row, at));
        }
        // Timestamp mode has no tie-breaker: a limited read may cut a group of rows sharing
        // the last timestamp. Drop the cut group, or read it whole when it is all there is.
        if cfg.mode == Mode::Timestamp && full {
            let last = rows.last().and_then(|(_, p)| p.timestamp_us);
            let keep = rows
                .iter()
                .take_while(|(_, p)| p.timestamp_us != last)
                .count();
            if keep > 0 {
                rows.truncate(keep);
            } else if let Some(us) = last {
                let group = target.criteria.rows_at(&target.select, us);
                let raw = self
                    .connection()
                    .await?
                    .fetch(&group, &target.decoders)
                    .await?;
                rows.clear();
                for row in raw {
                    let row = self.adjust(&target, row)?;
                    rows.push((
                        row,
                        Position {
                            incrementing: None,
                            timestamp_us: Some(us),
                        },
                    ));
                }
            }
        }
        let partition = self.tables[index].partition.clone();
        let mut out = Vec::with_capacity(rows.len());
        for i in 0..rows.len() {
            let (row, at) = &rows[i];
            // In timestamp mode only the last row of a timestamp group carries the offset:
            // resuming after it must not skip its peers.
            let carries = match cfg.mode {
                Mode::Bulk => false,
                Mode::Timestamp => rows
                    .get(i + 1)
                    .is_none_or(|(_, next)| next.timestamp_us != at.timestamp_us),
                _ => true,
            };
            out.push(SourceRecord {
                topic: target.topic.clone(),
                payload: Payload::Row {
                    table: target.schema.clone(),
                    row: row.clone(),
                },
                partition: partition.clone(),
                offset: carries.then(|| at.to_offset()),
            });
            if cfg.mode != Mode::Bulk {
                self.tables[index].position = *at;
            }
        }
        Ok((out, !full))
    }
}

#[async_trait]
impl SourceTask for JdbcTask {
    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectorError> {
        let now = Instant::now();
        if self.cfg.query.is_none() && now >= self.next_refresh {
            self.refresh().await.inspect_err(|_| self.conn = None)?;
        }
        let Some(index) = (0..self.tables.len()).min_by_key(|&i| self.tables[i].next_due) else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            return Ok(Vec::new());
        };
        let due = self.tables[index].next_due;
        if due > now {
            tokio::time::sleep((due - now).min(Duration::from_secs(1))).await;
            return Ok(Vec::new());
        }
        match self.poll_table(index).await {
            Ok((records, caught_up)) => {
                self.tables[index].next_due = if caught_up {
                    Instant::now() + self.cfg.poll_interval
                } else {
                    Instant::now()
                };
                Ok(records)
            }
            Err(e) => {
                // A broken connection is reopened on the next attempt.
                if let Some(conn) = self.conn.take() {
                    conn.close().await;
                }
                Err(e.into())
            }
        }
    }

    async fn close(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::owns;

    #[test]
    fn tables_are_dealt_round_robin() {
        let of = |task| (0..7).filter(|&i| owns(i, task, 3)).collect::<Vec<_>>();
        assert_eq!(of(0), vec![0, 3, 6]);
        assert_eq!(of(1), vec![1, 4]);
        assert_eq!(of(2), vec![2, 5]);
        assert!((0..7).all(|i| owns(i, 0, 1)));
    }
}
