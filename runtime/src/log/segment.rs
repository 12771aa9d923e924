//! Segment files: the on-disk frame format, recovery scans and the sparse index.
//!
//! ```text
//! frame   = len:u32le crc:u32le payload[len]          crc = CRC-32 (IEEE) of payload
//! payload = offset:u64le timestamp_ms:i64le
//!           key_len:i32le key[key_len]                 (-1 = null key)
//!           value_len:i32le value[value_len]           (-1 = tombstone)
//!           header_count:u16le (name_len:u16le name value_len:u32le value)*
//! ```
//!
//! A segment is named after the offset of its first record (`00000000000000000000.log`).
//! A sealed segment has a `.index` file (sparse offset -> position entries, max timestamp,
//! end offset, CRC); the active segment is always rescanned on open, and a frame that is
//! short or fails its CRC ends it: the torn tail left by a crash is truncated, never served.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::record::TopicRecord;

pub(crate) const FRAME_HEADER: usize = 8;
/// One index entry per this many bytes of segment data.
pub(crate) const INDEX_INTERVAL: u64 = 4096;
/// Largest frame payload accepted; anything larger in a length field is corruption.
pub(crate) const MAX_FRAME: usize = 64 * 1024 * 1024;

pub(crate) fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

pub(crate) fn index_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.index"))
}

/// Appends one encoded frame for `record` at `offset` to `buf`.
pub(crate) fn encode_frame(buf: &mut Vec<u8>, offset: u64, record: &TopicRecord) {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; FRAME_HEADER]);
    buf.extend_from_slice(&offset.to_le_bytes());
    buf.extend_from_slice(&record.timestamp_ms.to_le_bytes());
    put_optional(buf, record.key.as_deref());
    put_optional(buf, record.value.as_deref());
    let count = u16::try_from(record.headers.len()).unwrap_or(u16::MAX);
    buf.extend_from_slice(&count.to_le_bytes());
    for (name, value) in record.headers.iter().take(usize::from(count)) {
        let name = &name.as_bytes()[..name.len().min(usize::from(u16::MAX))];
        buf.extend_from_slice(&(name.len() as u16).to_le_bytes());
        buf.extend_from_slice(name);
        let value = &value[..value.len().min(u32::MAX as usize)];
        buf.extend_from_slice(&(value.len() as u32).to_le_bytes());
        buf.extend_from_slice(value);
    }
    let payload_len = (buf.len() - start - FRAME_HEADER) as u32;
    let crc = crc32fast::hash(&buf[start + FRAME_HEADER..]);
    buf[start..start + 4].copy_from_slice(&payload_len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn put_optional(buf: &mut Vec<u8>, data: Option<&[u8]>) {
    match data {
        None => buf.extend_from_slice(&(-1i32).to_le_bytes()),
        Some(d) => {
            buf.extend_from_slice(&(d.len() as i32).to_le_bytes());
            buf.extend_from_slice(d);
        }
    }
}

/// Result of decoding the frame at the start of a buffer.
#[derive(Debug)]
pub(crate) enum Frame {
    /// A valid frame: its offset, record and total length in bytes.
    Record(u64, TopicRecord, usize),
    /// Only part of a frame is in the buffer: read more (or, at end of file, a torn tail).
    Incomplete,
    /// Length out of range or checksum mismatch.
    Corrupt,
}

/// Decodes one frame; `Bytes` slices share `buf` without copying.
pub(crate) fn decode_frame(buf: &Bytes) -> Frame {
    if buf.len() < FRAME_HEADER {
        return Frame::Incomplete;
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if !(16 + 4 + 4 + 2..=MAX_FRAME).contains(&len) {
        return Frame::Corrupt;
    }
    if buf.len() < FRAME_HEADER + len {
        return Frame::Incomplete;
    }
    let payload = buf.slice(FRAME_HEADER..FRAME_HEADER + len);
    if crc32fast::hash(&payload) != crc {
        return Frame::Corrupt;
    }
    match parse_payload(&payload) {
        Some((offset, record)) => Frame::Record(offset, record, FRAME_HEADER + len),
        None => Frame::Corrupt,
    }
}

fn parse_payload(p: &Bytes) -> Option<(u64, TopicRecord)> {
    let mut pos = 0usize;
    let offset = u64::from_le_bytes(p.get(pos..pos + 8)?.try_into().ok()?);
    pos += 8;
    let timestamp_ms = i64::from_le_bytes(p.get(pos..pos + 8)?.try_into().ok()?);
    pos += 8;
    let key = take_optional(p, &mut pos)?;
    let value = take_optional(p, &mut pos)?;
    let count = u16::from_le_bytes(p.get(pos..pos + 2)?.try_into().ok()?);
    pos += 2;
    let mut headers = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let name_len = usize::from(u16::from_le_bytes(p.get(pos..pos + 2)?.try_into().ok()?));
        pos += 2;
        let name = std::str::from_utf8(p.get(pos..pos + name_len)?)
            .ok()?
            .to_owned();
        pos += name_len;
        let value_len = u32::from_le_bytes(p.get(pos..pos + 4)?.try_into().ok()?) as usize;
        pos += 4;
        p.get(pos..pos + value_len)?;
        headers.push((name, p.slice(pos..pos + value_len)));
        pos += value_len;
    }
    if pos != p.len() {
        return None;
    }
    Some((
        offset,
        TopicRecord {
            key,
            value,
            headers,
            timestamp_ms,
        },
    ))
}

fn take_optional(p: &Bytes, pos: &mut usize) -> Option<Option<Bytes>> {
    let len = i32::from_le_bytes(p.get(*pos..*pos + 4)?.try_into().ok()?);
    *pos += 4;
    if len < 0 {
        return Some(None);
    }
    let len = len as usize;
    p.get(*pos..*pos + len)?;
    let out = p.slice(*pos..*pos + len);
    *pos += len;
    Some(Some(out))
}

/// In-memory description of one segment file.
#[derive(Debug)]
pub(crate) struct Segment {
    pub base: u64,
    /// Offset after the last record in this segment.
    pub end: u64,
    /// Bytes of valid frames.
    pub size: u64,
    pub max_timestamp: i64,
    /// Sparse `(offset, position)` entries, ascending.
    pub index: Vec<(u64, u64)>,
    /// Shared read handle (positional reads need no lock).
    pub reader: Arc<File>,
}

impl Segment {
    /// Position to start scanning from to find `offset`.
    pub fn seek_position(&self, offset: u64) -> u64 {
        match self.index.partition_point(|&(o, _)| o <= offset) {
            0 => 0,
            n => self.index[n - 1].1,
        }
    }

    pub fn note_frame(&mut self, offset: u64, position: u64, len: u64, timestamp: i64) {
        let last_indexed = self.index.last().map(|&(_, p)| p);
        if last_indexed.is_none_or(|p| position >= p + INDEX_INTERVAL) {
            self.index.push((offset, position));
        }
        self.size = position + len;
        self.end = offset + 1;
        self.max_timestamp = self.max_timestamp.max(timestamp);
    }
}

/// What a recovery scan found.
pub(crate) struct Scan {
    pub segment: Segment,
    /// Bytes after the last valid frame (a torn or corrupt tail).
    pub invalid_tail: u64,
}

/// Reads a segment file front to back, verifying every frame.
pub(crate) fn scan_segment(path: &Path, base: u64) -> io::Result<Scan> {
    let mut file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut segment = Segment {
        base,
        end: base,
        size: 0,
        max_timestamp: i64::MIN,
        index: Vec::new(),
        reader: Arc::new(File::open(path)?),
    };
    let mut position = 0u64;
    let mut buf = Bytes::new();
    let mut chunk = vec![0u8; 1 << 20];
    let mut eof = false;
    loop {
        match decode_frame(&buf) {
            Frame::Record(offset, record, len) => {
                if offset != segment.end {
                    // Offsets must be dense within a segment; anything else is corruption.
                    break;
                }
                segment.note_frame(offset, position, len as u64, record.timestamp_ms);
                position += len as u64;
                buf = buf.slice(len..);
            }
            Frame::Incomplete if !eof => {
                let n = file.read(&mut chunk)?;
                if n == 0 {
                    eof = true;
                    continue;
                }
                let mut joined = Vec::with_capacity(buf.len() + n);
                joined.extend_from_slice(&buf);
                joined.extend_from_slice(&chunk[..n]);
                buf = Bytes::from(joined);
            }
            Frame::Incomplete | Frame::Corrupt => break,
        }
    }
    Ok(Scan {
        invalid_tail: file_len - position,
        segment,
    })
}

/// Cuts a segment file back to `len` bytes and makes that durable.
pub(crate) fn truncate_file(path: &Path, len: u64) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(len)?;
    file.sync_all()
}

/// Writes the index of a sealed segment: entries, then max timestamp, end offset, CRC.
pub(crate) fn write_index(path: &Path, segment: &Segment) -> io::Result<()> {
    let mut data = Vec::with_capacity(segment.index.len() * 16 + 28);
    for &(offset, position) in &segment.index {
        data.extend_from_slice(&offset.to_le_bytes());
        data.extend_from_slice(&position.to_le_bytes());
    }
    data.extend_from_slice(&segment.max_timestamp.to_le_bytes());
    data.extend_from_slice(&segment.end.to_le_bytes());
    data.extend_from_slice(&segment.size.to_le_bytes());
    let crc = crc32fast::hash(&data);
    data.extend_from_slice(&crc.to_le_bytes());
    let tmp = path.with_extension("index.tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(&data)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Loads a sealed segment from its index; `None` when the index is missing, damaged or does
/// not match the segment file (the caller then rescans).
pub(crate) fn load_indexed(
    log_path: &Path,
    index: &Path,
    base: u64,
) -> io::Result<Option<Segment>> {
    let mut data = Vec::new();
    match File::open(index) {
        Ok(mut f) => {
            f.read_to_end(&mut data)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    }
    if data.len() < 28 || (data.len() - 28) % 16 != 0 {
        return Ok(None);
    }
    let (body, crc) = data.split_at(data.len() - 4);
    if crc32fast::hash(body) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
        return Ok(None);
    }
    let entries = (body.len() - 24) / 16;
    let word = |i: usize| u64::from_le_bytes(body[i..i + 8].try_into().unwrap_or([0; 8]));
    let index: Vec<(u64, u64)> = (0..entries)
        .map(|e| (word(e * 16), word(e * 16 + 8)))
        .collect();
    let tail = entries * 16;
    let max_timestamp = word(tail) as i64;
    let end = word(tail + 8);
    let size = word(tail + 16);
    let reader = File::open(log_path)?;
    if reader.metadata()?.len() != size {
        return Ok(None);
    }
    Ok(Some(Segment {
        base,
        end,
        size,
        max_timestamp,
        index,
        reader: Arc::new(reader),
    }))
}

/// Reads up to `max_bytes` of a segment from `position` into a shared buffer.
pub(crate) fn read_chunk(file: &File, position: u64, max_bytes: usize) -> io::Result<Bytes> {
    let mut buf = vec![0u8; max_bytes];
    let mut filled = 0;
    while filled < buf.len() {
        let n = file.read_at(&mut buf[filled..], position + filled as u64)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(Bytes::from(buf))
}

/// Opens the active segment for appending at `size`, discarding anything after it.
pub(crate) fn open_for_append(path: &Path, size: u64) -> io::Result<File> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    file.set_len(size)?;
    file.seek(SeekFrom::Start(size))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: u64) -> TopicRecord {
        TopicRecord {
            key: Some(Bytes::from(format!("k{i}"))),
            value: if i.is_multiple_of(3) {
                None
            } else {
                Some(Bytes::from(vec![b'v'; i as usize % 50]))
            },
            headers: vec![("h".to_owned(), Bytes::from_static(b"x"))],
            timestamp_ms: i as i64,
        }
    }

    #[test]
    fn frames_round_trip() {
        let mut buf = Vec::new();
        for i in 0..10 {
            encode_frame(&mut buf, i, &record(i));
        }
        let mut bytes = Bytes::from(buf);
        for i in 0..10 {
            match decode_frame(&bytes) {
                Frame::Record(offset, rec, len) => {
                    assert_eq!(offset, i);
                    assert_eq!(rec, record(i));
                    bytes = bytes.slice(len..);
                }
                other => panic!("frame {i}: {other:?}"),
            }
        }
        assert!(matches!(decode_frame(&bytes), Frame::Incomplete));
    }

    #[test]
    fn flipped_bit_is_corrupt() {
        let mut buf = Vec::new();
        encode_frame(&mut buf, 0, &record(1));
        let last = buf.len() - 1;
        buf[last] ^= 0x10;
        assert!(matches!(decode_frame(&Bytes::from(buf)), Frame::Corrupt));
    }
}
