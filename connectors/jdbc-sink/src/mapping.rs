//! Kafka Connect schemas to SQL column types, and Connect values to typed model values with
//! the unchanged-TOAST placeholder recognised.

use tributary_runtime::data::logical::to_value;
use tributary_runtime::data::{ConnectSchema, ConnectType, Data};
use tributary_runtime::model::Value;

/// A column type, independent of the dialect that spells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlType {
    Bool,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    /// Exact decimal; `None` precision/scale: unconstrained (Postgres `numeric`).
    Decimal {
        precision: Option<u32>,
        scale: Option<u32>,
    },
    Text,
    Bytes,
    Date,
    Time,
    TimeTz,
    Timestamp,
    TimestampTz,
    Json,
    Uuid,
    /// Postgres `interval`; MySQL keeps microseconds in a `bigint`.
    Interval,
    Array(Box<SqlType>),
    /// A target type this sink does not model (left alone by evolution).
    Other(String),
}

impl SqlType {
    /// Whether a column of type `self` must change to hold values of type `wanted` without
    /// loss, and what it becomes. `None`: it holds them already (or cannot be widened safely).
    pub fn widened_for(&self, wanted: &SqlType) -> Option<SqlType> {
        use SqlType as T;
        let rank = |t: &SqlType| match t {
            T::Int16 => Some(1),
            T::Int32 => Some(2),
            T::Int64 => Some(3),
            _ => None,
        };
        match (self, wanted) {
            (a, b) if a == b => None,
            (T::Int16 | T::Int32, T::Int16 | T::Int32 | T::Int64) => {
                (rank(wanted) > rank(self)).then(|| wanted.clone())
            }
            (T::Float32, T::Float64) => Some(T::Float64),
            (
                T::Decimal {
                    precision: Some(p1),
                    scale: s1,
                },
                T::Decimal {
                    precision: p2,
                    scale: s2,
                },
            ) => {
                let s1 = s1.unwrap_or(0);
                match (p2, s2) {
                    (Some(p2), Some(s2)) => {
                        let scale = s1.max(*s2);
                        let int_digits = (p1 - s1.min(*p1)).max(p2 - (*s2).min(*p2));
                        let precision = int_digits + scale;
                        (precision > *p1 || scale > s1).then_some(T::Decimal {
                            precision: Some(precision),
                            scale: Some(scale),
                        })
                    }
                    // Unconstrained wanted: become unconstrained.
                    _ => Some(T::Decimal {
                        precision: None,
                        scale: None,
                    }),
                }
            }
            (T::Int16 | T::Int32 | T::Int64, T::Decimal { .. }) => None,
            _ => None,
        }
    }
}

/// A column the records carry: name, type, whether it may be null.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldSpec {
    pub name: String,
    pub ty: SqlType,
    pub optional: bool,
}

/// The SQL type for a Connect schema (logical names first, then the physical type).
pub fn sql_type(schema: &ConnectSchema) -> SqlType {
    let param = |key: &str| {
        schema
            .parameters
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.parse::<u32>().ok())
    };
    if let Some(name) = schema.name.as_deref() {
        let logical = match name {
            "org.apache.kafka.connect.data.Decimal" => Some(SqlType::Decimal {
                precision: param("connect.decimal.precision"),
                scale: param("scale").or(Some(0)),
            }),
            "io.debezium.data.VariableScaleDecimal" => Some(SqlType::Decimal {
                precision: None,
                scale: None,
            }),
            "org.apache.kafka.connect.data.Date" | "io.debezium.time.Date" => Some(SqlType::Date),
            "org.apache.kafka.connect.data.Time"
            | "io.debezium.time.Time"
            | "io.debezium.time.MicroTime"
            | "io.debezium.time.NanoTime" => Some(SqlType::Time),
            "io.debezium.time.ZonedTime" => Some(SqlType::TimeTz),
            "org.apache.kafka.connect.data.Timestamp"
            | "io.debezium.time.Timestamp"
            | "io.debezium.time.MicroTimestamp"
            | "io.debezium.time.NanoTimestamp" => Some(SqlType::Timestamp),
            "io.debezium.time.ZonedTimestamp" => Some(SqlType::TimestampTz),
            "io.debezium.time.Year" => Some(SqlType::Int32),
            "io.debezium.data.Json" => Some(SqlType::Json),
            "io.debezium.data.Uuid" => Some(SqlType::Uuid),
            "io.debezium.data.Enum" | "io.debezium.data.EnumSet" | "io.debezium.data.Xml" => {
                Some(SqlType::Text)
            }
            "io.debezium.data.Bits" => Some(SqlType::Bytes),
            "io.debezium.time.MicroDuration" => Some(SqlType::Interval),
            _ => None,
        };
        if let Some(t) = logical {
            return t;
        }
    }
    match &schema.ty {
        ConnectType::Int8 | ConnectType::Int16 => SqlType::Int16,
        ConnectType::Int32 => SqlType::Int32,
        ConnectType::Int64 => SqlType::Int64,
        ConnectType::Float32 => SqlType::Float32,
        ConnectType::Float64 => SqlType::Float64,
        ConnectType::Boolean => SqlType::Bool,
        ConnectType::String => SqlType::Text,
        ConnectType::Bytes => SqlType::Bytes,
        ConnectType::Array(item) => SqlType::Array(Box::new(sql_type(item))),
        ConnectType::Struct(_) | ConnectType::Map(..) => SqlType::Json,
    }
}

/// The SQL type of a schema-less value (JSON without schemas).
pub fn inferred_type(value: &Value) -> SqlType {
    match value {
        Value::Bool(_) => SqlType::Bool,
        Value::Int(_) | Value::UInt(_) => SqlType::Int64,
        Value::Float32(_) | Value::Float64(_) => SqlType::Float64,
        Value::Decimal(_) => SqlType::Decimal {
            precision: None,
            scale: None,
        },
        Value::Bytes(_) | Value::Bits { .. } => SqlType::Bytes,
        Value::Date(_) => SqlType::Date,
        Value::Time(_) => SqlType::Time,
        Value::TimeTz { .. } => SqlType::TimeTz,
        Value::Timestamp(_) => SqlType::Timestamp,
        Value::TimestampTz(_) => SqlType::TimestampTz,
        Value::Json(_) | Value::Array(_) => SqlType::Json,
        Value::Uuid(_) => SqlType::Uuid,
        Value::Interval { .. } => SqlType::Interval,
        _ => SqlType::Text,
    }
}

/// Whether `data` is the unavailable-value placeholder in any of the forms Debezium writes
/// it: a string, its UTF-8 bytes, or an array holding only the placeholder.
pub fn is_placeholder(data: &Data, placeholder: &str) -> bool {
    match data {
        Data::String(s) => s == placeholder,
        Data::Bytes(b) => b.as_ref() == placeholder.as_bytes(),
        Data::Array(items) => items.len() == 1 && is_placeholder(&items[0], placeholder),
        _ => false,
    }
}

/// The typed value of one field; [`Value::Unavailable`] for the placeholder.
pub fn field_value(
    schema: Option<&ConnectSchema>,
    data: &Data,
    placeholder: &str,
) -> Result<Value, String> {
    if is_placeholder(data, placeholder) {
        return Ok(Value::Unavailable);
    }
    to_value(schema, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logical(ty: ConnectType, name: &str, params: &[(&str, &str)]) -> ConnectSchema {
        let mut s = ConnectSchema::new(ty);
        s.name = Some(name.into());
        s.parameters = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        s
    }

    #[test]
    fn logical_types_map_first() {
        let dec = logical(
            ConnectType::Bytes,
            "org.apache.kafka.connect.data.Decimal",
            &[("scale", "2"), ("connect.decimal.precision", "10")],
        );
        assert_eq!(
            sql_type(&dec),
            SqlType::Decimal {
                precision: Some(10),
                scale: Some(2)
            }
        );
        let ts = logical(ConnectType::Int64, "io.debezium.time.MicroTimestamp", &[]);
        assert_eq!(sql_type(&ts), SqlType::Timestamp);
        let tz = logical(ConnectType::String, "io.debezium.time.ZonedTimestamp", &[]);
        assert_eq!(sql_type(&tz), SqlType::TimestampTz);
        let json = logical(ConnectType::String, "io.debezium.data.Json", &[]);
        assert_eq!(sql_type(&json), SqlType::Json);
        let e = logical(ConnectType::String, "io.debezium.data.Enum", &[]);
        assert_eq!(sql_type(&e), SqlType::Text);
        let arr = ConnectSchema::new(ConnectType::Array(Box::new(ConnectSchema::new(
            ConnectType::Int32,
        ))));
        assert_eq!(sql_type(&arr), SqlType::Array(Box::new(SqlType::Int32)));
        assert_eq!(
            sql_type(&ConnectSchema::new(ConnectType::Int8)),
            SqlType::Int16
        );
    }

    #[test]
    fn widening() {
        assert_eq!(
            SqlType::Int32.widened_for(&SqlType::Int64),
            Some(SqlType::Int64)
        );
        assert_eq!(SqlType::Int64.widened_for(&SqlType::Int32), None);
        assert_eq!(
            SqlType::Float32.widened_for(&SqlType::Float64),
            Some(SqlType::Float64)
        );
        let d = |p, s| SqlType::Decimal {
            precision: Some(p),
            scale: Some(s),
        };
        assert_eq!(d(5, 2).widened_for(&d(10, 2)), Some(d(10, 2)));
        assert_eq!(d(10, 2).widened_for(&d(5, 2)), None);
        assert_eq!(d(5, 2).widened_for(&d(5, 4)), Some(d(7, 4)));
        assert_eq!(SqlType::Text.widened_for(&SqlType::Int64), None);
    }

    #[test]
    fn placeholder_forms() {
        let p = "__debezium_unavailable_value";
        assert!(is_placeholder(&Data::String(p.into()), p));
        assert!(is_placeholder(&Data::Bytes(bytes::Bytes::from(p)), p));
        assert!(is_placeholder(
            &Data::Array(vec![Data::String(p.into())]),
            p
        ));
        assert!(!is_placeholder(&Data::String("x".into()), p));
        assert_eq!(
            field_value(None, &Data::String(p.into()), p),
            Ok(Value::Unavailable)
        );
    }

    #[test]
    fn structs_become_json() {
        let schema = ConnectSchema::new(ConnectType::Struct(vec![
            tributary_runtime::data::ConnectField {
                name: "a".into(),
                schema: ConnectSchema::new(ConnectType::Int32),
            },
        ]));
        let v = field_value(Some(&schema), &Data::Struct(vec![Data::Int32(4)]), "p").expect("json");
        assert_eq!(v, Value::Json("{\"a\":4}".into()));
    }
}
