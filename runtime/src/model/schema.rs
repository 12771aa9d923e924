//! Table schemas, versioned per table.
//!
//! Sources build a [`TableSchema`] from what the server says (binlog row metadata and
//! `information_schema`, pgoutput Relation messages); converters derive Avro/JSON schemas
//! from it; sinks derive DDL from it. A change of columns yields a new `version`.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Fully qualified table name: MySQL `db.table`, Postgres `schema.table`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableId {
    /// The MySQL database or the Postgres schema.
    pub namespace: String,
    pub name: String,
}

impl TableId {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        TableId {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.namespace, self.name)
    }
}

/// The logical type of a column: what converters and sinks need to map it faithfully.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DataType {
    Bool,
    Int8,
    Int16,
    Int32,
    Int64,
    UInt8,
    UInt16,
    UInt32,
    UInt64,
    Decimal {
        precision: u32,
        scale: u32,
    },
    Float32,
    Float64,
    Text,
    Bytes,
    Date,
    /// `precision` is the fractional-second digits (0..=6).
    Time {
        precision: u8,
    },
    TimeTz,
    Timestamp {
        precision: u8,
    },
    TimestampTz {
        precision: u8,
    },
    Interval,
    Json,
    Uuid,
    Enum,
    Set,
    Bits {
        length: u32,
    },
    Year,
    Geometry,
    Array {
        element: Box<DataType>,
    },
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub data_type: DataType,
    /// The type as the server spells it, e.g. `varchar(64)` or `numeric(12,2)`.
    pub sql_type: String,
    pub nullable: bool,
    /// Character or byte length where the type has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u32>,
    /// Allowed values of `ENUM` and `SET` columns, in declaration order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enum_values: Vec<String>,
}

impl Column {
    pub fn new(name: impl Into<String>, data_type: DataType, sql_type: impl Into<String>) -> Self {
        Column {
            name: name.into(),
            data_type,
            sql_type: sql_type.into(),
            nullable: true,
            length: None,
            enum_values: Vec::new(),
        }
    }

    pub fn not_null(mut self) -> Self {
        self.nullable = false;
        self
    }
}

/// The schema of one table at one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSchema {
    pub id: TableId,
    /// Increases by one every time the columns change.
    pub version: u32,
    pub columns: Vec<Column>,
    /// Indexes into `columns` of the primary key (or `message.key.columns`), in key order.
    /// Empty for tables without a key: their records have a null key.
    pub key: Vec<usize>,
}

impl TableSchema {
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// A new version of this table with other columns and key.
    pub fn evolve(&self, columns: Vec<Column>, key: Vec<usize>) -> TableSchema {
        TableSchema {
            id: self.id.clone(),
            version: self.version + 1,
            columns,
            key,
        }
    }
}

/// Shared handle to an immutable table schema version.
pub type SchemaRef = Arc<TableSchema>;
