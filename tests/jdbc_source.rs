//! The JDBC polling source through the real binary: the issue's example created with
//! `POST /connectors`, its rows read back over REST, a restart that resumes exactly, and a bad
//! column rejected before anything is read.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::support::env::{TestEnv, unique_name, with_database};
use crate::support::worker::{eventually, start};

/// The example of issue 14, verbatim.
const EXAMPLE: &str = r#"{"name":"postgres-source","config":{"connector.class":"io.confluent.connect.jdbc.JdbcSourceConnector","connection.url":"jdbc:postgresql://localhost:5432/mydb","table.whitelist":"orders","mode":"incrementing","incrementing.column.name":"id","topic.prefix":"postgres-"}}"#;

async fn pg(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// The example with only its server address pointed at the test environment's Postgres
/// (and its credentials, which the example leaves to the deployment).
fn example_against(env: &TestEnv, database: &str) -> Value {
    let port = env.var("TRIB_PG_PORT").unwrap_or("15432");
    let mut example: Value = serde_json::from_str(EXAMPLE).expect("example JSON");
    let url = example["config"]["connection.url"]
        .as_str()
        .expect("url")
        .replace(
            "localhost:5432/mydb",
            &format!("127.0.0.1:{port}/{database}"),
        );
    example["config"]["connection.url"] = json!(format!("{url}?user=postgres&password=postgres"));
    example
}

fn ids(values: &[Value]) -> Vec<i64> {
    values
        .iter()
        .map(|v| v["id"].as_i64().expect("id"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_issue_example_runs_against_postgres_and_resumes_after_a_restart() {
    let env = TestEnv::load();
    let root = pg(&env.pg_url).await;
    // The example's database and table, as named; only this test uses them.
    if let Err(e) = root.batch_execute("CREATE DATABASE mydb").await {
        assert_eq!(
            e.code(),
            Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE),
            "create mydb: {e:?}"
        );
    }
    let db = pg(&with_database(&env.pg_url, "mydb")).await;
    db.batch_execute(
        "DROP TABLE IF EXISTS orders;
         CREATE TABLE orders (id serial PRIMARY KEY, product text NOT NULL, quantity int NOT NULL);
         INSERT INTO orders (product, quantity) VALUES ('apple', 3), ('pear', 1), ('plum', 7);",
    )
    .await
    .expect("orders table");

    let dir = tempfile::tempdir().expect("tempdir");
    let data: PathBuf = dir.path().join("data");
    let worker = start(&data, &dir.path().join("worker1.log")).await;
    let (status, body) = worker
        .post("/connectors", &example_against(&env, "mydb"))
        .await;
    assert_eq!(status, 201, "{body}");
    let values = eventually("the three rows", || async {
        let v = worker.values("postgres-orders").await;
        (v.len() >= 3).then_some(v)
    })
    .await;
    assert_eq!(
        values[0],
        json!({"id": 1, "product": "apple", "quantity": 3})
    );
    let records = worker.records("postgres-orders").await;
    assert!(
        records.iter().all(|(key, _)| key.is_null()),
        "JDBC source records have no key: {records:?}"
    );
    assert_eq!(ids(&values), vec![1, 2, 3]);

    db.batch_execute("INSERT INTO orders (product, quantity) VALUES ('fig', 2)")
        .await
        .expect("insert");
    eventually("the new row", || async {
        (ids(&worker.values("postgres-orders").await) == vec![1, 2, 3, 4]).then_some(())
    })
    .await;
    // The committed offset, in Kafka Connect's format.
    eventually("offset of row 4 committed", || async {
        let (_, body) = worker.get("/connectors/postgres-source/offsets").await;
        let offsets = body["offsets"].as_array().cloned().unwrap_or_default();
        offsets
            .iter()
            .any(|o| {
                o["partition"] == json!({"protocol": "1", "table": "mydb.public.orders"})
                    && o["offset"] == json!({"incrementing": 4})
            })
            .then_some(())
    })
    .await;
    worker.stop().await;

    db.batch_execute("INSERT INTO orders (product, quantity) VALUES ('kiwi', 5)")
        .await
        .expect("insert");
    let worker = start(&data, &dir.path().join("worker2.log")).await;
    let values = eventually("row 5 after the restart", || async {
        let v = worker.values("postgres-orders").await;
        (v.len() >= 5).then_some(v)
    })
    .await;
    // The connector came back by itself (its config persisted) and is still polling.
    let (_, status) = worker.get("/connectors/postgres-source/status").await;
    assert_eq!(status["tasks"][0]["state"], "RUNNING", "{status}");
    assert_eq!(
        ids(&values),
        vec![1, 2, 3, 4, 5],
        "no row skipped, none repeated"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_column_is_refused_before_anything_starts() {
    let env = TestEnv::load();
    let name = unique_name("jdbcbad");
    let root = pg(&env.pg_url).await;
    root.batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create db");
    let db = pg(&with_database(&env.pg_url, &name)).await;
    db.batch_execute(
        "CREATE TABLE orders (id serial PRIMARY KEY); INSERT INTO orders DEFAULT VALUES;",
    )
    .await
    .expect("table");
    let dir = tempfile::tempdir().expect("tempdir");
    let worker = start(&dir.path().join("data"), &dir.path().join("worker.log")).await;
    let mut config = example_against(&env, &name);
    config["name"] = json!("bad-column");
    config["config"]["incrementing.column.name"] = json!("order_id");
    config["config"]["topic.prefix"] = json!(format!("{name}-"));
    // Refused by POST with the field and the reason, as Kafka Connect answers an invalid
    // config: nothing is created, nothing runs.
    let (status, body) = worker.post("/connectors", &config).await;
    assert_eq!(status, 400, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("incrementing.column.name")
            && message.contains("no column \"order_id\"")
            && message.contains("its columns are id"),
        "{message}"
    );
    let (status, _) = worker.get("/connectors/bad-column").await;
    assert_eq!(status, 404, "the refused connector does not exist");
    // The same through PUT .../config.
    let (status, body) = worker
        .put("/connectors/bad-column/config", &config["config"])
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        worker.values(&format!("{name}-orders")).await.is_empty(),
        "nothing was read"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_max_deals_tables_over_tasks_and_every_row_arrives_once() {
    let env = TestEnv::load();
    let name = unique_name("jdbctasks");
    let root = pg(&env.pg_url).await;
    root.batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create db");
    let db = pg(&with_database(&env.pg_url, &name)).await;
    let tables = ["alpha", "beta", "gamma"];
    for (i, table) in tables.iter().enumerate() {
        db.batch_execute(&format!(
            "CREATE TABLE {table} (id serial PRIMARY KEY, n int NOT NULL);
             INSERT INTO {table} (n) SELECT g FROM generate_series(1, {}) g;",
            10 * (i + 1)
        ))
        .await
        .expect("table");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let worker = start(&dir.path().join("data"), &dir.path().join("worker.log")).await;
    let mut config = example_against(&env, &name);
    config["name"] = json!("spread");
    config["config"]["tasks.max"] = json!("2");
    config["config"]["table.whitelist"] = json!(tables.join(","));
    config["config"]["topic.prefix"] = json!(format!("{name}-"));
    let (status, body) = worker.post("/connectors", &config).await;
    assert_eq!(status, 201, "{body}");
    for (i, table) in tables.iter().enumerate() {
        let want: Vec<i64> = (1..=10 * (i as i64 + 1)).collect();
        let topic = format!("{name}-{table}");
        eventually(&format!("all rows of {table}"), || async {
            (ids(&worker.values(&topic).await) == want).then_some(())
        })
        .await;
    }
    let (_, status) = worker.get("/connectors/spread/status").await;
    let tasks = status["tasks"].as_array().cloned().unwrap_or_default();
    assert_eq!(tasks.len(), 2, "two tasks for tasks.max=2: {status}");
    assert!(tasks.iter().all(|t| t["state"] == "RUNNING"), "{status}");
    // Each table's offset is committed once, by the task that owns it.
    let expected: Vec<(Value, Value)> = tables
        .iter()
        .enumerate()
        .map(|(i, table)| {
            (
                json!({"protocol": "1", "table": format!("{name}.public.{table}")}),
                json!({"incrementing": 10 * (i + 1)}),
            )
        })
        .collect();
    let offsets = eventually("every table's offset committed", || async {
        let (_, body) = worker.get("/connectors/spread/offsets").await;
        let offsets = body["offsets"].as_array().cloned().unwrap_or_default();
        expected
            .iter()
            .all(|(p, o)| {
                offsets
                    .iter()
                    .any(|x| &x["partition"] == p && &x["offset"] == o)
            })
            .then_some(offsets)
    })
    .await;
    for (partition, _) in &expected {
        let count = offsets
            .iter()
            .filter(|o| &o["partition"] == partition)
            .count();
        assert_eq!(count, 1, "{partition}: {offsets:?}");
    }
    worker.stop().await;
}

/// `timestamp+incrementing` through the real binary: an update shows up as a new record, and
/// after a restart the changes made while the worker was down arrive once each, nothing
/// read before is read again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamp_and_incrementing_resumes_exactly_after_a_restart() {
    let env = TestEnv::load();
    let name = unique_name("jdbcts");
    let root = pg(&env.pg_url).await;
    root.batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create db");
    let db = pg(&with_database(&env.pg_url, &name)).await;
    db.batch_execute(
        "CREATE TABLE orders (id serial PRIMARY KEY, product text NOT NULL, \
         updated timestamp(3) NOT NULL DEFAULT clock_timestamp());
         INSERT INTO orders (product) VALUES ('apple'), ('pear'), ('plum');",
    )
    .await
    .expect("orders table");
    let mut config = example_against(&env, &name);
    config["name"] = json!("tsinc");
    config["config"]["mode"] = json!("timestamp+incrementing");
    config["config"]["timestamp.column.name"] = json!("updated");
    config["config"]["topic.prefix"] = json!(format!("{name}-"));
    let topic = format!("{name}-orders");
    let seen = |values: &[Value]| -> Vec<(i64, String)> {
        values
            .iter()
            .map(|v| {
                (
                    v["id"].as_i64().expect("id"),
                    v["product"].as_str().expect("product").to_owned(),
                )
            })
            .collect()
    };

    let dir = tempfile::tempdir().expect("tempdir");
    let data: PathBuf = dir.path().join("data");
    let worker = start(&data, &dir.path().join("worker1.log")).await;
    let (status, body) = worker.post("/connectors", &config).await;
    assert_eq!(status, 201, "{body}");
    eventually("the three rows", || async {
        (worker.values(&topic).await.len() >= 3).then_some(())
    })
    .await;
    db.batch_execute(
        "UPDATE orders SET product = 'pear v2', updated = clock_timestamp() WHERE id = 2",
    )
    .await
    .expect("update");
    let before = eventually("the update", || async {
        let v = worker.values(&topic).await;
        (v.len() >= 4).then_some(v)
    })
    .await;
    assert_eq!(
        seen(&before),
        [
            (1, "apple".to_owned()),
            (2, "pear".to_owned()),
            (3, "plum".to_owned()),
            (2, "pear v2".to_owned())
        ]
    );
    eventually("the update's offset committed", || async {
        let (_, body) = worker.get("/connectors/tsinc/offsets").await;
        let offsets = body["offsets"].as_array().cloned().unwrap_or_default();
        offsets
            .iter()
            .any(|o| o["offset"]["incrementing"] == json!(2))
            .then_some(())
    })
    .await;
    worker.stop().await;

    // While the worker is down: one more update and one insert.
    db.batch_execute(
        "UPDATE orders SET product = 'apple v2', updated = clock_timestamp() WHERE id = 1;
         INSERT INTO orders (product) VALUES ('fig');",
    )
    .await
    .expect("changes while down");
    let worker = start(&data, &dir.path().join("worker2.log")).await;
    let after = eventually("the two changes made while down", || async {
        let v = worker.values(&topic).await;
        (v.len() >= 6).then_some(v)
    })
    .await;
    // A little longer: a repeat would show up as a seventh record.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let after_wait = worker.values(&topic).await;
    assert_eq!(after_wait.len(), after.len(), "no record repeated");
    assert_eq!(
        seen(&after_wait),
        [
            (1, "apple".to_owned()),
            (2, "pear".to_owned()),
            (3, "plum".to_owned()),
            (2, "pear v2".to_owned()),
            (1, "apple v2".to_owned()),
            (4, "fig".to_owned())
        ]
    );
    worker.stop().await;
    root.batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .expect("drop db");
}
