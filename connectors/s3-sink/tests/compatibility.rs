//! `schema.compatibility`: interleaved records of two versions of one schema, written under
//! NONE, BACKWARD, FULL and FORWARD, read back by fastavro and pyarrow.

use std::sync::Arc;
use tributary_runtime::converter::avro;

use bytes::Bytes;
use serde_json::{Value, json};
use tributary_runtime::connector::SinkTask;
use tributary_runtime::record::{ConsumerOffsets, SinkRecord, TopicPartition, TopicRecord};
use tributary_runtime::schema_registry::{self, SchemaStore};

use crate::harness::{Bucket, JSON_WITH_SCHEMAS, record};

/// Schema versions of records 0..10; record 10 has another schema name, so it commits
/// whatever is open under every mode.
const VERSIONS: [u32; 10] = [1, 1, 2, 1, 2, 1, 1, 2, 2, 1];
const TOPIC: &str = "shop.orders";

fn schema(version: u32) -> Value {
    let mut fields = vec![
        json!({"field": "id", "type": "int64", "optional": false}),
        json!({"field": "name", "type": "string", "optional": false}),
    ];
    if version == 2 {
        fields.push(json!({"field": "note", "type": "string", "optional": true}));
        fields.push(json!({"field": "qty", "type": "int32", "optional": false, "default": 1}));
    }
    json!({"type": "struct", "name": "shop.orders.Value", "version": version, "optional": false,
        "fields": fields})
}

/// Record `offset`'s value as written (its own version).
fn payload(offset: u64) -> Value {
    let mut p = json!({"id": offset, "name": format!("n{offset}")});
    if VERSIONS[offset as usize] == 2 {
        p["note"] = json!(format!("note{offset}"));
        p["qty"] = json!(offset * 10);
    }
    p
}

/// Record `offset`'s value as read from a file of schema `version`.
fn read_as(offset: u64, version: u32) -> Value {
    let mut p = payload(offset);
    match (VERSIONS[offset as usize], version) {
        // Projected onto v2: the optional field null, the required one its default.
        (1, 2) => {
            p["note"] = Value::Null;
            p["qty"] = json!(1);
        }
        // Projected onto v1: the new fields dropped.
        (2, 1) => {
            let obj = p.as_object_mut().expect("object");
            obj.remove("note");
            obj.remove("qty");
        }
        _ => {}
    }
    p
}

fn records() -> Vec<SinkRecord> {
    let mut out: Vec<SinkRecord> = (0..VERSIONS.len() as u64)
        .map(|o| {
            let v = VERSIONS[o as usize];
            record(
                TOPIC,
                0,
                o,
                0,
                &json!({"schema": schema(v), "payload": payload(o)}),
            )
        })
        .collect();
    let other = json!({"type": "struct", "name": "shop.refunds.Value", "version": 1,
        "optional": false, "fields": [{"field": "id", "type": "int64", "optional": false}]});
    out.push(record(
        TOPIC,
        0,
        10,
        0,
        &json!({"schema": other, "payload": {"id": 10}}),
    ));
    out
}

/// Every record of an object (fastavro for `.avro`, pyarrow for `.parquet`) as one JSON
/// document per line.
const READ: &str = r#"
import sys, json
path = sys.argv[1]
with open(path, 'rb') as f:
    head = f.read(4)
if head == b'Obj\x01':
    import fastavro
    with open(path, 'rb') as f:
        rows = list(fastavro.reader(f))
else:
    import pyarrow.parquet as pq
    rows = pq.read_table(path).to_pylist()
for r in rows:
    print(json.dumps(r, sort_keys=True))
"#;

/// (start offset, records) of every object in the bucket, in key order.
async fn objects(bucket: &Bucket) -> Vec<(u64, Vec<Value>)> {
    let mut out = Vec::new();
    for key in bucket.keys().await {
        let start = key
            .rsplit('+')
            .next()
            .and_then(|f| f.split('.').next())
            .and_then(|n| n.parse::<u64>().ok())
            .expect("start offset in the key");
        let text = bucket.python(READ, &key).await;
        let rows = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("reader prints JSON"))
            .collect();
        out.push((start, rows));
    }
    out
}

/// Writes the records under `mode` in `format`; returns the objects.
async fn write(mode: &str, format: &str) -> Vec<(u64, Vec<Value>)> {
    let bucket = Bucket::new("s3compat").await;
    let mut task = bucket
        .task(
            &[
                ("format.class", format),
                ("flush.size", "1000"),
                ("schema.compatibility", mode),
            ],
            JSON_WITH_SCHEMAS,
        )
        .await;
    task.put(records()).await.expect("put");
    let tp = TopicPartition::new(TOPIC, 0);
    // Everything before record 10 is uploaded; record 10 stays open.
    assert_eq!(
        task.pre_commit(&[(tp.clone(), 11)].into())
            .await
            .expect("pre_commit"),
        ConsumerOffsets::from([(tp, 10)]),
        "{mode} {format}"
    );
    objects(&bucket).await
}

/// The objects expected when files start at `starts`, each file with the version of its
/// first record.
fn expected(starts: &[u64]) -> Vec<(u64, Vec<Value>)> {
    starts
        .iter()
        .enumerate()
        .map(|(i, &start)| {
            let end = starts.get(i + 1).copied().unwrap_or(VERSIONS.len() as u64);
            let version = VERSIONS[start as usize];
            (start, (start..end).map(|o| read_as(o, version)).collect())
        })
        .collect()
}

#[tokio::test]
async fn backward_projects_older_records_into_the_open_objects() {
    for format in ["avro", "parquet"] {
        let none = write("NONE", format).await;
        // NONE: every change of version starts an object.
        assert_eq!(none, expected(&[0, 2, 3, 4, 5, 7, 9]), "NONE {format}");
        // BACKWARD and FULL: record 2 (v2) rolls; the older records after it are projected.
        let backward = write("BACKWARD", format).await;
        assert_eq!(backward, expected(&[0, 2]), "BACKWARD {format}");
        assert!(backward.len() < none.len());
        assert_eq!(write("FULL", format).await, backward, "FULL {format}");
        // FORWARD: v1 stays current, the newer records lose their new fields.
        assert_eq!(
            write("FORWARD", format).await,
            expected(&[0]),
            "FORWARD {format}"
        );
    }
}

/// Values that cannot be projected (a type that does not widen) and schemas without a
/// version roll the objects under BACKWARD, as with NONE.
#[tokio::test]
async fn unprojectable_and_unversioned_records_roll_the_objects() {
    let bucket = Bucket::new("s3compatroll").await;
    let mut task = bucket
        .task(
            &[
                ("format.class", "json"),
                ("flush.size", "1000"),
                ("schema.compatibility", "BACKWARD"),
            ],
            JSON_WITH_SCHEMAS,
        )
        .await;
    let s = |version: Option<u32>, ty: &str| {
        let mut s = json!({"type": "struct", "name": "r", "optional": false,
            "fields": [{"field": "a", "type": ty, "optional": false}]});
        if let Some(v) = version {
            s["version"] = json!(v);
        }
        s
    };
    let put = [
        (s(Some(2), "int32"), json!({"a": 0})),
        // Older, int64 does not narrow onto int32: rolls.
        (s(Some(1), "int64"), json!({"a": 1})),
        // Older, int32 widens onto int64: projected.
        (s(Some(1), "int32"), json!({"a": 2})),
        // No version: rolls.
        (s(None, "int64"), json!({"a": 3})),
        (s(None, "int64"), json!({"a": 4})),
        (s(Some(1), "string"), json!({"a": "5"})),
    ];
    let records = put
        .iter()
        .enumerate()
        .map(|(o, (schema, payload))| {
            record(
                "t",
                0,
                o as u64,
                0,
                &json!({"schema": schema, "payload": payload}),
            )
        })
        .collect();
    task.put(records).await.expect("put");
    let keys = bucket.keys().await;
    assert_eq!(
        keys,
        [
            "topics/t/partition=0/t+0+0000000000.json",
            "topics/t/partition=0/t+0+0000000001.json",
            "topics/t/partition=0/t+0+0000000003.json",
        ]
    );
    assert_eq!(bucket.get(&keys[1]).await, b"{\"a\":1}\n{\"a\":2}\n");
    assert_eq!(bucket.get(&keys[2]).await, b"{\"a\":3}\n{\"a\":4}\n");
}

/// Avro values from the schema registry: datums of the current schema are copied, older
/// ones re-encoded under the current writer schema (checked by reading them back), and
/// fastavro reads every record of the object with the object's schema.
#[tokio::test]
async fn registry_avro_older_datums_are_reencoded_under_the_current_schema() {
    // nextest runs each test in its own process: the registry is this test's.
    let store = Arc::new(SchemaStore::in_memory());
    schema_registry::install_embedded(store.clone());
    let v1 = json!({"type": "record", "name": "Value", "namespace": "shop.orders",
        "connect.version": 1, "fields": [
            {"name": "id", "type": "long"},
            {"name": "name", "type": "string"}]});
    let mut v2 = v1.clone();
    v2["connect.version"] = json!(2);
    v2["fields"].as_array_mut().expect("fields").extend([
        json!({"name": "note", "type": ["null", "string"], "default": null}),
        json!({"name": "qty", "type": "int", "default": 1}),
    ]);
    let id1 = store
        .register("shop.orders-value", &v1.to_string())
        .expect("register v1")
        .id;
    let id2 = store
        .register("shop.orders-value", &v2.to_string())
        .expect("register v2")
        .id;
    let framed = |id: u32, datum: Vec<u8>| {
        let mut out = vec![0];
        out.extend_from_slice(&id.to_be_bytes());
        out.extend(datum);
        Bytes::from(out)
    };
    let records: Vec<SinkRecord> = (0..VERSIONS.len() as u64)
        .map(|o| {
            let mut datum = Vec::new();
            avro::write_long(&mut datum, o as i64);
            avro_string(&mut datum, &format!("n{o}"));
            let id = if VERSIONS[o as usize] == 2 {
                avro::write_long(&mut datum, 1); // union branch 1: string
                avro_string(&mut datum, &format!("note{o}"));
                avro::write_long(&mut datum, o as i64 * 10);
                id2
            } else {
                id1
            };
            SinkRecord {
                topic: TOPIC.into(),
                partition: 0,
                offset: o,
                record: TopicRecord {
                    key: None,
                    value: Some(framed(id, datum)),
                    headers: Vec::new(),
                    timestamp_ms: 0,
                },
            }
        })
        .collect();
    let bucket = Bucket::new("s3compatavro").await;
    let mut task = bucket
        .task(
            &[
                ("format.class", "avro"),
                ("flush.size", "8"),
                ("schema.compatibility", "BACKWARD"),
            ],
            &[("value.converter", "io.confluent.connect.avro.AvroConverter")],
        )
        .await;
    task.put(records).await.expect("put");
    // 0-1 (v1), then 2-9 (v2, with v1 records projected): flush.size 8 commits it.
    let got = objects(&bucket).await;
    assert_eq!(got, expected(&[0, 2]));

    // An enum the Connect encoding cannot write (Connect has strings, the writer schema an
    // enum): record 1 (v1) projects onto v2 (kind takes its default) but its datum would not
    // read back under the v2 writer schema, so it rolls the object instead of joining it.
    let k1 = json!({"type": "record", "name": "Kind", "connect.version": 1,
        "fields": [{"name": "id", "type": "long"}]});
    let mut k2 = k1.clone();
    k2["connect.version"] = json!(2);
    k2["fields"]
        .as_array_mut()
        .expect("fields")
        .push(json!({"name": "kind",
        "type": {"type": "enum", "name": "K", "symbols": ["A", "B"]}, "default": "A"}));
    let kid1 = store
        .register("kinds-value", &k1.to_string())
        .expect("register k1")
        .id;
    let kid2 = store
        .register("kinds-value", &k2.to_string())
        .expect("register k2")
        .id;
    let kinds: Vec<SinkRecord> = [
        (kid2, Some(1)),
        (kid1, None),
        (kid2, Some(0)),
        (kid2, Some(1)),
    ]
    .into_iter()
    .enumerate()
    .map(|(o, (id, kind))| {
        let mut datum = Vec::new();
        avro::write_long(&mut datum, o as i64);
        if let Some(k) = kind {
            avro::write_long(&mut datum, k);
        }
        SinkRecord {
            topic: "kinds".into(),
            partition: 0,
            offset: o as u64,
            record: TopicRecord {
                key: None,
                value: Some(framed(id, datum)),
                headers: Vec::new(),
                timestamp_ms: 0,
            },
        }
    })
    .collect();
    let bucket = Bucket::new("s3compatenum").await;
    let mut task = bucket
        .task(
            &[
                ("format.class", "avro"),
                ("flush.size", "2"),
                ("schema.compatibility", "BACKWARD"),
            ],
            &[("value.converter", "io.confluent.connect.avro.AvroConverter")],
        )
        .await;
    task.put(kinds).await.expect("put");
    assert_eq!(
        objects(&bucket).await,
        [
            (0, vec![json!({"id": 0, "kind": "B"})]),
            (1, vec![json!({"id": 1})]),
            (
                2,
                vec![json!({"id": 2, "kind": "A"}), json!({"id": 3, "kind": "B"})]
            ),
        ]
    );
}

fn avro_string(out: &mut Vec<u8>, s: &str) {
    avro::write_bytes(out, s.as_bytes());
}
