//! Command-line interface.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use tributary_runtime::config::{
    ConfigErrors, StorageConfig, WorkerConfig, parse_connector_document,
};
use tributary_runtime::kafka::KafkaStorageConfig;
use tributary_runtime::log::{EmbeddedLog, ReadCursor};
use tributary_runtime::registry::Registry;
use tributary_runtime::rest::gitops::{DirectoryReconciler, OnRemoved};
use tributary_runtime::rest::loggers::ReloadableLevels;
use tributary_runtime::rest::{Authenticator, Listener, RestState, ServeError};
use tributary_runtime::worker::Worker;

use crate::client;

#[derive(Parser)]
#[command(
    name = "tributary",
    version,
    about = "Change-data-capture connector runtime: Kafka Connect + Debezium as one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a worker: load connectors and stream until SIGTERM/SIGINT.
    Run {
        /// Worker config file (YAML or JSON). Without it: embedded log, data in ./data.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Data directory (overrides the config file).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Directory of connector configs (YAML/JSON) to load.
        #[arg(long)]
        connectors_dir: Option<PathBuf>,
        /// REST port (overrides the port of rest.listen; the address stays 127.0.0.1 unless
        /// the config file says otherwise).
        #[arg(long)]
        rest_port: Option<u16>,
        /// What happens to a connector when its file is removed from --connectors-dir.
        #[arg(long, value_enum, default_value = "delete")]
        on_file_removed: FileRemoved,
    },
    /// Manage the connectors of a running worker over its REST API.
    Connectors(client::ConnectorsArgs),
    /// Show what `apply` would change on a running worker to match a directory of
    /// connector files (create/update/delete with a config diff); changes nothing.
    Plan(client::PlanArgs),
    /// Make a running worker match a directory of connector files.
    Apply(client::PlanArgs),
    /// Validate connector or worker config files (or directories of them) without running.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Inspect topics of the embedded log (or of Kafka, with a Kafka worker `--config`).
    Topics {
        #[command(subcommand)]
        command: TopicsCommand,
        /// Data directory of the worker.
        #[arg(long, global = true, default_value = "data")]
        data_dir: PathBuf,
        /// Worker config file; with `storage.type: kafka` the topics are read from Kafka.
        #[arg(long, global = true)]
        config: Option<PathBuf>,
    },
}

/// `--on-file-removed`.
#[derive(Clone, Copy, ValueEnum)]
enum FileRemoved {
    /// Delete the connector (its offsets are kept).
    Delete,
    /// Stop it and leave it for someone to delete.
    Stop,
}

#[derive(Subcommand)]
enum TopicsCommand {
    /// List topics with partitions, offsets and sizes.
    List,
    /// Print records as JSON lines.
    Consume {
        topic: String,
        /// Start at the earliest offset (default: only records that arrive from now on).
        #[arg(long)]
        from_beginning: bool,
        /// Stop after this many records.
        #[arg(long)]
        max: Option<u64>,
        /// Exit when the end of the topic is reached instead of waiting for more.
        #[arg(long)]
        no_follow: bool,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let levels = init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run {
                config,
                data_dir,
                connectors_dir,
                rest_port,
                on_file_removed,
            } => {
                let on_removed = match on_file_removed {
                    FileRemoved::Delete => OnRemoved::Delete,
                    FileRemoved::Stop => OnRemoved::Stop,
                };
                run(
                    config,
                    data_dir,
                    connectors_dir,
                    rest_port,
                    on_removed,
                    levels,
                )
                .await
            }
            Command::Connectors(args) => client::connectors(args).await,
            Command::Plan(args) => client::plan_dir(args).await,
            Command::Apply(args) => client::apply_dir(args).await,
            Command::Validate { files } => validate(&files),
            Command::Topics {
                command,
                data_dir,
                config,
            } => match kafka_storage(config.as_deref())? {
                Some(kafka) => kafka_topics(command, kafka).await,
                None => topics(command, &data_dir).await,
            },
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, filtered by `TRIBUTARY_LOG` (default `info`); the filter can be changed
/// at runtime through `/admin/loggers` with the returned levels.
fn init_tracing() -> Arc<ReloadableLevels> {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let spec = std::env::var("TRIBUTARY_LOG").unwrap_or_else(|_| "info".to_owned());
    let filter = tracing_subscriber::EnvFilter::try_new(&spec)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    tracing_subscriber::registry().with(filter).with(fmt).init();
    Arc::new(ReloadableLevels::new(&spec, move |f| {
        handle.reload(f).map_err(|e| e.to_string())
    }))
}

/// The registry of every connector this binary ships.
pub fn registry() -> Registry {
    crate::plugins::registry()
}

fn print_config_errors(origin: &str, errors: &ConfigErrors) {
    for e in &errors.0 {
        eprintln!("{origin}: {}: {}", e.field, e.message);
    }
}

async fn run(
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    connectors_dir: Option<PathBuf>,
    rest_port: Option<u16>,
    on_removed: OnRemoved,
    levels: Arc<ReloadableLevels>,
) -> Result<ExitCode> {
    let mut worker_config = match &config {
        Some(path) => match WorkerConfig::load(path) {
            Ok(c) => c,
            Err(errors) => {
                print_config_errors(&path.display().to_string(), &errors);
                return Ok(ExitCode::FAILURE);
            }
        },
        None => WorkerConfig::default(),
    };
    if let Some(dir) = data_dir {
        worker_config.data_dir = dir;
    }
    if let Some(dir) = connectors_dir {
        worker_config.connectors_dir = Some(dir);
    }
    if let Some(port) = rest_port {
        let ip = worker_config
            .rest
            .listen
            .parse::<std::net::SocketAddr>()
            .map_or(std::net::IpAddr::from([127, 0, 0, 1]), |a| a.ip());
        worker_config.rest.listen = std::net::SocketAddr::new(ip, port).to_string();
    }
    // Bad connector files are rejected before anything starts.
    if let Some(dir) = &worker_config.connectors_dir
        && let Err(code) = validate_dir_or_file(dir)
    {
        return Ok(code);
    }
    // The listener and its credentials are checked before anything starts.
    let listener = match Listener::bind(&worker_config.rest) {
        Ok(l) => l,
        Err(e @ ServeError::PortBusy { .. }) => {
            bail!(
                "{e}; pick another port with --rest-port or rest.listen in the worker config (--config)"
            )
        }
        Err(e) => return Err(anyhow::Error::new(e).context("the REST listener cannot start")),
    };
    let auth = match &worker_config.rest.auth {
        Some(auth) => match Authenticator::from_config(auth) {
            Ok(a) => Some(a),
            Err(errors) => {
                print_config_errors("rest.auth", &errors);
                return Ok(ExitCode::FAILURE);
            }
        },
        None => None,
    };
    let rest_dir = worker_config.connectors_dir.clone();
    tracing::info!(data_dir = %worker_config.data_dir.display(), version = tributary_runtime::VERSION, "starting worker");
    let worker = match Worker::start(worker_config, registry()).await {
        Ok(w) => w,
        Err(tributary_runtime::worker::WorkerError::InvalidConfig(errors)) => {
            print_config_errors("connector", &errors);
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(anyhow::Error::new(e).context("worker failed to start")),
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut state = RestState::new(worker.clone()).with_loggers(levels);
    if let Some(auth) = auth {
        state = state.with_auth(auth);
    }
    let reconciling = rest_dir.map(|dir| {
        let reconciler = Arc::new(DirectoryReconciler::new(worker.clone(), &dir, on_removed));
        state = state.clone().with_reconciler(reconciler.clone());
        reconciler.spawn(Duration::from_secs(2), stop_rx.clone())
    });
    let scheme = if listener.is_tls() { "https" } else { "http" };
    if let Some(address) = listener.local_addr() {
        tracing::info!(url = %format!("{scheme}://{address}"), "REST API ready");
    }
    let mut rest_stop = stop_rx.clone();
    let mut server = tokio::spawn(listener.serve(
        tributary_runtime::rest::router(state),
        async move {
            let _ = rest_stop.wait_for(|stop| *stop).await;
        },
    ));
    tokio::select! {
        signal = wait_for_signal() => signal?,
        served = &mut server => {
            // The server only ends on its own when it fails.
            worker.shutdown().await;
            return match served {
                Ok(Err(e)) => Err(anyhow::Error::new(e)),
                Ok(Ok(())) => Err(anyhow::anyhow!("the REST server stopped unexpectedly")),
                Err(e) => Err(anyhow::Error::new(e).context("the REST server task failed")),
            };
        }
    }
    tracing::info!("shutting down: draining tasks and committing offsets");
    let _ = stop_tx.send(true);
    if let Some(task) = reconciling {
        let _ = task.await;
    }
    if let Ok(Err(e)) = server.await {
        tracing::warn!(error = %e, "REST server did not stop cleanly");
    }
    worker.shutdown().await;
    tracing::info!("stopped cleanly");
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

fn validate(files: &[PathBuf]) -> Result<ExitCode> {
    let mut failed = false;
    for file in files {
        if validate_dir_or_file(file).is_err() {
            failed = true;
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Validates a file or every config file in a directory; prints each error with its file.
fn validate_dir_or_file(path: &Path) -> Result<(), ExitCode> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut v: Vec<PathBuf> = match std::fs::read_dir(path) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension()
                        .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
                })
                .collect(),
            Err(e) => {
                eprintln!("{}: cannot read directory: {e}", path.display());
                return Err(ExitCode::FAILURE);
            }
        };
        v.sort();
        v
    } else {
        vec![path.to_path_buf()]
    };
    let registry = registry();
    let mut ok = true;
    for file in files {
        let origin = file.display().to_string();
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{origin}: cannot read: {e}");
                ok = false;
                continue;
            }
        };
        let result = if looks_like_worker_config(&text) {
            WorkerConfig::parse(&text, file.extension().is_some_and(|e| e == "json")).map(|_| ())
        } else {
            parse_connector_document(&text, &file).and_then(|c| registry.validate(&c).map(|_| ()))
        };
        match result {
            Ok(()) => println!("{origin}: ok"),
            Err(errors) => {
                print_config_errors(&origin, &errors);
                ok = false;
            }
        }
    }
    if ok { Ok(()) } else { Err(ExitCode::FAILURE) }
}

/// Worker configs have `data_dir` or `storage`; connector documents have a connector class.
fn looks_like_worker_config(text: &str) -> bool {
    !text.contains("connector.class")
        && !text.contains("\"config\"")
        && (text.contains("data_dir") || text.contains("storage"))
}

/// The Kafka storage of a worker config file, if it has one.
fn kafka_storage(config: Option<&Path>) -> Result<Option<KafkaStorageConfig>> {
    let Some(path) = config else { return Ok(None) };
    let worker =
        WorkerConfig::load(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(match worker.storage {
        StorageConfig::Kafka(kafka) => Some(kafka),
        StorageConfig::Embedded { .. } => None,
    })
}

/// `topics list|consume` against Kafka.
async fn kafka_topics(command: TopicsCommand, kafka: KafkaStorageConfig) -> Result<ExitCode> {
    tokio::task::spawn_blocking(move || -> Result<ExitCode> {
        match command {
            TopicsCommand::List => {
                let topics = tributary_runtime::kafka::inspect::list(&kafka)?;
                let mut out = std::io::stdout().lock();
                writeln!(
                    out,
                    "{:<48} {:>9} {:>14} {:>14} {:>12}",
                    "TOPIC", "PARTITION", "START", "END", "BYTES"
                )?;
                for topic in topics {
                    for p in &topic.partitions {
                        writeln!(
                            out,
                            "{:<48} {:>9} {:>14} {:>14} {:>12}",
                            topic.name, p.partition, p.log_start_offset, p.high_watermark, "-"
                        )?;
                    }
                }
            }
            TopicsCommand::Consume {
                topic,
                from_beginning,
                max,
                no_follow,
            } => {
                let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
                tributary_runtime::kafka::inspect::consume(
                    &kafka,
                    &topic,
                    from_beginning,
                    max,
                    no_follow,
                    |r| {
                        let line = record_line(&topic, r.partition, r.offset, &r.record);
                        writeln!(stdout, "{line}")?;
                        if max.is_none() {
                            stdout.flush()?;
                        }
                        Ok(())
                    },
                )?;
                stdout.flush()?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
    .await?
}

/// One consumed record as a JSON line.
fn record_line(
    topic: &str,
    partition: u32,
    offset: u64,
    r: &tributary_runtime::record::TopicRecord,
) -> serde_json::Value {
    serde_json::json!({
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "timestamp": r.timestamp_ms,
        "key": json_or_text(r.key.as_deref()),
        "value": json_or_text(r.value.as_deref()),
        "headers": r.headers.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(String::from_utf8_lossy(v).into_owned()))).collect::<serde_json::Map<_, _>>(),
    })
}

async fn topics(command: TopicsCommand, data_dir: &Path) -> Result<ExitCode> {
    let log_dir = data_dir.join("log");
    if !log_dir.join("topics").is_dir() {
        bail!(
            "no embedded log in {} (pass --data-dir of a worker)",
            data_dir.display()
        );
    }
    match command {
        TopicsCommand::List => {
            let log =
                EmbeddedLog::open_read_only(&log_dir).context("cannot open the embedded log")?;
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{:<48} {:>9} {:>14} {:>14} {:>12}",
                "TOPIC", "PARTITION", "START", "END", "BYTES"
            )?;
            for topic in log.topics() {
                for p in &topic.partitions {
                    writeln!(
                        out,
                        "{:<48} {:>9} {:>14} {:>14} {:>12}",
                        topic.name,
                        p.id,
                        p.log_start(),
                        p.high_watermark(),
                        p.size_bytes()
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        TopicsCommand::Consume {
            topic,
            from_beginning,
            max,
            no_follow,
        } => consume(&log_dir, &topic, from_beginning, max, no_follow).await,
    }
}

async fn consume(
    log_dir: &Path,
    topic: &str,
    from_beginning: bool,
    max: Option<u64>,
    no_follow: bool,
) -> Result<ExitCode> {
    let mut printed = 0u64;
    let mut cursors: Vec<Option<ReadCursor>> = Vec::new();
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    loop {
        // Read-only view: re-opened on each round to see what the running worker appended.
        let log = EmbeddedLog::open_read_only(log_dir).context("cannot open the embedded log")?;
        let Some(t) = log.topic(topic) else {
            bail!("topic {topic} does not exist (see `tributary topics list`)");
        };
        cursors.resize(t.partitions.len(), None);
        let mut got = 0;
        for p in &t.partitions {
            let slot = &mut cursors[p.id as usize];
            let cursor = slot.get_or_insert_with(|| {
                ReadCursor::at(if from_beginning {
                    p.log_start()
                } else {
                    p.high_watermark()
                })
            });
            loop {
                let (records, next) = p.read(*cursor, 1000, 4 << 20).context("read failed")?;
                *cursor = next;
                if records.is_empty() {
                    break;
                }
                for (offset, r) in records {
                    let line = record_line(topic, p.id, offset, &r);
                    writeln!(stdout, "{line}")?;
                    printed += 1;
                    got += 1;
                    if max.is_some_and(|m| printed >= m) {
                        stdout.flush()?;
                        return Ok(ExitCode::SUCCESS);
                    }
                }
            }
        }
        stdout.flush()?;
        if no_follow && got == 0 {
            return Ok(ExitCode::SUCCESS);
        }
        if got == 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

fn json_or_text(bytes: Option<&[u8]>) -> serde_json::Value {
    match bytes {
        None => serde_json::Value::Null,
        Some(b) => serde_json::from_slice(b)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(b).into_owned())),
    }
}
