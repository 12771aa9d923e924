//! Snapshot, streaming, offsets and acknowledgement with the task driven directly.

use std::time::Duration;

use tributary_runtime::model::{Op, SnapshotMarker, Value};
use tributary_runtime::record::Payload;

use super::*;

fn change(r: &SourceRecord) -> Option<&tributary_runtime::model::ChangeEvent> {
    match &r.payload {
        Payload::Change(e) => Some(e),
        _ => None,
    }
}

fn ops(records: &[SourceRecord]) -> Vec<&'static str> {
    records
        .iter()
        .map(|r| match &r.payload {
            Payload::Change(e) => e.op.code(),
            Payload::Tombstone { .. } => "tombstone",
            Payload::Row { .. } => "row",
            Payload::Json { .. } => "json",
        })
        .collect()
}

#[tokio::test]
async fn snapshot_then_stream_with_exact_acks() {
    let db = TestDb::create(
        "pgstream",
        "CREATE TABLE orders (id int PRIMARY KEY, name text, amount numeric(10,2));
         INSERT INTO orders VALUES (1, 'a', 1.50), (2, 'b', 2.00), (3, 'c', NULL);",
    )
    .await;
    db.publish_all().await;
    let src = source(db.config(&[]));
    src.check()
        .await
        .unwrap_or_else(|e| panic!("check: {}", e.trace()));
    let mut task = open(&src, vec![]).await.expect("open");
    let snap = poll_until(task.as_mut(), "snapshot", Duration::from_secs(20), |r| {
        r.len() >= 3
    })
    .await;
    assert_eq!(ops(&snap), vec!["r", "r", "r"]);
    let markers: Vec<SnapshotMarker> = snap
        .iter()
        .map(|r| change(r).unwrap().source.snapshot)
        .collect();
    assert_eq!(
        markers,
        vec![
            SnapshotMarker::First,
            SnapshotMarker::True,
            SnapshotMarker::Last
        ]
    );
    assert_eq!(&*snap[0].topic, "srv.public.orders");
    let e = change(&snap[0]).unwrap();
    assert_eq!(e.table.key, vec![0]);
    assert_eq!(e.after.as_ref().unwrap().0[0], Value::Int(1));
    let snap_offset = last_offset(&snap).expect("snapshot offset");
    assert_eq!(snap_offset.offset.value["last_snapshot_record"], true);
    let consistent = db.confirmed_flush().await.expect("slot");

    db.admin
        .batch_execute(
            "BEGIN; INSERT INTO orders VALUES (4, 'd', 4.00); UPDATE orders SET name = 'bb' WHERE id = 2;
             DELETE FROM orders WHERE id = 1; COMMIT;
             INSERT INTO orders VALUES (5, 'e', 5.00);",
        )
        .await
        .expect("changes");
    let stream = poll_until(task.as_mut(), "stream", Duration::from_secs(20), |r| {
        r.len() >= 5
    })
    .await;
    assert_eq!(ops(&stream), vec!["c", "u", "d", "tombstone", "c"]);
    // Only the last record of each transaction carries an offset.
    let with_offset: Vec<bool> = stream.iter().map(|r| r.offset.is_some()).collect();
    assert_eq!(with_offset, vec![false, false, false, true, true]);
    let first_txn = StoredOffset {
        partition: stream[3].partition.clone(),
        offset: stream[3].offset.clone().unwrap(),
    };
    let lsn = first_txn.offset.value["lsn"].as_u64().unwrap();
    assert!(lsn > consistent);
    let d = change(&stream[2]).unwrap();
    assert_eq!(d.op, Op::Delete);
    // DEFAULT identity: the old row carries the key only.
    assert_eq!(
        d.before.as_ref().unwrap().0,
        vec![Value::Int(1), Value::Null, Value::Null]
    );
    assert_eq!(d.source.extra[1].0, "txId");

    // Nothing is confirmed before commit() ...
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(db.confirmed_flush().await, Some(consistent));
    // ... and exactly the committed LSN after it.
    task.commit(&[first_txn]).await.expect("commit");
    wait_for(
        "confirmed_flush_lsn = committed",
        Duration::from_secs(10),
        || async { db.confirmed_flush().await == Some(lsn) },
    )
    .await;
    task.close().await;

    // A restart from the first transaction's offset re-delivers only the second one.
    let resume = StoredOffset {
        partition: stream[3].partition.clone(),
        offset: stream[3].offset.clone().unwrap(),
    };
    let mut task = open(&src, vec![resume]).await.expect("reopen");
    let again = poll_until(task.as_mut(), "resume", Duration::from_secs(20), |r| {
        !r.is_empty()
    })
    .await;
    assert_eq!(ops(&again), vec!["c"]);
    assert_eq!(
        change(&again[0]).unwrap().after.as_ref().unwrap().0[0],
        Value::Int(5)
    );
    task.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn toast_with_default_and_full_identity() {
    let db = TestDb::create(
        "pgtoast",
        "CREATE TABLE d (id int PRIMARY KEY, big text, n int);
         CREATE TABLE f (id int PRIMARY KEY, big text, n int);
         ALTER TABLE f REPLICA IDENTITY FULL;
         ALTER TABLE d ALTER COLUMN big SET STORAGE EXTERNAL;
         ALTER TABLE f ALTER COLUMN big SET STORAGE EXTERNAL;",
    )
    .await;
    db.publish_all().await;
    let src = source(db.config(&[("snapshot.mode", "no_data")]));
    let mut task = open(&src, vec![]).await.expect("open");
    db.admin
        .batch_execute(
            "INSERT INTO d VALUES (1, repeat('x', 10000), 1); INSERT INTO f VALUES (1, repeat('y', 10000), 1);
             UPDATE d SET n = 2; UPDATE f SET n = 2;",
        )
        .await
        .expect("changes");
    let recs = poll_until(task.as_mut(), "toast", Duration::from_secs(20), |r| {
        r.len() >= 4
    })
    .await;
    let d_update = change(&recs[2]).unwrap();
    assert_eq!(d_update.op, Op::Update);
    assert_eq!(d_update.after.as_ref().unwrap().0[1], Value::Unavailable);
    let f_update = change(&recs[3]).unwrap();
    // FULL identity: the old row supplies the unchanged TOAST value.
    assert_eq!(
        f_update.after.as_ref().unwrap().0[1],
        Value::Text("y".repeat(10000))
    );
    assert_eq!(f_update.before.as_ref().unwrap().0[2], Value::Int(1));
    task.close().await;
    db.cleanup().await;
}

/// A 3000-row table whose snapshot is cut off (task dropped: no close, no commit) after its
/// first chunk of 1000; returns the database, the source, the offset of that chunk and the
/// slot's confirmed LSN.
async fn snapshot_cut_after_one_chunk(
    prefix: &str,
) -> (TestDb, Arc<dyn SourceConnector>, StoredOffset, u64) {
    let db = TestDb::create(
        prefix,
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, 'x' FROM generate_series(1, 3000) g;",
    )
    .await;
    db.publish_all().await;
    let src = source(db.config(&[("snapshot.fetch.size", "1000")]));
    let mut task = open(&src, vec![]).await.expect("open");
    let first = poll_until(task.as_mut(), "first chunk", Duration::from_secs(20), |r| {
        last_offset(r).is_some()
    })
    .await;
    assert!(first.len() < 3000, "one chunk at a time");
    let partial = last_offset(&first).expect("offset");
    assert_eq!(partial.offset.value["snapshot"], true);
    assert_eq!(partial.offset.value["last_snapshot_record"], false);
    let slot_point = db.confirmed_flush().await.expect("slot");
    drop(task);
    wait_for("old walsender gone", Duration::from_secs(10), || async {
        db.slot_active_pid().await.is_none()
    })
    .await;
    (db, src, partial, slot_point)
}

#[tokio::test]
async fn restart_mid_snapshot_without_progress_takes_a_new_snapshot() {
    let (db, src, mut partial, old_slot_point) = snapshot_cut_after_one_chunk("pgmidsnap").await;
    // An offset written before snapshots recorded their progress.
    let progress = partial
        .offset
        .value
        .as_object_mut()
        .and_then(|o| o.remove("snapshot_progress"));
    assert!(progress.is_some(), "{}", partial.offset.value);
    db.admin
        .batch_execute("INSERT INTO t VALUES (3001, 'during the outage')")
        .await
        .expect("insert");
    let mut task = open(&src, vec![partial]).await.expect("reopen");
    let all = poll_until(
        task.as_mut(),
        "full snapshot",
        Duration::from_secs(30),
        |r| r.len() >= 3001,
    )
    .await;
    assert!(
        all.iter()
            .all(|r| change(r).is_some_and(|e| e.op == Op::Read))
    );
    assert_eq!(
        change(&all[0]).unwrap().source.snapshot,
        SnapshotMarker::First
    );
    assert!(db.confirmed_flush().await.expect("new slot") > old_slot_point);
    task.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn transaction_metadata_messages_truncate_and_custom_keys() {
    let db = TestDb::create(
        "pgmeta",
        "CREATE TABLE nokey (a int, b text); ALTER TABLE nokey REPLICA IDENTITY FULL;
         CREATE TABLE k (id int PRIMARY KEY);",
    )
    .await;
    db.publish_all().await;
    let src = source(db.config(&[
        ("snapshot.mode", "no_data"),
        ("provide.transaction.metadata", "true"),
        ("message.key.columns", "public.nokey:b"),
        ("skipped.operations", "none"),
        ("tombstones.on.delete", "false"),
    ]));
    let mut task = open(&src, vec![]).await.expect("open");
    db.admin
        .batch_execute(
            "BEGIN; INSERT INTO nokey VALUES (1, 'one'); INSERT INTO k VALUES (7);
             SELECT pg_logical_emit_message(true, 'app', 'hello'); COMMIT;
             TRUNCATE k;",
        )
        .await
        .expect("changes");
    let recs = poll_until(task.as_mut(), "metadata", Duration::from_secs(20), |r| {
        r.iter()
            .any(|r| change(r).is_some_and(|e| e.op == Op::Truncate))
    })
    .await;
    let topics: Vec<&str> = recs.iter().map(|r| &*r.topic).collect();
    assert_eq!(
        topics,
        vec![
            "srv.transaction",
            "srv.public.nokey",
            "srv.public.k",
            "srv.message",
            "srv.transaction",
            "srv.transaction",
            "srv.public.k",
            "srv.transaction",
        ]
    );
    let Payload::Json { value: begin, .. } = &recs[0].payload else {
        panic!("begin")
    };
    assert_eq!(begin["status"], "BEGIN");
    let Payload::Json { value: end, .. } = &recs[4].payload else {
        panic!("end")
    };
    assert_eq!(end["status"], "END");
    assert_eq!(end["event_count"], 2);
    assert!(
        recs[4].offset.is_some(),
        "END carries the transaction's offset"
    );
    let nokey = change(&recs[1]).unwrap();
    assert_eq!(nokey.table.key, vec![1], "message.key.columns picks b");
    let t = nokey.transaction.as_ref().expect("transaction block");
    assert_eq!((t.total_order, t.data_collection_order), (1, 1));
    let Payload::Json { value: msg, .. } = &recs[3].payload else {
        panic!("message")
    };
    assert_eq!(msg["op"], "m");
    assert_eq!(msg["message"]["prefix"], "app");
    assert_eq!(msg["message"]["content"], "aGVsbG8=");
    task.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn snapshot_chunks_by_composite_key_and_without_key() {
    let db = TestDb::create(
        "pgchunks",
        "CREATE TABLE ck (a text, b int, v int, PRIMARY KEY (a, b));
         INSERT INTO ck SELECT 'k''' || (g % 7), g, g FROM generate_series(1, 2500) g;
         CREATE TABLE nk (v int); ALTER TABLE nk REPLICA IDENTITY FULL;
         INSERT INTO nk SELECT g FROM generate_series(1, 1500) g;",
    )
    .await;
    db.publish_all().await;
    let src = source(db.config(&[("snapshot.fetch.size", "1000")]));
    let mut task = open(&src, vec![]).await.expect("open");
    let all = poll_until(task.as_mut(), "snapshot", Duration::from_secs(30), |r| {
        r.len() >= 4000
    })
    .await;
    let mut ck = std::collections::BTreeSet::new();
    let mut nk = std::collections::BTreeSet::new();
    for r in &all {
        let e = change(r).expect("change");
        let row = &e.after.as_ref().expect("after").0;
        match &*r.topic {
            "srv.public.ck" => assert!(ck.insert(row[1].as_i64()), "duplicate {:?}", row[1]),
            "srv.public.nk" => assert!(nk.insert(row[0].as_i64()), "duplicate {:?}", row[0]),
            other => panic!("unexpected topic {other}"),
        }
    }
    assert_eq!((ck.len(), nk.len()), (2500, 1500));
    assert_eq!(
        change(all.last().expect("last")).unwrap().source.snapshot,
        SnapshotMarker::Last
    );
    task.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn schema_change_mid_stream_gives_a_new_version() {
    let db = TestDb::create("pgddl", "CREATE TABLE t (id int PRIMARY KEY, a text);").await;
    db.publish_all().await;
    let src = source(db.config(&[
        ("snapshot.mode", "no_data"),
        ("column.exclude.list", "public.t.secret"),
    ]));
    let mut task = open(&src, vec![]).await.expect("open");
    db.admin
        .batch_execute(
            "INSERT INTO t VALUES (1, 'x');
             ALTER TABLE t ADD COLUMN n numeric(5,1) NOT NULL DEFAULT 1.5, ADD COLUMN secret text;
             INSERT INTO t VALUES (2, 'y', 2.5, 'hidden');",
        )
        .await
        .expect("ddl");
    let recs = poll_until(task.as_mut(), "two inserts", Duration::from_secs(20), |r| {
        r.len() >= 2
    })
    .await;
    let (v1, v2) = (change(&recs[0]).unwrap(), change(&recs[1]).unwrap());
    assert_eq!(v1.table.version, 1);
    assert_eq!(v2.table.version, 2);
    let names: Vec<&str> = v2.table.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["id", "a", "n"], "secret is excluded");
    assert!(!v2.table.columns[2].nullable);
    assert_eq!(
        v2.after.as_ref().unwrap().0[2],
        Value::Decimal(tributary_runtime::model::Decimal::parse("2.5").unwrap())
    );
    task.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn restart_mid_snapshot_goes_on_after_the_committed_chunk() {
    let (db, src, partial, slot_point) = snapshot_cut_after_one_chunk("pgmidsnap2").await;
    assert_eq!(
        partial.offset.value["snapshot_progress"],
        serde_json::json!({"done": [], "after": [[["public", "t"], ["1000"]]]})
    );
    db.admin
        .batch_execute(
            "INSERT INTO t VALUES (3001, 'during the outage'); UPDATE t SET v = 'y' WHERE id = 5",
        )
        .await
        .expect("changes");
    let mut task = open(&src, vec![partial]).await.expect("reopen");
    let all = poll_until(
        task.as_mut(),
        "the rest of the snapshot",
        Duration::from_secs(30),
        |r| {
            r.iter()
                .filter_map(change)
                .any(|e| e.op == Op::Read && e.after.as_ref().unwrap().0[0] == Value::Int(3001))
        },
    )
    .await;
    let id = |e: &tributary_runtime::model::ChangeEvent| match e.after.as_ref().unwrap().0[0] {
        Value::Int(i) => i,
        ref v => panic!("id {v:?}"),
    };
    let reads: Vec<i64> = all
        .iter()
        .filter_map(change)
        .filter(|e| e.op == Op::Read)
        .map(id)
        .collect();
    assert_eq!(
        reads,
        (1001..=3001).collect::<Vec<_>>(),
        "the first chunk is not read again"
    );
    // The stream from the slot's position carries what changed during the outage, first.
    let streamed: Vec<(Op, i64)> = all
        .iter()
        .filter_map(change)
        .filter(|e| e.op != Op::Read)
        .map(|e| (e.op, id(e)))
        .collect();
    assert_eq!(streamed, vec![(Op::Create, 3001), (Op::Update, 5)]);
    assert!(matches!(all.iter().filter_map(change).next(), Some(e) if e.op == Op::Create));
    // Same slot, never recreated (a new one would start past the outage's changes; nothing
    // was acknowledged to this one).
    assert_eq!(db.confirmed_flush().await.expect("same slot"), slot_point);
    let last = last_offset(&all).expect("offset");
    assert!(
        last.offset.value.get("snapshot_progress").is_none(),
        "{}",
        last.offset.value
    );
    task.close().await;
    db.cleanup().await;
}

/// A slot whose confirmed position is past the stored offset was re-created or moved by
/// someone else: streaming from it would skip changes silently, so the task refuses it, and
/// `when_needed` takes a new snapshot instead.
#[tokio::test]
async fn a_slot_moved_past_the_offsets_is_refused() {
    let db = TestDb::create(
        "pgslotahead",
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');",
    )
    .await;
    db.publish_all().await;
    let src = source(db.config(&[("snapshot.fetch.size", "10")]));
    let mut task = open(&src, vec![]).await.expect("open");
    let snapshot = poll_until(task.as_mut(), "snapshot", Duration::from_secs(20), |r| {
        last_offset(r).is_some_and(|o| o.offset.value["last_snapshot_record"] == true)
    })
    .await;
    let offset = last_offset(&snapshot).expect("offset");
    task.close().await;
    wait_for("walsender gone", Duration::from_secs(10), || async {
        db.slot_active_pid().await.is_none()
    })
    .await;
    // Another consumer takes changes from the slot.
    db.admin
        .batch_execute("INSERT INTO t VALUES (2, 'missed')")
        .await
        .expect("insert");
    db.admin
        .query_one(
            "SELECT pg_replication_slot_advance($1, pg_current_wal_lsn())",
            &[&db.slot],
        )
        .await
        .expect("advance the slot");
    let err = match open(&src, vec![offset.clone()]).await {
        Ok(_) => panic!("a slot past the offsets was accepted"),
        Err(e) => e.trace(),
    };
    assert!(
        err.contains("past the connector's offset") && err.contains("snapshot.mode=when_needed"),
        "{err}"
    );
    let src = source(db.config(&[("snapshot.mode", "when_needed")]));
    let mut task = open(&src, vec![offset]).await.expect("when_needed reopens");
    let again = poll_until(
        task.as_mut(),
        "a new snapshot",
        Duration::from_secs(20),
        |r| {
            r.iter()
                .filter_map(change)
                .filter(|e| e.op == Op::Read)
                .count()
                == 2
        },
    )
    .await;
    assert!(again.iter().filter_map(change).all(|e| e.op == Op::Read));
    task.close().await;
    db.cleanup().await;
}
