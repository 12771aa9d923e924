//! [`KafkaConsumer`]: one sink task's reader in the connector's consumer group
//! `connect-<name>` (the caller passes it).
//!
//! # Sharing partitions between tasks (`sink.partition.assignment`)
//! - `static` (the default): the partitions matching the selector, ordered by (topic,
//!   partition), go round-robin to the tasks (`index % task_count == task_id`), as the
//!   embedded log splits them. Each task `assign`s its share, so there is no rebalance and
//!   no window in which two tasks own one partition; the only ownership change is stopping
//!   the tasks, and the runner's stop path commits what is durable first. New topics and
//!   partitions are picked up every [`REFRESH_INTERVAL`]. Right for a sink run by one worker.
//! - `group`: every task, in this worker or in another one running the same connector, is a
//!   member of the group and `subscribe`s to the matching topics that exist (recomputed
//!   every [`REFRESH_INTERVAL`]), as in Kafka Connect; the group coordinator and the
//!   client-side assignor (`partition.assignment.strategy`) share the partitions out and
//!   rebalance when members come and go. Not the default: see docs/decisions.md (tansu
//!   never reassigns a dead member's partitions; sinks have no per-partition close).
//!
//! # Rebalance (group mode): commit what is durable before giving partitions up
//! ```text
//!  group ──revoke(P)──► rebalance callback: P is "revoking" (librdkafka waits for us)
//!                       poll() returns at once
//!  runner: put(records) ─► pre_commit ─► commit(durable offsets of P)   (still the owner)
//!          forget consumed/committed state of P ─► release(P) ─► unassign ─► group goes on
//!  group ──assign(Q)──► rebalance callback: Q is "assigning"
//!                       next poll(): committed offsets of Q read, then assign(Q at them)
//! ```
//! Both callbacks only record what the group decided (they run inside `recv`, where the
//! sink cannot be asked anything). A revocation is completed by [`TopicConsumer::release`]
//! after the runner committed what the sink made durable (Kafka Connect's
//! `onPartitionsRevoked` → `preCommit` → commit), or, for a caller that does not handle
//! revocations, by its next `poll`. librdkafka keeps heartbeating while it waits
//! (`WAIT_UNASSIGN_CALL`), and the coordinator waits for the member up to its rebalance
//! timeout (`max.poll.interval.ms`). A partition whose assignment was *lost* (the session
//! expired) is released without a commit: the group already gave it to someone else, so
//! its uncommitted records are re-read there (at least once). After a release, commits for
//! the released partitions are dropped, so a late `pre_commit` can never move another
//! member's offset. Records prefetched for a released partition are discarded by librdkafka.
//!
//! # Offsets
//! Commits are manual only (`enable.auto.commit=false`, `enable.auto.offset.store=false`)
//! and synchronous (`CommitMode::Sync`): the sink runner calls [`TopicConsumer::commit`]
//! only with offsets its task reported durable in `pre_commit`, so the committed offset never
//! passes what the target holds. A newly assigned partition starts at the group's committed
//! offset, else at `auto.offset.reset` (`earliest`, as Kafka Connect sinks; overridable).
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
//! # Closing
//! Dropping the consumer leaves the group (librdkafka's consumer close): rebalance
//! callbacks are then served at once, nothing more is committed. The runner's stop path has
//! already committed what is durable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::FutureExt;
use rdkafka::bindings::rd_kafka_resp_err_t as RDKafkaRespErr;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::Notify;
use tracing::{error, info, warn};

use super::config::{KafkaStorageConfig, SinkAssignment, property_value};
use super::store::{METADATA_TIMEOUT, base_client_config, kafka_error};
use crate::error::ConnectorError;
use crate::record::{ConsumerOffsets, SinkRecord, TopicPartition, TopicRecord};
use crate::storage::{TopicConsumer, TopicSelector};

/// How long a resumed partition may stay silent (no record, no EOF) before it is re-read.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(3);

/// How often the subscription is recomputed from metadata.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(2);

/// Defaults that `consumer.override.*` may change: a dead member (kill -9) is noticed in
/// 10 s instead of librdkafka's 45 s, so its partitions move on sooner.
const OVERRIDABLE_DEFAULTS: [(&str, &str); 3] = [
    ("auto.offset.reset", "earliest"),
    ("session.timeout.ms", "10000"),
    ("heartbeat.interval.ms", "3000"),
];

/// The consumer's properties: group and defaults, then `consumer.override.*` (the worker's,
/// then the connector's), then what the guarantees need, set again: validation refuses
/// overrides that would change it ([`super::overrides`]), this makes sure none does.
pub(crate) fn consumer_config(config: &KafkaStorageConfig, group: &str) -> ClientConfig {
    let mut c = base_client_config(config);
    for (key, value) in OVERRIDABLE_DEFAULTS {
        c.set(key, value);
    }
    for (key, value) in &config.consumer_override {
        c.set(key, property_value(value));
    }
    c.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed");
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

/// What the group decided and the consumer has not applied yet (shared with the rebalance
/// callback, which runs inside `recv`).
#[derive(Debug, Default)]
struct GroupState {
    /// Partitions assigned by the group, to be assigned at their committed offsets.
    assigning: Option<Vec<TopicPartition>>,
    /// Partitions the group is taking back, waiting for [`TopicConsumer::release`].
    revoking: Vec<TopicPartition>,
    /// The revoked partitions were lost (session expired): their commits would be refused.
    lost: bool,
    /// librdkafka already unassigned them (rebalance error): `release` only forgets them.
    unassigned: bool,
    /// The group uses the cooperative protocol (incremental assign/unassign).
    cooperative: bool,
    /// The consumer is being dropped: serve rebalances at once.
    closing: bool,
}

/// The sink consumer's context: records rebalances (see the module doc), logs client
/// errors except the expected partition-EOF.
pub(crate) struct GroupContext {
    state: Mutex<GroupState>,
    /// Wakes a `poll` waiting in `recv` when the group decided something.
    changed: Arc<Notify>,
}

impl GroupContext {
    fn new() -> Self {
        GroupContext {
            state: Mutex::new(GroupState::default()),
            changed: Arc::new(Notify::new()),
        }
    }

    fn state(&self) -> MutexGuard<'_, GroupState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn partitions_of(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| TopicPartition::new(e.topic(), e.partition() as u32))
        .collect()
}

fn partition_list(partitions: &[TopicPartition]) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for tp in partitions {
        list.add_partition(&tp.topic, tp.partition as i32);
    }
    list
}

/// librdkafka's default handling: assign or unassign right away.
fn serve_now<C: ConsumerContext, K: Consumer<C>>(
    consumer: &K,
    assign: bool,
    tpl: &TopicPartitionList,
    cooperative: bool,
) {
    let result = match (assign, cooperative) {
        (true, true) => consumer.incremental_assign(tpl),
        (true, false) => consumer.assign(tpl),
        (false, true) => consumer.incremental_unassign(tpl),
        (false, false) => consumer.unassign(),
    };
    if let Err(e) = result {
        warn!(error = %e, assign, "Kafka consumer group: cannot apply the rebalance");
    }
}

impl ClientContext for GroupContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let eof = matches!(error, KafkaError::PartitionEOF(_))
            || error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF);
        if !eof {
            error!(error = %error, reason, "Kafka client error");
        }
    }
}

impl ConsumerContext for GroupContext {
    fn rebalance(
        &self,
        base_consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            base_consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let partitions = partitions_of(tpl);
        let mut state = self.state();
        state.cooperative = cooperative;
        let assign = err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
        if state.closing {
            drop(state);
            serve_now(base_consumer, assign, tpl, cooperative);
            return;
        }
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                state
                    .assigning
                    .get_or_insert_with(Vec::new)
                    .extend(partitions);
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                state.lost |= base_consumer.assignment_lost();
                for tp in partitions {
                    if !state.revoking.contains(&tp) {
                        state.revoking.push(tp);
                    }
                }
            }
            other => {
                // A failed rebalance: give everything up now, as librdkafka's default does;
                // the runner still forgets the partitions through `revoking`/`release`.
                error!(error = ?other, "Kafka consumer group rebalance failed; giving up the assignment");
                let owned = base_consumer
                    .assignment()
                    .map(|a| partitions_of(&a))
                    .unwrap_or_default();
                state.revoking.extend(owned);
                state.lost = true;
                state.unassigned = true;
                drop(state);
                serve_now(base_consumer, false, tpl, cooperative);
            }
        }
        self.changed.notify_one();
    }
}

/// One sink task's reader in the connector's consumer group.
pub struct KafkaConsumer {
    consumer: Arc<StreamConsumer<GroupContext>>,
    group: String,
    selector: TopicSelector,
    mode: SinkAssignment,
    task_id: u32,
    task_count: u32,
    /// Group mode: topics currently subscribed to.
    subscribed: Vec<String>,
    last_refresh: Option<Instant>,
    /// Partitions assigned to this member.
    owned: Vec<TopicPartition>,
    /// Partitions given back to the group since they were last assigned here: commits for
    /// them are dropped (another member owns them now).
    released: Vec<TopicPartition>,
    /// A revocation was reported by a `poll` and not released yet; the next `poll` releases
    /// it (for callers that do not handle revocations).
    revocation_reported: bool,
    resuming: HashMap<TopicPartition, Resume>,
    /// When each partition in [`Resume::Checking`] was assigned.
    checking_since: HashMap<TopicPartition, Instant>,
}

impl KafkaConsumer {
    /// A reader of `task_id`'s share (static) or a member of `group` (group mode).
    pub fn new(
        config: &KafkaStorageConfig,
        group: &str,
        selector: TopicSelector,
        task_id: u32,
        task_count: u32,
    ) -> Result<Self, ConnectorError> {
        let consumer: StreamConsumer<GroupContext> = consumer_config(config, group)
            .create_with_context(GroupContext::new())
            .map_err(|e| {
                ConnectorError::config(format!("invalid Kafka consumer configuration: {e}"))
                    .with_source(e)
            })?;
        Ok(KafkaConsumer {
            consumer: Arc::new(consumer),
            group: group.to_owned(),
            selector,
            mode: config.sink_assignment,
            task_id,
            task_count: task_count.max(1),
            subscribed: Vec::new(),
            last_refresh: None,
            owned: Vec::new(),
            released: Vec::new(),
            revocation_reported: false,
            resuming: HashMap::new(),
            checking_since: HashMap::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, GroupState> {
        self.consumer.context().state()
    }

    /// Group mode: subscribes to the matching topics that exist, when that set changed.
    /// Static mode: queues this task's share of partitions not assigned yet.
    async fn refresh(&mut self) -> Result<(), ConnectorError> {
        if self
            .last_refresh
            .is_some_and(|t| t.elapsed() < REFRESH_INTERVAL)
        {
            return Ok(());
        }
        self.last_refresh = Some(Instant::now());
        let consumer = self.consumer.clone();
        let selector = self.selector.clone();
        let all = tokio::task::spawn_blocking(move || matching_partitions(&consumer, &selector))
            .await
            .map_err(|e| ConnectorError::transient("metadata task failed").with_source(e))??;
        match self.mode {
            SinkAssignment::Static => {
                let mut state = self.consumer.context().state();
                let pending = state.assigning.get_or_insert_with(Vec::new);
                for tp in split(all, self.task_id, self.task_count) {
                    if !self.owned.contains(&tp) && !pending.contains(&tp) {
                        pending.push(tp);
                    }
                }
                if pending.is_empty() {
                    state.assigning = None;
                }
            }
            SinkAssignment::Group => {
                let mut topics: Vec<String> =
                    all.into_iter().map(|tp| tp.topic.to_string()).collect();
                topics.dedup();
                if topics == self.subscribed {
                    return Ok(());
                }
                if topics.is_empty() {
                    self.consumer.unsubscribe();
                } else {
                    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
                    self.consumer
                        .subscribe(&names)
                        .map_err(|e| kafka_error("cannot subscribe", e))?;
                }
                info!(group = %self.group, task = self.task_id, topics = ?topics, "subscribed to Kafka topics");
                self.subscribed = topics;
            }
        }
        Ok(())
    }

    /// Assigns what the group assigned, at the committed offsets (read first, so the
    /// resume check knows where each partition must start).
    async fn apply_assignment(&mut self) -> Result<(), ConnectorError> {
        // Static shares grow one partition at a time: always incremental.
        let (new, incremental) = {
            let mut state = self.state();
            let incremental = state.cooperative || self.mode == SinkAssignment::Static;
            match state.assigning.take() {
                Some(new) => (new, incremental),
                None => return Ok(()),
            }
        };
        let consumer = self.consumer.clone();
        let partitions = new.clone();
        let result = tokio::task::spawn_blocking(move || {
            let committed = consumer
                .committed_offsets(partition_list(&partitions), METADATA_TIMEOUT)
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
                    Offset::Offset(_) => Offset::Beginning,
                    // Nothing committed: librdkafka applies auto.offset.reset.
                    _ => Offset::Invalid,
                };
                start
                    .add_partition_offset(element.topic(), element.partition(), offset)
                    .map_err(|e| kafka_error("cannot build the assignment", e))?;
            }
            let assigned = if incremental {
                consumer.incremental_assign(&start)
            } else {
                consumer.assign(&start)
            };
            assigned.map_err(|e| kafka_error("cannot assign partitions", e))?;
            Ok::<_, ConnectorError>(resumed)
        })
        .await
        .map_err(|e| ConnectorError::transient("assignment task failed").with_source(e))
        .and_then(|r| r);
        let resumed = match result {
            Ok(resumed) => resumed,
            Err(e) => {
                // Still owed to librdkafka; dropping the consumer serves it.
                self.state()
                    .assigning
                    .get_or_insert_with(Vec::new)
                    .extend(new);
                return Err(e);
            }
        };
        for (tp, offset) in resumed {
            self.checking_since.insert(tp.clone(), Instant::now());
            self.resuming.insert(tp, Resume::Checking(offset));
        }
        if !incremental {
            self.owned.clear();
        }
        for tp in &new {
            if !self.owned.contains(tp) {
                self.owned.push(tp.clone());
            }
        }
        self.owned.sort();
        self.released.retain(|tp| !new.contains(tp));
        info!(group = %self.group, task = self.task_id, partitions = ?new.iter().map(|tp| tp.to_string()).collect::<Vec<_>>(), "assigned Kafka partitions");
        Ok(())
    }

    /// Whether the group decided something this consumer has not applied.
    fn group_pending(&self) -> (bool, bool) {
        let state = self.state();
        (state.assigning.is_some(), !state.revoking.is_empty())
    }

    /// Whether this member may commit for `tp`: not once it gave the partition back, nor
    /// for a lost assignment. (A partition never assigned here is the broker's to judge: a
    /// commit outside any generation is accepted only while the group has no members.)
    fn committable(&self, tp: &TopicPartition) -> bool {
        let state = self.state();
        let lost = state.lost && state.revoking.contains(tp);
        !(lost || self.released.contains(tp))
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

/// The partitions of the existing topics `selector` matches, sorted.
fn matching_partitions(
    consumer: &StreamConsumer<GroupContext>,
    selector: &TopicSelector,
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
    Ok(all)
}

/// Round-robin split of sorted partitions over tasks (static mode).
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

impl Drop for KafkaConsumer {
    fn drop(&mut self) {
        // Leaving the group: librdkafka's close serves the final revocation through the
        // callback, which must now act at once; and whatever the group decided that was not
        // applied yet is answered here, or the close would wait for it.
        if self.mode == SinkAssignment::Static {
            // Nothing owed to a group: static shares are this consumer's own queue.
            return;
        }
        let (assigning, revoking, unassigned, cooperative) = {
            let mut state = self.state();
            state.closing = true;
            (
                state.assigning.take(),
                std::mem::take(&mut state.revoking),
                state.unassigned,
                state.cooperative,
            )
        };
        let consumer: &StreamConsumer<GroupContext> = &self.consumer;
        if let Some(assigning) = assigning {
            serve_now(consumer, true, &partition_list(&assigning), cooperative);
        }
        if !revoking.is_empty() && !unassigned {
            serve_now(consumer, false, &partition_list(&revoking), cooperative);
        }
    }
}

#[async_trait]
impl TopicConsumer for KafkaConsumer {
    async fn poll(
        &mut self,
        max: usize,
        timeout: Duration,
    ) -> Result<Vec<SinkRecord>, ConnectorError> {
        if self.revocation_reported {
            // The caller polled again without releasing: it does not handle revocations.
            let revoking = self.revoking();
            self.release(&revoking).await?;
        }
        self.refresh().await?;
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        let changed = self.consumer.context().changed.clone();
        loop {
            let (assigning, revoking) = self.group_pending();
            if revoking {
                // Let the caller commit what is durable before the partitions go.
                self.revocation_reported = true;
                return Ok(out);
            }
            if assigning {
                self.apply_assignment().await?;
            }
            self.rewind_stalled()?;
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(out);
            }
            let wait = deadline.saturating_duration_since(now).min(STALL_TIMEOUT);
            let consumer = self.consumer.clone();
            // `recv` also serves the group's rebalance callbacks, so it runs even with
            // nothing assigned; a decision of the group wakes this loop at once.
            let received = tokio::select! {
                message = consumer.recv() => Some(message.map(|m| to_sink_record(&m))),
                _ = changed.notified() => None,
                _ = tokio::time::sleep(wait) => None,
            };
            match received {
                None => continue,
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    self.at_end(p);
                    continue;
                }
                Some(Err(e)) => return Err(kafka_error("Kafka consume failed", e)),
                Some(Ok(record)) => self.accept(record, &mut out)?,
            }
            // Take what is already buffered without waiting.
            while out.len() < max {
                match consumer.recv().now_or_never() {
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
            if !out.is_empty() {
                if self.group_pending().1 {
                    self.revocation_reported = true;
                }
                return Ok(out);
            }
        }
    }

    async fn commit(&mut self, offsets: &ConsumerOffsets) -> Result<(), ConnectorError> {
        let mut list = TopicPartitionList::new();
        for (tp, offset) in offsets {
            if !self.committable(tp) {
                // Released (or lost): another member owns it now.
                continue;
            }
            list.add_partition_offset(
                &tp.topic,
                tp.partition as i32,
                Offset::Offset(*offset as i64),
            )
            .map_err(|e| kafka_error("cannot build the commit", e))?;
        }
        if list.count() == 0 {
            return Ok(());
        }
        let consumer = self.consumer.clone();
        tokio::task::spawn_blocking(move || consumer.commit(&list, CommitMode::Sync))
            .await
            .map_err(|e| ConnectorError::transient("commit task failed").with_source(e))?
            .map_err(|e| kafka_error("cannot commit consumer offsets", e))
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        self.owned.clone()
    }

    fn revoking(&self) -> Vec<TopicPartition> {
        self.state().revoking.clone()
    }

    async fn release(&mut self, partitions: &[TopicPartition]) -> Result<(), ConnectorError> {
        let (unassign, cooperative, lost) = {
            let mut state = self.state();
            let released: Vec<TopicPartition> = state
                .revoking
                .iter()
                .filter(|tp| partitions.contains(tp))
                .cloned()
                .collect();
            if released.is_empty() {
                return Ok(());
            }
            state.revoking.retain(|tp| !partitions.contains(tp));
            let unassign = !state.unassigned;
            let flags = (state.cooperative, state.lost);
            if state.revoking.is_empty() {
                state.lost = false;
                state.unassigned = false;
            }
            (unassign.then_some(released), flags.0, flags.1)
        };
        self.revocation_reported = false;
        if let Some(released) = &unassign {
            let consumer = self.consumer.clone();
            let list = partition_list(released);
            tokio::task::spawn_blocking(move || {
                if cooperative {
                    consumer.incremental_unassign(&list)
                } else {
                    consumer.unassign()
                }
            })
            .await
            .map_err(|e| ConnectorError::transient("unassign task failed").with_source(e))?
            .map_err(|e| kafka_error("cannot give partitions back to the group", e))?;
        }
        let gone: Vec<TopicPartition> = if cooperative {
            partitions.to_vec()
        } else {
            std::mem::take(&mut self.owned)
        };
        self.owned.retain(|tp| !gone.contains(tp));
        for tp in gone {
            if !self.released.contains(&tp) {
                self.released.push(tp);
            }
        }
        self.resuming.retain(|tp, _| self.owned.contains(tp));
        self.checking_since.retain(|tp, _| self.owned.contains(tp));
        info!(group = %self.group, task = self.task_id, lost, partitions = ?partitions.iter().map(|tp| tp.to_string()).collect::<Vec<_>>(), "released Kafka partitions to the group");
        Ok(())
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
