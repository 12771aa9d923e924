//! JSON lines as Confluent's `JsonFormat` writes them: each value as Kafka Connect's
//! `JsonConverter` with `schemas.enable=false` renders it (structs as objects in field order,
//! bytes and `Decimal`s as base64, logical times as their integers).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value as J};
use tributary_runtime::data::{ConnectSchema, ConnectType, Data};

/// Appends the JSON text of `data` to `out` (no newline).
pub fn write_json(
    out: &mut Vec<u8>,
    schema: Option<&ConnectSchema>,
    data: &Data,
) -> Result<(), String> {
    let value = to_json(schema, data);
    serde_json::to_writer(out, &value).map_err(|e| format!("cannot render JSON: {e}"))
}

/// The JSON of a Connect value.
pub fn to_json(schema: Option<&ConnectSchema>, data: &Data) -> J {
    match data {
        Data::Null => J::Null,
        Data::Boolean(b) => J::Bool(*b),
        Data::Int8(n) => J::from(*n),
        Data::Int16(n) => J::from(*n),
        Data::Int32(n) => J::from(*n),
        Data::Int64(n) => J::from(*n),
        Data::Float32(f) => float(f64::from(*f)),
        Data::Float64(f) => float(*f),
        Data::String(s) => J::String(s.clone()),
        Data::Bytes(b) => J::String(BASE64.encode(b)),
        Data::Array(items) => {
            let item_schema = match schema.map(|s| &s.ty) {
                Some(ConnectType::Array(items)) => Some(&**items),
                _ => None,
            };
            J::Array(items.iter().map(|d| to_json(item_schema, d)).collect())
        }
        Data::Map(entries) => {
            if entries.iter().all(|(k, _)| k.as_str().is_some()) {
                let mut m = Map::new();
                for (k, v) in entries {
                    m.insert(k.as_str().unwrap_or_default().to_owned(), to_json(None, v));
                }
                J::Object(m)
            } else {
                J::Array(
                    entries
                        .iter()
                        .map(|(k, v)| J::Array(vec![to_json(None, k), to_json(None, v)]))
                        .collect(),
                )
            }
        }
        Data::Struct(values) => {
            let mut m = Map::new();
            if let Some(ConnectType::Struct(fields)) = schema.map(|s| &s.ty) {
                for (f, v) in fields.iter().zip(values) {
                    m.insert(f.name.clone(), to_json(Some(&f.schema), v));
                }
            } else {
                for (i, v) in values.iter().enumerate() {
                    m.insert(format!("field{i}"), to_json(None, v));
                }
            }
            J::Object(m)
        }
    }
}

/// JSON has no NaN or infinity: written as strings, as Jackson does with them allowed.
fn float(f: f64) -> J {
    serde_json::Number::from_f64(f).map_or_else(|| J::String(f.to_string()), J::Number)
}

#[cfg(test)]
mod tests {
    use tributary_runtime::data::ConnectField;

    use super::*;

    #[test]
    fn structs_follow_field_order() {
        let schema = ConnectSchema::new(ConnectType::Struct(vec![
            ConnectField {
                name: "id".into(),
                schema: ConnectSchema::new(ConnectType::Int32),
            },
            ConnectField {
                name: "blob".into(),
                schema: ConnectSchema::new(ConnectType::Bytes),
            },
            ConnectField {
                name: "f".into(),
                schema: ConnectSchema::new(ConnectType::Float64),
            },
        ]));
        let data = Data::Struct(vec![
            Data::Int32(1),
            Data::Bytes(bytes::Bytes::from_static(b"\x01\x02")),
            Data::Float64(f64::NAN),
        ]);
        let mut out = Vec::new();
        write_json(&mut out, Some(&schema), &data).expect("json");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            r#"{"id":1,"blob":"AQI=","f":"NaN"}"#
        );
    }
}
