//! Finishing a snapshot that a crash interrupted, without reading finished chunks again.
//!
//! The exported snapshot of the slot dies with its connection, so after a crash the chunks
//! still to read can only be read from the live tables, while the stream replays changes from
//! the slot's position. They are reconciled with watermarks, as in Netflix's DBLog and
//! Debezium's incremental snapshots:
//!
//! ```text
//!   emit low watermark L  ─►  SELECT chunk (one statement)  ─►  emit high watermark H
//!   stream: … events … L … events e₁..eₙ … H …
//!   rows of the chunk whose key appears in e₁..eₙ are dropped (the stream has a newer
//!   state); the rest are emitted as op `r` when H is reached in the stream.
//! ```
//!
//! Why it is correct: L and H are logical decoding messages, each committed in its own
//! transaction, so the stream delivers them in commit order among the other transactions.
//! The SELECT's statement snapshot is taken after L commits and before H does, so every
//! change the SELECT did not see commits after L, and every change it saw that committed
//! after L is streamed between L and H. Dropping the rows whose keys changed in that window
//! and emitting the rest at H puts each emitted row before every later change of its key in
//! the topic, so a consumer applying events in order ends with the table's state. Events
//! streamed before L may precede a row's `r` event (which then shows the newer state). As in
//! DBLog and Debezium, this relies on a transaction whose commit record precedes L's being
//! visible once L's commit has returned. PostgreSQL makes that so except in the window
//! between a transaction's commit record and its leaving the proc array: microseconds
//! normally, but as long as a synchronous standby takes to confirm when
//! `synchronous_commit` waits for one.
//!
//! Progress ([`SnapshotProgress`]: finished tables and, per table, the key after which to go
//! on) is part of every offset until the snapshot is complete, both the initial snapshot's
//! chunk offsets and, while this runs, the stream's: whatever offset is committed last,
//! restarting from it neither loses nor re-reads a finished chunk.
//!
//! Tables without a primary key (or whose key columns are excluded) have no key to
//! reconcile by: such a table is read whole in one window, and read again if any change to
//! it is streamed inside the window. A change whose image lacks the key (a REPLICA IDENTITY
//! USING INDEX without the key columns, a key in unchanged TOAST) makes its window be read
//! again the same way. After [`MAX_RETRIES`] such windows in a row the task fails and says so.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use tributary_runtime::model::{Row, TableId, TableSchema, Value};

use crate::source::CapturedTable;

/// Prefix of the watermark messages: `pg_logical_emit_message(true, prefix, "<run>:<id>:low")`,
/// each in its own transaction (transactional, so the commit flushes it to the WAL sender).
pub const WATERMARK_PREFIX: &str = "__tributary_watermark";

/// Windows read again in a row because a change inside them could not be matched by key
/// (keyless table, or an image without the key), before giving up.
pub const MAX_RETRIES: u32 = 20;

/// What of the snapshot is done: finished tables, and the key after which each started
/// table goes on (text, as read). Stored in offsets as `snapshot_progress`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SnapshotProgress {
    pub done: BTreeSet<TableId>,
    pub after: BTreeMap<TableId, Vec<String>>,
}

impl SnapshotProgress {
    /// Records a chunk read up to `last_key` (keyed tables) or the end of the table.
    pub fn chunk_read(&mut self, table: &TableId, last_key: Option<&[String]>, table_done: bool) {
        if table_done {
            self.after.remove(table);
            self.done.insert(table.clone());
        } else if let Some(k) = last_key {
            self.after.insert(table.clone(), k.to_vec());
        }
    }

    /// The tables of `captured` still to read, with where to go on.
    pub fn remaining(&self, captured: &[TableId]) -> VecDeque<Work> {
        captured
            .iter()
            .filter(|t| !self.done.contains(*t))
            .map(|t| Work {
                table: t.clone(),
                after: self.after.get(t).cloned(),
            })
            .collect()
    }

    /// `{"done": [["s","t"], ..], "after": [[["s","t"], ["k1", ..]], ..]}`.
    pub fn to_json(&self) -> serde_json::Value {
        let name = |t: &TableId| serde_json::json!([t.namespace, t.name]);
        serde_json::json!({
            "done": self.done.iter().map(name).collect::<Vec<_>>(),
            "after": self
                .after
                .iter()
                .map(|(t, k)| serde_json::json!([name(t), k]))
                .collect::<Vec<_>>(),
        })
    }

    /// Reads [`to_json`](Self::to_json)'s shape; `None` for anything else.
    pub fn from_json(v: &serde_json::Value) -> Option<SnapshotProgress> {
        fn table(v: &serde_json::Value) -> Option<TableId> {
            let a = v.as_array()?;
            match a.as_slice() {
                [s, t] => Some(TableId::new(s.as_str()?, t.as_str()?)),
                _ => None,
            }
        }
        let done = v
            .get("done")?
            .as_array()?
            .iter()
            .map(table)
            .collect::<Option<BTreeSet<_>>>()?;
        let after = v
            .get("after")?
            .as_array()?
            .iter()
            .map(|pair| {
                let [t, k] = pair.as_array()?.as_slice() else {
                    return None;
                };
                let key = k
                    .as_array()?
                    .iter()
                    .map(|s| s.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()?;
                Some((table(t)?, key))
            })
            .collect::<Option<BTreeMap<_, _>>>()?;
        Some(SnapshotProgress { done, after })
    }
}

/// A table still to read, from after `after` (from its start when `None`).
#[derive(Debug, Clone, PartialEq)]
pub struct Work {
    pub table: TableId,
    pub after: Option<Vec<String>>,
}

/// One chunk between its watermarks.
pub struct Window {
    pub id: u64,
    pub work: Work,
    pub table: Arc<CapturedTable>,
    /// Primary-key column names when every one of them is captured; `None` reconciles the
    /// whole table (any change inside the window makes it read again).
    key_names: Option<Vec<String>>,
    rows: Vec<Option<Row>>,
    by_key: HashMap<String, usize>,
    /// Where the next chunk of the table starts; `None` with `table_done`.
    pub last_key: Option<Vec<String>>,
    pub table_done: bool,
    /// The low watermark has been streamed: changes now overlap the chunk.
    pub open: bool,
    /// A keyless table changed inside the window.
    pub dirty: bool,
}

/// The key of `row` (laid out as `schema`) as a comparable string, or `None` when a key
/// column is missing or has no value in the image (NULL: a REPLICA IDENTITY that leaves the
/// key out; unchanged TOAST): such a change cannot be matched to a row.
fn key_string(names: &[String], schema: &TableSchema, row: &Row) -> Option<String> {
    let mut values: Vec<&Value> = Vec::with_capacity(names.len());
    for n in names {
        let i = schema.columns.iter().position(|c| &c.name == n)?;
        match row.get(i)? {
            Value::Null | Value::Unavailable => return None,
            v => values.push(v),
        }
    }
    Some(format!("{values:?}"))
}

impl Window {
    /// A window over `rows` (converted with `table`), keyed by `key_names` when given.
    pub fn new(
        id: u64,
        work: Work,
        table: Arc<CapturedTable>,
        key_names: Vec<String>,
        rows: Vec<Row>,
        last_key: Option<Vec<String>>,
        table_done: bool,
    ) -> Window {
        let key_names = (!key_names.is_empty()
            && key_names
                .iter()
                .all(|n| table.schema.columns.iter().any(|c| &c.name == n)))
        .then_some(key_names);
        let mut by_key = HashMap::new();
        if let Some(names) = &key_names {
            for (i, row) in rows.iter().enumerate() {
                if let Some(k) = key_string(names, &table.schema, row) {
                    by_key.insert(k, i);
                }
            }
        }
        Window {
            id,
            work,
            table,
            key_names,
            rows: rows.into_iter().map(Some).collect(),
            by_key,
            last_key,
            table_done,
            open: false,
            dirty: false,
        }
    }

    /// A change of `schema.id` streamed inside the window: the rows it touches (by key) are
    /// dropped from the chunk. `rows` are the event's before and after images.
    pub fn saw(&mut self, schema: &TableSchema, rows: &[&Row]) {
        if !self.open || schema.id != self.table.schema.id {
            return;
        }
        let Some(names) = &self.key_names else {
            self.dirty = true;
            return;
        };
        for row in rows {
            match key_string(names, schema, row) {
                Some(k) => {
                    if let Some(i) = self.by_key.remove(&k)
                        && let Some(slot) = self.rows.get_mut(i)
                    {
                        *slot = None;
                    }
                }
                // A key the event does not carry: nothing can be matched safely, so the
                // chunk is read again.
                None => self.dirty = true,
            }
        }
    }

    /// A TRUNCATE of the table inside the window: none of the rows read can be trusted.
    pub fn truncated(&mut self, id: &TableId) {
        if self.open && *id == self.table.schema.id {
            self.rows.clear();
            self.by_key.clear();
        }
    }

    /// Rows the chunk's SELECT returned.
    pub fn read(&self) -> usize {
        self.rows.len()
    }

    /// The rows left to emit.
    pub fn into_rows(self) -> (Arc<CapturedTable>, Vec<Row>) {
        (self.table, self.rows.into_iter().flatten().collect())
    }
}

/// The resumed snapshot's state, carried by the streaming task.
pub struct Backfill {
    pub progress: SnapshotProgress,
    /// `progress` as JSON, rebuilt when it changes (it goes into every offset).
    pub progress_json: serde_json::Value,
    pub queue: VecDeque<Work>,
    pub window: Option<Window>,
    /// Distinguishes this task run's watermarks from older ones still in the WAL.
    pub run: u64,
    pub next_id: u64,
    pub retries: u32,
    pub rows_done: u64,
    pub rows_estimate: u64,
}

impl Backfill {
    pub fn new(progress: SnapshotProgress, captured: &[TableId], run: u64) -> Backfill {
        let queue = progress.remaining(captured);
        Backfill {
            progress_json: progress.to_json(),
            progress,
            queue,
            window: None,
            run,
            next_id: 0,
            retries: 0,
            rows_done: 0,
            rows_estimate: 0,
        }
    }

    /// `"<run>:<id>:low"` / `"<run>:<id>:high"`.
    pub fn watermark(&self, id: u64, high: bool) -> String {
        format!("{}:{id}:{}", self.run, if high { "high" } else { "low" })
    }

    /// Which watermark of the open window `content` is: `Some(false)` low, `Some(true)`
    /// high, `None` someone else's.
    pub fn is_watermark(&self, content: &[u8]) -> Option<bool> {
        let w = self.window.as_ref()?;
        if content == self.watermark(w.id, false).as_bytes() {
            Some(false)
        } else if content == self.watermark(w.id, true).as_bytes() {
            Some(true)
        } else {
            None
        }
    }

    /// Records the closed window's chunk and queues what follows it. Returns whether the
    /// window must be read again (a keyless table changed inside it) and was requeued.
    pub fn close(&mut self, w: &Window) -> bool {
        if w.dirty {
            self.retries += 1;
            self.queue.push_front(w.work.clone());
            return true;
        }
        self.retries = 0;
        self.progress
            .chunk_read(&w.work.table, w.last_key.as_deref(), w.table_done);
        if !w.table_done {
            self.queue.push_front(Work {
                table: w.work.table.clone(),
                after: w.last_key.clone(),
            });
        }
        self.progress_json = self.progress.to_json();
        false
    }

    /// Nothing is left to read.
    pub fn finished(&self) -> bool {
        self.queue.is_empty() && self.window.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_runtime::model::{Column, DataType};

    fn t(name: &str) -> TableId {
        TableId::new("public", name)
    }

    #[test]
    fn progress_round_trips_and_lists_what_is_left() {
        let mut p = SnapshotProgress::default();
        p.chunk_read(&t("a"), Some(&["10".to_owned()]), false);
        p.chunk_read(&t("b"), None, true);
        p.chunk_read(&t("c.d"), Some(&["x'y".to_owned(), "2".to_owned()]), false);
        let json = p.to_json();
        assert_eq!(SnapshotProgress::from_json(&json), Some(p.clone()));
        let left = p.remaining(&[t("a"), t("b"), t("c.d"), t("e")]);
        assert_eq!(
            left,
            VecDeque::from(vec![
                Work {
                    table: t("a"),
                    after: Some(vec!["10".into()])
                },
                Work {
                    table: t("c.d"),
                    after: Some(vec!["x'y".into(), "2".into()])
                },
                Work {
                    table: t("e"),
                    after: None
                },
            ])
        );
        // A finished table forgets its cursor.
        p.chunk_read(&t("a"), None, true);
        assert!(!p.after.contains_key(&t("a")) && p.done.contains(&t("a")));
        assert_eq!(
            SnapshotProgress::from_json(&serde_json::json!({"done": 1})),
            None
        );
        assert_eq!(
            SnapshotProgress::from_json(&serde_json::json!({"done": [], "after": [[["s"], []]]})),
            None
        );
    }

    fn table(columns: &[&str], key: Vec<usize>) -> Arc<CapturedTable> {
        let schema = Arc::new(TableSchema {
            id: t("w"),
            version: 1,
            columns: columns
                .iter()
                .map(|n| Column::new(*n, DataType::Int64, "bigint"))
                .collect(),
            key,
        });
        Arc::new(CapturedTable {
            schema,
            schema_name: Arc::from("public"),
            table_name: Arc::from("w"),
            topic: Arc::from("srv.public.w"),
            sources: Vec::new(),
        })
    }

    fn row(id: i64, v: i64) -> Row {
        Row(vec![Value::Int(id), Value::Int(v)])
    }

    #[test]
    fn changes_inside_the_window_drop_their_rows() {
        let tbl = table(&["id", "v"], vec![0]);
        let work = Work {
            table: t("w"),
            after: None,
        };
        let rows = vec![row(1, 0), row(2, 0), row(3, 0)];
        let mut w = Window::new(
            7,
            work,
            tbl.clone(),
            vec!["id".into()],
            rows,
            Some(vec!["3".into()]),
            false,
        );
        // Before the low watermark nothing is dropped.
        w.saw(&tbl.schema, &[&row(1, 5)]);
        w.open = true;
        // A later schema version with the key elsewhere still matches by name.
        let evolved = TableSchema {
            id: t("w"),
            version: 2,
            columns: vec![
                Column::new("v", DataType::Int64, "bigint"),
                Column::new("id", DataType::Int64, "bigint"),
            ],
            key: vec![1],
        };
        w.saw(&evolved, &[&Row(vec![Value::Int(9), Value::Int(2)])]);
        // Another table's change is ignored.
        let other = TableSchema {
            id: t("x"),
            ..(*tbl.schema).clone()
        };
        w.saw(&other, &[&row(3, 1)]);
        let (_, left) = w.into_rows();
        assert_eq!(left, vec![row(1, 0), row(3, 0)]);
    }

    #[test]
    fn a_change_without_its_key_makes_the_window_be_read_again() {
        let tbl = table(&["id", "v"], vec![0]);
        let work = Work {
            table: t("w"),
            after: None,
        };
        let mut w = Window::new(
            0,
            work,
            tbl.clone(),
            vec!["id".into()],
            vec![row(1, 0)],
            None,
            true,
        );
        w.open = true;
        w.saw(&tbl.schema, &[&Row(vec![Value::Null, Value::Int(3)])]);
        assert!(w.dirty);
        let (_, left) = w.into_rows();
        assert_eq!(left, vec![row(1, 0)], "nothing matched, nothing dropped");
    }

    #[test]
    fn keyless_tables_are_read_again_when_they_change_inside_the_window() {
        let tbl = table(&["id", "v"], Vec::new());
        let work = Work {
            table: t("w"),
            after: None,
        };
        let mut b = Backfill::new(SnapshotProgress::default(), &[t("w")], 1);
        assert_eq!(b.queue.len(), 1);
        b.queue.clear();
        let mut w = Window::new(
            0,
            work.clone(),
            tbl.clone(),
            Vec::new(),
            vec![row(1, 0)],
            None,
            true,
        );
        w.open = true;
        w.saw(&tbl.schema, &[&row(1, 1)]);
        assert!(w.dirty);
        assert!(b.close(&w));
        assert_eq!(b.queue.front(), Some(&work));
        assert!(!b.progress.done.contains(&t("w")));
        // A clean window finishes the table.
        b.queue.clear();
        let clean = Window::new(1, work, tbl, Vec::new(), vec![row(1, 0)], None, true);
        assert!(!b.close(&clean));
        assert!(b.progress.done.contains(&t("w")) && b.queue.is_empty());
        assert_eq!(b.retries, 0);
    }

    #[test]
    fn watermarks_are_recognised_only_for_the_open_window() {
        let tbl = table(&["id", "v"], vec![0]);
        let mut b = Backfill::new(SnapshotProgress::default(), &[t("w")], 42);
        assert_eq!(b.is_watermark(b"42:0:low"), None);
        let work = Work {
            table: t("w"),
            after: None,
        };
        b.window = Some(Window::new(
            3,
            work,
            tbl,
            vec!["id".into()],
            Vec::new(),
            None,
            true,
        ));
        assert_eq!(b.is_watermark(b"42:3:low"), Some(false));
        assert_eq!(b.is_watermark(b"42:3:high"), Some(true));
        assert_eq!(b.is_watermark(b"41:3:high"), None);
        assert_eq!(b.is_watermark(b"42:2:high"), None);
    }
}
