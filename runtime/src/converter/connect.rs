//! Kafka Connect schemas of Debezium's records, derived from a [`TableSchema`].
//!
//! One derivation feeds every schema-carrying converter: the Avro converter renders it as an
//! Avro schema the way Confluent's `AvroData` does, the JSON converter with
//! `schemas.enable=true` renders it as Kafka Connect's JSON schema. Each column also gets a
//! [`Kind`]: how its typed value is written, so encoders never look at the schema again.

use crate::model::{Column, DataType, SourceInfo, TableSchema, Value};

use super::json::{BinaryMode, DecimalMode, TimePrecisionMode, ValueModes};

/// A Kafka Connect schema type.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnectType {
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Boolean,
    String,
    Bytes,
    Array(Box<ConnectSchema>),
    /// Key and value schemas.
    Map(Box<ConnectSchema>, Box<ConnectSchema>),
    Struct(Vec<ConnectField>),
}

/// A Kafka Connect schema: a type plus optionality, logical name, version and parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectSchema {
    pub ty: ConnectType,
    pub optional: bool,
    /// Logical type or record name, e.g. `io.debezium.time.MicroTimestamp`.
    pub name: Option<String>,
    pub version: Option<u32>,
    pub parameters: Vec<(String, String)>,
    /// Default value (only `source.snapshot` has one).
    pub default: Option<serde_json::Value>,
}

/// A named field of a struct schema.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectField {
    pub name: String,
    pub schema: ConnectSchema,
}

impl ConnectSchema {
    pub fn new(ty: ConnectType) -> Self {
        ConnectSchema {
            ty,
            optional: false,
            name: None,
            version: None,
            parameters: Vec::new(),
            default: None,
        }
    }

    fn logical(ty: ConnectType, name: &str) -> Self {
        ConnectSchema {
            name: Some(name.to_owned()),
            version: Some(1),
            ..ConnectSchema::new(ty)
        }
    }

    fn param(mut self, key: &str, value: impl Into<String>) -> Self {
        self.parameters.push((key.to_owned(), value.into()));
        self
    }

    pub fn optional(mut self, optional: bool) -> Self {
        self.optional = optional;
        self
    }

    fn structure(name: String, fields: Vec<ConnectField>) -> Self {
        ConnectSchema {
            name: Some(name),
            ..ConnectSchema::new(ConnectType::Struct(fields))
        }
    }

    /// The Kafka Connect JSON schema (`JsonConverter` with `schemas.enable=true`).
    pub fn to_connect_json(&self) -> serde_json::Value {
        self.connect_json(None)
    }

    fn connect_json(&self, field: Option<&str>) -> serde_json::Value {
        use serde_json::{Map, Value as J};
        let mut m = Map::new();
        let type_name = match &self.ty {
            ConnectType::Int8 => "int8",
            ConnectType::Int16 => "int16",
            ConnectType::Int32 => "int32",
            ConnectType::Int64 => "int64",
            ConnectType::Float32 => "float",
            ConnectType::Float64 => "double",
            ConnectType::Boolean => "boolean",
            ConnectType::String => "string",
            ConnectType::Bytes => "bytes",
            ConnectType::Array(_) => "array",
            ConnectType::Map(..) => "map",
            ConnectType::Struct(_) => "struct",
        };
        m.insert("type".into(), J::from(type_name));
        match &self.ty {
            ConnectType::Array(items) => {
                m.insert("items".into(), items.connect_json(None));
            }
            ConnectType::Map(keys, values) => {
                m.insert("keys".into(), keys.connect_json(None));
                m.insert("values".into(), values.connect_json(None));
            }
            ConnectType::Struct(fields) => {
                let fields = fields
                    .iter()
                    .map(|f| f.schema.connect_json(Some(&f.name)))
                    .collect();
                m.insert("fields".into(), J::Array(fields));
            }
            _ => {}
        }
        m.insert("optional".into(), J::from(self.optional));
        if let Some(default) = &self.default {
            m.insert("default".into(), default.clone());
        }
        if let Some(name) = &self.name {
            m.insert("name".into(), J::from(name.as_str()));
        }
        if let Some(version) = self.version {
            m.insert("version".into(), J::from(version));
        }
        if !self.parameters.is_empty() {
            let params = self
                .parameters
                .iter()
                .map(|(k, v)| (k.clone(), J::from(v.as_str())))
                .collect();
            m.insert("parameters".into(), J::Object(params));
        }
        if let Some(field) = field {
            m.insert("field".into(), J::from(field));
        }
        J::Object(m)
    }
}

/// How a typed value is written by the Avro encoder (what Debezium's converters do with it).
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Boolean,
    /// Avro `int`/`long` (zig-zag varint either way).
    Long,
    Float,
    Double,
    /// Text, JSON, enum names, UUIDs (formatted), set members (joined).
    Str,
    Bytes,
    /// Binary written as base64 or hex text (`binary.handling.mode`).
    BytesText(BinaryMode),
    /// Unscaled two's-complement bytes at this scale.
    Decimal {
        scale: u32,
    },
    /// `io.debezium.data.VariableScaleDecimal`: the value's own scale, then its bytes.
    VariableDecimal,
    DecimalDouble,
    DecimalString,
    Date,
    TimeMillis,
    TimeMicros,
    ZonedTime,
    TimestampMillis,
    TimestampMicros,
    ZonedTimestamp,
    MicroDuration,
    /// `io.debezium.data.geometry.Geometry`: WKB bytes and a null SRID.
    Geometry,
    /// `BIT(1)`: a boolean.
    Bit,
    Bits,
    Array(Box<Kind>),
}

/// The Connect schema and the value kind of one column.
pub fn column_schema(column: &Column, modes: &ValueModes) -> (ConnectSchema, Kind) {
    let (schema, kind) = type_schema(&column.data_type, column, modes);
    (schema.optional(column.nullable), kind)
}

fn type_schema(ty: &DataType, column: &Column, modes: &ValueModes) -> (ConnectSchema, Kind) {
    use ConnectType as C;
    let plain = |t| ConnectSchema::new(t);
    let adaptive = modes.time_precision != TimePrecisionMode::Connect;
    match ty {
        DataType::Bool => (plain(C::Boolean), Kind::Boolean),
        DataType::Int8 => (plain(C::Int8), Kind::Long),
        DataType::Int16 | DataType::UInt8 => (plain(C::Int16), Kind::Long),
        DataType::Int32 | DataType::UInt16 => (plain(C::Int32), Kind::Long),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => (plain(C::Int64), Kind::Long),
        DataType::Year => (
            ConnectSchema::logical(C::Int32, "io.debezium.time.Year"),
            Kind::Long,
        ),
        // Postgres `numeric` without a precision: each value has its own scale.
        DataType::Decimal { precision: 0, .. } if modes.decimal == DecimalMode::Precise => (
            ConnectSchema {
                version: Some(1),
                ..ConnectSchema::structure(
                    "io.debezium.data.VariableScaleDecimal".to_owned(),
                    vec![
                        ConnectField {
                            name: "scale".to_owned(),
                            schema: plain(C::Int32),
                        },
                        ConnectField {
                            name: "value".to_owned(),
                            schema: plain(C::Bytes),
                        },
                    ],
                )
            },
            Kind::VariableDecimal,
        ),
        DataType::Decimal { precision, scale } => match modes.decimal {
            DecimalMode::Precise => (
                ConnectSchema::logical(C::Bytes, "org.apache.kafka.connect.data.Decimal")
                    .param("scale", scale.to_string())
                    .param("connect.decimal.precision", precision.to_string()),
                Kind::Decimal { scale: *scale },
            ),
            DecimalMode::Double => (plain(C::Float64), Kind::DecimalDouble),
            DecimalMode::String => (plain(C::String), Kind::DecimalString),
        },
        DataType::Float32 => (plain(C::Float32), Kind::Float),
        DataType::Float64 => (plain(C::Float64), Kind::Double),
        DataType::Text => (plain(C::String), Kind::Str),
        // Debezium's geometry struct; the SRID is not known to the sources (null).
        DataType::Geometry => (
            ConnectSchema {
                version: Some(1),
                ..ConnectSchema::structure(
                    "io.debezium.data.geometry.Geometry".to_owned(),
                    vec![
                        ConnectField {
                            name: "wkb".to_owned(),
                            schema: plain(C::Bytes),
                        },
                        ConnectField {
                            name: "srid".to_owned(),
                            schema: plain(C::Int32).optional(true),
                        },
                    ],
                )
            },
            Kind::Geometry,
        ),
        DataType::Bytes => match modes.binary {
            BinaryMode::Bytes => (plain(C::Bytes), Kind::Bytes),
            mode => (plain(C::String), Kind::BytesText(mode)),
        },
        DataType::Date => match adaptive {
            true => (
                ConnectSchema::logical(C::Int32, "io.debezium.time.Date"),
                Kind::Date,
            ),
            false => (
                ConnectSchema::logical(C::Int32, "org.apache.kafka.connect.data.Date"),
                Kind::Date,
            ),
        },
        DataType::Time { precision } => {
            let micros = match modes.time_precision {
                TimePrecisionMode::Adaptive => *precision > 3,
                TimePrecisionMode::AdaptiveTimeMicroseconds => true,
                TimePrecisionMode::Connect => false,
            };
            match (micros, adaptive) {
                (true, _) => (
                    ConnectSchema::logical(C::Int64, "io.debezium.time.MicroTime"),
                    Kind::TimeMicros,
                ),
                (false, true) => (
                    ConnectSchema::logical(C::Int32, "io.debezium.time.Time"),
                    Kind::TimeMillis,
                ),
                (false, false) => (
                    ConnectSchema::logical(C::Int32, "org.apache.kafka.connect.data.Time"),
                    Kind::TimeMillis,
                ),
            }
        }
        DataType::TimeTz => (
            ConnectSchema::logical(C::String, "io.debezium.time.ZonedTime"),
            Kind::ZonedTime,
        ),
        DataType::Timestamp { precision } => match (adaptive, *precision > 3) {
            (true, true) => (
                ConnectSchema::logical(C::Int64, "io.debezium.time.MicroTimestamp"),
                Kind::TimestampMicros,
            ),
            (true, false) => (
                ConnectSchema::logical(C::Int64, "io.debezium.time.Timestamp"),
                Kind::TimestampMillis,
            ),
            (false, _) => (
                ConnectSchema::logical(C::Int64, "org.apache.kafka.connect.data.Timestamp"),
                Kind::TimestampMillis,
            ),
        },
        DataType::TimestampTz { .. } => (
            ConnectSchema::logical(C::String, "io.debezium.time.ZonedTimestamp"),
            Kind::ZonedTimestamp,
        ),
        DataType::Interval => (
            ConnectSchema::logical(C::Int64, "io.debezium.time.MicroDuration"),
            Kind::MicroDuration,
        ),
        DataType::Json => (
            ConnectSchema::logical(C::String, "io.debezium.data.Json"),
            Kind::Str,
        ),
        DataType::Uuid => (
            ConnectSchema::logical(C::String, "io.debezium.data.Uuid"),
            Kind::Str,
        ),
        DataType::Enum => (
            ConnectSchema::logical(C::String, "io.debezium.data.Enum")
                .param("allowed", column.enum_values.join(",")),
            Kind::Str,
        ),
        DataType::Set => (
            ConnectSchema::logical(C::String, "io.debezium.data.EnumSet")
                .param("allowed", column.enum_values.join(",")),
            Kind::Str,
        ),
        DataType::Bits { length: 1 } => (plain(C::Boolean), Kind::Bit),
        DataType::Bits { length } => (
            ConnectSchema::logical(C::Bytes, "io.debezium.data.Bits")
                .param("length", length.to_string()),
            Kind::Bits,
        ),
        DataType::Array { element } => {
            let (items, kind) = type_schema(element, column, modes);
            (
                plain(C::Array(Box::new(items.optional(true)))),
                Kind::Array(Box::new(kind)),
            )
        }
    }
}

/// Record names as Debezium derives them: `<topic>.Key`, `<topic>.Value`, `<topic>.Envelope`
/// (the topic is `<prefix>.<db>.<table>` by default).
pub fn record_name(topic: &str, suffix: &str) -> String {
    format!("{topic}.{suffix}")
}

/// The key struct of a table: its key columns. `None` for tables without a key.
pub fn key_schema(topic: &str, table: &TableSchema, modes: &ValueModes) -> Option<ConnectSchema> {
    if table.key.is_empty() {
        return None;
    }
    let fields = table
        .key
        .iter()
        .filter_map(|&i| table.columns.get(i))
        .map(|c| ConnectField {
            name: c.name.clone(),
            schema: column_schema(c, modes).0,
        })
        .collect();
    Some(ConnectSchema::structure(record_name(topic, "Key"), fields))
}

/// The row struct (`before`/`after`) of a table.
pub fn row_schema(topic: &str, table: &TableSchema, modes: &ValueModes) -> ConnectSchema {
    let fields = table
        .columns
        .iter()
        .map(|c| ConnectField {
            name: c.name.clone(),
            schema: column_schema(c, modes).0,
        })
        .collect();
    ConnectSchema::structure(record_name(topic, "Value"), fields)
}

/// The value struct of a flat row record ([`Payload::Row`](crate::record::Payload::Row)):
/// every column, named after the table as Kafka Connect's JDBC source names it.
pub fn flat_row_schema(table: &TableSchema, modes: &ValueModes) -> ConnectSchema {
    ConnectSchema {
        name: Some(table.id.name.clone()),
        ..row_schema("", table, modes)
    }
}

/// Kind of a connector-specific `source` field. Known Debezium fields have fixed types so a
/// null in one event does not change the schema; others follow their value.
pub fn source_extra_kind(name: &str, value: &Value) -> ConnectType {
    source_extra_kind_by_name(name).unwrap_or_else(|| match value {
        Value::Int(_) | Value::UInt(_) => ConnectType::Int64,
        Value::Bool(_) => ConnectType::Boolean,
        Value::Float32(_) | Value::Float64(_) => ConnectType::Float64,
        _ => ConnectType::String,
    })
}

/// The type of a `source` field that Debezium fixes by its name, whatever the value.
pub fn source_extra_kind_by_name(name: &str) -> Option<ConnectType> {
    Some(match name {
        "server_id" | "pos" | "thread" | "txId" | "lsn" | "xmin" | "ts_us" | "ts_ns" | "seq" => {
            ConnectType::Int64
        }
        "row" => ConnectType::Int32,
        "file" | "gtid" | "query" | "sequence" | "xid" => ConnectType::String,
        _ => return None,
    })
}

/// Debezium's `source` struct for this connector and this event's fields.
pub fn source_schema(source: &SourceInfo) -> ConnectSchema {
    use ConnectType as C;
    let field = |name: &str, schema: ConnectSchema| ConnectField {
        name: name.to_owned(),
        schema,
    };
    let mut fields = vec![
        field("version", ConnectSchema::new(C::String)),
        field("connector", ConnectSchema::new(C::String)),
        field("name", ConnectSchema::new(C::String)),
        field("ts_ms", ConnectSchema::new(C::Int64)),
        field("snapshot", {
            let mut s = ConnectSchema::logical(C::String, "io.debezium.data.Enum")
                .param(
                    "allowed",
                    "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental",
                )
                .optional(true);
            s.default = Some(serde_json::Value::from("false"));
            s
        }),
        field("db", ConnectSchema::new(C::String)),
    ];
    if source.schema.is_some() {
        fields.push(field("schema", ConnectSchema::new(C::String)));
    }
    fields.push(field("table", ConnectSchema::new(C::String).optional(true)));
    for (name, value) in &source.extra {
        fields.push(field(
            name,
            ConnectSchema::new(source_extra_kind(name, value)).optional(true),
        ));
    }
    ConnectSchema::structure(
        format!("io.debezium.connector.{}.Source", source.connector),
        fields,
    )
}

/// Debezium's envelope struct: `before`, `after`, `source`, `transaction`, `op`, `ts_ms`,
/// `ts_us`, in the order the JSON converter writes them.
pub fn envelope_schema(
    topic: &str,
    table: &TableSchema,
    source: &SourceInfo,
    modes: &ValueModes,
) -> ConnectSchema {
    use ConnectType as C;
    let row = row_schema(topic, table, modes).optional(true);
    let field = |name: &str, schema: ConnectSchema| ConnectField {
        name: name.to_owned(),
        schema,
    };
    let block = ConnectSchema {
        version: Some(1),
        optional: true,
        ..ConnectSchema::structure(
            "event.block".to_owned(),
            vec![
                field("id", ConnectSchema::new(C::String)),
                field("total_order", ConnectSchema::new(C::Int64)),
                field("data_collection_order", ConnectSchema::new(C::Int64)),
            ],
        )
    };
    let envelope = ConnectSchema::structure(
        record_name(topic, "Envelope"),
        vec![
            field("before", row.clone()),
            field("after", row),
            field("source", source_schema(source)),
            field("transaction", block),
            field("op", ConnectSchema::new(C::String)),
            field("ts_ms", ConnectSchema::new(C::Int64).optional(true)),
            field("ts_us", ConnectSchema::new(C::Int64).optional(true)),
        ],
    );
    ConnectSchema {
        version: Some(2),
        ..envelope
    }
}
