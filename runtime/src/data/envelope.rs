//! Reading a Debezium change-event envelope (`before`, `after`, `source`, `op`, `ts_ms`)
//! out of a decoded record value.

use super::{ConnectSchema, Data, SchemaAndValue, field_of};

/// Debezium's `op`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `c`
    Create,
    /// `r` (snapshot read)
    Read,
    /// `u`
    Update,
    /// `d`
    Delete,
    /// `t`
    Truncate,
}

impl Op {
    pub fn parse(code: &str) -> Option<Op> {
        Some(match code {
            "c" => Op::Create,
            "r" => Op::Read,
            "u" => Op::Update,
            "d" => Op::Delete,
            "t" => Op::Truncate,
            _ => return None,
        })
    }
}

/// A struct value with its schema (when it has one): a row image or the `source` block.
#[derive(Debug, Clone, Copy)]
pub struct StructRef<'a> {
    pub schema: Option<&'a ConnectSchema>,
    pub value: &'a Data,
}

impl<'a> StructRef<'a> {
    pub fn field(&self, name: &str) -> Option<(Option<&'a ConnectSchema>, &'a Data)> {
        field_of(self.schema, self.value, name)
    }

    /// Every field: name, schema (if any), value.
    pub fn fields(&self) -> Vec<(&'a str, Option<&'a ConnectSchema>, &'a Data)> {
        match (self.schema.map(|s| &s.ty), self.value) {
            (Some(super::ConnectType::Struct(fields)), Data::Struct(values)) => fields
                .iter()
                .zip(values)
                .map(|(f, v)| (f.name.as_str(), Some(&f.schema), v))
                .collect(),
            (_, Data::Map(entries)) => entries
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?, None, v)))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// A string field (e.g. `source.db`, `source.table`).
    pub fn str(&self, name: &str) -> Option<&'a str> {
        self.field(name).and_then(|(_, v)| v.as_str())
    }
}

/// A Debezium envelope.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    pub op: Op,
    pub before: Option<StructRef<'a>>,
    pub after: Option<StructRef<'a>>,
    pub source: Option<StructRef<'a>>,
    pub ts_ms: Option<i64>,
}

/// The envelope in a record value, or `None` when the value is not one (a flat row, a schema
/// change event, ...). A value is an envelope when it has a known `op` and an `after` or
/// `before` field.
pub fn envelope(value: &SchemaAndValue) -> Option<Envelope<'_>> {
    let root = StructRef {
        schema: value.schema.as_deref(),
        value: &value.value,
    };
    let op = Op::parse(root.str("op")?)?;
    let image = |name: &str| {
        root.field(name)
            .filter(|(_, v)| !v.is_null())
            .map(|(schema, value)| StructRef { schema, value })
    };
    let (before, after) = (image("before"), image("after"));
    if before.is_none() && after.is_none() && op != Op::Truncate {
        return None;
    }
    Some(Envelope {
        op,
        before,
        after,
        source: image("source"),
        ts_ms: root.field("ts_ms").and_then(|(_, v)| v.as_i64()),
    })
}
