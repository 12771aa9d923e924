//! The `sinks` scenario: runs the sink crates' own benchmarks (JDBC upsert rows/s, S3 MB/s)
//! through cargo, when they exist, and reports their output; a sink without a bench is
//! skipped with a message saying so.

use std::process::Command;

use anyhow::{Context as _, Result};
use serde_json::json;

use crate::Args;
use crate::env::repo_root;
use crate::progress::say;
use crate::report::{Column, Report, Row, Table};

/// (package, crate directory, what it measures).
const SINKS: [(&str, &str, &str); 2] = [
    (
        "tributary-jdbc-sink",
        "connectors/jdbc-sink",
        "JDBC upsert rows/s",
    ),
    ("tributary-s3-sink", "connectors/s3-sink", "S3 MB/s"),
];

/// Bench targets declared in a crate's Cargo.toml (`[[bench]] name = "..."`) whose file exists.
fn bench_targets(dir: &std::path::Path) -> Vec<String> {
    let Ok(manifest) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut in_bench = false;
    let mut name = None;
    let mut path = None;
    let mut flush = |name: &mut Option<String>, path: &mut Option<String>| {
        if let Some(n) = name.take() {
            let p = path.take().unwrap_or_else(|| format!("benches/{n}.rs"));
            if dir.join(&p).is_file() {
                out.push(n);
            }
        }
        *path = None;
    };
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            if in_bench {
                flush(&mut name, &mut path);
            }
            in_bench = line == "[[bench]]";
            continue;
        }
        if !in_bench {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().trim_matches('"').to_owned();
            match k.trim() {
                "name" => name = Some(v),
                "path" => path = Some(v),
                _ => {}
            }
        }
    }
    if in_bench {
        flush(&mut name, &mut path);
    }
    out
}

/// The `sinks` scenario.
pub fn run(args: &Args) -> Result<Vec<Report>> {
    let root = repo_root();
    let mut notes = Vec::new();
    let mut raw = serde_json::Map::new();
    let mut tables = Vec::new();
    for (package, dir, what) in SINKS {
        let benches = bench_targets(&root.join(dir));
        if benches.is_empty() {
            let msg = format!(
                "{what}: skipped, {dir} has no bench target yet (a `[[bench]]` in its Cargo.toml)"
            );
            say(&msg);
            notes.push(format!("- {msg}"));
            continue;
        }
        for bench in benches {
            let mut outputs = Vec::new();
            for round in 1..=args.repeat {
                say(format!(
                    "round {round}/{}: cargo bench -p {package} --bench {bench}",
                    args.repeat
                ));
                let mut cmd = Command::new("cargo");
                cmd.current_dir(&root)
                    .args(["bench", "-q", "-p", package, "--bench", &bench]);
                let out = cmd.output().context("cannot run cargo")?;
                let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                if !out.status.success() {
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    let tail: Vec<&str> = stderr
                        .lines()
                        .rev()
                        .take(15)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect();
                    let msg = format!(
                        "{what}: `cargo bench -p {package} --bench {bench}` failed ({}):\n{}",
                        out.status,
                        tail.join("\n")
                    );
                    say(&msg);
                    notes.push(format!("- {msg}"));
                    break;
                }
                if stdout.is_empty() {
                    let msg = format!(
                        "{what}: `cargo bench -p {package} --bench {bench}` printed nothing (a stub so far)"
                    );
                    say(&msg);
                    notes.push(format!("- {msg}"));
                    break;
                }
                outputs.push(stdout);
            }
            if let Some(table) = results_table(
                &format!("{what} (`cargo bench -p {package} --bench {bench}`)"),
                &outputs,
            ) {
                tables.push(table);
            }
            for (i, o) in outputs.iter().enumerate() {
                let text: Vec<&str> = o.lines().filter(|l| !l.starts_with("RESULT ")).collect();
                notes.push(format!(
                    "{what}, `cargo bench -p {package} --bench {bench}`, run {}:\n\n```text\n{}\n```\n",
                    i + 1,
                    text.join("\n")
                ));
            }
            raw.insert(format!("{package}/{bench}"), json!(outputs));
        }
    }
    Ok(vec![Report {
        scenario: "sinks",
        command: args.command("sinks"),
        notes,
        tables,
        extra: serde_json::Value::Object(raw),
    }])
}

/// The `RESULT {"label", "unit", "value"}` lines of every run as one table: a row per label,
/// a column per unit, each cell the median (min–max) over the runs.
fn results_table(title: &str, outputs: &[String]) -> Option<Table> {
    let mut units: Vec<String> = Vec::new();
    let mut rows: Vec<(String, Vec<Vec<f64>>)> = Vec::new();
    for output in outputs {
        for line in output.lines() {
            let Some(json) = line.strip_prefix("RESULT ") else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
                continue;
            };
            let (Some(label), Some(unit), Some(value)) =
                (v["label"].as_str(), v["unit"].as_str(), v["value"].as_f64())
            else {
                continue;
            };
            let u = match units.iter().position(|x| x == unit) {
                Some(u) => u,
                None => {
                    units.push(unit.to_owned());
                    rows.iter_mut()
                        .for_each(|(_, cells)| cells.push(Vec::new()));
                    units.len() - 1
                }
            };
            let r = match rows.iter().position(|(l, _)| l == label) {
                Some(r) => r,
                None => {
                    rows.push((label.to_owned(), vec![Vec::new(); units.len()]));
                    rows.len() - 1
                }
            };
            rows[r].1[u].push(value);
        }
    }
    if rows.is_empty() {
        return None;
    }
    Some(Table {
        title: title.to_owned(),
        columns: units
            .into_iter()
            .map(|u| Column {
                name: Box::leak(u.into_boxed_str()),
                decimals: 1,
            })
            .collect(),
        rows: rows
            .into_iter()
            .map(|(label, cells)| Row { label, cells })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_declared_benches_whose_file_exists_count() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("benches")).expect("mkdir");
        std::fs::write(dir.path().join("benches/upsert.rs"), "fn main() {}").expect("write");
        std::fs::write(
            dir.path().join("Cargo.toml"),
            "[package]\nname = \"x\"\n\n[[bench]]\nname = \"upsert\"\nharness = false\n\n\
             [[bench]]\nname = \"missing\"\npath = \"benches/missing.rs\"\n\n[lints]\nworkspace = true\n",
        )
        .expect("write");
        assert_eq!(bench_targets(dir.path()), vec!["upsert".to_owned()]);
        assert!(bench_targets(&dir.path().join("nowhere")).is_empty());
    }

    #[test]
    fn results_become_medians_per_label_and_unit() {
        let runs = [
            "x\nRESULT {\"label\":\"pg\",\"unit\":\"rows/s\",\"value\":10}\nRESULT {\"label\":\"s3\",\"unit\":\"MiB/s\",\"value\":5}".to_owned(),
            "RESULT {\"label\":\"pg\",\"unit\":\"rows/s\",\"value\":30}\nRESULT {\"label\":\"s3\",\"unit\":\"MiB/s\",\"value\":7}".to_owned(),
            "RESULT {\"label\":\"pg\",\"unit\":\"rows/s\",\"value\":20}\nRESULT bad".to_owned(),
        ];
        let table = results_table("t", &runs).expect("a table");
        let names: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
        assert_eq!(names, ["rows/s", "MiB/s"]);
        assert_eq!(table.rows[0].label, "pg");
        assert_eq!(table.rows[0].cells, vec![vec![10.0, 30.0, 20.0], vec![]]);
        assert_eq!(table.rows[1].cells, vec![vec![], vec![5.0, 7.0]]);
        assert!(results_table("t", &["no results".to_owned()]).is_none());
    }
}
