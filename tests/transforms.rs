//! Single message transforms end to end: a real MariaDB source (snapshot, then binlog
//! streaming) through `ExtractNewRecordState` (rewrite deletes, metadata fields), a content
//! filter that routes large orders to their own topic, and `RegexRouter`, into the embedded
//! log; read back and checked record by record.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use mysql_async::prelude::Queryable as _;
use mysql_async::{Conn, Opts};
use serde_json::{Value as Json, json};
use tributary_runtime::log::ReadCursor;
use tributary_runtime::worker::Worker;
use tributary_runtime::worker::state::TargetState;

use crate::support::env::{TestEnv, unique_name};
use crate::support::in_process;

const DEADLINE: Duration = Duration::from_secs(90);

/// Key and value of every record of partition 0 of `topic`, as JSON (`None`: null).
fn read_topic(worker: &Worker, topic: &str) -> Result<Vec<(Option<Json>, Option<Json>)>> {
    let log = worker.embedded_log().context("embedded log")?;
    if log.topic(topic).is_none() {
        return Ok(Vec::new());
    }
    let partition = log.partition(topic, 0)?;
    let (records, _) = partition.read(ReadCursor::at(0), 10_000, 64 << 20)?;
    records
        .into_iter()
        .map(|(_, r)| {
            let parse = |b: &bytes::Bytes| serde_json::from_slice::<Json>(b);
            Ok((
                r.key.as_ref().map(parse).transpose()?,
                r.value.as_ref().map(parse).transpose()?,
            ))
        })
        .collect()
}

async fn wait_for(
    worker: &Worker,
    connector: &str,
    topic: &str,
    count: usize,
) -> Result<Vec<(Option<Json>, Option<Json>)>> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let records = read_topic(worker, topic)?;
        if records.len() >= count {
            return Ok(records);
        }
        if tokio::time::Instant::now() >= deadline {
            let status = worker.status(connector).await.ok();
            bail!(
                "{topic}: {} of {count} records within {DEADLINE:?}; status {}",
                records.len(),
                serde_json::to_string(&status).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_through_unwrap_content_filter_and_regex_router() -> Result<()> {
    let env = TestEnv::load();
    let mut conn = Conn::new(Opts::from_url(&env.mariadb_url)?).await?;
    let db = unique_name("smt");
    conn.query_drop(format!("CREATE DATABASE {db}")).await?;
    conn.query_drop(format!(
        "CREATE TABLE {db}.orders (id INT PRIMARY KEY, amount DECIMAL(10,2) NOT NULL, note VARCHAR(40))"
    ))
    .await?;
    conn.query_drop(format!(
        "INSERT INTO {db}.orders VALUES (1, 10.00, 'small'), (2, 2500.00, 'big')"
    ))
    .await?;

    let dir = tempfile::tempdir()?;
    let worker = in_process::worker(dir.path()).await?;

    let flat = format!("{db}-flat-orders");
    let fraud = format!("{db}-fraud");
    let name = format!("{db}-src");
    let config = in_process::mariadb_source(
        &env,
        &name,
        &db,
        &[
            ("decimal.handling.mode", "string".into()),
            ("transforms", "unwrap,fraud,route".into()),
            (
                "transforms.unwrap.type",
                "io.debezium.transforms.ExtractNewRecordState".into(),
            ),
            (
                "transforms.unwrap.delete.tombstone.handling.mode",
                "rewrite".into(),
            ),
            ("transforms.unwrap.add.fields", "op,table".into()),
            (
                "transforms.fraud.type",
                "io.tributary.transforms.ContentFilter".into(),
            ),
            ("transforms.fraud.condition", "value.amount > 1000".into()),
            ("transforms.fraud.topic", fraud.clone()),
            (
                "transforms.route.type",
                "org.apache.kafka.connect.transforms.RegexRouter".into(),
            ),
            ("transforms.route.regex", format!("{db}\\.{db}\\.(.*)")),
            ("transforms.route.replacement", format!("{db}-flat-$1")),
        ],
    );
    worker.create(config, TargetState::Running).await?;

    // Snapshot: the small order flattened and renamed, the big one routed to the fraud topic.
    let snap = wait_for(&worker, &name, &flat, 1).await?;
    assert_eq!(
        snap[0],
        (
            Some(json!({"id": 1})),
            Some(
                json!({"id": 1, "amount": "10.00", "note": "small", "__op": "r", "__table": "orders", "__deleted": "false"})
            )
        )
    );
    let big = wait_for(&worker, &name, &fraud, 1).await?;
    assert_eq!(big[0].1.as_ref().map(|v| v["id"].clone()), Some(json!(2)));

    // Streaming: an update, a large insert, a delete (rewritten; its tombstone dropped).
    conn.query_drop(format!(
        "UPDATE {db}.orders SET amount = 20.00 WHERE id = 1"
    ))
    .await?;
    conn.query_drop(format!(
        "INSERT INTO {db}.orders VALUES (3, 5000.00, 'huge')"
    ))
    .await?;
    conn.query_drop(format!("DELETE FROM {db}.orders WHERE id = 1"))
        .await?;

    let flat_records = wait_for(&worker, &name, &flat, 3).await?;
    let values: Vec<Json> = flat_records
        .iter()
        .map(|(_, v)| v.clone().unwrap_or(Json::Null))
        .collect();
    assert_eq!(
        values,
        [
            json!({"id": 1, "amount": "10.00", "note": "small", "__op": "r", "__table": "orders", "__deleted": "false"}),
            json!({"id": 1, "amount": "20.00", "note": "small", "__op": "u", "__table": "orders", "__deleted": "false"}),
            json!({"id": 1, "amount": "20.00", "note": "small", "__op": "d", "__table": "orders", "__deleted": "true"}),
        ]
    );
    let fraud_records = wait_for(&worker, &name, &fraud, 2).await?;
    let fraud_ids: Vec<Json> = fraud_records
        .iter()
        .map(|(_, v)| v.as_ref().map_or(Json::Null, |v| v["id"].clone()))
        .collect();
    assert_eq!(fraud_ids, [json!(2), json!(3)]);
    assert_eq!(
        fraud_records[1].1.as_ref().map(|v| v["__op"].clone()),
        Some(json!("c"))
    );
    // The untransformed topic was never written.
    let log = worker.embedded_log().context("embedded log")?;
    assert!(log.topic(&format!("{db}.{db}.orders")).is_none());

    worker.shutdown().await;
    conn.query_drop(format!("DROP DATABASE {db}")).await?;
    Ok(())
}

/// Waits until the connector's task is FAILED; returns the status JSON.
async fn wait_failed(worker: &Worker, connector: &str) -> Result<Json> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Ok(status) = worker.status(connector).await {
            let json = serde_json::to_value(&status)?;
            if json["tasks"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["state"] == "FAILED"))
            {
                return Ok(json);
            }
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("connector {connector} did not fail within {DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A transform that cannot handle one row: with `errors.tolerance=none` the task fails and
/// its status names the source position and the stage; with `all` the row is skipped and
/// the rows after it flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_row_fails_the_task_or_is_skipped_by_tolerance() -> Result<()> {
    let env = TestEnv::load();
    let mut conn = Conn::new(Opts::from_url(&env.mariadb_url)?).await?;
    let db = unique_name("smterr");
    conn.query_drop(format!("CREATE DATABASE {db}")).await?;
    conn.query_drop(format!(
        "CREATE TABLE {db}.events (id INT PRIMARY KEY, day VARCHAR(20) NOT NULL)"
    ))
    .await?;
    conn.query_drop(format!(
        "INSERT INTO {db}.events VALUES (1, '2024-01-01'), (2, 'not a date'), (3, '2024-01-03')"
    ))
    .await?;

    let dir = tempfile::tempdir()?;
    let worker = in_process::worker(dir.path()).await?;
    let chain = |tolerance: &str| -> Vec<(&'static str, String)> {
        vec![
            ("transforms", "unwrap,day".into()),
            (
                "transforms.unwrap.type",
                "io.debezium.transforms.ExtractNewRecordState".into(),
            ),
            (
                "transforms.day.type",
                "org.apache.kafka.connect.transforms.TimestampConverter$Value".into(),
            ),
            ("transforms.day.field", "day".into()),
            ("transforms.day.format", "yyyy-MM-dd".into()),
            ("transforms.day.target.type", "unix".into()),
            ("errors.tolerance", tolerance.into()),
            // The snapshot's schema-change records have no `day` either; this test is
            // about rows.
            ("include.schema.changes", "false".into()),
        ]
    };

    // tolerance none: FAILED, with the position and the stage in the trace.
    let strict = format!("{db}-strict");
    let mut config = in_process::mariadb_source(&env, &strict, &db, &chain("none"));
    config
        .config
        .insert("topic.prefix".into(), format!("{db}s"));
    worker.create(config, TargetState::Running).await?;
    let status = wait_failed(&worker, &strict).await?;
    let trace = status["tasks"][0]["trace"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(trace.contains("TRANSFORMATION"), "{status}");
    assert!(trace.contains("transform day"), "{status}");
    assert!(trace.contains(&format!("{db}s.{db}.events")), "{status}");
    assert!(
        trace.contains(" at {"),
        "the source offset is named: {status}"
    );

    // tolerance all: the bad row is skipped, the others arrive.
    let lenient = format!("{db}-lenient");
    let mut config = in_process::mariadb_source(&env, &lenient, &db, &chain("all"));
    config
        .config
        .insert("topic.prefix".into(), format!("{db}l"));
    worker.create(config, TargetState::Running).await?;
    let topic = format!("{db}l.{db}.events");
    let records = wait_for(&worker, &lenient, &topic, 2).await?;
    let values: Vec<Json> = records
        .iter()
        .map(|(_, v)| v.clone().unwrap_or(Json::Null))
        .collect();
    assert_eq!(
        values,
        [
            json!({"id": 1, "day": 1_704_067_200_000i64}),
            json!({"id": 3, "day": 1_704_240_000_000i64})
        ]
    );
    // And it keeps streaming after the skipped row.
    conn.query_drop(format!("INSERT INTO {db}.events VALUES (4, '2024-01-04')"))
        .await?;
    let records = wait_for(&worker, &lenient, &topic, 3).await?;
    assert_eq!(
        records[2].1.as_ref().map(|v| v["id"].clone()),
        Some(json!(4))
    );

    worker.shutdown().await;
    conn.query_drop(format!("DROP DATABASE {db}")).await?;
    Ok(())
}

/// The outbox pattern on Postgres: inserts into an outbox table (snapshot and streaming)
/// become events on `outbox.event.<aggregatetype>` keyed by the aggregate id, with the JSON
/// payload expanded and the event id and type in headers; the outbox row deletes vanish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outbox_event_router() -> Result<()> {
    let env = TestEnv::load();
    let db = unique_name("smtoutbox");
    let root = in_process::pg(&env.pg_url).await?;
    root.batch_execute(&format!("CREATE DATABASE {db}")).await?;
    let admin = in_process::pg(&crate::support::env::with_database(&env.pg_url, &db)).await?;
    admin
        .batch_execute(&format!(
            "CREATE TABLE outbox (id uuid PRIMARY KEY, aggregatetype text NOT NULL, aggregateid text NOT NULL, type text NOT NULL, payload jsonb);
             INSERT INTO outbox VALUES ('11111111-1111-1111-1111-111111111111', 'Order{db}', 'o-1', 'OrderCreated', '{{\"orderId\": 1, \"total\": 9.5}}');
             CREATE PUBLICATION {db}_pub FOR ALL TABLES;"
        ))
        .await?;

    let dir = tempfile::tempdir()?;
    let worker = in_process::worker(dir.path()).await?;
    let name = format!("{db}-src");
    let config = in_process::postgres_source(
        &env,
        &name,
        &db,
        &[
            ("transforms", "outbox".into()),
            (
                "transforms.outbox.type",
                "io.debezium.transforms.outbox.EventRouter".into(),
            ),
            ("transforms.outbox.table.expand.json.payload", "true".into()),
            (
                "transforms.outbox.table.fields.additional.placement",
                "type:header:eventType".into(),
            ),
        ],
    );
    worker.create(config, TargetState::Running).await?;

    let topic = format!("outbox.event.Order{db}");
    let first = wait_for(&worker, &name, &topic, 1).await?;
    assert_eq!(
        first[0],
        (
            Some(json!("o-1")),
            Some(json!({"orderId": 1, "total": 9.5}))
        )
    );

    // Streaming: an insert, then the usual delete of the outbox row (ignored).
    admin
        .batch_execute(&format!(
            "INSERT INTO outbox VALUES ('22222222-2222-2222-2222-222222222222', 'Order{db}', 'o-2', 'OrderPaid', '{{\"orderId\": 2, \"paid\": true}}');
             DELETE FROM outbox WHERE id = '22222222-2222-2222-2222-222222222222';
             INSERT INTO outbox VALUES ('33333333-3333-3333-3333-333333333333', 'Order{db}', 'o-3', 'OrderCreated', '{{\"orderId\": 3}}');"
        ))
        .await?;
    let records = wait_for(&worker, &name, &topic, 3).await?;
    let keys: Vec<Json> = records
        .iter()
        .map(|(k, _)| k.clone().unwrap_or(Json::Null))
        .collect();
    assert_eq!(keys, [json!("o-1"), json!("o-2"), json!("o-3")]);
    assert_eq!(records[1].1, Some(json!({"orderId": 2, "paid": true})));
    // Headers: the event id and the placed type.
    let log = worker.embedded_log().context("embedded log")?;
    let (raw, _) = log
        .partition(&topic, 0)?
        .read(ReadCursor::at(0), 10, 1 << 20)?;
    let header = |i: usize, name: &str| {
        raw[i]
            .1
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(
        header(1, "id").as_deref(),
        Some("22222222-2222-2222-2222-222222222222")
    );
    assert_eq!(header(1, "eventType").as_deref(), Some("OrderPaid"));
    // The outbox table's own topic was never written.
    assert!(log.topic(&format!("{db}.public.outbox")).is_none());

    worker.shutdown().await;
    drop(admin);
    // Drop the slot (its walsender may take a moment to go away), then the database.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let _ = root
            .execute(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL",
                &[&format!("{db}_slot")],
            )
            .await;
        let dropped = root
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
                &[&format!("{db}_slot")],
            )
            .await;
        if dropped.is_ok_and(|n| n == 1) || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = root
        .batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .await;
    Ok(())
}

/// GET a path of the registry; JSON body.
async fn registry_json(url: &str, path: &str) -> Result<Json> {
    let resp = reqwest::get(format!("{url}{path}")).await?;
    let status = resp.status();
    let body: Json = resp.json().await?;
    anyhow::ensure!(status.is_success(), "GET {path}: {status} {body}");
    Ok(body)
}

/// Versions of a subject, empty while it does not exist.
async fn subject_versions(url: &str, subject: &str) -> Vec<u64> {
    registry_json(url, &format!("/subjects/{subject}/versions"))
        .await
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

/// Under the Avro converter, a transformed record's schema is the transformed one (flat,
/// with the added fields), and an `ALTER TABLE` mid-stream registers a second version of the
/// value subject; each record in the log names the version it was written with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transformed_avro_schemas_are_registered_and_evolve() -> Result<()> {
    let env = TestEnv::load();
    let mut conn = Conn::new(Opts::from_url(&env.mariadb_url)?).await?;
    let db = unique_name("smtavro");
    conn.query_drop(format!("CREATE DATABASE {db}")).await?;
    conn.query_drop(format!(
        "CREATE TABLE {db}.orders (id INT PRIMARY KEY, note VARCHAR(40))"
    ))
    .await?;
    conn.query_drop(format!("INSERT INTO {db}.orders VALUES (1, 'first')"))
        .await?;

    // A registry of our own, as a user's external Confluent registry would be.
    let registry_dir = tempfile::tempdir()?;
    let store = Arc::new(tributary_runtime::schema_registry::SchemaStore::open(
        registry_dir.path(),
    )?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move {
        let _ = tributary_runtime::schema_registry::serve_listener(listener, store).await;
    });

    let dir = tempfile::tempdir()?;
    let worker = in_process::worker(dir.path()).await?;
    let name = format!("{db}-src");
    let avro = "io.confluent.connect.avro.AvroConverter".to_owned();
    let config = in_process::mariadb_source(
        &env,
        &name,
        &db,
        &[
            ("key.converter", avro.clone()),
            ("value.converter", avro),
            ("key.converter.schema.registry.url", url.clone()),
            ("value.converter.schema.registry.url", url.clone()),
            ("transforms", "unwrap".into()),
            (
                "transforms.unwrap.type",
                "io.debezium.transforms.ExtractNewRecordState".into(),
            ),
            ("transforms.unwrap.add.fields", "op".into()),
        ],
    );
    worker.create(config, TargetState::Running).await?;
    let topic = format!("{db}.{db}.orders");
    let subject = format!("{topic}-value");

    let deadline = tokio::time::Instant::now() + DEADLINE;
    while subject_versions(&url, &subject).await.is_empty() {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{subject} never registered; status {:?}",
            worker.status(&name).await.ok()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    conn.query_drop(format!("ALTER TABLE {db}.orders ADD COLUMN extra INT"))
        .await?;
    conn.query_drop(format!("INSERT INTO {db}.orders VALUES (2, 'second', 7)"))
        .await?;
    while subject_versions(&url, &subject).await != [1, 2] {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{subject} has versions {:?}, want [1, 2]",
            subject_versions(&url, &subject).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Both versions are the flat, transformed record, not Debezium's envelope.
    let mut ids = Vec::new();
    for (version, want) in [
        (1, vec!["id", "note", "__op"]),
        (2, vec!["id", "note", "extra", "__op"]),
    ] {
        let body = registry_json(&url, &format!("/subjects/{subject}/versions/{version}")).await?;
        ids.push(body["id"].as_u64().context("schema id")?);
        let schema: Json = serde_json::from_str(body["schema"].as_str().context("schema text")?)?;
        // An optional Connect struct is the union ["null", record], as Confluent writes it.
        let record = match &schema {
            Json::Array(branches) => branches
                .iter()
                .find(|b| b["type"] == "record")
                .cloned()
                .unwrap_or(Json::Null),
            other => other.clone(),
        };
        let fields: Vec<&str> = record["fields"]
            .as_array()
            .with_context(|| format!("fields of {schema}"))?
            .iter()
            .filter_map(|f| f["name"].as_str())
            .collect();
        assert_eq!(fields, want, "version {version}: {schema}");
    }

    // The log's records carry the ids of the versions they were written with, in order.
    let log = worker.embedded_log().context("embedded log")?;
    let partition = log.partition(&topic, 0)?;
    let (records, _) = partition.read(ReadCursor::at(0), 100, 1 << 20)?;
    let written: Vec<u64> = records
        .iter()
        .filter_map(|(_, r)| r.value.as_ref())
        .filter_map(|v| v.get(1..5))
        .map(|id| u64::from(u32::from_be_bytes([id[0], id[1], id[2], id[3]])))
        .collect();
    assert_eq!(
        written, ids,
        "record 1 with version 1, record 2 with version 2"
    );

    worker.shutdown().await;
    server.abort();
    conn.query_drop(format!("DROP DATABASE {db}")).await?;
    Ok(())
}
