//! [`KafkaConsumer`]: one sink task's reader of a Kafka consumer group.
//!
//! # Assignment
//! The worker is standalone: it knows how many tasks a sink runs, so partitions are split
//! statically, as the embedded log does: the partitions matching the selector, ordered by
//! (topic, partition), go round-robin to tasks (`index % task_count == task_id`). Each task
//! `assign`s its share (no `subscribe`), so there is no group rebalance and no window in
//! which two tasks own one partition. New topics and partitions are picked up every
//! [`REFRESH_INTERVAL`] with `incremental_assign`.
//!
//! # Offsets
//! The group is `connect-<name>` (the caller passes it). A newly assigned partition starts at
//! the group's committed offset, else at the beginning (Kafka Connect sinks use
//! `auto.offset.reset=earliest`). Commits are manual only (`enable.auto.commit=false`,
//! `enable.auto.offset.store=false`) and synchronous (`CommitMode::Sync`): the sink runner
//! calls [`TopicConsumer::commit`] only with offsets its task reported durable in
//! `pre_commit`, so the committed offset never passes what the target holds.
//!
//! # Resuming inside a record batch
//! A fetch from offset N must return the batch that contains N (the client skips the
//! records before N). tansu 0.6.0 instead returns the first batch whose base offset is at
//! least N, silently skipping the rest of the batch holding N (measured: 4 batches of 50,
//! a fetch from 30 returns 50..199). So each partition resumed at a committed offset N
//! above 0 is checked: if its first record is beyond N, the partition is re-read from the
//! beginning and records below N are dropped (see [`Resume`]). On a correct broker the
//! first record is N and nothing extra happens; a genuine gap (compaction) costs one
//! re-read of the partition. When N falls in the LAST batch, tansu returns nothing at all
//! and no partition-EOF either (its high watermark is beyond N), while a correct broker
//! soon reports EOF at N; so a resumed partition that yields neither a record nor EOF
//! within [`STALL_TIMEOUT`] is re-read from the beginning too.
//!
//! # Rebalance
//! With static assignment a partition changes owner only when the task set changes, and
//! that happens only by stopping the tasks: the runner's stop path calls `pre_commit` and
//! commits what is durable before the consumer is dropped, which is Kafka Connect's
//! "commit on revoke". A partition that disappears from metadata is simply no longer read.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::FutureExt;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use tracing::{info, warn};

use super::config::{KafkaStorageConfig, property_value};
use super::store::{METADATA_TIMEOUT, ReaderContext, base_client_config, kafka_error};
use crate::error::ConnectorError;
use crate::record::{ConsumerOffsets, SinkRecord, TopicPartition, TopicRecord};
use crate::storage::{TopicConsumer, TopicSelector};

/// How long a resumed partition may stay silent (no record, no EOF) before it is re-read.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(3);

/// How often the assignment is recomputed from metadata.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(2);

/// The consumer's properties: manual commits, earliest reset, then `consumer.override.*`.
pub(crate) fn consumer_config(config: &KafkaStorageConfig, group: &str) -> ClientConfig {
    let mut c = base_client_config(config);
    c.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true");
    for (key, value) in &config.consumer_override {
        c.set(key, property_value(value));
    }
    // Never let an override turn on auto-commit: it would commit before the sink is durable.
    c.set("enable.auto.commit", "false");
    c
}

/// Where a partition resumed at a committed offset stands (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resume {
    /// Resumed at this offset; the first record must be this one.
    Checking(u64),
    /// Re-reading from the beginning to reach this offset; `seen_below` once a record below
    /// it arrived (records at or beyond it are then the re-read, not stale prefetch).
    Rewinding { target: u64, seen_below: bool },
}

/// What to do with a record of a resumed partition.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Deliver,
    Drop,
    /// Drop it and re-read the partition from the beginning.
    Rewind,
}

impl Resume {
    /// Judges a record; returns the verdict and the next state (`None`: back to normal).
    fn judge(self, offset: u64) -> (Verdict, Option<Resume>) {
        match self {
            Resume::Checking(target) if offset > target => (
                Verdict::Rewind,
                Some(Resume::Rewinding {
                    target,
                    seen_below: false,
                }),
            ),
            Resume::Checking(target) if offset < target => (Verdict::Drop, Some(self)),
            Resume::Checking(_) => (Verdict::Deliver, None),
            Resume::Rewinding { target, .. } if offset < target => (
                Verdict::Drop,
                Some(Resume::Rewinding {
                    target,
                    seen_below: true,
                }),
            ),
            Resume::Rewinding { target, seen_below } if offset == target || seen_below => {
                (Verdict::Deliver, None)
            }
            // Prefetched before the rewind took effect.
            Resume::Rewinding { .. } => (Verdict::Drop, Some(self)),
        }
    }
}

/// Reads a task's share of the partitions matching a selector.
pub struct KafkaConsumer {
    consumer: Arc<StreamConsumer<ReaderContext>>,
    group: String,
    selector: TopicSelector,
    task_id: u32,
    task_count: u32,
    assigned: Vec<TopicPartition>,
    last_refresh: Option<Instant>,
    resuming: HashMap<TopicPartition, Resume>,
    /// When each partition in [`Resume::Checking`] was assigned.
    checking_since: HashMap<TopicPartition, Instant>,
}

impl KafkaConsumer {
    pub fn new(
        config: &KafkaStorageConfig,
        group: &str,
        selector: TopicSelector,
        task_id: u32,
        task_count: u32,
    ) -> Result<Self, ConnectorError> {
        let consumer: StreamConsumer<ReaderContext> = consumer_config(config, group)
            .create_with_context(ReaderContext)
            .map_err(|e| {
                ConnectorError::config(format!("invalid Kafka consumer configuration: {e}"))
                    .with_source(e)
            })?;
        Ok(KafkaConsumer {
            consumer: Arc::new(consumer),
            group: group.to_owned(),
            selector,
            task_id,
            task_count: task_count.max(1),
            assigned: Vec::new(),
            last_refresh: None,
            resuming: HashMap::new(),
            checking_since: HashMap::new(),
        })
    }

    /// Assigns partitions that are new since the last refresh, at their committed offsets.
    async fn refresh_assignment(&mut self) -> Result<(), ConnectorError> {
        if self
            .last_refresh
            .is_some_and(|t| t.elapsed() < REFRESH_INTERVAL)
        {
            return Ok(());
        }
        self.last_refresh = Some(Instant::now());
        let consumer = self.consumer.clone();
        let selector = self.selector.clone();
        let (task_id, task_count) = (self.task_id, self.task_count);
        let assigned = self.assigned.clone();
        let (added, resumed) = tokio::task::spawn_blocking(move || {
            let mine = share(&consumer, &selector, task_id, task_count)?;
            let new: Vec<TopicPartition> = mine
                .into_iter()
                .filter(|tp| !assigned.contains(tp))
                .collect();
            if new.is_empty() {
                return Ok((new, Vec::new()));
            }
            let mut list = TopicPartitionList::new();
            for tp in &new {
                list.add_partition(&tp.topic, tp.partition as i32);
            }
            let committed = consumer
                .committed_offsets(list, METADATA_TIMEOUT)
                .map_err(|e| kafka_error("cannot read committed offsets", e))?;
            let mut start = TopicPartitionList::new();
            let mut resumed = Vec::new();
            for element in committed.elements() {
                let offset = match element.offset() {
                    Offset::Offset(n) if n > 0 => {
                        resumed.push((
                            TopicPartition::new(element.topic(), element.partition() as u32),
                            n as u64,
                        ));
                        Offset::Offset(n)
                    }
                    _ => Offset::Beginning,
                };
                start
                    .add_partition_offset(element.topic(), element.partition(), offset)
                    .map_err(|e| kafka_error("cannot build the assignment", e))?;
            }
            consumer
                .incremental_assign(&start)
                .map_err(|e| kafka_error("cannot assign partitions", e))?;
            Ok::<_, ConnectorError>((new, resumed))
        })
        .await
        .map_err(|e| ConnectorError::transient("assignment task failed").with_source(e))??;
        for (tp, offset) in resumed {
            self.checking_since.insert(tp.clone(), Instant::now());
            self.resuming.insert(tp, Resume::Checking(offset));
        }
        if !added.is_empty() {
            info!(group = %self.group, task = self.task_id, partitions = ?added.iter().map(|tp| tp.to_string()).collect::<Vec<_>>(), "assigned Kafka partitions");
            self.assigned.extend(added);
        }
        Ok(())
    }
}

impl KafkaConsumer {
    /// Partition-EOF at the position: a partition still being checked had nothing beyond its
    /// committed offset, so it resumed correctly. EOF names only the partition number; when
    /// several checked topics share it, none is cleared (they fall to the stall rewind).
    fn at_end(&mut self, partition: i32) {
        let checking: Vec<TopicPartition> = self
            .resuming
            .iter()
            .filter(|(tp, state)| {
                tp.partition as i32 == partition && matches!(state, Resume::Checking(_))
            })
            .map(|(tp, _)| tp.clone())
            .collect();
        if let [tp] = checking.as_slice() {
            self.resuming.remove(tp);
            self.checking_since.remove(tp);
        }
    }

    /// Re-reads resumed partitions that stayed silent (see the module doc).
    fn rewind_stalled(&mut self) -> Result<(), ConnectorError> {
        let stalled: Vec<(TopicPartition, u64)> = self
            .resuming
            .iter()
            .filter_map(|(tp, state)| match state {
                Resume::Checking(target)
                    if self
                        .checking_since
                        .get(tp)
                        .is_some_and(|t| t.elapsed() >= STALL_TIMEOUT) =>
                {
                    Some((tp.clone(), *target))
                }
                _ => None,
            })
            .collect();
        for (tp, target) in stalled {
            warn!(group = %self.group, partition = %tp, committed = target,
                "no record and no end of partition after the committed offset (tansu skips the rest of a batch); re-reading the partition from the beginning");
            self.consumer
                .seek(
                    &tp.topic,
                    tp.partition as i32,
                    Offset::Beginning,
                    METADATA_TIMEOUT,
                )
                .map_err(|e| kafka_error("cannot rewind a partition", e))?;
            self.checking_since.remove(&tp);
            self.resuming.insert(
                tp,
                Resume::Rewinding {
                    target,
                    seen_below: false,
                },
            );
        }
        Ok(())
    }

    /// Delivers a record unless its partition is being resumed and the record is not next.
    fn accept(
        &mut self,
        record: SinkRecord,
        out: &mut Vec<SinkRecord>,
    ) -> Result<(), ConnectorError> {
        if self.resuming.is_empty() {
            out.push(record);
            return Ok(());
        }
        let tp = TopicPartition::new(record.topic.clone(), record.partition);
        let Some(state) = self.resuming.get(&tp).copied() else {
            out.push(record);
            return Ok(());
        };
        let (verdict, next) = state.judge(record.offset);
        self.checking_since.remove(&tp);
        match next {
            Some(next) => self.resuming.insert(tp.clone(), next),
            None => self.resuming.remove(&tp),
        };
        match verdict {
            Verdict::Deliver => out.push(record),
            Verdict::Drop => {}
            Verdict::Rewind => {
                warn!(group = %self.group, partition = %tp, first = record.offset, committed = ?state,
                    "the broker skipped records after the committed offset (tansu returns the next batch); re-reading the partition from the beginning");
                self.consumer
                    .seek(
                        &tp.topic,
                        tp.partition as i32,
                        Offset::Beginning,
                        METADATA_TIMEOUT,
                    )
                    .map_err(|e| kafka_error("cannot rewind a partition", e))?;
            }
        }
        Ok(())
    }
}

/// The partitions matching `selector` that belong to `task_id` of `task_count`.
fn share(
    consumer: &StreamConsumer<ReaderContext>,
    selector: &TopicSelector,
    task_id: u32,
    task_count: u32,
) -> Result<Vec<TopicPartition>, ConnectorError> {
    let metadata = consumer
        .fetch_metadata(None, METADATA_TIMEOUT)
        .map_err(|e| kafka_error("cannot fetch Kafka metadata", e))?;
    let mut all: Vec<TopicPartition> = metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none() && selector.matches(t.name()))
        .flat_map(|t| {
            t.partitions()
                .iter()
                .map(|p| TopicPartition::new(t.name(), p.id() as u32))
        })
        .collect();
    all.sort();
    Ok(split(all, task_id, task_count))
}

/// Round-robin split of sorted partitions over tasks.
fn split(all: Vec<TopicPartition>, task_id: u32, task_count: u32) -> Vec<TopicPartition> {
    all.into_iter()
        .enumerate()
        .filter(|(i, _)| *i as u32 % task_count.max(1) == task_id)
        .map(|(_, tp)| tp)
        .collect()
}

fn to_sink_record(message: &BorrowedMessage<'_>) -> SinkRecord {
    let headers = message
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| {
                    (
                        h.key.to_owned(),
                        bytes::Bytes::copy_from_slice(h.value.unwrap_or_default()),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    SinkRecord {
        topic: Arc::from(message.topic()),
        partition: message.partition() as u32,
        offset: message.offset() as u64,
        record: TopicRecord {
            key: message.key().map(bytes::Bytes::copy_from_slice),
            value: message.payload().map(bytes::Bytes::copy_from_slice),
            headers,
            timestamp_ms: message.timestamp().to_millis().unwrap_or(0),
        },
    }
}

#[async_trait]
impl TopicConsumer for KafkaConsumer {
    async fn poll(
        &mut self,
        max: usize,
        timeout: Duration,
    ) -> Result<Vec<SinkRecord>, ConnectorError> {
        self.refresh_assignment().await?;
        let mut out = Vec::new();
        if self.assigned.is_empty() {
            // Nothing to read yet: wait out the timeout (capped so new topics show soon).
            tokio::time::sleep(timeout.min(REFRESH_INTERVAL)).await;
            return Ok(out);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.rewind_stalled()?;
            let wait = deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .min(STALL_TIMEOUT);
            let first = match tokio::time::timeout(wait, self.consumer.recv()).await {
                Err(_) if tokio::time::Instant::now() >= deadline => return Ok(out),
                Err(_) => continue,
                Ok(Err(KafkaError::PartitionEOF(p))) => {
                    self.at_end(p);
                    continue;
                }
                Ok(result) => result.map_err(|e| kafka_error("Kafka consume failed", e))?,
            };
            let first = to_sink_record(&first);
            self.accept(first, &mut out)?;
            // Take what is already buffered without waiting.
            while out.len() < max {
                match self.consumer.recv().now_or_never() {
                    Some(Ok(message)) => {
                        let record = to_sink_record(&message);
                        drop(message);
                        self.accept(record, &mut out)?;
                    }
                    Some(Err(KafkaError::PartitionEOF(p))) => self.at_end(p),
                    Some(Err(e)) => return Err(kafka_error("Kafka consume failed", e)),
                    None => break,
                }
            }
            if !out.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(out);
            }
        }
    }

    async fn commit(&mut self, offsets: &ConsumerOffsets) -> Result<(), ConnectorError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let mut list = TopicPartitionList::new();
        for (tp, offset) in offsets {
            list.add_partition_offset(
                &tp.topic,
                tp.partition as i32,
                Offset::Offset(*offset as i64),
            )
            .map_err(|e| kafka_error("cannot build the commit", e))?;
        }
        let consumer = self.consumer.clone();
        tokio::task::spawn_blocking(move || consumer.commit(&list, CommitMode::Sync))
            .await
            .map_err(|e| ConnectorError::transient("commit task failed").with_source(e))?
            .map_err(|e| kafka_error("cannot commit consumer offsets", e))
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        self.assigned.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skipped_batch_is_re_read_from_the_beginning() {
        // Correct broker: the first record is the committed one.
        assert_eq!(Resume::Checking(30).judge(30), (Verdict::Deliver, None));
        // tansu: the first record is beyond it: rewind, drop stale prefetch, drop what is
        // below the target, then deliver from the target on.
        let (v, s) = Resume::Checking(30).judge(50);
        assert_eq!(v, Verdict::Rewind);
        let s = s.expect("rewinding");
        let (v, s) = s.judge(51);
        assert_eq!(v, Verdict::Drop, "stale prefetch");
        let (v, s) = s.expect("still rewinding").judge(0);
        assert_eq!(v, Verdict::Drop);
        let (v, s) = s.expect("still rewinding").judge(29);
        assert_eq!(v, Verdict::Drop);
        assert_eq!(
            s.expect("still rewinding").judge(30),
            (Verdict::Deliver, None)
        );
        // A genuine gap (compaction removed the target) still delivers after the re-read.
        let s = Resume::Rewinding {
            target: 30,
            seen_below: true,
        };
        assert_eq!(s.judge(35), (Verdict::Deliver, None));
    }

    #[test]
    fn split_is_disjoint_and_complete() {
        let all: Vec<TopicPartition> = (0..5).map(|p| TopicPartition::new("t", p)).collect();
        let a = split(all.clone(), 0, 2);
        let b = split(all.clone(), 1, 2);
        assert_eq!(a.len() + b.len(), 5);
        assert!(a.iter().all(|tp| !b.contains(tp)));
        assert_eq!(split(all.clone(), 0, 1), all);
    }

    #[test]
    fn auto_commit_cannot_be_overridden() {
        let mut config = KafkaStorageConfig::new("127.0.0.1:1");
        config
            .consumer_override
            .insert("enable.auto.commit".into(), serde_json::json!(true));
        config
            .consumer_override
            .insert("fetch.min.bytes".into(), serde_json::json!(1));
        let c = consumer_config(&config, "connect-x");
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        assert_eq!(c.get("fetch.min.bytes"), Some("1"));
        assert_eq!(c.get("group.id"), Some("connect-x"));
    }
}
