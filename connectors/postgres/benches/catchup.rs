//! Catch-up benchmark: 500k inserted 8-column rows, read from a replication slot by
//! `pg_recvlogical` (pgoutput, same publication, to /dev/null, on a copy of the slot) and by
//! the connector into the embedded log, in the same invocation.
//!
//! `cargo bench -p tributary-postgres --bench catchup [-- --rows N]`
//! Needs `scripts/test-env.sh up`. With `--list` (test runners) it prints nothing and exits.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::NoTls;
use tributary_runtime::config::{ConnectorConfig, RawConfig, WorkerConfig};
use tributary_runtime::registry::Registry;
use tributary_runtime::worker::Worker;

fn env_vars() -> std::collections::BTreeMap<String, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.test-env/env");
    let path = std::env::var_os("TRIB_TEST_ENV_FILE").map_or(path, Into::into);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("test environment not running: run scripts/test-env.sh up ({e})")
    });
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// Peak resident set (VmHWM) of a process, in MB.
fn peak_rss_mb(pid: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let rows: u64 = args
        .iter()
        .position(|a| a == "--rows")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(500_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(rows));
}

async fn run(rows: u64) {
    let vars = env_vars();
    let pg_url = vars["TRIB_PG_URL"].clone();
    let port = vars["TRIB_PG_PORT"].clone();
    let recvlogical = vars["TRIB_PG_RECVLOGICAL_BIN"].clone();
    let suffix = format!("{:08x}", rand::random::<u32>());
    let db = format!("bench{suffix}");
    let slot = format!("bench{suffix}_slot");
    let copy = format!("bench{suffix}_copy");
    let publication = format!("bench{suffix}_pub");

    let (root, conn) = tokio_postgres::connect(&pg_url, NoTls).await.unwrap();
    tokio::spawn(conn);
    root.batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    let db_url = match pg_url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{db}"),
        None => panic!("TRIB_PG_URL has no database: {pg_url}"),
    };
    let (admin, conn) = tokio_postgres::connect(&db_url, NoTls).await.unwrap();
    tokio::spawn(conn);
    admin
        .batch_execute(&format!(
            "CREATE TABLE t (id bigint PRIMARY KEY, seq bigint NOT NULL, name varchar(64), \
               amount numeric(12,2), created_at timestamp(6), note text, active boolean, payload jsonb);
             CREATE PUBLICATION {publication} FOR ALL TABLES;"
        ))
        .await
        .unwrap();
    // A slot cannot be created in a transaction that wrote: a statement of its own.
    admin
        .execute(
            "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
            &[&slot],
        )
        .await
        .unwrap();
    let batch = 1000u64;
    let load = Instant::now();
    for start in (0..rows).step_by(batch as usize) {
        let end = (start + batch).min(rows);
        admin
            .batch_execute(&format!(
                "INSERT INTO t SELECT g, g, 'customer-' || (g % 100000), (g % 10000000) / 100.0, \
                   timestamp '2024-01-01' + g * interval '1 second', \
                   'Synthetic change event: a note of about one hundred bytes so records have a realistic size.', \
                   g % 2 = 0, jsonb_build_object('seq', g, 'tag', 't' || (g % 16)) \
                 FROM generate_series({start}, {}) g",
                end - 1
            ))
            .await
            .unwrap();
    }
    let endpos: String = admin
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);
    let wal_bytes: i64 = admin
        .query_one(
            "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::int8 FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .unwrap()
        .get(0);
    admin
        .execute(
            "SELECT pg_copy_logical_replication_slot($1, $2)",
            &[&slot, &copy],
        )
        .await
        .unwrap();
    let load_secs = load.elapsed().as_secs_f64();

    // 1. pg_recvlogical on the copy, to /dev/null, until the end position.
    let conninfo =
        format!("host=127.0.0.1 port={port} user=postgres password=postgres dbname={db}");
    let started = Instant::now();
    let mut child = Command::new(&recvlogical)
        .args([
            "-d",
            &conninfo,
            "--slot",
            &copy,
            "--start",
            "--no-loop",
            "-o",
            "proto_version=1",
            "-o",
            &format!("publication_names={publication}"),
            "--endpos",
            &endpos,
            "-f",
            "/dev/null",
        ])
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let mut recv_rss: f64 = 0.0;
    let status = loop {
        if let Some(rss) = peak_rss_mb(&pid) {
            recv_rss = recv_rss.max(rss);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let recv_secs = started.elapsed().as_secs_f64();
    assert!(status.success(), "pg_recvlogical failed: {status}");

    // 2. The connector, from the original slot, into the embedded log.
    let data = tempfile::tempdir().unwrap();
    let mut registry = Registry::with_builtins();
    registry.register(Arc::new(tributary_postgres::PostgresPlugin));
    let worker = Worker::start(
        WorkerConfig {
            data_dir: data.path().to_path_buf(),
            offset_flush_interval_ms: 1000,
            ..Default::default()
        },
        registry,
    )
    .await
    .unwrap();
    let mut raw: RawConfig = RawConfig::new();
    for (k, v) in [
        (
            "connector.class",
            "io.debezium.connector.postgresql.PostgresConnector",
        ),
        ("database.hostname", "127.0.0.1"),
        ("database.port", port.as_str()),
        ("database.user", "cdc"),
        ("database.password", "cdc"),
        ("database.dbname", db.as_str()),
        ("topic.prefix", "bench"),
        ("slot.name", slot.as_str()),
        ("publication.name", publication.as_str()),
        ("publication.autocreate.mode", "disabled"),
        ("snapshot.mode", "no_data"),
    ] {
        raw.insert(k.to_owned(), v.to_owned());
    }
    let started = Instant::now();
    worker
        .put_config(ConnectorConfig {
            name: "bench".into(),
            config: raw,
        })
        .await
        .unwrap();
    let log = worker.embedded_log().unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    let (ours_secs, log_bytes) = loop {
        if let Some(topic) = log.topic("bench.public.t") {
            let count: u64 = topic.partitions.iter().map(|p| p.high_watermark()).sum();
            if count >= rows {
                let bytes: u64 = topic.partitions.iter().map(|p| p.size_bytes()).sum();
                break (started.elapsed().as_secs_f64(), bytes);
            }
        }
        assert!(Instant::now() < deadline, "connector catch-up timed out");
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let ours_rss = peak_rss_mb("self").unwrap_or(0.0);
    worker.shutdown().await;

    let mb = |b: f64| b / 1_000_000.0;
    let wal_mb = mb(wal_bytes as f64);
    println!(
        "catch-up of {rows} inserted 8-column rows ({wal_mb:.1} MB of WAL; load took {load_secs:.1} s)"
    );
    println!("| reader | seconds | events/s | WAL MB/s | output MB/s | peak RSS MB |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| pg_recvlogical (pgoutput v1, /dev/null) | {recv_secs:.2} | {:.0} | {:.1} | – | {recv_rss:.0} |",
        rows as f64 / recv_secs,
        wal_mb / recv_secs
    );
    println!(
        "| tributary postgres → embedded log (JSON) | {ours_secs:.2} | {:.0} | {:.1} | {:.1} | {ours_rss:.0} |",
        rows as f64 / ours_secs,
        wal_mb / ours_secs,
        mb(log_bytes as f64) / ours_secs
    );
    println!(
        "ratio (tributary / pg_recvlogical events/s): {:.2}",
        recv_secs / ours_secs
    );

    for s in [&slot, &copy] {
        let _ = root
            .execute(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL",
                &[s],
            )
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = root
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
                &[s],
            )
            .await;
    }
    drop(admin);
    let _ = root
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await;
}
