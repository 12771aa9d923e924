//! Avro object container files (Avro 1.11 spec, "Object Container Files") written block by
//! block to a local file: the datums are the Avro binary the `AvroConverter` wrote, copied
//! without re-encoding.
//!
//! The sync marker is derived from the object key, so the same records under the same key
//! give byte-identical files (a replay after a crash rewrites an object unchanged).

use std::fs::File;
use std::io::{self, Write};

use flate2::Compression as Level;
use flate2::write::DeflateEncoder;

use crate::config::AvroCodec;

/// A block is written once its datums reach this many bytes: the per-file heap.
pub const BLOCK_BYTES: usize = 32 * 1024;

/// An open container file.
pub struct AvroFile {
    file: File,
    codec: AvroCodec,
    sync: [u8; 16],
    block: Vec<u8>,
    block_count: u64,
    written: u64,
}

impl AvroFile {
    /// Writes the header (schema, codec, sync marker) to `file`.
    pub fn create(
        mut file: File,
        schema: &str,
        codec: AvroCodec,
        key: &str,
    ) -> io::Result<AvroFile> {
        let sync = sync_marker(key);
        let mut header = Vec::with_capacity(schema.len() + 64);
        header.extend_from_slice(b"Obj\x01");
        write_long(&mut header, 2);
        write_bytes(&mut header, b"avro.schema");
        write_bytes(&mut header, schema.as_bytes());
        write_bytes(&mut header, b"avro.codec");
        write_bytes(
            &mut header,
            match codec {
                AvroCodec::Null => b"null",
                AvroCodec::Deflate => b"deflate",
            },
        );
        write_long(&mut header, 0);
        header.extend_from_slice(&sync);
        file.write_all(&header)?;
        Ok(AvroFile {
            file,
            codec,
            sync,
            block: Vec::new(),
            block_count: 0,
            written: header.len() as u64,
        })
    }

    /// Appends one datum (Avro binary of the file's schema).
    pub fn append(&mut self, datum: &[u8]) -> io::Result<()> {
        self.block.extend_from_slice(datum);
        self.block_count += 1;
        if self.block.len() >= BLOCK_BYTES {
            self.write_block()?;
        }
        Ok(())
    }

    fn write_block(&mut self) -> io::Result<()> {
        if self.block_count == 0 {
            return Ok(());
        }
        let data = match self.codec {
            AvroCodec::Null => std::mem::take(&mut self.block),
            AvroCodec::Deflate => {
                let mut enc =
                    DeflateEncoder::new(Vec::with_capacity(self.block.len() / 2), Level::default());
                enc.write_all(&self.block)?;
                self.block.clear();
                enc.finish()?
            }
        };
        let mut head = Vec::with_capacity(20);
        write_long(&mut head, self.block_count as i64);
        write_long(&mut head, data.len() as i64);
        self.file.write_all(&head)?;
        self.file.write_all(&data)?;
        self.file.write_all(&self.sync)?;
        self.written += (head.len() + data.len() + 16) as u64;
        self.block_count = 0;
        // Keep the allocation small between blocks.
        if self.block.capacity() > 2 * BLOCK_BYTES {
            self.block = Vec::new();
        }
        Ok(())
    }

    /// Writes the last block and syncs; returns the file length.
    pub fn finish(mut self) -> io::Result<u64> {
        self.write_block()?;
        self.file.flush()?;
        Ok(self.written)
    }
}

/// Avro `long` (zig-zag varint) and `bytes`: the converter's.
pub use tributary_runtime::converter::avro::{write_bytes, write_long};

/// 16 bytes from two FNV-1a hashes of the key.
fn sync_marker(key: &str) -> [u8; 16] {
    let fnv = |seed: u64| {
        let mut h = seed;
        for b in key.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    };
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&fnv(0xcbf2_9ce4_8422_2325).to_le_bytes());
    out[8..].copy_from_slice(&fnv(0x6c62_272e_07bb_0142).to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_longs() {
        let enc = |n| {
            let mut v = Vec::new();
            write_long(&mut v, n);
            v
        };
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(-1), [1]);
        assert_eq!(enc(1), [2]);
        assert_eq!(enc(64), [0x80, 1]);
        assert_eq!(enc(-65), [0x81, 1]);
    }

    #[test]
    fn same_key_same_bytes() {
        let dir = tempfile::tempdir().expect("tmp");
        let write = |name: &str, key: &str| {
            let path = dir.path().join(name);
            let mut f = AvroFile::create(
                File::create(&path).expect("create"),
                "\"long\"",
                AvroCodec::Deflate,
                key,
            )
            .expect("header");
            for i in 0..20_000i64 {
                let mut d = Vec::new();
                write_long(&mut d, i);
                f.append(&d).expect("append");
            }
            let len = f.finish().expect("finish");
            let bytes = std::fs::read(&path).expect("read");
            assert_eq!(bytes.len() as u64, len);
            bytes
        };
        let a = write("a", "topics/t/partition=0/t+0+0000000000.avro");
        let b = write("b", "topics/t/partition=0/t+0+0000000000.avro");
        let c = write("c", "topics/t/partition=0/t+0+0000000001.avro");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.starts_with(b"Obj\x01"));
    }
}
