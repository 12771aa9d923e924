//! A poison record goes to the dead-letter topic with Kafka Connect's context headers while
//! the rest flows (issue 12): MariaDB -> log -> JDBC sink into a Postgres table whose column
//! is too narrow for some values; `errors.tolerance=all` with a DLQ topic.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable as _;
use mysql_async::{Conn, Opts};
use serde_json::{Value, json};
use tokio_postgres::NoTls;

use crate::support::env::{TestEnv, host_port, unique_name, with_database};
use crate::support::worker::start_with;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_the_target_rejects_are_dead_lettered_with_headers_and_the_rest_is_written() {
    let env = TestEnv::load();
    let db = unique_name("dlq");
    let mut src = Conn::new(Opts::from_url(&env.mariadb_url).expect("mariadb url"))
        .await
        .expect("mariadb");
    // Every 10th value is 9 characters long: too long for the target's varchar(5).
    src.query_drop(format!(
        "CREATE DATABASE {db}; CREATE TABLE {db}.items (id INT PRIMARY KEY, v VARCHAR(32) NOT NULL);
         INSERT INTO {db}.items SELECT seq, IF(seq % 10 = 0, 'too-long!', CONCAT('v', seq)) FROM {db}.seq_1_to_200;"
    ))
    .await
    .expect("source table");
    let (admin, conn) = tokio_postgres::connect(&env.pg_url, NoTls)
        .await
        .expect("postgres");
    tokio::spawn(conn);
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .expect("target db");
    let target_url = with_database(&env.pg_url, &db);
    let (target, conn) = tokio_postgres::connect(&target_url, NoTls)
        .await
        .expect("target");
    tokio::spawn(conn);
    let table = format!("{db}_{db}_items");
    target
        .batch_execute(&format!(
            "CREATE TABLE \"{table}\" (id int PRIMARY KEY, v varchar(5) NOT NULL)"
        ))
        .await
        .expect("target table");

    let dir = tempfile::tempdir().expect("tempdir");
    let connectors = dir.path().join("connectors");
    std::fs::create_dir(&connectors).expect("connectors dir");
    let cdc = Opts::from_url(&env.mariadb_cdc_url).expect("cdc url");
    let topic = format!("{db}.{db}.items");
    let dlq = format!("{db}-dlq");
    let source = json!({"name": "src", "config": {
        "connector.class": "io.debezium.connector.mariadb.MariaDbConnector",
        "database.hostname": cdc.ip_or_hostname(),
        "database.port": cdc.tcp_port().to_string(),
        "database.user": cdc.user().unwrap_or_default(),
        "database.password": cdc.pass().unwrap_or_default(),
        "database.server.id": (3_000_000 + rand::random::<u32>() % 1_000_000_000).to_string(),
        "database.ssl.mode": "disabled",
        "topic.prefix": db,
        "database.include.list": db,
        "key.converter.schemas.enable": "true",
        "value.converter.schemas.enable": "true",
    }});
    let sink = json!({"name": "sink", "config": {
        "connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector",
        "topics": topic,
        "connection.url": format!("jdbc:postgresql://{}/{db}", host_port(&env.pg_url).expect("pg host")),
        "connection.username": "postgres",
        "connection.password": "postgres",
        "insert.mode": "upsert",
        "primary.key.mode": "record_key",
        "errors.tolerance": "all",
        "errors.deadletterqueue.topic.name": dlq,
        "errors.deadletterqueue.context.headers.enable": "true",
        "key.converter.schemas.enable": "true",
        "value.converter.schemas.enable": "true",
    }});
    std::fs::write(connectors.join("src.json"), source.to_string()).expect("source config");
    std::fs::write(connectors.join("sink.json"), sink.to_string()).expect("sink config");
    let worker = start_with(
        &dir.path().join("data"),
        &dir.path().join("worker.log"),
        &["--connectors-dir".as_ref(), connectors.as_os_str()],
    )
    .await;

    // Every good row is written.
    let expected: Vec<(i32, String)> = (1..=200)
        .filter(|i| i % 10 != 0)
        .map(|i| (i, format!("v{i}")))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let rows: Vec<(i32, String)> = target
            .query(&format!("SELECT id, v FROM \"{table}\" ORDER BY id"), &[])
            .await
            .map(|rows| rows.iter().map(|r| (r.get(0), r.get(1))).collect())
            .unwrap_or_default();
        if rows == expected {
            break;
        }
        if Instant::now() > deadline {
            let (_, status) = worker.get("/connectors?expand=status").await;
            panic!(
                "target has {} of {} good rows\nstatus: {status}\nlog:\n{}",
                rows.len(),
                expected.len(),
                std::fs::read_to_string(dir.path().join("worker.log")).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Every poison row is in the dead-letter topic, with its context.
    let (_, body) = worker
        .get(&format!(
            "/topics/{dlq}/records?partition=0&offset=0&limit=1000"
        ))
        .await;
    let records = body["records"].as_array().cloned().unwrap_or_default();
    assert_eq!(records.len(), 20, "one DLQ record per poison row: {body}");
    let mut ids: Vec<i64> = Vec::new();
    for r in &records {
        let h = &r["headers"];
        assert_eq!(
            h["__connect.errors.topic"],
            Value::from(topic.as_str()),
            "{r}"
        );
        assert_eq!(h["__connect.errors.partition"], "0", "{r}");
        assert_eq!(h["__connect.errors.stage"], "TASK_PUT", "{r}");
        assert_eq!(h["__connect.errors.connector.name"], "sink", "{r}");
        let message = h["__connect.errors.exception.message"]
            .as_str()
            .unwrap_or("");
        assert!(
            message.contains("too long"),
            "the target's reason is kept: {r}"
        );
        assert!(
            h["__connect.errors.offset"]
                .as_str()
                .is_some_and(|o| o.parse::<u64>().is_ok()),
            "{r}"
        );
        // The original record, unchanged: its key names the poison row.
        ids.push(r["key"]["payload"]["id"].as_i64().expect("original key"));
    }
    ids.sort_unstable();
    assert_eq!(ids, (1..=20).map(|i| i * 10).collect::<Vec<i64>>());
    let (_, status) = worker.get("/connectors/sink/status").await;
    assert_eq!(status["tasks"][0]["state"], "RUNNING", "{status}");
    worker.stop().await;
}
