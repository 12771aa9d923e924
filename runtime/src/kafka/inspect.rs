//! `tributary topics list|consume` against Kafka: read-only, no consumer group commits.

use std::collections::HashSet;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::config::KafkaStorageConfig;
use super::store::{ReaderContext, base_client_config, kafka_error, topic_partitions};
use crate::error::ConnectorError;
use crate::record::SinkRecord;
use crate::storage::TopicInfo;

fn reader(config: &KafkaStorageConfig) -> Result<BaseConsumer<ReaderContext>, ConnectorError> {
    let mut c = base_client_config(config);
    c.set("group.id", "tributary-cli")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true");
    c.create_with_context(ReaderContext).map_err(|e| {
        ConnectorError::config(format!("invalid Kafka consumer configuration: {e}")).with_source(e)
    })
}

/// Topics with partitions and watermarks (blocking).
pub fn list(config: &KafkaStorageConfig) -> Result<Vec<TopicInfo>, ConnectorError> {
    super::store::list_topics(&reader(config)?)
}

/// Reads `topic` (blocking) and hands each record to `each` until `max` records, or, with
/// `no_follow`, until every partition reached its end. Returns how many were read.
pub fn consume(
    config: &KafkaStorageConfig,
    topic: &str,
    from_beginning: bool,
    max: Option<u64>,
    no_follow: bool,
    mut each: impl FnMut(SinkRecord) -> std::io::Result<()>,
) -> Result<u64, ConnectorError> {
    let consumer = reader(config)?;
    let Some(partitions) = topic_partitions(&consumer)?.get(topic).copied() else {
        return Err(ConnectorError::config(format!(
            "topic {topic} does not exist (see `tributary topics list`)"
        )));
    };
    let mut list = TopicPartitionList::new();
    let start = if from_beginning {
        Offset::Beginning
    } else {
        Offset::End
    };
    for p in 0..partitions {
        list.add_partition_offset(topic, p as i32, start)
            .map_err(|e| kafka_error("cannot build the assignment", e))?;
    }
    consumer
        .assign(&list)
        .map_err(|e| kafka_error("cannot assign partitions", e))?;
    let mut at_end: HashSet<i32> = HashSet::new();
    let mut read = 0u64;
    loop {
        if max.is_some_and(|m| read >= m) || (no_follow && at_end.len() >= partitions as usize) {
            return Ok(read);
        }
        match consumer.poll(Duration::from_millis(500)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => return Err(kafka_error(&format!("cannot read topic {topic}"), e)),
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                (
                                    h.key.to_owned(),
                                    bytes::Bytes::copy_from_slice(h.value.unwrap_or_default()),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let record = SinkRecord {
                    topic: topic.into(),
                    partition: m.partition() as u32,
                    offset: m.offset() as u64,
                    record: crate::record::TopicRecord {
                        key: m.key().map(bytes::Bytes::copy_from_slice),
                        value: m.payload().map(bytes::Bytes::copy_from_slice),
                        headers,
                        timestamp_ms: m.timestamp().to_millis().unwrap_or(0),
                    },
                };
                each(record).map_err(|e| {
                    ConnectorError::transient("cannot write a record").with_source(e)
                })?;
                read += 1;
            }
        }
    }
}
