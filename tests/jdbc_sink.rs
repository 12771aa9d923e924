//! The JDBC sink through the real binary: a MariaDB table with many column types, changed
//! by a concurrent insert/update/delete writer, captured by the MariaDB source into the
//! embedded log (Avro, built-in schema registry) and written by the JDBC sink into Postgres.
//! The worker is killed with SIGKILL five times during the run; at the end the Postgres
//! table equals the MariaDB table row for row (an ordered dump normalized across the two).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use tokio_postgres::NoTls;

use crate::support::env::{TestEnv, unique_name, with_database};

const KEYS: i64 = 300;
const OPS: usize = 4_000;

fn spawn_worker(data: &Path, connectors: &Path, log: &Path) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["run", "--rest-port", "0", "--data-dir"])
        .arg(data)
        .arg("--connectors-dir")
        .arg(connectors)
        .env("TRIBUTARY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .expect("log file"),
        )
        .kill_on_drop(true)
        .spawn()
        .expect("spawn tributary")
}

/// The source rows, normalized to text.
async fn source_dump(conn: &mut Conn) -> Vec<String> {
    conn.query(
        "SELECT CONCAT_WS('|', id, name, IFNULL(amount, '~'), IFNULL(qty, '~'), \
         IFNULL(DATE_FORMAT(created, '%Y-%m-%d %H:%i:%s.%f'), '~'), \
         IFNULL(DATE_FORMAT(updated, '%Y-%m-%d %H:%i:%s.%f'), '~'), IFNULL(day, '~'), \
         IFNULL(HEX(data), '~'), IFNULL(mood, '~'), IFNULL(score, '~'), IFNULL(note, '~'), \
         IFNULL(extra, '~')) FROM items ORDER BY id",
    )
    .await
    .expect("source dump")
}

/// The target rows, normalized to the same text; `None` while the table (or its `extra`
/// column, added mid-stream) does not exist.
async fn target_dump(pg: &tokio_postgres::Client, table: &str) -> Option<Vec<String>> {
    let sql = format!(
        "SELECT concat_ws('|', id, name, coalesce(amount::text, '~'), coalesce(qty::text, '~'), \
         coalesce(to_char(created, 'YYYY-MM-DD HH24:MI:SS.US'), '~'), \
         coalesce(to_char(updated AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), '~'), \
         coalesce(day::text, '~'), coalesce(upper(encode(data, 'hex')), '~'), coalesce(mood, '~'), \
         coalesce(score::text, '~'), coalesce(note, '~'), coalesce(extra::text, '~')) \
         FROM {table} ORDER BY id"
    );
    let rows = pg.query(&sql, &[]).await.ok()?;
    Some(rows.iter().map(|r| r.get::<_, String>(0)).collect())
}

/// Rows in the target table; `None` while it does not exist.
async fn target_rows(pg: &tokio_postgres::Client, table: &str) -> Option<i64> {
    let row = pg
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .ok()?;
    Some(row.get(0))
}

/// Random inserts, updates and deletes on `items`.
async fn write_changes(url: String, ops: usize) -> anyhow::Result<()> {
    let mut conn = Conn::new(Opts::from_url(&url)?).await?;
    for n in 0..ops {
        let id = rand::random_range(1..=KEYS);
        let roll = rand::random_range(0..10);
        if roll < 5 {
            let amount = format!("{}.{:02}", rand::random_range(-99_999..99_999), n % 100);
            let note: Option<String> = (n % 3 != 0).then(|| "x".repeat(n % 200) + "é\"'\\");
            let data: Option<Vec<u8>> = (n % 4 != 0).then(|| vec![(n % 256) as u8, 0, 255]);
            conn.exec_drop(
                "INSERT INTO items (id, name, amount, qty, created, updated, day, data, mood, score, note) \
                 VALUES (?, ?, ?, ?, '2024-02-29 23:59:58.123456' + INTERVAL ? SECOND, NOW(6), \
                 '1999-12-31' + INTERVAL ? DAY, ?, ELT(1 + ? % 3, 'happy', 'sad', 'meh'), ?, ?) \
                 ON DUPLICATE KEY UPDATE name = VALUES(name), amount = VALUES(amount), qty = VALUES(qty), \
                 note = VALUES(note), data = VALUES(data), mood = VALUES(mood)",
                (
                    id,
                    format!("item {id} v{n}"),
                    amount,
                    (n as i64) * 1_000_003,
                    n as i64,
                    n as i64,
                    data,
                    n as i64,
                    n as f64 / 4.0,
                    note,
                ),
            )
            .await?;
        } else if roll < 8 {
            conn.exec_drop(
                "UPDATE items SET qty = IFNULL(qty, 0) + 1, score = ?, updated = NOW(6), amount = NULL WHERE id = ?",
                (n as f64 / 8.0, id),
            )
            .await?;
        } else {
            conn.exec_drop("DELETE FROM items WHERE id = ?", (id,))
                .await?;
        }
        // Spread the changes over the kills (about 10 s).
        if n % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    conn.disconnect().await?;
    Ok(())
}

/// Schema changes mid-stream: a new SMALLINT column, then the column widened to BIGINT,
/// each followed by changes that use it (the last ones with values only BIGINT can hold).
async fn evolve_and_write(url: String) -> anyhow::Result<()> {
    let mut conn = Conn::new(Opts::from_url(&url)?).await?;
    conn.query_drop("ALTER TABLE items ADD COLUMN extra SMALLINT NULL")
        .await?;
    for n in 0..150i64 {
        let id = rand::random_range(1..=KEYS);
        conn.exec_drop(
            "INSERT INTO items (id, name, extra) VALUES (?, ?, ?) \
             ON DUPLICATE KEY UPDATE extra = VALUES(extra), name = VALUES(name)",
            (id, format!("evolved {id} v{n}"), n - 75),
        )
        .await?;
    }
    conn.query_drop("ALTER TABLE items MODIFY COLUMN extra BIGINT NULL")
        .await?;
    for n in 0..150i64 {
        let id = rand::random_range(1..=KEYS);
        conn.exec_drop(
            "UPDATE items SET extra = ? WHERE id = ?",
            (5_000_000_000 + n, id),
        )
        .await?;
        if n % 10 == 0 {
            conn.exec_drop("DELETE FROM items WHERE id = ?", (id + 1,))
                .await?;
        }
    }
    conn.disconnect().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_to_postgres_survives_five_kills() {
    let env = TestEnv::load();
    let db = unique_name("jdbce2e");
    // Source database and table.
    let mut admin = Conn::new(Opts::from_url(&env.mariadb_url).expect("url"))
        .await
        .expect("mariadb");
    admin
        .query_drop(format!("CREATE DATABASE {db}"))
        .await
        .expect("source db");
    admin
        .query_drop(format!(
            "CREATE TABLE {db}.items (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL, \
             amount DECIMAL(12,2), qty BIGINT, created DATETIME(6), updated TIMESTAMP(6) NULL, day DATE, \
             data BLOB, mood ENUM('happy','sad','meh'), score DOUBLE, note TEXT)"
        ))
        .await
        .expect("source table");
    let src_url = with_database(&env.mariadb_url, &db);
    let mut src = Conn::new(Opts::from_url(&src_url).expect("url"))
        .await
        .expect("source conn");
    src.query_drop("SET time_zone = '+00:00'")
        .await
        .expect("tz");
    // Target database.
    let (pg_admin, conn) = tokio_postgres::connect(&env.pg_url, NoTls)
        .await
        .expect("pg");
    tokio::spawn(conn);
    pg_admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .expect("target db");
    let pg_url = with_database(&env.pg_url, &db);
    let (pg, conn) = tokio_postgres::connect(&pg_url, NoTls).await.expect("pg");
    tokio::spawn(conn);

    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let connectors = tmp.path().join("connectors");
    let log = tmp.path().join("worker.log");
    std::fs::create_dir_all(&connectors).expect("connectors dir");
    let cdc = Opts::from_url(&env.mariadb_cdc_url).expect("cdc url");
    let server_id = 1_000_000 + rand::random::<u32>() % 1_000_000_000;
    let source = serde_json::json!({"name": "src", "config": {
        "connector.class": "io.debezium.connector.mariadb.MariaDbConnector",
        "database.hostname": cdc.ip_or_hostname(),
        "database.port": cdc.tcp_port().to_string(),
        "database.user": cdc.user().unwrap_or_default(),
        "database.password": cdc.pass().unwrap_or_default(),
        "database.server.id": server_id.to_string(),
        "database.ssl.mode": "disabled",
        "topic.prefix": db,
        "database.include.list": db,
        "key.converter": "io.confluent.connect.avro.AvroConverter",
        "value.converter": "io.confluent.connect.avro.AvroConverter",
    }});
    let sink = serde_json::json!({"name": "sink", "config": {
        "connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector",
        "topics": format!("{db}.{db}.items"),
        "connection.url": format!("jdbc:postgresql://{}/{db}", crate::support::env::host_port(&env.pg_url).expect("pg host")),
        "connection.username": "postgres",
        "connection.password": "postgres",
        "insert.mode": "upsert",
        "primary.key.mode": "record_key",
        "delete.enabled": "true",
        "schema.evolution": "basic",
        "key.converter": "io.confluent.connect.avro.AvroConverter",
        "value.converter": "io.confluent.connect.avro.AvroConverter",
    }});
    std::fs::write(connectors.join("src.json"), source.to_string()).expect("source config");
    std::fs::write(connectors.join("sink.json"), sink.to_string()).expect("sink config");
    let table = format!("{db}_{db}_items");

    let writer = tokio::spawn(write_changes(src_url.clone(), OPS));
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut mid_stream = 0;
    for kill in 1..=5 {
        let mut child = spawn_worker(&data, &connectors, &log);
        // Let the pipeline reach the target before the first kill, then kill at random.
        while kill == 1 && target_rows(&pg, &table).await.is_none_or(|n| n == 0) {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "worker exited ({status}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no rows reached postgres:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_millis(rand::random_range(500..2500))).await;
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "worker exited on its own ({status}) before kill {kill}:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        if !writer.is_finished() {
            mid_stream += 1;
        }
        child.kill().await.expect("SIGKILL");
    }
    assert!(
        mid_stream >= 2,
        "only {mid_stream} kills hit the writer mid-stream"
    );
    writer.await.expect("writer task").expect("writer");

    // The table's schema changes while the worker is down (a column added, then widened,
    // each with changes using it), so the final run streams through both ALTERs in one
    // catch-up and the sink gets batches holding the column as SMALLINT and as BIGINT. Then
    // wait until the target equals the source.
    evolve_and_write(src_url.clone())
        .await
        .expect("schema changes and writes");
    let mut child = spawn_worker(&data, &connectors, &log);
    let expected = source_dump(&mut src).await;
    assert!(
        expected.iter().any(|row| row
            .rsplit('|')
            .next()
            .and_then(|v| v.parse::<i64>().ok())
            .is_some_and(|v| v > i64::from(i32::MAX))),
        "the widened column holds BIGINT values in the source"
    );
    assert!(!expected.is_empty(), "the writer left rows in the source");
    loop {
        let got = target_dump(&pg, &table).await.unwrap_or_default();
        if got == expected {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "worker exited ({status}):\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        // A task FAILED for good stays failed: no point waiting out the deadline.
        let worker_log = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            !worker_log.contains("stays FAILED"),
            "a task failed for good:\n{worker_log}"
        );
        if Instant::now() >= deadline {
            let diff: Vec<_> = expected
                .iter()
                .zip(&got)
                .filter(|(a, b)| a != b)
                .take(3)
                .collect();
            panic!(
                "target differs from source: {} vs {} rows, first differences {diff:?}\n{}",
                got.len(),
                expected.len(),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    child.kill().await.expect("kill");
    eprintln!(
        "jdbc sink e2e: {} rows equal after 5 kills ({mid_stream} while the writer ran)",
        expected.len()
    );
}

/// Postgres source rows, normalized (`big` by length and digest: it is TOASTed).
async fn pg_source_dump(pg: &tokio_postgres::Client) -> Vec<String> {
    pg_dump(pg, "items").await.expect("pg dump")
}

/// A Postgres `items`-shaped table, normalized; `None` while it does not exist.
async fn pg_dump(pg: &tokio_postgres::Client, table: &str) -> Option<Vec<String>> {
    let sql = format!(
        "SELECT concat_ws('|', id, name, coalesce(amount::text, '~'), \
         coalesce(to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), '~'), \
         coalesce(doc->>'k', '~'), coalesce(octet_length(big)::text, '~'), coalesce(md5(big), '~')) \
         FROM {table} ORDER BY id"
    );
    let rows = pg.query(&sql, &[]).await.ok()?;
    Some(rows.iter().map(|r| r.get::<_, String>(0)).collect())
}

async fn mariadb_target_dump(conn: &mut Conn, table: &str) -> Option<Vec<String>> {
    conn.query(format!(
        "SELECT CONCAT_WS('|', id, name, IFNULL(amount, '~'), \
         IFNULL(DATE_FORMAT(ts, '%Y-%m-%d %H:%i:%s.%f'), '~'), IFNULL(JSON_VALUE(doc, '$.k'), '~'), \
         IFNULL(OCTET_LENGTH(big), '~'), IFNULL(MD5(big), '~')) FROM {table} ORDER BY id"
    ))
    .await
    .ok()
}

/// Random changes on the Postgres table; two of three updates leave the TOASTed `big`
/// unchanged, so the source sends the unavailable-value placeholder for it.
async fn write_pg_changes(pg: tokio_postgres::Client, ops: usize) -> anyhow::Result<()> {
    for n in 0..ops {
        let id = rand::random_range(1..=KEYS as i32);
        let roll = rand::random_range(0..10);
        if roll < 4 {
            pg.execute(
                "INSERT INTO items (id, name, amount, ts, doc, big) VALUES ($1, $2, ($3::int / 100.0)::numeric(12,2), \
                 now(), jsonb_build_object('k', $2::text), \
                 (SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 200))) \
                 ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, big = EXCLUDED.big",
                &[&id, &format!("item {id} v{n}"), &(n as i32 * 7 - 5000)],
            )
            .await?;
        } else if roll < 8 {
            pg.execute(
                "UPDATE items SET name = name || '+', amount = NULL, ts = now() WHERE id = $1",
                &[&id],
            )
            .await?;
        } else {
            pg.execute("DELETE FROM items WHERE id = $1", &[&id])
                .await?;
        }
        if n % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_to_mariadb_exactly_once_with_toast_survives_five_kills() {
    postgres_source_run(Target::MariaDb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_to_postgres_exactly_once_with_toast_survives_five_kills() {
    postgres_source_run(Target::Postgres).await;
}

#[derive(Clone, Copy, PartialEq)]
enum Target {
    MariaDb,
    Postgres,
}

async fn postgres_source_run(target: Target) {
    let env = TestEnv::load();
    let db = unique_name("jdbcpgmy");
    let slot = unique_name("slot");
    let (pg_admin, conn) = tokio_postgres::connect(&env.pg_url, NoTls)
        .await
        .expect("pg");
    tokio::spawn(conn);
    pg_admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .expect("source db");
    let pg_url = with_database(&env.pg_url, &db);
    let (pg, conn) = tokio_postgres::connect(&pg_url, NoTls).await.expect("pg");
    tokio::spawn(conn);
    pg.batch_execute(
        "CREATE TABLE items (id int PRIMARY KEY, name text, amount numeric(12,2), \
         ts timestamptz, doc jsonb, big text); \
         ALTER TABLE items ALTER COLUMN big SET STORAGE EXTERNAL; \
         CREATE PUBLICATION pub FOR TABLE items",
    )
    .await
    .expect("source table");
    let mut my_admin = Conn::new(Opts::from_url(&env.mariadb_url).expect("url"))
        .await
        .expect("mariadb");
    my_admin
        .query_drop(format!("CREATE DATABASE {db}"))
        .await
        .expect("target db");
    let my_url = with_database(&env.mariadb_url, &db);
    let mut my = Conn::new(Opts::from_url(&my_url).expect("url"))
        .await
        .expect("target conn");

    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let connectors = tmp.path().join("connectors");
    let log = tmp.path().join("worker.log");
    std::fs::create_dir_all(&connectors).expect("connectors dir");
    let hp = crate::support::env::host_port(&env.pg_url).expect("pg host");
    let (host, port) = hp.split_once(':').expect("host:port");
    let source = serde_json::json!({"name": "pgsrc", "config": {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "database.hostname": host,
        "database.port": port,
        "database.user": "postgres",
        "database.password": "postgres",
        "database.dbname": db,
        "topic.prefix": db,
        "slot.name": slot,
        "publication.name": "pub",
        "plugin.name": "pgoutput",
        "key.converter": "io.confluent.connect.avro.AvroConverter",
        "value.converter": "io.confluent.connect.avro.AvroConverter",
    }});
    let my_hp = crate::support::env::host_port(&env.mariadb_url).expect("mariadb host");
    // Postgres to Postgres: into a second database of the same server.
    let target_db = format!("{db}t");
    let mut target_pg = None;
    if target == Target::Postgres {
        pg_admin
            .batch_execute(&format!("CREATE DATABASE {target_db}"))
            .await
            .expect("target db");
        let (client, conn) =
            tokio_postgres::connect(&with_database(&env.pg_url, &target_db), NoTls)
                .await
                .expect("target pg");
        tokio::spawn(conn);
        target_pg = Some(client);
    }
    let url = match target {
        Target::MariaDb => format!("jdbc:mariadb://{my_hp}/{db}?user=root"),
        Target::Postgres => format!("postgresql://postgres:postgres@{hp}/{target_db}"),
    };
    let sink = serde_json::json!({"name": "mysink", "config": {
        "connector.class": "io.confluent.connect.jdbc.JdbcSinkConnector",
        "topics": format!("{db}.public.items"),
        "connection.url": url,
        "insert.mode": "upsert",
        "pk.mode": "record_key",
        "delete.enabled": "true",
        "auto.create": "true",
        "auto.evolve": "true",
        "exactly.once": "true",
        "batch.size": "500",
        "key.converter": "io.confluent.connect.avro.AvroConverter",
        "value.converter": "io.confluent.connect.avro.AvroConverter",
    }});
    std::fs::write(connectors.join("src.json"), source.to_string()).expect("source config");
    std::fs::write(connectors.join("sink.json"), sink.to_string()).expect("sink config");
    let table = format!("{db}_public_items");

    let (writer_pg, conn) = tokio_postgres::connect(&pg_url, NoTls).await.expect("pg");
    tokio::spawn(conn);
    let mut writer_pg = Some(writer_pg);
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut writer = None;
    let mut mid_stream = 0;
    for kill in 1..=5 {
        let mut child = spawn_worker(&data, &connectors, &log);
        if kill == 1 {
            // The slot exists once the source runs: start writing then.
            loop {
                let slots = pg_admin
                    .query(
                        "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
                        &[&slot],
                    )
                    .await
                    .expect("slots");
                if !slots.is_empty() {
                    break;
                }
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "worker exited ({status}):\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
                assert!(Instant::now() < deadline, "no replication slot");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if let Some(client) = writer_pg.take() {
                writer = Some(tokio::spawn(write_pg_changes(client, OPS)));
            }
        }
        tokio::time::sleep(Duration::from_millis(rand::random_range(800..2500))).await;
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "worker exited on its own ({status}) before kill {kill}:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        if writer.as_ref().is_some_and(|w| !w.is_finished()) {
            mid_stream += 1;
        }
        child.kill().await.expect("SIGKILL");
    }
    if let Some(w) = writer {
        w.await.expect("writer task").expect("writer");
    }
    assert!(
        mid_stream >= 2,
        "only {mid_stream} kills hit the writer mid-stream"
    );

    let mut child = spawn_worker(&data, &connectors, &log);
    let expected = pg_source_dump(&pg).await;
    assert!(!expected.is_empty(), "the writer left rows in the source");
    loop {
        let got = match &target_pg {
            Some(t) => pg_dump(t, &table).await,
            None => mariadb_target_dump(&mut my, &table).await,
        }
        .unwrap_or_default();
        if got == expected {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "worker exited ({status}):\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        // A task FAILED for good stays failed: no point waiting out the deadline.
        let worker_log = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            !worker_log.contains("stays FAILED"),
            "a task failed for good:\n{worker_log}"
        );
        if Instant::now() >= deadline {
            let diff: Vec<_> = expected
                .iter()
                .zip(&got)
                .filter(|(a, b)| a != b)
                .take(3)
                .collect();
            panic!(
                "target differs from source: {} vs {} rows, first differences {diff:?}\n{}",
                got.len(),
                expected.len(),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let check = "SELECT count(*) FROM {table} WHERE big LIKE '%__debezium_unavailable_value%'";
    let check = check.replace("{table}", &table);
    let stored = "SELECT count(*) FROM __tributary_sink_offsets WHERE connector = 'mysink'";
    let (leaked, offsets): (i64, i64) = match &target_pg {
        Some(t) => (
            t.query_one(&check, &[])
                .await
                .expect("placeholder check")
                .get(0),
            t.query_one(stored, &[])
                .await
                .expect("offsets table")
                .get(0),
        ),
        None => (
            my.query_first(&check)
                .await
                .expect("placeholder check")
                .unwrap_or(-1),
            my.query_first(stored)
                .await
                .expect("offsets table")
                .unwrap_or(-1),
        ),
    };
    assert_eq!(leaked, 0, "placeholder reached the target");
    assert_eq!(offsets, 1, "one stored offset for the one partition");
    child.kill().await.expect("kill");
    let _ = child.wait().await;
    let _ = pg_admin
        .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await;
    eprintln!(
        "jdbc sink pg->{}: {} rows equal after 5 kills ({mid_stream} while the writer ran)",
        if target_pg.is_some() {
            "postgres"
        } else {
            "mariadb"
        },
        expected.len()
    );
}
