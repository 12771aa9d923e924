//! The `snapshot` scenario: the connector's initial snapshot (`snapshot.mode=initial_only`)
//! of a loaded table into the log, beside a plain `SELECT *` (mariadb client, `--quick`)
//! or `COPY ... TO STDOUT` (psql) of the same table to /dev/null.

use std::process::{Command, Stdio};

use anyhow::{Context as _, Result};
use mysql_async::Conn;
use mysql_async::prelude::Queryable as _;
use serde_json::json;

use crate::env::TestEnv;
use crate::progress::say;
use crate::report::{Report, Row, Table, number};
use crate::side::{self, SideSpec};
use crate::{Series, SourceArgs, TIMEOUT_SECS};

const DEFAULT_ROWS: u64 = 1_000_000;

fn table_rows(rows: u64, table_mb: f64, readers: [(&str, &Series); 2]) -> Vec<Row> {
    let ceiling = readers[0].1;
    readers
        .iter()
        .map(|(label, s)| Row {
            label: (*label).to_owned(),
            cells: vec![
                s.secs.clone(),
                s.rates(rows),
                s.secs.iter().map(|t| table_mb / t).collect(),
                s.cpu.clone(),
                s.rss.clone(),
                s.ratio_to(ceiling),
            ],
        })
        .collect()
}

async fn mysql(env: &TestEnv, args: &SourceArgs, rows: u64) -> Result<Table> {
    let servers = crate::mysql::Servers::from_env(env)?;
    let mut admin = Conn::new(servers.admin.clone())
        .await
        .context("cannot connect to MariaDB as root: is scripts/test-env.sh up running?")?;
    let db = crate::mysql::unique_db("snap");
    admin.query_drop(format!("CREATE DATABASE {db}")).await?;
    let result = async {
        admin.query_drop(crate::mysql::create_table(&db, "t")).await?;
        crate::mysql::load(&mut admin, &db, "t", 1, rows).await?;
        admin.query_drop(format!("ANALYZE TABLE {db}.t")).await?;
        let bytes: Option<u64> = admin
            .exec_first(
                "SELECT data_length FROM information_schema.tables WHERE table_schema = ? AND table_name = 't'",
                (db.as_str(),),
            )
            .await?;
        let table_mb = bytes.unwrap_or(0) as f64 / 1e6;
        let mut plain = Series::default();
        let mut ours = Series::default();
        for round in 1..=args.common.repeat {
            for step in crate::round_order(round) {
                crate::check_interrupted()?;
            if step == crate::Step::Ceiling {
            say(format!("round {round}/{}: mariadb SELECT", args.common.repeat));
            let mut cmd = Command::new(&servers.client_bin);
            cmd.args(servers.cdc_args())
                .args(["--quick", "--batch", "--skip-column-names", "-e"])
                .arg(format!("SELECT * FROM {db}.t"))
                .stdout(Stdio::null());
            let usage = crate::measure::run(&mut cmd, "mariadb SELECT")?;
            plain.push(usage.wall_secs, &usage);
            } else {
            say(format!("round {round}/{}: tributary snapshot", args.common.repeat));
            let dir = tempfile::tempdir()?;
            let (result, usage) = side::run(&SideSpec {
                data_dir: dir.path().to_path_buf(),
                config: servers.connector(&db, &format!("{db}.t"), "initial_only"),
                seed: None,
                topic: format!("{db}.{db}.t"),
                expect: Some(rows),
                ready_at: None,
                durable_times: false,
                timeout_secs: TIMEOUT_SECS,
                sink: None,
                kafka: None,
            })?;
            ours.push(result.secs, &usage);
            }
            }
        }
        Ok::<_, anyhow::Error>(Table {
            title: format!(
                "MariaDB initial snapshot, {} rows ({table_mb:.1} MB of InnoDB data)",
                number(rows as f64, 0)
            ),
            columns: crate::mysql::catchup_columns("table MB/s", "× SELECT", ""),
            rows: table_rows(
                rows,
                table_mb,
                [
                    ("`mariadb --quick -e 'SELECT *'` → /dev/null", &plain),
                    ("tributary snapshot → Avro → embedded log (fsync)", &ours),
                ],
            ),
        })
    }
    .await;
    let _ = admin
        .query_drop(format!("DROP DATABASE IF EXISTS {db}"))
        .await;
    result
}

async fn postgres(env: &TestEnv, args: &SourceArgs, rows: u64) -> Result<Table> {
    let server = crate::postgres::Server::create(env, "snap").await?;
    let result = async {
        let db = server.connect().await?;
        db.batch_execute(&format!(
            "{}; CREATE PUBLICATION bench_pub FOR TABLE t",
            crate::postgres::create_table("t")
        ))
        .await?;
        crate::postgres::load(&db, "t", 1, rows).await?;
        db.batch_execute("VACUUM ANALYZE t").await?;
        let bytes: i64 = db.query_one("SELECT pg_table_size('t')", &[]).await?.get(0);
        let table_mb = bytes as f64 / 1e6;
        let psql = format!("{}/psql", server.bindir);
        let mut copy = Series::default();
        let mut ours = Series::default();
        for round in 1..=args.common.repeat {
            for step in crate::round_order(round) {
                crate::check_interrupted()?;
                if step == crate::Step::Ceiling {
                    say(format!("round {round}/{}: psql COPY", args.common.repeat));
                    let mut cmd = Command::new(&psql);
                    cmd.args([
                        "-X",
                        "-q",
                        "-d",
                        &server.conninfo(),
                        "-c",
                        "COPY t TO STDOUT",
                    ])
                    .stdout(Stdio::null());
                    let usage = crate::measure::run(&mut cmd, "psql COPY")?;
                    copy.push(usage.wall_secs, &usage);
                    say(format!(
                        "round {round}/{}: tributary snapshot",
                        args.common.repeat
                    ));
                    let dir = tempfile::tempdir()?;
                    let (result, usage) = side::run(&SideSpec {
                        data_dir: dir.path().to_path_buf(),
                        config: server.connector(
                            "bench",
                            &format!("bench_snap_{round}"),
                            "bench_pub",
                            "initial_only",
                        ),
                        seed: None,
                        topic: "bench.public.t".into(),
                        expect: Some(rows),
                        ready_at: None,
                        durable_times: false,
                        timeout_secs: TIMEOUT_SECS,
                        sink: None,
                        kafka: None,
                    })?;
                    ours.push(result.secs, &usage);
                }
            }
        }
        Ok::<_, anyhow::Error>(Table {
            title: format!(
                "PostgreSQL initial snapshot, {} rows ({table_mb:.1} MB of heap)",
                number(rows as f64, 0)
            ),
            columns: crate::mysql::catchup_columns("table MB/s", "× COPY", ""),
            rows: table_rows(
                rows,
                table_mb,
                [
                    ("`psql -c 'COPY t TO STDOUT'` → /dev/null", &copy),
                    ("tributary snapshot → Avro → embedded log (fsync)", &ours),
                ],
            ),
        })
    }
    .await;
    server.drop_all().await;
    result
}

/// The `snapshot` scenario: a table per source.
pub async fn run(env: &TestEnv, args: &SourceArgs) -> Result<Vec<Report>> {
    let rows = args.common.rows.unwrap_or(DEFAULT_ROWS);
    let mut tables = Vec::new();
    if args.source.mysql() {
        tables.push(mysql(env, args, rows).await?);
    }
    if args.source.postgres() {
        tables.push(postgres(env, args, rows).await?);
    }
    Ok(vec![Report {
        scenario: "snapshot",
        command: args.common.command("snapshot"),
        notes: vec![format!(
            "{} rows of the 8-column table, loaded once; each round reads the whole table with the plain client \
             (ceiling) and with the connector (`snapshot.mode=initial_only`, a worker in its own process, \
             timed from creating the connector until every row is durable in the log); odd rounds run the ceiling \
             first, even rounds Tributary first. MB/s is table bytes (InnoDB \
             data_length / pg_table_size) per second. The issue's 5M-row size: `--rows 5000000`.",
            number(rows as f64, 0)
        )],
        tables,
        extra: json!({ "rows": rows }),
    }])
}
