//! Typed, lossless column values.
//!
//! Every value a source can read is represented without loss: unsigned 64-bit integers are not
//! squeezed into `i64`, decimals keep their exact digits, times keep microseconds. Converters
//! (JSON, Avro) decide how each value is written, following Debezium's mapping modes.

use bytes::Bytes;

use super::decimal::Decimal;

/// One column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// Any signed integer up to 64 bits.
    Int(i64),
    /// Any unsigned integer up to 64 bits (MySQL `BIGINT UNSIGNED` max included).
    UInt(u64),
    /// Exact decimal: unscaled digits and scale.
    Decimal(Decimal),
    Float32(f32),
    Float64(f64),
    Text(String),
    Bytes(Bytes),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds; MySQL `TIME` may be negative or exceed 24 hours.
    Time(i64),
    /// Time of day with a UTC offset (Postgres `timetz`).
    TimeTz {
        micros: i64,
        offset_seconds: i32,
    },
    /// Microseconds since the epoch, no time zone (MySQL `DATETIME`, Postgres `timestamp`).
    Timestamp(i64),
    /// Microseconds since the epoch, UTC (MySQL `TIMESTAMP`, Postgres `timestamptz`).
    TimestampTz(i64),
    /// Postgres `interval`, kept in its three independent parts.
    Interval {
        months: i32,
        days: i32,
        micros: i64,
    },
    /// JSON document as text.
    Json(String),
    Uuid([u8; 16]),
    /// An `ENUM` value by name.
    Enum(String),
    /// A `SET` value: the names of the members that are set.
    Set(Vec<String>),
    /// A bit string of `len` bits, little-endian bytes as Kafka Connect's `Bits` expects.
    Bits {
        len: u32,
        bytes: Bytes,
    },
    Array(Vec<Value>),
    /// The source could not supply the value (Postgres unchanged TOAST); converters write
    /// `unavailable.value.placeholder` and sinks leave the column untouched.
    Unavailable,
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value as a signed integer, when it is one and fits.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(*v),
            Value::UInt(v) => i64::try_from(*v).ok(),
            _ => None,
        }
    }
}

/// A row: one value per column of the table schema it belongs to, in column order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row(pub Vec<Value>);

impl Row {
    pub fn get(&self, index: usize) -> Option<&Value> {
        self.0.get(index)
    }
}
