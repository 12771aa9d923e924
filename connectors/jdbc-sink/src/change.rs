//! Decoded records to row changes: the Debezium envelope (`op`, `before`, `after`,
//! `source`) natively, flat rows, tombstones; the primary key per `primary.key.mode`; the
//! target table per `table.name.format`.

use std::sync::Arc;

use tributary_runtime::data::envelope::{Op, StructRef, envelope};
use tributary_runtime::data::{ConnectRecord, SchemaAndValue};
use tributary_runtime::model::Value;
use tributary_runtime::record::SinkRecord;

use crate::config::{JdbcSinkConfig, PrimaryKeyMode};
use crate::mapping::{FieldSpec, SqlType, field_value, inferred_type, sql_type};
use crate::table::TableName;

/// What a change does to its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Insert, upsert or update (per `insert.mode`).
    Upsert,
    Delete,
    Truncate,
}

/// One row change bound for a target table.
#[derive(Debug, Clone)]
pub struct Change {
    pub table: TableName,
    pub kind: ChangeKind,
    /// Columns carried (for deletes: the key columns only).
    pub fields: Vec<FieldSpec>,
    /// One value per field; [`Value::Unavailable`] marks a column to leave untouched.
    pub values: Vec<Value>,
    /// Indexes into `fields` of the primary key columns, in key order.
    pub key: Vec<usize>,
    /// The record this change came from (for error reports).
    pub record: SinkRecord,
}

impl Change {
    /// The key values as a string that is equal exactly when the keys are equal (the
    /// reduction buffer's map key). `None` without a key.
    pub fn key_id(&self) -> Option<String> {
        if self.key.is_empty() {
            return None;
        }
        let parts: Vec<&Value> = self
            .key
            .iter()
            .filter_map(|&i| self.values.get(i))
            .collect();
        Some(format!("{parts:?}"))
    }

    pub fn key_names(&self) -> Vec<&str> {
        self.key
            .iter()
            .filter_map(|&i| self.fields.get(i))
            .map(|f| f.name.as_str())
            .collect()
    }
}

/// Turns decoded records into [`Change`]s.
#[derive(Debug, Clone)]
pub struct ChangeMapper {
    config: Arc<JdbcSinkConfig>,
    /// Fold identifiers to lower case (Postgres with `quote.identifiers=false`).
    fold: bool,
}

impl ChangeMapper {
    pub fn new(config: Arc<JdbcSinkConfig>, fold: bool) -> Self {
        ChangeMapper { config, fold }
    }

    fn ident(&self, name: &str) -> String {
        if self.fold {
            name.to_lowercase()
        } else {
            name.to_owned()
        }
    }

    /// The change a record makes; `Ok(None)`: nothing to do (deletes or truncates
    /// disabled, tombstones without delete.enabled). `Err`: the record cannot be written.
    pub fn map(&self, record: &ConnectRecord, raw: &SinkRecord) -> Result<Option<Change>, String> {
        let Some(value) = &record.value else {
            if !self.config.delete_enabled {
                return Ok(None);
            }
            let table = self.table(&record.topic, None)?;
            return self.delete(record, raw, table).map(Some);
        };
        match envelope(value) {
            Some(env) => {
                let table = self.table(&record.topic, env.source)?;
                match env.op {
                    Op::Truncate if self.config.truncate_enabled => Ok(Some(Change {
                        table,
                        kind: ChangeKind::Truncate,
                        fields: Vec::new(),
                        values: Vec::new(),
                        key: Vec::new(),
                        record: raw.clone(),
                    })),
                    Op::Truncate => Ok(None),
                    Op::Delete if self.config.delete_enabled => {
                        self.delete(record, raw, table).map(Some)
                    }
                    Op::Delete => Ok(None),
                    Op::Create | Op::Read | Op::Update => {
                        let after = env
                            .after
                            .ok_or("change event without an `after` row image")?;
                        self.upsert(record, raw, table, after).map(Some)
                    }
                }
            }
            None => {
                let table = self.table(&record.topic, None)?;
                let row = StructRef {
                    schema: value.schema.as_deref(),
                    value: &value.value,
                };
                if row.fields().is_empty() && !is_struct(value) {
                    return Err(
                        "record value is neither a Debezium change event nor a struct row; \
                         check the topics and the value.converter"
                            .into(),
                    );
                }
                self.upsert(record, raw, table, row).map(Some)
            }
        }
    }

    fn table(&self, topic: &str, source: Option<StructRef<'_>>) -> Result<TableName, String> {
        let mut out = self.config.table_name_format.clone();
        if out.contains("${topic}") {
            out = out.replace("${topic}", &topic.replace('.', "_"));
        }
        for (var, field) in [
            ("${source.db}", "db"),
            ("${source.schema}", "schema"),
            ("${source.table}", "table"),
        ] {
            if out.contains(var) {
                let value = source.and_then(|s| s.str(field)).ok_or_else(|| {
                    format!("table.name.format uses {var} but the record has no source.{field}")
                })?;
                out = out.replace(var, value);
            }
        }
        let (schema, name) = match out.split_once('.') {
            Some((s, n)) if !s.is_empty() && !n.is_empty() => (Some(self.ident(s)), self.ident(n)),
            _ => (None, self.ident(&out)),
        };
        Ok(TableName { schema, name })
    }

    /// Key fields from the record key (`record_key`): name, spec, value.
    fn key_fields(&self, record: &ConnectRecord) -> Result<Vec<(FieldSpec, Value)>, String> {
        let key = record
            .key
            .as_ref()
            .ok_or("primary.key.mode=record_key but the record has no key")?;
        let wanted = &self.config.pk_fields;
        let row = StructRef {
            schema: key.schema.as_deref(),
            value: &key.value,
        };
        let fields = row.fields();
        if fields.is_empty() {
            // A primitive key: one column named by primary.key.fields.
            let [name] = wanted.as_slice() else {
                return Err(
                    "the record key is not a struct: name its column in primary.key.fields".into(),
                );
            };
            let value = field_value(key.schema.as_deref(), &key.value, &self.config.placeholder)?;
            let ty = key
                .schema
                .as_deref()
                .map_or_else(|| inferred_type(&value), sql_type);
            return Ok(vec![(
                FieldSpec {
                    name: self.ident(name),
                    ty,
                    optional: false,
                },
                value,
            )]);
        }
        let mut out = Vec::new();
        for (name, schema, data) in fields {
            if !wanted.is_empty() && !wanted.iter().any(|w| w == name) {
                continue;
            }
            let value = field_value(schema, data, &self.config.placeholder)
                .map_err(|e| format!("key field {name}: {e}"))?;
            let ty = schema.map_or_else(|| inferred_type(&value), sql_type);
            out.push((
                FieldSpec {
                    name: self.ident(name),
                    ty,
                    optional: false,
                },
                value,
            ));
        }
        if out.is_empty() {
            return Err("none of primary.key.fields is in the record key".into());
        }
        Ok(out)
    }

    fn delete(
        &self,
        record: &ConnectRecord,
        raw: &SinkRecord,
        table: TableName,
    ) -> Result<Change, String> {
        let key = self.key_fields(record)?;
        let key_idx = (0..key.len()).collect();
        let (fields, values) = key.into_iter().unzip();
        Ok(Change {
            table,
            kind: ChangeKind::Delete,
            fields,
            values,
            key: key_idx,
            record: raw.clone(),
        })
    }

    fn upsert(
        &self,
        record: &ConnectRecord,
        raw: &SinkRecord,
        table: TableName,
        row: StructRef<'_>,
    ) -> Result<Change, String> {
        let mut fields = Vec::new();
        let mut values = Vec::new();
        for (name, schema, data) in row.fields() {
            let value = field_value(schema, data, &self.config.placeholder)
                .map_err(|e| format!("field {name}: {e}"))?;
            let ty = schema.map_or_else(|| inferred_type(&value), sql_type);
            fields.push(FieldSpec {
                name: self.ident(name),
                ty,
                optional: schema.is_none_or(|s| s.optional),
            });
            values.push(value);
        }
        let mut key = Vec::new();
        match self.config.pk_mode {
            PrimaryKeyMode::None => {}
            PrimaryKeyMode::RecordKey => {
                for (spec, value) in self.key_fields(record)? {
                    match fields.iter().position(|f| f.name == spec.name) {
                        Some(i) => {
                            fields[i].optional = false;
                            values[i] = value;
                            key.push(i);
                        }
                        None => {
                            key.push(fields.len());
                            fields.push(spec);
                            values.push(value);
                        }
                    }
                }
            }
            PrimaryKeyMode::RecordValue => {
                for name in &self.config.pk_fields {
                    let name = self.ident(name);
                    let i = fields.iter().position(|f| f.name == name).ok_or_else(|| {
                        format!("primary key field {name} is not in the record value")
                    })?;
                    fields[i].optional = false;
                    key.push(i);
                }
            }
            PrimaryKeyMode::Kafka => {
                let names = match self.config.pk_fields.as_slice() {
                    [t, p, o] => [t.as_str(), p.as_str(), o.as_str()],
                    _ => ["__connect_topic", "__connect_partition", "__connect_offset"],
                };
                let extra = [
                    (SqlType::Text, Value::Text(record.topic.to_string())),
                    (SqlType::Int32, Value::Int(record.partition.into())),
                    (SqlType::Int64, Value::Int(record.offset as i64)),
                ];
                for (name, (ty, value)) in names.into_iter().zip(extra) {
                    let name = self.ident(name);
                    let i = match fields.iter().position(|f| f.name == name) {
                        Some(i) => {
                            values[i] = value;
                            i
                        }
                        None => {
                            fields.push(FieldSpec {
                                name,
                                ty,
                                optional: false,
                            });
                            values.push(value);
                            fields.len() - 1
                        }
                    };
                    key.push(i);
                }
            }
        }
        if let Some(&i) = key
            .iter()
            .find(|&&i| values[i].is_null() || values[i] == Value::Unavailable)
        {
            return Err(format!("primary key column {} is null", fields[i].name));
        }
        Ok(Change {
            table,
            kind: ChangeKind::Upsert,
            fields,
            values,
            key,
            record: raw.clone(),
        })
    }
}

fn is_struct(value: &SchemaAndValue) -> bool {
    matches!(
        value.schema.as_deref().map(|s| &s.ty),
        Some(tributary_runtime::data::ConnectType::Struct(_))
    )
}
