//! kill -9 of a worker process mid-stream and mid-snapshot, restarted on the same data
//! directory.
//!
//! The test binary re-runs itself as the worker process (`crash_child`, ignored when the
//! suite runs), so the kill is a real SIGKILL of a process holding the slot.

use std::collections::BTreeMap;
use std::process::{Child, Command};
use std::time::Duration;

use super::*;

const DIR_VAR: &str = "TRIB_PG_CRASH_DIR";
const CONFIG_VAR: &str = "TRIB_PG_CRASH_CONFIG";

/// The worker process of the kill tests: runs until killed, writing the connector's committed
/// offset to `<dir>/committed.json` every 20 ms (what the parent may rely on at the kill).
#[tokio::test]
#[ignore = "entry point of the child process of kill_dash_nine_mid_stream"]
async fn crash_child() {
    let (Ok(dir), Ok(config)) = (std::env::var(DIR_VAR), std::env::var(CONFIG_VAR)) else {
        panic!("crash_child is started by kill_dash_nine_mid_stream");
    };
    let raw: RawConfig = serde_json::from_str(&config).expect("config json");
    let worker = start_worker(Path::new(&dir)).await;
    worker
        .put_config(ConnectorConfig {
            name: "pg".into(),
            config: raw,
        })
        .await
        .expect("put config");
    let status = Path::new(&dir).join("committed.json");
    let tmp = Path::new(&dir).join("committed.json.tmp");
    loop {
        if let Ok(stored) = worker.offsets().load("pg").await
            && let Some(o) = stored.first()
        {
            let text = serde_json::to_string(&o.offset.value).expect("json");
            if std::fs::write(&tmp, text).is_ok() {
                let _ = std::fs::rename(&tmp, &status);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kills the child worker when dropped, so a failing assertion does not leave it running.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The child's output (its log lines, `RUST_LOG`) appended to `<dir>/child.log`.
fn child_log(dir: &Path) -> std::process::Stdio {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("child.log"))
        .map(std::process::Stdio::from)
        .unwrap_or_else(|_| std::process::Stdio::null())
}

fn spawn_child(dir: &Path, raw: &RawConfig) -> ChildGuard {
    let child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "pg::crash::crash_child",
            "--ignored",
            "--nocapture",
        ])
        .env(DIR_VAR, dir)
        .env(CONFIG_VAR, serde_json::to_string(raw).expect("json"))
        .env(
            "RUST_LOG",
            "tributary_postgres=debug,tributary_runtime=info",
        )
        .stdout(child_log(dir))
        .stderr(child_log(dir))
        .spawn()
        .expect("spawn child worker");
    ChildGuard(child)
}

#[tokio::test]
async fn kill_dash_nine_mid_stream() {
    let db = TestDb::create(
        "pgkill",
        "CREATE TABLE t (id int PRIMARY KEY, v int);
         INSERT INTO t SELECT g, 0 FROM generate_series(1, 2000) g;",
    )
    .await;
    db.publish_all().await;
    let raw = db.config(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    // A writer runs through every kill: 100-row transactions of inserts and updates.
    let writer_url = crate::env::with_database(&test_env().pg_url, &db.name);
    let writer = tokio::spawn(async move {
        let c = connect(&writer_url).await;
        for i in 0..200 {
            let base = 2001 + i * 100;
            c.batch_execute(&format!(
                "BEGIN; INSERT INTO t SELECT g, {i} FROM generate_series({base}, {}) g;
                 UPDATE t SET v = {i} WHERE id % 97 = {};
                 COMMIT;",
                base + 99,
                i % 97
            ))
            .await
            .expect("writer");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    for round in 0..3 {
        let mut child = spawn_child(dir.path(), &raw);
        let before = db.confirmed_flush().await.unwrap_or(0);
        wait_for(
            "the child acknowledges new changes",
            Duration::from_secs(60),
            || async { db.confirmed_flush().await.unwrap_or(0) > before },
        )
        .await;
        child.0.kill().expect("kill -9");
        child.0.wait().expect("reap");
        eprintln!("killed child worker in round {round}");
    }
    writer.await.expect("writer");
    // Restart on the same data directory in this process and let it catch up.
    let worker = start_worker(dir.path()).await;
    let rows = db
        .admin
        .query("SELECT id, v FROM t", &[])
        .await
        .expect("table");
    let table: BTreeMap<i64, i64> = rows
        .iter()
        .map(|r| (i64::from(r.get::<_, i32>(0)), i64::from(r.get::<_, i32>(1))))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let state: BTreeMap<i64, i64> = apply_events(&read_topic(&worker, "srv.public.t"))
            .into_iter()
            .map(|(k, v)| (k, v["v"].as_i64().expect("v")))
            .collect();
        if state == table {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after kill -9 and restart the consumed state ({} rows) never matched the table ({} rows)",
            state.len(),
            table.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Duplicates come only from transactions not yet acknowledged at a kill: whole
    // transactions, never a missing row. Every insert appears at least once.
    let values = read_topic(&worker, "srv.public.t");
    let inserted: std::collections::BTreeSet<i64> = values
        .iter()
        .flatten()
        .filter(|v| v["op"] == "c" || v["op"] == "r")
        .map(|v| v["after"]["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(inserted.len(), table.len());
    worker.shutdown().await;
    db.cleanup().await;
}

/// The committed offset the child last reported.
fn committed(dir: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("committed.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// `snapshot_progress` of a committed offset: finished tables and per-table cursors.
fn progress(offset: &serde_json::Value) -> (Vec<String>, BTreeMap<String, i64>) {
    let p = &offset["snapshot_progress"];
    let name =
        |t: &serde_json::Value| format!("{}.{}", t[0].as_str().unwrap(), t[1].as_str().unwrap());
    let done = p["done"]
        .as_array()
        .map(|a| a.iter().map(name).collect())
        .unwrap_or_default();
    let after = p["after"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|pair| {
                    (
                        name(&pair[0]),
                        pair[1][0].as_str().unwrap().parse().unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (done, after)
}

/// Ids of the `r` events of a topic, with how often each was read.
fn reads(values: &[Option<serde_json::Value>]) -> BTreeMap<i64, usize> {
    let mut n = BTreeMap::new();
    for v in values.iter().flatten().filter(|v| v["op"] == "r") {
        *n.entry(v["after"]["id"].as_i64().expect("id")).or_insert(0) += 1;
    }
    n
}

/// kill -9 twice during a snapshot: once while the initial snapshot has finished table `c`
/// and table `b`, first in the queue, is held back by a gate (so only a second reader can
/// have read `c`; the exported snapshot dies with the process), once while the remaining
/// chunks of `b` are being read between watermarks. A writer changes both tables all along.
/// Chunks committed before a kill are never read again, and the consumed state equals the
/// tables.
#[tokio::test]
async fn kill_dash_nine_mid_snapshot_resumes_without_rereading() {
    let db = TestDb::create(
        "pgkillsnap",
        &format!(
            "CREATE TABLE c (id int PRIMARY KEY, v int);
             CREATE TABLE b (id int PRIMARY KEY, v int);
             INSERT INTO c SELECT g, 0 FROM generate_series(1, 20000) g;
             INSERT INTO b SELECT g, 0 FROM generate_series(1, 60000) g;
             {}",
            // Reading b waits while the test holds advisory lock 4242.
            read_gate_sql("b", 4242)
        ),
    )
    .await;
    db.publish_all().await;
    let raw = db.config(&[
        ("snapshot.fetch.size", "200"),
        ("snapshot.max.threads", "2"),
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = crate::env::with_database(&test_env().pg_url, &db.name);

    // Round 1: `b` is gated; a single reader would wait on it and never reach `c`.
    let locker = connect(&url).await;
    locker
        .batch_execute("SELECT pg_advisory_lock(4242)")
        .await
        .expect("gate b");
    let mut child = spawn_child(dir.path(), &raw);
    // `c` is committed up to its last key (its end is known only from the next, empty chunk,
    // which carries no record).
    wait_committed(dir.path(), "the initial snapshot to commit table c", |o| {
        let (done, after) = progress(o);
        done.contains(&"public.c".to_owned()) || after.get("public.c") == Some(&20000)
    })
    .await;
    let round1 = committed(dir.path()).expect("committed offset");
    assert_eq!(round1["snapshot"], true, "{round1}");
    let (_, after1) = progress(&round1);
    assert!(!after1.contains_key("public.b"), "b was gated: {round1}");
    child.0.kill().expect("kill -9");
    child.0.wait().expect("reap");
    locker
        .batch_execute("SELECT pg_advisory_unlock(4242)")
        .await
        .expect("open b");

    // A writer changes both tables from now on.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let url = url.clone();
        tokio::spawn(async move {
            let c = connect(&url).await;
            let mut i: i64 = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let table = if i % 2 == 0 { "c" } else { "b" };
                let id = 1 + (i * 7919) % 70000;
                let sql = match i % 3 {
                    0 => format!(
                        "INSERT INTO {table} VALUES ({id}, {i}) ON CONFLICT (id) DO UPDATE SET v = {i}"
                    ),
                    1 => format!("UPDATE {table} SET v = {i} WHERE id = {id}"),
                    _ => format!("DELETE FROM {table} WHERE id = {id}"),
                };
                c.batch_execute(&sql).await.expect("writer");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            i
        })
    };

    // Round 2: the remaining chunks of `b` are read between watermarks; kill once some are
    // committed and the rest are not.
    let mut child = spawn_child(dir.path(), &raw);
    wait_committed(
        dir.path(),
        "the resumed snapshot to commit a chunk of b",
        |o| progress(o).1.contains_key("public.b"),
    )
    .await;
    child.0.kill().expect("kill -9");
    child.0.wait().expect("reap");
    let round2 = committed(dir.path()).expect("committed offset");
    let (done2, after2) = progress(&round2);
    assert!(
        done2.contains(&"public.c".to_owned()) || after2.get("public.c") == Some(&20000),
        "{round2}"
    );
    assert!(
        !done2.contains(&"public.b".to_owned()),
        "b finished before the kill; the test needs a bigger b: {round2}"
    );
    let b_cursor = after2["public.b"];
    assert!(
        round2.get("snapshot") != Some(&serde_json::json!(true)),
        "the resumed snapshot acknowledges the stream: {round2}"
    );

    // Round 3, in this process: finishes the snapshot while the writer runs, then catches up.
    let worker = start_worker(dir.path()).await;
    wait_for(
        "the resumed snapshot finishes",
        Duration::from_secs(120),
        || async {
            worker
                .offsets()
                .load("pg")
                .await
                .ok()
                .and_then(|o| o.first().map(|o| o.offset.value.clone()))
                .is_some_and(|v| {
                    v.get("snapshot_progress").is_none() && v.get("snapshot").is_none()
                })
        },
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = writer.await.expect("writer");
    assert!(writes > 50, "the writer ran ({writes} statements)");
    for table in ["b", "c"] {
        let rows = db
            .admin
            .query(&format!("SELECT id, v FROM {table}"), &[])
            .await
            .expect("table");
        let expected: BTreeMap<i64, i64> = rows
            .iter()
            .map(|r| (i64::from(r.get::<_, i32>(0)), i64::from(r.get::<_, i32>(1))))
            .collect();
        let topic = format!("srv.public.{table}");
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let state: BTreeMap<i64, i64> = apply_events(&read_topic(&worker, &topic))
                .into_iter()
                .map(|(k, v)| (k, v["v"].as_i64().expect("v")))
                .collect();
            if state == expected {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{table}: consumed state ({} rows) never matched the table ({} rows)",
                state.len(),
                expected.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let read = reads(&read_topic(&worker, &topic));
        // Committed chunks are never read again: every row of `c`, and the rows of `b` up to
        // the cursor committed before the second kill, were read at most once.
        let committed_upto = if table == "c" { i64::MAX } else { b_cursor };
        let again: Vec<_> = read
            .iter()
            .filter(|(id, n)| **id <= committed_upto && **n > 1)
            .collect();
        assert!(
            again.is_empty(),
            "{table}: rows read again after a kill: {again:?}"
        );
        eprintln!(
            "{table}: {} rows read, {} read twice, b committed up to {b_cursor} at the second kill",
            read.len(),
            read.values().filter(|n| **n > 1).count()
        );
        assert!(
            read.len() > 1000,
            "{table}: the snapshot read its rows ({} read)",
            read.len()
        );
    }
    worker.shutdown().await;
    db.cleanup().await;
}

/// Waits for `check` on the child's committed offset; the panic shows the child's log tail.
async fn wait_committed(dir: &Path, what: &str, check: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if committed(dir).is_some_and(|o| check(&o)) {
            return;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("child.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            panic!(
                "timed out waiting for {what}; committed: {:?}; child log tail:\n{}",
                committed(dir),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
