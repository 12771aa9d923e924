//! The CLI client of a running worker's REST API (which is Kafka Connect's, so this also
//! drives Kafka Connect): `tributary connectors ...`, and GitOps `plan` / `apply` of a
//! directory of connector files.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tributary_runtime::config::{ConnectorConfig, RawConfig, parse_connector_document};
use tributary_runtime::rest::gitops::{PlanStep, plan, read_connector_files};

/// How results are printed.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Human-readable tables.
    Table,
    /// The REST API's JSON.
    Json,
}

/// Where the worker is and how to talk to it.
#[derive(Args)]
pub struct Remote {
    /// REST URL of the worker.
    #[arg(
        long,
        global = true,
        env = "TRIBUTARY_URL",
        default_value = "http://127.0.0.1:8083"
    )]
    pub url: String,
    /// Bearer token (when the worker has rest.auth).
    #[arg(long, global = true, env = "TRIBUTARY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Basic-auth credentials as user:password (when the worker has rest.auth).
    #[arg(long, global = true, env = "TRIBUTARY_USER", hide_env_values = true)]
    pub user: Option<String>,
    /// PEM CA certificate to trust for an HTTPS worker with a private certificate.
    #[arg(long, global = true)]
    pub cacert: Option<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value = "table")]
    pub output: Output,
}

#[derive(Args)]
pub struct ConnectorsArgs {
    #[command(subcommand)]
    pub command: ConnectorsCommand,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(Subcommand)]
pub enum ConnectorsCommand {
    /// List connectors with their state.
    List,
    /// Show a connector's config (secrets hidden) and tasks.
    Get { name: String },
    /// Create a connector from a YAML or JSON file.
    Create {
        #[arg(short = 'f', long)]
        file: PathBuf,
    },
    /// Replace a connector's config from a file (creates it if missing); its tasks restart.
    Update {
        #[arg(short = 'f', long)]
        file: PathBuf,
    },
    /// Delete a connector (its offsets are kept).
    Delete { name: String },
    /// Pause: stop polling, keep connections.
    Pause { name: String },
    /// Resume a paused or stopped connector.
    Resume { name: String },
    /// Stop: shut the tasks down and release their resources.
    Stop { name: String },
    /// Restart the connector's tasks.
    Restart {
        name: String,
        /// Kafka Connect's includeTasks (answers with the status).
        #[arg(long)]
        include_tasks: bool,
        /// Restart only FAILED tasks.
        #[arg(long)]
        only_failed: bool,
    },
    /// Connector and task states, failure traces, and snapshot progress.
    Status {
        name: String,
        /// Refresh every second until interrupted.
        #[arg(long)]
        watch: bool,
    },
    /// Committed offsets.
    Offsets { name: String },
}

#[derive(Args)]
pub struct PlanArgs {
    /// Directory of connector files (YAML/JSON).
    pub dir: PathBuf,
    /// Also delete connectors that have no file.
    #[arg(long)]
    pub prune: bool,
    #[command(flatten)]
    pub remote: Remote,
}

/// An HTTP client for one worker.
struct Api {
    client: reqwest::Client,
    base: String,
    authorization: Option<HeaderValue>,
}

/// A connector name or other value as one URL path segment.
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Api {
    fn new(remote: &Remote) -> Result<Self> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60));
        if let Some(path) = &remote.cacert {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read --cacert {}", path.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("--cacert {} is not a PEM certificate", path.display()))?;
            builder = builder.add_root_certificate(cert);
        }
        let client = builder.build().context("cannot build the HTTP client")?;
        let authorization = match (&remote.token, &remote.user) {
            (Some(token), _) => Some(
                HeaderValue::from_str(&format!("Bearer {token}"))
                    .context("--token has characters not allowed in a header")?,
            ),
            (None, Some(user)) => {
                use base64::Engine;
                if !user.contains(':') {
                    bail!("--user must be user:password");
                }
                let encoded = base64::engine::general_purpose::STANDARD.encode(user);
                Some(HeaderValue::from_str(&format!("Basic {encoded}")).context("invalid --user")?)
            }
            (None, None) => None,
        };
        Ok(Api {
            client,
            base: remote.url.trim_end_matches('/').to_owned(),
            authorization,
        })
    }

    /// Sends a request; returns the status and the JSON body (`null` when empty).
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value)> {
        let url = format!("{}{path}", self.base);
        let mut request = self.client.request(method.clone(), &url);
        if let Some(a) = &self.authorization {
            request = request.header(AUTHORIZATION, a.clone());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            let hint = if e.is_connect() || e.is_timeout() {
                "; is `tributary run` running there? (set --url or TRIBUTARY_URL)"
            } else {
                ""
            };
            anyhow::anyhow!("cannot reach the worker at {}: {e}{hint}", self.base)
        })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .with_context(|| format!("{method} {path}: reading the response failed"))?;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok((status, value))
    }

    /// Like [`Api::send`], but a non-2xx answer is an error with the server's message.
    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
        let (status, value) = self.send(method, path, body).await?;
        if !status.is_success() {
            let message = value
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string());
            let hint = if status == StatusCode::UNAUTHORIZED {
                " (pass --token or --user)"
            } else {
                ""
            };
            bail!("{message} (HTTP {}){hint}", status.as_u16());
        }
        Ok(value)
    }
}

fn print_json(value: &Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Prints rows as aligned columns.
fn print_table(header: &[&str], rows: &[Vec<String>]) -> Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = std::io::stdout().lock();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn read_connector_file(path: &Path) -> Result<ConnectorConfig> {
    let raw =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_connector_document(&raw, path).map_err(|errors| {
        let lines: Vec<String> = errors
            .0
            .iter()
            .map(|e| format!("{}: {e}", path.display()))
            .collect();
        anyhow::anyhow!("invalid connector file:\n{}", lines.join("\n"))
    })
}

fn config_json(config: &RawConfig) -> Value {
    Value::Object(
        config
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// `tributary connectors ...`.
pub async fn connectors(args: ConnectorsArgs) -> Result<ExitCode> {
    let api = Api::new(&args.remote)?;
    let json_out = args.remote.output == Output::Json;
    match args.command {
        ConnectorsCommand::List => {
            let all = api
                .call(Method::GET, "/connectors?expand=status&expand=info", None)
                .await?;
            if json_out {
                return print_json(&all).map(|()| ExitCode::SUCCESS);
            }
            let mut rows = Vec::new();
            for (name, entry) in all.as_object().into_iter().flatten() {
                let status = &entry["status"];
                let tasks = status["tasks"].as_array().cloned().unwrap_or_default();
                let running = tasks.iter().filter(|t| t["state"] == "RUNNING").count();
                let class = text(&entry["info"]["config"]["connector.class"]);
                rows.push(vec![
                    name.clone(),
                    text(&status["type"]),
                    text(&status["connector"]["state"]),
                    format!("{running}/{}", tasks.len()),
                    class,
                ]);
            }
            print_table(&["NAME", "TYPE", "STATE", "TASKS", "CLASS"], &rows)?;
        }
        ConnectorsCommand::Get { name } => {
            let info = api
                .call(
                    Method::GET,
                    &format!("/connectors/{}", segment(&name)),
                    None,
                )
                .await?;
            if json_out {
                return print_json(&info).map(|()| ExitCode::SUCCESS);
            }
            println!(
                "name: {}\ntype: {}\ntasks: {}",
                text(&info["name"]),
                text(&info["type"]),
                info["tasks"].as_array().map_or(0, Vec::len)
            );
            let rows: Vec<Vec<String>> = info["config"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| vec![k.clone(), text(v)])
                .collect();
            print_table(&["KEY", "VALUE"], &rows)?;
        }
        ConnectorsCommand::Create { file } => {
            let config = read_connector_file(&file)?;
            let body = json!({"name": config.name, "config": config_json(&config.config)});
            let created = api.call(Method::POST, "/connectors", Some(&body)).await?;
            if json_out {
                return print_json(&created).map(|()| ExitCode::SUCCESS);
            }
            println!("connector {} created", config.name);
        }
        ConnectorsCommand::Update { file } => {
            let config = read_connector_file(&file)?;
            let path = format!("/connectors/{}/config", segment(&config.name));
            let (status, body) = api
                .send(Method::PUT, &path, Some(&config_json(&config.config)))
                .await?;
            if !status.is_success() {
                bail!(
                    "{} (HTTP {})",
                    body.get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("request failed"),
                    status.as_u16()
                );
            }
            if json_out {
                return print_json(&body).map(|()| ExitCode::SUCCESS);
            }
            let verb = if status == StatusCode::CREATED {
                "created"
            } else {
                "updated"
            };
            println!("connector {} {verb}", config.name);
        }
        ConnectorsCommand::Delete { name } => {
            api.call(
                Method::DELETE,
                &format!("/connectors/{}", segment(&name)),
                None,
            )
            .await?;
            println!("connector {name} deleted");
        }
        ConnectorsCommand::Pause { name } => lifecycle(&api, &name, "pause", "paused").await?,
        ConnectorsCommand::Resume { name } => lifecycle(&api, &name, "resume", "resumed").await?,
        ConnectorsCommand::Stop { name } => lifecycle(&api, &name, "stop", "stopped").await?,
        ConnectorsCommand::Restart {
            name,
            include_tasks,
            only_failed,
        } => {
            let path = format!(
                "/connectors/{}/restart?includeTasks={include_tasks}&onlyFailed={only_failed}",
                segment(&name)
            );
            let status = api.call(Method::POST, &path, None).await?;
            if json_out && !status.is_null() {
                return print_json(&status).map(|()| ExitCode::SUCCESS);
            }
            println!("connector {name} restarted");
        }
        ConnectorsCommand::Status { name, watch } => {
            let interactive = watch && std::io::stdout().is_terminal() && !json_out;
            loop {
                let path = format!("/connectors/{}", segment(&name));
                let status = api
                    .call(Method::GET, &format!("{path}/status"), None)
                    .await?;
                let progress = api
                    .call(Method::GET, &format!("{path}/progress"), None)
                    .await
                    .unwrap_or(Value::Null);
                if interactive {
                    // Clear the screen and redraw.
                    print!("\x1b[2J\x1b[H");
                }
                if json_out {
                    print_json(&json!({"status": status, "progress": progress}))?;
                } else {
                    print_status(&status, &progress, std::io::stdout().is_terminal())?;
                }
                if !watch {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        ConnectorsCommand::Offsets { name } => {
            let offsets = api
                .call(
                    Method::GET,
                    &format!("/connectors/{}/offsets", segment(&name)),
                    None,
                )
                .await?;
            if json_out {
                return print_json(&offsets).map(|()| ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = offsets["offsets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|o| vec![o["partition"].to_string(), o["offset"].to_string()])
                .collect();
            print_table(&["PARTITION", "OFFSET"], &rows)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn lifecycle(api: &Api, name: &str, action: &str, done: &str) -> Result<()> {
    api.call(
        Method::PUT,
        &format!("/connectors/{}/{action}", segment(name)),
        None,
    )
    .await?;
    println!("connector {name} {done}");
    Ok(())
}

/// `[#########-----------]  45.0%`.
fn bar(percent: f64, width: usize) -> String {
    let filled = ((percent.clamp(0.0, 100.0) / 100.0) * width as f64).round() as usize;
    format!(
        "[{}{}] {percent:5.1}%",
        "#".repeat(filled),
        "-".repeat(width - filled.min(width))
    )
}

fn print_status(status: &Value, progress: &Value, terminal: bool) -> Result<()> {
    println!(
        "connector {} ({}): {} on {}",
        text(&status["name"]),
        text(&status["type"]),
        text(&status["connector"]["state"]),
        text(&status["connector"]["worker_id"])
    );
    if let Some(trace) = status["connector"]["trace"].as_str() {
        println!("  trace: {trace}");
    }
    let progress_of = |id: &Value| {
        progress["tasks"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| &t["id"] == id))
            .cloned()
            .unwrap_or(Value::Null)
    };
    for task in status["tasks"].as_array().into_iter().flatten() {
        let p = progress_of(&task["id"]);
        let mut line = format!("  task {}: {}", text(&task["id"]), text(&task["state"]));
        if !p.is_null() {
            line.push_str(&format!(
                "  phase={} records={} rate={}/s",
                text(&p["phase"]),
                text(&p["records"]),
                text(&p["records_per_sec"])
            ));
            if let Some(lag) = p["lag_ms"].as_i64() {
                line.push_str(&format!(" lag={lag}ms"));
            }
        }
        println!("{line}");
        if let Some(snapshot) = p.get("snapshot").filter(|s| s.is_object()) {
            let percent = snapshot["percent"].as_f64().unwrap_or(0.0);
            let eta = snapshot["eta_secs"]
                .as_u64()
                .map(|s| format!(" ETA {s}s"))
                .unwrap_or_default();
            let counts = format!(
                "{}/{} rows",
                text(&snapshot["rows_done"]),
                text(&snapshot["rows_estimated"])
            );
            if terminal {
                println!("    snapshot {} {counts}{eta}", bar(percent, 30));
            } else {
                println!("    snapshot {percent:.1}% {counts}{eta}");
            }
        }
        if let Some(trace) = task["trace"].as_str() {
            println!("    trace: {trace}");
        }
    }
    Ok(())
}

/// Reads the desired connectors of a directory; every file must parse.
fn desired(dir: &Path) -> Result<Vec<(PathBuf, ConnectorConfig)>> {
    let files = read_connector_files(dir)
        .with_context(|| format!("cannot read the directory {}", dir.display()))?;
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (path, parsed) in files {
        match parsed {
            Ok(c) => {
                if let Some((other, _)) = out
                    .iter()
                    .find(|(_, d): &&(PathBuf, ConnectorConfig)| d.name == c.name)
                {
                    problems.push(format!(
                        "{}: connector {} is also defined in {}",
                        path.display(),
                        c.name,
                        other.display()
                    ));
                } else {
                    out.push((path, c));
                }
            }
            Err(errors) => {
                problems.extend(errors.0.iter().map(|e| format!("{}: {e}", path.display())))
            }
        }
    }
    if !problems.is_empty() {
        bail!(
            "{} has invalid connector files; nothing was planned:\n{}",
            dir.display(),
            problems.join("\n")
        );
    }
    Ok(out)
}

async fn current(api: &Api) -> Result<BTreeMap<String, RawConfig>> {
    let all = api
        .call(Method::GET, "/connectors?expand=info", None)
        .await?;
    let mut out = BTreeMap::new();
    for (name, entry) in all.as_object().into_iter().flatten() {
        let config: RawConfig = entry["info"]["config"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), text(v)))
            .collect();
        out.insert(name.clone(), config);
    }
    Ok(out)
}

fn print_plan(steps: &[PlanStep], files: &[(PathBuf, ConnectorConfig)]) {
    let file_of = |name: &str| {
        files
            .iter()
            .find(|(_, c)| c.name == name)
            .map(|(p, _)| format!(" (from {})", p.display()))
            .unwrap_or_default()
    };
    let (mut create, mut update, mut delete) = (0, 0, 0);
    for step in steps {
        match step {
            PlanStep::Create { name, config } => {
                create += 1;
                println!("+ create {name}{}", file_of(name));
                for (k, v) in config {
                    println!("    + {k} = {v:?}");
                }
            }
            PlanStep::Update { name, changes } => {
                update += 1;
                println!("~ update {name}{} (its tasks restart)", file_of(name));
                for c in changes {
                    match (&c.before, &c.after) {
                        (Some(b), Some(a)) => println!("    ~ {}: {b:?} -> {a:?}", c.key),
                        (None, Some(a)) => println!("    + {} = {a:?}", c.key),
                        (Some(b), None) => println!("    - {} (was {b:?})", c.key),
                        (None, None) => {}
                    }
                }
            }
            PlanStep::Delete { name } => {
                delete += 1;
                println!("- delete {name} (no file)");
            }
        }
    }
    if steps.is_empty() {
        println!("No changes: the worker matches the directory.");
    } else {
        println!("Plan: {create} to create, {update} to update, {delete} to delete.");
    }
}

/// `tributary plan DIR`: what `apply` would change; changes nothing.
pub async fn plan_dir(args: PlanArgs) -> Result<ExitCode> {
    let api = Api::new(&args.remote)?;
    let files = desired(&args.dir)?;
    let configs: Vec<ConnectorConfig> = files.iter().map(|(_, c)| c.clone()).collect();
    let steps = plan(&configs, &current(&api).await?, args.prune);
    if args.remote.output == Output::Json {
        print_json(&serde_json::to_value(&steps)?)?;
    } else {
        print_plan(&steps, &files);
    }
    Ok(ExitCode::SUCCESS)
}

/// `tributary apply DIR`: creates, updates (restarting only those) and, with `--prune`,
/// deletes connectors so the worker matches the directory.
pub async fn apply_dir(args: PlanArgs) -> Result<ExitCode> {
    let api = Api::new(&args.remote)?;
    let files = desired(&args.dir)?;
    let configs: Vec<ConnectorConfig> = files.iter().map(|(_, c)| c.clone()).collect();
    let steps = plan(&configs, &current(&api).await?, args.prune);
    if args.remote.output == Output::Table {
        print_plan(&steps, &files);
    }
    let config_of = |name: &str| configs.iter().find(|c| c.name == name);
    let mut failed = 0;
    let mut results = Vec::new();
    for step in &steps {
        let (name, result) = match step {
            PlanStep::Create { name, .. } => {
                let Some(c) = config_of(name) else { continue };
                let body = json!({"name": name, "config": config_json(&c.config)});
                (
                    name,
                    api.call(Method::POST, "/connectors", Some(&body))
                        .await
                        .map(|_| "created"),
                )
            }
            PlanStep::Update { name, .. } => {
                let Some(c) = config_of(name) else { continue };
                let path = format!("/connectors/{}/config", segment(name));
                (
                    name,
                    api.call(Method::PUT, &path, Some(&config_json(&c.config)))
                        .await
                        .map(|_| "updated"),
                )
            }
            PlanStep::Delete { name } => (
                name,
                api.call(
                    Method::DELETE,
                    &format!("/connectors/{}", segment(name)),
                    None,
                )
                .await
                .map(|_| "deleted"),
            ),
        };
        match result {
            Ok(done) => {
                results.push(json!({"name": name, "result": done}));
                if args.remote.output == Output::Table {
                    println!("{name}: {done}");
                }
            }
            Err(e) => {
                failed += 1;
                results.push(json!({"name": name, "error": format!("{e:#}")}));
                eprintln!("{name}: {e:#}");
            }
        }
    }
    if args.remote.output == Output::Json {
        print_json(&Value::Array(results))?;
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(segment("my-conn.v1_x"), "my-conn.v1_x");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
        assert_eq!(segment("é"), "%C3%A9");
    }

    #[test]
    fn progress_bar_is_bounded() {
        assert_eq!(bar(50.0, 10), "[#####-----]  50.0%");
        assert_eq!(bar(150.0, 4), "[####] 150.0%");
        assert_eq!(bar(-3.0, 4), "[----]  -3.0%");
    }
}
