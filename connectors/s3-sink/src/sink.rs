//! The S3 sink task: records to open files per topic partition and encoded partition, files
//! committed (uploaded) by Confluent's rotation rules, consumer offsets only behind them.
//!
//! # Rotation (per topic partition, as Confluent's `TopicPartitionWriter`)
//!
//! Before a record is written, the partition's open files are committed when
//! `rotate.interval.ms` is set and the record time is that far past the first record of the
//! open files (or, with a time-based partitioner, its time partition changed), or when its
//! value schema differs from theirs and `schema.compatibility` says so
//! ([`crate::compatibility`]: under NONE always; under BACKWARD/FULL when it is newer, while
//! an older one is projected onto the files' schema; FORWARD the reverse). After it is
//! written they are committed when `flush.size` records are open.
//! `rotate.schedule.interval.ms` also commits every open file on the wall clock.
//!
//! A file's schema is the schema of its first record (Confluent keeps the current schema
//! across files), so the files cut from a given start offset depend only on the records.
//!
//! # Offsets
//!
//! `pre_commit` returns, per topic partition, the offset after the last record whose object
//! is completely uploaded (records dropped by transforms or skipped count once everything
//! before them is uploaded). After a crash, consumption resumes there; because rotation
//! depends only on the records (with the `Record`/`RecordField` extractors and without
//! `rotate.schedule.interval.ms`) the replay cuts the same files: same keys, same bytes.
//!
//! # Errors
//!
//! Records that cannot be decoded or partitioned go to the errant-record reporter
//! (`errors.tolerance`). A failed upload fails the task (transient: it restarts and replays
//! from the committed offsets); until then the task refuses further work.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tracing::{debug, info, warn};
use tributary_runtime::connector::{SinkConnector, SinkTask, SinkTaskContext};
use tributary_runtime::converter::avro::to_avro;
use tributary_runtime::converter::wire::{HEADER_LEN, read_header};
use tributary_runtime::data::decode::RecordDecoder;
use tributary_runtime::data::encode::write_avro;
use tributary_runtime::data::{ConnectSchema, ConnectType, Data, SchemaAndValue};
use tributary_runtime::dead_letter::{ErrantRecordReporter, Stage};
use tributary_runtime::error::ConnectorError;
use tributary_runtime::record::{ConsumerOffsets, SinkRecord, TopicPartition, TopicRecord};

use crate::compatibility::{self, Decision, RollReason};
use crate::config::{FormatKind, NullBehavior, S3SinkConfig};
use crate::format::{FileKind, OpenFile, Prepared, json, parquet, rows};
use crate::partitioner::{PartitionerConfig, RecordView};
use crate::store::Store;

/// A validated S3 sink connector.
pub struct S3Sink {
    pub config: Arc<S3SinkConfig>,
}

#[async_trait]
impl SinkConnector for S3Sink {
    async fn check(&self) -> Result<(), ConnectorError> {
        Store::connect(&self.config).await.check().await
    }

    async fn open_task(&self, ctx: SinkTaskContext) -> Result<Box<dyn SinkTask>, ConnectorError> {
        let store = Store::connect(&self.config).await;
        let task = S3SinkTask::new(self.config.clone(), store, ctx.decoder, ctx.errors)?;
        info!(connector = %ctx.connector, task = ctx.task_id, bucket = %self.config.bucket, "s3 sink task opened");
        Ok(Box::new(task))
    }
}

/// Name prefix of a task's spill directory under `s3.spill.dir`.
const SPILL_PREFIX: &str = "tributary-s3-sink-";
/// File in a spill directory holding the owning process id.
const SPILL_OWNER_FILE: &str = "owner.pid";

/// Removes spill directories whose owning process is gone (a crashed worker's buffers:
/// their records were never committed, so they are replayed from the topic anyway).
/// Directories without an owner file, or whose owner still runs, are left alone. Best
/// effort: a failure is logged, never fatal.
pub fn sweep_stale_spill_dirs(base: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(SPILL_PREFIX) {
            continue;
        }
        let dir = entry.path();
        let Ok(pid) = std::fs::read_to_string(dir.join(SPILL_OWNER_FILE)) else {
            continue;
        };
        let Ok(pid) = pid.trim().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() || std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {
                info!(dir = %dir.display(), pid, "removed the spill directory of a stopped worker")
            }
            Err(e) => {
                warn!(dir = %dir.display(), error = %e, "cannot remove a stale spill directory")
            }
        }
    }
}

/// The object key: `<topics.dir>/<topic>/<encoded partition>/<topic>+<partition>+<start offset>.<ext>`
/// with the start offset zero-padded to 10 digits.
pub fn object_key(
    config: &S3SinkConfig,
    topic: &str,
    encoded: &str,
    partition: u32,
    start_offset: u64,
) -> String {
    let d = &config.directory_delim;
    let f = &config.file_delim;
    let file = format!(
        "{topic}{f}{partition}{f}{start_offset:010}{}",
        config.extension()
    );
    if config.topics_dir.is_empty() {
        format!("{topic}{d}{encoded}{d}{file}")
    } else {
        format!("{}{d}{topic}{d}{encoded}{d}{file}", config.topics_dir)
    }
}

/// What identifies a file's schema: a change commits the open files or projects the record
/// onto them (`schema.compatibility`).
#[derive(Debug, Clone)]
enum SchemaKey {
    /// Avro writer schema id (datums copied as written), with the Connect schema read from it.
    Avro(u32, Option<Arc<ConnectSchema>>),
    Connect(Option<Arc<ConnectSchema>>),
}

impl SchemaKey {
    fn schema(&self) -> Option<&Arc<ConnectSchema>> {
        match self {
            SchemaKey::Avro(_, s) | SchemaKey::Connect(s) => s.as_ref(),
        }
    }
}

impl PartialEq for SchemaKey {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (SchemaKey::Avro(a, _), SchemaKey::Avro(b, _)) => a == b,
            (SchemaKey::Connect(Some(a)), SchemaKey::Connect(Some(b))) => {
                Arc::ptr_eq(a, b) || a == b
            }
            (SchemaKey::Connect(None), SchemaKey::Connect(None)) => true,
            _ => false,
        }
    }
}

/// The open files of one topic partition.
#[derive(Default)]
struct PartitionWriter {
    files: BTreeMap<String, OpenFile>,
    /// Records in the open files.
    record_count: u64,
    /// Record time of the first record in the open files.
    base_time: i64,
    schema: Option<SchemaKey>,
    last_encoded: Option<String>,
    /// Next offset after the last record handled.
    consumed_next: Option<u64>,
    /// Next offset after the last record whose object is uploaded.
    committed_next: Option<u64>,
}

/// A record decoded and placed in its encoded partition, not yet encoded for a file.
struct Placed {
    encoded: String,
    time: i64,
    value: Option<SchemaAndValue>,
    /// The Avro datum as written (wire header stripped) with its schema id, when AvroFormat
    /// copies it.
    framed: Option<(u32, bytes::Bytes)>,
}

/// The running task.
pub struct S3SinkTask {
    config: Arc<S3SinkConfig>,
    store: Store,
    decoder: Arc<RecordDecoder>,
    errors: ErrantRecordReporter,
    spill: tempfile::TempDir,
    next_file: u64,
    writers: HashMap<TopicPartition, PartitionWriter>,
    avro_schemas: HashMap<u32, Arc<str>>,
    next_schedule: Option<Instant>,
    /// Set when an upload or a local write failed: the task must restart and replay.
    failed: bool,
    /// A schema without a version was met under BACKWARD/FORWARD/FULL (warned once).
    warned_unversioned: bool,
}

impl S3SinkTask {
    /// A task writing through `store`, buffering in a new directory under `s3.spill.dir`.
    pub fn new(
        config: Arc<S3SinkConfig>,
        store: Store,
        decoder: Arc<RecordDecoder>,
        errors: ErrantRecordReporter,
    ) -> Result<S3SinkTask, ConnectorError> {
        let base = config.spill_dir.clone().unwrap_or_else(std::env::temp_dir);
        std::fs::create_dir_all(&base).map_err(|e| {
            ConnectorError::definite(format!("s3.spill.dir: cannot create {}", base.display()))
                .with_source(e)
        })?;
        let spill = tempfile::Builder::new()
            .prefix(SPILL_PREFIX)
            .tempdir_in(&base)
            .map_err(|e| {
                ConnectorError::definite(format!(
                    "s3.spill.dir: cannot create a directory in {}",
                    base.display()
                ))
                .with_source(e)
            })?;
        // Claim the directory for this process, then remove what crashed tasks left behind
        // (a kill -9 never runs TempDir's cleanup).
        let owner = spill.path().join(SPILL_OWNER_FILE);
        std::fs::write(&owner, std::process::id().to_string()).map_err(|e| {
            ConnectorError::definite(format!("s3.spill.dir: cannot write {}", owner.display()))
                .with_source(e)
        })?;
        sweep_stale_spill_dirs(&base);
        if !config.partitioner.is_deterministic() || config.rotate_schedule.is_some() {
            warn!(
                "timestamp.extractor=Wallclock or rotate.schedule.interval.ms: a replay after a crash may cut objects differently (not exactly-once)"
            );
        }
        let next_schedule = config.rotate_schedule.map(|d| Instant::now() + d);
        Ok(S3SinkTask {
            config,
            store,
            decoder,
            errors,
            spill,
            next_file: 0,
            writers: HashMap::new(),
            avro_schemas: HashMap::new(),
            next_schedule,
            failed: false,
            warned_unversioned: false,
        })
    }

    /// Local spill directory (for tests and diagnostics).
    pub fn spill_dir(&self) -> PathBuf {
        self.spill.path().to_path_buf()
    }

    /// Open files across all partitions.
    pub fn open_files(&self) -> usize {
        self.writers.values().map(|w| w.files.len()).sum()
    }

    fn refuse_if_failed(&self) -> Result<(), ConnectorError> {
        if self.failed {
            return Err(ConnectorError::transient(
                "an earlier upload failed; the task restarts and replays from the last committed offsets",
            ));
        }
        Ok(())
    }

    /// Decodes and places a record; `Ok(None)` when it is skipped (dropped by a transform,
    /// ignored null, or reported as errant).
    async fn place(
        &mut self,
        record: &SinkRecord,
        now_ms: i64,
    ) -> Result<Option<Placed>, ConnectorError> {
        let decoded = match self.decoder.decode_staged(record).await {
            Ok(Some(d)) => d,
            Ok(None) => return Ok(None),
            Err((stage, e)) if e.kind == tributary_runtime::error::ErrorKind::Definite => {
                self.errors.report(record, stage, e).await?;
                return Ok(None);
            }
            Err((_, e)) => return Err(e),
        };
        if decoded.value.is_none() {
            match self.config.null_behavior {
                NullBehavior::Ignore => return Ok(None),
                NullBehavior::Fail => {
                    let err = ConnectorError::definite(
                        "the record value is null; set behavior.on.null.values=ignore to skip tombstones",
                    );
                    self.errors.report(record, Stage::TaskPut, err).await?;
                    return Ok(None);
                }
                NullBehavior::Write => {}
            }
        }
        let view = RecordView {
            kafka_partition: record.partition,
            timestamp_ms: decoded.timestamp_ms,
            value: decoded.value.as_ref(),
        };
        let partitioner = &self.config.partitioner;
        let placed = partitioner
            .encode(&view, &self.config.directory_delim, now_ms)
            .and_then(|encoded| Ok((encoded, partitioner.record_time(&view, now_ms)?)));
        let (encoded, time) = match placed {
            Ok(p) => p,
            Err(message) => {
                self.errors
                    .report(record, Stage::TaskPut, ConnectorError::definite(message))
                    .await?;
                return Ok(None);
            }
        };
        // Avro values are copied as written (exact, fast); other converters' values, and
        // values changed by transforms, are encoded from their Connect schema.
        let framed = match self.config.format {
            FormatKind::Avro if self.decoder.value_is_avro() && !self.decoder.has_transforms() => {
                record
                    .record
                    .value
                    .as_ref()
                    .and_then(|v| read_header(v).map(|(id, _)| (id, v.slice(HEADER_LEN..))))
            }
            _ => None,
        };
        Ok(Some(Placed {
            encoded,
            time,
            value: decoded.value,
            framed,
        }))
    }

    /// What identifies the schema of a placed record's file (`None`: the format has none).
    fn schema_key(&self, placed: &Placed) -> Option<SchemaKey> {
        let schema = placed.value.as_ref().and_then(|v| v.schema.clone());
        match self.config.format {
            FormatKind::Avro => match &placed.framed {
                Some((id, _)) => Some(SchemaKey::Avro(*id, schema)),
                None => schema.map(|s| SchemaKey::Connect(Some(s))),
            },
            FormatKind::Json => placed
                .value
                .as_ref()
                .map(|v| SchemaKey::Connect(v.schema.clone())),
            FormatKind::Bytes => None,
            FormatKind::Parquet => schema
                .filter(|s| matches!(s.ty, ConnectType::Struct(_)))
                .map(|s| SchemaKey::Connect(Some(s))),
        }
    }

    /// Encodes a placed record for a file of its own schema.
    fn encode(&self, placed: &Placed, raw: Option<&bytes::Bytes>) -> Result<Prepared, String> {
        let value = placed.value.as_ref();
        let size = raw.map_or(0, |v| v.len());
        match self.config.format {
            FormatKind::Avro => match (&placed.framed, value) {
                (Some((_, datum)), _) => Ok(Prepared::Avro(datum.clone())),
                (None, Some(SchemaAndValue {
                    schema: Some(schema),
                    value,
                })) => {
                    let mut datum = Vec::with_capacity(size);
                    write_avro(schema, value, &mut datum)
                        .map_err(|e| format!("cannot encode the value as Avro: {e}"))?;
                    Ok(Prepared::Avro(datum.into()))
                }
                _ => Err("AvroFormat needs values with a schema (AvroConverter, or JsonConverter with schemas.enable=true)".into()),
            },
            FormatKind::Json => {
                let mut line = Vec::with_capacity(size);
                match value {
                    None => line.extend_from_slice(b"null"),
                    Some(v) => json::write_json(&mut line, v.schema.as_deref(), &v.value)?,
                }
                Ok(Prepared::Line(line))
            }
            FormatKind::Bytes => Ok(Prepared::Line(match value.map(|v| &v.value) {
                Some(Data::Bytes(b)) => b.to_vec(),
                Some(Data::String(s)) => s.as_bytes().to_vec(),
                _ => raw.map(|v| v.to_vec()).unwrap_or_default(),
            })),
            FormatKind::Parquet => match value {
                Some(SchemaAndValue {
                    schema: Some(schema),
                    value,
                }) if matches!(schema.ty, ConnectType::Struct(_)) => {
                    parquet::check_row(schema, value)?;
                    let mut row = Vec::with_capacity(size);
                    rows::encode(&mut row, value);
                    Ok(Prepared::Row(row))
                }
                _ => Err("ParquetFormat needs record values that are structs with a schema (Avro, or JSON with schemas.enable=true)".into()),
            },
        }
    }

    /// Encodes a placed record for the open files of schema `current`, projected onto it
    /// (`schema.compatibility`); `Ok(None)` when it cannot be (the files then roll).
    async fn encode_projected(
        &self,
        record: &SinkRecord,
        placed: &Placed,
        current: &SchemaKey,
    ) -> Result<Option<Prepared>, ConnectorError> {
        let (Some(value), Some(target)) = (placed.value.as_ref(), current.schema()) else {
            return Ok(None);
        };
        let Some(source) = value.schema.as_deref() else {
            return Ok(None);
        };
        let projected = match compatibility::project(source, &value.value, target) {
            Ok(p) => p,
            Err(reason) => {
                debug!(topic = %record.topic, partition = record.partition, offset = record.offset, %reason, "record not projectable onto the open files' schema");
                return Ok(None);
            }
        };
        let projected = Placed {
            encoded: String::new(),
            time: 0,
            value: Some(SchemaAndValue {
                schema: current.schema().cloned(),
                value: projected,
            }),
            framed: None,
        };
        let Ok(prepared) = self.encode(&projected, record.record.value.as_ref()) else {
            return Ok(None);
        };
        // A file of a registry schema holds datums of that schema: the datum encoded from
        // the Connect schema is used only when that schema reads it back as the same value.
        if let (SchemaKey::Avro(id, _), Prepared::Avro(datum)) = (current, &prepared) {
            let mut framed = Vec::with_capacity(HEADER_LEN + datum.len());
            framed.push(0);
            framed.extend_from_slice(&id.to_be_bytes());
            framed.extend_from_slice(datum);
            let check = SinkRecord {
                topic: record.topic.clone(),
                partition: record.partition,
                offset: record.offset,
                record: TopicRecord {
                    key: None,
                    value: Some(framed.into()),
                    headers: Vec::new(),
                    timestamp_ms: record.record.timestamp_ms,
                },
            };
            // A registry outage is transient (the task retries); a datum the schema cannot
            // read, or reads as another value, is not projectable.
            let read = match self.decoder.decode(&check).await {
                Ok(read) => read.and_then(|r| r.value).map(|v| v.value),
                Err(e) if e.kind == tributary_runtime::error::ErrorKind::Transient => {
                    return Err(e);
                }
                Err(_) => None,
            };
            if read.as_ref() != projected.value.as_ref().map(|v| &v.value) {
                debug!(topic = %record.topic, partition = record.partition, offset = record.offset, schema_id = id, "the projected record does not encode under the open files' Avro schema");
                return Ok(None);
            }
        }
        Ok(Some(prepared))
    }

    /// The file kind for a new file of this schema.
    async fn file_kind(&mut self, schema: Option<&SchemaKey>) -> Result<FileKind, ConnectorError> {
        let config = &self.config;
        Ok(match (config.format, schema) {
            (FormatKind::Avro, Some(SchemaKey::Avro(id, _))) => {
                let text = match self.avro_schemas.get(id) {
                    Some(t) => t.clone(),
                    None => {
                        let t = self.decoder.avro_schema(*id).await?;
                        self.avro_schemas.insert(*id, t.clone());
                        t
                    }
                };
                FileKind::Avro {
                    schema: text,
                    codec: config.avro_codec,
                }
            }
            (FormatKind::Avro, Some(SchemaKey::Connect(Some(schema)))) => FileKind::Avro {
                schema: to_avro(schema).to_string().into(),
                codec: config.avro_codec,
            },
            (FormatKind::Parquet, Some(SchemaKey::Connect(Some(schema)))) => FileKind::Rows {
                schema: schema.clone(),
                codec: config.parquet_codec,
            },
            (FormatKind::Json | FormatKind::Bytes, _) => FileKind::Lines {
                separator: if config.format == FormatKind::Json {
                    b"\n".to_vec()
                } else {
                    config.bytes_separator.clone()
                },
                compression: config.compression,
            },
            _ => {
                return Err(ConnectorError::definite(
                    "internal: record prepared without the schema its format needs",
                ));
            }
        })
    }

    /// A record that leaves nothing in the files still counts as consumed (and as committed
    /// when no file is open).
    fn skip(&mut self, tp: TopicPartition, offset: u64) {
        let w = self.writers.entry(tp).or_default();
        w.consumed_next = Some(offset + 1);
        if w.record_count == 0 {
            w.committed_next = w.consumed_next;
        }
    }

    async fn handle(&mut self, record: &SinkRecord, now_ms: i64) -> Result<(), ConnectorError> {
        let tp = TopicPartition::new(record.topic.clone(), record.partition);
        let Some(placed) = self.place(record, now_ms).await? else {
            self.skip(tp, record.offset);
            return Ok(());
        };
        let own_schema = self.schema_key(&placed);
        // Rotation before the write: record time, then the schema (schema.compatibility).
        let time_partitioned = matches!(self.config.partitioner, PartitionerConfig::Time { .. });
        let w = self.writers.entry(tp.clone()).or_default();
        let time_up = w.record_count > 0
            && self.config.rotate_interval_ms.is_some_and(|interval| {
                placed.time.saturating_sub(w.base_time) >= interval
                    || (time_partitioned
                        && w.last_encoded.as_deref() != Some(placed.encoded.as_str()))
            });
        // A file's schema is its first record's, so a replay from a file's start offset cuts
        // the same files (Confluent keeps the current schema across files).
        let current = w.schema.clone().filter(|_| w.record_count > 0 && !time_up);
        let decision = match (&current, &own_schema) {
            (Some(current), Some(own)) if current != own => Some(compatibility::decide(
                self.config.schema_compatibility,
                current.schema().map(|s| &**s),
                own.schema().map(|s| &**s),
            )),
            _ => None,
        };
        let mut projected = None;
        let roll = match (decision, &current) {
            (Some(Decision::Project), Some(current)) => {
                projected = self.encode_projected(record, &placed, current).await?;
                projected.is_none()
            }
            (Some(Decision::Roll(reason)), _) => {
                if reason == RollReason::NoVersion && !self.warned_unversioned {
                    self.warned_unversioned = true;
                    warn!(schema_compatibility = ?self.config.schema_compatibility, topic = %record.topic, "a value schema has no version: schema changes commit the open objects as with NONE (Connect schemas need \"version\", Avro schemas \"connect.version\")");
                }
                true
            }
            _ => false,
        };
        let (schema, prepared) = match projected {
            Some(p) => (current, p),
            None => match self.encode(&placed, record.record.value.as_ref()) {
                Ok(p) => (own_schema, p),
                Err(message) => {
                    self.errors
                        .report(record, Stage::TaskPut, ConnectorError::definite(message))
                        .await?;
                    self.skip(tp, record.offset);
                    return Ok(());
                }
            },
        };
        if time_up || roll {
            self.commit_partition(&tp).await?;
        }
        let kind = if self
            .writers
            .get(&tp)
            .is_some_and(|w| w.files.contains_key(&placed.encoded))
        {
            None
        } else {
            Some(self.file_kind(schema.as_ref()).await?)
        };
        let path = self.spill.path().join(format!("{}.spill", self.next_file));
        let key = object_key(
            &self.config,
            &record.topic,
            &placed.encoded,
            record.partition,
            record.offset,
        );
        let w = self.writers.entry(tp.clone()).or_default();
        if w.record_count == 0 {
            w.base_time = placed.time;
        }
        if schema.is_some() {
            w.schema = schema;
        }
        if let Some(kind) = kind {
            self.next_file += 1;
            let file = OpenFile::create(path, key, record.offset, kind).map_err(|e| {
                self.failed = true;
                ConnectorError::transient("cannot create a local spill file (s3.spill.dir)")
                    .with_source(e)
            })?;
            w.files.insert(placed.encoded.clone(), file);
        }
        if let Some(file) = w.files.get_mut(&placed.encoded)
            && let Err(e) = file.append(&prepared)
        {
            self.failed = true;
            return Err(ConnectorError::transient(
                "cannot write a local spill file (s3.spill.dir)",
            )
            .with_source(e));
        }
        w.record_count += 1;
        w.last_encoded = Some(placed.encoded);
        w.consumed_next = Some(record.offset + 1);
        if w.record_count >= self.config.flush_size {
            self.commit_partition(&tp).await?;
        }
        Ok(())
    }

    /// Uploads every open file of a topic partition; then everything handled is committed.
    async fn commit_partition(&mut self, tp: &TopicPartition) -> Result<(), ConnectorError> {
        let Some(w) = self.writers.get_mut(tp) else {
            return Ok(());
        };
        let files = std::mem::take(&mut w.files);
        w.record_count = 0;
        w.last_encoded = None;
        for (_, file) in files {
            let records = file.records;
            let finished = tokio::task::spawn_blocking(move || file.finish())
                .await
                .map_err(|e| ConnectorError::transient("finishing a file failed").with_source(e))
                .and_then(|r| r.map_err(ConnectorError::transient));
            let finished = match finished {
                Ok(f) => f,
                Err(e) => {
                    self.failed = true;
                    return Err(e);
                }
            };
            let uploaded = self
                .store
                .upload(&finished.key, &finished.path, finished.len)
                .await;
            for path in &finished.cleanup {
                let _ = std::fs::remove_file(path);
            }
            if let Err(e) = uploaded {
                self.failed = true;
                return Err(e);
            }
            debug!(key = %finished.key, records, bytes = finished.len, "object uploaded");
        }
        if let Some(w) = self.writers.get_mut(tp) {
            w.committed_next = w.consumed_next;
        }
        Ok(())
    }

    /// `rotate.schedule.interval.ms`: commits every open file when the time has come.
    async fn scheduled_rotation(&mut self) -> Result<(), ConnectorError> {
        let (Some(next), Some(interval)) = (self.next_schedule, self.config.rotate_schedule) else {
            return Ok(());
        };
        if Instant::now() < next {
            return Ok(());
        }
        self.next_schedule = Some(Instant::now() + interval);
        let open: Vec<TopicPartition> = self
            .writers
            .iter()
            .filter(|(_, w)| w.record_count > 0)
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in open {
            self.commit_partition(&tp).await?;
        }
        Ok(())
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[async_trait]
impl SinkTask for S3SinkTask {
    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<(), ConnectorError> {
        self.refuse_if_failed()?;
        self.scheduled_rotation().await?;
        let now = now_ms();
        for record in &records {
            self.handle(record, now).await?;
        }
        Ok(())
    }

    /// Objects are committed by the rotation rules only (cutting them here would make their
    /// boundaries depend on timing); offsets follow in `pre_commit`.
    async fn flush(&mut self) -> Result<(), ConnectorError> {
        self.refuse_if_failed()
    }

    async fn pre_commit(
        &mut self,
        consumed: &ConsumerOffsets,
    ) -> Result<ConsumerOffsets, ConnectorError> {
        self.refuse_if_failed()?;
        self.scheduled_rotation().await?;
        Ok(consumed
            .iter()
            .filter_map(|(tp, &next)| {
                let committed = self.writers.get(tp)?.committed_next?;
                Some((tp.clone(), committed.min(next)))
            })
            .collect())
    }

    async fn close(&mut self) {
        // Open files were never committed; their records are consumed again after a restart.
        for (_, w) in self.writers.drain() {
            for (_, file) in w.files {
                file.discard();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tributary_runtime::config::RawConfig;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> S3SinkConfig {
        let mut raw: RawConfig = [("s3.bucket.name", "b-1"), ("flush.size", "3")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        raw.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let parsed = S3SinkConfig::config_def().parse(&raw).expect("parse");
        S3SinkConfig::from_parsed(&parsed).expect("valid")
    }

    #[test]
    fn stale_spill_dirs_of_dead_processes_are_swept() {
        let base = tempfile::tempdir().expect("tmp");
        let dir = |name: &str, owner: Option<&str>| {
            let d = base.path().join(name);
            std::fs::create_dir(&d).expect("mkdir");
            std::fs::write(d.join("0.spill"), b"buffered").expect("write");
            if let Some(pid) = owner {
                std::fs::write(d.join(SPILL_OWNER_FILE), pid).expect("owner");
            }
            d
        };
        // Above the kernel's largest pid_max (2^22): no such process can exist.
        let dead = dir("tributary-s3-sink-dead", Some("4194305"));
        let mine = dir(
            "tributary-s3-sink-mine",
            Some(&std::process::id().to_string()),
        );
        let init = dir("tributary-s3-sink-init", Some("1"));
        let unowned = dir("tributary-s3-sink-unowned", None);
        let other = dir("something-else", Some("4194305"));
        sweep_stale_spill_dirs(base.path());
        assert!(!dead.exists(), "a dead owner's directory is removed");
        for kept in [&mine, &init, &unowned, &other] {
            assert!(kept.exists(), "{} must be kept", kept.display());
        }
    }

    #[test]
    fn keys_follow_confluent() {
        let c = config(&[(
            "format.class",
            "io.confluent.connect.s3.format.avro.AvroFormat",
        )]);
        assert_eq!(
            object_key(&c, "db.inv.orders", "partition=0", 0, 42),
            "topics/db.inv.orders/partition=0/db.inv.orders+0+0000000042.avro"
        );
        let c = config(&[
            ("format.class", "json"),
            ("topics.dir", "/cdc/raw/"),
            ("s3.compression.type", "gzip"),
        ]);
        assert_eq!(
            object_key(&c, "t", "year=2024/month=01", 7, 12_345_678_901),
            "cdc/raw/t/year=2024/month=01/t+7+12345678901.json.gz"
        );
        let c = config(&[("format.class", "bytearray"), ("topics.dir", "")]);
        assert_eq!(
            object_key(&c, "t", "partition=1", 1, 5),
            "t/partition=1/t+1+0000000005.bin"
        );
    }
}
