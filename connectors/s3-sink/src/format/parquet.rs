//! Parquet files with a schema derived from the record's Kafka Connect schema, written with
//! the `parquet` crate's low-level column writers (no Arrow).
//!
//! | Connect | Parquet |
//! |---|---|
//! | `int8`/`int16`/`int32` | `INT32` (`INT(8/16/32, signed)`) |
//! | `int64`, `float32`, `float64`, `boolean` | `INT64`, `FLOAT`, `DOUBLE`, `BOOLEAN` |
//! | `string` | `BYTE_ARRAY` `STRING` |
//! | `bytes` | `BYTE_ARRAY` |
//! | `Decimal` (scale, `connect.decimal.precision`) | `BYTE_ARRAY` `DECIMAL(p, s)` (default precision 38) |
//! | `Date`, `io.debezium.time.Date` | `INT32` `DATE` |
//! | `Time` / `io.debezium.time.Time`, `MicroTime`, `NanoTime` | `TIME(MILLIS/MICROS/NANOS)` |
//! | `Timestamp` (UTC) / `io.debezium.time.Timestamp`, `MicroTimestamp`, `NanoTimestamp` (local) | `TIMESTAMP(MILLIS/MICROS/NANOS)` |
//! | `struct` | group (nested, e.g. Debezium's `before`/`after`/`source`) |
//! | `array`, `map` | `BYTE_ARRAY` `STRING` holding the JSON of the value |
//!
//! Optional Connect fields are `OPTIONAL`, others `REQUIRED`. Rows are read back from the
//! spill file a row group at a time, so memory is bounded by [`ROW_GROUP_BYTES`].

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use parquet::basic::{Compression as Codec, LogicalType, Repetition, TimeUnit, Type as Physical};
use parquet::data_type::{
    BoolType, ByteArray, ByteArrayType, DoubleType, FloatType, Int32Type, Int64Type,
};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{Type, TypePtr};
use tributary_runtime::data::{ConnectSchema, ConnectType, Data};

use crate::config::ParquetCodec;
use crate::format::{json, rows};

/// Spilled row bytes per row group.
pub const ROW_GROUP_BYTES: usize = 16 * 1024 * 1024;

/// How one leaf column is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LeafKind {
    Bool,
    Int32,
    Int64,
    Float,
    Double,
    Binary,
    Json,
}

#[derive(Debug, Clone)]
struct Leaf {
    /// Field index at each struct level.
    path: Vec<usize>,
    /// Whether the field at each level is optional.
    optional: Vec<bool>,
    kind: LeafKind,
    /// The leaf's Connect schema (for JSON rendering of arrays and maps).
    schema: ConnectSchema,
}

/// The Parquet schema of a record value schema (which must be a struct).
pub fn parquet_schema(schema: &ConnectSchema) -> Result<TypePtr, String> {
    let ConnectType::Struct(fields) = &schema.ty else {
        return Err("ParquetFormat needs record values that are structs with a schema".into());
    };
    let mut children = Vec::with_capacity(fields.len());
    for f in fields {
        children.push(Arc::new(field_type(&f.name, &f.schema)?));
    }
    Type::group_type_builder("connect_value")
        .with_fields(children)
        .build()
        .map(Arc::new)
        .map_err(|e| format!("cannot build the Parquet schema: {e}"))
}

fn repetition(schema: &ConnectSchema) -> Repetition {
    if schema.optional {
        Repetition::OPTIONAL
    } else {
        Repetition::REQUIRED
    }
}

fn param<'a>(schema: &'a ConnectSchema, key: &str) -> Option<&'a str> {
    schema
        .parameters
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn field_type(name: &str, schema: &ConnectSchema) -> Result<Type, String> {
    let rep = repetition(schema);
    let prim = |physical, logical: Option<LogicalType>| {
        Type::primitive_type_builder(name, physical)
            .with_repetition(rep)
            .with_logical_type(logical)
    };
    let logical = schema.name.as_deref().unwrap_or("");
    let built = match &schema.ty {
        ConnectType::Struct(fields) => {
            let mut children = Vec::with_capacity(fields.len());
            for f in fields {
                children.push(Arc::new(field_type(&f.name, &f.schema)?));
            }
            Type::group_type_builder(name)
                .with_repetition(rep)
                .with_fields(children)
                .build()
        }
        ConnectType::Array(_) | ConnectType::Map(..) => {
            prim(Physical::BYTE_ARRAY, Some(LogicalType::String)).build()
        }
        ConnectType::Boolean => prim(Physical::BOOLEAN, None).build(),
        ConnectType::Int8 => prim(
            Physical::INT32,
            Some(LogicalType::Integer {
                bit_width: 8,
                is_signed: true,
            }),
        )
        .build(),
        ConnectType::Int16 => prim(
            Physical::INT32,
            Some(LogicalType::Integer {
                bit_width: 16,
                is_signed: true,
            }),
        )
        .build(),
        ConnectType::Int32 => {
            let lt = match logical {
                "org.apache.kafka.connect.data.Date" | "io.debezium.time.Date" => {
                    Some(LogicalType::Date)
                }
                "org.apache.kafka.connect.data.Time" => Some(LogicalType::Time {
                    is_adjusted_to_u_t_c: true,
                    unit: TimeUnit::MILLIS,
                }),
                "io.debezium.time.Time" => Some(LogicalType::Time {
                    is_adjusted_to_u_t_c: false,
                    unit: TimeUnit::MILLIS,
                }),
                _ => None,
            };
            prim(Physical::INT32, lt).build()
        }
        ConnectType::Int64 => {
            let ts = |utc, unit| {
                Some(LogicalType::Timestamp {
                    is_adjusted_to_u_t_c: utc,
                    unit,
                })
            };
            let lt = match logical {
                "org.apache.kafka.connect.data.Timestamp" => ts(true, TimeUnit::MILLIS),
                "io.debezium.time.Timestamp" => ts(false, TimeUnit::MILLIS),
                "io.debezium.time.MicroTimestamp" => ts(false, TimeUnit::MICROS),
                "io.debezium.time.NanoTimestamp" => ts(false, TimeUnit::NANOS),
                "io.debezium.time.MicroTime" => Some(LogicalType::Time {
                    is_adjusted_to_u_t_c: false,
                    unit: TimeUnit::MICROS,
                }),
                "io.debezium.time.NanoTime" => Some(LogicalType::Time {
                    is_adjusted_to_u_t_c: false,
                    unit: TimeUnit::NANOS,
                }),
                _ => None,
            };
            prim(Physical::INT64, lt).build()
        }
        ConnectType::Float32 => prim(Physical::FLOAT, None).build(),
        ConnectType::Float64 => prim(Physical::DOUBLE, None).build(),
        ConnectType::String => prim(Physical::BYTE_ARRAY, Some(LogicalType::String)).build(),
        ConnectType::Bytes if logical == "org.apache.kafka.connect.data.Decimal" => {
            let scale: i32 = param(schema, "scale")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let precision: i32 = param(schema, "connect.decimal.precision")
                .and_then(|s| s.parse().ok())
                .unwrap_or(38)
                .max(scale)
                .max(1);
            prim(
                Physical::BYTE_ARRAY,
                Some(LogicalType::Decimal { scale, precision }),
            )
            .with_precision(precision)
            .with_scale(scale)
            .build()
        }
        ConnectType::Bytes => prim(Physical::BYTE_ARRAY, None).build(),
    };
    built.map_err(|e| format!("field {name:?}: cannot map to Parquet: {e}"))
}

fn leaves(schema: &ConnectSchema) -> Vec<Leaf> {
    fn walk(
        fields: &[tributary_runtime::data::ConnectField],
        path: &mut Vec<usize>,
        optional: &mut Vec<bool>,
        out: &mut Vec<Leaf>,
    ) {
        for (i, f) in fields.iter().enumerate() {
            path.push(i);
            optional.push(f.schema.optional);
            let kind = match &f.schema.ty {
                ConnectType::Struct(children) => {
                    walk(children, path, optional, out);
                    None
                }
                ConnectType::Array(_) | ConnectType::Map(..) => Some(LeafKind::Json),
                ConnectType::Boolean => Some(LeafKind::Bool),
                ConnectType::Int8 | ConnectType::Int16 | ConnectType::Int32 => {
                    Some(LeafKind::Int32)
                }
                ConnectType::Int64 => Some(LeafKind::Int64),
                ConnectType::Float32 => Some(LeafKind::Float),
                ConnectType::Float64 => Some(LeafKind::Double),
                ConnectType::String | ConnectType::Bytes => Some(LeafKind::Binary),
            };
            if let Some(kind) = kind {
                out.push(Leaf {
                    path: path.clone(),
                    optional: optional.clone(),
                    kind,
                    schema: f.schema.clone(),
                });
            }
            path.pop();
            optional.pop();
        }
    }
    let mut out = Vec::new();
    if let ConnectType::Struct(fields) = &schema.ty {
        walk(fields, &mut Vec::new(), &mut Vec::new(), &mut out);
    }
    out
}

/// The definition level of a leaf in a row and, when present, its value.
fn locate<'a>(row: &'a Data, leaf: &Leaf) -> Result<(i16, Option<&'a Data>), String> {
    let mut data = row;
    let mut def = 0i16;
    for (depth, &i) in leaf.path.iter().enumerate() {
        let Data::Struct(values) = data else {
            return Err("a struct value does not match its schema".into());
        };
        let value = values
            .get(i)
            .ok_or("a struct value has fewer fields than its schema")?;
        if value.is_null() {
            if leaf.optional[depth] {
                return Ok((def, None));
            }
            return Err("a required field is null".into());
        }
        if leaf.optional[depth] {
            def += 1;
        }
        data = value;
    }
    Ok((def, Some(data)))
}

/// Converts the rows spilled at `rows_path` into a Parquet file at `out`; returns its length.
pub fn write_file(
    rows_path: &Path,
    out: &Path,
    schema: &ConnectSchema,
    codec: ParquetCodec,
) -> Result<u64, String> {
    let parquet_schema = parquet_schema(schema)?;
    let leaves = leaves(schema);
    let props = WriterProperties::builder()
        .set_compression(match codec {
            ParquetCodec::None => Codec::UNCOMPRESSED,
            ParquetCodec::Snappy => Codec::SNAPPY,
        })
        .set_created_by("tributary".to_owned())
        .build();
    let file = File::create(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut writer = SerializedFileWriter::new(file, parquet_schema, Arc::new(props))
        .map_err(|e| e.to_string())?;
    let mut reader = BufReader::with_capacity(
        64 * 1024,
        File::open(rows_path).map_err(|e| format!("cannot open {}: {e}", rows_path.display()))?,
    );
    let mut frame = Vec::new();
    let mut batch: Vec<Data> = Vec::new();
    let mut batch_bytes = 0usize;
    loop {
        let more = rows::read_frame(&mut reader, &mut frame)
            .map_err(|e| format!("reading {}: {e}", rows_path.display()))?;
        if more {
            let mut input = frame.as_slice();
            batch.push(rows::decode(&mut input)?);
            batch_bytes += frame.len();
        }
        if (!more && !batch.is_empty()) || batch_bytes >= ROW_GROUP_BYTES {
            write_row_group(&mut writer, &leaves, &batch)?;
            batch.clear();
            batch_bytes = 0;
        }
        if !more {
            break;
        }
    }
    let file = writer.into_inner().map_err(|e| e.to_string())?;
    file.sync_all().map_err(|e| e.to_string())?;
    file.metadata().map(|m| m.len()).map_err(|e| e.to_string())
}

fn write_row_group(
    writer: &mut SerializedFileWriter<File>,
    leaves: &[Leaf],
    rows: &[Data],
) -> Result<(), String> {
    let mut group = writer.next_row_group().map_err(|e| e.to_string())?;
    let mut index = 0;
    while let Some(mut column) = group.next_column().map_err(|e| e.to_string())? {
        let leaf = leaves
            .get(index)
            .ok_or("more Parquet columns than schema leaves")?;
        index += 1;
        let max_def = leaf.optional.iter().filter(|o| **o).count();
        let mut defs = Vec::with_capacity(rows.len());
        let mut present = Vec::with_capacity(rows.len());
        for row in rows {
            let (def, value) = locate(row, leaf)?;
            defs.push(def);
            if let Some(v) = value {
                present.push(v);
            }
        }
        let defs = (max_def > 0).then_some(defs.as_slice());
        let mismatch = || format!("a value does not match its {:?} column", leaf.kind);
        let result = match leaf.kind {
            LeafKind::Bool => {
                let values = present
                    .iter()
                    .map(|d| match d {
                        Data::Boolean(b) => Some(*b),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(mismatch)?;
                column.typed::<BoolType>().write_batch(&values, defs, None)
            }
            LeafKind::Int32 => {
                let values = present
                    .iter()
                    .map(|d| d.as_i64().and_then(|n| i32::try_from(n).ok()))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(mismatch)?;
                column.typed::<Int32Type>().write_batch(&values, defs, None)
            }
            LeafKind::Int64 => {
                let values = present
                    .iter()
                    .map(|d| d.as_i64())
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(mismatch)?;
                column.typed::<Int64Type>().write_batch(&values, defs, None)
            }
            LeafKind::Float => {
                let values = present
                    .iter()
                    .map(|d| match d {
                        Data::Float32(f) => Some(*f),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(mismatch)?;
                column.typed::<FloatType>().write_batch(&values, defs, None)
            }
            LeafKind::Double => {
                let values = present
                    .iter()
                    .map(|d| match d {
                        Data::Float64(f) => Some(*f),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(mismatch)?;
                column
                    .typed::<DoubleType>()
                    .write_batch(&values, defs, None)
            }
            LeafKind::Binary => {
                let values = present
                    .iter()
                    .map(|d| match d {
                        Data::String(s) => Some(ByteArray::from(s.as_bytes().to_vec())),
                        Data::Bytes(b) => Some(ByteArray::from(b.to_vec())),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(mismatch)?;
                column
                    .typed::<ByteArrayType>()
                    .write_batch(&values, defs, None)
            }
            LeafKind::Json => {
                let values = present
                    .iter()
                    .map(|d| {
                        ByteArray::from(
                            json::to_json(Some(&leaf.schema), d)
                                .to_string()
                                .into_bytes(),
                        )
                    })
                    .collect::<Vec<_>>();
                column
                    .typed::<ByteArrayType>()
                    .write_batch(&values, defs, None)
            }
        };
        result.map_err(|e| e.to_string())?;
        column.close().map_err(|e| e.to_string())?;
    }
    group.close().map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use tributary_runtime::data::ConnectField;

    use super::*;

    fn field(name: &str, ty: ConnectType, optional: bool, logical: Option<&str>) -> ConnectField {
        ConnectField {
            name: name.into(),
            schema: ConnectSchema {
                optional,
                name: logical.map(str::to_owned),
                ..ConnectSchema::new(ty)
            },
        }
    }

    #[test]
    fn schema_maps_logical_types_and_nesting() {
        let row = ConnectSchema::new(ConnectType::Struct(vec![
            field("id", ConnectType::Int32, false, None),
            field(
                "ts",
                ConnectType::Int64,
                true,
                Some("io.debezium.time.MicroTimestamp"),
            ),
        ]));
        let envelope = ConnectSchema::new(ConnectType::Struct(vec![
            ConnectField {
                name: "after".into(),
                schema: ConnectSchema {
                    optional: true,
                    ..row
                },
            },
            field("op", ConnectType::String, false, None),
        ]));
        let schema = parquet_schema(&envelope).expect("schema");
        let mut text = Vec::new();
        parquet::schema::printer::print_schema(&mut text, &schema);
        let text = String::from_utf8(text).expect("utf8");
        assert!(text.contains("OPTIONAL group after"), "{text}");
        assert!(
            text.contains("OPTIONAL INT64 ts (TIMESTAMP(MICROS,false))"),
            "{text}"
        );
        assert!(text.contains("REQUIRED BYTE_ARRAY op (STRING)"), "{text}");
        let leaves = leaves(&envelope);
        assert_eq!(leaves.len(), 3);
        let deleted = Data::Struct(vec![Data::Null, Data::String("d".into())]);
        assert_eq!(locate(&deleted, &leaves[1]).expect("locate"), (0, None));
        let full = Data::Struct(vec![
            Data::Struct(vec![Data::Int32(1), Data::Int64(5)]),
            Data::String("c".into()),
        ]);
        assert_eq!(
            locate(&full, &leaves[1]).expect("locate"),
            (2, Some(&Data::Int64(5)))
        );
    }
}
