//! kill -9 of a worker process mid-stream, restarted on the same data directory.
//!
//! The test binary re-runs itself as the worker process (`crash_child`, ignored when the
//! suite runs), so the kill is a real SIGKILL of a process holding the slot.

use std::collections::BTreeMap;
use std::process::{Child, Command};
use std::time::Duration;

use super::*;

const DIR_VAR: &str = "TRIB_PG_CRASH_DIR";
const CONFIG_VAR: &str = "TRIB_PG_CRASH_CONFIG";

/// The worker process of `kill_dash_nine_mid_stream`: runs until killed.
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
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
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
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
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
