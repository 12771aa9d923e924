//! `FileStreamSink`: appends records to a file as lines, durably.
//!
//! `file.format=value` (the default, as Kafka Connect's FileStreamSink) writes each record
//! value as one line (`null` for tombstones); `envelope` writes a JSON object with topic,
//! partition, offset, key and value. `pre_commit` flushes and fsyncs before offsets are
//! committed, so a crash can repeat lines but never lose one. A partial last line left by a
//! crash is cut off on open (it was never committed).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

use crate::config::{ConfigDef, ConfigErrors, FieldType, Parsed};
use crate::connector::{
    Connector, ConnectorKind, Plugin, SinkConnector, SinkTask, SinkTaskContext,
};
use crate::error::ConnectorError;
use crate::record::SinkRecord;

pub struct FileSinkPlugin;

impl Plugin for FileSinkPlugin {
    fn class(&self) -> &'static str {
        "org.apache.kafka.connect.file.FileStreamSinkConnector"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["FileStreamSink", "file"]
    }

    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Sink
    }

    fn config_def(&self) -> ConfigDef {
        ConfigDef::new()
            .required("file", FieldType::String, "Path of the file to append to.")
            .optional("file.format", FieldType::Enum { values: &["value", "envelope"] }, "value", "value: one record value per line; envelope: JSON with topic, partition, offset, key, value.")
    }

    fn validate(&self, _name: &str, config: &Parsed) -> Result<Connector, ConfigErrors> {
        let path = PathBuf::from(config.string("file"));
        let mut errors = ConfigErrors::default();
        if path.as_os_str().is_empty() {
            errors.push("file", "must not be empty");
        }
        if path.is_dir() {
            errors.push("file", format!("{} is a directory", path.display()));
        }
        let envelope = config.str("file.format") == Some("envelope");
        errors.into_result(Connector::Sink(Arc::new(FileSink { path, envelope })))
    }
}

struct FileSink {
    path: PathBuf,
    envelope: bool,
}

#[async_trait]
impl SinkConnector for FileSink {
    async fn check(&self) -> Result<(), ConnectorError> {
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.is_dir()
        {
            return Err(ConnectorError::definite(format!(
                "directory {} does not exist; create it or change `file`",
                parent.display()
            )));
        }
        Ok(())
    }

    async fn open_task(&self, _ctx: SinkTaskContext) -> Result<Box<dyn SinkTask>, ConnectorError> {
        let path = self.path.clone();
        let file = tokio::task::spawn_blocking(move || open_clean(&path))
            .await
            .map_err(|e| ConnectorError::transient("open task failed").with_source(e))?
            .map_err(|e| {
                ConnectorError::transient(format!("cannot open {}", self.path.display()))
                    .with_source(e)
            })?;
        Ok(Box::new(FileSinkTask {
            writer: Some(BufWriter::with_capacity(1 << 20, file)),
            envelope: self.envelope,
            path: self.path.clone(),
        }))
    }
}

/// Opens for appending after cutting off an unterminated last line.
fn open_clean(path: &Path) -> std::io::Result<File> {
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    let len = file.metadata()?.len();
    if len > 0 {
        let mut end = len;
        let mut chunk = vec![0u8; 64 * 1024];
        // Find the last newline from the end.
        loop {
            let start = end.saturating_sub(chunk.len() as u64);
            let n = (end - start) as usize;
            file.seek(SeekFrom::Start(start))?;
            file.read_exact(&mut chunk[..n])?;
            if let Some(pos) = chunk[..n].iter().rposition(|&b| b == b'\n') {
                let keep = start + pos as u64 + 1;
                if keep < len {
                    file.set_len(keep)?;
                    file.sync_all()?;
                }
                break;
            }
            if start == 0 {
                file.set_len(0)?;
                file.sync_all()?;
                break;
            }
            end = start;
        }
    }
    Ok(file)
}

struct FileSinkTask {
    writer: Option<BufWriter<File>>,
    envelope: bool,
    path: PathBuf,
}

impl FileSinkTask {
    fn io(&self, e: std::io::Error) -> ConnectorError {
        ConnectorError::transient(format!("writing {} failed", self.path.display())).with_source(e)
    }
}

fn as_json(bytes: Option<&[u8]>) -> serde_json::Value {
    match bytes {
        None => serde_json::Value::Null,
        Some(b) => serde_json::from_slice(b)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(b).into_owned())),
    }
}

#[async_trait]
impl SinkTask for FileSinkTask {
    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<(), ConnectorError> {
        let envelope = self.envelope;
        let Some(writer) = self.writer.as_mut() else {
            return Err(ConnectorError::transient("file sink is closed"));
        };
        let mut result = Ok(());
        for r in &records {
            let line_result = if envelope {
                let line = serde_json::json!({
                    "topic": &*r.topic,
                    "partition": r.partition,
                    "offset": r.offset,
                    "key": as_json(r.record.key.as_deref()),
                    "value": as_json(r.record.value.as_deref()),
                });
                serde_json::to_writer(&mut *writer, &line).map_err(std::io::Error::other)
            } else {
                match r.record.value.as_deref() {
                    // A value with line breaks would split into several lines: escape it.
                    Some(v) if v.contains(&b'\n') => {
                        writer.write_all(String::from_utf8_lossy(v).replace('\n', "\\n").as_bytes())
                    }
                    Some(v) => writer.write_all(v),
                    None => writer.write_all(b"null"),
                }
            };
            if let Err(e) = line_result.and_then(|()| writer.write_all(b"\n")) {
                result = Err(e);
                break;
            }
        }
        result.map_err(|e| self.io(e))
    }

    async fn flush(&mut self) -> Result<(), ConnectorError> {
        let Some(mut writer) = self.writer.take() else {
            return Err(ConnectorError::transient("file sink is closed"));
        };
        let (writer, result) = tokio::task::spawn_blocking(move || {
            let r = writer.flush().and_then(|()| writer.get_ref().sync_data());
            (writer, r)
        })
        .await
        .map_err(|e| ConnectorError::transient("flush task failed").with_source(e))?;
        self.writer = Some(writer);
        result.map_err(|e| self.io(e))
    }

    async fn close(&mut self) {
        if let Some(mut w) = self.writer.take() {
            // Unflushed lines were never committed; flushing them is harmless.
            let _ = w.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unterminated_last_line_is_cut_on_open() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("out.jsonl");
        std::fs::write(&path, b"{\"a\":1}\n{\"a\":2}\n{\"a\":").expect("write");
        drop(open_clean(&path).expect("open"));
        assert_eq!(
            std::fs::read(&path).expect("read"),
            b"{\"a\":1}\n{\"a\":2}\n"
        );
        std::fs::write(&path, b"partial").expect("write");
        drop(open_clean(&path).expect("open"));
        assert_eq!(std::fs::read(&path).expect("read"), b"");
    }
}
