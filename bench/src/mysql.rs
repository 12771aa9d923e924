//! MariaDB: the benchmark table, its loader, the connector config, and the `mysql`
//! catch-up scenario beside `mariadb-binlog --read-from-remote-server` (with and without
//! `-v`) over the same binlog range.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};
use mysql_async::prelude::Queryable as _;
use mysql_async::{Conn, Opts};
use serde_json::json;

use crate::env::TestEnv;
use crate::progress::{Progress, say};
use crate::report::{Column, Report, Row, Table};
use crate::side::{self, Seed, SideSpec};
use crate::{AVRO, Args, Series, TIMEOUT_SECS, note_text};

/// The 8-column benchmark table (issue 13): bigint key, int, varchar(64), decimal(12,2),
/// datetime(6), ~200-byte text, bool, json.
pub fn create_table(db: &str, table: &str) -> String {
    format!(
        "CREATE TABLE {db}.{table} (id BIGINT PRIMARY KEY, qty INT, name VARCHAR(64), \
         amount DECIMAL(12,2), created_at DATETIME(6), note TEXT, active BOOL, payload JSON)"
    )
}

/// `INSERT ... SELECT` of rows `lo..=hi` (MariaDB's sequence engine makes the ids).
pub fn insert_rows(db: &str, table: &str, lo: u64, hi: u64) -> String {
    format!(
        "INSERT INTO {db}.{table} SELECT seq, seq % 100000, CONCAT('customer-', seq), \
         (seq % 10000000) / 100, '2024-03-01 12:00:00.123456' + INTERVAL seq SECOND, \
         CONCAT('{note}', seq), seq % 2 = 0, JSON_OBJECT('seq', seq, 'tag', CONCAT('t', seq % 16)) \
         FROM seq_{lo}_to_{hi}",
        note = note_text()
    )
}

/// Loads rows `first..first+rows` in 10,000-row transactions, with a progress line.
pub async fn load(conn: &mut Conn, db: &str, table: &str, first: u64, rows: u64) -> Result<()> {
    const CHUNK: u64 = 10_000;
    conn.query_drop(format!("USE {db}")).await?;
    let mut progress = Progress::new(format!("loading {db}.{table}"), rows);
    let mut done = 0;
    while done < rows {
        let n = CHUNK.min(rows - done);
        let lo = first + done;
        conn.query_drop(insert_rows(db, table, lo, lo + n - 1))
            .await
            .with_context(|| format!("loading {db}.{table}"))?;
        done += n;
        progress.update(done);
        crate::check_interrupted()?;
    }
    Ok(())
}

/// The servers of the test environment.
pub struct Servers {
    pub admin: Opts,
    pub cdc: Opts,
    pub binlog_bin: String,
    pub client_bin: String,
    /// The test environment's Kafka broker, if it has one.
    pub kafka: Option<String>,
}

impl Servers {
    pub fn from_env(env: &TestEnv) -> Result<Self> {
        Ok(Servers {
            admin: Opts::from_url(env.get("TRIB_MARIADB_URL")?).context("TRIB_MARIADB_URL")?,
            cdc: Opts::from_url(env.get("TRIB_MARIADB_CDC_URL")?)
                .context("TRIB_MARIADB_CDC_URL")?,
            binlog_bin: env.get("TRIB_MARIADB_BINLOG_BIN")?.to_owned(),
            client_bin: env.get("TRIB_MARIADB_BIN")?.to_owned(),
            kafka: env.get("TRIB_KAFKA_BOOTSTRAP").ok().map(str::to_owned),
        })
    }

    /// `--host --port --user --password` of the cdc user, for the command-line tools.
    pub fn cdc_args(&self) -> Vec<String> {
        vec![
            format!("--host={}", self.cdc.ip_or_hostname()),
            format!("--port={}", self.cdc.tcp_port()),
            format!("--user={}", self.cdc.user().unwrap_or_default()),
            format!("--password={}", self.cdc.pass().unwrap_or_default()),
        ]
    }

    /// The connector's config (Avro key and value, built-in schema registry).
    pub fn connector(
        &self,
        prefix: &str,
        tables: &str,
        snapshot_mode: &str,
    ) -> BTreeMap<String, String> {
        let server_id = (1_000_000 + rand::random::<u32>() % 1_000_000_000).to_string();
        [
            (
                "connector.class",
                "io.debezium.connector.mariadb.MariaDbConnector",
            ),
            ("database.hostname", self.cdc.ip_or_hostname()),
            ("database.port", &self.cdc.tcp_port().to_string()),
            ("database.user", self.cdc.user().unwrap_or_default()),
            ("database.password", self.cdc.pass().unwrap_or_default()),
            ("database.server.id", &server_id),
            ("database.ssl.mode", "disabled"),
            ("topic.prefix", prefix),
            ("table.include.list", tables),
            ("snapshot.mode", snapshot_mode),
            ("key.converter", AVRO),
            ("value.converter", AVRO),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// The offset that starts the connector at `file:pos`.
    pub fn seed(prefix: &str, file: &str, pos: u64) -> Seed {
        Seed {
            partition: json!({ "server": prefix }),
            offset: json!({ "file": file, "pos": pos, "row": 0 }),
            order: [0, pos, 0],
        }
    }
}

/// `SHOW MASTER STATUS`: the current binlog file and position.
pub async fn master_status(conn: &mut Conn) -> Result<(String, u64)> {
    let row: Option<mysql_async::Row> = conn.query_first("SHOW MASTER STATUS").await?;
    let row = row.context("SHOW MASTER STATUS returned nothing: the binlog is off")?;
    let file: String = row.get(0).context("binlog file")?;
    let pos: u64 = row.get(1).context("binlog position")?;
    Ok((file, pos))
}

/// A fresh database name.
pub fn unique_db(what: &str) -> String {
    format!("bench_{what}_{:08x}", rand::random::<u32>())
}

/// The `mysql` scenario.
pub async fn catchup(env: &TestEnv, args: &Args) -> Result<Report> {
    let servers = Servers::from_env(env)?;
    let mut admin = Conn::new(servers.admin.clone())
        .await
        .context("cannot connect to MariaDB as root: is scripts/test-env.sh up running?")?;
    let db = unique_db("mysql");
    admin.query_drop(format!("CREATE DATABASE {db}")).await?;
    let result = catchup_in(&servers, &mut admin, &db, args).await;
    let _ = admin
        .query_drop(format!("DROP DATABASE IF EXISTS {db}"))
        .await;
    result
}

async fn catchup_in(servers: &Servers, admin: &mut Conn, db: &str, args: &Args) -> Result<Report> {
    let rows = args.rows.unwrap_or(500_000);
    admin.query_drop(create_table(db, "t")).await?;
    // A fresh binlog file, so the load does not rotate in the middle.
    admin.query_drop("FLUSH BINARY LOGS").await?;
    let (file, start) = master_status(admin).await?;
    load(admin, db, "t", 1, rows).await?;
    let (end_file, stop) = master_status(admin).await?;
    if end_file != file {
        bail!("the binlog rotated during the load ({file} -> {end_file}); use fewer --rows");
    }
    let binlog_mb = (stop - start) as f64 / 1e6;
    say(format!(
        "{rows} rows, {binlog_mb:.1} MB of binlog ({file} {start}..{stop})"
    ));

    let mut plain = Series::default();
    let mut verbose = Series::default();
    let mut ours = Series::default();
    let mut ours_kafka = Series::default();
    let kafka = if args.kafka {
        Some(servers.kafka.clone().context(
            "--kafka: TRIB_KAFKA_BOOTSTRAP is not in the test environment; run scripts/test-env.sh up",
        )?)
    } else {
        None
    };
    let mut samples = Vec::new();
    let mut out_mb = Vec::new();
    for round in 1..=args.repeat {
        // Odd rounds read with the ceilings first, even rounds with Tributary first, so no
        // reader always gets the page cache warmed by the one before.
        for step in crate::round_order(round) {
            crate::check_interrupted()?;
            if step == crate::Step::Ours {
                say(format!("round {round}/{}: tributary catch-up", args.repeat));
                let dir = tempfile::tempdir()?;
                let spec = SideSpec {
                    data_dir: dir.path().to_path_buf(),
                    config: servers.connector(db, &format!("{db}.t"), "never"),
                    seed: Some(Servers::seed(db, &file, start)),
                    topic: format!("{db}.{db}.t"),
                    expect: Some(rows),
                    ready_at: None,
                    durable_times: false,
                    timeout_secs: TIMEOUT_SECS,
                    sink: None,
                    kafka: None,
                };
                let (result, usage) = side::run(&spec)?;
                ours.push(result.secs, &usage);
                out_mb.push(result.log_bytes as f64 / 1e6);
                samples.push(result.samples);
                if let Some(bootstrap) = &kafka {
                    say(format!(
                        "round {round}/{}: tributary catch-up into Kafka",
                        args.repeat
                    ));
                    let dir = tempfile::tempdir()?;
                    let (result, usage) = side::run(&SideSpec {
                        data_dir: dir.path().to_path_buf(),
                        kafka: Some(bootstrap.clone()),
                        ..spec
                    })?;
                    ours_kafka.push(result.secs, &usage);
                }
                continue;
            }
            for (series, v) in [(&mut plain, false), (&mut verbose, true)] {
                say(format!(
                    "round {round}/{}: mariadb-binlog{}",
                    args.repeat,
                    if v { " -v" } else { "" }
                ));
                let mut cmd = Command::new(&servers.binlog_bin);
                cmd.arg("--read-from-remote-server")
                    .args(servers.cdc_args())
                    .args(v.then_some("-v"))
                    .arg(format!("--start-position={start}"))
                    .arg(format!("--stop-position={stop}"))
                    .arg(&file)
                    .stdout(Stdio::null());
                let usage = crate::measure::run(&mut cmd, "mariadb-binlog")?;
                series.push(usage.wall_secs, &usage);
            }
        }
    }

    crate::plot::write(
        args.plot.as_deref(),
        &format!("MariaDB catch-up of {rows} rows"),
        &crate::plot::catchup_lines(
            rows,
            &[("mariadb-binlog", &plain), ("mariadb-binlog -v", &verbose)],
            &samples,
        ),
    )?;
    let readers = [
        (
            "`mariadb-binlog --read-from-remote-server` → /dev/null",
            &plain,
        ),
        (
            "`mariadb-binlog --read-from-remote-server -v` → /dev/null",
            &verbose,
        ),
        ("tributary catch-up → Avro → embedded log (fsync)", &ours),
        (
            "tributary catch-up → Avro → Kafka (acks=all, idempotent)",
            &ours_kafka,
        ),
    ];
    let table_rows = readers
        .iter()
        .filter(|(_, s)| !s.secs.is_empty())
        .map(|(label, s)| Row {
            label: (*label).to_owned(),
            cells: vec![
                s.secs.clone(),
                s.rates(rows),
                s.secs.iter().map(|t| binlog_mb / t).collect(),
                s.cpu.clone(),
                s.rss.clone(),
                s.ratio_to(&plain),
                s.ratio_to(&verbose),
            ],
        })
        .collect();
    Ok(Report {
        scenario: "mysql",
        command: args.command("mysql"),
        notes: vec![format!(
            "{} rows of the 8-column table (bigint key, int, varchar(64), decimal(12,2), datetime(6), \
                 ~200-byte text, bool, json) loaded into MariaDB in 10,000-row transactions: {binlog_mb:.1} MB of binlog, \
                 read {} time(s) by each reader in turn (odd rounds ceilings first, even rounds Tributary first). MB/s is binlog bytes per second; events are rows. \
                 Tributary: a worker in its own process, from creating the connector until every row is durable \
                 in the log (Avro key and value, {:.1} MB in the log); CPU and peak RSS are that process's.",
            crate::report::number(rows as f64, 0),
            args.repeat,
            out_mb.first().copied().unwrap_or_default()
        )],
        tables: vec![Table {
            title: format!(
                "MariaDB catch-up, {} rows",
                crate::report::number(rows as f64, 0)
            ),
            columns: catchup_columns("binlog MB/s", "× mariadb-binlog", "× mariadb-binlog -v"),
            rows: table_rows,
        }],
        extra: json!({ "rows": rows, "binlog_bytes": stop - start, "tributary_log_mb": out_mb, "throughput_over_time": samples }),
    })
}

/// Columns of a catch-up table.
pub fn catchup_columns(
    mb: &'static str,
    ratio1: &'static str,
    ratio2: &'static str,
) -> Vec<Column> {
    let mut cols = vec![
        Column {
            name: "seconds",
            decimals: 2,
        },
        Column {
            name: "events/s",
            decimals: 0,
        },
        Column {
            name: mb,
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
        Column {
            name: ratio1,
            decimals: 2,
        },
    ];
    if !ratio2.is_empty() {
        cols.push(Column {
            name: ratio2,
            decimals: 2,
        });
    }
    cols
}
