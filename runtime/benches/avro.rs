//! Avro encoding throughput of the 8-column change event (the datagen table: bigint key,
//! bigint, varchar, decimal(12,2), datetime(6), text, boolean, json) on one core, through
//! `RecordEncoder::encode`: key and Debezium envelope in the Confluent wire format, schema
//! ids from the cache (registered once in the built-in registry, in memory).
//!
//!     cargo bench -p tributary-runtime --bench avro [-- --events N]
//!
//! Not a test: nothing here asserts a time. Prints events/s and bytes per event.

use std::sync::Arc;
use std::time::Instant;

use tributary_runtime::converter::RecordEncoder;
use tributary_runtime::converter::json::ValueModes;
use tributary_runtime::model::{
    ChangeEvent, Column, DataType, Decimal, Op, Row, SnapshotMarker, SourceInfo, TableId,
    TableSchema, Value,
};
use tributary_runtime::record::{Payload, SourcePartition, SourceRecord};
use tributary_runtime::schema_registry::{self, SchemaStore};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn table() -> Arc<TableSchema> {
    Arc::new(TableSchema {
        id: TableId::new("bench", "orders"),
        version: 1,
        columns: vec![
            Column::new("id", DataType::Int64, "bigint").not_null(),
            Column::new("seq", DataType::Int64, "bigint").not_null(),
            Column::new("name", DataType::Text, "varchar(64)"),
            Column::new(
                "amount",
                DataType::Decimal {
                    precision: 12,
                    scale: 2,
                },
                "decimal(12,2)",
            ),
            Column::new(
                "created_at",
                DataType::Timestamp { precision: 6 },
                "datetime(6)",
            ),
            Column::new("note", DataType::Text, "text"),
            Column::new("active", DataType::Bool, "boolean"),
            Column::new("payload", DataType::Json, "json"),
        ],
        key: vec![0],
    })
}

fn record(table: &Arc<TableSchema>, seq: u64) -> SourceRecord {
    let row = Row(vec![
        Value::Int((seq % 100_000) as i64),
        Value::Int(seq as i64),
        Value::Text(format!("customer-{}", seq % 100_000)),
        Value::Decimal(Decimal::from_i128(i128::from(seq % 10_000_000), 2)),
        Value::Timestamp(1_700_000_000_000_000 + seq as i64),
        Value::Text("a short note about this order".into()),
        Value::Bool(seq & 1 == 0),
        Value::Json(format!("{{\"seq\":{seq},\"tag\":\"t{}\"}}", seq % 16)),
    ]);
    SourceRecord {
        topic: Arc::from("bench.bench.orders"),
        payload: Payload::Change(Box::new(ChangeEvent {
            op: Op::Create,
            table: table.clone(),
            before: None,
            after: Some(row),
            source: SourceInfo {
                connector: "datagen",
                name: Arc::from("bench"),
                ts_ms: 1_700_000_000_000,
                snapshot: SnapshotMarker::False,
                db: Arc::from("bench"),
                schema: None,
                table: Some(Arc::from("orders")),
                extra: vec![("seq", Value::UInt(seq))],
            },
            transaction: None,
            processed_ts_ms: 1_700_000_000_001,
            headers: vec![],
        })),
        partition: SourcePartition::from_json(&serde_json::json!({"server": "bench"})),
        offset: None,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        // Test runners list benches as tests; there are none here.
        return;
    }
    let events = arg("--events", 2_000_000);
    schema_registry::install_embedded(Arc::new(SchemaStore::in_memory()));
    let mut config = std::collections::BTreeMap::new();
    for side in ["key", "value"] {
        config.insert(
            format!("{side}.converter"),
            "io.confluent.connect.avro.AvroConverter".to_owned(),
        );
    }
    let encoder = match RecordEncoder::from_config(&config, ValueModes::default()) {
        Ok(e) => e,
        Err(e) => panic!("converter config: {e:?}"),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e}"),
    };
    let table = table();
    // Pre-build the records so the measurement is the encoding only.
    let batch: Vec<SourceRecord> = (0..10_000).map(|s| record(&table, s)).collect();
    rt.block_on(async {
        let mut buf = Vec::with_capacity(1024);
        // Warm up: registers the schemas.
        let first = match encoder.encode(&batch[0], &mut buf).await {
            Ok(r) => r,
            Err(e) => panic!("encode: {e}"),
        };
        let started = Instant::now();
        let mut bytes = 0usize;
        let mut done = 0u64;
        while done < events {
            for r in &batch {
                match encoder.encode(r, &mut buf).await {
                    Ok(enc) => bytes += enc.size(),
                    Err(e) => panic!("encode: {e}"),
                }
            }
            done += batch.len() as u64;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "avro encode (key + envelope, 8 columns): {done} events in {secs:.3} s = {:.0} events/s, {:.0} bytes/event (value {} bytes)",
            done as f64 / secs,
            bytes as f64 / done as f64,
            first.value.map_or(0, |v| v.len()),
        );
    });
}
