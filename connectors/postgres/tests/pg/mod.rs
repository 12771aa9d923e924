//! Shared helpers and the test modules.

#![allow(clippy::unwrap_used, dead_code)]

mod backfill;
mod crash;
mod preflight;
mod resume;
mod stream;
mod tls;
mod types;
mod wal;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls};
use tributary_runtime::config::WorkerConfig;
use tributary_runtime::config::{ConnectorConfig, RawConfig};
use tributary_runtime::connector::{Connector, SourceConnector, SourceTask, SourceTaskContext};
use tributary_runtime::log::ReadCursor;
use tributary_runtime::offsets::StoredOffset;
use tributary_runtime::progress::ProgressHandle;
use tributary_runtime::record::SourceRecord;
use tributary_runtime::registry::Registry;
use tributary_runtime::worker::Worker;

use crate::env::{NOT_RUNNING, TestEnv, unique_name, with_database};

/// The environment from the workspace root's `.test-env/env` (or `$TRIB_TEST_ENV_FILE`):
/// `env.rs` looks next to the crate manifest, which for a connector crate is not the root.
pub fn test_env() -> TestEnv {
    if std::env::var_os("TRIB_TEST_ENV_FILE").is_some() {
        return TestEnv::load();
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.test-env/env");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{NOT_RUNNING} (cannot read {}: {e})", path.display()));
    TestEnv::parse(&text).unwrap_or_else(|e| panic!("{NOT_RUNNING} ({e})"))
}

/// A database of its own, plus the slot and publication names of one test.
pub struct TestDb {
    pub name: String,
    pub slot: String,
    pub publication: String,
    pub admin: Client,
    env: TestEnv,
}

pub async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

impl TestDb {
    /// Creates a fresh database and runs `setup` in it as the superuser.
    pub async fn create(prefix: &str, setup: &str) -> TestDb {
        let env = test_env();
        let name = unique_name(prefix);
        let root = connect(&env.pg_url).await;
        root.batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        let admin = connect(&with_database(&env.pg_url, &name)).await;
        if !setup.is_empty() {
            admin.batch_execute(setup).await.expect("setup sql");
        }
        TestDb {
            slot: format!("{name}_slot"),
            publication: format!("{name}_pub"),
            name,
            admin,
            env,
        }
    }

    /// Creates the test's publication for all tables.
    pub async fn publish_all(&self) {
        self.admin
            .batch_execute(&format!(
                "CREATE PUBLICATION {} FOR ALL TABLES",
                self.publication
            ))
            .await
            .expect("create publication");
    }

    /// Connector config for role `cdc` with this test's database, slot and publication.
    pub fn config(&self, extra: &[(&str, &str)]) -> RawConfig {
        let port = self.env.var("TRIB_PG_PORT").unwrap_or("15432").to_owned();
        let mut raw: RawConfig = [
            (
                "connector.class",
                "io.debezium.connector.postgresql.PostgresConnector",
            ),
            ("database.hostname", "127.0.0.1"),
            ("database.port", port.as_str()),
            ("database.user", "cdc"),
            ("database.password", "cdc"),
            ("database.dbname", self.name.as_str()),
            ("topic.prefix", "srv"),
            ("slot.name", self.slot.as_str()),
            ("publication.name", self.publication.as_str()),
            ("publication.autocreate.mode", "disabled"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        raw.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        raw
    }

    pub async fn confirmed_flush(&self) -> Option<u64> {
        let row = self
            .admin
            .query_opt(
                "SELECT (confirmed_flush_lsn - '0/0')::int8 FROM pg_replication_slots WHERE slot_name = $1",
                &[&self.slot],
            )
            .await
            .expect("slot query");
        row.and_then(|r| r.get::<_, Option<i64>>(0))
            .map(|v| v as u64)
    }

    pub async fn slot_active_pid(&self) -> Option<i32> {
        self.admin
            .query_opt(
                "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1",
                &[&self.slot],
            )
            .await
            .expect("slot query")
            .and_then(|r| r.get(0))
    }

    /// Drops the slot (terminating its walsender) and the database.
    pub async fn cleanup(self) {
        let root = connect(&self.env.pg_url).await;
        // Terminating a walsender is asynchronous: retry until the slot is really gone.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let _ = root
                .execute(
                    "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL",
                    &[&self.slot],
                )
                .await;
            let _ = root
                .execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
                    &[&self.slot],
                )
                .await;
            let left = root
                .query_opt(
                    "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
                    &[&self.slot],
                )
                .await
                .map(|r| r.is_some())
                .unwrap_or(true);
            if !left {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "replication slot {} still exists after the test",
                self.slot
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drop(self.admin);
        let _ = root
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await;
    }
}

pub fn registry() -> Registry {
    let mut r = Registry::with_builtins();
    r.register(Arc::new(tributary_postgres::PostgresPlugin));
    r
}

pub fn source(raw: RawConfig) -> Arc<dyn SourceConnector> {
    let validated = registry()
        .validate(&ConnectorConfig {
            name: "pg".into(),
            config: raw,
        })
        .expect("valid config");
    match validated.connector {
        Connector::Source(s) => s,
        Connector::Sink(_) => panic!("postgres is a source"),
    }
}

pub async fn open(
    src: &Arc<dyn SourceConnector>,
    offsets: Vec<StoredOffset>,
) -> Result<Box<dyn SourceTask>, tributary_runtime::error::ConnectorError> {
    src.open_task(SourceTaskContext {
        connector: Arc::from("pg"),
        task_id: 0,
        offsets,
        progress: ProgressHandle::new(),
        value_modes: src.value_modes(),
    })
    .await
}

/// Polls until `done(all records so far)` or the deadline (then panics with `what`).
pub async fn poll_until(
    task: &mut dyn SourceTask,
    what: &str,
    timeout: Duration,
    done: impl Fn(&[SourceRecord]) -> bool,
) -> Vec<SourceRecord> {
    let deadline = Instant::now() + timeout;
    let mut all = Vec::new();
    loop {
        let batch = task
            .poll()
            .await
            .unwrap_or_else(|e| panic!("poll: {}", e.trace()));
        all.extend(batch);
        if done(&all) {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; got {} records",
            all.len()
        );
    }
}

/// The stored offset of the last record that carries one.
pub fn last_offset(records: &[SourceRecord]) -> Option<StoredOffset> {
    records.iter().rev().find_map(|r| {
        r.offset.as_ref().map(|o| StoredOffset {
            partition: r.partition.clone(),
            offset: o.clone(),
        })
    })
}

/// SQL that makes reading `table` (as the non-owner `cdc`) wait while advisory lock `key` is
/// held in the same database: a row-level-security policy calling a function that takes the
/// lock shared. A table lock would not do: it gives the holder's transaction an xid, and a
/// slot's creation waits for every transaction with one.
pub fn read_gate_sql(table: &str, key: i64) -> String {
    format!(
        "CREATE FUNCTION gate_{table}() RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
           BEGIN PERFORM pg_advisory_lock_shared({key}); PERFORM pg_advisory_unlock_shared({key});
                 RETURN true; END $$;
         ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
         CREATE POLICY gate ON {table} FOR SELECT USING (gate_{table}());"
    )
}

/// Waits for a condition with a deadline.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts a worker on `data_dir` with the postgres plugin.
pub async fn start_worker(data_dir: &Path) -> Arc<Worker> {
    // Logs go to the test's captured output (RUST_LOG selects, e.g. tributary_postgres=debug).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    Worker::start(
        WorkerConfig {
            data_dir: data_dir.to_path_buf(),
            offset_flush_interval_ms: 0,
            ..Default::default()
        },
        registry(),
    )
    .await
    .expect("worker start")
}

/// Every record value (parsed JSON, `None` for tombstones) of a topic in the worker's log.
pub fn read_topic(worker: &Worker, topic: &str) -> Vec<Option<serde_json::Value>> {
    let log = worker.embedded_log().expect("embedded log");
    let Some(t) = log.topic(topic) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for p in &t.partitions {
        let mut cursor = ReadCursor::at(p.log_start());
        loop {
            let (records, next) = p.read(cursor, 100_000, 64 << 20).expect("read log");
            if records.is_empty() {
                break;
            }
            cursor = next;
            for (_, r) in records {
                out.push(
                    r.value
                        .map(|v| serde_json::from_slice(&v).expect("json value")),
                );
            }
        }
    }
    out
}

/// Applies change events to a map keyed by `id` (the consumed state of a table).
pub fn apply_events(values: &[Option<serde_json::Value>]) -> BTreeMap<i64, serde_json::Value> {
    let mut state = BTreeMap::new();
    for v in values.iter().flatten() {
        let op = v["op"].as_str().unwrap_or("");
        match op {
            "r" | "c" | "u" => {
                let after = v["after"].clone();
                state.insert(after["id"].as_i64().expect("id"), after);
            }
            "d" => {
                state.remove(&v["before"]["id"].as_i64().expect("id"));
            }
            _ => {}
        }
    }
    state
}

pub async fn task_trace(worker: &Worker, name: &str) -> Option<String> {
    worker
        .status(name)
        .await
        .ok()
        .and_then(|s| s.tasks.first().and_then(|t| t.trace.clone()))
}
