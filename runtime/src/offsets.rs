//! Source offsets, per connector and source partition, in Kafka Connect's shape:
//! `["<connector>", {partition}] -> {offset}`.
//!
//! The store refuses to move a partition's offset backward (by [`OffsetOrder`]) unless the
//! caller asks for an explicit reset: a cheap guard against replays and double commits.
//! A Kafka-backed implementation (compacted topic, issue 7) implements the same trait.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::durable_file::{create_dir_durable, write_atomic};
use crate::error::ErrorKind;
use crate::record::{OffsetOrder, SourceOffset, SourcePartition};

/// One committed offset.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredOffset {
    pub partition: SourcePartition,
    pub offset: SourceOffset,
}

#[derive(Debug, thiserror::Error)]
pub enum OffsetStoreError {
    #[error(
        "offset for {connector} partition {partition} would move backward from {from:?} to {to:?}; use an explicit offset reset to rewind"
    )]
    Backward {
        connector: String,
        partition: String,
        from: OffsetOrder,
        to: OffsetOrder,
    },
    #[error("invalid connector name {0:?} for the offset store")]
    InvalidName(String),
    #[error("i/o error on {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("offset file {path} is unreadable: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

impl OffsetStoreError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            OffsetStoreError::Io { .. } => ErrorKind::Transient,
            OffsetStoreError::InvalidName(_) => ErrorKind::Config,
            _ => ErrorKind::Definite,
        }
    }
}

/// Where source offsets live.
#[async_trait]
pub trait OffsetStore: Send + Sync {
    /// All committed offsets of a connector.
    async fn load(&self, connector: &str) -> Result<Vec<StoredOffset>, OffsetStoreError>;

    /// Durably records offsets; refuses any that would move a partition backward.
    async fn commit(
        &self,
        connector: &str,
        offsets: Vec<StoredOffset>,
    ) -> Result<(), OffsetStoreError>;

    /// Replaces a connector's offsets wholesale (the REST offsets API); may go backward.
    /// An empty list removes them all, so the connector starts from scratch.
    async fn reset(
        &self,
        connector: &str,
        offsets: Vec<StoredOffset>,
    ) -> Result<(), OffsetStoreError>;
}

/// A connector's offsets by source partition.
pub type PartitionOffsets = BTreeMap<SourcePartition, SourceOffset>;

/// `current` with `offsets` applied, or an error if any would move its partition backward.
/// The one place the monotonic guard lives; every [`OffsetStore::commit`] goes through it.
pub fn merge_forward(
    connector: &str,
    current: &PartitionOffsets,
    offsets: &[StoredOffset],
) -> Result<PartitionOffsets, OffsetStoreError> {
    let mut next = current.clone();
    for stored in offsets {
        if let Some(existing) = next.get(&stored.partition)
            && stored.offset.order < existing.order
        {
            return Err(OffsetStoreError::Backward {
                connector: connector.to_owned(),
                partition: stored.partition.0.to_string(),
                from: existing.order,
                to: stored.offset.order,
            });
        }
        next.insert(stored.partition.clone(), stored.offset.clone());
    }
    Ok(next)
}

/// The offsets of a connector as a list.
pub fn to_stored(offsets: Option<&PartitionOffsets>) -> Vec<StoredOffset> {
    offsets
        .map(|m| {
            m.iter()
                .map(|(p, o)| StoredOffset {
                    partition: p.clone(),
                    offset: o.clone(),
                })
                .collect()
        })
        .unwrap_or_default()
}

#[derive(Debug, Serialize, Deserialize)]
struct FileEntry {
    partition: serde_json::Value,
    offset: serde_json::Value,
    order: OffsetOrder,
}

/// Offsets in `<dir>/<connector>.json`, replaced atomically and fsync'd on every commit.
pub struct FileOffsetStore {
    dir: PathBuf,
    /// Cached contents, per connector; also serialises writers.
    cache: Mutex<BTreeMap<String, BTreeMap<SourcePartition, SourceOffset>>>,
}

impl FileOffsetStore {
    pub fn open(dir: &Path) -> Result<Arc<Self>, OffsetStoreError> {
        create_dir_durable(dir).map_err(|source| OffsetStoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Arc::new(FileOffsetStore {
            dir: dir.to_path_buf(),
            cache: Mutex::new(BTreeMap::new()),
        }))
    }

    fn path(&self, connector: &str) -> Result<PathBuf, OffsetStoreError> {
        if connector.is_empty()
            || connector.starts_with('.')
            || connector.contains(['/', '\\', '\0'])
            || connector.len() > 200
        {
            return Err(OffsetStoreError::InvalidName(connector.to_owned()));
        }
        Ok(self.dir.join(format!("{connector}.json")))
    }

    async fn read_file(
        &self,
        connector: &str,
    ) -> Result<BTreeMap<SourcePartition, SourceOffset>, OffsetStoreError> {
        let path = self.path(connector)?;
        let raw = match tokio::fs::read(&path).await {
            Ok(raw) => raw,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(source) => return Err(OffsetStoreError::Io { path, source }),
        };
        let entries: Vec<FileEntry> =
            serde_json::from_slice(&raw).map_err(|e| OffsetStoreError::Corrupt {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        Ok(entries
            .into_iter()
            .map(|e| {
                (
                    SourcePartition::from_json(&e.partition),
                    SourceOffset {
                        value: e.offset,
                        order: e.order,
                    },
                )
            })
            .collect())
    }

    async fn write_file(
        &self,
        connector: &str,
        offsets: &BTreeMap<SourcePartition, SourceOffset>,
    ) -> Result<(), OffsetStoreError> {
        let path = self.path(connector)?;
        let entries: Vec<FileEntry> = offsets
            .iter()
            .map(|(p, o)| FileEntry {
                partition: p.to_json(),
                offset: o.value.clone(),
                order: o.order,
            })
            .collect();
        let data = serde_json::to_vec_pretty(&entries).map_err(|e| OffsetStoreError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let target = path.clone();
        tokio::task::spawn_blocking(move || write_atomic(&target, &data))
            .await
            .map_err(|e| OffsetStoreError::Io {
                path: path.clone(),
                source: std::io::Error::other(e),
            })?
            .map_err(|source| OffsetStoreError::Io { path, source })
    }
}

#[async_trait]
impl OffsetStore for FileOffsetStore {
    async fn load(&self, connector: &str) -> Result<Vec<StoredOffset>, OffsetStoreError> {
        let mut cache = self.cache.lock().await;
        if !cache.contains_key(connector) {
            let loaded = self.read_file(connector).await?;
            cache.insert(connector.to_owned(), loaded);
        }
        Ok(to_stored(cache.get(connector)))
    }

    async fn commit(
        &self,
        connector: &str,
        offsets: Vec<StoredOffset>,
    ) -> Result<(), OffsetStoreError> {
        let mut cache = self.cache.lock().await;
        let current = match cache.get(connector) {
            Some(current) => current.clone(),
            None => self.read_file(connector).await?,
        };
        let next = merge_forward(connector, &current, &offsets)?;
        self.write_file(connector, &next).await?;
        cache.insert(connector.to_owned(), next);
        Ok(())
    }

    async fn reset(
        &self,
        connector: &str,
        offsets: Vec<StoredOffset>,
    ) -> Result<(), OffsetStoreError> {
        let mut cache = self.cache.lock().await;
        let next: BTreeMap<_, _> = offsets
            .into_iter()
            .map(|s| (s.partition, s.offset))
            .collect();
        if next.is_empty() {
            let path = self.path(connector)?;
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(OffsetStoreError::Io { path, source }),
            }
        } else {
            self.write_file(connector, &next).await?;
        }
        cache.insert(connector.to_owned(), next);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(p: &str, n: u64) -> StoredOffset {
        StoredOffset {
            partition: SourcePartition::from_json(&json!({ "server": p })),
            offset: SourceOffset {
                value: json!({ "pos": n }),
                order: OffsetOrder([n, 0, 0]),
            },
        }
    }

    #[tokio::test]
    async fn monotonic_and_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = FileOffsetStore::open(dir.path()).expect("open");
            store
                .commit("c1", vec![stored("a", 5), stored("b", 1)])
                .await
                .expect("commit");
            store
                .commit("c1", vec![stored("a", 9)])
                .await
                .expect("forward");
            let err = store
                .commit("c1", vec![stored("a", 8)])
                .await
                .expect_err("backward");
            assert!(matches!(err, OffsetStoreError::Backward { .. }), "{err}");
            store
                .commit("c1", vec![stored("a", 9)])
                .await
                .expect("same offset again is fine");
        }
        let store = FileOffsetStore::open(dir.path()).expect("reopen");
        let mut loaded = store.load("c1").await.expect("load");
        loaded.sort_by(|x, y| x.partition.cmp(&y.partition));
        assert_eq!(loaded, vec![stored("a", 9), stored("b", 1)]);
        assert!(store.load("other").await.expect("load").is_empty());
    }

    #[tokio::test]
    async fn explicit_reset_may_rewind_or_clear() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileOffsetStore::open(dir.path()).expect("open");
        store
            .commit("c", vec![stored("a", 9)])
            .await
            .expect("commit");
        store.reset("c", vec![stored("a", 2)]).await.expect("reset");
        assert_eq!(store.load("c").await.expect("load"), vec![stored("a", 2)]);
        store.reset("c", vec![]).await.expect("clear");
        let reopened = FileOffsetStore::open(dir.path()).expect("reopen");
        assert!(reopened.load("c").await.expect("load").is_empty());
    }

    #[tokio::test]
    async fn hostile_names_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileOffsetStore::open(dir.path()).expect("open");
        for name in ["", "../x", "a/b", ".hidden"] {
            assert!(store.load(name).await.is_err(), "{name:?}");
        }
    }
}
