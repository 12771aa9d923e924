//! Catch-up benchmark: 500k inserted 8-column rows, read from the binlog into the embedded
//! log, beside `mariadb-binlog --read-from-remote-server -v` on the same binlog range.
//!
//! Run: `cargo bench -p tributary-mysql-binlog --bench catchup` (needs
//! `scripts/test-env.sh up`). With `--list` it prints nothing and exits 0, so test runners
//! that enumerate benches do not run it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use mysql_async::prelude::Queryable as _;
use mysql_async::{Conn, Opts};
use tributary_runtime::config::{ConnectorConfig, WorkerConfig};
use tributary_runtime::offsets::StoredOffset;
use tributary_runtime::record::{OffsetOrder, SourceOffset, SourcePartition};
use tributary_runtime::registry::Registry;
use tributary_runtime::worker::Worker;

const ROWS: u64 = 500_000;
const CHUNK: u64 = 50_000;

fn env_vars() -> Result<std::collections::BTreeMap<String, String>> {
    let path = match std::env::var_os("TRIB_TEST_ENV_FILE") {
        Some(p) => std::path::PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.test-env/env"),
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: run scripts/test-env.sh up", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| l.trim().split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_owned(),
                v.trim().trim_matches('\'').trim_matches('"').to_owned(),
            )
        })
        .collect())
}

/// Peak resident set size of this process (KiB), from `/proc/self/status`.
fn peak_rss_kib() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

async fn master_status(conn: &mut Conn) -> Result<(String, u64)> {
    let row: (String, u64, String, String) = conn
        .query_first("SHOW MASTER STATUS")
        .await?
        .context("binlog is off")?;
    Ok((row.0, row.1))
}

/// Runs `mariadb-binlog -v` over the range; returns (seconds, peak RSS KiB of the child).
fn reference(
    vars: &std::collections::BTreeMap<String, String>,
    opts: &Opts,
    file: &str,
    start: u64,
    stop: u64,
) -> Result<(f64, i64)> {
    let bin = vars
        .get("TRIB_MARIADB_BINLOG_BIN")
        .context("TRIB_MARIADB_BINLOG_BIN")?;
    let started = Instant::now();
    let mut child = Command::new(bin)
        .arg("--read-from-remote-server")
        .arg(format!("--host={}", opts.ip_or_hostname()))
        .arg(format!("--port={}", opts.tcp_port()))
        .arg(format!("--user={}", opts.user().unwrap_or_default()))
        .arg(format!("--password={}", opts.pass().unwrap_or_default()))
        .arg("-v")
        .arg(format!("--start-position={start}"))
        .arg(format!("--stop-position={stop}"))
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawn mariadb-binlog")?;
    let pid = child.id();
    let mut peak = 0i64;
    loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read as _;
                    let _ = e.read_to_string(&mut err);
                }
                bail!("mariadb-binlog failed: {status}: {err}");
            }
            break;
        }
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(v) = s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse::<i64>().ok())
            })
        {
            peak = peak.max(v);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok((started.elapsed().as_secs_f64(), peak))
}

#[tokio::main]
async fn main() -> Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let vars = env_vars()?;
    let admin_url = vars.get("TRIB_MARIADB_URL").context("TRIB_MARIADB_URL")?;
    let cdc_url = vars
        .get("TRIB_MARIADB_CDC_URL")
        .context("TRIB_MARIADB_CDC_URL")?;
    let mut admin = Conn::new(Opts::from_url(admin_url)?).await?;
    let db = format!("mybench{:016x}", rand::random::<u64>());
    admin.query_drop(format!("CREATE DATABASE {db}")).await?;
    admin
        .query_drop(format!(
            "CREATE TABLE {db}.t (id BIGINT PRIMARY KEY, a INT, b BIGINT, c VARCHAR(32), \
             d DECIMAL(12,2), e DATETIME(6), f DOUBLE, g VARCHAR(64))"
        ))
        .await?;
    let (file, start) = master_status(&mut admin).await?;
    let load = Instant::now();
    for chunk in 0..ROWS / CHUNK {
        let lo = chunk * CHUNK + 1;
        let hi = lo + CHUNK - 1;
        admin
            .query_drop(format!(
                "INSERT INTO {db}.t SELECT seq, seq % 1000, seq * 7, CONCAT('customer-', seq), \
                 seq / 100, '2024-03-01 12:00:00.123456' + INTERVAL seq SECOND, seq / 3, \
                 CONCAT('note ', seq, ' of the benchmark') FROM {db}.seq_{lo}_to_{hi}"
            ))
            .await?;
    }
    let (end_file, stop) = master_status(&mut admin).await?;
    if end_file != file {
        bail!("the binlog rotated during the load ({file} -> {end_file}); run again");
    }
    let load_secs = load.elapsed().as_secs_f64();
    let bytes = stop - start;

    let cdc = Opts::from_url(cdc_url)?;
    let (ref_secs, ref_rss) = reference(&vars, &cdc, &file, start, stop)?;

    // Ours: a worker whose connector starts at `start` (offset stored before it starts).
    let dir = tempfile::tempdir()?;
    let mut registry = Registry::with_builtins();
    registry.register(Arc::new(tributary_mysql_binlog::MySqlPlugin));
    let worker = Worker::start(
        WorkerConfig {
            data_dir: dir.path().to_path_buf(),
            offset_flush_interval_ms: 1000,
            progress_interval_secs: 3600,
            ..Default::default()
        },
        registry,
    )
    .await?;
    let name = "bench";
    let partition = SourcePartition::from_json(&serde_json::json!({ "server": db }));
    worker
        .offsets()
        .commit(
            name,
            vec![StoredOffset {
                partition,
                offset: SourceOffset {
                    value: serde_json::json!({ "file": file, "pos": start, "row": 0 }),
                    order: OffsetOrder([0, start, 0]),
                },
            }],
        )
        .await?;
    let config: std::collections::BTreeMap<String, String> = [
        (
            "connector.class",
            "io.debezium.connector.mariadb.MariaDbConnector",
        ),
        ("database.hostname", cdc.ip_or_hostname()),
        ("database.port", &cdc.tcp_port().to_string()),
        ("database.user", cdc.user().unwrap_or_default()),
        ("database.password", cdc.pass().unwrap_or_default()),
        (
            "database.server.id",
            &(1_000_000 + rand::random::<u32>() % 1_000_000_000).to_string(),
        ),
        ("topic.prefix", &db),
        ("table.include.list", &format!("{db}.t")),
        ("database.ssl.mode", "disabled"),
        ("snapshot.mode", "never"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    // The source task alone (decode only, no encoding or log), to attribute the time.
    let task_secs = {
        let validated = Registry::with_builtins();
        let mut validated = validated;
        validated.register(Arc::new(tributary_mysql_binlog::MySqlPlugin));
        let v = validated
            .validate(&ConnectorConfig {
                name: name.into(),
                config: config.clone(),
            })
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let tributary_runtime::connector::Connector::Source(src) = v.connector else {
            bail!("source expected");
        };
        let offsets = worker.offsets().load(name).await?;
        let started = Instant::now();
        let mut task = src
            .open_task(tributary_runtime::connector::SourceTaskContext {
                connector: Arc::from(name),
                task_id: 0,
                offsets,
                progress: tributary_runtime::progress::ProgressHandle::new(),
                value_modes: src.value_modes(),
            })
            .await?;
        let mut n = 0u64;
        while n < ROWS {
            n += task
                .poll()
                .await?
                .iter()
                .filter(|r| r.topic.ends_with(".t"))
                .count() as u64;
        }
        task.close().await;
        started.elapsed().as_secs_f64()
    };
    let started = Instant::now();
    worker
        .put_config(ConnectorConfig {
            name: name.into(),
            config,
        })
        .await?;
    let topic = format!("{db}.{db}.t");
    let log = worker.embedded_log().context("embedded log")?;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done = log
            .topic(&topic)
            .and_then(|_| log.partition(&topic, 0).ok())
            .map_or(0, |p| p.high_watermark());
        if done >= ROWS {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {done} of {ROWS} events after 600 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ours_secs = started.elapsed().as_secs_f64();
    let ours_rss = peak_rss_kib();
    worker.shutdown().await;
    admin.query_drop(format!("DROP DATABASE {db}")).await?;

    let mb = bytes as f64 / 1_048_576.0;
    println!(
        "catch-up of {ROWS} inserted 8-column rows ({mb:.1} MiB of binlog, loaded in {load_secs:.1} s)"
    );
    println!(
        "  mariadb-binlog -v  : {:>8.2} s  {:>9.0} rows/s  {:>6.1} MiB/s  peak RSS {:>7} KiB",
        ref_secs,
        ROWS as f64 / ref_secs,
        mb / ref_secs,
        ref_rss
    );
    println!(
        "  tributary (log)    : {:>8.2} s  {:>9.0} rows/s  {:>6.1} MiB/s  peak RSS {:>7} KiB (whole bench process)",
        ours_secs,
        ROWS as f64 / ours_secs,
        mb / ours_secs,
        ours_rss
    );
    println!(
        "  source task alone  : {:>8.2} s  {:>9.0} rows/s  (decode only, no encoding or log)",
        task_secs,
        ROWS as f64 / task_secs
    );
    println!(
        "  ratio (ours / mariadb-binlog rate): {:.2}",
        ref_secs / ours_secs
    );
    Ok(())
}
