//! Avro schema parsing and compatibility, as the registry needs them.
//!
//! Follows Avro's schema-resolution rules (<https://avro.apache.org/docs/1.11.1/specification/#schema-resolution>):
//! a reader can read data written with a writer schema when primitive types match or
//! promote (`int`→`long`→`float`→`double`, `string`↔`bytes`), record fields missing from the
//! writer have defaults, writer union branches are all readable, enum symbols are covered.
//! BACKWARD means the new schema reads data written with the old one.

use std::collections::{HashMap, HashSet};

use serde_json::Value as J;

/// A parsed Avro schema node; named types are referenced by full name.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Record {
        name: String,
        fields: Vec<Field>,
    },
    Enum {
        name: String,
        symbols: Vec<String>,
        default: Option<String>,
    },
    Array(Box<Node>),
    Map(Box<Node>),
    Union(Vec<Node>),
    Fixed {
        name: String,
        size: u64,
    },
    Ref(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub aliases: Vec<String>,
    pub schema: Node,
    pub has_default: bool,
}

/// A parsed schema with its named types.
#[derive(Debug, Clone)]
pub struct Schema {
    pub root: Node,
    names: HashMap<String, Node>,
}

impl Schema {
    /// Parses Avro schema text; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Schema, String> {
        let json: J = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
        let mut names = HashMap::new();
        let root = parse_node(&json, None, &mut names)?;
        let schema = Schema { root, names };
        schema.check_refs(&schema.root)?;
        Ok(schema)
    }

    fn check_refs(&self, node: &Node) -> Result<(), String> {
        match node {
            Node::Ref(name) if !self.names.contains_key(name) => {
                Err(format!("undefined name: {name}"))
            }
            Node::Record { fields, .. } => {
                fields.iter().try_for_each(|f| self.check_refs(&f.schema))
            }
            Node::Array(n) | Node::Map(n) => self.check_refs(n),
            Node::Union(b) => b.iter().try_for_each(|n| self.check_refs(n)),
            _ => Ok(()),
        }
    }

    fn resolve<'a>(&'a self, node: &'a Node) -> &'a Node {
        match node {
            Node::Ref(name) => self.names.get(name).unwrap_or(node),
            n => n,
        }
    }
}

fn full_name(name: &str, namespace: Option<&str>) -> String {
    match (name.contains('.'), namespace) {
        (false, Some(ns)) if !ns.is_empty() => format!("{ns}.{name}"),
        _ => name.to_owned(),
    }
}

fn parse_node(
    json: &J,
    namespace: Option<&str>,
    names: &mut HashMap<String, Node>,
) -> Result<Node, String> {
    match json {
        J::String(s) => Ok(match s.as_str() {
            "null" => Node::Null,
            "boolean" => Node::Boolean,
            "int" => Node::Int,
            "long" => Node::Long,
            "float" => Node::Float,
            "double" => Node::Double,
            "bytes" => Node::Bytes,
            "string" => Node::String,
            other => {
                let full = full_name(other, namespace);
                if names.contains_key(&full) {
                    Node::Ref(full)
                } else if names.contains_key(other) {
                    Node::Ref(other.to_owned())
                } else {
                    return Err(format!("undefined name: {other}"));
                }
            }
        }),
        J::Array(branches) => {
            let nodes = branches
                .iter()
                .map(|b| parse_node(b, namespace, names))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Node::Union(nodes))
        }
        J::Object(m) => {
            let ty = m.get("type").ok_or("a schema object needs \"type\"")?;
            let ty = match ty {
                J::String(s) => s.as_str(),
                other => return parse_node(other, namespace, names),
            };
            let named =
                |m: &serde_json::Map<String, J>| -> Result<(String, Option<String>), String> {
                    let name = m
                        .get("name")
                        .and_then(J::as_str)
                        .ok_or(format!("a {ty} needs a \"name\""))?;
                    let ns = m.get("namespace").and_then(J::as_str).or(namespace);
                    let full = full_name(name, ns);
                    let own_ns = full.rsplit_once('.').map(|(n, _)| n.to_owned());
                    Ok((full, own_ns))
                };
            match ty {
                "record" | "error" => {
                    let (full, own_ns) = named(m)?;
                    // Register first so fields can refer to the record itself.
                    names.insert(full.clone(), Node::Ref(full.clone()));
                    let fields = m
                        .get("fields")
                        .and_then(J::as_array)
                        .ok_or(format!("record {full} needs \"fields\""))?
                        .iter()
                        .map(|f| {
                            let name = f
                                .get("name")
                                .and_then(J::as_str)
                                .ok_or(format!("a field of {full} has no name"))?;
                            let ty = f.get("type").ok_or(format!("field {name} has no type"))?;
                            Ok(Field {
                                name: name.to_owned(),
                                aliases: f
                                    .get("aliases")
                                    .and_then(J::as_array)
                                    .map(|a| {
                                        a.iter().filter_map(J::as_str).map(str::to_owned).collect()
                                    })
                                    .unwrap_or_default(),
                                schema: parse_node(ty, own_ns.as_deref(), names)?,
                                has_default: f.get("default").is_some(),
                            })
                        })
                        .collect::<Result<Vec<_>, String>>()?;
                    let node = Node::Record {
                        name: full.clone(),
                        fields,
                    };
                    names.insert(full, node.clone());
                    Ok(node)
                }
                "enum" => {
                    let (full, _) = named(m)?;
                    let symbols = m
                        .get("symbols")
                        .and_then(J::as_array)
                        .ok_or(format!("enum {full} needs \"symbols\""))?
                        .iter()
                        .filter_map(J::as_str)
                        .map(str::to_owned)
                        .collect();
                    let node = Node::Enum {
                        name: full.clone(),
                        symbols,
                        default: m.get("default").and_then(J::as_str).map(str::to_owned),
                    };
                    names.insert(full, node.clone());
                    Ok(node)
                }
                "fixed" => {
                    let (full, _) = named(m)?;
                    let size = m
                        .get("size")
                        .and_then(J::as_u64)
                        .ok_or(format!("fixed {full} needs \"size\""))?;
                    let node = Node::Fixed {
                        name: full.clone(),
                        size,
                    };
                    names.insert(full, node.clone());
                    Ok(node)
                }
                "array" => Ok(Node::Array(Box::new(parse_node(
                    m.get("items").ok_or("an array needs \"items\"")?,
                    namespace,
                    names,
                )?))),
                "map" => Ok(Node::Map(Box::new(parse_node(
                    m.get("values").ok_or("a map needs \"values\"")?,
                    namespace,
                    names,
                )?))),
                primitive => parse_node(&J::from(primitive), namespace, names),
            }
        }
        other => Err(format!("not a schema: {other}")),
    }
}

/// One reason a reader cannot read a writer's data, in Confluent's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Incompatibility {
    /// `READER_FIELD_MISSING_DEFAULT_VALUE`, `TYPE_MISMATCH`, `MISSING_UNION_BRANCH`,
    /// `MISSING_ENUM_SYMBOLS`, `NAME_MISMATCH`, `FIXED_SIZE_MISMATCH`.
    pub kind: &'static str,
    /// JSON-pointer-like path in the reader schema, e.g. `/fields/1/type/fields/3`.
    pub path: String,
    pub description: String,
}

/// Every reason `reader` cannot read data written with `writer` (empty: compatible).
pub fn check(reader: &Schema, writer: &Schema) -> Vec<Incompatibility> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    check_node(
        reader,
        &reader.root,
        writer,
        &writer.root,
        "",
        &mut seen,
        &mut out,
    );
    out
}

fn unqualified(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

fn type_name(n: &Node) -> String {
    match n {
        Node::Null => "null".into(),
        Node::Boolean => "boolean".into(),
        Node::Int => "int".into(),
        Node::Long => "long".into(),
        Node::Float => "float".into(),
        Node::Double => "double".into(),
        Node::Bytes => "bytes".into(),
        Node::String => "string".into(),
        Node::Record { name, .. } => format!("record {name}"),
        Node::Enum { name, .. } => format!("enum {name}"),
        Node::Array(_) => "array".into(),
        Node::Map(_) => "map".into(),
        Node::Union(_) => "union".into(),
        Node::Fixed { name, .. } => format!("fixed {name}"),
        Node::Ref(name) => name.clone(),
    }
}

/// Both the same named type (so a mismatch is inside it, not a missing branch).
fn same_named(r: &Node, w: &Node) -> bool {
    match (r, w) {
        (Node::Record { name: a, .. }, Node::Record { name: b, .. })
        | (Node::Enum { name: a, .. }, Node::Enum { name: b, .. })
        | (Node::Fixed { name: a, .. }, Node::Fixed { name: b, .. }) => {
            unqualified(a) == unqualified(b)
        }
        (Node::Array(_), Node::Array(_)) | (Node::Map(_), Node::Map(_)) => true,
        _ => false,
    }
}

fn check_node(
    rs: &Schema,
    r: &Node,
    ws: &Schema,
    w: &Node,
    path: &str,
    seen: &mut HashSet<(String, String)>,
    out: &mut Vec<Incompatibility>,
) {
    let (r, w) = (rs.resolve(r), ws.resolve(w));
    let mut push = |kind, description: String| {
        out.push(Incompatibility {
            kind,
            path: if path.is_empty() {
                "/".into()
            } else {
                path.to_owned()
            },
            description,
        })
    };
    let compatible = |rn: &Node, wn: &Node, seen: &mut HashSet<(String, String)>| {
        let mut tmp = Vec::new();
        check_node(rs, rn, ws, wn, path, seen, &mut tmp);
        tmp.is_empty()
    };
    match (r, w) {
        (_, Node::Union(wb)) => {
            for (i, wn) in wb.iter().enumerate() {
                let ok = match r {
                    Node::Union(rb) => rb.iter().any(|rn| compatible(rn, wn, seen)),
                    _ => compatible(r, wn, seen),
                };
                let counterpart = match r {
                    Node::Union(rb) => rb
                        .iter()
                        .find(|rn| same_named(rs.resolve(rn), ws.resolve(wn))),
                    _ => Some(r).filter(|rn| same_named(rs.resolve(rn), ws.resolve(wn))),
                };
                if let (false, Some(rn)) = (ok, counterpart) {
                    // Same record on both sides: report what inside it does not match.
                    check_node(rs, rn, ws, wn, &format!("{path}/{i}"), seen, out);
                } else if !ok {
                    out.push(Incompatibility {
                        kind: "MISSING_UNION_BRANCH",
                        path: format!("{path}/{i}"),
                        description: format!(
                            "the new schema is missing a type inside a union field at path '{path}/{i}' in the old schema: {}",
                            type_name(ws.resolve(wn))
                        ),
                    });
                }
            }
        }
        (Node::Union(rb), _) => {
            if !rb.iter().any(|rn| compatible(rn, w, seen)) {
                push(
                    "TYPE_MISMATCH",
                    format!(
                        "the type (path '{path}') of a field in the new schema does not match the old schema: no branch reads {}",
                        type_name(w)
                    ),
                );
            }
        }
        (
            Node::Record {
                name: rn,
                fields: rf,
            },
            Node::Record {
                name: wn,
                fields: wf,
            },
        ) => {
            if unqualified(rn) != unqualified(wn) {
                push(
                    "NAME_MISMATCH",
                    format!(
                        "the type name at path '{path}' in the new schema ({rn}) does not match the old schema ({wn})"
                    ),
                );
                return;
            }
            // `seen` holds the records being compared up the stack: a recursive type is
            // compatible with itself unless something else says otherwise.
            let pair = (rn.clone(), wn.clone());
            if !seen.insert(pair.clone()) {
                return;
            }
            for (j, field) in rf.iter().enumerate() {
                let fpath = format!("{path}/fields/{j}");
                let found = wf
                    .iter()
                    .find(|f| f.name == field.name || field.aliases.contains(&f.name));
                match found {
                    Some(wfield) => {
                        check_node(rs, &field.schema, ws, &wfield.schema, &fpath, seen, out)
                    }
                    None if !field.has_default => out.push(Incompatibility {
                        kind: "READER_FIELD_MISSING_DEFAULT_VALUE",
                        path: fpath.clone(),
                        description: format!(
                            "the field '{}' at path '{fpath}' in the new schema has no default value and is missing in the old schema",
                            field.name
                        ),
                    }),
                    None => {}
                }
            }
            seen.remove(&pair);
        }
        (
            Node::Enum {
                symbols: rsym,
                default,
                ..
            },
            Node::Enum { symbols: wsym, .. },
        ) => {
            let missing: Vec<&str> = wsym
                .iter()
                .filter(|s| !rsym.contains(s))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() && default.is_none() {
                push(
                    "MISSING_ENUM_SYMBOLS",
                    format!(
                        "the new schema is missing enum symbols '[{}]' at path '{path}' in the old schema",
                        missing.join(", ")
                    ),
                );
            }
        }
        (Node::Array(ri), Node::Array(wi)) => {
            check_node(rs, ri, ws, wi, &format!("{path}/items"), seen, out)
        }
        (Node::Map(rv), Node::Map(wv)) => {
            check_node(rs, rv, ws, wv, &format!("{path}/values"), seen, out)
        }
        (Node::Fixed { size: a, .. }, Node::Fixed { size: b, .. }) => {
            if a != b {
                push(
                    "FIXED_SIZE_MISMATCH",
                    format!("the size of fixed at path '{path}' changed from {b} to {a}"),
                );
            }
        }
        (r, w) => {
            let promotes = matches!(
                (r, w),
                (Node::Long, Node::Int)
                    | (Node::Float, Node::Int | Node::Long)
                    | (Node::Double, Node::Int | Node::Long | Node::Float)
                    | (Node::String, Node::Bytes)
                    | (Node::Bytes, Node::String)
            );
            let same = std::mem::discriminant(r) == std::mem::discriminant(w)
                && !matches!(
                    r,
                    Node::Record { .. }
                        | Node::Enum { .. }
                        | Node::Array(_)
                        | Node::Map(_)
                        | Node::Fixed { .. }
                        | Node::Union(_)
                        | Node::Ref(_)
                );
            if !(same || promotes) {
                push(
                    "TYPE_MISMATCH",
                    format!(
                        "the type (path '{path}') of a field in the new schema does not match with the old schema: reader {} cannot read writer {}",
                        type_name(r),
                        type_name(w)
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(text: &str) -> Schema {
        Schema::parse(text).expect("valid schema")
    }

    const V1: &str = r#"{"type":"record","name":"V","namespace":"n","fields":[
        {"name":"id","type":"int"},{"name":"name","type":["null","string"],"default":null}]}"#;

    #[test]
    fn adding_an_optional_field_is_backward_compatible() {
        let v2 = schema(
            r#"{"type":"record","name":"V","namespace":"n","fields":[
            {"name":"id","type":"long"},{"name":"name","type":["null","string"],"default":null},
            {"name":"extra","type":["null","int"],"default":null}]}"#,
        );
        assert_eq!(check(&v2, &schema(V1)), vec![]);
    }

    #[test]
    fn a_required_new_field_and_a_narrowing_are_named() {
        let v2 = schema(
            r#"{"type":"record","name":"V","namespace":"n","fields":[
            {"name":"id","type":"string"},{"name":"name","type":["null","string"],"default":null},
            {"name":"must","type":"int"}]}"#,
        );
        let problems = check(&v2, &schema(V1));
        let kinds: Vec<_> = problems.iter().map(|p| (p.kind, p.path.as_str())).collect();
        assert_eq!(
            kinds,
            [
                ("TYPE_MISMATCH", "/fields/0"),
                ("READER_FIELD_MISSING_DEFAULT_VALUE", "/fields/2")
            ]
        );
        assert!(problems[1].description.contains("'must'"));
    }

    #[test]
    fn problems_inside_an_optional_record_are_reported_in_detail() {
        let old = schema(
            r#"{"type":"record","name":"E","fields":[
            {"name":"before","type":["null",{"type":"record","name":"Value","fields":[{"name":"x","type":"int"}]}],"default":null},
            {"name":"after","type":["null","Value"],"default":null}]}"#,
        );
        let new = schema(
            r#"{"type":"record","name":"E","fields":[
            {"name":"before","type":["null",{"type":"record","name":"Value","fields":[{"name":"x","type":"int"},{"name":"sku","type":"string"}]}],"default":null},
            {"name":"after","type":["null","Value"],"default":null}]}"#,
        );
        let problems = check(&new, &old);
        let paths: Vec<_> = problems.iter().map(|p| (p.kind, p.path.as_str())).collect();
        assert_eq!(
            paths,
            [
                ("READER_FIELD_MISSING_DEFAULT_VALUE", "/fields/0/1/fields/1"),
                ("READER_FIELD_MISSING_DEFAULT_VALUE", "/fields/1/1/fields/1")
            ]
        );
        assert_eq!(check(&old, &new), vec![]);
    }

    #[test]
    fn named_references_resolve() {
        let s = schema(
            r#"{"type":"record","name":"E","namespace":"a.b","fields":[
            {"name":"before","type":["null",{"type":"record","name":"Value","fields":[{"name":"x","type":"int"}]}],"default":null},
            {"name":"after","type":["null","Value"],"default":null}]}"#,
        );
        assert_eq!(check(&s, &s), vec![]);
        assert!(
            Schema::parse(r#"{"type":"record","name":"E","fields":[{"name":"x","type":"Nope"}]}"#)
                .is_err()
        );
    }
}
