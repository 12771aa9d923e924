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
