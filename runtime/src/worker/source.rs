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
//!
//! With transforms, each record is converted to Connect data, transformed and encoded
//! ([`DataEncoder`]); a record a transform drops (or one skipped under
//! `errors.tolerance=all`) is tracked and acknowledged at once, so its offset commits when
//! the records before it are durable.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::ack::{AckTracker, RecordId};
use crate::connector::{SourceConnector, SourceTask, SourceTaskContext};
use crate::converter::RecordEncoder;
use crate::data::encode::DataEncoder;
use crate::data::from_event;
use crate::dead_letter::{self, ErrorPolicy, Stage};
use crate::error::{ConnectorError, ErrorKind};
use crate::model::Value;
use crate::offsets::{OffsetStore, StoredOffset};
use crate::progress::ProgressHandle;
use crate::record::{Payload, SourceRecord, TopicRecord};
use crate::storage::{ProduceRecord, TopicStore};
use crate::transforms::TransformChain;

use super::state::TargetState;

/// Most records in flight (produced, not yet durable) before polling waits. A few group
/// commits' worth: a larger window only holds encoded records in memory (MariaDB catch-up
/// with 20,000: 0.55 of `mariadb-binlog -v` at 112 MB peak RSS; with 8,192: 0.63 at 91 MB;
/// with 4,096: 0.54 at 100 MB; same run-to-run spread of about 0.05 and 15 MB). Since the
/// log fsyncs one group while writing the next, 4,096 keeps the same throughput with about
/// 8 MB less peak RSS than 8,192 (same machine, alternating runs).
const MAX_IN_FLIGHT: usize = 4_096;

pub(crate) struct SourceRun {
    pub connector_name: Arc<str>,
    pub task_id: u32,
    pub connector: Arc<dyn SourceConnector>,
    pub encoder: RecordEncoder,
    pub store: Arc<dyn TopicStore>,
    pub offsets: Arc<dyn OffsetStore>,
    pub progress: ProgressHandle,
    pub commit_interval: Duration,
    /// Single message transforms; empty: records are encoded straight from the event.
    pub transforms: TransformChain,
    /// Encodes transformed records (present when `transforms` is not empty).
    pub data_encoder: Option<Arc<DataEncoder>>,
    /// `errors.*`: whether bad records fail the task or are skipped.
    pub errors: ErrorPolicy,
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
            last_topic: None,
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
        let mut dropped = Vec::new();
        for mut record in batch {
            let encoded = match self.transforms.is_empty() {
                true => match self.encoder.encode(&record, &mut st.buf).await {
                    Ok(encoded) => Some((record.topic.clone(), encoded)),
                    Err(e) => self.skip_or_fail(&record, Stage::ValueConverter, e)?,
                },
                false => self.transform(&record).await?,
            };
            if let crate::record::Payload::Change(event) = &record.payload {
                last_ts = Some(event.source.ts_ms);
            }
            let id = st.tracker.track(&record.partition, record.offset.take());
            // A dropped or skipped record is done: its offset may commit once the records
            // before it are durable.
            let Some((topic, encoded)) = encoded else {
                dropped.push(id);
                continue;
            };
            // Records come in runs of one topic: the previous record's topic first.
            let partitions = match &st.last_topic {
                Some((last, n)) if Arc::ptr_eq(last, &topic) => *n,
                _ => {
                    let n = match st.partitions.get(&topic) {
                        Some(&n) => n,
                        None => {
                            let n = self.store.ensure_topic(&topic).await?;
                            st.partitions.insert(topic.clone(), n);
                            n
                        }
                    };
                    st.last_topic = Some((topic.clone(), n));
                    n
                }
            };
            bytes += encoded.size() as u64;
            let partition = self.store.partition(encoded.key.as_deref(), partitions);
            ids.push(id);
            out.push(ProduceRecord {
                topic,
                partition,
                record: encoded,
            });
        }
        dropped.into_iter().for_each(|id| st.tracker.ack(id));
        self.progress.add(out.len() as u64, bytes);
        if let Some(ts) = last_ts {
            self.progress.set_source_ts(ts);
        }
        let delivery =
            self.progress
                .durable_in_log(self.store.produce(out), ids.len() as u64, bytes, last_ts);
        st.in_flight
            .push(Box::pin(delivery.map(move |r| (ids, r))) as Delivery);
        Ok(())
    }

    /// Converts a record to Connect data, runs the transforms and encodes the result.
    /// `Ok(None)`: dropped by a transform, or skipped under `errors.tolerance=all`.
    async fn transform(
        &self,
        record: &SourceRecord,
    ) -> Result<Option<(Arc<str>, TopicRecord)>, ConnectorError> {
        let connect = match from_event::to_connect(record, self.encoder.modes()) {
            Ok(c) => c,
            Err(e) => return self.skip_or_fail(record, Stage::TaskPoll, e),
        };
        let transformed = match self.transforms.apply(connect) {
            Ok(Some(t)) => t,
            Ok(None) => return Ok(None),
            Err(e) => return self.skip_or_fail(record, Stage::Transformation, e),
        };
        let Some(encoder) = &self.data_encoder else {
            return Err(ConnectorError::definite(
                "transforms are configured but no encoder for transformed records was built",
            ));
        };
        let encoded = self
            .errors
            .retry(|| async {
                let mut buf = Vec::new();
                encoder.encode(&transformed, &mut buf).await
            })
            .await;
        match encoded {
            Ok(e) => Ok(Some((transformed.topic.clone(), e))),
            Err(e) => self.skip_or_fail(record, Stage::ValueConverter, e),
        }
    }

    /// A record that failed in `stage`: transient errors and `errors.tolerance=none` fail
    /// the task (naming the record's position); with `all` it is counted, logged, skipped.
    fn skip_or_fail<T>(
        &self,
        record: &SourceRecord,
        stage: Stage,
        err: ConnectorError,
    ) -> Result<Option<T>, ConnectorError> {
        if err.kind == ErrorKind::Transient {
            return Err(err);
        }
        let position = position_of(record);
        let counters = dead_letter::counters(&self.connector_name, self.task_id);
        if !self.errors.tolerate {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            return Err(ConnectorError::new(
                err.kind,
                format!(
                    "source record for topic {} at {position} failed in {stage}: {}",
                    record.topic,
                    err.trace()
                ),
            ));
        }
        counters.skipped.fetch_add(1, Ordering::Relaxed);
        warn!(connector = %self.connector_name, task = self.task_id, topic = %record.topic, offset = %position, stage = %stage, error = %err.trace(), "bad source record skipped (errors.tolerance=all)");
        Ok(None)
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
    /// The last topic produced to and its partition count.
    last_topic: Option<(Arc<str>, u32)>,
    buf: Vec<u8>,
}

/// Where a record came from, for error messages: its offset, or, for records that carry none
/// (rows inside a transaction or a snapshot page), the position fields of its `source` block.
fn position_of(record: &SourceRecord) -> String {
    if let Some(o) = &record.offset {
        return o.value.to_string();
    }
    let Payload::Change(e) = &record.payload else {
        return "no offset".to_owned();
    };
    let s = &e.source;
    let mut m = serde_json::Map::new();
    m.insert("db".into(), serde_json::Value::from(&*s.db));
    if let Some(schema) = &s.schema {
        m.insert("schema".into(), serde_json::Value::from(&**schema));
    }
    if let Some(table) = &s.table {
        m.insert("table".into(), serde_json::Value::from(&**table));
    }
    m.insert(
        "snapshot".into(),
        serde_json::Value::from(s.snapshot.as_str()),
    );
    for (name, value) in &s.extra {
        match value {
            Value::Text(t) => m.insert((*name).into(), serde_json::Value::from(t.as_str())),
            Value::Int(i) => m.insert((*name).into(), serde_json::Value::from(*i)),
            _ => None,
        };
    }
    serde_json::Value::Object(m).to_string()
}

#[cfg(test)]
mod tests {
    //! Source-side transforms through the real runner: dropped and skipped records still
    //! let their offsets commit; with `errors.tolerance=none` a bad record fails the task
    //! naming its position.

    use std::time::Duration;

    use async_trait::async_trait;

    use super::*;
    use crate::config::RawConfig;
    use crate::log::{EmbeddedLog, LogConfig, ReadCursor};
    use crate::model::{
        ChangeEvent, Column, DataType, Op, Row, SnapshotMarker, SourceInfo, TableId, TableSchema,
        Value,
    };
    use crate::offsets::FileOffsetStore;
    use crate::record::{OffsetOrder, Payload, SourceOffset, SourcePartition};
    use crate::storage::EmbeddedStore;

    /// Emits one batch of four inserts (ids 1..=4, offsets seq 1..=4), then idles.
    struct OneBatch {
        topic: String,
    }

    struct OneBatchTask {
        batch: Option<Vec<SourceRecord>>,
    }

    fn batch(topic: &str) -> Vec<SourceRecord> {
        let table = Arc::new(TableSchema {
            id: TableId::new("shop", "orders"),
            version: 1,
            columns: vec![
                Column::new("id", DataType::Int32, "int").not_null(),
                Column::new("day", DataType::Text, "text"),
            ],
            key: vec![0],
        });
        (1..=4i64)
            .map(|id| SourceRecord {
                topic: Arc::from(topic),
                payload: Payload::Change(Box::new(ChangeEvent {
                    op: Op::Create,
                    table: table.clone(),
                    before: None,
                    after: Some(Row(vec![
                        Value::Int(id),
                        Value::Text(if id == 3 {
                            "garbage".into()
                        } else {
                            format!("2024-01-0{id}")
                        }),
                    ])),
                    source: SourceInfo {
                        connector: "mysql",
                        name: Arc::from("srv"),
                        ts_ms: 1,
                        snapshot: SnapshotMarker::False,
                        db: Arc::from("shop"),
                        schema: None,
                        table: Some(Arc::from("orders")),
                        extra: Vec::new(),
                    },
                    transaction: None,
                    processed_ts_ms: 2,
                    headers: Vec::new(),
                })),
                partition: SourcePartition::from_json(&serde_json::json!({"server": "srv"})),
                offset: Some(SourceOffset {
                    value: serde_json::json!({"seq": id}),
                    order: OffsetOrder([id as u64, 0, 0]),
                }),
            })
            .collect()
    }

    #[test]
    fn a_record_without_an_offset_is_named_by_its_source_block() {
        let mut record = batch("t").remove(0);
        assert_eq!(position_of(&record), r#"{"seq":1}"#);
        record.offset = None;
        if let Payload::Change(e) = &mut record.payload {
            e.source.extra = vec![
                ("file", Value::Text("mysql-bin.000003".into())),
                ("pos", Value::Int(154)),
                ("gtid", Value::Null),
            ];
        }
        assert_eq!(
            position_of(&record),
            r#"{"db":"shop","table":"orders","snapshot":"false","file":"mysql-bin.000003","pos":154}"#
        );
    }

    #[async_trait]
    impl SourceConnector for OneBatch {
        async fn open_task(
            &self,
            _: SourceTaskContext,
        ) -> Result<Box<dyn SourceTask>, ConnectorError> {
            Ok(Box::new(OneBatchTask {
                batch: Some(batch(&self.topic)),
            }))
        }
    }

    #[async_trait]
    impl SourceTask for OneBatchTask {
        async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectorError> {
            match self.batch.take() {
                Some(b) => Ok(b),
                None => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    Ok(Vec::new())
                }
            }
        }
    }

    struct Setup {
        _dir: tempfile::TempDir,
        store: Arc<EmbeddedStore>,
        offsets: Arc<FileOffsetStore>,
        run: SourceRun,
    }

    /// unwrap, drop id 2, parse `day` (id 3 cannot be parsed), route to `<name>-out`.
    fn setup(name: &str, tolerate: bool) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::new(
            EmbeddedLog::open(&dir.path().join("log"), LogConfig::default()).expect("log"),
        );
        let offsets = FileOffsetStore::open(&dir.path().join("offsets")).expect("offsets");
        let raw: RawConfig = [
            ("transforms", "unwrap,drop2,day,route"),
            (
                "transforms.unwrap.type",
                "io.debezium.transforms.ExtractNewRecordState",
            ),
            (
                "transforms.drop2.type",
                "io.tributary.transforms.ContentFilter",
            ),
            ("transforms.drop2.condition", "value.id == 2"),
            ("transforms.drop2.action", "drop"),
            (
                "transforms.day.type",
                "org.apache.kafka.connect.transforms.TimestampConverter$Value",
            ),
            ("transforms.day.field", "day"),
            ("transforms.day.format", "yyyy-MM-dd"),
            ("transforms.day.target.type", "Date"),
            (
                "transforms.route.type",
                "org.apache.kafka.connect.transforms.RegexRouter",
            ),
            ("transforms.route.regex", ".*"),
            ("transforms.route.replacement", &format!("{name}-out")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let converters = RawConfig::new();
        let run = SourceRun {
            connector_name: Arc::from(name),
            task_id: 0,
            connector: Arc::new(OneBatch {
                topic: format!("{name}.shop.orders"),
            }),
            encoder: RecordEncoder::from_config(&converters, Default::default()).expect("encoder"),
            store: store.clone(),
            offsets: offsets.clone(),
            progress: ProgressHandle::new(),
            commit_interval: Duration::ZERO,
            transforms: TransformChain::from_config(&raw).expect("chain"),
            data_encoder: Some(Arc::new(DataEncoder::from_config(&converters))),
            errors: ErrorPolicy {
                tolerate,
                ..ErrorPolicy::default()
            },
        };
        Setup {
            _dir: dir,
            store,
            offsets,
            run,
        }
    }

    fn values(store: &EmbeddedStore, topic: &str) -> Vec<serde_json::Value> {
        let Ok(p) = store.log().partition(topic, 0) else {
            return Vec::new();
        };
        let (records, _) = p.read(ReadCursor::at(0), 100, 1 << 20).expect("read");
        records
            .into_iter()
            .filter_map(|(_, r)| serde_json::from_slice(r.value.as_deref()?).ok())
            .collect()
    }

    #[tokio::test]
    async fn dropped_and_skipped_records_still_commit_their_offsets() {
        let s = setup("src-transforms-all", true);
        let (control, mut rx) = watch::channel(TargetState::Running);
        let run = s.run;
        let handle = tokio::spawn(async move { run.run(&mut rx).await });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let committed = s.offsets.load("src-transforms-all").await.expect("offsets");
            if committed
                .first()
                .is_some_and(|o| o.offset.order == OffsetOrder([4, 0, 0]))
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "offset 4 never committed: {committed:?}"
            );
            assert!(!handle.is_finished(), "the source task stopped early");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        control.send(TargetState::Stopped).expect("control");
        handle.await.expect("join").expect("the task does not fail");
        let out = values(&s.store, "src-transforms-all-out");
        // id 2 dropped by the filter, id 3 skipped (its day cannot be parsed); days are Dates.
        assert_eq!(
            out,
            [
                serde_json::json!({"id": 1, "day": 19723}),
                serde_json::json!({"id": 4, "day": 19726})
            ]
        );
        assert!(
            s.store
                .log()
                .topic("src-transforms-all.shop.orders")
                .is_none()
        );
        let counters = crate::dead_letter::counters("src-transforms-all", 0);
        assert_eq!(counters.skipped.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn tolerance_none_fails_naming_the_source_position() {
        let s = setup("src-transforms-none", false);
        let (_control, mut rx) = watch::channel(TargetState::Running);
        let err = tokio::time::timeout(Duration::from_secs(30), s.run.run(&mut rx))
            .await
            .expect("fails promptly")
            .expect_err("the task fails");
        assert!(err.message.contains("{\"seq\":3}"), "{}", err.message);
        assert!(err.message.contains("TRANSFORMATION"), "{}", err.message);
        assert!(err.message.contains("transform day"), "{}", err.message);
        // Nothing past the failing record is committed.
        let committed = s
            .offsets
            .load("src-transforms-none")
            .await
            .expect("offsets");
        assert!(
            committed
                .iter()
                .all(|o| o.offset.order < OffsetOrder([3, 0, 0])),
            "{committed:?}"
        );
    }
}
