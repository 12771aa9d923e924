//! Converters in reverse: topic record bytes to [`ConnectRecord`]s.
//!
//! - Avro (`io.confluent.connect.avro.AvroConverter`): the Confluent wire header names the
//!   writer schema, fetched once per id from the registry and compiled to an [`AvroReader`];
//!   the Connect schema is recovered from the Avro schema the way Confluent's `AvroData` does
//!   (`connect.name`/`connect.parameters`, `["null", T]` optionals, logical types).
//! - JSON (`org.apache.kafka.connect.json.JsonConverter`): with `schemas.enable=true` the
//!   `{"schema", "payload"}` envelope, otherwise schema-less maps and arrays.
//! - `StringConverter` and `ByteArrayConverter`: the bytes as a string or as bytes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde_json::Value as J;

use crate::config::{ConfigErrors, RawConfig};
use crate::converter::avro::{read_len, read_long, take};
use crate::converter::registry_client::RegistryTarget;
use crate::converter::{Converter, side_converter, wire};
use crate::dead_letter::Stage;
use crate::error::ConnectorError;
use crate::record::SinkRecord;
use crate::transforms::TransformChain;

use super::{ConnectField, ConnectRecord, ConnectSchema, ConnectType, Data, SchemaAndValue};

pub const BYTE_ARRAY_CONVERTER: &str = "org.apache.kafka.connect.converters.ByteArrayConverter";

/// One side's decoder.
#[derive(Debug)]
enum SideDecoder {
    Json {
        schemas: bool,
    },
    String,
    Bytes,
    Avro {
        target: RegistryTarget,
        readers: Mutex<HashMap<u32, Arc<AvroReader>>>,
    },
}

/// Decodes records with a connector's `key.converter*` / `value.converter*` settings.
#[derive(Debug, Clone)]
pub struct RecordDecoder {
    key: Arc<SideDecoder>,
    value: Arc<SideDecoder>,
    transforms: TransformChain,
}

fn side_decoder(config: &RawConfig, side: &str, errors: &mut ConfigErrors) -> SideDecoder {
    if config.get(&format!("{side}.converter")).map(String::as_str) == Some(BYTE_ARRAY_CONVERTER) {
        return SideDecoder::Bytes;
    }
    match side_converter(config, side, errors) {
        Converter::Json { schemas } => SideDecoder::Json { schemas },
        Converter::String => SideDecoder::String,
        Converter::Avro(avro) => SideDecoder::Avro {
            target: avro.target().clone(),
            readers: Mutex::new(HashMap::new()),
        },
    }
}

impl RecordDecoder {
    pub fn from_config(converters: &RawConfig) -> Result<Self, ConfigErrors> {
        let mut errors = ConfigErrors::default();
        let key = side_decoder(converters, "key", &mut errors);
        let value = side_decoder(converters, "value", &mut errors);
        errors.into_result(RecordDecoder {
            key: Arc::new(key),
            value: Arc::new(value),
            transforms: TransformChain::default(),
        })
    }

    /// The same decoder, applying `transforms` after decoding.
    pub fn with_transforms(mut self, transforms: TransformChain) -> Self {
        self.transforms = transforms;
        self
    }

    /// Decodes one record's key and value, then applies the connector's transforms.
    /// `Ok(None)`: a transform dropped the record (it still counts as consumed). Errors are
    /// definite (a record that cannot be decoded never will) except registry outages, which
    /// are transient; sinks hand definite ones to
    /// [`ErrantRecordReporter::report`](crate::dead_letter::ErrantRecordReporter::report).
    pub async fn decode(
        &self,
        record: &SinkRecord,
    ) -> Result<Option<ConnectRecord>, ConnectorError> {
        self.decode_staged(record).await.map_err(|(_, e)| e)
    }

    /// [`decode`](Self::decode), with the stage that failed (key converter, value converter
    /// or transformation), for the errant-record reporter's context headers.
    pub async fn decode_staged(
        &self,
        record: &SinkRecord,
    ) -> Result<Option<ConnectRecord>, (Stage, ConnectorError)> {
        let position = || format!("{}-{}@{}", record.topic, record.partition, record.offset);
        let key = match &record.record.key {
            None => None,
            Some(bytes) => Some(self.key.decode(bytes).await.map_err(|e| {
                let message = format!(
                    "cannot decode the key of record {}: {}",
                    position(),
                    e.message
                );
                (Stage::KeyConverter, ConnectorError::new(e.kind, message))
            })?),
        };
        let value = match &record.record.value {
            None => None,
            Some(bytes) => Some(self.value.decode(bytes).await.map_err(|e| {
                let message = format!(
                    "cannot decode the value of record {}: {}",
                    position(),
                    e.message
                );
                (Stage::ValueConverter, ConnectorError::new(e.kind, message))
            })?),
        };
        let decoded = ConnectRecord {
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
            timestamp_ms: record.record.timestamp_ms,
            key,
            value,
            headers: record.record.headers.clone(),
        };
        if self.transforms.is_empty() {
            return Ok(Some(decoded));
        }
        self.transforms
            .apply(decoded)
            .map_err(|e| (Stage::Transformation, e))
    }

    /// The Avro writer schema (JSON text) registered under `id`, for sinks that copy Avro
    /// datums through unchanged (e.g. into Avro container files). Errors when the value
    /// converter is not Avro.
    pub async fn avro_schema(&self, id: u32) -> Result<Arc<str>, ConnectorError> {
        Ok(self.value.avro_reader(id).await?.text.clone())
    }

    /// Whether transforms may change decoded records (then the topic bytes are not what the
    /// sink must write).
    pub fn has_transforms(&self) -> bool {
        !self.transforms.is_empty()
    }

    /// Whether values are Avro in the Confluent wire format.
    pub fn value_is_avro(&self) -> bool {
        matches!(*self.value, SideDecoder::Avro { .. })
    }
}

impl SideDecoder {
    async fn decode(&self, bytes: &Bytes) -> Result<SchemaAndValue, ConnectorError> {
        match self {
            SideDecoder::Bytes => Ok(SchemaAndValue {
                schema: Some(Arc::new(
                    ConnectSchema::new(ConnectType::Bytes).optional(true),
                )),
                value: Data::Bytes(bytes.clone()),
            }),
            SideDecoder::String => {
                let text = std::str::from_utf8(bytes)
                    .map_err(|e| ConnectorError::definite(format!("not UTF-8 text: {e}")))?;
                Ok(SchemaAndValue {
                    schema: Some(Arc::new(
                        ConnectSchema::new(ConnectType::String).optional(true),
                    )),
                    value: Data::String(text.to_owned()),
                })
            }
            SideDecoder::Json { schemas } => {
                let json: J = serde_json::from_slice(bytes)
                    .map_err(|e| ConnectorError::definite(format!("not valid JSON: {e}")))?;
                decode_json(json, *schemas)
            }
            SideDecoder::Avro { .. } => {
                let (id, datum) = wire::read_header(bytes).ok_or_else(|| {
                    ConnectorError::definite(
                        "not in the Confluent wire format (magic byte 0 and a 4-byte schema id); \
                         was it written by another converter? Check value.converter/key.converter",
                    )
                })?;
                let reader = self.avro_reader(id).await?;
                let mut input = datum;
                let value = reader.root.read(&mut input).map_err(|e| {
                    ConnectorError::definite(format!(
                        "Avro datum does not match writer schema id {id}: {e}"
                    ))
                })?;
                if !input.is_empty() {
                    return Err(ConnectorError::definite(format!(
                        "{} bytes left after the Avro datum of schema id {id}",
                        input.len()
                    )));
                }
                Ok(SchemaAndValue {
                    schema: Some(reader.schema.clone()),
                    value,
                })
            }
        }
    }

    async fn avro_reader(&self, id: u32) -> Result<Arc<AvroReader>, ConnectorError> {
        let SideDecoder::Avro { target, readers } = self else {
            return Err(ConnectorError::config(
                "the value converter is not io.confluent.connect.avro.AvroConverter",
            ));
        };
        if let Some(r) = readers.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
            return Ok(r.clone());
        }
        let text = target.schema_by_id(id).await?;
        let reader = Arc::new(AvroReader::compile(&text).map_err(|e| {
            ConnectorError::definite(format!("cannot read Avro schema id {id}: {e}"))
        })?);
        readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, reader.clone());
        Ok(reader)
    }
}

// ---------------------------------------------------------------------------------------
// JSON

fn decode_json(json: J, schemas: bool) -> Result<SchemaAndValue, ConnectorError> {
    if !schemas {
        return Ok(SchemaAndValue {
            schema: None,
            value: schemaless(json),
        });
    }
    let J::Object(mut envelope) = json else {
        return Err(ConnectorError::definite(
            "JsonConverter with schemas.enable=true expects {\"schema\": ..., \"payload\": ...}; \
             set value.converter.schemas.enable=false for plain JSON",
        ));
    };
    let (Some(schema), Some(payload)) = (envelope.remove("schema"), envelope.remove("payload"))
    else {
        return Err(ConnectorError::definite(
            "JsonConverter with schemas.enable=true expects exactly the fields \"schema\" and \"payload\"; \
             set value.converter.schemas.enable=false for plain JSON",
        ));
    };
    if schema.is_null() {
        return Ok(SchemaAndValue {
            schema: None,
            value: schemaless(payload),
        });
    }
    let schema = connect_schema_from_json(&schema).map_err(ConnectorError::definite)?;
    let value = json_value(&schema, payload).map_err(ConnectorError::definite)?;
    Ok(SchemaAndValue {
        schema: Some(Arc::new(schema)),
        value,
    })
}

fn schemaless(json: J) -> Data {
    match json {
        J::Null => Data::Null,
        J::Bool(b) => Data::Boolean(b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Data::Int64(i),
            None => Data::Float64(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Data::String(s),
        J::Array(items) => Data::Array(items.into_iter().map(schemaless).collect()),
        J::Object(m) => Data::Map(
            m.into_iter()
                .map(|(k, v)| (Data::String(k), schemaless(v)))
                .collect(),
        ),
    }
}

/// Kafka Connect's JSON schema (`{"type": "struct", "fields": [...], "optional": ...}`).
pub fn connect_schema_from_json(j: &J) -> Result<ConnectSchema, String> {
    let obj = j
        .as_object()
        .ok_or_else(|| format!("a Connect JSON schema must be an object, got {j}"))?;
    let ty = obj
        .get("type")
        .and_then(J::as_str)
        .ok_or("a Connect JSON schema needs a \"type\"")?;
    let sub = |key: &str| -> Result<Box<ConnectSchema>, String> {
        obj.get(key)
            .ok_or_else(|| format!("a {ty} schema needs \"{key}\""))
            .and_then(connect_schema_from_json)
            .map(Box::new)
    };
    let ty = match ty {
        "int8" => ConnectType::Int8,
        "int16" => ConnectType::Int16,
        "int32" => ConnectType::Int32,
        "int64" => ConnectType::Int64,
        "float" => ConnectType::Float32,
        "double" => ConnectType::Float64,
        "boolean" => ConnectType::Boolean,
        "string" => ConnectType::String,
        "bytes" => ConnectType::Bytes,
        "array" => ConnectType::Array(sub("items")?),
        "map" => ConnectType::Map(sub("keys")?, sub("values")?),
        "struct" => {
            let fields = obj
                .get("fields")
                .and_then(J::as_array)
                .ok_or("a struct schema needs \"fields\"")?;
            ConnectType::Struct(
                fields
                    .iter()
                    .map(|f| {
                        let name = f
                            .get("field")
                            .and_then(J::as_str)
                            .ok_or("a struct field needs \"field\"")?;
                        Ok(ConnectField {
                            name: name.to_owned(),
                            schema: connect_schema_from_json(f)?,
                        })
                    })
                    .collect::<Result<_, String>>()?,
            )
        }
        other => return Err(format!("unknown Connect schema type {other:?}")),
    };
    Ok(ConnectSchema {
        ty,
        optional: obj.get("optional").and_then(J::as_bool).unwrap_or(false),
        name: obj.get("name").and_then(J::as_str).map(str::to_owned),
        version: obj
            .get("version")
            .and_then(J::as_u64)
            .and_then(|v| u32::try_from(v).ok()),
        parameters: obj
            .get("parameters")
            .and_then(J::as_object)
            .map(|p| {
                p.iter()
                    .map(|(k, v)| {
                        let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                        (k.clone(), v)
                    })
                    .collect()
            })
            .unwrap_or_default(),
        default: obj.get("default").filter(|d| !d.is_null()).cloned(),
    })
}

fn json_value(schema: &ConnectSchema, j: J) -> Result<Data, String> {
    if j.is_null() {
        return match &schema.default {
            Some(d) if !d.is_null() => json_value(schema, d.clone()),
            _ if schema.optional => Ok(Data::Null),
            _ => Err(format!(
                "null for a required {} field",
                schema.name.as_deref().unwrap_or("value")
            )),
        };
    }
    let mismatch = |what: &str, j: &J| format!("expected {what}, got {j}");
    let int = |j: &J| j.as_i64().ok_or_else(|| mismatch("an integer", j));
    Ok(match &schema.ty {
        ConnectType::Int8 => Data::Int8(i8::try_from(int(&j)?).map_err(|e| e.to_string())?),
        ConnectType::Int16 => Data::Int16(i16::try_from(int(&j)?).map_err(|e| e.to_string())?),
        ConnectType::Int32 => Data::Int32(i32::try_from(int(&j)?).map_err(|e| e.to_string())?),
        ConnectType::Int64 => Data::Int64(int(&j)?),
        ConnectType::Float32 => {
            Data::Float32(j.as_f64().ok_or_else(|| mismatch("a number", &j))? as f32)
        }
        ConnectType::Float64 => Data::Float64(j.as_f64().ok_or_else(|| mismatch("a number", &j))?),
        ConnectType::Boolean => {
            Data::Boolean(j.as_bool().ok_or_else(|| mismatch("a boolean", &j))?)
        }
        ConnectType::String => match j {
            J::String(s) => Data::String(s),
            other => return Err(mismatch("a string", &other)),
        },
        ConnectType::Bytes => match j {
            // JsonConverter writes bytes (and Decimal by default) as base64.
            J::String(s) => Data::Bytes(Bytes::from(
                BASE64
                    .decode(s.as_bytes())
                    .map_err(|e| format!("bytes must be base64: {e}"))?,
            )),
            // `decimal.format=NUMERIC`.
            J::Number(n) if schema.name.as_deref() == Some(super::logical::DECIMAL) => {
                let scale = super::logical::decimal_scale(schema).unwrap_or(0);
                let d = crate::model::Decimal::parse(&n.to_string())
                    .map_err(|e| format!("bad decimal {n}: {e:?}"))?;
                Data::Bytes(Bytes::from(
                    super::logical::rescale(&d, scale)?.unscaled_be_bytes(),
                ))
            }
            other => return Err(mismatch("base64 bytes", &other)),
        },
        ConnectType::Array(items) => match j {
            J::Array(values) => Data::Array(
                values
                    .into_iter()
                    .map(|v| json_value(items, v))
                    .collect::<Result<_, _>>()?,
            ),
            other => return Err(mismatch("an array", &other)),
        },
        ConnectType::Map(keys, values) => match j {
            J::Object(m) => Data::Map(
                m.into_iter()
                    .map(|(k, v)| Ok((json_value(keys, J::String(k))?, json_value(values, v)?)))
                    .collect::<Result<_, String>>()?,
            ),
            // Non-string keys: an array of [key, value] pairs.
            J::Array(pairs) => Data::Map(
                pairs
                    .into_iter()
                    .map(|pair| match pair {
                        J::Array(mut kv) if kv.len() == 2 => {
                            let v = kv.pop().unwrap_or(J::Null);
                            let k = kv.pop().unwrap_or(J::Null);
                            Ok((json_value(keys, k)?, json_value(values, v)?))
                        }
                        other => Err(mismatch("a [key, value] pair", &other)),
                    })
                    .collect::<Result<_, String>>()?,
            ),
            other => return Err(mismatch("an object", &other)),
        },
        ConnectType::Struct(fields) => match j {
            J::Object(mut m) => Data::Struct(
                fields
                    .iter()
                    .map(|f| {
                        json_value(&f.schema, m.remove(&f.name).unwrap_or(J::Null))
                            .map_err(|e| format!("field {}: {e}", f.name))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            other => return Err(mismatch("an object", &other)),
        },
    })
}

// ---------------------------------------------------------------------------------------
// Avro

/// A compiled Avro writer schema: how to read a datum, and the Connect schema it maps to.
#[derive(Debug)]
pub struct AvroReader {
    /// The schema text, as registered.
    pub text: Arc<str>,
    pub schema: Arc<ConnectSchema>,
    root: Node,
}

/// How to read one Avro value.
#[derive(Debug, Clone)]
enum Node {
    Null,
    Boolean,
    /// `int` read as this Connect width.
    Int(IntWidth),
    Long,
    Float,
    Double,
    Bytes,
    String,
    Fixed(usize),
    Enum(Vec<String>),
    Array(Box<Node>),
    /// Avro map: string keys.
    Map(Box<Node>),
    /// Confluent's encoding of a map with non-string keys: an array of `{key, value}`.
    PairArray(Box<Node>, Box<Node>),
    Record(Vec<Node>),
    /// `["null", T]` / `[T, "null"]`: `null_index` is the null branch.
    Optional {
        null_index: u8,
        inner: Box<Node>,
    },
    /// Any other union: a Connect struct with one optional field per branch.
    Union(Vec<Node>),
}

#[derive(Debug, Clone, Copy)]
enum IntWidth {
    I8,
    I16,
    I32,
}

impl AvroReader {
    /// Compiles an Avro schema (JSON text).
    pub fn compile(text: &str) -> Result<AvroReader, String> {
        let json: J = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let mut names = HashMap::new();
        let (root, schema) = compile(&json, None, &mut names, 0)?;
        Ok(AvroReader {
            text: Arc::from(text),
            schema: Arc::new(schema),
            root,
        })
    }

    /// Reads one datum.
    pub fn read(&self, input: &mut &[u8]) -> Result<Data, String> {
        self.root.read(input)
    }
}

const MAX_DEPTH: usize = 64;

type Named = HashMap<String, (Node, ConnectSchema)>;

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

fn compile(
    j: &J,
    namespace: Option<&str>,
    names: &mut Named,
    depth: usize,
) -> Result<(Node, ConnectSchema), String> {
    if depth > MAX_DEPTH {
        return Err("schema nested too deeply (recursive schemas are not supported)".into());
    }
    match j {
        J::String(name) => primitive(name, None)
            .or_else(|| {
                let qualified = match namespace {
                    Some(ns) if !name.contains('.') => format!("{ns}.{name}"),
                    _ => name.clone(),
                };
                names.get(&qualified).or_else(|| names.get(name)).cloned()
            })
            .ok_or_else(|| format!("unknown Avro type {name:?}")),
        J::Array(branches) => compile_union(branches, namespace, names, depth),
        J::Object(obj) => {
            let ty = obj
                .get("type")
                .ok_or("an Avro schema object needs \"type\"")?;
            let (node, mut schema) = match ty {
                J::String(t) => match t.as_str() {
                    "record" | "error" => {
                        let full = full_name(obj, namespace).ok_or("a record needs a name")?;
                        let ns = full.rsplit_once('.').map(|(ns, _)| ns.to_owned());
                        let fields = obj
                            .get("fields")
                            .and_then(J::as_array)
                            .ok_or("a record needs \"fields\"")?;
                        let mut nodes = Vec::with_capacity(fields.len());
                        let mut connect_fields = Vec::with_capacity(fields.len());
                        for f in fields {
                            let name = f
                                .get("name")
                                .and_then(J::as_str)
                                .ok_or("a record field needs a name")?;
                            let fty = f.get("type").ok_or("a record field needs a type")?;
                            let (n, mut s) = compile(fty, ns.as_deref(), names, depth + 1)
                                .map_err(|e| format!("field {name}: {e}"))?;
                            if s.default.is_none()
                                && let Some(d) = f.get("default").filter(|d| !d.is_null())
                            {
                                s.default = Some(d.clone());
                            }
                            nodes.push(n);
                            connect_fields.push(ConnectField {
                                name: name.to_owned(),
                                schema: s,
                            });
                        }
                        let schema = ConnectSchema {
                            name: Some(full.clone()),
                            ..ConnectSchema::new(ConnectType::Struct(connect_fields))
                        };
                        let node = Node::Record(nodes);
                        names.insert(full, (node.clone(), schema.clone()));
                        (node, schema)
                    }
                    "enum" => {
                        let full = full_name(obj, namespace).ok_or("an enum needs a name")?;
                        let symbols: Vec<String> = obj
                            .get("symbols")
                            .and_then(J::as_array)
                            .ok_or("an enum needs \"symbols\"")?
                            .iter()
                            .filter_map(|s| s.as_str().map(str::to_owned))
                            .collect();
                        let mut schema = ConnectSchema::new(ConnectType::String);
                        schema.name = Some(full.clone());
                        schema
                            .parameters
                            .push(("io.confluent.connect.avro.Enum".into(), full.clone()));
                        for s in &symbols {
                            schema
                                .parameters
                                .push((format!("io.confluent.connect.avro.Enum.{s}"), s.clone()));
                        }
                        let node = Node::Enum(symbols);
                        names.insert(full, (node.clone(), schema.clone()));
                        (node, schema)
                    }
                    "fixed" => {
                        let full = full_name(obj, namespace).ok_or("a fixed needs a name")?;
                        let size = obj
                            .get("size")
                            .and_then(J::as_u64)
                            .and_then(|s| usize::try_from(s).ok())
                            .ok_or("a fixed needs a size")?;
                        let schema = ConnectSchema::new(ConnectType::Bytes);
                        let node = Node::Fixed(size);
                        names.insert(full, (node.clone(), schema.clone()));
                        (node, schema)
                    }
                    "array" => {
                        let items = obj.get("items").ok_or("an array needs \"items\"")?;
                        let (n, s) = compile(items, namespace, names, depth + 1)?;
                        // Confluent's maps with non-string keys.
                        if let (Node::Record(parts), ConnectType::Struct(fields)) = (&n, &s.ty)
                            && s.name.as_deref() == Some("io.confluent.connect.avro.MapEntry")
                            && parts.len() == 2
                            && fields.len() == 2
                        {
                            (
                                Node::PairArray(
                                    Box::new(parts[0].clone()),
                                    Box::new(parts[1].clone()),
                                ),
                                ConnectSchema::new(ConnectType::Map(
                                    Box::new(fields[0].schema.clone()),
                                    Box::new(fields[1].schema.clone()),
                                )),
                            )
                        } else {
                            (
                                Node::Array(Box::new(n)),
                                ConnectSchema::new(ConnectType::Array(Box::new(s))),
                            )
                        }
                    }
                    "map" => {
                        let values = obj.get("values").ok_or("a map needs \"values\"")?;
                        let (n, s) = compile(values, namespace, names, depth + 1)?;
                        (
                            Node::Map(Box::new(n)),
                            ConnectSchema::new(ConnectType::Map(
                                Box::new(ConnectSchema::new(ConnectType::String)),
                                Box::new(s),
                            )),
                        )
                    }
                    p => {
                        primitive(p, Some(obj)).ok_or_else(|| format!("unknown Avro type {p:?}"))?
                    }
                },
                // `{"type": {...}}` or `{"type": [...]}`: a nested schema.
                nested => compile(nested, namespace, names, depth + 1)?,
            };
            apply_connect_properties(obj, &mut schema);
            Ok((node, schema))
        }
        other => Err(format!("not an Avro schema: {other}")),
    }
}

/// A primitive type, with its logical type and Connect properties when `obj` has them.
fn primitive(
    name: &str,
    obj: Option<&serde_json::Map<String, J>>,
) -> Option<(Node, ConnectSchema)> {
    let prop = |k: &str| obj.and_then(|o| o.get(k)).and_then(J::as_str);
    let logical = prop("logicalType");
    let (node, ty) = match name {
        "null" => (Node::Null, ConnectType::Bytes),
        "boolean" => (Node::Boolean, ConnectType::Boolean),
        "int" => match prop("connect.type") {
            Some("int8") => (Node::Int(IntWidth::I8), ConnectType::Int8),
            Some("int16") => (Node::Int(IntWidth::I16), ConnectType::Int16),
            _ => (Node::Int(IntWidth::I32), ConnectType::Int32),
        },
        "long" => (Node::Long, ConnectType::Int64),
        "float" => (Node::Float, ConnectType::Float32),
        "double" => (Node::Double, ConnectType::Float64),
        "bytes" => (Node::Bytes, ConnectType::Bytes),
        "string" => (Node::String, ConnectType::String),
        _ => return None,
    };
    let mut schema = ConnectSchema::new(ty);
    if name == "null" {
        schema.optional = true;
    }
    let logical_name = match (name, logical) {
        ("bytes", Some("decimal")) => {
            let scale = obj
                .and_then(|o| o.get("scale"))
                .and_then(J::as_u64)
                .unwrap_or(0);
            schema.parameters.push(("scale".into(), scale.to_string()));
            if let Some(p) = obj.and_then(|o| o.get("precision")).and_then(J::as_u64) {
                schema
                    .parameters
                    .push(("connect.decimal.precision".into(), p.to_string()));
            }
            Some(super::logical::DECIMAL)
        }
        ("int", Some("date")) => Some("org.apache.kafka.connect.data.Date"),
        ("int", Some("time-millis")) => Some("org.apache.kafka.connect.data.Time"),
        ("long", Some("timestamp-millis")) => Some("org.apache.kafka.connect.data.Timestamp"),
        _ => None,
    };
    if let Some(n) = logical_name {
        schema.name = Some(n.to_owned());
        schema.version = Some(1);
    }
    Some((node, schema))
}

/// `connect.name`, `connect.version`, `connect.parameters`, `connect.default`, `connect.doc`.
fn apply_connect_properties(obj: &serde_json::Map<String, J>, schema: &mut ConnectSchema) {
    if let Some(name) = obj.get("connect.name").and_then(J::as_str) {
        schema.name = Some(name.to_owned());
    }
    if let Some(v) = obj
        .get("connect.version")
        .and_then(J::as_u64)
        .and_then(|v| u32::try_from(v).ok())
    {
        schema.version = Some(v);
    }
    if let Some(params) = obj.get("connect.parameters").and_then(J::as_object) {
        for (k, v) in params {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            match schema.parameters.iter_mut().find(|(pk, _)| pk == k) {
                Some(slot) => slot.1 = v,
                None => schema.parameters.push((k.clone(), v)),
            }
        }
    }
    if let Some(d) = obj.get("connect.default").filter(|d| !d.is_null()) {
        schema.default = Some(d.clone());
    }
}

fn compile_union(
    branches: &[J],
    namespace: Option<&str>,
    names: &mut Named,
    depth: usize,
) -> Result<(Node, ConnectSchema), String> {
    let compiled = branches
        .iter()
        .map(|b| compile(b, namespace, names, depth + 1))
        .collect::<Result<Vec<_>, _>>()?;
    let is_null = |j: &J| j.as_str() == Some("null");
    let nulls: Vec<usize> = (0..branches.len())
        .filter(|&i| is_null(&branches[i]))
        .collect();
    if branches.len() == 2 && nulls.len() == 1 {
        let null_index = nulls[0];
        let mut compiled = compiled;
        let (node, schema) = compiled.swap_remove(1 - null_index);
        return Ok((
            Node::Optional {
                null_index: null_index as u8,
                inner: Box::new(node),
            },
            schema.optional(true),
        ));
    }
    if branches.len() == 1 {
        return compiled
            .into_iter()
            .next()
            .ok_or_else(|| "empty union".into());
    }
    // Confluent's general unions: a struct with one optional field per non-null branch.
    let mut fields = Vec::new();
    let mut nodes = Vec::new();
    for (i, (node, schema)) in compiled.into_iter().enumerate() {
        nodes.push(node);
        if nulls.contains(&i) {
            continue;
        }
        let name = match &schema.ty {
            ConnectType::Struct(_) => schema
                .name
                .as_deref()
                .and_then(|n| n.rsplit('.').next())
                .unwrap_or("struct")
                .to_owned(),
            ConnectType::Int8 | ConnectType::Int16 | ConnectType::Int32 => "int".into(),
            ConnectType::Int64 => "long".into(),
            ConnectType::Float32 => "float".into(),
            ConnectType::Float64 => "double".into(),
            ConnectType::Boolean => "boolean".into(),
            ConnectType::String => "string".into(),
            ConnectType::Bytes => "bytes".into(),
            ConnectType::Array(_) => "array".into(),
            ConnectType::Map(..) => "map".into(),
        };
        fields.push(ConnectField {
            name,
            schema: schema.optional(true),
        });
    }
    let schema = ConnectSchema {
        name: Some("io.confluent.connect.avro.Union".into()),
        optional: !nulls.is_empty(),
        ..ConnectSchema::new(ConnectType::Struct(fields))
    };
    Ok((Node::Union(nodes), schema))
}

/// Array and map blocks: a count (negative: followed by a byte size), zero ends.
fn read_blocks(
    input: &mut &[u8],
    mut item: impl FnMut(&mut &[u8]) -> Result<(), String>,
) -> Result<(), String> {
    loop {
        let count = read_long(input)?;
        if count == 0 {
            return Ok(());
        }
        if count < 0 {
            read_long(input)?; // block size in bytes
        }
        for _ in 0..count.unsigned_abs() {
            item(input)?;
        }
    }
}

impl Node {
    fn read(&self, input: &mut &[u8]) -> Result<Data, String> {
        Ok(match self {
            Node::Null => Data::Null,
            Node::Boolean => {
                let b = take(input, 1)?[0];
                Data::Boolean(b != 0)
            }
            Node::Int(width) => {
                let v = read_long(input)?;
                let range = |e| format!("int {v} out of range: {e}");
                match width {
                    IntWidth::I8 => Data::Int8(i8::try_from(v).map_err(range)?),
                    IntWidth::I16 => Data::Int16(i16::try_from(v).map_err(range)?),
                    IntWidth::I32 => Data::Int32(i32::try_from(v).map_err(range)?),
                }
            }
            Node::Long => Data::Int64(read_long(input)?),
            Node::Float => {
                let b = take(input, 4)?;
                Data::Float32(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            Node::Double => {
                let b = take(input, 8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Data::Float64(f64::from_le_bytes(a))
            }
            Node::Bytes => {
                let n = read_len(input)?;
                Data::Bytes(Bytes::copy_from_slice(take(input, n)?))
            }
            Node::String => {
                let n = read_len(input)?;
                let s = std::str::from_utf8(take(input, n)?).map_err(|e| e.to_string())?;
                Data::String(s.to_owned())
            }
            Node::Fixed(n) => Data::Bytes(Bytes::copy_from_slice(take(input, *n)?)),
            Node::Enum(symbols) => {
                let i = read_len(input)?;
                let s = symbols
                    .get(i)
                    .ok_or_else(|| format!("enum index {i} out of range"))?;
                Data::String(s.clone())
            }
            Node::Array(items) => {
                let mut out = Vec::new();
                read_blocks(input, |i| {
                    out.push(items.read(i)?);
                    Ok(())
                })?;
                Data::Array(out)
            }
            Node::Map(values) => {
                let mut out = Vec::new();
                read_blocks(input, |i| {
                    let k = Node::String.read(i)?;
                    out.push((k, values.read(i)?));
                    Ok(())
                })?;
                Data::Map(out)
            }
            Node::PairArray(keys, values) => {
                let mut out = Vec::new();
                read_blocks(input, |i| {
                    let k = keys.read(i)?;
                    out.push((k, values.read(i)?));
                    Ok(())
                })?;
                Data::Map(out)
            }
            Node::Record(fields) => Data::Struct(
                fields
                    .iter()
                    .map(|f| f.read(input))
                    .collect::<Result<_, _>>()?,
            ),
            Node::Optional { null_index, inner } => {
                let branch = read_len(input)?;
                match branch {
                    b if b == usize::from(*null_index) => Data::Null,
                    b if b < 2 => inner.read(input)?,
                    b => return Err(format!("union branch {b} of an optional")),
                }
            }
            Node::Union(branches) => {
                let b = read_len(input)?;
                let node = branches
                    .get(b)
                    .ok_or_else(|| format!("union branch {b} out of range"))?;
                let value = node.read(input)?;
                // One field per non-null branch; only the chosen one is set.
                let mut fields = Vec::new();
                for (i, n) in branches.iter().enumerate() {
                    if matches!(n, Node::Null) {
                        continue;
                    }
                    fields.push(if i == b { value.clone() } else { Data::Null });
                }
                if matches!(node, Node::Null) {
                    Data::Null
                } else {
                    Data::Struct(fields)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests;
