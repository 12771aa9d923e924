//! Each transform against the documented behaviour of Debezium and Kafka Connect. Records are
//! built from typed change events with [`crate::data::from_event`], i.e. exactly the Connect
//! form our sources' records have.

use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::converter::json::ValueModes;
use crate::data::from_event::to_connect;
use crate::data::{ConnectType, Data, SchemaAndValue};
use crate::model::{
    ChangeEvent, Column, DataType, Decimal, Op, Row, SnapshotMarker, SourceInfo, TableId,
    TableSchema, Value,
};
use crate::record::{Payload, SourcePartition, SourceRecord};

fn chain(pairs: &[(&str, &str)]) -> Result<TransformChain, ConfigErrors> {
    let raw: RawConfig = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    TransformChain::from_config(&raw)
}

fn ok_chain(pairs: &[(&str, &str)]) -> TransformChain {
    chain(pairs).unwrap_or_else(|e| panic!("config rejected: {e}"))
}

fn orders() -> Arc<TableSchema> {
    Arc::new(TableSchema {
        id: TableId::new("shop", "orders"),
        version: 1,
        columns: vec![
            Column::new("id", DataType::Int32, "int").not_null(),
            Column::new(
                "amount",
                DataType::Decimal {
                    precision: 10,
                    scale: 2,
                },
                "decimal(10,2)",
            ),
            Column::new("email", DataType::Text, "text"),
            Column::new(
                "created",
                DataType::Timestamp { precision: 6 },
                "datetime(6)",
            ),
        ],
        key: vec![0],
    })
}

fn row(id: i64, amount: &str, email: &str) -> Row {
    Row(vec![
        Value::Int(id),
        Value::Decimal(Decimal::parse(amount).expect("decimal")),
        Value::Text(email.into()),
        Value::Timestamp(1_709_212_455_678_901),
    ])
}

fn source() -> SourceInfo {
    SourceInfo {
        connector: "mysql",
        name: Arc::from("srv"),
        ts_ms: 1_700_000_000_000,
        snapshot: SnapshotMarker::False,
        db: Arc::from("shop"),
        schema: None,
        table: Some(Arc::from("orders")),
        extra: vec![
            ("file", Value::Text("bin.000003".into())),
            ("pos", Value::Int(154)),
        ],
    }
}

fn change(
    topic: &str,
    table: Arc<TableSchema>,
    op: Op,
    before: Option<Row>,
    after: Option<Row>,
) -> ConnectRecord {
    let record = SourceRecord {
        topic: Arc::from(topic),
        payload: Payload::Change(Box::new(ChangeEvent {
            op,
            table,
            before,
            after,
            source: source(),
            transaction: None,
            processed_ts_ms: 1_700_000_000_500,
            headers: Vec::new(),
        })),
        partition: SourcePartition::from_json(&serde_json::json!({})),
        offset: None,
    };
    to_connect(&record, &ValueModes::default()).expect("converts")
}

fn insert(id: i64) -> ConnectRecord {
    change(
        "srv.shop.orders",
        orders(),
        Op::Create,
        None,
        Some(row(id, "12.50", "a@x.io")),
    )
}

fn delete(id: i64) -> ConnectRecord {
    change(
        "srv.shop.orders",
        orders(),
        Op::Delete,
        Some(row(id, "12.50", "a@x.io")),
        None,
    )
}

fn tombstone(id: i64) -> ConnectRecord {
    ConnectRecord {
        value: None,
        ..delete(id)
    }
}

/// Field names of a side's struct schema.
fn field_names(side: &SchemaAndValue) -> Vec<String> {
    match side.schema.as_deref().map(|s| &s.ty) {
        Some(ConnectType::Struct(fields)) => fields.iter().map(|f| f.name.clone()).collect(),
        _ => Vec::new(),
    }
}

fn field(side: &SchemaAndValue, name: &str) -> Data {
    side.field(name)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no field {name}"))
}

fn header(r: &ConnectRecord, name: &str) -> Option<String> {
    r.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

const UNWRAP: &str = "io.debezium.transforms.ExtractNewRecordState";

#[test]
fn unwrap_replaces_the_envelope_with_the_after_state() {
    let t = ok_chain(&[("transforms", "unwrap"), ("transforms.unwrap.type", UNWRAP)]);
    let out = t.apply(insert(7)).expect("ok").expect("kept");
    let value = out.value.expect("value");
    assert_eq!(field_names(&value), ["id", "amount", "email", "created"]);
    assert_eq!(
        value
            .schema
            .as_ref()
            .and_then(|s| s.name.clone())
            .as_deref(),
        Some("srv.shop.orders.Value")
    );
    assert_eq!(field(&value, "id"), Data::Int32(7));
    assert_eq!(field(&value, "email"), Data::String("a@x.io".into()));
    // Key untouched.
    assert_eq!(
        out.key.expect("key").value,
        Data::Struct(vec![Data::Int32(7)])
    );
}

#[test]
fn unwrap_delete_and_tombstone_modes_follow_debezium() {
    let mode = |m: &str| {
        ok_chain(&[
            ("transforms", "unwrap"),
            ("transforms.unwrap.type", UNWRAP),
            ("transforms.unwrap.delete.tombstone.handling.mode", m),
        ])
    };
    // (mode, delete kept?, delete becomes tombstone?, tombstone kept?)
    let drop = mode("drop");
    assert!(drop.apply(delete(1)).expect("ok").is_none());
    assert!(drop.apply(tombstone(1)).expect("ok").is_none());

    let default = ok_chain(&[
        ("transforms", "unwrap"),
        ("transforms.unwrap.type", "unwrap"),
    ]);
    assert!(default.apply(delete(1)).expect("ok").is_none());
    assert!(
        default
            .apply(tombstone(1))
            .expect("ok")
            .expect("kept")
            .value
            .is_none()
    );

    let rewrite = mode("rewrite");
    let out = rewrite.apply(delete(3)).expect("ok").expect("kept");
    let value = out.value.expect("rewritten delete has a value");
    assert_eq!(field(&value, "id"), Data::Int32(3));
    assert_eq!(field(&value, "__deleted"), Data::String("true".into()));
    let created = rewrite
        .apply(insert(4))
        .expect("ok")
        .expect("kept")
        .value
        .expect("value");
    assert_eq!(field(&created, "__deleted"), Data::String("false".into()));
    assert!(rewrite.apply(tombstone(3)).expect("ok").is_none());

    let with_tombstone = mode("rewrite-with-tombstone");
    assert!(
        with_tombstone
            .apply(delete(3))
            .expect("ok")
            .expect("kept")
            .value
            .is_some()
    );
    assert!(with_tombstone.apply(tombstone(3)).expect("ok").is_some());

    let to_tombstone = mode("delete-to-tombstone");
    let out = to_tombstone.apply(delete(5)).expect("ok").expect("kept");
    assert!(out.value.is_none());
    assert!(out.key.is_some());
    assert!(to_tombstone.apply(tombstone(5)).expect("ok").is_none());

    // The pre-2.5 settings map onto the modes.
    let legacy = ok_chain(&[
        ("transforms", "unwrap"),
        ("transforms.unwrap.type", UNWRAP),
        ("transforms.unwrap.delete.handling.mode", "rewrite"),
        ("transforms.unwrap.drop.tombstones", "false"),
    ]);
    assert!(legacy.apply(tombstone(1)).expect("ok").is_some());
    assert!(
        legacy
            .apply(delete(1))
            .expect("ok")
            .expect("kept")
            .value
            .is_some()
    );

    let err = chain(&[
        ("transforms", "unwrap"),
        ("transforms.unwrap.type", UNWRAP),
        ("transforms.unwrap.delete.tombstone.handling.mode", "rewrit"),
    ])
    .expect_err("bad mode");
    assert_eq!(
        err.0[0].field,
        "transforms.unwrap.delete.tombstone.handling.mode"
    );
    assert!(
        err.0[0].message.contains("did you mean \"rewrite\""),
        "{}",
        err.0[0].message
    );
}

#[test]
fn unwrap_adds_fields_headers_and_routes_by_field() {
    // Debezium's example: add.fields=op,table,lsn,source.ts_ms gives __op, __table, ...
    let t = ok_chain(&[
        ("transforms", "unwrap"),
        ("transforms.unwrap.type", UNWRAP),
        (
            "transforms.unwrap.add.fields",
            "op,table,source.ts_ms,ts_ms",
        ),
        ("transforms.unwrap.add.headers", "db,op"),
    ]);
    let out = t.apply(insert(1)).expect("ok").expect("kept");
    let value = out.value.clone().expect("value");
    assert_eq!(
        field_names(&value),
        [
            "id",
            "amount",
            "email",
            "created",
            "__op",
            "__table",
            "__source_ts_ms",
            "__ts_ms"
        ]
    );
    assert_eq!(field(&value, "__op"), Data::String("c".into()));
    assert_eq!(field(&value, "__table"), Data::String("orders".into()));
    assert_eq!(
        field(&value, "__source_ts_ms"),
        Data::Int64(1_700_000_000_000)
    );
    assert_eq!(field(&value, "__ts_ms"), Data::Int64(1_700_000_000_500));
    assert_eq!(header(&out, "__db").as_deref(), Some("shop"));
    assert_eq!(header(&out, "__op").as_deref(), Some("c"));

    let prefixed = ok_chain(&[
        ("transforms", "unwrap"),
        ("transforms.unwrap.type", UNWRAP),
        ("transforms.unwrap.add.fields", "op"),
        ("transforms.unwrap.add.fields.prefix", "meta_"),
        ("transforms.unwrap.route.by.field", "email"),
    ]);
    let out = prefixed.apply(insert(1)).expect("ok").expect("kept");
    assert_eq!(&*out.topic, "a@x.io");
    assert!(field_names(out.value.as_ref().expect("value")).contains(&"meta_op".to_owned()));

    // Not a change event (a heartbeat): unchanged.
    let heartbeat = ConnectRecord {
        value: Some(SchemaAndValue {
            schema: None,
            value: Data::Map(vec![(Data::String("ts_ms".into()), Data::Int64(1))]),
        }),
        ..insert(1)
    };
    assert_eq!(t.apply(heartbeat.clone()).expect("ok"), Some(heartbeat));
}

#[test]
fn regex_router_rewrites_matching_topics() {
    // Kafka's documented example: keep only the last part of a dotted topic.
    let t = ok_chain(&[
        ("transforms", "route"),
        (
            "transforms.route.type",
            "org.apache.kafka.connect.transforms.RegexRouter",
        ),
        ("transforms.route.regex", "([^.]+)\\.([^.]+)\\.([^.]+)"),
        ("transforms.route.replacement", "$3"),
    ]);
    assert_eq!(
        &*t.apply(insert(1)).expect("ok").expect("kept").topic,
        "orders"
    );
    let other = ConnectRecord {
        topic: Arc::from("no-dots"),
        ..insert(1)
    };
    assert_eq!(
        &*t.apply(other).expect("ok").expect("kept").topic,
        "no-dots"
    );
}

#[test]
fn logical_table_router_merges_shards_with_unique_keys() {
    // Debezium's example: myserver.mydb.customers_shard1 -> myserver.mydb.customers_all_shards.
    let t = ok_chain(&[
        ("transforms", "Reroute"),
        (
            "transforms.Reroute.type",
            "io.debezium.transforms.ByLogicalTableRouter",
        ),
        ("transforms.Reroute.topic.regex", "(.*)customers_shard(.*)"),
        (
            "transforms.Reroute.topic.replacement",
            "$1customers_all_shards",
        ),
    ]);
    let rec = change(
        "myserver.mydb.customers_shard1",
        orders(),
        Op::Create,
        None,
        Some(row(1, "1", "x")),
    );
    let out = t.apply(rec).expect("ok").expect("kept");
    assert_eq!(&*out.topic, "myserver.mydb.customers_all_shards");
    let key = out.key.expect("key");
    assert_eq!(field_names(&key), ["id", "__dbz__physicalTableIdentifier"]);
    assert_eq!(
        field(&key, "__dbz__physicalTableIdentifier"),
        Data::String("myserver.mydb.customers_shard1".into())
    );
    assert_eq!(
        key.schema.as_ref().and_then(|s| s.name.clone()).as_deref(),
        Some("myserver.mydb.customers_all_shards.Key")
    );
    let value = out.value.expect("value");
    assert_eq!(
        value
            .schema
            .as_ref()
            .and_then(|s| s.name.clone())
            .as_deref(),
        Some("myserver.mydb.customers_all_shards.Envelope")
    );

    let plain = ok_chain(&[
        ("transforms", "r"),
        ("transforms.r.type", "ByLogicalTableRouter"),
        ("transforms.r.topic.regex", "(.*)customers_shard(.*)"),
        ("transforms.r.topic.replacement", "$1customers_all_shards"),
        ("transforms.r.key.enforce.uniqueness", "false"),
    ]);
    let rec = change(
        "myserver.mydb.customers_shard2",
        orders(),
        Op::Create,
        None,
        Some(row(1, "1", "x")),
    );
    assert_eq!(
        field_names(
            &plain
                .apply(rec)
                .expect("ok")
                .expect("kept")
                .key
                .expect("key")
        ),
        ["id"]
    );
}

#[test]
fn filter_with_predicates_and_negation() {
    // Kafka's example: drop tombstones.
    let drop_tombstones = ok_chain(&[
        ("transforms", "dropTombstones"),
        (
            "transforms.dropTombstones.type",
            "org.apache.kafka.connect.transforms.Filter",
        ),
        ("transforms.dropTombstones.predicate", "isTombstone"),
        ("predicates", "isTombstone"),
        (
            "predicates.isTombstone.type",
            "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone",
        ),
    ]);
    assert!(drop_tombstones.apply(tombstone(1)).expect("ok").is_none());
    assert!(drop_tombstones.apply(insert(1)).expect("ok").is_some());

    // Keep only topics matching: Filter negated.
    let only_orders = ok_chain(&[
        ("transforms", "f"),
        ("transforms.f.type", "Filter"),
        ("transforms.f.predicate", "isOrders"),
        ("transforms.f.negate", "true"),
        ("predicates", "isOrders"),
        (
            "predicates.isOrders.type",
            "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
        ),
        ("predicates.isOrders.pattern", ".*\\.orders"),
    ]);
    assert!(only_orders.apply(insert(1)).expect("ok").is_some());
    let other = ConnectRecord {
        topic: Arc::from("srv.shop.orders_archive"),
        ..insert(1)
    };
    assert!(only_orders.apply(other).expect("ok").is_none());

    let by_header = ok_chain(&[
        ("transforms", "f"),
        ("transforms.f.type", "Filter"),
        ("transforms.f.predicate", "h"),
        ("predicates", "h"),
        ("predicates.h.type", "HasHeaderKey"),
        ("predicates.h.name", "skip-me"),
    ]);
    let mut flagged = insert(1);
    flagged.headers.push(("skip-me".into(), Bytes::new()));
    assert!(by_header.apply(flagged).expect("ok").is_none());
    assert!(by_header.apply(insert(1)).expect("ok").is_some());

    // A predicate applies to any transform: only route tombstones.
    let route_tombstones = ok_chain(&[
        ("transforms", "r"),
        ("transforms.r.type", "RegexRouter"),
        ("transforms.r.regex", ".*"),
        ("transforms.r.replacement", "graveyard"),
        ("transforms.r.predicate", "t"),
        ("predicates", "t"),
        ("predicates.t.type", "RecordIsTombstone"),
    ]);
    assert_eq!(
        &*route_tombstones
            .apply(tombstone(1))
            .expect("ok")
            .expect("kept")
            .topic,
        "graveyard"
    );
    assert_eq!(
        &*route_tombstones
            .apply(insert(1))
            .expect("ok")
            .expect("kept")
            .topic,
        "srv.shop.orders"
    );
}

/// A flat record (after unwrap) to feed Kafka's field transforms.
fn flat(id: i64) -> ConnectRecord {
    ok_chain(&[("transforms", "u"), ("transforms.u.type", UNWRAP)])
        .apply(insert(id))
        .expect("ok")
        .expect("kept")
}

#[test]
fn insert_field_adds_static_and_record_metadata() {
    // Kafka's example: static.field=MessageSource, static.value=Kafka Connect framework.
    let t = ok_chain(&[
        ("transforms", "InsertSource"),
        (
            "transforms.InsertSource.type",
            "org.apache.kafka.connect.transforms.InsertField$Value",
        ),
        ("transforms.InsertSource.static.field", "MessageSource"),
        (
            "transforms.InsertSource.static.value",
            "Kafka Connect framework",
        ),
        ("transforms.InsertSource.topic.field", "topic!"),
        ("transforms.InsertSource.timestamp.field", "ts"),
    ]);
    let mut rec = flat(1);
    rec.timestamp_ms = 42;
    let value = t
        .apply(rec)
        .expect("ok")
        .expect("kept")
        .value
        .expect("value");
    assert_eq!(
        field(&value, "MessageSource"),
        Data::String("Kafka Connect framework".into())
    );
    assert_eq!(
        field(&value, "topic"),
        Data::String("srv.shop.orders".into())
    );
    assert_eq!(field(&value, "ts"), Data::Int64(42));
    let (topic_schema, _) = value.field("topic").expect("topic");
    assert!(
        !topic_schema.expect("schema").optional,
        "topic! is required"
    );
    let (ts_schema, _) = value.field("ts").expect("ts");
    assert_eq!(
        ts_schema.expect("schema").name.as_deref(),
        Some("org.apache.kafka.connect.data.Timestamp")
    );

    let err = chain(&[("transforms", "i"), ("transforms.i.type", "InsertField")])
        .expect_err("needs a side");
    assert!(
        err.0[0].message.contains("InsertField$Value"),
        "{}",
        err.0[0].message
    );
}

#[test]
fn replace_field_includes_excludes_and_renames() {
    let t = ok_chain(&[
        ("transforms", "r"),
        (
            "transforms.r.type",
            "org.apache.kafka.connect.transforms.ReplaceField$Value",
        ),
        ("transforms.r.exclude", "email"),
        ("transforms.r.renames", "id:order_id,amount:total"),
    ]);
    let value = t
        .apply(flat(2))
        .expect("ok")
        .expect("kept")
        .value
        .expect("value");
    assert_eq!(field_names(&value), ["order_id", "total", "created"]);
    assert_eq!(field(&value, "order_id"), Data::Int32(2));

    let old_names = ok_chain(&[
        ("transforms", "r"),
        ("transforms.r.type", "ReplaceField$Value"),
        ("transforms.r.whitelist", "id,email"),
    ]);
    let value = old_names
        .apply(flat(2))
        .expect("ok")
        .expect("kept")
        .value
        .expect("value");
    assert_eq!(field_names(&value), ["id", "email"]);

    let key = ok_chain(&[
        ("transforms", "r"),
        ("transforms.r.type", "ReplaceField$Key"),
        ("transforms.r.renames", "id:key_id"),
    ]);
    let out = key.apply(flat(2)).expect("ok").expect("kept");
    assert_eq!(field_names(&out.key.expect("key")), ["key_id"]);
}

#[test]
fn mask_field_empties_or_replaces_values() {
    let t = ok_chain(&[
        ("transforms", "m"),
        (
            "transforms.m.type",
            "org.apache.kafka.connect.transforms.MaskField$Value",
        ),
        ("transforms.m.fields", "email,id,amount"),
    ]);
    let value = t
        .apply(flat(9))
        .expect("ok")
        .expect("kept")
        .value
        .expect("value");
    assert_eq!(field(&value, "email"), Data::String(String::new()));
    assert_eq!(field(&value, "id"), Data::Int32(0));
    assert_eq!(
        field(&value, "amount"),
        Data::Bytes(Bytes::from_static(&[0]))
    );

    let replaced = ok_chain(&[
        ("transforms", "m"),
        ("transforms.m.type", "MaskField$Value"),
        ("transforms.m.fields", "email"),
        ("transforms.m.replacement", "<redacted>"),
    ]);
    let value = replaced
        .apply(flat(9))
        .expect("ok")
        .expect("kept")
        .value
        .expect("value");
    assert_eq!(field(&value, "email"), Data::String("<redacted>".into()));

    let bad = ok_chain(&[
        ("transforms", "m"),
        ("transforms.m.type", "MaskField$Value"),
        ("transforms.m.fields", "id"),
        ("transforms.m.replacement", "not-a-number"),
    ]);
    let err = bad
        .apply(flat(9))
        .expect_err("numeric field, text replacement");
    assert!(err.message.contains("transform m"), "{}", err.message);
}

#[test]
fn timestamp_converter_converts_between_types() {
    // `created` is an io.debezium.time.MicroTimestamp: 2024-02-29T13:14:15.678901.
    let to_string = ok_chain(&[
        ("transforms", "ts"),
        (
            "transforms.ts.type",
            "org.apache.kafka.connect.transforms.TimestampConverter$Value",
        ),
        ("transforms.ts.field", "created"),
        ("transforms.ts.target.type", "string"),
        ("transforms.ts.format", "yyyy-MM-dd HH:mm:ss.SSS"),
    ]);
    let value = to_string
        .apply(flat(1))
        .expect("ok")
        .expect("kept")
        .value
        .expect("value");
    assert_eq!(
        field(&value, "created"),
        Data::String("2024-02-29 13:14:15.678".into())
    );

    let to_ts = ok_chain(&[
        ("transforms", "a,b"),
        ("transforms.a.type", "TimestampConverter$Value"),
        ("transforms.a.field", "created"),
        ("transforms.a.target.type", "string"),
        ("transforms.a.format", "yyyy-MM-dd"),
        ("transforms.b.type", "TimestampConverter$Value"),
        ("transforms.b.field", "created"),
        ("transforms.b.target.type", "Timestamp"),
        ("transforms.b.format", "yyyy-MM-dd"),
    ]);
    let value = to_ts
        .apply(flat(1))
        .expect("ok")
        .expect("kept")
        .value
        .expect("value");
    assert_eq!(field(&value, "created"), Data::Int64(1_709_164_800_000));
    let (schema, _) = value.field("created").expect("created");
    assert_eq!(
        schema.expect("schema").name.as_deref(),
        Some("org.apache.kafka.connect.data.Timestamp")
    );

    let unix = ok_chain(&[
        ("transforms", "u"),
        ("transforms.u.type", "TimestampConverter$Value"),
        ("transforms.u.field", "created"),
        ("transforms.u.target.type", "unix"),
        ("transforms.u.unix.precision", "seconds"),
    ]);
    let value = unix
        .apply(flat(1))
        .expect("ok")
        .expect("kept")
        .value
        .expect("value");
    assert_eq!(field(&value, "created"), Data::Int64(1_709_212_455));

    let err = chain(&[
        ("transforms", "t"),
        ("transforms.t.type", "TimestampConverter$Value"),
        ("transforms.t.target.type", "string"),
    ])
    .expect_err("format required");
    assert_eq!(err.0[0].field, "transforms.t.format");
}

#[test]
fn value_to_key_builds_the_key_from_value_fields() {
    let t = ok_chain(&[
        ("transforms", "k"),
        (
            "transforms.k.type",
            "org.apache.kafka.connect.transforms.ValueToKey",
        ),
        ("transforms.k.fields", "email,id"),
    ]);
    let key = t
        .apply(flat(5))
        .expect("ok")
        .expect("kept")
        .key
        .expect("key");
    assert_eq!(field_names(&key), ["email", "id"]);
    assert_eq!(
        key.value,
        Data::Struct(vec![Data::String("a@x.io".into()), Data::Int32(5)])
    );
    let missing = ok_chain(&[
        ("transforms", "k"),
        ("transforms.k.type", "ValueToKey"),
        ("transforms.k.fields", "nope"),
    ]);
    assert!(missing.apply(flat(5)).is_err());
}

#[test]
fn content_filter_routes_keeps_or_drops_by_condition() {
    let big = change(
        "srv.shop.orders",
        orders(),
        Op::Create,
        None,
        Some(row(1, "1500.00", "a")),
    );
    let small = insert(2);
    let route = ok_chain(&[
        ("transforms", "fraud"),
        (
            "transforms.fraud.type",
            "io.tributary.transforms.ContentFilter",
        ),
        (
            "transforms.fraud.condition",
            "value.after.amount > 1000 && value.op == 'c'",
        ),
        ("transforms.fraud.topic", "fraudulent-transactions"),
    ]);
    assert_eq!(
        &*route.apply(big.clone()).expect("ok").expect("kept").topic,
        "fraudulent-transactions"
    );
    assert_eq!(
        &*route.apply(small.clone()).expect("ok").expect("kept").topic,
        "srv.shop.orders"
    );

    let keep = ok_chain(&[
        ("transforms", "f"),
        ("transforms.f.type", "ContentFilter"),
        ("transforms.f.condition", "value.after.amount > 1000"),
    ]);
    assert!(keep.apply(big.clone()).expect("ok").is_some());
    assert!(keep.apply(small.clone()).expect("ok").is_none());

    let drop = ok_chain(&[
        ("transforms", "f"),
        ("transforms.f.type", "ContentFilter"),
        ("transforms.f.condition", "value.after.amount > 1000"),
        ("transforms.f.action", "drop"),
    ]);
    assert!(drop.apply(big).expect("ok").is_none());
    assert!(drop.apply(small).expect("ok").is_some());

    let err = chain(&[
        ("transforms", "f"),
        ("transforms.f.type", "ContentFilter"),
        ("transforms.f.condition", "value.after.amount >"),
    ])
    .expect_err("bad condition");
    assert_eq!(err.0[0].field, "transforms.f.condition");
}

fn outbox_table() -> Arc<TableSchema> {
    Arc::new(TableSchema {
        id: TableId::new("shop", "outbox"),
        version: 1,
        columns: vec![
            Column::new("id", DataType::Uuid, "uuid").not_null(),
            Column::new("aggregatetype", DataType::Text, "varchar").not_null(),
            Column::new("aggregateid", DataType::Text, "varchar").not_null(),
            Column::new("type", DataType::Text, "varchar").not_null(),
            Column::new("payload", DataType::Json, "jsonb"),
        ],
        key: vec![0],
    })
}

fn outbox_row() -> Row {
    Row(vec![
        Value::Uuid([0x40; 16]),
        Value::Text("Order".into()),
        Value::Text("123".into()),
        Value::Text("OrderCreated".into()),
        Value::Json(r#"{"orderId":123,"total":"9.99","lines":[{"sku":"a"}]}"#.into()),
    ])
}

#[test]
fn outbox_event_router_routes_by_aggregate_type() {
    let t = ok_chain(&[
        ("transforms", "outbox"),
        (
            "transforms.outbox.type",
            "io.debezium.transforms.outbox.EventRouter",
        ),
        (
            "transforms.outbox.table.fields.additional.placement",
            "type:header:eventType",
        ),
    ]);
    let rec = change(
        "srv.shop.outbox",
        outbox_table(),
        Op::Create,
        None,
        Some(outbox_row()),
    );
    let out = t.apply(rec).expect("ok").expect("kept");
    assert_eq!(&*out.topic, "outbox.event.Order");
    assert_eq!(
        out.key.clone().expect("key").value,
        Data::String("123".into())
    );
    assert_eq!(
        out.value.clone().expect("value").value,
        Data::String(r#"{"orderId":123,"total":"9.99","lines":[{"sku":"a"}]}"#.into())
    );
    assert_eq!(
        header(&out, "id").as_deref(),
        Some("40404040-4040-4040-4040-404040404040")
    );
    assert_eq!(header(&out, "eventType").as_deref(), Some("OrderCreated"));
    assert_eq!(out.timestamp_ms, 1_700_000_000_500);

    // Deletes of outbox rows are ignored; updates are dropped with a warning.
    let del = change(
        "srv.shop.outbox",
        outbox_table(),
        Op::Delete,
        Some(outbox_row()),
        None,
    );
    assert!(t.apply(del).expect("ok").is_none());
    let upd = change(
        "srv.shop.outbox",
        outbox_table(),
        Op::Update,
        Some(outbox_row()),
        Some(outbox_row()),
    );
    assert!(t.apply(upd.clone()).expect("ok").is_none());
    let strict = ok_chain(&[
        ("transforms", "o"),
        ("transforms.o.type", "EventRouter"),
        ("transforms.o.table.op.invalid.behavior", "error"),
    ]);
    assert!(strict.apply(upd).is_err());
}

#[test]
fn outbox_expands_json_and_places_fields_in_the_envelope() {
    let t = ok_chain(&[
        ("transforms", "outbox"),
        ("transforms.outbox.type", "EventRouter"),
        ("transforms.outbox.table.expand.json.payload", "true"),
        (
            "transforms.outbox.route.topic.replacement",
            "events.${routedByValue}",
        ),
        (
            "transforms.outbox.table.fields.additional.placement",
            "type:envelope:eventType",
        ),
    ]);
    let rec = change(
        "srv.shop.outbox",
        outbox_table(),
        Op::Create,
        None,
        Some(outbox_row()),
    );
    let out = t.apply(rec).expect("ok").expect("kept");
    assert_eq!(&*out.topic, "events.Order");
    let value = out.value.expect("value");
    assert_eq!(field_names(&value), ["payload", "eventType"]);
    assert_eq!(
        field(&value, "eventType"),
        Data::String("OrderCreated".into())
    );
    let (payload_schema, payload) = value.field("payload").expect("payload");
    let payload = SchemaAndValue {
        schema: payload_schema.cloned().map(Arc::new),
        value: payload.clone(),
    };
    assert_eq!(field_names(&payload), ["orderId", "total", "lines"]);
    assert_eq!(field(&payload, "orderId"), Data::Int64(123));
}

#[test]
fn chain_config_errors_name_the_key() {
    let err = chain(&[
        ("transforms", "u"),
        (
            "transforms.u.type",
            "io.debezium.transforms.ExtractNewRecordStat",
        ),
    ])
    .expect_err("typo");
    assert_eq!(err.0[0].field, "transforms.u.type");
    assert!(
        err.0[0]
            .message
            .contains("did you mean \"io.debezium.transforms.ExtractNewRecordState\""),
        "{}",
        err.0[0].message
    );

    let err = chain(&[("transforms", "u")]).expect_err("no type");
    assert_eq!(err.0[0].field, "transforms.u.type");

    let err = chain(&[
        ("transforms", "r"),
        ("transforms.r.type", "RegexRouter"),
        ("transforms.r.regex", "(.*"),
        ("transforms.r.replacment", "x"),
    ])
    .expect_err("bad");
    let fields: Vec<&str> = err.0.iter().map(|e| e.field.as_str()).collect();
    assert!(fields.contains(&"transforms.r.regex"), "{fields:?}");
    assert!(fields.contains(&"transforms.r.replacement"), "{fields:?}");
    assert!(fields.contains(&"transforms.r.replacment"), "{fields:?}");

    let err = chain(&[
        ("transforms", "f"),
        ("transforms.f.type", "Filter"),
        ("transforms.f.predicate", "nope"),
        ("transforms.g.type", "Filter"),
    ])
    .expect_err("bad");
    let fields: Vec<&str> = err.0.iter().map(|e| e.field.as_str()).collect();
    assert!(fields.contains(&"transforms.f.predicate"), "{fields:?}");
    assert!(fields.contains(&"transforms.g.type"), "{fields:?}");

    let err = chain(&[("transforms", "a,a"), ("transforms.a.type", "Filter")]).expect_err("twice");
    assert_eq!(err.0[0].field, "transforms");
    assert!(ok_chain(&[]).is_empty());
    let two = ok_chain(&[
        ("transforms", "a, b"),
        ("transforms.a.type", "Filter"),
        ("transforms.b.type", "Filter"),
    ]);
    assert_eq!(two.aliases(), ["a", "b"]);
}
