//! Embedded log throughput: appends of 300-byte records (fsync with group commit) and
//! sequential reads, on this machine's disk. Prints records/s, MB/s and peak RSS.
//!
//!     cargo bench -p tributary-runtime --bench log [-- --records N --batch N]
//!
//! Not a test: nothing here asserts a time.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use tributary_runtime::log::{AppendEntry, EmbeddedLog, FsyncPolicy, LogConfig, ReadCursor};
use tributary_runtime::record::TopicRecord;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        // Test runners list benches as tests; there are none here.
        return;
    }
    let records = arg("--records", 2_000_000);
    let batch = arg("--batch", 1000) as usize;
    let in_flight = arg("--in-flight", 16) as usize;
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    println!("| scenario | records | seconds | records/s | MB/s | peak RSS MB |");
    println!("|---|---|---|---|---|---|");
    for (label, fsync) in [
        ("append, fsync always (group commit)", FsyncPolicy::Always),
        ("append, fsync never", FsyncPolicy::Never),
    ] {
        let dir = tempfile::tempdir_in(
            std::env::var("TRIB_BENCH_DIR").unwrap_or_else(|_| env!("CARGO_TARGET_TMPDIR").into()),
        )
        .expect("tempdir");
        let log = EmbeddedLog::open(
            dir.path(),
            LogConfig {
                fsync,
                ..LogConfig::default()
            },
        )
        .expect("open log");
        log.ensure_topic("bench", 1).expect("topic");
        let value = Bytes::from(vec![b'v'; 300 - 16 - 16]);
        let record_bytes = 300u64;
        let start = Instant::now();
        runtime.block_on(async {
            let mut pending = FuturesUnordered::new();
            let mut sent = 0u64;
            while sent < records {
                let n = batch.min((records - sent) as usize);
                let recs: Vec<TopicRecord> = (0..n)
                    .map(|i| TopicRecord {
                        key: Some(Bytes::from(format!("{:016}", sent + i as u64))),
                        value: Some(value.clone()),
                        headers: Vec::new(),
                        timestamp_ms: 1_700_000_000_000,
                    })
                    .collect();
                sent += n as u64;
                pending.push(log.append(vec![AppendEntry {
                    topic: Arc::from("bench"),
                    partition: 0,
                    records: recs,
                }]));
                if pending.len() >= in_flight {
                    pending.next().await.expect("pending").expect("append");
                }
            }
            while let Some(r) = pending.next().await {
                r.expect("append");
            }
        });
        report(
            label,
            records,
            start.elapsed().as_secs_f64(),
            records * record_bytes,
        );
        if fsync == FsyncPolicy::Always {
            let p = log.partition("bench", 0).expect("partition");
            let start = Instant::now();
            let mut cursor = ReadCursor::at(0);
            let mut count = 0u64;
            let mut bytes = 0u64;
            loop {
                let (got, next) = p.read(cursor, 10_000, 8 << 20).expect("read");
                if got.is_empty() {
                    break;
                }
                count += got.len() as u64;
                bytes += got.iter().map(|(_, r)| r.size() as u64).sum::<u64>();
                cursor = next;
            }
            assert_eq!(count, records, "read back every record");
            report(
                "sequential read",
                count,
                start.elapsed().as_secs_f64(),
                bytes,
            );
        }
    }
}

fn report(label: &str, records: u64, secs: f64, bytes: u64) {
    println!(
        "| {label} | {records} | {secs:.2} | {:.0} | {:.1} | {:.0} |",
        records as f64 / secs,
        bytes as f64 / secs / 1e6,
        peak_rss_mb()
    );
}
