//! Streaming: inserts, updates and deletes become Debezium events with the source block,
//! tombstones, keys, transaction metadata and heartbeats.

use anyhow::Result;
use mysql_async::prelude::Queryable as _;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn streams_inserts_updates_deletes_with_source_block_and_tombstones() -> Result<()> {
    let env = test_env();
    let mut admin = admin(&env).await?;
    let db = fresh_db(&mut admin, "mystream").await?;
    admin
        .query_drop(format!(
            "CREATE TABLE {db}.orders (id INT PRIMARY KEY, name VARCHAR(40), qty INT)"
        ))
        .await?;
    let dir = tempfile::tempdir()?;
    let worker = start_worker(dir.path()).await?;
    worker
        .put_config(connector_config(
            &env,
            "stream",
            &db,
            &[
                ("snapshot.mode", "no_data"),
                ("provide.transaction.metadata", "true"),
            ],
        ))
        .await?;
    wait_streaming(&worker, "stream", &mut admin, &db).await?;

    admin
        .query_drop(format!(
            "START TRANSACTION; INSERT INTO {db}.orders VALUES (1, 'a', 1), (2, 'b', 2); COMMIT"
        ))
        .await?;
    admin
        .query_drop(format!("UPDATE {db}.orders SET qty = 10 WHERE id = 1"))
        .await?;
    admin
        .query_drop(format!("DELETE FROM {db}.orders WHERE id = 2"))
        .await?;

    let topic = format!("{db}.{db}.orders");
    // The writes are committed (seen from another session).
    let mut other = crate::harness::admin(&env).await?;
    let rows: Vec<(i32, i32)> = other
        .query(format!("SELECT id, qty FROM {db}.orders"))
        .await?;
    assert_eq!(rows, vec![(1, 10)], "writes committed");
    let records = wait_for(&worker, "stream", &topic, DEADLINE, |r| r.len() >= 5).await?;
    let ops: Vec<_> = records
        .iter()
        .map(|r| r.op().unwrap_or("tombstone"))
        .collect();
    assert_eq!(ops, ["c", "c", "u", "d", "tombstone"]);

    let insert = &records[0];
    assert_eq!(insert.key, Some(serde_json::json!({"id": 1})));
    assert_eq!(
        insert.after(),
        Some(&serde_json::json!({"id": 1, "name": "a", "qty": 1}))
    );
    let source = insert.source();
    assert_eq!(source["connector"], "mariadb");
    assert_eq!(source["name"], db.as_str());
    assert_eq!(source["db"], db.as_str());
    assert_eq!(source["table"], "orders");
    assert_eq!(source["snapshot"], "false");
    assert_eq!(source["server_id"], 1);
    assert!(
        source["file"]
            .as_str()
            .is_some_and(|f| f.starts_with("binlog.")),
        "{source}"
    );
    assert!(source["pos"].as_u64().is_some_and(|p| p > 4), "{source}");
    assert_eq!(source["row"], 0);
    assert_eq!(
        records[1].source()["row"],
        1,
        "second row of the same event"
    );
    assert!(
        source["gtid"]
            .as_str()
            .is_some_and(|g| g.starts_with("0-1-")),
        "{source}"
    );
    assert!(
        source["ts_ms"]
            .as_i64()
            .is_some_and(|t| t > 1_600_000_000_000)
    );
    assert_eq!(
        insert
            .value
            .as_ref()
            .map(|v| v["transaction"]["total_order"].clone()),
        Some(serde_json::json!(1))
    );

    let update = &records[2];
    assert_eq!(
        update.before(),
        Some(&serde_json::json!({"id": 1, "name": "a", "qty": 1}))
    );
    assert_eq!(
        update.after(),
        Some(&serde_json::json!({"id": 1, "name": "a", "qty": 10}))
    );
    let delete = &records[3];
    assert_eq!(
        delete.before(),
        Some(&serde_json::json!({"id": 2, "name": "b", "qty": 2}))
    );
    assert!(delete.after().is_none());
    assert_eq!(records[4].key, Some(serde_json::json!({"id": 2})));
    assert!(records[4].value.is_none(), "tombstone has a null value");

    let tx = wait_for(
        &worker,
        "stream",
        &format!("{db}.transaction"),
        DEADLINE,
        |r| {
            r.iter()
                .filter(|x| {
                    x.value
                        .as_ref()
                        .is_some_and(|v| v.to_string().contains(".orders"))
                })
                .count()
                >= 3
        },
    )
    .await?;
    // The probe's transactions come first; the last three are the test's.
    let tx = &tx[tx.len() - 6..];
    let statuses: Vec<_> = tx
        .iter()
        .map(|r| {
            r.value
                .as_ref()
                .map(|v| v["status"].as_str().unwrap_or("").to_owned())
        })
        .collect::<Option<Vec<_>>>()
        .unwrap_or_default();
    assert_eq!(statuses, ["BEGIN", "END", "BEGIN", "END", "BEGIN", "END"]);
    assert_eq!(
        tx[1].value.as_ref().map(|v| v["event_count"].clone()),
        Some(serde_json::json!(2))
    );

    worker.shutdown().await;
    admin.query_drop(format!("DROP DATABASE {db}")).await?;
    Ok(())
}

/// Heartbeats move the committed offset while captured tables are idle.
#[tokio::test(flavor = "multi_thread")]
async fn heartbeats_advance_the_offset_when_captured_tables_are_idle() -> Result<()> {
    let env = test_env();
    let mut admin = admin(&env).await?;
    let db = fresh_db(&mut admin, "myheart").await?;
    admin
        .query_drop(format!("CREATE TABLE {db}.t (id INT PRIMARY KEY)"))
        .await?;
    admin
        .query_drop(format!("CREATE TABLE {db}.other (id INT PRIMARY KEY)"))
        .await?;
    let dir = tempfile::tempdir()?;
    let worker = start_worker(dir.path()).await?;
    let table = format!("{db}.t");
    worker
        .put_config(connector_config(
            &env,
            "heart",
            &db,
            &[
                ("snapshot.mode", "no_data"),
                ("heartbeat.interval.ms", "200"),
                ("table.include.list", table.as_str()),
            ],
        ))
        .await?;
    wait_running(&worker, "heart").await?;
    // Only a table that is not captured changes (until a heartbeat shows up).
    let topic = format!("__debezium-heartbeat.{db}");
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut n = 0;
    let beats = loop {
        n += 1;
        admin
            .query_drop(format!("INSERT INTO {db}.other VALUES ({n})"))
            .await?;
        let beats = read_topic(&worker, &topic)?;
        if !beats.is_empty() {
            break beats;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no heartbeat within {DEADLINE:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(beats[0].key, Some(serde_json::json!({"serverName": db})));
    assert!(read_topic(&worker, &format!("{db}.{db}.other"))?.is_empty());
    worker.shutdown().await;
    admin.query_drop(format!("DROP DATABASE {db}")).await?;
    Ok(())
}
