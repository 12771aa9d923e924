//! The REST API, the CLI client and GitOps against the real `tributary` binary on a bound
//! port (the in-process tests of every endpoint are in `runtime/src/rest/tests.rs`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A `tributary run` child process, stopped with SIGTERM when dropped.
struct Running {
    child: Child,
    url: String,
    stderr: PathBuf,
}

impl Running {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A clean stop (SIGTERM) through the `kill` command keeps this crate free of `unsafe`.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("addr").port()
}

fn tributary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tributary"));
    command
        .env("TRIBUTARY_LOG", "info")
        .env_remove("TRIBUTARY_URL")
        .env_remove("TRIBUTARY_TOKEN")
        .env_remove("TRIBUTARY_USER");
    command
}

/// Starts `tributary run` with `args` (plus `--data-dir` in `dir`) and waits for `/health`.
async fn start(dir: &Path, scheme: &str, port: u16, args: &[&str]) -> Running {
    start_with_env(dir, scheme, port, args, &[]).await
}

async fn start_with_env(
    dir: &Path,
    scheme: &str,
    port: u16,
    args: &[&str],
    env: &[(&str, &str)],
) -> Running {
    let stderr = dir.join(format!("worker-{port}.log"));
    let child = tributary()
        .envs(env.iter().copied())
        .arg("run")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).expect("log file"))
        .spawn()
        .expect("spawn tributary");
    let mut running = Running {
        child,
        url: format!("{scheme}://127.0.0.1:{port}"),
        stderr,
    };
    let client = client_trusting_test_ca();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = running.child.try_wait() {
            panic!("tributary exited early ({status}):\n{}", running.log());
        }
        if let Ok(r) = client.get(format!("{}/health", running.url)).send().await
            && r.status().is_success()
        {
            return running;
        }
        assert!(
            Instant::now() < deadline,
            "worker not ready:\n{}",
            running.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn client_trusting_test_ca() -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(TEST_CA_PEM.as_bytes()).expect("ca"))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// Sends a request; returns the status and JSON body (`null` when empty). Error bodies must
/// have Kafka Connect's shape.
async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> (u16, Value) {
    let mut request = client
        .request(method.clone(), url)
        .header("content-type", "application/json");
    if let Some(b) = body {
        request = request.body(b.to_owned());
    }
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("JSON body")
    };
    if status >= 400 {
        assert_eq!(value["error_code"], status, "{method} {url}: {value}");
        assert!(value["message"].is_string(), "{value}");
    }
    (status, value)
}

/// POSTs a request announcing `announced` body bytes but sending only the first 64 KiB, then
/// returns the raw HTTP response (read until the server closes or 10 s pass).
async fn oversized_post(port: u16, path: &str, announced: usize) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n\
         content-length: {announced}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("send head");
    let prefix = vec![b' '; (64 << 10).min(announced)];
    // The server may already have answered and closed; a failed write is fine, the reply counts.
    let _ = stream.write_all(&prefix).await;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => reply.extend_from_slice(&buf[..n]),
            Err(_) if reply.windows(4).any(|w| w == b"\r\n\r\n") => break,
            Err(_) => {}
        }
    }
    String::from_utf8_lossy(&reply).into_owned()
}

/// Runs the CLI; returns exit success, stdout and stderr.
async fn cli(args: &[&str]) -> (bool, String, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tributary"));
    command
        .args(args)
        .env("TRIBUTARY_LOG", "warn")
        .env_remove("TRIBUTARY_URL")
        .env_remove("TRIBUTARY_TOKEN")
        .env_remove("TRIBUTARY_USER");
    let out = command.output().await.expect("run the CLI");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const MYSQL_EXAMPLE: &str = r#"{"name": "mysql-source", "config": {"connector.class": "io.debezium.connector.mysql.MySqlConnector", "database.hostname": "localhost", "database.port": "3306", "database.user": "debezium", "database.password": "dbz", "database.server.id": "184054", "topic.prefix": "dbserver1", "database.include.list": "inventory", "schema.history.internal.kafka.bootstrap.servers": "kafka:9092", "schema.history.internal.kafka.topic": "schema-changes.inventory"}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_api_over_a_real_port() {
    use reqwest::Method;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let worker = start(
        dir.path(),
        "http",
        port,
        &["--rest-port", &port.to_string()],
    )
    .await;
    let client = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", worker.url);

    let (status, root) = call(&client, Method::GET, &url("/"), None, None).await;
    assert_eq!(status, 200);
    assert!(
        root["version"].is_string() && root["commit"].is_string(),
        "{root}"
    );

    let create_gen = r#"{"name": "gen", "config": {"connector.class": "datagen", "topic.prefix": "port", "total": "100", "rate": "1000"}}"#;
    let (status, created) = call(
        &client,
        Method::POST,
        &url("/connectors"),
        Some(create_gen),
        None,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["tasks"], json!([{"connector": "gen", "task": 0}]));
    assert_eq!(
        call(
            &client,
            Method::POST,
            &url("/connectors"),
            Some(create_gen),
            None
        )
        .await
        .0,
        409
    );
    eventually("RUNNING", || async {
        let (_, s) = call(
            &client,
            Method::GET,
            &url("/connectors/gen/status"),
            None,
            None,
        )
        .await;
        (s["connector"]["state"] == "RUNNING" && s["tasks"][0]["state"] == "RUNNING").then_some(())
    })
    .await;
    let (_, expanded) = call(
        &client,
        Method::GET,
        &url("/connectors?expand=status"),
        None,
        None,
    )
    .await;
    assert_eq!(expanded["gen"]["status"]["type"], "source");
    assert_eq!(
        call(
            &client,
            Method::PUT,
            &url("/connectors/gen/pause"),
            None,
            None
        )
        .await
        .0,
        202
    );
    assert_eq!(
        call(
            &client,
            Method::PUT,
            &url("/connectors/gen/resume"),
            None,
            None
        )
        .await
        .0,
        202
    );
    let (status, offsets) = eventually("offsets", || async {
        let r = call(
            &client,
            Method::GET,
            &url("/connectors/gen/offsets"),
            None,
            None,
        )
        .await;
        (r.1["offsets"][0]["offset"]["seq"] == 99).then_some(r)
    })
    .await;
    assert_eq!(status, 200, "{offsets}");

    // Hostile input over a real socket.
    let (status, body) = call(
        &client,
        Method::POST,
        &url("/connectors"),
        Some("{\"name\": "),
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = call(
        &client,
        Method::PUT,
        &url("/connectors/gen/config"),
        Some("[\"not\", \"a map\"]"),
        None,
    )
    .await;
    assert_eq!(status, 400);
    // A body announced larger than the limit is refused before it is read: the worker answers
    // 413 after only a prefix has been sent. (Sending all 3 MiB through an HTTP client races
    // the server's close against the client's writes; the in-process tests in
    // runtime/src/rest/tests.rs cover bodies whose length is not announced.)
    let reply = oversized_post(port, "/connectors", 3 << 20).await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("\"error_code\":413"), "{reply}");
    assert_eq!(
        call(
            &client,
            Method::GET,
            &url("/connectors/%2e%2e%2fetc"),
            None,
            None
        )
        .await
        .0,
        404
    );

    // The MySQL example is accepted as Kafka Connect accepts it, password hidden in the reply.
    let (status, body) = call(
        &client,
        Method::POST,
        &url("/connectors"),
        Some(MYSQL_EXAMPLE),
        None,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["config"]["database.password"], "[hidden]");

    assert_eq!(
        call(&client, Method::DELETE, &url("/connectors/gen"), None, None)
            .await
            .0,
        204
    );
    assert_eq!(
        call(&client, Method::GET, &url("/connectors/gen"), None, None)
            .await
            .0,
        404
    );
    let (_, openapi) = call(&client, Method::GET, &url("/openapi.json"), None, None).await;
    assert!(openapi["paths"]["/connectors/{name}/offsets"]["patch"].is_object());
    drop(worker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_port_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let (ok, _, stderr) = cli(&[
        "run",
        "--data-dir",
        &dir.path().join("data").display().to_string(),
        "--rest-port",
        &port.to_string(),
    ])
    .await;
    assert!(!ok, "must fail");
    assert!(stderr.contains("port is busy"), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(stderr.contains("--rest-port"), "{stderr}");
    assert!(
        !dir.path().join("data").join("log").exists(),
        "nothing started before the port was checked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_and_tls_from_the_worker_config() {
    use reqwest::Method;
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&cert, TEST_CERT_PEM).expect("cert");
    std::fs::write(&key, TEST_KEY_PEM).expect("key");
    std::fs::write(&ca, TEST_CA_PEM).expect("ca");
    let port = free_port();
    let config = dir.path().join("worker.yaml");
    std::fs::write(
        &config,
        format!(
            "rest:\n  listen: 127.0.0.1:{port}\n  auth:\n    tokens:\n      - token: ${{env:REST_TEST_TOKEN}}\n      - {{token: look-only, role: read_only}}\n    users:\n      - {{username: ops, password: hunter2}}\n  tls:\n    cert_file: {}\n    key_file: {}\n",
            cert.display(),
            key.display()
        ),
    )
    .expect("config");
    let worker = start_with_env(
        dir.path(),
        "https",
        port,
        &["--config", &config.display().to_string()],
        &[("REST_TEST_TOKEN", "from-env-t0ken")],
    )
    .await;
    let client = client_trusting_test_ca();
    let url = |p: &str| format!("{}{p}", worker.url);

    assert_eq!(
        call(&client, Method::GET, &url("/health"), None, None)
            .await
            .0,
        200,
        "/health stays open"
    );
    let unauthorized = client
        .get(url("/connectors"))
        .send()
        .await
        .expect("request");
    assert_eq!(unauthorized.status().as_u16(), 401);
    assert!(unauthorized.headers().contains_key("www-authenticate"));
    assert_eq!(
        call(
            &client,
            Method::GET,
            &url("/connectors"),
            None,
            Some("wrong")
        )
        .await
        .0,
        401
    );
    assert_eq!(
        call(
            &client,
            Method::GET,
            &url("/connectors"),
            None,
            Some("from-env-t0ken")
        )
        .await
        .0,
        200
    );
    let basic = client
        .get(url("/connectors"))
        .basic_auth("ops", Some("hunter2"))
        .send()
        .await
        .expect("request");
    assert_eq!(basic.status().as_u16(), 200);
    assert_eq!(
        call(
            &client,
            Method::GET,
            &url("/connectors"),
            None,
            Some("look-only")
        )
        .await
        .0,
        200
    );
    let create_gen = r#"{"name": "g", "config": {"connector.class": "datagen", "total": "1"}}"#;
    assert_eq!(
        call(
            &client,
            Method::POST,
            &url("/connectors"),
            Some(create_gen),
            Some("look-only")
        )
        .await
        .0,
        403
    );

    // Plain HTTP to the TLS port does not get through.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .await;
    assert!(
        !plain.is_ok_and(|r| r.status().is_success()),
        "plain HTTP must not be served"
    );

    // The CLI with the CA and a token; without the token it says what to pass.
    let ca_arg = ca.display().to_string();
    let base = ["--url", worker.url.as_str(), "--cacert", ca_arg.as_str()];
    let (ok, _, stderr) = cli(&[&["connectors", "list"][..], &base].concat()).await;
    assert!(
        !ok && stderr.contains("401") && stderr.contains("--token"),
        "{stderr}"
    );
    let (ok, stdout, stderr) = cli(&[
        &["connectors", "list", "--token", "from-env-t0ken"][..],
        &base,
    ]
    .concat())
    .await;
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("NAME"), "{stdout}");
    let (ok, _, stderr) = cli(&[
        "connectors",
        "list",
        "--url",
        &worker.url,
        "--user",
        "ops:hunter2",
    ])
    .await;
    assert!(!ok, "an untrusted certificate is refused: {stderr}");
    drop(worker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_client_drives_a_worker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let worker = start(
        dir.path(),
        "http",
        port,
        &["--rest-port", &port.to_string()],
    )
    .await;
    let file = dir.path().join("gen.yaml");
    std::fs::write(&file, "name: gen\nconfig:\n  connector.class: datagen\n  topic.prefix: cli\n  total: 50\n  rate: 500\n").expect("file");
    let url = worker.url.clone();
    let run = |args: Vec<String>| async move {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        cli(&refs).await
    };
    let with_url = |args: &[&str]| -> Vec<String> {
        args.iter()
            .map(|s| s.to_string())
            .chain(["--url".to_string(), url.clone()])
            .collect()
    };

    let (ok, stdout, stderr) = run(with_url(&[
        "connectors",
        "create",
        "-f",
        &file.display().to_string(),
    ]))
    .await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("connector gen created"), "{stdout}");
    let (ok, _, stderr) = run(with_url(&[
        "connectors",
        "create",
        "-f",
        &file.display().to_string(),
    ]))
    .await;
    assert!(
        !ok && stderr.contains("already exists") && stderr.contains("409"),
        "{stderr}"
    );
    let (ok, stdout, _) = run(with_url(&["connectors", "list"])).await;
    assert!(
        ok && stdout
            .lines()
            .any(|l| l.starts_with("gen ") && l.contains("source")),
        "{stdout}"
    );
    let (ok, stdout, _) = run(with_url(&["connectors", "list", "-o", "json"])).await;
    assert!(ok);
    let listed: Value = serde_json::from_str(&stdout).expect("json output");
    assert_eq!(listed["gen"]["info"]["config"]["topic.prefix"], "cli");
    let (ok, stdout, _) = run(with_url(&["connectors", "get", "gen"])).await;
    assert!(
        ok && stdout.contains("topic.prefix") && stdout.contains("cli"),
        "{stdout}"
    );
    eventually("status RUNNING", || async {
        let (_, stdout, _) = run(with_url(&["connectors", "status", "gen"])).await;
        stdout.contains("RUNNING").then_some(())
    })
    .await;
    for (command, expect) in [
        ("pause", "paused"),
        ("resume", "resumed"),
        ("stop", "stopped"),
        ("resume", "resumed"),
        ("restart", "restarted"),
    ] {
        let (ok, stdout, stderr) = run(with_url(&["connectors", command, "gen"])).await;
        assert!(ok, "{command}: {stderr}");
        assert!(stdout.contains(expect), "{command}: {stdout}");
    }
    let offsets = eventually("offsets", || async {
        let (_, stdout, _) = run(with_url(&["connectors", "offsets", "gen", "-o", "json"])).await;
        let v: Value = serde_json::from_str(&stdout).ok()?;
        (v["offsets"][0]["offset"]["seq"] == 49).then_some(v)
    })
    .await;
    assert_eq!(
        offsets["offsets"][0]["partition"],
        json!({"datagen": "gen"})
    );
    std::fs::write(
        &file,
        "name: gen\nconfig:\n  connector.class: datagen\n  topic.prefix: cli2\n  total: 50\n",
    )
    .expect("file");
    let (ok, stdout, stderr) = run(with_url(&[
        "connectors",
        "update",
        "-f",
        &file.display().to_string(),
    ]))
    .await;
    assert!(
        ok && stdout.contains("connector gen updated"),
        "{stdout}{stderr}"
    );
    let (ok, stdout, _) = run(with_url(&["connectors", "delete", "gen"])).await;
    assert!(ok && stdout.contains("deleted"), "{stdout}");
    let (ok, _, stderr) = run(with_url(&["connectors", "status", "gen"])).await;
    assert!(
        !ok && stderr.contains("not found") && stderr.contains("404"),
        "{stderr}"
    );
    let (ok, _, stderr) = cli(&[
        "connectors",
        "list",
        "--url",
        &format!("http://127.0.0.1:{}", free_port()),
    ])
    .await;
    assert!(
        !ok && stderr.contains("cannot reach the worker"),
        "{stderr}"
    );
    drop(worker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connectors_directory_is_reconciled_while_running() {
    use reqwest::Method;
    let dir = tempfile::tempdir().expect("tempdir");
    let connectors = dir.path().join("connectors");
    std::fs::create_dir_all(&connectors).expect("dir");
    std::fs::write(
        connectors.join("a.yaml"),
        "name: a\nconfig:\n  connector.class: datagen\n  topic.prefix: ga\n  total: 10\n",
    )
    .expect("a");
    let port = free_port();
    let worker = start(
        dir.path(),
        "http",
        port,
        &[
            "--rest-port",
            &port.to_string(),
            "--connectors-dir",
            &connectors.display().to_string(),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", worker.url);
    let names = || async {
        call(&client, Method::GET, &url("/connectors"), None, None)
            .await
            .1
    };
    assert_eq!(names().await, json!(["a"]));

    // Added while running.
    std::fs::write(connectors.join("b.json"), r#"{"name": "b", "config": {"connector.class": "datagen", "topic.prefix": "gb", "total": "10"}}"#).expect("b");
    eventually("b created", || async {
        (names().await == json!(["a", "b"])).then_some(())
    })
    .await;

    // REST changes to a file-managed connector are refused, naming the file.
    let (status, body) = call(
        &client,
        Method::PUT,
        &url("/connectors/a/config"),
        Some(r#"{"connector.class": "datagen"}"#),
        None,
    )
    .await;
    assert_eq!(status, 409);
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("a.yaml"),
        "{body}"
    );
    assert_eq!(
        call(&client, Method::DELETE, &url("/connectors/b"), None, None)
            .await
            .0,
        409
    );

    // Changed: only that connector is updated.
    std::fs::write(
        connectors.join("a.yaml"),
        "name: a\nconfig:\n  connector.class: datagen\n  topic.prefix: ga2\n  total: 10\n",
    )
    .expect("a");
    eventually("a updated", || async {
        let (_, c) = call(
            &client,
            Method::GET,
            &url("/connectors/a/config"),
            None,
            None,
        )
        .await;
        (c["topic.prefix"] == "ga2").then_some(())
    })
    .await;
    // A broken file changes nothing; removed: deleted.
    std::fs::write(connectors.join("b.json"), "{broken").expect("b");
    std::fs::remove_file(connectors.join("a.yaml")).expect("rm a");
    eventually("a deleted", || async {
        (names().await == json!(["b"])).then_some(())
    })
    .await;
    assert!(
        worker.log().contains("connector file ignored until fixed"),
        "{}",
        worker.log()
    );
    std::fs::remove_file(connectors.join("b.json")).expect("rm b");
    eventually("b deleted", || async {
        (names().await == json!([])).then_some(())
    })
    .await;

    // plan shows the diff and changes nothing; apply applies it.
    let desired = dir.path().join("desired");
    std::fs::create_dir_all(&desired).expect("desired");
    std::fs::write(
        desired.join("p.yaml"),
        "name: p\nconfig:\n  connector.class: datagen\n  topic.prefix: gp\n  total: 5\n",
    )
    .expect("p");
    let (status, _) = call(
        &client,
        Method::POST,
        &url("/connectors"),
        Some(r#"{"name": "manual", "config": {"connector.class": "datagen", "total": "1"}}"#),
        None,
    )
    .await;
    assert_eq!(status, 201);
    let dir_arg = desired.display().to_string();
    let (ok, stdout, stderr) = cli(&["plan", &dir_arg, "--url", &worker.url]).await;
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("+ create p") && stdout.contains("topic.prefix = \"gp\""),
        "{stdout}"
    );
    assert!(
        !stdout.contains("delete manual"),
        "no pruning without --prune: {stdout}"
    );
    assert_eq!(names().await, json!(["manual"]), "plan changed nothing");
    let (ok, stdout, stderr) = cli(&["apply", &dir_arg, "--url", &worker.url]).await;
    assert!(ok && stdout.contains("p: created"), "{stdout}{stderr}");
    assert_eq!(names().await, json!(["manual", "p"]));
    let (_, stdout, _) = cli(&["plan", &dir_arg, "--url", &worker.url]).await;
    assert!(stdout.contains("No changes"), "{stdout}");
    std::fs::write(
        desired.join("p.yaml"),
        "name: p\nconfig:\n  connector.class: datagen\n  topic.prefix: gp\n  total: 6\n",
    )
    .expect("p");
    let (_, stdout, _) = cli(&["plan", &dir_arg, "--url", &worker.url, "--prune"]).await;
    assert!(
        stdout.contains("~ update p")
            && stdout.contains("~ total: \"5\" -> \"6\"")
            && stdout.contains("- delete manual"),
        "{stdout}"
    );
    let (_, json_plan, _) = cli(&[
        "plan",
        &dir_arg,
        "--url",
        &worker.url,
        "--prune",
        "-o",
        "json",
    ])
    .await;
    let steps: Value = serde_json::from_str(&json_plan).expect("json plan");
    assert_eq!(steps.as_array().map(Vec::len), Some(2), "{steps}");
    let (ok, _, stderr) = cli(&["apply", &dir_arg, "--url", &worker.url, "--prune"]).await;
    assert!(ok, "{stderr}");
    assert_eq!(names().await, json!(["p"]));
    let (_, c) = call(
        &client,
        Method::GET,
        &url("/connectors/p/config"),
        None,
        None,
    )
    .await;
    assert_eq!(c["total"], "6");
    drop(worker);
}

/// A test CA and a `localhost`/127.0.0.1 server certificate it signed (valid until 2126),
/// generated once with openssl for these tests only.
const TEST_CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBnzCCAUWgAwIBAgIUd558Uu/4CANSEBMkMS5wLYyVNEAwCgYIKoZIzj0EAwIw
HDEaMBgGA1UEAwwRdHJpYnV0YXJ5IHRlc3QgQ0EwIBcNMjYxMTIzMDIyNzQ5WhgP
MjEyNjEwMzAwMjI3NDlaMBwxGjAYBgNVBAMMEXRyaWJ1dGFyeSB0ZXN0IENBMFkw
EwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEhP5wikRLWIHUKgmU4JJUegRl7PjiXNLo
9A7FOkhJYNUWVGtMAPR8Qdh3yhONCS1hy9llGUHK3vBVq00smR0S3KNjMGEwHQYD
VR0OBBYEFIMQKfU6kFSziHuFF4pfmzYUNuuwMB8GA1UdIwQYMBaAFIMQKfU6kFSz
iHuFF4pfmzYUNuuwMA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQDAgIEMAoG
CCqGSM49BAMCA0gAMEUCIQC2B7QkzeQAmeDzEMvCnkodCuXcl71NkZAn4wBjN7OA
1gIgXeTMMyxiyITss1Fiu0SHo3+R558lWRbcnv27K8ILzqE=
-----END CERTIFICATE-----\n";
const TEST_CERT_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBxzCCAW2gAwIBAgIUIDPaSzeS6df9pJhgTKlHv8ln6QcwCgYIKoZIzj0EAwIw
HDEaMBgGA1UEAwwRdHJpYnV0YXJ5IHRlc3QgQ0EwIBcNMjYxMTIzMDIyNzQ5WhgP
MjEyNjEwMzAwMjI3NDlaMBQxEjAQBgNVBAMMCWxvY2FsaG9zdDBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABKvo1OTd3v1u126UJ6lvuFbcdz3T93MfrMuPzILNKRmY
7k+zo6KQkgoP3Lci6hPr+gLaJ5HCx03K7GFmcBPR5TajgZIwgY8wGgYDVR0RBBMw
EYIJbG9jYWxob3N0hwR/AAABMAwGA1UdEwEB/wQCMAAwDgYDVR0PAQH/BAQDAgeA
MBMGA1UdJQQMMAoGCCsGAQUFBwMBMB0GA1UdDgQWBBSgBdJ4drTGz3XdC7PEnAyv
IxWAajAfBgNVHSMEGDAWgBSDECn1OpBUs4h7hReKX5s2FDbrsDAKBggqhkjOPQQD
AgNIADBFAiBf03PyIIkgjrnGxvBSJYr7JpuGAfQXfdhOj+rImJxbeAIhAKS4805l
50UvMjf3iCU+B36JKbNAPOYhbAy2XHDIHWgD
-----END CERTIFICATE-----\n";
const TEST_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgyr8K0wJe1sLODmHj
RaRxUfTASOXsA0HbLvbKJUV/gjyhRANCAASr6NTk3d79btdulCepb7hW3Hc90/dz
H6zLj8yCzSkZmO5Ps6OikJIKD9y3IuoT6/oC2ieRwsdNyuxhZnAT0eU2
-----END PRIVATE KEY-----\n";

/// Avro converters reach the worker's own schema registry over HTTP with basic auth
/// (`basic.auth.credentials.source=USER_INFO`); wrong credentials fail the task visibly.
#[tokio::test(flavor = "multi_thread")]
async fn registry_basic_auth_through_the_worker_rest_port() {
    use reqwest::Method;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = dir.path().join("worker.yaml");
    std::fs::write(
        &config,
        format!("rest:\n  listen: 127.0.0.1:{port}\n  auth:\n    tokens:\n      - token: admin-t0ken\n    users:\n      - {{username: ops, password: hunter2}}\n"),
    )
    .expect("config");
    let worker = start(
        dir.path(),
        "http",
        port,
        &["--config", &config.display().to_string()],
    )
    .await;
    let client = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", worker.url);
    let connector = |name: &str, user_info: &str| {
        json!({"name": name, "config": {
            "connector.class": "datagen", "topic.prefix": name, "tables": "orders", "total": "5",
            "value.converter": "io.confluent.connect.avro.AvroConverter",
            "value.converter.schema.registry.url": worker.url,
            "value.converter.basic.auth.credentials.source": "USER_INFO",
            "value.converter.basic.auth.user.info": user_info,
        }})
        .to_string()
    };
    let token = Some("admin-t0ken");
    let (status, body) = call(
        &client,
        Method::POST,
        &url("/connectors"),
        Some(&connector("good", "ops:hunter2")),
        token,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = call(
        &client,
        Method::POST,
        &url("/connectors"),
        Some(&connector("bad", "ops:wrong")),
        token,
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // The registry answers only with credentials, like the rest of the API.
    let anonymous = client.get(url("/subjects")).send().await.expect("request");
    assert_eq!(anonymous.status().as_u16(), 401);
    eventually("the good connector's schema is registered", || async {
        let subjects: Value = client
            .get(url("/subjects"))
            .basic_auth("ops", Some("hunter2"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        subjects
            .as_array()?
            .iter()
            .any(|s| s == "good.orders-value")
            .then_some(())
    })
    .await;
    let trace = eventually(
        "the bad connector fails with the registry's 401",
        || async {
            let (_, status) = call(
                &client,
                Method::GET,
                &url("/connectors/bad/status"),
                None,
                token,
            )
            .await;
            (status["connector"]["state"] == "FAILED").then(|| {
                status["tasks"][0]["trace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
        },
    )
    .await;
    assert!(trace.contains("401"), "{trace}\n{}", worker.log());
    let (_, status) = call(
        &client,
        Method::GET,
        &url("/connectors/good/status"),
        None,
        token,
    )
    .await;
    assert_eq!(status["connector"]["state"], "RUNNING", "{status}");
}

/// `GET /` on the Kafka storage reports the broker's cluster id, as Kafka Connect does (a
/// client reading the same broker gets the same id); the embedded log reports its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_reports_the_kafka_cluster_id() {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    let env = crate::support::env::TestEnv::load();
    let bootstrap = env.kafka_bootstrap.clone();
    let expected = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .expect("consumer");
        consumer.client().fetch_cluster_id(Duration::from_secs(10))
    })
    .await
    .expect("task")
    .expect("the broker reports a cluster id");

    let dir = tempfile::tempdir().expect("tempdir");
    let worker_yaml = dir.path().join("worker.yaml");
    std::fs::write(
        &worker_yaml,
        format!(
            "storage:\n  type: kafka\n  bootstrap_servers: {}\n  offset.storage.topic: {}\n",
            env.kafka_bootstrap,
            crate::support::env::unique_name("clusterid")
        ),
    )
    .expect("worker.yaml");
    let port = free_port();
    let worker = start(
        dir.path(),
        "http",
        port,
        &[
            "--config",
            &worker_yaml.to_string_lossy(),
            "--rest-port",
            &port.to_string(),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let (status, root) = call(
        &client,
        reqwest::Method::GET,
        &format!("{}/", worker.url),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(root["kafka_cluster_id"], json!(expected), "{root}");
}
