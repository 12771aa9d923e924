//! A transient outage of a sink's target loses nothing (issue 12): MariaDB -> log -> JDBC sink
//! into a Postgres server of the test's own; the server is stopped while changes keep coming,
//! the sink fails with transient errors and is restarted with backoff (never dead-lettering),
//! and once the server is back the target equals the source.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable as _;
use mysql_async::{Conn, Opts};
use serde_json::json;
use tokio_postgres::NoTls;

use crate::support::env::{TestEnv, unique_name};
use crate::support::private_pg::PrivatePg;
use crate::support::worker::{eventually, start_with};

async fn source_rows(conn: &mut Conn, db: &str) -> Vec<(i64, String, i64)> {
    conn.query(format!("SELECT id, v, n FROM {db}.items ORDER BY id"))
        .await
        .expect("source rows")
}

/// `None` while the target is unreachable or the table does not exist yet.
async fn target_rows(url: &str, table: &str) -> Option<Vec<(i64, String, i64)>> {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.ok()?;
    tokio::spawn(conn);
    let rows = client
        .query(
            &format!("SELECT id::int8, v, n::int8 FROM \"{table}\" ORDER BY id"),
            &[],
        )
        .await
        .ok()?;
    Some(
        rows.iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_outage_is_retried_and_loses_nothing() {
    let env = TestEnv::load();
    let pg = PrivatePg::start(&env);
    let db = unique_name("outage");
    let mut src = Conn::new(Opts::from_url(&env.mariadb_url).expect("mariadb url"))
        .await
        .expect("mariadb");
    src.query_drop(format!(
        "CREATE DATABASE {db}; CREATE TABLE {db}.items (id INT PRIMARY KEY, v VARCHAR(32) NOT NULL, n INT NOT NULL);
         INSERT INTO {db}.items SELECT seq, CONCAT('v', seq), seq FROM {db}.seq_1_to_500;"
    ))
    .await
    .expect("source table");

    let dir = tempfile::tempdir().expect("tempdir");
    let connectors = dir.path().join("connectors");
    std::fs::create_dir(&connectors).expect("connectors dir");
    let cdc = Opts::from_url(&env.mariadb_cdc_url).expect("cdc url");
    let source = json!({"name": "src", "config": {
        "connector.class": "io.debezium.connector.mariadb.MariaDbConnector",
        "database.hostname": cdc.ip_or_hostname(),
        "database.port": cdc.tcp_port().to_string(),
        "database.user": cdc.user().unwrap_or_default(),
        "database.password": cdc.pass().unwrap_or_default(),
        "database.server.id": (2_000_000 + rand::random::<u32>() % 1_000_000_000).to_string(),
        "database.ssl.mode": "disabled",
        "topic.prefix": db,
        "database.include.list": db,
        "key.converter": "io.confluent.connect.avro.AvroConverter",
        "value.converter": "io.confluent.connect.avro.AvroConverter",
    }});
    let topic = format!("{db}.{db}.items");
    let sink = json!({"name": "sink", "config": {
        "connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector",
        "topics": topic,
        "connection.url": format!("jdbc:postgresql://127.0.0.1:{}/postgres", pg.port),
        "connection.username": "postgres",
        "insert.mode": "upsert",
        "primary.key.mode": "record_key",
        "delete.enabled": "true",
        "schema.evolution": "basic",
        "errors.tolerance": "all",
        "errors.deadletterqueue.topic.name": format!("{db}-dlq"),
        "key.converter": "io.confluent.connect.avro.AvroConverter",
        "value.converter": "io.confluent.connect.avro.AvroConverter",
    }});
    std::fs::write(connectors.join("src.json"), source.to_string()).expect("source config");
    std::fs::write(connectors.join("sink.json"), sink.to_string()).expect("sink config");
    // Restart failed tasks quickly so the test does not wait out the default backoff.
    let worker_yaml = dir.path().join("worker.yaml");
    std::fs::write(
        &worker_yaml,
        "restart:\n  initial_backoff_ms: 200\n  max_backoff_ms: 2000\n",
    )
    .expect("worker config");
    let worker = start_with(
        &dir.path().join("data"),
        &dir.path().join("worker.log"),
        &[
            "--connectors-dir".as_ref(),
            connectors.as_os_str(),
            "--config".as_ref(),
            worker_yaml.as_os_str(),
        ],
    )
    .await;
    let table = format!("{db}_{db}_items");
    let target = pg.url();
    let expected = source_rows(&mut src, &db).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    while target_rows(&target, &table).await.as_ref() != Some(&expected) {
        if Instant::now() > deadline {
            let (_, status) = worker.get("/connectors?expand=status").await;
            panic!(
                "the snapshot never reached the target\nstatus: {status}\nlog:\n{}",
                std::fs::read_to_string(dir.path().join("worker.log")).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The outage: changes keep coming while the target is down.
    pg.stop();
    src.query_drop(format!(
        "UPDATE {db}.items SET n = n + 1000 WHERE id % 2 = 0;
         DELETE FROM {db}.items WHERE id % 7 = 0;
         INSERT INTO {db}.items SELECT seq, CONCAT('w', seq), seq FROM {db}.seq_501_to_900;"
    ))
    .await
    .expect("changes during the outage");
    // The sink meets the outage: its task fails with a retryable error and is restarted.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = reqwest::get(format!("{}/metrics", worker.url))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        let retries: f64 = text
            .lines()
            .filter(|l| {
                l.starts_with("tributary_task_retries_total{") && l.contains("connector=\"sink\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if retries >= 1.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the sink never hit the outage:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    pg.resume();

    let expected = source_rows(&mut src, &db).await;
    // Rows 1..=500 minus the multiples of 7 deleted among them, plus 501..=900.
    assert_eq!(expected.len(), 900 - 500 / 7);
    eventually(
        "the target to equal the source after the outage",
        || async { (target_rows(&target, &table).await.as_ref() == Some(&expected)).then_some(()) },
    )
    .await;
    // Nothing was dead-lettered: an outage is retried, not tolerated.
    assert!(
        worker.values(&format!("{db}-dlq")).await.is_empty(),
        "records were dead-lettered during a transient outage"
    );
    let (_, status) = worker.get("/connectors/sink/status").await;
    assert_eq!(status["tasks"][0]["state"], "RUNNING", "{status}");
    worker.stop().await;
}
