//! Through the worker: restart, big transactions, snapshot under load, lost slots.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::*;

const TOPIC: &str = "srv.public.t";

async fn put(worker: &Arc<Worker>, raw: RawConfig) {
    worker
        .put_config(ConnectorConfig {
            name: "pg".into(),
            config: raw,
        })
        .await
        .expect("put config");
}

async fn wait_count(
    worker: &Worker,
    n: usize,
    timeout: Duration,
) -> Vec<Option<serde_json::Value>> {
    let deadline = Instant::now() + timeout;
    loop {
        let values = read_topic(worker, TOPIC);
        if values.len() >= n {
            return values;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out waiting for {n} records on {TOPIC}, have {}; task trace: {:?}",
                values.len(),
                task_trace(worker, "pg").await
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn restart_resumes_exactly_where_it_stopped() {
    let db = TestDb::create(
        "pgresume",
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, 'snap' FROM generate_series(1, 100) g;",
    )
    .await;
    db.publish_all().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let worker = start_worker(dir.path()).await;
    put(&worker, db.config(&[])).await;
    wait_count(&worker, 100, Duration::from_secs(30)).await;
    for i in 0..5 {
        db.admin
            .batch_execute(&format!(
                "INSERT INTO t SELECT g, 'live' FROM generate_series({}, {}) g",
                101 + i * 10,
                110 + i * 10
            ))
            .await
            .expect("insert");
    }
    wait_count(&worker, 150, Duration::from_secs(30)).await;
    worker.shutdown().await;
    drop(worker);
    // Changes while the connector is down.
    db.admin
        .batch_execute("INSERT INTO t SELECT g, 'down' FROM generate_series(151, 180) g; UPDATE t SET v = 'upd' WHERE id = 1")
        .await
        .expect("insert while down");
    let worker = start_worker(dir.path()).await;
    let values = wait_count(&worker, 181, Duration::from_secs(30)).await;
    // Let anything extra arrive, then check there is no duplicate and no gap.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let values = if read_topic(&worker, TOPIC).len() > values.len() {
        read_topic(&worker, TOPIC)
    } else {
        values
    };
    assert_eq!(
        values.len(),
        181,
        "a graceful stop drains and commits: no duplicates"
    );
    let state = apply_events(&values);
    assert_eq!(state.len(), 180);
    assert_eq!(state[&1]["v"], "upd");
    let ids: Vec<i64> = values
        .iter()
        .flatten()
        .filter(|v| v["op"] != "u")
        .map(|v| v["after"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids,
        (1..=180).collect::<Vec<_>>(),
        "in commit order, each once"
    );
    worker.shutdown().await;
    db.cleanup().await;
}

#[tokio::test]
async fn hundred_thousand_row_transaction() {
    let db = TestDb::create("pgbig", "CREATE TABLE t (id int PRIMARY KEY, v text);").await;
    db.publish_all().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let worker = start_worker(dir.path()).await;
    put(&worker, db.config(&[("snapshot.mode", "no_data")])).await;
    wait_for("slot active", Duration::from_secs(20), || async {
        db.slot_active_pid().await.is_some() && db.confirmed_flush().await.is_some()
    })
    .await;
    let start = db.confirmed_flush().await.expect("slot");
    db.admin
        .batch_execute("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 100000) g")
        .await
        .expect("big insert");
    let values = wait_count(&worker, 100_000, Duration::from_secs(120)).await;
    assert_eq!(values.len(), 100_000);
    assert_eq!(apply_events(&values).len(), 100_000);
    // The whole transaction is acknowledged once durable.
    // The whole transaction is acknowledged once durable: the committed offset is past the
    // 100k rows of WAL and confirmed_flush_lsn reaches exactly it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stored = worker.offsets().load("pg").await.expect("offsets");
        let lsn = stored
            .first()
            .and_then(|o| o.offset.value["lsn"].as_u64())
            .unwrap_or(0);
        if lsn > start + 5_000_000 && db.confirmed_flush().await == Some(lsn) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "offset {lsn} / confirmed {:?} / start {start}",
            db.confirmed_flush().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.shutdown().await;
    db.cleanup().await;
}

#[tokio::test]
async fn snapshot_while_a_writer_runs_converges_to_the_table() {
    let db = TestDb::create(
        "pgsnapw",
        "CREATE TABLE t (id int PRIMARY KEY, v int);
         INSERT INTO t SELECT g, 0 FROM generate_series(1, 30000) g;",
    )
    .await;
    db.publish_all().await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer_db = crate::env::with_database(&test_env().pg_url, &db.name);
    let writer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let c = connect(&writer_db).await;
            let mut i: i64 = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let id = 1 + (i * 7919) % 40000;
                let sql = match i % 3 {
                    0 => format!(
                        "INSERT INTO t VALUES ({id}, {i}) ON CONFLICT (id) DO UPDATE SET v = {i}"
                    ),
                    1 => format!("UPDATE t SET v = {i} WHERE id = {id}"),
                    _ => format!("DELETE FROM t WHERE id = {id}"),
                };
                c.batch_execute(&sql).await.expect("writer");
            }
            i
        })
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let worker = start_worker(dir.path()).await;
    put(&worker, db.config(&[("snapshot.fetch.size", "1000")])).await;
    wait_count(&worker, 30000, Duration::from_secs(60)).await;
    stop.store(true, Ordering::Relaxed);
    let writes = writer.await.expect("writer task");
    assert!(
        writes > 100,
        "the writer ran during the snapshot ({writes} statements)"
    );
    let rows = db
        .admin
        .query("SELECT id, v FROM t", &[])
        .await
        .expect("table");
    let table: BTreeMap<i64, i64> = rows
        .iter()
        .map(|r| (i64::from(r.get::<_, i32>(0)), i64::from(r.get::<_, i32>(1))))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state: BTreeMap<i64, i64> = apply_events(&read_topic(&worker, TOPIC))
            .into_iter()
            .map(|(k, v)| (k, v["v"].as_i64().unwrap()))
            .collect();
        if state == table {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "consumed state ({} rows) never matched the table ({} rows)",
            state.len(),
            table.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    worker.shutdown().await;
    db.cleanup().await;
}

#[tokio::test]
async fn slot_dropped_underneath() {
    let db = TestDb::create(
        "pglost",
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');",
    )
    .await;
    db.publish_all().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let worker = start_worker(dir.path()).await;
    put(&worker, db.config(&[])).await;
    wait_count(&worker, 1, Duration::from_secs(30)).await;
    let before = db.confirmed_flush().await.expect("slot");
    db.admin
        .batch_execute("INSERT INTO t VALUES (2, 'b')")
        .await
        .expect("insert");
    wait_count(&worker, 2, Duration::from_secs(30)).await;
    // The streamed offset is committed (and acknowledged) before the slot goes away.
    wait_for("acknowledged", Duration::from_secs(20), || async {
        db.confirmed_flush().await.unwrap_or(0) > before
    })
    .await;
    let stored = worker.offsets().load("pg").await.expect("offsets");
    assert!(
        !stored.is_empty(),
        "offsets committed before the slot goes away"
    );
    // Kill the walsender and drop the slot before the task reconnects.
    let root = connect(&test_env().pg_url).await;
    wait_for("slot dropped", Duration::from_secs(20), || async {
        let _ = root
            .execute(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL",
                &[&db.slot],
            )
            .await;
        root.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
            &[&db.slot],
        )
        .await
        .is_ok()
            && db.confirmed_flush().await.is_none()
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = worker.status("pg").await.expect("status");
        let trace = status.tasks.first().and_then(|t| t.trace.clone());
        if trace
            .as_deref()
            .is_some_and(|t| t.contains("does not exist") && t.contains("when_needed"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "no clear slot error: {status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // when_needed takes a new snapshot instead.
    put(&worker, db.config(&[("snapshot.mode", "when_needed")])).await;
    let values = wait_count(&worker, 4, Duration::from_secs(60)).await;
    let resnap: Vec<&serde_json::Value> = values[2..].iter().flatten().collect();
    assert!(resnap.iter().all(|v| v["op"] == "r"), "{resnap:?}");
    worker.shutdown().await;
    db.cleanup().await;
}

/// `snapshot.max.threads=3` over four tables (one without a primary key): every row is read
/// exactly once, one record is marked `first` and one `last`, and the stream follows.
#[tokio::test]
async fn parallel_snapshot_reads_every_row_once() {
    let db = TestDb::create(
        "pgparsnap",
        "CREATE TABLE t1 (id int PRIMARY KEY, v int);
         CREATE TABLE t2 (id int PRIMARY KEY, v int);
         CREATE TABLE t3 (id int PRIMARY KEY, v int);
         CREATE TABLE t4 (id int, v int);
         ALTER TABLE t4 REPLICA IDENTITY FULL;
         INSERT INTO t1 SELECT g, 1 FROM generate_series(1, 3000) g;
         INSERT INTO t2 SELECT g, 2 FROM generate_series(1, 2500) g;
         INSERT INTO t3 SELECT g, 3 FROM generate_series(1, 10) g;
         INSERT INTO t4 SELECT g, 4 FROM generate_series(1, 1234) g;",
    )
    .await;
    db.publish_all().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let worker = start_worker(dir.path()).await;
    put(
        &worker,
        db.config(&[
            ("snapshot.max.threads", "3"),
            ("snapshot.fetch.size", "100"),
        ]),
    )
    .await;
    let expected = [("t1", 3000usize), ("t2", 2500), ("t3", 10), ("t4", 1234)];
    let deadline = Instant::now() + Duration::from_secs(60);
    while expected
        .iter()
        .any(|(t, n)| read_topic(&worker, &format!("srv.public.{t}")).len() < *n)
    {
        assert!(
            Instant::now() < deadline,
            "snapshot incomplete; task trace: {:?}",
            task_trace(&worker, "pg").await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    db.admin
        .batch_execute("INSERT INTO t3 VALUES (11, 33)")
        .await
        .expect("insert");
    wait_for(
        "the stream after the snapshot",
        Duration::from_secs(30),
        || async { read_topic(&worker, "srv.public.t3").len() == 11 },
    )
    .await;
    let mut markers = BTreeMap::new();
    for (t, n) in expected {
        let values = read_topic(&worker, &format!("srv.public.{t}"));
        let reads: Vec<&serde_json::Value> =
            values.iter().flatten().filter(|v| v["op"] == "r").collect();
        assert_eq!(reads.len(), n, "{t}: read events");
        let ids: std::collections::BTreeSet<i64> = reads
            .iter()
            .map(|v| v["after"]["id"].as_i64().expect("id"))
            .collect();
        assert_eq!(ids.len(), n, "{t}: every row once");
        assert_eq!(ids.iter().next_back(), Some(&(n as i64)), "{t}");
        for v in reads {
            *markers
                .entry(v["source"]["snapshot"].as_str().unwrap_or("?").to_owned())
                .or_insert(0usize) += 1;
        }
    }
    assert_eq!(markers.get("first"), Some(&1), "{markers:?}");
    assert_eq!(markers.get("last"), Some(&1), "{markers:?}");
    assert_eq!(
        markers.get("true"),
        Some(&(3000 + 2500 + 10 + 1234 - 2)),
        "{markers:?}"
    );
    worker.shutdown().await;
    db.cleanup().await;
}
