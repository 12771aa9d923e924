//! Column values: wire values (binlog row images and snapshot result sets) to model values.
//!
//! # Zero dates
//! MySQL's `0000-00-00` dates and `0000-00-00 00:00:00` datetimes/timestamps have no calendar
//! meaning. As Debezium does, they become `null` in nullable columns and the epoch
//! (`1970-01-01`, 0) in `NOT NULL` columns.

use bytes::Bytes;
use mysql_async::Value as Wire;
use tributary_runtime::model::time::days_from_civil;
use tributary_runtime::model::{Decimal, Value};

use crate::schema::{ColumnPlan, Kind};

/// Where a wire value came from: the binlog and the binary result protocol encode some
/// types differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Binlog,
    Snapshot,
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

fn zero(plan: &ColumnPlan, epoch: Value) -> Value {
    if plan.nullable { Value::Null } else { epoch }
}

/// The text of a string value, taking the wire bytes without a copy when they are already
/// valid UTF-8 (Latin-1 bytes are UTF-8 exactly when they are all ASCII).
fn owned_text(bytes: Vec<u8>, latin1: bool) -> String {
    if latin1 && !bytes.is_ascii() {
        return bytes.iter().map(|&b| char::from(b)).collect();
    }
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

fn text(bytes: &[u8], latin1: bool) -> String {
    if latin1 {
        bytes.iter().map(|&b| char::from(b)).collect()
    } else {
        match std::str::from_utf8(bytes) {
            Ok(s) => s.to_owned(),
            Err(_) => String::from_utf8_lossy(bytes).into_owned(),
        }
    }
}

fn datetime_micros(y: u16, mo: u8, d: u8, h: u8, mi: u8, s: u8, us: u32) -> i64 {
    let days = days_from_civil(i64::from(y), u32::from(mo), u32::from(d));
    days * MICROS_PER_DAY
        + (i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s)) * 1_000_000
        + i64::from(us)
}

/// Converts a `DECIMAL` the binlog image reader decoded itself.
pub fn convert_decimal(d: Decimal, plan: &ColumnPlan) -> Result<Value, String> {
    match plan.kind {
        Kind::Decimal => Ok(Value::Decimal(d)),
        ref other => Err(format!("unexpected DECIMAL value for {other:?}")),
    }
}

/// Converts one wire value of a column.
pub fn convert(wire: Wire, plan: &ColumnPlan, origin: Origin) -> Result<Value, String> {
    if matches!(wire, Wire::NULL) {
        return Ok(Value::Null);
    }
    let unexpected = |w: &Wire| format!("unexpected {} value for {:?}", wire_name(w), plan.kind);
    Ok(match (&plan.kind, wire) {
        (Kind::Int, Wire::Int(v)) => Value::Int(v),
        (Kind::Int, Wire::UInt(v)) => Value::Int(v as i64),
        (Kind::Int24, Wire::Int(v)) => {
            // mysql_common does not sign-extend 24-bit values.
            let v = v & 0x00ff_ffff;
            Value::Int(if v & 0x0080_0000 != 0 {
                v - 0x0100_0000
            } else {
                v
            })
        }
        (Kind::UInt, Wire::UInt(v)) => Value::UInt(v),
        (Kind::UInt, Wire::Int(v)) => Value::UInt(v as u64),
        (Kind::UIntDecimal, Wire::UInt(v)) => Value::Decimal(Decimal::from_i128(i128::from(v), 0)),
        (Kind::UIntDecimal, Wire::Int(v)) => {
            Value::Decimal(Decimal::from_i128(i128::from(v as u64), 0))
        }
        (Kind::Float, Wire::Float(f)) => Value::Float32(f),
        (Kind::Float, Wire::Double(f)) => Value::Float32(f as f32),
        (Kind::Double, Wire::Double(f)) => Value::Float64(f),
        (Kind::Double, Wire::Float(f)) => Value::Float64(f64::from(f)),
        (Kind::Decimal, Wire::Bytes(b)) => {
            let s = owned_text(b, true);
            Value::Decimal(Decimal::parse(&s).map_err(|e| e.to_string())?)
        }
        (Kind::Date, Wire::Date(y, mo, d, ..)) => {
            if y == 0 || mo == 0 || d == 0 {
                zero(plan, Value::Date(0))
            } else {
                Value::Date(days_from_civil(i64::from(y), u32::from(mo), u32::from(d)) as i32)
            }
        }
        (Kind::DateTime, Wire::Date(y, mo, d, h, mi, s, us)) => {
            if y == 0 || mo == 0 || d == 0 {
                zero(plan, Value::Timestamp(0))
            } else {
                Value::Timestamp(datetime_micros(y, mo, d, h, mi, s, us))
            }
        }
        (Kind::Timestamp, Wire::Date(y, mo, d, h, mi, s, us)) => {
            if y == 0 || mo == 0 || d == 0 {
                zero(plan, Value::TimestampTz(0))
            } else {
                Value::TimestampTz(datetime_micros(y, mo, d, h, mi, s, us))
            }
        }
        (Kind::Timestamp, Wire::Bytes(b)) => {
            // Binlog TIMESTAMP2: "seconds[.micros]" since the epoch, UTC.
            let s = text(&b, true);
            let (secs, frac) = s.split_once('.').unwrap_or((&s, "0"));
            let secs: i64 = secs.parse().map_err(|_| format!("bad timestamp {s:?}"))?;
            let micros: i64 = format!("{frac:0<6}")[..6]
                .parse()
                .map_err(|_| format!("bad timestamp {s:?}"))?;
            if secs == 0 && micros == 0 {
                zero(plan, Value::TimestampTz(0))
            } else {
                Value::TimestampTz(secs * 1_000_000 + micros)
            }
        }
        (Kind::Time, Wire::Time(neg, days, h, mi, s, us)) => {
            let micros = (i64::from(days) * 86_400
                + i64::from(h) * 3600
                + i64::from(mi) * 60
                + i64::from(s))
                * 1_000_000
                + i64::from(us);
            Value::Time(if neg { -micros } else { micros })
        }
        (Kind::Year, Wire::Int(y)) => Value::Int(y),
        (Kind::Year, Wire::UInt(y)) => Value::Int(y as i64),
        (Kind::Year, Wire::Bytes(b)) => {
            let y: i64 = text(&b, true)
                .parse()
                .map_err(|_| "bad YEAR value".to_owned())?;
            // The binlog stores YEAR as year-1900; 0 (year 0000) comes out as 1900.
            Value::Int(if origin == Origin::Binlog && y == 1900 {
                0
            } else {
                y
            })
        }
        (Kind::Bit(len), Wire::Bytes(b)) => {
            // Big-endian on the wire; Kafka Connect `Bits` wants little-endian bytes.
            let nbytes = (*len as usize).div_ceil(8).max(1);
            let mut le: Vec<u8> = b.iter().rev().copied().collect();
            le.resize(nbytes, 0);
            Value::Bits {
                len: *len,
                bytes: Bytes::from(le),
            }
        }
        (Kind::Bit(len), Wire::UInt(v)) => Value::Bits {
            len: *len,
            bytes: Bytes::from(v.to_le_bytes()[..(*len as usize).div_ceil(8).max(1)].to_vec()),
        },
        (Kind::Enum, Wire::Int(i)) => {
            // Binlog: 1-based index; 0 is the empty "invalid" value.
            let name = usize::try_from(i)
                .ok()
                .and_then(|i| i.checked_sub(1))
                .and_then(|i| plan.enum_values.get(i))
                .cloned()
                .unwrap_or_default();
            Value::Enum(name)
        }
        (Kind::Enum, Wire::Bytes(b)) => Value::Enum(text(&b, false)),
        (Kind::Set, Wire::Bytes(b)) if origin == Origin::Binlog => {
            let mut members = Vec::new();
            for (i, name) in plan.enum_values.iter().enumerate() {
                if b.get(i / 8).is_some_and(|byte| byte & (1 << (i % 8)) != 0) {
                    members.push(name.clone());
                }
            }
            Value::Set(members)
        }
        (Kind::Set, Wire::Bytes(b)) => {
            let s = text(&b, false);
            Value::Set(if s.is_empty() {
                Vec::new()
            } else {
                s.split(',').map(str::to_owned).collect()
            })
        }
        // Result sets arrive in the connection charset (utf8mb4); row images in the column's.
        (Kind::Text { latin1 }, Wire::Bytes(b)) => {
            Value::Text(owned_text(b, *latin1 && origin == Origin::Binlog))
        }
        (Kind::Bytes, Wire::Bytes(b)) => Value::Bytes(Bytes::from(b)),
        (Kind::Json, Wire::Bytes(b)) => Value::Json(owned_text(b, false)),
        (Kind::Geometry, Wire::Bytes(b)) => {
            // Server format: 4-byte SRID, then WKB.
            Value::Bytes(Bytes::from(b.get(4..).unwrap_or_default().to_vec()))
        }
        (_, w) => return Err(unexpected(&w)),
    })
}

fn wire_name(w: &Wire) -> &'static str {
    match w {
        Wire::NULL => "NULL",
        Wire::Bytes(_) => "bytes",
        Wire::Int(_) => "signed integer",
        Wire::UInt(_) => "unsigned integer",
        Wire::Float(_) => "float",
        Wire::Double(_) => "double",
        Wire::Date(..) => "date",
        Wire::Time(..) => "time",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(kind: Kind, nullable: bool) -> ColumnPlan {
        ColumnPlan {
            source_index: 0,
            kind,
            nullable,
            enum_values: vec!["a".into(), "b".into(), "c".into()],
        }
    }

    #[test]
    fn owned_text_keeps_utf8_and_maps_latin1() {
        assert_eq!(owned_text(b"abc".to_vec(), true), "abc");
        assert_eq!(owned_text(vec![b'a', 0xe9], true), "a\u{e9}");
        assert_eq!(
            owned_text("h\u{e9}llo \u{1f600}".as_bytes().to_vec(), false),
            "h\u{e9}llo \u{1f600}"
        );
        assert_eq!(owned_text(vec![b'x', 0xff], false), "x\u{fffd}");
    }

    #[test]
    fn mediumint_is_sign_extended() {
        let p = plan(Kind::Int24, true);
        assert_eq!(
            convert(Wire::Int(0x80_0000), &p, Origin::Binlog),
            Ok(Value::Int(-8_388_608))
        );
        assert_eq!(
            convert(Wire::Int(0xff_ffff), &p, Origin::Binlog),
            Ok(Value::Int(-1))
        );
        assert_eq!(
            convert(Wire::Int(-5), &p, Origin::Binlog),
            Ok(Value::Int(-5))
        );
        assert_eq!(
            convert(Wire::Int(8_388_607), &p, Origin::Binlog),
            Ok(Value::Int(8_388_607))
        );
    }

    #[test]
    fn zero_dates_follow_debezium() {
        let zero_dt = Wire::Date(0, 0, 0, 0, 0, 0, 0);
        assert_eq!(
            convert(zero_dt.clone(), &plan(Kind::DateTime, true), Origin::Binlog),
            Ok(Value::Null)
        );
        assert_eq!(
            convert(zero_dt, &plan(Kind::DateTime, false), Origin::Binlog),
            Ok(Value::Timestamp(0))
        );
    }

    #[test]
    fn time_set_enum_bits_timestamp() {
        assert_eq!(
            convert(
                Wire::Time(true, 1, 2, 3, 4, 500),
                &plan(Kind::Time, true),
                Origin::Binlog
            ),
            Ok(Value::Time(-((86_400 + 7384) * 1_000_000 + 500)))
        );
        assert_eq!(
            convert(
                Wire::Bytes(vec![0b101]),
                &plan(Kind::Set, true),
                Origin::Binlog
            ),
            Ok(Value::Set(vec!["a".into(), "c".into()]))
        );
        assert_eq!(
            convert(Wire::Int(2), &plan(Kind::Enum, true), Origin::Binlog),
            Ok(Value::Enum("b".into()))
        );
        assert_eq!(
            convert(
                Wire::Bytes(vec![0x01, 0x02]),
                &plan(Kind::Bit(10), true),
                Origin::Binlog
            ),
            Ok(Value::Bits {
                len: 10,
                bytes: Bytes::from_static(&[0x02, 0x01])
            })
        );
        assert_eq!(
            convert(
                Wire::Bytes(b"1700000000.000123".to_vec()),
                &plan(Kind::Timestamp, true),
                Origin::Binlog
            ),
            Ok(Value::TimestampTz(1_700_000_000_000_123))
        );
        assert!(convert(Wire::Float(1.0), &plan(Kind::Date, true), Origin::Binlog).is_err());
    }
}
