//! The reduction buffer: changes waiting for the next flush, per table, with several
//! changes to one key collapsed to the last one.
//!
//! Collapsing is exact: after an upsert then a delete only the delete remains, after a
//! delete then an upsert only the upsert; a truncate drops everything buffered before it
//! for its table. An update whose unchanged TOAST columns are unavailable takes those
//! values from an earlier buffered upsert of the same key when there is one.

use std::collections::{BTreeMap, HashMap};

use tributary_runtime::model::Value;
use tributary_runtime::record::{ConsumerOffsets, SinkRecord, TopicPartition};

use crate::change::{Change, ChangeKind};
use crate::table::TableName;

/// Buffered changes of one table.
#[derive(Debug, Default)]
pub struct TableBatch {
    /// Truncate the table before writing the changes (the record that asked for it).
    pub truncate: Option<SinkRecord>,
    /// One change per key, in first-seen order.
    pub keyed: Vec<Change>,
    index: HashMap<String, usize>,
    /// Changes without a key (`primary.key.mode=none`), in order.
    pub unkeyed: Vec<Change>,
}

impl TableBatch {
    fn push(&mut self, change: Change) {
        if change.kind == ChangeKind::Truncate {
            self.keyed.clear();
            self.index.clear();
            self.unkeyed.clear();
            self.truncate = Some(change.record);
            return;
        }
        match change.key_id() {
            None => self.unkeyed.push(change),
            Some(id) => match self.index.get(&id) {
                Some(&i) => {
                    let merged = merge(&self.keyed[i], change);
                    self.keyed[i] = merged;
                }
                None => {
                    self.index.insert(id, self.keyed.len());
                    self.keyed.push(change);
                }
            },
        }
    }

    /// Every change, keyed then unkeyed.
    pub fn changes(&self) -> impl Iterator<Item = &Change> {
        self.keyed.iter().chain(&self.unkeyed)
    }
}

/// `new` replacing `old` (same key), with unavailable values of an update filled from an
/// earlier upsert.
fn merge(old: &Change, mut new: Change) -> Change {
    if new.kind == ChangeKind::Upsert && old.kind == ChangeKind::Upsert {
        for (i, value) in new.values.iter_mut().enumerate() {
            if *value != Value::Unavailable {
                continue;
            }
            let name = &new.fields[i].name;
            if let Some(j) = old.fields.iter().position(|f| f.name == *name)
                && old.values[j] != Value::Unavailable
            {
                *value = old.values[j].clone();
            }
        }
    }
    new
}

/// Everything put since the last flush.
#[derive(Debug, Default)]
pub struct Buffer {
    pub tables: BTreeMap<TableName, TableBatch>,
    /// Next offsets of every record put (written, skipped or dead-lettered alike).
    pub offsets: ConsumerOffsets,
    changes: usize,
}

impl Buffer {
    pub fn push(&mut self, change: Change) {
        self.changes += 1;
        self.tables
            .entry(change.table.clone())
            .or_default()
            .push(change);
    }

    /// Records that `record` was consumed.
    pub fn consumed(&mut self, record: &SinkRecord) {
        let tp = TopicPartition::new(record.topic.clone(), record.partition);
        let next = record.offset + 1;
        let entry = self.offsets.entry(tp).or_insert(next);
        *entry = (*entry).max(next);
    }

    /// Changes pushed since the last take (before reduction).
    pub fn len(&self) -> usize {
        self.changes
    }

    pub fn is_empty(&self) -> bool {
        self.changes == 0 && self.offsets.is_empty()
    }

    pub fn take(&mut self) -> Buffer {
        std::mem::take(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::{FieldSpec, SqlType};
    use tributary_runtime::record::TopicRecord;

    fn change(kind: ChangeKind, id: i64, v: Value, offset: u64) -> Change {
        let f = |name: &str| FieldSpec {
            name: name.into(),
            ty: SqlType::Int64,
            optional: true,
        };
        Change {
            table: TableName {
                schema: None,
                name: "t".into(),
            },
            kind,
            fields: vec![f("id"), f("v")],
            values: vec![Value::Int(id), v],
            key: vec![0],
            record: SinkRecord {
                topic: "t".into(),
                partition: 0,
                offset,
                record: TopicRecord {
                    key: None,
                    value: None,
                    headers: vec![],
                    timestamp_ms: 0,
                },
            },
        }
    }

    #[test]
    fn collapses_to_the_last_change_per_key() {
        let mut b = Buffer::default();
        b.push(change(ChangeKind::Upsert, 1, Value::Int(10), 0));
        b.push(change(ChangeKind::Upsert, 2, Value::Int(20), 1));
        b.push(change(ChangeKind::Delete, 1, Value::Null, 2));
        b.push(change(ChangeKind::Upsert, 2, Value::Unavailable, 3));
        let t = &b.tables[&TableName {
            schema: None,
            name: "t".into(),
        }];
        assert_eq!(t.keyed.len(), 2);
        assert_eq!(t.keyed[0].kind, ChangeKind::Delete);
        assert_eq!(
            t.keyed[1].values[1],
            Value::Int(20),
            "placeholder filled from the earlier upsert"
        );
        assert_eq!(t.keyed[1].record.offset, 3);
    }

    #[test]
    fn truncate_drops_earlier_changes() {
        let mut b = Buffer::default();
        b.push(change(ChangeKind::Upsert, 1, Value::Int(10), 0));
        b.push(change(ChangeKind::Truncate, 0, Value::Null, 1));
        b.push(change(ChangeKind::Upsert, 3, Value::Int(30), 2));
        let t = b.tables.values().next().expect("table");
        assert!(t.truncate.is_some());
        assert_eq!(t.keyed.len(), 1);
        assert_eq!(t.keyed[0].values[0], Value::Int(3));
    }
}
