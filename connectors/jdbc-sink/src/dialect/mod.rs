//! What a target database must provide: SQL text for the sink's statements ([`Dialect`],
//! pure) and a connection that runs them with bound values ([`Target`]). Postgres and
//! MySQL/MariaDB implement both; another database implements the two traits.

pub mod mysql;
pub mod postgres;

use async_trait::async_trait;
use tributary_runtime::model::Value;

use crate::config::{Connection, DialectKind, InsertMode};
use crate::error::DbError;
use crate::mapping::{FieldSpec, SqlType};
use crate::table::{Alteration, TableInfo, TableName, TargetColumn};

/// The table where `exactly.once` keeps consumed offsets.
pub const OFFSETS_TABLE: &str = "__tributary_sink_offsets";

/// SQL text of one database family. Pure: no I/O.
pub trait Dialect: Send + Sync {
    /// A quoted identifier.
    fn quote(&self, ident: &str) -> String;

    /// Whether unquoted identifiers fold to lower case (Postgres).
    fn folds_to_lower(&self) -> bool;

    /// A possibly qualified, quoted table name.
    fn table(&self, name: &TableName) -> String {
        match &name.schema {
            Some(schema) => format!("{}.{}", self.quote(schema), self.quote(&name.name)),
            None => self.quote(&name.name),
        }
    }

    /// The column type for `ty`; `key` columns need indexable types (MySQL).
    fn type_name(&self, ty: &SqlType, key: bool) -> String;

    /// The sink's view of a column type as the database spells it.
    fn parse_type(&self, name: &str) -> SqlType;

    /// `CREATE TABLE` with the primary key.
    fn create_table(&self, table: &TableName, fields: &[FieldSpec], key: &[String]) -> String {
        let mut cols: Vec<String> = fields
            .iter()
            .map(|f| {
                let is_key = key.contains(&f.name);
                let null = if f.optional && !is_key {
                    ""
                } else {
                    " NOT NULL"
                };
                format!(
                    "{} {}{null}",
                    self.quote(&f.name),
                    self.type_name(&f.ty, is_key)
                )
            })
            .collect();
        if !key.is_empty() {
            let key: Vec<String> = key.iter().map(|k| self.quote(k)).collect();
            cols.push(format!("PRIMARY KEY ({})", key.join(", ")));
        }
        format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            self.table(table),
            cols.join(", ")
        )
    }

    /// One `ALTER TABLE`; `current` is the existing column for widen and drop-not-null.
    fn alter(
        &self,
        table: &TableName,
        alteration: &Alteration,
        current: Option<&TargetColumn>,
    ) -> String;

    fn truncate(&self, table: &TableName) -> String {
        format!("TRUNCATE TABLE {}", self.table(table))
    }

    /// `CREATE TABLE IF NOT EXISTS` of [`OFFSETS_TABLE`].
    fn offsets_table_ddl(&self) -> String;
}

/// A connection to the target that runs the sink's statements.
#[async_trait]
pub trait Target: Send {
    fn dialect(&self) -> &dyn Dialect;

    /// Runs a statement without parameters (DDL, BEGIN, COMMIT, SAVEPOINT ...).
    async fn execute(&mut self, sql: &str) -> Result<(), DbError>;

    /// The table's columns and primary key, or `None` when it does not exist.
    async fn describe(&mut self, table: &TableName) -> Result<Option<TableInfo>, DbError>;

    /// Inserts, upserts or updates `rows` (values in the order of `columns`, indexes into
    /// `table.columns`) keyed by `key` (indexes into `table.columns`).
    async fn write(
        &mut self,
        table: &TableInfo,
        mode: InsertMode,
        columns: &[usize],
        key: &[usize],
        rows: &[Vec<Value>],
    ) -> Result<(), DbError>;

    /// Deletes the rows with these keys (values in the order of `key`).
    async fn delete(
        &mut self,
        table: &TableInfo,
        key: &[usize],
        keys: &[Vec<Value>],
    ) -> Result<(), DbError>;

    /// `exactly.once`: the stored next offsets of `connector`: (topic, partition, offset).
    async fn load_offsets(&mut self, connector: &str) -> Result<Vec<(String, u32, u64)>, DbError>;

    /// `exactly.once`: stores next offsets (inside the caller's transaction).
    async fn store_offsets(
        &mut self,
        connector: &str,
        offsets: &[(String, u32, u64)],
    ) -> Result<(), DbError>;

    async fn close(self: Box<Self>) {}
}

/// Connects to the target named by `connection`.
pub async fn connect(connection: &Connection) -> Result<Box<dyn Target>, DbError> {
    match connection.dialect {
        DialectKind::Postgres => Ok(Box::new(
            postgres::PostgresTarget::connect(connection).await?,
        )),
        DialectKind::MySql => Ok(Box::new(mysql::MySqlTarget::connect(connection).await?)),
    }
}

/// The dialect of `kind`, without connecting.
pub fn dialect(kind: DialectKind) -> &'static dyn Dialect {
    match kind {
        DialectKind::Postgres => &postgres::PostgresDialect,
        DialectKind::MySql => &mysql::MySqlDialect,
    }
}

/// `(precision, scale)` inside `name(p,s)`.
pub(crate) fn type_params(name: &str) -> (Option<u32>, Option<u32>) {
    let Some(inner) = name
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(inner, _)| inner)
    else {
        return (None, None);
    };
    let mut parts = inner.split(',').map(|p| p.trim().parse::<u32>().ok());
    (parts.next().flatten(), parts.next().flatten())
}
