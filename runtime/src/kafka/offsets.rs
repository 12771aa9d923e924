//! [`KafkaOffsetStore`]: source offsets on a compacted topic, in Kafka Connect's format.
//!
//! # Format
//! Key `["<connector>",{partition}]`, value `{offset}`, both JSON, exactly as Kafka Connect's
//! `KafkaOffsetBackingStore` writes them, so Connect tooling (and a Connect worker pointed at
//! the same topic) reads them. A null value (tombstone) removes a partition's offset. Our
//! [`OffsetOrder`] travels in a record header, [`ORDER_HEADER`] (`[a,b,c]` JSON), which
//! Connect ignores; a record without it (written by Connect tooling) gets order zero.
//! Records are partitioned by murmur2 of the key bytes, as Connect's producer does.
//!
//! # Durability and order
//! A commit is produced with the worker's idempotent `acks=all` producer and returns only
//! after every delivery report succeeded. It is checked against the in-memory view first
//! and refused if any partition would move backward, like the file store.
//!
//! # Restore
//! On open, the topic is created if missing (`cleanup.policy=compact`), then read from the
//! beginning to the end of every partition; the last record per key wins. The end is found
//! with partition-EOF events (derived from the fetch response's high watermark), not from
//! ListOffsets, which tansu's memory engine answers wrongly.
//!
//! A config and a status topic in the same style (`connect-configs`, `connect-status`) can
//! reuse [`read_compacted`] when distributed mode arrives.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::Mutex;
use tracing::info;

use super::config::KafkaStorageConfig;
use super::store::{KafkaStore, ReaderContext, base_client_config};
use crate::error::ConnectorError;
use crate::offsets::{OffsetStore, OffsetStoreError, StoredOffset, merge_forward, to_stored};
use crate::partitioner::partition_for;
use crate::record::{OffsetOrder, SourceOffset, SourcePartition};

/// Header carrying our [`OffsetOrder`] beside Connect's value.
pub const ORDER_HEADER: &str = "tributary.offset.order";

/// How long the restore may take before giving up (transient: the worker can retry).
const RESTORE_TIMEOUT: Duration = Duration::from_secs(60);

type Offsets = BTreeMap<SourcePartition, SourceOffset>;

/// Source offsets on a compacted Kafka topic.
pub struct KafkaOffsetStore {
    topic: String,
    partitions: u32,
    producer: FutureProducer,
    cache: Mutex<BTreeMap<String, Offsets>>,
}

fn store_error(topic: &str, message: String) -> OffsetStoreError {
    OffsetStoreError::Io {
        path: PathBuf::from(format!("kafka topic {topic}")),
        source: std::io::Error::other(message),
    }
}

/// The record key, as Kafka Connect writes it.
pub fn offset_key(connector: &str, partition: &SourcePartition) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!([connector, partition.to_json()])).expect("json")
}

/// Parses a key back to (connector, partition); `None` for keys of another shape.
pub fn parse_key(key: &[u8]) -> Option<(String, SourcePartition)> {
    let value: serde_json::Value = serde_json::from_slice(key).ok()?;
    let array = value.as_array()?;
    match array.as_slice() {
        [serde_json::Value::String(name), partition] => {
            Some((name.clone(), SourcePartition::from_json(partition)))
        }
        _ => None,
    }
}

/// Applies one record of the offsets topic to the view.
fn apply(
    view: &mut BTreeMap<String, Offsets>,
    key: &[u8],
    value: Option<&[u8]>,
    order: Option<&[u8]>,
) {
    let Some((connector, partition)) = parse_key(key) else {
        return;
    };
    let entry = view.entry(connector).or_default();
    match value.and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok()) {
        None | Some(serde_json::Value::Null) => {
            entry.remove(&partition);
        }
        Some(offset) => {
            let order = order
                .and_then(|o| serde_json::from_slice::<OffsetOrder>(o).ok())
                .unwrap_or_default();
            entry.insert(
                partition,
                SourceOffset {
                    value: offset,
                    order,
                },
            );
        }
    }
}

/// Reads every partition of a compacted topic from the beginning to its current end and
/// calls `each(key, value, headers)` in partition order.
pub fn read_compacted(
    config: &KafkaStorageConfig,
    topic: &str,
    partitions: u32,
    mut each: impl FnMut(&[u8], Option<&[u8]>, Option<&rdkafka::message::BorrowedHeaders>),
) -> Result<u64, ConnectorError> {
    let mut c: ClientConfig = base_client_config(config);
    c.set("group.id", format!("tributary-restore-{topic}"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest");
    let consumer: BaseConsumer<ReaderContext> =
        c.create_with_context(ReaderContext).map_err(|e| {
            ConnectorError::config(format!("invalid Kafka consumer configuration: {e}"))
                .with_source(e)
        })?;
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition_offset(topic, p as i32, Offset::Beginning)
            .map_err(|e| super::store::kafka_error("cannot build the assignment", e))?;
    }
    consumer
        .assign(&list)
        .map_err(|e| super::store::kafka_error("cannot assign the offsets topic", e))?;
    let mut at_end: HashSet<i32> = HashSet::new();
    let mut read = 0u64;
    let deadline = Instant::now() + RESTORE_TIMEOUT;
    while at_end.len() < partitions as usize {
        if Instant::now() >= deadline {
            return Err(ConnectorError::transient(format!(
                "reading topic {topic} did not reach its end within {}s",
                RESTORE_TIMEOUT.as_secs()
            )));
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => {
                return Err(super::store::kafka_error(
                    &format!("cannot read topic {topic}"),
                    e,
                ));
            }
            Some(Ok(message)) => {
                read += 1;
                if let Some(key) = message.key() {
                    each(key, message.payload(), message.headers());
                }
            }
        }
    }
    Ok(read)
}

impl KafkaOffsetStore {
    /// Creates the offsets topic if needed (compacted) and restores every connector's
    /// offsets from it.
    pub async fn open(store: &KafkaStore) -> Result<Arc<Self>, ConnectorError> {
        let config = store.config().clone();
        let topic = config.offsets_topic.clone();
        let partitions = store
            .create_topic(
                &topic,
                Some(1),
                None,
                &[("cleanup.policy", "compact".to_owned())],
            )
            .await?;
        let read_config = config.clone();
        let read_topic = topic.clone();
        let (view, read) = tokio::task::spawn_blocking(move || {
            let mut view: BTreeMap<String, Offsets> = BTreeMap::new();
            let read = read_compacted(&read_config, &read_topic, partitions, |k, v, h| {
                let order = h.and_then(|h| {
                    h.iter()
                        .find(|h| h.key == ORDER_HEADER)
                        .and_then(|h| h.value)
                });
                apply(&mut view, k, v, order);
            })?;
            Ok::<_, ConnectorError>((view, read))
        })
        .await
        .map_err(|e| ConnectorError::transient("offset restore task failed").with_source(e))??;
        info!(topic = %topic, records = read, connectors = view.len(), "restored source offsets from Kafka");
        Ok(Arc::new(KafkaOffsetStore {
            topic,
            partitions,
            producer: store.producer().clone(),
            cache: Mutex::new(view),
        }))
    }

    /// Produces records (`None` value = tombstone) and waits for every delivery report.
    /// Several records go one after the other, each acknowledged before the next is sent:
    /// they may land on different partitions of the offsets topic, and a crash between two
    /// must leave the earlier positions stored (records come in production order, see
    /// `AckTracker::take_committable`), never a later one without them.
    async fn write(
        &self,
        connector: &str,
        records: Vec<(SourcePartition, Option<SourceOffset>)>,
    ) -> Result<(), OffsetStoreError> {
        for (partition, offset) in &records {
            let key = offset_key(connector, partition);
            let value = offset
                .as_ref()
                .map(|o| serde_json::to_vec(&o.value).expect("json"));
            let order = offset
                .as_ref()
                .map(|o| serde_json::to_vec(&o.order).expect("json"));
            let mut headers = OwnedHeaders::new();
            if let Some(order) = &order {
                headers = headers.insert(Header {
                    key: ORDER_HEADER,
                    value: Some(order.as_slice()),
                });
            }
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topic)
                .key(key.as_slice())
                .partition(partition_for(Some(&key), self.partitions) as i32)
                .headers(headers);
            if let Some(value) = &value {
                record = record.payload(value.as_slice());
            }
            let delivery = loop {
                match self.producer.send_result(record) {
                    Ok(delivery) => break delivery,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err((e, _)) => {
                        return Err(store_error(&self.topic, format!("cannot produce: {e}")));
                    }
                }
            };
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    return Err(store_error(
                        &self.topic,
                        format!("offset record not acknowledged: {e}"),
                    ));
                }
                Err(_) => {
                    return Err(store_error(
                        &self.topic,
                        "the producer shut down before acknowledging an offset record".into(),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl OffsetStore for KafkaOffsetStore {
    async fn load(&self, connector: &str) -> Result<Vec<StoredOffset>, OffsetStoreError> {
        let cache = self.cache.lock().await;
        Ok(to_stored(cache.get(connector)))
    }

    async fn commit(
        &self,
        connector: &str,
        offsets: Vec<StoredOffset>,
    ) -> Result<(), OffsetStoreError> {
        let mut cache = self.cache.lock().await;
        let current = cache.get(connector).cloned().unwrap_or_default();
        let next = merge_forward(connector, &current, &offsets)?;
        let records = offsets
            .into_iter()
            .map(|s| (s.partition, Some(s.offset)))
            .collect();
        self.write(connector, records).await?;
        cache.insert(connector.to_owned(), next);
        Ok(())
    }

    async fn reset(
        &self,
        connector: &str,
        offsets: Vec<StoredOffset>,
    ) -> Result<(), OffsetStoreError> {
        let mut cache = self.cache.lock().await;
        let next: Offsets = offsets
            .into_iter()
            .map(|s| (s.partition, s.offset))
            .collect();
        let mut records: Vec<(SourcePartition, Option<SourceOffset>)> = cache
            .get(connector)
            .map(|current| {
                current
                    .keys()
                    .filter(|p| !next.contains_key(p))
                    .map(|p| (p.clone(), None))
                    .collect()
            })
            .unwrap_or_default();
        records.extend(next.iter().map(|(p, o)| (p.clone(), Some(o.clone()))));
        self.write(connector, records).await?;
        cache.insert(connector.to_owned(), next);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_is_kafka_connect_format() {
        let p = SourcePartition::from_json(&json!({"server": "inventory"}));
        let key = offset_key("orders-cdc", &p);
        assert_eq!(
            String::from_utf8(key.clone()).expect("utf-8"),
            r#"["orders-cdc",{"server":"inventory"}]"#
        );
        assert_eq!(parse_key(&key), Some(("orders-cdc".into(), p)));
        assert_eq!(parse_key(b"{\"not\":\"a key\"}"), None);
    }

    #[test]
    fn last_record_wins_and_tombstones_remove() {
        let p = SourcePartition::from_json(&json!({"seq": 0}));
        let key = offset_key("c", &p);
        let mut view = BTreeMap::new();
        apply(&mut view, &key, Some(br#"{"seq":1}"#), Some(b"[1,0,0]"));
        apply(&mut view, &key, Some(br#"{"seq":5}"#), Some(b"[5,0,0]"));
        assert_eq!(view["c"][&p].value, json!({"seq": 5}));
        assert_eq!(view["c"][&p].order, OffsetOrder([5, 0, 0]));
        // Written by Connect tooling: no order header.
        apply(&mut view, &key, Some(br#"{"seq":2}"#), None);
        assert_eq!(view["c"][&p].order, OffsetOrder::default());
        apply(&mut view, &key, None, None);
        assert!(view["c"].is_empty());
    }
}
