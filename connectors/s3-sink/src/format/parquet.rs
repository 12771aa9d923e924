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
//! | `array` | group `LIST` { repeated group `list` { `element` } } |
//! | `map` | group `MAP` { repeated group `key_value` { required `key`; `value` } } |
//!
//! Optional Connect schemas (fields, array elements, map values) are `OPTIONAL`, others
//! `REQUIRED`; map keys are always `REQUIRED` (a null key is refused when the record is
//! written, see [`check_row`]). Values are shredded into definition and repetition levels as
//! in Dremel. Rows are read back from the spill file a row group at a time, so memory is
//! bounded by [`ROW_GROUP_BYTES`].

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
use crate::format::rows;

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
}

/// One step from a row towards a leaf value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Field `i` of a struct.
    Field(usize),
    /// The value may be null: an `OPTIONAL` node, one definition level.
    Optional,
    /// The value may not be null: a `REQUIRED` node.
    Required,
    /// Every element of an array: the `LIST`'s repeated group.
    Elements,
    /// Every key of a map: the `MAP`'s repeated group.
    Keys,
    /// Every value of a map: the `MAP`'s repeated group.
    Values,
}

impl Step {
    fn nullable(optional: bool) -> Step {
        if optional {
            Step::Optional
        } else {
            Step::Required
        }
    }

    fn repeated(self) -> bool {
        matches!(self, Step::Elements | Step::Keys | Step::Values)
    }
}

#[derive(Debug, Clone)]
struct Leaf {
    steps: Vec<Step>,
    kind: LeafKind,
    max_def: i16,
    max_rep: i16,
}

/// One leaf entry of a row: definition level, repetition level, value when present.
type Level<'a> = (i16, i16, Option<&'a Data>);

/// The Parquet schema of a record value schema (which must be a struct).
pub fn parquet_schema(schema: &ConnectSchema) -> Result<TypePtr, String> {
    let ConnectType::Struct(fields) = &schema.ty else {
        return Err("ParquetFormat needs record values that are structs with a schema".into());
    };
    let mut children = Vec::with_capacity(fields.len());
    for f in fields {
        children.push(Arc::new(field_type(
            &f.name,
            &f.schema,
            repetition(&f.schema),
        )?));
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

fn field_type(name: &str, schema: &ConnectSchema, rep: Repetition) -> Result<Type, String> {
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
                children.push(Arc::new(field_type(
                    &f.name,
                    &f.schema,
                    repetition(&f.schema),
                )?));
            }
            Type::group_type_builder(name)
                .with_repetition(rep)
                .with_fields(children)
                .build()
        }
        ConnectType::Array(items) => {
            let element = field_type("element", items, repetition(items))?;
            repeated_group(name, rep, LogicalType::List, "list", vec![element])
        }
        ConnectType::Map(keys, values) => {
            let key = field_type("key", keys, Repetition::REQUIRED)?;
            let value = field_type("value", values, repetition(values))?;
            repeated_group(name, rep, LogicalType::Map, "key_value", vec![key, value])
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

/// `<rep> group <name> (<logical>) { repeated group <inner> { <children> } }`: the
/// standard three-level LIST and MAP layouts.
fn repeated_group(
    name: &str,
    rep: Repetition,
    logical: LogicalType,
    inner: &str,
    children: Vec<Type>,
) -> parquet::errors::Result<Type> {
    let inner = Type::group_type_builder(inner)
        .with_repetition(Repetition::REPEATED)
        .with_fields(children.into_iter().map(Arc::new).collect())
        .build()?;
    Type::group_type_builder(name)
        .with_repetition(rep)
        .with_logical_type(Some(logical))
        .with_fields(vec![Arc::new(inner)])
        .build()
}

/// The leaf columns of a struct schema, in the order of the Parquet schema's leaves.
fn leaves(schema: &ConnectSchema) -> Vec<Leaf> {
    fn walk(schema: &ConnectSchema, steps: &mut Vec<Step>, out: &mut Vec<Leaf>) {
        let mut nested = |steps: &mut Vec<Step>, pair: [Step; 2], child: &ConnectSchema| {
            steps.extend(pair);
            walk(child, steps, out);
            steps.truncate(steps.len() - 2);
        };
        let kind = match &schema.ty {
            ConnectType::Struct(fields) => {
                for (i, f) in fields.iter().enumerate() {
                    nested(
                        steps,
                        [Step::Field(i), Step::nullable(f.schema.optional)],
                        &f.schema,
                    );
                }
                return;
            }
            ConnectType::Array(items) => {
                nested(
                    steps,
                    [Step::Elements, Step::nullable(items.optional)],
                    items,
                );
                return;
            }
            ConnectType::Map(keys, values) => {
                nested(steps, [Step::Keys, Step::Required], keys);
                nested(
                    steps,
                    [Step::Values, Step::nullable(values.optional)],
                    values,
                );
                return;
            }
            ConnectType::Boolean => LeafKind::Bool,
            ConnectType::Int8 | ConnectType::Int16 | ConnectType::Int32 => LeafKind::Int32,
            ConnectType::Int64 => LeafKind::Int64,
            ConnectType::Float32 => LeafKind::Float,
            ConnectType::Float64 => LeafKind::Double,
            ConnectType::String | ConnectType::Bytes => LeafKind::Binary,
        };
        let repeated = steps.iter().filter(|s| s.repeated()).count() as i16;
        let optional = steps.iter().filter(|s| **s == Step::Optional).count() as i16;
        out.push(Leaf {
            steps: steps.clone(),
            kind,
            max_def: optional + repeated,
            max_rep: repeated,
        });
    }
    let mut out = Vec::new();
    if let ConnectType::Struct(_) = &schema.ty {
        walk(schema, &mut Vec::new(), &mut out);
    }
    out
}

/// Appends the levels of one leaf of `data` (Dremel's shredding): `def` counts the optional
/// and repeated nodes present above, `rep` is the repetition level of the first entry and
/// `depth` the number of repeated nodes entered.
fn shred<'a>(
    data: &'a Data,
    steps: &[Step],
    def: i16,
    rep: i16,
    depth: i16,
    out: &mut Vec<Level<'a>>,
) -> Result<(), String> {
    let Some((step, rest)) = steps.split_first() else {
        out.push((def, rep, Some(data)));
        return Ok(());
    };
    match step {
        Step::Field(i) => {
            let Data::Struct(values) = data else {
                return Err("a struct value does not match its schema".into());
            };
            let value = values
                .get(*i)
                .ok_or("a struct value has fewer fields than its schema")?;
            shred(value, rest, def, rep, depth, out)
        }
        Step::Optional if data.is_null() => {
            out.push((def, rep, None));
            Ok(())
        }
        Step::Optional => shred(data, rest, def + 1, rep, depth, out),
        Step::Required if data.is_null() => Err("a required value is null".into()),
        Step::Required => shred(data, rest, def, rep, depth, out),
        Step::Elements | Step::Keys | Step::Values => {
            let items: Vec<&Data> = match (step, data) {
                (Step::Elements, Data::Array(items)) => items.iter().collect(),
                (Step::Keys, Data::Map(entries)) => entries.iter().map(|(k, _)| k).collect(),
                (Step::Values, Data::Map(entries)) => entries.iter().map(|(_, v)| v).collect(),
                _ => return Err("an array or map value does not match its schema".into()),
            };
            if items.is_empty() {
                out.push((def, rep, None));
            }
            for (n, item) in items.into_iter().enumerate() {
                let rep = if n == 0 { rep } else { depth + 1 };
                shred(item, rest, def + 1, rep, depth + 1, out)?;
            }
            Ok(())
        }
    }
}

/// Checks that a record value can be written under `schema`: what [`write_file`] would
/// refuse (a null in a required field, a null map key, a value of another type) is found
/// when the record arrives, so it goes to the errant record reporter instead of failing a
/// whole file.
pub fn check_row(schema: &ConnectSchema, row: &Data) -> Result<(), String> {
    let mut levels = Vec::new();
    for leaf in leaves(schema) {
        levels.clear();
        shred(row, &leaf.steps, 0, 0, 0, &mut levels)?;
        for (_, _, value) in &levels {
            if let Some(v) = value
                && !fits(leaf.kind, v)
            {
                return Err(format!(
                    "a value does not match its {:?} Parquet column",
                    leaf.kind
                ));
            }
        }
    }
    Ok(())
}

fn fits(kind: LeafKind, data: &Data) -> bool {
    match kind {
        LeafKind::Bool => matches!(data, Data::Boolean(_)),
        LeafKind::Int32 => data.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        LeafKind::Int64 => data.as_i64().is_some(),
        LeafKind::Float => matches!(data, Data::Float32(_)),
        LeafKind::Double => matches!(data, Data::Float64(_)),
        LeafKind::Binary => matches!(data, Data::String(_) | Data::Bytes(_)),
    }
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
        let mut levels = Vec::with_capacity(rows.len());
        for row in rows {
            shred(row, &leaf.steps, 0, 0, 0, &mut levels)?;
        }
        let defs: Vec<i16> = levels.iter().map(|(d, _, _)| *d).collect();
        let reps: Vec<i16> = levels.iter().map(|(_, r, _)| *r).collect();
        let present: Vec<&Data> = levels.iter().filter_map(|(_, _, v)| *v).collect();
        let defs = (leaf.max_def > 0).then_some(defs.as_slice());
        let reps = (leaf.max_rep > 0).then_some(reps.as_slice());
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
                column.typed::<BoolType>().write_batch(&values, defs, reps)
            }
            LeafKind::Int32 => {
                let values = present
                    .iter()
                    .map(|d| d.as_i64().and_then(|n| i32::try_from(n).ok()))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(mismatch)?;
                column.typed::<Int32Type>().write_batch(&values, defs, reps)
            }
            LeafKind::Int64 => {
                let values = present
                    .iter()
                    .map(|d| d.as_i64())
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(mismatch)?;
                column.typed::<Int64Type>().write_batch(&values, defs, reps)
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
                column.typed::<FloatType>().write_batch(&values, defs, reps)
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
                    .write_batch(&values, defs, reps)
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
                    .write_batch(&values, defs, reps)
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
        assert_eq!(levels(&deleted, &leaves[1]), [(0, 0, None)]);
        let full = Data::Struct(vec![
            Data::Struct(vec![Data::Int32(1), Data::Int64(5)]),
            Data::String("c".into()),
        ]);
        assert_eq!(levels(&full, &leaves[1]), [(2, 0, Some(&Data::Int64(5)))]);
    }

    fn levels<'a>(row: &'a Data, leaf: &Leaf) -> Vec<Level<'a>> {
        let mut out = Vec::new();
        shred(row, &leaf.steps, 0, 0, 0, &mut out).expect("shred");
        out
    }

    fn array(items: ConnectSchema) -> ConnectType {
        ConnectType::Array(Box::new(items))
    }

    /// tags: optional array of optional strings; counts: map string -> int64; matrix: array of
    /// arrays of int32.
    fn collections() -> ConnectSchema {
        let string = ConnectSchema::new(ConnectType::String);
        ConnectSchema::new(ConnectType::Struct(vec![
            field("tags", array(string.clone().optional(true)), true, None),
            field(
                "counts",
                ConnectType::Map(
                    Box::new(string),
                    Box::new(ConnectSchema::new(ConnectType::Int64)),
                ),
                false,
                None,
            ),
            field(
                "matrix",
                array(ConnectSchema::new(array(ConnectSchema::new(
                    ConnectType::Int32,
                )))),
                false,
                None,
            ),
        ]))
    }

    #[test]
    fn arrays_and_maps_are_lists_and_maps() {
        let schema = parquet_schema(&collections()).expect("schema");
        let mut text = Vec::new();
        parquet::schema::printer::print_schema(&mut text, &schema);
        let text = String::from_utf8(text).expect("utf8");
        let squashed: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for expected in [
            "OPTIONAL group tags (LIST) { REPEATED group list { OPTIONAL BYTE_ARRAY element (STRING); } }",
            "REQUIRED group counts (MAP) { REPEATED group key_value { REQUIRED BYTE_ARRAY key (STRING); REQUIRED INT64 value; } }",
            "REQUIRED group matrix (LIST) { REPEATED group list { REQUIRED group element (LIST) { REPEATED group list { REQUIRED INT32 element; } } } }",
        ] {
            assert!(squashed.contains(expected), "{expected} not in {text}");
        }
        let leaves = leaves(&collections());
        let shape: Vec<_> = leaves.iter().map(|l| (l.max_def, l.max_rep)).collect();
        assert_eq!(shape, [(3, 1), (1, 1), (1, 1), (2, 2)]);

        let s = |t: &str| Data::String(t.into());
        let row = |tags: Data| {
            Data::Struct(vec![
                tags,
                Data::Map(vec![(s("x"), Data::Int64(1)), (s("y"), Data::Int64(2))]),
                Data::Array(vec![
                    Data::Array(vec![Data::Int32(1), Data::Int32(2)]),
                    Data::Array(vec![]),
                    Data::Array(vec![Data::Int32(3)]),
                ]),
            ])
        };
        let (a, b) = (s("a"), s("b"));
        let tags = row(Data::Array(vec![a.clone(), Data::Null, b.clone()]));
        assert_eq!(
            levels(&tags, &leaves[0]),
            [(3, 0, Some(&a)), (2, 1, None), (3, 1, Some(&b))]
        );
        assert_eq!(levels(&row(Data::Null), &leaves[0]), [(0, 0, None)]);
        assert_eq!(
            levels(&row(Data::Array(vec![])), &leaves[0]),
            [(1, 0, None)]
        );
        assert_eq!(
            levels(&tags, &leaves[1]),
            [(1, 0, Some(&s("x"))), (1, 1, Some(&s("y")))]
        );
        assert_eq!(
            levels(&tags, &leaves[2]),
            [(1, 0, Some(&Data::Int64(1))), (1, 1, Some(&Data::Int64(2)))]
        );
        assert_eq!(
            levels(&tags, &leaves[3]),
            [
                (2, 0, Some(&Data::Int32(1))),
                (2, 2, Some(&Data::Int32(2))),
                (1, 1, None),
                (2, 1, Some(&Data::Int32(3))),
            ]
        );
        assert_eq!(check_row(&collections(), &tags), Ok(()));
    }

    #[test]
    fn rows_that_cannot_be_written_are_refused_up_front() {
        let schema = collections();
        let s = |t: &str| Data::String(t.into());
        let row = |counts: Data, matrix: Data| Data::Struct(vec![Data::Null, counts, matrix]);
        let ok_map = Data::Map(vec![(s("x"), Data::Int64(1))]);
        let ok_matrix = Data::Array(vec![]);
        assert_eq!(
            check_row(&schema, &row(ok_map.clone(), ok_matrix.clone())),
            Ok(())
        );
        let null_key = Data::Map(vec![(Data::Null, Data::Int64(1))]);
        assert!(check_row(&schema, &row(null_key, ok_matrix.clone())).is_err());
        let null_element = Data::Array(vec![Data::Array(vec![Data::Null])]);
        assert!(check_row(&schema, &row(ok_map.clone(), null_element)).is_err());
        let wide = Data::Array(vec![Data::Array(vec![Data::Int64(1 << 40)])]);
        assert!(check_row(&schema, &row(ok_map.clone(), wide)).is_err());
        let not_a_list = Data::Map(vec![]);
        assert!(check_row(&schema, &row(ok_map, not_a_list)).is_err());
    }
}
