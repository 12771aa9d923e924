//! Taking a struct (or a schema-less string-keyed map) apart into named fields and putting it
//! back together, so transforms add, drop and rename fields with a consistent schema.

use std::sync::Arc;

use crate::data::{ConnectField, ConnectSchema, ConnectType, Data, SchemaAndValue};

/// One field: name, schema (`None` when schema-less) and value.
#[derive(Debug, Clone)]
pub struct Item {
    pub name: String,
    pub schema: Option<ConnectSchema>,
    pub value: Data,
}

/// A struct value taken apart.
#[derive(Debug, Clone)]
pub struct Fields {
    /// The struct schema without its fields (name, version, optionality...); `None` for a
    /// schema-less map.
    header: Option<ConnectSchema>,
    pub items: Vec<Item>,
}

impl Fields {
    /// The fields of a struct value (with schema) or a string-keyed map (without).
    pub fn of(schema: Option<&ConnectSchema>, value: &Data) -> Option<Fields> {
        match (schema, value) {
            (Some(s), Data::Struct(values)) => {
                let ConnectType::Struct(fields) = &s.ty else {
                    return None;
                };
                let items = fields
                    .iter()
                    .zip(values)
                    .map(|(f, v)| Item {
                        name: f.name.clone(),
                        schema: Some(f.schema.clone()),
                        value: v.clone(),
                    })
                    .collect();
                Some(Fields {
                    header: Some(ConnectSchema {
                        ty: ConnectType::Struct(Vec::new()),
                        ..s.clone()
                    }),
                    items,
                })
            }
            (None, Data::Map(entries)) => {
                let items = entries
                    .iter()
                    .map(|(k, v)| {
                        Some(Item {
                            name: k.as_str()?.to_owned(),
                            schema: None,
                            value: v.clone(),
                        })
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some(Fields {
                    header: None,
                    items,
                })
            }
            _ => None,
        }
    }

    /// The fields of one side of a record.
    pub fn of_side(side: &SchemaAndValue) -> Option<Fields> {
        Fields::of(side.schema.as_deref(), &side.value)
    }

    /// An empty struct named `name` (with a schema) or an empty map (without).
    pub fn empty(name: Option<String>, with_schema: bool) -> Fields {
        Fields {
            header: with_schema.then(|| ConnectSchema {
                name,
                ..ConnectSchema::new(ConnectType::Struct(Vec::new()))
            }),
            items: Vec::new(),
        }
    }

    pub fn has_schema(&self) -> bool {
        self.header.is_some()
    }

    pub fn get(&self, name: &str) -> Option<&Item> {
        self.items.iter().find(|i| i.name == name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Adds a field (replacing one of the same name, in place).
    pub fn set(&mut self, name: &str, schema: Option<ConnectSchema>, value: Data) {
        let schema = if self.header.is_some() { schema } else { None };
        match self.items.iter_mut().find(|i| i.name == name) {
            Some(item) => {
                item.schema = schema;
                item.value = value;
            }
            None => self.items.push(Item {
                name: name.to_owned(),
                schema,
                value,
            }),
        }
    }

    /// Renames the struct schema.
    pub fn rename_schema(&mut self, name: Option<String>) {
        if let Some(h) = &mut self.header {
            h.name = name;
        }
    }

    /// The struct schema and value.
    pub fn into_parts(self) -> (Option<ConnectSchema>, Data) {
        match self.header {
            Some(mut header) => {
                let mut fields = Vec::with_capacity(self.items.len());
                let mut values = Vec::with_capacity(self.items.len());
                for item in self.items {
                    fields.push(ConnectField {
                        name: item.name,
                        schema: item.schema.unwrap_or_else(|| {
                            ConnectSchema::new(ConnectType::String).optional(true)
                        }),
                    });
                    values.push(item.value);
                }
                header.ty = ConnectType::Struct(fields);
                (Some(header), Data::Struct(values))
            }
            None => (
                None,
                Data::Map(
                    self.items
                        .into_iter()
                        .map(|i| (Data::String(i.name), i.value))
                        .collect(),
                ),
            ),
        }
    }

    pub fn into_side(self) -> SchemaAndValue {
        let (schema, value) = self.into_parts();
        SchemaAndValue {
            schema: schema.map(Arc::new),
            value,
        }
    }
}

/// A value as text, for topic names, headers and keys: strings as they are, numbers and
/// booleans in decimal, anything else as JSON.
pub fn to_text(value: &Data) -> String {
    match value {
        Data::String(s) => s.clone(),
        Data::Null => "null".into(),
        Data::Boolean(b) => b.to_string(),
        Data::Int8(n) => n.to_string(),
        Data::Int16(n) => n.to_string(),
        Data::Int32(n) => n.to_string(),
        Data::Int64(n) => n.to_string(),
        Data::Float32(f) => f.to_string(),
        Data::Float64(f) => f.to_string(),
        other => schemaless_json(other).to_string(),
    }
}

/// A value as JSON without its schema (struct fields become array items).
pub fn schemaless_json(value: &Data) -> serde_json::Value {
    use base64::Engine;
    use serde_json::Value as J;
    match value {
        Data::Null => J::Null,
        Data::Boolean(b) => J::from(*b),
        Data::Int8(n) => J::from(*n),
        Data::Int16(n) => J::from(*n),
        Data::Int32(n) => J::from(*n),
        Data::Int64(n) => J::from(*n),
        Data::Float32(f) => J::from(*f),
        Data::Float64(f) => J::from(*f),
        Data::String(s) => J::from(s.as_str()),
        Data::Bytes(b) => J::from(base64::engine::general_purpose::STANDARD.encode(b)),
        Data::Array(items) => J::Array(items.iter().map(schemaless_json).collect()),
        Data::Struct(items) => J::Array(items.iter().map(schemaless_json).collect()),
        Data::Map(entries) => match entries.iter().all(|(k, _)| k.as_str().is_some()) {
            true => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().unwrap_or_default().to_owned(),
                            schemaless_json(v),
                        )
                    })
                    .collect(),
            ),
            false => J::Array(
                entries
                    .iter()
                    .map(|(k, v)| J::Array(vec![schemaless_json(k), schemaless_json(v)]))
                    .collect(),
            ),
        },
    }
}

/// A JSON document as Connect data with an inferred schema: objects become structs named
/// `name` (nested ones `name.<field>`), integers `int64`, other numbers `float64`; every
/// field is optional. Nulls become optional strings.
pub fn json_to_data(json: &serde_json::Value, name: &str) -> (ConnectSchema, Data) {
    use serde_json::Value as J;
    match json {
        J::Null => (
            ConnectSchema::new(ConnectType::String).optional(true),
            Data::Null,
        ),
        J::Bool(b) => (
            ConnectSchema::new(ConnectType::Boolean).optional(true),
            Data::Boolean(*b),
        ),
        J::Number(n) => match n.as_i64() {
            Some(i) => (
                ConnectSchema::new(ConnectType::Int64).optional(true),
                Data::Int64(i),
            ),
            None => (
                ConnectSchema::new(ConnectType::Float64).optional(true),
                Data::Float64(n.as_f64().unwrap_or(f64::NAN)),
            ),
        },
        J::String(s) => (
            ConnectSchema::new(ConnectType::String).optional(true),
            Data::String(s.clone()),
        ),
        J::Array(items) => {
            let item_schema = items
                .iter()
                .find(|i| !i.is_null())
                .map(|i| json_to_data(i, name).0)
                .unwrap_or_else(|| ConnectSchema::new(ConnectType::String).optional(true));
            let values = items.iter().map(|i| json_to_data(i, name).1).collect();
            (
                ConnectSchema::new(ConnectType::Array(Box::new(item_schema))).optional(true),
                Data::Array(values),
            )
        }
        J::Object(map) => {
            let mut fields = Vec::with_capacity(map.len());
            let mut values = Vec::with_capacity(map.len());
            for (k, v) in map {
                let (schema, value) = json_to_data(v, &format!("{name}.{k}"));
                fields.push(ConnectField {
                    name: k.clone(),
                    schema,
                });
                values.push(value);
            }
            (
                ConnectSchema {
                    name: Some(name.to_owned()),
                    ..ConnectSchema::new(ConnectType::Struct(fields))
                }
                .optional(true),
                Data::Struct(values),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_round_trip_keeps_the_schema_header() {
        let schema = ConnectSchema {
            name: Some("srv.db.t.Value".into()),
            version: Some(3),
            ..ConnectSchema::new(ConnectType::Struct(vec![ConnectField {
                name: "id".into(),
                schema: ConnectSchema::new(ConnectType::Int32),
            }]))
        };
        let mut f = Fields::of(Some(&schema), &Data::Struct(vec![Data::Int32(1)])).expect("struct");
        f.set(
            "x",
            Some(ConnectSchema::new(ConnectType::String)),
            Data::String("a".into()),
        );
        let (s, v) = f.into_parts();
        let s = s.expect("schema");
        assert_eq!(s.name.as_deref(), Some("srv.db.t.Value"));
        assert_eq!(s.version, Some(3));
        assert_eq!(
            v,
            Data::Struct(vec![Data::Int32(1), Data::String("a".into())])
        );
    }

    #[test]
    fn json_objects_infer_structs() {
        let (schema, data) = json_to_data(
            &serde_json::json!({"a": 1, "b": [1.5], "c": {"d": "x"}}),
            "p",
        );
        let ConnectType::Struct(fields) = &schema.ty else {
            panic!("struct expected")
        };
        assert_eq!(fields.len(), 3);
        assert_eq!(fields[0].schema.ty, ConnectType::Int64);
        assert_eq!(fields[2].schema.name.as_deref(), Some("p.c"));
        assert_eq!(
            data,
            Data::Struct(vec![
                Data::Int64(1),
                Data::Array(vec![Data::Float64(1.5)]),
                Data::Struct(vec![Data::String("x".into())])
            ])
        );
    }
}
