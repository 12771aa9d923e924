//! Postgres types: OIDs to logical types, and the text form of a value to a typed [`Value`].
//!
//! Both the snapshot (simple-protocol queries) and pgoutput deliver values as the type's
//! text output, with the session pinned to `DateStyle=ISO, MDY`, `TimeZone=UTC`,
//! `IntervalStyle=postgres`, `extra_float_digits=3` and `bytea_output=hex`, so one parser
//! serves both. User types (enums, domains and arrays of them) are resolved through the
//! catalog ([`TypeCatalog`]).

use std::collections::HashMap;

use bytes::Bytes;
use tributary_runtime::model::time::days_from_civil;
use tributary_runtime::model::{Column, DataType, Decimal, Value};

use crate::config::IntervalMode;
use tributary_runtime::converter::json::DecimalMode;

/// Built-in type OIDs (`pg_type.h`).
pub mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const XML: u32 = 142;
    pub const CIDR: u32 = 650;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const MACADDR8: u32 = 774;
    pub const MONEY: u32 = 790;
    pub const MACADDR: u32 = 829;
    pub const INET: u32 = 869;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const INTERVAL: u32 = 1186;
    pub const TIMETZ: u32 = 1266;
    pub const BIT: u32 = 1560;
    pub const VARBIT: u32 = 1562;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
}

/// Element type of the built-in array types.
fn builtin_array_element(array_oid: u32) -> Option<u32> {
    Some(match array_oid {
        1000 => oid::BOOL,
        1001 => oid::BYTEA,
        1002 => oid::CHAR,
        1003 => oid::NAME,
        1005 => oid::INT2,
        1007 => oid::INT4,
        1009 => oid::TEXT,
        1014 => oid::BPCHAR,
        1015 => oid::VARCHAR,
        1016 => oid::INT8,
        1021 => oid::FLOAT4,
        1022 => oid::FLOAT8,
        1028 => oid::OID,
        1040 => oid::MACADDR,
        1041 => oid::INET,
        651 => oid::CIDR,
        775 => oid::MACADDR8,
        791 => oid::MONEY,
        199 => oid::JSON,
        143 => oid::XML,
        1115 => oid::TIMESTAMP,
        1182 => oid::DATE,
        1183 => oid::TIME,
        1185 => oid::TIMESTAMPTZ,
        1187 => oid::INTERVAL,
        1231 => oid::NUMERIC,
        1270 => oid::TIMETZ,
        1561 => oid::BIT,
        1563 => oid::VARBIT,
        2951 => oid::UUID,
        3807 => oid::JSONB,
        _ => return None,
    })
}

/// A user-defined type from `pg_type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserType {
    /// An enum with its labels in order.
    Enum { name: String, labels: Vec<String> },
    /// A domain over a base type (with the base's type modifier).
    Domain { base: u32, modifier: i32 },
    /// An array of another type.
    Array { element: u32 },
}

/// User types by OID, loaded from the catalog.
#[derive(Debug, Clone, Default)]
pub struct TypeCatalog {
    pub user: HashMap<u32, UserType>,
}

/// How a column's text is converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int,
    Float32,
    Float64,
    Numeric,
    Money,
    Text,
    Bytes,
    Date,
    Time,
    TimeTz,
    Timestamp,
    TimestampTz,
    Interval,
    Uuid,
    Json,
    Enum,
    /// `bit(1)`: a boolean, as Debezium maps it.
    Bit1,
    Bits,
    Array(Box<Kind>),
}

/// The logical type, the converter kind, the SQL name and enum labels of a column type.
pub struct Resolved {
    pub data_type: DataType,
    pub kind: Kind,
    pub sql_type: String,
    pub enum_values: Vec<String>,
    pub length: Option<u32>,
}

/// Fractional-second digits of a time type modifier (-1 = 6).
fn time_precision(modifier: i32) -> u8 {
    if (0..=6).contains(&modifier) {
        modifier as u8
    } else {
        6
    }
}

impl TypeCatalog {
    /// Resolves a type OID and modifier.
    pub fn resolve(&self, type_oid: u32, modifier: i32, interval: IntervalMode) -> Resolved {
        let plain = |data_type: DataType, kind: Kind, sql: &str| Resolved {
            data_type,
            kind,
            sql_type: sql.to_owned(),
            enum_values: Vec::new(),
            length: None,
        };
        if let Some(element) = builtin_array_element(type_oid) {
            return self.array_of(element, modifier, interval);
        }
        match type_oid {
            oid::BOOL => plain(DataType::Bool, Kind::Bool, "bool"),
            oid::INT2 => plain(DataType::Int16, Kind::Int, "int2"),
            oid::INT4 => plain(DataType::Int32, Kind::Int, "int4"),
            oid::INT8 => plain(DataType::Int64, Kind::Int, "int8"),
            oid::OID => plain(DataType::Int64, Kind::Int, "oid"),
            oid::FLOAT4 => plain(DataType::Float32, Kind::Float32, "float4"),
            oid::FLOAT8 => plain(DataType::Float64, Kind::Float64, "float8"),
            oid::NUMERIC => {
                let (precision, scale) = if modifier >= 4 {
                    let m = (modifier - 4) as u32;
                    ((m >> 16) & 0xffff, m & 0xffff)
                } else {
                    (0, 0)
                };
                let sql = if modifier >= 4 {
                    format!("numeric({precision},{scale})")
                } else {
                    "numeric".to_owned()
                };
                plain(DataType::Decimal { precision, scale }, Kind::Numeric, &sql)
            }
            oid::MONEY => plain(
                DataType::Decimal {
                    precision: 19,
                    scale: 2,
                },
                Kind::Money,
                "money",
            ),
            oid::TEXT | oid::NAME | oid::CHAR | oid::XML => {
                plain(DataType::Text, Kind::Text, type_name(type_oid))
            }
            oid::VARCHAR | oid::BPCHAR => {
                let mut r = plain(DataType::Text, Kind::Text, type_name(type_oid));
                if modifier > 4 {
                    r.length = Some((modifier - 4) as u32);
                    r.sql_type = format!("{}({})", type_name(type_oid), modifier - 4);
                }
                r
            }
            oid::INET | oid::CIDR | oid::MACADDR | oid::MACADDR8 => {
                plain(DataType::Text, Kind::Text, type_name(type_oid))
            }
            oid::BYTEA => plain(DataType::Bytes, Kind::Bytes, "bytea"),
            oid::DATE => plain(DataType::Date, Kind::Date, "date"),
            oid::TIME => plain(
                DataType::Time {
                    precision: time_precision(modifier),
                },
                Kind::Time,
                "time",
            ),
            oid::TIMETZ => plain(DataType::TimeTz, Kind::TimeTz, "timetz"),
            oid::TIMESTAMP => plain(
                DataType::Timestamp {
                    precision: time_precision(modifier),
                },
                Kind::Timestamp,
                "timestamp",
            ),
            oid::TIMESTAMPTZ => plain(
                DataType::TimestampTz {
                    precision: time_precision(modifier),
                },
                Kind::TimestampTz,
                "timestamptz",
            ),
            oid::INTERVAL => match interval {
                IntervalMode::Numeric => plain(DataType::Interval, Kind::Interval, "interval"),
                IntervalMode::String => plain(DataType::Text, Kind::Interval, "interval"),
            },
            oid::UUID => plain(DataType::Uuid, Kind::Uuid, "uuid"),
            oid::JSON => plain(DataType::Json, Kind::Json, "json"),
            oid::JSONB => plain(DataType::Json, Kind::Json, "jsonb"),
            oid::BIT if modifier == 1 => plain(DataType::Bool, Kind::Bit1, "bit(1)"),
            oid::BIT | oid::VARBIT => {
                let length = if modifier > 0 { modifier as u32 } else { 0 };
                plain(DataType::Bits { length }, Kind::Bits, type_name(type_oid))
            }
            other => match self.user.get(&other) {
                Some(UserType::Enum { name, labels }) => Resolved {
                    data_type: DataType::Enum,
                    kind: Kind::Enum,
                    sql_type: name.clone(),
                    enum_values: labels.clone(),
                    length: None,
                },
                Some(UserType::Domain { base, modifier }) => {
                    self.resolve(*base, *modifier, interval)
                }
                Some(UserType::Array { element }) => self.array_of(*element, modifier, interval),
                None => plain(DataType::Text, Kind::Text, "unknown"),
            },
        }
    }

    fn array_of(&self, element: u32, modifier: i32, interval: IntervalMode) -> Resolved {
        let inner = self.resolve(element, modifier, interval);
        Resolved {
            data_type: DataType::Array {
                element: Box::new(inner.data_type),
            },
            kind: Kind::Array(Box::new(inner.kind)),
            sql_type: format!("{}[]", inner.sql_type),
            enum_values: inner.enum_values,
            length: None,
        }
    }

    /// Is this OID known (built in or loaded)?
    pub fn knows(&self, type_oid: u32) -> bool {
        type_oid < 16384 || self.user.contains_key(&type_oid)
    }
}

fn type_name(type_oid: u32) -> &'static str {
    match type_oid {
        oid::TEXT => "text",
        oid::NAME => "name",
        oid::CHAR => "char",
        oid::XML => "xml",
        oid::VARCHAR => "varchar",
        oid::BPCHAR => "bpchar",
        oid::INET => "inet",
        oid::CIDR => "cidr",
        oid::MACADDR => "macaddr",
        oid::MACADDR8 => "macaddr8",
        oid::BIT => "bit",
        oid::VARBIT => "varbit",
        _ => "unknown",
    }
}

/// A column of a captured table with how to convert its values.
#[derive(Debug, Clone)]
pub struct ColumnConverter {
    pub kind: Kind,
}

/// Converts text to values under the connector's modes.
#[derive(Debug, Clone, Copy)]
pub struct ValueParser {
    pub decimal: DecimalMode,
    pub interval: IntervalMode,
}

/// Why a value could not be read; names the type, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse a {kind} value ({len} bytes of text)")]
pub struct ParseValueError {
    pub kind: &'static str,
    pub len: usize,
}

impl ValueParser {
    pub fn parse(&self, kind: &Kind, text: &str) -> Result<Value, ParseValueError> {
        let err = |k: &'static str| ParseValueError {
            kind: k,
            len: text.len(),
        };
        Ok(match kind {
            Kind::Bool => Value::Bool(matches!(text, "t" | "true")),
            Kind::Int => Value::Int(text.parse().map_err(|_| err("integer"))?),
            Kind::Float32 => Value::Float32(parse_float(text).ok_or_else(|| err("float4"))? as f32),
            Kind::Float64 => Value::Float64(parse_float(text).ok_or_else(|| err("float8"))?),
            Kind::Numeric => match text {
                "NaN" | "Infinity" | "-Infinity" => match self.decimal {
                    DecimalMode::Double => {
                        Value::Float64(parse_float(text).ok_or_else(|| err("numeric"))?)
                    }
                    DecimalMode::String => Value::Text(text.to_owned()),
                    // Kafka Connect's Decimal has no NaN or infinity (Debezium writes null).
                    DecimalMode::Precise => Value::Null,
                },
                _ => Value::Decimal(Decimal::parse(text).map_err(|_| err("numeric"))?),
            },
            Kind::Money => Value::Decimal(parse_money(text).ok_or_else(|| err("money"))?),
            Kind::Text => Value::Text(text.to_owned()),
            Kind::Enum => Value::Enum(text.to_owned()),
            Kind::Json => Value::Json(text.to_owned()),
            Kind::Bytes => Value::Bytes(parse_bytea(text).ok_or_else(|| err("bytea"))?),
            Kind::Date => Value::Date(parse_date(text).ok_or_else(|| err("date"))?),
            Kind::Time => Value::Time(parse_time(text).ok_or_else(|| err("time"))?),
            Kind::TimeTz => {
                let (micros, offset_seconds) = parse_timetz(text).ok_or_else(|| err("timetz"))?;
                Value::TimeTz {
                    micros,
                    offset_seconds,
                }
            }
            Kind::Timestamp => {
                Value::Timestamp(parse_timestamp(text, false).ok_or_else(|| err("timestamp"))?)
            }
            Kind::TimestampTz => {
                Value::TimestampTz(parse_timestamp(text, true).ok_or_else(|| err("timestamptz"))?)
            }
            Kind::Interval => {
                let (months, days, micros) = parse_interval(text).ok_or_else(|| err("interval"))?;
                match self.interval {
                    IntervalMode::Numeric => Value::Interval {
                        months,
                        days,
                        micros,
                    },
                    IntervalMode::String => Value::Text(iso_interval(months, days, micros)),
                }
            }
            Kind::Uuid => Value::Uuid(parse_uuid(text).ok_or_else(|| err("uuid"))?),
            Kind::Bit1 => Value::Bool(text == "1"),
            Kind::Bits => {
                let (len, bytes) = parse_bits(text).ok_or_else(|| err("bit"))?;
                Value::Bits { len, bytes }
            }
            Kind::Array(element) => {
                let items = parse_array(text).ok_or_else(|| err("array"))?;
                self.array_values(element, items)?
            }
        })
    }

    fn array_values(
        &self,
        element: &Kind,
        items: Vec<ArrayItem>,
    ) -> Result<Value, ParseValueError> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            out.push(match item {
                ArrayItem::Null => Value::Null,
                ArrayItem::Text(t) => self.parse(element, &t)?,
                ArrayItem::Nested(inner) => self.array_values(element, inner)?,
            });
        }
        Ok(Value::Array(out))
    }
}

/// Resolved column type for a relation column.
pub fn build_column(name: &str, resolved: Resolved, nullable: bool) -> Column {
    let mut c = Column::new(name, resolved.data_type, resolved.sql_type);
    c.nullable = nullable;
    c.length = resolved.length;
    c.enum_values = resolved.enum_values;
    c
}

fn parse_float(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => text.parse().ok(),
    }
}

/// `$1,234.56`, `-$1.00`, `($1.00)` in the C locale.
fn parse_money(text: &str) -> Option<Decimal> {
    let negative = text.starts_with('-') || text.starts_with('(');
    let digits: String = text
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let signed = if negative {
        format!("-{digits}")
    } else {
        digits
    };
    Decimal::parse(&signed).ok()
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `\x0102ff` (bytea_output = hex).
fn parse_bytea(text: &str) -> Option<Bytes> {
    let hex = text.strip_prefix("\\x")?.as_bytes();
    if hex.len() % 2 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(hex.len() / 2);
    for pair in hex.chunks_exact(2) {
        out.push(hex_val(pair[0])? << 4 | hex_val(pair[1])?);
    }
    Some(Bytes::from(out))
}

/// `YYYY-MM-DD[ BC]`; `infinity` maps to the extreme representable day.
fn parse_date(text: &str) -> Option<i32> {
    match text {
        "infinity" => return Some(i32::MAX),
        "-infinity" => return Some(i32::MIN),
        _ => {}
    }
    let (body, bc) = match text.strip_suffix(" BC") {
        Some(b) => (b, true),
        None => (text, false),
    };
    let mut parts = body.splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    // 1 BC is year 0 in the proleptic calendar.
    let year = if bc { 1 - year } else { year };
    i32::try_from(days_from_civil(year, month, day)).ok()
}

/// `HH:MM:SS[.ffffff]` to microseconds (24:00:00 allowed).
fn parse_time(text: &str) -> Option<i64> {
    let mut parts = text.splitn(3, ':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let sec = parts.next()?;
    let (s, frac) = match sec.split_once('.') {
        Some((s, f)) => (s, f),
        None => (sec, ""),
    };
    let s: i64 = s.parse().ok()?;
    let mut micros: i64 = 0;
    if !frac.is_empty() {
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
        micros = digits.parse().ok()?;
    }
    Some(((h * 60 + m) * 60 + s) * 1_000_000 + micros)
}

/// `+HH[:MM[:SS]]` to seconds east of UTC.
fn parse_offset(text: &str) -> Option<i32> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let mut total = 0i32;
    for (i, part) in rest.split(':').enumerate() {
        let v: i32 = part.parse().ok()?;
        total += v * [3600, 60, 1].get(i)?;
    }
    Some(sign * total)
}

fn parse_timetz(text: &str) -> Option<(i64, i32)> {
    let at = text.rfind(['+', '-'])?;
    Some((parse_time(&text[..at])?, parse_offset(&text[at..])?))
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM]][ BC]` to microseconds since the epoch (UTC
/// for timestamptz); infinity maps to the extreme values.
fn parse_timestamp(text: &str, with_zone: bool) -> Option<i64> {
    match text {
        "infinity" => return Some(i64::MAX),
        "-infinity" => return Some(i64::MIN),
        _ => {}
    }
    let (body, bc) = match text.strip_suffix(" BC") {
        Some(b) => (b, true),
        None => (text, false),
    };
    let (date, time) = body.split_once(' ')?;
    let (time, offset) = if with_zone {
        let at = time.rfind(['+', '-'])?;
        (&time[..at], parse_offset(&time[at..])?)
    } else {
        (time, 0)
    };
    let date_text = if bc {
        format!("{date} BC")
    } else {
        date.to_owned()
    };
    let days = i64::from(parse_date(&date_text)?);
    Some(days * 86_400_000_000 + parse_time(time)? - i64::from(offset) * 1_000_000)
}

/// `1 year 2 mons -3 days +04:05:06.5` (IntervalStyle = postgres).
fn parse_interval(text: &str) -> Option<(i32, i32, i64)> {
    let mut months: i32 = 0;
    let mut days: i32 = 0;
    let mut micros: i64 = 0;
    let mut tokens = text.split_whitespace().peekable();
    while let Some(tok) = tokens.next() {
        if tok.contains(':') {
            let (sign, rest) = match tok.as_bytes().first()? {
                b'-' => (-1, &tok[1..]),
                b'+' => (1, &tok[1..]),
                _ => (1, tok),
            };
            // Hours may exceed 24.
            micros += sign * parse_time(rest)?;
            continue;
        }
        let n: i64 = tok.parse().ok()?;
        let unit = tokens.next()?;
        match unit.trim_end_matches('s') {
            "year" => months += i32::try_from(n * 12).ok()?,
            "mon" => months += i32::try_from(n).ok()?,
            "day" => days += i32::try_from(n).ok()?,
            _ => return None,
        }
    }
    Some((months, days, micros))
}

/// ISO-8601 duration text, as Debezium's `interval.handling.mode=string` writes it.
fn iso_interval(months: i32, days: i32, micros: i64) -> String {
    let years = months / 12;
    let months = months % 12;
    let hours = micros / 3_600_000_000;
    let minutes = (micros / 60_000_000) % 60;
    let secs = (micros % 60_000_000) as f64 / 1e6;
    format!("P{years}Y{months}M{days}DT{hours}H{minutes}M{secs}S")
}

fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = text.bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        out[i] = hex_val(pair[0])? << 4 | hex_val(pair[1])?;
    }
    Some(out)
}

/// `0101...` to (length, little-endian bytes: the last character is bit 0).
fn parse_bits(text: &str) -> Option<(u32, Bytes)> {
    let len = text.len();
    let mut bytes = vec![0u8; len.div_ceil(8)];
    for (i, c) in text.bytes().rev().enumerate() {
        match c {
            b'1' => bytes[i / 8] |= 1 << (i % 8),
            b'0' => {}
            _ => return None,
        }
    }
    Some((u32::try_from(len).ok()?, Bytes::from(bytes)))
}

/// One element of an array literal.
#[derive(Debug, Clone, PartialEq)]
enum ArrayItem {
    Null,
    Text(String),
    Nested(Vec<ArrayItem>),
}

/// Parses `{a,"b c",NULL,{1,2}}`; an optional `[1:2]=` bounds prefix is skipped.
fn parse_array(text: &str) -> Option<Vec<ArrayItem>> {
    let text = match text.find("={") {
        Some(i) if text.starts_with('[') => &text[i + 1..],
        _ => text,
    };
    let bytes = text.as_bytes();
    let mut pos = 0;
    let items = parse_array_level(bytes, &mut pos)?;
    (pos == bytes.len()).then_some(items)
}

fn parse_array_level(b: &[u8], pos: &mut usize) -> Option<Vec<ArrayItem>> {
    if b.get(*pos) != Some(&b'{') {
        return None;
    }
    *pos += 1;
    let mut items = Vec::new();
    if b.get(*pos) == Some(&b'}') {
        *pos += 1;
        return Some(items);
    }
    loop {
        match b.get(*pos)? {
            b'{' => items.push(ArrayItem::Nested(parse_array_level(b, pos)?)),
            b'"' => {
                *pos += 1;
                let mut s = Vec::new();
                loop {
                    match b.get(*pos)? {
                        b'\\' => {
                            s.push(*b.get(*pos + 1)?);
                            *pos += 2;
                        }
                        b'"' => {
                            *pos += 1;
                            break;
                        }
                        c => {
                            s.push(*c);
                            *pos += 1;
                        }
                    }
                }
                items.push(ArrayItem::Text(String::from_utf8(s).ok()?));
            }
            _ => {
                let start = *pos;
                while !matches!(b.get(*pos)?, b',' | b'}') {
                    *pos += 1;
                }
                let raw = std::str::from_utf8(&b[start..*pos]).ok()?.trim();
                items.push(if raw == "NULL" {
                    ArrayItem::Null
                } else {
                    ArrayItem::Text(raw.to_owned())
                });
            }
        }
        match b.get(*pos)? {
            b',' => *pos += 1,
            b'}' => {
                *pos += 1;
                return Some(items);
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> ValueParser {
        ValueParser {
            decimal: DecimalMode::Precise,
            interval: IntervalMode::Numeric,
        }
    }

    #[test]
    fn scalars() {
        let p = p();
        assert_eq!(p.parse(&Kind::Int, "-42"), Ok(Value::Int(-42)));
        assert_eq!(p.parse(&Kind::Bool, "t"), Ok(Value::Bool(true)));
        assert!(matches!(p.parse(&Kind::Float64, "NaN"), Ok(Value::Float64(f)) if f.is_nan()));
        assert_eq!(
            p.parse(&Kind::Float32, "-Infinity"),
            Ok(Value::Float32(f32::NEG_INFINITY))
        );
        assert_eq!(p.parse(&Kind::Numeric, "NaN"), Ok(Value::Null));
        assert_eq!(
            p.parse(&Kind::Money, "-$1,234.50"),
            Ok(Value::Decimal(Decimal::parse("-1234.50").expect("dec")))
        );
        assert_eq!(
            p.parse(&Kind::Bytes, "\\x00ff"),
            Ok(Value::Bytes(Bytes::from_static(&[0, 255])))
        );
        assert_eq!(p.parse(&Kind::Date, "1970-01-02"), Ok(Value::Date(1)));
        assert_eq!(
            p.parse(&Kind::Date, "0001-01-01 BC"),
            Ok(Value::Date(-719_528))
        );
        assert_eq!(
            p.parse(&Kind::Time, "01:00:00.5"),
            Ok(Value::Time(3_600_500_000))
        );
        assert_eq!(
            p.parse(&Kind::TimeTz, "10:00:00-05:30"),
            Ok(Value::TimeTz {
                micros: 36_000_000_000,
                offset_seconds: -19_800
            })
        );
        assert_eq!(
            p.parse(&Kind::TimestampTz, "1970-01-01 01:00:00+01"),
            Ok(Value::TimestampTz(0))
        );
        assert_eq!(
            p.parse(&Kind::Timestamp, "2000-01-01 00:00:00.000001"),
            Ok(Value::Timestamp(946_684_800_000_001))
        );
        assert_eq!(
            p.parse(&Kind::Interval, "1 year 2 mons -3 days +04:05:06.5"),
            Ok(Value::Interval {
                months: 14,
                days: -3,
                micros: 14_706_500_000
            })
        );
        assert_eq!(
            p.parse(&Kind::Interval, "-00:00:01"),
            Ok(Value::Interval {
                months: 0,
                days: 0,
                micros: -1_000_000
            })
        );
        assert_eq!(
            p.parse(&Kind::Bits, "1000000001"),
            Ok(Value::Bits {
                len: 10,
                bytes: Bytes::from_static(&[1, 2])
            })
        );
        assert!(p.parse(&Kind::Int, "x").is_err());
    }

    #[test]
    fn arrays() {
        let p = p();
        assert_eq!(
            p.parse(
                &Kind::Array(Box::new(Kind::Text)),
                r#"{a,"b c",NULL,"q\"x"}"#
            ),
            Ok(Value::Array(vec![
                Value::Text("a".into()),
                Value::Text("b c".into()),
                Value::Null,
                Value::Text("q\"x".into())
            ]))
        );
        assert_eq!(
            p.parse(&Kind::Array(Box::new(Kind::Int)), "{{1,2},{3,4}}"),
            Ok(Value::Array(vec![
                Value::Array(vec![Value::Int(1), Value::Int(2)]),
                Value::Array(vec![Value::Int(3), Value::Int(4)])
            ]))
        );
        assert_eq!(
            p.parse(&Kind::Array(Box::new(Kind::Int)), "{}"),
            Ok(Value::Array(vec![]))
        );
    }

    #[test]
    fn numeric_modifier() {
        let c = TypeCatalog::default();
        let r = c.resolve(oid::NUMERIC, ((12 << 16) | 2) + 4, IntervalMode::Numeric);
        assert_eq!(
            r.data_type,
            DataType::Decimal {
                precision: 12,
                scale: 2
            }
        );
        assert_eq!(r.sql_type, "numeric(12,2)");
        let r = c.resolve(1007, -1, IntervalMode::Numeric);
        assert_eq!(r.kind, Kind::Array(Box::new(Kind::Int)));
    }
}
