//! Kafka's field transforms: `InsertField`, `ReplaceField`, `MaskField` (each `$Key` or
//! `$Value`) and `ValueToKey`. Records whose side is null (tombstones) pass unchanged.

use bytes::Bytes;

use super::config::Props;
use super::structs::Fields;
use super::{Side, Transform, fail};
use crate::data::{ConnectRecord, ConnectSchema, ConnectType, Data, SchemaAndValue};
use crate::error::ConnectorError;

fn side_mut(record: &mut ConnectRecord, side: Side) -> &mut Option<SchemaAndValue> {
    match side {
        Side::Key => &mut record.key,
        Side::Value => &mut record.value,
    }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Key => "key",
        Side::Value => "value",
    }
}

/// A field spec of `InsertField`: `name` (optional), `name?` (optional), `name!` (required).
#[derive(Debug, Clone)]
struct Spec {
    name: String,
    optional: bool,
}

fn spec(p: &Props<'_>, key: &str) -> Option<Spec> {
    let raw = p.get(key)?;
    let (name, optional) = match raw.strip_suffix('!') {
        Some(n) => (n, false),
        None => (raw.strip_suffix('?').unwrap_or(raw), true),
    };
    Some(Spec {
        name: name.to_owned(),
        optional,
    })
}

/// `org.apache.kafka.connect.transforms.InsertField$Key|$Value`: adds the record's topic,
/// partition, offset, timestamp and/or a static string.
#[derive(Debug)]
pub struct InsertField {
    side: Side,
    topic: Option<Spec>,
    partition: Option<Spec>,
    offset: Option<Spec>,
    timestamp: Option<Spec>,
    static_field: Option<Spec>,
    static_value: Option<String>,
}

impl InsertField {
    pub fn new(p: &Props<'_>, side: Side) -> Self {
        let t = InsertField {
            side,
            topic: spec(p, "topic.field"),
            partition: spec(p, "partition.field"),
            offset: spec(p, "offset.field"),
            timestamp: spec(p, "timestamp.field"),
            static_field: spec(p, "static.field"),
            static_value: p.get("static.value").map(str::to_owned),
        };
        if t.static_field.is_some() != t.static_value.is_some() {
            p.error("static.value", "static.field and static.value go together");
        }
        if [
            &t.topic,
            &t.partition,
            &t.offset,
            &t.timestamp,
            &t.static_field,
        ]
        .iter()
        .all(|s| s.is_none())
        {
            p.error(
                "topic.field",
                "set at least one of topic.field, partition.field, offset.field, timestamp.field, static.field",
            );
        }
        t
    }
}

impl Transform for InsertField {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, ConnectorError> {
        let (topic, partition, offset, ts) = (
            record.topic.to_string(),
            record.partition,
            record.offset,
            record.timestamp_ms,
        );
        let slot = side_mut(&mut record, self.side);
        let Some(sv) = slot.take() else {
            return Ok(Some(record));
        };
        let mut fields = Fields::of_side(&sv).ok_or_else(|| {
            fail(format!(
                "InsertField${}: only structs and maps can take fields",
                if self.side == Side::Key {
                    "Key"
                } else {
                    "Value"
                }
            ))
        })?;
        let mut add = |spec: &Option<Spec>, ty: ConnectType, name: Option<&str>, value: Data| {
            if let Some(s) = spec {
                let schema = ConnectSchema {
                    name: name.map(str::to_owned),
                    version: name.map(|_| 1),
                    ..ConnectSchema::new(ty)
                }
                .optional(s.optional);
                fields.set(&s.name, Some(schema), value);
            }
        };
        add(&self.topic, ConnectType::String, None, Data::String(topic));
        add(
            &self.partition,
            ConnectType::Int32,
            None,
            Data::Int32(partition as i32),
        );
        add(
            &self.offset,
            ConnectType::Int64,
            None,
            Data::Int64(offset as i64),
        );
        add(
            &self.timestamp,
            ConnectType::Int64,
            Some("org.apache.kafka.connect.data.Timestamp"),
            Data::Int64(ts),
        );
        if let Some(v) = &self.static_value {
            add(
                &self.static_field,
                ConnectType::String,
                None,
                Data::String(v.clone()),
            );
        }
        *side_mut(&mut record, self.side) = Some(fields.into_side());
        Ok(Some(record))
    }
}

/// `org.apache.kafka.connect.transforms.ReplaceField$Key|$Value`: keeps `include`d fields
/// (all when empty), drops `exclude`d ones, renames `renames` (`old:new,...`). The older
/// names `whitelist` and `blacklist` are accepted.
#[derive(Debug)]
pub struct ReplaceField {
    side: Side,
    include: Vec<String>,
    exclude: Vec<String>,
    renames: Vec<(String, String)>,
}

impl ReplaceField {
    pub fn new(p: &Props<'_>, side: Side) -> Self {
        let list = |names: &[&str]| {
            names
                .iter()
                .map(|n| p.list(n))
                .find(|l| !l.is_empty())
                .unwrap_or_default()
        };
        let include = list(&["include", "whitelist"]);
        let exclude = list(&["exclude", "blacklist"]);
        let mut renames = Vec::new();
        for pair in p.list("renames") {
            match pair.split_once(':') {
                Some((a, b)) if !a.trim().is_empty() && !b.trim().is_empty() => {
                    renames.push((a.trim().to_owned(), b.trim().to_owned()))
                }
                _ => p.error("renames", format!("{pair:?} is not old:new")),
            }
        }
        p.get("replace.null.with.default");
        ReplaceField {
            side,
            include,
            exclude,
            renames,
        }
    }
}

impl Transform for ReplaceField {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, ConnectorError> {
        let slot = side_mut(&mut record, self.side);
        let Some(sv) = slot.take() else {
            return Ok(Some(record));
        };
        let mut fields = Fields::of_side(&sv).ok_or_else(|| {
            fail(format!(
                "ReplaceField: the {} is not a struct or map",
                side_name(self.side)
            ))
        })?;
        fields.items.retain(|i| {
            (self.include.is_empty() || self.include.contains(&i.name))
                && !self.exclude.contains(&i.name)
        });
        for item in &mut fields.items {
            if let Some((_, to)) = self.renames.iter().find(|(from, _)| *from == item.name) {
                item.name = to.clone();
            }
        }
        *slot = Some(fields.into_side());
        Ok(Some(record))
    }
}

/// `org.apache.kafka.connect.transforms.MaskField$Key|$Value`: replaces `fields` with the
/// type's empty value (0, false, "", empty bytes/array/map, epoch) or with `replacement`
/// (numeric fields need a numeric replacement). The schema does not change.
#[derive(Debug)]
pub struct MaskField {
    side: Side,
    fields: Vec<String>,
    replacement: Option<String>,
}

impl MaskField {
    pub fn new(p: &Props<'_>, side: Side) -> Self {
        let fields = p.list("fields");
        if fields.is_empty() {
            p.error("fields", "is required: the fields to mask");
        }
        MaskField {
            side,
            fields,
            replacement: p.get("replacement").map(str::to_owned),
        }
    }

    fn masked(
        &self,
        field: &str,
        schema: Option<&ConnectSchema>,
        value: &Data,
    ) -> Result<Data, ConnectorError> {
        let decimal =
            schema.and_then(|s| s.name.as_deref()) == Some("org.apache.kafka.connect.data.Decimal");
        let Some(r) = &self.replacement else {
            return Ok(match value {
                Data::Null => Data::Null,
                Data::Boolean(_) => Data::Boolean(false),
                Data::Int8(_) => Data::Int8(0),
                Data::Int16(_) => Data::Int16(0),
                Data::Int32(_) => Data::Int32(0),
                Data::Int64(_) => Data::Int64(0),
                Data::Float32(_) => Data::Float32(0.0),
                Data::Float64(_) => Data::Float64(0.0),
                Data::String(_) => Data::String(String::new()),
                Data::Bytes(_) if decimal => Data::Bytes(Bytes::from_static(&[0])),
                Data::Bytes(_) => Data::Bytes(Bytes::new()),
                Data::Array(_) => Data::Array(Vec::new()),
                Data::Map(_) => Data::Map(Vec::new()),
                Data::Struct(_) => {
                    return Err(fail(format!("MaskField: cannot mask struct field {field}")));
                }
            });
        };
        let bad = || {
            fail(format!(
                "MaskField: replacement {r:?} does not fit field {field}"
            ))
        };
        let t = r.trim();
        Ok(match value {
            Data::Null => Data::Null,
            Data::String(_) => Data::String(r.clone()),
            Data::Int8(_) => Data::Int8(t.parse().map_err(|_| bad())?),
            Data::Int16(_) => Data::Int16(t.parse().map_err(|_| bad())?),
            Data::Int32(_) => Data::Int32(t.parse().map_err(|_| bad())?),
            Data::Int64(_) => Data::Int64(t.parse().map_err(|_| bad())?),
            Data::Float32(_) => Data::Float32(t.parse().map_err(|_| bad())?),
            Data::Float64(_) => Data::Float64(t.parse().map_err(|_| bad())?),
            Data::Boolean(_) => Data::Boolean(t.parse().map_err(|_| bad())?),
            Data::Bytes(_) if !decimal => Data::Bytes(Bytes::from(r.clone().into_bytes())),
            _ => return Err(bad()),
        })
    }
}

impl Transform for MaskField {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, ConnectorError> {
        let slot = side_mut(&mut record, self.side);
        let Some(sv) = slot.take() else {
            return Ok(Some(record));
        };
        let mut fields = Fields::of_side(&sv).ok_or_else(|| {
            fail(format!(
                "MaskField: the {} is not a struct or map",
                side_name(self.side)
            ))
        })?;
        for item in &mut fields.items {
            if self.fields.contains(&item.name) {
                item.value = self.masked(&item.name, item.schema.as_ref(), &item.value)?;
            }
        }
        *slot = Some(fields.into_side());
        Ok(Some(record))
    }
}

/// `org.apache.kafka.connect.transforms.ValueToKey`: the key becomes a struct (or map) of
/// the value's `fields`.
#[derive(Debug)]
pub struct ValueToKey {
    fields: Vec<String>,
}

impl ValueToKey {
    pub fn new(p: &Props<'_>) -> Self {
        let fields = p.list("fields");
        if fields.is_empty() {
            p.error("fields", "is required: the value fields that make the key");
        }
        p.get("replace.null.with.default");
        ValueToKey { fields }
    }
}

impl Transform for ValueToKey {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, ConnectorError> {
        let Some(value) = &record.value else {
            return Ok(Some(record));
        };
        let source = Fields::of_side(value)
            .ok_or_else(|| fail("ValueToKey: the value is not a struct or map"))?;
        let mut key = Fields::empty(None, source.has_schema());
        for name in &self.fields {
            let item = source
                .get(name)
                .ok_or_else(|| fail(format!("ValueToKey: the value has no field {name:?}")))?;
            key.set(name, item.schema.clone(), item.value.clone());
        }
        record.key = Some(key.into_side());
        Ok(Some(record))
    }
}
