//! Every file in `configs/` validates with the real binary, and bad configs are rejected with
//! the file, the field and the reason.

use std::path::{Path, PathBuf};
use std::process::Command;

fn tributary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tributary"))
}

/// Every YAML/JSON file under `configs/`, recursively.
fn config_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("configs dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            config_files(&path, out);
        } else if path
            .extension()
            .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        {
            out.push(path);
        }
    }
}

#[test]
fn every_file_in_configs_validates() {
    let mut files = Vec::new();
    config_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("configs"),
        &mut files,
    );
    assert!(!files.is_empty(), "configs/ has example files");
    // The examples take their passwords from the environment, as deployments should; the
    // no-Docker quickstart reads the test servers' ports from ./.test-env/env.
    let cwd = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(cwd.path().join(".test-env")).expect("mkdir");
    std::fs::write(
        cwd.path().join(".test-env/env"),
        "# written by scripts/test-env.sh up\nTRIB_MARIADB_PORT=13306\nTRIB_PG_PORT=15432\n",
    )
    .expect("write env");
    let output = tributary()
        .arg("validate")
        .args(&files)
        .current_dir(cwd.path())
        .env("MARIADB_CDC_PASSWORD", "example")
        .env("PG_CDC_PASSWORD", "example")
        .output()
        .expect("run validate");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "validate failed:\n{stderr}");
    for file in &files {
        assert!(
            stdout.contains(&format!("{}: ok", file.display())),
            "{} not reported ok:\n{stdout}",
            file.display()
        );
    }
}

#[test]
fn bad_configs_name_file_field_and_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "name: bad\nconfig:\n  connector.class: datagen\n  key.space: 0\n  ops.mixx: insert=1\n",
    )
    .expect("write");
    let unknown = dir.path().join("unknown.json");
    std::fs::write(
        &unknown,
        r#"{"name":"u","config":{"connector.class":"com.example.Nope"}}"#,
    )
    .expect("write");
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "name: [unclosed\n").expect("write");

    let output = tributary()
        .arg("validate")
        .arg(&bad)
        .arg(&unknown)
        .arg(&broken)
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1), "exit 1 on errors");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expect = [
        format!("{}: key.space: must be between 1 and", bad.display()),
        format!(
            "{}: ops.mixx: unknown configuration key (did you mean \"ops.mix\"?)",
            bad.display()
        ),
        format!(
            "{}: connector.class: unknown connector class \"com.example.Nope\"",
            unknown.display()
        ),
        format!("{}: <document>: invalid YAML", broken.display()),
    ];
    for line in expect {
        assert!(stderr.contains(&line), "missing {line:?} in:\n{stderr}");
    }
}

#[test]
fn run_refuses_a_bad_connectors_dir_before_starting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let connectors = dir.path().join("connectors");
    std::fs::create_dir(&connectors).expect("mkdir");
    std::fs::write(
        connectors.join("x.yaml"),
        "name: x\nconfig:\n  connector.class: FileStreamSink\n",
    )
    .expect("write");
    let data = dir.path().join("data");
    let output = tributary()
        .args(["run", "--rest-port", "0", "--data-dir"])
        .arg(&data)
        .arg("--connectors-dir")
        .arg(&connectors)
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("file: is required"), "{stderr}");
    assert!(
        stderr.contains("topics: a sink needs topics or topics.regex"),
        "{stderr}"
    );
    assert!(!data.join("log").exists(), "nothing was started");
}

/// The README's no-Docker CDC quickstart, as written: `deploy/seed-local.sh`, then
/// `tributary run --connectors-dir configs/quickstart-cdc` from a directory holding
/// `.test-env/env`. Both sources snapshot their demo tables into `data/cdc-changes.jsonl`,
/// an UPDATE in each database streams in, and `/metrics` counts durable records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cdc_quickstart_runs_as_the_readme_says() {
    use crate::support::env::{TestEnv, env_file_path, unique_name, with_database};
    use crate::support::worker::{eventually, start_in};
    use mysql_async::prelude::Queryable as _;
    use serde_json::Value;

    const SLOT: &str = "tributary_quickstart";
    let env = TestEnv::load();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let seeded = Command::new("bash")
        .arg(root.join("deploy/seed-local.sh"))
        .output()
        .expect("run seed-local.sh");
    assert!(
        seeded.status.success(),
        "seed-local.sh failed:\n{}",
        String::from_utf8_lossy(&seeded.stderr)
    );
    let pg = crate::support::in_process::pg(&with_database(&env.pg_url, "ecommerce"))
        .await
        .expect("connect to ecommerce");
    // A slot left by an earlier run (the README's config does not drop it on stop).
    let drop_slot = format!(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
         WHERE slot_name = '{SLOT}' AND NOT active"
    );
    pg.batch_execute(&drop_slot).await.expect("drop old slot");

    let cwd = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(cwd.path().join(".test-env")).expect("mkdir");
    std::fs::copy(env_file_path(), cwd.path().join(".test-env/env")).expect("copy env");
    let log = cwd.path().join("worker.log");
    let dir = root.join("configs/quickstart-cdc");
    let worker = start_in(
        Some(cwd.path()),
        &cwd.path().join("data"),
        &log,
        &["--connectors-dir".as_ref(), dir.as_os_str()],
    )
    .await;

    eventually("three connectors RUNNING", || async {
        let (_, body) = worker.get("/connectors?expand=status").await;
        let running = body.as_object().is_some_and(|m| {
            m.len() == 3
                && m.values().all(|c| {
                    c["status"]["connector"]["state"] == "RUNNING"
                        && c["status"]["tasks"].as_array().is_some_and(|t| {
                            !t.is_empty() && t.iter().all(|t| t["state"] == "RUNNING")
                        })
                })
        });
        running.then_some(())
    })
    .await;

    let changes = cwd.path().join("data/cdc-changes.jsonl");
    // (topic, op, after) of every line written so far.
    let lines = || -> Vec<(String, String, Value)> {
        std::fs::read_to_string(&changes)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|line| {
                let value = &line["value"];
                let envelope = if value["payload"].is_object() {
                    &value["payload"]
                } else {
                    value
                };
                (
                    line["topic"].as_str().unwrap_or_default().to_owned(),
                    envelope["op"].as_str().unwrap_or_default().to_owned(),
                    envelope["after"].clone(),
                )
            })
            .collect()
    };
    eventually("snapshot rows of both databases", || async {
        let seen = lines();
        let mariadb = seen.iter().any(|(t, op, after)| {
            t == "inventory.inventory.customers" && op == "r" && after["id"] == 1004
        });
        let postgres = seen
            .iter()
            .any(|(t, op, _)| t == "ecommerce.public.customers" && op == "r");
        (mariadb && postgres).then_some(())
    })
    .await;

    // The README's UPDATE (with a fresh name, so it is a change on every run), and one in
    // Postgres.
    let marker = unique_name("anne");
    let mut conn =
        mysql_async::Conn::new(mysql_async::Opts::from_url(&env.mariadb_url).expect("mariadb url"))
            .await
            .expect("connect to MariaDB");
    conn.query_drop(format!(
        "UPDATE inventory.customers SET first_name = '{marker}' WHERE id = 1004"
    ))
    .await
    .expect("update MariaDB");
    conn.disconnect().await.expect("disconnect");
    let pg_marker = format!("{marker}@example.com");
    pg.execute(
        "UPDATE customers SET email = $1 WHERE id = (SELECT min(id) FROM customers)",
        &[&pg_marker],
    )
    .await
    .expect("update Postgres");
    eventually("both updates streamed into the file", || async {
        let seen = lines();
        let mariadb = seen.iter().any(|(t, op, after)| {
            t == "inventory.inventory.customers"
                && op == "u"
                && after["first_name"] == marker.as_str()
        });
        let postgres = seen.iter().any(|(t, op, after)| {
            t == "ecommerce.public.customers" && op == "u" && after["email"] == pg_marker.as_str()
        });
        (mariadb && postgres).then_some(())
    })
    .await;

    // The README's metrics line: durable records counted per connector.
    let metrics = reqwest::get(format!("{}/metrics", worker.url))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    for connector in ["mariadb-inventory", "postgres-ecommerce", "cdc-file-sink"] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("tributary_task_records_durable_total")
                    && l.contains(&format!("connector=\"{connector}\""))),
            "no durable-records metric for {connector}:\n{metrics}"
        );
    }
    worker.stop().await;
    // The walsender of the killed worker goes away shortly; then the slot can be dropped.
    eventually("the quickstart slot dropped", || async {
        pg.batch_execute(&drop_slot).await.ok()?;
        let left = pg
            .query_opt(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
                &[&SLOT],
            )
            .await
            .ok()?;
        left.is_none().then_some(())
    })
    .await;
}
