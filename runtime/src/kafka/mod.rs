//! Kafka storage (`storage: {type: kafka}`): topics, sink consumer groups and source offsets
//! in a Kafka cluster, through rdkafka (bundled librdkafka).
//!
//! - [`store`]: the [`TopicStore`](crate::storage::TopicStore): idempotent `acks=all`
//!   producer whose delivery reports feed the source runner's ack tracker; topics created on
//!   demand with `topic.creation.default.*`.
//! - [`consumer`]: a sink task's reader in group `connect-<name>`, manual synchronous commits
//!   of what the sink reports durable.
//! - [`offsets`]: the [`OffsetStore`](crate::offsets::OffsetStore) on a compacted topic in
//!   Kafka Connect's format, restored on start.
//!
//! Exactly-once source (`exactly.once.support=required`, KIP-618) needs Kafka transactions;
//! no broker installable here supports them (tansu 0.6.0, nisshi 0.8.1: no EndTxn), so it is
//! rejected at validation for now (see `registry.rs`).

pub mod config;
pub mod consumer;
pub mod inspect;
pub mod offsets;
pub mod store;

pub use config::KafkaStorageConfig;
pub use offsets::KafkaOffsetStore;
pub use store::KafkaStore;
