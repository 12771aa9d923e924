//! Runs one sink task: consume, put, and commit consumer offsets only for what the sink
//! reports durable in its target (`pre_commit`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::info;

use crate::connector::{SinkConnector, SinkTask, SinkTaskContext};
use crate::data::decode::RecordDecoder;
use crate::dead_letter::{ErrantRecordReporter, ErrorPolicy};
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
    pub decoder: Arc<RecordDecoder>,
    /// `errors.*`: what the task's [`ErrantRecordReporter`] does with bad records.
    pub errors: ErrorPolicy,
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
                decoder: self.decoder.clone(),
                errors: ErrantRecordReporter::new(
                    self.errors.clone(),
                    self.store.clone(),
                    self.connector_name.clone(),
                    self.task_id,
                ),
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
                self.progress.consumed_batch(&records);
                task.put(records).await?;
            }
            // A consumer group takes partitions away (Kafka rebalance): commit what the sink
            // made durable for them while still their owner, forget them, give them up.
            let revoking = consumer.revoking();
            if !revoking.is_empty() {
                self.commit(task, consumer, &consumed, &mut committed)
                    .await?;
                for tp in &revoking {
                    consumed.remove(tp);
                    committed.remove(tp);
                }
                opened.retain(|tp| !revoking.contains(tp));
                consumer.release(&revoking).await?;
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
        self.progress.durable_in_sink(&advance);
        committed.extend(advance);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The dead-letter path through the real sink runner and the embedded log: a poison
    //! record lands in the dead-letter topic with its context while the rest flows, or, with
    //! `errors.tolerance=none`, fails the task naming its position.

    use std::sync::Mutex;

    use async_trait::async_trait;
    use bytes::Bytes;

    use super::*;
    use crate::config::RawConfig;
    use crate::dead_letter::headers;
    use crate::log::{EmbeddedLog, LogConfig};
    use crate::record::{SinkRecord, TopicRecord};
    use crate::storage::{EmbeddedStore, ProduceRecord, TopicSelector};

    /// A sink that decodes every record and reports the ones it cannot decode.
    struct DecodingSink {
        written: Arc<Mutex<Vec<u64>>>,
    }

    struct DecodingTask {
        decoder: Arc<RecordDecoder>,
        errors: ErrantRecordReporter,
        written: Arc<Mutex<Vec<u64>>>,
    }

    #[async_trait]
    impl SinkConnector for DecodingSink {
        async fn open_task(
            &self,
            ctx: SinkTaskContext,
        ) -> Result<Box<dyn SinkTask>, ConnectorError> {
            Ok(Box::new(DecodingTask {
                decoder: ctx.decoder,
                errors: ctx.errors,
                written: self.written.clone(),
            }))
        }
    }

    #[async_trait]
    impl SinkTask for DecodingTask {
        async fn put(&mut self, records: Vec<SinkRecord>) -> Result<(), ConnectorError> {
            for r in records {
                match self.decoder.decode_staged(&r).await {
                    Ok(_) => self
                        .written
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(r.offset),
                    Err((stage, e)) => self.errors.report(&r, stage, e).await?,
                }
            }
            Ok(())
        }

        async fn flush(&mut self) -> Result<(), ConnectorError> {
            Ok(())
        }
    }

    struct Setup {
        _dir: tempfile::TempDir,
        store: Arc<EmbeddedStore>,
        run: SinkRun,
        written: Arc<Mutex<Vec<u64>>>,
        topic: String,
    }

    /// Five records in `topic`, the one at offset 2 not JSON.
    async fn setup(name: &str, policy: ErrorPolicy) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            EmbeddedStore::new(EmbeddedLog::open(dir.path(), LogConfig::default()).expect("log"));
        let topic = format!("{name}-orders");
        store.ensure_topic(&topic).await.expect("topic");
        let records = (0..5u64)
            .map(|i| ProduceRecord {
                topic: Arc::from(topic.as_str()),
                partition: 0,
                record: TopicRecord {
                    key: Some(Bytes::from(format!("{{\"id\":{i}}}"))),
                    value: Some(if i == 2 {
                        Bytes::from_static(b"\x00\x01 not json")
                    } else {
                        Bytes::from(format!("{{\"id\":{i},\"total\":10}}"))
                    }),
                    headers: Vec::new(),
                    timestamp_ms: 1000 + i as i64,
                },
            })
            .collect();
        store.produce(records).await.expect("produce");
        let converters: RawConfig = [
            ("key.converter.schemas.enable", "false"),
            ("value.converter.schemas.enable", "false"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let written = Arc::new(Mutex::new(Vec::new()));
        let run = SinkRun {
            connector_name: Arc::from(name),
            task_id: 0,
            task_count: 1,
            connector: Arc::new(DecodingSink {
                written: written.clone(),
            }),
            topics: TopicSelector::Names(vec![topic.clone()]),
            store: store.clone(),
            progress: ProgressHandle::new(),
            commit_interval: Duration::ZERO,
            decoder: Arc::new(RecordDecoder::from_config(&converters).expect("decoder")),
            errors: policy,
        };
        Setup {
            _dir: dir,
            store,
            run,
            written,
            topic,
        }
    }

    #[tokio::test]
    async fn a_poison_record_is_dead_lettered_while_the_rest_flows() {
        let policy = ErrorPolicy {
            tolerate: true,
            dlq_topic: Some("dlq-runner".into()),
            context_headers: true,
            connector_class: "io.tributary.test.DecodingSink".into(),
            ..ErrorPolicy::default()
        };
        let s = setup("dlq-runner-all", policy).await;
        let (control, mut rx) = watch::channel(TargetState::Running);
        let run = s.run;
        let handle = tokio::spawn(async move { run.run(&mut rx).await });
        let deadline = Instant::now() + Duration::from_secs(30);
        while s.written.lock().unwrap_or_else(|p| p.into_inner()).len() < 4 {
            assert!(
                Instant::now() < deadline,
                "the good records were not written"
            );
            assert!(!handle.is_finished(), "the sink task stopped early");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        control.send(TargetState::Stopped).expect("control");
        handle.await.expect("join").expect("the task does not fail");
        assert_eq!(
            *s.written.lock().unwrap_or_else(|p| p.into_inner()),
            [0, 1, 3, 4]
        );

        let mut dlq = s
            .store
            .consumer(
                "check",
                TopicSelector::Names(vec!["dlq-runner".into()]),
                0,
                1,
            )
            .await
            .expect("consumer");
        let records = dlq.poll(10, Duration::from_secs(5)).await.expect("poll");
        assert_eq!(records.len(), 1);
        let r = &records[0].record;
        assert_eq!(r.value.as_deref(), Some(&b"\x00\x01 not json"[..]));
        assert_eq!(r.key.as_deref(), Some(&b"{\"id\":2}"[..]));
        let header = |name: &str| {
            r.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        assert_eq!(header(headers::TOPIC), Some(s.topic.clone()));
        assert_eq!(header(headers::OFFSET).as_deref(), Some("2"));
        assert_eq!(header(headers::STAGE).as_deref(), Some("VALUE_CONVERTER"));
        assert!(
            header(headers::EXCEPTION_MESSAGE)
                .is_some_and(|m| m.contains("cannot decode the value"))
        );
        // Everything, the dead-lettered record included, is committed.
        let committed = s
            .store
            .log()
            .group_offsets(&group_id("dlq-runner-all"))
            .expect("group");
        assert_eq!(
            committed.get(&TopicPartition::new(s.topic.as_str(), 0)),
            Some(&5)
        );
        let counters = crate::dead_letter::counters("dlq-runner-all", 0);
        assert_eq!(
            counters
                .dead_lettered
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }

    #[tokio::test]
    async fn tolerance_none_fails_the_task_at_the_poison_record() {
        let s = setup("dlq-runner-none", ErrorPolicy::default()).await;
        let (_control, mut rx) = watch::channel(TargetState::Running);
        let err = tokio::time::timeout(Duration::from_secs(30), s.run.run(&mut rx))
            .await
            .expect("fails promptly")
            .expect_err("the task fails");
        assert_eq!(err.kind, crate::error::ErrorKind::Definite);
        let position = format!("{}-0@2", s.topic);
        assert!(err.message.contains(&position), "{}", err.message);
        assert!(err.message.contains("VALUE_CONVERTER"), "{}", err.message);
        assert_eq!(*s.written.lock().unwrap_or_else(|p| p.into_inner()), [0, 1]);
        // Nothing at or past the poison record is committed.
        let committed = s
            .store
            .log()
            .group_offsets(&group_id("dlq-runner-none"))
            .expect("group");
        assert!(
            committed
                .get(&TopicPartition::new(s.topic.as_str(), 0))
                .is_none_or(|o| *o <= 2)
        );
        assert!(s.store.log().topic("dlq-runner").is_none());
    }
}
