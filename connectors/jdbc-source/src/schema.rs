//! Record schemas as Kafka Connect's JDBC source derives them from column types.
//!
//! The dialects resolve server types to the model's [`DataType`]s the way the CDC connectors
//! do (Debezium's mapping); this module then applies the JDBC source's own choices: timestamps
//! of either kind are Connect `Timestamp`s (epoch ms, naive ones read in `db.timezone`), JSON,
//! UUID, ENUM and SET are plain strings, `numeric.mapping` narrows `NUMERIC`/`DECIMAL`, and
//! there is no key.

use tributary_runtime::converter::json::format_uuid;
use tributary_runtime::model::{Column, DataType, Value};

use crate::config::NumericMapping;
use crate::zone::DbTimeZone;

/// How a value read from the database becomes the record's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adjust {
    Keep,
    /// Naive timestamp: wall-clock micros in `db.timezone` to epoch micros.
    LocalTimestamp,
    /// Zoned timestamp: already epoch micros, becomes a plain `Timestamp`.
    ZonedTimestamp,
    /// JSON, UUID, ENUM and SET become text.
    ToText,
    DecimalToInt,
    DecimalToDouble,
    /// Bit strings longer than one bit become bytes.
    BitsToBytes,
    /// YEAR becomes a plain integer.
    YearToInt,
}

/// A column of a polled table or query as records carry it.
#[derive(Debug, Clone, PartialEq)]
pub struct JdbcColumn {
    pub column: Column,
    pub adjust: Adjust,
    /// The column has no time zone (its SQL literals are wall-clock times).
    pub naive_time: bool,
}

fn integer_type(precision: u32) -> DataType {
    match precision {
        0..=2 => DataType::Int8,
        3..=4 => DataType::Int16,
        5..=9 => DataType::Int32,
        _ => DataType::Int64,
    }
}

/// `numeric.mapping` for a decimal of this precision and scale (precision 0: unbounded).
fn numeric(precision: u32, scale: u32, mapping: NumericMapping) -> Option<(DataType, Adjust)> {
    let fits = (1..=18).contains(&precision);
    let int = || (integer_type(precision), Adjust::DecimalToInt);
    let double = || (DataType::Float64, Adjust::DecimalToDouble);
    match mapping {
        NumericMapping::None => None,
        NumericMapping::PrecisionOnly => (fits && scale == 0).then(int),
        NumericMapping::BestFit if fits => Some(if scale == 0 { int() } else { double() }),
        NumericMapping::BestFit => None,
        NumericMapping::BestFitEagerDouble if scale > 0 => Some(double()),
        NumericMapping::BestFitEagerDouble => fits.then(int),
    }
}

/// Maps a dialect-resolved column to the JDBC source's record column.
pub fn jdbc_column(mut column: Column, mapping: NumericMapping) -> JdbcColumn {
    let (data_type, adjust, naive_time) = match column.data_type.clone() {
        DataType::Timestamp { precision } => (
            DataType::Timestamp { precision },
            Adjust::LocalTimestamp,
            true,
        ),
        DataType::TimestampTz { precision } => (
            DataType::Timestamp { precision },
            Adjust::ZonedTimestamp,
            false,
        ),
        DataType::Json | DataType::Uuid | DataType::Enum | DataType::Set => {
            (DataType::Text, Adjust::ToText, false)
        }
        DataType::Bits { length } if length > 1 => (DataType::Bytes, Adjust::BitsToBytes, false),
        DataType::Year => (DataType::Int32, Adjust::YearToInt, false),
        DataType::Decimal { precision, scale } => match numeric(precision, scale, mapping) {
            Some((t, a)) => (t, a, false),
            None => (DataType::Decimal { precision, scale }, Adjust::Keep, false),
        },
        other => (
            other,
            Adjust::Keep,
            matches!(column.data_type, DataType::Date),
        ),
    };
    column.data_type = data_type;
    column.enum_values.clear();
    JdbcColumn {
        column,
        adjust,
        naive_time,
    }
}

/// Applies a column's [`Adjust`] to one value read from the database.
pub fn adjust_value(value: Value, adjust: Adjust, zone: &DbTimeZone) -> Result<Value, String> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    Ok(match (adjust, value) {
        (Adjust::Keep, v) => v,
        (Adjust::LocalTimestamp, Value::Timestamp(us)) => Value::Timestamp(zone.to_utc(us)),
        (Adjust::ZonedTimestamp, Value::TimestampTz(us) | Value::Timestamp(us)) => {
            Value::Timestamp(us)
        }
        (Adjust::ToText, Value::Json(s) | Value::Enum(s) | Value::Text(s)) => Value::Text(s),
        (Adjust::ToText, Value::Uuid(b)) => Value::Text(format_uuid(&b)),
        (Adjust::ToText, Value::Set(members)) => Value::Text(members.join(",")),
        (Adjust::DecimalToInt, Value::Decimal(d)) => {
            let text = d.to_string();
            let whole = text.split('.').next().unwrap_or_default();
            Value::Int(whole.parse().map_err(|_| {
                format!(
                    "decimal with {} digits does not fit a 64-bit integer",
                    d.precision()
                )
            })?)
        }
        (Adjust::DecimalToInt, v @ (Value::Int(_) | Value::UInt(_))) => v,
        (Adjust::DecimalToDouble, Value::Decimal(d)) => Value::Float64(d.to_f64()),
        (Adjust::DecimalToDouble, v @ Value::Float64(_)) => v,
        (Adjust::BitsToBytes, Value::Bits { bytes, .. }) => Value::Bytes(bytes),
        (Adjust::YearToInt, v @ Value::Int(_)) => v,
        (a, v) => return Err(format!("unexpected {} value for {a:?}", value_name(&v))),
    })
}

fn value_name(v: &Value) -> &'static str {
    match v {
        Value::Int(_) | Value::UInt(_) => "integer",
        Value::Decimal(_) => "decimal",
        Value::Float32(_) | Value::Float64(_) => "float",
        Value::Text(_) => "text",
        Value::Bytes(_) => "bytes",
        Value::Timestamp(_) | Value::TimestampTz(_) => "timestamp",
        _ => "other",
    }
}

/// Whether values of this (mapped) type can be an incrementing offset.
pub fn is_integral(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Decimal { scale: 0, .. }
    )
}

/// Whether values of this (mapped) type can be a timestamp offset.
pub fn is_temporal(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Timestamp { .. } | DataType::Date)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_runtime::model::Decimal;

    fn col(t: DataType) -> Column {
        Column::new("c", t, "x")
    }

    #[test]
    fn numeric_mapping_follows_kafka_connect() {
        let map = |p, s, m| {
            jdbc_column(
                col(DataType::Decimal {
                    precision: p,
                    scale: s,
                }),
                m,
            )
            .column
            .data_type
        };
        use NumericMapping as N;
        assert_eq!(
            map(10, 2, N::None),
            DataType::Decimal {
                precision: 10,
                scale: 2
            }
        );
        assert_eq!(map(4, 0, N::PrecisionOnly), DataType::Int16);
        assert_eq!(map(10, 0, N::PrecisionOnly), DataType::Int64);
        assert_eq!(
            map(10, 2, N::PrecisionOnly),
            DataType::Decimal {
                precision: 10,
                scale: 2
            }
        );
        assert_eq!(map(10, 2, N::BestFit), DataType::Float64);
        assert_eq!(
            map(30, 2, N::BestFit),
            DataType::Decimal {
                precision: 30,
                scale: 2
            }
        );
        assert_eq!(map(30, 2, N::BestFitEagerDouble), DataType::Float64);
        assert_eq!(map(9, 0, N::BestFitEagerDouble), DataType::Int32);
    }

    #[test]
    fn values_are_adjusted() {
        let plus2 = DbTimeZone::Fixed(7200);
        let utc = DbTimeZone::Fixed(0);
        assert_eq!(
            adjust_value(
                Value::Timestamp(7_200_000_000),
                Adjust::LocalTimestamp,
                &plus2
            ),
            Ok(Value::Timestamp(0))
        );
        assert_eq!(
            adjust_value(Value::TimestampTz(5), Adjust::ZonedTimestamp, &plus2),
            Ok(Value::Timestamp(5))
        );
        let d = Decimal::parse("-42").expect("decimal");
        assert_eq!(
            adjust_value(Value::Decimal(d), Adjust::DecimalToInt, &utc),
            Ok(Value::Int(-42))
        );
        assert_eq!(
            adjust_value(Value::Null, Adjust::DecimalToInt, &utc),
            Ok(Value::Null)
        );
        assert!(adjust_value(Value::Text("x".into()), Adjust::DecimalToInt, &utc).is_err());
    }
}
