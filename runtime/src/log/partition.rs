//! One topic partition: an ordered list of segments, the last one active.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tracing::{info, warn};

use super::LogError;
use super::segment::{self, Frame, Segment};
use crate::durable_file::sync_dir;
use crate::record::TopicRecord;

/// Where a sequential reader is: the next offset and, when known, its byte position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadCursor {
    pub offset: u64,
    position: Option<(u64, u64)>,
}

impl ReadCursor {
    pub fn at(offset: u64) -> Self {
        ReadCursor {
            offset,
            position: None,
        }
    }
}

struct State {
    /// Ascending by base offset; the last one is the active segment.
    segments: Vec<Segment>,
    /// Append handle of the active segment (`None` when opened read-only). Shared with the
    /// log's syncer thread, which fsyncs it while the writer appends the next group.
    writer: Option<Arc<File>>,
    next_offset: u64,
}

/// A partition's written end and the handle to fsync for it ([`Partition::sync_point`]).
pub(crate) struct SyncPoint {
    pub partition: Arc<Partition>,
    file: Option<Arc<File>>,
    pub end: u64,
}

impl SyncPoint {
    /// fsyncs the handle without holding the partition lock, so the writer can append the
    /// next group meanwhile. A partition poisoned by an earlier failure is never synced
    /// again (after a failed fsync the page cache state is unknown).
    pub(crate) fn sync(&self) -> Result<(), LogError> {
        self.partition.check_not_poisoned()?;
        if let Some(file) = &self.file {
            file.sync_data().map_err(|e| self.partition.poison(e))?;
        }
        Ok(())
    }
}

pub struct Partition {
    pub topic: Arc<str>,
    pub id: u32,
    dir: PathBuf,
    state: Mutex<State>,
    /// Records below this offset are durable (per the fsync policy) and may be read.
    high_watermark: AtomicU64,
    log_start: AtomicU64,
    /// Set when a write or fsync failed: nothing more is appended until a restart recovers.
    poisoned: AtomicBool,
}

impl Partition {
    /// Opens (or creates) the partition directory, recovering the active segment.
    pub(crate) fn open(
        topic: Arc<str>,
        id: u32,
        dir: &Path,
        read_only: bool,
    ) -> Result<Self, LogError> {
        let io = |e| LogError::io(dir, e);
        crate::durable_file::create_dir_durable(dir).map_err(io)?;
        let mut bases: Vec<u64> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".log")?.parse().ok()
            })
            .collect();
        bases.sort_unstable();
        let mut segments = Vec::with_capacity(bases.len().max(1));
        let last = bases.len().saturating_sub(1);
        for (i, &base) in bases.iter().enumerate() {
            let log_path = segment::segment_path(dir, base);
            if i < last {
                let indexed =
                    segment::load_indexed(&log_path, &segment::index_path(dir, base), base)
                        .map_err(|e| LogError::io(&log_path, e))?;
                if let Some(seg) = indexed {
                    segments.push(seg);
                    continue;
                }
            }
            let scan =
                segment::scan_segment(&log_path, base).map_err(|e| LogError::io(&log_path, e))?;
            if scan.invalid_tail > 0 {
                if i < last {
                    return Err(LogError::Corrupt {
                        path: log_path,
                        position: scan.segment.size,
                    });
                }
                if read_only {
                    // Another process may be writing the tail right now: just stop before it.
                } else {
                    warn!(
                        topic = %topic, partition = id, segment = base,
                        valid_bytes = scan.segment.size, discarded_bytes = scan.invalid_tail,
                        "truncating torn or corrupt tail of the active segment"
                    );
                    segment::truncate_file(&log_path, scan.segment.size)
                        .map_err(|e| LogError::io(&log_path, e))?;
                }
            }
            if i < last && !read_only {
                // Sealed segment without a usable index: rebuild it.
                segment::write_index(&segment::index_path(dir, base), &scan.segment)
                    .map_err(|e| LogError::io(&log_path, e))?;
            }
            segments.push(scan.segment);
        }
        if let Some(pair) = segments.windows(2).find(|w| w[0].end != w[1].base) {
            return Err(LogError::Corrupt {
                path: segment::segment_path(dir, pair[1].base),
                position: 0,
            });
        }
        if segments.is_empty() {
            segments.push(new_segment(dir, 0, read_only)?);
        }
        let next_offset = segments.last().map_or(0, |s| s.end);
        let log_start = segments.first().map_or(0, |s| s.base);
        let writer = if read_only {
            None
        } else {
            let active = segments
                .last()
                .ok_or_else(|| LogError::Internal("no segment".into()))?;
            let path = segment::segment_path(dir, active.base);
            Some(Arc::new(
                segment::open_for_append(&path, active.size).map_err(|e| LogError::io(&path, e))?,
            ))
        };
        Ok(Partition {
            topic,
            id,
            dir: dir.to_path_buf(),
            state: Mutex::new(State {
                segments,
                writer,
                next_offset,
            }),
            high_watermark: AtomicU64::new(next_offset),
            log_start: AtomicU64::new(log_start),
            poisoned: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-updated in a way that
        // matters more than the panic itself; keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn high_watermark(&self) -> u64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    pub fn log_start(&self) -> u64 {
        self.log_start.load(Ordering::Acquire)
    }

    /// Bytes on disk across all segments.
    pub fn size_bytes(&self) -> u64 {
        self.lock().segments.iter().map(|s| s.size).sum()
    }

    /// Writes records to the active segment (not yet synced), rolling to a new segment when
    /// the active one reaches `segment_bytes`. Returns the first offset.
    pub(crate) fn write(
        &self,
        records: &[TopicRecord],
        buf: &mut Vec<u8>,
        segment_bytes: u64,
    ) -> Result<u64, LogError> {
        self.check_not_poisoned()?;
        let mut state = self.lock();
        let base = state.next_offset;
        let mut remaining = records;
        while !remaining.is_empty() {
            let active_size = state.segments.last().map_or(0, |s| s.size);
            let active_has_records = state.segments.last().is_some_and(|s| s.end > s.base);
            if active_size >= segment_bytes && active_has_records {
                self.roll(&mut state)?;
                continue;
            }
            // Encode as many records as fit in the active segment (at least one).
            let room = segment_bytes.saturating_sub(active_size);
            let first = state.next_offset;
            buf.clear();
            let mut frames = Vec::new();
            for (i, record) in remaining.iter().enumerate() {
                let start = buf.len();
                if i > 0 && start as u64 >= room {
                    break;
                }
                segment::encode_frame(buf, first + i as u64, record);
                frames.push((
                    start as u64,
                    (buf.len() - start) as u64,
                    record.timestamp_ms,
                ));
            }
            self.append_frames(&mut state, buf, first, &frames)?;
            remaining = &remaining[frames.len()..];
        }
        Ok(base)
    }

    fn append_frames(
        &self,
        state: &mut State,
        buf: &[u8],
        first: u64,
        frames: &[(u64, u64, i64)],
    ) -> Result<(), LogError> {
        let State {
            segments,
            writer,
            next_offset,
        } = state;
        let mut writer: &File = writer.as_deref().ok_or(LogError::ReadOnly)?;
        let active = segments
            .last_mut()
            .ok_or_else(|| LogError::Internal("no segment".into()))?;
        let start_size = active.size;
        if let Err(e) = writer.write_all(buf) {
            // Cut the partial write off so the file stays a clean sequence of frames.
            let rewound = writer.set_len(start_size).and_then(|()| {
                std::io::Seek::seek(&mut writer, std::io::SeekFrom::Start(start_size))
            });
            if rewound.is_err() {
                self.poisoned.store(true, Ordering::Release);
            }
            return Err(LogError::io(&self.dir, e));
        }
        for (i, &(pos, len, ts)) in frames.iter().enumerate() {
            active.note_frame(first + i as u64, start_size + pos, len, ts);
        }
        *next_offset = first + frames.len() as u64;
        Ok(())
    }

    /// Seals the active segment and starts a new one at the next offset.
    fn roll(&self, state: &mut State) -> Result<(), LogError> {
        if let Some(writer) = state.writer.as_deref() {
            writer.sync_data().map_err(|e| self.poison(e))?;
        }
        if let Some(active) = state.segments.last() {
            segment::write_index(&segment::index_path(&self.dir, active.base), active)
                .map_err(|e| LogError::io(&self.dir, e))?;
        }
        let base = state.next_offset;
        let segment = new_segment(&self.dir, base, false)?;
        let path = segment::segment_path(&self.dir, base);
        state.writer = Some(Arc::new(
            segment::open_for_append(&path, 0).map_err(|e| LogError::io(&path, e))?,
        ));
        state.segments.push(segment);
        Ok(())
    }

    fn poison(&self, e: std::io::Error) -> LogError {
        // After a failed fsync the page cache state is unknown (fsyncgate): never retry it.
        self.poisoned.store(true, Ordering::Release);
        LogError::io(&self.dir, e)
    }

    /// Makes everything written so far durable.
    pub(crate) fn sync(&self) -> Result<(), LogError> {
        let state = self.lock();
        if let Some(writer) = state.writer.as_deref() {
            writer.sync_data().map_err(|e| self.poison(e))?;
        }
        Ok(())
    }

    /// What a sync of everything written so far needs, taken without syncing: the active
    /// segment's handle and the offset after the last written record. Segments sealed
    /// before it were synced when they were rolled, so syncing this handle (off the
    /// partition lock, see [`SyncPoint::sync`]) makes every record below `end` durable.
    pub(crate) fn sync_point(self: &Arc<Self>) -> SyncPoint {
        let state = self.lock();
        SyncPoint {
            partition: self.clone(),
            file: state.writer.clone(),
            end: state.next_offset,
        }
    }

    /// Lets readers see records below `end` (never moves the high watermark back).
    pub(crate) fn publish_up_to(&self, end: u64) {
        self.high_watermark.fetch_max(end, Ordering::AcqRel);
    }

    /// Lets readers see everything written so far.
    pub(crate) fn publish(&self) {
        let next = self.lock().next_offset;
        self.high_watermark.store(next, Ordering::Release);
    }

    fn check_not_poisoned(&self) -> Result<(), LogError> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(LogError::Poisoned {
                topic: self.topic.to_string(),
                partition: self.id,
            });
        }
        Ok(())
    }

    /// Deletes sealed segments that fall outside the retention limits.
    pub(crate) fn enforce_retention(
        &self,
        retention_ms: Option<i64>,
        retention_bytes: Option<u64>,
        now_ms: i64,
    ) {
        let removed: Vec<u64> = {
            let mut state = self.lock();
            let mut total: u64 = state.segments.iter().map(|s| s.size).sum();
            let mut remove = 0;
            // Never the active (last) segment.
            for seg in &state.segments[..state.segments.len().saturating_sub(1)] {
                let too_old = retention_ms.is_some_and(|ms| seg.max_timestamp < now_ms - ms);
                let too_big = retention_bytes.is_some_and(|limit| total > limit);
                if !(too_old || too_big) {
                    break;
                }
                total -= seg.size;
                remove += 1;
            }
            let removed = state.segments.drain(..remove).map(|s| s.base).collect();
            if let Some(first) = state.segments.first() {
                self.log_start.store(first.base, Ordering::Release);
            }
            removed
        };
        for base in &removed {
            for path in [
                segment::segment_path(&self.dir, *base),
                segment::index_path(&self.dir, *base),
            ] {
                if let Err(e) = std::fs::remove_file(&path) {
                    warn!(path = %path.display(), error = %e, "could not delete expired segment");
                }
            }
        }
        if !removed.is_empty() {
            info!(topic = %self.topic, partition = self.id, segments = removed.len(), log_start = self.log_start(), "retention deleted segments");
            if let Err(e) = sync_dir(&self.dir) {
                warn!(error = %e, "could not sync partition directory after retention");
            }
        }
    }

    /// Reads records from `cursor` up to the high watermark, at most `max_records` and about
    /// `max_bytes`. Returns the records and the cursor after them.
    pub fn read(
        &self,
        cursor: ReadCursor,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<(Vec<(u64, TopicRecord)>, ReadCursor), LogError> {
        let high_watermark = self.high_watermark();
        let mut out = Vec::new();
        let mut cursor = cursor;
        let mut bytes_read = 0usize;
        while cursor.offset < high_watermark && out.len() < max_records && bytes_read < max_bytes {
            let start = self.log_start();
            if cursor.offset < start {
                return Err(LogError::OffsetOutOfRange {
                    topic: self.topic.to_string(),
                    partition: self.id,
                    offset: cursor.offset,
                    log_start: start,
                });
            }
            // Locate the segment and a position at or before the cursor's frame (cheap when
            // the cursor already knows it).
            let (file, base, seg_size, mut position) = {
                let state = self.lock();
                let idx = state
                    .segments
                    .partition_point(|s| s.base <= cursor.offset)
                    .saturating_sub(1);
                let Some(seg) = state.segments.get(idx) else {
                    break;
                };
                let position = match cursor.position {
                    Some((b, p)) if b == seg.base => p,
                    _ => seg.seek_position(cursor.offset),
                };
                (seg.reader.clone(), seg.base, seg.size, position)
            };
            if position >= seg_size {
                break;
            }
            let want = (max_bytes - bytes_read)
                .clamp(64 * 1024, 4 << 20)
                .min((seg_size - position) as usize);
            let mut chunk = segment::read_chunk(&file, position, want)
                .map_err(|e| LogError::io(&self.dir, e))?;
            let start_position = position;
            let mut reached_watermark = false;
            loop {
                match segment::decode_frame(&chunk) {
                    Frame::Record(offset, record, len) => {
                        if offset >= high_watermark {
                            reached_watermark = true;
                            break;
                        }
                        position += len as u64;
                        chunk = chunk.slice(len..);
                        if offset < cursor.offset {
                            continue;
                        }
                        bytes_read += len;
                        cursor.offset = offset + 1;
                        out.push((offset, record));
                        if out.len() >= max_records || bytes_read >= max_bytes {
                            break;
                        }
                    }
                    Frame::Incomplete
                        if position == start_position && chunk.len() >= segment::FRAME_HEADER =>
                    {
                        // A frame larger than the chunk: read exactly that frame.
                        let len =
                            u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) as usize;
                        let frame =
                            segment::read_chunk(&file, position, len + segment::FRAME_HEADER)
                                .map_err(|e| LogError::io(&self.dir, e))?;
                        if frame.len() <= chunk.len() {
                            break;
                        }
                        chunk = frame;
                    }
                    Frame::Incomplete => break,
                    Frame::Corrupt => {
                        return Err(LogError::Corrupt {
                            path: segment::segment_path(&self.dir, base),
                            position,
                        });
                    }
                }
            }
            cursor.position = Some((base, position));
            if reached_watermark || position == start_position {
                break;
            }
        }
        Ok((out, cursor))
    }

    /// Reads through `Bytes` for callers that want raw access (tests).
    #[cfg(test)]
    pub(crate) fn segment_files(&self) -> Vec<PathBuf> {
        self.lock()
            .segments
            .iter()
            .map(|s| segment::segment_path(&self.dir, s.base))
            .collect()
    }
}

fn new_segment(dir: &Path, base: u64, read_only: bool) -> Result<Segment, LogError> {
    let path = segment::segment_path(dir, base);
    if !read_only {
        File::create(&path).map_err(|e| LogError::io(&path, e))?;
        sync_dir(dir).map_err(|e| LogError::io(dir, e))?;
    }
    let reader = match File::open(&path) {
        Ok(f) => f,
        Err(_) if read_only => File::open("/dev/null").map_err(|e| LogError::io(&path, e))?,
        Err(e) => return Err(LogError::io(&path, e)),
    };
    Ok(Segment {
        base,
        end: base,
        size: 0,
        max_timestamp: i64::MIN,
        index: Vec::new(),
        reader: Arc::new(reader),
    })
}
