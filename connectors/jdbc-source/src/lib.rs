//! JDBC polling source: Kafka Connect's `JdbcSourceConnector` for Postgres, MySQL and MariaDB,
//! for databases where binlog or logical replication cannot be enabled.
//!
//! # Polling
//! Each table (or the custom `query`) is queried every `poll.interval.ms`, at most
//! `batch.max.rows` rows at a time, and again at once while full batches keep coming. The
//! table list is refreshed every `table.poll.interval.ms`, so new tables are picked up and
//! changed columns give a new schema version. See [`query`] for each mode's SQL.
//!
//! ```text
//!  poll ─► due table ─► SELECT ... WHERE <after offset> ORDER BY <offset> LIMIT n
//!                          │ rows
//!                          ▼
//!          flat records (no key, value = row struct) + offset per row ─► runtime
//! ```
//!
//! # What polling cannot see
//! Deleted rows never appear. Updates appear only in the timestamp modes, and only when the
//! application moves the timestamp column. Several updates between two polls show up once,
//! with the last values. A row committed with a timestamp older than one already read (a long
//! transaction) is missed unless `timestamp.delay.interval.ms` covers the transaction. Bulk
//! mode re-reads every table on each poll. Use the CDC connectors (MySQL binlog, Postgres
//! logical replication) where these matter.
//!
//! # Offsets
//! Per table, in Kafka Connect's format: partition `{"protocol":"1","table":"db.schema.table"}`
//! (MySQL: `db.table`; custom query: `{"query":"query"}`), offset `{"incrementing": N}`,
//! `{"timestamp": ms, "timestamp_nanos": ns}` or both. They travel with the records and reach
//! the offset store through the runtime's commit-order path, so a restart resumes right after
//! the last durable row. In timestamp mode only the last row of a group sharing one timestamp
//! carries the offset, so a restart never skips part of a group. Bulk records carry none.
//!
//! # Errors
//! A missing table, a misspelt or nullable offset column, or a column of the wrong type fails
//! `check()` before anything is read. Connection and server-side transient errors are retried
//! with backoff (the task reopens its connection); anything else fails the task.

pub mod config;
pub mod dialect;
pub mod error;
pub mod query;
pub mod schema;
pub mod source;
pub mod zone;

use std::sync::Arc;

use async_trait::async_trait;

use tributary_runtime::config::{ConfigDef, ConfigErrors, Parsed};
use tributary_runtime::connector::{
    Connector, ConnectorKind, Plugin, SourceConnector, SourceTask, SourceTaskContext,
};
use tributary_runtime::converter::json::{TimePrecisionMode, ValueModes};
use tributary_runtime::error::ConnectorError;

use crate::config::JdbcSourceConfig;
use crate::dialect::Connection;

/// The `io.confluent.connect.jdbc.JdbcSourceConnector` plugin.
pub struct JdbcSourcePlugin;

impl Plugin for JdbcSourcePlugin {
    fn class(&self) -> &'static str {
        "io.confluent.connect.jdbc.JdbcSourceConnector"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["jdbc-source", "io.aiven.connect.jdbc.JdbcSourceConnector"]
    }

    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Source
    }

    fn config_def(&self) -> ConfigDef {
        config::config_def()
    }

    fn validate(&self, name: &str, config: &Parsed) -> Result<Connector, ConfigErrors> {
        let cfg = config::validate(name, config)?;
        let tasks = config
            .int("tasks.max")
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(1)
            .max(1);
        Ok(Connector::Source(Arc::new(JdbcSource {
            cfg: Arc::new(cfg),
            tasks,
        })))
    }
}

/// A validated JDBC source connector.
pub struct JdbcSource {
    cfg: Arc<JdbcSourceConfig>,
    /// `tasks.max`: tables are dealt round-robin over this many tasks.
    tasks: u32,
}

impl JdbcSource {
    pub fn config(&self) -> &JdbcSourceConfig {
        &self.cfg
    }
}

#[async_trait]
impl SourceConnector for JdbcSource {
    /// Connects, lists the tables and checks every configured column.
    async fn check(&self) -> Result<(), ConnectorError> {
        let mut conn = Connection::open(&self.cfg.url).await?;
        let result = source::resolve(&self.cfg, &mut conn).await;
        conn.close().await;
        result.map(|_| ()).map_err(|e| match e {
            error::JdbcError::Setup(message) => ConnectorError::config(message),
            other => other.into(),
        })
    }

    /// The same check, when the connector is created over REST: a table or column that
    /// does not exist is refused before anything starts.
    async fn validate_live(&self) -> Result<(), ConnectorError> {
        self.check().await
    }

    fn task_count(&self) -> u32 {
        self.tasks
    }

    /// Kafka Connect's built-in logical types: `Timestamp`, `Date` and `Time` in milliseconds.
    fn value_modes(&self) -> ValueModes {
        ValueModes {
            time_precision: TimePrecisionMode::Connect,
            ..ValueModes::default()
        }
    }

    async fn open_task(
        &self,
        ctx: SourceTaskContext,
    ) -> Result<Box<dyn SourceTask>, ConnectorError> {
        Ok(Box::new(
            source::JdbcTask::open(self.cfg.clone(), ctx, self.tasks).await?,
        ))
    }
}
