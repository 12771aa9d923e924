//! `storage: {type: kafka, ...}`: where the brokers are, how to produce, how topics are made.
//!
//! Keys follow Kafka Connect where Connect has a name for the setting:
//! `topic.creation.default.*` for topics created on demand, `producer.override.*` and
//! `consumer.override.*` for raw client properties (librdkafka names, which match the Java
//! client's for the common ones: `linger.ms`, `batch.size`, `compression.type`, ...).
//! `sink.partition.assignment` (ours) chooses static partition shares or consumer group
//! membership for sink tasks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::overrides::{self, Client};
use crate::config::ConfigErrors;

/// Kafka storage: topics, sink consumer groups and source offsets live in Kafka.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaStorageConfig {
    /// `host:port[,host:port...]` of the brokers.
    pub bootstrap_servers: String,
    /// Compacted topic holding source offsets in Kafka Connect's format.
    #[serde(default = "default_offsets_topic", rename = "offset.storage.topic")]
    pub offsets_topic: String,
    /// Producer `linger.ms`: how long to wait to fill a batch.
    #[serde(default = "default_linger_ms", rename = "linger.ms")]
    pub linger_ms: u32,
    /// Producer `batch.size` in bytes.
    #[serde(default = "default_batch_size", rename = "batch.size")]
    pub batch_size: u32,
    /// Producer `compression.type`.
    #[serde(default, rename = "compression.type")]
    pub compression: Compression,
    /// Settings for topics the worker creates (Kafka Connect's `topic.creation.default.*`).
    #[serde(default, rename = "topic.creation.default")]
    pub topic_creation: TopicCreation,
    /// Extra producer properties, applied last (Kafka Connect's `producer.override.*`).
    #[serde(default, rename = "producer.override")]
    pub producer_override: BTreeMap<String, serde_json::Value>,
    /// Extra consumer properties, applied last (Kafka Connect's `consumer.override.*`).
    #[serde(default, rename = "consumer.override")]
    pub consumer_override: BTreeMap<String, serde_json::Value>,
    /// How a sink's tasks share its partitions (see [`SinkAssignment`]).
    #[serde(default, rename = "sink.partition.assignment")]
    pub sink_assignment: SinkAssignment,
}

/// How a sink's tasks share the partitions of its topics; both commit in group
/// `connect-<name>` only what the sink reports durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkAssignment {
    /// Each task `assign`s its round-robin share of the partitions (the embedded log's split):
    /// no rebalance ever, for a sink run by this worker alone. The default: it needs nothing
    /// from the broker's group coordinator (tansu 0.6.0 never reassigns the partitions of a
    /// member that died), and a task never re-reads what it still buffers.
    #[default]
    Static,
    /// Each task is a member of the consumer group and `subscribe`s, as in Kafka Connect:
    /// the group shares the partitions among every task of the connector, in this worker
    /// and in others, and rebalances when tasks come and go (durable offsets are committed
    /// before a partition is given up).
    Group,
}

/// Producer compression codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// Kafka Connect's `topic.creation.default.*` group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicCreation {
    /// `topic.creation.default.partitions`.
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    /// `topic.creation.default.replication.factor`.
    #[serde(default = "default_replication", rename = "replication.factor")]
    pub replication_factor: i32,
    /// `topic.creation.default.cleanup.policy` (`delete`, `compact`, `compact,delete`).
    #[serde(
        default,
        rename = "cleanup.policy",
        skip_serializing_if = "Option::is_none"
    )]
    pub cleanup_policy: Option<String>,
    /// `topic.creation.default.retention.ms`.
    #[serde(
        default,
        rename = "retention.ms",
        skip_serializing_if = "Option::is_none"
    )]
    pub retention_ms: Option<i64>,
}

impl Default for TopicCreation {
    fn default() -> Self {
        TopicCreation {
            partitions: default_partitions(),
            replication_factor: default_replication(),
            cleanup_policy: None,
            retention_ms: None,
        }
    }
}

impl TopicCreation {
    /// Topic configs to set at creation (only those configured).
    pub fn configs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(policy) = &self.cleanup_policy {
            out.push(("cleanup.policy", policy.clone()));
        }
        if let Some(ms) = self.retention_ms {
            out.push(("retention.ms", ms.to_string()));
        }
        out
    }
}

fn default_offsets_topic() -> String {
    "connect-offsets".into()
}
fn default_linger_ms() -> u32 {
    5
}
fn default_batch_size() -> u32 {
    1_000_000
}
fn default_partitions() -> i32 {
    1
}
fn default_replication() -> i32 {
    1
}

/// A JSON scalar as a client property string (`10` and `"10"` both give `10`).
pub fn property_value(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl KafkaStorageConfig {
    /// A config with defaults for everything but the brokers.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        KafkaStorageConfig {
            bootstrap_servers: bootstrap_servers.into(),
            offsets_topic: default_offsets_topic(),
            linger_ms: default_linger_ms(),
            batch_size: default_batch_size(),
            compression: Compression::None,
            topic_creation: TopicCreation::default(),
            producer_override: BTreeMap::new(),
            consumer_override: BTreeMap::new(),
            sink_assignment: SinkAssignment::Static,
        }
    }

    /// Pure checks; field names as written in the worker config.
    pub fn validate(&self, errors: &mut ConfigErrors) {
        if self.bootstrap_servers.trim().is_empty()
            || self
                .bootstrap_servers
                .split(',')
                .any(|s| s.trim().is_empty())
        {
            errors.push(
                "storage.bootstrap_servers",
                format!(
                    "must be a non-empty list of host:port, got {:?}",
                    self.bootstrap_servers
                ),
            );
        }
        if self.offsets_topic.trim().is_empty() {
            errors.push("storage.offset.storage.topic", "must not be empty");
        }
        if self.topic_creation.partitions < 1 {
            errors.push(
                "storage.topic.creation.default.partitions",
                format!("must be at least 1, got {}", self.topic_creation.partitions),
            );
        }
        if self.topic_creation.replication_factor < 1 {
            errors.push(
                "storage.topic.creation.default.replication.factor",
                format!(
                    "must be at least 1, got {}",
                    self.topic_creation.replication_factor
                ),
            );
        }
        if let Some(policy) = &self.topic_creation.cleanup_policy
            && !matches!(
                policy.as_str(),
                "delete" | "compact" | "compact,delete" | "delete,compact"
            )
        {
            errors.push(
                "storage.topic.creation.default.cleanup.policy",
                format!("must be delete, compact or compact,delete, got {policy:?}"),
            );
        }
        for (client, map) in [
            (Client::Producer, &self.producer_override),
            (Client::Consumer, &self.consumer_override),
        ] {
            let mut scalars = BTreeMap::new();
            for (key, value) in map {
                if value.is_object() || value.is_array() || value.is_null() {
                    errors.push(
                        format!("storage.{}{key}", client.prefix()),
                        "must be a string, number or boolean",
                    );
                } else {
                    scalars.insert(key.clone(), property_value(value));
                }
            }
            overrides::check(
                client,
                &format!("storage.{}", client.prefix()),
                &scalars,
                errors,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let c = KafkaStorageConfig::new("127.0.0.1:9092");
        let mut errors = ConfigErrors::default();
        c.validate(&mut errors);
        assert!(errors.into_result(()).is_ok());
        assert_eq!(c.offsets_topic, "connect-offsets");

        let mut bad = KafkaStorageConfig::new(" ");
        bad.topic_creation.partitions = 0;
        bad.topic_creation.cleanup_policy = Some("forever".into());
        let mut errors = ConfigErrors::default();
        bad.validate(&mut errors);
        let text = errors.into_result(()).expect_err("invalid").to_string();
        assert!(text.contains("storage.bootstrap_servers"), "{text}");
        assert!(
            text.contains("storage.topic.creation.default.partitions"),
            "{text}"
        );
        assert!(text.contains("cleanup.policy"), "{text}");
    }

    #[test]
    fn worker_overrides_that_break_guarantees_are_refused() {
        let mut c = KafkaStorageConfig::new("127.0.0.1:9092");
        c.producer_override
            .insert("acks".into(), serde_json::json!(1));
        c.producer_override
            .insert("linger.ms".into(), serde_json::json!(20));
        c.consumer_override
            .insert("enable.auto.commit".into(), serde_json::json!(true));
        let mut errors = ConfigErrors::default();
        c.validate(&mut errors);
        let fields: Vec<String> = errors.0.iter().map(|e| e.field.clone()).collect();
        assert_eq!(
            fields,
            [
                "storage.producer.override.acks",
                "storage.consumer.override.enable.auto.commit"
            ]
        );
    }

    #[test]
    fn property_values_are_strings() {
        assert_eq!(property_value(&serde_json::json!(10)), "10");
        assert_eq!(property_value(&serde_json::json!("lz4")), "lz4");
        assert_eq!(property_value(&serde_json::json!(true)), "true");
    }
}
