//! Kafka Connect `JsonConverter` output with `schemas.enable=false`: Debezium's envelope as
//! bare JSON, values encoded the way Debezium's JSON output encodes them.
//!
//! Serialised straight from the typed event (no intermediate `serde_json::Value`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::ser::{Error as _, SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use crate::model::time::{format_time_of_day, format_timestamp_utc};
use crate::model::{ChangeEvent, Column, DataType, Row, TableSchema, Value};

/// How values with several possible encodings are written (Debezium's mapping modes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueModes {
    pub decimal: DecimalMode,
    pub time_precision: TimePrecisionMode,
    pub binary: BinaryMode,
    /// Written for [`Value::Unavailable`] (`unavailable.value.placeholder`).
    pub unavailable_placeholder: String,
}

impl Default for ValueModes {
    fn default() -> Self {
        ValueModes {
            decimal: DecimalMode::Precise,
            time_precision: TimePrecisionMode::Adaptive,
            binary: BinaryMode::Bytes,
            unavailable_placeholder: "__debezium_unavailable_value".into(),
        }
    }
}

/// `decimal.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecimalMode {
    /// Kafka Connect `Decimal`: unscaled two's-complement bytes (base64 in JSON).
    Precise,
    Double,
    String,
}

/// `time.precision.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimePrecisionMode {
    /// Milliseconds for precision 0-3, microseconds for 4-6.
    Adaptive,
    /// Microseconds for `TIME`, adaptive for the rest (MySQL's default).
    AdaptiveTimeMicroseconds,
    /// Kafka Connect's built-in types: milliseconds everywhere.
    Connect,
}

/// `binary.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryMode {
    Bytes,
    Base64,
    Hex,
}

/// Serialises a change event as Debezium's JSON envelope.
pub struct EnvelopeJson<'a> {
    pub event: &'a ChangeEvent,
    pub modes: &'a ValueModes,
}

/// Serialises a row of a table as a JSON object (column name -> value).
pub struct RowJson<'a> {
    pub table: &'a TableSchema,
    pub row: &'a Row,
    pub modes: &'a ValueModes,
    /// Only these column indexes (the key), or all columns when `None`.
    pub columns: Option<&'a [usize]>,
}

struct ValueJson<'a> {
    value: &'a Value,
    column: &'a Column,
    modes: &'a ValueModes,
}

impl Serialize for RowJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let all: Vec<usize>;
        let indexes = match self.columns {
            Some(c) => c,
            None => {
                all = (0..self.table.columns.len()).collect();
                &all
            }
        };
        let mut map = s.serialize_map(Some(indexes.len()))?;
        for &i in indexes {
            let (Some(column), Some(value)) = (self.table.columns.get(i), self.row.get(i)) else {
                return Err(S::Error::custom(format!(
                    "row of {} has no column {i}",
                    self.table.id
                )));
            };
            // A NOT NULL column the source did not supply (a key-only `before` image): the
            // type's fallback, as in the Avro encoder and Debezium.
            let fallback;
            let value = if value.is_null() && !column.nullable && !self.table.key.contains(&i) {
                let (_, kind) = super::connect::column_schema(column, self.modes);
                fallback = super::avro::not_null_fallback(&kind);
                fallback.as_ref().unwrap_or(value)
            } else {
                value
            };
            map.serialize_entry(
                &column.name,
                &ValueJson {
                    value,
                    column,
                    modes: self.modes,
                },
            )?;
        }
        map.end()
    }
}

impl Serialize for ValueJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let modes = self.modes;
        match self.value {
            Value::Null => s.serialize_none(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(n) => s.serialize_i64(*n),
            Value::UInt(n) => s.serialize_u64(*n),
            Value::Decimal(d) => match modes.decimal {
                // io.debezium.data.VariableScaleDecimal (Postgres `numeric` without precision).
                DecimalMode::Precise
                    if matches!(
                        self.column.data_type,
                        DataType::Decimal { precision: 0, .. }
                    ) =>
                {
                    let mut map = s.serialize_map(Some(2))?;
                    map.serialize_entry("scale", &d.scale())?;
                    map.serialize_entry("value", &BASE64.encode(d.unscaled_be_bytes()))?;
                    map.end()
                }
                // Kafka Connect `Decimal` bytes are read at the schema's (the column's) scale.
                DecimalMode::Precise => {
                    let scale = match self.column.data_type {
                        DataType::Decimal { scale, .. } => scale,
                        _ => d.scale(),
                    };
                    let d = super::avro::rescale(d, scale).ok_or_else(|| {
                        serde::ser::Error::custom(format!(
                            "{d} has more than {scale} fractional digits; it cannot be written exactly"
                        ))
                    })?;
                    s.serialize_str(&BASE64.encode(d.unscaled_be_bytes()))
                }
                DecimalMode::Double => s.serialize_f64(d.to_f64()),
                DecimalMode::String => s.collect_str(d),
            },
            Value::Float32(f) => float(s, f64::from(*f)),
            Value::Float64(f) => float(s, *f),
            Value::Text(t) | Value::Json(t) | Value::Enum(t) => s.serialize_str(t),
            // io.debezium.data.geometry.Geometry: WKB and SRID (unknown to the sources).
            Value::Bytes(b) if self.column.data_type == DataType::Geometry => {
                let mut map = s.serialize_map(Some(2))?;
                map.serialize_entry("wkb", &BASE64.encode(b))?;
                map.serialize_entry("srid", &None::<i32>)?;
                map.end()
            }
            Value::Bytes(b) => match modes.binary {
                BinaryMode::Bytes | BinaryMode::Base64 => s.serialize_str(&BASE64.encode(b)),
                BinaryMode::Hex => s.serialize_str(&hex(b)),
            },
            Value::Date(days) => s.serialize_i32(*days),
            Value::Time(micros) => {
                let precision = match self.column.data_type {
                    DataType::Time { precision } => precision,
                    _ => 6,
                };
                let micros_mode = match modes.time_precision {
                    TimePrecisionMode::Adaptive => precision > 3,
                    TimePrecisionMode::AdaptiveTimeMicroseconds => true,
                    TimePrecisionMode::Connect => false,
                };
                if micros_mode {
                    s.serialize_i64(*micros)
                } else {
                    s.serialize_i64(micros.div_euclid(1000))
                }
            }
            Value::TimeTz {
                micros,
                offset_seconds,
            } => {
                let utc =
                    (micros - i64::from(*offset_seconds) * 1_000_000).rem_euclid(86_400_000_000);
                s.serialize_str(&format!("{}Z", format_time_of_day(utc)))
            }
            Value::Timestamp(micros) => {
                let precision = match self.column.data_type {
                    DataType::Timestamp { precision } => precision,
                    _ => 6,
                };
                if precision > 3 && modes.time_precision != TimePrecisionMode::Connect {
                    s.serialize_i64(*micros)
                } else {
                    s.serialize_i64(micros.div_euclid(1000))
                }
            }
            Value::TimestampTz(micros) => s.serialize_str(&format_timestamp_utc(*micros)),
            Value::Interval {
                months,
                days,
                micros,
            } => {
                // io.debezium.time.MicroDuration: a month counts as 30 days, as Debezium does.
                let total = (i64::from(*months) * 30 + i64::from(*days)) * 86_400_000_000 + micros;
                s.serialize_i64(total)
            }
            Value::Uuid(bytes) => s.serialize_str(&format_uuid(bytes)),
            Value::Set(members) => s.serialize_str(&members.join(",")),
            Value::Bits { len, bytes } => {
                if *len == 1 {
                    s.serialize_bool(bytes.first().is_some_and(|b| b & 1 == 1))
                } else {
                    s.serialize_str(&BASE64.encode(bytes))
                }
            }
            Value::Array(items) => {
                let element = match &self.column.data_type {
                    DataType::Array { element } => {
                        Column::new(&self.column.name, (**element).clone(), "")
                    }
                    _ => self.column.clone(),
                };
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&ValueJson {
                        value: item,
                        column: &element,
                        modes,
                    })?;
                }
                seq.end()
            }
            Value::Unavailable => s.serialize_str(&modes.unavailable_placeholder),
        }
    }
}

fn float<S: Serializer>(s: S, f: f64) -> Result<S::Ok, S::Error> {
    if f.is_finite() {
        s.serialize_f64(f)
    } else if f.is_nan() {
        s.serialize_str("NaN")
    } else if f > 0.0 {
        s.serialize_str("Infinity")
    } else {
        s.serialize_str("-Infinity")
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Canonical 8-4-4-4-12 text of a UUID.
pub fn format_uuid(b: &[u8; 16]) -> String {
    let h = hex(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

impl<'a> Serialize for EnvelopeJson<'a> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.event;
        let row = |r: Option<&'a Row>| {
            r.map(|row| RowJsonOwned {
                table: &e.table,
                row,
                modes: self.modes,
            })
        };
        let mut map = s.serialize_map(Some(7))?;
        map.serialize_entry("before", &row(e.before.as_ref()))?;
        map.serialize_entry("after", &row(e.after.as_ref()))?;
        map.serialize_entry(
            "source",
            &SourceJson {
                event: e,
                modes: self.modes,
            },
        )?;
        map.serialize_entry("transaction", &e.transaction.as_ref().map(TransactionJson))?;
        map.serialize_entry("op", e.op.code())?;
        map.serialize_entry("ts_ms", &e.processed_ts_ms)?;
        map.serialize_entry("ts_us", &e.processed_ts_ms.saturating_mul(1000))?;
        map.end()
    }
}

struct RowJsonOwned<'a> {
    table: &'a TableSchema,
    row: &'a Row,
    modes: &'a ValueModes,
}

impl Serialize for RowJsonOwned<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RowJson {
            table: self.table,
            row: self.row,
            modes: self.modes,
            columns: None,
        }
        .serialize(s)
    }
}

struct TransactionJson<'a>(&'a crate::model::TransactionInfo);

impl Serialize for TransactionJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(3))?;
        map.serialize_entry("id", &*self.0.id)?;
        map.serialize_entry("total_order", &self.0.total_order)?;
        map.serialize_entry("data_collection_order", &self.0.data_collection_order)?;
        map.end()
    }
}

struct SourceJson<'a> {
    event: &'a ChangeEvent,
    modes: &'a ValueModes,
}

impl Serialize for SourceJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let src = &self.event.source;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("version", crate::VERSION)?;
        map.serialize_entry("connector", src.connector)?;
        map.serialize_entry("name", &*src.name)?;
        map.serialize_entry("ts_ms", &src.ts_ms)?;
        map.serialize_entry("snapshot", src.snapshot.as_str())?;
        map.serialize_entry("db", &*src.db)?;
        if let Some(schema) = &src.schema {
            map.serialize_entry("schema", &**schema)?;
        }
        map.serialize_entry("table", &src.table.as_deref())?;
        let plain = Column::new("", DataType::Text, "");
        for (name, value) in &src.extra {
            map.serialize_entry(
                name,
                &ValueJson {
                    value,
                    column: &plain,
                    modes: self.modes,
                },
            )?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{Decimal, Op, SnapshotMarker, SourceInfo, TableId};

    fn table() -> TableSchema {
        TableSchema {
            id: TableId::new("shop", "orders"),
            version: 1,
            columns: vec![
                Column::new("id", DataType::Int64, "bigint").not_null(),
                Column::new(
                    "amount",
                    DataType::Decimal {
                        precision: 12,
                        scale: 2,
                    },
                    "decimal(12,2)",
                ),
                Column::new("at", DataType::Timestamp { precision: 6 }, "datetime(6)"),
                Column::new("t", DataType::Time { precision: 0 }, "time"),
                Column::new("z", DataType::TimestampTz { precision: 6 }, "timestamp(6)"),
                Column::new("flag", DataType::Bits { length: 1 }, "bit(1)"),
            ],
            key: vec![0],
        }
    }

    #[test]
    fn envelope_matches_debezium_json() {
        let event = ChangeEvent {
            op: Op::Create,
            table: Arc::new(table()),
            before: None,
            after: Some(Row(vec![
                Value::Int(7),
                Value::Decimal(Decimal::parse("123.45").expect("decimal")),
                Value::Timestamp(1_000_001),
                Value::Time(3_600_000_000),
                Value::TimestampTz(0),
                Value::Bits {
                    len: 1,
                    bytes: bytes::Bytes::from_static(&[1]),
                },
            ])),
            source: SourceInfo {
                connector: "mysql",
                name: Arc::from("srv"),
                ts_ms: 5,
                snapshot: SnapshotMarker::False,
                db: Arc::from("shop"),
                schema: None,
                table: Some(Arc::from("orders")),
                extra: vec![("pos", Value::Int(154))],
            },
            transaction: None,
            processed_ts_ms: 9,
            headers: vec![],
        };
        let modes = ValueModes::default();
        let json = serde_json::to_value(EnvelopeJson {
            event: &event,
            modes: &modes,
        })
        .expect("json");
        assert_eq!(
            json,
            serde_json::json!({
                "before": null,
                "after": {"id": 7, "amount": "MDk=", "at": 1_000_001, "t": 3_600_000, "z": "1970-01-01T00:00:00Z", "flag": true},
                "source": {"version": crate::VERSION, "connector": "mysql", "name": "srv", "ts_ms": 5, "snapshot": "false", "db": "shop", "table": "orders", "pos": 154},
                "transaction": null,
                "op": "c",
                "ts_ms": 9,
                "ts_us": 9000
            })
        );
    }

    #[test]
    fn numeric_without_precision_is_a_variable_scale_decimal() {
        let table = TableSchema {
            id: TableId::new("public", "n"),
            version: 1,
            columns: vec![Column::new(
                "n",
                DataType::Decimal {
                    precision: 0,
                    scale: 0,
                },
                "numeric",
            )],
            key: vec![],
        };
        let row = Row(vec![Value::Decimal(
            Decimal::parse("-1.5").expect("decimal"),
        )]);
        let modes = ValueModes::default();
        let json = serde_json::to_value(RowJson {
            table: &table,
            row: &row,
            modes: &modes,
            columns: None,
        })
        .expect("json");
        // -15 = 0xf1, scale 1.
        assert_eq!(
            json,
            serde_json::json!({"n": {"scale": 1, "value": "8Q=="}})
        );
    }

    #[test]
    fn uuid_text() {
        let b = [
            0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3, 0xa4, 0x56, 0x42, 0x66, 0x14, 0x17,
            0x40, 0x00,
        ];
        assert_eq!(format_uuid(&b), "123e4567-e89b-12d3-a456-426614174000");
    }
}
