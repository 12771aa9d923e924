//! `schema.compatibility`: what a record whose value schema differs from the open files'
//! does to them, as Confluent's `StorageSchemaCompatibility`, and the projection of a value
//! onto another version of its schema, as Kafka Connect's `SchemaProjector`.
//!
//! | mode | record schema newer than the open files' | older | other name, no version, no schema |
//! |---|---|---|---|
//! | `NONE` | roll | roll | roll |
//! | `BACKWARD`, `FULL` | roll (it becomes current) | projected onto the current schema | roll |
//! | `FORWARD` | projected onto the current schema | roll (it becomes current) | roll |
//!
//! "Newer" compares schema versions (Connect's `version`; Avro's `connect.version`). Equal
//! versions with different schemas are projected, as in Confluent. A record that cannot be
//! projected (a type that does not promote, a required field without a default, different
//! parameters) rolls the files too. Where Confluent fails the task (a schema without a
//! version under BACKWARD/FORWARD/FULL, a switch between schema-less and schema-based
//! values) the files roll as with `NONE`: nothing is lost, there are only more objects.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde_json::Value as J;
use tributary_runtime::data::{ConnectSchema, ConnectType, Data};

/// `schema.compatibility`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaCompatibility {
    None,
    Backward,
    Forward,
    Full,
}

impl SchemaCompatibility {
    /// Parses the config value (case-insensitive); `None` for an unknown name.
    pub fn parse(text: &str) -> Option<SchemaCompatibility> {
        Some(match text.to_ascii_uppercase().as_str() {
            "NONE" => SchemaCompatibility::None,
            "BACKWARD" => SchemaCompatibility::Backward,
            "FORWARD" => SchemaCompatibility::Forward,
            "FULL" => SchemaCompatibility::Full,
            _ => return None,
        })
    }
}

/// Why a record rolls the open files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollReason {
    /// `schema.compatibility=NONE`: any schema change.
    AnyChange,
    /// One of the two values has no schema.
    SchemaLess,
    /// One of the two schemas has no version, so they cannot be ordered.
    NoVersion,
    /// The schemas have different names (another record type).
    OtherName,
    /// The record's version becomes the current one (newer under BACKWARD/FULL, older under
    /// FORWARD).
    Version,
    /// The record's value cannot be projected onto the current schema.
    NotProjectable,
}

/// What a record whose schema differs from the open files' does to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Project the record onto the open files' schema and write it to them.
    Project,
    /// Commit the open files; the record's schema becomes the current one.
    Roll(RollReason),
}

/// The decision for a record of schema `incoming` while the open files have schema
/// `current` (called only when the two differ).
pub fn decide(
    mode: SchemaCompatibility,
    current: Option<&ConnectSchema>,
    incoming: Option<&ConnectSchema>,
) -> Decision {
    if mode == SchemaCompatibility::None {
        return Decision::Roll(RollReason::AnyChange);
    }
    let (Some(current), Some(incoming)) = (current, incoming) else {
        return Decision::Roll(RollReason::SchemaLess);
    };
    let (Some(current_version), Some(version)) = (current.version, incoming.version) else {
        return Decision::Roll(RollReason::NoVersion);
    };
    if current.name != incoming.name {
        return Decision::Roll(RollReason::OtherName);
    }
    let becomes_current = match mode {
        SchemaCompatibility::Backward | SchemaCompatibility::Full => version > current_version,
        SchemaCompatibility::Forward => version < current_version,
        SchemaCompatibility::None => true,
    };
    if becomes_current {
        Decision::Roll(RollReason::Version)
    } else {
        Decision::Project
    }
}

/// `value` of schema `source` as a value of schema `target` (Kafka Connect's
/// `SchemaProjector.project`): struct fields by name, fields missing from `source` take the
/// target field's default (or null when optional), numbers widen (int8 → int16 → int32 →
/// int64 → float32 → float64), names and parameters must be equal.
pub fn project(
    source: &ConnectSchema,
    value: &Data,
    target: &ConnectSchema,
) -> Result<Data, String> {
    check_maybe_compatible(source, target)?;
    if source.optional && !target.optional && target.default.is_none() {
        return Err(format!(
            "{} is optional in the record's schema but required without a default in the current one",
            describe(target)
        ));
    }
    if value.is_null() {
        return match &target.default {
            _ if target.optional => Ok(Data::Null),
            Some(default) => default_value(target, default),
            None => Err(format!("null for required {}", describe(target))),
        };
    }
    match (&source.ty, &target.ty, value) {
        (ConnectType::Struct(from), ConnectType::Struct(to), Data::Struct(values)) => {
            let mut out = Vec::with_capacity(to.len());
            for field in to {
                let projected = match from.iter().position(|f| f.name == field.name) {
                    Some(i) => {
                        let v = values.get(i).ok_or_else(|| {
                            "a struct value has fewer fields than its schema".to_owned()
                        })?;
                        project(&from[i].schema, v, &field.schema)
                            .map_err(|e| format!("field {}: {e}", field.name))?
                    }
                    None => match &field.schema.default {
                        Some(default) => default_value(&field.schema, default)
                            .map_err(|e| format!("field {}: {e}", field.name))?,
                        None if field.schema.optional => Data::Null,
                        None => {
                            return Err(format!(
                                "required field {} is missing from the record's schema",
                                field.name
                            ));
                        }
                    },
                };
                out.push(projected);
            }
            Ok(Data::Struct(out))
        }
        (ConnectType::Array(from), ConnectType::Array(to), Data::Array(items)) => items
            .iter()
            .map(|item| project(from, item, to))
            .collect::<Result<Vec<_>, _>>()
            .map(Data::Array),
        (ConnectType::Map(from_k, from_v), ConnectType::Map(to_k, to_v), Data::Map(entries)) => {
            entries
                .iter()
                .map(|(k, v)| Ok((project(from_k, k, to_k)?, project(from_v, v, to_v)?)))
                .collect::<Result<Vec<_>, String>>()
                .map(Data::Map)
        }
        (_, ty, v) => promote(v, ty).ok_or_else(|| {
            format!(
                "a {} value does not fit {}",
                type_name(&source.ty),
                describe(target)
            )
        }),
    }
}

/// Source and target agree on type (or the type promotes), name and parameters.
fn check_maybe_compatible(source: &ConnectSchema, target: &ConnectSchema) -> Result<(), String> {
    let (from, to) = (type_name(&source.ty), type_name(&target.ty));
    if from != to && !promotes(&source.ty, &target.ty) {
        return Err(format!("type {from} does not project onto {to}"));
    }
    if source.name != target.name {
        return Err(format!(
            "schema name {:?} differs from {:?}",
            source.name.as_deref().unwrap_or(""),
            target.name.as_deref().unwrap_or("")
        ));
    }
    let mut a: Vec<_> = source.parameters.iter().collect();
    let mut b: Vec<_> = target.parameters.iter().collect();
    a.sort();
    b.sort();
    if a != b {
        return Err(format!("the parameters of {} differ", describe(target)));
    }
    Ok(())
}

fn rank(ty: &ConnectType) -> Option<u8> {
    Some(match ty {
        ConnectType::Int8 => 0,
        ConnectType::Int16 => 1,
        ConnectType::Int32 => 2,
        ConnectType::Int64 => 3,
        ConnectType::Float32 => 4,
        ConnectType::Float64 => 5,
        _ => return None,
    })
}

/// Kafka Connect's promotable numeric types.
fn promotes(from: &ConnectType, to: &ConnectType) -> bool {
    matches!((rank(from), rank(to)), (Some(a), Some(b)) if a < b)
}

/// A primitive value as a value of type `ty` (itself, or widened).
fn promote(value: &Data, ty: &ConnectType) -> Option<Data> {
    let float = |v: &Data| -> Option<f64> {
        match v {
            Data::Float32(f) => Some(f64::from(*f)),
            Data::Float64(f) => Some(*f),
            other => other.as_i64().map(|n| n as f64),
        }
    };
    Some(match (ty, value) {
        (ConnectType::Boolean, Data::Boolean(b)) => Data::Boolean(*b),
        (ConnectType::String, Data::String(s)) => Data::String(s.clone()),
        (ConnectType::Bytes, Data::Bytes(b)) => Data::Bytes(b.clone()),
        (ConnectType::Int8, Data::Int8(n)) => Data::Int8(*n),
        (ConnectType::Int16, Data::Int8(_) | Data::Int16(_)) => {
            Data::Int16(i16::try_from(value.as_i64()?).ok()?)
        }
        (ConnectType::Int32, Data::Int8(_) | Data::Int16(_) | Data::Int32(_)) => {
            Data::Int32(i32::try_from(value.as_i64()?).ok()?)
        }
        (ConnectType::Int64, Data::Int8(_) | Data::Int16(_) | Data::Int32(_) | Data::Int64(_)) => {
            Data::Int64(value.as_i64()?)
        }
        (ConnectType::Float32, Data::Float64(_)) => return None,
        (ConnectType::Float32, v) => Data::Float32(float(v)? as f32),
        (ConnectType::Float64, v) => Data::Float64(float(v)?),
        _ => return None,
    })
}

/// A schema's default (Kafka Connect JSON: bytes in base64) as a value.
fn default_value(schema: &ConnectSchema, default: &J) -> Result<Data, String> {
    let bad = || format!("default {default} does not fit {}", describe(schema));
    if default.is_null() {
        return if schema.optional {
            Ok(Data::Null)
        } else {
            Err(bad())
        };
    }
    let int = || default.as_i64().ok_or_else(bad);
    Ok(match &schema.ty {
        ConnectType::Boolean => Data::Boolean(default.as_bool().ok_or_else(bad)?),
        ConnectType::Int8 => Data::Int8(i8::try_from(int()?).map_err(|_| bad())?),
        ConnectType::Int16 => Data::Int16(i16::try_from(int()?).map_err(|_| bad())?),
        ConnectType::Int32 => Data::Int32(i32::try_from(int()?).map_err(|_| bad())?),
        ConnectType::Int64 => Data::Int64(int()?),
        ConnectType::Float32 => Data::Float32(default.as_f64().ok_or_else(bad)? as f32),
        ConnectType::Float64 => Data::Float64(default.as_f64().ok_or_else(bad)?),
        ConnectType::String => Data::String(default.as_str().ok_or_else(bad)?.to_owned()),
        ConnectType::Bytes => Data::Bytes(Bytes::from(
            BASE64
                .decode(default.as_str().ok_or_else(bad)?)
                .map_err(|_| bad())?,
        )),
        ConnectType::Array(items) => Data::Array(
            default
                .as_array()
                .ok_or_else(bad)?
                .iter()
                .map(|d| default_value(items, d))
                .collect::<Result<_, _>>()?,
        ),
        ConnectType::Map(keys, values) => {
            if keys.ty != ConnectType::String {
                return Err(bad());
            }
            Data::Map(
                default
                    .as_object()
                    .ok_or_else(bad)?
                    .iter()
                    .map(|(k, v)| Ok((Data::String(k.clone()), default_value(values, v)?)))
                    .collect::<Result<_, String>>()?,
            )
        }
        ConnectType::Struct(fields) => {
            let obj = default.as_object().ok_or_else(bad)?;
            Data::Struct(
                fields
                    .iter()
                    .map(|f| match (obj.get(&f.name), &f.schema.default) {
                        (Some(d), _) | (None, Some(d)) => default_value(&f.schema, d),
                        (None, None) => default_value(&f.schema, &J::Null),
                    })
                    .collect::<Result<_, _>>()?,
            )
        }
    })
}

fn type_name(ty: &ConnectType) -> &'static str {
    match ty {
        ConnectType::Int8 => "int8",
        ConnectType::Int16 => "int16",
        ConnectType::Int32 => "int32",
        ConnectType::Int64 => "int64",
        ConnectType::Float32 => "float32",
        ConnectType::Float64 => "float64",
        ConnectType::Boolean => "boolean",
        ConnectType::String => "string",
        ConnectType::Bytes => "bytes",
        ConnectType::Array(_) => "array",
        ConnectType::Map(..) => "map",
        ConnectType::Struct(_) => "struct",
    }
}

fn describe(schema: &ConnectSchema) -> String {
    match &schema.name {
        Some(name) => format!("{} {name}", type_name(&schema.ty)),
        None => type_name(&schema.ty).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tributary_runtime::data::ConnectField;

    use super::*;

    fn field(name: &str, schema: ConnectSchema) -> ConnectField {
        ConnectField {
            name: name.into(),
            schema,
        }
    }

    fn prim(ty: ConnectType, optional: bool) -> ConnectSchema {
        ConnectSchema::new(ty).optional(optional)
    }

    fn versioned(name: &str, version: Option<u32>, fields: Vec<ConnectField>) -> ConnectSchema {
        ConnectSchema {
            name: Some(name.into()),
            version,
            ..ConnectSchema::new(ConnectType::Struct(fields))
        }
    }

    /// v1: {id int32}; v2 adds an optional string and a required int64 with a default.
    fn v1() -> ConnectSchema {
        versioned(
            "orders",
            Some(1),
            vec![field("id", prim(ConnectType::Int32, false))],
        )
    }

    fn v2() -> ConnectSchema {
        versioned(
            "orders",
            Some(2),
            vec![
                field("id", prim(ConnectType::Int64, false)),
                field("note", prim(ConnectType::String, true)),
                field(
                    "qty",
                    ConnectSchema {
                        default: Some(json!(7)),
                        ..prim(ConnectType::Int64, false)
                    },
                ),
            ],
        )
    }

    #[test]
    fn decisions_follow_confluent() {
        use Decision::{Project, Roll};
        use SchemaCompatibility::{Backward, Forward, Full, None};
        let (old, new) = (v1(), v2());
        let cases = [
            (None, &old, &new, Roll(RollReason::AnyChange)),
            (None, &new, &old, Roll(RollReason::AnyChange)),
            (Backward, &old, &new, Roll(RollReason::Version)),
            (Backward, &new, &old, Project),
            (Full, &old, &new, Roll(RollReason::Version)),
            (Full, &new, &old, Project),
            (Forward, &old, &new, Project),
            (Forward, &new, &old, Roll(RollReason::Version)),
        ];
        for (mode, current, incoming, expected) in cases {
            assert_eq!(
                decide(mode, Some(current), Some(incoming)),
                expected,
                "{mode:?}: current v{:?}, record v{:?}",
                current.version,
                incoming.version
            );
        }
        // Same version, other fields: projected, as Confluent does.
        let mut same = v2();
        same.version = Some(1);
        assert_eq!(decide(Backward, Some(&old), Some(&same)), Project);
        // Another record type, no version, no schema: roll.
        let other = versioned("customers", Some(1), Vec::new());
        assert_eq!(
            decide(Backward, Some(&new), Some(&other)),
            Roll(RollReason::OtherName)
        );
        let unversioned = versioned("orders", Option::None, Vec::new());
        assert_eq!(
            decide(Full, Some(&new), Some(&unversioned)),
            Roll(RollReason::NoVersion)
        );
        assert_eq!(
            decide(Forward, Option::None, Some(&new)),
            Roll(RollReason::SchemaLess)
        );
    }

    #[test]
    fn older_records_project_onto_newer_schemas() {
        let projected =
            project(&v1(), &Data::Struct(vec![Data::Int32(5)]), &v2()).expect("project");
        // id widened, the missing optional field null, the missing required one its default.
        assert_eq!(
            projected,
            Data::Struct(vec![Data::Int64(5), Data::Null, Data::Int64(7)])
        );
        // Newer onto older (FORWARD): fields the older schema lacks are dropped; int64 does
        // not narrow to int32.
        let newer = Data::Struct(vec![
            Data::Int64(5),
            Data::String("n".into()),
            Data::Int64(1),
        ]);
        let err = project(&v2(), &newer, &v1()).expect_err("int64 onto int32");
        assert!(err.contains("field id"), "{err}");
        let mut narrow = v1();
        if let ConnectType::Struct(fields) = &mut narrow.ty {
            fields[0].schema.ty = ConnectType::Int64;
        }
        assert_eq!(
            project(&v2(), &newer, &narrow).expect("project"),
            Data::Struct(vec![Data::Int64(5)])
        );
    }

    #[test]
    fn projection_refuses_what_connect_refuses() {
        // A required field without default missing from the record's schema.
        let mut strict = v2();
        if let ConnectType::Struct(fields) = &mut strict.ty {
            fields[2].schema.default = Option::None;
        }
        let err =
            project(&v1(), &Data::Struct(vec![Data::Int32(1)]), &strict).expect_err("missing");
        assert!(err.contains("required field qty"), "{err}");
        // Other names, parameters, non-promotable types.
        let named = |name: &str| ConnectSchema {
            name: Some(name.into()),
            ..prim(ConnectType::Int32, false)
        };
        assert!(project(&named("a"), &Data::Int32(1), &named("b")).is_err());
        let decimal = |scale: &str| ConnectSchema {
            parameters: vec![("scale".into(), scale.into())],
            ..named("org.apache.kafka.connect.data.Decimal")
        };
        assert!(project(&decimal("2"), &Data::Int32(1), &decimal("3")).is_err());
        assert!(
            project(
                &prim(ConnectType::String, false),
                &Data::String("1".into()),
                &prim(ConnectType::Int32, false)
            )
            .is_err()
        );
        assert!(
            project(
                &prim(ConnectType::Float64, false),
                &Data::Float64(1.5),
                &prim(ConnectType::Float32, false)
            )
            .is_err()
        );
        // Optional onto required without a default is refused even for a present value.
        assert!(
            project(
                &prim(ConnectType::Int32, true),
                &Data::Int32(1),
                &prim(ConnectType::Int32, false)
            )
            .is_err()
        );
        // With a default, a null takes it.
        let with_default = ConnectSchema {
            default: Some(json!(3)),
            ..prim(ConnectType::Int32, false)
        };
        assert_eq!(
            project(&prim(ConnectType::Int32, true), &Data::Null, &with_default),
            Ok(Data::Int32(3))
        );
    }

    #[test]
    fn arrays_maps_and_nested_structs_project_element_wise() {
        let inner = |version| {
            versioned(
                "line",
                version,
                if version == Some(1) {
                    vec![field("sku", prim(ConnectType::String, false))]
                } else {
                    vec![
                        field("sku", prim(ConnectType::String, false)),
                        field(
                            "tags",
                            ConnectSchema {
                                default: Some(json!(["x"])),
                                ..prim(
                                    ConnectType::Array(Box::new(prim(ConnectType::String, false))),
                                    false,
                                )
                            },
                        ),
                    ]
                },
            )
        };
        let outer = |version| {
            versioned(
                "order",
                version,
                vec![
                    field(
                        "lines",
                        prim(ConnectType::Array(Box::new(inner(version))), false),
                    ),
                    field(
                        "counts",
                        prim(
                            ConnectType::Map(
                                Box::new(prim(ConnectType::String, false)),
                                Box::new(prim(
                                    if version == Some(1) {
                                        ConnectType::Int16
                                    } else {
                                        ConnectType::Float64
                                    },
                                    true,
                                )),
                            ),
                            false,
                        ),
                    ),
                ],
            )
        };
        let value = Data::Struct(vec![
            Data::Array(vec![Data::Struct(vec![Data::String("a".into())])]),
            Data::Map(vec![
                (Data::String("k".into()), Data::Int16(2)),
                (Data::String("z".into()), Data::Null),
            ]),
        ]);
        assert_eq!(
            project(&outer(Some(1)), &value, &outer(Some(2))).expect("project"),
            Data::Struct(vec![
                Data::Array(vec![Data::Struct(vec![
                    Data::String("a".into()),
                    Data::Array(vec![Data::String("x".into())]),
                ])]),
                Data::Map(vec![
                    (Data::String("k".into()), Data::Float64(2.0)),
                    (Data::String("z".into()), Data::Null),
                ]),
            ])
        );
    }

    #[test]
    fn config_names_parse() {
        assert_eq!(
            SchemaCompatibility::parse("backward"),
            Some(SchemaCompatibility::Backward)
        );
        assert_eq!(
            SchemaCompatibility::parse("FULL"),
            Some(SchemaCompatibility::Full)
        );
        assert_eq!(SchemaCompatibility::parse("transitive"), Option::None);
    }
}
