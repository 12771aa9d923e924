//! Database dialects: connecting, listing tables, describing columns, running a query and
//! decoding its rows, and writing identifiers and timestamp literals in each server's SQL.

pub mod mysql;
pub mod postgres;

use tributary_runtime::model::{Row, time::civil_from_days};

use crate::config::{ConnectionUrl, DialectKind, NumericMapping};
use crate::error::JdbcError;
use crate::schema::JdbcColumn;

/// A table as Kafka Connect's JDBC source names it: catalog (database), schema, name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableRef {
    pub catalog: Option<String>,
    pub schema: Option<String>,
    pub name: String,
}

impl TableRef {
    /// `db.schema.table` (Postgres) or `db.table` (MySQL): the offset partition's `table`.
    pub fn fqn(&self) -> String {
        [
            self.catalog.as_deref(),
            self.schema.as_deref(),
            Some(self.name.as_str()),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(".")
    }

    /// Whether a `table.include.list` entry names this table: `name`, `schema.name` or the
    /// fully qualified name.
    pub fn matches(&self, entry: &str) -> bool {
        let fqn = self.fqn();
        entry == self.name
            || entry == fqn
            || fqn
                .strip_suffix(entry)
                .is_some_and(|rest| rest.ends_with('.') && entry.contains('.'))
    }
}

/// A column as described by the server, mapped to its record type.
#[derive(Debug, Clone)]
pub struct Described {
    pub column: JdbcColumn,
    pub auto_increment: bool,
    pub decoder: Decoder,
}

/// How one result column is decoded.
#[derive(Debug, Clone)]
pub enum Decoder {
    Postgres(tributary_postgres::schema::Kind),
    MySql(tributary_mysql_binlog::schema::ColumnPlan),
}

/// An open connection to one of the supported servers.
pub enum Connection {
    Postgres(postgres::PgConnection),
    MySql(mysql::MyConnection),
}

impl Connection {
    pub async fn open(url: &ConnectionUrl) -> Result<Connection, JdbcError> {
        Ok(match url.dialect {
            DialectKind::Postgres => Connection::Postgres(postgres::PgConnection::open(url).await?),
            DialectKind::MySql => Connection::MySql(mysql::MyConnection::open(url).await?),
        })
    }

    pub fn kind(&self) -> DialectKind {
        match self {
            Connection::Postgres(_) => DialectKind::Postgres,
            Connection::MySql(_) => DialectKind::MySql,
        }
    }

    /// Tables (and views when asked) the user can read.
    pub async fn tables(&mut self, types: &[String]) -> Result<Vec<TableRef>, JdbcError> {
        match self {
            Connection::Postgres(c) => c.tables(types).await,
            Connection::MySql(c) => c.tables(types).await,
        }
    }

    /// Columns of a table in ordinal order (empty when the table is gone).
    pub async fn describe(
        &mut self,
        table: &TableRef,
        mapping: NumericMapping,
    ) -> Result<Vec<Described>, JdbcError> {
        match self {
            Connection::Postgres(c) => c.describe(table, mapping).await,
            Connection::MySql(c) => c.describe(table, mapping).await,
        }
    }

    /// Columns of a custom query's result.
    pub async fn describe_query(
        &mut self,
        sql: &str,
        mapping: NumericMapping,
    ) -> Result<Vec<Described>, JdbcError> {
        match self {
            Connection::Postgres(c) => c.describe_query(sql, mapping).await,
            Connection::MySql(c) => c.describe_query(sql, mapping).await,
        }
    }

    /// The server's clock, epoch microseconds.
    pub async fn now_micros(&mut self) -> Result<i64, JdbcError> {
        match self {
            Connection::Postgres(c) => c.now_micros().await,
            Connection::MySql(c) => c.now_micros().await,
        }
    }

    /// Runs a query and decodes every row (values as the dialect reads them).
    pub async fn fetch(&mut self, sql: &str, decoders: &[Decoder]) -> Result<Vec<Row>, JdbcError> {
        match self {
            Connection::Postgres(c) => c.fetch(sql, decoders).await,
            Connection::MySql(c) => c.fetch(sql, decoders).await,
        }
    }

    pub async fn close(self) {
        if let Connection::MySql(c) = self {
            c.close().await;
        }
    }
}

/// Writes identifiers and literals of one dialect.
#[derive(Debug, Clone, Copy)]
pub struct Sql {
    pub kind: DialectKind,
    pub quote: bool,
}

impl Sql {
    pub fn ident(&self, name: &str) -> String {
        match (self.quote, self.kind) {
            (false, _) => name.to_owned(),
            (true, DialectKind::Postgres) => format!("\"{}\"", name.replace('"', "\"\"")),
            (true, DialectKind::MySql) => format!("`{}`", name.replace('`', "``")),
        }
    }

    pub fn table(&self, table: &TableRef) -> String {
        // Postgres cannot name another database; MySQL's catalog is the database.
        let parts: Vec<&str> = match self.kind {
            DialectKind::Postgres => [table.schema.as_deref(), Some(table.name.as_str())]
                .into_iter()
                .flatten()
                .collect(),
            DialectKind::MySql => [table.catalog.as_deref(), Some(table.name.as_str())]
                .into_iter()
                .flatten()
                .collect(),
        };
        parts
            .iter()
            .map(|p| self.ident(p))
            .collect::<Vec<_>>()
            .join(".")
    }

    /// A literal for comparing with timestamp columns. `epoch_us` is UTC; naive columns hold
    /// wall-clock times in `db.timezone` (`tz_offset_seconds`). Postgres reads the offset
    /// suffix for `timestamptz` and ignores it for `timestamp`, so one literal fits both;
    /// MySQL sessions run in UTC, so `TIMESTAMP` columns take the UTC wall clock.
    pub fn timestamp_literal(&self, epoch_us: i64, tz_offset_seconds: i32, naive: bool) -> String {
        match self.kind {
            DialectKind::Postgres => {
                let local = epoch_us + i64::from(tz_offset_seconds) * 1_000_000;
                let sign = if tz_offset_seconds < 0 { '-' } else { '+' };
                let off = tz_offset_seconds.unsigned_abs();
                format!(
                    "'{}{sign}{:02}:{:02}'",
                    wall_clock(local),
                    off / 3600,
                    off % 3600 / 60
                )
            }
            DialectKind::MySql => {
                let shift = if naive {
                    i64::from(tz_offset_seconds) * 1_000_000
                } else {
                    0
                };
                format!("'{}'", wall_clock(epoch_us + shift))
            }
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS.ffffff` of epoch microseconds.
pub fn wall_clock(us: i64) -> String {
    let days = us.div_euclid(86_400_000_000);
    let in_day = us.rem_euclid(86_400_000_000);
    let (y, m, d) = civil_from_days(days);
    let secs = in_day / 1_000_000;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:06}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
        in_day % 1_000_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_literals() {
        let t = TableRef {
            catalog: Some("mydb".into()),
            schema: Some("public".into()),
            name: "orders".into(),
        };
        assert_eq!(t.fqn(), "mydb.public.orders");
        assert!(
            t.matches("orders") && t.matches("public.orders") && t.matches("mydb.public.orders")
        );
        assert!(!t.matches("blic.orders") && !t.matches("order"));
        let pg = Sql {
            kind: DialectKind::Postgres,
            quote: true,
        };
        assert_eq!(pg.table(&t), "\"public\".\"orders\"");
        assert_eq!(
            pg.timestamp_literal(1_500_000, 3600, true),
            "'1970-01-01 01:00:01.500000+01:00'"
        );
        let my = Sql {
            kind: DialectKind::MySql,
            quote: true,
        };
        assert_eq!(my.ident("a`b"), "`a``b`");
        assert_eq!(
            my.timestamp_literal(-1, 0, true),
            "'1969-12-31 23:59:59.999999'"
        );
        assert_eq!(
            my.timestamp_literal(0, -3600, true),
            "'1969-12-31 23:00:00.000000'"
        );
        assert_eq!(
            my.timestamp_literal(0, -3600, false),
            "'1970-01-01 00:00:00.000000'"
        );
    }
}
