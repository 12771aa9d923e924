//! Confluent's storage partitioners: the "encoded partition" directory of each record.
//!
//! | partitioner | encoded partition |
//! |---|---|
//! | `DefaultPartitioner` | `partition=<kafka partition>` |
//! | `FieldPartitioner` | `<field>=<value>` per field, joined with `directory.delim` |
//! | `TimeBasedPartitioner` | `path.format` rendered at the record time floored to `partition.duration.ms` in `timezone` |
//! | `DailyPartitioner` / `HourlyPartitioner` | `'year'=YYYY/'month'=MM/'day'=dd[/'hour'=HH]` |
//!
//! With the `Record` and `RecordField` extractors the encoded partition is a pure function of
//! the record, which makes replays after a crash write the same object keys.

use tributary_runtime::data::{ConnectSchema, Data, SchemaAndValue, field_of};

use crate::path_format::{PathFormat, TimeZone};

/// Where a record's time comes from (`timestamp.extractor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimestampExtractor {
    /// The Kafka record timestamp.
    Record,
    /// A field of the value (path of nested field names).
    RecordField(Vec<String>),
    /// The wall clock when the record is written (not deterministic).
    Wallclock,
}

/// `partitioner.class` and its settings.
#[derive(Debug, Clone)]
pub enum PartitionerConfig {
    Default,
    Field {
        /// As written in `partition.field.name` (used in the directory names).
        names: Vec<String>,
        /// The same, split into nested field paths.
        fields: Vec<Vec<String>>,
    },
    Time {
        format: PathFormat,
        duration_ms: i64,
        zone: TimeZone,
        extractor: TimestampExtractor,
    },
}

/// What a partitioner looks at.
#[derive(Debug, Clone, Copy)]
pub struct RecordView<'a> {
    pub kafka_partition: u32,
    pub timestamp_ms: i64,
    /// The decoded value (`None` for a tombstone).
    pub value: Option<&'a SchemaAndValue>,
}

impl PartitionerConfig {
    /// Whether the encoded partition and record time are pure functions of the record.
    pub fn is_deterministic(&self) -> bool {
        !matches!(
            self,
            PartitionerConfig::Time {
                extractor: TimestampExtractor::Wallclock,
                ..
            }
        )
    }

    /// The time used by record-time rotation: the time-based partitioner's extractor, else the
    /// record timestamp.
    pub fn record_time(&self, record: &RecordView<'_>, now_ms: i64) -> Result<i64, String> {
        match self {
            PartitionerConfig::Time { extractor, .. } => extract_time(extractor, record, now_ms),
            _ => Ok(record.timestamp_ms),
        }
    }

    /// The encoded partition of a record, e.g. `partition=3` or `year=2024/month=01`.
    pub fn encode(
        &self,
        record: &RecordView<'_>,
        delim: &str,
        now_ms: i64,
    ) -> Result<String, String> {
        match self {
            PartitionerConfig::Default => Ok(format!("partition={}", record.kafka_partition)),
            PartitionerConfig::Field { names, fields } => {
                let Some(value) = record.value else {
                    return Err(
                        "the record has no value (tombstone) to take partition fields from".into(),
                    );
                };
                let mut parts = Vec::with_capacity(fields.len());
                for (name, path) in names.iter().zip(fields) {
                    let (_, data) = nested_field(value.schema.as_deref(), &value.value, path)
                        .ok_or_else(|| {
                            format!("partition field {name:?} is missing from the record value")
                        })?;
                    let text = match data {
                        Data::String(s) => s.clone(),
                        Data::Boolean(b) => b.to_string(),
                        d => match d.as_i64() {
                            Some(n) => n.to_string(),
                            None => {
                                return Err(format!(
                                    "partition field {name:?} must be a string, integer or boolean, got {}",
                                    kind(d)
                                ));
                            }
                        },
                    };
                    parts.push(format!("{name}={text}"));
                }
                Ok(parts.join(delim))
            }
            PartitionerConfig::Time {
                format,
                duration_ms,
                zone,
                extractor,
            } => {
                let t = extract_time(extractor, record, now_ms)?;
                Ok(format.render(floor_to_partition(t, *duration_ms, zone), zone))
            }
        }
    }
}

/// The start of the time partition holding `t`, aligned in local time of `zone` (as
/// Confluent's `TimeBasedPartitioner.getPartition`).
pub fn floor_to_partition(t: i64, duration_ms: i64, zone: &TimeZone) -> i64 {
    let offset = zone.offset_ms(t);
    let local = t + offset;
    let floored = local.div_euclid(duration_ms) * duration_ms;
    floored - zone.offset_ms(floored - offset)
}

fn extract_time(
    extractor: &TimestampExtractor,
    record: &RecordView<'_>,
    now_ms: i64,
) -> Result<i64, String> {
    match extractor {
        TimestampExtractor::Record => Ok(record.timestamp_ms),
        TimestampExtractor::Wallclock => Ok(now_ms),
        TimestampExtractor::RecordField(path) => {
            let name = path.join(".");
            let value = record.value.ok_or_else(|| {
                format!("the record has no value (tombstone) to take timestamp.field {name:?} from")
            })?;
            let (schema, data) = nested_field(value.schema.as_deref(), &value.value, path)
                .ok_or_else(|| {
                    format!("timestamp.field {name:?} is missing from the record value")
                })?;
            field_time(schema, data).map_err(|e| format!("timestamp.field {name:?}: {e}"))
        }
    }
}

/// Epoch ms of a timestamp field, by its logical type.
fn field_time(schema: Option<&ConnectSchema>, data: &Data) -> Result<i64, String> {
    let name = schema.and_then(|s| s.name.as_deref()).unwrap_or("");
    if let Some(n) = data.as_i64() {
        return Ok(match name {
            "io.debezium.time.MicroTimestamp" => n.div_euclid(1000),
            "io.debezium.time.NanoTimestamp" => n.div_euclid(1_000_000),
            "org.apache.kafka.connect.data.Date" | "io.debezium.time.Date" => n * 86_400_000,
            _ => n,
        });
    }
    match data {
        Data::String(s) => {
            if let Ok(n) = s.trim().parse::<i64>() {
                return Ok(n);
            }
            s.trim()
                .parse::<jiff::Timestamp>()
                .map(|ts| ts.as_millisecond())
                .map_err(|e| format!("cannot parse {s:?} as an ISO-8601 timestamp: {e}"))
        }
        Data::Null => Err("is null".into()),
        other => Err(format!(
            "must be an integer (epoch ms) or an ISO-8601 string, got {}",
            kind(other)
        )),
    }
}

/// A nested field of a struct (or string-keyed map) value.
fn nested_field<'a>(
    schema: Option<&'a ConnectSchema>,
    value: &'a Data,
    path: &[String],
) -> Option<(Option<&'a ConnectSchema>, &'a Data)> {
    let (first, rest) = path.split_first()?;
    let (schema, data) = field_of(schema, value, first)?;
    if rest.is_empty() {
        Some((schema, data))
    } else {
        nested_field(schema, data, rest)
    }
}

fn kind(data: &Data) -> &'static str {
    match data {
        Data::Null => "null",
        Data::Boolean(_) => "boolean",
        Data::Int8(_) | Data::Int16(_) | Data::Int32(_) | Data::Int64(_) => "integer",
        Data::Float32(_) | Data::Float64(_) => "float",
        Data::String(_) => "string",
        Data::Bytes(_) => "bytes",
        Data::Array(_) => "array",
        Data::Map(_) => "map",
        Data::Struct(_) => "struct",
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tributary_runtime::data::{ConnectField, ConnectType};

    use super::*;

    fn schema(fields: &[(&str, ConnectType, Option<&str>)]) -> Arc<ConnectSchema> {
        Arc::new(ConnectSchema::new(ConnectType::Struct(
            fields
                .iter()
                .map(|(n, t, logical)| ConnectField {
                    name: n.to_string(),
                    schema: ConnectSchema {
                        name: logical.map(str::to_owned),
                        ..ConnectSchema::new(t.clone())
                    },
                })
                .collect(),
        )))
    }

    #[test]
    fn default_and_field_partitions() {
        let value = SchemaAndValue {
            schema: Some(schema(&[
                ("region", ConnectType::String, None),
                ("shard", ConnectType::Int32, None),
            ])),
            value: Data::Struct(vec![Data::String("eu".into()), Data::Int32(7)]),
        };
        let view = RecordView {
            kafka_partition: 3,
            timestamp_ms: 0,
            value: Some(&value),
        };
        assert_eq!(
            PartitionerConfig::Default
                .encode(&view, "/", 0)
                .expect("encode"),
            "partition=3"
        );
        let field = PartitionerConfig::Field {
            names: vec!["region".into(), "shard".into()],
            fields: vec![vec!["region".into()], vec!["shard".into()]],
        };
        assert_eq!(
            field.encode(&view, "/", 0).expect("encode"),
            "region=eu/shard=7"
        );
        let missing = PartitionerConfig::Field {
            names: vec!["nope".into()],
            fields: vec![vec!["nope".into()]],
        };
        assert!(
            missing
                .encode(&view, "/", 0)
                .expect_err("missing")
                .contains("\"nope\" is missing")
        );
    }

    #[test]
    fn time_partitions_floor_in_zone() {
        let hourly = |zone: &str, extractor| PartitionerConfig::Time {
            format: PathFormat::parse("'year'=YYYY/'month'=MM/'day'=dd/'hour'=HH").expect("format"),
            duration_ms: 3_600_000,
            zone: TimeZone::parse(zone).expect("zone"),
            extractor,
        };
        // 2024-03-10T06:59:00Z; in New York that is 01:59 EST, the hour before the DST jump.
        let t = 1_710_053_940_000;
        let view = RecordView {
            kafka_partition: 0,
            timestamp_ms: t,
            value: None,
        };
        assert_eq!(
            hourly("UTC", TimestampExtractor::Record)
                .encode(&view, "/", 0)
                .expect("utc"),
            "year=2024/month=03/day=10/hour=06"
        );
        assert_eq!(
            hourly("America/New_York", TimestampExtractor::Record)
                .encode(&view, "/", 0)
                .expect("ny"),
            "year=2024/month=03/day=10/hour=01"
        );
        assert_eq!(
            hourly("UTC", TimestampExtractor::Wallclock)
                .encode(&view, "/", 0)
                .expect("wall"),
            "year=1970/month=01/day=01/hour=00"
        );
        // Six-hour partitions are aligned to local midnight.
        let six = PartitionerConfig::Time {
            format: PathFormat::parse("YYYY-MM-dd-HH").expect("format"),
            duration_ms: 6 * 3_600_000,
            zone: TimeZone::parse("+02:00").expect("zone"),
            extractor: TimestampExtractor::Record,
        };
        assert_eq!(six.encode(&view, "/", 0).expect("six"), "2024-03-10-06");
    }

    #[test]
    fn record_field_timestamps() {
        let value = SchemaAndValue {
            schema: Some(schema(&[
                (
                    "micros",
                    ConnectType::Int64,
                    Some("io.debezium.time.MicroTimestamp"),
                ),
                ("iso", ConnectType::String, None),
                (
                    "day",
                    ConnectType::Int32,
                    Some("org.apache.kafka.connect.data.Date"),
                ),
            ])),
            value: Data::Struct(vec![
                Data::Int64(1_000_000_123),
                Data::String("1970-01-02T00:00:00Z".into()),
                Data::Int32(2),
            ]),
        };
        let view = RecordView {
            kafka_partition: 0,
            timestamp_ms: 5,
            value: Some(&value),
        };
        let at = |f: &str| extract_time(&TimestampExtractor::RecordField(vec![f.into()]), &view, 0);
        assert_eq!(at("micros"), Ok(1_000_000));
        assert_eq!(at("iso"), Ok(86_400_000));
        assert_eq!(at("day"), Ok(2 * 86_400_000));
        assert!(at("absent").is_err());
    }
}
