//! Snapshot: consistent with the stream while a writer runs, resumable from the chunk
//! cursor, with progress.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Result, ensure};
use mysql_async::prelude::Queryable as _;
use serde_json::json;
use tributary_runtime::connector::{Connector, SourceTaskContext};
use tributary_runtime::model::Value;
use tributary_runtime::offsets::StoredOffset;
use tributary_runtime::progress::ProgressHandle;
use tributary_runtime::record::{Payload, SourceRecord};

use crate::harness::*;

async fn table_state(
    conn: &mut mysql_async::Conn,
    db: &str,
) -> Result<BTreeMap<String, serde_json::Value>> {
    let rows: Vec<(i32, i32, String)> = conn
        .query(format!("SELECT id, v, note FROM {db}.t"))
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, v, note)| {
            (
                json!({"id": id}).to_string(),
                json!({"id": id, "v": v, "note": note}),
            )
        })
        .collect())
}

async fn prefill(conn: &mut mysql_async::Conn, db: &str, n: u32) -> Result<()> {
    conn.query_drop(format!(
        "CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(20) NOT NULL)"
    ))
    .await?;
    conn.query_drop(format!(
        "INSERT INTO {db}.t SELECT seq, seq, CONCAT('n', seq) FROM {db}.seq_1_to_{n}"
    ))
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_while_writer_runs_converges_to_the_table() -> Result<()> {
    let env = test_env();
    let mut admin = admin(&env).await?;
    let db = fresh_db(&mut admin, "mysnapw").await?;
    prefill(&mut admin, &db, 5000).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let mut conn = crate::harness::admin(&env).await?;
        let db = db.clone();
        tokio::spawn(async move {
            let mut i: u32 = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let id = 1 + (i * 7919) % 6000;
                let sql = match i % 3 {
                    0 => format!(
                        "INSERT INTO {db}.t VALUES ({}, {i}, 'new') ON DUPLICATE KEY UPDATE v = {i}",
                        5000 + i
                    ),
                    1 => format!("UPDATE {db}.t SET v = v + 1, note = 'upd' WHERE id = {id}"),
                    _ => format!("DELETE FROM {db}.t WHERE id = {id}"),
                };
                conn.query_drop(sql).await?;
            }
            anyhow::Ok(i)
        })
    };

    let dir = tempfile::tempdir()?;
    let worker = start_worker(dir.path()).await?;
    worker
        .put_config(connector_config(
            &env,
            "snapw",
            &db,
            &[
                ("snapshot.fetch.size", "250"),
                ("tombstones.on.delete", "false"),
            ],
        ))
        .await?;
    let topic = format!("{db}.{db}.t");
    // Let the writer run across the snapshot and into streaming.
    wait_for(&worker, "snapw", &topic, DEADLINE, |r| {
        r.iter().any(|r| r.op() == Some("c"))
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let writes = writer.await??;
    ensure!(writes > 10, "writer made only {writes} writes");

    let want = table_state(&mut admin, &db).await?;
    let records = wait_for(&worker, "snapw", &topic, DEADLINE, |r| {
        fold_state(r) == want
    })
    .await?;
    let reads: Vec<_> = records.iter().filter(|r| r.op() == Some("r")).collect();
    let mut keys: Vec<String> = reads
        .iter()
        .filter_map(|r| r.key.as_ref().map(|k| k.to_string()))
        .collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n, "a row was read twice by the snapshot");
    assert_eq!(
        reads
            .iter()
            .filter(|r| r.source()["snapshot"] == "last")
            .count(),
        1,
        "exactly one snapshot=last"
    );
    assert_eq!(
        reads.last().map(|r| r.source()["snapshot"].clone()),
        Some(json!("last"))
    );
    let progress = worker.progress("snapw").await?;
    let snap = progress
        .first()
        .and_then(|p| p.snapshot.clone())
        .expect("snapshot progress");
    assert_eq!(snap.rows_done, n as u64);

    worker.shutdown().await;
    admin.query_drop(format!("DROP DATABASE {db}")).await?;
    Ok(())
}

fn ids(records: &[SourceRecord]) -> Vec<i64> {
    records
        .iter()
        .filter_map(|r| match &r.payload {
            Payload::Change(e) => e
                .after
                .as_ref()
                .and_then(|a| a.0.first())
                .and_then(Value::as_i64),
            _ => None,
        })
        .collect()
}

/// A snapshot restarted from a committed mid-snapshot offset continues after the cursor.
#[tokio::test(flavor = "multi_thread")]
async fn snapshot_resumes_from_the_chunk_cursor() -> Result<()> {
    let env = test_env();
    let mut admin = admin(&env).await?;
    let db = fresh_db(&mut admin, "mysnapr").await?;
    prefill(&mut admin, &db, 3000).await?;
    let config = connector_config(
        &env,
        "snapr",
        &db,
        &[
            ("snapshot.fetch.size", "400"),
            ("snapshot.mode", "initial_only"),
        ],
    );
    let Connector::Source(src) = registry().validate(&config).expect("valid").connector else {
        panic!("source")
    };
    let open = |offsets: Vec<StoredOffset>| {
        let src = src.clone();
        async move {
            src.open_task(SourceTaskContext {
                connector: Arc::from("snapr"),
                task_id: 0,
                offsets,
                progress: ProgressHandle::new(),
                value_modes: src.value_modes(),
            })
            .await
        }
    };
    let mut task = open(Vec::new()).await?;
    let mut first = Vec::new();
    while first.len() < 1000 {
        first.extend(task.poll().await?);
    }
    task.close().await;
    let last = first
        .iter()
        .rev()
        .find(|r| r.offset.is_some())
        .expect("offset");
    let delivered = ids(&first[..=first.iter().rposition(|r| r.offset.is_some()).unwrap_or(0)]);
    let resume = StoredOffset {
        partition: last.partition.clone(),
        offset: last.offset.clone().expect("offset"),
    };
    assert_eq!(
        resume.offset.value["snapshot"], true,
        "{}",
        resume.offset.value
    );

    let mut task = open(vec![resume]).await?;
    let mut rest = Vec::new();
    for _ in 0..100 {
        let batch = task.poll().await?;
        if batch.is_empty() && !rest.is_empty() {
            break;
        }
        rest.extend(batch);
    }
    task.close().await;
    let rest_ids = ids(&rest);
    assert_eq!(
        rest_ids.first().copied(),
        delivered.last().map(|l| l + 1),
        "continues after the cursor"
    );
    let mut all: Vec<i64> = delivered.into_iter().chain(rest_ids).collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (1..=3000).collect::<Vec<i64>>(),
        "every row exactly once"
    );
    admin.query_drop(format!("DROP DATABASE {db}")).await?;
    Ok(())
}
