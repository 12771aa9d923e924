//! `use.latest.version`: a record encoded with the schema we derived (the *writer*) rewritten
//! into the subject's latest schema (the *reader*), following Avro's schema-resolution rules
//! (<https://avro.apache.org/docs/1.11.1/specification/#schema-resolution>):
//!
//! - record fields match by name, or by an alias of the latest schema's field; a field of the
//!   latest schema that our record lacks takes its default (no default: an error), fields the
//!   latest schema lacks are dropped; records match by unqualified name (or alias);
//! - `int`→`long`→`float`→`double` and `string`↔`bytes` promote;
//! - a union on our side (`["null", T]`) resolves branch by branch: a branch the latest schema
//!   cannot hold fails only the records that use it (a null for a field the latest schema
//!   declares required); a value going into a union of the latest schema takes its branch of
//!   the same type, else the first branch it promotes to;
//! - enum symbols map by name (else to the latest enum's default), fixed sizes must agree;
//! - logical types are annotations of the latest schema and kept; when both sides carry a
//!   logical type they must agree (and decimals their scale): a value is never silently
//!   reinterpreted.
//!
//! [`Projection::compile`] does all the matching once and returns a plan; errors that no
//! record can avoid (a missing default, an incompatible type) are found there.
//! [`Projection::project`] then transcodes Avro binary to Avro binary without building values:
//! a part of the plan whose bytes do not change (same types, same field order) is copied as
//! is, and a plan that copies everything ([`Projection::is_identity`]) need not be applied.

use std::collections::HashMap;

use serde_json::Value as J;

use super::avro::{write_bytes, write_long};

/// Why a record cannot be written with the latest schema: the field path (`after.email`,
/// empty for the whole record) and the reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{reason}", field_prefix(path))]
pub struct ProjectionError {
    pub path: String,
    pub reason: String,
}

fn field_prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("field {path}: ")
    }
}

impl ProjectionError {
    fn new(path: &str, reason: impl Into<String>) -> Self {
        ProjectionError {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }
}

/// A compiled projection from our schema onto the latest one.
#[derive(Debug)]
pub struct Projection {
    root: Step,
}

impl Projection {
    /// Matches `writer` (our derived schema) against `reader` (the latest schema), both Avro
    /// schema text.
    pub fn compile(writer: &str, reader: &str) -> Result<Projection, ProjectionError> {
        let w = parse(writer)
            .map_err(|e| ProjectionError::new("", format!("our schema cannot be read: {e}")))?;
        let r = parse(reader).map_err(|e| {
            ProjectionError::new("", format!("the latest schema cannot be read: {e}"))
        })?;
        Ok(Projection {
            root: resolve(&w, &r, "")?,
        })
    }

    /// Whether the bytes we write are already valid under the latest schema (the schemas
    /// differ only in names' namespaces, docs or other properties).
    pub fn is_identity(&self) -> bool {
        matches!(self.root, Step::Copy(_))
    }

    /// Appends the latest schema's encoding of `datum` (our encoding) to `out`.
    pub fn project(&self, datum: &[u8], out: &mut Vec<u8>) -> Result<(), ProjectionError> {
        let mut input = datum;
        self.root.apply(&mut input, out)?;
        if !input.is_empty() {
            return Err(malformed(format!(
                "{} bytes left after the record",
                input.len()
            )));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Schemas

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prim {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
}

impl Prim {
    fn name(self) -> &'static str {
        match self {
            Prim::Null => "null",
            Prim::Boolean => "boolean",
            Prim::Int => "int",
            Prim::Long => "long",
            Prim::Float => "float",
            Prim::Double => "double",
            Prim::Bytes => "bytes",
            Prim::String => "string",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Logical {
    name: String,
    /// Decimals: the scale (0 when absent, as the spec says).
    scale: Option<u64>,
}

#[derive(Debug, Clone)]
struct Named {
    full: String,
    aliases: Vec<String>,
}

fn unqualified(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

impl Named {
    /// Whether this (reader) type reads the writer's type of name `w`.
    fn reads(&self, w: &Named) -> bool {
        let wn = unqualified(&w.full);
        unqualified(&self.full) == wn
            || self
                .aliases
                .iter()
                .any(|a| a == &w.full || unqualified(a) == wn)
    }
}

#[derive(Debug, Clone)]
struct Field {
    name: String,
    aliases: Vec<String>,
    schema: Schema,
    /// `"default"` as written (`Some(Null)` for `"default": null`).
    default: Option<J>,
}

#[derive(Debug, Clone)]
enum Schema {
    Prim(Prim, Option<Logical>),
    Fixed {
        name: Named,
        size: usize,
    },
    Enum {
        name: Named,
        symbols: Vec<String>,
        default: Option<String>,
    },
    Array(Box<Schema>),
    Map(Box<Schema>),
    Record {
        name: Named,
        fields: Vec<Field>,
    },
    Union(Vec<Schema>),
}

impl Schema {
    fn describe(&self) -> String {
        match self {
            Schema::Prim(p, None) => p.name().to_owned(),
            Schema::Prim(p, Some(l)) => format!("{} ({})", p.name(), l.name),
            Schema::Fixed { name, size } => format!("fixed {} of {size} bytes", name.full),
            Schema::Enum { name, .. } => format!("enum {}", name.full),
            Schema::Array(_) => "array".into(),
            Schema::Map(_) => "map".into(),
            Schema::Record { name, .. } => format!("record {}", name.full),
            Schema::Union(branches) => format!(
                "union [{}]",
                branches
                    .iter()
                    .map(Schema::describe)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// Deep enough for any schema we derive; a bound on hostile or recursive ones.
const MAX_DEPTH: usize = 64;

fn parse(text: &str) -> Result<Schema, String> {
    let json: J = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    parse_node(&json, None, &mut HashMap::new(), 0)
}

fn full_name(obj: &serde_json::Map<String, J>, namespace: Option<&str>) -> Option<String> {
    let name = obj.get("name")?.as_str()?;
    if name.contains('.') {
        return Some(name.to_owned());
    }
    match obj.get("namespace").and_then(J::as_str).or(namespace) {
        Some(ns) if !ns.is_empty() => Some(format!("{ns}.{name}")),
        _ => Some(name.to_owned()),
    }
}

fn strings(obj: &serde_json::Map<String, J>, key: &str) -> Vec<String> {
    obj.get(key)
        .and_then(J::as_array)
        .map(|a| a.iter().filter_map(J::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

fn primitive(name: &str) -> Option<Prim> {
    Some(match name {
        "null" => Prim::Null,
        "boolean" => Prim::Boolean,
        "int" => Prim::Int,
        "long" => Prim::Long,
        "float" => Prim::Float,
        "double" => Prim::Double,
        "bytes" => Prim::Bytes,
        "string" => Prim::String,
        _ => return None,
    })
}

fn parse_node(
    j: &J,
    namespace: Option<&str>,
    names: &mut HashMap<String, Schema>,
    depth: usize,
) -> Result<Schema, String> {
    if depth > MAX_DEPTH {
        return Err(format!("nested deeper than {MAX_DEPTH} levels"));
    }
    match j {
        J::String(name) => {
            if let Some(p) = primitive(name) {
                return Ok(Schema::Prim(p, None));
            }
            let qualified = match namespace {
                Some(ns) if !name.contains('.') && !ns.is_empty() => format!("{ns}.{name}"),
                _ => name.clone(),
            };
            // A name is known once its definition is complete: a reference from inside its
            // own definition (a recursive type) is not found.
            names
                .get(&qualified)
                .or_else(|| names.get(name))
                .cloned()
                .ok_or_else(|| format!("unknown type {name:?} (recursive types are not supported)"))
        }
        J::Array(branches) => Ok(Schema::Union(
            branches
                .iter()
                .map(|b| parse_node(b, namespace, names, depth + 1))
                .collect::<Result<_, _>>()?,
        )),
        J::Object(obj) => {
            let ty = obj.get("type").ok_or("a schema object needs \"type\"")?;
            let ty = match ty {
                J::String(t) => t.as_str(),
                nested => return parse_node(nested, namespace, names, depth + 1),
            };
            let named = |what: &str| -> Result<Named, String> {
                Ok(Named {
                    full: full_name(obj, namespace).ok_or(format!("a {what} needs a name"))?,
                    aliases: strings(obj, "aliases"),
                })
            };
            let schema = match ty {
                "record" | "error" => {
                    let name = named("record")?;
                    let own_ns = name.full.rsplit_once('.').map(|(ns, _)| ns.to_owned());
                    let fields =
                        obj.get("fields")
                            .and_then(J::as_array)
                            .ok_or_else(|| format!("record {} needs \"fields\"", name.full))?
                            .iter()
                            .map(|f| {
                                let fname = f.get("name").and_then(J::as_str).ok_or_else(|| {
                                    format!("a field of {} has no name", name.full)
                                })?;
                                let fty = f
                                    .get("type")
                                    .ok_or_else(|| format!("field {fname} has no type"))?;
                                Ok(Field {
                                    name: fname.to_owned(),
                                    aliases: f
                                        .as_object()
                                        .map(|o| strings(o, "aliases"))
                                        .unwrap_or_default(),
                                    schema: parse_node(fty, own_ns.as_deref(), names, depth + 1)
                                        .map_err(|e| format!("field {fname}: {e}"))?,
                                    default: f.get("default").cloned(),
                                })
                            })
                            .collect::<Result<Vec<_>, String>>()?;
                    let full = name.full.clone();
                    let schema = Schema::Record { name, fields };
                    names.insert(full, schema.clone());
                    schema
                }
                "enum" => {
                    let name = named("enum")?;
                    let full = name.full.clone();
                    let schema = Schema::Enum {
                        name,
                        symbols: strings(obj, "symbols"),
                        default: obj.get("default").and_then(J::as_str).map(str::to_owned),
                    };
                    names.insert(full, schema.clone());
                    schema
                }
                "fixed" => {
                    let name = named("fixed")?;
                    let size = obj
                        .get("size")
                        .and_then(J::as_u64)
                        .and_then(|s| usize::try_from(s).ok())
                        .ok_or_else(|| format!("fixed {} needs a size", name.full))?;
                    let full = name.full.clone();
                    let schema = Schema::Fixed { name, size };
                    names.insert(full, schema.clone());
                    schema
                }
                "array" => Schema::Array(Box::new(parse_node(
                    obj.get("items").ok_or("an array needs \"items\"")?,
                    namespace,
                    names,
                    depth + 1,
                )?)),
                "map" => Schema::Map(Box::new(parse_node(
                    obj.get("values").ok_or("a map needs \"values\"")?,
                    namespace,
                    names,
                    depth + 1,
                )?)),
                other => {
                    let Some(p) = primitive(other) else {
                        // `{"type": "SomeName"}`: a reference.
                        return parse_node(&J::from(other), namespace, names, depth + 1);
                    };
                    let logical = obj.get("logicalType").and_then(J::as_str).map(|l| Logical {
                        name: l.to_owned(),
                        scale: (l == "decimal")
                            .then(|| obj.get("scale").and_then(J::as_u64).unwrap_or(0)),
                    });
                    Schema::Prim(p, logical)
                }
            };
            Ok(schema)
        }
        other => Err(format!("not an Avro schema: {other}")),
    }
}

// ---------------------------------------------------------------------------------------
// Plans

#[derive(Debug)]
enum Step {
    /// The bytes of this (writer) schema are the reader's bytes: copied.
    Copy(Schema),
    /// `int`/`long` to `float`.
    LongToFloat,
    /// `int`/`long` to `double`.
    LongToDouble,
    FloatToDouble,
    /// `bytes` to `string`: copied once checked to be UTF-8.
    BytesToString {
        path: String,
    },
    /// Enum: the reader's index of each writer symbol (or why it has none).
    Enum(Vec<Result<u32, ProjectionError>>),
    Array(Box<Step>),
    Map(Box<Step>),
    Record(RecordStep),
    /// A writer union: per branch, the reader's branch (when the reader is a union) and how
    /// to write the value, or why the latest schema cannot hold it.
    FromUnion(Vec<Result<Branch, ProjectionError>>),
    /// A writer value into a reader union.
    ToUnion {
        index: u32,
        step: Box<Step>,
    },
}

#[derive(Debug)]
struct Branch {
    index: Option<u32>,
    step: Step,
}

#[derive(Debug)]
struct RecordStep {
    /// Per writer field in order: skipped, or written as reader field `.0`.
    writer: Vec<Take>,
    /// Per reader field in order: from the writer, or its encoded default.
    reader: Vec<Option<Vec<u8>>>,
    /// The writer fields arrive in the reader's order: stream them (else collect, then
    /// reorder).
    in_order: bool,
}

#[derive(Debug)]
enum Take {
    Skip(Schema),
    Into(usize, Step),
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

/// Same kind of type, so that a failure inside is the answer (not "try another branch").
fn same_kind(w: &Schema, r: &Schema) -> bool {
    match (w, r) {
        (Schema::Prim(a, _), Schema::Prim(b, _)) => a == b,
        (Schema::Record { name: wn, .. }, Schema::Record { name: rn, .. })
        | (Schema::Enum { name: wn, .. }, Schema::Enum { name: rn, .. })
        | (Schema::Fixed { name: wn, .. }, Schema::Fixed { name: rn, .. }) => rn.reads(wn),
        (Schema::Array(_), Schema::Array(_)) | (Schema::Map(_), Schema::Map(_)) => true,
        _ => false,
    }
}

fn mismatch(w: &Schema, r: &Schema, path: &str) -> ProjectionError {
    ProjectionError::new(
        path,
        format!(
            "the latest schema has type {}, ours {}, which it cannot hold",
            r.describe(),
            w.describe()
        ),
    )
}

/// The branch of the reader union `branches` for writer type `w`: the same kind first, else
/// the first one it promotes to; `Ok(None)` when none can hold it.
fn pick(
    w: &Schema,
    branches: &[Schema],
    path: &str,
) -> Result<Option<(u32, Step)>, ProjectionError> {
    let index =
        |j: usize| u32::try_from(j).map_err(|_| ProjectionError::new(path, "union too large"));
    if let Some(j) = branches.iter().position(|r| same_kind(w, r)) {
        return Ok(Some((index(j)?, resolve(w, &branches[j], path)?)));
    }
    for (j, r) in branches.iter().enumerate() {
        if let Ok(step) = resolve(w, r, path) {
            return Ok(Some((index(j)?, step)));
        }
    }
    Ok(None)
}

fn resolve(w: &Schema, r: &Schema, path: &str) -> Result<Step, ProjectionError> {
    match (w, r) {
        (Schema::Union(wb), _) => {
            let mut branches = Vec::with_capacity(wb.len());
            for wbranch in wb {
                let branch = match r {
                    Schema::Union(rb) => pick(wbranch, rb, path)?
                        .map(|(index, step)| Branch {
                            index: Some(index),
                            step,
                        })
                        .ok_or_else(|| {
                            ProjectionError::new(
                                path,
                                format!(
                                    "the latest schema's {} has no branch for a {} value",
                                    r.describe(),
                                    wbranch.describe()
                                ),
                            )
                        }),
                    _ if same_kind(wbranch, r) => Ok(Branch {
                        index: None,
                        step: resolve(wbranch, r, path)?,
                    }),
                    _ => resolve(wbranch, r, path)
                        .map(|step| Branch { index: None, step })
                        .map_err(|_| {
                            ProjectionError::new(
                                path,
                                format!(
                                    "a {} value cannot be written: the latest schema has type {}",
                                    wbranch.describe(),
                                    r.describe()
                                ),
                            )
                        }),
                };
                branches.push(branch);
            }
            // No branch can ever be written: that is the schema's problem, not a record's.
            if branches.iter().all(Result::is_err) {
                return Err(branches
                    .into_iter()
                    .find_map(Result::err)
                    .unwrap_or_else(|| mismatch(w, r, path)));
            }
            let copies = branches.iter().enumerate().all(|(i, b)| {
                matches!(b, Ok(Branch { index: Some(j), step: Step::Copy(_) }) if *j as usize == i)
            });
            Ok(if copies {
                Step::Copy(w.clone())
            } else {
                Step::FromUnion(branches)
            })
        }
        (_, Schema::Union(rb)) => match pick(w, rb, path)? {
            Some((index, step)) => Ok(Step::ToUnion {
                index,
                step: Box::new(step),
            }),
            None => Err(mismatch(w, r, path)),
        },
        (Schema::Prim(wp, wl), Schema::Prim(rp, rl)) => {
            if let (Some(wl), Some(rl)) = (wl, rl)
                && wl != rl
            {
                let show = |l: &Logical| match l.scale {
                    Some(s) => format!("{} with scale {s}", l.name),
                    None => l.name.clone(),
                };
                return Err(ProjectionError::new(
                    path,
                    format!(
                        "the latest schema has logical type {}, ours {}; the value would change meaning",
                        show(rl),
                        show(wl)
                    ),
                ));
            }
            Ok(match (wp, rp) {
                (a, b) if a == b => Step::Copy(w.clone()),
                // Same encoding on both sides.
                (Prim::Int, Prim::Long) | (Prim::String, Prim::Bytes) => Step::Copy(w.clone()),
                (Prim::Int | Prim::Long, Prim::Float) => Step::LongToFloat,
                (Prim::Int | Prim::Long, Prim::Double) => Step::LongToDouble,
                (Prim::Float, Prim::Double) => Step::FloatToDouble,
                (Prim::Bytes, Prim::String) => Step::BytesToString {
                    path: path.to_owned(),
                },
                _ => return Err(mismatch(w, r, path)),
            })
        }
        (Schema::Fixed { name: wn, size: ws }, Schema::Fixed { name: rn, size: rs })
            if rn.reads(wn) =>
        {
            if ws != rs {
                return Err(ProjectionError::new(
                    path,
                    format!(
                        "fixed {} has {rs} bytes in the latest schema, {ws} in ours",
                        rn.full
                    ),
                ));
            }
            Ok(Step::Copy(w.clone()))
        }
        (
            Schema::Enum {
                name: wn,
                symbols: ws,
                ..
            },
            Schema::Enum {
                name: rn,
                symbols: rs,
                default,
            },
        ) if rn.reads(wn) => {
            let position = |s: &str| {
                rs.iter()
                    .position(|r| r == s)
                    .and_then(|i| u32::try_from(i).ok())
            };
            let map: Vec<Result<u32, ProjectionError>> = ws
                .iter()
                .map(|s| {
                    position(s)
                        .or_else(|| default.as_deref().and_then(position))
                        .ok_or_else(|| {
                            ProjectionError::new(
                                path,
                                format!(
                                    "symbol {s:?} is not in the latest schema's enum {} and it has no default",
                                    rn.full
                                ),
                            )
                        })
                })
                .collect();
            let copies = map
                .iter()
                .enumerate()
                .all(|(i, m)| matches!(m, Ok(j) if *j as usize == i));
            Ok(if copies {
                Step::Copy(w.clone())
            } else {
                Step::Enum(map)
            })
        }
        (Schema::Array(wi), Schema::Array(ri)) => Ok(match resolve(wi, ri, path)? {
            Step::Copy(_) => Step::Copy(w.clone()),
            step => Step::Array(Box::new(step)),
        }),
        (Schema::Map(wv), Schema::Map(rv)) => Ok(match resolve(wv, rv, path)? {
            Step::Copy(_) => Step::Copy(w.clone()),
            step => Step::Map(Box::new(step)),
        }),
        (
            Schema::Record {
                name: wn,
                fields: wf,
            },
            Schema::Record {
                name: rn,
                fields: rf,
            },
        ) if rn.reads(wn) => record(w, wf, rf, path),
        _ => Err(mismatch(w, r, path)),
    }
}

fn record(w: &Schema, wf: &[Field], rf: &[Field], path: &str) -> Result<Step, ProjectionError> {
    let mut writer: Vec<Take> = wf.iter().map(|f| Take::Skip(f.schema.clone())).collect();
    let mut reader = Vec::with_capacity(rf.len());
    for (j, field) in rf.iter().enumerate() {
        let fpath = join(path, &field.name);
        let free = |i: &usize| matches!(writer[*i], Take::Skip(_));
        let found = wf
            .iter()
            .position(|f| f.name == field.name)
            .filter(free)
            .or_else(|| {
                wf.iter()
                    .position(|f| field.aliases.contains(&f.name))
                    .filter(free)
            });
        match (found, &field.default) {
            (Some(i), _) => {
                writer[i] = Take::Into(j, resolve(&wf[i].schema, &field.schema, &fpath)?);
                reader.push(None);
            }
            (None, Some(default)) => {
                let mut bytes = Vec::new();
                encode_default(&field.schema, default, &mut bytes, 0).map_err(|e| {
                    ProjectionError::new(
                        &fpath,
                        format!(
                            "its default {default} in the latest schema does not fit its type: {e}"
                        ),
                    )
                })?;
                reader.push(Some(bytes));
            }
            (None, None) => {
                return Err(ProjectionError::new(
                    &fpath,
                    "not in our record, and the latest schema gives it no default",
                ));
            }
        }
    }
    let order: Vec<usize> = writer
        .iter()
        .filter_map(|t| match t {
            Take::Into(j, _) => Some(*j),
            Take::Skip(_) => None,
        })
        .collect();
    let in_order = order.windows(2).all(|p| p[0] < p[1]);
    let copies = in_order
        && rf.len() == wf.len()
        && writer
            .iter()
            .all(|t| matches!(t, Take::Into(_, Step::Copy(_))));
    Ok(if copies {
        Step::Copy(w.clone())
    } else {
        Step::Record(RecordStep {
            writer,
            reader,
            in_order,
        })
    })
}

/// Writes a field default (JSON, as in the schema) in Avro binary. A union's default is for
/// its first branch (the spec); other branches are tried too, for schemas written loosely.
fn encode_default(schema: &Schema, j: &J, out: &mut Vec<u8>, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err("nested too deeply".into());
    }
    let bad = || format!("{j} is not a {}", schema.describe());
    match schema {
        Schema::Prim(p, _) => match (p, j) {
            (Prim::Null, J::Null) => {}
            (Prim::Boolean, J::Bool(b)) => out.push(u8::from(*b)),
            (Prim::Int, J::Number(n)) => {
                let v = n
                    .as_i64()
                    .filter(|v| i32::try_from(*v).is_ok())
                    .ok_or_else(bad)?;
                write_long(out, v);
            }
            (Prim::Long, J::Number(n)) => write_long(out, n.as_i64().ok_or_else(bad)?),
            (Prim::Float, J::Number(n)) => {
                out.extend_from_slice(&(n.as_f64().ok_or_else(bad)? as f32).to_le_bytes())
            }
            (Prim::Double, J::Number(n)) => {
                out.extend_from_slice(&n.as_f64().ok_or_else(bad)?.to_le_bytes())
            }
            (Prim::Bytes, J::String(s)) => write_bytes(out, &default_bytes(s)?),
            (Prim::String, J::String(s)) => write_bytes(out, s.as_bytes()),
            _ => return Err(bad()),
        },
        Schema::Fixed { size, .. } => {
            let bytes = default_bytes(j.as_str().ok_or_else(bad)?)?;
            if bytes.len() != *size {
                return Err(bad());
            }
            out.extend_from_slice(&bytes);
        }
        Schema::Enum { symbols, .. } => {
            let s = j.as_str().ok_or_else(bad)?;
            let i = symbols.iter().position(|x| x == s).ok_or_else(bad)?;
            write_long(out, i as i64);
        }
        Schema::Array(items) => {
            let values = j.as_array().ok_or_else(bad)?;
            if !values.is_empty() {
                write_long(out, values.len() as i64);
                for v in values {
                    encode_default(items, v, out, depth + 1)?;
                }
            }
            out.push(0);
        }
        Schema::Map(values) => {
            let entries = j.as_object().ok_or_else(bad)?;
            if !entries.is_empty() {
                write_long(out, entries.len() as i64);
                for (k, v) in entries {
                    write_bytes(out, k.as_bytes());
                    encode_default(values, v, out, depth + 1)?;
                }
            }
            out.push(0);
        }
        Schema::Record { fields, .. } => {
            let obj = j.as_object().ok_or_else(bad)?;
            for f in fields {
                let v = obj
                    .get(&f.name)
                    .or(f.default.as_ref())
                    .ok_or_else(|| format!("no value for field {}", f.name))?;
                encode_default(&f.schema, v, out, depth + 1)
                    .map_err(|e| format!("field {}: {e}", f.name))?;
            }
        }
        Schema::Union(branches) => {
            let mark = out.len();
            let mut first = None;
            for (i, b) in branches.iter().enumerate() {
                write_long(out, i as i64);
                match encode_default(b, j, out, depth + 1) {
                    Ok(()) => return Ok(()),
                    Err(e) => {
                        out.truncate(mark);
                        first.get_or_insert(e);
                    }
                }
            }
            return Err(first.unwrap_or_else(bad));
        }
    }
    Ok(())
}

/// Avro's JSON encoding of `bytes`/`fixed` defaults: one byte per code point 0-255.
fn default_bytes(s: &str) -> Result<Vec<u8>, String> {
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).map_err(|_| format!("{c:?} is not a byte")))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Transcoding

/// Our own encoding does not parse: a bug, reported as such.
fn malformed(e: impl std::fmt::Display) -> ProjectionError {
    ProjectionError::new("", format!("our encoding of the record is malformed: {e}"))
}

fn read_long(input: &mut &[u8]) -> Result<i64, ProjectionError> {
    super::avro::read_long(input).map_err(malformed)
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], ProjectionError> {
    super::avro::take(input, n).map_err(malformed)
}

fn read_len(input: &mut &[u8]) -> Result<usize, ProjectionError> {
    super::avro::read_len(input).map_err(malformed)
}

/// One array/map block's item count (0: the end), skipping a block's byte size.
fn block_count(input: &mut &[u8]) -> Result<u64, ProjectionError> {
    let count = read_long(input)?;
    if count < 0 {
        read_long(input)?;
    }
    Ok(count.unsigned_abs())
}

/// Moves `input` past one value of `schema`.
fn skip(schema: &Schema, input: &mut &[u8]) -> Result<(), ProjectionError> {
    match schema {
        Schema::Prim(p, _) => match p {
            Prim::Null => {}
            Prim::Boolean => {
                take(input, 1)?;
            }
            Prim::Int | Prim::Long => {
                read_long(input)?;
            }
            Prim::Float => {
                take(input, 4)?;
            }
            Prim::Double => {
                take(input, 8)?;
            }
            Prim::Bytes | Prim::String => {
                let n = read_len(input)?;
                take(input, n)?;
            }
        },
        Schema::Fixed { size, .. } => {
            take(input, *size)?;
        }
        Schema::Enum { .. } => {
            read_long(input)?;
        }
        Schema::Array(items) => loop {
            let count = block_count(input)?;
            if count == 0 {
                break;
            }
            for _ in 0..count {
                skip(items, input)?;
            }
        },
        Schema::Map(values) => loop {
            let count = block_count(input)?;
            if count == 0 {
                break;
            }
            for _ in 0..count {
                let n = read_len(input)?;
                take(input, n)?;
                skip(values, input)?;
            }
        },
        Schema::Record { fields, .. } => {
            for f in fields {
                skip(&f.schema, input)?;
            }
        }
        Schema::Union(branches) => {
            let b = read_len(input)?;
            let branch = branches
                .get(b)
                .ok_or_else(|| malformed(format!("union branch {b} out of range")))?;
            skip(branch, input)?;
        }
    }
    Ok(())
}

impl Step {
    fn apply(&self, input: &mut &[u8], out: &mut Vec<u8>) -> Result<(), ProjectionError> {
        match self {
            Step::Copy(schema) => {
                let start = *input;
                skip(schema, input)?;
                out.extend_from_slice(&start[..start.len() - input.len()]);
            }
            Step::LongToFloat => {
                let n = read_long(input)?;
                out.extend_from_slice(&(n as f32).to_le_bytes());
            }
            Step::LongToDouble => {
                let n = read_long(input)?;
                out.extend_from_slice(&(n as f64).to_le_bytes());
            }
            Step::FloatToDouble => {
                let b = take(input, 4)?;
                let f = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                out.extend_from_slice(&f64::from(f).to_le_bytes());
            }
            Step::BytesToString { path } => {
                let n = read_len(input)?;
                let bytes = take(input, n)?;
                std::str::from_utf8(bytes).map_err(|e| {
                    ProjectionError::new(
                        path,
                        format!("bytes that are not UTF-8 cannot be written as the latest schema's string: {e}"),
                    )
                })?;
                write_bytes(out, bytes);
            }
            Step::Enum(map) => {
                let i = read_len(input)?;
                let j = map
                    .get(i)
                    .ok_or_else(|| malformed(format!("enum index {i} out of range")))?
                    .clone()?;
                write_long(out, i64::from(j));
            }
            Step::Array(items) => loop {
                let count = block_count(input)?;
                if count == 0 {
                    out.push(0);
                    break;
                }
                write_long(out, count as i64);
                for _ in 0..count {
                    items.apply(input, out)?;
                }
            },
            Step::Map(values) => loop {
                let count = block_count(input)?;
                if count == 0 {
                    out.push(0);
                    break;
                }
                write_long(out, count as i64);
                for _ in 0..count {
                    let n = read_len(input)?;
                    write_bytes(out, take(input, n)?);
                    values.apply(input, out)?;
                }
            },
            Step::Record(record) => record.apply(input, out)?,
            Step::FromUnion(branches) => {
                let b = read_len(input)?;
                let branch = branches
                    .get(b)
                    .ok_or_else(|| malformed(format!("union branch {b} out of range")))?
                    .as_ref()
                    .map_err(Clone::clone)?;
                if let Some(index) = branch.index {
                    write_long(out, i64::from(index));
                }
                branch.step.apply(input, out)?;
            }
            Step::ToUnion { index, step } => {
                write_long(out, i64::from(*index));
                step.apply(input, out)?;
            }
        }
        Ok(())
    }
}

impl RecordStep {
    fn apply(&self, input: &mut &[u8], out: &mut Vec<u8>) -> Result<(), ProjectionError> {
        if self.in_order {
            // Defaults go in between, as the reader's order comes along.
            let mut next = 0;
            for take in &self.writer {
                match take {
                    Take::Skip(schema) => skip(schema, input)?,
                    Take::Into(j, step) => {
                        self.defaults(next, *j, out);
                        step.apply(input, out)?;
                        next = j + 1;
                    }
                }
            }
            self.defaults(next, self.reader.len(), out);
            return Ok(());
        }
        // Reordered fields: each written aside, then all in the reader's order.
        let mut scratch = Vec::new();
        let mut ranges = vec![(0, 0); self.reader.len()];
        for take in &self.writer {
            match take {
                Take::Skip(schema) => skip(schema, input)?,
                Take::Into(j, step) => {
                    let start = scratch.len();
                    step.apply(input, &mut scratch)?;
                    if let Some(r) = ranges.get_mut(*j) {
                        *r = (start, scratch.len());
                    }
                }
            }
        }
        for (source, (start, end)) in self.reader.iter().zip(ranges) {
            match source {
                Some(default) => out.extend_from_slice(default),
                None => out.extend_from_slice(&scratch[start..end]),
            }
        }
        Ok(())
    }

    /// The defaults of reader fields `from..to` (all of them defaults, in order).
    fn defaults(&self, from: usize, to: usize, out: &mut Vec<u8>) {
        for default in self
            .reader
            .get(from..to)
            .unwrap_or_default()
            .iter()
            .flatten()
        {
            out.extend_from_slice(default);
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use serde_json::json;

    use super::*;
    use crate::data::Data;
    use crate::data::decode::AvroReader;

    /// Projects `datum` and reads the result back with the latest schema.
    fn project(writer: &J, reader: &J, datum: &[u8]) -> Result<Data, ProjectionError> {
        let p = Projection::compile(&writer.to_string(), &reader.to_string())?;
        let mut out = Vec::new();
        p.project(datum, &mut out)?;
        let latest = AvroReader::compile(&reader.to_string()).expect("reader schema");
        let mut input = &out[..];
        let data = latest
            .read(&mut input)
            .expect("valid under the latest schema");
        assert!(input.is_empty(), "trailing bytes");
        Ok(data)
    }

    fn record(name: &str, fields: J) -> J {
        json!({"type": "record", "name": name, "namespace": "srv.db.t", "fields": fields})
    }

    /// `{id: long, name: ["null", string]}` with id 5 and name "ab".
    fn base() -> (J, Vec<u8>) {
        let schema = record(
            "Value",
            json!([
                {"name": "id", "type": "long"},
                {"name": "name", "type": ["null", "string"], "default": null},
            ]),
        );
        (schema, vec![10, 2, 4, b'a', b'b'])
    }

    #[test]
    fn added_fields_take_their_defaults() {
        let (writer, datum) = base();
        let reader = record(
            "Value",
            json!([
                {"name": "id", "type": "long"},
                {"name": "tier", "type": "string", "default": "bronze"},
                {"name": "name", "type": ["null", "string"], "default": null},
                {"name": "note", "type": ["null", "string"], "default": null},
                {"name": "score", "type": ["int", "null"], "default": 7},
                {"name": "tags", "type": {"type": "array", "items": "string"}, "default": ["x"]},
                {"name": "raw", "type": "bytes", "default": "\u{00ff}A"},
            ]),
        );
        let data = project(&writer, &reader, &datum).expect("projects");
        assert_eq!(
            data,
            Data::Struct(vec![
                Data::Int64(5),
                Data::String("bronze".into()),
                Data::String("ab".into()),
                Data::Null,
                Data::Int32(7),
                Data::Array(vec![Data::String("x".into())]),
                Data::Bytes(Bytes::from_static(&[0xff, b'A'])),
            ])
        );
    }

    #[test]
    fn fields_the_latest_schema_lacks_are_dropped() {
        let writer = record(
            "Value",
            json!([
                {"name": "gone", "type": {"type": "map", "values": ["null", "double"]}},
                {"name": "id", "type": "long"},
                {"name": "nested", "type": {"type": "record", "name": "Inner", "fields": [
                    {"name": "a", "type": {"type": "array", "items": "int"}}]}},
                {"name": "name", "type": ["null", "string"], "default": null},
            ]),
        );
        // gone: {"k": 1.5}; id 3; nested.a [1, 2]; name null.
        let mut datum = vec![2, 2, b'k', 2];
        datum.extend_from_slice(&1.5f64.to_le_bytes());
        datum.extend_from_slice(&[0, 6, 4, 2, 4, 0, 0]);
        let (reader, _) = base();
        let data = project(&writer, &reader, &datum).expect("projects");
        assert_eq!(data, Data::Struct(vec![Data::Int64(3), Data::Null]));
    }

    #[test]
    fn numbers_and_text_promote() {
        let writer = record(
            "Value",
            json!([
                {"name": "i", "type": "int"},
                {"name": "l", "type": "long"},
                {"name": "f", "type": "float"},
                {"name": "s", "type": "string"},
                {"name": "b", "type": "bytes"},
                {"name": "o", "type": ["null", "int"]},
                {"name": "r", "type": "long"},
            ]),
        );
        let reader = record(
            "Value",
            json!([
                {"name": "i", "type": "double"},
                {"name": "l", "type": "float"},
                {"name": "f", "type": "double"},
                {"name": "s", "type": "bytes"},
                {"name": "b", "type": "string"},
                {"name": "o", "type": ["null", "long"]},
                {"name": "r", "type": ["null", "double"]},
            ]),
        );
        let mut datum = vec![5]; // i = -3
        datum.extend_from_slice(&[0x80, 0x01]); // l = 64
        datum.extend_from_slice(&2.5f32.to_le_bytes());
        datum.extend_from_slice(&[2, b'x', 2, b'y', 2, 8, 20]); // s, b, o = 4, r = 10
        let data = project(&writer, &reader, &datum).expect("projects");
        assert_eq!(
            data,
            Data::Struct(vec![
                Data::Float64(-3.0),
                Data::Float32(64.0),
                Data::Float64(2.5),
                Data::Bytes(Bytes::from_static(b"x")),
                Data::String("y".into()),
                Data::Int64(4),
                Data::Float64(10.0),
            ])
        );
        // Narrowing is not a promotion.
        let err = Projection::compile(&reader.to_string(), &writer.to_string())
            .expect_err("double into int");
        assert_eq!(err.path, "i");
        assert!(
            err.reason.contains("int") && err.reason.contains("double"),
            "{err}"
        );
    }

    #[test]
    fn a_field_without_default_is_a_definite_error_naming_it() {
        let (writer, _) = base();
        let envelope = |value: J| {
            record(
                "Envelope",
                json!([
                    {"name": "before", "type": ["null", value], "default": null},
                    {"name": "after", "type": ["null", "Value"], "default": null},
                    {"name": "op", "type": "string"},
                ]),
            )
        };
        let reader = record(
            "Value",
            json!([
                {"name": "id", "type": "long"},
                {"name": "email", "type": "string"},
            ]),
        );
        let err = Projection::compile(&envelope(writer).to_string(), &envelope(reader).to_string())
            .expect_err("email has no default");
        assert_eq!(err.path, "before.email");
        assert_eq!(
            err.to_string(),
            "field before.email: not in our record, and the latest schema gives it no default"
        );
    }

    #[test]
    fn envelopes_project_recursively_and_nulls_fail_only_where_required() {
        let (value, _) = base();
        let writer = record(
            "Envelope",
            json!([
                {"name": "before", "type": ["null", value], "default": null},
                {"name": "after", "type": ["null", "Value"], "default": null},
                {"name": "op", "type": "string"},
            ]),
        );
        let latest_value = record(
            "Value",
            json!([
                {"name": "name", "type": "string", "aliases": ["full_name"]},
                {"name": "id", "type": "long"},
                {"name": "tier", "type": "string", "default": "bronze"},
            ]),
        );
        let reader = record(
            "Envelope",
            json!([
                {"name": "before", "type": ["null", latest_value], "default": null},
                {"name": "after", "type": ["null", "Value"], "default": null},
                {"name": "op", "type": "string"},
                {"name": "ts_ns", "type": ["null", "long"], "default": null},
            ]),
        );
        // before null, after {5, "ab"}, op "c".
        let datum = [0, 2, 10, 2, 4, b'a', b'b', 2, b'c'];
        let data = project(&writer, &reader, &datum).expect("projects");
        let after = Data::Struct(vec![
            Data::String("ab".into()),
            Data::Int64(5),
            Data::String("bronze".into()),
        ]);
        assert_eq!(
            data,
            Data::Struct(vec![
                Data::Null,
                after,
                Data::String("c".into()),
                Data::Null
            ])
        );
        // A null name does not fit the latest schema's required string: that record fails.
        let datum = [0, 2, 10, 0, 2, b'c'];
        let err = project(&writer, &reader, &datum).expect_err("null name");
        assert_eq!(err.path, "after.name");
        assert!(err.reason.contains("null"), "{err}");
    }

    #[test]
    fn same_bytes_need_no_projection() {
        let (writer, datum) = base();
        let mut reader = writer.clone();
        reader["doc"] = json!("registered by hand");
        reader["fields"][0]["type"] = json!({"type": "long", "connect.name": "x"});
        let p = Projection::compile(&writer.to_string(), &reader.to_string()).expect("compiles");
        assert!(p.is_identity());
        let mut out = Vec::new();
        p.project(&datum, &mut out).expect("projects");
        assert_eq!(out, datum);
        // An added defaulted field is not the same bytes.
        let (mut reader, _) = base();
        reader["fields"]
            .as_array_mut()
            .expect("fields")
            .push(json!({"name": "x", "type": "int", "default": 1}));
        let p = Projection::compile(&writer.to_string(), &reader.to_string()).expect("compiles");
        assert!(!p.is_identity());
    }

    #[test]
    fn logical_types_must_agree_and_enums_map_by_symbol() {
        let ts = |logical: &str| {
            record(
                "Value",
                json!([{"name": "at", "type": {"type": "long", "logicalType": logical}}]),
            )
        };
        let err = Projection::compile(
            &ts("timestamp-millis").to_string(),
            &ts("timestamp-micros").to_string(),
        )
        .expect_err("millis are not micros");
        assert_eq!(err.path, "at");
        let plain = record("Value", json!([{"name": "at", "type": "long"}]));
        let p = Projection::compile(&plain.to_string(), &ts("timestamp-millis").to_string())
            .expect("annotation added");
        assert!(p.is_identity());

        let color = |symbols: J, default: Option<&str>| {
            let mut e = json!({"type": "enum", "name": "Color", "symbols": symbols});
            if let Some(d) = default {
                e["default"] = json!(d);
            }
            record("Value", json!([{"name": "c", "type": e}]))
        };
        let writer = color(json!(["red", "green", "blue"]), None);
        let reader = color(json!(["other", "green", "red"]), Some("other"));
        let read = |datum: &[u8]| project(&writer, &reader, datum);
        assert_eq!(
            read(&[0]),
            Ok(Data::Struct(vec![Data::String("red".into())]))
        );
        assert_eq!(
            read(&[4]),
            Ok(Data::Struct(vec![Data::String("other".into())]))
        );
        let strict = color(json!(["green", "red"]), None);
        let err = project(&writer, &strict, &[4]).expect_err("blue has no place");
        assert!(err.reason.contains("\"blue\""), "{err}");
    }

    #[test]
    fn recursive_and_malformed_inputs_are_errors() {
        let list = json!({"type": "record", "name": "L", "fields": [
            {"name": "next", "type": ["null", "L"]}]});
        let err = Projection::compile(&list.to_string(), &list.to_string()).expect_err("recursive");
        assert!(err.reason.contains("recursive"), "{err}");
        let (writer, _) = base();
        let p = Projection::compile(&writer.to_string(), &writer.to_string()).expect("compiles");
        let err = p.project(&[10, 2], &mut Vec::new()).expect_err("truncated");
        assert!(err.reason.contains("malformed"), "{err}");
        let reordered = record(
            "Value",
            json!([
                {"name": "name", "type": ["null", "string"], "default": null},
                {"name": "id", "type": "double"},
            ]),
        );
        let p = Projection::compile(&writer.to_string(), &reordered.to_string()).expect("compiles");
        let err = p
            .project(&[10, 2, 9, b'a'], &mut Vec::new())
            .expect_err("truncated");
        assert!(err.reason.contains("malformed"), "{err}");
        // Reordered fields (the slow path of records) still project.
        let data = project(&writer, &reordered, &[10, 2, 4, b'a', b'b']).expect("projects");
        assert_eq!(
            data,
            Data::Struct(vec![Data::String("ab".into()), Data::Float64(5.0)])
        );
    }
}
