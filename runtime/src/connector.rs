//! The connector API: what a source or sink connector implements.
//!
//! ```text
//!  Plugin::validate(name, parsed config)   pure, no I/O      -> Connector (typed config)
//!  SourceConnector::check()                preflight, I/O    -> clear error or Ok
//!  SourceConnector::open_task(ctx)         restored offsets  -> SourceTask
//!      SourceTask::poll()   bounded batch, returns within ~1 s even when idle
//!      SourceTask::commit() told which positions are durable in the topic log
//!  SinkConnector::open_task(ctx)                             -> SinkTask
//!      SinkTask::put()        write or buffer a batch
//!      SinkTask::pre_commit() which consumed offsets are durable in the target
//! ```

use std::sync::Arc;

use async_trait::async_trait;

use crate::config::{ConfigDef, ConfigErrors, Parsed};
use crate::converter::json::ValueModes;
use crate::data::decode::RecordDecoder;
use crate::dead_letter::ErrantRecordReporter;
use crate::error::ConnectorError;
use crate::offsets::StoredOffset;
use crate::progress::ProgressHandle;
use crate::record::{ConsumerOffsets, SinkRecord, SourceRecord, TopicPartition};

/// Source or sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectorKind {
    Source,
    Sink,
}

/// A connector implementation, found by class name or alias in the [`Registry`](crate::registry::Registry).
pub trait Plugin: Send + Sync {
    /// Canonical class name, e.g. `io.debezium.connector.mysql.MySqlConnector`.
    fn class(&self) -> &'static str;
    /// Other names users may write in `connector.class`.
    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }
    fn kind(&self) -> ConnectorKind;
    fn version(&self) -> &'static str {
        crate::VERSION
    }
    /// The connector's own fields (the runtime adds the common ones).
    fn config_def(&self) -> ConfigDef;
    /// Builds a typed connector from a parsed config, or every reason it is invalid. Pure:
    /// no I/O (that is [`SourceConnector::check`]).
    fn validate(&self, name: &str, config: &Parsed) -> Result<Connector, ConfigErrors>;
}

/// A validated connector.
#[derive(Clone)]
pub enum Connector {
    Source(Arc<dyn SourceConnector>),
    Sink(Arc<dyn SinkConnector>),
}

/// What a source task gets when it opens.
pub struct SourceTaskContext {
    pub connector: Arc<str>,
    pub task_id: u32,
    /// Offsets committed earlier for this connector (empty on the first start).
    pub offsets: Vec<StoredOffset>,
    /// Where the task reports snapshot and streaming progress.
    pub progress: ProgressHandle,
    /// Value encodings the converters apply (from the connector config).
    pub value_modes: ValueModes,
}

/// A validated source connector.
#[async_trait]
pub trait SourceConnector: Send + Sync {
    /// Preflight: connect and verify the server is set up for this connector. Each failure
    /// names the setting, its value and the fix.
    async fn check(&self) -> Result<(), ConnectorError> {
        Ok(())
    }

    /// Value encodings for this connector's records (`decimal.handling.mode`, ...).
    fn value_modes(&self) -> ValueModes {
        ValueModes::default()
    }

    /// Checks run when the connector is created or its config replaced over REST, before
    /// anything starts (Kafka Connect's `Connector.validate`): problems of the config against
    /// the server's catalog, such as a table or column that does not exist. An error of kind
    /// `Config` refuses the request with its message; any other (the server cannot be
    /// reached) lets it through, and the task reports it when it runs. The default checks
    /// nothing: the CDC sources' preflight (server settings, grants) runs in the task, so a
    /// config can be applied before its database is ready.
    async fn validate_live(&self) -> Result<(), ConnectorError> {
        Ok(())
    }

    /// Checks a position a user sets through `PATCH /connectors/{name}/offsets` (Kafka
    /// Connect's `SourceConnector::alterOffsets`, KIP-875) against the server before it is
    /// stored: a binlog file the server no longer has, an LSN behind the slot's confirmed
    /// position. A definite error is the reason the request is refused (HTTP 400); a
    /// transient one means the server could not be asked. The default accepts any position.
    async fn check_offset(
        &self,
        _partition: &serde_json::Value,
        _offset: &serde_json::Value,
    ) -> Result<(), ConnectorError> {
        Ok(())
    }

    /// How many tasks to run (the worker caps it at `tasks.max`). Sources that read one
    /// ordered stream (a binlog, a replication slot) run one; sources whose work splits
    /// (tables polled independently) may run more, each told its `task_id` and expected to
    /// take its share of the work by it.
    fn task_count(&self) -> u32 {
        1
    }

    async fn open_task(
        &self,
        ctx: SourceTaskContext,
    ) -> Result<Box<dyn SourceTask>, ConnectorError>;
}

/// A running source task.
#[async_trait]
pub trait SourceTask: Send {
    /// The next batch of records, in source order. Must return within about a second even
    /// when there is nothing to read (an empty batch), so the runner can commit, pause and
    /// stop promptly. Records carry offsets where resuming after them is correct.
    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectorError>;

    /// Told, in order, which offsets are now durable in the topic log and committed to the
    /// offset store (e.g. Postgres acknowledges the LSN to the server here).
    async fn commit(&mut self, _committed: &[StoredOffset]) -> Result<(), ConnectorError> {
        Ok(())
    }

    /// Releases connections. Called on stop, pause-to-stop and before a restart.
    async fn close(&mut self) {}
}

/// What a sink task gets when it opens.
pub struct SinkTaskContext {
    pub connector: Arc<str>,
    pub task_id: u32,
    pub progress: ProgressHandle,
    /// The connector's converters in reverse: topic record bytes to typed
    /// [`ConnectRecord`](crate::data::ConnectRecord)s.
    pub decoder: Arc<RecordDecoder>,
    /// Where records that cannot be decoded, transformed or written go
    /// (`errors.tolerance`, dead-letter topic).
    pub errors: ErrantRecordReporter,
}

/// A validated sink connector.
#[async_trait]
pub trait SinkConnector: Send + Sync {
    async fn check(&self) -> Result<(), ConnectorError> {
        Ok(())
    }

    async fn open_task(&self, ctx: SinkTaskContext) -> Result<Box<dyn SinkTask>, ConnectorError>;
}

/// A running sink task.
#[async_trait]
pub trait SinkTask: Send {
    /// Partitions newly assigned to this task.
    async fn open(&mut self, _partitions: &[TopicPartition]) -> Result<(), ConnectorError> {
        Ok(())
    }

    /// Writes or buffers records (in offset order per partition).
    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<(), ConnectorError>;

    /// Makes everything put so far durable in the target.
    async fn flush(&mut self) -> Result<(), ConnectorError>;

    /// Which of the `consumed` next-offsets may be committed: only those whose records are
    /// durable in the target (Kafka Connect's `preCommit`). The default flushes everything.
    async fn pre_commit(
        &mut self,
        consumed: &ConsumerOffsets,
    ) -> Result<ConsumerOffsets, ConnectorError> {
        self.flush().await?;
        Ok(consumed.clone())
    }

    async fn close(&mut self) {}
}
