//! Tributary's side of a benchmark, run in a child process of its own so that its CPU time
//! and peak RSS are the worker's alone (not the loader's or the parent's).
//!
//! The parent passes a [`SideSpec`] as JSON; the child starts a worker with the embedded log
//! (default settings: fsync before acknowledging), seeds the connector's offset if asked,
//! creates the connector and waits until the topic holds the expected number of records.
//! The high watermark counts durable records only (it is published after the fsync). The
//! child prints `READY` once `ready_at` records are durable, and one `RESULT <json>` line at
//! the end. With `expect` unset it reads `EXPECT <n>` from stdin (the latency writer sends it
//! when it knows how many rows it wrote).

use std::collections::BTreeMap;
use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use tributary_runtime::config::{ConnectorConfig, StorageConfig, WorkerConfig};
use tributary_runtime::kafka::KafkaStorageConfig;
use tributary_runtime::offsets::StoredOffset;
use tributary_runtime::record::{OffsetOrder, SourceOffset, SourcePartition};
use tributary_runtime::registry::Registry;
use tributary_runtime::worker::Worker;
use tributary_runtime::worker::state::State;

use crate::measure::{self, Usage};

/// An offset stored before the connector starts (where a MySQL catch-up begins).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Seed {
    pub partition: serde_json::Value,
    pub offset: serde_json::Value,
    pub order: [u64; 3],
}

/// What the child runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SideSpec {
    pub data_dir: PathBuf,
    pub config: BTreeMap<String, String>,
    pub seed: Option<Seed>,
    /// The topic whose records are counted.
    pub topic: String,
    /// Records to wait for; `None`: read `EXPECT <n>` from stdin.
    pub expect: Option<u64>,
    /// Print `READY` once this many records are durable.
    pub ready_at: Option<u64>,
    /// Record the wall-clock time of every high-watermark change (latency).
    pub durable_times: bool,
    pub timeout_secs: u64,
    /// A sink connector created beside the source (the latency scenario's JDBC target).
    #[serde(default)]
    pub sink: Option<BTreeMap<String, String>>,
    /// Kafka bootstrap servers: the worker stores topics in Kafka instead of the embedded
    /// log, and a record counts once its delivery report says it is durable.
    #[serde(default)]
    pub kafka: Option<String>,
}

/// What the child reports.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SideResult {
    /// From creating the connector until `expect` records were durable.
    pub secs: f64,
    pub records: u64,
    /// Bytes of the topic in the log (frames included).
    pub log_bytes: u64,
    /// (seconds since the connector was created, durable records), every 100 ms.
    pub samples: Vec<(f64, u64)>,
    /// (durable records, Unix time in ns) at every change, with `durable_times`.
    pub durable: Vec<(u64, u128)>,
}

const NAME: &str = "bench";
const SINK_NAME: &str = "bench-sink";

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// The child's entry point (`tributary-bench side <json>`).
pub async fn child_main(spec_json: &str) -> Result<()> {
    let spec: SideSpec = serde_json::from_str(spec_json).context("side spec")?;
    let mut registry = Registry::with_builtins();
    registry.register(Arc::new(tributary_mysql_binlog::MySqlPlugin));
    registry.register(Arc::new(tributary_postgres::PostgresPlugin));
    registry.register(Arc::new(tributary_jdbc_sink::JdbcSinkPlugin));
    let storage = match &spec.kafka {
        None => StorageConfig::default(),
        Some(bootstrap) => {
            let mut kafka = KafkaStorageConfig::new(bootstrap.clone());
            // A fresh offsets topic per run: the seeded offset must not meet a later one.
            kafka.offsets_topic = format!("{}-offsets-{:08x}", spec.topic, rand::random::<u32>());
            StorageConfig::Kafka(kafka)
        }
    };
    let worker = Worker::start(
        WorkerConfig {
            data_dir: spec.data_dir.clone(),
            offset_flush_interval_ms: 1000,
            progress_interval_secs: 3600,
            storage,
            ..Default::default()
        },
        registry,
    )
    .await
    .map_err(|e| anyhow!("cannot start the worker: {e}"))?;
    if let Some(seed) = &spec.seed {
        worker
            .offsets()
            .commit(
                NAME,
                vec![StoredOffset {
                    partition: SourcePartition::from_json(&seed.partition),
                    offset: SourceOffset {
                        value: seed.offset.clone(),
                        order: OffsetOrder(seed.order),
                    },
                }],
            )
            .await
            .map_err(|e| anyhow!("cannot seed the offset: {e}"))?;
    }
    let (expect_tx, expect_rx) = mpsc::channel::<u64>();
    match spec.expect {
        Some(n) => expect_tx.send(n).context("expect")?,
        None => {
            std::thread::spawn(move || {
                for line in std::io::stdin().lock().lines().map_while(Result::ok) {
                    if let Some(n) = line
                        .strip_prefix("EXPECT ")
                        .and_then(|n| n.trim().parse().ok())
                    {
                        let _ = expect_tx.send(n);
                        return;
                    }
                }
            });
        }
    }
    if spec.kafka.is_some() {
        // No registry server here: the built-in registry, in memory, serves the converters
        // (one lookup per table version; the records' encoding is unchanged).
        tributary_runtime::schema_registry::install_embedded(Arc::new(
            tributary_runtime::schema_registry::SchemaStore::in_memory(),
        ));
    }
    let log = worker.embedded_log().cloned();
    if log.is_none() && spec.kafka.is_none() {
        bail!("the worker has no embedded log");
    }
    let mut appended = log.as_ref().map(|l| l.subscribe());
    let started = Instant::now();
    worker
        .put_config(ConnectorConfig {
            name: NAME.into(),
            config: spec.config.clone(),
        })
        .await
        .map_err(|e| anyhow!("cannot create the connector: {e}"))?;
    if let Some(sink) = &spec.sink {
        worker
            .put_config(ConnectorConfig {
                name: SINK_NAME.into(),
                config: sink.clone(),
            })
            .await
            .map_err(|e| anyhow!("cannot create the sink connector: {e}"))?;
    }
    let deadline = started + Duration::from_secs(spec.timeout_secs);
    // Durable records (and their bytes in the log): the embedded log's high watermark, or
    // on Kafka the source task's acknowledged records (bytes are the broker's business).
    let durable = async |topic: &str| -> (u64, u64) {
        match &log {
            Some(log) => log.topic(topic).map_or((0, 0), |t| {
                (
                    t.partitions.iter().map(|p| p.high_watermark()).sum(),
                    t.partitions.iter().map(|p| p.size_bytes()).sum(),
                )
            }),
            None => worker.progress(NAME).await.map_or((0, 0), |tasks| {
                (tasks.iter().map(|p| p.metrics.records_durable).sum(), 0)
            }),
        }
    };
    let mut result = SideResult::default();
    let mut expect = None;
    let mut ready_sent = spec.ready_at.is_none();
    let mut last = u64::MAX;
    let mut next_sample = 0.0;
    let mut next_status = Instant::now();
    loop {
        let (count, bytes) = durable(&spec.topic).await;
        let now = started.elapsed().as_secs_f64();
        if spec.durable_times && count != last {
            result.durable.push((count, unix_nanos()));
        }
        last = count;
        if now >= next_sample {
            result.samples.push((now, count));
            next_sample = now + 0.1;
        }
        if !ready_sent && spec.ready_at.is_some_and(|r| count >= r) {
            println!("READY");
            std::io::stdout().flush()?;
            ready_sent = true;
        }
        if expect.is_none() {
            expect = expect_rx.try_recv().ok();
        }
        if let Some(n) = expect
            && count >= n
        {
            result.secs = now;
            result.records = count;
            result.log_bytes = bytes;
            result.samples.push((now, count));
            break;
        }
        if Instant::now() >= next_status {
            next_status = Instant::now() + Duration::from_millis(500);
            let names = [Some(NAME), spec.sink.as_ref().map(|_| SINK_NAME)];
            for name in names.into_iter().flatten() {
                if let Ok(status) = worker.status(name).await {
                    let failed =
                        std::iter::once((&status.connector.state, &status.connector.trace))
                            .chain(status.tasks.iter().map(|t| (&t.state, &t.trace)))
                            .find(|(state, _)| **state == State::Failed);
                    if let Some((_, trace)) = failed {
                        bail!(
                            "connector {name} failed: {}",
                            trace.clone().unwrap_or_default()
                        );
                    }
                }
            }
        }
        if Instant::now() >= deadline {
            bail!(
                "only {count} records durable in {} after {} s",
                spec.topic,
                spec.timeout_secs
            );
        }
        match &mut appended {
            Some(appended) => {
                let _ = tokio::time::timeout(Duration::from_millis(20), appended.changed()).await;
            }
            None => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    worker.shutdown().await;
    println!("RESULT {}", serde_json::to_string(&result)?);
    Ok(())
}

/// The child as seen from the parent.
pub struct SideProcess {
    measured: measure::Measured,
    lines: mpsc::Receiver<String>,
}

impl SideProcess {
    /// Starts `tributary-bench side <spec>`, behind the command in `TRIB_BENCH_SIDE_WRAPPER`
    /// when set (for profiling, e.g. `valgrind --tool=callgrind`; its figures then measure
    /// the wrapper too).
    pub fn start(spec: &SideSpec) -> Result<Self> {
        let exe = std::env::current_exe().context("path of this executable")?;
        let wrapper = std::env::var("TRIB_BENCH_SIDE_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut cmd = match words.next() {
            Some(program) => {
                let mut cmd = Command::new(program);
                cmd.args(words).arg(exe);
                cmd
            }
            None => Command::new(exe),
        };
        cmd.arg("side")
            .arg(serde_json::to_string(spec)?)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut measured = measure::spawn(&mut cmd, "tributary (bench side)")?;
        let stdout = measured.child_mut().stdout.take().context("child stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Ok(SideProcess { measured, lines })
    }

    /// Waits for `READY` (or the child's end, which is an error).
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l == "READY" => return Ok(()),
                Ok(_) => continue,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    bail!(
                        "the tributary side was not ready after {} s",
                        timeout.as_secs()
                    )
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // It exited: finishing reports why.
                    let _ = self.measured.child_mut().kill();
                    bail!("the tributary side exited before it was ready")
                }
            }
        }
    }

    /// Tells a child started without `expect` how many records to wait for.
    pub fn send_expect(&mut self, n: u64) -> Result<()> {
        let stdin = self
            .measured
            .child_mut()
            .stdin
            .as_mut()
            .context("child stdin")?;
        writeln!(stdin, "EXPECT {n}")?;
        stdin.flush()?;
        Ok(())
    }

    /// Waits for the child to exit; its result and what it cost.
    pub fn finish(self) -> Result<(SideResult, Usage)> {
        let SideProcess { measured, lines } = self;
        let usage = measured.finish()?;
        let result = lines
            .iter()
            .find_map(|l| l.strip_prefix("RESULT ").map(str::to_owned))
            .context("the tributary side printed no result")?;
        Ok((serde_json::from_str(&result)?, usage))
    }
}

/// Runs a side to completion.
pub fn run(spec: &SideSpec) -> Result<(SideResult, Usage)> {
    SideProcess::start(spec)?.finish()
}
