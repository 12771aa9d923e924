//! Source records to [`ConnectRecord`]s, for source-side transforms: the same schemas
//! ([`crate::converter::connect`]) and value encodings (the connector's [`ValueModes`]) the
//! converters write, as a Connect value tree. Encoding the result with
//! [`super::encode::DataEncoder`] gives the bytes the untransformed path writes.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;

use super::{ConnectRecord, ConnectSchema, ConnectType, Data, SchemaAndValue};
use crate::converter::connect::{self, Kind, column_schema, source_extra_kind};
use crate::converter::json::{BinaryMode, ValueModes, format_uuid};
use crate::converter::now_ms;
use crate::error::ConnectorError;
use crate::model::time::{format_time_of_day, format_timestamp_utc};
use crate::model::{ChangeEvent, Decimal, Row, SourceInfo, TableSchema, Value};
use crate::record::{Payload, SourceRecord};

/// The Connect form of a source record. Partition and offset are 0 (a source record has
/// neither until it is written).
pub fn to_connect(
    record: &SourceRecord,
    modes: &ValueModes,
) -> Result<ConnectRecord, ConnectorError> {
    let topic = record.topic.clone();
    let bad =
        |e: String| ConnectorError::definite(format!("cannot convert a record for {topic}: {e}"));
    let (key, value, headers, timestamp_ms) = match &record.payload {
        Payload::Change(event) => {
            let key = match event.after.as_ref().or(event.before.as_ref()) {
                Some(row) => key_side(&topic, &event.table, row, modes).map_err(bad)?,
                None => None,
            };
            let value = envelope_side(&topic, event, modes).map_err(bad)?;
            (key, Some(value), event.headers.clone(), event.source.ts_ms)
        }
        Payload::Tombstone { table, row } => (
            key_side(&topic, table, row, modes).map_err(bad)?,
            None,
            Vec::new(),
            now_ms(),
        ),
        Payload::Row { table, row } => {
            let schema = connect::flat_row_schema(table, modes);
            let value = row_data(table, row, None, modes).map_err(bad)?;
            (
                None,
                Some(SchemaAndValue {
                    schema: Some(Arc::new(schema)),
                    value,
                }),
                Vec::new(),
                now_ms(),
            )
        }
        Payload::Json { key, value } => (
            key.as_ref().map(|k| SchemaAndValue {
                schema: None,
                value: json_data(k),
            }),
            Some(SchemaAndValue {
                schema: None,
                value: json_data(value),
            }),
            Vec::new(),
            now_ms(),
        ),
    };
    Ok(ConnectRecord {
        topic,
        partition: 0,
        offset: 0,
        timestamp_ms,
        key,
        value,
        headers,
    })
}

/// Schema-less JSON as Connect data: objects become string-keyed maps.
pub fn json_data(json: &serde_json::Value) -> Data {
    use serde_json::Value as J;
    match json {
        J::Null => Data::Null,
        J::Bool(b) => Data::Boolean(*b),
        J::Number(n) => n.as_i64().map_or_else(
            || Data::Float64(n.as_f64().unwrap_or(f64::NAN)),
            Data::Int64,
        ),
        J::String(s) => Data::String(s.clone()),
        J::Array(items) => Data::Array(items.iter().map(json_data).collect()),
        J::Object(m) => Data::Map(
            m.iter()
                .map(|(k, v)| (Data::String(k.clone()), json_data(v)))
                .collect(),
        ),
    }
}

fn key_side(
    topic: &str,
    table: &TableSchema,
    row: &Row,
    modes: &ValueModes,
) -> Result<Option<SchemaAndValue>, String> {
    let Some(schema) = connect::key_schema(topic, table, modes) else {
        return Ok(None);
    };
    Ok(Some(SchemaAndValue {
        schema: Some(Arc::new(schema)),
        value: row_data(table, row, Some(&table.key), modes)?,
    }))
}

fn envelope_side(
    topic: &str,
    event: &ChangeEvent,
    modes: &ValueModes,
) -> Result<SchemaAndValue, String> {
    let schema = connect::envelope_schema(topic, &event.table, &event.source, modes);
    let image = |row: &Option<Row>| match row {
        Some(r) => row_data(&event.table, r, None, modes),
        None => Ok(Data::Null),
    };
    let transaction = match &event.transaction {
        Some(tx) => Data::Struct(vec![
            Data::String(tx.id.to_string()),
            Data::Int64(tx.total_order as i64),
            Data::Int64(tx.data_collection_order as i64),
        ]),
        None => Data::Null,
    };
    let value = Data::Struct(vec![
        image(&event.before)?,
        image(&event.after)?,
        source_data(&event.source)?,
        transaction,
        Data::String(event.op.code().to_owned()),
        Data::Int64(event.processed_ts_ms),
        Data::Int64(event.processed_ts_ms.saturating_mul(1000)),
    ]);
    Ok(SchemaAndValue {
        schema: Some(Arc::new(schema)),
        value,
    })
}

fn source_data(src: &SourceInfo) -> Result<Data, String> {
    let mut values = vec![
        Data::String(crate::VERSION.to_owned()),
        Data::String(src.connector.to_owned()),
        Data::String(src.name.to_string()),
        Data::Int64(src.ts_ms),
        Data::String(src.snapshot.as_str().to_owned()),
        Data::String(src.db.to_string()),
    ];
    if let Some(schema) = &src.schema {
        values.push(Data::String(schema.to_string()));
    }
    values.push(
        src.table
            .as_ref()
            .map_or(Data::Null, |t| Data::String(t.to_string())),
    );
    for (name, value) in &src.extra {
        let data = match (source_extra_kind(name, value), value) {
            (_, Value::Null) => Data::Null,
            (ConnectType::Int64, v) => Data::Int64(
                v.as_i64()
                    .ok_or_else(|| format!("source.{name}: not an integer"))?,
            ),
            (ConnectType::Int32, v) => Data::Int32(
                v.as_i64()
                    .ok_or_else(|| format!("source.{name}: not an integer"))?
                    as i32,
            ),
            (ConnectType::Boolean, Value::Bool(b)) => Data::Boolean(*b),
            (ConnectType::Float64, Value::Float64(f)) => Data::Float64(*f),
            (ConnectType::Float64, Value::Float32(f)) => Data::Float64(f64::from(*f)),
            (_, Value::Int(n)) => Data::String(n.to_string()),
            (_, Value::UInt(n)) => Data::String(n.to_string()),
            (_, Value::Text(s)) => Data::String(s.clone()),
            (_, other) => Data::String(format!("{other:?}")),
        };
        values.push(data);
    }
    Ok(Data::Struct(values))
}

/// The selected columns (or all) of a row as a struct value.
fn row_data(
    table: &TableSchema,
    row: &Row,
    columns: Option<&[usize]>,
    modes: &ValueModes,
) -> Result<Data, String> {
    let all: Vec<usize>;
    let indexes = match columns {
        Some(c) => c,
        None => {
            all = (0..table.columns.len()).collect();
            &all
        }
    };
    let mut values = Vec::with_capacity(indexes.len());
    for &i in indexes {
        let column = table
            .columns
            .get(i)
            .ok_or_else(|| format!("table {} has no column {i}", table.id))?;
        let value = row
            .get(i)
            .ok_or_else(|| format!("column {}: missing from the row", column.name))?;
        let (schema, kind) = column_schema(column, modes);
        values.push(
            value_data(&schema, &kind, value, modes)
                .map_err(|e| format!("column {}: {e}", column.name))?,
        );
    }
    Ok(Data::Struct(values))
}

fn int_data(ty: &ConnectType, n: i64) -> Data {
    match ty {
        ConnectType::Int8 => Data::Int8(n as i8),
        ConnectType::Int16 => Data::Int16(n as i16),
        ConnectType::Int32 => Data::Int32(n as i32),
        _ => Data::Int64(n),
    }
}

fn decimal_bytes(d: &Decimal, scale: u32) -> Result<Bytes, String> {
    if d.scale() == scale {
        return Ok(Bytes::from(d.unscaled_be_bytes()));
    }
    let text = d.to_string();
    let rescaled = if d.scale() < scale {
        let mut t = text;
        if d.scale() == 0 {
            t.push('.');
        }
        t.extend(std::iter::repeat_n('0', (scale - d.scale()) as usize));
        Decimal::parse(&t).ok()
    } else {
        let cut = (d.scale() - scale) as usize;
        let (keep, dropped) = text.split_at(text.len() - cut);
        dropped
            .bytes()
            .all(|b| b == b'0')
            .then(|| Decimal::parse(keep.strip_suffix('.').unwrap_or(keep)).ok())
            .flatten()
    };
    rescaled
        .map(|r| Bytes::from(r.unscaled_be_bytes()))
        .ok_or_else(|| {
            format!("{d} has more than {scale} fractional digits; it cannot be written exactly")
        })
}

/// One column value in the form its schema says (as the encoders write it).
fn value_data(
    schema: &ConnectSchema,
    kind: &Kind,
    value: &Value,
    modes: &ValueModes,
) -> Result<Data, String> {
    let placeholder = || modes.unavailable_placeholder.clone();
    if let Value::Unavailable = value {
        return match kind {
            Kind::Str
            | Kind::ZonedTime
            | Kind::ZonedTimestamp
            | Kind::DecimalString
            | Kind::BytesText(_) => Ok(Data::String(placeholder())),
            Kind::Bytes | Kind::Bits => Ok(Data::Bytes(Bytes::from(placeholder().into_bytes()))),
            _ if schema.optional => Ok(Data::Null),
            _ => Err("value unavailable (unchanged TOAST) in a required non-text column".into()),
        };
    }
    if value.is_null() {
        return Ok(Data::Null);
    }
    let mismatch = || format!("a {value:?} value cannot be written as {kind:?}");
    Ok(match (kind, value) {
        (Kind::Boolean | Kind::Bit, Value::Bool(b)) => Data::Boolean(*b),
        (Kind::Bit, Value::Bits { bytes, .. }) => {
            Data::Boolean(bytes.first().is_some_and(|b| b & 1 == 1))
        }
        (Kind::Long, Value::Int(n)) => int_data(&schema.ty, *n),
        (Kind::Long, Value::UInt(n)) => int_data(&schema.ty, *n as i64),
        (Kind::Long | Kind::Date, Value::Date(days)) => int_data(&schema.ty, i64::from(*days)),
        (Kind::Float, Value::Float32(f)) => Data::Float32(*f),
        (Kind::Float, Value::Float64(f)) => Data::Float32(*f as f32),
        (Kind::Double, Value::Float64(f)) => Data::Float64(*f),
        (Kind::Double, Value::Float32(f)) => Data::Float64(f64::from(*f)),
        (Kind::Str, Value::Text(s) | Value::Json(s) | Value::Enum(s)) => Data::String(s.clone()),
        (Kind::Str, Value::Uuid(u)) => Data::String(format_uuid(u)),
        (Kind::Str, Value::Set(members)) => Data::String(members.join(",")),
        (Kind::Bytes | Kind::Bits, Value::Bytes(b) | Value::Bits { bytes: b, .. }) => {
            Data::Bytes(b.clone())
        }
        (Kind::Bytes, Value::Text(s)) => Data::Bytes(Bytes::from(s.clone().into_bytes())),
        (Kind::BytesText(BinaryMode::Hex), Value::Bytes(b)) => {
            Data::String(b.iter().map(|x| format!("{x:02x}")).collect())
        }
        (Kind::BytesText(_), Value::Bytes(b)) => Data::String(BASE64.encode(b)),
        (
            Kind::BytesText(_) | Kind::ZonedTime | Kind::ZonedTimestamp | Kind::DecimalString,
            Value::Text(s),
        ) => Data::String(s.clone()),
        (Kind::Decimal { scale }, Value::Decimal(d)) => Data::Bytes(decimal_bytes(d, *scale)?),
        (Kind::VariableDecimal, Value::Decimal(d)) => Data::Struct(vec![
            Data::Int32(d.scale() as i32),
            Data::Bytes(Bytes::from(d.unscaled_be_bytes())),
        ]),
        (Kind::DecimalDouble, Value::Decimal(d)) => Data::Float64(d.to_f64()),
        (Kind::DecimalString, Value::Decimal(d)) => Data::String(d.to_string()),
        (Kind::Geometry, Value::Bytes(wkb)) => {
            Data::Struct(vec![Data::Bytes(wkb.clone()), Data::Null])
        }
        (Kind::TimeMillis, Value::Time(us)) => Data::Int32(us.div_euclid(1000) as i32),
        (Kind::TimeMicros, Value::Time(us)) => Data::Int64(*us),
        (
            Kind::ZonedTime,
            Value::TimeTz {
                micros,
                offset_seconds,
            },
        ) => {
            let utc = (micros - i64::from(*offset_seconds) * 1_000_000).rem_euclid(86_400_000_000);
            Data::String(format!("{}Z", format_time_of_day(utc)))
        }
        (Kind::TimestampMillis, Value::Timestamp(us) | Value::TimestampTz(us)) => {
            Data::Int64(us.div_euclid(1000))
        }
        (Kind::TimestampMicros, Value::Timestamp(us) | Value::TimestampTz(us)) => Data::Int64(*us),
        (Kind::ZonedTimestamp, Value::TimestampTz(us)) => Data::String(format_timestamp_utc(*us)),
        (
            Kind::MicroDuration,
            Value::Interval {
                months,
                days,
                micros,
            },
        ) => Data::Int64((i64::from(*months) * 30 + i64::from(*days)) * 86_400_000_000 + micros),
        (Kind::Array(element), Value::Array(items)) => {
            let item_schema = match &schema.ty {
                ConnectType::Array(s) => (**s).clone(),
                _ => return Err(mismatch()),
            };
            Data::Array(
                items
                    .iter()
                    .map(|i| value_data(&item_schema, element, i, modes))
                    .collect::<Result<_, _>>()?,
            )
        }
        _ => return Err(mismatch()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::encode::DataEncoder;
    use crate::model::{Column, DataType, Op, SnapshotMarker, TableId};
    use crate::record::SourcePartition;

    fn event() -> SourceRecord {
        let table = Arc::new(TableSchema {
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
                Column::new("note", DataType::Text, "text"),
            ],
            key: vec![0],
        });
        SourceRecord {
            topic: Arc::from("srv.shop.orders"),
            payload: Payload::Change(Box::new(ChangeEvent {
                op: Op::Create,
                table,
                before: None,
                after: Some(Row(vec![
                    Value::Int(7),
                    Value::Decimal(Decimal::parse("12.50").expect("decimal")),
                    Value::Null,
                ])),
                source: SourceInfo {
                    connector: "mysql",
                    name: Arc::from("srv"),
                    ts_ms: 1_700_000_000_000,
                    snapshot: SnapshotMarker::False,
                    db: Arc::from("shop"),
                    schema: None,
                    table: Some(Arc::from("orders")),
                    extra: vec![
                        ("file", Value::Text("bin.000001".into())),
                        ("pos", Value::Int(4)),
                    ],
                },
                transaction: None,
                processed_ts_ms: 1_700_000_000_100,
                headers: Vec::new(),
            })),
            partition: SourcePartition::from_json(&serde_json::json!({})),
            offset: None,
        }
    }

    /// The Connect form, encoded as JSON, equals what the untransformed encoder writes.
    #[tokio::test]
    async fn converted_events_encode_like_the_direct_path() {
        let modes = ValueModes::default();
        let record = event();
        let connect = to_connect(&record, &modes).expect("converts");
        let converters: crate::config::RawConfig = [
            ("key.converter.schemas.enable", "true"),
            ("value.converter.schemas.enable", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let mut buf = Vec::new();
        let ours = DataEncoder::from_config(&converters)
            .encode(&connect, &mut buf)
            .await
            .expect("encodes");
        let direct = crate::converter::RecordEncoder::from_config(&converters, modes)
            .expect("config")
            .encode(&record, &mut buf)
            .await
            .expect("encodes");
        let json = |b: &Option<Bytes>| -> serde_json::Value {
            serde_json::from_slice(b.as_deref().expect("bytes")).expect("json")
        };
        assert_eq!(json(&ours.key), json(&direct.key));
        let (mut a, mut b) = (json(&ours.value), json(&direct.value));
        // The connector version is the same; the processing times are the event's.
        assert_eq!(a["payload"]["after"], b["payload"]["after"]);
        assert_eq!(a["payload"]["after"]["amount"], "BOI="); // 1250 unscaled
        a["payload"]["source"]["version"] = serde_json::Value::Null;
        b["payload"]["source"]["version"] = serde_json::Value::Null;
        assert_eq!(a, b);
    }

    /// A transform that adds a field registers a new version of the value subject; the
    /// bytes decode back (through our own decoder) to the transformed values.
    #[tokio::test]
    async fn transformed_avro_registers_new_versions() {
        use crate::schema_registry::{self, SchemaStore};
        use crate::transforms::TransformChain;
        let store = Arc::new(SchemaStore::in_memory());
        schema_registry::install_embedded(store.clone());
        let config = |pairs: &[(&str, &str)]| -> crate::config::RawConfig {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let converters = config(&[
            ("key.converter", crate::converter::AVRO_CONVERTER),
            ("value.converter", crate::converter::AVRO_CONVERTER),
        ]);
        let encoder = DataEncoder::from_config(&converters);
        let unwrap = config(&[
            ("transforms", "unwrap"),
            (
                "transforms.unwrap.type",
                "io.debezium.transforms.ExtractNewRecordState",
            ),
        ]);
        let with_field = config(&[
            ("transforms", "unwrap,tag"),
            (
                "transforms.unwrap.type",
                "io.debezium.transforms.ExtractNewRecordState",
            ),
            (
                "transforms.tag.type",
                "org.apache.kafka.connect.transforms.InsertField$Value",
            ),
            ("transforms.tag.static.field", "origin"),
            ("transforms.tag.static.value", "eu"),
        ]);
        let modes = ValueModes::default();
        let mut buf = Vec::new();
        let mut ids = Vec::new();
        for chain in [&unwrap, &with_field] {
            let chain = TransformChain::from_config(chain).expect("chain");
            let record = chain
                .apply(to_connect(&event(), &modes).expect("converts"))
                .expect("ok")
                .expect("kept");
            let encoded = encoder.encode(&record, &mut buf).await.expect("encodes");
            let value = encoded.value.clone().expect("value");
            let (id, _) = crate::converter::wire::read_header(&value).expect("framed");
            ids.push(id);
            let decoder =
                crate::data::decode::RecordDecoder::from_config(&converters).expect("decoder");
            let decoded = decoder
                .decode(&crate::record::SinkRecord {
                    topic: record.topic.clone(),
                    partition: 0,
                    offset: 0,
                    record: encoded,
                })
                .await
                .expect("decodes")
                .expect("kept");
            assert_eq!(
                decoded.value.expect("value").value,
                record.value.expect("value").value
            );
        }
        assert_ne!(ids[0], ids[1]);
        assert_eq!(
            store.versions("srv.shop.orders-value").expect("subject"),
            [1, 2]
        );
        let latest = store
            .version("srv.shop.orders-value", "latest")
            .expect("latest");
        assert!(latest.schema.contains("\"origin\""), "{}", latest.schema);
    }
}
