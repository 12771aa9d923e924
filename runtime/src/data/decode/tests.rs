//! Round trips: records encoded by the real encoders decode back to the same typed values.

use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::converter::{AVRO_CONVERTER, RecordEncoder, json::ValueModes};
use crate::data::envelope::{Op as EnvOp, envelope};
use crate::data::logical::to_value;
use crate::model::{
    ChangeEvent, Column, DataType, Decimal, Op, Row, SnapshotMarker, SourceInfo, TableId,
    TableSchema, Value,
};
use crate::record::{Payload, SourcePartition, SourceRecord, TopicRecord};
use crate::schema_registry::{self, SchemaStore};

fn table() -> Arc<TableSchema> {
    Arc::new(TableSchema {
        id: TableId::new("shop", "decode_orders"),
        version: 1,
        columns: vec![
            Column::new("id", DataType::Int64, "bigint").not_null(),
            Column::new("qty", DataType::Int32, "int"),
            Column::new("small", DataType::Int16, "smallint"),
            Column::new(
                "price",
                DataType::Decimal {
                    precision: 12,
                    scale: 2,
                },
                "decimal(12,2)",
            ),
            Column::new("name", DataType::Text, "varchar(64)"),
            Column::new("paid", DataType::Bool, "bool"),
            Column::new("at", DataType::Timestamp { precision: 6 }, "datetime(6)"),
            Column::new(
                "at_tz",
                DataType::TimestampTz { precision: 6 },
                "timestamptz",
            ),
            Column::new("day", DataType::Date, "date"),
            Column::new("doc", DataType::Json, "json"),
            Column::new("blob", DataType::Bytes, "blob"),
            Column::new("ratio", DataType::Float64, "double"),
            Column::new("uid", DataType::Uuid, "uuid"),
        ],
        key: vec![0],
    })
}

fn row(id: i64) -> Row {
    Row(vec![
        Value::Int(id),
        Value::Int(-7),
        Value::Int(300),
        Value::Decimal(Decimal::parse("-1234.50").expect("decimal")),
        Value::Text("ünïcode ✓".into()),
        Value::Bool(true),
        Value::Timestamp(1_709_296_245_123_456),
        Value::TimestampTz(1_709_296_245_654_321),
        Value::Date(19_783),
        Value::Json(r#"{"a":[1,2]}"#.into()),
        Value::Bytes(Bytes::from_static(&[0, 1, 254, 255])),
        Value::Float64(0.25),
        Value::Uuid([0x12; 16]),
    ])
}

fn update_event() -> SourceRecord {
    let mut before = row(42);
    before.0[4] = Value::Null;
    SourceRecord {
        topic: Arc::from("srv.shop.decode_orders"),
        payload: Payload::Change(Box::new(ChangeEvent {
            op: Op::Update,
            table: table(),
            before: Some(before),
            after: Some(row(42)),
            source: SourceInfo {
                connector: "mysql",
                name: Arc::from("srv"),
                ts_ms: 1_709_296_245_000,
                snapshot: SnapshotMarker::False,
                db: Arc::from("shop"),
                schema: None,
                table: Some(Arc::from("decode_orders")),
                extra: vec![
                    ("file", Value::Text("mysql-bin.000003".into())),
                    ("pos", Value::Int(154)),
                ],
            },
            transaction: None,
            processed_ts_ms: 1_709_296_246_000,
            headers: Vec::new(),
        })),
        partition: SourcePartition::from_json(&serde_json::json!({"server": "srv"})),
        offset: None,
    }
}

fn config(pairs: &[(&str, &str)]) -> RawConfig {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn round_trip(pairs: &[(&str, &str)]) -> ConnectRecord {
    let cfg = config(pairs);
    let encoder = RecordEncoder::from_config(&cfg, ValueModes::default()).expect("encoder");
    let mut buf = Vec::new();
    let encoded: TopicRecord = encoder
        .encode(&update_event(), &mut buf)
        .await
        .expect("encode");
    let decoder = RecordDecoder::from_config(&cfg).expect("decoder");
    let sink = SinkRecord {
        topic: Arc::from("srv.shop.decode_orders"),
        partition: 0,
        offset: 9,
        record: encoded,
    };
    decoder
        .decode(&sink)
        .await
        .expect("decode")
        .expect("not filtered")
}

fn assert_same_rows(record: &ConnectRecord) {
    let value = record.value.as_ref().expect("value");
    let env = envelope(value).expect("an envelope");
    assert_eq!(env.op, EnvOp::Update);
    assert_eq!(
        env.source.and_then(|s| s.str("table")),
        Some("decode_orders")
    );
    let after = env.after.expect("after");
    let expected = row(42);
    let fields = after.fields();
    assert_eq!(fields.len(), expected.0.len());
    for ((name, schema, data), (column, want)) in
        fields.iter().zip(table().columns.iter().zip(&expected.0))
    {
        assert_eq!(*name, column.name);
        let got = to_value(*schema, data).expect("typed value");
        // Integers of every width come back as Int.
        assert_eq!(&got, want, "column {name}");
    }
    let before = env.before.expect("before");
    assert_eq!(
        before.field("name").map(|(_, v)| v.clone()),
        Some(Data::Null)
    );
    let key = record.key.as_ref().expect("key");
    assert_eq!(
        key.field("id").map(|(_, v)| v.clone()),
        Some(Data::Int64(42))
    );
}

#[tokio::test]
async fn avro_records_decode_to_the_values_they_were_encoded_from() {
    schema_registry::install_embedded(Arc::new(SchemaStore::in_memory()));
    let record = round_trip(&[
        ("key.converter", AVRO_CONVERTER),
        ("value.converter", AVRO_CONVERTER),
    ])
    .await;
    assert_same_rows(&record);
    let value = record.value.as_ref().expect("value");
    assert_eq!(
        value.schema.as_ref().and_then(|s| s.name.as_deref()),
        Some("srv.shop.decode_orders.Envelope")
    );
}

#[tokio::test]
async fn json_with_schemas_decodes_to_the_values_it_was_encoded_from() {
    let record = round_trip(&[
        ("key.converter.schemas.enable", "true"),
        ("value.converter.schemas.enable", "true"),
    ])
    .await;
    assert_same_rows(&record);
}

#[tokio::test]
async fn schemaless_json_decodes_to_maps() {
    let record = round_trip(&[]).await;
    let value = record.value.as_ref().expect("value");
    assert!(value.schema.is_none());
    let env = envelope(value).expect("an envelope");
    let after = env.after.expect("after");
    assert_eq!(after.str("name"), Some("ünïcode ✓"));
    assert_eq!(
        after.field("id").map(|(_, v)| v.clone()),
        Some(Data::Int64(42))
    );
}

#[tokio::test]
async fn bad_bytes_are_definite_errors_naming_the_record() {
    schema_registry::install_embedded(Arc::new(SchemaStore::in_memory()));
    let cfg = config(&[("value.converter", AVRO_CONVERTER)]);
    let decoder = RecordDecoder::from_config(&cfg).expect("decoder");
    let record = |value: &'static [u8]| SinkRecord {
        topic: Arc::from("t"),
        partition: 3,
        offset: 17,
        record: TopicRecord {
            key: None,
            value: Some(Bytes::from_static(value)),
            headers: Vec::new(),
            timestamp_ms: 0,
        },
    };
    let err = decoder.decode(&record(b"{}")).await.expect_err("not Avro");
    assert_eq!(err.kind, crate::error::ErrorKind::Definite);
    assert!(
        err.message.contains("t-3@17") && err.message.contains("wire format"),
        "{err}"
    );
    // Unknown schema id.
    let err = decoder
        .decode(&record(&[0, 0, 0, 0x7f, 0x7f, 2]))
        .await
        .expect_err("unknown id");
    assert!(err.message.contains("schema id"), "{err}");
    let json = RecordDecoder::from_config(&config(&[("value.converter.schemas.enable", "true")]))
        .expect("decoder");
    let err = json.decode(&record(b"[1,2")).await.expect_err("bad json");
    assert!(err.message.contains("JSON"), "{err}");
}

#[test]
fn truncated_and_hostile_avro_never_panics() {
    let reader = AvroReader::compile(
        r#"{"type":"record","name":"r","fields":[
            {"name":"a","type":["null","string"]},
            {"name":"b","type":{"type":"array","items":"long"}},
            {"name":"c","type":{"type":"map","values":"bytes"}},
            {"name":"d","type":{"type":"enum","name":"e","symbols":["x","y"]}}]}"#,
    )
    .expect("compile");
    let good: &[u8] = &[2, 4, b'h', b'i', 2, 6, 0, 2, 2, b'k', 2, 0xff, 0, 2];
    let mut input = good;
    let data = reader.read(&mut input).expect("good datum");
    assert!(input.is_empty());
    assert_eq!(
        data,
        Data::Struct(vec![
            Data::String("hi".into()),
            Data::Array(vec![Data::Int64(3)]),
            Data::Map(vec![(
                Data::String("k".into()),
                Data::Bytes(Bytes::from_static(&[0xff]))
            )]),
            Data::String("y".into()),
        ])
    );
    for cut in 0..good.len() {
        let mut input = &good[..cut];
        assert!(reader.read(&mut input).is_err(), "prefix of {cut} bytes");
    }
    for bad in [
        &[4u8][..],
        &[
            2, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
        ],
    ] {
        let mut input = bad;
        assert!(reader.read(&mut input).is_err());
    }
}

#[test]
fn confluent_map_entries_and_general_unions_map_to_connect() {
    let reader = AvroReader::compile(
        r#"{"type":"record","name":"r","fields":[
            {"name":"m","type":{"type":"array","items":{"type":"record","name":"MapEntry","namespace":"io.confluent.connect.avro",
              "fields":[{"name":"key","type":"int"},{"name":"value","type":"string"}]}}},
            {"name":"u","type":["null","int","string"]}]}"#,
    )
    .expect("compile");
    let ConnectType::Struct(fields) = &reader.schema.ty else {
        panic!("struct expected");
    };
    assert!(matches!(fields[0].schema.ty, ConnectType::Map(..)));
    assert_eq!(
        fields[1].schema.name.as_deref(),
        Some("io.confluent.connect.avro.Union")
    );
    let mut input: &[u8] = &[2, 2, 2, b'v', 0, 4, 2, b'x'];
    let data = reader.read(&mut input).expect("datum");
    assert_eq!(
        data,
        Data::Struct(vec![
            Data::Map(vec![(Data::Int32(1), Data::String("v".into()))]),
            Data::Struct(vec![Data::Null, Data::String("x".into())]),
        ])
    );
}

/// Postgres under REPLICA IDENTITY DEFAULT sends only the key of a deleted row: the NOT NULL
/// columns of `before` get Debezium's fallback values instead of failing the encoder (Avro)
/// or producing a record Connect cannot read (JSON with schemas).
#[tokio::test]
async fn key_only_before_images_encode_with_debeziums_fallbacks() {
    schema_registry::install_embedded(Arc::new(SchemaStore::in_memory()));
    let strict = Arc::new(TableSchema {
        columns: table()
            .columns
            .iter()
            .cloned()
            .map(Column::not_null)
            .collect(),
        id: TableId::new("shop", "decode_strict"),
        ..(*table()).clone()
    });
    let mut before = Row(vec![Value::Null; strict.columns.len()]);
    before.0[0] = Value::Int(7);
    let mut record = update_event();
    record.topic = Arc::from("srv.shop.decode_strict");
    let Payload::Change(event) = &mut record.payload else {
        panic!("a change");
    };
    event.op = Op::Delete;
    event.table = strict.clone();
    event.before = Some(before);
    event.after = None;
    for cfg in [
        config(&[
            ("key.converter", AVRO_CONVERTER),
            ("value.converter", AVRO_CONVERTER),
        ]),
        config(&[
            ("key.converter.schemas.enable", "true"),
            ("value.converter.schemas.enable", "true"),
        ]),
    ] {
        let mut buf = Vec::new();
        let encoded = RecordEncoder::from_config(&cfg, ValueModes::default())
            .expect("encoder")
            .encode(&record, &mut buf)
            .await
            .expect("a key-only before image encodes");
        let decoded = RecordDecoder::from_config(&cfg)
            .expect("decoder")
            .decode(&SinkRecord {
                topic: record.topic.clone(),
                partition: 0,
                offset: 0,
                record: encoded,
            })
            .await
            .expect("decode")
            .expect("kept");
        let value = decoded.value.as_ref().expect("value");
        let env = envelope(value).expect("envelope");
        assert_eq!(env.op, EnvOp::Delete);
        let before = env.before.expect("before");
        let typed = |name: &str| {
            let (schema, data) = before.field(name).expect(name);
            to_value(schema, data).expect("typed")
        };
        assert_eq!(typed("id"), Value::Int(7));
        assert_eq!(typed("qty"), Value::Int(0));
        assert_eq!(typed("name"), Value::Text(String::new()));
        assert_eq!(typed("paid"), Value::Bool(false));
        assert_eq!(typed("price"), Value::Decimal(Decimal::from_i128(0, 2)));
        assert_eq!(typed("at"), Value::Timestamp(0));
        assert_eq!(typed("at_tz"), Value::TimestampTz(0));
        assert_eq!(typed("day"), Value::Date(0));
    }
}

#[tokio::test]
async fn a_failure_names_the_stage_that_failed() {
    let record = |key: &'static [u8], value: &'static [u8]| SinkRecord {
        topic: Arc::from("t"),
        partition: 0,
        offset: 5,
        record: TopicRecord {
            key: Some(Bytes::from_static(key)),
            value: Some(Bytes::from_static(value)),
            headers: Vec::new(),
            timestamp_ms: 0,
        },
    };
    let cfg = config(&[
        ("key.converter.schemas.enable", "false"),
        ("value.converter.schemas.enable", "false"),
    ]);
    let transforms = TransformChain::from_config(&config(&[
        ("transforms", "key"),
        (
            "transforms.key.type",
            "org.apache.kafka.connect.transforms.ValueToKey",
        ),
        ("transforms.key.fields", "id"),
    ]))
    .expect("chain");
    let decoder = RecordDecoder::from_config(&cfg)
        .expect("decoder")
        .with_transforms(transforms);
    let stage = |r: Result<Option<ConnectRecord>, (Stage, ConnectorError)>| match r {
        Err((stage, _)) => Some(stage),
        Ok(_) => None,
    };
    assert_eq!(
        stage(decoder.decode_staged(&record(b"[1", b"{\"id\":1}")).await),
        Some(Stage::KeyConverter)
    );
    assert_eq!(
        stage(decoder.decode_staged(&record(b"1", b"{\"id\":")).await),
        Some(Stage::ValueConverter)
    );
    assert_eq!(
        stage(decoder.decode_staged(&record(b"1", b"{\"other\":1}")).await),
        Some(Stage::Transformation)
    );
    assert_eq!(
        stage(decoder.decode_staged(&record(b"1", b"{\"id\":1}")).await),
        None
    );
}
