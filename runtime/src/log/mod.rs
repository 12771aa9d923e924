//! The embedded durable log: Kafka-shaped topics on local disk, so a single machine needs
//! nothing but the binary.
//!
//! ```text
//!  produce() ──► writer thread ──write──► active segment ─► syncer thread ──fsync──► publish
//!                 (group commit: drains every queued      (one group behind the    high watermark
//!                  request)                                writer; one fsync per    │
//!                                                          dirty partition)         └─► acks resolve,
//!                                                                                       readers wake
//! ```
//!
//! * Append returns only when the records are durable under the configured [`FsyncPolicy`]
//!   (`always`: fsync before the ack, with group commit). With `always` the fsync of one
//!   group runs on the syncer thread while the writer writes the next, so writes and fsyncs
//!   overlap; the high watermark moves only to the end captured before the fsync started.
//! * Readers never see past the high watermark, so nothing un-synced is ever served.
//! * On open, the active segment of each partition is scanned and a torn tail (short frame or
//!   CRC mismatch) is truncated; corruption inside a sealed segment refuses to open.
//! * Consumer groups keep committed offsets in `groups/<group>.json` (atomic replace).

mod partition;
mod segment;

use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};
use tracing::{error, info};

use crate::durable_file::{create_dir_durable, write_atomic};
use crate::error::ErrorKind;
use crate::record::{ConsumerOffsets, TopicPartition, TopicRecord};

use partition::SyncPoint;
pub use partition::{Partition, ReadCursor};

/// When appended records are forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum FsyncPolicy {
    /// fsync before acknowledging (group commit). No acknowledged record is ever lost.
    Always,
    /// Acknowledge after the write to the OS; fsync at most every `interval_ms`. A power
    /// loss (not a process crash) can lose the last interval.
    Interval { interval_ms: u64 },
    /// Never fsync explicitly (benchmarks, throwaway data).
    Never,
}

/// Settings of the embedded log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub fsync: FsyncPolicy,
    /// Roll to a new segment after this many bytes.
    pub segment_bytes: u64,
    /// Delete sealed segments whose newest record is older than this (ms); `None` keeps all.
    pub retention_ms: Option<i64>,
    /// Delete the oldest sealed segments while a partition is larger than this.
    pub retention_bytes: Option<u64>,
    /// Partitions of topics created on demand.
    pub default_partitions: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            fsync: FsyncPolicy::Always,
            segment_bytes: 128 * 1024 * 1024,
            retention_ms: Some(7 * 24 * 3600 * 1000),
            retention_bytes: None,
            default_partitions: 1,
        }
    }
}

/// Errors of the embedded log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("i/o error on {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "segment {path} is corrupt at byte {position}; move the partition aside or restore it from a replica"
    )]
    Corrupt { path: PathBuf, position: u64 },
    #[error(
        "offset {offset} of {topic}-{partition} was deleted by retention; the log starts at {log_start}"
    )]
    OffsetOutOfRange {
        topic: String,
        partition: u32,
        offset: u64,
        log_start: u64,
    },
    #[error("topic {0} does not exist")]
    UnknownTopic(String),
    #[error("topic {topic} has no partition {partition}")]
    UnknownPartition { topic: String, partition: u32 },
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopic { name: String, reason: &'static str },
    #[error(
        "{topic}-{partition} stopped accepting writes after an i/o failure; restart the worker to recover it"
    )]
    Poisoned { topic: String, partition: u32 },
    #[error("the data directory {0} is in use by another tributary process")]
    Locked(PathBuf),
    #[error("the log was opened read-only")]
    ReadOnly,
    #[error("the log is shut down")]
    Closed,
    #[error("internal error: {0}")]
    Internal(String),
}

impl LogError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        LogError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// How the runtime reacts to this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            LogError::Io { .. } | LogError::Closed => ErrorKind::Transient,
            LogError::InvalidTopic { .. } => ErrorKind::Config,
            _ => ErrorKind::Definite,
        }
    }
}

/// Checks a topic name with Kafka's rules (it also becomes a directory name).
pub fn validate_topic_name(name: &str) -> Result<(), LogError> {
    let invalid = |reason| LogError::InvalidTopic {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if name.len() > 249 {
        return Err(invalid("must be at most 249 characters"));
    }
    if name == "." || name == ".." {
        return Err(invalid("must not be '.' or '..'"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(invalid(
            "may contain only ASCII letters, digits, '.', '_' and '-'",
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TopicMeta {
    partitions: u32,
}

/// A topic: its partitions.
pub struct Topic {
    pub name: Arc<str>,
    pub partitions: Vec<Arc<Partition>>,
}

/// Records for one partition in an append request.
pub struct AppendEntry {
    pub topic: Arc<str>,
    pub partition: u32,
    pub records: Vec<TopicRecord>,
}

struct WriteRequest {
    entries: Vec<(Arc<Partition>, Vec<TopicRecord>)>,
    done: oneshot::Sender<Result<Vec<u64>, Arc<LogError>>>,
}

struct Shared {
    dir: PathBuf,
    config: LogConfig,
    topics: RwLock<BTreeMap<Arc<str>, Arc<Topic>>>,
    /// Bumped after every group commit; consumers wait on it.
    appended: watch::Sender<u64>,
    read_only: bool,
    group_lock: Mutex<()>,
}

/// Handle to the embedded log. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedLog {
    shared: Arc<Shared>,
    writer: Option<mpsc::Sender<WriteRequest>>,
    _lock: Option<Arc<File>>,
}

impl EmbeddedLog {
    /// Opens the log in `dir` for reading and writing, recovering every partition. Takes an
    /// exclusive lock on the directory: one writer process at a time.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Self, LogError> {
        Self::open_mode(dir, config, false)
    }

    /// Opens the log for reading only, while another process may be writing to it.
    pub fn open_read_only(dir: &Path) -> Result<Self, LogError> {
        Self::open_mode(dir, LogConfig::default(), true)
    }

    fn open_mode(dir: &Path, config: LogConfig, read_only: bool) -> Result<Self, LogError> {
        let topics_dir = dir.join("topics");
        let lock = if read_only {
            None
        } else {
            create_dir_durable(&topics_dir).map_err(|e| LogError::io(&topics_dir, e))?;
            create_dir_durable(&dir.join("groups")).map_err(|e| LogError::io(dir, e))?;
            let lock_path = dir.join("log.lock");
            let file = File::create(&lock_path).map_err(|e| LogError::io(&lock_path, e))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(LogError::Locked(dir.to_path_buf()));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(LogError::io(&lock_path, e)),
            }
            Some(Arc::new(file))
        };
        let mut topics = BTreeMap::new();
        if topics_dir.is_dir() {
            let entries =
                std::fs::read_dir(&topics_dir).map_err(|e| LogError::io(&topics_dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| LogError::io(&topics_dir, e))?;
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                let meta_path = entry.path().join("topic.json");
                let Ok(raw) = std::fs::read(&meta_path) else {
                    continue;
                };
                let meta: TopicMeta = serde_json::from_slice(&raw)
                    .map_err(|e| LogError::Internal(format!("{}: {e}", meta_path.display())))?;
                let topic = open_topic(&topics_dir, &name, meta.partitions, read_only)?;
                topics.insert(topic.name.clone(), Arc::new(topic));
            }
        }
        let (appended, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            config,
            topics: RwLock::new(topics),
            appended,
            read_only,
            group_lock: Mutex::new(()),
        });
        let writer = if read_only {
            None
        } else {
            let (tx, rx) = mpsc::channel();
            let thread_shared = shared.clone();
            std::thread::Builder::new()
                .name("log-writer".into())
                .spawn(move || writer_loop(thread_shared, rx))
                .map_err(|e| LogError::io(dir, e))?;
            Some(tx)
        };
        Ok(EmbeddedLog {
            shared,
            writer,
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.shared.config
    }

    /// Creates the topic with `partitions` partitions unless it exists. Returns it.
    pub fn ensure_topic(&self, name: &str, partitions: u32) -> Result<Arc<Topic>, LogError> {
        if let Some(topic) = self.topic(name) {
            return Ok(topic);
        }
        validate_topic_name(name)?;
        if self.shared.read_only {
            return Err(LogError::UnknownTopic(name.to_owned()));
        }
        let mut topics = self
            .shared
            .topics
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(topic) = topics.get(name) {
            return Ok(topic.clone());
        }
        let topics_dir = self.shared.dir.join("topics");
        let topic_dir = topics_dir.join(name);
        create_dir_durable(&topic_dir).map_err(|e| LogError::io(&topic_dir, e))?;
        let partitions = partitions.max(1);
        let topic = Arc::new(open_topic(&topics_dir, name, partitions, false)?);
        let meta = serde_json::to_vec(&TopicMeta { partitions })
            .map_err(|e| LogError::Internal(e.to_string()))?;
        // Written last: a topic without topic.json is ignored on open.
        write_atomic(&topic_dir.join("topic.json"), &meta)
            .map_err(|e| LogError::io(&topic_dir, e))?;
        info!(topic = name, partitions, "created topic");
        topics.insert(topic.name.clone(), topic.clone());
        Ok(topic)
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.shared
            .topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.shared
            .topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn partition(&self, topic: &str, partition: u32) -> Result<Arc<Partition>, LogError> {
        let t = self
            .topic(topic)
            .ok_or_else(|| LogError::UnknownTopic(topic.to_owned()))?;
        t.partitions
            .get(partition as usize)
            .cloned()
            .ok_or(LogError::UnknownPartition {
                topic: topic.to_owned(),
                partition,
            })
    }

    /// Appends records; the returned future resolves with each entry's first offset once the
    /// records are durable. The request is queued before this returns, so calls are ordered.
    pub fn append(
        &self,
        entries: Vec<AppendEntry>,
    ) -> impl Future<Output = Result<Vec<u64>, Arc<LogError>>> + Send + 'static {
        let (done, rx) = oneshot::channel();
        let queued = (|| {
            let writer = self.writer.as_ref().ok_or(LogError::ReadOnly)?;
            let mut resolved = Vec::with_capacity(entries.len());
            for entry in entries {
                resolved.push((
                    self.partition(&entry.topic, entry.partition)?,
                    entry.records,
                ));
            }
            writer
                .send(WriteRequest {
                    entries: resolved,
                    done,
                })
                .map_err(|_| LogError::Closed)
        })();
        async move {
            queued.map_err(Arc::new)?;
            rx.await.map_err(|_| Arc::new(LogError::Closed))?
        }
    }

    /// A receiver that changes after every group commit (for consumers waiting for data).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.appended.subscribe()
    }

    /// Committed offsets of a consumer group (next offset to read, per partition).
    pub fn group_offsets(&self, group: &str) -> Result<ConsumerOffsets, LogError> {
        let path = self.group_path(group)?;
        let raw = match std::fs::read(&path) {
            Ok(raw) => raw,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ConsumerOffsets::new()),
            Err(e) => return Err(LogError::io(&path, e)),
        };
        let stored: BTreeMap<String, BTreeMap<u32, u64>> = serde_json::from_slice(&raw)
            .map_err(|e| LogError::Internal(format!("{}: {e}", path.display())))?;
        Ok(stored
            .into_iter()
            .flat_map(|(topic, parts)| {
                let topic: Arc<str> = Arc::from(topic);
                parts
                    .into_iter()
                    .map(move |(p, o)| (TopicPartition::new(topic.clone(), p), o))
            })
            .collect())
    }

    /// Merges `offsets` into the group's committed offsets, durably.
    pub fn commit_group(&self, group: &str, offsets: &ConsumerOffsets) -> Result<(), LogError> {
        let _guard = self
            .shared
            .group_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut current = self.group_offsets(group)?;
        for (tp, offset) in offsets {
            current.insert(tp.clone(), *offset);
        }
        let mut stored: BTreeMap<&str, BTreeMap<u32, u64>> = BTreeMap::new();
        for (tp, offset) in &current {
            stored
                .entry(&tp.topic)
                .or_default()
                .insert(tp.partition, *offset);
        }
        let path = self.group_path(group)?;
        let data = serde_json::to_vec(&stored).map_err(|e| LogError::Internal(e.to_string()))?;
        write_atomic(&path, &data).map_err(|e| LogError::io(&path, e))
    }

    /// Names of the consumer groups with committed offsets.
    pub fn groups(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.shared.dir.join("groups")) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| {
                e.ok()?
                    .file_name()
                    .into_string()
                    .ok()?
                    .strip_suffix(".json")
                    .map(str::to_owned)
            })
            .collect();
        names.sort();
        names
    }

    fn group_path(&self, group: &str) -> Result<PathBuf, LogError> {
        // Group names become file names: same rules as topics.
        validate_topic_name(group)?;
        Ok(self.shared.dir.join("groups").join(format!("{group}.json")))
    }

    /// Applies retention to every partition now (it also runs periodically).
    pub fn enforce_retention(&self) {
        enforce_retention(&self.shared);
    }
}

fn open_topic(
    topics_dir: &Path,
    name: &str,
    partitions: u32,
    read_only: bool,
) -> Result<Topic, LogError> {
    let name: Arc<str> = Arc::from(name);
    let parts = (0..partitions)
        .map(|p| {
            Partition::open(
                name.clone(),
                p,
                &topics_dir.join(&*name).join(p.to_string()),
                read_only,
            )
            .map(Arc::new)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Topic {
        name,
        partitions: parts,
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn enforce_retention(shared: &Shared) {
    let topics: Vec<Arc<Topic>> = shared
        .topics
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .cloned()
        .collect();
    let now = now_ms();
    for topic in topics {
        for p in &topic.partitions {
            p.enforce_retention(
                shared.config.retention_ms,
                shared.config.retention_bytes,
                now,
            );
        }
    }
}

/// A written group of requests on its way to the syncer thread (`fsync: always`).
struct SyncJob {
    requests: Vec<WriteRequest>,
    results: Vec<Result<Vec<u64>, LogError>>,
    /// Where each partition the group wrote to ends.
    points: Vec<SyncPoint>,
}

/// The single writer: group commit of everything queued, then acknowledge (or hand the
/// group to the syncer).
fn writer_loop(shared: Arc<Shared>, rx: mpsc::Receiver<WriteRequest>) {
    const RETENTION_EVERY: Duration = Duration::from_secs(30);
    let mut buf = Vec::with_capacity(1 << 20);
    let mut last_retention = Instant::now();
    let mut last_sync = Instant::now();
    let mut unsynced: Vec<Arc<Partition>> = Vec::new();
    let tick = match shared.config.fsync {
        FsyncPolicy::Interval { interval_ms } => Duration::from_millis(interval_ms.max(1)),
        _ => RETENTION_EVERY,
    };
    // fsync=always: a group's fsync runs on the syncer thread while this thread writes the
    // next group, so appends and fsyncs overlap instead of taking turns. A record is still
    // acknowledged (and readable) only after an fsync that started after it was written.
    let mut syncer = match shared.config.fsync {
        FsyncPolicy::Always => {
            // One job waiting: the writer runs at most one group ahead of the fsyncs;
            // requests arriving meanwhile queue up and join the next (larger) group.
            let (tx, jobs) = mpsc::sync_channel::<SyncJob>(1);
            let syncer_shared = shared.clone();
            match std::thread::Builder::new()
                .name("log-syncer".into())
                .spawn(move || syncer_loop(&syncer_shared, jobs))
            {
                Ok(handle) => Some((tx, handle)),
                Err(e) => {
                    error!(error = %e, "cannot start the log syncer thread; fsyncing on the writer thread");
                    None
                }
            }
        }
        _ => None,
    };
    loop {
        let first = match rx.recv_timeout(tick) {
            Ok(req) => Some(req),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut requests: Vec<WriteRequest> = first.into_iter().collect();
        while requests.len() < 4096 {
            match rx.try_recv() {
                Ok(req) => requests.push(req),
                Err(_) => break,
            }
        }
        // Write every request; remember which partitions each one touched.
        let mut results: Vec<Result<Vec<u64>, LogError>> = Vec::with_capacity(requests.len());
        let mut dirty: Vec<Arc<Partition>> = Vec::new();
        for req in &requests {
            let mut bases = Vec::with_capacity(req.entries.len());
            let mut failed = None;
            for (partition, records) in &req.entries {
                if records.is_empty() {
                    bases.push(partition.high_watermark());
                    continue;
                }
                match partition.write(records, &mut buf, shared.config.segment_bytes) {
                    Ok(base) => {
                        bases.push(base);
                        if !dirty.iter().any(|d| Arc::ptr_eq(d, partition)) {
                            dirty.push(partition.clone());
                        }
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            results.push(match failed {
                Some(e) => Err(e),
                None => Ok(bases),
            });
        }
        if let Some((tx, _)) = &syncer {
            // The records are written: free them now rather than after the fsync.
            for req in &mut requests {
                for (_, records) in &mut req.entries {
                    drop(std::mem::take(records));
                }
            }
            let job = SyncJob {
                points: dirty.iter().map(|p| p.sync_point()).collect(),
                requests,
                results,
            };
            if let Err(mpsc::SendError(job)) = tx.send(job) {
                // The syncer is gone (it can only have panicked): finish here from now on.
                error!("the log syncer thread stopped; fsyncing on the writer thread");
                complete_jobs(&shared, vec![job]);
                syncer = None;
            }
            if last_retention.elapsed() >= RETENTION_EVERY {
                enforce_retention(&shared);
                last_retention = Instant::now();
            }
            continue;
        }
        // Make them durable per the policy, then let readers see them.
        let sync_now = match shared.config.fsync {
            FsyncPolicy::Always => true,
            FsyncPolicy::Interval { interval_ms } => {
                last_sync.elapsed() >= Duration::from_millis(interval_ms)
            }
            FsyncPolicy::Never => false,
        };
        let mut sync_failures: Vec<(Arc<Partition>, Arc<LogError>)> = Vec::new();
        if sync_now {
            for p in dirty.iter().chain(unsynced.iter()) {
                if let Err(e) = p.sync() {
                    error!(topic = %p.topic, partition = p.id, error = %e, "fsync failed");
                    sync_failures.push((p.clone(), Arc::new(e)));
                }
            }
            unsynced.clear();
            last_sync = Instant::now();
        } else if matches!(shared.config.fsync, FsyncPolicy::Interval { .. }) {
            for p in &dirty {
                if !unsynced.iter().any(|u| Arc::ptr_eq(u, p)) {
                    unsynced.push(p.clone());
                }
            }
        }
        for p in &dirty {
            if !sync_failures.iter().any(|(f, _)| Arc::ptr_eq(f, p)) {
                p.publish();
            }
        }
        if !dirty.is_empty() {
            shared.appended.send_modify(|g| *g = g.wrapping_add(1));
        }
        answer(requests, results, &sync_failures);
        if last_retention.elapsed() >= RETENTION_EVERY {
            enforce_retention(&shared);
            last_retention = Instant::now();
        }
    }
    // Shutting down: the syncer finishes the groups handed to it, then stops.
    if let Some((tx, handle)) = syncer {
        drop(tx);
        if handle.join().is_err() {
            error!("the log syncer thread panicked");
        }
    }
    // Make the interval policy's pending writes durable too.
    for p in unsynced {
        if let Err(e) = p.sync() {
            error!(topic = %p.topic, partition = p.id, error = %e, "fsync at shutdown failed");
        }
    }
}

/// The syncer thread: fsyncs the groups the writer hands over, in order, then publishes
/// them and answers their requests. Groups that queued up while it was syncing share one
/// fsync per partition.
fn syncer_loop(shared: &Shared, jobs: mpsc::Receiver<SyncJob>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while let Ok(next) = jobs.try_recv() {
            batch.push(next);
        }
        complete_jobs(shared, batch);
    }
}

/// fsyncs every partition the jobs wrote to (up to the last job's end), lets readers see the
/// synced records and answers each request: an error when its write or an fsync of a
/// partition it touched failed.
fn complete_jobs(shared: &Shared, jobs: Vec<SyncJob>) {
    // The latest point per partition: syncing its handle covers the earlier jobs too
    // (records in segments rolled since were synced by the roll).
    let mut points: Vec<&SyncPoint> = Vec::new();
    for point in jobs.iter().flat_map(|j| &j.points) {
        match points
            .iter_mut()
            .find(|p| Arc::ptr_eq(&p.partition, &point.partition))
        {
            Some(slot) => *slot = point,
            None => points.push(point),
        }
    }
    let mut sync_failures: Vec<(Arc<Partition>, Arc<LogError>)> = Vec::new();
    for point in &points {
        match point.sync() {
            Ok(()) => point.partition.publish_up_to(point.end),
            Err(e) => {
                let p = &point.partition;
                error!(topic = %p.topic, partition = p.id, error = %e, "fsync failed");
                sync_failures.push((p.clone(), Arc::new(e)));
            }
        }
    }
    if !points.is_empty() {
        shared.appended.send_modify(|g| *g = g.wrapping_add(1));
    }
    for job in jobs {
        answer(job.requests, job.results, &sync_failures);
    }
}

/// Answers each request: its write's error, else the failed fsync of a partition it
/// touched, else its base offsets.
fn answer(
    requests: Vec<WriteRequest>,
    results: Vec<Result<Vec<u64>, LogError>>,
    sync_failures: &[(Arc<Partition>, Arc<LogError>)],
) {
    for (req, result) in requests.into_iter().zip(results) {
        let failed_sync = sync_failures
            .iter()
            .find(|(f, _)| req.entries.iter().any(|(p, _)| Arc::ptr_eq(p, f)))
            .map(|(_, e)| e.clone());
        let reply = match (result, failed_sync) {
            (Err(e), _) => Err(Arc::new(e)),
            (Ok(_), Some(e)) => Err(e),
            (Ok(bases), None) => Ok(bases),
        };
        // The requester may have gone away (task stopped); nothing to do then.
        let _ = req.done.send(reply);
    }
}

#[cfg(test)]
mod tests;
