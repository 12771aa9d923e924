//! Objects read back by independent readers: pyarrow (Parquet), fastavro (Avro), gzip.

use serde_json::json;
use tributary_runtime::connector::SinkTask;

use crate::harness::{Bucket, JSON_WITH_SCHEMAS, record};

/// A row schema with logical types and a nested struct, as Connect JSON.
fn schema() -> serde_json::Value {
    json!({"type": "struct", "name": "inventory.orders.Value", "optional": false, "fields": [
        {"field": "id", "type": "int32", "optional": false},
        {"field": "small", "type": "int16", "optional": true},
        {"field": "name", "type": "string", "optional": true},
        {"field": "price", "type": "bytes", "optional": false, "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
         "parameters": {"scale": "2", "connect.decimal.precision": "10"}},
        {"field": "created", "type": "int64", "optional": true, "name": "io.debezium.time.MicroTimestamp", "version": 1},
        {"field": "day", "type": "int32", "optional": false, "name": "io.debezium.time.Date", "version": 1},
        {"field": "ratio", "type": "double", "optional": false},
        {"field": "source", "type": "struct", "optional": true, "name": "src", "fields": [
            {"field": "db", "type": "string", "optional": false},
            {"field": "pos", "type": "int64", "optional": false}
        ]}
    ]})
}

/// Row `i`: (record payload, the row as the Python readers print it).
fn row(i: i64) -> (serde_json::Value, String) {
    // price = i * 100 + 45 hundredths, unscaled big-endian two's complement.
    let unscaled = i * 100 + 45;
    let bytes = (unscaled as i32).to_be_bytes();
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(3);
    use base64::Engine;
    let price = base64::engine::general_purpose::STANDARD.encode(&bytes[first.min(2)..]);
    let created = 1_704_103_200_000_000i64 + i * 1_000_001 + 1;
    let name = if i % 2 == 0 {
        json!(format!("n{i}"))
    } else {
        json!(null)
    };
    let source = if i == 1 {
        json!(null)
    } else {
        json!({"db": "inv", "pos": i * 7})
    };
    let payload = json!({"id": i, "small": i - 3, "name": name, "price": price, "created": created,
        "day": 19_723 + i, "ratio": i as f64 / 4.0, "source": source});
    let micros = created % 1_000_000;
    let secs = (created / 1_000_000) % 60;
    let name_py = if i % 2 == 0 {
        format!("'n{i}'")
    } else {
        "None".to_owned()
    };
    let source_py = if i == 1 {
        "None".to_owned()
    } else {
        format!("{{'db': 'inv', 'pos': {}}}", i * 7)
    };
    let expected = format!(
        "{i}|{}|{name_py}|{}.45|2024-01-01 10:00:{secs:02}.{micros:06}|2024-01-{:02}|{:?}|{source_py}",
        i - 3,
        i,
        1 + i,
        i as f64 / 4.0
    );
    (payload, expected)
}

const PYARROW: &str = r#"
import sys, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
print(t.schema.field('price').type, t.schema.field('created').type, t.schema.field('day').type, t.schema.field('small').type)
for r in t.to_pylist():
    print('|'.join(repr(r[k]) if k == 'name' and r[k] is not None else str(r[k]) for k in ['id','small','name','price','created','day','ratio','source']))
"#;

#[tokio::test]
async fn parquet_with_logical_types_reads_in_pyarrow() {
    let bucket = Bucket::new("s3pq").await;
    let mut task = bucket
        .task(
            &[
                (
                    "format.class",
                    "io.confluent.connect.s3.format.parquet.ParquetFormat",
                ),
                ("flush.size", "5"),
            ],
            JSON_WITH_SCHEMAS,
        )
        .await;
    let rows: Vec<_> = (0..5).map(row).collect();
    let records = rows
        .iter()
        .enumerate()
        .map(|(i, (p, _))| {
            record(
                "inv.orders",
                2,
                100 + i as u64,
                0,
                &json!({"schema": schema(), "payload": p}),
            )
        })
        .collect();
    task.put(records).await.expect("put");
    let key = "topics/inv.orders/partition=2/inv.orders+2+0000000100.snappy.parquet";
    assert_eq!(bucket.keys().await, [key]);
    let out = bucket.python(PYARROW, key).await;
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("decimal128(10, 2) timestamp[us] date32[day] int16")
    );
    let expected: Vec<&str> = rows.iter().map(|(_, e)| e.as_str()).collect();
    assert_eq!(lines.collect::<Vec<_>>(), expected);
}

const FASTAVRO: &str = r#"
import sys, fastavro, datetime
with open(sys.argv[1], 'rb') as f:
    r = fastavro.reader(f)
    for rec in r:
        c = rec['created']
        if isinstance(c, datetime.datetime):
            c = c.replace(tzinfo=None)
        else:
            c = datetime.datetime(1970, 1, 1) + datetime.timedelta(microseconds=c)
        d = rec['day']
        d = d if isinstance(d, datetime.date) else datetime.date(1970, 1, 1) + datetime.timedelta(days=d)
        src = rec['source']
        print('|'.join(str(x) for x in [rec['id'], rec['small'], repr(rec['name']) if rec['name'] is not None else None, rec['price'], c, d, rec['ratio'], src]))
"#;

#[tokio::test]
async fn avro_from_json_schemas_reads_in_fastavro() {
    let bucket = Bucket::new("s3avro").await;
    let mut task = bucket
        .task(
            &[
                (
                    "format.class",
                    "io.confluent.connect.s3.format.avro.AvroFormat",
                ),
                ("flush.size", "5"),
                ("avro.codec", "deflate"),
            ],
            JSON_WITH_SCHEMAS,
        )
        .await;
    let rows: Vec<_> = (0..5).map(row).collect();
    let records = rows
        .iter()
        .enumerate()
        .map(|(i, (p, _))| {
            record(
                "inv.orders",
                0,
                i as u64,
                0,
                &json!({"schema": schema(), "payload": p}),
            )
        })
        .collect();
    task.put(records).await.expect("put");
    let key = "topics/inv.orders/partition=0/inv.orders+0+0000000000.avro";
    assert_eq!(bucket.keys().await, [key]);
    let out = bucket.python(FASTAVRO, key).await;
    let expected: Vec<&str> = rows.iter().map(|(_, e)| e.as_str()).collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), expected);
}

#[tokio::test]
async fn gzip_json_and_bytes_objects() {
    let bucket = Bucket::new("s3gz").await;
    let mut task = bucket
        .task(
            &[
                ("format.class", "json"),
                ("flush.size", "3"),
                ("s3.compression.type", "gzip"),
                ("behavior.on.null.values", "write"),
            ],
            &[
                (
                    "value.converter",
                    "org.apache.kafka.connect.json.JsonConverter",
                ),
                ("value.converter.schemas.enable", "false"),
            ],
        )
        .await;
    let mut tombstone = record("t", 0, 2, 0, &json!(null));
    tombstone.record.value = None;
    task.put(vec![
        record("t", 0, 0, 0, &json!({"a": 1})),
        record("t", 0, 1, 0, &json!([1, "x"])),
        tombstone,
    ])
    .await
    .expect("put");
    let key = "topics/t/partition=0/t+0+0000000000.json.gz";
    assert_eq!(bucket.keys().await, [key]);
    let body = bucket.get(key).await;
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(body.as_slice()),
        &mut text,
    )
    .expect("gunzip");
    assert_eq!(text, "{\"a\":1}\n[1,\"x\"]\nnull\n");

    let mut task = bucket
        .task(
            &[
                ("format.class", "bytearray"),
                ("flush.size", "2"),
                ("topics.dir", "raw"),
            ],
            &[(
                "value.converter",
                "org.apache.kafka.connect.converters.ByteArrayConverter",
            )],
        )
        .await;
    task.put(vec![
        record("b", 0, 0, 0, &json!("x")),
        record("b", 0, 1, 0, &json!({"y": 2})),
    ])
    .await
    .expect("put");
    assert_eq!(
        bucket.get("raw/b/partition=0/b+0+0000000000.bin").await,
        b"\"x\"\n{\"y\":2}\n"
    );
}

/// Debezium envelopes flattened by `ExtractNewRecordState` (deletes rewritten with
/// `__deleted`, the op added) before they are written: the Parquet object holds the rows, not
/// the envelope, read back by pyarrow.
#[tokio::test]
async fn unwrapped_envelopes_become_parquet_rows() {
    let bucket = Bucket::new("s3unwrap").await;
    let mut task = bucket
        .task_with_transforms(
            &[
                (
                    "format.class",
                    "io.confluent.connect.s3.format.parquet.ParquetFormat",
                ),
                ("flush.size", "3"),
            ],
            JSON_WITH_SCHEMAS,
            &[
                ("transforms", "unwrap"),
                (
                    "transforms.unwrap.type",
                    "io.debezium.transforms.ExtractNewRecordState",
                ),
                (
                    "transforms.unwrap.delete.tombstone.handling.mode",
                    "rewrite",
                ),
                ("transforms.unwrap.add.fields", "op"),
            ],
        )
        .await;
    let row = json!({"type": "struct", "name": "inv.orders.Value", "optional": true, "fields": [
        {"field": "id", "type": "int32", "optional": false},
        {"field": "name", "type": "string", "optional": true}
    ]});
    let mut before = row.clone();
    before["field"] = json!("before");
    let mut after = row;
    after["field"] = json!("after");
    let schema = json!({"type": "struct", "name": "inv.orders.Envelope", "optional": false, "fields": [
        before, after,
        {"field": "source", "type": "struct", "name": "io.debezium.connector.mysql.Source", "optional": false, "fields": [
            {"field": "db", "type": "string", "optional": false},
            {"field": "table", "type": "string", "optional": true}
        ]},
        {"field": "op", "type": "string", "optional": false},
        {"field": "ts_ms", "type": "int64", "optional": true}
    ]});
    let source = json!({"db": "inv", "table": "orders"});
    let events = [
        json!({"before": null, "after": {"id": 1, "name": "a"}, "source": source, "op": "c", "ts_ms": 1}),
        json!({"before": {"id": 1, "name": "a"}, "after": {"id": 1, "name": "b"}, "source": source, "op": "u", "ts_ms": 2}),
        json!({"before": {"id": 1, "name": "b"}, "after": null, "source": source, "op": "d", "ts_ms": 3}),
    ];
    let records = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            record(
                "inv.orders",
                0,
                i as u64,
                0,
                &json!({"schema": schema, "payload": e}),
            )
        })
        .collect();
    task.put(records).await.expect("put");
    let key = "topics/inv.orders/partition=0/inv.orders+0+0000000000.snappy.parquet";
    assert_eq!(bucket.keys().await, [key]);
    let out = bucket
        .python(
            r#"
import sys, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
print(','.join(t.schema.names))
for r in t.to_pylist():
    print('|'.join(str(r[k]) for k in t.schema.names))
"#,
            key,
        )
        .await;
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "id,name,__op,__deleted",
            "1|a|c|false",
            "1|b|u|false",
            "1|b|d|true"
        ]
    );
}

/// Arrays and maps (nested, optional and required) are Parquet LIST and MAP columns: pyarrow
/// reads them back as lists and maps with their values and nulls.
#[tokio::test]
async fn parquet_arrays_and_maps_are_lists_and_maps() {
    let bucket = Bucket::new("s3pqlist").await;
    let mut task = bucket
        .task(
            &[
                (
                    "format.class",
                    "io.confluent.connect.s3.format.parquet.ParquetFormat",
                ),
                ("flush.size", "4"),
            ],
            JSON_WITH_SCHEMAS,
        )
        .await;
    let schema = json!({"type": "struct", "name": "inv.baskets.Value", "optional": false, "fields": [
        {"field": "id", "type": "int32", "optional": false},
        {"field": "tags", "type": "array", "optional": true,
         "items": {"type": "string", "optional": true}},
        {"field": "counts", "type": "map", "optional": false,
         "keys": {"type": "string", "optional": false},
         "values": {"type": "int64", "optional": true}},
        {"field": "lines", "type": "array", "optional": false,
         "items": {"type": "struct", "optional": false, "fields": [
            {"field": "sku", "type": "string", "optional": false},
            {"field": "prices", "type": "array", "optional": false,
             "items": {"type": "double", "optional": false}}
         ]}},
        {"field": "by_day", "type": "map", "optional": true,
         "keys": {"type": "int32", "optional": false},
         "values": {"type": "array", "optional": false,
                    "items": {"type": "int16", "optional": false}}}
    ]});
    // JsonConverter writes maps with non-string keys as [[key, value], ...].
    let payloads = [
        json!({"id": 0, "tags": ["a", null, "b"], "counts": {"x": 1, "y": null},
               "lines": [{"sku": "s1", "prices": [1.5, 2.0]}, {"sku": "s2", "prices": []}],
               "by_day": [[1, [10, 11]], [2, []]]}),
        json!({"id": 1, "tags": null, "counts": {}, "lines": [], "by_day": null}),
        json!({"id": 2, "tags": [], "counts": {"z": -5},
               "lines": [{"sku": "s3", "prices": [0.25]}], "by_day": [[3, [-1]]]}),
        json!({"id": 3, "tags": [null], "counts": {"k": 9223372036854775807i64},
               "lines": [{"sku": "s4", "prices": [3.0, 4.0, 5.0]}], "by_day": []}),
    ];
    let records = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| {
            record(
                "inv.baskets",
                0,
                i as u64,
                0,
                &json!({"schema": schema, "payload": p}),
            )
        })
        .collect();
    task.put(records).await.expect("put");
    let key = "topics/inv.baskets/partition=0/inv.baskets+0+0000000000.snappy.parquet";
    assert_eq!(bucket.keys().await, [key]);
    let out = bucket
        .python(
            r#"
import sys, json, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
for f in t.schema:
    print(f.name, f.type, f.nullable)
for r in t.to_pylist():
    # pyarrow gives maps as lists of (key, value) tuples.
    print(json.dumps(r, sort_keys=True))
"#,
            key,
        )
        .await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..5],
        [
            "id int32 False",
            "tags list<element: string> True",
            // pyarrow names a map's entries after the column, as for its own files.
            "counts map<string, int64 ('counts')> False",
            "lines list<element: struct<sku: string not null, prices: list<element: double not null> not null> not null> False",
            "by_day map<int32, list<element: int16 not null> ('by_day')> True",
        ]
    );
    let rows: Vec<serde_json::Value> = lines[5..]
        .iter()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let expected = [
        json!({"id": 0, "tags": ["a", null, "b"], "counts": [["x", 1], ["y", null]],
               "lines": [{"sku": "s1", "prices": [1.5, 2.0]}, {"sku": "s2", "prices": []}],
               "by_day": [[1, [10, 11]], [2, []]]}),
        json!({"id": 1, "tags": null, "counts": [], "lines": [], "by_day": null}),
        json!({"id": 2, "tags": [], "counts": [["z", -5]],
               "lines": [{"sku": "s3", "prices": [0.25]}], "by_day": [[3, [-1]]]}),
        json!({"id": 3, "tags": [null], "counts": [["k", 9223372036854775807i64]],
               "lines": [{"sku": "s4", "prices": [3.0, 4.0, 5.0]}], "by_day": []}),
    ];
    assert_eq!(rows, expected);
}
