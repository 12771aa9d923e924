//! S3 sink throughput and memory against the test environment's S3 server
//! (`scripts/test-env.sh up`): `cargo bench -p tributary-s3-sink --bench upload`.
//!
//! 1. `bytes`: raw records (ByteArrayFormat) into 25 MiB objects, one topic partition.
//! 2. `avro`: JSON-with-schema records re-encoded into Avro container files.
//! 4. `json->parquet`: the same records into Parquet files.
//! 3. `500 x N`: records spread over 500 topic partitions, every file open at once
//!    until the end; peak RSS (VmHWM) before and after shows what open files cost.
//!
//! Numbers are noisy on a shared machine; the S3 server writes to the local disk.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tributary_runtime::config::RawConfig;
use tributary_runtime::connector::SinkTask;
use tributary_runtime::data::decode::RecordDecoder;
use tributary_runtime::dead_letter::ErrantRecordReporter;
use tributary_runtime::record::{ConsumerOffsets, SinkRecord, TopicPartition, TopicRecord};
use tributary_s3_sink::{S3SinkConfig, S3SinkTask, Store};

/// The S3 settings of `.test-env/env` (written by `scripts/test-env.sh up`).
struct TestEnv {
    s3_endpoint: String,
    s3_region: String,
    s3_access_key: String,
    s3_secret_key: String,
}

fn load_env() -> TestEnv {
    let path = match std::env::var_os("TRIB_TEST_ENV_FILE") {
        Some(p) => std::path::PathBuf::from(p),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.test-env/env"),
    };
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/test-env.sh up", path.display()));
    let get = |key: &str| {
        text.lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(key)?
                    .strip_prefix('=')
                    .map(|v| v.trim().trim_matches('"').to_owned())
            })
            .unwrap_or_else(|| {
                panic!(
                    "{key} missing from {}; run scripts/test-env.sh up",
                    path.display()
                )
            })
    };
    TestEnv {
        s3_endpoint: get("TRIB_S3_ENDPOINT"),
        s3_region: get("TRIB_S3_REGION"),
        s3_access_key: get("TRIB_S3_ACCESS_KEY"),
        s3_secret_key: get("TRIB_S3_SECRET_KEY"),
    }
}

fn config(env: &TestEnv, bucket: &str, pairs: &[(&str, &str)]) -> S3SinkConfig {
    let mut raw: RawConfig = [
        ("s3.bucket.name", bucket),
        ("s3.region", env.s3_region.as_str()),
        ("store.url", env.s3_endpoint.as_str()),
        ("aws.access.key.id", env.s3_access_key.as_str()),
        ("aws.secret.access.key", env.s3_secret_key.as_str()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    raw.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let parsed = S3SinkConfig::config_def()
        .parse(&raw)
        .expect("parse config");
    S3SinkConfig::from_parsed(&parsed).expect("valid config")
}

async fn task(
    env: &TestEnv,
    bucket: &str,
    pairs: &[(&str, &str)],
    converters: &[(&str, &str)],
) -> S3SinkTask {
    let config = Arc::new(config(env, bucket, pairs));
    let store = Store::connect(&config).await;
    let raw: RawConfig = converters
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    S3SinkTask::new(
        config,
        store,
        Arc::new(RecordDecoder::from_config(&raw).expect("converters")),
        ErrantRecordReporter::fail_fast(),
    )
    .expect("task")
}

/// Peak resident set (VmHWM) and current (VmRSS), in MiB.
fn rss() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn record(topic: &Arc<str>, partition: u32, offset: u64, value: Bytes) -> SinkRecord {
    SinkRecord {
        topic: topic.clone(),
        partition,
        offset,
        record: TopicRecord {
            key: None,
            value: Some(value),
            headers: Vec::new(),
            timestamp_ms: offset as i64,
        },
    }
}

/// Puts `records` in batches of 10 000 with a pre_commit after each; returns (seconds, bytes).
async fn run(task: &mut S3SinkTask, records: Vec<SinkRecord>) -> f64 {
    let start = Instant::now();
    let mut consumed = ConsumerOffsets::new();
    let mut batch = Vec::with_capacity(10_000);
    for r in records {
        consumed.insert(
            TopicPartition::new(r.topic.clone(), r.partition),
            r.offset + 1,
        );
        batch.push(r);
        if batch.len() == 10_000 {
            task.put(std::mem::take(&mut batch)).await.expect("put");
            task.pre_commit(&consumed).await.expect("pre_commit");
        }
    }
    task.put(batch).await.expect("put");
    task.pre_commit(&consumed).await.expect("pre_commit");
    start.elapsed().as_secs_f64()
}

fn report(name: &str, records: usize, bytes: usize, secs: f64) {
    println!(
        "{name:<16} {records:>9} records {:>8.1} MiB  {secs:>6.2} s  {:>9.0} records/s  {:>7.1} MiB/s",
        bytes as f64 / 1048576.0,
        records as f64 / secs,
        bytes as f64 / 1048576.0 / secs
    );
    // For `scripts/bench.sh sinks`, which takes the median over its repeats.
    for (unit, value) in [
        ("records/s", records as f64 / secs),
        ("MiB/s", bytes as f64 / 1048576.0 / secs),
    ] {
        println!(
            "RESULT {}",
            serde_json::json!({ "label": name, "unit": unit, "value": value })
        );
    }
}

fn row(i: u64) -> Bytes {
    Bytes::from(format!(
        r#"{{"schema":{{"type":"struct","optional":false,"fields":[{{"field":"id","type":"int64","optional":false}},{{"field":"name","type":"string","optional":true}},{{"field":"qty","type":"int32","optional":false}},{{"field":"note","type":"string","optional":true}}]}},"payload":{{"id":{i},"name":"customer-{i}","qty":{},"note":"{}"}}}}"#,
        i % 1000,
        "x".repeat(120)
    ))
}

#[tokio::main]
async fn main() {
    // Test runners list or run every target; only `cargo bench` (which passes --bench) runs this.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let env = load_env();
    let bucket = format!("s3bench{:016x}", rand::random::<u64>());
    let store = Store::connect(&config(
        &env,
        &bucket,
        &[("format.class", "json"), ("flush.size", "1")],
    ))
    .await;
    store
        .client()
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");
    let (hwm0, _) = rss();
    println!("baseline peak RSS {hwm0:.1} MiB");

    // 3. 500 open partitions, all files open until the last record of each (flush.size =
    //    records per partition), so 500 files are open at the peak: once with 400 and once
    //    with 1200 records of ~380 bytes per partition. Peak RSS must not follow the data.
    wide(&env, &bucket, 400, hwm0).await;
    wide(&env, &bucket, 1200, hwm0).await;

    // 1. Raw bytes: 400 000 records of 256 bytes, objects of 100 000 records (~25 MiB: multipart).
    let topic: Arc<str> = Arc::from("bench.bytes");
    let payload = Bytes::from(vec![b'x'; 255]);
    let records: Vec<_> = (0..400_000)
        .map(|o| record(&topic, 0, o, payload.clone()))
        .collect();
    let mut t = task(
        &env,
        &bucket,
        &[
            ("format.class", "bytearray"),
            ("flush.size", "100000"),
            ("s3.part.size", "5242880"),
        ],
        &[(
            "value.converter",
            "org.apache.kafka.connect.converters.ByteArrayConverter",
        )],
    )
    .await;
    let secs = run(&mut t, records).await;
    report("bytes", 400_000, 400_000 * 256, secs);

    let json = [
        (
            "value.converter",
            "org.apache.kafka.connect.json.JsonConverter",
        ),
        ("value.converter.schemas.enable", "true"),
    ];
    // 2. JSON with schemas -> Avro container files.
    let topic: Arc<str> = Arc::from("bench.avro");
    let records: Vec<_> = (0..200_000).map(|o| record(&topic, 0, o, row(o))).collect();
    let bytes: usize = records.iter().map(|r| r.record.size()).sum();
    let mut t = task(
        &env,
        &bucket,
        &[("format.class", "avro"), ("flush.size", "50000")],
        &json,
    )
    .await;
    let secs = run(&mut t, records).await;
    report("json->avro", 200_000, bytes, secs);

    // 4. JSON with schemas -> Parquet (snappy).
    let topic: Arc<str> = Arc::from("bench.parquet");
    let records: Vec<_> = (0..200_000).map(|o| record(&topic, 0, o, row(o))).collect();
    let bytes: usize = records.iter().map(|r| r.record.size()).sum();
    let mut t = task(
        &env,
        &bucket,
        &[("format.class", "parquet"), ("flush.size", "50000")],
        &json,
    )
    .await;
    let secs = run(&mut t, records).await;
    report("json->parquet", 200_000, bytes, secs);
    let (hwm, _) = rss();
    println!("peak RSS of the whole run {hwm:.1} MiB");
}

fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Records spread over 500 topic partitions, `per_partition` each, made batch by batch so
/// the benchmark itself holds little.
async fn wide(env: &TestEnv, bucket: &str, per_partition: u64, hwm0: f64) {
    let json = [
        (
            "value.converter",
            "org.apache.kafka.connect.json.JsonConverter",
        ),
        ("value.converter.schemas.enable", "true"),
    ];
    let topic: Arc<str> = Arc::from(format!("bench.wide{per_partition}"));
    let flush = per_partition.to_string();
    let mut t = task(
        env,
        bucket,
        &[("format.class", "json"), ("flush.size", flush.as_str())],
        &json,
    )
    .await;
    let start = Instant::now();
    let (mut peak_open, mut peak_spill, mut bytes) = (0, 0u64, 0usize);
    let mut batch = Vec::with_capacity(10_000);
    for o in 0..per_partition {
        for p in 0..500u32 {
            let r = record(&topic, p, o, row(o));
            bytes += r.record.size();
            batch.push(r);
            if batch.len() == 10_000 {
                t.put(std::mem::take(&mut batch)).await.expect("put");
                peak_open = peak_open.max(t.open_files());
                peak_spill = peak_spill.max(dir_size(&t.spill_dir()));
            }
        }
    }
    t.put(batch).await.expect("put");
    let secs = start.elapsed().as_secs_f64();
    let records = per_partition as usize * 500;
    report(&format!("500 x {per_partition}"), records, bytes, secs);
    let (hwm, rss_now) = rss();
    println!(
        "  open files at peak: {peak_open}; spilled on disk at peak {:.1} MiB; peak RSS so far {hwm:.1} MiB (baseline {hwm0:.1} MiB, now {rss_now:.1} MiB)",
        peak_spill as f64 / 1048576.0
    );
}
