//! Where topics live, behind one interface: the embedded log now, Kafka (issue 7) next.
//!
//! Producing returns a future that resolves when the records are durable; the source runner
//! feeds that into the [`AckTracker`](crate::ack::AckTracker). Consuming is per consumer
//! group, with commits that the sink runner makes only after the sink reports durability.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use regex::Regex;
use tracing::warn;

use crate::error::ConnectorError;
use crate::log::{AppendEntry, EmbeddedLog, LogError, ReadCursor};
use crate::partitioner::partition_for;
use crate::record::{ConsumerOffsets, SinkRecord, TopicPartition, TopicRecord};

/// Which topics a sink consumes: Kafka Connect's `topics` or `topics.regex`.
#[derive(Debug, Clone)]
pub enum TopicSelector {
    Names(Vec<String>),
    Regex(Regex),
}

impl TopicSelector {
    pub fn matches(&self, topic: &str) -> bool {
        match self {
            TopicSelector::Names(names) => names.iter().any(|n| n == topic),
            TopicSelector::Regex(re) => re.is_match(topic),
        }
    }
}

/// A topic as listed by `tributary topics list`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TopicInfo {
    pub name: String,
    pub partitions: Vec<PartitionInfo>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PartitionInfo {
    pub partition: u32,
    pub log_start_offset: u64,
    pub high_watermark: u64,
    pub size_bytes: u64,
}

/// A record to produce; the partition is chosen by [`TopicStore::partition`].
pub struct ProduceRecord {
    pub topic: Arc<str>,
    pub partition: u32,
    pub record: TopicRecord,
}

/// The topic storage backend.
#[async_trait]
pub trait TopicStore: Send + Sync {
    /// Creates the topic if needed; returns its partition count.
    async fn ensure_topic(&self, topic: &str) -> Result<u32, ConnectorError>;

    /// Creates a dead-letter topic if needed, as Kafka Connect does: one partition and
    /// `errors.deadletterqueue.topic.replication.factor` replicas (backends without
    /// replication ignore the factor). Returns its partition count.
    async fn ensure_dead_letter_topic(
        &self,
        topic: &str,
        replication_factor: i16,
    ) -> Result<u32, ConnectorError> {
        let _ = replication_factor;
        self.ensure_topic(topic).await
    }

    /// The partition for a key, as the Java client's default partitioner picks it.
    fn partition(&self, key: Option<&[u8]>, partitions: u32) -> u32 {
        partition_for(key, partitions)
    }

    /// Queues records (in order); the future resolves once all of them are durable.
    fn produce(
        &self,
        records: Vec<ProduceRecord>,
    ) -> BoxFuture<'static, Result<(), ConnectorError>>;

    /// A consumer in `group` for the topics `selector` matches. Partitions are split among
    /// `task_count` tasks; this consumer takes those of `task_id`.
    async fn consumer(
        &self,
        group: &str,
        selector: TopicSelector,
        task_id: u32,
        task_count: u32,
    ) -> Result<Box<dyn TopicConsumer>, ConnectorError>;

    async fn list_topics(&self) -> Result<Vec<TopicInfo>, ConnectorError>;

    /// A consumer group's committed offsets on the topics `selector` matches, from the
    /// storage itself (`GET /connectors/{sink}/offsets` on Kafka); `Ok(None)` for backends
    /// whose groups the worker reads directly (the embedded log).
    async fn group_offsets(
        &self,
        group: &str,
        selector: &TopicSelector,
    ) -> Result<Option<ConsumerOffsets>, ConnectorError> {
        let _ = (group, selector);
        Ok(None)
    }

    /// The Kafka cluster id (`GET /` reports it as Kafka Connect does); `Ok(None)` for
    /// backends that are not a Kafka cluster.
    async fn cluster_id(&self) -> Result<Option<String>, ConnectorError> {
        Ok(None)
    }

    /// The store a connector's tasks use, with its own client settings (Kafka:
    /// `producer.override.*`, `consumer.override.*`, `topic.creation.*`); `None` when this
    /// store applies as it is (always for backends without Kafka clients).
    fn for_connector(
        &self,
        connector: &str,
        settings: &crate::kafka::ConnectorKafkaSettings,
    ) -> Option<Arc<dyn TopicStore>> {
        let _ = (connector, settings);
        None
    }
}

/// Reads assigned partitions of a consumer group.
#[async_trait]
pub trait TopicConsumer: Send {
    /// Up to `max` records, waiting at most `timeout` when there are none.
    async fn poll(
        &mut self,
        max: usize,
        timeout: Duration,
    ) -> Result<Vec<SinkRecord>, ConnectorError>;

    /// Durably commits next-offsets for the group.
    async fn commit(&mut self, offsets: &ConsumerOffsets) -> Result<(), ConnectorError>;

    /// Partitions currently assigned.
    fn assignment(&self) -> Vec<TopicPartition>;

    /// Partitions a consumer group is taking from this consumer (Kafka rebalance). The
    /// caller commits what the sink made durable for them, forgets them, then calls
    /// [`release`](Self::release); a consumer whose caller polls again instead releases them
    /// itself. Always empty for the embedded log, whose assignment is static.
    fn revoking(&self) -> Vec<TopicPartition> {
        Vec::new()
    }

    /// Gives revoked partitions back to the group; commits for them are dropped afterwards.
    async fn release(&mut self, partitions: &[TopicPartition]) -> Result<(), ConnectorError> {
        let _ = partitions;
        Ok(())
    }
}

/// [`TopicStore`] on the embedded log.
pub struct EmbeddedStore {
    log: EmbeddedLog,
}

impl EmbeddedStore {
    pub fn new(log: EmbeddedLog) -> Arc<Self> {
        Arc::new(EmbeddedStore { log })
    }

    pub fn log(&self) -> &EmbeddedLog {
        &self.log
    }
}

fn log_error(err: impl Into<LogError>) -> ConnectorError {
    ConnectorError::from(err.into())
}

#[async_trait]
impl TopicStore for EmbeddedStore {
    async fn ensure_topic(&self, topic: &str) -> Result<u32, ConnectorError> {
        if let Some(t) = self.log.topic(topic) {
            return Ok(t.partitions.len() as u32);
        }
        let log = self.log.clone();
        let name = topic.to_owned();
        let partitions = log.config().default_partitions;
        let created = tokio::task::spawn_blocking(move || log.ensure_topic(&name, partitions))
            .await
            .map_err(|e| ConnectorError::transient("topic creation task failed").with_source(e))?
            .map_err(log_error)?;
        Ok(created.partitions.len() as u32)
    }

    fn produce(
        &self,
        records: Vec<ProduceRecord>,
    ) -> BoxFuture<'static, Result<(), ConnectorError>> {
        // Group consecutive records per partition; order within a partition is preserved.
        let mut entries: Vec<AppendEntry> = Vec::new();
        let mut slot: HashMap<(Arc<str>, u32), usize> = HashMap::new();
        let mut last: Option<(Arc<str>, u32, usize)> = None;
        let total = records.len();
        for r in records {
            // Records come in runs of one topic partition: the previous record's entry first.
            if let Some((topic, partition, index)) = &last
                && r.partition == *partition
                && (Arc::ptr_eq(topic, &r.topic) || **topic == *r.topic)
            {
                entries[*index].records.push(r.record);
                continue;
            }
            let key = (r.topic.clone(), r.partition);
            let index = *slot.entry(key).or_insert_with(|| {
                entries.push(AppendEntry {
                    topic: r.topic.clone(),
                    partition: r.partition,
                    // Usually one partition takes the whole batch: no regrowth (each
                    // step of which faults in fresh pages for a batch-sized vector).
                    records: Vec::with_capacity(if entries.is_empty() { total } else { 0 }),
                });
                entries.len() - 1
            });
            last = Some((r.topic.clone(), r.partition, index));
            entries[index].records.push(r.record);
        }
        let pending = self.log.append(entries);
        Box::pin(async move {
            pending.await.map_err(|e| {
                let kind = e.kind();
                ConnectorError::new(kind, format!("append to the embedded log failed: {e}"))
            })?;
            Ok(())
        })
    }

    async fn consumer(
        &self,
        group: &str,
        selector: TopicSelector,
        task_id: u32,
        task_count: u32,
    ) -> Result<Box<dyn TopicConsumer>, ConnectorError> {
        let committed = self.log.group_offsets(group).map_err(log_error)?;
        Ok(Box::new(EmbeddedConsumer {
            log: self.log.clone(),
            group: group.to_owned(),
            selector,
            task_id,
            task_count: task_count.max(1),
            committed,
            cursors: BTreeMap::new(),
            next_partition: 0,
            appended: self.log.subscribe(),
        }))
    }

    async fn list_topics(&self) -> Result<Vec<TopicInfo>, ConnectorError> {
        Ok(self
            .log
            .topics()
            .into_iter()
            .map(|t| TopicInfo {
                name: t.name.to_string(),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| PartitionInfo {
                        partition: p.id,
                        log_start_offset: p.log_start(),
                        high_watermark: p.high_watermark(),
                        size_bytes: p.size_bytes(),
                    })
                    .collect(),
            })
            .collect())
    }
}

struct EmbeddedConsumer {
    log: EmbeddedLog,
    group: String,
    selector: TopicSelector,
    task_id: u32,
    task_count: u32,
    committed: ConsumerOffsets,
    cursors: BTreeMap<TopicPartition, ReadCursor>,
    next_partition: usize,
    appended: tokio::sync::watch::Receiver<u64>,
}

impl EmbeddedConsumer {
    /// Picks up new matching topics; partitions are spread over tasks round-robin.
    fn refresh_assignment(&mut self) {
        let mut index = 0u32;
        for topic in self.log.topics() {
            if !self.selector.matches(&topic.name) {
                continue;
            }
            for p in &topic.partitions {
                let mine = index % self.task_count == self.task_id;
                index += 1;
                if !mine {
                    continue;
                }
                let tp = TopicPartition::new(topic.name.clone(), p.id);
                if !self.cursors.contains_key(&tp) {
                    // Resume from the committed offset, else from the beginning
                    // (Kafka Connect sinks use auto.offset.reset=earliest).
                    let start = self.committed.get(&tp).copied().unwrap_or(p.log_start());
                    self.cursors.insert(tp, ReadCursor::at(start));
                }
            }
        }
    }

    fn read_some(&mut self, max: usize) -> Result<Vec<SinkRecord>, ConnectorError> {
        let mut out = Vec::new();
        let keys: Vec<TopicPartition> = self.cursors.keys().cloned().collect();
        if keys.is_empty() {
            return Ok(out);
        }
        // Round-robin over partitions so one busy partition cannot starve the others.
        for i in 0..keys.len() {
            if out.len() >= max {
                break;
            }
            let tp = &keys[(self.next_partition + i) % keys.len()];
            let partition = self
                .log
                .partition(&tp.topic, tp.partition)
                .map_err(log_error)?;
            let Some(cursor) = self.cursors.get(tp).copied() else {
                continue;
            };
            let result = partition.read(cursor, max - out.len(), 8 << 20);
            let (records, next) = match result {
                Ok(r) => r,
                Err(LogError::OffsetOutOfRange {
                    log_start, offset, ..
                }) => {
                    warn!(group = %self.group, partition = %tp, offset, log_start,
                        "committed offset was deleted by retention; resuming at the log start (records were lost to retention)");
                    self.cursors.insert(tp.clone(), ReadCursor::at(log_start));
                    continue;
                }
                Err(e) => return Err(log_error(e)),
            };
            self.cursors.insert(tp.clone(), next);
            out.extend(records.into_iter().map(|(offset, record)| SinkRecord {
                topic: tp.topic.clone(),
                partition: tp.partition,
                offset,
                record,
            }));
        }
        self.next_partition = (self.next_partition + 1) % keys.len();
        Ok(out)
    }
}

#[async_trait]
impl TopicConsumer for EmbeddedConsumer {
    async fn poll(
        &mut self,
        max: usize,
        timeout: Duration,
    ) -> Result<Vec<SinkRecord>, ConnectorError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.appended.borrow_and_update();
            self.refresh_assignment();
            let records = self.read_some(max)?;
            if !records.is_empty() {
                return Ok(records);
            }
            match tokio::time::timeout_at(deadline, self.appended.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(ConnectorError::transient("the embedded log closed")),
                Err(_) => return Ok(Vec::new()),
            }
        }
    }

    async fn commit(&mut self, offsets: &ConsumerOffsets) -> Result<(), ConnectorError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let log = self.log.clone();
        let group = self.group.clone();
        let to_commit = offsets.clone();
        tokio::task::spawn_blocking(move || log.commit_group(&group, &to_commit))
            .await
            .map_err(|e| ConnectorError::transient("commit task failed").with_source(e))?
            .map_err(log_error)?;
        for (tp, offset) in offsets {
            self.committed.insert(tp.clone(), *offset);
        }
        Ok(())
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        self.cursors.keys().cloned().collect()
    }
}
