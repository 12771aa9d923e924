//! The S3 sink end to end with the real binary: datagen -> embedded log (Avro, built-in
//! schema registry) -> S3 sink (AvroFormat) -> the test environment's S3 server, killed with
//! SIGKILL at random points while objects are being uploaded, restarted each time.
//!
//! At the end, with fastavro (an independent reader):
//! * the bucket holds exactly the keys Confluent's naming gives for `flush.size` objects of
//!   every topic partition (`<topic>+0+<start offset, 10 digits>.avro`), each once;
//! * every object decodes completely and holds exactly `flush.size` records, equal to the
//!   log's records at those offsets (decoded with the object's writer schema);
//! * the committed consumer offset is the end of the last object (no gaps, nothing beyond);
//! * every datagen sequence number is in an object or in the uncommitted tail, exactly once;
//! * a second sink writes Parquet objects of the same records, read with pyarrow: same keys
//!   (under `parquet/`), complete, each row's op, source seq and row id equal to the log's.
//!
//! A second test does the same with Confluent's `TimeBasedPartitioner` (2 s partitions of the
//! record field `source.ts_ms`, `rotate.interval.ms`, `flush.size`): the bucket holds exactly
//! the objects that the `TopicPartitionWriter` rules cut from the log's record times, under
//! paths computed by the test's own date arithmetic, each complete, equal to the log, and
//! contiguous in offsets up to the committed offset.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use tributary_runtime::converter::wire::read_header;
use tributary_runtime::log::{EmbeddedLog, ReadCursor};

use crate::support::env::{TestEnv, unique_name};

const TOTAL: u64 = 80_000;
const FLUSH: u64 = 1_000;
const AVRO: &str = "io.confluent.connect.avro.AvroConverter";

fn client(env: &TestEnv) -> aws_sdk_s3::Client {
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

fn start(data: &Path, connectors: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["run", "--rest-port", "0", "--data-dir"])
        .arg(data)
        .arg("--connectors-dir")
        .arg(connectors)
        .env("TRIBUTARY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn tributary")
}

fn committed_source_seq(data: &Path) -> Option<u64> {
    let raw = std::fs::read(data.join("offsets/gen.json")).ok()?;
    let entries: serde_json::Value = serde_json::from_slice(&raw).ok()?;
    entries[0]["offset"]["seq"].as_u64()
}

fn committed_sink(data: &Path, sink: &str) -> BTreeMap<(String, u32), u64> {
    let Ok(raw) = std::fs::read(data.join(format!("log/groups/connect-{sink}.json"))) else {
        return BTreeMap::new();
    };
    let stored: BTreeMap<String, BTreeMap<u32, u64>> =
        serde_json::from_slice(&raw).unwrap_or_default();
    stored
        .into_iter()
        .flat_map(|(t, ps)| ps.into_iter().map(move |(p, o)| ((t.clone(), p), o)))
        .collect()
}

/// (topic, partition) -> datums (wire header stripped) by offset.
fn log_datums(data: &Path) -> BTreeMap<(String, u32), Vec<Vec<u8>>> {
    log_records(data)
        .into_iter()
        .map(|(tp, records)| (tp, records.into_iter().map(|(_, d)| d).collect()))
        .collect()
}

/// A topic partition's records by offset: (record timestamp, datum with the wire header
/// stripped).
type LogRecords = BTreeMap<(String, u32), Vec<(i64, Vec<u8>)>>;

fn log_records(data: &Path) -> LogRecords {
    let log = EmbeddedLog::open_read_only(&data.join("log")).expect("open log read-only");
    let mut out = BTreeMap::new();
    for topic in log.topics() {
        for p in &topic.partitions {
            let mut datums = Vec::new();
            let mut cursor = ReadCursor::at(p.log_start());
            loop {
                let (records, next) = p.read(cursor, 10_000, 16 << 20).expect("read log");
                if records.is_empty() {
                    break;
                }
                cursor = next;
                for (offset, r) in records {
                    assert_eq!(offset, datums.len() as u64, "log offsets are dense");
                    let value = r.value.expect("datagen writes values");
                    let (_, datum) = read_header(&value).expect("Confluent-framed Avro");
                    datums.push((r.timestamp_ms, datum.to_vec()));
                }
            }
            out.insert((topic.name.to_string(), p.id), datums);
        }
    }
    out
}

const CHECK_PY: &str = r#"
import sys, json, io, fastavro
spec = json.load(open(sys.argv[1]))
out = {"objects": {}, "mismatches": [], "seqs": []}
schemas = {}
for obj in spec["objects"]:
    with open(obj["path"], "rb") as f:
        reader = fastavro.reader(f)
        schema = reader.writer_schema
        records = list(reader)
    schemas[obj["topic"]] = schema
    out["objects"][obj["key"]] = len(records)
    for i, rec in enumerate(records):
        datum = bytes.fromhex(spec["log"][obj["topic"]][obj["start"] + i])
        expected = fastavro.schemaless_reader(io.BytesIO(datum), schema)
        if rec != expected:
            out["mismatches"].append([obj["key"], i])
        out["seqs"].append(rec["source"]["seq"])
import pyarrow.parquet as pq
def ident(rec):
    row = rec["after"] if rec["after"] is not None else rec["before"]
    return [rec["op"], rec["source"]["seq"], row["id"], row["seq"]]
for obj in spec["parquet"]:
    rows = pq.read_table(obj["path"]).to_pylist()
    out["objects"][obj["key"]] = len(rows)
    for i, row in enumerate(rows):
        datum = bytes.fromhex(spec["log"][obj["topic"]][obj["start"] + i])
        expected = fastavro.schemaless_reader(io.BytesIO(datum), schemas[obj["topic"]])
        if ident(row) != ident(expected):
            out["mismatches"].append([obj["key"], i, ident(row), ident(expected)])
for topic, start in spec["tails"].items():
    for hexdatum in spec["log"][topic][start:]:
        rec = fastavro.schemaless_reader(io.BytesIO(bytes.fromhex(hexdatum)), schemas[topic])
        out["seqs"].append(rec["source"]["seq"])
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagen_to_s3_avro_survives_kill_9() {
    let env = TestEnv::load();
    let s3 = client(&env);
    let bucket = unique_name("s3e2e");
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");
    let prefix = unique_name("lake");
    let root = tempfile::tempdir().expect("tmp");
    let (data, connectors) = (root.path().join("data"), root.path().join("connectors"));
    let spill = root.path().join("spill");
    let spill_dir = spill.to_string_lossy().into_owned();
    std::fs::create_dir_all(&connectors).expect("connectors dir");
    std::fs::write(
        connectors.join("gen.json"),
        serde_json::json!({"name": "gen", "config": {
            "connector.class": "datagen", "topic.prefix": prefix, "tables": "orders,customers",
            "total": TOTAL.to_string(), "batch.size": "500", "tombstones.on.delete": "false",
            "key.converter": AVRO, "value.converter": AVRO,
        }})
        .to_string(),
    )
    .expect("gen config");
    std::fs::write(
        connectors.join("lake.json"),
        serde_json::json!({"name": "lake", "config": {
            "connector.class": "io.confluent.connect.s3.S3SinkConnector",
            "topics.regex": format!("{prefix}\\..*"),
            "s3.bucket.name": bucket, "s3.region": env.s3_region, "store.url": env.s3_endpoint,
            "aws.access.key.id": env.s3_access_key, "aws.secret.access.key": env.s3_secret_key,
            "format.class": "io.confluent.connect.s3.format.avro.AvroFormat",
            "flush.size": FLUSH.to_string(), "s3.spill.dir": spill_dir,
            "key.converter": AVRO, "value.converter": AVRO,
        }})
        .to_string(),
    )
    .expect("sink config");
    std::fs::write(
        connectors.join("lakepq.json"),
        serde_json::json!({"name": "lakepq", "config": {
            "connector.class": "s3-sink",
            "topics.regex": format!("{prefix}\\..*"),
            "topics.dir": "parquet",
            "s3.bucket.name": bucket, "s3.region": env.s3_region, "store.url": env.s3_endpoint,
            "aws.access.key.id": env.s3_access_key, "aws.secret.access.key": env.s3_secret_key,
            "format.class": "io.confluent.connect.s3.format.parquet.ParquetFormat",
            "flush.size": FLUSH.to_string(), "s3.spill.dir": spill_dir,
            "key.converter": AVRO, "value.converter": AVRO,
        }})
        .to_string(),
    )
    .expect("parquet sink config");

    // Kill -9 at random points while the source produces and the sink uploads.
    kill_four_times(&data, &connectors);

    // Run to the end: the source is done and every complete object is committed.
    let mut child = start(&data, &connectors);
    let deadline = Instant::now() + Duration::from_secs(240);
    let (log, committed) = loop {
        assert!(
            Instant::now() < deadline,
            "the sink did not commit every complete object in time"
        );
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "tributary exited early"
        );
        std::thread::sleep(Duration::from_millis(500));
        if committed_source_seq(&data) != Some(TOTAL - 1) {
            continue;
        }
        let committed = committed_sink(&data, "lake");
        let committed_pq = committed_sink(&data, "lakepq");
        let Ok(log) = std::panic::catch_unwind(|| log_datums(&data)) else {
            continue;
        };
        let done = !log.is_empty()
            && log.iter().all(|(tp, datums)| {
                let full = datums.len() as u64 / FLUSH * FLUSH;
                committed.get(tp).copied().unwrap_or(0) == full
                    && committed_pq.get(tp).copied().unwrap_or(0) == full
            });
        if done {
            break (log, committed);
        }
    };
    // The killed runs' spill directories were swept: only the live worker's two sink tasks
    // (one per connector) own one.
    let owners: Vec<String> = std::fs::read_dir(&spill)
        .expect("spill dir")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("tributary-s3-sink-")
        })
        .map(|e| std::fs::read_to_string(e.path().join("owner.pid")).unwrap_or_default())
        .collect();
    assert_eq!(
        owners,
        vec![child.id().to_string(); 2],
        "spill directories left by killed workers must be removed"
    );
    child.kill().expect("kill");
    child.wait().expect("reap");

    // Expected keys: one object per full flush.size run of every partition.
    let mut expected_keys = BTreeSet::new();
    let mut objects = Vec::new();
    let mut parquet = Vec::new();
    let dir = tempfile::tempdir().expect("tmp");
    for ((topic, partition), datums) in &log {
        let full = datums.len() as u64 / FLUSH;
        for i in 0..full {
            let start = i * FLUSH;
            let key = format!(
                "topics/{topic}/partition={partition}/{topic}+{partition}+{start:010}.avro"
            );
            expected_keys.insert(key.clone());
            objects.push((topic.clone(), start, key));
            let pq = format!(
                "parquet/{topic}/partition={partition}/{topic}+{partition}+{start:010}.snappy.parquet"
            );
            expected_keys.insert(pq.clone());
            parquet.push((topic.clone(), start, pq));
        }
    }
    let mut keys = BTreeSet::new();
    let mut token = None;
    loop {
        let out = s3
            .list_objects_v2()
            .bucket(&bucket)
            .set_continuation_token(token)
            .send()
            .await
            .expect("list");
        for o in out.contents() {
            assert!(
                keys.insert(o.key().unwrap_or_default().to_owned()),
                "a key is listed twice"
            );
        }
        match out.next_continuation_token() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        keys, expected_keys,
        "bucket keys differ from Confluent's naming of the committed objects"
    );
    assert!(
        expected_keys.len() >= 30,
        "too few objects to be a meaningful test: {}",
        expected_keys.len()
    );

    let mut spec_objects = Vec::new();
    for (i, (topic, start, key)) in objects.iter().enumerate() {
        let body = s3
            .get_object()
            .bucket(&bucket)
            .key(key)
            .send()
            .await
            .expect("get")
            .body
            .collect()
            .await
            .expect("body")
            .into_bytes();
        let path = dir.path().join(format!("{i}.avro"));
        std::fs::write(&path, &body).expect("write object");
        spec_objects
            .push(serde_json::json!({"topic": topic, "start": start, "key": key, "path": path}));
    }
    let mut spec_parquet = Vec::new();
    for (i, (topic, start, key)) in parquet.iter().enumerate() {
        let body = s3
            .get_object()
            .bucket(&bucket)
            .key(key)
            .send()
            .await
            .expect("get")
            .body
            .collect()
            .await
            .expect("body")
            .into_bytes();
        let path = dir.path().join(format!("{i}.parquet"));
        std::fs::write(&path, &body).expect("write object");
        spec_parquet
            .push(serde_json::json!({"topic": topic, "start": start, "key": key, "path": path}));
    }
    let hex = |d: &[u8]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let spec = serde_json::json!({
        "objects": spec_objects,
        "parquet": spec_parquet,
        "log": log.iter().map(|((t, _), ds)| (t.clone(), ds.iter().map(|d| hex(d)).collect::<Vec<_>>())).collect::<BTreeMap<_, _>>(),
        "tails": committed.iter().map(|((t, _), o)| (t.clone(), *o)).collect::<BTreeMap<_, _>>(),
    });
    let result = python_check(&env.python, CHECK_PY, &spec, dir.path());
    assert_eq!(
        result["mismatches"],
        serde_json::json!([]),
        "objects differ from the log"
    );
    for (key, count) in result["objects"].as_object().expect("objects") {
        assert_eq!(
            count.as_u64(),
            Some(FLUSH),
            "{key} is not a complete object"
        );
    }
    let mut seqs: Vec<u64> = result["seqs"]
        .as_array()
        .expect("seqs")
        .iter()
        .filter_map(|s| s.as_u64())
        .collect();
    seqs.sort_unstable();
    // Source at-least-once may repeat events in the log after a kill; the objects must hold
    // exactly the log (checked above) and every event must be there.
    seqs.dedup();
    assert_eq!(
        seqs,
        (0..TOTAL).collect::<Vec<_>>(),
        "every datagen event is in the objects or the uncommitted tail"
    );
    eprintln!(
        "{} objects, {} events checked",
        expected_keys.len(),
        seqs.len()
    );
}

/// Time-based partitioning under kill -9: 2 s partitions of the record field
/// `source.ts_ms`, `rotate.interval.ms`, `flush.size`.
const TIME_TOTAL: u64 = 30_000;
const TIME_RATE: u64 = 3_000;
const TIME_FLUSH: u64 = 1_000;
const PARTITION_MS: i64 = 2_000;
const ROTATE_MS: i64 = 1_500;
const TIME_PATH_FORMAT: &str = "'day'=YYYY-MM-dd/'hour'=HH/'minute'=mm/'second'=ss";

/// Year, month, day of a count of days since 1970-01-01 (proleptic Gregorian; H. Hinnant's
/// `civil_from_days`), so the expected paths do not come from the sink's own date code.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The encoded partition of a record time: the start of its 2 s partition, in UTC.
fn time_path(t: i64) -> String {
    let start = t.div_euclid(PARTITION_MS) * PARTITION_MS;
    let (y, mo, d) = civil_from_days(start.div_euclid(86_400_000));
    let ms = start.rem_euclid(86_400_000);
    format!(
        "day={y:04}-{mo:02}-{d:02}/hour={:02}/minute={:02}/second={:02}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1_000 % 60
    )
}

/// An object the sink must have uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ExpectedObject {
    key: String,
    topic: String,
    start: u64,
    len: u64,
}

/// The objects of one topic partition by Confluent's `TopicPartitionWriter` rules, computed
/// from the record times in the log: before a record, the open object is committed when the
/// record's time partition differs or its time is `rotate.interval.ms` past the object's
/// first record; after it, when the object holds `flush.size` records. The last object stays
/// open (nothing follows it). Returns the objects and the offset the sink commits.
fn time_objects(topic: &str, partition: u32, times: &[i64]) -> (Vec<ExpectedObject>, u64) {
    let mut objects = Vec::new();
    let mut open: Option<(String, u64, i64)> = None;
    let close = |objects: &mut Vec<ExpectedObject>, (path, start, _): (String, u64, i64), end| {
        objects.push(ExpectedObject {
            key: format!("topics/{topic}/{path}/{topic}+{partition}+{start:010}.avro"),
            topic: topic.to_owned(),
            start,
            len: end - start,
        });
    };
    for (offset, &t) in times.iter().enumerate() {
        let offset = offset as u64;
        let path = time_path(t);
        if let Some(o) = open.take() {
            if t - o.2 >= ROTATE_MS || o.0 != path {
                close(&mut objects, o, offset);
            } else {
                open = Some(o);
            }
        }
        let o = open.get_or_insert((path, offset, t));
        if offset + 1 - o.1 >= TIME_FLUSH {
            let o = o.clone();
            open = None;
            close(&mut objects, o, offset + 1);
        }
    }
    let committed = objects.last().map_or(0, |o| o.start + o.len);
    (objects, committed)
}

const CHECK_TIME_PY: &str = r#"
import sys, json, io, fastavro
spec = json.load(open(sys.argv[1]))
out = {"objects": {}, "mismatches": [], "times": [], "seqs": []}
schemas = {}
for obj in spec["objects"]:
    with open(obj["path"], "rb") as f:
        reader = fastavro.reader(f)
        schema = reader.writer_schema
        records = list(reader)
    schemas[obj["topic"]] = schema
    out["objects"][obj["key"]] = len(records)
    log = spec["log"][obj["topic"]]
    for i, rec in enumerate(records):
        if obj["start"] + i >= len(log):
            out["mismatches"].append([obj["key"], i, "beyond the log"])
            continue
        ts, hexdatum = log[obj["start"] + i]
        expected = fastavro.schemaless_reader(io.BytesIO(bytes.fromhex(hexdatum)), schema)
        if rec != expected:
            out["mismatches"].append([obj["key"], i])
        # The field the sink partitions by is the record timestamp the model used.
        if rec["source"]["ts_ms"] != ts:
            out["times"].append([obj["key"], i, rec["source"]["ts_ms"], ts])
        out["seqs"].append(rec["source"]["seq"])
for topic, start in spec["tails"].items():
    for ts, hexdatum in spec["log"][topic][start:]:
        rec = fastavro.schemaless_reader(io.BytesIO(bytes.fromhex(hexdatum)), schemas[topic])
        out["seqs"].append(rec["source"]["seq"])
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_partitioned_s3_objects_survive_kill_9() {
    // The model's date arithmetic: 2024-02-29T23:59:59.999Z is in the partition at :58.
    assert_eq!(
        time_path(1_709_251_199_999),
        "day=2024-02-29/hour=23/minute=59/second=58"
    );
    assert_eq!(time_path(0), "day=1970-01-01/hour=00/minute=00/second=00");
    let env = TestEnv::load();
    let s3 = client(&env);
    let bucket = unique_name("s3time");
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");
    let prefix = unique_name("tp");
    let root = tempfile::tempdir().expect("tmp");
    let (data, connectors) = (root.path().join("data"), root.path().join("connectors"));
    let spill = root.path().join("spill");
    std::fs::create_dir_all(&connectors).expect("connectors dir");
    std::fs::write(
        connectors.join("gen.json"),
        serde_json::json!({"name": "gen", "config": {
            "connector.class": "datagen", "topic.prefix": prefix, "tables": "orders,customers",
            "total": TIME_TOTAL.to_string(), "rate": TIME_RATE.to_string(), "batch.size": "100",
            "tombstones.on.delete": "false",
            "key.converter": AVRO, "value.converter": AVRO,
        }})
        .to_string(),
    )
    .expect("gen config");
    std::fs::write(
        connectors.join("lake.json"),
        serde_json::json!({"name": "lake", "config": {
            "connector.class": "io.confluent.connect.s3.S3SinkConnector",
            "topics.regex": format!("{prefix}\\..*"),
            "s3.bucket.name": bucket, "s3.region": env.s3_region, "store.url": env.s3_endpoint,
            "aws.access.key.id": env.s3_access_key, "aws.secret.access.key": env.s3_secret_key,
            "format.class": "io.confluent.connect.s3.format.avro.AvroFormat",
            "partitioner.class": "io.confluent.connect.storage.partitioner.TimeBasedPartitioner",
            "path.format": TIME_PATH_FORMAT,
            "partition.duration.ms": PARTITION_MS.to_string(),
            "timestamp.extractor": "RecordField", "timestamp.field": "source.ts_ms",
            "timezone": "UTC", "locale": "en-US",
            "rotate.interval.ms": ROTATE_MS.to_string(),
            "flush.size": TIME_FLUSH.to_string(), "s3.spill.dir": spill.to_string_lossy(),
            "key.converter": AVRO, "value.converter": AVRO,
        }})
        .to_string(),
    )
    .expect("sink config");

    kill_four_times(&data, &connectors);

    // Run until the source is done and the sink has committed every object the model closes.
    let mut child = start(&data, &connectors);
    let deadline = Instant::now() + Duration::from_secs(240);
    let (log, expected, committed) = loop {
        assert!(
            Instant::now() < deadline,
            "the sink did not commit every closed object in time"
        );
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "tributary exited early"
        );
        std::thread::sleep(Duration::from_millis(500));
        if committed_source_seq(&data) != Some(TIME_TOTAL - 1) {
            continue;
        }
        let Ok(log) = std::panic::catch_unwind(|| log_records(&data)) else {
            continue;
        };
        let mut expected = Vec::new();
        let mut ends = BTreeMap::new();
        for ((topic, partition), records) in &log {
            let times: Vec<i64> = records.iter().map(|(t, _)| *t).collect();
            let (objects, end) = time_objects(topic, *partition, &times);
            expected.extend(objects);
            ends.insert((topic.clone(), *partition), end);
        }
        let committed = committed_sink(&data, "lake");
        let done = !log.is_empty()
            && ends
                .iter()
                .all(|(tp, end)| committed.get(tp).copied().unwrap_or(0) == *end);
        if done {
            break (log, expected, committed);
        }
    };
    child.kill().expect("kill");
    child.wait().expect("reap");

    // Every expected key exactly once, nothing else (no partial or stray objects).
    let mut keys = BTreeSet::new();
    let mut token = None;
    loop {
        let out = s3
            .list_objects_v2()
            .bucket(&bucket)
            .set_continuation_token(token)
            .send()
            .await
            .expect("list");
        for o in out.contents() {
            assert!(
                keys.insert(o.key().unwrap_or_default().to_owned()),
                "a key is listed twice"
            );
        }
        match out.next_continuation_token() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    let expected_keys: BTreeSet<String> = expected.iter().map(|o| o.key.clone()).collect();
    assert_eq!(
        expected_keys.len(),
        expected.len(),
        "the model repeats a key"
    );
    assert_eq!(
        keys, expected_keys,
        "bucket keys differ from the time-partitioned objects of the log"
    );
    // The run must exercise every rule: several time partitions, objects cut by flush.size
    // and objects cut by time.
    let paths: BTreeSet<&str> = expected
        .iter()
        .filter_map(|o| o.key.rsplit_once('/').map(|(dir, _)| dir))
        .collect();
    assert!(
        paths.len() >= 6,
        "too few time partitions to be meaningful: {paths:?}"
    );
    assert!(expected.iter().any(|o| o.len == TIME_FLUSH));
    assert!(expected.iter().any(|o| o.len < TIME_FLUSH));

    let dir = tempfile::tempdir().expect("tmp");
    let mut spec_objects = Vec::new();
    for (i, o) in expected.iter().enumerate() {
        let body = s3
            .get_object()
            .bucket(&bucket)
            .key(&o.key)
            .send()
            .await
            .expect("get")
            .body
            .collect()
            .await
            .expect("body")
            .into_bytes();
        let path = dir.path().join(format!("{i}.avro"));
        std::fs::write(&path, &body).expect("write object");
        spec_objects.push(
            serde_json::json!({"topic": o.topic, "start": o.start, "key": o.key, "path": path}),
        );
    }
    let hex = |d: &[u8]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let spec = serde_json::json!({
        "objects": spec_objects,
        "log": log.iter().map(|((t, _), rs)| (t.clone(), rs.iter().map(|(ts, d)| (*ts, hex(d))).collect::<Vec<_>>())).collect::<BTreeMap<_, _>>(),
        "tails": committed.iter().map(|((t, _), o)| (t.clone(), *o)).collect::<BTreeMap<_, _>>(),
    });
    let result = python_check(&env.python, CHECK_TIME_PY, &spec, dir.path());
    assert_eq!(
        result["mismatches"],
        serde_json::json!([]),
        "objects differ from the log"
    );
    assert_eq!(
        result["times"],
        serde_json::json!([]),
        "source.ts_ms differs from the record timestamp the paths were computed from"
    );
    // Complete objects, and per topic partition contiguous from offset 0 to the committed
    // offset: no gaps, no overlaps.
    let mut next: BTreeMap<&str, u64> = BTreeMap::new();
    for o in &expected {
        let count = result["objects"][&o.key].as_u64();
        assert_eq!(count, Some(o.len), "{} is not complete", o.key);
        let at = next.entry(o.topic.as_str()).or_insert(0);
        assert_eq!(
            o.start, *at,
            "{} does not start where the last ended",
            o.key
        );
        *at += o.len;
    }
    for ((topic, _), end) in &committed {
        assert_eq!(next.get(topic.as_str()).copied().unwrap_or(0), *end);
    }
    let mut seqs: Vec<u64> = result["seqs"]
        .as_array()
        .expect("seqs")
        .iter()
        .filter_map(|s| s.as_u64())
        .collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(
        seqs,
        (0..TIME_TOTAL).collect::<Vec<_>>(),
        "every datagen event is in the objects or the uncommitted tail"
    );
    eprintln!(
        "{} objects in {} time partitions, {} events checked",
        expected.len(),
        paths.len(),
        seqs.len()
    );
}

/// Starts the worker and kills it with SIGKILL after a random 0.4–2 s, four times.
fn kill_four_times(data: &Path, connectors: &Path) {
    for kill in 0..4 {
        let mut child = start(data, connectors);
        let wait = Duration::from_millis(rand::random_range(400..2000));
        std::thread::sleep(wait);
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "tributary exited before kill {kill}"
        );
        child.kill().expect("kill -9");
        child.wait().expect("reap");
        eprintln!(
            "kill {kill} after {wait:?}: source seq {:?}, sink committed {:?}",
            committed_source_seq(data),
            committed_sink(data, "lake")
        );
    }
}

/// Runs an independent Python check on `spec` (written to `dir/spec.json`); its JSON output.
fn python_check(
    python: &Path,
    script: &str,
    spec: &serde_json::Value,
    dir: &Path,
) -> serde_json::Value {
    let spec_path = dir.join("spec.json");
    std::fs::write(&spec_path, spec.to_string()).expect("write spec");
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(&spec_path)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("python output is JSON")
}
