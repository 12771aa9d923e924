//! The watermark reconciliation of a resumed snapshot, driven directly: rows changed while a
//! chunk is read are taken from the stream, not from the chunk.

use std::collections::BTreeMap;
use std::time::Duration;

use tributary_runtime::model::{Op, Value};
use tributary_runtime::record::{OffsetOrder, Payload, SourceOffset, SourcePartition};

use super::*;

/// `(op, id, v)` of a change record.
fn event(r: &SourceRecord) -> Option<(Op, i64, Option<i64>)> {
    let Payload::Change(e) = &r.payload else {
        return None;
    };
    let row = e.after.as_ref().or(e.before.as_ref())?;
    let int = |v: Option<&Value>| match v {
        Some(Value::Int(i)) => Some(*i),
        _ => None,
    };
    Some((e.op, int(row.0.first())?, int(row.0.get(1))))
}

/// A task resumes a snapshot (offset with `snapshot_progress`, nothing read yet) while the
/// first chunk's SELECT is held by a gate; rows updated and deleted after the SELECT's
/// snapshot, before its high watermark, come from the stream only; every other row is read
/// exactly once; the last offset no longer carries progress.
#[tokio::test]
async fn changes_inside_a_window_replace_the_chunk_rows() {
    let db = TestDb::create(
        "pgwindow",
        &format!(
            "CREATE TABLE w (id int PRIMARY KEY, v int);
             INSERT INTO w SELECT g, 0 FROM generate_series(1, 1000) g;
             {}",
            read_gate_sql("w", 4243)
        ),
    )
    .await;
    db.publish_all().await;
    let lsn: i64 = db
        .admin
        .query_one(
            "SELECT (lsn - '0/0')::int8 FROM pg_create_logical_replication_slot($1, 'pgoutput')",
            &[&db.slot],
        )
        .await
        .expect("create slot")
        .get(0);
    let offset = StoredOffset {
        partition: SourcePartition::from_json(&serde_json::json!({"server": "srv"})),
        offset: SourceOffset {
            value: serde_json::json!({
                "lsn": lsn,
                "snapshot": true,
                "last_snapshot_record": false,
                "snapshot_progress": {"done": [], "after": []},
            }),
            order: OffsetOrder([lsn as u64, 0, 1]),
        },
    };
    let gate = connect(&crate::env::with_database(&test_env().pg_url, &db.name)).await;
    gate.batch_execute("SELECT pg_advisory_lock(4243)")
        .await
        .expect("close the gate");
    let src = source(db.config(&[("snapshot.fetch.size", "300")]));
    let mut task = open(&src, vec![offset]).await.expect("open task");
    let poller = tokio::spawn(async move {
        let records = poll_until(
            task.as_mut(),
            "the resumed snapshot and the changes",
            Duration::from_secs(60),
            |all| {
                let ev: Vec<_> = all.iter().filter_map(event).collect();
                ev.iter().any(|(op, id, _)| *op == Op::Read && *id == 1000)
                    && ev.iter().filter(|(op, _, _)| *op == Op::Update).count() == 10
                    && ev.iter().any(|(op, _, _)| *op == Op::Delete)
            },
        )
        .await;
        task.close().await;
        records
    });
    wait_for(
        "the first chunk's SELECT to wait at the gate",
        Duration::from_secs(30),
        || async {
            db.admin
                .query_one(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4243 \
                     AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                     AND NOT granted",
                    &[],
                )
                .await
                .map(|r| r.get::<_, i64>(0) > 0)
                .unwrap_or(false)
        },
    )
    .await;
    db.admin
        .batch_execute(
            "UPDATE w SET v = 99 WHERE id <= 10;
             DELETE FROM w WHERE id = 20;",
        )
        .await
        .expect("changes inside the window");
    gate.batch_execute("SELECT pg_advisory_unlock(4243)")
        .await
        .expect("open the gate");
    let records = poller.await.expect("poller");

    let events: Vec<_> = records.iter().filter_map(event).collect();
    let mut reads: BTreeMap<i64, usize> = BTreeMap::new();
    for (op, id, _) in &events {
        if *op == Op::Read {
            *reads.entry(*id).or_insert(0) += 1;
        }
    }
    let expected: Vec<i64> = (11..=1000).filter(|id| *id != 20).collect();
    assert_eq!(
        reads.keys().copied().collect::<Vec<_>>(),
        expected,
        "rows changed inside the window are not read"
    );
    assert!(reads.values().all(|n| *n == 1), "every row read once");
    // The stream's events for the changed rows come before the chunk's reads.
    let first_read = events.iter().position(|(op, _, _)| *op == Op::Read);
    let last_change = events.iter().rposition(|(op, _, _)| *op != Op::Read);
    assert!(
        last_change < first_read,
        "changes precede the chunk: {:?}",
        &events[..events.len().min(15)]
    );
    assert!(
        events
            .iter()
            .filter(|(op, _, _)| *op == Op::Update)
            .all(|(_, id, v)| *id <= 10 && *v == Some(99))
    );
    let last = last_offset(&records).expect("an offset");
    assert!(
        last.offset.value.get("snapshot_progress").is_none(),
        "finished: {}",
        last.offset.value
    );
    db.cleanup().await;
}
