//! Connect logical types to typed model values: what a sink binds to a SQL parameter or
//! writes to a typed file column.

use super::{ConnectSchema, ConnectType, Data, field_of};
use crate::model::time::{parse_date, parse_time_of_day, parse_timestamp_tz, split_offset};
use crate::model::{Decimal, Value};

pub const DECIMAL: &str = "org.apache.kafka.connect.data.Decimal";
pub const DATE: &str = "org.apache.kafka.connect.data.Date";
pub const TIME: &str = "org.apache.kafka.connect.data.Time";
pub const TIMESTAMP: &str = "org.apache.kafka.connect.data.Timestamp";

/// The `scale` parameter of a `Decimal` schema.
pub fn decimal_scale(schema: &ConnectSchema) -> Option<u32> {
    param(schema, "scale").and_then(|s| s.parse().ok())
}

pub fn param<'a>(schema: &'a ConnectSchema, key: &str) -> Option<&'a str> {
    schema
        .parameters
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `d` at `scale`: trailing zeros added, or removed when they are zeros; an error when that
/// would lose digits.
pub fn rescale(d: &Decimal, scale: u32) -> Result<Decimal, String> {
    crate::converter::avro::rescale(d, scale)
        .map(std::borrow::Cow::into_owned)
        .ok_or_else(|| format!("{d} does not fit scale {scale}"))
}

fn int(data: &Data) -> Result<i64, String> {
    data.as_i64()
        .ok_or_else(|| format!("expected an integer, got {data:?}"))
}

fn text(data: &Data) -> Result<&str, String> {
    data.as_str()
        .ok_or_else(|| format!("expected a string, got {data:?}"))
}

/// The typed value of `data` under `schema` (Connect and Debezium logical types resolved:
/// `Decimal`, `VariableScaleDecimal`, `Date`, `Time*`, `*Timestamp`, `ZonedTimestamp`,
/// `Json`, `Uuid`, ...). Schema-less data maps structurally (maps and structs become JSON).
pub fn to_value(schema: Option<&ConnectSchema>, data: &Data) -> Result<Value, String> {
    if data.is_null() {
        return Ok(Value::Null);
    }
    let Some(schema) = schema else {
        return Ok(structural(data));
    };
    let name = schema.name.as_deref().unwrap_or("");
    Ok(match name {
        DECIMAL => match data {
            Data::Bytes(b) => {
                let scale = decimal_scale(schema).ok_or("Decimal schema without a scale")?;
                Value::Decimal(Decimal::from_unscaled_be_bytes(b, scale))
            }
            other => return Err(format!("Decimal must be bytes, got {other:?}")),
        },
        "io.debezium.data.VariableScaleDecimal" => {
            let scale = field_of(Some(schema), data, "scale")
                .map(|(_, v)| int(v))
                .transpose()?
                .ok_or("VariableScaleDecimal without a scale")?;
            let scale = u32::try_from(scale).map_err(|_| format!("negative scale {scale}"))?;
            match field_of(Some(schema), data, "value").map(|(_, v)| v) {
                Some(Data::Bytes(b)) => Value::Decimal(Decimal::from_unscaled_be_bytes(b, scale)),
                other => {
                    return Err(format!(
                        "VariableScaleDecimal value must be bytes, got {other:?}"
                    ));
                }
            }
        }
        DATE | "io.debezium.time.Date" => {
            Value::Date(i32::try_from(int(data)?).map_err(|e| format!("date out of range: {e}"))?)
        }
        TIME | "io.debezium.time.Time" => Value::Time(int(data)? * 1_000),
        "io.debezium.time.MicroTime" => Value::Time(int(data)?),
        "io.debezium.time.NanoTime" => Value::Time(int(data)? / 1_000),
        TIMESTAMP | "io.debezium.time.Timestamp" => Value::Timestamp(int(data)? * 1_000),
        "io.debezium.time.MicroTimestamp" => Value::Timestamp(int(data)?),
        "io.debezium.time.NanoTimestamp" => Value::Timestamp(int(data)?.div_euclid(1_000)),
        "io.debezium.time.ZonedTimestamp" => {
            let t = text(data)?;
            Value::TimestampTz(
                parse_timestamp_tz(t).ok_or_else(|| format!("bad ZonedTimestamp {t:?}"))?,
            )
        }
        "io.debezium.time.ZonedTime" => {
            let t = text(data)?;
            let (time, offset_seconds) =
                split_offset(t).ok_or_else(|| format!("bad ZonedTime {t:?}"))?;
            Value::TimeTz {
                micros: parse_time_of_day(time).ok_or_else(|| format!("bad ZonedTime {t:?}"))?,
                offset_seconds,
            }
        }
        "io.debezium.time.IsoDate" => {
            let t = text(data)?;
            let days = parse_date(t).ok_or_else(|| format!("bad date {t:?}"))?;
            Value::Date(i32::try_from(days).map_err(|e| e.to_string())?)
        }
        "io.debezium.time.MicroDuration" => Value::Interval {
            months: 0,
            days: 0,
            micros: int(data)?,
        },
        "io.debezium.time.Year" => Value::Int(int(data)?),
        "io.debezium.data.Json" => Value::Json(text(data)?.to_owned()),
        "io.debezium.data.Uuid" => {
            let t = text(data)?;
            Value::Uuid(parse_uuid(t).ok_or_else(|| format!("bad UUID {t:?}"))?)
        }
        "io.debezium.data.Enum" => Value::Enum(text(data)?.to_owned()),
        "io.debezium.data.EnumSet" => Value::Set(
            text(data)?
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        "io.debezium.data.Bits" => match data {
            Data::Bytes(b) => Value::Bits {
                len: param(schema, "length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or((b.len() * 8) as u32),
                bytes: b.clone(),
            },
            other => return Err(format!("Bits must be bytes, got {other:?}")),
        },
        _ => match (&schema.ty, data) {
            (ConnectType::Array(items), Data::Array(values)) => Value::Array(
                values
                    .iter()
                    .map(|v| to_value(Some(items), v))
                    .collect::<Result<_, _>>()?,
            ),
            (ConnectType::Struct(_) | ConnectType::Map(..), _) => {
                Value::Json(to_json(Some(schema), data).to_string())
            }
            _ => structural(data),
        },
    })
}

fn structural(data: &Data) -> Value {
    match data {
        Data::Null => Value::Null,
        Data::Boolean(b) => Value::Bool(*b),
        Data::Int8(_) | Data::Int16(_) | Data::Int32(_) | Data::Int64(_) => {
            Value::Int(data.as_i64().unwrap_or_default())
        }
        Data::Float32(f) => Value::Float32(*f),
        Data::Float64(f) => Value::Float64(*f),
        Data::String(s) => Value::Text(s.clone()),
        Data::Bytes(b) => Value::Bytes(b.clone()),
        Data::Array(items) => Value::Array(items.iter().map(structural).collect()),
        Data::Map(_) | Data::Struct(_) => Value::Json(to_json(None, data).to_string()),
    }
}

/// A JSON rendering of a value (struct fields by name when the schema is known; bytes as
/// base64), for JSON columns and JSON-lines files.
pub fn to_json(schema: Option<&ConnectSchema>, data: &Data) -> serde_json::Value {
    use base64::Engine;
    use serde_json::Value as J;
    match (schema.map(|s| &s.ty), data) {
        (_, Data::Null) => J::Null,
        (_, Data::Boolean(b)) => J::Bool(*b),
        (_, Data::Int8(_) | Data::Int16(_) | Data::Int32(_) | Data::Int64(_)) => {
            J::from(data.as_i64().unwrap_or_default())
        }
        (_, Data::Float32(f)) => {
            serde_json::Number::from_f64(f64::from(*f)).map_or(J::Null, J::Number)
        }
        (_, Data::Float64(f)) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        (_, Data::String(s)) => J::String(s.clone()),
        (_, Data::Bytes(b)) => J::String(base64::engine::general_purpose::STANDARD.encode(b)),
        (Some(ConnectType::Array(items)), Data::Array(values)) => {
            J::Array(values.iter().map(|v| to_json(Some(items), v)).collect())
        }
        (_, Data::Array(values)) => J::Array(values.iter().map(|v| to_json(None, v)).collect()),
        (Some(ConnectType::Struct(fields)), Data::Struct(values)) => J::Object(
            fields
                .iter()
                .zip(values)
                .map(|(f, v)| (f.name.clone(), to_json(Some(&f.schema), v)))
                .collect(),
        ),
        (_, Data::Struct(values)) => J::Array(values.iter().map(|v| to_json(None, v)).collect()),
        (ty, Data::Map(entries)) => {
            let (ks, vs) = match ty {
                Some(ConnectType::Map(k, v)) => (Some(&**k), Some(&**v)),
                _ => (None, None),
            };
            if entries.iter().all(|(k, _)| k.as_str().is_some()) {
                J::Object(
                    entries
                        .iter()
                        .map(|(k, v)| (k.as_str().unwrap_or_default().to_owned(), to_json(vs, v)))
                        .collect(),
                )
            } else {
                J::Array(
                    entries
                        .iter()
                        .map(|(k, v)| J::Array(vec![to_json(ks, k), to_json(vs, v)]))
                        .collect(),
                )
            }
        }
    }
}

/// Parses `8-4-4-4-12` hex text.
pub fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = text.bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 || text.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}
