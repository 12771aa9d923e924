//! Runs one sink task: consume, put, and commit consumer offsets only for what the sink
//! reports durable in its target (`pre_commit`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::info;

use crate::connector::{SinkConnector, SinkTask, SinkTaskContext};
use crate::error::ConnectorError;
use crate::progress::ProgressHandle;
use crate::record::{ConsumerOffsets, TopicPartition};
use crate::storage::{TopicConsumer, TopicSelector, TopicStore};

use super::state::TargetState;

const MAX_POLL_RECORDS: usize = 10_000;
const POLL_TIMEOUT: Duration = Duration::from_millis(500);

pub(crate) struct SinkRun {
    pub connector_name: Arc<str>,
    pub task_id: u32,
    pub task_count: u32,
    pub connector: Arc<dyn SinkConnector>,
    pub topics: TopicSelector,
    pub store: Arc<dyn TopicStore>,
    pub progress: ProgressHandle,
    pub commit_interval: Duration,
}

/// Kafka Connect's consumer group name for a sink connector.
pub fn group_id(connector: &str) -> String {
    format!("connect-{connector}")
}

impl SinkRun {
    pub(crate) async fn run(
        &self,
        control: &mut watch::Receiver<TargetState>,
    ) -> Result<(), ConnectorError> {
        self.progress.set_phase("preflight");
        self.connector.check().await?;
        let mut task = self
            .connector
            .open_task(SinkTaskContext {
                connector: self.connector_name.clone(),
                task_id: self.task_id,
                progress: self.progress.clone(),
            })
            .await?;
        let mut consumer = self
            .store
            .consumer(
                &group_id(&self.connector_name),
                self.topics.clone(),
                self.task_id,
                self.task_count,
            )
            .await?;
        let result = self.pump(task.as_mut(), consumer.as_mut(), control).await;
        task.close().await;
        result
    }

    async fn pump(
        &self,
        task: &mut dyn SinkTask,
        consumer: &mut dyn TopicConsumer,
        control: &mut watch::Receiver<TargetState>,
    ) -> Result<(), ConnectorError> {
        let mut consumed = ConsumerOffsets::new();
        let mut committed = ConsumerOffsets::new();
        let mut opened: Vec<TopicPartition> = Vec::new();
        let mut last_commit = Instant::now();
        self.progress.set_phase("streaming");
        loop {
            let target = *control.borrow_and_update();
            match target {
                TargetState::Stopped => {
                    self.commit(task, consumer, &consumed, &mut committed)
                        .await?;
                    info!(connector = %self.connector_name, task = self.task_id, "sink task flushed and committed");
                    return Ok(());
                }
                TargetState::Paused => {
                    self.commit(task, consumer, &consumed, &mut committed)
                        .await?;
                    self.progress.set_phase("paused");
                    if control.changed().await.is_err() {
                        return Ok(());
                    }
                    self.progress.set_phase("streaming");
                    continue;
                }
                TargetState::Running => {}
            }
            let records = consumer.poll(MAX_POLL_RECORDS, POLL_TIMEOUT).await?;
            let assignment = consumer.assignment();
            let new: Vec<TopicPartition> = assignment
                .into_iter()
                .filter(|tp| !opened.contains(tp))
                .collect();
            if !new.is_empty() {
                task.open(&new).await?;
                opened.extend(new);
            }
            if !records.is_empty() {
                let bytes: usize = records.iter().map(|r| r.record.size()).sum();
                self.progress.add(records.len() as u64, bytes as u64);
                for r in &records {
                    consumed.insert(
                        TopicPartition::new(r.topic.clone(), r.partition),
                        r.offset + 1,
                    );
                }
                task.put(records).await?;
            }
            if consumed != committed && last_commit.elapsed() >= self.commit_interval {
                self.commit(task, consumer, &consumed, &mut committed)
                    .await?;
                last_commit = Instant::now();
            }
        }
    }

    /// Commits the consumer offsets the sink says are durable, and only those.
    async fn commit(
        &self,
        task: &mut dyn SinkTask,
        consumer: &mut dyn TopicConsumer,
        consumed: &ConsumerOffsets,
        committed: &mut ConsumerOffsets,
    ) -> Result<(), ConnectorError> {
        if consumed == committed {
            return Ok(());
        }
        let durable = task.pre_commit(consumed).await?;
        // Never move backward, never past what was consumed.
        let advance: ConsumerOffsets = durable
            .into_iter()
            .filter(|(tp, offset)| {
                consumed.get(tp).is_some_and(|c| offset <= c)
                    && committed.get(tp).is_none_or(|c| offset > c)
            })
            .collect();
        if advance.is_empty() {
            return Ok(());
        }
        consumer.commit(&advance).await?;
        committed.extend(advance);
        Ok(())
    }
}
