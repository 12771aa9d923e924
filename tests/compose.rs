//! The docker-compose stack, checked without a Docker engine: the compose file, Dockerfile,
//! Prometheus and Grafana files parse and are wired together (services, health checks,
//! `depends_on` conditions, every mounted file exists), the worker and connector configs the
//! stack registers validate with the real binary, the seeded MySQL and Postgres schemas are
//! captured by those very connector configs on the local test servers, and every metric the
//! dashboard plots is one the worker exports.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::env::{TestEnv, host_port, unique_name};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A YAML file as JSON. The root package has no YAML crate of its own, so this goes through
/// the test environment's Python (PyYAML), which the test servers already require.
fn yaml(path: &Path) -> Value {
    let env = TestEnv::load();
    let output = Command::new(&env.python)
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
        ])
        .arg(path)
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "{} is not valid YAML: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("python wrote JSON")
}

fn compose() -> Value {
    yaml(&repo().join("docker-compose.yml"))
}

/// Services that run once and exit: the others must have a health check.
const ONE_SHOT: [&str; 2] = ["minio-setup", "register-connectors"];

#[test]
fn compose_services_are_healthy_and_ordered() {
    let compose = compose();
    let services = compose["services"].as_object().expect("services map");
    for name in [
        "mysql",
        "postgres",
        "kafka",
        "schema-registry",
        "minio",
        "minio-setup",
        "tributary",
        "register-connectors",
        "prometheus",
        "grafana",
    ] {
        assert!(services.contains_key(name), "service {name} is missing");
    }
    for (name, service) in services {
        let is_one_shot = ONE_SHOT.contains(&name.as_str());
        if is_one_shot {
            assert_eq!(service["restart"], "no", "{name} runs once");
        } else {
            let test = &service["healthcheck"]["test"];
            assert!(
                test.as_array().is_some_and(|t| t.len() >= 2),
                "{name} has no healthcheck test: {test}"
            );
        }
        let Some(deps) = service.get("depends_on") else {
            continue;
        };
        let deps = deps
            .as_object()
            .unwrap_or_else(|| panic!("{name}: depends_on must be the long form with conditions"));
        for (dep, spec) in deps {
            let target = services
                .get(dep)
                .unwrap_or_else(|| panic!("{name} depends on unknown service {dep}"));
            let wanted = if ONE_SHOT.contains(&dep.as_str()) {
                "service_completed_successfully"
            } else {
                assert!(
                    target.get("healthcheck").is_some(),
                    "{dep} has no healthcheck"
                );
                "service_healthy"
            };
            assert_eq!(spec["condition"], wanted, "{name} -> {dep}");
        }
    }
    // The worker starts only when everything it talks to is up, and connectors are
    // registered only when the worker is healthy.
    let worker_deps: BTreeSet<&str> = services["tributary"]["depends_on"]
        .as_object()
        .map(|d| d.keys().map(String::as_str).collect())
        .unwrap_or_default();
    for dep in [
        "mysql",
        "postgres",
        "kafka",
        "schema-registry",
        "minio-setup",
    ] {
        assert!(worker_deps.contains(dep), "tributary must wait for {dep}");
    }
    assert_eq!(
        services["register-connectors"]["depends_on"]["tributary"]["condition"],
        "service_healthy"
    );
    // No two services publish the same host port.
    let mut ports = BTreeSet::new();
    for (name, service) in services {
        for port in service["ports"].as_array().into_iter().flatten() {
            let host = port
                .as_str()
                .and_then(|p| p.split(':').next())
                .unwrap_or_else(|| panic!("{name}: port {port} must be \"HOST:CONTAINER\""));
            assert!(
                ports.insert(host.to_owned()),
                "host port {host} published twice"
            );
        }
    }
}

#[test]
fn compose_databases_are_configured_for_cdc() {
    let compose = compose();
    let args = |service: &str| -> Vec<String> {
        compose["services"][service]["command"]
            .as_array()
            .expect("command list")
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect()
    };
    let mysql = args("mysql");
    for flag in [
        "--binlog-format=ROW",
        "--binlog-row-image=FULL",
        "--binlog-row-metadata=FULL",
        "--gtid-mode=ON",
        "--enforce-gtid-consistency=ON",
    ] {
        assert!(mysql.iter().any(|a| a == flag), "mysql lacks {flag}");
    }
    assert!(
        compose["services"]["mysql"]["image"]
            .as_str()
            .is_some_and(|i| i.starts_with("mysql:8")),
        "MySQL 8"
    );
    let postgres = args("postgres");
    assert!(
        postgres.iter().any(|a| a == "wal_level=logical"),
        "{postgres:?}"
    );
    assert!(
        compose["services"]["postgres"]["image"]
            .as_str()
            .is_some_and(|i| i.starts_with("postgres:16")),
        "Postgres 16"
    );
    let kafka = &compose["services"]["kafka"];
    assert!(
        kafka["image"]
            .as_str()
            .is_some_and(|i| i.starts_with("apache/kafka:")),
        "apache/kafka image"
    );
    assert_eq!(
        kafka["environment"]["KAFKA_PROCESS_ROLES"], "broker,controller",
        "KRaft"
    );
}

/// Every `./path:/container/path` bind mount names a file or directory in the repository.
#[test]
fn compose_mounts_exist() {
    let compose = compose();
    let mut mounts = 0;
    for (name, service) in compose["services"].as_object().expect("services") {
        for volume in service["volumes"].as_array().into_iter().flatten() {
            let spec = volume.as_str().expect("short volume syntax");
            let source = spec.split(':').next().unwrap_or(spec);
            if !source.starts_with("./") {
                let named = compose["volumes"].get(source);
                assert!(named.is_some(), "{name}: volume {source} is not declared");
                continue;
            }
            let path = repo().join(source);
            assert!(
                path.exists(),
                "{name} mounts {source}, which does not exist"
            );
            mounts += 1;
        }
        if let Some(build) = service.get("build") {
            let context = repo().join(build["context"].as_str().unwrap_or("."));
            let dockerfile = build["dockerfile"].as_str().unwrap_or("Dockerfile");
            assert!(
                context.join(dockerfile).is_file(),
                "{name}: no {dockerfile}"
            );
        }
    }
    assert!(
        mounts >= 10,
        "expected the seed, config and dashboard mounts, got {mounts}"
    );
}

#[test]
fn dockerfile_is_multi_stage_small_and_non_root() {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "builder + runtime stages: {froms:?}");
    assert!(
        froms[0].contains("rust:") && froms[0].contains(" AS build"),
        "{froms:?}"
    );
    assert!(froms[1].contains("-slim"), "small runtime image: {froms:?}");
    assert!(text.contains("cmake"), "librdkafka builds with cmake");
    let user = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    assert_ne!(user.trim(), "root");
    assert!(text.contains("EXPOSE 8083"));
    assert!(
        text.contains("http://localhost:8083/health"),
        "healthcheck on /health"
    );
    assert!(text.contains("VOLUME [\"/var/lib/tributary\"]"));
    // COPY sources from the build context exist (the context is the repository).
    for line in text
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for source in &parts[1..parts.len() - 1] {
            assert!(repo().join(source).exists(), "COPY {source}: missing");
        }
    }
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).expect(".dockerignore");
    for entry in ["target/", ".test-env/", "data/"] {
        assert!(
            ignore.lines().any(|l| l == entry),
            ".dockerignore lacks {entry}"
        );
    }
    // The data directory the image declares is the one the compose worker config uses.
    let worker =
        std::fs::read_to_string(repo().join("deploy/tributary/worker.yaml")).expect("worker.yaml");
    assert!(worker.contains("data_dir: /var/lib/tributary"));
}

fn connector_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("deploy/connectors"))
        .expect("deploy/connectors")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn connector(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("JSON")
}

/// The worker config and every connector the stack registers pass `tributary validate`, and
/// they are the four the stack promises: two sources, an S3 and a JDBC sink.
#[test]
fn compose_worker_and_connector_configs_validate() {
    let files = connector_files();
    let classes: BTreeSet<String> = files
        .iter()
        .map(|f| {
            connector(f)["config"]["connector.class"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    let expected: BTreeSet<String> = [
        "io.debezium.connector.mysql.MySqlConnector",
        "io.debezium.connector.postgresql.PostgresConnector",
        "io.confluent.connect.s3.S3SinkConnector",
        "io.debezium.connector.jdbc.JdbcSinkConnector",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(classes, expected);
    let worker = repo().join("deploy/tributary/worker.yaml");
    let output = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .arg("validate")
        .arg(&worker)
        .args(&files)
        .output()
        .expect("run validate");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "validate failed:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for file in files.iter().chain([&worker]) {
        assert!(
            stdout.contains(&format!("{}: ok", file.display())),
            "{stdout}"
        );
    }
    // The hosts the connectors name are compose services.
    let compose = compose();
    for file in &files {
        let config = &connector(file)["config"];
        for key in ["database.hostname", "store.url", "connection.url"] {
            let Some(value) = config[key].as_str() else {
                continue;
            };
            let host = value
                .split("://")
                .last()
                .and_then(|r| r.split([':', '/']).next())
                .unwrap_or(value);
            assert!(
                compose["services"].get(host).is_some(),
                "{}: {key} names {host}, not a compose service",
                file.display()
            );
        }
    }
}

#[test]
fn prometheus_scrapes_the_worker_and_grafana_is_provisioned() {
    let prometheus = yaml(&repo().join("deploy/prometheus/prometheus.yml"));
    let job = &prometheus["scrape_configs"][0];
    assert_eq!(job["metrics_path"], "/metrics");
    assert_eq!(job["static_configs"][0]["targets"][0], "tributary:8083");
    let datasource = yaml(&repo().join("deploy/grafana/provisioning/datasources/prometheus.yml"));
    assert_eq!(
        datasource["datasources"][0]["url"],
        "http://prometheus:9090"
    );
    let uid = datasource["datasources"][0]["uid"].clone();
    let provider = yaml(&repo().join("deploy/grafana/provisioning/dashboards/tributary.yml"));
    let path = provider["providers"][0]["options"]["path"]
        .as_str()
        .expect("provider path")
        .to_owned();
    let compose = compose();
    let mounted = compose["services"]["grafana"]["volumes"]
        .as_array()
        .expect("grafana volumes")
        .iter()
        .filter_map(Value::as_str)
        .any(|v| {
            v.ends_with(&format!("{path}:ro")) && v.starts_with("./deploy/grafana/dashboards")
        });
    assert!(mounted, "the dashboards directory is mounted at {path}");
    let dashboard = dashboard();
    for panel in dashboard["panels"].as_array().expect("panels") {
        assert_eq!(panel["datasource"]["uid"], uid, "{}", panel["title"]);
    }
}

fn dashboard() -> Value {
    let text = std::fs::read_to_string(repo().join("deploy/grafana/dashboards/tributary.json"))
        .expect("dashboard");
    serde_json::from_str(&text).expect("dashboard JSON")
}

/// Metric names in the dashboard's PromQL (histogram series reduced to their family).
fn dashboard_metrics() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for panel in dashboard()["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("expr");
            for token in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if token.starts_with("tributary_") || token.starts_with("process_") {
                    let family = token.strip_suffix("_bucket").unwrap_or(token);
                    names.insert(family.to_owned());
                }
            }
        }
    }
    names
}

/// A `tributary run` on an ephemeral REST port, killed when dropped.
struct Worker {
    child: std::process::Child,
    url: String,
    log: PathBuf,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Worker {
    fn start(dir: &Path, connectors: &Path) -> Worker {
        Worker::start_with(dir, connectors, &[])
    }

    fn start_with(dir: &Path, connectors: &Path, args: &[&str]) -> Worker {
        let log = dir.join("worker.log");
        let child = Command::new(env!("CARGO_BIN_EXE_tributary"))
            .args(["run", "--rest-port", "0", "--data-dir"])
            .arg(dir.join("data"))
            .arg("--connectors-dir")
            .arg(connectors)
            .args(args)
            .env("TRIBUTARY_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn tributary");
        let mut worker = Worker {
            child,
            url: String::new(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&worker.log).unwrap_or_default();
            if let Some(url) = text
                .lines()
                .find(|l| l.contains("REST API ready"))
                .and_then(|l| l.split("url=").nth(1))
                .and_then(|u| u.split_whitespace().next())
            {
                worker.url = url.to_owned();
                return worker;
            }
            if let Ok(Some(status)) = worker.child.try_wait() {
                panic!("tributary exited ({status}):\n{text}");
            }
            assert!(Instant::now() < deadline, "no REST API ready line:\n{text}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `GET /metrics` (plain HTTP/1.0 over a socket: the worker listens on 127.0.0.1).
    fn metrics(&self) -> String {
        use std::io::{Read, Write};
        let addr = self.url.trim_start_matches("http://");
        let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
            return String::new();
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let request = format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        if stream.write_all(request.as_bytes()).is_err() {
            return String::new();
        }
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `done(metrics text)` holds, or panics with the last scrape and the log.
    fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let text = self.metrics();
            if done(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n--- metrics:\n{text}\n--- log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The value of one sample line `name{labels} value` whose labels contain every `label`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Datagen into the log and a file sink out of it: `/metrics` counts every record as durable
/// on both sides with an end-to-end latency observation each, and every metric the Grafana
/// dashboard plots is a family the worker exports.
#[test]
fn metrics_cover_the_pipeline_and_the_dashboard() {
    let dir = tempfile::tempdir().expect("tempdir");
    let connectors = dir.path().join("connectors");
    std::fs::create_dir(&connectors).expect("mkdir");
    let total = 3000;
    std::fs::write(
        connectors.join("gen.yaml"),
        format!(
            "name: gen\nconfig:\n  connector.class: datagen\n  topic.prefix: mx\n  tables: [orders]\n  total: {total}\n"
        ),
    )
    .expect("write");
    let out = dir.path().join("out.jsonl");
    std::fs::write(
        connectors.join("sink.yaml"),
        format!(
            "name: sink\nconfig:\n  connector.class: FileStreamSink\n  topics: mx.orders\n  file: {}\n",
            out.display()
        ),
    )
    .expect("write");
    let worker = Worker::start(dir.path(), &connectors);
    let want = f64::from(total);
    let text = worker.wait_for("every record durable in the log and in the file", |t| {
        sample(
            t,
            "tributary_task_records_durable_total",
            &["connector=\"gen\""],
        ) == Some(want)
            && sample(
                t,
                "tributary_task_records_durable_total",
                &["connector=\"sink\""],
            ) == Some(want)
    });
    let e2e = "tributary_end_to_end_latency_seconds_count";
    assert_eq!(
        sample(&text, e2e, &["connector=\"gen\"", "stage=\"log\""]),
        Some(want)
    );
    assert_eq!(
        sample(&text, e2e, &["connector=\"sink\"", "stage=\"sink\""]),
        Some(want)
    );
    let inf = sample(
        &text,
        "tributary_end_to_end_latency_seconds_bucket",
        &["connector=\"sink\"", "le=\"+Inf\""],
    );
    assert_eq!(inf, Some(want), "+Inf bucket counts every observation");
    let produced = sample(
        &text,
        "tributary_produce_latency_seconds_count",
        &["connector=\"gen\""],
    );
    let batches = sample(
        &text,
        "tributary_task_batches_total",
        &["connector=\"gen\""],
    );
    assert!(produced.is_some_and(|n| n >= 1.0), "{produced:?}");
    assert_eq!(produced, batches, "one produce latency per batch");
    assert_eq!(
        sample(&text, "tributary_task_errors_total", &["connector=\"gen\""]),
        Some(0.0)
    );
    assert!(sample(&text, "process_resident_memory_bytes", &[]).is_some_and(|b| b > 0.0));
    let families: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    for name in dashboard_metrics() {
        assert!(
            families.contains(name.as_str()),
            "the dashboard plots {name}, which /metrics does not export"
        );
    }
}

/// Loads a seed file into MariaDB as root, renaming the `inventory` database.
fn load_mariadb(env: &TestEnv, sql: &str) {
    let port = env.var("TRIB_MARIADB_PORT").expect("TRIB_MARIADB_PORT");
    let bin = env.var("TRIB_MARIADB_BIN").unwrap_or("mariadb");
    let mut child = Command::new(bin)
        .args(["-h", "127.0.0.1", "-P", port, "-u", "root"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mariadb client");
    if let Some(mut stdin) = child.stdin.take() {
        std::io::Write::write_all(&mut stdin, sql.as_bytes()).expect("write sql");
    }
    let output = child.wait_with_output().expect("mariadb");
    assert!(
        output.status.success(),
        "seed SQL failed on MariaDB: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn psql(env: &TestEnv, url: &str, sql: &str) {
    let output = Command::new(&env.psql_bin)
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .expect("psql");
    assert!(
        output.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn password(url: &str) -> String {
    url.split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(auth, _)| auth.split_once(':'))
        .map(|(_, pw)| pw.to_owned())
        .expect("password in URL")
}

/// The compose stack's four connector configs, pointed at the local test servers (only hosts,
/// ports, credentials and names change) on a worker with the stack's Avro converters (the
/// built-in registry standing in for the Confluent one): the seeded MySQL and Postgres schemas
/// are snapshotted, later changes stream, and both reach S3 objects and (MySQL) JDBC tables.
#[test]
fn compose_pipeline_runs_on_local_servers() {
    let env = TestEnv::load();
    let dir = tempfile::tempdir().expect("tempdir");
    let connectors = dir.path().join("connectors");
    std::fs::create_dir(&connectors).expect("mkdir");

    // MySQL source against MariaDB: the seed file under a unique database name.
    let db = unique_name("inv");
    let seed = std::fs::read_to_string(repo().join("deploy/mysql/01-inventory.sql"))
        .expect("seed")
        .replace(
            "CREATE DATABASE IF NOT EXISTS inventory;",
            &format!("CREATE DATABASE {db};"),
        )
        .replace("USE inventory;", &format!("USE {db};"));
    load_mariadb(&env, &seed);
    let mut mysql = connector(&repo().join("deploy/connectors/mysql-inventory.json"));
    let mysql_prefix = unique_name("my");
    {
        let config = mysql["config"].as_object_mut().expect("config");
        let hp = host_port(&env.mariadb_cdc_url).expect("host:port");
        let (host, port) = hp.split_once(':').expect("host:port");
        config.insert("database.hostname".into(), host.into());
        config.insert("database.port".into(), port.into());
        config.insert(
            "database.password".into(),
            password(&env.mariadb_cdc_url).into(),
        );
        config.insert("database.include.list".into(), db.clone().into());
        config.insert("topic.prefix".into(), mysql_prefix.clone().into());
        let server_id = 100_000 + rand::random::<u32>() % 1_000_000;
        config.insert("database.server.id".into(), server_id.to_string().into());
    }
    std::fs::write(connectors.join("mysql.json"), mysql.to_string()).expect("write");

    // Postgres source: the seed file in a unique database (it creates the publication).
    let pg_db = unique_name("ecom");
    psql(&env, &env.pg_url, &format!("CREATE DATABASE {pg_db}"));
    let pg_admin = crate::support::env::with_database(&env.pg_url, &pg_db);
    let seed =
        std::fs::read_to_string(repo().join("deploy/postgres/01-ecommerce.sql")).expect("seed");
    psql(&env, &pg_admin, &seed);
    let mut pg = connector(&repo().join("deploy/connectors/postgres-ecommerce.json"));
    let pg_prefix = unique_name("pg");
    let slot = unique_name("slot");
    {
        let config = pg["config"].as_object_mut().expect("config");
        let hp = host_port(&env.pg_cdc_url).expect("host:port");
        let (host, port) = hp.split_once(':').expect("host:port");
        config.insert("database.hostname".into(), host.into());
        config.insert("database.port".into(), port.into());
        config.insert("database.password".into(), password(&env.pg_cdc_url).into());
        config.insert("database.dbname".into(), pg_db.clone().into());
        config.insert("topic.prefix".into(), pg_prefix.clone().into());
        config.insert("slot.name".into(), slot.clone().into());
    }
    std::fs::write(connectors.join("pg.json"), pg.to_string()).expect("write");

    // S3 sink into a fresh bucket of the local S3 server.
    let bucket = unique_name("cdc");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let s3 = s3_client(&env);
    runtime
        .block_on(s3.create_bucket().bucket(&bucket).send())
        .expect("create bucket");
    let mut s3_sink = connector(&repo().join("deploy/connectors/s3-sink.json"));
    {
        let config = s3_sink["config"].as_object_mut().expect("config");
        config.insert(
            "topics.regex".into(),
            format!("({mysql_prefix}|{pg_prefix})\\..*").into(),
        );
        config.insert("s3.bucket.name".into(), bucket.clone().into());
        config.insert("s3.region".into(), env.s3_region.clone().into());
        config.insert("store.url".into(), env.s3_endpoint.clone().into());
        config.insert("aws.access.key.id".into(), env.s3_access_key.clone().into());
        config.insert(
            "aws.secret.access.key".into(),
            env.s3_secret_key.clone().into(),
        );
    }
    std::fs::write(connectors.join("s3.json"), s3_sink.to_string()).expect("write");

    // JDBC sink of the MySQL topics into a fresh Postgres database.
    let warehouse = unique_name("wh");
    psql(&env, &env.pg_url, &format!("CREATE DATABASE {warehouse}"));
    let mut jdbc = connector(&repo().join("deploy/connectors/jdbc-sink.json"));
    {
        let config = jdbc["config"].as_object_mut().expect("config");
        let hp = host_port(&env.pg_url).expect("host:port");
        let user = env
            .pg_url
            .split_once("://")
            .and_then(|(_, r)| r.split_once(':'))
            .map(|(u, _)| u.to_owned())
            .expect("user in URL");
        config.insert(
            "topics.regex".into(),
            format!("{mysql_prefix}\\.{db}\\..*").into(),
        );
        config.insert(
            "connection.url".into(),
            format!("jdbc:postgresql://{hp}/{warehouse}").into(),
        );
        config.insert("connection.username".into(), user.into());
        config.insert("connection.password".into(), password(&env.pg_url).into());
    }
    std::fs::write(connectors.join("jdbc.json"), jdbc.to_string()).expect("write");

    // The stack's worker config, on the embedded log with the built-in registry.
    let worker_yaml = dir.path().join("worker.yaml");
    std::fs::write(
        &worker_yaml,
        "converters:\n  key.converter: io.confluent.connect.avro.AvroConverter\n  value.converter: io.confluent.connect.avro.AvroConverter\n",
    )
    .expect("write");
    let stack = std::fs::read_to_string(repo().join("deploy/tributary/worker.yaml")).expect("read");
    assert!(
        stack.contains("value.converter: io.confluent.connect.avro.AvroConverter"),
        "the stack runs Avro, as this test does"
    );
    let config_arg = worker_yaml.to_string_lossy().into_owned();
    let worker = Worker::start_with(dir.path(), &connectors, &["--config", &config_arg]);
    let end = |text: &str, topic: &str| {
        sample(
            text,
            "tributary_log_partition_end_offset",
            &[&format!("topic=\"{topic}\"")],
        )
        .unwrap_or(0.0)
    };
    let seeded = [
        (format!("{mysql_prefix}.{db}.products"), 9.0),
        (format!("{mysql_prefix}.{db}.products_on_hand"), 9.0),
        (format!("{mysql_prefix}.{db}.customers"), 4.0),
        (format!("{mysql_prefix}.{db}.orders"), 4.0),
        (format!("{pg_prefix}.public.customers"), 3.0),
        (format!("{pg_prefix}.public.orders"), 3.0),
        (format!("{pg_prefix}.public.order_lines"), 4.0),
    ];
    worker.wait_for("the snapshot of every seeded table", |t| {
        seeded.iter().all(|(topic, n)| end(t, topic) >= *n)
    });

    // Changes after the snapshot stream.
    load_mariadb(
        &env,
        &format!(
            "USE {db}; UPDATE products_on_hand SET quantity = quantity + 1 WHERE product_id = 101;"
        ),
    );
    psql(
        &env,
        &pg_admin,
        "INSERT INTO public.orders (customer_id, total) VALUES (1, 5.00)",
    );
    let text = worker.wait_for("the streamed MySQL update and Postgres insert", |t| {
        end(t, &seeded[1].0) >= 10.0 && end(t, &seeded[5].0) >= 4.0
    });
    for (topic, n) in &seeded {
        assert!(end(&text, topic) >= *n, "{topic}: {}", end(&text, topic));
    }
    // Both sources report how far behind their server they are, in bytes (MySQL: binlog
    // bytes not yet read; Postgres: slot lag), measured every few seconds while streaming.
    let text = worker.wait_for("source lag in bytes from both sources", |t| {
        ["mysql-inventory", "postgres-ecommerce"].iter().all(|c| {
            sample(
                t,
                "tributary_source_lag_bytes",
                &[&format!("connector=\"{c}\"")],
            )
            .is_some()
        })
    });
    let mysql_lag = sample(
        &text,
        "tributary_source_lag_bytes",
        &["connector=\"mysql-inventory\""],
    );
    assert!(
        mysql_lag.is_some_and(|b| b < 64.0 * 1024.0 * 1024.0),
        "an idle, caught-up source is not a whole binlog file behind: {mysql_lag:?}"
    );

    // JDBC: the MySQL tables in Postgres (table.name.format ${topic}, dots -> _), with the
    // streamed update applied.
    let warehouse_url = crate::support::env::with_database(&env.pg_url, &warehouse);
    let table = |t: &str| format!("{mysql_prefix}_{db}_{t}");
    let query = |sql: &str| -> String {
        let out = Command::new(&env.psql_bin)
            .args([warehouse_url.as_str(), "-At", "-c", sql])
            .output()
            .expect("psql");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let on_hand = format!(
        "SELECT quantity FROM {} WHERE product_id = 101",
        table("products_on_hand")
    );
    while query(&on_hand) != "4" {
        assert!(
            Instant::now() < deadline,
            "JDBC sink: products_on_hand 101 is {:?}, not 4\n{}",
            query(&on_hand),
            worker.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    for (t, n) in [
        ("products", 9),
        ("products_on_hand", 9),
        ("customers", 4),
        ("orders", 4),
    ] {
        let count = query(&format!("SELECT count(*) FROM {}", table(t)));
        assert_eq!(count, n.to_string(), "rows of {}", table(t));
    }

    // S3: every topic's records in JSON objects (one record per line), the streamed changes
    // included (rotate.schedule.interval.ms flushes them).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let lines = runtime.block_on(s3_lines_per_topic(&s3, &bucket));
        let missing: Vec<String> = seeded
            .iter()
            .enumerate()
            .filter(|(i, (topic, n))| {
                let want = if *i == 1 || *i == 5 { n + 1.0 } else { *n };
                (lines.get(topic.as_str()).copied().unwrap_or(0) as f64) < want
            })
            .map(|(_, (topic, _))| format!("{topic}: {:?}", lines.get(topic.as_str())))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "S3 objects lack records: {missing:?}\n{}",
            worker.log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(worker);
    // Clean up: the slot (the worker was killed, so it did not drop it), then the database.
    let cleanup = [
        format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{slot}' AND NOT active"
        ),
        format!("DROP DATABASE IF EXISTS {pg_db} WITH (FORCE)"),
        format!("DROP DATABASE IF EXISTS {warehouse} WITH (FORCE)"),
    ];
    for sql in cleanup {
        let _ = Command::new(&env.psql_bin)
            .args([env.pg_url.as_str(), "-q", "-c", &sql])
            .output();
    }
}

fn s3_client(env: &TestEnv) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    let credentials = Credentials::new(
        &env.s3_access_key,
        &env.s3_secret_key,
        None,
        None,
        "test-env",
    );
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(env.s3_region.clone()))
        .endpoint_url(&env.s3_endpoint)
        .credentials_provider(credentials)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Lines (records) of every object in `bucket`, per topic (`topics/<topic>/...`).
async fn s3_lines_per_topic(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(list) = s3.list_objects_v2().bucket(bucket).send().await else {
        return out;
    };
    for object in list.contents() {
        let Some(key) = object.key() else { continue };
        let Some(topic) = key
            .strip_prefix("topics/")
            .and_then(|k| k.split('/').next())
        else {
            continue;
        };
        let Ok(got) = s3.get_object().bucket(bucket).key(key).send().await else {
            continue;
        };
        let Ok(body) = got.body.collect().await else {
            continue;
        };
        let bytes = body.into_bytes();
        let lines = bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count();
        *out.entry(topic.to_owned()).or_insert(0) += lines;
    }
    out
}
