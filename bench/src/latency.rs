//! The `latency` scenario: a writer inserts rows at a fixed rate (up to 100 transactions
//! per second) while Tributary streams them; for every row, the time from the writer sending
//! `COMMIT` to the row being durable in the embedded log (observed by the worker process at
//! every group commit), and to the row being visible in a JDBC sink's Postgres target table
//! (observed by polling `max(id)` every millisecond). Rows reach the log in commit order (one
//! table, one writer, one partition), so the n-th record is the n-th row written, and the sink
//! writes them in that order, so `max(id)` is the number of rows visible.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use mysql_async::Conn;
use mysql_async::prelude::Queryable as _;
use serde_json::json;

use crate::env::TestEnv;
use crate::progress::say;
use crate::report::{Column, Report, Row, Table, number};
use crate::side::{SideProcess, SideSpec};
use crate::{LatencyArgs, TIMEOUT_SECS};

/// Rows written before the measured writer starts (the worker is streaming once they are
/// durable).
const WARMUP: u64 = 100;
/// Transactions per second of the writer (at most).
const TICKS_PER_SEC: u64 = 100;

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// One committed transaction: rows `[start, end)` in log order, and when COMMIT was sent.
struct Commit {
    end: u64,
    sent_ns: u128,
}

/// One round's figures.
#[derive(Default)]
struct Round {
    achieved: f64,
    p50: f64,
    p99: f64,
    max: f64,
    /// Commit to visible in the JDBC target.
    jdbc_p50: f64,
    jdbc_p99: f64,
    jdbc_max: f64,
    cpu: f64,
    rss: f64,
}

/// The JDBC sink's target: a table in a Postgres database of the benchmark.
struct Target<'a> {
    server: &'a crate::postgres::Server,
    table: String,
}

impl Target<'_> {
    /// The JDBC sink connector writing `topic` into the target table (upsert by key, the
    /// table created from the records' schema).
    fn sink(&self, topic: &str) -> BTreeMap<String, String> {
        let (user, password) = crate::postgres::user_password(&self.server.admin);
        [
            (
                "connector.class",
                "io.debezium.connector.jdbc.JdbcSinkConnector",
            ),
            ("topics", topic),
            (
                "connection.url",
                &format!(
                    "jdbc:postgresql://127.0.0.1:{}/{}",
                    self.server.port(),
                    self.server.db
                ),
            ),
            ("connection.username", &user),
            ("connection.password", &password),
            ("insert.mode", "upsert"),
            ("primary.key.mode", "record_key"),
            ("schema.evolution", "basic"),
            ("table.name.format", &self.table),
            ("key.converter", crate::AVRO),
            ("value.converter", crate::AVRO),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// Starts polling the table's `max(id)`.
    async fn watch(&self) -> Result<Watch> {
        let client = self.server.connect().await?;
        let query = format!("SELECT coalesce(max(id), 0)::bigint FROM {}", self.table);
        let stop = Arc::new(AtomicBool::new(false));
        let visible = Arc::new(AtomicU64::new(0));
        let (s, v) = (stop.clone(), visible.clone());
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut last = 0;
            while !s.load(Ordering::Relaxed) {
                // Before the sink created the table, the query fails: nothing is visible.
                if let Ok(row) = client.query_one(&query, &[]).await {
                    let n = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
                    if n != last {
                        seen.push((n, unix_nanos()));
                        last = n;
                        v.store(n, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            seen
        });
        Ok(Watch {
            stop,
            visible,
            task,
        })
    }
}

/// A running poll of the target's `max(id)`.
struct Watch {
    stop: Arc<AtomicBool>,
    visible: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<Vec<(u64, u128)>>,
}

impl Watch {
    /// Waits until `total` rows are visible; (rows visible, Unix ns) at every change.
    async fn finish(self, total: u64) -> Result<Vec<(u64, u128)>> {
        let deadline = Instant::now() + Duration::from_secs(TIMEOUT_SECS);
        while self.visible.load(Ordering::Relaxed) < total {
            crate::check_interrupted()?;
            if Instant::now() >= deadline {
                self.stop.store(true, Ordering::Relaxed);
                bail!(
                    "only {} of {total} rows visible in the JDBC target after {TIMEOUT_SECS} s",
                    self.visible.load(Ordering::Relaxed)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.stop.store(true, Ordering::Relaxed);
        Ok(self.task.await?)
    }
}

/// Milliseconds from COMMIT to durable for every row after the warm-up.
fn latencies(commits: &[Commit], durable: &[(u64, u128)]) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    let mut d = 0usize;
    let mut row = WARMUP;
    for c in commits {
        while row < c.end {
            // The first group commit after which the log held record `row`.
            while durable.get(d).is_some_and(|(count, _)| *count <= row) {
                d += 1;
            }
            let Some((_, at)) = durable.get(d) else {
                bail!("record {row} was never seen durable");
            };
            out.push((*at as f64 - c.sent_ns as f64) / 1e6);
            row += 1;
        }
    }
    Ok(out)
}

/// (p50, p99, max) of some latencies.
fn percentiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    (at(0.50), at(0.99), v[v.len() - 1])
}

/// Writes `rate` rows/s for `seconds` through `commit_batch` (which inserts ids `lo..=hi` in
/// one transaction and returns when COMMIT was sent), one transaction per tick with the rows
/// due by then; returns the commits and the rate reached.
async fn write_steadily<F, Fut>(
    rate: u64,
    seconds: u64,
    mut commit_batch: F,
) -> Result<(Vec<Commit>, f64)>
where
    F: FnMut(u64, u64) -> Fut,
    Fut: std::future::Future<Output = Result<u128>>,
{
    let mut ticker = tokio::time::interval(Duration::from_nanos(1_000_000_000 / TICKS_PER_SEC));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = Instant::now();
    let stop = started + Duration::from_secs(seconds);
    let mut next = WARMUP + 1; // ids start at 1; the warm-up used 1..=WARMUP
    let mut commits = Vec::new();
    while Instant::now() < stop {
        ticker.tick().await;
        crate::check_interrupted()?;
        // The rows due by now: a transaction that took longer than a tick makes the next
        // one larger, so the row rate holds even when the transaction rate cannot.
        let due = (rate as f64 * started.elapsed().as_secs_f64()) as u64;
        let written = next - 1 - WARMUP;
        if due <= written {
            continue;
        }
        let n = due - written;
        let sent_ns = commit_batch(next, next + n - 1).await?;
        next += n;
        commits.push(Commit {
            end: next - 1,
            sent_ns,
        });
    }
    let written = next - 1 - WARMUP;
    Ok((commits, written as f64 / started.elapsed().as_secs_f64()))
}

/// Waits for every row in the JDBC target, then for the side's result.
async fn summarize(
    mut side: SideProcess,
    watch: Watch,
    commits: &[Commit],
    achieved: f64,
) -> Result<Round> {
    let total = commits.last().map_or(WARMUP, |c| c.end);
    let visible = watch.finish(total).await?;
    side.send_expect(total)?;
    let (result, usage) = side.finish()?;
    if result.records < total {
        bail!("only {} of {total} records durable", result.records);
    }
    let (p50, p99, max) = percentiles(latencies(commits, &result.durable)?);
    let (jdbc_p50, jdbc_p99, jdbc_max) = percentiles(latencies(commits, &visible)?);
    Ok(Round {
        achieved,
        p50,
        p99,
        max,
        jdbc_p50,
        jdbc_p99,
        jdbc_max,
        cpu: usage.cpu_secs,
        rss: usage.peak_rss_mb,
    })
}

async fn mysql_round(
    env: &TestEnv,
    args: &LatencyArgs,
    admin: &mut Conn,
    db: &str,
    target: &crate::postgres::Server,
    round: usize,
) -> Result<Round> {
    let servers = crate::mysql::Servers::from_env(env)?;
    let table = format!("l{round}");
    admin
        .query_drop(crate::mysql::create_table(db, &table))
        .await?;
    let (file, pos) = crate::mysql::master_status(admin).await?;
    let dir = tempfile::tempdir()?;
    let topic = format!("{db}.{db}.{table}");
    let target = Target {
        server: target,
        table: format!("my_{table}"),
    };
    let watch = target.watch().await?;
    let mut side = SideProcess::start(&SideSpec {
        data_dir: dir.path().to_path_buf(),
        config: servers.connector(db, &format!("{db}.{table}"), "never"),
        seed: Some(crate::mysql::Servers::seed(db, &file, pos)),
        topic: topic.clone(),
        expect: None,
        ready_at: Some(WARMUP),
        durable_times: true,
        timeout_secs: TIMEOUT_SECS,
        sink: Some(target.sink(&topic)),
        kafka: None,
    })?;
    admin.query_drop(format!("USE {db}")).await?;
    admin
        .query_drop(crate::mysql::insert_rows(db, &table, 1, WARMUP))
        .await?;
    side.wait_ready(Duration::from_secs(120))?;
    let conn = std::sync::Arc::new(tokio::sync::Mutex::new(
        Conn::new(servers.admin.clone()).await?,
    ));
    {
        let mut c = conn.lock().await;
        c.query_drop(format!("USE {db}")).await?;
    }
    let (commits, achieved) = write_steadily(args.rate, args.seconds, |lo, hi| {
        let conn = conn.clone();
        let insert = crate::mysql::insert_rows(db, &table, lo, hi);
        async move {
            let mut c = conn.lock().await;
            c.query_drop("BEGIN").await?;
            c.query_drop(insert).await?;
            let sent = unix_nanos();
            c.query_drop("COMMIT").await?;
            Ok(sent)
        }
    })
    .await?;
    summarize(side, watch, &commits, achieved).await
}

async fn postgres_round(
    args: &LatencyArgs,
    server: &crate::postgres::Server,
    round: usize,
) -> Result<Round> {
    let client = server.connect().await?;
    let table = format!("l{round}");
    let publication = format!("pub_l{round}");
    let slot = format!("bench_lat_{round}");
    client
        .batch_execute(&format!(
            "{}; CREATE PUBLICATION {publication} FOR TABLE {table}",
            crate::postgres::create_table(&table)
        ))
        .await?;
    client
        .execute(
            "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
            &[&slot],
        )
        .await?;
    let dir = tempfile::tempdir()?;
    let topic = format!("bench.public.{table}");
    let target = Target {
        server,
        table: format!("target_{table}"),
    };
    let watch = target.watch().await?;
    let mut side = SideProcess::start(&SideSpec {
        data_dir: dir.path().to_path_buf(),
        config: server.connector("bench", &slot, &publication, "no_data"),
        seed: None,
        topic: topic.clone(),
        expect: None,
        ready_at: Some(WARMUP),
        durable_times: true,
        timeout_secs: TIMEOUT_SECS,
        sink: Some(target.sink(&topic)),
        kafka: None,
    })?;
    client
        .batch_execute(&crate::postgres::insert_rows(&table, 1, WARMUP))
        .await?;
    side.wait_ready(Duration::from_secs(120))?;
    let client = std::sync::Arc::new(client);
    let (commits, achieved) = write_steadily(args.rate, args.seconds, |lo, hi| {
        let client = client.clone();
        let insert = crate::postgres::insert_rows(&table, lo, hi);
        async move {
            client.batch_execute(&format!("BEGIN; {insert}")).await?;
            let sent = unix_nanos();
            client.batch_execute("COMMIT").await?;
            Ok(sent)
        }
    })
    .await?;
    summarize(side, watch, &commits, achieved).await
}

/// The `latency` scenario: one report with a row per source.
pub async fn run(env: &TestEnv, args: &LatencyArgs) -> Result<Vec<Report>> {
    let mut rows = Vec::new();
    let mut raw = serde_json::Map::new();
    let mut add = |label: &str, rounds: &[Round]| {
        let col = |f: fn(&Round) -> f64| rounds.iter().map(f).collect::<Vec<f64>>();
        rows.push(Row {
            label: label.to_owned(),
            cells: vec![
                vec![args.rate as f64],
                col(|r| r.achieved),
                col(|r| r.p50),
                col(|r| r.p99),
                col(|r| r.max),
                col(|r| r.jdbc_p50),
                col(|r| r.jdbc_p99),
                col(|r| r.jdbc_max),
                col(|r| r.cpu),
                col(|r| r.rss),
            ],
        });
        raw.insert(
            label.to_owned(),
            json!(rounds.iter().map(|r| json!({"achieved": r.achieved, "p50_ms": r.p50, "p99_ms": r.p99, "max_ms": r.max, "jdbc_p50_ms": r.jdbc_p50, "jdbc_p99_ms": r.jdbc_p99, "jdbc_max_ms": r.jdbc_max, "cpu_s": r.cpu, "peak_rss_mb": r.rss})).collect::<Vec<_>>()),
        );
    };
    if args.source.mysql() {
        let servers = crate::mysql::Servers::from_env(env)?;
        let mut admin = Conn::new(servers.admin.clone())
            .await
            .context("cannot connect to MariaDB as root: is scripts/test-env.sh up running?")?;
        let db = crate::mysql::unique_db("lat");
        admin.query_drop(format!("CREATE DATABASE {db}")).await?;
        let target = crate::postgres::Server::create(env, "latsink").await?;
        let mut rounds = Vec::new();
        let mut failed = None;
        for round in 1..=args.common.repeat {
            say(format!(
                "round {round}/{}: MariaDB writer at {} rows/s for {} s",
                args.common.repeat, args.rate, args.seconds
            ));
            match mysql_round(env, args, &mut admin, &db, &target, round).await {
                Ok(r) => rounds.push(r),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let _ = admin
            .query_drop(format!("DROP DATABASE IF EXISTS {db}"))
            .await;
        target.drop_all().await;
        if let Some(e) = failed {
            return Err(e);
        }
        add(
            "MariaDB → tributary → embedded log (fsync) → JDBC sink → Postgres",
            &rounds,
        );
    }
    if args.source.postgres() {
        let server = crate::postgres::Server::create(env, "lat").await?;
        let mut rounds = Vec::new();
        let mut failed = None;
        for round in 1..=args.common.repeat {
            say(format!(
                "round {round}/{}: PostgreSQL writer at {} rows/s for {} s",
                args.common.repeat, args.rate, args.seconds
            ));
            match postgres_round(args, &server, round).await {
                Ok(r) => rounds.push(r),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        server.drop_all().await;
        if let Some(e) = failed {
            return Err(e);
        }
        add(
            "PostgreSQL → tributary → embedded log (fsync) → JDBC sink → Postgres",
            &rounds,
        );
    }
    Ok(vec![Report {
        scenario: "latency",
        command: args.common.command("latency"),
        notes: vec![format!(
            "A writer inserts {} rows/s into the 8-column table in up to {TICKS_PER_SEC} transactions per second (each with the rows due by then) for {} s \
             while Tributary streams (Avro, embedded log with fsync, worker in its own process). Latency of a row: \
             from the writer sending its transaction's COMMIT to the log's high watermark covering it, observed by \
             the worker process at every group commit (so it includes the commit itself, decoding, encoding, the \
             append and the fsync). A JDBC sink in the same worker upserts the records into a Postgres table; \
             \"visible\" is when a poll of the table's max(id), every millisecond from the benchmark process, \
             first covers the row (so it includes the sink's consume, decode, batch and transaction commit, plus \
             up to a poll interval). CPU and peak RSS: the worker process (source and sink) over the whole run.",
            number(args.rate as f64, 0),
            args.seconds
        )],
        tables: vec![Table {
            title: "Commit → durable in the log, and → visible in the JDBC target".into(),
            columns: vec![
                Column {
                    name: "target rows/s",
                    decimals: 0,
                },
                Column {
                    name: "written rows/s",
                    decimals: 0,
                },
                Column {
                    name: "p50 ms",
                    decimals: 1,
                },
                Column {
                    name: "p99 ms",
                    decimals: 1,
                },
                Column {
                    name: "max ms",
                    decimals: 1,
                },
                Column {
                    name: "JDBC p50 ms",
                    decimals: 1,
                },
                Column {
                    name: "JDBC p99 ms",
                    decimals: 1,
                },
                Column {
                    name: "JDBC max ms",
                    decimals: 1,
                },
                Column {
                    name: "CPU s",
                    decimals: 2,
                },
                Column {
                    name: "peak RSS MB",
                    decimals: 0,
                },
            ],
            rows,
        }],
        extra: serde_json::Value::Object(raw),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_row_takes_the_first_group_commit_that_covers_it() {
        // Warm-up rows 0..100; two transactions: rows 100..150 sent at 1 ms, 150..200 at 2 ms.
        let commits = [
            Commit {
                end: 150,
                sent_ns: 1_000_000,
            },
            Commit {
                end: 200,
                sent_ns: 2_000_000,
            },
        ];
        // Durable: 100 at 0.5 ms, 120 at 3 ms, 200 at 5 ms.
        let durable = [(100, 500_000), (120, 3_000_000), (200, 5_000_000)];
        let l = latencies(&commits, &durable).expect("covered");
        assert_eq!(l.len(), 100);
        assert_eq!(l[0], 2.0); // row 100: durable at 3 ms, sent at 1 ms
        assert_eq!(l[19], 2.0); // row 119
        assert_eq!(l[20], 4.0); // row 120: durable at 5 ms
        assert_eq!(l[99], 3.0); // row 199: sent at 2 ms
    }

    #[test]
    fn a_row_never_durable_is_an_error() {
        let commits = [Commit {
            end: 150,
            sent_ns: 0,
        }];
        assert!(latencies(&commits, &[(120, 1)]).is_err());
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentiles(v), (50.0, 99.0, 100.0));
    }
}
