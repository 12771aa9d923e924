//! Schema history: the definitions of the captured tables as they are at a binlog position,
//! for the `tableChanges` of Debezium's schema-change events (`include.schema.changes`).
//!
//! Row decoding does not need it (schemas come from each `TABLE_MAP`, see [`crate::schema`]);
//! only the schema-change records do. It exists only with `include.schema.changes=true`
//! and is never touched on the per-row path.
//!
//! ```text
//!  snapshot / stream start ── information_schema (under the snapshot's lock) ─► tables
//!  each DDL in the binlog ──── sqlparser (MySqlDialect) ─► apply ─► tables after it
//!  each history record ─────── offset on the history partition: tables + position
//! ```
//!
//! # Seeding
//! A snapshot reads the captured tables from `information_schema` under its lock (at the
//! snapshot position) and emits one CREATE record per table (`ddl` = `SHOW CREATE TABLE`)
//! before the rows (with `snapshot.locking.mode=none` there is no lock, and a DDL racing the
//! snapshot's start may be missed, as for the snapshot's own schemas). A stream start
//! without an offset (`snapshot.mode=no_data|never`) does the same right after reading its
//! start position; with `never` the stream starts at the oldest binlog while the
//! definitions are today's (doing better would need a complete history in the binlog). A resume without a usable stored history (an older version,
//! `include.schema.changes` was off, a position set by hand) seeds again, with a warning:
//! `tableChanges` may then not match the binlog until the next snapshot.
//!
//! # Applying DDL
//! CREATE TABLE (also `LIKE` a known table), ALTER TABLE (ADD/DROP/MODIFY/CHANGE/RENAME
//! COLUMN with FIRST/AFTER, ALTER COLUMN SET/DROP DEFAULT, ADD/DROP PRIMARY KEY, RENAME TO;
//! index and option changes keep the columns), RENAME TABLE, DROP TABLE, TRUNCATE (no
//! entry), CREATE/DROP DATABASE (no entries; a dropped database's tables are forgotten),
//! CREATE/DROP INDEX (an ALTER entry with the unchanged table). A statement that names no
//! captured table gives no entries. One that names a captured table but cannot be parsed or
//! applied is logged as a warning and: when the event is live (at or after the server's
//! binlog position when the stream started), the table is read again from
//! `information_schema`; during catch-up of older binlog the statement gets
//! `tableChanges: []` and the old definition is kept (`information_schema` shows today's
//! structure, not the one at that position). A statement that renames a captured table
//! counts for both names, so one that fails while renaming a captured table away still
//! gets a history record; when live, a table `information_schema` no longer has gets a
//! DROP entry and leaves the history.
//!
//! Table options are followed however they are spaced (`DEFAULT CHARSET=x`, `COLLATE = y`,
//! several in one clause); `CHARSET`/`COLLATE`/`CONVERT TO` set the table's default
//! character set, the others change no column.
//!
//! Names: under `lower_case_table_names` 1 or 2 (read from the server when the history is
//! seeded and at each stream start) database and table names are case-insensitive, as on
//! the server: keys and the names statements use are lower-cased, so `ALTER TABLE Orders`
//! finds `orders` (Debezium does the same). With 0 they are compared as written.
//!
//! Everything read from the server (`information_schema`, `SHOW CREATE TABLE`) is read as
//! text that may be NULL or not UTF-8 (a `BINARY` column's default): such bytes become
//! U+FFFD, and nothing the server sends can panic the task.
//!
//! # Offsets
//! A second source partition, `{"server": "<topic.prefix>", "history": true}`. Every
//! schema-change record of a DDL that names a captured table (and the last seeding record)
//! is on it, its offset `{"file", "pos", "row": 0, "gtids", "generation", "databases",
//! "tables"}`: the position right after the DDL and every captured definition there. Its
//! order is `(generation, file index, pos)`; the generation grows with every seeding, so a
//! new seed at an earlier position (a re-snapshot, a position set by hand) still commits.
//!
//! The runtime commits a task's offsets, both partitions together, in record order
//! (`runtime/src/ack.rs`): a row after a DDL never commits before the DDL's history record.
//! The DDL record carries the history offset, not the main one, so the main position may lag
//! behind the history until the next row commits. A resume therefore always starts at the
//! main partition's position (no row is skipped) and:
//! - history not later than it: its tables are the definitions there;
//! - history later (its DDL records committed, no row after them yet): its tables are the
//!   definitions after those DDLs, and the DDLs up to its position are neither applied nor
//!   emitted again while the rows before them are read again.
//!
//! A main position without an order (set through the offsets API)
//! discards the history.
//!
//! # Known limits
//! - The whole history is one offset value, rewritten with every history record. Its size
//!   grows with the captured columns (about 100 bytes each): Kafka's default 1 MB message
//!   limit is reached at roughly 10,000 columns in all captured tables. With offsets in
//!   Kafka a larger schema fails to commit with the broker's error (raise the offsets
//!   topic's `max.message.bytes`, or capture fewer tables).
//! - The history's position is binlog coordinates (file, position) of the server that
//!   wrote them. After a MariaDB failover resumed by GTID, the new server's coordinates are
//!   not comparable with the stored ones, so which DDLs count as already delivered (and
//!   which are live) is judged wrongly: a DDL may be skipped or applied twice. After such a
//!   failover take a new snapshot, or stop the connector and remove the history partition
//!   (`PATCH /connectors/<name>/offsets` with `{"partition": {"server": "<topic.prefix>",
//!   "history": true}, "offset": null}`): at the next start it is read again from
//!   `information_schema`.

use std::collections::BTreeMap;
use std::sync::Arc;

use mysql_async::prelude::Queryable as _;
use mysql_async::{Conn, Row};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlparser::ast::{
    AlterColumnOperation, AlterTableOperation, ColumnDef as SqlColumnDef, ColumnOption,
    CreateTable, CreateTableLikeKind, CreateTableOptions, Expr, MySQLColumnPosition, ObjectName,
    ObjectType, RenameTableNameKind, SqlOption, Statement, TableConstraint, Value as SqlValue,
};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use tracing::warn;
use tributary_runtime::offsets::StoredOffset;
use tributary_runtime::record::{
    OffsetOrder, Payload, SourceOffset, SourcePartition, SourceRecord,
};

use crate::binlog::{StartPosition, file_index};
use crate::config::MySqlConfig;
use crate::error::MySqlError;
use crate::gtid::GtidState;
use crate::rows;
use crate::snapshot::ident;
use crate::tls::ServerOpts;

/// The history partition of a connector whose main partition is `{"server": prefix}`.
pub fn history_partition(prefix: &str) -> SourcePartition {
    SourcePartition::from_json(&json!({ "server": prefix, "history": true }))
}

/// One column as Debezium's `tableChanges[].table.columns[]` describes it. Stored without
/// its null, false and derived fields ([`compact`]), hence the defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ColumnDef {
    pub name: String,
    /// `java.sql.Types` code, as Debezium's MySQL DDL parser assigns it.
    pub jdbc_type: i32,
    pub native_type: Option<i32>,
    pub type_name: String,
    pub type_expression: String,
    pub charset_name: Option<String>,
    pub length: Option<i64>,
    pub scale: Option<i64>,
    /// 1-based.
    pub position: u32,
    pub optional: bool,
    pub auto_incremented: bool,
    pub generated: bool,
    pub comment: Option<String>,
    pub has_default_value: bool,
    pub default_value_expression: Option<String>,
    /// ENUM/SET options, quoted as in the DDL (`'a'`); `None` for other types.
    pub enum_values: Option<Vec<String>>,
}

/// One table as Debezium's `tableChanges[].table` describes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TableDef {
    pub default_charset_name: Option<String>,
    pub primary_key_column_names: Vec<String>,
    pub columns: Vec<ColumnDef>,
    pub comment: Option<String>,
    pub attributes: Vec<serde_json::Value>,
}

/// A definition as stored in the offset: Debezium's JSON without nulls, `false`s and what
/// loading derives again (`typeExpression`, `position`), a third of the size; every offset
/// commit rewrites it.
fn compact(def: &TableDef) -> serde_json::Value {
    let mut v = serde_json::to_value(def).unwrap_or(serde_json::Value::Null);
    let prune = |o: &mut serde_json::Map<String, serde_json::Value>| {
        o.retain(|_, v| {
            !(v.is_null()
                || *v == serde_json::Value::Bool(false)
                || v.as_array().is_some_and(Vec::is_empty))
        });
    };
    if let Some(table) = v.as_object_mut() {
        if let Some(columns) = table.get_mut("columns").and_then(|c| c.as_array_mut()) {
            for c in columns.iter_mut().filter_map(|c| c.as_object_mut()) {
                c.remove("typeExpression");
                c.remove("position");
                prune(c);
            }
        }
        prune(table);
    }
    v
}

/// Inverse of [`compact`].
fn expand(v: &serde_json::Value) -> Option<TableDef> {
    let mut def: TableDef = serde_json::from_value(v.clone()).ok()?;
    for c in &mut def.columns {
        c.type_expression = c.type_name.clone();
    }
    def.renumber();
    Some(def)
}

impl TableDef {
    fn column_index(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }

    fn renumber(&mut self) {
        for (i, c) in self.columns.iter_mut().enumerate() {
            c.position = u32::try_from(i + 1).unwrap_or(u32::MAX);
        }
    }

    /// Key columns are NOT NULL in MySQL, whatever their definition said.
    fn key_not_null(&mut self) {
        for key in &self.primary_key_column_names {
            if let Some(c) = self
                .columns
                .iter_mut()
                .find(|c| c.name.eq_ignore_ascii_case(key))
            {
                c.optional = false;
                if c.default_value_expression.is_none() {
                    c.has_default_value = false;
                }
            }
        }
    }
}

/// `db`, `table`.
pub type TableKey = (String, String);

/// Debezium's change type of one `tableChanges` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Create,
    Alter,
    Drop,
}

impl ChangeKind {
    fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Create => "CREATE",
            ChangeKind::Alter => "ALTER",
            ChangeKind::Drop => "DROP",
        }
    }
}

/// One `tableChanges` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct TableChange {
    pub kind: ChangeKind,
    pub db: String,
    pub table: String,
    pub def: TableDef,
}

impl TableChange {
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "type": self.kind.as_str(),
            "id": format!("\"{}\".\"{}\"", self.db, self.table),
            "table": serde_json::to_value(&self.def).unwrap_or(serde_json::Value::Null),
        })
    }
}

/// The definitions of the captured tables at one position.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tables {
    pub tables: BTreeMap<TableKey, TableDef>,
    /// Default character set of each database seen (for tables created without one).
    pub databases: BTreeMap<String, String>,
    /// The server compares database and table names case-insensitively
    /// (`lower_case_table_names` 1 or 2): every key is lower-cased, and so is every name a
    /// statement uses to find one. Not stored: read from the server at each start.
    pub lower_case_names: bool,
}

/// A database or table name as a key: lower-cased when the server ignores its case.
fn fold_name(lower: bool, name: &str) -> String {
    if lower {
        name.to_lowercase()
    } else {
        name.to_owned()
    }
}

/// What applying one DDL statement did.
#[derive(Debug, Default, PartialEq)]
pub struct Applied {
    /// The statement names a captured table (or a captured database): its record belongs
    /// to the history partition.
    pub captured: bool,
    pub changes: Vec<TableChange>,
    /// Captured tables the statement changes but that could not be followed (the
    /// definitions were left as they were), and why.
    pub failed: Vec<TableKey>,
    pub reason: Option<String>,
}

impl Tables {
    /// Sets whether names are case-insensitive ([`Tables::lower_case_names`]); on, the keys
    /// held so far are lower-cased.
    pub fn set_lower_case_names(&mut self, on: bool) {
        self.lower_case_names = on;
        if on {
            self.tables = std::mem::take(&mut self.tables)
                .into_iter()
                .map(|((d, t), def)| ((d.to_lowercase(), t.to_lowercase()), def))
                .collect();
            self.databases = std::mem::take(&mut self.databases)
                .into_iter()
                .map(|(d, c)| (d.to_lowercase(), c))
                .collect();
        }
    }

    /// `db`.`table` as a key of these tables.
    pub fn key(&self, db: &str, table: &str) -> TableKey {
        (
            fold_name(self.lower_case_names, db),
            fold_name(self.lower_case_names, table),
        )
    }

    /// Applies one DDL statement (`default_db` = the session's database) to the captured
    /// tables `captured(db, table)` selects. All or nothing: a statement that cannot be
    /// followed leaves every definition as it was.
    pub fn apply(
        &mut self,
        default_db: &str,
        sql: &str,
        captured: &dyn Fn(&str, &str) -> bool,
        captured_db: &dyn Fn(&str) -> bool,
    ) -> Applied {
        let parsed = Parser::parse_sql(&MySqlDialect {}, sql)
            .map(|s| (s, AlterExtras::default()))
            .or_else(|e| {
                // MySQL's ALTER TABLE clauses the parser does not know (table options,
                // CONVERT TO, IF NOT EXISTS, ALTER ONLINE): followed by hand, the rest parsed.
                let (normal, extras) = normalize_alter(sql).ok_or_else(|| e.clone())?;
                Parser::parse_sql(&MySqlDialect {}, &normal)
                    .map(|s| (s, extras))
                    .map_err(|_| e)
            });
        let (statements, extras) = match parsed {
            Ok(s) => s,
            Err(e) => {
                let mut named: Vec<TableKey> = mentioned_tables(sql, default_db)
                    .into_iter()
                    .map(|(d, t)| self.key(&d, &t))
                    .filter(|(d, t)| captured(d, t))
                    .collect();
                named.dedup();
                return Applied {
                    captured: !named.is_empty(),
                    failed: named,
                    reason: Some(format!("cannot parse it: {e}")),
                    ..Applied::default()
                };
            }
        };
        let mut next = self.clone();
        let mut out = Applied::default();
        for statement in &statements {
            let mut step = Step {
                tables: &mut next,
                default_db,
                captured,
                captured_db,
                extras: &extras,
                out: &mut out,
            };
            if let Err((tables, reason)) = step.statement(statement) {
                out.failed = tables.into_iter().filter(|(d, t)| captured(d, t)).collect();
                out.captured |= !out.failed.is_empty();
                out.reason = Some(reason);
                out.changes.clear();
                return out;
            }
        }
        *self = next;
        out
    }

    /// The offset value of the history at `file:pos` (`tables` and `databases`).
    fn to_json(&self) -> (serde_json::Value, serde_json::Value) {
        let mut tables = serde_json::Map::new();
        for ((db, table), def) in &self.tables {
            let entry = tables
                .entry(db.clone())
                .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
            if let serde_json::Value::Object(m) = entry {
                m.insert(table.clone(), compact(def));
            }
        }
        let databases = self
            .databases
            .iter()
            .map(|(d, c)| (d.clone(), serde_json::Value::String(c.clone())))
            .collect();
        (
            serde_json::Value::Object(tables),
            serde_json::Value::Object(databases),
        )
    }

    fn from_json(
        tables: &serde_json::Value,
        databases: Option<&serde_json::Value>,
    ) -> Option<Self> {
        let mut out = Tables::default();
        for (db, t) in tables.as_object()? {
            for (name, def) in t.as_object()? {
                let def = expand(def)?;
                out.tables.insert((db.clone(), name.clone()), def);
            }
        }
        if let Some(dbs) = databases.and_then(|d| d.as_object()) {
            for (db, charset) in dbs {
                if let Some(c) = charset.as_str() {
                    out.databases.insert(db.clone(), c.to_owned());
                }
            }
        }
        Some(out)
    }
}

/// A statement that could not be followed: the captured tables it names, and why.
type StepError = (Vec<TableKey>, String);

struct Step<'a> {
    tables: &'a mut Tables,
    default_db: &'a str,
    captured: &'a dyn Fn(&str, &str) -> bool,
    captured_db: &'a dyn Fn(&str) -> bool,
    extras: &'a AlterExtras,
    out: &'a mut Applied,
}

impl Step<'_> {
    fn key(&self, name: &ObjectName) -> Option<TableKey> {
        let parts: Vec<String> = name
            .0
            .iter()
            .map(|p| {
                p.as_ident()
                    .map_or_else(|| p.to_string(), |i| i.value.clone())
            })
            .collect();
        match parts.as_slice() {
            [table] if !self.default_db.is_empty() => Some(self.tables.key(self.default_db, table)),
            [db, table] => Some(self.tables.key(db, table)),
            _ => None,
        }
    }

    /// A database name as a key.
    fn db_name(&self, name: &ObjectName) -> String {
        let db = name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map_or_else(|| unquote_name(&name.to_string()), |i| i.value.clone());
        fold_name(self.tables.lower_case_names, &db)
    }

    fn is_captured(&self, key: &TableKey) -> bool {
        (self.captured)(&key.0, &key.1)
    }

    fn change(&mut self, kind: ChangeKind, key: &TableKey, def: TableDef) {
        self.out.captured = true;
        self.out.changes.push(TableChange {
            kind,
            db: key.0.clone(),
            table: key.1.clone(),
            def,
        });
    }

    fn statement(&mut self, statement: &Statement) -> Result<(), StepError> {
        match statement {
            Statement::CreateTable(ct) => self.create_table(ct),
            Statement::AlterTable(at) => {
                let Some(key) = self.key(&at.name) else {
                    return Ok(());
                };
                self.alter_table(&key, &at.operations)
            }
            Statement::RenameTable(pairs) => {
                for pair in pairs {
                    let (Some(from), Some(to)) =
                        (self.key(&pair.old_name), self.key(&pair.new_name))
                    else {
                        continue;
                    };
                    self.rename(&from, &to)?;
                }
                Ok(())
            }
            Statement::Drop {
                object_type,
                names,
                temporary,
                table,
                ..
            } => match object_type {
                ObjectType::Table if !temporary => {
                    for name in names {
                        let Some(key) = self.key(name) else { continue };
                        if !self.is_captured(&key) {
                            continue;
                        }
                        self.out.captured = true;
                        if let Some(def) = self.tables.tables.remove(&key) {
                            self.change(ChangeKind::Drop, &key, def);
                        }
                    }
                    Ok(())
                }
                ObjectType::Database | ObjectType::Schema => {
                    for name in names {
                        let db = self.db_name(name);
                        if (self.captured_db)(&db) {
                            self.out.captured = true;
                        }
                        self.tables.tables.retain(|(d, _), _| *d != db);
                        self.tables.databases.remove(&db);
                    }
                    Ok(())
                }
                ObjectType::Index => {
                    if let Some(key) = table.as_ref().and_then(|t| self.key(t)) {
                        self.unchanged(&key)?;
                    }
                    Ok(())
                }
                _ => Ok(()),
            },
            Statement::CreateIndex(ci) => {
                if let Some(key) = self.key(&ci.table_name) {
                    self.unchanged(&key)?;
                }
                Ok(())
            }
            Statement::Truncate(t) => {
                for target in &t.table_names {
                    if let Some(key) = self.key(&target.name)
                        && self.is_captured(&key)
                    {
                        self.out.captured = true;
                    }
                }
                Ok(())
            }
            Statement::CreateDatabase {
                db_name,
                default_charset,
                default_collation,
                ..
            } => {
                let db = self.db_name(db_name);
                if (self.captured_db)(&db) {
                    self.out.captured = true;
                }
                let charset = default_charset
                    .clone()
                    .or_else(|| default_collation.as_deref().map(charset_of_collation));
                if let Some(c) = charset {
                    self.tables.databases.insert(db, unquote_name(&c));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// A statement that changes no column of `key` (indexes): an ALTER entry as it is.
    fn unchanged(&mut self, key: &TableKey) -> Result<(), StepError> {
        if !self.is_captured(key) {
            return Ok(());
        }
        let Some(def) = self.tables.tables.get(key).cloned() else {
            return Err((
                vec![key.clone()],
                "the table's definition is not known".into(),
            ));
        };
        self.change(ChangeKind::Alter, key, def);
        Ok(())
    }

    fn create_table(&mut self, ct: &CreateTable) -> Result<(), StepError> {
        let Some(key) = self.key(&ct.name) else {
            return Ok(());
        };
        if ct.temporary || !self.is_captured(&key) {
            return Ok(());
        }
        self.out.captured = true;
        if ct.if_not_exists && self.tables.tables.contains_key(&key) {
            return Ok(());
        }
        let def = if let Some(like) = &ct.like {
            let source = match like {
                CreateTableLikeKind::Parenthesized(l) | CreateTableLikeKind::Plain(l) => &l.name,
            };
            let source = self.key(source);
            match source.and_then(|s| self.tables.tables.get(&s).cloned()) {
                Some(def) => def,
                None => {
                    return Err((
                        vec![key],
                        "CREATE TABLE ... LIKE a table whose definition is not known".into(),
                    ));
                }
            }
        } else if ct.columns.is_empty() {
            return Err((vec![key], "CREATE TABLE without column definitions".into()));
        } else {
            let mut charset = None;
            let mut comment = ct.comment.as_ref().map(comment_text);
            for option in table_options(&ct.table_options) {
                match option {
                    SqlOption::KeyValue { key, value } => {
                        let k = key.to_string().to_ascii_uppercase();
                        let v = unquote_name(&expr_text(value));
                        if k.contains("CHARSET") || k.contains("CHARACTER SET") {
                            charset = Some(v);
                        } else if k.contains("COLLATE") && charset.is_none() {
                            charset = Some(charset_of_collation(&v));
                        }
                    }
                    SqlOption::Comment(c) => comment = Some(comment_text(c)),
                    _ => {}
                }
            }
            let charset = charset.or_else(|| self.tables.databases.get(&key.0).cloned());
            let mut def = TableDef {
                default_charset_name: charset,
                primary_key_column_names: Vec::new(),
                columns: Vec::new(),
                comment: comment.filter(|c| !c.is_empty()),
                attributes: Vec::new(),
            };
            for column in &ct.columns {
                let (col, pk) = column_def(
                    &column.name.value,
                    &column.data_type.to_string(),
                    column.options.iter().map(|o| &o.option),
                    def.default_charset_name.as_deref(),
                );
                if pk {
                    def.primary_key_column_names = vec![col.name.clone()];
                }
                def.columns.push(col);
            }
            for constraint in &ct.constraints {
                if let TableConstraint::PrimaryKey(pk) = constraint {
                    def.primary_key_column_names = pk
                        .columns
                        .iter()
                        .map(|c| index_column(&c.column.expr))
                        .collect();
                }
            }
            def.key_not_null();
            def.renumber();
            def
        };
        self.tables.tables.insert(key.clone(), def.clone());
        self.change(ChangeKind::Create, &key, def);
        Ok(())
    }

    fn rename(&mut self, from: &TableKey, to: &TableKey) -> Result<(), StepError> {
        let (was, now) = (self.is_captured(from), self.is_captured(to));
        let def = self.tables.tables.remove(from);
        match (was, now, def) {
            (_, true, Some(def)) => {
                self.tables.tables.insert(to.clone(), def.clone());
                self.change(ChangeKind::Alter, to, def);
                Ok(())
            }
            (true, false, Some(def)) => {
                self.change(ChangeKind::Drop, from, def);
                Ok(())
            }
            (_, true, None) => Err((
                vec![to.clone()],
                format!(
                    "{}.{} is renamed into the captured tables but its definition is not known",
                    from.0, from.1
                ),
            )),
            (true, false, None) => {
                self.out.captured = true;
                Ok(())
            }
            (false, false, _) => Ok(()),
        }
    }

    fn alter_table(
        &mut self,
        key: &TableKey,
        operations: &[AlterTableOperation],
    ) -> Result<(), StepError> {
        let renamed = operations.iter().rev().find_map(|op| match op {
            AlterTableOperation::RenameTable { table_name } => match table_name {
                RenameTableNameKind::As(n) | RenameTableNameKind::To(n) => self.key(n),
            },
            _ => None,
        });
        let captured_now = renamed.as_ref().is_some_and(|n| self.is_captured(n));
        if !self.is_captured(key) && !captured_now {
            return Ok(());
        }
        // Both names: the statement changes the old one even when the new one is not captured.
        let fail = |reason: String| {
            let mut names = vec![key.clone()];
            names.extend(renamed.clone().filter(|to| to != key));
            (names, reason)
        };
        let Some(mut def) = self.tables.tables.get(key).cloned() else {
            return Err(fail("the table's definition is not known".into()));
        };
        // The new default also applies to the text columns the statement adds.
        if let Some(charset) = &self.extras.default_charset {
            def.default_charset_name = Some(charset.clone());
        }
        for op in operations {
            alter(&mut def, op, &self.extras.add_if_not_exists).map_err(&fail)?;
        }
        if let Some(charset) = &self.extras.convert_charset {
            for c in &mut def.columns {
                if c.charset_name.is_some() {
                    c.charset_name = Some(charset.clone());
                }
            }
        }
        if let Some(comment) = &self.extras.comment {
            def.comment = Some(comment.clone()).filter(|c| !c.is_empty());
        }
        def.key_not_null();
        def.renumber();
        match renamed {
            Some(to) if to != *key => {
                self.tables.tables.insert(key.clone(), def);
                self.rename(key, &to)
            }
            _ => {
                self.tables.tables.insert(key.clone(), def.clone());
                self.change(ChangeKind::Alter, key, def);
                Ok(())
            }
        }
    }
}

/// Applies one ALTER TABLE operation to a definition.
fn alter(
    def: &mut TableDef,
    op: &AlterTableOperation,
    add_if_not_exists: &[String],
) -> Result<(), String> {
    let charset = def.default_charset_name.clone();
    match op {
        AlterTableOperation::AddColumn {
            if_not_exists,
            column_def,
            column_position,
            ..
        } => {
            if def.column_index(&column_def.name.value).is_some() {
                let lenient = add_if_not_exists
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(&column_def.name.value));
                return if *if_not_exists || lenient {
                    Ok(())
                } else {
                    Err(format!("column {} already exists", column_def.name.value))
                };
            }
            let (col, pk) = sql_column(column_def, charset.as_deref());
            let at = position(def, column_position.as_ref(), def.columns.len())?;
            if pk {
                def.primary_key_column_names = vec![col.name.clone()];
            }
            def.columns.insert(at, col);
        }
        AlterTableOperation::DropColumn {
            column_names,
            if_exists,
            ..
        } => {
            for name in column_names {
                match def.column_index(&name.value) {
                    Some(i) => {
                        def.columns.remove(i);
                        def.primary_key_column_names
                            .retain(|k| !k.eq_ignore_ascii_case(&name.value));
                    }
                    None if *if_exists => {}
                    None => return Err(format!("column {} does not exist", name.value)),
                }
            }
        }
        AlterTableOperation::ModifyColumn {
            col_name,
            data_type,
            options,
            column_position,
        } => replace_column(
            def,
            &col_name.value,
            &col_name.value,
            &data_type.to_string(),
            options,
            column_position.as_ref(),
        )?,
        AlterTableOperation::ChangeColumn {
            old_name,
            new_name,
            data_type,
            options,
            column_position,
        } => replace_column(
            def,
            &old_name.value,
            &new_name.value,
            &data_type.to_string(),
            options,
            column_position.as_ref(),
        )?,
        AlterTableOperation::RenameColumn {
            old_column_name,
            new_column_name,
        } => {
            let i = def
                .column_index(&old_column_name.value)
                .ok_or_else(|| format!("column {} does not exist", old_column_name.value))?;
            def.columns[i].name = new_column_name.value.clone();
            for k in &mut def.primary_key_column_names {
                if k.eq_ignore_ascii_case(&old_column_name.value) {
                    *k = new_column_name.value.clone();
                }
            }
        }
        AlterTableOperation::AlterColumn { column_name, op } => {
            let i = def
                .column_index(&column_name.value)
                .ok_or_else(|| format!("column {} does not exist", column_name.value))?;
            let col = &mut def.columns[i];
            match op {
                AlterColumnOperation::SetDefault { value } => {
                    col.has_default_value = true;
                    col.default_value_expression = default_text(value);
                }
                AlterColumnOperation::DropDefault => {
                    col.has_default_value = false;
                    col.default_value_expression = None;
                }
                AlterColumnOperation::SetNotNull => col.optional = false,
                AlterColumnOperation::DropNotNull => col.optional = true,
                other => return Err(format!("ALTER COLUMN {other} is not followed")),
            }
        }
        AlterTableOperation::AddConstraint { constraint, .. } => {
            if let TableConstraint::PrimaryKey(pk) = constraint {
                let names: Vec<String> = pk
                    .columns
                    .iter()
                    .map(|c| index_column(&c.column.expr))
                    .collect();
                for n in &names {
                    if def.column_index(n).is_none() {
                        return Err(format!("key column {n} does not exist"));
                    }
                }
                def.primary_key_column_names = names;
            }
        }
        AlterTableOperation::DropPrimaryKey { .. } => def.primary_key_column_names.clear(),
        // Renames are resolved by the caller; these change no column.
        AlterTableOperation::RenameTable { .. }
        | AlterTableOperation::DropConstraint { .. }
        | AlterTableOperation::DropForeignKey { .. }
        | AlterTableOperation::DropIndex { .. }
        | AlterTableOperation::RenameConstraint { .. }
        | AlterTableOperation::Algorithm { .. }
        | AlterTableOperation::Lock { .. }
        | AlterTableOperation::AutoIncrement { .. }
        | AlterTableOperation::AddPartitions { .. }
        | AlterTableOperation::DropPartitions { .. }
        | AlterTableOperation::RenamePartitions { .. } => {}
        other => return Err(format!("ALTER TABLE operation {other} is not followed")),
    }
    Ok(())
}

/// MODIFY/CHANGE: the column is redefined as a whole (MySQL semantics), maybe renamed/moved.
fn replace_column(
    def: &mut TableDef,
    old: &str,
    new: &str,
    data_type: &str,
    options: &[ColumnOption],
    column_position: Option<&MySQLColumnPosition>,
) -> Result<(), String> {
    let i = def
        .column_index(old)
        .ok_or_else(|| format!("column {old} does not exist"))?;
    let (col, pk) = column_def(
        new,
        data_type,
        options.iter(),
        def.default_charset_name.as_deref(),
    );
    def.columns.remove(i);
    for k in &mut def.primary_key_column_names {
        if k.eq_ignore_ascii_case(old) {
            *k = col.name.clone();
        }
    }
    if pk {
        def.primary_key_column_names = vec![col.name.clone()];
    }
    let at = position(def, column_position, i)?;
    def.columns.insert(at, col);
    Ok(())
}

/// Where FIRST / AFTER x / nothing puts a column (`default` when nothing is said).
fn position(
    def: &TableDef,
    at: Option<&MySQLColumnPosition>,
    default: usize,
) -> Result<usize, String> {
    match at {
        None => Ok(default.min(def.columns.len())),
        Some(MySQLColumnPosition::First) => Ok(0),
        Some(MySQLColumnPosition::After(c)) => def
            .column_index(&c.value)
            .map(|i| i + 1)
            .ok_or_else(|| format!("column {} (of AFTER) does not exist", c.value)),
    }
}

fn sql_column(c: &SqlColumnDef, table_charset: Option<&str>) -> (ColumnDef, bool) {
    column_def(
        &c.name.value,
        &c.data_type.to_string(),
        c.options.iter().map(|o| &o.option),
        table_charset,
    )
}

/// A column from its DDL: name, type text and options. Also whether it is the key.
fn column_def<'a>(
    name: &str,
    type_text: &str,
    options: impl Iterator<Item = &'a ColumnOption>,
    table_charset: Option<&str>,
) -> (ColumnDef, bool) {
    let mut nullable = None;
    let mut default: Option<Option<String>> = None;
    let mut pk = false;
    let mut auto = false;
    let mut generated = false;
    let mut charset = None;
    let mut collation = None;
    let mut comment = None;
    for option in options {
        match option {
            ColumnOption::Null => nullable = Some(true),
            ColumnOption::NotNull => nullable = Some(false),
            ColumnOption::Default(e) => default = Some(default_text(e)),
            ColumnOption::PrimaryKey(_) => pk = true,
            ColumnOption::DialectSpecific(tokens)
                if tokens.iter().any(|t| {
                    let t = t.to_string();
                    t.eq_ignore_ascii_case("AUTO_INCREMENT")
                        || t.eq_ignore_ascii_case("AUTOINCREMENT")
                }) =>
            {
                auto = true;
            }
            ColumnOption::Identity(_) => auto = true,
            ColumnOption::CharacterSet(n) => charset = Some(unquote_name(&n.to_string())),
            ColumnOption::Collation(n) => collation = Some(unquote_name(&n.to_string())),
            ColumnOption::Comment(c) => comment = Some(c.clone()),
            ColumnOption::Generated { .. }
            | ColumnOption::Materialized(_)
            | ColumnOption::Alias(_) => generated = true,
            _ => {}
        }
    }
    let t = parse_type(type_text);
    let charset = if t.textual() {
        charset
            .or_else(|| collation.as_deref().map(charset_of_collation))
            .or_else(|| table_charset.map(str::to_owned))
    } else {
        None
    };
    let optional = nullable.unwrap_or(!pk) && !pk;
    let (has_default, expr) = match default {
        Some(e) => (true, e),
        // Debezium: a nullable column without DEFAULT defaults to NULL.
        None => (optional && !auto && !generated, None),
    };
    let col = ColumnDef {
        name: name.to_owned(),
        jdbc_type: t.jdbc_type(),
        native_type: None,
        type_name: t.type_name(),
        type_expression: t.type_name(),
        charset_name: charset,
        length: t.length(),
        scale: t.scale(),
        position: 0,
        optional,
        auto_incremented: auto,
        generated: generated || auto,
        comment,
        has_default_value: has_default,
        default_value_expression: expr,
        enum_values: t.enum_values(),
    };
    (col, pk)
}

/// The text of a DEFAULT: a string literal unquoted, NULL as `None`, anything else as SQL.
fn default_text(e: &Expr) -> Option<String> {
    match e {
        Expr::Value(v) => match &v.value {
            SqlValue::Null => None,
            SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => Some(s.clone()),
            SqlValue::Number(n, _) => Some(n.to_string()),
            SqlValue::Boolean(b) => Some(if *b { "1" } else { "0" }.to_owned()),
            other => Some(other.to_string()),
        },
        Expr::Nested(inner) => default_text(inner),
        other => Some(other.to_string()),
    }
}

fn expr_text(e: &Expr) -> String {
    match e {
        Expr::Value(v) => match &v.value {
            SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => s.clone(),
            other => other.to_string(),
        },
        Expr::Identifier(i) => i.value.clone(),
        other => other.to_string(),
    }
}

fn comment_text(c: &sqlparser::ast::CommentDef) -> String {
    match c {
        sqlparser::ast::CommentDef::WithEq(s) | sqlparser::ast::CommentDef::WithoutEq(s) => {
            s.clone()
        }
    }
}

fn table_options(options: &CreateTableOptions) -> &[SqlOption] {
    match options {
        CreateTableOptions::None => &[],
        CreateTableOptions::With(o)
        | CreateTableOptions::Options(o)
        | CreateTableOptions::Plain(o)
        | CreateTableOptions::TableProperties(o) => o,
    }
}

/// A key column of `PRIMARY KEY (a, b(10))`.
fn index_column(e: &Expr) -> String {
    match e {
        Expr::Identifier(i) => i.value.clone(),
        Expr::CompoundIdentifier(parts) => {
            parts.last().map(|i| i.value.clone()).unwrap_or_default()
        }
        // `b(10)`: a prefix of column b.
        Expr::Function(f) => f
            .name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map_or_else(|| f.name.to_string(), |i| i.value.clone()),
        other => unquote_name(&other.to_string()),
    }
}

fn unquote_name(s: &str) -> String {
    let s = s.trim();
    for q in ['`', '"', '\''] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return s[1..s.len() - 1].to_owned();
        }
    }
    s.to_owned()
}

/// `utf8mb4_general_ci` → `utf8mb4`.
fn charset_of_collation(collation: &str) -> String {
    let c = unquote_name(collation);
    c.split('_').next().unwrap_or(&c).to_owned()
}

/// What [`normalize_alter`] took out of an ALTER TABLE statement to follow by hand.
#[derive(Debug, Default, Clone, PartialEq)]
struct AlterExtras {
    /// `CONVERT TO CHARACTER SET x`: the table's and its text columns' character set.
    convert_charset: Option<String>,
    /// `[DEFAULT] CHARSET=x` / `COLLATE=y`: the table's default only.
    default_charset: Option<String>,
    /// `COMMENT='x'`.
    comment: Option<String>,
    /// Columns of `ADD COLUMN IF NOT EXISTS` (MariaDB).
    add_if_not_exists: Vec<String>,
}

/// `ALTER [ONLINE|IGNORE] TABLE name rest`: the table's name and the rest, as written.
fn alter_table_parts(sql: &str) -> Option<(&str, &str)> {
    static RE: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    let re = RE
        .get_or_init(|| {
            regex::Regex::new(
                r"(?is)^\s*alter\s+(?:(?:online|ignore)\s+)*table\s+((?:`(?:[^`]|``)+`|[\w$]+)(?:\s*\.\s*(?:`(?:[^`]|``)+`|[\w$]+))?)\s+(.*?)\s*;?\s*$",
            )
            .ok()
        })
        .as_ref()?;
    let caps = re.captures(sql)?;
    Some((caps.get(1)?.as_str(), caps.get(2)?.as_str()))
}

/// Table options that take a value (`NAME [=] value`), as the first word of the option.
/// `STATS_` stands for every `STATS_*` option.
const VALUE_OPTIONS: &[&str] = &[
    "ENGINE",
    "ROW_FORMAT",
    "KEY_BLOCK_SIZE",
    "STATS_",
    "PACK_KEYS",
    "CHECKSUM",
    "TABLE_CHECKSUM",
    "DELAY_KEY_WRITE",
    "PAGE_CHECKSUM",
    "PAGE_COMPRESSED",
    "PAGE_COMPRESSION_LEVEL",
    "TRANSACTIONAL",
    "MAX_ROWS",
    "MIN_ROWS",
    "AVG_ROW_LENGTH",
    "AUTO_INCREMENT",
    "ENCRYPTED",
    "ENCRYPTION",
    "ENCRYPTION_KEY_ID",
    "COMPRESSION",
    "INSERT_METHOD",
    "TABLESPACE",
    "STORAGE",
    "UNION",
    "CONNECTION",
    "PASSWORD",
    "IETF_QUOTES",
    "SEQUENCE",
    "WAIT",
];

/// ALTER TABLE options that take no value.
const FLAG_OPTIONS: &[&str] = &["FORCE", "NOWAIT"];

/// One table option at the start of `words` (upper case): how many words its name takes
/// and whether a value follows. `None` if `words` does not start with one.
fn table_option(words: &[String]) -> Option<(usize, bool)> {
    let w = |i: usize| words.get(i).map_or("", String::as_str);
    let default = usize::from(w(0) == "DEFAULT");
    match (w(default), w(default + 1)) {
        ("CHARSET" | "COLLATE", _) => return Some((default + 1, true)),
        ("CHARACTER", "SET") => return Some((default + 2, true)),
        _ if default == 1 => return None,
        _ => {}
    }
    match (w(0), w(1)) {
        ("DATA" | "INDEX", "DIRECTORY") => Some((2, true)),
        ("COMMENT", _) => Some((1, true)),
        (first, _) if FLAG_OPTIONS.contains(&first) => Some((1, false)),
        (first, _)
            if VALUE_OPTIONS
                .iter()
                .any(|o| first == *o || (o.ends_with('_') && first.starts_with(o))) =>
        {
            Some((1, true))
        }
        _ => None,
    }
}

/// An ALTER TABLE statement without the clauses the parser refuses but that change no
/// column (table options, index renames, partitioning), `ALTER ONLINE|IGNORE TABLE` as
/// `ALTER TABLE`, and `ADD COLUMN IF NOT EXISTS` as `ADD COLUMN`. `None` for anything else.
/// Table options may be written with or without spaces around `=` and several in one
/// clause (`ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`).
fn normalize_alter(sql: &str) -> Option<(String, AlterExtras)> {
    let (name, rest) = alter_table_parts(sql)?;
    let mut extras = AlterExtras::default();
    let mut kept = Vec::new();
    for clause in split_top_level(rest) {
        let tokens = sql_tokens(&clause);
        let words: Vec<String> = tokens
            .iter()
            .map(|&(a, b)| clause[a..b].to_ascii_uppercase())
            .collect();
        let text = |i: usize| tokens.get(i).map(|&(a, b)| &clause[a..b]);
        // Leading table options (MariaDB's `WAIT n` / `NOWAIT` lead any clause).
        let mut i = 0;
        while let Some((len, valued)) = table_option(&words[i..]) {
            let option = words[i..i + len].join(" ");
            i += len;
            if !valued {
                continue;
            }
            if text(i) == Some("=") {
                i += 1;
            }
            let value = text(i)?;
            i += 1;
            let option = option.trim_start_matches("DEFAULT ");
            match option {
                "CHARSET" | "CHARACTER SET" => extras.default_charset = Some(unquote_name(value)),
                // A charset named in the same statement wins; a collation implies one.
                "COLLATE" if extras.default_charset.is_none() => {
                    extras.default_charset = Some(charset_of_collation(value));
                }
                "COMMENT" => extras.comment = Some(sql_string(value)),
                _ => {}
            }
        }
        let Some(&(start, _)) = tokens.get(i) else {
            continue;
        };
        let clause = &clause[start..];
        let words = &words[i..];
        let w: Vec<&str> = words.iter().map(String::as_str).collect();
        match w.as_slice() {
            ["CONVERT", "TO", "CHARACTER", "SET", ..] | ["CONVERT", "TO", "CHARSET", ..] => {
                let at = if w[2] == "CHARSET" { 3 } else { 4 };
                let at = if w.get(at) == Some(&"=") { at + 1 } else { at };
                let charset = unquote_name(text(i + at)?);
                extras.convert_charset = Some(charset.clone());
                extras.default_charset = Some(charset);
            }
            ["RENAME", "INDEX" | "KEY", ..]
            | ["ENABLE" | "DISABLE", "KEYS"]
            | ["PARTITION", "BY", ..]
            | ["REMOVE", "PARTITIONING"]
            | ["ORDER", "BY", ..] => {}
            ["ADD", "COLUMN", "IF", "NOT", "EXISTS", col, ..]
            | ["ADD", "IF", "NOT", "EXISTS", col, ..] => {
                let skip = if w[1] == "COLUMN" { 5 } else { 4 };
                let rest: Vec<&str> = clause.split_whitespace().skip(skip).collect();
                extras
                    .add_if_not_exists
                    .push(unquote_name(col).trim_matches('`').to_owned());
                kept.push(format!("ADD COLUMN {}", rest.join(" ")));
            }
            _ => kept.push(clause.trim().to_owned()),
        }
    }
    if kept.is_empty() {
        kept.push("ALGORITHM=DEFAULT".to_owned());
    }
    Some((format!("ALTER TABLE {name} {}", kept.join(", ")), extras))
}

/// The tokens of one clause as byte ranges: words, quoted strings and identifiers (quotes
/// kept), parenthesized groups whole, and `=` on its own wherever it is outside quotes.
fn sql_tokens(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut quote: Option<char> = None;
    let mut depth = 0usize;
    let mut chars = text.char_indices().peekable();
    while let Some((i, ch)) = chars.next() {
        if let Some(q) = quote {
            if ch == '\\' && q != '`' {
                chars.next();
            } else if ch == q {
                if chars.peek().is_some_and(|&(_, n)| n == q) {
                    chars.next();
                } else {
                    quote = None;
                }
            }
            continue;
        }
        match ch {
            '\'' | '"' | '`' => {
                quote = Some(ch);
                start.get_or_insert(i);
            }
            '(' => {
                depth += 1;
                start.get_or_insert(i);
            }
            ')' => depth = depth.saturating_sub(1),
            '=' if depth == 0 => {
                if let Some(s) = start.take() {
                    out.push((s, i));
                }
                out.push((i, i + 1));
            }
            c if c.is_whitespace() && depth == 0 => {
                if let Some(s) = start.take() {
                    out.push((s, i));
                }
            }
            _ => {
                start.get_or_insert(i);
            }
        }
    }
    if let Some(s) = start {
        out.push((s, text.len()));
    }
    out
}

/// The text of an SQL string literal (`'it''s'`, `"a\"b"`); anything else as it is.
fn sql_string(token: &str) -> String {
    let Some(q) = token.chars().next().filter(|c| *c == '\'' || *c == '"') else {
        return token.to_owned();
    };
    let inner = token
        .strip_prefix(q)
        .map(|t| t.strip_suffix(q).unwrap_or(t))
        .unwrap_or(token);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('0') => out.push('\0'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            },
            c if c == q && chars.peek() == Some(&q) => {
                chars.next();
                out.push(q);
            }
            c => out.push(c),
        }
    }
    out
}

/// Splits at the commas outside parentheses and quotes.
fn split_top_level(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        current.push(ch);
        match quote {
            Some(q) => {
                if ch == '\\' {
                    if let Some(n) = chars.next() {
                        current.push(n);
                    }
                } else if ch == q {
                    quote = None;
                }
            }
            None => match ch {
                '\'' | '"' | '`' => quote = Some(ch),
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                ',' if depth == 0 => {
                    current.pop();
                    out.push(std::mem::take(&mut current));
                }
                _ => {}
            },
        }
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out
}

/// The tables a statement the parser refused names: the first one, and for ALTER TABLE
/// also the new name of a `RENAME [TO|AS]` clause.
fn mentioned_tables(sql: &str, default_db: &str) -> Vec<TableKey> {
    const NAME: &str = r"(`(?:[^`]|``)+`|[\w$]+)(?:\s*\.\s*(`(?:[^`]|``)+`|[\w$]+))?";
    static RE: std::sync::OnceLock<Option<(regex::Regex, regex::Regex)>> =
        std::sync::OnceLock::new();
    let Some((first_re, rename_re)) = RE
        .get_or_init(|| {
            let first = regex::Regex::new(&format!(
                r"(?is)^\s*(?:create|alter|drop|rename|truncate)\b.*?\b(?:tables?|index\s+\S+\s+on)\s+(?:if\s+(?:not\s+)?exists\s+)?{NAME}"
            ));
            let rename = regex::Regex::new(&format!(r"(?is)^\s*rename\s+(?:(?:to|as)\s+)?{NAME}\s*$"));
            first.ok().zip(rename.ok())
        })
        .as_ref()
    else {
        return Vec::new();
    };
    let unquote = |s: &str| s.trim_matches('`').replace("``", "`");
    let key = |caps: &regex::Captures| -> Option<TableKey> {
        let first = unquote(caps.get(1)?.as_str());
        match caps.get(2) {
            Some(t) => Some((first, unquote(t.as_str()))),
            None if !default_db.is_empty() => Some((default_db.to_owned(), first)),
            None => None,
        }
    };
    let mut out: Vec<TableKey> = first_re
        .captures(sql)
        .and_then(|c| key(&c))
        .into_iter()
        .collect();
    if let Some((_, clauses)) = alter_table_parts(sql) {
        for clause in split_top_level(clauses) {
            let Some(caps) = rename_re.captures(&clause) else {
                continue;
            };
            let word = caps.get(1).map_or("", |m| m.as_str());
            if ["COLUMN", "INDEX", "KEY", "CONSTRAINT", "PARTITION"]
                .iter()
                .any(|w| word.eq_ignore_ascii_case(w))
            {
                continue;
            }
            out.extend(key(&caps));
        }
    }
    out
}

/// A column type as written: `int(11) unsigned`, `enum('a','b')`, `decimal(10,2)`.
#[derive(Debug, Clone, PartialEq)]
struct TypeText {
    /// Upper case: `INT`, `DOUBLE PRECISION`.
    base: String,
    args: Vec<String>,
    unsigned: bool,
    zerofill: bool,
}

fn parse_type(text: &str) -> TypeText {
    let text = text.trim();
    let (head, args, tail) = match text.find('(') {
        Some(open) => {
            let mut depth = 0usize;
            let mut quote: Option<char> = None;
            let mut close = None;
            let mut args = Vec::new();
            let mut current = String::new();
            let mut chars = text[open..].char_indices().peekable();
            while let Some((i, ch)) = chars.next() {
                match quote {
                    Some(q) => {
                        current.push(ch);
                        if ch == '\\' {
                            if let Some((_, next)) = chars.next() {
                                current.push(next);
                            }
                        } else if ch == q {
                            if chars.peek().is_some_and(|(_, n)| *n == q) {
                                if let Some((_, n)) = chars.next() {
                                    current.push(n);
                                }
                            } else {
                                quote = None;
                            }
                        }
                    }
                    None => match ch {
                        '(' => {
                            depth += 1;
                            if depth > 1 {
                                current.push(ch);
                            }
                        }
                        ')' => {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                close = Some(open + i);
                                break;
                            }
                            current.push(ch);
                        }
                        ',' if depth == 1 => {
                            args.push(current.trim().to_owned());
                            current.clear();
                        }
                        '\'' | '"' => {
                            quote = Some(ch);
                            current.push(ch);
                        }
                        _ => current.push(ch),
                    },
                }
            }
            if !current.trim().is_empty() {
                args.push(current.trim().to_owned());
            }
            let tail = close.map_or("", |c| &text[c + 1..]);
            (&text[..open], args, tail)
        }
        None => (text, Vec::new(), ""),
    };
    let mut base = Vec::new();
    let mut unsigned = false;
    let mut zerofill = false;
    let mut in_base = true;
    for word in head.split_whitespace().chain(tail.split_whitespace()) {
        let w = word.to_ascii_uppercase();
        match w.as_str() {
            "UNSIGNED" => {
                unsigned = true;
                in_base = false;
            }
            "ZEROFILL" => {
                zerofill = true;
                in_base = false;
            }
            "SIGNED" => in_base = false,
            _ if in_base && !w.is_empty() => base.push(w),
            _ => in_base = false,
        }
    }
    TypeText {
        base: base.join(" "),
        args,
        unsigned,
        zerofill,
    }
}

impl TypeText {
    fn type_name(&self) -> String {
        let mut name = self.base.clone();
        if self.unsigned {
            name.push_str(" UNSIGNED");
        }
        if self.zerofill {
            name.push_str(" ZEROFILL");
        }
        name
    }

    fn is_collection(&self) -> bool {
        matches!(self.base.as_str(), "ENUM" | "SET")
    }

    /// Holds characters (has a character set).
    fn textual(&self) -> bool {
        matches!(
            self.base.as_str(),
            "CHAR"
                | "VARCHAR"
                | "CHARACTER"
                | "CHARACTER VARYING"
                | "NCHAR"
                | "NVARCHAR"
                | "NATIONAL CHAR"
                | "NATIONAL VARCHAR"
                | "TINYTEXT"
                | "TEXT"
                | "MEDIUMTEXT"
                | "LONGTEXT"
                | "LONG"
                | "LONG VARCHAR"
                | "ENUM"
                | "SET"
        )
    }

    fn length(&self) -> Option<i64> {
        if self.base == "ENUM" {
            return Some(1);
        }
        if self.base == "SET" {
            let n = i64::try_from(self.args.len()).unwrap_or(0);
            return Some((2 * n - 1).max(0));
        }
        self.args.first().and_then(|a| a.trim().parse().ok())
    }

    fn scale(&self) -> Option<i64> {
        if self.is_collection() {
            return None;
        }
        self.args.get(1).and_then(|a| a.trim().parse().ok())
    }

    fn enum_values(&self) -> Option<Vec<String>> {
        self.is_collection().then(|| self.args.clone())
    }

    /// The `java.sql.Types` code Debezium's MySQL DDL parser gives the type.
    fn jdbc_type(&self) -> i32 {
        match self.base.as_str() {
            "BIT" => -7,
            "TINYINT" | "INT1" | "SMALLINT" | "INT2" => 5,
            "MEDIUMINT" | "INT3" | "MIDDLEINT" | "INT" | "INTEGER" | "INT4" | "YEAR" => 4,
            "BIGINT" | "INT8" | "SERIAL" => -5,
            "REAL" => 7,
            "DOUBLE" | "DOUBLE PRECISION" | "FLOAT8" => 8,
            "FLOAT" | "FLOAT4" => 6,
            "DECIMAL" | "DEC" | "FIXED" => 3,
            "NUMERIC" => 2,
            "BOOL" | "BOOLEAN" => 16,
            "DATE" => 91,
            "TIME" => 92,
            "DATETIME" => 93,
            "TIMESTAMP" => 2014,
            "CHAR" | "CHARACTER" | "ENUM" | "SET" => 1,
            "NCHAR" | "NATIONAL CHAR" => -15,
            "NVARCHAR" | "NATIONAL VARCHAR" => -9,
            "VARCHAR" | "CHARACTER VARYING" | "TINYTEXT" | "TEXT" | "MEDIUMTEXT" | "LONGTEXT"
            | "LONG" | "LONG VARCHAR" => 12,
            "BINARY" => -2,
            "VARBINARY" => -3,
            "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" | "LONG VARBINARY" => 2004,
            _ => 1111,
        }
    }
}

/// One row of `information_schema.COLUMNS`.
#[derive(Debug, Clone)]
pub struct InfoColumn {
    pub name: String,
    pub column_type: String,
    pub nullable: bool,
    pub default: Option<String>,
    pub charset: Option<String>,
    pub extra: String,
    pub comment: String,
}

/// A column read from `information_schema` (`mariadb`: COLUMN_DEFAULT is an SQL literal).
pub fn info_column(c: &InfoColumn, mariadb: bool) -> ColumnDef {
    let t = parse_type(&c.column_type);
    let extra = c.extra.to_ascii_uppercase();
    let auto = extra.contains("AUTO_INCREMENT");
    let generated = extra.contains("VIRTUAL GENERATED")
        || extra.contains("STORED GENERATED")
        || extra.contains("PERSISTENT GENERATED");
    let (has_default, expr) = match c.default.as_deref() {
        None => (c.nullable && !auto && !generated, None),
        Some(d) if mariadb && d.eq_ignore_ascii_case("NULL") => (true, None),
        Some(d) if mariadb && d.len() >= 2 && d.starts_with('\'') && d.ends_with('\'') => (
            true,
            Some(d[1..d.len() - 1].replace("''", "'").replace("\\\\", "\\")),
        ),
        Some(d) => (true, Some(d.to_owned())),
    };
    ColumnDef {
        name: c.name.clone(),
        jdbc_type: t.jdbc_type(),
        native_type: None,
        type_name: t.type_name(),
        type_expression: t.type_name(),
        charset_name: if t.textual() { c.charset.clone() } else { None },
        length: t.length(),
        scale: t.scale(),
        position: 0,
        optional: c.nullable,
        auto_incremented: auto,
        generated: generated || auto,
        comment: Some(c.comment.clone()).filter(|s| !s.is_empty()),
        has_default_value: has_default,
        default_value_expression: expr,
        enum_values: t.enum_values(),
    }
}

/// Whether the server compares database and table names case-insensitively
/// (`@@lower_case_table_names` 1 or 2).
pub async fn lower_case_table_names(conn: &mut Conn) -> Result<bool, MySqlError> {
    let row: Option<Row> = conn
        .query_first("SELECT @@lower_case_table_names")
        .await
        .map_err(|e| MySqlError::query("reading @@lower_case_table_names", e))?;
    Ok(row
        .and_then(|mut r| rows::number(&mut r, 0))
        .is_some_and(|n| n != 0))
}

/// Reads the definitions of `names` (and the default character sets of their databases)
/// from `information_schema`, with each table's `SHOW CREATE TABLE` text. The keys are
/// folded as the server compares names ([`lower_case_table_names`]). Every value is read
/// as text that may be NULL or not UTF-8 ([`rows`]): nothing the server sends panics.
pub async fn read_definitions(
    conn: &mut Conn,
    names: &[TableKey],
    mariadb: bool,
) -> Result<(Tables, Vec<(TableKey, String)>), MySqlError> {
    let q = |what: &'static str| move |e| MySqlError::query(what, e);
    let mut out = Tables::default();
    out.set_lower_case_names(lower_case_table_names(conn).await?);
    let lower = out.lower_case_names;
    // Under lower_case_table_names=2 names are stored as created but compared lower-cased.
    let is = |column: &str| {
        if lower {
            format!("LOWER({column}) = ?")
        } else {
            format!("{column} = ?")
        }
    };
    let names: Vec<TableKey> = names.iter().map(|(d, t)| out.key(d, t)).collect();
    let mut dbs: Vec<&str> = names.iter().map(|(d, _)| d.as_str()).collect();
    dbs.sort_unstable();
    dbs.dedup();
    for db in dbs {
        let row: Option<Row> = conn
            .exec_first(
                format!(
                    "SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA WHERE {}",
                    is("SCHEMA_NAME")
                ),
                (db,),
            )
            .await
            .map_err(q("reading information_schema.SCHEMATA"))?;
        if let Some(c) = row.and_then(|mut r| rows::text(&mut r, 0)) {
            out.databases.insert(db.to_owned(), c);
        }
        let wanted: Vec<&str> = names
            .iter()
            .filter(|(d, _)| d == db)
            .map(|(_, t)| t.as_str())
            .collect();
        let tables: Vec<Row> = conn
            .exec(
                format!(
                    "SELECT TABLE_NAME, TABLE_COLLATION, TABLE_COMMENT FROM information_schema.TABLES \
                     WHERE {}",
                    is("TABLE_SCHEMA")
                ),
                (db,),
            )
            .await
            .map_err(q("reading information_schema.TABLES"))?;
        for mut row in tables {
            let Some(table) = rows::text(&mut row, 0).map(|t| fold_name(lower, &t)) else {
                continue;
            };
            if !wanted.contains(&table.as_str()) {
                continue;
            }
            let collation = rows::text(&mut row, 1);
            let comment = rows::text(&mut row, 2);
            out.tables.insert(
                (db.to_owned(), table),
                TableDef {
                    default_charset_name: collation.as_deref().map(charset_of_collation),
                    primary_key_column_names: Vec::new(),
                    columns: Vec::new(),
                    comment: comment.filter(|c| !c.is_empty()),
                    attributes: Vec::new(),
                },
            );
        }
        let columns: Vec<Row> = conn
            .exec(
                format!(
                    "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, \
                            CHARACTER_SET_NAME, EXTRA, COLUMN_COMMENT \
                     FROM information_schema.COLUMNS WHERE {} \
                     ORDER BY TABLE_NAME, ORDINAL_POSITION",
                    is("TABLE_SCHEMA")
                ),
                (db,),
            )
            .await
            .map_err(q("reading information_schema.COLUMNS"))?;
        for mut row in columns {
            let (Some(table), Some(name)) = (rows::text(&mut row, 0), rows::text(&mut row, 1))
            else {
                continue;
            };
            let Some(def) = out
                .tables
                .get_mut(&(db.to_owned(), fold_name(lower, &table)))
            else {
                continue;
            };
            def.columns.push(info_column(
                &InfoColumn {
                    name,
                    column_type: rows::text(&mut row, 2).unwrap_or_default(),
                    nullable: rows::text(&mut row, 3)
                        .is_some_and(|n| n.eq_ignore_ascii_case("YES")),
                    default: rows::text(&mut row, 4),
                    charset: rows::text(&mut row, 5),
                    extra: rows::text(&mut row, 6).unwrap_or_default(),
                    comment: rows::text(&mut row, 7).unwrap_or_default(),
                },
                mariadb,
            ));
        }
        let keys: Vec<Row> = conn
            .exec(
                format!(
                    "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
                     WHERE {} AND INDEX_NAME = 'PRIMARY' \
                     ORDER BY TABLE_NAME, SEQ_IN_INDEX",
                    is("TABLE_SCHEMA")
                ),
                (db,),
            )
            .await
            .map_err(q("reading information_schema.STATISTICS"))?;
        for mut row in keys {
            let (Some(table), Some(column)) = (rows::text(&mut row, 0), rows::text(&mut row, 1))
            else {
                continue;
            };
            if let Some(def) = out
                .tables
                .get_mut(&(db.to_owned(), fold_name(lower, &table)))
            {
                def.primary_key_column_names.push(column);
            }
        }
    }
    for def in out.tables.values_mut() {
        def.renumber();
    }
    let mut ddl = Vec::with_capacity(names.len());
    for key in &names {
        if !out.tables.contains_key(key) {
            continue;
        }
        let row: Option<Row> = conn
            .query_first(format!(
                "SHOW CREATE TABLE {}.{}",
                ident(&key.0),
                ident(&key.1)
            ))
            .await
            .map_err(q("SHOW CREATE TABLE"))?;
        let text = row.and_then(|mut r| rows::text(&mut r, 1));
        ddl.push((key.clone(), text.unwrap_or_default()));
    }
    Ok((out, ddl))
}

/// The server's binlog position now, as `(file index, pos)`.
async fn server_position(conn: &mut Conn) -> Result<(u64, u64), MySqlError> {
    let pos = crate::snapshot::read_position(conn, false).await?;
    Ok((file_index(&pos.file), pos.pos))
}

/// A history stored in the offsets, as read at task start.
#[derive(Debug, Clone)]
pub struct Stored {
    pub tables: Tables,
    pub file: String,
    pub pos: u64,
    pub generation: u64,
}

/// Reads the history partition's offset: `Err(generation)` when there is none usable (the
/// generation to continue from).
pub fn stored(offsets: &[StoredOffset], partition: &SourcePartition) -> Result<Stored, u64> {
    let Some(o) = offsets.iter().find(|o| &o.partition == partition) else {
        return Err(0);
    };
    let v = &o.offset.value;
    let generation = v
        .get("generation")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(o.offset.order.0[0]);
    let parsed = (|| {
        let file = v.get("file")?.as_str()?.to_owned();
        let pos = v.get("pos")?.as_u64()?;
        let tables = Tables::from_json(v.get("tables")?, v.get("databases"))?;
        Some(Stored {
            tables,
            file,
            pos,
            generation,
        })
    })();
    parsed.ok_or(generation)
}

/// Whether a main position was set by hand (offsets API, Connect tooling): it has no order.
pub fn set_by_hand(offsets: &[StoredOffset], main: &SourcePartition) -> bool {
    offsets
        .iter()
        .find(|o| &o.partition == main)
        .is_some_and(|o| o.offset.order == OffsetOrder::default())
}

/// What [`SchemaHistory::on_ddl`] decided for one DDL event.
#[derive(Debug)]
pub enum Ddl {
    /// Names no captured table: a plain schema-change record on the main partition.
    Plain,
    /// Already delivered before a restart (at or before the stored history's position).
    Delivered,
    /// A history record: its `tableChanges`, and tables to read again before it is sent.
    History {
        changes: Vec<serde_json::Value>,
        refresh: Vec<TableKey>,
    },
}

/// The schema history of a running task.
pub struct SchemaHistory {
    cfg: Arc<MySqlConfig>,
    pub tables: Tables,
    generation: u64,
    partition: SourcePartition,
    mariadb: bool,
    /// DDL ending at or before this `(file index, pos)` was delivered and applied before a
    /// restart: neither applied nor emitted again.
    delivered_through: Option<(u64, u64)>,
    /// The server's binlog position when the stream started: DDL at or after it is live.
    live_from: Option<(u64, u64)>,
    server: Option<ServerOpts>,
    /// A history record waiting for tables to be read again: its index in the batch.
    pending: Option<(usize, Vec<TableKey>)>,
}

impl SchemaHistory {
    pub fn new(cfg: Arc<MySqlConfig>, tables: Tables, generation: u64, mariadb: bool) -> Self {
        let partition = history_partition(&cfg.prefix);
        SchemaHistory {
            cfg,
            tables,
            generation,
            partition,
            mariadb,
            delivered_through: None,
            live_from: None,
            server: None,
            pending: None,
        }
    }

    /// A history continued from the stored one, resuming at the main position `main`.
    pub fn resume(
        cfg: Arc<MySqlConfig>,
        stored: Stored,
        main: &StartPosition,
        mariadb: bool,
    ) -> Self {
        let at = (file_index(&stored.file), stored.pos);
        let mut h = SchemaHistory::new(cfg, stored.tables, stored.generation, mariadb);
        if at > (file_index(&main.file), main.pos) {
            h.delivered_through = Some(at);
        }
        h
    }

    pub fn partition(&self) -> &SourcePartition {
        &self.partition
    }

    /// Before streaming: notes where the live binlog starts and how to reach the server.
    pub async fn start_stream(&mut self, server: &ServerOpts) -> Result<(), MySqlError> {
        let mut conn = server.connect().await?;
        let at = server_position(&mut conn).await;
        let lower = lower_case_table_names(&mut conn).await;
        let _ = conn.disconnect().await;
        self.live_from = Some(at?);
        self.tables.set_lower_case_names(lower?);
        self.server = Some(server.clone());
        Ok(())
    }

    /// The offset of the history right after a DDL ending at `file:pos`.
    pub fn offset(&self, file: &str, pos: u64, gtids: &GtidState) -> SourceOffset {
        let (tables, databases) = self.tables.to_json();
        let mut value = json!({
            "file": file,
            "pos": pos,
            "row": 0,
            "generation": self.generation,
            "databases": databases,
            "tables": tables,
        });
        if !gtids.is_empty() {
            value["gtids"] = serde_json::Value::String(gtids.to_string());
        }
        SourceOffset {
            value,
            order: OffsetOrder([self.generation, file_index(file), pos]),
        }
    }

    /// Follows one DDL event ending at `file:end` (`start` for messages).
    pub fn on_ddl(&mut self, file: &str, start: u64, end: u64, default_db: &str, sql: &str) -> Ddl {
        let at = (file_index(file), end);
        let cfg = self.cfg.clone();
        let captured = |d: &str, t: &str| cfg.filters.table(d, t);
        let captured_db = |d: &str| cfg.filters.database(d);
        if self.delivered_through.is_some_and(|through| at <= through) {
            // Classify without changing anything: a history DDL was delivered already.
            let mut scratch = self.tables.clone();
            let applied = scratch.apply(default_db, sql, &captured, &captured_db);
            return if applied.captured {
                Ddl::Delivered
            } else {
                Ddl::Plain
            };
        }
        let applied = self.tables.apply(default_db, sql, &captured, &captured_db);
        if !applied.captured {
            return Ddl::Plain;
        }
        let mut refresh = Vec::new();
        if !applied.failed.is_empty() {
            let live = self.live_from.is_some_and(|from| at >= from);
            let names: Vec<String> = applied
                .failed
                .iter()
                .map(|(d, t)| format!("{d}.{t}"))
                .collect();
            let reason = applied.reason.as_deref().unwrap_or("unknown");
            if live {
                warn!(connector = %self.cfg.name, tables = %names.join(", "), file, pos = start, statement = %sql, reason, "DDL of a captured table not followed; reading its definition from information_schema");
                refresh = applied.failed.clone();
            } else {
                warn!(connector = %self.cfg.name, tables = %names.join(", "), file, pos = start, statement = %sql, reason, "DDL of a captured table not followed while reading older binlog; its schema-change event has no tableChanges and the old definition is kept");
            }
        }
        Ddl::History {
            changes: applied.changes.iter().map(TableChange::to_json).collect(),
            refresh,
        }
    }

    /// Remembers that the history record at `index` of the batch waits for `tables`.
    pub fn set_pending(&mut self, index: usize, tables: Vec<TableKey>) {
        if !tables.is_empty() {
            self.pending = Some((index, tables));
        }
    }

    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Reads the pending tables from `information_schema` and completes their record.
    pub async fn resolve_pending(&mut self, out: &mut [SourceRecord]) -> Result<(), MySqlError> {
        let Some((index, keys)) = self.pending.take() else {
            return Ok(());
        };
        let Some(server) = &self.server else {
            return Ok(());
        };
        let mut conn = server.connect().await?;
        let read = read_definitions(&mut conn, &keys, self.mariadb).await;
        let _ = conn.disconnect().await;
        let (fresh, _) = read?;
        let mut changes = Vec::new();
        for key in &keys {
            let Some(def) = fresh.tables.get(key) else {
                // Gone now (dropped, or renamed out of the captured tables by the statement
                // that could not be followed): a DROP, as a followed statement would give.
                let table = format!("{}.{}", key.0, key.1);
                let Some(def) = self.tables.tables.remove(key) else {
                    warn!(connector = %self.cfg.name, table = %table, "table not found in information_schema; no tableChanges entry");
                    continue;
                };
                warn!(connector = %self.cfg.name, table = %table, "table not found in information_schema; it is dropped from the schema history");
                changes.push(
                    TableChange {
                        kind: ChangeKind::Drop,
                        db: key.0.clone(),
                        table: key.1.clone(),
                        def,
                    }
                    .to_json(),
                );
                continue;
            };
            let kind = if self.tables.tables.contains_key(key) {
                ChangeKind::Alter
            } else {
                ChangeKind::Create
            };
            self.tables.tables.insert(key.clone(), def.clone());
            changes.push(
                TableChange {
                    kind,
                    db: key.0.clone(),
                    table: key.1.clone(),
                    def: def.clone(),
                }
                .to_json(),
            );
        }
        if let Some(record) = out.get_mut(index) {
            if let Payload::Json { value, .. } = &mut record.payload {
                value["tableChanges"] = serde_json::Value::Array(changes);
            }
            if let Some(offset) = &mut record.offset {
                let (tables, databases) = self.tables.to_json();
                offset.value["tables"] = tables;
                offset.value["databases"] = databases;
            }
        }
        Ok(())
    }
}

/// How a task starts its schema history.
pub enum HistoryStart {
    /// `include.schema.changes=false`: no history at all.
    Off,
    /// The stored history, valid at the resume position.
    Continue(Box<SchemaHistory>),
    /// Read the definitions from `information_schema` (with this generation).
    Seed { generation: u64 },
}

/// Decides how the history starts from the stored offsets. `main` is the position the task
/// resumes at (`None`: no stored position), `snapshot` whether it resumes a snapshot.
pub fn plan(
    cfg: &Arc<MySqlConfig>,
    offsets: &[StoredOffset],
    main_partition: &SourcePartition,
    main: Option<&StartPosition>,
    snapshot: bool,
    mariadb: bool,
) -> HistoryStart {
    if !cfg.include_schema_changes {
        return HistoryStart::Off;
    }
    let partition = history_partition(&cfg.prefix);
    let stored = stored(offsets, &partition);
    let generation = match &stored {
        Ok(s) => s.generation,
        Err(g) => *g,
    } + 1;
    let Some(main) = main else {
        return HistoryStart::Seed { generation };
    };
    if set_by_hand(offsets, main_partition) {
        warn!(connector = %cfg.name, "the stored position was set through the offsets API; the schema history is read again from information_schema, so tableChanges may not match the binlog until the next snapshot");
        return HistoryStart::Seed { generation };
    }
    match stored {
        Ok(s) if snapshot => {
            // The snapshot's seeding records are stored at the snapshot's position; if they
            // were not, the snapshot seeds (and emits them) again.
            if (file_index(&s.file), s.pos) == (file_index(&main.file), main.pos) {
                HistoryStart::Continue(Box::new(SchemaHistory::resume(
                    cfg.clone(),
                    s,
                    main,
                    mariadb,
                )))
            } else {
                HistoryStart::Seed { generation }
            }
        }
        Ok(s) => HistoryStart::Continue(Box::new(SchemaHistory::resume(
            cfg.clone(),
            s,
            main,
            mariadb,
        ))),
        Err(_) if snapshot => HistoryStart::Seed { generation },
        Err(_) => {
            warn!(connector = %cfg.name, "no schema history is stored (an older version, or include.schema.changes was off); it is read from information_schema now, so tableChanges may not match the binlog until the next snapshot");
            HistoryStart::Seed { generation }
        }
    }
}

/// Starts the history of a stream at `pos`: the history and the seeding records to send
/// before the stream's first event.
pub async fn start(
    conn: &mut Conn,
    cfg: &Arc<MySqlConfig>,
    start: HistoryStart,
    pos: &StartPosition,
    mariadb: bool,
) -> Result<(Option<Box<SchemaHistory>>, Vec<SourceRecord>), MySqlError> {
    match start {
        HistoryStart::Off => Ok((None, Vec::new())),
        HistoryStart::Continue(h) => Ok((Some(h), Vec::new())),
        HistoryStart::Seed { generation } => {
            let names = crate::snapshot::captured_tables(conn, cfg).await?;
            let (h, records) = seed(conn, cfg, &names, pos, generation, mariadb).await?;
            Ok((Some(Box::new(h)), records))
        }
    }
}

/// Seeds a history from `information_schema` at `pos`: the history and one CREATE record
/// per captured table (the last carries the history's offset).
pub async fn seed(
    conn: &mut Conn,
    cfg: &Arc<MySqlConfig>,
    names: &[TableKey],
    pos: &StartPosition,
    generation: u64,
    mariadb: bool,
) -> Result<(SchemaHistory, Vec<SourceRecord>), MySqlError> {
    let (tables, ddl) = read_definitions(conn, names, mariadb).await?;
    let history = SchemaHistory::new(cfg.clone(), tables, generation, mariadb);
    let connector = cfg.flavor.connector_name();
    let ts_ms = crate::now_ms();
    let mut records = Vec::with_capacity(ddl.len());
    for ((db, table), text) in ddl {
        let Some(def) = history.tables.tables.get(&(db.clone(), table.clone())) else {
            continue;
        };
        let change = TableChange {
            kind: ChangeKind::Create,
            db: db.clone(),
            table: table.clone(),
            def: def.clone(),
        };
        records.push(SourceRecord {
            topic: cfg.prefix.clone(),
            payload: Payload::Json {
                key: Some(json!({ "databaseName": db })),
                value: json!({
                    "source": {
                        "version": tributary_runtime::VERSION,
                        "connector": connector,
                        "name": &*cfg.prefix,
                        "ts_ms": ts_ms,
                        "snapshot": "true",
                        "db": db,
                        "table": table,
                        "server_id": 0,
                        "gtid": null,
                        "file": pos.file,
                        "pos": pos.pos,
                        "row": 0,
                        "thread": null,
                        "query": null,
                    },
                    "ts_ms": ts_ms,
                    "databaseName": db,
                    "schemaName": null,
                    "ddl": text,
                    "tableChanges": [change.to_json()],
                }),
            },
            partition: history.partition.clone(),
            offset: None,
        });
    }
    let offset = history.offset(&pos.file, pos.pos, &pos.gtids);
    match records.last_mut() {
        Some(last) => last.offset = Some(offset),
        None => {
            // No captured table yet: the history (empty) still needs to be stored, but a
            // record needs a topic; it is stored with the first DDL instead.
        }
    }
    Ok((history, records))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(_: &str, _: &str) -> bool {
        true
    }
    fn all_db(_: &str) -> bool {
        true
    }

    fn apply(tables: &mut Tables, sql: &str) -> Applied {
        tables.apply("d", sql, &all, &all_db)
    }

    fn names(tables: &Tables, t: &str) -> Vec<String> {
        tables.tables[&("d".to_owned(), t.to_owned())]
            .columns
            .iter()
            .map(|c| format!("{}:{}", c.position, c.name))
            .collect()
    }

    fn table<'a>(tables: &'a Tables, t: &str) -> &'a TableDef {
        &tables.tables[&("d".to_owned(), t.to_owned())]
    }

    #[test]
    fn create_table_columns_key_and_types() {
        let mut t = Tables::default();
        t.databases.insert("d".into(), "latin1".into());
        let a = apply(
            &mut t,
            "CREATE TABLE t (id INT(11) UNSIGNED NOT NULL AUTO_INCREMENT, \
             name VARCHAR(255) CHARACTER SET utf8mb4 DEFAULT 'x' COMMENT 'the name', \
             price DECIMAL(10,2) NOT NULL, kind ENUM('a','b''c') NULL, note TEXT, \
             at TIMESTAMP(3) NULL DEFAULT NULL, PRIMARY KEY (id)) ENGINE=InnoDB",
        );
        assert!(a.captured);
        assert_eq!(a.changes.len(), 1);
        assert_eq!(a.changes[0].kind, ChangeKind::Create);
        let def = table(&t, "t");
        assert_eq!(def.primary_key_column_names, vec!["id"]);
        assert_eq!(def.default_charset_name.as_deref(), Some("latin1"));
        let c = &def.columns;
        assert_eq!(c[0].type_name, "INT UNSIGNED");
        assert_eq!((c[0].jdbc_type, c[0].length), (4, Some(11)));
        assert!(c[0].auto_incremented && c[0].generated && !c[0].optional);
        assert!(!c[0].has_default_value);
        assert_eq!(c[1].type_name, "VARCHAR");
        assert_eq!((c[1].jdbc_type, c[1].length), (12, Some(255)));
        assert_eq!(c[1].charset_name.as_deref(), Some("utf8mb4"));
        assert_eq!(c[1].default_value_expression.as_deref(), Some("x"));
        assert_eq!(c[1].comment.as_deref(), Some("the name"));
        assert_eq!(
            (c[2].jdbc_type, c[2].length, c[2].scale),
            (3, Some(10), Some(2))
        );
        assert!(!c[2].optional && !c[2].has_default_value);
        assert_eq!(
            c[3].enum_values,
            Some(vec!["'a'".to_owned(), "'b''c'".to_owned()])
        );
        assert_eq!((c[3].jdbc_type, c[3].length), (1, Some(1)));
        assert_eq!(c[3].charset_name.as_deref(), Some("latin1"));
        assert!(c[3].has_default_value && c[3].default_value_expression.is_none());
        assert_eq!(c[4].jdbc_type, 12);
        assert_eq!((c[5].jdbc_type, c[5].length), (2014, Some(3)));
        assert_eq!(
            names(&t, "t"),
            ["1:id", "2:name", "3:price", "4:kind", "5:note", "6:at"]
        );
    }

    #[test]
    fn create_table_charset_option_and_inline_key() {
        let mut t = Tables::default();
        apply(
            &mut t,
            "CREATE TABLE `d`.`u` (`k` bigint PRIMARY KEY, v char(3)) DEFAULT CHARSET=utf8mb4 COMMENT='c'",
        );
        let def = table(&t, "u");
        assert_eq!(def.default_charset_name.as_deref(), Some("utf8mb4"));
        assert_eq!(def.primary_key_column_names, vec!["k"]);
        assert_eq!(def.comment.as_deref(), Some("c"));
        assert_eq!(def.columns[0].jdbc_type, -5);
        assert!(!def.columns[0].optional);
        assert_eq!(def.columns[1].charset_name.as_deref(), Some("utf8mb4"));
    }

    #[test]
    fn alter_add_drop_modify_change_rename_with_positions() {
        let mut t = Tables::default();
        apply(
            &mut t,
            "CREATE TABLE t (id INT PRIMARY KEY, a INT, b VARCHAR(10))",
        );
        let a = apply(&mut t, "ALTER TABLE t ADD COLUMN c INT NOT NULL DEFAULT 7");
        assert_eq!(a.changes[0].kind, ChangeKind::Alter);
        assert_eq!(names(&t, "t"), ["1:id", "2:a", "3:b", "4:c"]);
        let c = &table(&t, "t").columns[3];
        assert!(!c.optional && c.has_default_value);
        assert_eq!(c.default_value_expression.as_deref(), Some("7"));
        apply(
            &mut t,
            "ALTER TABLE t ADD COLUMN f INT FIRST, ADD g INT AFTER a",
        );
        assert_eq!(names(&t, "t"), ["1:f", "2:id", "3:a", "4:g", "5:b", "6:c"]);
        apply(&mut t, "ALTER TABLE t DROP COLUMN a, DROP f");
        assert_eq!(names(&t, "t"), ["1:id", "2:g", "3:b", "4:c"]);
        apply(&mut t, "ALTER TABLE t MODIFY COLUMN c BIGINT NOT NULL");
        assert_eq!(table(&t, "t").columns[3].type_name, "BIGINT");
        apply(&mut t, "ALTER TABLE t MODIFY b VARCHAR(20) FIRST");
        assert_eq!(names(&t, "t"), ["1:b", "2:id", "3:g", "4:c"]);
        assert_eq!(table(&t, "t").columns[0].length, Some(20));
        apply(&mut t, "ALTER TABLE t CHANGE COLUMN g h DOUBLE AFTER c");
        assert_eq!(names(&t, "t"), ["1:b", "2:id", "3:c", "4:h"]);
        assert_eq!(table(&t, "t").columns[3].jdbc_type, 8);
        apply(&mut t, "ALTER TABLE t RENAME COLUMN h TO i");
        assert_eq!(names(&t, "t"), ["1:b", "2:id", "3:c", "4:i"]);
        apply(&mut t, "ALTER TABLE t ALTER COLUMN i SET DEFAULT 1.5");
        assert_eq!(
            table(&t, "t").columns[3]
                .default_value_expression
                .as_deref(),
            Some("1.5")
        );
        apply(&mut t, "ALTER TABLE t CHANGE id ID BIGINT NOT NULL");
        assert_eq!(table(&t, "t").primary_key_column_names, vec!["ID"]);
    }

    #[test]
    fn primary_key_changes() {
        let mut t = Tables::default();
        apply(&mut t, "CREATE TABLE t (a INT, b INT NULL, c INT)");
        assert!(table(&t, "t").primary_key_column_names.is_empty());
        apply(&mut t, "ALTER TABLE t ADD PRIMARY KEY (a, b)");
        assert_eq!(table(&t, "t").primary_key_column_names, vec!["a", "b"]);
        assert!(
            !table(&t, "t").columns[1].optional,
            "key columns are NOT NULL"
        );
        apply(&mut t, "ALTER TABLE t DROP COLUMN b");
        assert_eq!(table(&t, "t").primary_key_column_names, vec!["a"]);
        apply(
            &mut t,
            "ALTER TABLE t DROP PRIMARY KEY, ADD CONSTRAINT pk PRIMARY KEY (c)",
        );
        assert_eq!(table(&t, "t").primary_key_column_names, vec!["c"]);
        apply(&mut t, "ALTER TABLE t DROP PRIMARY KEY");
        assert!(table(&t, "t").primary_key_column_names.is_empty());
    }

    #[test]
    fn rename_drop_truncate_like_and_databases() {
        let mut t = Tables::default();
        apply(&mut t, "CREATE TABLE t (id INT PRIMARY KEY)");
        let a = apply(&mut t, "ALTER TABLE t RENAME TO u");
        assert_eq!(a.changes[0].kind, ChangeKind::Alter);
        assert_eq!(a.changes[0].table, "u");
        assert!(t.tables.contains_key(&("d".into(), "u".into())));
        assert!(!t.tables.contains_key(&("d".into(), "t".into())));
        apply(&mut t, "RENAME TABLE u TO v, v TO w");
        assert_eq!(
            t.tables.keys().cloned().collect::<Vec<_>>(),
            [("d".into(), "w".into())]
        );
        let a = apply(&mut t, "CREATE TABLE x LIKE w");
        assert_eq!(a.changes[0].kind, ChangeKind::Create);
        assert_eq!(table(&t, "x").primary_key_column_names, vec!["id"]);
        let a = apply(&mut t, "TRUNCATE TABLE x");
        assert!(a.captured && a.changes.is_empty());
        let a = apply(&mut t, "DROP TABLE IF EXISTS `x` /* generated by server */");
        assert_eq!(a.changes[0].kind, ChangeKind::Drop);
        assert_eq!(a.changes[0].table, "x");
        let a = apply(&mut t, "CREATE DATABASE e CHARACTER SET latin1");
        assert!(a.changes.is_empty());
        assert_eq!(t.databases.get("e").map(String::as_str), Some("latin1"));
        apply(&mut t, "CREATE TABLE e.y (a INT)");
        let a = apply(&mut t, "DROP DATABASE e");
        assert!(a.changes.is_empty());
        assert!(!t.tables.keys().any(|(d, _)| d == "e"));
        let a = apply(&mut t, "CREATE INDEX i ON w (id)");
        assert_eq!(a.changes[0].kind, ChangeKind::Alter);
    }

    #[test]
    fn statements_on_other_tables_give_no_entries() {
        let only_t = |_: &str, t: &str| t == "t";
        let mut t = Tables::default();
        t.apply("d", "CREATE TABLE t (id INT)", &only_t, &all_db);
        let a = t.apply("d", "CREATE TABLE other (id INT)", &only_t, &all_db);
        assert!(!a.captured && a.changes.is_empty());
        let a = t.apply("d", "ALTER TABLE other ADD c INT", &only_t, &all_db);
        assert!(!a.captured);
        let a = t.apply("d", "GRANT SELECT ON *.* TO x", &only_t, &all_db);
        assert!(!a.captured);
        // Renamed out of the captured tables: a DROP.
        let a = t.apply("d", "RENAME TABLE t TO gone", &only_t, &all_db);
        assert_eq!(a.changes[0].kind, ChangeKind::Drop);
        assert!(t.tables.is_empty());
    }

    #[test]
    fn unparsable_or_inapplicable_statements_keep_the_old_definition() {
        let mut t = Tables::default();
        apply(&mut t, "CREATE TABLE t (id INT PRIMARY KEY, a INT)");
        let before = t.clone();
        let a = apply(&mut t, "ALTER TABLE t FROBNICATE COLUMN a");
        assert!(a.captured);
        assert_eq!(a.failed, vec![("d".to_owned(), "t".to_owned())]);
        assert!(a.changes.is_empty());
        assert_eq!(t, before);
        // Applies halfway, then fails: nothing changes.
        let a = apply(&mut t, "ALTER TABLE t ADD b INT, DROP COLUMN nope");
        assert_eq!(a.failed.len(), 1);
        assert_eq!(t, before);
        let a = apply(&mut t, "ALTER TABLE unknown ADD b INT");
        assert_eq!(a.failed, vec![("d".to_owned(), "unknown".to_owned())]);
        // Not parsable and naming no captured table.
        let other = |_: &str, t: &str| t == "t";
        let a = t.apply("d", "ALTER TABLE zz FROBNICATE", &other, &all_db);
        assert!(!a.captured);
    }

    #[test]
    fn alter_clauses_the_parser_refuses() {
        let mut t = Tables::default();
        apply(
            &mut t,
            "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(5)) CHARSET=latin1",
        );
        let a = apply(
            &mut t,
            "ALTER TABLE t ENGINE=InnoDB, ADD COLUMN c INT AFTER id",
        );
        assert!(a.failed.is_empty(), "{:?}", a.reason);
        assert_eq!(names(&t, "t"), ["1:id", "2:c", "3:v"]);
        let a = apply(
            &mut t,
            "ALTER ONLINE TABLE t ADD COLUMN IF NOT EXISTS c INT, ADD IF NOT EXISTS d INT",
        );
        assert!(a.failed.is_empty(), "{:?}", a.reason);
        assert_eq!(names(&t, "t"), ["1:id", "2:c", "3:v", "4:d"]);
        apply(
            &mut t,
            "ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        );
        assert_eq!(
            table(&t, "t").default_charset_name.as_deref(),
            Some("utf8mb4")
        );
        assert_eq!(
            table(&t, "t").columns[2].charset_name.as_deref(),
            Some("utf8mb4")
        );
        assert_eq!(table(&t, "t").columns[0].charset_name, None);
        let a = apply(
            &mut t,
            "ALTER TABLE t COMMENT = 'it''s', RENAME INDEX a TO b",
        );
        assert_eq!(a.changes.len(), 1);
        assert_eq!(table(&t, "t").comment.as_deref(), Some("it's"));
        let a = apply(&mut t, "ALTER TABLE t ADD COLUMN (p INT, q INT)");
        assert_eq!(a.failed.len(), 1, "not followed: reported");
    }

    #[test]
    fn table_options_with_or_without_spaces_around_the_equals_sign() {
        let charset = |sql: &str| {
            let mut t = Tables::default();
            apply(
                &mut t,
                "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(5)) CHARSET=latin1",
            );
            let a = apply(&mut t, sql);
            assert!(a.failed.is_empty(), "{sql}: {:?}", a.reason);
            assert_eq!(a.changes.len(), 1, "{sql}");
            assert_eq!(a.changes[0].kind, ChangeKind::Alter, "{sql}");
            let def = table(&t, "t").clone();
            assert_eq!(names(&t, "t"), ["1:id", "2:v"], "{sql}");
            (def.default_charset_name, def.comment)
        };
        for sep in ["=", " = ", " ", "= ", " ="] {
            for (option, want) in [
                ("CHARSET", "utf8mb4"),
                ("DEFAULT CHARSET", "utf8mb4"),
                ("CHARACTER SET", "utf8mb4"),
                ("DEFAULT CHARACTER SET", "utf8mb4"),
                ("charset", "utf8mb4"),
            ] {
                let sql = format!("ALTER TABLE t {option}{sep}utf8mb4");
                assert_eq!(charset(&sql).0.as_deref(), Some(want), "{sql}");
            }
            for option in ["COLLATE", "DEFAULT COLLATE"] {
                let sql = format!("ALTER TABLE t {option}{sep}utf8mb4_bin");
                assert_eq!(charset(&sql).0.as_deref(), Some("utf8mb4"), "{sql}");
            }
            let sql = format!("ALTER TABLE t ENGINE{sep}InnoDB");
            assert_eq!(charset(&sql).0.as_deref(), Some("latin1"), "{sql}");
            let sql = format!("ALTER TABLE t COMMENT{sep}'a = b, it''s'");
            assert_eq!(charset(&sql).1.as_deref(), Some("a = b, it's"), "{sql}");
        }
        // Quoted values, and several options in one clause (as mysqldump and tools write).
        assert_eq!(
            charset("ALTER TABLE t DEFAULT CHARSET='utf8mb4'")
                .0
                .as_deref(),
            Some("utf8mb4")
        );
        assert_eq!(
            charset("ALTER TABLE t ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin")
                .0
                .as_deref(),
            Some("utf8mb4")
        );
        assert_eq!(
            charset("ALTER TABLE t COLLATE=koi8r_bin, ROW_FORMAT=DYNAMIC")
                .0
                .as_deref(),
            Some("koi8r")
        );
        let (cs, comment) = charset("ALTER TABLE t COMMENT='x',CHARSET=utf8mb4");
        assert_eq!(
            (cs.as_deref(), comment.as_deref()),
            (Some("utf8mb4"), Some("x"))
        );
        // Options before a column clause, and MariaDB's WAIT n before the first clause.
        let mut t = Tables::default();
        apply(&mut t, "CREATE TABLE t (id INT PRIMARY KEY)");
        let a = apply(
            &mut t,
            "ALTER TABLE t ENGINE=InnoDB, DEFAULT CHARSET=utf8mb4, ADD COLUMN c VARCHAR(3)",
        );
        assert!(a.failed.is_empty(), "{:?}", a.reason);
        assert_eq!(names(&t, "t"), ["1:id", "2:c"]);
        assert_eq!(
            table(&t, "t").default_charset_name.as_deref(),
            Some("utf8mb4")
        );
        let a = apply(&mut t, "ALTER TABLE t WAIT 5 ADD COLUMN d INT");
        assert!(a.failed.is_empty(), "{:?}", a.reason);
        assert_eq!(names(&t, "t"), ["1:id", "2:c", "3:d"]);
        let a = apply(&mut t, "ALTER TABLE t CONVERT TO CHARACTER SET=latin1");
        assert!(a.failed.is_empty(), "{:?}", a.reason);
        assert_eq!(
            table(&t, "t").columns[1].charset_name.as_deref(),
            Some("latin1")
        );
        // An option without its value is not followed.
        let a = apply(&mut t, "ALTER TABLE t CHARSET=");
        assert_eq!(a.failed.len(), 1);
    }

    #[test]
    fn sql_tokens_keep_quotes_and_split_equals() {
        let text = "DEFAULT CHARSET=x COMMENT='a=b' `q=r`=(1, 2) z";
        let tokens: Vec<&str> = sql_tokens(text).iter().map(|&(a, b)| &text[a..b]).collect();
        assert_eq!(
            tokens,
            [
                "DEFAULT", "CHARSET", "=", "x", "COMMENT", "=", "'a=b'", "`q=r`", "=", "(1, 2)",
                "z"
            ]
        );
        assert_eq!(sql_string(r"'it''s \'x\''"), "it's 'x'");
        assert_eq!(sql_string("plain"), "plain");
    }

    #[test]
    fn failing_alter_that_renames_reports_both_names() {
        let only_t = |_: &str, t: &str| t == "t";
        for sql in [
            // Not parsable (ADD COLUMN with a list), renamed out of the captured tables.
            "ALTER TABLE t ADD COLUMN (p INT, q INT), RENAME TO archive_t",
            // Parsed, but not applicable.
            "ALTER TABLE t DROP COLUMN nope, RENAME TO archive_t",
            "ALTER TABLE t DROP COLUMN nope, RENAME archive_t",
        ] {
            let mut t = Tables::default();
            t.apply("d", "CREATE TABLE t (id INT)", &only_t, &all_db);
            let a = t.apply("d", sql, &only_t, &all_db);
            assert!(a.captured, "{sql}: the statement changes a captured table");
            assert_eq!(a.failed, vec![("d".to_owned(), "t".to_owned())], "{sql}");
            assert!(a.changes.is_empty());
            // Everything captured: both names are reported.
            let mut t = Tables::default();
            apply(&mut t, "CREATE TABLE t (id INT)");
            let a = apply(&mut t, sql);
            assert_eq!(
                a.failed,
                vec![
                    ("d".to_owned(), "t".to_owned()),
                    ("d".to_owned(), "archive_t".to_owned())
                ],
                "{sql}"
            );
        }
        // Renamed into the captured tables from one that is not.
        let only_u = |_: &str, t: &str| t == "u";
        let mut t = Tables::default();
        let a = t.apply(
            "d",
            "ALTER TABLE src ADD COLUMN (p INT), RENAME TO d.u",
            &only_u,
            &all_db,
        );
        assert_eq!(a.failed, vec![("d".to_owned(), "u".to_owned())]);
        // RENAME COLUMN / INDEX are no table renames.
        assert_eq!(
            mentioned_tables(
                "ALTER TABLE t ADD COLUMN (p INT), RENAME COLUMN a TO b",
                "d"
            ),
            vec![("d".to_owned(), "t".to_owned())]
        );
    }

    #[test]
    fn names_fold_under_lower_case_table_names() {
        // lower_case_table_names=0 (Linux default): names are case-sensitive.
        let mut t = Tables::default();
        apply(&mut t, "CREATE TABLE orders (id INT)");
        let a = apply(&mut t, "ALTER TABLE Orders ADD COLUMN x INT");
        assert!(a.changes.is_empty(), "Orders is another table");
        assert_eq!(t.key("D", "Orders"), ("D".to_owned(), "Orders".to_owned()));

        // 1 or 2: keys are lower-cased, and so is every name a statement uses.
        let mut t = Tables::default();
        t.tables
            .insert(("Shop".into(), "Orders".into()), TableDef::default());
        t.databases.insert("Shop".into(), "latin1".into());
        t.set_lower_case_names(true);
        assert_eq!(
            t.key("Shop", "ORDERS"),
            ("shop".to_owned(), "orders".to_owned())
        );
        assert!(t.tables.contains_key(&("shop".into(), "orders".into())));
        assert_eq!(t.databases.get("shop").map(String::as_str), Some("latin1"));
        let a = t.apply("SHOP", "ALTER TABLE Orders ADD COLUMN x INT", &all, &all_db);
        assert!(a.failed.is_empty(), "{:?}", a.reason);
        assert_eq!(a.changes[0].table, "orders");
        assert_eq!(a.changes[0].db, "shop");
        let a = t.apply(
            "x",
            "ALTER TABLE `SHOP`.`ORDERS` ADD COLUMN y INT",
            &all,
            &all_db,
        );
        assert!(a.failed.is_empty(), "{:?}", a.reason);
        assert_eq!(t.tables[&("shop".into(), "orders".into())].columns.len(), 2);
        t.apply("shop", "RENAME TABLE Orders TO Archive", &all, &all_db);
        assert!(t.tables.contains_key(&("shop".into(), "archive".into())));
        t.apply("shop", "CREATE TABLE Other LIKE ARCHIVE", &all, &all_db);
        assert!(t.tables.contains_key(&("shop".into(), "other".into())));
        let a = t.apply("shop", "DROP TABLE OTHER", &all, &all_db);
        assert_eq!(a.changes[0].kind, ChangeKind::Drop);
        // An unparsable statement names its table folded too.
        let a = t.apply("Shop", "ALTER TABLE ARCHIVE FROBNICATE", &all, &all_db);
        assert_eq!(a.failed, vec![("shop".to_owned(), "archive".to_owned())]);
        t.apply("shop", "DROP DATABASE SHOP", &all, &all_db);
        assert!(t.tables.is_empty() && t.databases.is_empty());
    }

    #[test]
    fn type_texts() {
        let t = parse_type("decimal(10,2) unsigned zerofill");
        assert_eq!(t.type_name(), "DECIMAL UNSIGNED ZEROFILL");
        assert_eq!((t.length(), t.scale()), (Some(10), Some(2)));
        let t = parse_type("set('a','b,c','d')");
        assert_eq!(t.length(), Some(5));
        assert_eq!(t.enum_values().map(|v| v.len()), Some(3));
        let t = parse_type("DOUBLE PRECISION");
        assert_eq!((t.base.as_str(), t.jdbc_type()), ("DOUBLE PRECISION", 8));
        assert_eq!(parse_type("int").length(), None);
        assert_eq!(parse_type("datetime(6)").jdbc_type(), 93);
    }

    #[test]
    fn information_schema_columns() {
        let c = info_column(
            &InfoColumn {
                name: "v".into(),
                column_type: "varchar(10)".into(),
                nullable: true,
                default: Some("'it''s'".into()),
                charset: Some("utf8mb4".into()),
                extra: String::new(),
                comment: String::new(),
            },
            true,
        );
        assert_eq!(c.default_value_expression.as_deref(), Some("it's"));
        assert_eq!((c.jdbc_type, c.length), (12, Some(10)));
        let c = info_column(
            &InfoColumn {
                name: "id".into(),
                column_type: "int(11)".into(),
                nullable: false,
                default: None,
                charset: None,
                extra: "auto_increment".into(),
                comment: "key".into(),
            },
            true,
        );
        assert!(c.auto_incremented && c.generated && !c.has_default_value);
        assert_eq!(c.comment.as_deref(), Some("key"));
    }

    #[test]
    fn tables_round_trip_through_offsets() {
        let mut t = Tables::default();
        t.databases.insert("d".into(), "utf8mb4".into());
        apply(
            &mut t,
            "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, e ENUM('x'), \
             v VARCHAR(3) NOT NULL DEFAULT '' COMMENT 'c', n DECIMAL(5,1) NULL) COMMENT 'tc'",
        );
        let (tables, dbs) = t.to_json();
        assert_eq!(Tables::from_json(&tables, Some(&dbs)), Some(t.clone()));
        let full = serde_json::to_string(&table(&t, "t"))
            .unwrap_or_default()
            .len();
        let stored = tables.to_string().len();
        assert!(stored * 2 < full, "stored {stored} bytes, full {full}");
    }
}
