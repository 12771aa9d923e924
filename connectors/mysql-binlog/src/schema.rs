//! Table schemas: from binlog row metadata (streaming) and `information_schema` (snapshot).
//!
//! With `binlog_row_metadata=FULL` every `TABLE_MAP` event carries column names, signedness,
//! charsets, ENUM/SET values and the primary key, so the schema of each row image is exactly
//! the one the server wrote it with, even across `ALTER TABLE` and after a restart in the
//! middle of old binlog: no schema-history topic is needed. Both paths map server types to
//! the same [`DataType`]s so snapshot and streamed events of a table look alike.

use std::sync::Arc;

use mysql_async::binlog::events::{OptionalMetaExtractor, TableMapEvent};
use mysql_async::consts::ColumnType;
use tributary_runtime::model::{Column, DataType, TableId, TableSchema};

use crate::config::MySqlConfig;

/// How a column's wire value turns into a model value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Any signed integer.
    Int,
    /// Signed MEDIUMINT from the binlog: sign-extended by hand.
    Int24,
    UInt,
    /// BIGINT UNSIGNED with `bigint.unsigned.handling.mode=precise`.
    UIntDecimal,
    Float,
    Double,
    Decimal,
    Date,
    Time,
    DateTime,
    Timestamp,
    Year,
    Bit(u32),
    Enum,
    Set,
    Text {
        latin1: bool,
    },
    Bytes,
    Json,
    Geometry,
}

/// Decoding plan of one captured column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnPlan {
    /// Index of the column in the server's row image.
    pub source_index: usize,
    pub kind: Kind,
    pub nullable: bool,
    pub enum_values: Vec<String>,
}

/// A captured table at one schema version: the model schema plus how to decode its rows.
#[derive(Debug, Clone)]
pub struct TableInfo {
    pub schema: Arc<TableSchema>,
    pub plans: Vec<ColumnPlan>,
    pub topic: Arc<str>,
    /// Layout of every column of the server's row image, captured or not (from the
    /// `TABLE_MAP`; empty for schemas read from `information_schema`).
    pub wire: Vec<WireColumn>,
}

/// How one column is laid out in a binlog row image: its type as the `TABLE_MAP` states it,
/// the type's metadata bytes and signedness (what the value decoder needs).
#[derive(Debug, Clone)]
pub struct WireColumn {
    pub ty: ColumnType,
    pub meta: Vec<u8>,
    pub unsigned: bool,
}

/// MySQL charset ids whose bytes are not UTF-8 but Latin-1 (or ASCII).
fn is_latin1(charset: u16) -> bool {
    matches!(charset, 5 | 8 | 11 | 15 | 31 | 47 | 48 | 49 | 65 | 94)
}

const BINARY_CHARSET: u16 = 63;

fn data_type_of(kind: &Kind, precision: u32, scale: u32, fsp: u8) -> DataType {
    match kind {
        Kind::Int | Kind::Int24 => DataType::Int64,
        Kind::UInt => DataType::UInt64,
        Kind::UIntDecimal => DataType::Decimal {
            precision: 20,
            scale: 0,
        },
        Kind::Float => DataType::Float32,
        Kind::Double => DataType::Float64,
        Kind::Decimal => DataType::Decimal { precision, scale },
        Kind::Date => DataType::Date,
        Kind::Time => DataType::Time { precision: fsp },
        Kind::DateTime => DataType::Timestamp { precision: fsp },
        Kind::Timestamp => DataType::TimestampTz { precision: fsp },
        Kind::Year => DataType::Year,
        Kind::Bit(n) => DataType::Bits { length: *n },
        Kind::Enum => DataType::Enum,
        Kind::Set => DataType::Set,
        Kind::Text { .. } => DataType::Text,
        Kind::Bytes => DataType::Bytes,
        Kind::Json => DataType::Json,
        Kind::Geometry => DataType::Geometry,
    }
}

/// Integer kinds narrower than 64 bits: the exact Debezium Connect type.
fn int_data_type(data_type: &str, unsigned: bool) -> DataType {
    match (data_type, unsigned) {
        ("tinyint", _) | ("smallint", false) => DataType::Int16,
        ("smallint", true) | ("mediumint", _) | ("int", false) => DataType::Int32,
        _ => DataType::Int64,
    }
}

/// Builds the captured-table schema from a `TABLE_MAP` event with full row metadata.
/// `None` when the event lacks column names (binlog_row_metadata is not FULL).
pub fn from_table_map(
    tme: &TableMapEvent<'_>,
    cfg: &MySqlConfig,
    version: u32,
) -> Result<Option<TableInfo>, String> {
    let db = tme.database_name().into_owned();
    let table = tme.table_name().into_owned();
    let meta = OptionalMetaExtractor::new(tme.iter_optional_meta())
        .map_err(|e| format!("table map of {db}.{table}: {e}"))?;
    let names: Vec<String> = meta
        .iter_column_name()
        .map(|n| n.map(|n| n.name().into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("column names of {db}.{table}: {e}"))?;
    let count = tme.columns_count() as usize;
    if names.len() != count {
        return Ok(None);
    }
    let mut signedness = meta.iter_signedness();
    let mut charsets = meta.iter_charset();
    let mut enum_values = Vec::new();
    let mut set_values = Vec::new();
    for field in tme.iter_optional_meta() {
        match field {
            Ok(mysql_async::binlog::events::OptionalMetadataField::EnumStrValue(v)) => {
                for e in v.iter_values() {
                    let e = e.map_err(|e| format!("enum values of {db}.{table}: {e}"))?;
                    enum_values.push(
                        e.values()
                            .iter()
                            .map(|s| s.value().into_owned())
                            .collect::<Vec<_>>(),
                    );
                }
            }
            Ok(mysql_async::binlog::events::OptionalMetadataField::SetStrValue(v)) => {
                for e in v.iter_values() {
                    let e = e.map_err(|e| format!("set values of {db}.{table}: {e}"))?;
                    set_values.push(
                        e.values()
                            .iter()
                            .map(|s| s.value().into_owned())
                            .collect::<Vec<_>>(),
                    );
                }
            }
            Ok(_) => {}
            Err(e) => return Err(format!("row metadata of {db}.{table}: {e}")),
        }
    }
    let mut enums = enum_values.into_iter();
    let mut sets = set_values.into_iter();
    let nulls = tme.null_bitmask();
    let pk: Vec<usize> = meta
        .iter_primary_key()
        .filter_map(Result::ok)
        .map(|i| i as usize)
        .collect();

    let mut columns = Vec::new();
    let mut plans = Vec::new();
    let mut wire = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let ty = tme
            .get_column_type(i)
            .map_err(|e| format!("column {name} of {db}.{table}: {e}"))?
            .ok_or_else(|| format!("column {name} of {db}.{table} has an unknown type"))?;
        let meta_bytes = tme.get_column_metadata(i).unwrap_or_default();
        let unsigned = if ty.is_numeric_type() {
            signedness.next().unwrap_or(false)
        } else {
            false
        };
        let charset = if ty.is_character_type() {
            charsets.next().and_then(Result::ok).unwrap_or(45)
        } else {
            45
        };
        let m0 = u32::from(meta_bytes.first().copied().unwrap_or(0));
        let m1 = u32::from(meta_bytes.get(1).copied().unwrap_or(0));
        let mut values = Vec::new();
        let (kind, sql, dt_override) = match ty {
            ColumnType::MYSQL_TYPE_TINY => {
                (int_kind(unsigned, false, false), "tinyint", Some("tinyint"))
            }
            ColumnType::MYSQL_TYPE_SHORT => (
                int_kind(unsigned, false, false),
                "smallint",
                Some("smallint"),
            ),
            ColumnType::MYSQL_TYPE_INT24 => (
                int_kind(unsigned, true, false),
                "mediumint",
                Some("mediumint"),
            ),
            ColumnType::MYSQL_TYPE_LONG => (int_kind(unsigned, false, false), "int", Some("int")),
            ColumnType::MYSQL_TYPE_LONGLONG => (
                int_kind(unsigned, false, cfg.bigint_precise),
                "bigint",
                if unsigned { None } else { Some("bigint") },
            ),
            ColumnType::MYSQL_TYPE_FLOAT => (Kind::Float, "float", None),
            ColumnType::MYSQL_TYPE_DOUBLE => (Kind::Double, "double", None),
            ColumnType::MYSQL_TYPE_NEWDECIMAL | ColumnType::MYSQL_TYPE_DECIMAL => {
                (Kind::Decimal, "decimal", None)
            }
            ColumnType::MYSQL_TYPE_DATE | ColumnType::MYSQL_TYPE_NEWDATE => {
                (Kind::Date, "date", None)
            }
            ColumnType::MYSQL_TYPE_TIME | ColumnType::MYSQL_TYPE_TIME2 => {
                (Kind::Time, "time", None)
            }
            ColumnType::MYSQL_TYPE_DATETIME | ColumnType::MYSQL_TYPE_DATETIME2 => {
                (Kind::DateTime, "datetime", None)
            }
            ColumnType::MYSQL_TYPE_TIMESTAMP | ColumnType::MYSQL_TYPE_TIMESTAMP2 => {
                (Kind::Timestamp, "timestamp", None)
            }
            ColumnType::MYSQL_TYPE_YEAR => (Kind::Year, "year", None),
            ColumnType::MYSQL_TYPE_BIT => (Kind::Bit(m1 * 8 + m0), "bit", None),
            ColumnType::MYSQL_TYPE_ENUM => {
                values = enums.next().unwrap_or_default();
                (Kind::Enum, "enum", None)
            }
            ColumnType::MYSQL_TYPE_SET => {
                values = sets.next().unwrap_or_default();
                (Kind::Set, "set", None)
            }
            ColumnType::MYSQL_TYPE_JSON => (Kind::Json, "json", None),
            ColumnType::MYSQL_TYPE_GEOMETRY => (Kind::Geometry, "geometry", None),
            ColumnType::MYSQL_TYPE_VARCHAR
            | ColumnType::MYSQL_TYPE_VAR_STRING
            | ColumnType::MYSQL_TYPE_STRING
            | ColumnType::MYSQL_TYPE_BLOB
            | ColumnType::MYSQL_TYPE_TINY_BLOB
            | ColumnType::MYSQL_TYPE_MEDIUM_BLOB
            | ColumnType::MYSQL_TYPE_LONG_BLOB => {
                if charset == BINARY_CHARSET {
                    (Kind::Bytes, "varbinary", None)
                } else {
                    (
                        Kind::Text {
                            latin1: is_latin1(charset),
                        },
                        "varchar",
                        None,
                    )
                }
            }
            other => {
                return Err(format!(
                    "column {name} of {db}.{table} has type {other:?}, which this connector cannot decode"
                ));
            }
        };
        wire.push(WireColumn {
            ty,
            meta: meta_bytes.to_vec(),
            unsigned,
        });
        if !cfg.filters.column(&db, &table, name) {
            continue;
        }
        // Debezium's precision for DECIMAL is metadata byte 0, scale byte 1; the fsp of
        // temporal types is byte 0.
        let data_type = match dt_override {
            Some(base) => int_data_type(base, unsigned),
            None => data_type_of(&kind, m0, m1, m0.min(6) as u8),
        };
        let nullable = nulls.get(i).map(|b| *b).unwrap_or(true);
        let mut column = Column::new(
            name.clone(),
            data_type,
            if unsigned {
                format!("{sql} unsigned")
            } else {
                sql.to_owned()
            },
        );
        column.nullable = nullable;
        column.enum_values = values.clone();
        columns.push(column);
        plans.push(ColumnPlan {
            source_index: i,
            kind,
            nullable,
            enum_values: values,
        });
    }
    let key = key_indexes(cfg, &db, &table, &columns, &plans, &pk);
    Ok(Some(TableInfo {
        wire,
        topic: topic_name(cfg, &db, &table),
        schema: Arc::new(TableSchema {
            id: TableId::new(db, table),
            version,
            columns,
            key,
        }),
        plans,
    }))
}

fn int_kind(unsigned: bool, int24: bool, precise: bool) -> Kind {
    match (unsigned, int24, precise) {
        (true, _, true) => Kind::UIntDecimal,
        (true, _, false) => Kind::UInt,
        (false, true, _) => Kind::Int24,
        (false, false, _) => Kind::Int,
    }
}

/// `<prefix>.<db>.<table>`.
pub fn topic_name(cfg: &MySqlConfig, db: &str, table: &str) -> Arc<str> {
    Arc::from(format!("{}.{db}.{table}", cfg.prefix))
}

/// Key column positions (in captured-column order): `message.key.columns` or the primary key.
fn key_indexes(
    cfg: &MySqlConfig,
    db: &str,
    table: &str,
    columns: &[Column],
    plans: &[ColumnPlan],
    pk_source: &[usize],
) -> Vec<usize> {
    if let Some(names) = cfg.key_columns_for(db, table) {
        return names
            .iter()
            .filter_map(|n| columns.iter().position(|c| c.name.eq_ignore_ascii_case(n)))
            .collect();
    }
    pk_source
        .iter()
        .filter_map(|s| plans.iter().position(|p| p.source_index == *s))
        .collect()
}

/// One row of `information_schema.columns` (snapshot path).
#[derive(Debug, Clone)]
pub struct InfoColumn {
    pub name: String,
    pub data_type: String,
    pub column_type: String,
    pub nullable: bool,
    pub precision: Option<u32>,
    pub scale: Option<u32>,
    pub datetime_precision: Option<u32>,
    pub charset: Option<String>,
    pub in_primary_key: Option<u32>,
}

/// Builds the captured-table schema from `information_schema` rows (ordinal order).
pub fn from_information_schema(
    cfg: &MySqlConfig,
    db: &str,
    table: &str,
    info: &[InfoColumn],
) -> TableInfo {
    let mut columns = Vec::new();
    let mut plans = Vec::new();
    let mut pk: Vec<(u32, usize)> = Vec::new();
    for (i, c) in info.iter().enumerate() {
        let unsigned = c.column_type.contains("unsigned");
        let dt = c.data_type.to_ascii_lowercase();
        let binary_charset = c.charset.is_none() || c.charset.as_deref() == Some("binary");
        let latin1 = matches!(c.charset.as_deref(), Some("latin1" | "ascii"));
        let mut values = Vec::new();
        let kind = match dt.as_str() {
            "tinyint" | "smallint" | "int" => int_kind(unsigned, false, false),
            "mediumint" => {
                if unsigned {
                    Kind::UInt
                } else {
                    Kind::Int
                }
            }
            "bigint" => int_kind(unsigned, false, cfg.bigint_precise),
            "float" => Kind::Float,
            "double" | "real" => Kind::Double,
            "decimal" | "numeric" => Kind::Decimal,
            "date" => Kind::Date,
            "time" => Kind::Time,
            "datetime" => Kind::DateTime,
            "timestamp" => Kind::Timestamp,
            "year" => Kind::Year,
            "bit" => Kind::Bit(c.precision.unwrap_or(1)),
            "enum" => {
                values = parse_enum_values(&c.column_type);
                Kind::Enum
            }
            "set" => {
                values = parse_enum_values(&c.column_type);
                Kind::Set
            }
            "json" => Kind::Json,
            "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
            | "multipolygon" | "geometrycollection" => Kind::Geometry,
            "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => Kind::Bytes,
            _ if binary_charset => Kind::Bytes,
            _ => Kind::Text { latin1 },
        };
        if let Some(pos) = c.in_primary_key {
            pk.push((pos, i));
        }
        if !cfg.filters.column(db, table, &c.name) {
            continue;
        }
        let data_type = match (&kind, dt.as_str()) {
            (Kind::Int | Kind::UInt, base @ ("tinyint" | "smallint" | "mediumint" | "int")) => {
                int_data_type(base, unsigned)
            }
            (Kind::Int, "bigint") => DataType::Int64,
            _ => data_type_of(
                &kind,
                c.precision.unwrap_or(0),
                c.scale.unwrap_or(0),
                c.datetime_precision.unwrap_or(0).min(6) as u8,
            ),
        };
        let mut column = Column::new(c.name.clone(), data_type, c.column_type.clone());
        column.nullable = c.nullable;
        column.enum_values = values.clone();
        columns.push(column);
        plans.push(ColumnPlan {
            source_index: i,
            kind,
            nullable: c.nullable,
            enum_values: values,
        });
    }
    pk.sort_unstable();
    let pk_source: Vec<usize> = pk.into_iter().map(|(_, i)| i).collect();
    let key = key_indexes(cfg, db, table, &columns, &plans, &pk_source);
    TableInfo {
        wire: Vec::new(),
        topic: topic_name(cfg, db, table),
        schema: Arc::new(TableSchema {
            id: TableId::new(db, table),
            version: 1,
            columns,
            key,
        }),
        plans,
    }
}

/// `enum('a','b''c')` → `["a", "b'c"]`.
pub fn parse_enum_values(column_type: &str) -> Vec<String> {
    let Some(start) = column_type.find('(') else {
        return Vec::new();
    };
    let body = column_type[start + 1..].trim_end_matches(')');
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, in_quote) {
            ('\'', false) => in_quote = true,
            ('\'', true) => {
                if chars.peek() == Some(&'\'') {
                    cur.push('\'');
                    chars.next();
                } else {
                    in_quote = false;
                    out.push(std::mem::take(&mut cur));
                }
            }
            ('\\', true) => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (c, true) => cur.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_values_with_quotes_and_commas() {
        assert_eq!(
            parse_enum_values("enum('a','b''c','d,e')"),
            vec!["a", "b'c", "d,e"]
        );
        assert_eq!(parse_enum_values("set('x')"), vec!["x"]);
        assert!(parse_enum_values("int(11)").is_empty());
    }
}
