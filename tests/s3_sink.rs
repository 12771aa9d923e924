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
                    datums.push(datum.to_vec());
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
    for kill in 0..4 {
        let mut child = start(&data, &connectors);
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
            committed_source_seq(&data),
            committed_sink(&data, "lake")
        );
    }

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
    let spec_path = dir.path().join("spec.json");
    std::fs::write(&spec_path, spec.to_string()).expect("write spec");
    let out = Command::new(&env.python)
        .arg("-c")
        .arg(CHECK_PY)
        .arg(&spec_path)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("python output is JSON");
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
