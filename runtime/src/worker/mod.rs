//! The worker: owns storage, offsets and connectors; supervises tasks.
//!
//! Each task runs under a supervisor loop: RUNNING until the target state changes or it
//! fails; a transient failure restarts it after a capped exponential backoff (RESTARTING);
//! a definite failure leaves it FAILED with the reason until someone restarts it. Connector
//! configs and target states persist in `<data_dir>/connectors/`, so a restarted worker
//! resumes everything; offsets persist in `<data_dir>/offsets/` (embedded storage) or in the
//! Kafka offsets topic (Kafka storage).

pub mod admin;
mod sink;
mod source;
pub mod state;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::config::{
    ConfigErrors, ConnectorConfig, StorageConfig, WorkerConfig, parse_connector_document,
};
use crate::connector::{Connector, ConnectorKind};
use crate::durable_file::{create_dir_durable, sync_dir, write_atomic};
use crate::error::{Backoff, ConnectorError, Reaction};
use crate::log::EmbeddedLog;
use crate::offsets::{FileOffsetStore, OffsetStore};
use crate::progress::{ProgressHandle, ProgressSnapshot};
use crate::registry::{Registry, Validated};
use crate::storage::{EmbeddedStore, TopicStore};

use sink::SinkRun;
pub use sink::group_id;
use source::SourceRun;
use state::{
    ConnectorState, ConnectorStatus, PersistedConnector, State, TargetState, TaskStatus,
    connector_state,
};

/// Errors of worker operations (mapped to HTTP statuses by the REST layer).
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("invalid connector config: {0}")]
    InvalidConfig(ConfigErrors),
    #[error("connector {0} not found")]
    NotFound(String),
    #[error("connector {0} already exists")]
    AlreadyExists(String),
    #[error("{context}")]
    Storage {
        context: String,
        #[source]
        source: ConnectorError,
    },
    #[error("i/o error on {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Opens the configured topic storage and the offset store that goes with it: the embedded
/// log with file offsets in the data directory, or Kafka with offsets in its offsets topic.
async fn open_storage(
    storage: &StorageConfig,
    data_dir: &Path,
) -> Result<
    (
        Arc<dyn TopicStore>,
        Option<EmbeddedLog>,
        Arc<dyn OffsetStore>,
    ),
    WorkerError,
> {
    match storage {
        StorageConfig::Embedded { log: log_config } => {
            let log_dir = data_dir.join("log");
            let log = EmbeddedLog::open(&log_dir, log_config.clone()).map_err(|e| {
                WorkerError::Storage {
                    context: format!("cannot open the embedded log in {}", log_dir.display()),
                    source: e.into(),
                }
            })?;
            let offsets_dir = data_dir.join("offsets");
            let offsets =
                FileOffsetStore::open(&offsets_dir).map_err(|e| WorkerError::Storage {
                    context: format!("cannot open the offset store in {}", offsets_dir.display()),
                    source: e.into(),
                })?;
            Ok((EmbeddedStore::new(log.clone()), Some(log), offsets))
        }
        StorageConfig::Kafka(kafka) => {
            let storage_error = |source| WorkerError::Storage {
                context: format!("cannot open Kafka storage at {}", kafka.bootstrap_servers),
                source,
            };
            let store = crate::kafka::KafkaStore::new(kafka.clone()).map_err(storage_error)?;
            let offsets = crate::kafka::KafkaOffsetStore::open(&store)
                .await
                .map_err(storage_error)?;
            Ok((store, None, offsets))
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> WorkerError + '_ {
    move |source| WorkerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

struct TaskHandle {
    control: watch::Sender<TargetState>,
    status: Arc<Mutex<TaskStatus>>,
    progress: ProgressHandle,
    join: JoinHandle<()>,
}

/// One partition's backlog for one sink ([`Worker::sink_lag`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkLag {
    pub connector: String,
    pub topic: String,
    pub partition: u32,
    pub records: u64,
}

struct ConnectorEntry {
    config: ConnectorConfig,
    target: TargetState,
    kind: ConnectorKind,
    /// Sinks: the topics they consume (for the scrape-time lag).
    topics: Option<crate::storage::TopicSelector>,
    tasks: Vec<TaskHandle>,
}

/// How long `check_live` waits for a source connector's `validate_live`.
pub const LIVE_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// A live validation's configuration error as a field error: the field its message starts with
/// (`"incrementing.column.name: table ..."`), else `database.hostname` when the config has
/// one (where Debezium reports server problems), else `connector.class`.
fn live_check_errors(config: &ConnectorConfig, message: &str) -> ConfigErrors {
    let looks_like_key = |k: &str| {
        k.contains('.')
            && k.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
            })
    };
    if let Some((field, rest)) = message.split_once(": ")
        && looks_like_key(field)
    {
        return ConfigErrors::single(field, rest);
    }
    let field = if config.config.contains_key("database.hostname") {
        "database.hostname"
    } else {
        "connector.class"
    };
    ConfigErrors::single(field, message)
}

/// A running worker.
pub struct Worker {
    config: WorkerConfig,
    worker_id: String,
    registry: Arc<Registry>,
    store: Arc<dyn TopicStore>,
    log: Option<EmbeddedLog>,
    offsets: Arc<dyn OffsetStore>,
    connectors_dir: PathBuf,
    connectors: tokio::sync::Mutex<BTreeMap<String, ConnectorEntry>>,
    /// Topics each connector used (REST `/connectors/{name}/topics`).
    active_topics: Arc<admin::ActiveTopics>,
    /// The built-in schema registry, served with the embedded storage.
    schema_registry: Option<Arc<crate::schema_registry::SchemaStore>>,
}

impl Worker {
    /// Opens storage and offsets in the data directory and resumes persisted connectors.
    pub async fn start(config: WorkerConfig, registry: Registry) -> Result<Arc<Self>, WorkerError> {
        let data_dir = config.data_dir.clone();
        create_dir_durable(&data_dir).map_err(io_err(&data_dir))?;
        let (store, log, offsets) = open_storage(&config.storage, &data_dir).await?;
        // With the embedded storage the worker serves the built-in schema registry: Avro
        // converters without a `schema.registry.url` use it in-process, and the REST server
        // mounts its API so Confluent clients can read the schemas.
        let schema_registry = match &config.storage {
            StorageConfig::Embedded { .. } => {
                let dir = data_dir.join("schema-registry");
                Some(crate::schema_registry::open_embedded(&data_dir).map_err(io_err(&dir))?)
            }
            StorageConfig::Kafka(_) => None,
        };
        let connectors_dir = data_dir.join("connectors");
        create_dir_durable(&connectors_dir).map_err(io_err(&connectors_dir))?;
        let worker_id = config
            .worker_id
            .clone()
            .unwrap_or_else(|| config.rest.listen.clone());
        let worker = Arc::new(Worker {
            store,
            log,
            offsets,
            registry: Arc::new(registry),
            worker_id,
            connectors_dir,
            connectors: tokio::sync::Mutex::new(BTreeMap::new()),
            active_topics: Arc::default(),
            schema_registry,
            config,
        });
        worker.resume_persisted().await?;
        if let Some(dir) = worker.config.connectors_dir.clone() {
            worker.load_directory(&dir).await?;
        }
        worker.spawn_progress_reporter();
        Ok(worker)
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The built-in schema registry (embedded storage only).
    pub fn schema_registry(&self) -> Option<&Arc<crate::schema_registry::SchemaStore>> {
        self.schema_registry.as_ref()
    }

    pub fn store(&self) -> &Arc<dyn TopicStore> {
        &self.store
    }

    pub fn offsets(&self) -> &Arc<dyn OffsetStore> {
        &self.offsets
    }

    pub fn embedded_log(&self) -> Option<&EmbeddedLog> {
        self.log.as_ref()
    }

    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    async fn resume_persisted(self: &Arc<Self>) -> Result<(), WorkerError> {
        let dir = self.connectors_dir.clone();
        let entries = std::fs::read_dir(&dir).map_err(io_err(&dir))?;
        let mut persisted = Vec::new();
        for entry in entries {
            let path = entry.map_err(io_err(&dir))?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let raw = std::fs::read(&path).map_err(io_err(&path))?;
            match serde_json::from_slice::<PersistedConnector>(&raw) {
                Ok(p) => persisted.push(p),
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "skipping unreadable persisted connector")
                }
            }
        }
        for p in persisted {
            let config = ConnectorConfig {
                name: p.name.clone(),
                config: p.config,
            };
            info!(connector = %p.name, target = ?p.target_state, "resuming persisted connector");
            if let Err(e) = self.install(config, p.target_state, false).await {
                // Keep the worker up: the connector shows FAILED in its status.
                error!(connector = %p.name, error = %e, "persisted connector could not start");
            }
        }
        Ok(())
    }

    /// Loads every `*.yaml`, `*.yml` and `*.json` connector file of a directory: creates new
    /// connectors and updates changed ones. Every file is validated before any is applied.
    pub async fn load_directory(self: &Arc<Self>, dir: &Path) -> Result<(), WorkerError> {
        let configs = load_connector_files(dir)?;
        for config in configs {
            let existing = self
                .connectors
                .lock()
                .await
                .get(&config.name)
                .map(|e| e.config.clone());
            match existing {
                Some(current) if current == config => {}
                Some(_) => {
                    info!(connector = %config.name, "connector file changed; updating");
                    self.put_config(config).await?;
                }
                None => {
                    info!(connector = %config.name, "creating connector from file");
                    self.create(config, TargetState::Running).await?;
                }
            }
        }
        Ok(())
    }

    /// Validates without side effects, with the worker's converter defaults applied.
    pub fn validate(&self, config: &ConnectorConfig) -> Result<Validated, ConfigErrors> {
        let mut validated = self
            .registry
            .validate(&self.config.with_converter_defaults(config))?;
        if matches!(self.config.storage, StorageConfig::Embedded { .. }) {
            let ignored = validated.kafka.embedded_warnings();
            validated.warnings.extend(ignored);
        }
        Ok(validated)
    }

    /// What `POST /connectors` and `PUT /connectors/{name}/config` check beyond
    /// [`validate`](Self::validate), as Kafka Connect's `Connector.validate` does: the source
    /// connector's [`validate_live`](crate::connector::SourceConnector::validate_live)
    /// against its server's catalog, bounded by [`LIVE_CHECK_TIMEOUT`]. Only a configuration
    /// error (a table or column that does not exist) refuses the request; a server that
    /// cannot be reached or a slow one does not (the task reports it when it runs).
    pub async fn check_live(&self, config: &ConnectorConfig) -> Result<(), WorkerError> {
        let validated = self.validate(config).map_err(WorkerError::InvalidConfig)?;
        let Connector::Source(source) = &validated.connector else {
            return Ok(());
        };
        match tokio::time::timeout(LIVE_CHECK_TIMEOUT, source.validate_live()).await {
            Ok(Err(e)) if e.kind == crate::error::ErrorKind::Config => Err(
                WorkerError::InvalidConfig(live_check_errors(config, &e.message)),
            ),
            Ok(Err(e)) => {
                warn!(connector = %config.name, error = %e.trace(), "live validation could not finish; the connector is created and its task will report the problem");
                Ok(())
            }
            Err(_) => {
                warn!(connector = %config.name, "live validation did not finish in time; the connector is created and its task will report any problem");
                Ok(())
            }
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Creates a connector (POST /connectors).
    pub async fn create(
        self: &Arc<Self>,
        config: ConnectorConfig,
        initial: TargetState,
    ) -> Result<(), WorkerError> {
        if self.connectors.lock().await.contains_key(&config.name) {
            return Err(WorkerError::AlreadyExists(config.name));
        }
        self.install(config, initial, true).await
    }

    /// Creates or replaces a connector's config (PUT /connectors/{name}/config) and restarts it.
    pub async fn put_config(self: &Arc<Self>, config: ConnectorConfig) -> Result<(), WorkerError> {
        self.validate(&config).map_err(WorkerError::InvalidConfig)?;
        let target = match self.connectors.lock().await.remove(&config.name) {
            Some(old) => {
                let target = old.target;
                stop_tasks(old.tasks).await;
                target
            }
            None => TargetState::Running,
        };
        self.install(config, target, true).await
    }

    async fn install(
        self: &Arc<Self>,
        config: ConnectorConfig,
        target: TargetState,
        persist: bool,
    ) -> Result<(), WorkerError> {
        let validated = self.validate(&config).map_err(WorkerError::InvalidConfig)?;
        for warning in &validated.warnings {
            warn!(connector = %config.name, "{warning}");
        }
        if persist {
            self.persist(&config, target)?;
        }
        let kind = validated.plugin.kind();
        let tasks = if target == TargetState::Stopped {
            Vec::new()
        } else {
            self.spawn_tasks(&config.name, &validated, target)
        };
        self.connectors.lock().await.insert(
            config.name.clone(),
            ConnectorEntry {
                config,
                target,
                kind,
                topics: validated.topics.clone(),
                tasks,
            },
        );
        Ok(())
    }

    fn persist(&self, config: &ConnectorConfig, target: TargetState) -> Result<(), WorkerError> {
        let path = self.connectors_dir.join(format!("{}.json", config.name));
        let data = serde_json::to_vec_pretty(&PersistedConnector {
            name: config.name.clone(),
            config: config.config.clone(),
            target_state: target,
        })
        .map_err(|e| WorkerError::Io {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        write_atomic(&path, &data).map_err(io_err(&path))
    }

    fn spawn_tasks(
        self: &Arc<Self>,
        name: &str,
        validated: &Validated,
        target: TargetState,
    ) -> Vec<TaskHandle> {
        let count = match validated.connector {
            // Sources that read one ordered stream (binlog, slot) say 1.
            Connector::Source(ref source) => {
                source.task_count().clamp(1, validated.tasks_max.max(1))
            }
            Connector::Sink(_) => validated.tasks_max,
        };
        (0..count)
            .map(|task_id| {
                let (control, rx) = watch::channel(target);
                let status = Arc::new(Mutex::new(TaskStatus {
                    id: task_id,
                    state: State::Unassigned,
                    worker_id: self.worker_id.clone(),
                    trace: None,
                    restarts: 0,
                }));
                let progress = ProgressHandle::new();
                let runner = self.runner(name, task_id, count, validated, progress.clone());
                let join = tokio::spawn(supervise(
                    name.to_owned(),
                    runner,
                    rx,
                    status.clone(),
                    Backoff::new(
                        Duration::from_millis(self.config.restart.initial_backoff_ms),
                        Duration::from_millis(self.config.restart.max_backoff_ms),
                    ),
                ));
                TaskHandle {
                    control,
                    status,
                    progress,
                    join,
                }
            })
            .collect()
    }

    /// The store a connector's tasks use: the worker's, or (Kafka) a view of it with the
    /// connector's `producer.override.*`, `consumer.override.*` and `topic.creation.*`.
    fn connector_store(&self, name: &str, validated: &Validated) -> Arc<dyn TopicStore> {
        self.store
            .for_connector(name, &validated.kafka)
            .unwrap_or_else(|| self.store.clone())
    }

    fn runner(
        &self,
        name: &str,
        task_id: u32,
        task_count: u32,
        validated: &Validated,
        progress: ProgressHandle,
    ) -> Runner {
        let commit_interval = Duration::from_millis(self.config.offset_flush_interval_ms);
        match &validated.connector {
            Connector::Source(connector) => Runner::Source(Box::new(SourceRun {
                connector_name: Arc::from(name),
                task_id,
                connector: connector.clone(),
                encoder: validated.encoder.clone().unwrap_or_else(|| {
                    crate::converter::RecordEncoder::from_config(
                        &Default::default(),
                        connector.value_modes(),
                    )
                    .unwrap_or_else(|_| unreachable!("empty converter config is valid"))
                }),
                store: self
                    .active_topics
                    .store_for(name, self.connector_store(name, validated)),
                offsets: self.offsets.clone(),
                progress,
                commit_interval,
                transforms: validated.transforms.clone(),
                data_encoder: validated.data_encoder.clone(),
                errors: validated.errors.clone(),
            })),
            Connector::Sink(connector) => Runner::Sink(Box::new(SinkRun {
                connector_name: Arc::from(name),
                task_id,
                task_count,
                connector: connector.clone(),
                topics: validated
                    .topics
                    .clone()
                    .unwrap_or(crate::storage::TopicSelector::Names(Vec::new())),
                store: self
                    .active_topics
                    .store_for(name, self.connector_store(name, validated)),
                progress,
                commit_interval,
                decoder: validated.decoder.clone().unwrap_or_else(|| {
                    Arc::new(
                        crate::data::decode::RecordDecoder::from_config(&Default::default())
                            .unwrap_or_else(|_| unreachable!("empty converter config is valid")),
                    )
                }),
                errors: validated.errors.clone(),
            })),
        }
    }

    async fn set_target(&self, name: &str, target: TargetState) -> Result<(), WorkerError> {
        let mut connectors = self.connectors.lock().await;
        let entry = connectors
            .get_mut(name)
            .ok_or_else(|| WorkerError::NotFound(name.to_owned()))?;
        self.persist(&entry.config, target)?;
        entry.target = target;
        for task in &entry.tasks {
            task.control.send_replace(target);
        }
        Ok(())
    }

    /// Stops polling but keeps tasks and connections (PUT /connectors/{name}/pause).
    pub async fn pause(&self, name: &str) -> Result<(), WorkerError> {
        self.set_target(name, TargetState::Paused).await
    }

    /// Resumes a paused or stopped connector (PUT /connectors/{name}/resume).
    pub async fn resume(self: &Arc<Self>, name: &str) -> Result<(), WorkerError> {
        let stopped = {
            let connectors = self.connectors.lock().await;
            let entry = connectors
                .get(name)
                .ok_or_else(|| WorkerError::NotFound(name.to_owned()))?;
            entry.tasks.is_empty()
        };
        if stopped {
            let config = self.connector_config(name).await?;
            self.connectors.lock().await.remove(name);
            return self.install(config, TargetState::Running, true).await;
        }
        self.set_target(name, TargetState::Running).await
    }

    /// Stops tasks and releases their resources (PUT /connectors/{name}/stop).
    pub async fn stop(&self, name: &str) -> Result<(), WorkerError> {
        let tasks = {
            let mut connectors = self.connectors.lock().await;
            let entry = connectors
                .get_mut(name)
                .ok_or_else(|| WorkerError::NotFound(name.to_owned()))?;
            self.persist(&entry.config, TargetState::Stopped)?;
            entry.target = TargetState::Stopped;
            std::mem::take(&mut entry.tasks)
        };
        stop_tasks(tasks).await;
        Ok(())
    }

    /// Re-creates the connector's tasks (POST /connectors/{name}/restart).
    pub async fn restart(self: &Arc<Self>, name: &str) -> Result<(), WorkerError> {
        let entry = self
            .connectors
            .lock()
            .await
            .remove(name)
            .ok_or_else(|| WorkerError::NotFound(name.to_owned()))?;
        let (config, target) = (entry.config, entry.target);
        stop_tasks(entry.tasks).await;
        let target = if target == TargetState::Stopped {
            TargetState::Running
        } else {
            target
        };
        self.install(config, target, true).await
    }

    /// Deletes a connector; its offsets are kept, as Kafka Connect does.
    pub async fn delete(&self, name: &str) -> Result<(), WorkerError> {
        let entry = self
            .connectors
            .lock()
            .await
            .remove(name)
            .ok_or_else(|| WorkerError::NotFound(name.to_owned()))?;
        stop_tasks(entry.tasks).await;
        let path = self.connectors_dir.join(format!("{name}.json"));
        match std::fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.connectors_dir).map_err(io_err(&self.connectors_dir))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&path)(e)),
        }
        Ok(())
    }

    pub async fn list(&self) -> Vec<String> {
        self.connectors.lock().await.keys().cloned().collect()
    }

    pub async fn connector_config(&self, name: &str) -> Result<ConnectorConfig, WorkerError> {
        self.connectors
            .lock()
            .await
            .get(name)
            .map(|e| e.config.clone())
            .ok_or_else(|| WorkerError::NotFound(name.to_owned()))
    }

    /// Kafka Connect's status document.
    pub async fn status(&self, name: &str) -> Result<ConnectorStatus, WorkerError> {
        let connectors = self.connectors.lock().await;
        let entry = connectors
            .get(name)
            .ok_or_else(|| WorkerError::NotFound(name.to_owned()))?;
        let tasks: Vec<TaskStatus> = entry
            .tasks
            .iter()
            .map(|t| {
                t.status
                    .lock()
                    .map(|s| s.clone())
                    .unwrap_or_else(|p| p.into_inner().clone())
            })
            .map(|mut t| {
                // A runner pauses and resumes in place; the supervisor records only the state
                // it started in, so the target decides between RUNNING and PAUSED.
                if matches!(t.state, State::Running | State::Paused) {
                    t.state = if entry.target == TargetState::Paused {
                        State::Paused
                    } else {
                        State::Running
                    };
                }
                t
            })
            .collect();
        let state = connector_state(entry.target, &tasks);
        let trace = tasks
            .iter()
            .find_map(|t| t.trace.clone())
            .filter(|_| state == State::Failed);
        Ok(ConnectorStatus {
            name: name.to_owned(),
            connector: ConnectorState {
                state,
                worker_id: self.worker_id.clone(),
                trace,
            },
            tasks,
            kind: entry.kind,
        })
    }

    /// Progress of each task of a connector.
    pub async fn progress(&self, name: &str) -> Result<Vec<ProgressSnapshot>, WorkerError> {
        let connectors = self.connectors.lock().await;
        let entry = connectors
            .get(name)
            .ok_or_else(|| WorkerError::NotFound(name.to_owned()))?;
        Ok(entry.tasks.iter().map(|t| t.progress.snapshot()).collect())
    }

    /// Every sink's lag at this moment, per consumed partition of the embedded log: records
    /// between its committed offset (or the partition's start) and the partition's end. It
    /// grows while a sink is stalled, unlike the per-record source lag. Empty on Kafka
    /// storage, where the consumer group's lag is the broker's to report.
    pub async fn sink_lag(&self) -> Vec<SinkLag> {
        let Some(log) = &self.log else {
            return Vec::new();
        };
        let sinks: Vec<(String, crate::storage::TopicSelector)> = self
            .connectors
            .lock()
            .await
            .iter()
            .filter_map(|(name, e)| Some((name.clone(), e.topics.clone()?)))
            .collect();
        if sinks.is_empty() {
            return Vec::new();
        }
        let Ok(topics) = self.store.list_topics().await else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, selector) in sinks {
            let Ok(committed) = log.group_offsets(&group_id(&name)) else {
                continue;
            };
            for t in topics.iter().filter(|t| selector.matches(&t.name)) {
                for p in &t.partitions {
                    let tp = crate::record::TopicPartition::new(t.name.as_str(), p.partition);
                    let from = committed
                        .get(&tp)
                        .copied()
                        .unwrap_or(p.log_start_offset)
                        .max(p.log_start_offset);
                    out.push(SinkLag {
                        connector: name.clone(),
                        topic: t.name.clone(),
                        partition: p.partition,
                        records: p.high_watermark.saturating_sub(from),
                    });
                }
            }
        }
        out
    }

    /// Drains every task (in-flight records become durable and committed) and stops.
    pub async fn shutdown(&self) {
        let all: Vec<TaskHandle> = {
            let mut connectors = self.connectors.lock().await;
            connectors
                .values_mut()
                .flat_map(|e| std::mem::take(&mut e.tasks))
                .collect()
        };
        info!(tasks = all.len(), "stopping tasks");
        stop_tasks(all).await;
    }

    fn spawn_progress_reporter(self: &Arc<Self>) {
        let every = Duration::from_secs(self.config.progress_interval_secs.max(1));
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let Some(worker) = weak.upgrade() else { return };
                let connectors = worker.connectors.lock().await;
                for (name, entry) in connectors.iter() {
                    for task in &entry.tasks {
                        let p = task.progress.snapshot();
                        match &p.snapshot {
                            Some(s) if s.rows_done < s.rows_estimated => info!(
                                connector = %name, phase = %p.phase, rows_done = s.rows_done, rows_estimated = s.rows_estimated,
                                percent = format!("{:.1}", s.percent), eta_secs = s.eta_secs, "snapshot progress"
                            ),
                            _ => {
                                info!(connector = %name, phase = %p.phase, records = p.records, records_per_sec = p.records_per_sec,
                                lag_ms = p.lag_ms, "progress")
                            }
                        }
                    }
                }
            }
        });
    }
}

/// Reads and validates connector files of a directory (used by `run` and `validate`).
pub fn load_connector_files(dir: &Path) -> Result<Vec<ConnectorConfig>, WorkerError> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        })
        .collect();
    paths.sort();
    let mut configs = Vec::new();
    let mut errors = ConfigErrors::default();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
        match parse_connector_document(&text, &path) {
            Ok(c) => configs.push(c),
            Err(e) => {
                for fe in e.0 {
                    errors.push(format!("{}: {}", path.display(), fe.field), fe.message);
                }
            }
        }
    }
    errors
        .into_result(configs)
        .map_err(WorkerError::InvalidConfig)
}

async fn stop_tasks(tasks: Vec<TaskHandle>) {
    for task in &tasks {
        task.control.send_replace(TargetState::Stopped);
    }
    for task in tasks {
        if let Err(e) = task.join.await {
            error!(error = %e, "task supervisor panicked");
        }
    }
}

enum Runner {
    Source(Box<SourceRun>),
    Sink(Box<SinkRun>),
}

impl Runner {
    fn progress(&self) -> &ProgressHandle {
        match self {
            Runner::Source(r) => &r.progress,
            Runner::Sink(r) => &r.progress,
        }
    }

    async fn run(&self, control: &mut watch::Receiver<TargetState>) -> Result<(), ConnectorError> {
        match self {
            Runner::Source(r) => r.run(control).await,
            Runner::Sink(r) => r.run(control).await,
        }
    }
}

fn set_status(status: &Mutex<TaskStatus>, state: State, trace: Option<String>, restarts: u32) {
    let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
    s.state = state;
    s.trace = trace;
    s.restarts = restarts;
}

/// The supervisor loop of one task: run, and on failure retry or fail per the error policy.
async fn supervise(
    name: String,
    runner: Runner,
    mut control: watch::Receiver<TargetState>,
    status: Arc<Mutex<TaskStatus>>,
    mut backoff: Backoff,
) {
    loop {
        let target = *control.borrow();
        if target == TargetState::Stopped {
            set_status(&status, State::Unassigned, None, 0);
            return;
        }
        let running_state = if target == TargetState::Paused {
            State::Paused
        } else {
            State::Running
        };
        set_status(&status, running_state, None, backoff.attempts());
        let started = Instant::now();
        let result = runner.run(&mut control).await;
        match result {
            Ok(()) => {
                set_status(&status, State::Unassigned, None, 0);
                return;
            }
            Err(err) => {
                runner.progress().record_error(&err);
                if started.elapsed() > Duration::from_secs(60) {
                    backoff.reset();
                }
                let trace = err.trace();
                match err.kind.policy() {
                    Reaction::RetryWithBackoff => {
                        let delay = backoff.next_delay();
                        warn!(connector = %name, error = %trace, retry_in_ms = delay.as_millis() as u64, "task failed; restarting");
                        set_status(&status, State::Restarting, Some(trace), backoff.attempts());
                        // Sleep, but wake up at once if the task is stopped meanwhile.
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = wait_for_stop(&mut control) => {}
                        }
                    }
                    Reaction::Fail | Reaction::RejectConfig => {
                        error!(connector = %name, error = %trace, "task failed; it stays FAILED until restarted");
                        set_status(
                            &status,
                            State::Failed,
                            Some(trace.clone()),
                            backoff.attempts(),
                        );
                        wait_for_stop(&mut control).await;
                        set_status(&status, State::Unassigned, None, 0);
                        return;
                    }
                }
            }
        }
    }
}

async fn wait_for_stop(control: &mut watch::Receiver<TargetState>) {
    loop {
        if *control.borrow_and_update() == TargetState::Stopped {
            return;
        }
        if control.changed().await.is_err() {
            return;
        }
    }
}
