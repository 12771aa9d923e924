//! Progress a person can see: counters that tasks update and the worker reports in its log
//! and status (snapshot rows done/total, rate, ETA).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

/// Shared progress counters of one task. Cheap to clone and update from the hot path.
#[derive(Debug, Clone)]
pub struct ProgressHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    started: Instant,
    records: AtomicU64,
    bytes: AtomicU64,
    /// Snapshot rows done and the estimated total (0 = no snapshot running).
    snapshot_done: AtomicU64,
    snapshot_total: AtomicU64,
    /// Source time of the last record handled (ms since the epoch), for lag.
    last_source_ts_ms: AtomicI64,
    phase: std::sync::Mutex<String>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SnapshotProgress {
    pub rows_done: u64,
    pub rows_estimated: u64,
    pub percent: f64,
    pub eta_secs: Option<u64>,
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
                snapshot_done: AtomicU64::new(0),
                snapshot_total: AtomicU64::new(0),
                last_source_ts_ms: AtomicI64::new(0),
                phase: std::sync::Mutex::new("starting".into()),
            }),
        }
    }

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

    pub fn set_source_ts(&self, ts_ms: i64) {
        self.inner.last_source_ts_ms.store(ts_ms, Ordering::Relaxed);
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
        let last = self.inner.last_source_ts_ms.load(Ordering::Relaxed);
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
            lag_ms: (last > 0).then(|| crate::converter::now_ms() - last),
        }
    }
}
