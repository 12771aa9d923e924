//! WAL safety: heartbeats move confirmed_flush_lsn while only unpublished tables change.

use std::time::Duration;

use super::*;

#[tokio::test]
async fn confirmed_lsn_advances_while_only_unpublished_tables_change() {
    let db = TestDb::create(
        "pgwal",
        "CREATE TABLE published (id int PRIMARY KEY); CREATE TABLE other (id serial PRIMARY KEY, pad text);",
    )
    .await;
    db.admin
        .batch_execute(&format!(
            "CREATE PUBLICATION {} FOR TABLE published",
            db.publication
        ))
        .await
        .expect("publication");
    let dir = tempfile::tempdir().expect("tempdir");
    let worker = start_worker(dir.path()).await;
    worker
        .put_config(ConnectorConfig {
            name: "pg".into(),
            config: db.config(&[("heartbeat.interval.ms", "200")]),
        })
        .await
        .expect("put");
    wait_for("slot active", Duration::from_secs(20), || async {
        db.slot_active_pid().await.is_some() && db.confirmed_flush().await.is_some()
    })
    .await;
    let start = db.confirmed_flush().await.expect("slot");
    db.admin
        .batch_execute(
            "INSERT INTO other (pad) SELECT repeat('x', 500) FROM generate_series(1, 2000)",
        )
        .await
        .expect("unpublished writes");
    let written: i64 = db
        .admin
        .query_one("SELECT (pg_current_wal_lsn() - '0/0')::int8", &[])
        .await
        .expect("lsn")
        .get(0);
    assert!(written as u64 > start + 100_000);
    wait_for(
        "confirmed_flush_lsn past the unpublished writes",
        Duration::from_secs(30),
        || async { db.confirmed_flush().await.unwrap_or(0) >= written as u64 },
    )
    .await;
    assert!(
        !read_topic(&worker, "__debezium-heartbeat.srv").is_empty(),
        "heartbeat records carry the position"
    );
    worker.shutdown().await;
    db.cleanup().await;
}
