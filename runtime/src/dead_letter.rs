//! Records that cannot be converted, transformed or written: Kafka Connect's
//! `errors.tolerance`, retries (`errors.retry.*`), logging (`errors.log.*`) and dead-letter
//! queue (`errors.deadletterqueue.*`).
//!
//! Sink tasks hand every bad record to [`ErrantRecordReporter::report`]:
//! - a transient error (a registry or target outage) is returned unchanged: the task is
//!   retried with backoff and the record is read again; it is never dead-lettered;
//! - with `errors.tolerance=none` (the default) the report fails the task, and `/status`
//!   shows the record's topic, partition, offset, stage and reason;
//! - with `all` the record is counted, logged, and (when `errors.deadletterqueue.topic.name`
//!   is set) written to the dead-letter topic with its original key, value and headers plus
//!   Kafka Connect's `__connect.errors.*` context headers
//!   (`errors.deadletterqueue.context.headers.enable=true`). The write is durable before
//!   `report` returns, so the sink's consumer offset never commits past a record that is
//!   neither written nor dead-lettered.
//!
//! Counters per task: [`counters`] / [`all_counters`] (for `/metrics`).

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use tracing::{error, warn};

use crate::config::{ConfigErrors, Parsed};
use crate::error::{Backoff, ConnectorError, ErrorKind};
use crate::record::{SinkRecord, TopicRecord};
use crate::storage::{ProduceRecord, TopicStore};

/// Where in the pipeline a record failed (Kafka Connect's stage names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    KeyConverter,
    ValueConverter,
    HeaderConverter,
    Transformation,
    TaskPut,
    TaskPoll,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::KeyConverter => "KEY_CONVERTER",
            Stage::ValueConverter => "VALUE_CONVERTER",
            Stage::HeaderConverter => "HEADER_CONVERTER",
            Stage::Transformation => "TRANSFORMATION",
            Stage::TaskPut => "TASK_PUT",
            Stage::TaskPoll => "TASK_POLL",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Kafka Connect's dead-letter context header names.
pub mod headers {
    pub const TOPIC: &str = "__connect.errors.topic";
    pub const PARTITION: &str = "__connect.errors.partition";
    pub const OFFSET: &str = "__connect.errors.offset";
    pub const CONNECTOR: &str = "__connect.errors.connector.name";
    pub const TASK: &str = "__connect.errors.task.id";
    pub const STAGE: &str = "__connect.errors.stage";
    pub const CLASS: &str = "__connect.errors.class.name";
    pub const EXCEPTION_CLASS: &str = "__connect.errors.exception.class.name";
    pub const EXCEPTION_MESSAGE: &str = "__connect.errors.exception.message";
    pub const EXCEPTION_STACKTRACE: &str = "__connect.errors.exception.stacktrace";
}

/// A connector's `errors.*` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorPolicy {
    /// `errors.tolerance=all`: skip (and dead-letter) bad records instead of failing.
    pub tolerate: bool,
    /// `errors.retry.timeout`: how long transient failures are retried in place (0: not at
    /// all, the task restarts with backoff instead; `None`: forever).
    pub retry_timeout: Option<Duration>,
    /// `errors.retry.delay.max.ms`
    pub retry_delay_max: Duration,
    /// `errors.log.enable`: also log failures that fail the task, with their context.
    pub log_enable: bool,
    /// `errors.log.include.messages`: include record keys and values in those logs.
    pub log_include_messages: bool,
    /// `errors.deadletterqueue.topic.name` (sinks only).
    pub dlq_topic: Option<String>,
    /// `errors.deadletterqueue.topic.replication.factor` (Kafka storage only; -1 is the
    /// broker's default).
    pub dlq_replication_factor: i16,
    /// `errors.deadletterqueue.context.headers.enable`
    pub context_headers: bool,
    /// `connector.class`, `key.converter`, `value.converter`, for the class-name header.
    pub connector_class: String,
    pub key_converter: String,
    pub value_converter: String,
}

impl Default for ErrorPolicy {
    fn default() -> Self {
        ErrorPolicy {
            tolerate: false,
            retry_timeout: Some(Duration::ZERO),
            retry_delay_max: Duration::from_secs(60),
            log_enable: false,
            log_include_messages: false,
            dlq_topic: None,
            dlq_replication_factor: 3,
            context_headers: false,
            connector_class: String::new(),
            key_converter: crate::converter::JSON_CONVERTER.to_owned(),
            value_converter: crate::converter::JSON_CONVERTER.to_owned(),
        }
    }
}

impl ErrorPolicy {
    /// Reads the `errors.*` fields of a parsed connector config (declared in the common
    /// config definition). `warnings` gets settings that have no effect.
    pub fn from_parsed(
        parsed: &Parsed,
        sink: bool,
        warnings: &mut Vec<String>,
    ) -> Result<Self, ConfigErrors> {
        let mut errors = ConfigErrors::default();
        let retry = parsed.int("errors.retry.timeout").unwrap_or(0);
        let dlq_topic = parsed
            .str("errors.deadletterqueue.topic.name")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        if let Some(topic) = &dlq_topic {
            if let Err(e) = crate::log::validate_topic_name(topic) {
                errors.push("errors.deadletterqueue.topic.name", e.to_string());
            }
            if !sink {
                warnings.push("errors.deadletterqueue.topic.name: ignored, dead-letter topics apply to sink connectors (source records that fail are skipped and logged with errors.tolerance=all)".into());
            }
        }
        if parsed.int("errors.deadletterqueue.topic.replication.factor") == Some(0) {
            errors.push(
                "errors.deadletterqueue.topic.replication.factor",
                "must be at least 1, or -1 for the broker's default, got 0",
            );
        }
        let tolerate = parsed.str("errors.tolerance") == Some("all");
        if dlq_topic.is_some() && !tolerate && sink {
            warnings.push("errors.deadletterqueue.topic.name: unused while errors.tolerance=none (the first bad record fails the task)".into());
        }
        let policy = ErrorPolicy {
            tolerate,
            retry_timeout: (retry >= 0).then(|| Duration::from_millis(retry as u64)),
            retry_delay_max: Duration::from_millis(
                parsed
                    .int("errors.retry.delay.max.ms")
                    .unwrap_or(60_000)
                    .max(1) as u64,
            ),
            log_enable: parsed.bool("errors.log.enable"),
            log_include_messages: parsed.bool("errors.log.include.messages"),
            dlq_topic,
            // The config definition bounds it to -1..=32767.
            dlq_replication_factor: i16::try_from(
                parsed
                    .int("errors.deadletterqueue.topic.replication.factor")
                    .unwrap_or(3),
            )
            .unwrap_or(3),
            context_headers: parsed.bool("errors.deadletterqueue.context.headers.enable"),
            connector_class: parsed.string("connector.class"),
            key_converter: parsed
                .str("key.converter")
                .unwrap_or(crate::converter::JSON_CONVERTER)
                .to_owned(),
            value_converter: parsed
                .str("value.converter")
                .unwrap_or(crate::converter::JSON_CONVERTER)
                .to_owned(),
        };
        errors.into_result(policy)
    }

    /// Runs `op`, retrying transient failures with capped exponential backoff for up to
    /// `errors.retry.timeout` (Kafka Connect's `RetryWithToleranceOperator`). Definite
    /// errors and a transient error after the timeout are returned.
    pub async fn retry<T, F, Fut>(&self, mut op: F) -> Result<T, ConnectorError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ConnectorError>>,
    {
        let started = Instant::now();
        let mut backoff = Backoff::new(Duration::from_millis(300), self.retry_delay_max);
        loop {
            match op().await {
                Err(e) if e.kind == ErrorKind::Transient => {
                    let delay = backoff.next_delay();
                    let within = match self.retry_timeout {
                        None => true,
                        Some(limit) => started.elapsed() + delay <= limit,
                    };
                    if !within {
                        return Err(e);
                    }
                    warn!(error = %e.trace(), retry_in_ms = delay.as_millis() as u64, "transient failure; retrying (errors.retry.timeout)");
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }
}

/// Bad-record counters of one task.
#[derive(Debug, Default)]
pub struct ErrorCounters {
    /// Records skipped under `errors.tolerance=all` (Kafka's `total-records-skipped`),
    /// dead-lettered or not.
    pub skipped: AtomicU64,
    /// Records written to the dead-letter topic (`deadletterqueue-produce-requests`).
    pub dead_lettered: AtomicU64,
    /// Failures that failed the task (`errors.tolerance=none`).
    pub failed: AtomicU64,
}

type CounterMap = BTreeMap<(String, u32), Arc<ErrorCounters>>;
static COUNTERS: LazyLock<Mutex<CounterMap>> = LazyLock::new(|| Mutex::new(BTreeMap::new()));

/// The counters of a connector's task (created on first use, kept across restarts).
pub fn counters(connector: &str, task: u32) -> Arc<ErrorCounters> {
    COUNTERS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry((connector.to_owned(), task))
        .or_default()
        .clone()
}

/// A snapshot of one task's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterSnapshot {
    pub connector: String,
    pub task: u32,
    pub skipped: u64,
    pub dead_lettered: u64,
    pub failed: u64,
}

/// Every task's counters, for `/metrics`.
pub fn all_counters() -> Vec<CounterSnapshot> {
    COUNTERS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|((connector, task), c)| CounterSnapshot {
            connector: connector.clone(),
            task: *task,
            skipped: c.skipped.load(Ordering::Relaxed),
            dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
        })
        .collect()
}

/// Reports records a sink cannot process.
#[derive(Clone, Default)]
pub struct ErrantRecordReporter {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    policy: ErrorPolicy,
    store: Arc<dyn TopicStore>,
    connector: Arc<str>,
    task_id: u32,
    counters: Arc<ErrorCounters>,
    dlq_partitions: tokio::sync::OnceCell<u32>,
}

/// At most this much of a key or value goes into a log line (`errors.log.include.messages`).
const LOG_PREVIEW: usize = 1024;

fn preview(bytes: Option<&Bytes>) -> String {
    match bytes {
        None => "null".into(),
        Some(b) => {
            let text = String::from_utf8_lossy(&b[..b.len().min(LOG_PREVIEW)]);
            if b.len() > LOG_PREVIEW {
                format!("{text}... ({} bytes)", b.len())
            } else {
                text.into_owned()
            }
        }
    }
}

impl ErrantRecordReporter {
    /// `errors.tolerance=none` without a task context: every report fails the task.
    pub fn fail_fast() -> Self {
        ErrantRecordReporter { inner: None }
    }

    /// The reporter of one sink task.
    pub fn new(
        policy: ErrorPolicy,
        store: Arc<dyn TopicStore>,
        connector: Arc<str>,
        task_id: u32,
    ) -> Self {
        let counters = counters(&connector, task_id);
        ErrantRecordReporter {
            inner: Some(Arc::new(Inner {
                policy,
                store,
                connector,
                task_id,
                counters,
                dlq_partitions: tokio::sync::OnceCell::new(),
            })),
        }
    }

    /// The settings in force (defaults for [`fail_fast`](Self::fail_fast)).
    pub fn policy(&self) -> ErrorPolicy {
        self.inner
            .as_ref()
            .map(|i| i.policy.clone())
            .unwrap_or_default()
    }

    /// Whether bad records are skipped (`errors.tolerance=all`).
    pub fn tolerates(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| i.policy.tolerate)
    }

    /// `Ok(())`: the record was dead-lettered (or skipped under `errors.tolerance=all`) and the
    /// task should go on without it. `Err`: the task must stop: a transient error comes back
    /// unchanged (retry), anything else as a definite error naming the record's position and
    /// the stage.
    pub async fn report(
        &self,
        record: &SinkRecord,
        stage: Stage,
        error: ConnectorError,
    ) -> Result<(), ConnectorError> {
        if error.kind == ErrorKind::Transient {
            return Err(error);
        }
        let position = format!("{}-{}@{}", record.topic, record.partition, record.offset);
        let Some(inner) = self.inner.as_ref().filter(|i| i.policy.tolerate) else {
            if let Some(inner) = &self.inner {
                inner.counters.failed.fetch_add(1, Ordering::Relaxed);
                if inner.policy.log_enable {
                    inner.log_failure(
                        record,
                        stage,
                        &error,
                        "failed the task (errors.tolerance=none)",
                    );
                }
            }
            return Err(ConnectorError::definite(format!(
                "record {position} failed in {stage}: {}",
                error.trace()
            )));
        };
        if let Some(topic) = &inner.policy.dlq_topic {
            inner.dead_letter(topic, record, stage, &error).await?;
            inner.counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
            inner.counters.skipped.fetch_add(1, Ordering::Relaxed);
            inner.log_failure(
                record,
                stage,
                &error,
                &format!("sent to dead-letter topic {topic}"),
            );
        } else {
            inner.counters.skipped.fetch_add(1, Ordering::Relaxed);
            inner.log_failure(
                record,
                stage,
                &error,
                "skipped (errors.tolerance=all, no dead-letter topic)",
            );
        }
        Ok(())
    }
}

impl Inner {
    fn log_failure(&self, record: &SinkRecord, stage: Stage, err: &ConnectorError, outcome: &str) {
        let reason = err.trace();
        if self.policy.log_include_messages {
            let (key, value) = (
                preview(record.record.key.as_ref()),
                preview(record.record.value.as_ref()),
            );
            if self.policy.tolerate {
                warn!(connector = %self.connector, task = self.task_id, topic = %record.topic, partition = record.partition, offset = record.offset, stage = %stage, error = %reason, key = %key, value = %value, "bad record {outcome}");
            } else {
                error!(connector = %self.connector, task = self.task_id, topic = %record.topic, partition = record.partition, offset = record.offset, stage = %stage, error = %reason, key = %key, value = %value, "bad record {outcome}");
            }
        } else if self.policy.tolerate {
            warn!(connector = %self.connector, task = self.task_id, topic = %record.topic, partition = record.partition, offset = record.offset, stage = %stage, error = %reason, "bad record {outcome}");
        } else {
            error!(connector = %self.connector, task = self.task_id, topic = %record.topic, partition = record.partition, offset = record.offset, stage = %stage, error = %reason, "bad record {outcome}");
        }
    }

    fn class_name(&self, stage: Stage) -> &str {
        match stage {
            Stage::KeyConverter => &self.policy.key_converter,
            Stage::ValueConverter => &self.policy.value_converter,
            Stage::HeaderConverter => "org.apache.kafka.connect.storage.SimpleHeaderConverter",
            Stage::Transformation => "org.apache.kafka.connect.transforms.Transformation",
            Stage::TaskPut | Stage::TaskPoll => &self.policy.connector_class,
        }
    }

    /// Writes the original record to the dead-letter topic and waits until it is durable.
    async fn dead_letter(
        &self,
        topic: &str,
        record: &SinkRecord,
        stage: Stage,
        err: &ConnectorError,
    ) -> Result<(), ConnectorError> {
        let partitions = *self
            .dlq_partitions
            .get_or_try_init(|| {
                self.store
                    .ensure_dead_letter_topic(topic, self.policy.dlq_replication_factor)
            })
            .await?;
        let mut headers = record.record.headers.clone();
        if self.policy.context_headers {
            let text = |s: &str| Bytes::from(s.to_owned());
            let exception = match stage {
                Stage::TaskPut | Stage::TaskPoll => {
                    "org.apache.kafka.connect.errors.ConnectException"
                }
                _ => "org.apache.kafka.connect.errors.DataException",
            };
            headers.extend([
                (headers::TOPIC.to_owned(), text(&record.topic)),
                (
                    headers::PARTITION.to_owned(),
                    text(&record.partition.to_string()),
                ),
                (headers::OFFSET.to_owned(), text(&record.offset.to_string())),
                (headers::CONNECTOR.to_owned(), text(&self.connector)),
                (headers::TASK.to_owned(), text(&self.task_id.to_string())),
                (headers::STAGE.to_owned(), text(stage.as_str())),
                (headers::CLASS.to_owned(), text(self.class_name(stage))),
                (headers::EXCEPTION_CLASS.to_owned(), text(exception)),
                (headers::EXCEPTION_MESSAGE.to_owned(), text(&err.message)),
                (headers::EXCEPTION_STACKTRACE.to_owned(), text(&err.trace())),
            ]);
        }
        let out = TopicRecord {
            key: record.record.key.clone(),
            value: record.record.value.clone(),
            headers,
            timestamp_ms: record.record.timestamp_ms,
        };
        let partition = self.store.partition(out.key.as_deref(), partitions);
        self.store
            .produce(vec![ProduceRecord {
                topic: Arc::from(topic),
                partition,
                record: out,
            }])
            .await
            .map_err(|e| {
                ConnectorError::new(
                    e.kind,
                    format!("cannot write to dead-letter topic {topic}: {}", e.message),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::log::{EmbeddedLog, LogConfig};
    use crate::storage::{EmbeddedStore, TopicSelector};

    fn poison(offset: u64) -> SinkRecord {
        SinkRecord {
            topic: Arc::from("orders"),
            partition: 0,
            offset,
            record: TopicRecord {
                key: Some(Bytes::from_static(b"{\"id\":7}")),
                value: Some(Bytes::from_static(b"not json")),
                headers: vec![("trace".into(), Bytes::from_static(b"abc"))],
                timestamp_ms: 1234,
            },
        }
    }

    fn policy(tolerate: bool, dlq: Option<&str>) -> ErrorPolicy {
        ErrorPolicy {
            tolerate,
            dlq_topic: dlq.map(str::to_owned),
            context_headers: true,
            connector_class: "io.tributary.test.Sink".into(),
            ..ErrorPolicy::default()
        }
    }

    #[tokio::test]
    async fn tolerated_records_land_in_the_dead_letter_topic_with_context() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            EmbeddedStore::new(EmbeddedLog::open(dir.path(), LogConfig::default()).expect("log"));
        let reporter = ErrantRecordReporter::new(
            policy(true, Some("dlq-orders")),
            store.clone(),
            Arc::from("dlq-unit"),
            3,
        );
        let err = ConnectorError::definite("expected value at line 1 column 1");
        reporter
            .report(&poison(41), Stage::ValueConverter, err)
            .await
            .expect("dead-lettered");

        let mut consumer = store
            .consumer(
                "check",
                TopicSelector::Names(vec!["dlq-orders".into()]),
                0,
                1,
            )
            .await
            .expect("consumer");
        let records = consumer
            .poll(10, Duration::from_secs(5))
            .await
            .expect("poll");
        assert_eq!(records.len(), 1);
        let r = &records[0].record;
        assert_eq!(r.key.as_deref(), Some(&b"{\"id\":7}"[..]));
        assert_eq!(r.value.as_deref(), Some(&b"not json"[..]));
        assert_eq!(r.timestamp_ms, 1234);
        let header = |name: &str| {
            r.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        assert_eq!(header("trace").as_deref(), Some("abc"));
        assert_eq!(header(headers::TOPIC).as_deref(), Some("orders"));
        assert_eq!(header(headers::PARTITION).as_deref(), Some("0"));
        assert_eq!(header(headers::OFFSET).as_deref(), Some("41"));
        assert_eq!(header(headers::CONNECTOR).as_deref(), Some("dlq-unit"));
        assert_eq!(header(headers::TASK).as_deref(), Some("3"));
        assert_eq!(header(headers::STAGE).as_deref(), Some("VALUE_CONVERTER"));
        assert_eq!(
            header(headers::CLASS).as_deref(),
            Some(crate::converter::JSON_CONVERTER)
        );
        assert_eq!(
            header(headers::EXCEPTION_MESSAGE).as_deref(),
            Some("expected value at line 1 column 1")
        );
        assert!(header(headers::EXCEPTION_CLASS).is_some());
        assert!(header(headers::EXCEPTION_STACKTRACE).is_some());
        let c = counters("dlq-unit", 3);
        assert_eq!(c.dead_lettered.load(Ordering::Relaxed), 1);
        assert_eq!(c.skipped.load(Ordering::Relaxed), 1);
        assert!(
            all_counters()
                .iter()
                .any(|s| s.connector == "dlq-unit" && s.dead_lettered == 1)
        );
    }

    #[tokio::test]
    async fn tolerance_none_fails_with_the_position_and_transient_errors_pass_through() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            EmbeddedStore::new(EmbeddedLog::open(dir.path(), LogConfig::default()).expect("log"));
        let strict = ErrantRecordReporter::new(
            policy(false, Some("dlq-none")),
            store.clone(),
            Arc::from("dlq-none-unit"),
            0,
        );
        let err = strict
            .report(
                &poison(9),
                Stage::TaskPut,
                ConnectorError::definite("value too long for column name"),
            )
            .await
            .expect_err("fails");
        assert_eq!(err.kind, ErrorKind::Definite);
        assert!(err.message.contains("orders-0@9"), "{}", err.message);
        assert!(err.message.contains("TASK_PUT"), "{}", err.message);
        assert!(err.message.contains("value too long"), "{}", err.message);

        let tolerant = ErrantRecordReporter::new(
            policy(true, Some("dlq-none")),
            store.clone(),
            Arc::from("dlq-none-unit"),
            0,
        );
        let err = tolerant
            .report(
                &poison(10),
                Stage::TaskPut,
                ConnectorError::transient("connection refused"),
            )
            .await
            .expect_err("transient errors are not tolerated");
        assert_eq!(err.kind, ErrorKind::Transient);
        // Nothing reached the dead-letter topic.
        assert!(
            store
                .list_topics()
                .await
                .expect("topics")
                .iter()
                .all(|t| t.name != "dlq-none")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_failures_until_the_timeout() {
        let policy = ErrorPolicy {
            retry_timeout: Some(Duration::from_secs(10)),
            retry_delay_max: Duration::from_secs(2),
            ..ErrorPolicy::default()
        };
        let mut calls = 0;
        let result: Result<u32, _> = policy
            .retry(|| {
                calls += 1;
                let n = calls;
                async move {
                    if n < 4 {
                        Err(ConnectorError::transient("registry down"))
                    } else {
                        Ok(n)
                    }
                }
            })
            .await;
        assert_eq!(result.expect("recovers"), 4);
        let mut calls = 0;
        let result: Result<(), _> = policy
            .retry(|| {
                calls += 1;
                async { Err(ConnectorError::transient("still down")) }
            })
            .await;
        assert!(result.is_err());
        assert!(calls > 3, "retried {calls} times");
        let none = ErrorPolicy::default();
        let mut calls = 0;
        let _ = none
            .retry(|| {
                calls += 1;
                async { Err::<(), _>(ConnectorError::transient("down")) }
            })
            .await;
        assert_eq!(calls, 1);
    }
}
