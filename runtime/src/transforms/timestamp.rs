//! Kafka's `TimestampConverter$Key|$Value`: converts a timestamp field (or the whole side,
//! when `field` is empty) between `string` (with a `SimpleDateFormat` pattern), `unix`
//! (`unix.precision`), `Date`, `Time` and `Timestamp`. Inputs are recognised by their
//! Connect or Debezium logical type (`Timestamp`, `Date`, `Time`, `io.debezium.time.*`),
//! otherwise integers are unix times and text is parsed with `format`. All times are UTC.

use super::config::Props;
use super::structs::Fields;
use super::{Side, Transform, fail};
use crate::data::{ConnectRecord, ConnectSchema, ConnectType, Data, SchemaAndValue};
use crate::error::ConnectorError;
use crate::model::time::{civil_from_days, days_from_civil, parse_timestamp_tz};

const DAY_US: i64 = 86_400_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    String,
    Unix,
    Date,
    Time,
    Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Precision {
    Seconds,
    Millis,
    Micros,
    Nanos,
}

/// One piece of a date pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Year(usize),
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Fraction(usize),
    Zone,
    Literal(String),
}

#[derive(Debug)]
pub struct TimestampConverter {
    side: Side,
    field: Option<String>,
    target: Target,
    format: Option<Vec<Piece>>,
    precision: Precision,
}

impl TimestampConverter {
    pub fn new(p: &Props<'_>, side: Side) -> Self {
        let target = match p.get("target.type") {
            None => {
                p.error(
                    "target.type",
                    "is required: string, unix, Date, Time or Timestamp",
                );
                Target::Timestamp
            }
            Some(_) => match p.one_of(
                "target.type",
                &["string", "unix", "Date", "Time", "Timestamp"],
                "Timestamp",
            ) {
                "string" => Target::String,
                "unix" => Target::Unix,
                "Date" => Target::Date,
                "Time" => Target::Time,
                _ => Target::Timestamp,
            },
        };
        let format = p.get("format").and_then(|f| match parse_pattern(f) {
            Ok(pieces) => Some(pieces),
            Err(e) => {
                p.error("format", e);
                None
            }
        });
        if target == Target::String && format.is_none() && p.get("format").is_none() {
            p.error("format", "is required when target.type is string");
        }
        let precision = match p.one_of(
            "unix.precision",
            &["seconds", "milliseconds", "microseconds", "nanoseconds"],
            "milliseconds",
        ) {
            "seconds" => Precision::Seconds,
            "microseconds" => Precision::Micros,
            "nanoseconds" => Precision::Nanos,
            _ => Precision::Millis,
        };
        p.get("replace.null.with.default");
        TimestampConverter {
            side,
            field: p.get("field").map(str::to_owned),
            target,
            format,
            precision,
        }
    }

    /// Microseconds since the epoch (UTC) of an input value.
    fn read(&self, schema: Option<&ConnectSchema>, value: &Data) -> Result<i64, ConnectorError> {
        let name = schema.and_then(|s| s.name.as_deref());
        let int = value.as_i64();
        let unix = |n: i64| match self.precision {
            Precision::Seconds => n.saturating_mul(1_000_000),
            Precision::Millis => n.saturating_mul(1000),
            Precision::Micros => n,
            Precision::Nanos => n.div_euclid(1000),
        };
        match (name, int, value) {
            (
                Some("org.apache.kafka.connect.data.Timestamp" | "io.debezium.time.Timestamp"),
                Some(ms),
                _,
            ) => Ok(ms * 1000),
            (Some("io.debezium.time.MicroTimestamp"), Some(us), _) => Ok(us),
            (Some("io.debezium.time.NanoTimestamp"), Some(ns), _) => Ok(ns.div_euclid(1000)),
            (
                Some("org.apache.kafka.connect.data.Date" | "io.debezium.time.Date"),
                Some(days),
                _,
            ) => Ok(days * DAY_US),
            (Some("org.apache.kafka.connect.data.Time" | "io.debezium.time.Time"), Some(ms), _) => {
                Ok(ms * 1000)
            }
            (Some("io.debezium.time.MicroTime"), Some(us), _) => Ok(us),
            (_, Some(n), _) => Ok(unix(n)),
            (_, _, Data::String(s)) => match (&self.format, name) {
                (Some(pattern), _) => parse(pattern, s).ok_or_else(|| {
                    fail(format!(
                        "TimestampConverter: {s:?} does not match the format"
                    ))
                }),
                (None, _) => parse_timestamp_tz(s).ok_or_else(|| {
                    fail(format!(
                        "TimestampConverter: cannot read {s:?} as a timestamp; set format"
                    ))
                }),
            },
            _ => Err(fail(
                "TimestampConverter: the value is not a timestamp, integer or text",
            )),
        }
    }

    fn write(&self, us: i64) -> (ConnectSchema, Data) {
        let logical = |ty, name: &str| ConnectSchema {
            name: Some(name.to_owned()),
            version: Some(1),
            ..ConnectSchema::new(ty)
        };
        match self.target {
            Target::String => (
                ConnectSchema::new(ConnectType::String),
                Data::String(format(self.format.as_deref().unwrap_or_default(), us)),
            ),
            Target::Unix => (
                ConnectSchema::new(ConnectType::Int64),
                Data::Int64(match self.precision {
                    Precision::Seconds => us.div_euclid(1_000_000),
                    Precision::Millis => us.div_euclid(1000),
                    Precision::Micros => us,
                    Precision::Nanos => us.saturating_mul(1000),
                }),
            ),
            Target::Date => (
                logical(ConnectType::Int32, "org.apache.kafka.connect.data.Date"),
                Data::Int32(us.div_euclid(DAY_US) as i32),
            ),
            Target::Time => (
                logical(ConnectType::Int32, "org.apache.kafka.connect.data.Time"),
                Data::Int32((us.rem_euclid(DAY_US) / 1000) as i32),
            ),
            Target::Timestamp => (
                logical(
                    ConnectType::Int64,
                    "org.apache.kafka.connect.data.Timestamp",
                ),
                Data::Int64(us.div_euclid(1000)),
            ),
        }
    }
}

impl Transform for TimestampConverter {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, ConnectorError> {
        let slot = match self.side {
            Side::Key => &mut record.key,
            Side::Value => &mut record.value,
        };
        let Some(sv) = slot.take() else {
            return Ok(Some(record));
        };
        let converted = match &self.field {
            None if sv.value.is_null() => sv,
            None => {
                let us = self.read(sv.schema.as_deref(), &sv.value)?;
                let (schema, value) = self.write(us);
                let optional = sv.schema.as_ref().is_some_and(|s| s.optional);
                SchemaAndValue {
                    schema: sv
                        .schema
                        .as_ref()
                        .map(|_| std::sync::Arc::new(schema.optional(optional))),
                    value,
                }
            }
            Some(field) => {
                let mut fields = Fields::of_side(&sv)
                    .ok_or_else(|| fail("TimestampConverter: the record is not a struct or map"))?;
                let item = fields
                    .items
                    .iter_mut()
                    .find(|i| i.name == *field)
                    .ok_or_else(|| fail(format!("TimestampConverter: no field {field:?}")))?;
                let optional = item.schema.as_ref().is_none_or(|s| s.optional);
                if item.value.is_null() {
                    if let Some(s) = &mut item.schema {
                        *s = self.write(0).0.optional(optional);
                    }
                } else {
                    let us = self.read(item.schema.as_ref(), &item.value)?;
                    let (schema, value) = self.write(us);
                    item.value = value;
                    if item.schema.is_some() {
                        item.schema = Some(schema.optional(optional));
                    }
                }
                fields.into_side()
            }
        };
        match self.side {
            Side::Key => record.key = Some(converted),
            Side::Value => record.value = Some(converted),
        }
        Ok(Some(record))
    }
}

/// A `SimpleDateFormat` pattern: `yyyy yy MM dd HH mm ss S... 'text' X Z`, punctuation.
fn parse_pattern(pattern: &str) -> Result<Vec<Piece>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let run = chars[i..].iter().take_while(|&&x| x == c).count();
        let piece = match c {
            'y' | 'u' => Piece::Year(if run == 2 { 2 } else { 4 }),
            'M' => Piece::Month,
            'd' => Piece::Day,
            'H' => Piece::Hour,
            'm' => Piece::Minute,
            's' => Piece::Second,
            'S' => Piece::Fraction(run),
            'X' | 'Z' | 'x' => Piece::Zone,
            '\'' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&x| x == '\'')
                    .ok_or("unterminated quote in the format")?;
                let text: String = chars[i + 1..i + 1 + end].iter().collect();
                i += end + 2;
                out.push(Piece::Literal(if text.is_empty() {
                    "'".into()
                } else {
                    text
                }));
                continue;
            }
            c if c.is_ascii_alphabetic() => {
                return Err(format!(
                    "pattern letter {c:?} is not supported; use y, M, d, H, m, s, S, X, Z and quoted text"
                ));
            }
            c => Piece::Literal(c.to_string()),
        };
        i += if matches!(piece, Piece::Literal(_)) {
            1
        } else {
            run
        };
        out.push(piece);
    }
    Ok(out)
}

fn format(pieces: &[Piece], us: i64) -> String {
    let days = us.div_euclid(DAY_US);
    let tod = us.rem_euclid(DAY_US);
    let (y, mo, d) = civil_from_days(days);
    let mut out = String::new();
    for p in pieces {
        match p {
            Piece::Year(2) => out.push_str(&format!("{:02}", y.rem_euclid(100))),
            Piece::Year(_) => out.push_str(&format!("{y:04}")),
            Piece::Month => out.push_str(&format!("{mo:02}")),
            Piece::Day => out.push_str(&format!("{d:02}")),
            Piece::Hour => out.push_str(&format!("{:02}", tod / 3_600_000_000)),
            Piece::Minute => out.push_str(&format!("{:02}", tod / 60_000_000 % 60)),
            Piece::Second => out.push_str(&format!("{:02}", tod / 1_000_000 % 60)),
            Piece::Fraction(n) => {
                let micros = format!("{:06}", tod % 1_000_000);
                let digits: String = micros
                    .chars()
                    .chain(std::iter::repeat('0'))
                    .take(*n)
                    .collect();
                out.push_str(&digits);
            }
            Piece::Zone => out.push('Z'),
            Piece::Literal(t) => out.push_str(t),
        }
    }
    out
}

fn parse(pieces: &[Piece], text: &str) -> Option<i64> {
    let mut rest = text;
    let (mut y, mut mo, mut d, mut h, mut mi, mut s, mut frac, mut offset) =
        (1970i64, 1u32, 1u32, 0i64, 0i64, 0i64, 0i64, 0i64);
    let take_num = |rest: &mut &str, max: usize| -> Option<i64> {
        let n = rest
            .chars()
            .take(max)
            .take_while(char::is_ascii_digit)
            .count();
        if n == 0 {
            return None;
        }
        let (num, tail) = rest.split_at(n);
        *rest = tail;
        num.parse().ok()
    };
    for p in pieces {
        match p {
            Piece::Year(2) => y = 2000 + take_num(&mut rest, 2)?,
            Piece::Year(_) => y = take_num(&mut rest, 4)?,
            Piece::Month => mo = take_num(&mut rest, 2)? as u32,
            Piece::Day => d = take_num(&mut rest, 2)? as u32,
            Piece::Hour => h = take_num(&mut rest, 2)?,
            Piece::Minute => mi = take_num(&mut rest, 2)?,
            Piece::Second => s = take_num(&mut rest, 2)?,
            Piece::Fraction(n) => {
                let digits: String = rest
                    .chars()
                    .take(*n)
                    .take_while(char::is_ascii_digit)
                    .collect();
                rest = &rest[digits.len()..];
                let six: String = digits
                    .chars()
                    .chain(std::iter::repeat('0'))
                    .take(6)
                    .collect();
                frac = six.parse().ok()?;
            }
            Piece::Zone => {
                if let Some(r) = rest.strip_prefix('Z') {
                    rest = r;
                } else {
                    let sign = match rest.chars().next()? {
                        '+' => 1,
                        '-' => -1,
                        _ => return None,
                    };
                    rest = &rest[1..];
                    let hh = take_num(&mut rest, 2)?;
                    rest = rest.strip_prefix(':').unwrap_or(rest);
                    let mm = take_num(&mut rest, 2).unwrap_or(0);
                    offset = sign * (hh * 3600 + mm * 60);
                }
            }
            Piece::Literal(t) => rest = rest.strip_prefix(t.as_str())?,
        }
    }
    if !rest.is_empty()
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&d)
        || h > 23
        || mi > 59
        || s > 60
    {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    Some(days * DAY_US + ((h * 60 + mi) * 60 + s - offset) * 1_000_000 + frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_round_trip() {
        let p = parse_pattern("yyyy-MM-dd'T'HH:mm:ss.SSSX").expect("pattern");
        // 2024-02-29T13:14:15.678Z
        let us = parse(&p, "2024-02-29T13:14:15.678Z").expect("parses");
        assert_eq!(us, 1_709_212_455_678_000);
        assert_eq!(format(&p, us), "2024-02-29T13:14:15.678Z");
        let p = parse_pattern("yyyy/MM/dd").expect("pattern");
        assert_eq!(parse(&p, "1970/01/02"), Some(DAY_US));
        assert_eq!(parse(&p, "1970/13/02"), None);
        assert!(parse_pattern("EEE yyyy").is_err());
        let z = parse_pattern("yyyy-MM-dd HH:mmXXX").expect("pattern");
        assert_eq!(parse(&z, "1970-01-01 02:00+02:00"), Some(0));
    }
}
