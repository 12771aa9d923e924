//! A spawned `tributary run` (REST on an ephemeral port) driven over its REST API.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A `tributary run` on an ephemeral REST port, killed when dropped.
pub struct Worker {
    child: tokio::process::Child,
    pub url: String,
}

/// Starts a worker on `data`; its log goes to `log`. Extra arguments: see [`start_with`].
pub async fn start(data: &Path, log: &Path) -> Worker {
    start_with(data, log, &[]).await
}

/// Starts a worker with extra `tributary run` arguments (e.g. `--connectors-dir`, `--config`).
pub async fn start_with(data: &Path, log: &Path, args: &[&std::ffi::OsStr]) -> Worker {
    start_in(None, data, log, args).await
}

/// [`start_with`] in working directory `cwd` (relative paths in configs resolve there).
pub async fn start_in(
    cwd: Option<&Path>,
    data: &Path,
    log: &Path,
    args: &[&std::ffi::OsStr],
) -> Worker {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tributary"));
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    let mut child = command
        .args(["run", "--rest-port", "0", "--data-dir"])
        .arg(data)
        .args(args)
        .env("TRIBUTARY_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .kill_on_drop(true)
        .spawn()
        .expect("spawn tributary");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(url) = text
            .lines()
            .find(|l| l.contains("REST API ready"))
            .and_then(|l| l.split("url=").nth(1))
            .map(|u| u.split_whitespace().next().unwrap_or(u).to_owned())
        {
            return Worker { child, url };
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("tributary exited ({status}):\n{text}");
        }
        assert!(Instant::now() < deadline, "no REST API ready line:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Worker {
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = reqwest::get(format!("{}{path}", self.url))
            .await
            .expect("GET");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = reqwest::Client::new()
            .post(format!("{}{path}", self.url))
            .json(body)
            .send()
            .await
            .expect("POST");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = reqwest::Client::new()
            .put(format!("{}{path}", self.url))
            .json(body)
            .send()
            .await
            .expect("PUT");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Every record of a topic (all partitions) as `(key, value)` JSON, in offset order per
    /// partition (the first 1000 of each partition).
    pub async fn records(&self, topic: &str) -> Vec<(Value, Value)> {
        let (status, topics) = self.get("/topics").await;
        assert_eq!(status, 200, "{topics}");
        let partitions = topics
            .as_array()
            .and_then(|ts| {
                ts.iter()
                    .find(|t| t["name"] == topic || t["topic"] == topic)
            })
            .and_then(|t| t["partitions"].as_array().map(Vec::len))
            .unwrap_or(0);
        let mut out = Vec::new();
        for p in 0..partitions {
            let (status, body) = self
                .get(&format!(
                    "/topics/{topic}/records?partition={p}&offset=0&limit=1000"
                ))
                .await;
            assert_eq!(status, 200, "{body}");
            for r in body["records"].as_array().cloned().unwrap_or_default() {
                out.push((r["key"].clone(), r["value"].clone()));
            }
        }
        out
    }

    /// Every record value of a topic; see [`Worker::records`].
    pub async fn values(&self, topic: &str) -> Vec<Value> {
        self.records(topic)
            .await
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Waits (polling, with a deadline) until `check` returns `Some`.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
