//! Integration tests against the real Postgres and MariaDB of the test environment
//! (`scripts/test-env.sh up`). Each test uses its own database.

#![allow(clippy::unwrap_used)]

#[path = "../../../tests/support/env.rs"]
mod env;

use std::path::Path;
use std::sync::Arc;

use mysql_async::prelude::Queryable as _;
use serde_json::json;
use tokio_postgres::NoTls;
use tributary_runtime::config::{ConnectorConfig, RawConfig};
use tributary_runtime::connector::{Connector, SourceConnector, SourceTask, SourceTaskContext};
use tributary_runtime::error::ErrorKind;
use tributary_runtime::model::Value;
use tributary_runtime::offsets::StoredOffset;
use tributary_runtime::progress::ProgressHandle;
use tributary_runtime::record::{Payload, SourceRecord};
use tributary_runtime::registry::Registry;

use env::{NOT_RUNNING, TestEnv, unique_name, with_database};

fn test_env() -> TestEnv {
    if std::env::var_os("TRIB_TEST_ENV_FILE").is_some() {
        return TestEnv::load();
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.test-env/env");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{NOT_RUNNING} (cannot read {}: {e})", path.display()));
    TestEnv::parse(&text).unwrap_or_else(|e| panic!("{NOT_RUNNING} ({e})"))
}

/// A fresh database on one of the servers, with `setup` run in it.
struct Db {
    name: String,
    pg: Option<tokio_postgres::Client>,
    my: Option<mysql_async::Conn>,
    url: String,
}

impl Db {
    async fn postgres(setup: &str) -> Db {
        let env = test_env();
        let name = unique_name("jdbcsrc");
        let root = pg_connect(&env.pg_url).await;
        root.batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let client = pg_connect(&with_database(&env.pg_url, &name)).await;
        client.batch_execute(setup).await.unwrap();
        let port = env.var("TRIB_PG_PORT").unwrap_or("15432").to_owned();
        Db {
            url: format!(
                "jdbc:postgresql://127.0.0.1:{port}/{name}?user=postgres&password=postgres"
            ),
            name,
            pg: Some(client),
            my: None,
        }
    }

    async fn mariadb(setup: &str) -> Db {
        let env = test_env();
        let name = unique_name("jdbcsrc");
        let opts = mysql_async::Opts::from_url(&env.mariadb_url).unwrap();
        let mut conn = mysql_async::Conn::new(opts).await.unwrap();
        conn.query_drop(format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        conn.query_drop(format!("USE {name}")).await.unwrap();
        for stmt in setup.split(';').filter(|s| !s.trim().is_empty()) {
            conn.query_drop(stmt).await.unwrap();
        }
        let port = env.var("TRIB_MARIADB_PORT").unwrap_or("13306").to_owned();
        Db {
            url: format!("jdbc:mariadb://127.0.0.1:{port}/{name}?user=root"),
            name,
            pg: None,
            my: Some(conn),
        }
    }

    async fn exec(&mut self, sql: &str) {
        if let Some(c) = &self.pg {
            c.batch_execute(sql).await.unwrap();
        }
        if let Some(c) = &mut self.my {
            for stmt in sql.split(';').filter(|s| !s.trim().is_empty()) {
                c.query_drop(stmt).await.unwrap();
            }
        }
    }

    fn source(&self, extra: &[(&str, &str)]) -> Arc<dyn SourceConnector> {
        let mut raw: RawConfig = [
            (
                "connector.class",
                "io.confluent.connect.jdbc.JdbcSourceConnector",
            ),
            ("connection.url", self.url.as_str()),
            ("topic.prefix", "jdbc-"),
            ("poll.interval.ms", "100"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        raw.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let validated = Registry::with_builtins_and(tributary_jdbc_source::JdbcSourcePlugin)
            .validate(&ConnectorConfig {
                name: "jdbc".into(),
                config: raw,
            })
            .unwrap_or_else(|e| panic!("invalid config: {e:?}"));
        match validated.connector {
            Connector::Source(s) => s,
            Connector::Sink(_) => panic!("a source"),
        }
    }
}

async fn pg_connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

trait WithPlugin {
    fn with_builtins_and(plugin: tributary_jdbc_source::JdbcSourcePlugin) -> Registry;
}

impl WithPlugin for Registry {
    fn with_builtins_and(plugin: tributary_jdbc_source::JdbcSourcePlugin) -> Registry {
        let mut r = Registry::with_builtins();
        r.register(Arc::new(plugin));
        r
    }
}

async fn open(src: &Arc<dyn SourceConnector>, offsets: Vec<StoredOffset>) -> Box<dyn SourceTask> {
    src.check().await.unwrap();
    src.open_task(SourceTaskContext {
        connector: Arc::from("jdbc"),
        task_id: 0,
        offsets,
        progress: ProgressHandle::new(),
        value_modes: src.value_modes(),
    })
    .await
    .unwrap()
}

/// Polls until `want` records arrived (each poll returns within about a second), then a few
/// more times to catch anything extra. Fails after 40 polls without reaching `want`.
async fn poll_records(task: &mut dyn SourceTask, want: usize) -> Vec<SourceRecord> {
    let mut out = Vec::new();
    let mut polls = 0;
    while out.len() < want {
        polls += 1;
        assert!(polls <= 40, "only {} of {want} records arrived", out.len());
        out.extend(task.poll().await.unwrap());
    }
    for _ in 0..3 {
        out.extend(task.poll().await.unwrap());
    }
    out
}

fn column(r: &SourceRecord, i: usize) -> Value {
    match &r.payload {
        Payload::Row { row, .. } => row.0[i].clone(),
        other => panic!("flat row expected, got {other:?}"),
    }
}

fn ids(records: &[SourceRecord]) -> Vec<i64> {
    records
        .iter()
        .map(|r| match column(r, 0) {
            Value::Int(n) => n,
            other => panic!("integer id expected, got {other:?}"),
        })
        .collect()
}

/// The committed offset after `r` (what the runtime would have stored).
fn committed(r: &SourceRecord) -> StoredOffset {
    StoredOffset {
        partition: r.partition.clone(),
        offset: r.offset.clone().expect("record carries an offset"),
    }
}

#[tokio::test]
async fn postgres_incrementing_reads_new_rows_and_resumes_exactly() {
    let mut db = Db::postgres(
        "CREATE TABLE orders (id serial PRIMARY KEY, item text NOT NULL, amount numeric(10,2), placed timestamptz NOT NULL DEFAULT now());
         INSERT INTO orders (item, amount) SELECT 'item-' || g, g * 1.5 FROM generate_series(1, 5) g;",
    )
    .await;
    let src = db.source(&[
        ("table.whitelist", "orders"),
        ("mode", "incrementing"),
        ("incrementing.column.name", "id"),
        ("batch.max.rows", "2"),
    ]);
    let mut task = open(&src, vec![]).await;
    let first = poll_records(task.as_mut(), 5).await;
    assert_eq!(ids(&first), vec![1, 2, 3, 4, 5]);
    let r = &first[2];
    assert_eq!(&*r.topic, "jdbc-orders");
    assert_eq!(
        r.partition.to_json(),
        json!({"protocol": "1", "table": format!("{}.public.orders", db.name)})
    );
    assert_eq!(r.offset.as_ref().unwrap().value, json!({"incrementing": 3}));
    assert_eq!(column(r, 1), Value::Text("item-3".into()));
    let Payload::Row { table, .. } = &r.payload else {
        unreachable!()
    };
    assert!(
        table.key.is_empty(),
        "no key, as Kafka Connect's JDBC source"
    );
    db.exec("INSERT INTO orders (item) VALUES ('item-6')").await;
    let more = poll_records(task.as_mut(), 1).await;
    assert_eq!(ids(&more), vec![6]);
    task.close().await;

    // Restart with row 3 committed: rows 4.. again, nothing before, nothing twice.
    let mut task = open(&src, vec![committed(&first[2])]).await;
    let resumed = poll_records(task.as_mut(), 3).await;
    assert_eq!(ids(&resumed), vec![4, 5, 6]);
    task.close().await;
}

#[tokio::test]
async fn postgres_timestamp_incrementing_sees_updates_and_resumes() {
    let mut db = Db::postgres(
        "CREATE TABLE orders (id serial PRIMARY KEY, status text NOT NULL, updated_at timestamp NOT NULL DEFAULT clock_timestamp());
         INSERT INTO orders (status) VALUES ('new'), ('new'), ('new');",
    )
    .await;
    let src = db.source(&[
        ("table.include.list", "public.orders"),
        ("mode", "timestamp+incrementing"),
        ("incrementing.column.name", "id"),
        ("timestamp.column.name", "updated_at"),
    ]);
    let mut task = open(&src, vec![]).await;
    let first = poll_records(task.as_mut(), 3).await;
    assert_eq!(ids(&first), vec![1, 2, 3]);
    let offset = &first[2].offset.as_ref().unwrap().value;
    assert!(
        offset["timestamp"].is_i64()
            && offset["timestamp_nanos"].is_i64()
            && offset["incrementing"] == 3,
        "{offset}"
    );
    db.exec("UPDATE orders SET status = 'shipped', updated_at = clock_timestamp() WHERE id = 2")
        .await;
    let updated = poll_records(task.as_mut(), 1).await;
    assert_eq!(ids(&updated), vec![2]);
    assert_eq!(column(&updated[0], 1), Value::Text("shipped".into()));
    task.close().await;

    let mut task = open(&src, vec![committed(&updated[0])]).await;
    db.exec("INSERT INTO orders (status) VALUES ('new')").await;
    let resumed = poll_records(task.as_mut(), 1).await;
    assert_eq!(ids(&resumed), vec![4], "nothing committed is read again");
    task.close().await;
}

/// `db.timezone` with a named zone: naive timestamps are wall-clock times in Berlin, so a
/// winter row is UTC+1 and a summer row UTC+2, and the offset comparison in the next query
/// uses the right offset for each instant.
#[tokio::test]
async fn named_db_timezone_follows_daylight_saving() {
    let mut db = Db::postgres(
        "CREATE TABLE events (id int PRIMARY KEY, at timestamp NOT NULL);
         INSERT INTO events VALUES (1, '2024-01-15 12:00:00'), (2, '2024-07-15 12:00:00');",
    )
    .await;
    let src = db.source(&[
        ("table.include.list", "public.events"),
        ("mode", "timestamp"),
        ("timestamp.column.name", "at"),
        ("db.timezone", "Europe/Berlin"),
    ]);
    let mut task = open(&src, vec![]).await;
    let first = poll_records(task.as_mut(), 2).await;
    // 12:00 in Berlin: 11:00 UTC in January, 10:00 UTC in July.
    assert_eq!(
        column(&first[0], 1),
        Value::Timestamp(1_705_316_400_000_000)
    );
    assert_eq!(
        column(&first[1], 1),
        Value::Timestamp(1_721_037_600_000_000)
    );
    task.close().await;

    // Resumed after the summer row: a December row (09:00 Berlin = 08:00 UTC) is new, the
    // summer row is not read again.
    db.exec("INSERT INTO events VALUES (3, '2024-12-01 09:00:00')")
        .await;
    let mut task = open(&src, vec![committed(&first[1])]).await;
    let resumed = poll_records(task.as_mut(), 1).await;
    assert_eq!(ids(&resumed), vec![3]);
    assert_eq!(
        column(&resumed[0], 1),
        Value::Timestamp(1_733_040_000_000_000)
    );
    task.close().await;
}

#[tokio::test]
async fn postgres_timestamp_mode_never_splits_rows_sharing_a_timestamp() {
    let mut db = Db::postgres(
        "CREATE TABLE events (id int NOT NULL, at timestamptz NOT NULL);
         INSERT INTO events SELECT g, '2024-01-01 00:00:00+00' FROM generate_series(1, 5) g;
         INSERT INTO events VALUES (6, '2024-01-02 00:00:00+00'), (7, '2024-01-02 00:00:00+00');",
    )
    .await;
    let src = db.source(&[
        ("table.whitelist", "events"),
        ("mode", "timestamp"),
        ("timestamp.column.name", "at"),
        ("batch.max.rows", "2"),
    ]);
    let mut task = open(&src, vec![]).await;
    let all = poll_records(task.as_mut(), 7).await;
    let mut got = ids(&all);
    got.sort_unstable();
    assert_eq!(got, vec![1, 2, 3, 4, 5, 6, 7]);
    let with_offsets: Vec<usize> = all
        .iter()
        .enumerate()
        .filter(|(_, r)| r.offset.is_some())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        with_offsets,
        vec![4, 6],
        "only the last row of each timestamp group carries the offset"
    );
    assert_eq!(
        all[4].offset.as_ref().unwrap().value,
        json!({"timestamp": 1_704_067_200_000_i64, "timestamp_nanos": 0})
    );
    task.close().await;
    // Resuming after the first group reads exactly the second.
    let mut task = open(&src, vec![committed(&all[4])]).await;
    db.exec("UPDATE events SET at = '2024-01-03 00:00:00+00' WHERE id = 1")
        .await;
    let resumed = poll_records(task.as_mut(), 3).await;
    let mut got = ids(&resumed);
    got.sort_unstable();
    assert_eq!(got, vec![1, 6, 7], "the second group and the updated row");
    task.close().await;
}

#[tokio::test]
async fn postgres_bulk_rereads_the_table_without_offsets() {
    let db =
        Db::postgres("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2);").await;
    let src = db.source(&[("table.whitelist", "t"), ("mode", "bulk")]);
    let mut task = open(&src, vec![]).await;
    let records = poll_records(task.as_mut(), 4).await;
    assert!(records.len() >= 4 && records.iter().all(|r| r.offset.is_none()));
    assert_eq!(ids(&records[..4]), vec![1, 2, 1, 2]);
    task.close().await;
}

#[tokio::test]
async fn a_bad_column_or_table_is_a_clear_error_before_anything_runs() {
    let db = Db::postgres("CREATE TABLE orders (id serial PRIMARY KEY, note text);").await;
    let src = db.source(&[
        ("table.whitelist", "orders"),
        ("mode", "incrementing"),
        ("incrementing.column.name", "idd"),
    ]);
    let err = src.check().await.expect_err("bad column");
    assert_eq!(err.kind, ErrorKind::Config);
    assert!(
        err.message.contains("incrementing.column.name")
            && err.message.contains("no column \"idd\"")
            && err.message.contains("did you mean \"id\"?"),
        "{}",
        err.message
    );

    let src = db.source(&[("table.whitelist", "orderz"), ("mode", "incrementing")]);
    let err = src.check().await.expect_err("missing table");
    assert!(
        err.message.contains("no table \"orderz\"")
            && err.message.contains("did you mean \"orders\"?"),
        "{}",
        err.message
    );

    let src = db.source(&[
        ("table.whitelist", "orders"),
        ("mode", "timestamp+incrementing"),
        ("timestamp.column.name", "note"),
    ]);
    let err = src.check().await.expect_err("not a timestamp");
    assert!(
        err.message.contains("column note") && err.message.contains("not a timestamp"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn mariadb_incrementing_and_timestamp_modes() {
    let mut db = Db::mariadb(
        "CREATE TABLE orders (id int AUTO_INCREMENT PRIMARY KEY, item varchar(20) NOT NULL, price decimal(8,2), updated datetime(6) NOT NULL DEFAULT NOW(6));
         INSERT INTO orders (item, price) VALUES ('a', 1.50), ('b', 2.25), ('c', 3.00)",
    )
    .await;
    // Incrementing with the auto-increment column detected.
    let src = db.source(&[
        ("table.whitelist", "orders"),
        ("mode", "incrementing"),
        ("numeric.mapping", "best_fit"),
    ]);
    let mut task = open(&src, vec![]).await;
    let first = poll_records(task.as_mut(), 3).await;
    assert_eq!(ids(&first), vec![1, 2, 3]);
    assert_eq!(
        first[0].partition.to_json(),
        json!({"protocol": "1", "table": format!("{}.orders", db.name)})
    );
    assert_eq!(
        column(&first[1], 2),
        Value::Float64(2.25),
        "best_fit maps decimal(8,2) to a double"
    );
    task.close().await;
    let mut task = open(&src, vec![committed(&first[0])]).await;
    assert_eq!(ids(&poll_records(task.as_mut(), 2).await), vec![2, 3]);
    task.close().await;

    // timestamp+incrementing sees an update.
    let src = db.source(&[
        ("table.whitelist", "orders"),
        ("mode", "timestamp+incrementing"),
        ("incrementing.column.name", "id"),
        ("timestamp.column.name", "updated"),
    ]);
    let mut task = open(&src, vec![]).await;
    let first = poll_records(task.as_mut(), 3).await;
    assert_eq!(ids(&first), vec![1, 2, 3]);
    db.exec("UPDATE orders SET item = 'a2', updated = NOW(6) + INTERVAL 0 SECOND WHERE id = 1")
        .await;
    let updated = poll_records(task.as_mut(), 1).await;
    assert_eq!(ids(&updated), vec![1]);
    assert_eq!(column(&updated[0], 1), Value::Text("a2".into()));
    task.close().await;
    let mut task = open(&src, vec![committed(&updated[0])]).await;
    db.exec("INSERT INTO orders (item) VALUES ('d')").await;
    assert_eq!(ids(&poll_records(task.as_mut(), 1).await), vec![4]);
    task.close().await;
}

#[tokio::test]
async fn new_tables_are_picked_up_and_custom_queries_run() {
    let mut db =
        Db::postgres("CREATE TABLE a (id int PRIMARY KEY); INSERT INTO a VALUES (1);").await;
    let src = db.source(&[
        ("mode", "incrementing"),
        ("incrementing.column.name", "id"),
        ("table.poll.interval.ms", "200"),
    ]);
    let mut task = open(&src, vec![]).await;
    let first = poll_records(task.as_mut(), 1).await;
    assert_eq!((&*first[0].topic, ids(&first)), ("jdbc-a", vec![1]));
    db.exec("CREATE TABLE b (id int PRIMARY KEY); INSERT INTO b VALUES (10), (11);")
        .await;
    let later = poll_records(task.as_mut(), 2).await;
    assert!(later.iter().all(|r| &*r.topic == "jdbc-b"));
    assert_eq!(ids(&later), vec![10, 11]);
    task.close().await;

    let src = db.source(&[
        (
            "query",
            "SELECT a.id, 'joined' AS tag FROM a JOIN b ON b.id > a.id",
        ),
        ("mode", "incrementing"),
        ("incrementing.column.name", "id"),
        ("topic.prefix", "joined"),
    ]);
    let mut task = open(&src, vec![]).await;
    let rows = poll_records(task.as_mut(), 2).await;
    assert_eq!(&*rows[0].topic, "joined");
    assert_eq!(rows[0].partition.to_json(), json!({"query": "query"}));
    assert_eq!(column(&rows[0], 1), Value::Text("joined".into()));
    // Both joined rows have id 1: the incrementing query reads them together, then nothing.
    assert_eq!(ids(&rows), vec![1, 1]);
    task.close().await;
}

/// Polls a few times (each poll returns within about a second) and returns what arrived.
async fn poll_some(task: &mut dyn SourceTask, polls: usize) -> Vec<SourceRecord> {
    let mut out = Vec::new();
    for _ in 0..polls {
        out.extend(task.poll().await.unwrap());
    }
    out
}

#[tokio::test]
async fn exclude_lists_by_either_name() {
    let db = Db::postgres(
        "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY);
         CREATE TABLE c (id int PRIMARY KEY);
         INSERT INTO a VALUES (1); INSERT INTO b VALUES (2); INSERT INTO c VALUES (3);",
    )
    .await;
    for key in ["table.exclude.list", "table.blacklist"] {
        let src = db.source(&[
            (key, "public.b"),
            ("mode", "incrementing"),
            ("incrementing.column.name", "id"),
        ]);
        let mut task = open(&src, vec![]).await;
        let records = poll_records(task.as_mut(), 2).await;
        let mut topics: Vec<&str> = records.iter().map(|r| &*r.topic).collect();
        topics.sort_unstable();
        assert_eq!(topics, ["jdbc-a", "jdbc-c"], "{key}");
        task.close().await;
    }
}

#[tokio::test]
async fn nullable_columns_coalesced_timestamps_and_the_delay() {
    let mut db = Db::postgres(
        "CREATE TABLE docs (id int PRIMARY KEY, modified timestamptz, created timestamptz NOT NULL);
         INSERT INTO docs VALUES (1, NULL, '2024-01-01 00:00:00+00'), (2, '2024-01-03 00:00:00+00', '2024-01-01 00:00:00+00');
         CREATE TABLE recent (id int PRIMARY KEY, at timestamptz NOT NULL);
         INSERT INTO recent VALUES (1, now() - interval '2 hours'), (2, now());",
    )
    .await;
    // A single nullable timestamp column is refused unless validate.non.null=false;
    // coalesced columns may be NULL as long as one is set (as in Kafka Connect).
    let single = [
        ("table.include.list", "public.docs"),
        ("mode", "timestamp"),
        ("timestamp.column.name", "modified"),
    ];
    let err = db
        .source(&single)
        .check()
        .await
        .expect_err("a nullable timestamp column");
    assert!(
        err.message.contains("modified") && err.message.contains("validate.non.null=false"),
        "{}",
        err.message
    );
    let mut lenient = single.to_vec();
    lenient.push(("validate.non.null", "false"));
    db.source(&lenient)
        .check()
        .await
        .expect("accepted with validate.non.null=false");
    let src = db.source(&[
        ("table.include.list", "public.docs"),
        ("mode", "timestamp"),
        ("timestamp.column.name", "modified,created"),
    ]);
    src.check()
        .await
        .expect("coalesced columns may be nullable");
    // Ordered by COALESCE(modified, created): row 1 (created Jan 1), then row 2 (Jan 3).
    let mut task = open(&src, vec![]).await;
    let first = poll_records(task.as_mut(), 2).await;
    assert_eq!(ids(&first), vec![1, 2]);
    db.exec("UPDATE docs SET modified = '2024-01-05 00:00:00+00' WHERE id = 1")
        .await;
    let updated = poll_records(task.as_mut(), 1).await;
    assert_eq!(
        ids(&updated),
        vec![1],
        "the update through the first non-null column"
    );
    task.close().await;

    // timestamp.delay.interval.ms: a row younger than the delay waits.
    let src = db.source(&[
        ("table.include.list", "public.recent"),
        ("mode", "timestamp"),
        ("timestamp.column.name", "at"),
        ("timestamp.delay.interval.ms", "3600000"),
    ]);
    let mut task = open(&src, vec![]).await;
    let records = poll_some(task.as_mut(), 4).await;
    assert_eq!(
        ids(&records),
        vec![1],
        "the row from now is held back by the hour's delay"
    );
    task.close().await;
}
