//! Progress a person can see, and the counters behind `/metrics`: tasks update them from the
//! hot path (atomics, fixed-bucket histograms), the worker reports them in its log, status and
//! Prometheus text (snapshot rows done/total, rate, ETA, lag, latency).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use crate::error::{ConnectorError, ErrorKind};
use crate::record::{ConsumerOffsets, SinkRecord, TopicPartition};

/// Upper bounds (seconds) of the latency histogram buckets; `+Inf` is implied.
pub const LATENCY_BUCKETS: [f64; 18] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
    120.0, 300.0,
];

/// A latency histogram with fixed buckets ([`LATENCY_BUCKETS`]): one atomic add per bucket hit.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket, not cumulative; the last slot is `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// A point-in-time copy of a [`Histogram`], cumulative as Prometheus wants it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound, observations <= bound)`, ending with `(f64::INFINITY, count)`.
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_secs: f64,
}

impl Histogram {
    /// Records `n` observations of `secs` (negative values, from clock skew, count as 0).
    pub fn observe_n(&self, secs: f64, n: u64) {
        if n == 0 {
            return;
        }
        let secs = secs.max(0.0);
        let slot = LATENCY_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[slot].fetch_add(n, Ordering::Relaxed);
        self.count.fetch_add(n, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((secs * 1e6).round() as u64 * n, Ordering::Relaxed);
    }

    /// Records one observation.
    pub fn observe(&self, secs: f64) {
        self.observe_n(secs, 1);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(LATENCY_BUCKETS.len() + 1);
        for (i, bound) in LATENCY_BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .enumerate()
        {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            buckets.push((bound, cumulative));
        }
        HistogramSnapshot {
            buckets,
            count: cumulative,
            sum_secs: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// Shared progress counters of one task. Cheap to clone and update from the hot path.
#[derive(Debug, Clone)]
pub struct ProgressHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    started: Instant,
    /// Records and bytes taken in (polled by a source, consumed by a sink).
    records: AtomicU64,
    bytes: AtomicU64,
    /// Records and bytes made durable (in the topic log for a source, in the target for a sink).
    records_durable: AtomicU64,
    bytes_durable: AtomicU64,
    /// Produce calls (source) or polled batches (sink).
    batches: AtomicU64,
    errors: AtomicU64,
    retries: AtomicU64,
    /// Snapshot rows done and the estimated total (0 = no snapshot running).
    snapshot_done: AtomicU64,
    snapshot_total: AtomicU64,
    /// When the last record was handled, how far (ms) its source commit time lay behind
    /// (Debezium's `MilliSecondsBehindSource`); `i64::MIN` = nothing handled yet.
    lag_ms: AtomicI64,
    /// Bytes the source is behind its server (Postgres slot lag, MySQL binlog bytes behind);
    /// -1 = not reported.
    lag_bytes: AtomicI64,
    /// Source commit time -> durable in the topic log.
    e2e_log: Histogram,
    /// Source commit time -> durable in the sink's target.
    e2e_sink: Histogram,
    /// Produce call -> durable acknowledgement of the log or Kafka.
    produce: Histogram,
    /// Sink batches consumed but not yet durable in the target.
    sink_pending: Mutex<SinkPending>,
    phase: Mutex<String>,
}

#[derive(Debug, Default)]
struct SinkPending {
    /// Highest next-offset the sink reported durable, per partition.
    durable: HashMap<TopicPartition, u64>,
    batches: VecDeque<PendingBatch>,
}

#[derive(Debug)]
struct PendingBatch {
    /// Next offset after the batch's last record, per partition.
    ends: Vec<(TopicPartition, u64)>,
    records: u64,
    bytes: u64,
    /// Record timestamps (source commit times), run-length encoded.
    timestamps: Vec<(i64, u64)>,
}

/// A point-in-time copy for status and logs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProgressSnapshot {
    pub phase: String,
    pub records: u64,
    pub bytes: u64,
    pub records_per_sec: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotProgress>,
    /// How far behind the source the last record handled was, when it was handled (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_ms: Option<i64>,
    /// Counters and histograms for `/metrics` (not part of the REST progress body).
    #[serde(skip)]
    pub metrics: TaskMetrics,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SnapshotProgress {
    pub rows_done: u64,
    pub rows_estimated: u64,
    pub percent: f64,
    pub eta_secs: Option<u64>,
}

/// Everything `/metrics` reports for one task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskMetrics {
    pub records_durable: u64,
    pub bytes_durable: u64,
    pub batches: u64,
    pub errors: u64,
    pub retries: u64,
    pub lag_bytes: Option<u64>,
    pub e2e_log: HistogramSnapshot,
    pub e2e_sink: HistogramSnapshot,
    pub produce: HistogramSnapshot,
}

impl Default for ProgressHandle {
    fn default() -> Self {
        Self::new()
    }
}

impl ProgressHandle {
    pub fn new() -> Self {
        ProgressHandle {
            inner: Arc::new(Inner {
                started: Instant::now(),
                records: AtomicU64::new(0),
                bytes: AtomicU64::new(0),
                records_durable: AtomicU64::new(0),
                bytes_durable: AtomicU64::new(0),
                batches: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                retries: AtomicU64::new(0),
                snapshot_done: AtomicU64::new(0),
                snapshot_total: AtomicU64::new(0),
                lag_ms: AtomicI64::new(i64::MIN),
                lag_bytes: AtomicI64::new(-1),
                e2e_log: Histogram::default(),
                e2e_sink: Histogram::default(),
                produce: Histogram::default(),
                sink_pending: Mutex::new(SinkPending::default()),
                phase: Mutex::new("starting".into()),
            }),
        }
    }

    /// Counts records and bytes taken in (polled by a source, consumed by a sink).
    pub fn add(&self, records: u64, bytes: u64) {
        self.inner.records.fetch_add(records, Ordering::Relaxed);
        self.inner.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn set_phase(&self, phase: &str) {
        if let Ok(mut p) = self.inner.phase.lock() {
            phase.clone_into(&mut p);
        }
    }

    pub fn set_snapshot(&self, done: u64, total: u64) {
        self.inner.snapshot_done.store(done, Ordering::Relaxed);
        self.inner.snapshot_total.store(total, Ordering::Relaxed);
    }

    /// Notes the source commit time of the record just handled: the lag is how far it lies
    /// behind now. Measured when records flow, so an idle source does not look behind.
    pub fn set_source_ts(&self, ts_ms: i64) {
        let lag = (crate::converter::now_ms() - ts_ms).max(0);
        self.inner.lag_ms.store(lag, Ordering::Relaxed);
    }

    /// How many bytes the source is behind its server: for Postgres the slot lag (server WAL
    /// end minus the LSN confirmed to the slot), for MySQL the binlog bytes not yet read.
    pub fn set_lag_bytes(&self, bytes: u64) {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        self.inner.lag_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Counts a task failure; a transient one is also a retry (the supervisor restarts it).
    pub fn record_error(&self, error: &ConnectorError) {
        self.inner.errors.fetch_add(1, Ordering::Relaxed);
        if error.kind == ErrorKind::Transient {
            self.inner.retries.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Wraps a produce future: when the log (or Kafka) acknowledges the batch as durable,
    /// counts it, and records the produce latency and, from `source_ts_ms` (the newest source
    /// commit time in the batch), the end-to-end latency to the log.
    pub fn durable_in_log<F>(
        &self,
        delivery: F,
        records: u64,
        bytes: u64,
        source_ts_ms: Option<i64>,
    ) -> impl Future<Output = Result<(), ConnectorError>> + Send + 'static
    where
        F: Future<Output = Result<(), ConnectorError>> + Send + 'static,
    {
        let inner = self.inner.clone();
        let started = Instant::now();
        inner.batches.fetch_add(1, Ordering::Relaxed);
        async move {
            let result = delivery.await;
            if result.is_ok() {
                inner.produce.observe(started.elapsed().as_secs_f64());
                inner.records_durable.fetch_add(records, Ordering::Relaxed);
                inner.bytes_durable.fetch_add(bytes, Ordering::Relaxed);
                if let Some(ts) = source_ts_ms {
                    let secs = (crate::converter::now_ms() - ts) as f64 / 1000.0;
                    inner.e2e_log.observe_n(secs, records);
                }
            }
            result
        }
    }

    /// Notes a batch a sink task consumed; it counts as durable once
    /// [`ProgressHandle::durable_in_sink`] covers every partition it touched.
    pub fn consumed_batch(&self, records: &[SinkRecord]) {
        if records.is_empty() {
            return;
        }
        self.inner.batches.fetch_add(1, Ordering::Relaxed);
        let mut ends: Vec<(TopicPartition, u64)> = Vec::new();
        let mut timestamps: Vec<(i64, u64)> = Vec::new();
        let mut bytes = 0u64;
        for r in records {
            bytes += r.record.size() as u64;
            match ends
                .iter_mut()
                .find(|(tp, _)| tp.partition == r.partition && tp.topic == r.topic)
            {
                Some((_, end)) => *end = (*end).max(r.offset + 1),
                None => ends.push((
                    TopicPartition::new(r.topic.clone(), r.partition),
                    r.offset + 1,
                )),
            }
            match timestamps.last_mut() {
                Some((ts, n)) if *ts == r.record.timestamp_ms => *n += 1,
                _ => timestamps.push((r.record.timestamp_ms, 1)),
            }
        }
        // Lag of a sink: behind the source commit time of the newest record it consumed.
        if let Some(newest) = records.iter().map(|r| r.record.timestamp_ms).max() {
            self.set_source_ts(newest);
        }
        if let Ok(mut pending) = self.inner.sink_pending.lock() {
            pending.batches.push_back(PendingBatch {
                ends,
                records: records.len() as u64,
                bytes,
                timestamps,
            });
        }
    }

    /// The sink committed `durable` (next offsets, durable in its target): batches now fully
    /// covered count as durable, with their end-to-end latency from the source commit time.
    pub fn durable_in_sink(&self, durable: &ConsumerOffsets) {
        let Ok(mut pending) = self.inner.sink_pending.lock() else {
            return;
        };
        for (tp, offset) in durable {
            let entry = pending.durable.entry(tp.clone()).or_insert(0);
            *entry = (*entry).max(*offset);
        }
        let now = crate::converter::now_ms();
        let SinkPending { durable, batches } = &mut *pending;
        batches.retain(|batch| {
            let done = batch
                .ends
                .iter()
                .all(|(tp, end)| durable.get(tp).is_some_and(|d| d >= end));
            if done {
                self.inner
                    .records_durable
                    .fetch_add(batch.records, Ordering::Relaxed);
                self.inner
                    .bytes_durable
                    .fetch_add(batch.bytes, Ordering::Relaxed);
                for &(ts, n) in &batch.timestamps {
                    self.inner.e2e_sink.observe_n((now - ts) as f64 / 1000.0, n);
                }
            }
            !done
        });
    }

    /// Counters and histograms for `/metrics`.
    pub fn metrics(&self) -> TaskMetrics {
        let i = &self.inner;
        let lag_bytes = i.lag_bytes.load(Ordering::Relaxed);
        TaskMetrics {
            records_durable: i.records_durable.load(Ordering::Relaxed),
            bytes_durable: i.bytes_durable.load(Ordering::Relaxed),
            batches: i.batches.load(Ordering::Relaxed),
            errors: i.errors.load(Ordering::Relaxed),
            retries: i.retries.load(Ordering::Relaxed),
            lag_bytes: u64::try_from(lag_bytes).ok(),
            e2e_log: i.e2e_log.snapshot(),
            e2e_sink: i.e2e_sink.snapshot(),
            produce: i.produce.snapshot(),
        }
    }

    pub fn snapshot(&self) -> ProgressSnapshot {
        let elapsed = self.inner.started.elapsed().as_secs_f64().max(1e-3);
        let records = self.inner.records.load(Ordering::Relaxed);
        let rate = records as f64 / elapsed;
        let done = self.inner.snapshot_done.load(Ordering::Relaxed);
        let total = self.inner.snapshot_total.load(Ordering::Relaxed);
        let snapshot = (total > 0 || done > 0).then(|| {
            let total = total.max(done);
            let snap_rate = done as f64 / elapsed;
            SnapshotProgress {
                rows_done: done,
                rows_estimated: total,
                percent: if total == 0 {
                    100.0
                } else {
                    done as f64 * 100.0 / total as f64
                },
                eta_secs: (snap_rate > 0.0).then(|| ((total - done) as f64 / snap_rate) as u64),
            }
        });
        let lag = self.inner.lag_ms.load(Ordering::Relaxed);
        ProgressSnapshot {
            phase: self
                .inner
                .phase
                .lock()
                .map(|p| p.clone())
                .unwrap_or_default(),
            records,
            bytes: self.inner.bytes.load(Ordering::Relaxed),
            records_per_sec: (rate * 10.0).round() / 10.0,
            snapshot,
            lag_ms: (lag != i64::MIN).then_some(lag),
            metrics: self.metrics(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::TopicRecord;

    fn record(topic: &str, partition: u32, offset: u64, ts: i64) -> SinkRecord {
        SinkRecord {
            topic: Arc::from(topic),
            partition,
            offset,
            record: TopicRecord {
                key: None,
                value: Some(bytes::Bytes::from_static(b"0123")),
                headers: Vec::new(),
                timestamp_ms: ts,
            },
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(0.0005);
        h.observe_n(0.3, 2);
        h.observe(1000.0);
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets[0], (0.001, 1));
        let at = |bound: f64| s.buckets.iter().find(|(b, _)| *b == bound).map(|(_, n)| *n);
        assert_eq!(at(0.25), Some(1));
        assert_eq!(at(0.5), Some(3));
        assert_eq!(at(300.0), Some(3));
        assert_eq!(s.buckets.last(), Some(&(f64::INFINITY, 4)));
        assert!((s.sum_secs - 1000.6005).abs() < 1e-3, "{}", s.sum_secs);
    }

    #[tokio::test]
    async fn log_delivery_counts_only_when_durable() {
        let p = ProgressHandle::new();
        let ok = p.durable_in_log(async { Ok(()) }, 3, 30, Some(crate::converter::now_ms()));
        let failed = p.durable_in_log(
            async { Err(ConnectorError::transient("disk full")) },
            5,
            50,
            None,
        );
        assert_eq!(
            p.metrics().records_durable,
            0,
            "nothing durable before the ack"
        );
        ok.await.expect("ok");
        assert!(failed.await.is_err());
        let m = p.metrics();
        assert_eq!((m.records_durable, m.bytes_durable, m.batches), (3, 30, 2));
        assert_eq!(m.produce.count, 1);
        assert_eq!(m.e2e_log.count, 3);
    }

    #[test]
    fn sink_batches_are_durable_only_when_every_partition_is_committed() {
        let p = ProgressHandle::new();
        let now = crate::converter::now_ms();
        p.consumed_batch(&[record("t", 0, 10, now), record("t", 1, 4, now)]);
        p.consumed_batch(&[record("t", 0, 11, now)]);
        let mut offsets = ConsumerOffsets::new();
        offsets.insert(TopicPartition::new("t", 0), 12);
        p.durable_in_sink(&offsets);
        assert_eq!(p.metrics().records_durable, 1, "second batch only");
        offsets.clear();
        offsets.insert(TopicPartition::new("t", 1), 5);
        p.durable_in_sink(&offsets);
        let m = p.metrics();
        assert_eq!(m.records_durable, 3);
        assert_eq!(m.e2e_sink.count, 3);
        assert_eq!(m.batches, 2);
    }

    #[test]
    fn errors_and_retries() {
        let p = ProgressHandle::new();
        p.record_error(&ConnectorError::transient("connection reset"));
        p.record_error(&ConnectorError::definite("table dropped"));
        let m = p.metrics();
        assert_eq!((m.errors, m.retries), (2, 1));
        assert_eq!(m.lag_bytes, None);
        p.set_lag_bytes(4096);
        assert_eq!(p.metrics().lag_bytes, Some(4096));
    }
}
