//! The streaming phase on its own tokio task, so reading and decoding the binlog overlap with
//! the runtime's encoding and appending (two cores busy instead of one).
//!
//! ```text
//!   replica connection ─► BinlogReader (decode) ─► batch ─► bounded channel ─► poll()
//!        [pump task: reads, decodes, heartbeats, lag]         (PUMP_DEPTH)     [runtime task]
//! ```
//!
//! The pump yields after each batch it sends: the send wakes the runtime's task into this
//! worker's (unstealable) LIFO slot, and without the yield the two tasks took turns on one
//! worker while the other idled.
//!
//! Order is unchanged: batches travel through one FIFO channel, and every record keeps the
//! offset the reader gave it, so the runtime's commit-order invariant is untouched. The
//! channel is bounded, so a slow log applies backpressure to the replica connection (the
//! server's send buffer fills; no unbounded memory here). A pump error is sent as the last
//! item and fails the task through `poll`, exactly as an inline error did.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::BinlogStream;
use mysql_async::prelude::Queryable as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tributary_runtime::progress::ProgressHandle;
use tributary_runtime::record::{Payload, SourcePartition, SourceRecord};

use crate::binlog::BinlogReader;
use crate::config::MySqlConfig;
use crate::error::MySqlError;
use crate::tls::ServerOpts;

/// How long a streaming batch may wait for more records once it holds one.
const STREAM_LINGER: Duration = Duration::from_millis(10);
/// How long a batch waits at most, even for its first record (keeps heartbeats on time).
const BATCH_MAX_WAIT: Duration = Duration::from_millis(500);
/// How long `poll` waits for a batch before returning an empty one, so the runtime gets to
/// look at pause/stop requests on an idle server.
const POLL_WAIT: Duration = Duration::from_millis(500);
/// Batches waiting in the channel, beside the one being read and the one the runtime is
/// encoding. One keeps both sides busy; more only held decoded events in memory (peak RSS of
/// the 500k catch-up: 118 MB with 2 x 4096, 85 MB with 1 x 1024, same throughput).
const PUMP_DEPTH: usize = 1;
/// Most records in one batch.
const BATCH_RECORDS: usize = 1024;

/// Everything the pump task owns.
pub(crate) struct Streamer {
    pub stream: BinlogStream,
    pub reader: BinlogReader,
    pub cfg: Arc<MySqlConfig>,
    pub server: ServerOpts,
    pub partition: SourcePartition,
    pub progress: ProgressHandle,
}

/// The running pump: its channel and its task (aborted when dropped).
pub(crate) struct StreamPump {
    rx: mpsc::Receiver<Result<Vec<SourceRecord>, MySqlError>>,
    task: Option<JoinHandle<Streamer>>,
    failed: bool,
}

impl StreamPump {
    pub fn spawn(streamer: Streamer) -> StreamPump {
        let (tx, rx) = mpsc::channel(PUMP_DEPTH);
        let task = tokio::spawn(streamer.run(tx));
        StreamPump {
            rx,
            task: Some(task),
            failed: false,
        }
    }

    /// The next batch, or an empty one when none arrived within [`POLL_WAIT`].
    pub async fn next(&mut self) -> Result<Vec<SourceRecord>, MySqlError> {
        if self.failed {
            // The error was already returned; the task restarts from the committed offset.
            tokio::time::sleep(POLL_WAIT).await;
            return Ok(Vec::new());
        }
        match tokio::time::timeout(POLL_WAIT, self.rx.recv()).await {
            Err(_) => Ok(Vec::new()),
            Ok(Some(Ok(batch))) => Ok(batch),
            Ok(Some(Err(e))) => {
                self.failed = true;
                Err(e)
            }
            Ok(None) => {
                self.failed = true;
                Err(MySqlError::Unsupported(
                    "the binlog reader task ended unexpectedly".into(),
                ))
            }
        }
    }

    /// Stops the pump and closes the replica connection politely (bounded in time).
    pub async fn close(mut self) {
        // A closed channel makes the pump stop after its current batch (at most
        // BATCH_MAX_WAIT) and hand its stream back; one that does not is aborted.
        self.rx.close();
        if let Some(mut task) = self.task.take() {
            match tokio::time::timeout(BATCH_MAX_WAIT * 3, &mut task).await {
                Ok(Ok(streamer)) => {
                    let _ =
                        tokio::time::timeout(Duration::from_secs(2), streamer.stream.close()).await;
                }
                _ => task.abort(),
            }
        }
    }
}

impl Drop for StreamPump {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Streamer {
    async fn run(mut self, tx: mpsc::Sender<Result<Vec<SourceRecord>, MySqlError>>) -> Streamer {
        let mut state = PumpState {
            last_heartbeat: Instant::now(),
            last_heartbeat_offset: None,
            last_lag_check: Instant::now(),
        };
        loop {
            let result = self.batch(&mut state).await;
            let failed = result.is_err();
            if matches!(&result, Ok(batch) if batch.is_empty()) {
                if tx.is_closed() {
                    break;
                }
                continue;
            }
            if tx.send(result).await.is_err() || failed {
                break;
            }
            // Sending woke the runtime's task into this worker's LIFO slot, which no other
            // worker may steal: decoding on here would run the two in turns on one core.
            // Yielding puts this task in the stealable queue, so the idle worker takes it.
            tokio::task::yield_now().await;
        }
        self
    }

    /// Reads one batch: up to [`BATCH_RECORDS`], handed over [`STREAM_LINGER`] after its
    /// first record (like Kafka's `linger.ms`) so a steady stream of small transactions is
    /// not held back waiting for the server to pause, and at most [`BATCH_MAX_WAIT`] after
    /// it started.
    async fn batch(&mut self, st: &mut PumpState) -> Result<Vec<SourceRecord>, MySqlError> {
        // Room for a full batch plus the rows event that crosses the limit, so the vector
        // is not regrown (and its pages faulted in again) for every batch.
        let mut out = Vec::with_capacity(BATCH_RECORDS + 64);
        let hard = tokio::time::Instant::now() + BATCH_MAX_WAIT;
        let mut first_at: Option<tokio::time::Instant> = None;
        loop {
            if out.len() >= BATCH_RECORDS {
                break;
            }
            if first_at.is_none() && !out.is_empty() {
                first_at = Some(tokio::time::Instant::now());
            }
            let deadline = match first_at {
                None => hard,
                Some(first) => hard.min(first + STREAM_LINGER),
            };
            if !self
                .reader
                .next(&mut self.stream, deadline, &mut out)
                .await?
            {
                break;
            }
        }
        if let Some(last) = out.iter().rev().find_map(|r| match &r.payload {
            Payload::Change(e) => Some(e.source.ts_ms),
            _ => None,
        }) {
            self.progress.set_source_ts(last);
        }
        if st.last_lag_check.elapsed() >= Duration::from_secs(5) {
            st.last_lag_check = Instant::now();
            self.report_binlog_lag().await;
        }
        tracing::trace!(connector = %self.cfg.name, records = out.len(), "stream batch");
        if out.iter().any(|r| r.offset.is_some()) {
            st.last_heartbeat = Instant::now();
        } else if self.cfg.heartbeat_ms > 0
            && st.last_heartbeat.elapsed() >= Duration::from_millis(self.cfg.heartbeat_ms)
            && !self.reader.in_transaction()
            && let Some(offset) = self.reader.boundary_offset()
            && st.last_heartbeat_offset.as_ref() != Some(&offset.value)
        {
            st.last_heartbeat = Instant::now();
            st.last_heartbeat_offset = Some(offset.value.clone());
            out.push(SourceRecord {
                topic: Arc::from(format!("__debezium-heartbeat.{}", self.cfg.prefix)),
                payload: Payload::Json {
                    key: Some(serde_json::json!({ "serverName": &*self.cfg.prefix })),
                    value: serde_json::json!({ "ts_ms": crate::now_ms() }),
                },
                partition: self.partition.clone(),
                offset: Some(offset),
            });
        }
        Ok(out)
    }

    /// Reports the binlog bytes the task is behind the server: from the last transaction
    /// boundary read to the end of the newest binlog file (`SHOW BINARY LOGS` sizes).
    /// Best effort: a failed measurement leaves the last value.
    async fn report_binlog_lag(&self) {
        let Some(at) = self.reader.boundary_offset() else {
            return;
        };
        let (Some(file), Some(pos)) = (at.value["file"].as_str(), at.value["pos"].as_u64()) else {
            return;
        };
        let Ok(mut conn) = self.server.connect().await else {
            return;
        };
        let logs: Result<Vec<mysql_async::Row>, _> = conn.query("SHOW BINARY LOGS").await;
        let _ = conn.disconnect().await;
        let Ok(logs) = logs else {
            return;
        };
        let mut behind = None;
        for mut row in logs {
            let (Some(name), Some(size)) = (row.take::<String, _>(0), row.take::<u64, _>(1)) else {
                continue;
            };
            // Binlog file names share a prefix and a fixed-width sequence number.
            match name.as_str().cmp(file) {
                std::cmp::Ordering::Equal => behind = Some(size.saturating_sub(pos)),
                std::cmp::Ordering::Greater => behind = behind.map(|b: u64| b + size),
                std::cmp::Ordering::Less => {}
            }
        }
        if let Some(bytes) = behind {
            self.progress.set_lag_bytes(bytes);
        }
    }
}

/// Heartbeat and lag bookkeeping of the pump.
struct PumpState {
    last_heartbeat: Instant,
    last_heartbeat_offset: Option<serde_json::Value>,
    last_lag_check: Instant,
}
