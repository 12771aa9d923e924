//! Runs one source task: poll, encode, produce, and commit offsets in durability order.
//!
//! ```text
//!   poll() ─► encode ─► AckTracker::track ─► TopicStore::produce ─┐ (futures, in flight)
//!      ▲                                                          │ durable
//!      │            OffsetStore::commit ◄─ take_committable ◄─ ack ┘
//!      └──────────── SourceTask::commit ◄──┘
//! ```
//!
//! This is where the commit-order invariant is enforced: offsets reach the offset store only
//! through [`AckTracker::take_committable`], i.e. only when every earlier record of the same
//! source partition is durable in the topic log.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use tokio::sync::watch;
use tracing::{debug, info};

use crate::ack::{AckTracker, RecordId};
use crate::connector::{SourceConnector, SourceTask, SourceTaskContext};
use crate::converter::RecordEncoder;
use crate::error::ConnectorError;
use crate::offsets::{OffsetStore, StoredOffset};
use crate::progress::ProgressHandle;
use crate::record::SourceRecord;
use crate::storage::{ProduceRecord, TopicStore};

use super::state::TargetState;

/// Most records in flight (produced, not yet durable) before polling waits.
const MAX_IN_FLIGHT: usize = 20_000;

pub(crate) struct SourceRun {
    pub connector_name: Arc<str>,
    pub task_id: u32,
    pub connector: Arc<dyn SourceConnector>,
    pub encoder: RecordEncoder,
    pub store: Arc<dyn TopicStore>,
    pub offsets: Arc<dyn OffsetStore>,
    pub progress: ProgressHandle,
    pub commit_interval: Duration,
}

type Delivery = BoxFuture<'static, (Vec<RecordId>, Result<(), ConnectorError>)>;
type PendingCommit = BoxFuture<'static, Result<Vec<StoredOffset>, ConnectorError>>;

impl SourceRun {
    /// Runs until the target becomes `Stopped` (Ok) or the task fails (Err).
    pub(crate) async fn run(
        &self,
        control: &mut watch::Receiver<TargetState>,
    ) -> Result<(), ConnectorError> {
        self.progress.set_phase("preflight");
        self.connector.check().await?;
        let restored = self.offsets.load(&self.connector_name).await?;
        let mut task = self
            .connector
            .open_task(SourceTaskContext {
                connector: self.connector_name.clone(),
                task_id: self.task_id,
                offsets: restored,
                progress: self.progress.clone(),
                value_modes: self.encoder.modes().clone(),
            })
            .await?;
        let mut state = RunState {
            tracker: AckTracker::new(),
            in_flight: FuturesUnordered::new(),
            pending_commit: None,
            last_commit: Instant::now(),
            partitions: HashMap::new(),
            buf: Vec::with_capacity(4096),
        };
        let result = self.pump(task.as_mut(), &mut state, control).await;
        // Drain: what was produced becomes committed before we close, unless we failed.
        let drained = match result {
            Ok(()) => self.drain(task.as_mut(), &mut state).await,
            Err(e) => Err(e),
        };
        task.close().await;
        drained
    }

    async fn pump(
        &self,
        task: &mut dyn SourceTask,
        st: &mut RunState,
        control: &mut watch::Receiver<TargetState>,
    ) -> Result<(), ConnectorError> {
        loop {
            self.collect_acks(st)?;
            self.advance_commit(task, st, false).await?;
            let target = *control.borrow_and_update();
            match target {
                TargetState::Stopped => return Ok(()),
                TargetState::Paused => {
                    self.progress.set_phase("paused");
                    self.drain(task, st).await?;
                    // Keep resources; wait for the next target change.
                    if control.changed().await.is_err() {
                        return Ok(());
                    }
                    continue;
                }
                TargetState::Running => {}
            }
            if st.tracker.in_flight() >= MAX_IN_FLIGHT {
                if let Some((ids, result)) = st.in_flight.next().await {
                    result?;
                    ids.into_iter().for_each(|id| st.tracker.ack(id));
                }
                continue;
            }
            let batch = task.poll().await?;
            if batch.is_empty() {
                continue;
            }
            self.produce(batch, st).await?;
        }
    }

    async fn produce(
        &self,
        batch: Vec<SourceRecord>,
        st: &mut RunState,
    ) -> Result<(), ConnectorError> {
        let mut out = Vec::with_capacity(batch.len());
        let mut ids = Vec::with_capacity(batch.len());
        let mut bytes = 0u64;
        let mut last_ts = None;
        for mut record in batch {
            let partitions = match st.partitions.get(&record.topic) {
                Some(&n) => n,
                None => {
                    let n = self.store.ensure_topic(&record.topic).await?;
                    st.partitions.insert(record.topic.clone(), n);
                    n
                }
            };
            let encoded = self.encoder.encode(&record, &mut st.buf).await?;
            if let crate::record::Payload::Change(event) = &record.payload {
                last_ts = Some(event.source.ts_ms);
            }
            bytes += encoded.size() as u64;
            let partition = self.store.partition(encoded.key.as_deref(), partitions);
            ids.push(st.tracker.track(&record.partition, record.offset.take()));
            out.push(ProduceRecord {
                topic: record.topic.clone(),
                partition,
                record: encoded,
            });
        }
        self.progress.add(out.len() as u64, bytes);
        if let Some(ts) = last_ts {
            self.progress.set_source_ts(ts);
        }
        let delivery = self.store.produce(out);
        st.in_flight
            .push(Box::pin(delivery.map(move |r| (ids, r))) as Delivery);
        Ok(())
    }

    /// Applies every delivery that already completed, without waiting.
    fn collect_acks(&self, st: &mut RunState) -> Result<(), ConnectorError> {
        while let Some(Some((ids, result))) = st.in_flight.next().now_or_never() {
            result?;
            ids.into_iter().for_each(|id| st.tracker.ack(id));
        }
        Ok(())
    }

    /// Finishes a running offset commit (telling the task), and starts the next one when
    /// offsets became committable. With `wait`, blocks until the commit is done.
    async fn advance_commit(
        &self,
        task: &mut dyn SourceTask,
        st: &mut RunState,
        wait: bool,
    ) -> Result<(), ConnectorError> {
        if let Some(pending) = st.pending_commit.as_mut() {
            let done = if wait {
                Some(pending.await)
            } else {
                pending.now_or_never()
            };
            match done {
                Some(result) => {
                    st.pending_commit = None;
                    let committed = result?;
                    debug!(connector = %self.connector_name, partitions = committed.len(), "offsets committed");
                    task.commit(&committed).await?;
                }
                None => return Ok(()),
            }
        }
        if !wait && st.last_commit.elapsed() < self.commit_interval {
            return Ok(());
        }
        let committable = st.tracker.take_committable();
        if committable.is_empty() {
            return Ok(());
        }
        let stored: Vec<StoredOffset> = committable
            .into_iter()
            .map(|(partition, offset)| StoredOffset { partition, offset })
            .collect();
        let offsets = self.offsets.clone();
        let name = self.connector_name.clone();
        st.last_commit = Instant::now();
        st.pending_commit = Some(Box::pin(async move {
            offsets.commit(&name, stored.clone()).await?;
            Ok(stored)
        }));
        if wait {
            return Box::pin(self.advance_commit(task, st, true)).await;
        }
        Ok(())
    }

    /// Waits for every in-flight record and commits the final offsets.
    async fn drain(
        &self,
        task: &mut dyn SourceTask,
        st: &mut RunState,
    ) -> Result<(), ConnectorError> {
        while let Some((ids, result)) = st.in_flight.next().await {
            result?;
            ids.into_iter().for_each(|id| st.tracker.ack(id));
        }
        self.advance_commit(task, st, true).await?;
        info!(connector = %self.connector_name, task = self.task_id, "source task drained and committed");
        Ok(())
    }
}

struct RunState {
    tracker: AckTracker,
    in_flight: FuturesUnordered<Delivery>,
    pending_commit: Option<PendingCommit>,
    last_commit: Instant,
    partitions: HashMap<Arc<str>, u32>,
    buf: Vec<u8>,
}
