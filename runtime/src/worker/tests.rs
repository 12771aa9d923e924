//! Supervisor behaviour: transient failures restart with backoff and recover; definite
//! failures stay FAILED with the reason; configs and target states survive a worker restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use super::Worker;
use super::state::{State, TargetState};
use crate::config::{
    ConfigDef, ConfigErrors, ConnectorConfig, FieldType, Parsed, RestartConfig, WorkerConfig,
};
use crate::connector::{
    Connector, ConnectorKind, Plugin, SourceConnector, SourceTask, SourceTaskContext,
};
use crate::error::ConnectorError;
use crate::record::SourceRecord;
use crate::registry::Registry;

/// A source whose task fails to open `failures` times (transiently), then idles.
struct FlakyPlugin {
    opened: Arc<AtomicU32>,
}

impl Plugin for FlakyPlugin {
    fn class(&self) -> &'static str {
        "io.tributary.test.FlakySource"
    }

    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Source
    }

    fn config_def(&self) -> ConfigDef {
        ConfigDef::new()
            .optional(
                "failures",
                FieldType::Int { min: 0, max: 100 },
                "2",
                "transient failures before success",
            )
            .optional(
                "definite",
                FieldType::Bool,
                "false",
                "fail definitely instead",
            )
    }

    fn validate(&self, _name: &str, config: &Parsed) -> Result<Connector, ConfigErrors> {
        Ok(Connector::Source(Arc::new(Flaky {
            failures: config.int("failures").unwrap_or(2) as u32,
            definite: config.bool("definite"),
            opened: self.opened.clone(),
        })))
    }
}

struct Flaky {
    failures: u32,
    definite: bool,
    opened: Arc<AtomicU32>,
}

#[async_trait]
impl SourceConnector for Flaky {
    async fn open_task(
        &self,
        _ctx: SourceTaskContext,
    ) -> Result<Box<dyn SourceTask>, ConnectorError> {
        let attempt = self.opened.fetch_add(1, Ordering::SeqCst);
        if self.definite {
            return Err(ConnectorError::definite(
                "server says: access denied for user cdc",
            ));
        }
        if attempt < self.failures {
            return Err(ConnectorError::transient(format!(
                "connection refused (attempt {attempt})"
            )));
        }
        Ok(Box::new(Idle))
    }
}

struct Idle;

#[async_trait]
impl SourceTask for Idle {
    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectorError> {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(Vec::new())
    }
}

async fn start(dir: &std::path::Path, opened: Arc<AtomicU32>) -> Arc<Worker> {
    let mut registry = Registry::with_builtins();
    registry.register(Arc::new(FlakyPlugin { opened }));
    Worker::start(
        WorkerConfig {
            data_dir: dir.to_path_buf(),
            restart: RestartConfig {
                initial_backoff_ms: 10,
                max_backoff_ms: 50,
            },
            ..WorkerConfig::default()
        },
        registry,
    )
    .await
    .expect("worker starts")
}

fn flaky(name: &str, extra: &[(&str, &str)]) -> ConnectorConfig {
    let mut config: crate::config::RawConfig = [(
        "connector.class".to_owned(),
        "io.tributary.test.FlakySource".to_owned(),
    )]
    .into_iter()
    .collect();
    config.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    ConnectorConfig {
        name: name.to_owned(),
        config,
    }
}

async fn wait_for_state(worker: &Worker, name: &str, want: State) -> super::state::ConnectorStatus {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = worker.status(name).await.expect("status");
        if status.connector.state == want {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never reached {want:?}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn transient_failures_restart_with_backoff_then_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opened = Arc::new(AtomicU32::new(0));
    let worker = start(dir.path(), opened.clone()).await;
    worker
        .create(flaky("f", &[("failures", "3")]), TargetState::Running)
        .await
        .expect("create");
    let status = wait_for_state(&worker, "f", State::Running).await;
    assert_eq!(
        opened.load(Ordering::SeqCst),
        4,
        "three failed opens, then one that worked"
    );
    assert_eq!(status.tasks[0].state, State::Running);
    worker.shutdown().await;
}

#[tokio::test]
async fn definite_failure_stays_failed_with_the_reason_until_restarted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opened = Arc::new(AtomicU32::new(0));
    let worker = start(dir.path(), opened.clone()).await;
    worker
        .create(flaky("d", &[("definite", "true")]), TargetState::Running)
        .await
        .expect("create");
    let status = wait_for_state(&worker, "d", State::Failed).await;
    let trace = status.tasks[0].trace.clone().unwrap_or_default();
    assert!(trace.contains("access denied for user cdc"), "{trace}");
    assert_eq!(status.connector.trace.as_deref(), Some(trace.as_str()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        opened.load(Ordering::SeqCst),
        1,
        "no retry of a definite failure"
    );
    worker.restart("d").await.expect("restart");
    wait_for_state(&worker, "d", State::Failed).await;
    assert_eq!(opened.load(Ordering::SeqCst), 2, "restart tried once more");
    worker.shutdown().await;
}

#[tokio::test]
async fn configs_and_target_states_survive_a_worker_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opened = Arc::new(AtomicU32::new(0));
    {
        let worker = start(dir.path(), opened.clone()).await;
        worker
            .create(flaky("paused", &[("failures", "0")]), TargetState::Running)
            .await
            .expect("create");
        worker
            .create(flaky("stopped", &[("failures", "0")]), TargetState::Running)
            .await
            .expect("create");
        worker
            .create(flaky("running", &[("failures", "0")]), TargetState::Running)
            .await
            .expect("create");
        worker.pause("paused").await.expect("pause");
        worker.stop("stopped").await.expect("stop");
        wait_for_state(&worker, "paused", State::Paused).await;
        worker.shutdown().await;
    }
    let worker = start(dir.path(), opened).await;
    assert_eq!(worker.list().await, vec!["paused", "running", "stopped"]);
    wait_for_state(&worker, "paused", State::Paused).await;
    wait_for_state(&worker, "stopped", State::Stopped).await;
    wait_for_state(&worker, "running", State::Running).await;
    let config = worker.connector_config("running").await.expect("config");
    assert_eq!(config.config.get("failures").map(String::as_str), Some("0"));
    worker.shutdown().await;
}

#[tokio::test]
async fn worker_converter_defaults_reach_the_connectors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = WorkerConfig {
        data_dir: dir.path().to_path_buf(),
        converters: [
            (
                "value.converter",
                "org.apache.kafka.connect.json.JsonConverter",
            ),
            ("value.converter.schemas.enable", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        ..WorkerConfig::default()
    };
    let worker = Worker::start(config, Registry::with_builtins())
        .await
        .expect("worker");
    let datagen = ConnectorConfig {
        name: "gen".into(),
        config: [
            ("connector.class", "datagen"),
            ("topic.prefix", "wcd"),
            ("total", "3"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
    };
    worker
        .create(datagen, TargetState::Running)
        .await
        .expect("create");
    let log = worker.embedded_log().expect("embedded").clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let records = loop {
        if let Ok(p) = log.partition("wcd.orders", 0) {
            let (records, _) = p
                .read(crate::log::ReadCursor::at(0), 10, 1 << 20)
                .expect("read");
            if records.len() == 3 {
                break records;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "records never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for (_, r) in records {
        let value: serde_json::Value =
            serde_json::from_slice(r.value.as_deref().expect("value")).expect("json");
        assert!(
            value["schema"].is_object() && value["payload"].is_object(),
            "schemas enabled by the worker: {value}"
        );
    }
    worker.shutdown().await;
}

#[test]
fn a_preflight_error_is_reported_on_its_field() {
    let config = |pairs: &[(&str, &str)]| ConnectorConfig {
        name: "c".into(),
        config: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    };
    let field = |c: &ConnectorConfig, message: &str| {
        let errors = super::live_check_errors(c, message);
        (errors.0[0].field.clone(), errors.0[0].message.clone())
    };
    let jdbc = config(&[("connector.class", "jdbc")]);
    assert_eq!(
        field(
            &jdbc,
            "incrementing.column.name: table orders has no column \"x\""
        ),
        (
            "incrementing.column.name".to_owned(),
            "table orders has no column \"x\"".to_owned()
        )
    );
    // Not a key before the colon: the server's field, as Debezium reports it.
    let cdc = config(&[("database.hostname", "db")]);
    assert_eq!(
        field(
            &cdc,
            "server db:3306 is not ready: binlog_format is STATEMENT"
        )
        .0,
        "database.hostname"
    );
    assert_eq!(field(&jdbc, "Access denied").0, "connector.class");
}
