//! The sink task: decode, map, buffer, and write each flush in one transaction.
//!
//! ```text
//!  put(records) ─ decode ─ map ─► Buffer (per table, one change per key)
//!       │ buffer ≥ batch.size
//!       ▼
//!  flush: DDL (create / add / widen / drop NOT NULL), then
//!         BEGIN; truncate; delete keys; upsert per shape; [offsets]; COMMIT
//!         a data error (a poison row) rolls back and replays row by row under savepoints,
//!         handing each rejected row to the errant record reporter
//! ```
//!
//! # Offsets
//! `pre_commit` flushes, so every offset it returns is committed in the target. With
//! `exactly.once=true` the next offsets go into `__tributary_sink_offsets` in the same
//! transaction; on start the task skips records below them, so a crash between the target
//! commit and the consumer commit writes nothing twice.
//!
//! # Errors
//! Lost connections, deadlocks, serialization failures and timeouts are transient: the task
//! restarts from the committed offsets and the upserts are idempotent. A row the target
//! rejects (too long, NOT NULL, out of range, invalid JSON) or a record that cannot be
//! decoded goes to the errant record reporter (`errors.tolerance`).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use tributary_runtime::connector::{SinkConnector, SinkTask, SinkTaskContext};
use tributary_runtime::data::decode::RecordDecoder;
use tributary_runtime::dead_letter::{ErrantRecordReporter, Stage};
use tributary_runtime::error::{ConnectorError, ErrorKind};
use tributary_runtime::model::Value;
use tributary_runtime::record::{SinkRecord, TopicPartition};

use crate::buffer::{Buffer, TableBatch};
use crate::change::{Change, ChangeKind, ChangeMapper};
use crate::config::JdbcSinkConfig;
use crate::dialect::{Target, connect, dialect};
use crate::error::{DbError, DbErrorKind};
use crate::mapping::FieldSpec;
use crate::table::{TableInfo, TableName, alterations, merge_field};

/// The validated connector.
pub struct JdbcSink {
    pub config: Arc<JdbcSinkConfig>,
}

#[async_trait]
impl SinkConnector for JdbcSink {
    async fn check(&self) -> Result<(), ConnectorError> {
        let target = connect(&self.config.connection).await?;
        target.close().await;
        Ok(())
    }

    async fn open_task(&self, ctx: SinkTaskContext) -> Result<Box<dyn SinkTask>, ConnectorError> {
        let writer = Writer::open(self.config.clone()).await?;
        Ok(Box::new(JdbcSinkTask {
            writer,
            decoder: ctx.decoder,
            errors: ctx.errors,
        }))
    }
}

struct JdbcSinkTask {
    writer: Writer,
    decoder: Arc<RecordDecoder>,
    errors: ErrantRecordReporter,
}

#[async_trait]
impl SinkTask for JdbcSinkTask {
    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<(), ConnectorError> {
        for record in records {
            if self.writer.already_written(&record) {
                continue;
            }
            self.writer.buffer.consumed(&record);
            match self.decoder.decode_staged(&record).await {
                Ok(None) => {}
                Ok(Some(decoded)) => match self.writer.mapper.map(&decoded, &record) {
                    Ok(Some(change)) => self.writer.buffer.push(change),
                    Ok(None) => {}
                    Err(reason) => {
                        self.errors
                            .report(&record, Stage::TaskPut, ConnectorError::definite(reason))
                            .await?
                    }
                },
                Err((_, e)) if e.kind == ErrorKind::Transient => return Err(e),
                Err((stage, e)) => self.errors.report(&record, stage, e).await?,
            }
            if self.writer.buffer.len() >= self.writer.config.batch_size {
                self.writer.flush(&self.errors).await?;
            }
        }
        // What a put hands over is written before it returns, as the Confluent and Debezium
        // JDBC sinks do: batches are as large as the poll (up to `batch.size` each) while
        // catching up, and a streamed row does not wait for a batch to fill.
        self.writer.flush(&self.errors).await
    }

    async fn flush(&mut self) -> Result<(), ConnectorError> {
        self.writer.flush(&self.errors).await
    }

    async fn close(&mut self) {
        if let Some(target) = self.writer.target.take() {
            target.close().await;
        }
    }
}

/// Writes buffered changes to the target. Public so the crate's tests and benchmark drive
/// it without a worker.
pub struct Writer {
    pub config: Arc<JdbcSinkConfig>,
    pub mapper: ChangeMapper,
    pub buffer: Buffer,
    target: Option<Box<dyn Target>>,
    tables: HashMap<TableName, TableInfo>,
    /// `exactly.once`: next offsets already committed in the target.
    resume: HashMap<TopicPartition, u64>,
}

impl Writer {
    /// Connects; with `exactly.once` creates the offsets table and loads the offsets.
    pub async fn open(config: Arc<JdbcSinkConfig>) -> Result<Writer, ConnectorError> {
        let mut target = connect(&config.connection).await?;
        let mut resume = HashMap::new();
        if config.exactly_once {
            let ddl = target.dialect().offsets_table_ddl();
            target.execute(&ddl).await?;
            for (topic, partition, next) in target.load_offsets(&config.connector).await? {
                resume.insert(TopicPartition::new(topic, partition), next);
            }
        }
        let fold = !config.quote_identifiers && dialect(config.connection.dialect).folds_to_lower();
        Ok(Writer {
            mapper: ChangeMapper::new(config.clone(), fold),
            config,
            buffer: Buffer::default(),
            target: Some(target),
            tables: HashMap::new(),
            resume,
        })
    }

    /// `exactly.once`: whether the target already holds this record's effect.
    pub fn already_written(&self, record: &SinkRecord) -> bool {
        if self.resume.is_empty() {
            return false;
        }
        let tp = TopicPartition::new(record.topic.clone(), record.partition);
        self.resume
            .get(&tp)
            .is_some_and(|&next| record.offset < next)
    }

    fn target(&mut self) -> Result<&mut Box<dyn Target>, ConnectorError> {
        self.target
            .as_mut()
            .ok_or_else(|| ConnectorError::transient("jdbc sink connection is closed"))
    }

    /// Writes everything buffered in one transaction.
    pub async fn flush(&mut self, errors: &ErrantRecordReporter) -> Result<(), ConnectorError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let batch = self.buffer.take();
        let result = self.flush_batch(&batch, errors).await;
        if result.is_err() {
            // Nothing of the batch is committed: keep it, so a retry in place (or
            // pre_commit after one) never reports offsets of rows that are not written.
            self.buffer = batch;
        } else if self.config.exactly_once {
            for (tp, next) in &batch.offsets {
                self.resume.insert(tp.clone(), *next);
            }
        }
        result
    }

    async fn flush_batch(
        &mut self,
        batch: &Buffer,
        errors: &ErrantRecordReporter,
    ) -> Result<(), ConnectorError> {
        for (name, tb) in &batch.tables {
            self.prepare_table(name, tb).await?;
        }
        match self.write_batch(batch, None).await {
            Ok(()) => {}
            Err(e) if e.kind == DbErrorKind::Data => {
                self.rollback().await;
                tracing::warn!(connector = %self.config.connector, error = %e.message,
                    "a row was rejected; replaying the batch row by row");
                let result = self.write_batch(batch, Some(errors)).await;
                if let Err(e) = result {
                    self.rollback().await;
                    return Err(e.into());
                }
            }
            Err(e) => {
                self.rollback().await;
                return Err(e.into());
            }
        }
        Ok(())
    }

    async fn rollback(&mut self) {
        if let Some(t) = self.target.as_mut() {
            let _ = t.execute("ROLLBACK").await;
        }
    }

    /// Creates or evolves `name` for the changes buffered for it.
    async fn prepare_table(
        &mut self,
        name: &TableName,
        tb: &TableBatch,
    ) -> Result<(), ConnectorError> {
        let mut fields: Vec<FieldSpec> = Vec::new();
        let mut last: Option<&[FieldSpec]> = None;
        let mut key: Vec<String> = Vec::new();
        for change in tb.changes() {
            if last == Some(change.fields.as_slice()) {
                continue;
            }
            last = Some(&change.fields);
            if key.is_empty() && change.kind == ChangeKind::Upsert {
                key = change.key_names().into_iter().map(str::to_owned).collect();
            }
            for f in &change.fields {
                let present = change
                    .fields
                    .iter()
                    .position(|x| x.name == f.name)
                    .is_some_and(|i| change.values.get(i) != Some(&Value::Unavailable));
                if present {
                    merge_field(&mut fields, f);
                }
            }
        }
        let config = self.config.clone();
        let sql = dialect(config.connection.dialect);
        let cached = self.tables.get(name).cloned();
        let target = self.target()?;
        let info = match cached {
            Some(info) => Some(info),
            None => target
                .describe(name)
                .await
                .map_err(|e| e.context(&format!("describe {name}")))?,
        };
        let info = match info {
            None => {
                let has_rows = tb.changes().any(|c| c.kind == ChangeKind::Upsert);
                if !has_rows {
                    // Nothing to delete or truncate in a table that does not exist.
                    return Ok(());
                }
                if !config.auto_create {
                    return Err(ConnectorError::definite(format!(
                        "table {name} does not exist in the target; create it or set schema.evolution=basic (or auto.create=true)"
                    )));
                }
                // Upsert rows carry every column; the first full shape defines the table.
                let ddl = sql.create_table(name, &fields, &key);
                tracing::info!(connector = %config.connector, table = %name, "creating table");
                target
                    .execute(&ddl)
                    .await
                    .map_err(|e| e.context(&format!("create table {name}")))?;
                target.describe(name).await?.ok_or_else(|| {
                    ConnectorError::definite(format!("table {name} was created but cannot be found; check the schema in table.name.format and currentSchema"))
                })?
            }
            Some(info) => info,
        };
        let changes = alterations(&info, &fields);
        let info = if changes.is_empty() {
            info
        } else if !config.evolve {
            let missing: Vec<String> = changes
                .iter()
                .filter_map(|a| match a {
                    crate::table::Alteration::AddColumn(f) => Some(f.name.clone()),
                    _ => None,
                })
                .collect();
            if !missing.is_empty() {
                return Err(ConnectorError::definite(format!(
                    "table {name} has no column(s) {}; add them or set schema.evolution=basic (or auto.evolve=true)",
                    missing.join(", ")
                )));
            }
            info
        } else {
            for alteration in &changes {
                let current = match alteration {
                    crate::table::Alteration::Widen { column, .. }
                    | crate::table::Alteration::DropNotNull { column } => info.column(column),
                    crate::table::Alteration::AddColumn(_) => None,
                };
                let ddl = sql.alter(name, alteration, current);
                tracing::info!(connector = %config.connector, table = %name, change = ?alteration, "evolving table");
                target
                    .execute(&ddl)
                    .await
                    .map_err(|e| e.context(&format!("alter table {name}")))?;
            }
            target.describe(name).await?.ok_or_else(|| {
                ConnectorError::definite(format!("table {name} disappeared while evolving it"))
            })?
        };
        self.tables.insert(name.clone(), info);
        Ok(())
    }

    /// One transaction with every change of `batch`. With `careful` (after a data error),
    /// each row runs under its own savepoint and rejected rows are reported.
    async fn write_batch(
        &mut self,
        batch: &Buffer,
        careful: Option<&ErrantRecordReporter>,
    ) -> Result<(), DbError> {
        let config = self.config.clone();
        let tables = &self.tables;
        let Some(target) = self.target.as_mut() else {
            return Err(DbError::new(
                DbErrorKind::Transient,
                "jdbc sink connection is closed",
            ));
        };
        target.execute("BEGIN").await?;
        for (name, tb) in &batch.tables {
            let Some(info) = tables.get(name) else {
                continue; // no such table and nothing to create it from
            };
            if tb.truncate.is_some() {
                let sql = target.dialect().truncate(name);
                target.execute(&sql).await?;
            }
            let groups = group(info, tb)?;
            for g in &groups {
                match careful {
                    None => {
                        if g.delete {
                            target.delete(info, &g.key, &g.rows).await?;
                        } else {
                            target
                                .write(info, config.insert_mode, &g.columns, &g.key, &g.rows)
                                .await?;
                        }
                    }
                    Some(errors) => {
                        for (row, change) in g.rows.iter().zip(&g.changes) {
                            target.execute("SAVEPOINT jdbc_sink_row").await?;
                            let rows = std::slice::from_ref(row);
                            let result = if g.delete {
                                target.delete(info, &g.key, rows).await
                            } else {
                                target
                                    .write(info, config.insert_mode, &g.columns, &g.key, rows)
                                    .await
                            };
                            match result {
                                Ok(()) => target.execute("RELEASE SAVEPOINT jdbc_sink_row").await?,
                                Err(e) if e.kind == DbErrorKind::Data => {
                                    target
                                        .execute("ROLLBACK TO SAVEPOINT jdbc_sink_row")
                                        .await?;
                                    let err = ConnectorError::definite(format!(
                                        "table {name} rejected the row: {}",
                                        e.message
                                    ));
                                    if let Err(fatal) =
                                        errors.report(&change.record, Stage::TaskPut, err).await
                                    {
                                        return Err(DbError::new(
                                            DbErrorKind::Definite,
                                            fatal.message,
                                        ));
                                    }
                                }
                                Err(e) => return Err(e),
                            }
                        }
                    }
                }
            }
        }
        if config.exactly_once && !batch.offsets.is_empty() {
            let offsets: Vec<(String, u32, u64)> = batch
                .offsets
                .iter()
                .map(|(tp, next)| (tp.topic.to_string(), tp.partition, *next))
                .collect();
            target.store_offsets(&config.connector, &offsets).await?;
        }
        target.execute("COMMIT").await?;
        Ok(())
    }
}

/// Rows of one statement: same kind, same columns.
struct Group<'a> {
    delete: bool,
    columns: Vec<usize>,
    key: Vec<usize>,
    rows: Vec<Vec<Value>>,
    changes: Vec<&'a Change>,
}

/// Splits a table's changes into statements: deletes, then upserts per shape (the set of
/// available columns), in first-seen order.
fn group<'a>(info: &TableInfo, tb: &'a TableBatch) -> Result<Vec<Group<'a>>, DbError> {
    let index: HashMap<&str, usize> = info
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    let col = |name: &str| {
        index.get(name).copied().ok_or_else(|| {
            DbError::new(
                DbErrorKind::Definite,
                format!("table {} has no column {name}", info.name),
            )
        })
    };
    let mut groups: Vec<Group<'a>> = Vec::new();
    let mut by_shape: HashMap<(bool, Vec<usize>), usize> = HashMap::new();
    for change in tb.changes() {
        let delete = change.kind == ChangeKind::Delete;
        let mut columns = Vec::with_capacity(change.fields.len());
        let mut row = Vec::with_capacity(change.fields.len());
        for (f, v) in change.fields.iter().zip(&change.values) {
            if *v == Value::Unavailable {
                continue;
            }
            columns.push(col(&f.name)?);
            row.push(v.clone());
        }
        let key = change
            .key_names()
            .into_iter()
            .map(col)
            .collect::<Result<Vec<_>, _>>()?;
        let slot = match by_shape.get(&(delete, columns.clone())) {
            Some(&i) => i,
            None => {
                by_shape.insert((delete, columns.clone()), groups.len());
                groups.push(Group {
                    delete,
                    columns,
                    key,
                    rows: Vec::new(),
                    changes: Vec::new(),
                });
                groups.len() - 1
            }
        };
        groups[slot].rows.push(row);
        groups[slot].changes.push(change);
    }
    // Deletes first: a key is in at most one group, so the order only matters for
    // unkeyed inserts, which keep theirs.
    groups.sort_by_key(|g| !g.delete);
    Ok(groups)
}
