//! The Avro converter and the built-in schema registry against independent implementations:
//! Confluent's own Python client (`confluent-kafka` `SchemaRegistryClient`,
//! `AvroSerializer`/`AvroDeserializer` with `fastavro`) registers, fetches, checks
//! compatibility and decodes our bytes; our Rust client registers through HTTP.
//!
//! The registry runs in the test on a free 127.0.0.1 port, persisted in a temporary data
//! directory. Golden schemas of a fixed table live in `tests/golden/avro/`
//! (regenerate with `TRIB_UPDATE_GOLDEN=1` and review the diff).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde_json::{Value as J, json};
use tributary_runtime::converter::RecordEncoder;
use tributary_runtime::converter::json::ValueModes;
use tributary_runtime::model::{
    ChangeEvent, Column, DataType, Decimal, Op, Row, SnapshotMarker, SourceInfo, TableId,
    TableSchema, TransactionInfo, Value,
};
use tributary_runtime::record::{Payload, SourcePartition, SourceRecord};
use tributary_runtime::schema_registry::{self, SchemaStore};

use crate::support::env::TestEnv;

const DEADLINE: Duration = Duration::from_secs(120);

/// A registry on a free port with its data directory.
struct Registry {
    url: String,
    dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn start_registry() -> Result<Registry> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(SchemaStore::open(dir.path())?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr: SocketAddr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let _ = schema_registry::serve_listener(listener, store).await;
    });
    Ok(Registry {
        url: format!("http://{addr}"),
        dir,
        server,
    })
}

fn column(name: &str, ty: DataType, sql: &str) -> Column {
    Column::new(name, ty, sql)
}

/// The fixed table: one column of every logical type.
fn everything_table(version: u32) -> TableSchema {
    let mut color = column("color", DataType::Enum, "enum('red','green')");
    color.enum_values = vec!["red".into(), "green".into()];
    let mut tags = column("tags", DataType::Set, "set('a','b','c')");
    tags.enum_values = vec!["a".into(), "b".into(), "c".into()];
    TableSchema {
        id: TableId::new("shop", "everything"),
        version,
        columns: vec![
            column("id", DataType::Int64, "bigint").not_null(),
            column("b", DataType::Bool, "boolean"),
            column("i8", DataType::Int8, "tinyint"),
            column("i16", DataType::Int16, "smallint"),
            column("i32", DataType::Int32, "int"),
            column("u64", DataType::UInt64, "bigint unsigned"),
            column(
                "amount",
                DataType::Decimal {
                    precision: 12,
                    scale: 2,
                },
                "decimal(12,2)",
            ),
            column(
                "n",
                DataType::Decimal {
                    precision: 0,
                    scale: 0,
                },
                "numeric",
            ),
            column("f32", DataType::Float32, "float"),
            column("f64", DataType::Float64, "double"),
            column("name", DataType::Text, "varchar(64)"),
            column("data", DataType::Bytes, "varbinary(16)"),
            column("day", DataType::Date, "date"),
            column("t0", DataType::Time { precision: 0 }, "time"),
            column("t6", DataType::Time { precision: 6 }, "time(6)"),
            column("ttz", DataType::TimeTz, "timetz"),
            column("ts3", DataType::Timestamp { precision: 3 }, "datetime(3)"),
            column("ts6", DataType::Timestamp { precision: 6 }, "datetime(6)"),
            column(
                "tstz",
                DataType::TimestampTz { precision: 6 },
                "timestamp(6)",
            ),
            column("iv", DataType::Interval, "interval"),
            column("doc", DataType::Json, "json"),
            column("uid", DataType::Uuid, "uuid"),
            color,
            tags,
            column("flag", DataType::Bits { length: 1 }, "bit(1)"),
            column("bits", DataType::Bits { length: 12 }, "bit(12)"),
            column("yr", DataType::Year, "year"),
            column("geo", DataType::Geometry, "point"),
            column(
                "ints",
                DataType::Array {
                    element: Box::new(DataType::Int32),
                },
                "int[]",
            ),
        ],
        key: vec![0],
    }
}

const UUID: [u8; 16] = [
    0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3, 0xa4, 0x56, 0x42, 0x66, 0x14, 0x17, 0x40, 0x00,
];

/// A full row and the values Confluent's deserializer must return for it (JSON-ified:
/// decimals as strings, bytes as base64).
fn full_row(id: i64) -> (Row, J) {
    let row = Row(vec![
        Value::Int(id),
        Value::Bool(true),
        Value::Int(-8),
        Value::Int(-1600),
        Value::Int(320_000),
        Value::UInt(9_000_000_000),
        Value::Decimal(Decimal::parse("-1234.5").expect("decimal")),
        Value::Decimal(Decimal::parse("3.14159").expect("decimal")),
        Value::Float32(1.5),
        Value::Float64(-2.25e300),
        Value::Text("żółw €".into()),
        Value::Bytes(Bytes::from_static(&[0, 1, 254, 255])),
        Value::Date(19_783),
        Value::Time(45_296_000_000),
        Value::Time(-3_723_000_001),
        Value::TimeTz {
            micros: 3_600_000_000,
            offset_seconds: 7200,
        },
        Value::Timestamp(1_709_296_245_123_000),
        Value::Timestamp(1_709_296_245_123_456),
        Value::TimestampTz(1_709_296_245_123_450),
        Value::Interval {
            months: 1,
            days: 2,
            micros: 3,
        },
        Value::Json(r#"{"a": [1, 2]}"#.into()),
        Value::Uuid(UUID),
        Value::Enum("green".into()),
        Value::Set(vec!["a".into(), "c".into()]),
        Value::Bits {
            len: 1,
            bytes: Bytes::from_static(&[1]),
        },
        Value::Bits {
            len: 12,
            bytes: Bytes::from_static(&[0xff, 0x0a]),
        },
        Value::Int(2024),
        Value::Bytes(Bytes::from_static(&[1, 1, 0, 0, 0])),
        Value::Array(vec![Value::Int(1), Value::Null, Value::Int(-3)]),
    ]);
    let expected = json!({
        "id": id, "b": true, "i8": -8, "i16": -1600, "i32": 320000, "u64": 9_000_000_000u64,
        "amount": "-1234.50",
        "n": {"scale": 5, "value": BASE64.encode(&314_159i32.to_be_bytes()[1..])}, "f32": 1.5, "f64": -2.25e300, "name": "żółw €",
        "data": BASE64.encode([0u8, 1, 254, 255]), "day": 19783,
        "t0": 45_296_000, "t6": -3_723_000_001i64, "ttz": "23:00:00Z",
        "ts3": 1_709_296_245_123i64, "ts6": 1_709_296_245_123_456i64,
        "tstz": "2024-03-01T12:30:45.12345Z",
        "iv": (32i64 * 86_400_000_000) + 3, "doc": r#"{"a": [1, 2]}"#,
        "uid": "123e4567-e89b-12d3-a456-426614174000", "color": "green", "tags": "a,c",
        "flag": true, "bits": BASE64.encode([0xffu8, 0x0a]), "yr": 2024,
        "geo": {"wkb": BASE64.encode([1u8, 1, 0, 0, 0]), "srid": null}, "ints": [1, null, -3],
    });
    (row, expected)
}

/// A row of nulls except the key.
fn null_row(table: &TableSchema, id: i64) -> (Row, J) {
    let mut values = vec![Value::Int(id)];
    values.resize(table.columns.len(), Value::Null);
    let mut expected = serde_json::Map::new();
    for c in &table.columns {
        expected.insert(c.name.clone(), J::Null);
    }
    expected.insert("id".into(), json!(id));
    (Row(values), J::Object(expected))
}

fn source(db: &str, table: &str) -> SourceInfo {
    SourceInfo {
        connector: "mysql",
        name: Arc::from("srv"),
        ts_ms: 1_700_000_000_000,
        snapshot: SnapshotMarker::False,
        db: Arc::from(db),
        schema: None,
        table: Some(Arc::from(table)),
        extra: vec![
            ("server_id", Value::Int(1)),
            ("gtid", Value::Null),
            ("file", Value::Text("mysql-bin.000003".into())),
            ("pos", Value::Int(154)),
            ("row", Value::Int(0)),
        ],
    }
}

fn event(
    table: &Arc<TableSchema>,
    op: Op,
    before: Option<Row>,
    after: Option<Row>,
) -> SourceRecord {
    SourceRecord {
        topic: Arc::from(format!("srv.{}", table.id)),
        payload: Payload::Change(Box::new(ChangeEvent {
            op,
            table: table.clone(),
            before,
            after,
            source: source(&table.id.namespace, &table.id.name),
            transaction: Some(TransactionInfo {
                id: Arc::from("tx-1"),
                total_order: 2,
                data_collection_order: 1,
            }),
            processed_ts_ms: 1_700_000_000_123,
            headers: vec![],
        })),
        partition: SourcePartition::from_json(&json!({"server": "srv"})),
        offset: None,
    }
}

fn avro_encoder(url: &str, extra: &[(&str, &str)]) -> Result<RecordEncoder> {
    let mut config: BTreeMap<String, String> = BTreeMap::new();
    for side in ["key", "value"] {
        config.insert(
            format!("{side}.converter"),
            "io.confluent.connect.avro.AvroConverter".into(),
        );
        config.insert(format!("{side}.converter.schema.registry.url"), url.into());
    }
    for (k, v) in extra {
        config.insert((*k).into(), (*v).into());
    }
    RecordEncoder::from_config(&config, ValueModes::default())
        .map_err(|e| anyhow::anyhow!("converter config rejected: {e:?}"))
}

/// Runs a Python script with the environment's interpreter; its stdout is JSON.
async fn python(script: &str, args: &[&str]) -> Result<J> {
    let env = TestEnv::load();
    let out = tokio::time::timeout(
        DEADLINE,
        tokio::process::Command::new(&env.python)
            .arg("-c")
            .arg(script)
            .args(args)
            .output(),
    )
    .await
    .context("python did not finish in time")??;
    if !out.status.success() {
        bail!(
            "python failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "python printed no JSON: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

const DECODE_PY: &str = r#"
import base64, decimal, json, sys
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

url, topic, path = sys.argv[1:4]
client = SchemaRegistryClient({"url": url})
deser = AvroDeserializer(client)

def plain(v):
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    if isinstance(v, bytes):
        return base64.b64encode(v).decode()
    if isinstance(v, decimal.Decimal):
        return str(v)
    return v

out = []
for m in json.load(open(path)):
    field = MessageField.KEY if m["key"] else MessageField.VALUE
    out.append(plain(deser(base64.b64decode(m["bytes"]), SerializationContext(topic, field))))
print(json.dumps({"decoded": out, "subjects": sorted(client.get_subjects())}))
"#;

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/avro")
        .join(name)
}

/// Compares a schema to its golden file (or rewrites it with `TRIB_UPDATE_GOLDEN=1`).
fn check_golden(name: &str, schema: &J) -> Result<()> {
    let path = golden_path(name);
    let pretty = serde_json::to_string_pretty(schema)? + "\n";
    if std::env::var_os("TRIB_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &pretty)?;
        return Ok(());
    }
    let golden: J = serde_json::from_str(
        &std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?,
    )?;
    ensure!(
        &golden == schema,
        "{} differs from the generated schema (TRIB_UPDATE_GOLDEN=1 rewrites it):\n{pretty}",
        path.display()
    );
    Ok(())
}

async fn registry_get(url: &str, path: &str) -> Result<J> {
    let resp = reqwest::get(format!("{url}{path}")).await?;
    let status = resp.status();
    let body: J = resp.json().await?;
    ensure!(status.is_success(), "GET {path}: {status} {body}");
    Ok(body)
}

/// Every logical type of the fixed table, encoded by us, decoded by Confluent's
/// `AvroDeserializer` (fastavro) through the schemas our Rust client registered, field by
/// field; the registered schemas equal the golden files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_deserializer_reads_every_logical_type() -> Result<()> {
    let registry = start_registry().await?;
    let encoder = avro_encoder(&registry.url, &[])?;
    let table = Arc::new(everything_table(1));
    let (full, full_expected) = full_row(7);
    let (nulls, nulls_expected) = null_row(&table, 8);
    let records = [
        event(&table, Op::Create, None, Some(full.clone())),
        event(&table, Op::Update, Some(full), Some(nulls.clone())),
        event(&table, Op::Delete, Some(nulls), None),
    ];
    let mut buf = Vec::new();
    let mut messages = Vec::new();
    for r in &records {
        let encoded = encoder.encode(r, &mut buf).await?;
        for (key, bytes) in [(true, encoded.key), (false, encoded.value)] {
            let bytes = bytes.context("key and value expected")?;
            ensure!(bytes[0] == 0, "magic byte");
            messages.push(json!({"key": key, "bytes": BASE64.encode(&bytes)}));
        }
    }
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("messages.json");
    std::fs::write(&path, serde_json::to_vec(&messages)?)?;
    let topic = "srv.shop.everything";
    let out = python(
        DECODE_PY,
        &[&registry.url, topic, path.to_str().context("path")?],
    )
    .await?;
    assert_eq!(
        out["subjects"],
        json!([format!("{topic}-key"), format!("{topic}-value")])
    );
    let decoded = out["decoded"].as_array().context("decoded")?;
    assert_eq!(decoded.len(), 6);
    for i in [0, 2, 4] {
        let id = [7, 8, 8][i / 2];
        assert_eq!(decoded[i], json!({"id": id}), "key {i}");
    }
    let expect_field = |got: &J, want: &J, what: &str| {
        let (got, want) = (
            got.as_object().expect("record"),
            want.as_object().expect("record"),
        );
        assert_eq!(got.len(), want.len(), "{what}: field count");
        for (name, value) in want {
            assert_eq!(&got[name], value, "{what}.{name}");
        }
    };
    let create = &decoded[1];
    assert!(create["before"].is_null());
    expect_field(&create["after"], &full_expected, "create.after");
    assert_eq!(create["op"], "c");
    assert_eq!(create["ts_ms"], 1_700_000_000_123i64);
    assert_eq!(create["ts_us"], 1_700_000_000_123_000i64);
    assert_eq!(
        create["source"],
        json!({"version": tributary_runtime::VERSION, "connector": "mysql", "name": "srv",
               "ts_ms": 1_700_000_000_000i64, "snapshot": "false", "db": "shop", "table": "everything",
               "server_id": 1, "gtid": null, "file": "mysql-bin.000003", "pos": 154, "row": 0})
    );
    assert_eq!(
        create["transaction"],
        json!({"id": "tx-1", "total_order": 2, "data_collection_order": 1})
    );
    let update = &decoded[3];
    expect_field(&update["before"], &full_expected, "update.before");
    expect_field(&update["after"], &nulls_expected, "update.after");
    assert_eq!(update["op"], "u");
    let delete = &decoded[5];
    expect_field(&delete["before"], &nulls_expected, "delete.before");
    assert!(delete["after"].is_null());
    assert_eq!(delete["op"], "d");

    // One schema version per subject, cached: three events registered once.
    for side in ["key", "value"] {
        let subject = format!("{topic}-{side}");
        assert_eq!(
            registry_get(&registry.url, &format!("/subjects/{subject}/versions")).await?,
            json!([1])
        );
        let latest = registry_get(
            &registry.url,
            &format!("/subjects/{subject}/versions/latest"),
        )
        .await?;
        let schema: J = serde_json::from_str(latest["schema"].as_str().context("schema")?)?;
        check_golden(&format!("shop.everything-{side}.avsc"), &schema)?;
    }
    // Persisted in the data directory.
    let reopened = SchemaStore::open(registry.dir.path())?;
    assert_eq!(reopened.versions(&format!("{topic}-value"))?, [1]);
    Ok(())
}

const CLIENT_PY: &str = r#"
import json, sys
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

url = sys.argv[1]
client = SchemaRegistryClient({"url": url})
v1 = json.dumps({"type": "record", "name": "Order", "namespace": "py", "fields": [
    {"name": "id", "type": "long"}, {"name": "note", "type": ["null", "string"], "default": None}]})
v2 = json.dumps({"type": "record", "name": "Order", "namespace": "py", "fields": [
    {"name": "id", "type": "long"}, {"name": "note", "type": ["null", "string"], "default": None},
    {"name": "qty", "type": ["null", "int"], "default": None}]})
bad = json.dumps({"type": "record", "name": "Order", "namespace": "py", "fields": [
    {"name": "id", "type": "string"}, {"name": "must", "type": "int"}]})
out = {}
ctx = SerializationContext("orders", MessageField.VALUE)
ser = AvroSerializer(client, v1)
data = ser({"id": 42, "note": "hi"}, ctx)
out["roundtrip"] = AvroDeserializer(client)(data, ctx)
out["id1"] = client.get_latest_version("orders-value").schema_id
out["lookup"] = client.lookup_schema("orders-value", Schema(v1, "AVRO")).version
out["compat_v2"] = client.test_compatibility("orders-value", Schema(v2, "AVRO"))
out["compat_bad"] = client.test_compatibility("orders-value", Schema(bad, "AVRO"))
out["id2"] = client.register_schema("orders-value", Schema(v2, "AVRO"))
out["versions"] = client.get_versions("orders-value")
out["by_id"] = json.loads(client.get_schema(out["id2"]).schema_str)["fields"][2]["name"]
try:
    client.register_schema("orders-value", Schema(bad, "AVRO"))
    out["error"] = None
except SchemaRegistryError as e:
    out["error"] = {"status": e.http_status_code, "code": e.error_code, "message": e.error_message}
out["compat_level"] = client.get_compatibility()
client.set_compatibility("orders-value", "NONE")
out["subject_level"] = client.get_compatibility("orders-value")
out["id3"] = client.register_schema("orders-value", Schema(bad, "AVRO"))
print(json.dumps(out))
"#;

/// Confluent's `SchemaRegistryClient` and serializers work against the built-in registry
/// unchanged, including its error bodies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_client_works_against_the_builtin_registry() -> Result<()> {
    let registry = start_registry().await?;
    let out = python(CLIENT_PY, &[&registry.url]).await?;
    assert_eq!(out["roundtrip"], json!({"id": 42, "note": "hi"}));
    assert_eq!(out["id1"], 1);
    assert_eq!(out["lookup"], 1);
    assert_eq!(out["compat_v2"], true);
    assert_eq!(out["compat_bad"], false);
    assert_eq!(out["id2"], 2);
    assert_eq!(out["versions"], json!([1, 2]));
    assert_eq!(out["by_id"], "qty");
    assert_eq!(out["error"]["status"], 409);
    assert_eq!(out["error"]["code"], 40901);
    let message = out["error"]["message"].as_str().context("message")?;
    assert!(
        message.contains("\"orders-value\"") && message.contains("'must'"),
        "{message}"
    );
    assert_eq!(out["compat_level"], "BACKWARD");
    assert_eq!(out["subject_level"], "NONE");
    assert_eq!(out["id3"], 3);
    Ok(())
}

/// Add, drop and widen a column: each table version registers a new schema version; a
/// forced incompatible change fails with an error naming the subject and the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evolution_registers_versions_and_rejects_incompatible_changes() -> Result<()> {
    let registry = start_registry().await?;
    let encoder = avro_encoder(&registry.url, &[])?;
    let base = TableSchema {
        id: TableId::new("shop", "evolving"),
        version: 1,
        columns: vec![
            column("id", DataType::Int64, "bigint").not_null(),
            column("qty", DataType::Int32, "int"),
            column("note", DataType::Text, "text"),
        ],
        key: vec![0],
    };
    let v1 = Arc::new(base.clone());
    let mut added = base.columns.clone();
    added.push(column("price", DataType::Float64, "double"));
    let v2 = Arc::new(base.evolve(added.clone(), vec![0]));
    let dropped: Vec<Column> = added.iter().filter(|c| c.name != "note").cloned().collect();
    let v3 = Arc::new(v2.evolve(dropped.clone(), vec![0]));
    let widened: Vec<Column> = dropped
        .iter()
        .map(|c| match c.name.as_str() {
            "qty" => column("qty", DataType::Int64, "bigint"),
            _ => c.clone(),
        })
        .collect();
    let v4 = Arc::new(v3.evolve(widened.clone(), vec![0]));
    let mut buf = Vec::new();
    let mut decode_inputs = Vec::new();
    for (table, values) in [
        (
            &v1,
            vec![Value::Int(1), Value::Int(5), Value::Text("a".into())],
        ),
        (
            &v2,
            vec![
                Value::Int(2),
                Value::Int(6),
                Value::Text("b".into()),
                Value::Float64(2.5),
            ],
        ),
        (&v3, vec![Value::Int(3), Value::Int(7), Value::Float64(3.5)]),
        (
            &v4,
            vec![
                Value::Int(4),
                Value::Int(8_000_000_000),
                Value::Float64(4.5),
            ],
        ),
    ] {
        let r = event(table, Op::Create, None, Some(Row(values)));
        let encoded = encoder.encode(&r, &mut buf).await?;
        decode_inputs
            .push(json!({"key": false, "bytes": BASE64.encode(encoded.value.context("value")?)}));
    }
    let topic = "srv.shop.evolving";
    let versions =
        registry_get(&registry.url, &format!("/subjects/{topic}-value/versions")).await?;
    assert_eq!(versions, json!([1, 2, 3, 4]));
    // Each message decodes with the schema it was written with.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("m.json");
    std::fs::write(&path, serde_json::to_vec(&decode_inputs)?)?;
    let out = python(
        DECODE_PY,
        &[&registry.url, topic, path.to_str().context("path")?],
    )
    .await?;
    let afters: Vec<J> = out["decoded"]
        .as_array()
        .context("decoded")?
        .iter()
        .map(|d| d["after"].clone())
        .collect();
    assert_eq!(
        afters,
        [
            json!({"id": 1, "qty": 5, "note": "a"}),
            json!({"id": 2, "qty": 6, "note": "b", "price": 2.5}),
            json!({"id": 3, "qty": 7, "price": 3.5}),
            json!({"id": 4, "qty": 8_000_000_000i64, "price": 4.5}),
        ]
    );

    // A new NOT NULL column without a default cannot read old data: BACKWARD rejects it.
    let mut forced = widened;
    forced.push(column("sku", DataType::Text, "varchar(8)").not_null());
    let v5 = Arc::new(v4.evolve(forced, vec![0]));
    let r = event(
        &v5,
        Op::Create,
        None,
        Some(Row(vec![
            Value::Int(5),
            Value::Int(1),
            Value::Float64(1.0),
            Value::Text("x".into()),
        ])),
    );
    let err = encoder
        .encode(&r, &mut buf)
        .await
        .expect_err("incompatible change must fail");
    assert_eq!(err.kind, tributary_runtime::error::ErrorKind::Definite);
    let message = err.to_string();
    for needle in [
        &format!("{topic}-value"),
        "'sku'",
        "READER_FIELD_MISSING_DEFAULT_VALUE",
        "shop.evolving version 5",
    ] {
        assert!(message.contains(needle), "{needle} missing from: {message}");
    }
    // use.latest.version over HTTP writes with the subject's latest schema (version 4): as is
    // for the table version it was derived from, projected onto it for v5 (sku dropped); our
    // Rust client fetches it by id.
    let latest = avro_encoder(
        &registry.url,
        &[("value.converter.use.latest.version", "true")],
    )?;
    let projected = latest.encode(&r, &mut buf).await?.value.context("value")?;
    let r4 = event(
        &v4,
        Op::Create,
        None,
        Some(Row(vec![Value::Int(6), Value::Int(1), Value::Float64(1.0)])),
    );
    let encoded = latest.encode(&r4, &mut buf).await?;
    let value = encoded.value.context("value")?;
    let (id, _) = tributary_runtime::converter::wire::read_header(&value).context("framed")?;
    let v4_id = registry_get(
        &registry.url,
        &format!("/subjects/{topic}-value/versions/4"),
    )
    .await?["id"]
        .clone();
    assert_eq!(json!(id), v4_id);
    let (projected_id, projected_body) =
        tributary_runtime::converter::wire::read_header(&projected).context("framed")?;
    assert_eq!(json!(projected_id), v4_id);
    // v5's row minus sku is v4's row: the same bytes as a v4 record with those values.
    let same_row = latest
        .encode(
            &event(
                &v4,
                Op::Create,
                None,
                Some(Row(vec![Value::Int(5), Value::Int(1), Value::Float64(1.0)])),
            ),
            &mut buf,
        )
        .await?
        .value
        .context("value")?;
    assert_eq!(Some(projected_body), same_row.get(5..));
    let client =
        tributary_runtime::converter::registry_client::RegistryClient::new(&registry.url, None)?;
    let text = client.schema(id).await?;
    assert!(text.contains("\"price\""), "{text}");
    // Nothing was registered for it; the next compatible event still works.
    assert_eq!(
        registry_get(&registry.url, &format!("/subjects/{topic}-value/versions")).await?,
        json!([1, 2, 3, 4])
    );
    Ok(())
}

const LATEST_ENV: [(&str, &str); 4] = [
    ("key.converter.use.latest.version", "true"),
    ("key.converter.auto.register.schemas", "false"),
    ("value.converter.use.latest.version", "true"),
    ("value.converter.auto.register.schemas", "false"),
];

async fn registry_send(method: reqwest::Method, url: &str, body: J) -> Result<J> {
    let resp = reqwest::Client::new()
        .request(method.clone(), url)
        .json(&body)
        .send()
        .await?;
    let status = resp.status();
    let body: J = resp.json().await?;
    ensure!(status.is_success(), "{method} {url}: {status} {body}");
    Ok(body)
}

/// `use.latest.version=true` with `auto.register.schemas=false`, as Confluent's serializer:
/// the subject's latest version is newer than what the table derives (a value field renamed
/// with an alias and widened, one dropped, one added with a default; an envelope field
/// added). Records are written with that version's id, projected onto it, and Confluent's
/// deserializer reads them with the defaults; nothing is registered. The latest schema is
/// kept per table version (`latest.cache.ttl.sec=-1`) or fetched again after the TTL; a
/// latest version the records cannot fit fails definitely, naming subject and field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn use_latest_version_projects_records_onto_the_latest_schema() -> Result<()> {
    let registry = start_registry().await?;
    let table = Arc::new(TableSchema {
        id: TableId::new("shop", "latest"),
        version: 1,
        columns: vec![
            column("id", DataType::Int64, "bigint").not_null(),
            column("qty", DataType::Int32, "int"),
            column("note", DataType::Text, "text"),
        ],
        key: vec![0],
    });
    let topic = "srv.shop.latest";
    let subject = format!("{topic}-value");
    let row = |id: i64, qty: Option<i64>, note: Option<&str>| {
        Row(vec![
            Value::Int(id),
            qty.map_or(Value::Null, Value::Int),
            note.map_or(Value::Null, |n| Value::Text(n.into())),
        ])
    };
    let mut buf = Vec::new();

    // Version 1 of both subjects: what the table derives, registered by the converter.
    avro_encoder(&registry.url, &[])?
        .encode(
            &event(&table, Op::Create, None, Some(row(1, Some(1), Some("a")))),
            &mut buf,
        )
        .await?;
    let v1 = registry_get(&registry.url, &format!("/subjects/{subject}/versions/1")).await?;
    let key_v1 = registry_get(&registry.url, &format!("/subjects/{topic}-key/versions/1")).await?;
    let mut latest: J = serde_json::from_str(v1["schema"].as_str().context("schema")?)?;

    // Version 2, registered by hand (BACKWARD-compatible with version 1).
    ensure!(latest["fields"][0]["name"] == "before", "{latest}");
    let value = &mut latest["fields"][0]["type"][1];
    ensure!(value["name"] == "Value", "{value}");
    value["fields"] = json!([
        {"name": "id", "type": "long"},
        {"name": "quantity", "aliases": ["qty"], "type": ["null", "long"], "default": null},
        {"name": "tier", "type": "string", "default": "bronze"},
    ]);
    latest["fields"]
        .as_array_mut()
        .context("fields")?
        .push(json!({"name": "ts_ns", "type": ["null", "long"], "default": null}));
    let v2_id = registry_send(
        reqwest::Method::POST,
        &format!("{}/subjects/{subject}/versions", registry.url),
        json!({"schema": latest.to_string()}),
    )
    .await?["id"]
        .clone();
    ensure!(v2_id != v1["id"], "a new schema id");

    let encoder = avro_encoder(&registry.url, &LATEST_ENV)?;
    let mut with_ttl = LATEST_ENV.to_vec();
    with_ttl.push(("value.converter.latest.cache.ttl.sec", "1"));
    let refreshing = avro_encoder(&registry.url, &with_ttl)?;
    let full = row(2, Some(5), Some("x"));
    let records = [
        event(&table, Op::Create, None, Some(full.clone())),
        event(
            &table,
            Op::Update,
            Some(full.clone()),
            Some(row(2, None, None)),
        ),
        event(&table, Op::Delete, Some(full), None),
    ];
    let mut messages = Vec::new();
    for r in &records {
        let encoded = encoder.encode(r, &mut buf).await?;
        let key = encoded.key.context("key")?;
        let value = encoded.value.context("value")?;
        let id = |b: &Bytes| tributary_runtime::converter::wire::read_header(b).map(|(id, _)| id);
        // The key's latest schema is the derived one: written as is, with its id.
        assert_eq!(id(&key).map(J::from), Some(key_v1["id"].clone()));
        assert_eq!(id(&value).map(J::from), Some(v2_id.clone()));
        messages.push(json!({"key": true, "bytes": BASE64.encode(&key)}));
        messages.push(json!({"key": false, "bytes": BASE64.encode(&value)}));
    }
    let first = refreshing.encode(&records[0], &mut buf).await?;
    assert_eq!(
        &first.value.context("value")?[..],
        BASE64.decode(messages[1]["bytes"].as_str().context("bytes")?)?
    );

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("m.json");
    std::fs::write(&path, serde_json::to_vec(&messages)?)?;
    let out = python(
        DECODE_PY,
        &[&registry.url, topic, path.to_str().context("path")?],
    )
    .await?;
    let decoded = out["decoded"].as_array().context("decoded")?;
    assert_eq!(decoded.len(), 6);
    let projected = json!({"id": 2, "quantity": 5, "tier": "bronze"});
    let create = &decoded[1];
    assert_eq!(decoded[0], json!({"id": 2}));
    assert_eq!(create["before"], J::Null);
    assert_eq!(create["after"], projected);
    assert_eq!(create["op"], "c");
    assert_eq!(create["ts_ns"], J::Null);
    assert_eq!(create["ts_ms"], 1_700_000_000_123i64);
    assert_eq!(create["source"]["table"], "latest");
    assert_eq!(decoded[3]["before"], projected);
    assert_eq!(
        decoded[3]["after"],
        json!({"id": 2, "quantity": null, "tier": "bronze"})
    );
    assert_eq!(decoded[5]["before"], projected);
    assert_eq!(decoded[5]["after"], J::Null);
    assert_eq!(decoded[5]["op"], "d");
    // Nothing was registered.
    assert_eq!(
        registry_get(&registry.url, &format!("/subjects/{subject}/versions")).await?,
        json!([1, 2])
    );
    assert_eq!(
        registry_get(&registry.url, &format!("/subjects/{topic}-key/versions")).await?,
        json!([1])
    );

    // Version 3 requires a field the table does not have (forced in with NONE).
    registry_send(
        reqwest::Method::PUT,
        &format!("{}/config/{subject}", registry.url),
        json!({"compatibility": "NONE"}),
    )
    .await?;
    latest["fields"][0]["type"][1]["fields"]
        .as_array_mut()
        .context("fields")?
        .push(json!({"name": "must", "type": "int"}));
    let v3_id = registry_send(
        reqwest::Method::POST,
        &format!("{}/subjects/{subject}/versions", registry.url),
        json!({"schema": latest.to_string()}),
    )
    .await?["id"]
        .clone();
    // Kept for the table version, as Confluent's latest.cache.ttl.sec=-1.
    let again = encoder.encode(&records[0], &mut buf).await?;
    let again_id = tributary_runtime::converter::wire::read_header(&again.value.context("value")?)
        .map(|(id, _)| J::from(id));
    assert_eq!(again_id, Some(v2_id));
    // A new converter fetches version 3 and cannot write with it.
    let err = avro_encoder(&registry.url, &LATEST_ENV)?
        .encode(&records[0], &mut buf)
        .await
        .expect_err("must has no default");
    assert_eq!(err.kind, tributary_runtime::error::ErrorKind::Definite);
    let message = err.to_string();
    for needle in [
        "use.latest.version",
        subject.as_str(),
        &format!("(id {v3_id})"),
        "field before.must",
        "no default",
    ] {
        assert!(message.contains(needle), "{needle} missing from: {message}");
    }
    // With latest.cache.ttl.sec=1 the same converter fetches version 3 once its TTL is over.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let err = loop {
        match refreshing.encode(&records[0], &mut buf).await {
            Err(e) => break e,
            Ok(_) => {
                ensure!(
                    tokio::time::Instant::now() < deadline,
                    "latest schema not fetched again"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert!(err.to_string().contains("before.must"), "{err}");
    Ok(())
}

/// Without `schema.registry.url` the converter uses the worker's built-in registry in
/// process; `auto.register.schemas=false` finds only what is registered; subject name
/// strategies name subjects as Confluent's do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_registry_and_subject_strategies() -> Result<()> {
    let store = Arc::new(SchemaStore::in_memory());
    schema_registry::install_embedded(store.clone());
    let mut config: BTreeMap<String, String> = BTreeMap::new();
    config.insert(
        "value.converter".into(),
        "io.confluent.connect.avro.AvroConverter".into(),
    );
    config.insert(
        "value.converter.value.subject.name.strategy".into(),
        "io.confluent.kafka.serializers.subject.RecordNameStrategy".into(),
    );
    let encoder = RecordEncoder::from_config(&config, ValueModes::default())
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let table = Arc::new(TableSchema {
        id: TableId::new("shop", "embedded_strategy"),
        version: 1,
        columns: vec![column("id", DataType::Int32, "int").not_null()],
        key: vec![0],
    });
    let mut buf = Vec::new();
    let encoded = encoder
        .encode(
            &event(&table, Op::Create, None, Some(Row(vec![Value::Int(1)]))),
            &mut buf,
        )
        .await?;
    // JSON key (default converter), Avro value registered under the record name.
    assert_eq!(encoded.key.as_deref(), Some(&b"{\"id\":1}"[..]));
    let subject = "srv.shop.embedded_strategy.Envelope";
    assert_eq!(store.versions(subject)?, [1]);
    let id = store.version(subject, "latest")?.id;
    assert_eq!(
        &encoded.value.context("value")?[..5],
        &[0, 0, 0, 0, id as u8]
    );

    // Lookup-only: an unregistered schema is a definite error that says what to do.
    config.insert(
        "value.converter.auto.register.schemas".into(),
        "false".into(),
    );
    config.insert(
        "value.converter.value.subject.name.strategy".into(),
        "TopicRecordNameStrategy".into(),
    );
    let lookup_only = RecordEncoder::from_config(&config, ValueModes::default())
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let err = lookup_only
        .encode(
            &event(&table, Op::Create, None, Some(Row(vec![Value::Int(2)]))),
            &mut buf,
        )
        .await
        .expect_err("not registered");
    assert!(
        err.to_string()
            .contains("srv.shop.embedded_strategy-srv.shop.embedded_strategy.Envelope"),
        "{err}"
    );
    assert!(err.to_string().contains("auto.register.schemas"), "{err}");

    // use.latest.version: the subject's latest id (the same schema here).
    config.insert("value.converter.use.latest.version".into(), "true".into());
    config.insert(
        "value.converter.value.subject.name.strategy".into(),
        "RecordNameStrategy".into(),
    );
    let latest = RecordEncoder::from_config(&config, ValueModes::default())
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let encoded = latest
        .encode(
            &event(&table, Op::Create, None, Some(Row(vec![Value::Int(3)]))),
            &mut buf,
        )
        .await?;
    assert_eq!(
        &encoded.value.context("value")?[..5],
        &[0, 0, 0, 0, id as u8]
    );

    // Bad settings are config errors naming the field.
    config.insert("value.converter.use.latest.version".into(), "maybe".into());
    config.insert("key.converter".into(), "com.example.Nope".into());
    let errors = RecordEncoder::from_config(&config, ValueModes::default()).expect_err("invalid");
    let text = format!("{errors:?}");
    assert!(
        text.contains("value.converter.use.latest.version") && text.contains("key.converter"),
        "{text}"
    );
    Ok(())
}

/// The real binary: datagen with the Avro converter pointed at the registry writes Confluent
/// framed Avro into the embedded log; Confluent's deserializer reads it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_writes_avro_that_confluent_reads() -> Result<()> {
    use tributary_runtime::log::{EmbeddedLog, ReadCursor};
    const TOTAL: u64 = 300;
    let registry = start_registry().await?;
    let root = tempfile::tempdir()?;
    let (data, connectors) = (root.path().join("data"), root.path().join("connectors"));
    std::fs::create_dir_all(&connectors)?;
    let avro = "io.confluent.connect.avro.AvroConverter";
    std::fs::write(
        connectors.join("gen.json"),
        json!({"name": "gen", "config": {
            "connector.class": "datagen", "topic.prefix": "avrogen", "tables": "orders",
            "total": TOTAL.to_string(), "tombstones.on.delete": "false",
            "key.converter": avro, "key.converter.schema.registry.url": registry.url,
            "value.converter": avro, "value.converter.schema.registry.url": registry.url,
        }})
        .to_string(),
    )?;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["run", "--rest-port", "0", "--data-dir"])
        .arg(&data)
        .arg("--connectors-dir")
        .arg(&connectors)
        .env("TRIBUTARY_LOG", "warn")
        .kill_on_drop(true)
        .spawn()?;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let messages = loop {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "datagen did not write {TOTAL} records in time"
        );
        if let Some(status) = child.try_wait()? {
            bail!("tributary exited early: {status}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Ok(log) = EmbeddedLog::open_read_only(&data.join("log")) else {
            continue;
        };
        let mut messages = Vec::new();
        for topic in log.topics() {
            for p in &topic.partitions {
                let mut cursor = ReadCursor::at(p.log_start());
                loop {
                    let (records, next) = p.read(cursor, 10_000, 16 << 20)?;
                    if records.is_empty() {
                        break;
                    }
                    cursor = next;
                    for (_, r) in records {
                        messages.push((topic.name.to_string(), r.key, r.value));
                    }
                }
            }
        }
        if messages.len() as u64 >= TOTAL {
            break messages;
        }
    };
    child.kill().await?;
    let topic = "avrogen.orders";
    let mut inputs = Vec::new();
    for (t, key, value) in &messages {
        assert_eq!(t, topic);
        inputs.push(json!({"key": true, "bytes": BASE64.encode(key.as_ref().context("key")?)}));
        inputs
            .push(json!({"key": false, "bytes": BASE64.encode(value.as_ref().context("value")?)}));
    }
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("m.json");
    std::fs::write(&path, serde_json::to_vec(&inputs)?)?;
    let out = python(
        DECODE_PY,
        &[&registry.url, topic, path.to_str().context("path")?],
    )
    .await?;
    assert_eq!(
        out["subjects"],
        json!([format!("{topic}-key"), format!("{topic}-value")])
    );
    let decoded = out["decoded"].as_array().context("decoded")?;
    let mut seqs = Vec::new();
    for pair in decoded.chunks(2) {
        let (key, value) = (&pair[0], &pair[1]);
        let row = if value["after"].is_null() {
            &value["before"]
        } else {
            &value["after"]
        };
        assert_eq!(key["id"], row["id"], "key matches the row");
        assert_eq!(value["source"]["connector"], "datagen");
        assert_eq!(row["seq"], value["source"]["seq"]);
        if value["op"] != "d" {
            let amount = row["amount"].as_str().context("decimal as text")?;
            ensure!(
                amount.split_once('.').is_some_and(|(_, f)| f.len() == 2),
                "amount {amount}"
            );
        }
        seqs.push(value["source"]["seq"].as_u64().context("seq")?);
    }
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len() as u64, TOTAL, "every event once");
    Ok(())
}

/// A registry rejection fails the task with the registry's reason in its REST status, and
/// nothing reaches the topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_schema_fails_the_task_with_the_reason_in_its_status() -> Result<()> {
    let registry = start_registry().await?;
    let topic = "avrofail.orders";
    // An earlier, unrelated value schema makes ours BACKWARD-incompatible (op has no default).
    let client = reqwest::Client::new();
    let old = json!({"type": "record", "name": "Envelope", "namespace": topic,
                     "fields": [{"name": "x", "type": "int"}]});
    let resp = client
        .post(format!("{}/subjects/{topic}-value/versions", registry.url))
        .json(&json!({"schema": old.to_string()}))
        .send()
        .await?;
    ensure!(
        resp.status().is_success(),
        "pre-register: {}",
        resp.status()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let root = tempfile::tempdir()?;
    let (data, connectors) = (root.path().join("data"), root.path().join("connectors"));
    std::fs::create_dir_all(&connectors)?;
    let avro = "io.confluent.connect.avro.AvroConverter";
    std::fs::write(
        connectors.join("failing.json"),
        json!({"name": "failing", "config": {
            "connector.class": "datagen", "topic.prefix": "avrofail", "tables": "orders",
            "total": "10",
            "value.converter": avro, "value.converter.schema.registry.url": registry.url,
        }})
        .to_string(),
    )?;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["run", "--data-dir"])
        .arg(&data)
        .arg("--connectors-dir")
        .arg(&connectors)
        .arg("--rest-port")
        .arg(port.to_string())
        .env("TRIBUTARY_LOG", "error")
        .kill_on_drop(true)
        .spawn()?;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let status = loop {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the task did not fail in time"
        );
        if let Some(exit) = child.try_wait()? {
            bail!("tributary exited early: {exit}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Ok(resp) = client
            .get(format!("http://127.0.0.1:{port}/connectors/failing/status"))
            .send()
            .await
        else {
            continue;
        };
        let status: J = resp.json().await.unwrap_or(J::Null);
        if status["tasks"][0]["state"] == "FAILED" {
            break status;
        }
    };
    child.kill().await?;
    let trace = status["tasks"][0]["trace"].as_str().context("trace")?;
    for needle in [
        &format!("{topic}-value"),
        "READER_FIELD_MISSING_DEFAULT_VALUE",
        "'op'",
    ] {
        assert!(
            trace.contains(needle),
            "{needle} missing from the task trace: {trace}"
        );
    }
    // Nothing was produced.
    let log = tributary_runtime::log::EmbeddedLog::open_read_only(&data.join("log"))?;
    let produced: u64 = log
        .topics()
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.high_watermark()))
        .sum();
    assert_eq!(produced, 0);
    Ok(())
}
