//! [`KafkaStore`]: the [`TopicStore`] on a Kafka cluster.
//!
//! # Producing
//! One idempotent `FutureProducer` (`acks=all`, `enable.idempotence=true`) per worker.
//! [`TopicStore::produce`] enqueues every record in call order (so per-partition order is the
//! source order) and returns a future that resolves only when EVERY delivery report of the
//! call succeeded; the source runner feeds that future to its `AckTracker`, so a source
//! offset is committed only after all records before it are acknowledged by all in-sync
//! replicas, exactly as with the embedded log. The partition is chosen by the caller with
//! murmur2 ([`crate::partitioner`]) and passed explicitly, so keys land where a Java client
//! would put them.
//!
//! # Topics
//! Created on demand through the Admin API; an existing topic is used as is. A source
//! connector with `topic.creation.*` keys (KIP-158, [`super::topic_creation`]) creates its
//! topics with the settings of the group that matches; otherwise the worker's
//! `storage.topic.creation.default` (partitions, replication factor, `cleanup.policy`,
//! `retention.ms`) applies.
//!
//! # Per-connector clients
//! [`TopicStore::for_connector`] gives a connector's tasks a view of the store with the
//! connector's own settings ([`ConnectorKafkaSettings`]): a producer of its own when it sets
//! `producer.override.*` (else the worker's, shared), its consumers built with
//! `consumer.override.*` on top of the worker's, its topic creation rules. Metadata, admin
//! and the cache of known topics stay shared.
//!
//! # Errors
//! Record-level failures that retrying cannot fix (message too large, invalid record,
//! authorization) are definite; everything else (broker down, timeouts) is transient, so the
//! supervisor restarts the task and the source resumes from its last committed offset.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::future::BoxFuture;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tracing::info;

use super::config::{KafkaStorageConfig, property_value};
use super::connector_settings::ConnectorKafkaSettings;
use super::consumer::KafkaConsumer;
use super::topic_creation::TopicCreationRules;
use crate::error::{ConnectorError, ErrorKind};
use crate::record::{ConsumerOffsets, TopicPartition};
use crate::storage::{
    PartitionInfo, ProduceRecord, TopicConsumer, TopicInfo, TopicSelector, TopicStore,
};

/// How long metadata and admin calls may take.
pub(crate) const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Maps a client error to the runtime's error kinds.
pub(crate) fn kafka_error(context: &str, err: KafkaError) -> ConnectorError {
    let definite = matches!(
        err.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::InvalidConfig
        )
    );
    let kind = if definite {
        ErrorKind::Definite
    } else {
        ErrorKind::Transient
    };
    ConnectorError::new(kind, format!("{context}: {err}")).with_source(err)
}

/// Context of the readers that watch partition-EOF events (restore, CLI): librdkafka also
/// reports those as client errors, which are expected here, not worth an ERROR line.
pub(crate) struct ReaderContext;

impl rdkafka::client::ClientContext for ReaderContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let eof = matches!(error, KafkaError::PartitionEOF(_))
            || error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF);
        if !eof {
            tracing::error!(error = %error, reason, "Kafka client error");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for ReaderContext {}

/// Client properties shared by every client: brokers plus a quiet log.
pub(crate) fn base_client_config(config: &KafkaStorageConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.bootstrap_servers);
    c
}

/// The producer's properties: durability, tuning, then `producer.override.*` (the worker's,
/// then the connector's), then durability again: validation refuses overrides that would
/// weaken it ([`super::overrides`]), and this makes sure none does.
pub(crate) fn producer_config(config: &KafkaStorageConfig) -> ClientConfig {
    let mut c = base_client_config(config);
    c.set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", config.linger_ms.to_string())
        .set("batch.size", config.batch_size.to_string())
        .set("compression.type", config.compression.as_str())
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576");
    for (key, value) in &config.producer_override {
        c.set(key, property_value(value));
    }
    c.set("acks", "all").set("enable.idempotence", "true");
    c
}

/// `config` with a connector's overrides added after the worker's.
fn with_connector_overrides(
    config: &KafkaStorageConfig,
    settings: &ConnectorKafkaSettings,
) -> KafkaStorageConfig {
    let mut c = config.clone();
    let as_json = |map: &std::collections::BTreeMap<String, String>| {
        map.iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect::<Vec<_>>()
    };
    c.producer_override
        .extend(as_json(&settings.producer_override));
    c.consumer_override
        .extend(as_json(&settings.consumer_override));
    c
}

/// Creates a producer; configuration errors are config errors.
pub(crate) fn create_producer(
    config: &KafkaStorageConfig,
) -> Result<FutureProducer, ConnectorError> {
    producer_config(config).create().map_err(|e| {
        ConnectorError::config(format!("invalid Kafka producer configuration: {e}")).with_source(e)
    })
}

/// [`TopicStore`] on Kafka: the worker's store, or a connector's view of it
/// ([`TopicStore::for_connector`]).
pub struct KafkaStore {
    /// The effective config: the worker's, with the connector's overrides in a view.
    config: KafkaStorageConfig,
    /// The worker's producer (the offset store writes with it).
    worker_producer: FutureProducer,
    /// This view's producer: the worker's, or the connector's own when it overrides
    /// properties (an invalid combination fails the first produce, as a config error).
    producer: Result<FutureProducer, String>,
    /// The connector's topic creation rules (KIP-158), if it has any.
    topic_creation: Option<Arc<TopicCreationRules>>,
    admin: Arc<AdminClient<DefaultClientContext>>,
    /// A client used only for metadata and watermarks.
    metadata: Arc<BaseConsumer>,
    /// Partition counts of topics known to exist (shared by every view).
    known: Arc<Mutex<HashMap<String, u32>>>,
}

impl KafkaStore {
    /// Creates the clients (no network I/O yet; librdkafka connects lazily).
    pub fn new(config: KafkaStorageConfig) -> Result<Arc<Self>, ConnectorError> {
        let producer = create_producer(&config)?;
        let admin: AdminClient<DefaultClientContext> =
            base_client_config(&config).create().map_err(|e| {
                ConnectorError::config(format!("invalid Kafka admin configuration: {e}"))
                    .with_source(e)
            })?;
        let metadata: BaseConsumer = base_client_config(&config).create().map_err(|e| {
            ConnectorError::config(format!("invalid Kafka client configuration: {e}"))
                .with_source(e)
        })?;
        Ok(Arc::new(KafkaStore {
            config,
            worker_producer: producer.clone(),
            producer: Ok(producer),
            topic_creation: None,
            admin: Arc::new(admin),
            metadata: Arc::new(metadata),
            known: Arc::new(Mutex::new(HashMap::new())),
        }))
    }

    /// A view of this store with a connector's own settings (see the module doc).
    pub fn with_connector(&self, connector: &str, settings: &ConnectorKafkaSettings) -> Self {
        let config = with_connector_overrides(&self.config, settings);
        let producer = if settings.producer_override.is_empty() {
            self.producer.clone()
        } else {
            create_producer(&config).map_err(|e| {
                format!(
                    "connector {connector}: producer.override.* gives an invalid producer: {}",
                    e.trace()
                )
            })
        };
        KafkaStore {
            config,
            worker_producer: self.worker_producer.clone(),
            producer,
            topic_creation: settings.topic_creation.clone().map(Arc::new),
            admin: self.admin.clone(),
            metadata: self.metadata.clone(),
            known: self.known.clone(),
        }
    }

    pub fn config(&self) -> &KafkaStorageConfig {
        &self.config
    }

    /// The worker's producer (shared with the Kafka offset store).
    pub fn producer(&self) -> &FutureProducer {
        &self.worker_producer
    }

    fn known(&self, topic: &str) -> Option<u32> {
        self.known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(topic)
            .copied()
    }

    fn remember(&self, topic: &str, partitions: u32) {
        self.known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(topic.to_owned(), partitions);
    }

    /// Partition counts of every topic, from fresh metadata.
    pub async fn topic_partitions(&self) -> Result<HashMap<String, u32>, ConnectorError> {
        let metadata = self.metadata.clone();
        tokio::task::spawn_blocking(move || topic_partitions(&metadata))
            .await
            .map_err(|e| ConnectorError::transient("metadata task failed").with_source(e))?
    }

    /// Creates `topic` with `partitions` (or the configured default) and `configs`, unless it
    /// exists; waits until metadata shows it. Returns the partition count.
    pub async fn create_topic(
        &self,
        topic: &str,
        partitions: Option<i32>,
        replication_factor: Option<i32>,
        configs: &[(&str, String)],
    ) -> Result<u32, ConnectorError> {
        if let Some(n) = self.topic_partitions().await?.get(topic) {
            return Ok(*n);
        }
        let creation = &self.config.topic_creation;
        let partitions = partitions.unwrap_or(creation.partitions);
        let replication_factor = replication_factor.unwrap_or(creation.replication_factor);
        let mut new_topic = NewTopic::new(
            topic,
            partitions,
            TopicReplication::Fixed(replication_factor),
        );
        for (key, value) in configs {
            new_topic = new_topic.set(key, value);
        }
        let options = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
        let results = self
            .admin
            .create_topics([&new_topic], &options)
            .await
            .map_err(|e| kafka_error(&format!("cannot create topic {topic}"), e))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(kafka_error(
                        &format!("cannot create topic {name}"),
                        KafkaError::AdminOp(code),
                    ));
                }
            }
        }
        info!(
            topic,
            partitions,
            replication_factor,
            configs = ?configs,
            "created Kafka topic"
        );
        // Metadata propagates asynchronously; wait until the topic is visible.
        let deadline = Instant::now() + METADATA_TIMEOUT;
        loop {
            if let Some(n) = self.topic_partitions().await?.get(topic)
                && *n > 0
            {
                return Ok(*n);
            }
            if Instant::now() >= deadline {
                return Err(ConnectorError::transient(format!(
                    "topic {topic} was created but does not show in metadata yet"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub(crate) fn topic_partitions<C: rdkafka::consumer::ConsumerContext>(
    client: &BaseConsumer<C>,
) -> Result<HashMap<String, u32>, ConnectorError> {
    let metadata = client
        .fetch_metadata(None, METADATA_TIMEOUT)
        .map_err(|e| kafka_error("cannot fetch Kafka metadata", e))?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| (t.name().to_owned(), t.partitions().len() as u32))
        .collect())
}

#[async_trait]
impl TopicStore for KafkaStore {
    async fn ensure_topic(&self, topic: &str) -> Result<u32, ConnectorError> {
        if let Some(n) = self.known(topic) {
            return Ok(n);
        }
        let n = match &self.topic_creation {
            Some(rules) => {
                let (group, settings) = rules.for_topic(topic);
                let configs: Vec<(&str, String)> = settings
                    .configs
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.clone()))
                    .collect();
                let n = self
                    .create_topic(
                        topic,
                        Some(settings.partitions),
                        Some(settings.replication_factor),
                        &configs,
                    )
                    .await
                    .map_err(|e| {
                        let message =
                            format!("{} (settings of topic.creation group {group})", e.message);
                        ConnectorError::new(e.kind, message)
                    })?;
                tracing::debug!(topic, group, "topic creation group");
                n
            }
            None => {
                let configs = self.config.topic_creation.configs();
                self.create_topic(topic, None, None, &configs).await?
            }
        };
        self.remember(topic, n);
        Ok(n)
    }

    fn for_connector(
        &self,
        connector: &str,
        settings: &ConnectorKafkaSettings,
    ) -> Option<Arc<dyn TopicStore>> {
        if settings.is_empty() {
            return None;
        }
        Some(Arc::new(self.with_connector(connector, settings)))
    }

    async fn ensure_dead_letter_topic(
        &self,
        topic: &str,
        replication_factor: i16,
    ) -> Result<u32, ConnectorError> {
        if let Some(n) = self.known(topic) {
            return Ok(n);
        }
        let n = self
            .create_topic(topic, Some(1), Some(i32::from(replication_factor)), &[])
            .await
            .map_err(|e| {
                let message = format!(
                    "{}; check errors.deadletterqueue.topic.replication.factor ({replication_factor}) \
                     against the number of brokers",
                    e.message
                );
                ConnectorError::new(e.kind, message)
            })?;
        self.remember(topic, n);
        Ok(n)
    }

    fn produce(
        &self,
        records: Vec<ProduceRecord>,
    ) -> BoxFuture<'static, Result<(), ConnectorError>> {
        let producer = match &self.producer {
            Ok(producer) => producer,
            Err(message) => {
                let err = ConnectorError::config(message.clone());
                return Box::pin(async move { Err(err) });
            }
        };
        let mut pending = Vec::with_capacity(records.len());
        for r in records {
            let mut headers = OwnedHeaders::new_with_capacity(r.record.headers.len());
            for (key, value) in &r.record.headers {
                headers = headers.insert(Header {
                    key,
                    value: Some(value.as_ref()),
                });
            }
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&r.topic)
                .partition(r.partition as i32)
                .timestamp(r.record.timestamp_ms)
                .headers(headers);
            if let Some(key) = &r.record.key {
                record = record.key(key.as_ref());
            }
            if let Some(value) = &r.record.value {
                record = record.payload(value.as_ref());
            }
            // Enqueue in order; when the local queue is full, let deliveries drain first.
            loop {
                match producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        producer.poll(Duration::from_millis(10));
                    }
                    Err((err, _)) => {
                        let err = kafka_error(&format!("cannot produce to {}", r.topic), err);
                        return Box::pin(async move { Err(err) });
                    }
                }
            }
        }
        Box::pin(async move {
            // Every report must succeed; the first failure fails the whole call.
            for delivery in pending {
                match delivery.await {
                    Ok(Ok(_)) => {}
                    Ok(Err((err, _message))) => {
                        return Err(kafka_error("Kafka did not acknowledge a record", err));
                    }
                    Err(_canceled) => {
                        return Err(ConnectorError::transient(
                            "the Kafka producer shut down before acknowledging a record",
                        ));
                    }
                }
            }
            Ok(())
        })
    }

    async fn consumer(
        &self,
        group: &str,
        selector: TopicSelector,
        task_id: u32,
        task_count: u32,
    ) -> Result<Box<dyn TopicConsumer>, ConnectorError> {
        let consumer = KafkaConsumer::new(&self.config, group, selector, task_id, task_count)?;
        Ok(Box::new(consumer))
    }

    async fn list_topics(&self) -> Result<Vec<TopicInfo>, ConnectorError> {
        let client = self.metadata.clone();
        tokio::task::spawn_blocking(move || list_topics(&client))
            .await
            .map_err(|e| ConnectorError::transient("metadata task failed").with_source(e))?
    }

    async fn group_offsets(
        &self,
        group: &str,
        selector: &TopicSelector,
    ) -> Result<Option<ConsumerOffsets>, ConnectorError> {
        let metadata = self.metadata.clone();
        let config = super::consumer::consumer_config(&self.config, group);
        let selector = selector.clone();
        tokio::task::spawn_blocking(move || {
            committed_group_offsets(&metadata, &config, &selector).map(Some)
        })
        .await
        .map_err(|e| ConnectorError::transient("metadata task failed").with_source(e))?
    }

    async fn cluster_id(&self) -> Result<Option<String>, ConnectorError> {
        let client = self.metadata.clone();
        let id =
            tokio::task::spawn_blocking(move || client.client().fetch_cluster_id(METADATA_TIMEOUT))
                .await
                .map_err(|e| ConnectorError::transient("metadata task failed").with_source(e))?;
        id.map(Some)
            .ok_or_else(|| ConnectorError::transient("the Kafka cluster did not report its id"))
    }
}

/// The offsets `group` committed on every partition of the topics `selector` matches (a
/// client in the group that neither subscribes nor joins asks the group coordinator).
fn committed_group_offsets(
    metadata: &BaseConsumer,
    config: &ClientConfig,
    selector: &TopicSelector,
) -> Result<ConsumerOffsets, ConnectorError> {
    let topics = metadata
        .fetch_metadata(None, METADATA_TIMEOUT)
        .map_err(|e| kafka_error("cannot fetch Kafka metadata", e))?;
    let mut list = rdkafka::TopicPartitionList::new();
    for t in topics.topics() {
        if t.error().is_some() || !selector.matches(t.name()) {
            continue;
        }
        for p in t.partitions() {
            list.add_partition(t.name(), p.id());
        }
    }
    let mut out = ConsumerOffsets::new();
    if list.count() == 0 {
        return Ok(out);
    }
    let asker: BaseConsumer = config
        .create()
        .map_err(|e| kafka_error("cannot create a consumer to read group offsets", e))?;
    let committed = asker
        .committed_offsets(list, METADATA_TIMEOUT)
        .map_err(|e| kafka_error("cannot read the group's committed offsets", e))?;
    for e in committed.elements() {
        if let (rdkafka::Offset::Offset(n), Ok(partition)) =
            (e.offset(), u32::try_from(e.partition()))
            && n >= 0
        {
            out.insert(TopicPartition::new(e.topic(), partition), n as u64);
        }
    }
    Ok(out)
}

/// Topics with partition watermarks (as the broker reports them; tansu's memory engine
/// reports a wrong high watermark through ListOffsets).
pub(crate) fn list_topics<C: rdkafka::consumer::ConsumerContext>(
    client: &BaseConsumer<C>,
) -> Result<Vec<TopicInfo>, ConnectorError> {
    let metadata = client
        .fetch_metadata(None, METADATA_TIMEOUT)
        .map_err(|e| kafka_error("cannot fetch Kafka metadata", e))?;
    let mut out = Vec::new();
    for t in metadata.topics() {
        if t.error().is_some() || t.name().starts_with("__") {
            continue;
        }
        let mut partitions = Vec::new();
        for p in t.partitions() {
            let (low, high) = client
                .fetch_watermarks(t.name(), p.id(), METADATA_TIMEOUT)
                .map_err(|e| kafka_error("cannot fetch watermarks", e))?;
            partitions.push(PartitionInfo {
                partition: p.id() as u32,
                log_start_offset: low.max(0) as u64,
                high_watermark: high.max(0) as u64,
                size_bytes: 0,
            });
        }
        partitions.sort_by_key(|p| p.partition);
        out.push(TopicInfo {
            name: t.name().to_owned(),
            partitions,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_is_durable_and_overridable() {
        let mut config = KafkaStorageConfig::new("127.0.0.1:1");
        config
            .producer_override
            .insert("linger.ms".into(), serde_json::json!(50));
        let c = producer_config(&config);
        assert_eq!(c.get("acks"), Some("all"));
        assert_eq!(c.get("enable.idempotence"), Some("true"));
        assert_eq!(c.get("linger.ms"), Some("50"));
    }

    #[test]
    fn errors_are_classified() {
        let e = kafka_error(
            "x",
            KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge),
        );
        assert_eq!(e.kind, ErrorKind::Definite);
        let e = kafka_error(
            "x",
            KafkaError::MessageProduction(RDKafkaErrorCode::BrokerTransportFailure),
        );
        assert_eq!(e.kind, ErrorKind::Transient);
    }
}
