//! Resuming: after a clean restart, inside a transaction, a 100k-row transaction, and a
//! purged binlog.

use std::sync::Arc;

use anyhow::Result;
use mysql_async::prelude::Queryable as _;
use tributary_runtime::connector::{Connector, SourceConnector, SourceTask, SourceTaskContext};
use tributary_runtime::model::Value;
use tributary_runtime::offsets::StoredOffset;
use tributary_runtime::progress::ProgressHandle;
use tributary_runtime::record::{Payload, SourceRecord};

use crate::harness::*;

fn source(config: &tributary_runtime::config::ConnectorConfig) -> Arc<dyn SourceConnector> {
    match registry().validate(config).expect("valid config").connector {
        Connector::Source(s) => s,
        Connector::Sink(_) => panic!("source expected"),
    }
}

async fn open(
    src: &Arc<dyn SourceConnector>,
    offsets: Vec<StoredOffset>,
) -> Result<Box<dyn SourceTask>, tributary_runtime::error::ConnectorError> {
    src.open_task(SourceTaskContext {
        connector: Arc::from("resume"),
        task_id: 0,
        offsets,
        progress: ProgressHandle::new(),
        value_modes: src.value_modes(),
    })
    .await
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

async fn poll_until(
    task: &mut Box<dyn SourceTask>,
    mut done: impl FnMut(&[SourceRecord]) -> bool,
) -> Result<Vec<SourceRecord>> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut out = Vec::new();
    while !done(&out) {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "timed out with {} records",
            out.len()
        );
        out.extend(task.poll().await?);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_resumes_exactly_without_loss_or_duplicates() -> Result<()> {
    let env = test_env();
    let mut admin = admin(&env).await?;
    let db = fresh_db(&mut admin, "myrestart").await?;
    admin
        .query_drop(format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT)"))
        .await?;
    let dir = tempfile::tempdir()?;
    let topic = format!("{db}.{db}.t");
    {
        let worker = start_worker(dir.path()).await?;
        worker
            .put_config(connector_config(&env, "restart", &db, &[]))
            .await?;
        wait_streaming(&worker, "restart", &mut admin, &db).await?;
        for batch in 0..10 {
            let values: Vec<String> = (1..=10)
                .map(|i| format!("({}, {i})", batch * 10 + i))
                .collect();
            admin
                .query_drop(format!("INSERT INTO {db}.t VALUES {}", values.join(",")))
                .await?;
        }
        wait_for(&worker, "restart", &topic, DEADLINE, |r| r.len() >= 100).await?;
        worker.shutdown().await;
    }
    // Written while the connector is down.
    for batch in 10..20 {
        let values: Vec<String> = (1..=10)
            .map(|i| format!("({}, {i})", batch * 10 + i))
            .collect();
        admin
            .query_drop(format!("INSERT INTO {db}.t VALUES {}", values.join(",")))
            .await?;
    }
    let worker = start_worker(dir.path()).await?;
    let records = wait_for(&worker, "restart", &topic, DEADLINE, |r| r.len() >= 200).await?;
    // Give a duplicate the chance to show up.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let records =
        read_topic(&worker, &topic).map(|r| if r.len() >= records.len() { r } else { records })?;
    let mut ids: Vec<i64> = records
        .iter()
        .filter_map(|r| r.after().and_then(|a| a["id"].as_i64()))
        .collect();
    assert_eq!(ids.len(), 200, "no duplicates");
    ids.sort_unstable();
    assert_eq!(ids, (1..=200).collect::<Vec<_>>());
    worker.shutdown().await;
    admin.query_drop(format!("DROP DATABASE {db}")).await?;
    Ok(())
}

/// An offset inside a transaction resumes at its first event and skips the rows already
/// delivered: the transaction is neither split nor repeated.
#[tokio::test(flavor = "multi_thread")]
async fn resume_inside_a_transaction_skips_delivered_rows() -> Result<()> {
    let env = test_env();
    let mut admin = admin(&env).await?;
    let db = fresh_db(&mut admin, "mymidtx").await?;
    admin
        .query_drop(format!("CREATE TABLE {db}.t (id INT PRIMARY KEY)"))
        .await?;
    let config = connector_config(&env, "midtx", &db, &[("snapshot.mode", "no_data")]);
    let src = source(&config);
    let mut task = open(&src, Vec::new()).await?;
    admin
        .query_drop(format!(
            "START TRANSACTION; INSERT INTO {db}.t SELECT seq FROM {db}.seq_1_to_10; \
             INSERT INTO {db}.t VALUES (11); COMMIT; INSERT INTO {db}.t VALUES (12)"
        ))
        .await?;
    let first = poll_until(&mut task, |r| ids(r).len() >= 12).await?;
    task.close().await;
    // Without the schema-change records of the start (include.schema.changes).
    let first: Vec<SourceRecord> = first
        .into_iter()
        .filter(|r| matches!(r.payload, Payload::Change(_)))
        .collect();
    assert_eq!(ids(&first), (1..=12).collect::<Vec<_>>());
    // The ten-row INSERT is one rows event: only its last record carries the offset.
    assert!(
        first[..9].iter().all(|r| r.offset.is_none()),
        "rows inside an event carry no offset"
    );
    let tenth = &first[9];
    let offset = tenth
        .offset
        .clone()
        .expect("an event's last row carries the offset");
    assert_eq!(offset.value["row"], 10, "{}", offset.value);

    // Resuming after the event's last row: the rest of the transaction, then the next one.
    let after_event = StoredOffset {
        partition: tenth.partition.clone(),
        offset: offset.clone(),
    };
    let mut task = open(&src, vec![after_event]).await?;
    let rest = poll_until(&mut task, |r| ids(r).len() >= 2).await?;
    task.close().await;
    assert_eq!(ids(&rest), vec![11, 12]);

    // A position inside an event (as an offset written per row, e.g. by an older version,
    // says): the skip counts rows, not events.
    let mut inside = offset;
    inside.value["row"] = serde_json::json!(4);
    let stored = StoredOffset {
        partition: tenth.partition.clone(),
        offset: inside,
    };
    let mut task = open(&src, vec![stored.clone()]).await?;
    let rest = poll_until(&mut task, |r| ids(r).len() >= 8).await?;
    task.close().await;
    assert_eq!(ids(&rest), (5..=12).collect::<Vec<_>>());

    // The same by file/position (no GTID state in the offset).
    let mut by_pos = stored;
    if let Some(o) = by_pos.offset.value.as_object_mut() {
        o.remove("gtids");
    }
    let mut task = open(&src, vec![by_pos]).await?;
    let rest = poll_until(&mut task, |r| ids(r).len() >= 8).await?;
    task.close().await;
    assert_eq!(ids(&rest), (5..=12).collect::<Vec<_>>());
    admin.query_drop(format!("DROP DATABASE {db}")).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn transaction_of_100k_rows_streams_completely() -> Result<()> {
    let env = test_env();
    let mut admin = admin(&env).await?;
    let db = fresh_db(&mut admin, "mybigtx").await?;
    admin
        .query_drop(format!(
            "CREATE TABLE {db}.t (id INT PRIMARY KEY, note VARCHAR(30))"
        ))
        .await?;
    let config = connector_config(&env, "bigtx", &db, &[("snapshot.mode", "no_data")]);
    let src = source(&config);
    let mut task = open(&src, Vec::new()).await?;
    admin
        .query_drop(format!(
            "INSERT INTO {db}.t SELECT seq, CONCAT('row ', seq) FROM {db}.seq_1_to_100000"
        ))
        .await?;
    let mut count = 0usize;
    let mut last_id = 0;
    let mut last_offset = None;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    while count < 100_000 {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "only {count} rows");
        let batch = task.poll().await?;
        for id in ids(&batch) {
            assert_eq!(id, last_id + 1, "rows in order, none lost or doubled");
            last_id = id;
            count += 1;
        }
        if let Some(o) = batch.iter().rev().find_map(|r| r.offset.clone()) {
            last_offset = Some(o);
        }
    }
    task.close().await;
    let o = last_offset.expect("offset");
    assert_eq!(o.value["row"], 100_000, "{}", o.value);
    admin.query_drop(format!("DROP DATABASE {db}")).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn purged_binlog_gives_a_clear_error_or_a_new_snapshot() -> Result<()> {
    let env = test_env();
    let mut admin = admin(&env).await?;
    let db = fresh_db(&mut admin, "mypurged").await?;
    admin
        .query_drop(format!("CREATE TABLE {db}.t (id INT PRIMARY KEY)"))
        .await?;
    admin
        .query_drop(format!("INSERT INTO {db}.t VALUES (1)"))
        .await?;
    let config = connector_config(&env, "purged", &db, &[]);
    let src = source(&config);
    let partition =
        tributary_runtime::record::SourcePartition::from_json(&serde_json::json!({"server": db}));
    let gone = StoredOffset {
        partition: partition.clone(),
        offset: tributary_runtime::record::SourceOffset {
            value: serde_json::json!({"file": "binlog.000000", "pos": 4, "row": 0}),
            order: tributary_runtime::record::OffsetOrder([0, 4, 0]),
        },
    };
    let err = match open(&src, vec![gone.clone()]).await {
        Ok(_) => panic!("a purged position must not open"),
        Err(e) => e,
    };
    assert!(
        err.message.contains("binlog.000000") && err.message.contains("purged"),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("snapshot.mode=when_needed"),
        "{}",
        err.message
    );
    assert_eq!(err.kind, tributary_runtime::error::ErrorKind::Definite);

    let config = connector_config(&env, "purged", &db, &[("snapshot.mode", "when_needed")]);
    let src = source(&config);
    let mut task = open(&src, vec![gone]).await?;
    let is_change = |r: &SourceRecord| matches!(r.payload, Payload::Change(_));
    let records = poll_until(&mut task, |r| r.iter().any(is_change)).await?;
    task.close().await;
    // The snapshot's schema-change records (include.schema.changes) come first.
    match records.iter().find(|r| is_change(r)).map(|r| &r.payload) {
        Some(Payload::Change(e)) => {
            assert_eq!(e.op.code(), "r", "when_needed takes a new snapshot")
        }
        other => panic!("unexpected {other:?}"),
    }
    admin.query_drop(format!("DROP DATABASE {db}")).await?;
    Ok(())
}
