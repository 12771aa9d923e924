//! PostgreSQL: the benchmark table, its loader, the connector config, and the `postgres`
//! catch-up scenario beside `pg_recvlogical` (pgoutput, to /dev/null), each reading its own
//! copy of one slot made before the load.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::str::FromStr as _;

use anyhow::{Context as _, Result};
use serde_json::json;
use tokio_postgres::{Client, NoTls};

use crate::env::TestEnv;
use crate::progress::{Progress, say};
use crate::report::{Report, Row, Table, number};
use crate::side::{self, SideSpec};
use crate::{AVRO, Args, Series, TIMEOUT_SECS, note_text};

/// The 8-column benchmark table, as in MariaDB.
pub fn create_table(table: &str) -> String {
    format!(
        "CREATE TABLE {table} (id bigint PRIMARY KEY, qty int, name varchar(64), \
         amount numeric(12,2), created_at timestamp(6), note text, active boolean, payload jsonb)"
    )
}

/// `INSERT ... SELECT` of rows `lo..=hi`.
pub fn insert_rows(table: &str, lo: u64, hi: u64) -> String {
    format!(
        "INSERT INTO {table} SELECT g, g % 100000, 'customer-' || g, (g % 10000000) / 100.0, \
         timestamp '2024-03-01 12:00:00.123456' + g * interval '1 second', '{note}' || g, \
         g % 2 = 0, jsonb_build_object('seq', g, 'tag', 't' || (g % 16)) \
         FROM generate_series({lo}, {hi}) g",
        note = note_text()
    )
}

/// Loads rows `first..first+rows` in 10,000-row transactions, with a progress line.
pub async fn load(client: &Client, table: &str, first: u64, rows: u64) -> Result<()> {
    const CHUNK: u64 = 10_000;
    let mut progress = Progress::new(format!("loading {table}"), rows);
    let mut done = 0;
    while done < rows {
        let n = CHUNK.min(rows - done);
        let lo = first + done;
        client
            .batch_execute(&insert_rows(table, lo, lo + n - 1))
            .await
            .with_context(|| format!("loading {table}"))?;
        done += n;
        progress.update(done);
        crate::check_interrupted()?;
    }
    Ok(())
}

/// The server of the test environment and a database of the benchmark's own.
pub struct Server {
    pub admin: tokio_postgres::Config,
    pub cdc: tokio_postgres::Config,
    pub bindir: String,
    pub recvlogical: String,
    pub db: String,
    root: Client,
}

pub fn user_password(c: &tokio_postgres::Config) -> (String, String) {
    (
        c.get_user().unwrap_or("postgres").to_owned(),
        c.get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default(),
    )
}

impl Server {
    /// Connects as the admin and creates a fresh database.
    pub async fn create(env: &TestEnv, what: &str) -> Result<Self> {
        let admin =
            tokio_postgres::Config::from_str(env.get("TRIB_PG_URL")?).context("TRIB_PG_URL")?;
        let cdc = tokio_postgres::Config::from_str(env.get("TRIB_PG_CDC_URL")?)
            .context("TRIB_PG_CDC_URL")?;
        let (root, conn) = admin.connect(NoTls).await.context(
            "cannot connect to PostgreSQL as the admin: is scripts/test-env.sh up running?",
        )?;
        tokio::spawn(conn);
        let db = format!("bench_{what}_{:08x}", rand::random::<u32>());
        root.batch_execute(&format!("CREATE DATABASE {db}")).await?;
        Ok(Server {
            admin,
            cdc,
            bindir: env.get("TRIB_PG_BINDIR")?.to_owned(),
            recvlogical: env.get("TRIB_PG_RECVLOGICAL_BIN")?.to_owned(),
            db,
            root,
        })
    }

    pub fn port(&self) -> u16 {
        self.admin.get_ports().first().copied().unwrap_or(5432)
    }

    /// A connection to the benchmark database as the admin.
    pub async fn connect(&self) -> Result<Client> {
        let mut config = self.admin.clone();
        config.dbname(&self.db);
        let (client, conn) = config.connect(NoTls).await?;
        tokio::spawn(conn);
        Ok(client)
    }

    /// libpq conninfo of the admin on the benchmark database (for pg_recvlogical, psql).
    pub fn conninfo(&self) -> String {
        let (user, password) = user_password(&self.admin);
        format!(
            "host=127.0.0.1 port={} user={user} password={password} dbname={}",
            self.port(),
            self.db
        )
    }

    /// The connector's config (Avro key and value, built-in schema registry).
    pub fn connector(
        &self,
        prefix: &str,
        slot: &str,
        publication: &str,
        snapshot_mode: &str,
    ) -> BTreeMap<String, String> {
        let (user, password) = user_password(&self.cdc);
        [
            (
                "connector.class",
                "io.debezium.connector.postgresql.PostgresConnector",
            ),
            ("database.hostname", "127.0.0.1"),
            ("database.port", &self.port().to_string()),
            ("database.user", &user),
            ("database.password", &password),
            ("database.dbname", &self.db),
            ("topic.prefix", prefix),
            ("slot.name", slot),
            ("publication.name", publication),
            ("publication.autocreate.mode", "disabled"),
            ("snapshot.mode", snapshot_mode),
            ("key.converter", AVRO),
            ("value.converter", AVRO),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// Drops the benchmark's slots (every slot of its database) and the database.
    pub async fn drop_all(&self) {
        let _ = self
            .root
            .execute(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots \
                 WHERE database = $1 AND active_pid IS NOT NULL",
                &[&self.db],
            )
            .await;
        for _ in 0..50 {
            let left = self
                .root
                .query(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                     WHERE database = $1 AND NOT active",
                    &[&self.db],
                )
                .await;
            let active = self
                .root
                .query_one(
                    "SELECT count(*) FROM pg_replication_slots WHERE database = $1",
                    &[&self.db],
                )
                .await
                .map(|r| r.get::<_, i64>(0))
                .unwrap_or(0);
            if left.is_ok() && active == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let _ = self
            .root
            .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db))
            .await;
    }
}

/// The `postgres` scenario.
pub async fn catchup(env: &TestEnv, args: &Args) -> Result<Report> {
    let server = Server::create(env, "pg").await?;
    let result = catchup_in(&server, args).await;
    server.drop_all().await;
    result
}

async fn catchup_in(server: &Server, args: &Args) -> Result<Report> {
    let rows = args.rows.unwrap_or(500_000);
    let db = server.connect().await?;
    let publication = "bench_pub";
    db.batch_execute(&format!(
        "{}; CREATE PUBLICATION {publication} FOR TABLE t",
        create_table("t")
    ))
    .await?;
    // One slot before the load, and a copy of it for every reader and round.
    db.execute(
        "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
        &[&"bench_origin"],
    )
    .await?;
    let copies: Vec<(String, String)> = (1..=args.repeat)
        .map(|r| (format!("bench_recv_{r}"), format!("bench_trib_{r}")))
        .collect();
    for (a, b) in &copies {
        for copy in [a, b] {
            db.execute(
                "SELECT pg_copy_logical_replication_slot('bench_origin', $1)",
                &[copy],
            )
            .await?;
        }
    }
    load(&db, "t", 1, rows).await?;
    let endpos: String = db
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await?
        .get(0);
    let wal_bytes: i64 = db
        .query_one(
            "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::int8 FROM pg_replication_slots \
             WHERE slot_name = 'bench_origin'",
            &[],
        )
        .await?
        .get(0);
    let wal_mb = wal_bytes as f64 / 1e6;
    say(format!("{rows} rows, {wal_mb:.1} MB of WAL (to {endpos})"));

    let mut recv = Series::default();
    let mut ours = Series::default();
    let mut samples = Vec::new();
    let mut out_mb = Vec::new();
    for (round, (recv_slot, trib_slot)) in copies.iter().enumerate() {
        let round = round + 1;
        for step in crate::round_order(round) {
            crate::check_interrupted()?;
            if step == crate::Step::Ours {
                say(format!("round {round}/{}: tributary catch-up", args.repeat));
                let dir = tempfile::tempdir()?;
                let spec = SideSpec {
                    data_dir: dir.path().to_path_buf(),
                    config: server.connector("bench", trib_slot, publication, "no_data"),
                    seed: None,
                    topic: "bench.public.t".into(),
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
                continue;
            }
            say(format!("round {round}/{}: pg_recvlogical", args.repeat));
            let mut cmd = Command::new(&server.recvlogical);
            cmd.args([
                "-d",
                &server.conninfo(),
                "--slot",
                recv_slot,
                "--start",
                "--no-loop",
            ])
            .args([
                "-o",
                "proto_version=1",
                "-o",
                &format!("publication_names={publication}"),
            ])
            .args(["--endpos", &endpos, "-f", "/dev/null"])
            .stdout(Stdio::null());
            let usage = crate::measure::run(&mut cmd, "pg_recvlogical")?;
            recv.push(usage.wall_secs, &usage);
        }
    }

    crate::plot::write(
        args.plot.as_deref(),
        &format!("PostgreSQL catch-up of {rows} rows"),
        &crate::plot::catchup_lines(rows, &[("pg_recvlogical", &recv)], &samples),
    )?;
    let readers = [
        ("`pg_recvlogical` (pgoutput v1) → /dev/null", &recv),
        ("tributary catch-up → Avro → embedded log (fsync)", &ours),
    ];
    let table_rows = readers
        .iter()
        .map(|(label, s)| Row {
            label: (*label).to_owned(),
            cells: vec![
                s.secs.clone(),
                s.rates(rows),
                s.secs.iter().map(|t| wal_mb / t).collect(),
                s.cpu.clone(),
                s.rss.clone(),
                s.ratio_to(&recv),
            ],
        })
        .collect();
    Ok(Report {
        scenario: "postgres",
        command: args.command("postgres"),
        notes: vec![format!(
            "{} rows of the 8-column table (bigint key, int, varchar(64), numeric(12,2), timestamp(6), \
             ~200-byte text, boolean, jsonb) inserted in 10,000-row transactions: {wal_mb:.1} MB of WAL. Every reader \
             reads its own copy of one pgoutput slot made before the load (`pg_copy_logical_replication_slot`); \
             odd rounds run pg_recvlogical first, even rounds Tributary first. pg_recvlogical stops at the LSN after the load, Tributary when every row is durable in the log \
             (Avro key and value, {:.1} MB in the log; worker in its own process, role `cdc`, `snapshot.mode=no_data`). \
             MB/s is WAL bytes per second. The walsender's CPU is not in either column.",
            number(rows as f64, 0),
            out_mb.first().copied().unwrap_or_default()
        )],
        tables: vec![Table {
            title: format!("PostgreSQL catch-up, {} rows", number(rows as f64, 0)),
            columns: crate::mysql::catchup_columns("WAL MB/s", "× pg_recvlogical", ""),
            rows: table_rows,
        }],
        extra: json!({ "rows": rows, "wal_bytes": wal_bytes, "tributary_log_mb": out_mb, "throughput_over_time": samples }),
    })
}
