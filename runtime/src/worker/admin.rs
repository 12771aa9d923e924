//! Worker operations behind the REST control plane that go beyond the basic lifecycle:
//! create-or-update and merge of configs, Kafka Connect's restart variants, single task
//! restarts, the KIP-875 offsets API, and the active topics of each connector.
//!
//! # Offsets
//!
//! Offsets are read in any state but altered or reset only while the connector is STOPPED,
//! as Kafka Connect requires, so no task races the change. Source offsets go through
//! [`OffsetStore::reset`](crate::offsets::OffsetStore::reset) (the only way to move one
//! backward). A position the user supplies gets the lowest [`OffsetOrder`], so whatever the
//! task commits after resuming counts as forward. Sink offsets are the consumer group
//! `connect-<name>` of the embedded log, in Kafka Connect's shape
//! `{"kafka_topic", "kafka_partition"}` / `{"kafka_offset"}`.
//!
//! # Active topics
//!
//! Each task gets a [`TopicStore`] wrapper that records which topics its connector produced
//! to or consumed from (Kafka Connect's `GET /connectors/{name}/topics`). The set lives in
//! memory: after a worker restart it fills again as records flow.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use tokio::sync::watch;

use super::state::{ConnectorStatus, State, TargetState, TaskStatus};
use super::{TaskHandle, Worker, WorkerError, group_id, io_err, stop_tasks, supervise};
use crate::config::{ConnectorConfig, RawConfig};
use crate::connector::ConnectorKind;
use crate::durable_file::sync_dir;
use crate::error::{Backoff, ConnectorError};
use crate::offsets::StoredOffset;
use crate::progress::ProgressHandle;
use crate::record::{
    ConsumerOffsets, OffsetOrder, SinkRecord, SourceOffset, SourcePartition, TopicPartition,
};
use crate::storage::{ProduceRecord, TopicConsumer, TopicInfo, TopicSelector, TopicStore};

/// Errors of the admin operations that the basic lifecycle does not have.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Worker(#[from] WorkerError),
    #[error("task {task} of connector {connector} not found")]
    TaskNotFound { connector: String, task: u32 },
    /// Offsets may change only while the connector is stopped.
    #[error(
        "connector {0} must be in the STOPPED state before its offsets can be modified; stop it first with PUT /connectors/{0}/stop (or `tributary connectors stop {0}`)"
    )]
    NotStopped(String),
    /// The request itself is wrong (bad offsets body, ...).
    #[error("{0}")]
    BadRequest(String),
    #[error("{context}")]
    Storage {
        context: String,
        #[source]
        source: ConnectorError,
    },
}

/// Kafka Connect's `?includeTasks=&onlyFailed=` restart options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestartRequest {
    pub include_tasks: bool,
    pub only_failed: bool,
}

/// One entry of the KIP-875 offsets body: `{"partition": {...}, "offset": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorOffset {
    pub partition: Json,
    /// `null` (in an alter request) removes the partition's offset.
    pub offset: Option<Json>,
}

impl Worker {
    /// The worker's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    pub async fn contains(&self, name: &str) -> bool {
        self.connectors.lock().await.contains_key(name)
    }

    /// What the user asked the connector to be (RUNNING, PAUSED, STOPPED).
    pub async fn target_state(&self, name: &str) -> Result<TargetState, WorkerError> {
        self.connectors
            .lock()
            .await
            .get(name)
            .map(|e| e.target)
            .ok_or_else(|| WorkerError::NotFound(name.to_owned()))
    }

    /// Creates or replaces a connector's config (`PUT /connectors/{name}/config`). Returns
    /// whether it was created.
    pub async fn upsert_config(
        self: &Arc<Self>,
        config: ConnectorConfig,
    ) -> Result<bool, WorkerError> {
        let existed = self.contains(&config.name).await;
        self.put_config(config).await?;
        Ok(!existed)
    }

    /// Merges `patch` into a connector's config (`PATCH /connectors/{name}/config`): a
    /// `None` value removes the key. Validates the result, applies it (restarting the tasks)
    /// and returns it.
    pub async fn patch_config(
        self: &Arc<Self>,
        name: &str,
        patch: BTreeMap<String, Option<String>>,
    ) -> Result<ConnectorConfig, WorkerError> {
        let mut config = self.connector_config(name).await?;
        for (key, value) in patch {
            match value {
                Some(v) => config.config.insert(key, v),
                None => config.config.remove(&key),
            };
        }
        self.put_config(config.clone()).await?;
        Ok(config)
    }

    /// Kafka Connect's connector restart. Without options every task is re-created (the
    /// connector has no lifecycle apart from its tasks here). With `only_failed`, only
    /// FAILED tasks are restarted, and only if there are any. Returns the status afterwards.
    pub async fn restart_connector(
        self: &Arc<Self>,
        name: &str,
        request: RestartRequest,
    ) -> Result<ConnectorStatus, AdminError> {
        let status = self.status(name).await?;
        if request.only_failed {
            let failed: Vec<u32> = status
                .tasks
                .iter()
                .filter(|t| t.state == State::Failed)
                .map(|t| t.id)
                .collect();
            for id in failed {
                self.restart_task(name, id).await?;
            }
        } else {
            self.restart(name).await?;
        }
        Ok(self.status(name).await?)
    }

    /// Re-creates one task (`POST /connectors/{name}/tasks/{id}/restart`).
    pub async fn restart_task(
        self: &Arc<Self>,
        name: &str,
        task_id: u32,
    ) -> Result<(), AdminError> {
        let mut connectors = self.connectors.lock().await;
        let entry = connectors
            .get_mut(name)
            .ok_or_else(|| WorkerError::NotFound(name.to_owned()))?;
        let index = task_id as usize;
        if index >= entry.tasks.len() {
            return Err(AdminError::TaskNotFound {
                connector: name.to_owned(),
                task: task_id,
            });
        }
        let validated = self
            .validate(&entry.config)
            .map_err(WorkerError::InvalidConfig)?;
        let count = entry.tasks.len() as u32;
        let target = entry.target;
        // Stop the old task first: a new one must not share its file, slot or partitions.
        let fresh = self.spawn_task(name, task_id, count, &validated, target);
        let old = std::mem::replace(&mut entry.tasks[index], fresh.parked);
        stop_tasks(vec![old]).await;
        fresh.start.send_replace(true);
        Ok(())
    }

    /// A task whose supervisor waits for `start` before running (so it can be created while
    /// the task it replaces is still stopping).
    fn spawn_task(
        self: &Arc<Self>,
        name: &str,
        task_id: u32,
        count: u32,
        validated: &crate::registry::Validated,
        target: TargetState,
    ) -> ParkedTask {
        let (control, rx) = watch::channel(target);
        let (start, mut started) = watch::channel(false);
        let status = Arc::new(Mutex::new(TaskStatus {
            id: task_id,
            state: State::Unassigned,
            worker_id: self.worker_id.clone(),
            trace: None,
            restarts: 0,
        }));
        let progress = ProgressHandle::new();
        let runner = self.runner(name, task_id, count, validated, progress.clone());
        let backoff = Backoff::new(
            Duration::from_millis(self.config.restart.initial_backoff_ms),
            Duration::from_millis(self.config.restart.max_backoff_ms),
        );
        let supervised = supervise(name.to_owned(), runner, rx, status.clone(), backoff);
        let join = tokio::spawn(async move {
            // Dropped `start` (the restart was abandoned) also lets it proceed; the control
            // channel then decides whether it runs at all.
            let _ = started.wait_for(|go| *go).await;
            supervised.await;
        });
        ParkedTask {
            parked: TaskHandle {
                control,
                status,
                progress,
                join,
            },
            start,
        }
    }

    /// Committed offsets in Kafka Connect's shape (any state).
    pub async fn connector_offsets(&self, name: &str) -> Result<Vec<ConnectorOffset>, AdminError> {
        let kind = self.kind_of(name).await?;
        match kind {
            ConnectorKind::Source => {
                let stored = self.offsets.load(name).await.map_err(|e| AdminError::Storage {
                    context: format!("cannot read the offsets of {name}"),
                    source: e.into(),
                })?;
                Ok(stored
                    .into_iter()
                    .map(|s| ConnectorOffset {
                        partition: s.partition.to_json(),
                        offset: Some(s.offset.value),
                    })
                    .collect())
            }
            ConnectorKind::Sink => Ok(self
                .sink_offsets_anywhere(name)
                .await?
                .into_iter()
                .map(|(tp, offset)| ConnectorOffset {
                    partition: serde_json::json!({"kafka_topic": &*tp.topic, "kafka_partition": tp.partition}),
                    offset: Some(serde_json::json!({ "kafka_offset": offset })),
                })
                .collect()),
        }
    }

    /// Alters some offsets (`PATCH /connectors/{name}/offsets`); only when STOPPED. New
    /// source positions are checked against the source server unless `force`.
    pub async fn alter_offsets(
        &self,
        name: &str,
        changes: Vec<ConnectorOffset>,
        force: bool,
    ) -> Result<(), AdminError> {
        let kind = self.require_stopped(name).await?;
        if changes.is_empty() {
            return Err(AdminError::BadRequest(
                "the offsets list is empty; give at least one partition and offset".into(),
            ));
        }
        match kind {
            ConnectorKind::Source => {
                let mut current: BTreeMap<SourcePartition, SourceOffset> = self
                    .offsets
                    .load(name)
                    .await
                    .map_err(|e| AdminError::Storage {
                        context: format!("cannot read the offsets of {name}"),
                        source: e.into(),
                    })?
                    .into_iter()
                    .map(|s| (s.partition, s.offset))
                    .collect();
                // (index, partition, offset) of every new position, checked with the server.
                let mut checks = Vec::new();
                for (i, change) in changes.into_iter().enumerate() {
                    if !change.partition.is_object() {
                        return Err(AdminError::BadRequest(format!(
                            "offsets[{i}].partition: must be a JSON object"
                        )));
                    }
                    let partition = SourcePartition::from_json(&change.partition);
                    match change.offset {
                        None => {
                            current.remove(&partition);
                        }
                        Some(value) if value.is_object() => {
                            checks.push((i, change.partition.clone(), value.clone()));
                            current.insert(
                                partition,
                                SourceOffset {
                                    value,
                                    order: OffsetOrder::default(),
                                },
                            );
                        }
                        Some(_) => {
                            return Err(AdminError::BadRequest(format!(
                                "offsets[{i}].offset: must be a JSON object or null"
                            )));
                        }
                    }
                }
                if force {
                    if !checks.is_empty() {
                        tracing::warn!(connector = %name, positions = checks.len(), "offsets altered with force=true: the new positions were not checked against the source server");
                    }
                } else {
                    self.check_source_positions(name, &checks).await?;
                }
                let next = current
                    .into_iter()
                    .map(|(partition, offset)| StoredOffset { partition, offset })
                    .collect();
                self.offsets
                    .reset(name, next)
                    .await
                    .map_err(|e| AdminError::Storage {
                        context: format!("cannot write the offsets of {name}"),
                        source: e.into(),
                    })
            }
            ConnectorKind::Sink => {
                let mut current = self.sink_offsets(name)?;
                let mut removed = false;
                for (i, change) in changes.into_iter().enumerate() {
                    let tp = sink_partition(&change.partition).map_err(|e| {
                        AdminError::BadRequest(format!("offsets[{i}].partition: {e}"))
                    })?;
                    match change.offset {
                        None => {
                            removed |= current.remove(&tp).is_some();
                        }
                        Some(offset) => {
                            let n = offset
                                .as_object()
                                .filter(|o| o.len() == 1)
                                .and_then(|o| o.get("kafka_offset"))
                                .and_then(Json::as_u64)
                                .ok_or_else(|| AdminError::BadRequest(format!("offsets[{i}].offset: must be {{\"kafka_offset\": <non-negative integer>}} or null")))?;
                            current.insert(tp, n);
                        }
                    }
                }
                self.write_sink_offsets(name, &current, removed)
            }
        }
    }

    /// Asks the source connector whether the server can resume at each new position
    /// (`SourceConnector::check_offset`); the first refusal fails the request.
    async fn check_source_positions(
        &self,
        name: &str,
        checks: &[(usize, Json, Json)],
    ) -> Result<(), AdminError> {
        if checks.is_empty() {
            return Ok(());
        }
        let config = self
            .connectors
            .lock()
            .await
            .get(name)
            .map(|e| e.config.clone())
            .ok_or_else(|| WorkerError::NotFound(name.to_owned()))?;
        let validated = self.validate(&config).map_err(WorkerError::InvalidConfig)?;
        let crate::connector::Connector::Source(connector) = validated.connector else {
            return Ok(());
        };
        for (i, partition, offset) in checks {
            match connector.check_offset(partition, offset).await {
                Ok(()) => {}
                Err(e) if e.kind == crate::error::ErrorKind::Transient => {
                    return Err(AdminError::Storage {
                        context: format!(
                            "cannot check offsets[{i}] against the source server; nothing was changed"
                        ),
                        source: e,
                    });
                }
                Err(e) => {
                    return Err(AdminError::BadRequest(format!(
                        "offsets[{i}].offset: {}",
                        e.message
                    )));
                }
            }
        }
        Ok(())
    }

    /// Removes every offset (`DELETE /connectors/{name}/offsets`); only when STOPPED. The
    /// connector starts from scratch: a source re-snapshots, a sink reads from the start.
    pub async fn reset_offsets(&self, name: &str) -> Result<(), AdminError> {
        match self.require_stopped(name).await? {
            ConnectorKind::Source => {
                self.offsets
                    .reset(name, Vec::new())
                    .await
                    .map_err(|e| AdminError::Storage {
                        context: format!("cannot reset the offsets of {name}"),
                        source: e.into(),
                    })
            }
            ConnectorKind::Sink => self.write_sink_offsets(name, &ConsumerOffsets::new(), true),
        }
    }

    /// Topics the connector produced to or consumed from since it started or was reset.
    pub async fn active_topics(&self, name: &str) -> Result<Vec<String>, WorkerError> {
        if !self.contains(name).await {
            return Err(WorkerError::NotFound(name.to_owned()));
        }
        Ok(self.active_topics.topics(name))
    }

    /// Forgets the active topics (`PUT /connectors/{name}/topics/reset`).
    pub async fn reset_active_topics(&self, name: &str) -> Result<(), WorkerError> {
        if !self.contains(name).await {
            return Err(WorkerError::NotFound(name.to_owned()));
        }
        self.active_topics.reset(name);
        Ok(())
    }

    async fn kind_of(&self, name: &str) -> Result<ConnectorKind, WorkerError> {
        self.connectors
            .lock()
            .await
            .get(name)
            .map(|e| e.kind)
            .ok_or_else(|| WorkerError::NotFound(name.to_owned()))
    }

    async fn require_stopped(&self, name: &str) -> Result<ConnectorKind, AdminError> {
        let connectors = self.connectors.lock().await;
        let entry = connectors
            .get(name)
            .ok_or_else(|| WorkerError::NotFound(name.to_owned()))?;
        if entry.target != TargetState::Stopped || !entry.tasks.is_empty() {
            return Err(AdminError::NotStopped(name.to_owned()));
        }
        Ok(entry.kind)
    }

    /// A sink's committed offsets: from the embedded log, or from its consumer group
    /// (`connect-<name>`) in Kafka.
    async fn sink_offsets_anywhere(&self, name: &str) -> Result<ConsumerOffsets, AdminError> {
        if self.log.is_some() {
            return self.sink_offsets(name);
        }
        let topics = self
            .connectors
            .lock()
            .await
            .get(name)
            .and_then(|e| e.topics.clone());
        let Some(topics) = topics else {
            return Ok(ConsumerOffsets::new());
        };
        match self.store.group_offsets(&group_id(name), &topics).await {
            Ok(offsets) => Ok(offsets.unwrap_or_default()),
            Err(e) => Err(AdminError::Storage {
                context: format!("cannot read the consumer group offsets of {name}"),
                source: e,
            }),
        }
    }

    fn sink_offsets(&self, name: &str) -> Result<ConsumerOffsets, AdminError> {
        let Some(log) = &self.log else {
            return Ok(ConsumerOffsets::new());
        };
        log.group_offsets(&group_id(name))
            .map_err(|e| AdminError::Storage {
                context: format!("cannot read the consumer offsets of {name}"),
                source: e.into(),
            })
    }

    /// Writes a sink's group offsets. The log only merges commits, so removing partitions
    /// deletes the group file first and commits what remains (the connector is stopped:
    /// nothing else commits meanwhile).
    fn write_sink_offsets(
        &self,
        name: &str,
        offsets: &ConsumerOffsets,
        replace: bool,
    ) -> Result<(), AdminError> {
        let Some(log) = &self.log else {
            return Err(AdminError::BadRequest(format!(
                "altering a sink's offsets is supported on the embedded log only; on Kafka, \
                 reset the consumer group {} with kafka-consumer-groups --reset-offsets while \
                 the connector is STOPPED",
                group_id(name)
            )));
        };
        let group = group_id(name);
        if replace {
            let dir = log.dir().join("groups");
            let path = dir.join(format!("{group}.json"));
            match std::fs::remove_file(&path) {
                Ok(()) => sync_dir(&dir).map_err(io_err(&dir))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&path)(e).into()),
            }
        }
        if offsets.is_empty() {
            return Ok(());
        }
        log.commit_group(&group, offsets)
            .map_err(|e| AdminError::Storage {
                context: format!("cannot write the consumer offsets of {name}"),
                source: e.into(),
            })
    }
}

struct ParkedTask {
    parked: TaskHandle,
    start: watch::Sender<bool>,
}

fn sink_partition(value: &Json) -> Result<TopicPartition, String> {
    let shape = "must be {\"kafka_topic\": <string>, \"kafka_partition\": <non-negative integer>}";
    let object = value.as_object().filter(|o| o.len() == 2).ok_or(shape)?;
    let topic = object
        .get("kafka_topic")
        .and_then(Json::as_str)
        .ok_or(shape)?;
    let partition = object
        .get("kafka_partition")
        .and_then(Json::as_u64)
        .and_then(|p| u32::try_from(p).ok())
        .ok_or(shape)?;
    crate::log::validate_topic_name(topic).map_err(|e| e.to_string())?;
    Ok(TopicPartition::new(topic, partition))
}

/// Which topics each connector touched (see the module docs).
#[derive(Default)]
pub(crate) struct ActiveTopics {
    by_connector: Mutex<BTreeMap<String, BTreeSet<String>>>,
}

impl ActiveTopics {
    /// A store for the tasks of `connector` that records the topics they use.
    pub(crate) fn store_for(
        self: &Arc<Self>,
        connector: &str,
        inner: Arc<dyn TopicStore>,
    ) -> Arc<dyn TopicStore> {
        Arc::new(RecordingStore {
            recorder: Recorder {
                connector: Arc::from(connector),
                topics: self.clone(),
            },
            inner,
        })
    }

    fn topics(&self, connector: &str) -> Vec<String> {
        let map = self.by_connector.lock().unwrap_or_else(|p| p.into_inner());
        map.get(connector)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn reset(&self, connector: &str) {
        self.by_connector
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(connector);
    }
}

#[derive(Clone)]
struct Recorder {
    connector: Arc<str>,
    topics: Arc<ActiveTopics>,
}

impl Recorder {
    /// Records the distinct topics of a batch: one lock per batch, nothing per record
    /// beyond a pointer compare.
    fn record<'a>(&self, topics: impl Iterator<Item = &'a Arc<str>>) {
        let mut distinct: Vec<&Arc<str>> = Vec::new();
        for t in topics {
            if !distinct.iter().any(|d| Arc::ptr_eq(d, t) || d == &t) {
                distinct.push(t);
            }
        }
        if distinct.is_empty() {
            return;
        }
        let mut map = self
            .topics
            .by_connector
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let set = map.entry(self.connector.to_string()).or_default();
        for t in distinct {
            if !set.contains(&**t) {
                set.insert(t.to_string());
            }
        }
    }
}

struct RecordingStore {
    recorder: Recorder,
    inner: Arc<dyn TopicStore>,
}

#[async_trait]
impl TopicStore for RecordingStore {
    async fn ensure_topic(&self, topic: &str) -> Result<u32, ConnectorError> {
        self.inner.ensure_topic(topic).await
    }

    fn partition(&self, key: Option<&[u8]>, partitions: u32) -> u32 {
        self.inner.partition(key, partitions)
    }

    fn produce(
        &self,
        records: Vec<ProduceRecord>,
    ) -> BoxFuture<'static, Result<(), ConnectorError>> {
        self.recorder.record(records.iter().map(|r| &r.topic));
        self.inner.produce(records)
    }

    async fn consumer(
        &self,
        group: &str,
        selector: TopicSelector,
        task_id: u32,
        task_count: u32,
    ) -> Result<Box<dyn TopicConsumer>, ConnectorError> {
        let inner = self
            .inner
            .consumer(group, selector, task_id, task_count)
            .await?;
        Ok(Box::new(RecordingConsumer {
            recorder: self.recorder.clone(),
            inner,
        }))
    }

    async fn list_topics(&self) -> Result<Vec<TopicInfo>, ConnectorError> {
        self.inner.list_topics().await
    }
}

struct RecordingConsumer {
    recorder: Recorder,
    inner: Box<dyn TopicConsumer>,
}

#[async_trait]
impl TopicConsumer for RecordingConsumer {
    async fn poll(
        &mut self,
        max: usize,
        timeout: Duration,
    ) -> Result<Vec<SinkRecord>, ConnectorError> {
        let records = self.inner.poll(max, timeout).await?;
        self.recorder.record(records.iter().map(|r| &r.topic));
        Ok(records)
    }

    async fn commit(&mut self, offsets: &ConsumerOffsets) -> Result<(), ConnectorError> {
        self.inner.commit(offsets).await
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        self.inner.assignment()
    }

    fn revoking(&self) -> Vec<TopicPartition> {
        self.inner.revoking()
    }

    async fn release(&mut self, partitions: &[TopicPartition]) -> Result<(), ConnectorError> {
        self.inner.release(partitions).await
    }
}

/// Keys of a raw config that a patch changes, for logs (values are never logged).
pub fn changed_keys(before: &RawConfig, after: &RawConfig) -> Vec<String> {
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    keys.into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_partitions_must_have_kafka_connect_shape() {
        let tp = sink_partition(&serde_json::json!({"kafka_topic": "t.a", "kafka_partition": 2}))
            .expect("valid");
        assert_eq!(tp, TopicPartition::new("t.a", 2));
        for bad in [
            serde_json::json!({"kafka_topic": "t"}),
            serde_json::json!({"kafka_topic": "t", "kafka_partition": -1}),
            serde_json::json!({"kafka_topic": "../x", "kafka_partition": 0}),
            serde_json::json!({"kafka_topic": "t", "kafka_partition": 0, "extra": 1}),
            serde_json::json!("t-0"),
        ] {
            assert!(sink_partition(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn changed_keys_lists_added_removed_and_modified() {
        let a: RawConfig = [("x", "1"), ("y", "2")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let b: RawConfig = [("x", "1"), ("y", "3"), ("z", "4")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(changed_keys(&a, &b), vec!["y".to_string(), "z".to_string()]);
    }
}
