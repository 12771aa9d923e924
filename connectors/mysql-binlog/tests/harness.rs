//! Shared test plumbing: a worker on a temp dir with this plugin, and topic readers.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use mysql_async::prelude::Queryable as _;
use mysql_async::{Conn, Opts};
use serde_json::Value as Json;
use tributary_runtime::config::ConnectorConfig;
use tributary_runtime::config::WorkerConfig;
use tributary_runtime::log::ReadCursor;
use tributary_runtime::registry::Registry;
use tributary_runtime::worker::Worker;

use crate::env::{NOT_RUNNING, TestEnv};

/// The environment, read from the workspace root's `.test-env/env` (or
/// `$TRIB_TEST_ENV_FILE`): `env.rs` looks next to the crate's manifest, which for a
/// connector crate is not the workspace root.
pub fn test_env() -> TestEnv {
    static LOG: std::sync::Once = std::sync::Once::new();
    LOG.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("TRIB_TEST_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .with_test_writer()
            .try_init();
    });
    if std::env::var_os("TRIB_TEST_ENV_FILE").is_some() {
        return TestEnv::load();
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.test-env/env");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{NOT_RUNNING} (cannot read {}: {e})", path.display()));
    TestEnv::parse(&text).unwrap_or_else(|e| panic!("{NOT_RUNNING} ({e})"))
}

pub fn registry() -> Registry {
    let mut r = Registry::with_builtins();
    r.register(Arc::new(tributary_mysql_binlog::MySqlPlugin));
    r
}

pub async fn admin(env: &TestEnv) -> Result<Conn> {
    Ok(Conn::new(Opts::from_url(&env.mariadb_url)?).await?)
}

/// A fresh database with a unique name.
pub async fn fresh_db(conn: &mut Conn, prefix: &str) -> Result<String> {
    let db = crate::env::unique_name(prefix);
    conn.query_drop(format!("CREATE DATABASE {db}")).await?;
    Ok(db)
}

/// Host, port, user, password of the CDC user.
pub fn cdc_parts(env: &TestEnv) -> (String, String, String, String) {
    let opts = Opts::from_url(&env.mariadb_cdc_url).expect("cdc url");
    (
        opts.ip_or_hostname().to_owned(),
        opts.tcp_port().to_string(),
        opts.user().unwrap_or_default().to_owned(),
        opts.pass().unwrap_or_default().to_owned(),
    )
}

/// A MariaDB connector config capturing `db`, with extra settings.
pub fn connector_config(
    env: &TestEnv,
    name: &str,
    db: &str,
    extra: &[(&str, &str)],
) -> ConnectorConfig {
    let (host, port, user, pass) = cdc_parts(env);
    let server_id = (1_000_000 + rand::random::<u32>() % 1_000_000_000).to_string();
    let mut config: BTreeMap<String, String> = [
        (
            "connector.class",
            "io.debezium.connector.mariadb.MariaDbConnector",
        ),
        ("database.hostname", host.as_str()),
        ("database.port", port.as_str()),
        ("database.user", user.as_str()),
        ("database.password", pass.as_str()),
        ("database.server.id", server_id.as_str()),
        ("topic.prefix", db),
        ("database.include.list", db),
        ("database.ssl.mode", "disabled"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in extra {
        config.insert((*k).to_owned(), (*v).to_owned());
    }
    ConnectorConfig {
        name: name.to_owned(),
        config,
    }
}

pub async fn start_worker(dir: &Path) -> Result<Arc<Worker>> {
    Worker::start(
        WorkerConfig {
            data_dir: dir.to_path_buf(),
            offset_flush_interval_ms: 0,
            progress_interval_secs: 3600,
            ..Default::default()
        },
        registry(),
    )
    .await
    .context("worker start")
}

/// One record read back: key and value as JSON (`None` value = tombstone).
#[derive(Debug, Clone)]
pub struct Rec {
    pub key: Option<Json>,
    pub value: Option<Json>,
}

impl Rec {
    pub fn op(&self) -> Option<&str> {
        self.value.as_ref()?.get("op")?.as_str()
    }
    pub fn after(&self) -> Option<&Json> {
        self.value.as_ref()?.get("after").filter(|a| !a.is_null())
    }
    pub fn before(&self) -> Option<&Json> {
        self.value.as_ref()?.get("before").filter(|a| !a.is_null())
    }
    pub fn source(&self) -> &Json {
        self.value
            .as_ref()
            .and_then(|v| v.get("source"))
            .unwrap_or(&Json::Null)
    }
}

/// Every record of partition 0 of `topic` (empty when the topic does not exist yet).
pub fn read_topic(worker: &Worker, topic: &str) -> Result<Vec<Rec>> {
    let log = worker.embedded_log().context("embedded log")?;
    if log.topic(topic).is_none() {
        return Ok(Vec::new());
    }
    let partition = log.partition(topic, 0)?;
    let mut cursor = ReadCursor::at(0);
    let mut out = Vec::new();
    loop {
        let (records, next) = partition.read(cursor, 10_000, 64 << 20)?;
        if records.is_empty() {
            break;
        }
        for (_, r) in records {
            let parse = |b: &bytes::Bytes| serde_json::from_slice::<Json>(b);
            out.push(Rec {
                key: r.key.as_ref().map(parse).transpose()?,
                value: r.value.as_ref().map(parse).transpose()?,
            });
        }
        cursor = next;
    }
    Ok(out)
}

/// Waits until `cond` holds for the records of `topic`, failing with the task status.
pub async fn wait_for(
    worker: &Worker,
    connector: &str,
    topic: &str,
    timeout: Duration,
    mut cond: impl FnMut(&[Rec]) -> bool,
) -> Result<Vec<Rec>> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let records = read_topic(worker, topic)?;
        if cond(&records) {
            return Ok(records);
        }
        if tokio::time::Instant::now() >= deadline {
            let status = worker.status(connector).await.ok();
            bail!(
                "condition on {topic} not met within {timeout:?}: {} records; status {}",
                records.len(),
                serde_json::to_string(&status).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The failure trace of the connector's task, once it has failed.
pub async fn wait_failed(worker: &Worker, connector: &str, timeout: Duration) -> Result<String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(status) = worker.status(connector).await {
            let json = serde_json::to_value(&status)?;
            let text = json.to_string();
            if text.contains("\"FAILED\"") {
                return Ok(text);
            }
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("connector {connector} did not fail within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Latest state per key from a change topic (`r`/`c`/`u` upsert, `d` removes).
pub fn fold_state(records: &[Rec]) -> BTreeMap<String, Json> {
    let mut state = BTreeMap::new();
    for r in records {
        let Some(key) = &r.key else { continue };
        let k = key.to_string();
        match (r.op(), r.after()) {
            (Some("d"), _) => {
                state.remove(&k);
            }
            (Some(_), Some(after)) => {
                state.insert(k, after.clone());
            }
            _ => {}
        }
    }
    state
}

pub const DEADLINE: Duration = Duration::from_secs(60);

/// Waits until the connector's task reports RUNNING (fails fast when it FAILED).
pub async fn wait_running(worker: &Worker, connector: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Ok(status) = worker.status(connector).await {
            let json = serde_json::to_value(&status)?;
            let tasks = json["tasks"].as_array().cloned().unwrap_or_default();
            if tasks.iter().any(|t| t["state"] == "FAILED") {
                bail!("task failed: {json}");
            }
            if !tasks.is_empty() && tasks.iter().all(|t| t["state"] == "RUNNING") {
                // RUNNING is reported once the task opened, i.e. the start position is read.
                if let Ok(p) = worker.progress(connector).await
                    && p.iter().all(|p| p.phase != "starting")
                {
                    return Ok(());
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("connector {connector} not running within {DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the connector streams changes made from now on: inserts into `<db>.probe`
/// (created here) until one arrives on its topic.
pub async fn wait_streaming(
    worker: &Worker,
    connector: &str,
    conn: &mut Conn,
    db: &str,
) -> Result<()> {
    conn.query_drop(format!(
        "CREATE TABLE IF NOT EXISTS {db}.probe (id INT AUTO_INCREMENT PRIMARY KEY)"
    ))
    .await?;
    let topic = format!("{db}.{db}.probe");
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        conn.query_drop(format!("INSERT INTO {db}.probe VALUES ()"))
            .await?;
        if !read_topic(worker, &topic)?.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            let status = worker.status(connector).await.ok();
            bail!(
                "connector {connector} not streaming within {DEADLINE:?}: {}",
                serde_json::to_string(&status).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
