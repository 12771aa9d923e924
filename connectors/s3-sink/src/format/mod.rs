//! Object formats, each written to a local spill file while its object is open.
//!
//! | format | while open (heap per file) | at commit |
//! |---|---|---|
//! | Avro | container file, one block buffered ([`avro::BLOCK_BYTES`]) | last block |
//! | JSON, byte array | lines through a small buffer | gzip into a second file when `s3.compression.type=gzip` |
//! | Parquet | rows in a compact binary form | converted to Parquet a row group at a time |
//!
//! So heap use grows with the number of open files only by small fixed buffers, never with
//! the size of an object.

pub mod avro;
pub mod json;
pub mod parquet;
pub mod rows;

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flate2::write::GzEncoder;
use tributary_runtime::data::ConnectSchema;

use crate::config::{AvroCodec, Compression, ParquetCodec};

/// Buffer of each open line or row file.
const LINE_BUFFER: usize = 16 * 1024;

/// One record, ready for its file.
pub enum Prepared {
    /// An Avro datum (the wire-format header stripped) of the file's schema.
    Avro(bytes::Bytes),
    /// A JSON line or a byte-array record (the separator is added by the file).
    Line(Vec<u8>),
    /// A row for a Parquet file, encoded with [`rows::encode`].
    Row(Vec<u8>),
}

/// What an open file holds, by format.
enum Body {
    Avro(avro::AvroFile),
    Lines {
        writer: BufWriter<File>,
        separator: Vec<u8>,
        compression: Compression,
    },
    Rows {
        writer: BufWriter<File>,
        schema: Arc<ConnectSchema>,
        codec: ParquetCodec,
    },
}

/// How a new file is set up.
pub enum FileKind {
    Avro {
        schema: Arc<str>,
        codec: AvroCodec,
    },
    Lines {
        separator: Vec<u8>,
        compression: Compression,
    },
    Rows {
        schema: Arc<ConnectSchema>,
        codec: ParquetCodec,
    },
}

/// An open object, buffered in a local file.
pub struct OpenFile {
    pub key: String,
    pub start_offset: u64,
    pub records: u64,
    path: PathBuf,
    body: Body,
}

/// A file ready for upload.
pub struct Finished {
    pub key: String,
    pub path: PathBuf,
    pub len: u64,
    /// Local files to delete after the upload.
    pub cleanup: Vec<PathBuf>,
}

impl OpenFile {
    /// Creates the spill file `path` for the object `key`.
    pub fn create(
        path: PathBuf,
        key: String,
        start_offset: u64,
        kind: FileKind,
    ) -> io::Result<OpenFile> {
        let file = File::create(&path)?;
        let body = match kind {
            FileKind::Avro { schema, codec } => {
                Body::Avro(avro::AvroFile::create(file, &schema, codec, &key)?)
            }
            FileKind::Lines {
                separator,
                compression,
            } => Body::Lines {
                writer: BufWriter::with_capacity(LINE_BUFFER, file),
                separator,
                compression,
            },
            FileKind::Rows { schema, codec } => Body::Rows {
                writer: BufWriter::with_capacity(LINE_BUFFER, file),
                schema,
                codec,
            },
        };
        Ok(OpenFile {
            key,
            start_offset,
            records: 0,
            path,
            body,
        })
    }

    /// Appends a record prepared for this file's format.
    pub fn append(&mut self, record: &Prepared) -> io::Result<()> {
        match (&mut self.body, record) {
            (Body::Avro(f), Prepared::Avro(datum)) => f.append(datum)?,
            (
                Body::Lines {
                    writer, separator, ..
                },
                Prepared::Line(line),
            ) => {
                writer.write_all(line)?;
                writer.write_all(separator)?;
            }
            (Body::Rows { writer, .. }, Prepared::Row(row)) => rows::write_frame(writer, row)?,
            _ => return Err(io::Error::other("record prepared for another format")),
        }
        self.records += 1;
        Ok(())
    }

    /// Completes the file for upload (blocking: call from a blocking thread).
    pub fn finish(self) -> Result<Finished, String> {
        let io_err = |e: io::Error| format!("local spill file {}: {e}", self.path.display());
        match self.body {
            Body::Avro(f) => {
                let len = f.finish().map_err(io_err)?;
                Ok(Finished {
                    key: self.key,
                    path: self.path.clone(),
                    len,
                    cleanup: vec![self.path],
                })
            }
            Body::Lines {
                writer,
                compression,
                ..
            } => {
                let file = writer.into_inner().map_err(|e| io_err(e.into_error()))?;
                match compression {
                    Compression::None => {
                        let len = file.metadata().map_err(io_err)?.len();
                        Ok(Finished {
                            key: self.key,
                            path: self.path.clone(),
                            len,
                            cleanup: vec![self.path],
                        })
                    }
                    Compression::Gzip => {
                        drop(file);
                        let gz = self.path.with_extension("gz");
                        let len = gzip_file(&self.path, &gz).map_err(io_err)?;
                        Ok(Finished {
                            key: self.key,
                            path: gz.clone(),
                            len,
                            cleanup: vec![self.path, gz],
                        })
                    }
                }
            }
            Body::Rows {
                writer,
                schema,
                codec,
            } => {
                drop(writer.into_inner().map_err(|e| io_err(e.into_error()))?);
                let out = self.path.with_extension("parquet");
                let len = parquet::write_file(&self.path, &out, &schema, codec)?;
                Ok(Finished {
                    key: self.key,
                    path: out.clone(),
                    len,
                    cleanup: vec![self.path, out],
                })
            }
        }
    }

    /// Removes the spill file of an abandoned file.
    pub fn discard(self) {
        let path = self.path.clone();
        drop(self);
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(path.with_extension("gz"));
        let _ = std::fs::remove_file(path.with_extension("parquet"));
    }
}

/// Gzips `from` into `to` (deterministic header: no name, no mtime); returns the length.
fn gzip_file(from: &Path, to: &Path) -> io::Result<u64> {
    let mut reader = BufReader::with_capacity(64 * 1024, File::open(from)?);
    let out = BufWriter::with_capacity(64 * 1024, File::create(to)?);
    let mut enc = GzEncoder::new(out, flate2::Compression::default());
    io::copy(&mut reader, &mut enc)?;
    let file = enc.finish()?.into_inner().map_err(|e| e.into_error())?;
    Ok(file.metadata()?.len())
}
