//! `tributary-bench` (run it through `scripts/bench.sh`): benchmarks on the test
//! environment's real servers, each beside its raw ceiling in the same run, because absolute
//! figures drift on shared machines.
//!
//! Scenarios: `mysql` and `postgres` (catch-up vs `mariadb-binlog` / `pg_recvlogical`),
//! `latency` (source commit -> durable in the log at a fixed write rate), `snapshot`
//! (initial snapshot vs a plain `SELECT` / `COPY`), `sinks` (the sink crates' own benches).
//! Every scenario repeats `--repeat` times and prints the median with min–max as a Markdown
//! table headed with the commit and the core count (`--json`: JSON on stdout instead, the
//! table on stderr). Tributary's side runs in a child process of its own ([`side`]) so that
//! its CPU seconds and peak RSS are measured for real ([`measure`]), as are the ceilings'.

mod env;
mod latency;
mod measure;
mod mysql;
mod plot;
mod postgres;
mod progress;
mod report;
mod side;
mod sinks;
mod snapshot;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};

/// The allocator of the `tributary` binary, so the worker measured here is the one users run.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Kafka Connect's Avro converter class (the built-in schema registry serves it).
pub const AVRO: &str = "io.confluent.connect.avro.AvroConverter";

/// How long Tributary's side may take before the run fails.
pub const TIMEOUT_SECS: u64 = 1800;

/// The ~200-byte text column's constant part (the row id is appended).
pub fn note_text() -> &'static str {
    "Synthetic change event for the Tributary benchmark: a note column of about two hundred \
     bytes, so that rows have a realistic size for an orders table with free-text remarks - id "
}

#[derive(Parser)]
#[command(
    name = "tributary-bench",
    about = "Benchmarks on the test environment's servers, beside the raw ceilings (run through scripts/bench.sh)"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// MariaDB catch-up vs mariadb-binlog (plain and -v), 500k rows by default.
    Mysql(Args),
    /// PostgreSQL catch-up vs pg_recvlogical on copies of one slot, 500k rows by default.
    Postgres(Args),
    /// Source commit -> durable in the log, with a steady writer.
    Latency(LatencyArgs),
    /// Initial snapshot vs a plain SELECT (MariaDB) / COPY (PostgreSQL) to /dev/null.
    Snapshot(SourceArgs),
    /// The sink crates' own benchmarks (JDBC upsert, S3), when they exist.
    Sinks(Args),
    /// Tributary's side of a run (internal: started by the scenarios).
    #[command(hide = true)]
    Side { spec: String },
}

/// Options of every scenario.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Rows to load (default: 500,000 for catch-up, 1,000,000 for snapshot).
    #[arg(long)]
    pub rows: Option<u64>,
    /// Times to repeat each measurement (the median and min–max are reported).
    #[arg(long = "repeat", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    repeat_n: u32,
    /// JSON on stdout (the Markdown table goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Write an SVG chart of records over time for the catch-up runs (mysql, postgres).
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<std::path::PathBuf>,
    /// mysql: also run the catch-up into the test environment's Kafka broker
    /// (`TRIB_KAFKA_BOOTSTRAP`) instead of the embedded log.
    #[arg(long)]
    pub kafka: bool,
    #[arg(skip)]
    pub repeat: usize,
    #[arg(skip)]
    invocation: String,
}

impl Args {
    /// The command line that produced a report, for BENCHMARKS.md.
    pub fn command(&self, _scenario: &str) -> String {
        self.invocation.clone()
    }
}

/// Which source a scenario runs against.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Mysql,
    Postgres,
    Both,
}

impl Source {
    pub fn mysql(self) -> bool {
        matches!(self, Source::Mysql | Source::Both)
    }
    pub fn postgres(self) -> bool {
        matches!(self, Source::Postgres | Source::Both)
    }
}

/// Options of the snapshot scenario.
#[derive(clap::Args, Clone, Debug)]
pub struct SourceArgs {
    #[command(flatten)]
    pub common: Args,
    /// The source database(s).
    #[arg(long, value_enum, default_value_t = Source::Both)]
    pub source: Source,
}

/// Options of the latency scenario.
#[derive(clap::Args, Clone, Debug)]
pub struct LatencyArgs {
    #[command(flatten)]
    pub common: Args,
    /// The source database(s).
    #[arg(long, value_enum, default_value_t = Source::Both)]
    pub source: Source,
    /// Rows per second the writer inserts (in up to 100 transactions per second).
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// How long the writer runs.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Fails once Ctrl-C was pressed, so the scenario stops and cleans up.
pub fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
        anyhow::bail!("interrupted");
    }
    Ok(())
}

/// A step of a comparison round.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Step {
    Ceiling,
    Ours,
}

/// Odd rounds measure the ceiling first, even rounds Tributary first: neither side always
/// reads pages the other has just brought into the cache.
pub fn round_order(round: usize) -> [Step; 2] {
    if round % 2 == 1 {
        [Step::Ceiling, Step::Ours]
    } else {
        [Step::Ours, Step::Ceiling]
    }
}

/// Seconds, CPU seconds and peak RSS of one reader over the repeats.
#[derive(Default, Clone)]
pub struct Series {
    pub secs: Vec<f64>,
    pub cpu: Vec<f64>,
    pub rss: Vec<f64>,
}

impl Series {
    pub fn push(&mut self, secs: f64, usage: &measure::Usage) {
        self.secs.push(secs);
        self.cpu.push(usage.cpu_secs);
        self.rss.push(usage.peak_rss_mb);
    }

    /// Events per second of each repeat.
    pub fn rates(&self, events: u64) -> Vec<f64> {
        self.secs.iter().map(|s| events as f64 / s).collect()
    }

    /// This reader's rate over `other`'s, repeat by repeat (same round, same conditions).
    pub fn ratio_to(&self, other: &Series) -> Vec<f64> {
        self.secs
            .iter()
            .zip(&other.secs)
            .map(|(mine, theirs)| theirs / mine)
            .collect()
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let invocation = format!(
        "scripts/bench.sh {}",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    );
    let fill = |mut a: Args| {
        a.repeat = a.repeat_n as usize;
        a.invocation = invocation.clone();
        a
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Scenario::Side { spec } = &cli.scenario {
        return runtime.block_on(side::child_main(spec));
    }
    // Ctrl-C stops the run between steps (the terminal also stops the children) and the
    // scenario still drops its databases and replication slots.
    runtime.spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
            eprintln!("bench: interrupted; cleaning up");
        }
    });
    let machine = report::Machine::probe();
    let env = env::TestEnv::load()?;
    let (json, reports) = runtime.block_on(async {
        Ok::<_, anyhow::Error>(match cli.scenario {
            Scenario::Mysql(a) => {
                let a = fill(a);
                (a.json, vec![mysql::catchup(&env, &a).await?])
            }
            Scenario::Postgres(a) => {
                let a = fill(a);
                (a.json, vec![postgres::catchup(&env, &a).await?])
            }
            Scenario::Latency(mut a) => {
                a.common = fill(a.common);
                (a.common.json, latency::run(&env, &a).await?)
            }
            Scenario::Snapshot(mut a) => {
                a.common = fill(a.common);
                (a.common.json, snapshot::run(&env, &a).await?)
            }
            Scenario::Sinks(a) => {
                let a = fill(a);
                (a.json, sinks::run(&a)?)
            }
            Scenario::Side { .. } => (false, Vec::new()),
        })
    })?;
    for r in &reports {
        if json {
            eprintln!("{}", r.markdown(&machine));
        } else {
            println!("{}", r.markdown(&machine));
        }
    }
    if json {
        let all: Vec<serde_json::Value> = reports.iter().map(|r| r.json(&machine)).collect();
        let out = if all.len() == 1 {
            all.into_iter().next().unwrap_or_default()
        } else {
            serde_json::Value::Array(all)
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}
