//! Kafka Connect's data model for records read back from topics: what sink connectors and
//! transforms work on.
//!
//! A topic record's key and value bytes are decoded by the connector's converters
//! ([`decode::RecordDecoder`]: Avro in the Confluent wire format, JSON with or without
//! schemas, strings, raw bytes) into a [`ConnectRecord`]: each side a [`SchemaAndValue`],
//! where the schema is a Kafka Connect schema ([`ConnectSchema`], the same type the encoders
//! derive from table schemas) and the value a [`Data`] tree. Values stay in Connect's physical
//! form (a `Decimal` is bytes with a `scale` parameter, a `MicroTimestamp` an `int64`);
//! [`logical::to_value`] turns one into the typed model [`Value`](crate::model::Value) a
//! sink binds or writes.

pub mod decode;
pub mod encode;
pub mod envelope;
pub mod from_event;
pub mod logical;

use std::sync::Arc;

use bytes::Bytes;

pub use crate::converter::connect::{ConnectField, ConnectSchema, ConnectType};

/// A Kafka Connect value, physical representation.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    Null,
    Boolean(bool),
    Int8(i8),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    String(String),
    Bytes(Bytes),
    Array(Vec<Data>),
    /// Entries in the order they were read.
    Map(Vec<(Data, Data)>),
    /// Field values in the order of the struct schema's fields.
    Struct(Vec<Data>),
}

impl Data {
    pub fn is_null(&self) -> bool {
        matches!(self, Data::Null)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Data::String(s) => Some(s),
            _ => None,
        }
    }

    /// Any integer type, widened.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Data::Int8(v) => Some(v.into()),
            Data::Int16(v) => Some(v.into()),
            Data::Int32(v) => Some(v.into()),
            Data::Int64(v) => Some(v),
            _ => None,
        }
    }
}

/// One side (key or value) of a record: its schema (`None` for schema-less JSON and raw
/// strings/bytes) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaAndValue {
    pub schema: Option<Arc<ConnectSchema>>,
    pub value: Data,
}

impl SchemaAndValue {
    /// The schema and value of a struct field, by name. Schema-less maps with string keys
    /// answer too (with no schema).
    pub fn field(&self, name: &str) -> Option<(Option<&ConnectSchema>, &Data)> {
        field_of(self.schema.as_deref(), &self.value, name)
    }
}

/// The schema and value of field `name` of a struct (or string-keyed map) value.
pub fn field_of<'a>(
    schema: Option<&'a ConnectSchema>,
    value: &'a Data,
    name: &str,
) -> Option<(Option<&'a ConnectSchema>, &'a Data)> {
    match (schema.map(|s| &s.ty), value) {
        (Some(ConnectType::Struct(fields)), Data::Struct(values)) => {
            let i = fields.iter().position(|f| f.name == name)?;
            Some((Some(&fields[i].schema), values.get(i)?))
        }
        (_, Data::Map(entries)) => entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(name))
            .map(|(_, v)| (None, v)),
        _ => None,
    }
}

/// A decoded topic record.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectRecord {
    pub topic: Arc<str>,
    pub partition: u32,
    pub offset: u64,
    pub timestamp_ms: i64,
    /// `None`: the record has no key.
    pub key: Option<SchemaAndValue>,
    /// `None`: a tombstone.
    pub value: Option<SchemaAndValue>,
    pub headers: Vec<(String, Bytes)>,
}
