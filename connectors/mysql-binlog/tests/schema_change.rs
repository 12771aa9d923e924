//! ALTER TABLE mid-stream: events on both sides carry the columns of their time.

use anyhow::Result;
use mysql_async::prelude::Queryable as _;
use serde_json::json;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn alter_table_add_drop_modify_mid_stream() -> Result<()> {
    let env = test_env();
    let mut admin = admin(&env).await?;
    let db = fresh_db(&mut admin, "myddl").await?;
    admin
        .query_drop(format!(
            "CREATE TABLE {db}.t (id INT PRIMARY KEY, a INT, b VARCHAR(10))"
        ))
        .await?;
    let dir = tempfile::tempdir()?;
    let worker = start_worker(dir.path()).await?;
    worker
        .put_config(connector_config(
            &env,
            "ddl",
            &db,
            &[("snapshot.mode", "no_data")],
        ))
        .await?;
    wait_streaming(&worker, "ddl", &mut admin, &db).await?;
    for sql in [
        format!("INSERT INTO {db}.t VALUES (1, 10, 'x')"),
        format!("ALTER TABLE {db}.t ADD COLUMN c INT NOT NULL DEFAULT 7"),
        format!("INSERT INTO {db}.t VALUES (2, 20, 'y', 9)"),
        format!("UPDATE {db}.t SET a = 11 WHERE id = 1"),
        format!("ALTER TABLE {db}.t DROP COLUMN a"),
        format!("INSERT INTO {db}.t VALUES (3, 'z', 5)"),
        format!("ALTER TABLE {db}.t MODIFY COLUMN c BIGINT NOT NULL"),
        format!("INSERT INTO {db}.t VALUES (4, 'w', 123456789012)"),
    ] {
        admin.query_drop(sql).await?;
    }
    let topic = format!("{db}.{db}.t");
    let r = wait_for(&worker, "ddl", &topic, DEADLINE, |r| r.len() >= 5).await?;
    assert_eq!(r[0].after(), Some(&json!({"id": 1, "a": 10, "b": "x"})));
    assert_eq!(
        r[1].after(),
        Some(&json!({"id": 2, "a": 20, "b": "y", "c": 9}))
    );
    assert_eq!(
        r[2].before(),
        Some(&json!({"id": 1, "a": 10, "b": "x", "c": 7}))
    );
    assert_eq!(
        r[2].after(),
        Some(&json!({"id": 1, "a": 11, "b": "x", "c": 7}))
    );
    assert_eq!(r[3].after(), Some(&json!({"id": 3, "b": "z", "c": 5})));
    assert_eq!(
        r[4].after(),
        Some(&json!({"id": 4, "b": "w", "c": 123_456_789_012i64}))
    );

    let changes = wait_for(&worker, "ddl", &db, DEADLINE, |r| r.len() >= 3).await?;
    let ddl: Vec<String> = changes
        .iter()
        .filter_map(|r| {
            r.value
                .as_ref()
                .and_then(|v| v["ddl"].as_str().map(str::to_owned))
        })
        .collect();
    assert!(ddl.iter().any(|d| d.contains("ADD COLUMN c")), "{ddl:?}");
    assert!(ddl.iter().any(|d| d.contains("DROP COLUMN a")), "{ddl:?}");
    worker.shutdown().await;
    admin.query_drop(format!("DROP DATABASE {db}")).await?;
    Ok(())
}
