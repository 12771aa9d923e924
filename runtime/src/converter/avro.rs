//! Avro as Debezium writes it with Confluent's `AvroConverter`.
//!
//! Two halves: [`to_avro`] renders a Kafka Connect schema ([`super::connect`]) as an Avro
//! schema the way Confluent's `AvroData` does (`["null", T]` optionals with default null,
//! `connect.name`/`connect.version`/`connect.parameters` properties, Avro logical types for
//! Connect's `Decimal`/`Date`/`Time`/`Timestamp`); the encoder writes a typed row straight to
//! Avro binary following a precomputed [`RowPlan`] (no intermediate value tree, no JSON).

use std::borrow::Cow;
use std::collections::HashSet;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value as J, json};

use super::connect::{
    ConnectSchema, ConnectType, Kind, column_schema, source_extra_kind, source_extra_kind_by_name,
};
use super::json::{BinaryMode, ValueModes, format_uuid};
use crate::model::time::{format_time_of_day, format_timestamp_utc};
use crate::model::{ChangeEvent, Decimal, Row, SourceInfo, TableSchema, Value};

/// Renders a Connect schema as an Avro schema (JSON).
pub fn to_avro(schema: &ConnectSchema) -> J {
    render(schema, &mut HashSet::new())
}

/// An Avro name: letters, digits and `_`, not starting with a digit (Debezium's
/// `schema.name.adjustment.mode=avro`).
pub fn avro_name(name: &str) -> Cow<'_, str> {
    let valid = |(i, c): (usize, char)| {
        c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())
    };
    if !name.is_empty() && name.chars().enumerate().all(valid) {
        return Cow::Borrowed(name);
    }
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    Cow::Owned(out)
}

/// A dotted full name with every segment made a valid Avro name.
pub fn avro_full_name(name: &str) -> String {
    name.split('.').map(avro_name).collect::<Vec<_>>().join(".")
}

fn render(schema: &ConnectSchema, seen: &mut HashSet<String>) -> J {
    let inner = render_required(schema, seen);
    match (schema.optional, &schema.default) {
        (false, _) => inner,
        (true, None) => json!(["null", inner]),
        // Avro wants the default's branch first.
        (true, Some(_)) => json!([inner, "null"]),
    }
}

fn render_required(schema: &ConnectSchema, seen: &mut HashSet<String>) -> J {
    match &schema.ty {
        ConnectType::Struct(fields) => {
            let full = avro_full_name(schema.name.as_deref().unwrap_or("ConnectDefault"));
            if !seen.insert(full.clone()) {
                return J::from(full);
            }
            let (namespace, name) = match full.rsplit_once('.') {
                Some((ns, n)) => (Some(ns.to_owned()), n.to_owned()),
                None => (None, full.clone()),
            };
            let fields: Vec<J> = fields
                .iter()
                .map(|f| {
                    let mut m = Map::new();
                    m.insert("name".into(), J::from(avro_name(&f.name).into_owned()));
                    m.insert("type".into(), render(&f.schema, seen));
                    match (&f.schema.default, f.schema.optional) {
                        (Some(d), _) => {
                            m.insert("default".into(), d.clone());
                        }
                        (None, true) => {
                            m.insert("default".into(), J::Null);
                        }
                        (None, false) => {}
                    }
                    J::Object(m)
                })
                .collect();
            let mut m = Map::new();
            m.insert("type".into(), J::from("record"));
            m.insert("name".into(), J::from(name));
            if let Some(ns) = namespace {
                m.insert("namespace".into(), J::from(ns));
            }
            m.insert("fields".into(), J::Array(fields));
            if let Some(v) = schema.version {
                m.insert("connect.version".into(), J::from(v));
            }
            m.insert("connect.name".into(), J::from(full));
            J::Object(m)
        }
        ConnectType::Array(items) => json!({"type": "array", "items": render(items, seen)}),
        // Confluent's AvroData: string keys make an Avro map, others an array of pairs.
        ConnectType::Map(keys, values) if keys.ty == ConnectType::String && !keys.optional => {
            json!({"type": "map", "values": render(values, seen)})
        }
        ConnectType::Map(keys, values) => json!({
            "type": "array",
            "items": {
                "type": "record",
                "name": "MapEntry",
                "namespace": "io.confluent.connect.avro",
                "fields": [
                    {"name": "key", "type": render(keys, seen)},
                    {"name": "value", "type": render(values, seen)},
                ],
            },
        }),
        primitive => {
            let (base, connect_type) = match primitive {
                ConnectType::Int8 => ("int", Some("int8")),
                ConnectType::Int16 => ("int", Some("int16")),
                ConnectType::Int32 => ("int", None),
                ConnectType::Int64 => ("long", None),
                ConnectType::Float32 => ("float", None),
                ConnectType::Float64 => ("double", None),
                ConnectType::Boolean => ("boolean", None),
                ConnectType::String => ("string", None),
                _ => ("bytes", None),
            };
            let mut m = Map::new();
            m.insert("type".into(), J::from(base));
            let name = schema.name.as_deref();
            if name == Some("org.apache.kafka.connect.data.Decimal") {
                let param = |k: &str| {
                    schema
                        .parameters
                        .iter()
                        .find(|(pk, _)| pk == k)
                        .and_then(|(_, v)| v.parse::<u64>().ok())
                };
                if let Some(scale) = param("scale") {
                    m.insert("scale".into(), J::from(scale));
                }
                if let Some(precision) = param("connect.decimal.precision") {
                    m.insert("precision".into(), J::from(precision));
                }
            }
            if let Some(ct) = connect_type {
                m.insert("connect.type".into(), J::from(ct));
            }
            if let Some(v) = schema.version {
                m.insert("connect.version".into(), J::from(v));
            }
            if !schema.parameters.is_empty() {
                let params = schema
                    .parameters
                    .iter()
                    .map(|(k, v)| (k.clone(), J::from(v.as_str())))
                    .collect();
                m.insert("connect.parameters".into(), J::Object(params));
            }
            if let Some(d) = &schema.default {
                m.insert("connect.default".into(), d.clone());
            }
            if let Some(name) = name {
                m.insert("connect.name".into(), J::from(name));
                let logical = match name {
                    "org.apache.kafka.connect.data.Decimal" => Some("decimal"),
                    "org.apache.kafka.connect.data.Date" => Some("date"),
                    "org.apache.kafka.connect.data.Time" => Some("time-millis"),
                    "org.apache.kafka.connect.data.Timestamp" => Some("timestamp-millis"),
                    _ => None,
                };
                if let Some(logical) = logical {
                    m.insert("logicalType".into(), J::from(logical));
                }
            }
            if m.len() == 1 {
                J::from(base)
            } else {
                J::Object(m)
            }
        }
    }
}

/// How to encode the chosen columns of a row.
#[derive(Debug, Clone)]
pub struct RowPlan {
    fields: Vec<FieldPlan>,
}

#[derive(Debug, Clone)]
struct FieldPlan {
    index: usize,
    name: String,
    optional: bool,
    /// Part of the table's key: never given a fallback value.
    key: bool,
    kind: Kind,
}

impl RowPlan {
    /// A plan for `columns` (indexes into the table's columns), or all columns.
    pub fn new(table: &TableSchema, columns: Option<&[usize]>, modes: &ValueModes) -> Self {
        let all: Vec<usize>;
        let indexes = match columns {
            Some(c) => c,
            None => {
                all = (0..table.columns.len()).collect();
                &all
            }
        };
        let fields = indexes
            .iter()
            .filter_map(|&index| {
                let column = table.columns.get(index)?;
                let (schema, kind) = column_schema(column, modes);
                Some(FieldPlan {
                    index,
                    name: column.name.clone(),
                    optional: schema.optional,
                    key: table.key.contains(&index),
                    kind,
                })
            })
            .collect();
        RowPlan { fields }
    }
}

/// Why a value could not be encoded: names the column.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("column {column}: {problem}")]
pub struct EncodeError {
    pub column: String,
    pub problem: String,
}

/// The shape of the `source` block an envelope schema was derived for.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceShape {
    connector: &'static str,
    has_schema: bool,
    extras: Vec<ExtraShape>,
}

/// One connector-specific `source` field of a [`SourceShape`].
#[derive(Debug, Clone, PartialEq)]
struct ExtraShape {
    name: &'static str,
    /// How a non-null value is written.
    kind: Kind,
    /// Fixed by the name (Debezium's fields): any value fits; else the value's type decides.
    by_name: bool,
}

/// The Avro kind a `source` field of this Connect type is written as.
fn extra_avro_kind(ty: &ConnectType) -> Kind {
    match ty {
        ConnectType::Int64 | ConnectType::Int32 => Kind::Long,
        ConnectType::Boolean => Kind::Boolean,
        ConnectType::Float64 => Kind::Double,
        _ => Kind::Str,
    }
}

/// Same `&'static str`: the literal is usually the very same one, so compare pointers first.
fn same_name(a: &'static str, b: &'static str) -> bool {
    std::ptr::eq(a, b) || a == b
}

impl SourceShape {
    pub fn of(source: &SourceInfo) -> Self {
        SourceShape {
            connector: source.connector,
            has_schema: source.schema.is_some(),
            extras: source
                .extra
                .iter()
                .map(|(name, value)| ExtraShape {
                    name,
                    kind: extra_avro_kind(&source_extra_kind(name, value)),
                    by_name: source_extra_kind_by_name(name).is_some(),
                })
                .collect(),
        }
    }

    /// Whether `source` still fits this shape (no allocation: checked on every event).
    pub fn matches(&self, source: &SourceInfo) -> bool {
        self.connector == source.connector
            && self.has_schema == source.schema.is_some()
            && self.extras.len() == source.extra.len()
            && self
                .extras
                .iter()
                .zip(&source.extra)
                .all(|(e, (name, value))| {
                    same_name(e.name, name)
                        && (e.by_name
                            || value.is_null()
                            || e.kind == extra_avro_kind(&source_extra_kind(name, value)))
                })
    }
}

/// The value Debezium's converters write for a null in a required field (their `fallback`).
pub(crate) fn not_null_fallback(kind: &Kind) -> Option<Value> {
    Some(match kind {
        Kind::Boolean | Kind::Bit => Value::Bool(false),
        Kind::Long => Value::Int(0),
        Kind::Float => Value::Float32(0.0),
        Kind::Double => Value::Float64(0.0),
        Kind::Str => Value::Text(String::new()),
        Kind::Bytes | Kind::BytesText(_) | Kind::Geometry => Value::Bytes(bytes::Bytes::new()),
        Kind::Bits => Value::Bits {
            len: 0,
            bytes: bytes::Bytes::new(),
        },
        Kind::Decimal { scale } => Value::Decimal(Decimal::from_i128(0, *scale)),
        Kind::VariableDecimal | Kind::DecimalDouble | Kind::DecimalString => {
            Value::Decimal(Decimal::from_i128(0, 0))
        }
        Kind::Date => Value::Date(0),
        Kind::TimeMillis | Kind::TimeMicros => Value::Time(0),
        Kind::ZonedTime => Value::TimeTz {
            micros: 0,
            offset_seconds: 0,
        },
        Kind::TimestampMillis | Kind::TimestampMicros => Value::Timestamp(0),
        Kind::ZonedTimestamp => Value::TimestampTz(0),
        Kind::MicroDuration => Value::Interval {
            months: 0,
            days: 0,
            micros: 0,
        },
        Kind::Array(_) => Value::Array(Vec::new()),
    })
}

/// Encodes the selected columns of `row` as an Avro record.
pub fn encode_row(
    plan: &RowPlan,
    row: &Row,
    modes: &ValueModes,
    buf: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    for field in &plan.fields {
        let err = |problem: String| EncodeError {
            column: field.name.clone(),
            problem,
        };
        let value = row
            .get(field.index)
            .ok_or_else(|| err("missing from the row".into()))?;
        let value = match value {
            Value::Unavailable => match unavailable(&field.kind, modes) {
                Some(v) => v,
                None if field.optional => Cow::Owned(Value::Null),
                None => {
                    return Err(err(
                        "value unavailable (unchanged TOAST) in a required non-text column".into(),
                    ));
                }
            },
            v => Cow::Borrowed(v),
        };
        let value = if field.optional {
            if value.is_null() {
                buf.push(0);
                continue;
            }
            buf.push(2); // union branch 1, zig-zag encoded
            value
        } else if value.is_null() && !field.key {
            // A NOT NULL column the source did not supply: Postgres sends only the key
            // columns of a deleted row under REPLICA IDENTITY DEFAULT. Debezium writes the
            // type's fallback value then (0, "", the epoch), and so do we.
            Cow::Owned(
                not_null_fallback(&field.kind)
                    .ok_or_else(|| err("null in a NOT NULL column".into()))?,
            )
        } else if value.is_null() {
            return Err(err("null in a key column".into()));
        } else {
            value
        };
        encode_value(&field.kind, &value, buf).map_err(err)?;
    }
    Ok(())
}

fn unavailable(kind: &Kind, modes: &ValueModes) -> Option<Cow<'static, Value>> {
    let text = || Value::Text(modes.unavailable_placeholder.clone());
    match kind {
        Kind::Str
        | Kind::ZonedTime
        | Kind::ZonedTimestamp
        | Kind::DecimalString
        | Kind::BytesText(_) => Some(Cow::Owned(text())),
        Kind::Bytes | Kind::Bits => Some(Cow::Owned(Value::Bytes(bytes::Bytes::from(
            modes.unavailable_placeholder.clone().into_bytes(),
        )))),
        _ => None,
    }
}

fn mismatch(kind: &Kind, value: &Value) -> String {
    let variant = format!("{value:?}");
    let variant = variant
        .split(['(', ' ', '{'])
        .next()
        .unwrap_or("?")
        .to_owned();
    format!("a {variant} value cannot be written as {kind:?}")
}

/// Writes one non-null value.
fn encode_value(kind: &Kind, value: &Value, buf: &mut Vec<u8>) -> Result<(), String> {
    match (kind, value) {
        (Kind::Boolean | Kind::Bit, Value::Bool(b)) => buf.push(u8::from(*b)),
        (Kind::Bit, Value::Bits { bytes, .. }) => {
            buf.push(u8::from(bytes.first().is_some_and(|b| b & 1 == 1)))
        }
        (Kind::Long, Value::Int(n)) => write_long(buf, *n),
        // bigint.unsigned.handling.mode=long: values above i64::MAX wrap, as in Debezium.
        (Kind::Long, Value::UInt(n)) => write_long(buf, *n as i64),
        (Kind::Float, Value::Float32(f)) => buf.extend_from_slice(&f.to_le_bytes()),
        (Kind::Float, Value::Float64(f)) => buf.extend_from_slice(&(*f as f32).to_le_bytes()),
        (Kind::Double, Value::Float64(f)) => buf.extend_from_slice(&f.to_le_bytes()),
        (Kind::Double, Value::Float32(f)) => buf.extend_from_slice(&f64::from(*f).to_le_bytes()),
        (Kind::Str, Value::Text(s) | Value::Json(s) | Value::Enum(s)) => write_str(buf, s),
        (Kind::Str, Value::Uuid(u)) => write_str(buf, &format_uuid(u)),
        (Kind::Str, Value::Set(members)) => write_str(buf, &members.join(",")),
        (Kind::Bytes | Kind::Bits, Value::Bytes(b) | Value::Bits { bytes: b, .. }) => {
            write_bytes(buf, b)
        }
        (Kind::BytesText(mode), Value::Bytes(b)) => match mode {
            BinaryMode::Hex => {
                let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                write_str(buf, &hex)
            }
            _ => write_str(buf, &BASE64.encode(b)),
        },
        (
            Kind::BytesText(_) | Kind::ZonedTime | Kind::ZonedTimestamp | Kind::DecimalString,
            Value::Text(s),
        ) => write_str(buf, s),
        (Kind::Bytes, Value::Text(s)) => write_bytes(buf, s.as_bytes()),
        (Kind::Decimal { scale }, Value::Decimal(d)) => {
            let d = rescale(d, *scale).ok_or_else(|| {
                format!("{d} has more than {scale} fractional digits; it cannot be written exactly")
            })?;
            write_decimal(buf, &d);
        }
        (Kind::Geometry, Value::Bytes(wkb)) => {
            write_bytes(buf, wkb);
            buf.push(0); // srid: null
        }
        (Kind::VariableDecimal, Value::Decimal(d)) => {
            write_long(buf, i64::from(d.scale()));
            write_decimal(buf, d);
        }
        (Kind::DecimalDouble, Value::Decimal(d)) => {
            buf.extend_from_slice(&d.to_f64().to_le_bytes())
        }
        (Kind::DecimalString, Value::Decimal(d)) => write_str(buf, &d.to_string()),
        (Kind::Long | Kind::Date, Value::Date(days)) => write_long(buf, i64::from(*days)),
        (Kind::TimeMillis, Value::Time(us)) => write_long(buf, us.div_euclid(1000)),
        (Kind::TimeMicros, Value::Time(us)) => write_long(buf, *us),
        (
            Kind::ZonedTime,
            Value::TimeTz {
                micros,
                offset_seconds,
            },
        ) => {
            let utc = (micros - i64::from(*offset_seconds) * 1_000_000).rem_euclid(86_400_000_000);
            write_str(buf, &format!("{}Z", format_time_of_day(utc)))
        }
        (Kind::TimestampMillis, Value::Timestamp(us) | Value::TimestampTz(us)) => {
            write_long(buf, us.div_euclid(1000))
        }
        (Kind::TimestampMicros, Value::Timestamp(us) | Value::TimestampTz(us)) => {
            write_long(buf, *us)
        }
        (Kind::ZonedTimestamp, Value::TimestampTz(us)) => {
            write_str(buf, &format_timestamp_utc(*us))
        }
        (
            Kind::MicroDuration,
            Value::Interval {
                months,
                days,
                micros,
            },
        ) => {
            let total = (i64::from(*months) * 30 + i64::from(*days)) * 86_400_000_000 + micros;
            write_long(buf, total)
        }
        (Kind::Array(element), Value::Array(items)) => {
            if !items.is_empty() {
                write_long(buf, items.len() as i64);
                for item in items {
                    if item.is_null() {
                        buf.push(0);
                    } else {
                        buf.push(2);
                        encode_value(element, item, buf)?;
                    }
                }
            }
            buf.push(0);
        }
        (kind, value) => return Err(mismatch(kind, value)),
    }
    Ok(())
}

/// The decimal at exactly `scale` fractional digits; `None` when that would lose digits.
pub fn rescale(d: &Decimal, scale: u32) -> Option<Cow<'_, Decimal>> {
    use std::cmp::Ordering;
    match d.scale().cmp(&scale) {
        Ordering::Equal => Some(Cow::Borrowed(d)),
        Ordering::Less => {
            let mut text = d.to_string();
            if d.scale() == 0 {
                text.push('.');
            }
            text.extend(std::iter::repeat_n('0', (scale - d.scale()) as usize));
            Decimal::parse(&text).ok().map(Cow::Owned)
        }
        Ordering::Greater => {
            let text = d.to_string();
            let cut = (d.scale() - scale) as usize;
            let (keep, dropped) = text.split_at(text.len() - cut);
            if !dropped.bytes().all(|b| b == b'0') {
                return None;
            }
            let keep = keep.strip_suffix('.').unwrap_or(keep);
            Decimal::parse(keep).ok().map(Cow::Owned)
        }
    }
}

fn write_decimal(buf: &mut Vec<u8>, d: &Decimal) {
    let bytes = d.unscaled_be_bytes();
    write_bytes(buf, &bytes);
}

/// Avro `long`/`int`: zig-zag varint.
pub fn write_long(buf: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        buf.push((z as u8) | 0x80);
        z >>= 7;
    }
    buf.push(z as u8);
}

pub fn write_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    write_long(buf, b.len() as i64);
    buf.extend_from_slice(b);
}

/// Reads an Avro `long`/`int` (zig-zag varint), advancing `input`.
pub fn read_long(input: &mut &[u8]) -> Result<i64, String> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = input.split_first().ok_or("truncated varint")?;
        *input = rest;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
        }
    }
    Err("varint longer than 10 bytes".into())
}

/// Reads a length (a non-negative `long`).
pub fn read_len(input: &mut &[u8]) -> Result<usize, String> {
    let n = read_long(input)?;
    usize::try_from(n).map_err(|_| format!("negative length {n}"))
}

/// Takes `n` bytes off the front of `input`.
pub fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if input.len() < n {
        return Err(format!("truncated: needs {n} bytes, {} left", input.len()));
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

pub fn write_str(buf: &mut Vec<u8>, s: &str) {
    write_bytes(buf, s.as_bytes());
}

/// Encodes Debezium's envelope for `event` (the schema from
/// [`super::connect::envelope_schema`]; `plan` covers all columns).
pub fn encode_envelope(
    plan: &RowPlan,
    shape: Option<&SourceShape>,
    event: &ChangeEvent,
    modes: &ValueModes,
    buf: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    for row in [&event.before, &event.after] {
        match row {
            None => buf.push(0),
            Some(row) => {
                buf.push(2);
                encode_row(plan, row, modes, buf)?;
            }
        }
    }
    let src = &event.source;
    write_str(buf, crate::VERSION);
    write_str(buf, src.connector);
    write_str(buf, &src.name);
    write_long(buf, src.ts_ms);
    buf.push(0); // snapshot: ["string", "null"], branch 0
    write_str(buf, src.snapshot.as_str());
    write_str(buf, &src.db);
    if let Some(schema) = &src.schema {
        write_str(buf, schema);
    }
    match &src.table {
        None => buf.push(0),
        Some(t) => {
            buf.push(2);
            write_str(buf, t);
        }
    }
    // The shape the codec was checked against gives each field's kind (it matched `src`).
    let shaped = shape
        .map(|s| s.extras.as_slice())
        .filter(|e| e.len() == src.extra.len());
    for (i, (name, value)) in src.extra.iter().enumerate() {
        if value.is_null() {
            buf.push(0);
            continue;
        }
        buf.push(2);
        let derived;
        let kind = match shaped.and_then(|e| e.get(i)) {
            Some(e) => &e.kind,
            None => {
                derived = extra_avro_kind(&source_extra_kind(name, value));
                &derived
            }
        };
        let written = match (kind, value) {
            (Kind::Str, Value::Int(n)) => {
                write_str(buf, &n.to_string());
                Ok(())
            }
            (Kind::Str, Value::UInt(n)) => {
                write_str(buf, &n.to_string());
                Ok(())
            }
            _ => encode_value(kind, value, buf),
        };
        written.map_err(|problem| EncodeError {
            column: format!("source.{name}"),
            problem,
        })?;
    }
    match &event.transaction {
        None => buf.push(0),
        Some(tx) => {
            buf.push(2);
            write_str(buf, &tx.id);
            write_long(buf, tx.total_order as i64);
            write_long(buf, tx.data_collection_order as i64);
        }
    }
    write_str(buf, event.op.code());
    buf.push(2);
    write_long(buf, event.processed_ts_ms);
    buf.push(2);
    write_long(buf, event.processed_ts_ms.saturating_mul(1000));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_matches_the_spec() {
        let enc = |n| {
            let mut b = Vec::new();
            write_long(&mut b, n);
            b
        };
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(-1), [1]);
        assert_eq!(enc(1), [2]);
        assert_eq!(enc(-64), [0x7f]);
        assert_eq!(enc(64), [0x80, 0x01]);
        assert_eq!(enc(i64::MIN).len(), 10);
    }

    #[test]
    fn rescales_without_losing_digits() {
        let d = |s| Decimal::parse(s).expect("decimal");
        assert_eq!(
            rescale(&d("1.5"), 3).map(|c| c.to_string()),
            Some("1.500".into())
        );
        assert_eq!(
            rescale(&d("7"), 2).map(|c| c.to_string()),
            Some("7.00".into())
        );
        assert_eq!(
            rescale(&d("1.500"), 1).map(|c| c.to_string()),
            Some("1.5".into())
        );
        assert_eq!(rescale(&d("1.500"), 0), None);
        assert_eq!(
            rescale(&d("2.000"), 0).map(|c| c.to_string()),
            Some("2".into())
        );
    }

    #[test]
    fn modes_choose_the_logical_types() {
        use crate::converter::connect::column_schema;
        use crate::converter::json::{DecimalMode, TimePrecisionMode};
        use crate::model::{Column, DataType};
        let render = |ty: DataType, modes: &ValueModes| {
            to_avro(&column_schema(&Column::new("c", ty, "").not_null(), modes).0)
        };
        let connect = ValueModes {
            time_precision: TimePrecisionMode::Connect,
            decimal: DecimalMode::String,
            ..ValueModes::default()
        };
        let ts = DataType::Timestamp { precision: 6 };
        assert_eq!(
            render(ts.clone(), &connect),
            json!({"type": "long", "connect.version": 1,
                   "connect.name": "org.apache.kafka.connect.data.Timestamp",
                   "logicalType": "timestamp-millis"})
        );
        assert_eq!(
            render(DataType::Date, &connect)["logicalType"],
            json!("date")
        );
        assert_eq!(
            render(DataType::Time { precision: 6 }, &connect)["logicalType"],
            json!("time-millis")
        );
        let dec = DataType::Decimal {
            precision: 10,
            scale: 3,
        };
        assert_eq!(render(dec.clone(), &connect), json!("string"));
        let double = ValueModes {
            decimal: DecimalMode::Double,
            ..ValueModes::default()
        };
        assert_eq!(render(dec, &double), json!("double"));
        let micros = ValueModes {
            time_precision: TimePrecisionMode::AdaptiveTimeMicroseconds,
            ..ValueModes::default()
        };
        assert_eq!(
            render(DataType::Time { precision: 0 }, &micros)["connect.name"],
            json!("io.debezium.time.MicroTime")
        );
        assert_eq!(
            render(DataType::Timestamp { precision: 3 }, &micros)["connect.name"],
            json!("io.debezium.time.Timestamp")
        );
        let hex = ValueModes {
            binary: BinaryMode::Hex,
            ..ValueModes::default()
        };
        assert_eq!(render(DataType::Bytes, &hex), json!("string"));
    }

    #[test]
    fn encodes_a_row_byte_for_byte() {
        use crate::model::{Column, DataType, TableId};
        let table = TableSchema {
            id: TableId::new("d", "t"),
            version: 1,
            columns: vec![
                Column::new("id", DataType::Int32, "int").not_null(),
                Column::new("s", DataType::Text, "text"),
                Column::new(
                    "d",
                    DataType::Decimal {
                        precision: 5,
                        scale: 2,
                    },
                    "decimal(5,2)",
                ),
            ],
            key: vec![0],
        };
        let modes = ValueModes::default();
        let plan = RowPlan::new(&table, None, &modes);
        let mut buf = Vec::new();
        let row = Row(vec![
            Value::Int(-3),
            Value::Text("hé".into()),
            Value::Decimal(Decimal::parse("1.5").expect("decimal")),
        ]);
        encode_row(&plan, &row, &modes, &mut buf).expect("encode");
        // id=-3 -> 5; s: branch 1, len 3, bytes; d: branch 1, len 1, 150 = 0x00 0x96 (2 bytes).
        assert_eq!(buf, [5, 2, 6, b'h', 0xc3, 0xa9, 2, 4, 0x00, 0x96]);
        buf.clear();
        let err = encode_row(
            &plan,
            &Row(vec![Value::Null, Value::Null, Value::Null]),
            &modes,
            &mut buf,
        )
        .expect_err("null key column");
        assert_eq!(err.column, "id");
    }

    #[test]
    fn avro_names_are_adjusted() {
        assert_eq!(avro_name("ok_1"), "ok_1");
        assert_eq!(avro_name("1st"), "_1st");
        assert_eq!(avro_name("a-b"), "a_b");
        assert_eq!(avro_full_name("srv.my-db.t"), "srv.my_db.t");
    }
}
