//! PostgreSQL: one statement per batch and shape. Every column travels as a `text[]`
//! parameter and is cast to the column's own type inside
//! `INSERT ... SELECT ... FROM UNNEST($1::text[], ...) ON CONFLICT (key) DO UPDATE`, so a
//! batch of 10 000 rows is one round trip whatever the column types are.

use std::collections::HashMap;

use async_trait::async_trait;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Statement};
use tributary_runtime::model::Value;
use tributary_runtime::model::time::{civil_from_days, format_date, format_time_of_day};

use super::{Dialect, OFFSETS_TABLE, Target, type_params};
use crate::config::{Connection, InsertMode};
use crate::error::{DbError, DbErrorKind, from_postgres};
use crate::mapping::SqlType;
use crate::table::{Alteration, TableInfo, TableName, TargetColumn};

/// PostgreSQL SQL text.
#[derive(Debug, Clone, Copy)]
pub struct PostgresDialect;

impl Dialect for PostgresDialect {
    fn quote(&self, ident: &str) -> String {
        format!("\"{}\"", ident.replace('"', "\"\""))
    }

    fn folds_to_lower(&self) -> bool {
        true
    }

    fn type_name(&self, ty: &SqlType, _key: bool) -> String {
        match ty {
            SqlType::Bool => "boolean".into(),
            SqlType::Int16 => "smallint".into(),
            SqlType::Int32 => "integer".into(),
            SqlType::Int64 => "bigint".into(),
            SqlType::Float32 => "real".into(),
            SqlType::Float64 => "double precision".into(),
            SqlType::Decimal {
                precision: Some(p),
                scale,
            } if *p <= 1000 => format!("numeric({p},{})", scale.unwrap_or(0).min(*p)),
            SqlType::Decimal { .. } => "numeric".into(),
            SqlType::Text => "text".into(),
            SqlType::Bytes => "bytea".into(),
            SqlType::Date => "date".into(),
            SqlType::Time => "time without time zone".into(),
            SqlType::TimeTz => "time with time zone".into(),
            SqlType::Timestamp => "timestamp without time zone".into(),
            SqlType::TimestampTz => "timestamp with time zone".into(),
            SqlType::Json => "jsonb".into(),
            SqlType::Uuid => "uuid".into(),
            SqlType::Interval => "interval".into(),
            SqlType::Array(item) => format!("{}[]", self.type_name(item, false)),
            SqlType::Other(name) => name.clone(),
        }
    }

    fn parse_type(&self, name: &str) -> SqlType {
        if let Some(item) = name.strip_suffix("[]") {
            return SqlType::Array(Box::new(self.parse_type(item)));
        }
        let base = name.split('(').next().unwrap_or(name).trim();
        match base {
            "boolean" => SqlType::Bool,
            "smallint" => SqlType::Int16,
            "integer" => SqlType::Int32,
            "bigint" => SqlType::Int64,
            "real" => SqlType::Float32,
            "double precision" => SqlType::Float64,
            "numeric" => {
                let (precision, scale) = type_params(name);
                SqlType::Decimal { precision, scale }
            }
            "text" | "character varying" | "character" => SqlType::Text,
            "bytea" => SqlType::Bytes,
            "date" => SqlType::Date,
            "time without time zone" => SqlType::Time,
            "time with time zone" => SqlType::TimeTz,
            "timestamp without time zone" => SqlType::Timestamp,
            "timestamp with time zone" => SqlType::TimestampTz,
            "jsonb" | "json" => SqlType::Json,
            "uuid" => SqlType::Uuid,
            "interval" => SqlType::Interval,
            _ => SqlType::Other(name.to_owned()),
        }
    }

    fn alter(
        &self,
        table: &TableName,
        alteration: &Alteration,
        _current: Option<&TargetColumn>,
    ) -> String {
        let t = self.table(table);
        match alteration {
            Alteration::AddColumn(f) => format!(
                "ALTER TABLE {t} ADD COLUMN IF NOT EXISTS {} {}",
                self.quote(&f.name),
                self.type_name(&f.ty, false)
            ),
            Alteration::Widen {
                column,
                to,
                nullable,
            } => {
                let c = self.quote(column);
                let mut sql = format!(
                    "ALTER TABLE {t} ALTER COLUMN {c} TYPE {}",
                    self.type_name(to, false)
                );
                if *nullable {
                    sql.push_str(&format!(", ALTER COLUMN {c} DROP NOT NULL"));
                }
                sql
            }
            Alteration::DropNotNull { column } => format!(
                "ALTER TABLE {t} ALTER COLUMN {} DROP NOT NULL",
                self.quote(column)
            ),
        }
    }

    fn offsets_table_ddl(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {OFFSETS_TABLE} (connector text NOT NULL, topic text NOT NULL, \
             \"partition\" integer NOT NULL, next_offset bigint NOT NULL, \
             PRIMARY KEY (connector, topic, \"partition\"))"
        )
    }
}

impl PostgresDialect {
    /// `UNNEST($1::text[], ...) AS u(v0, ...)` over `n` columns.
    fn unnest(n: usize) -> String {
        let params: Vec<String> = (1..=n).map(|i| format!("${i}::text[]")).collect();
        let aliases: Vec<String> = (0..n).map(|i| format!("v{i}")).collect();
        format!("UNNEST({}) AS u({})", params.join(", "), aliases.join(", "))
    }

    /// The write statement for a batch of one shape.
    pub fn write_sql(
        &self,
        table: &TableInfo,
        mode: InsertMode,
        columns: &[usize],
        key: &[usize],
    ) -> String {
        let t = self.table(&table.name);
        let col = |i: usize| &table.columns[i];
        let pos = |c: usize| columns.iter().position(|&x| x == c).unwrap_or(0);
        let cast = |c: usize| format!("u.v{}::{}", pos(c), col(c).type_name);
        match mode {
            InsertMode::Update => {
                let mut sets: Vec<String> = columns
                    .iter()
                    .filter(|c| !key.contains(c))
                    .map(|&c| format!("{} = {}", self.quote(&col(c).name), cast(c)))
                    .collect();
                if sets.is_empty() {
                    // Every column is a key column: a valid statement that changes nothing.
                    sets = key
                        .iter()
                        .map(|&c| {
                            let n = self.quote(&col(c).name);
                            format!("{n} = t.{n}")
                        })
                        .collect();
                }
                let conds: Vec<String> = key
                    .iter()
                    .map(|&c| format!("t.{} = {}", self.quote(&col(c).name), cast(c)))
                    .collect();
                format!(
                    "UPDATE {t} AS t SET {} FROM {} WHERE {}",
                    sets.join(", "),
                    Self::unnest(columns.len()),
                    conds.join(" AND ")
                )
            }
            InsertMode::Insert | InsertMode::Upsert => {
                let names: Vec<String> =
                    columns.iter().map(|&c| self.quote(&col(c).name)).collect();
                let casts: Vec<String> = columns.iter().map(|&c| cast(c)).collect();
                let mut sql = format!(
                    "INSERT INTO {t} ({}) SELECT {} FROM {}",
                    names.join(", "),
                    casts.join(", "),
                    Self::unnest(columns.len())
                );
                if mode == InsertMode::Upsert && !key.is_empty() {
                    let keys: Vec<String> = key.iter().map(|&c| self.quote(&col(c).name)).collect();
                    let sets: Vec<String> = columns
                        .iter()
                        .filter(|c| !key.contains(c))
                        .map(|&c| {
                            let n = self.quote(&col(c).name);
                            format!("{n} = EXCLUDED.{n}")
                        })
                        .collect();
                    if sets.is_empty() {
                        sql.push_str(&format!(" ON CONFLICT ({}) DO NOTHING", keys.join(", ")));
                    } else {
                        sql.push_str(&format!(
                            " ON CONFLICT ({}) DO UPDATE SET {}",
                            keys.join(", "),
                            sets.join(", ")
                        ));
                    }
                }
                sql
            }
        }
    }

    /// The delete statement for a batch of keys.
    pub fn delete_sql(&self, table: &TableInfo, key: &[usize]) -> String {
        let conds: Vec<String> = key
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let column = &table.columns[c];
                format!(
                    "t.{} = u.v{i}::{}",
                    self.quote(&column.name),
                    column.type_name
                )
            })
            .collect();
        format!(
            "DELETE FROM {} AS t USING {} WHERE {}",
            self.table(&table.name),
            Self::unnest(key.len()),
            conds.join(" AND ")
        )
    }
}

/// A value as Postgres text input; `None` is NULL.
pub fn pg_text(value: &Value) -> Result<Option<String>, String> {
    Ok(Some(match value {
        Value::Null => return Ok(None),
        Value::Unavailable => return Err("unavailable value reached the writer".into()),
        Value::Bool(b) => (if *b { "t" } else { "f" }).into(),
        Value::Int(v) => v.to_string(),
        Value::UInt(v) => v.to_string(),
        Value::Decimal(d) => d.to_string(),
        Value::Float32(f) => float_text(f64::from(*f)),
        Value::Float64(f) => float_text(*f),
        Value::Text(s) | Value::Json(s) | Value::Enum(s) => s.clone(),
        Value::Bytes(b) | Value::Bits { bytes: b, .. } => {
            let mut s = String::with_capacity(2 + b.len() * 2);
            s.push_str("\\x");
            for byte in b.iter() {
                s.push_str(&format!("{byte:02x}"));
            }
            s
        }
        Value::Date(days) => date_text(i64::from(*days)),
        Value::Time(micros) => format_time_of_day(*micros),
        Value::TimeTz {
            micros,
            offset_seconds,
        } => format!(
            "{}{}",
            format_time_of_day(*micros),
            offset_text(*offset_seconds)
        ),
        Value::Timestamp(micros) => timestamp_text(*micros),
        Value::TimestampTz(micros) => format!("{}+00", timestamp_text(*micros)),
        Value::Interval {
            months,
            days,
            micros,
        } => format!("{months} mons {days} days {micros} microseconds"),
        Value::Uuid(bytes) => uuid_text(bytes),
        Value::Set(members) => members.join(","),
        Value::Array(items) => array_literal(items)?,
    }))
}

fn float_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        (if f > 0.0 { "Infinity" } else { "-Infinity" }).into()
    } else {
        f.to_string()
    }
}

fn date_text(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    if y <= 0 {
        // Postgres spells years before 1 AD with BC (year 0 is 1 BC).
        format!("{:04}-{m:02}-{d:02} BC", 1 - y)
    } else {
        format_date(y, m, d)
    }
}

fn timestamp_text(micros: i64) -> String {
    let days = micros.div_euclid(86_400_000_000);
    let in_day = micros.rem_euclid(86_400_000_000);
    let date = date_text(days);
    match date.strip_suffix(" BC") {
        Some(d) => format!("{d} {} BC", format_time_of_day(in_day)),
        None => format!("{date} {}", format_time_of_day(in_day)),
    }
}

fn offset_text(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let s = seconds.unsigned_abs();
    format!("{sign}{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

/// Hyphenated lower-case UUID text.
pub fn uuid_text(bytes: &[u8; 16]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A Postgres array literal: `{"a","b",NULL}`.
fn array_literal(items: &[Value]) -> Result<String, String> {
    let mut out = String::from("{");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match item {
            Value::Array(inner) => out.push_str(&array_literal(inner)?),
            other => match pg_text(other)? {
                None => out.push_str("NULL"),
                Some(text) => {
                    out.push('"');
                    for c in text.chars() {
                        if c == '"' || c == '\\' {
                            out.push('\\');
                        }
                        out.push(c);
                    }
                    out.push('"');
                }
            },
        }
    }
    out.push('}');
    Ok(out)
}

/// A Postgres connection running the sink's statements.
pub struct PostgresTarget {
    client: Client,
    schema: Option<String>,
    statements: HashMap<String, Statement>,
}

impl PostgresTarget {
    pub async fn connect(c: &Connection) -> Result<Self, DbError> {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&c.host)
            .port(c.port)
            .user(&c.user)
            .dbname(&c.database)
            .application_name("tributary-jdbc-sink")
            .connect_timeout(std::time::Duration::from_secs(10));
        if let Some(pw) = &c.password {
            config.password(pw.expose());
        }
        let (client, connection) = config.connect(NoTls).await.map_err(|e| {
            from_postgres(e).context(&format!(
                "cannot connect to postgres at {}:{}/{}",
                c.host, c.port, c.database
            ))
        })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "jdbc sink postgres connection ended");
            }
        });
        let mut target = PostgresTarget {
            client,
            schema: c.schema.clone(),
            statements: HashMap::new(),
        };
        let mut setup = String::from("SET TIME ZONE 'UTC'");
        if let Some(schema) = &c.schema {
            setup.push_str(&format!(
                "; SET search_path TO {}",
                PostgresDialect.quote(schema)
            ));
        }
        target.execute(&setup).await?;
        Ok(target)
    }

    async fn statement(&mut self, sql: &str) -> Result<Statement, DbError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let stmt = self.client.prepare(sql).await.map_err(from_postgres)?;
        if self.statements.len() > 256 {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), stmt.clone());
        Ok(stmt)
    }

    async fn run_columns(
        &mut self,
        sql: &str,
        columns: Vec<Vec<Option<String>>>,
    ) -> Result<(), DbError> {
        let stmt = self.statement(sql).await?;
        let params: Vec<&(dyn ToSql + Sync)> =
            columns.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
        self.client
            .execute(&stmt, &params)
            .await
            .map_err(from_postgres)?;
        Ok(())
    }
}

/// Column-major text arrays of `rows`.
fn text_columns(width: usize, rows: &[Vec<Value>]) -> Result<Vec<Vec<Option<String>>>, DbError> {
    let mut columns: Vec<Vec<Option<String>>> =
        (0..width).map(|_| Vec::with_capacity(rows.len())).collect();
    for row in rows {
        for (i, v) in row.iter().enumerate().take(width) {
            columns[i].push(pg_text(v).map_err(|e| DbError::new(DbErrorKind::Data, e))?);
        }
    }
    Ok(columns)
}

#[async_trait]
impl Target for PostgresTarget {
    fn dialect(&self) -> &dyn Dialect {
        &PostgresDialect
    }

    async fn execute(&mut self, sql: &str) -> Result<(), DbError> {
        self.client.batch_execute(sql).await.map_err(from_postgres)
    }

    async fn describe(&mut self, table: &TableName) -> Result<Option<TableInfo>, DbError> {
        let schema = table.schema.clone().or_else(|| self.schema.clone());
        let rows = self
            .client
            .query(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull, \
                 (SELECT array_position(i.indkey::int2[], a.attnum) FROM pg_index i \
                  WHERE i.indrelid = c.oid AND i.indisprimary), format_type(a.atttypid, NULL) \
                 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relname = $1 AND n.nspname = COALESCE($2::text, current_schema()) \
                 AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum",
                &[&table.name, &schema],
            )
            .await
            .map_err(from_postgres)?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut columns = Vec::new();
        let mut key: Vec<(i32, String)> = Vec::new();
        for row in rows {
            let name: String = row.try_get(0).map_err(from_postgres)?;
            let type_name: String = row.try_get(1).map_err(from_postgres)?;
            let nullable: bool = row.try_get(2).map_err(from_postgres)?;
            let key_pos: Option<i32> = row.try_get(3).map_err(from_postgres)?;
            // Casts use the type without its modifier: an explicit cast to varchar(5)
            // would truncate silently, the assignment to the column checks the length.
            let cast_type: String = row.try_get(4).map_err(from_postgres)?;
            if let Some(p) = key_pos {
                key.push((p, name.clone()));
            }
            columns.push(TargetColumn {
                ty: PostgresDialect.parse_type(&type_name),
                name,
                type_name: cast_type,
                nullable,
            });
        }
        key.sort();
        Ok(Some(TableInfo {
            name: table.clone(),
            columns,
            key: key.into_iter().map(|(_, n)| n).collect(),
        }))
    }

    async fn write(
        &mut self,
        table: &TableInfo,
        mode: InsertMode,
        columns: &[usize],
        key: &[usize],
        rows: &[Vec<Value>],
    ) -> Result<(), DbError> {
        if rows.is_empty() {
            return Ok(());
        }
        let sql = PostgresDialect.write_sql(table, mode, columns, key);
        let data = text_columns(columns.len(), rows)?;
        self.run_columns(&sql, data).await
    }

    async fn delete(
        &mut self,
        table: &TableInfo,
        key: &[usize],
        keys: &[Vec<Value>],
    ) -> Result<(), DbError> {
        if keys.is_empty() {
            return Ok(());
        }
        let sql = PostgresDialect.delete_sql(table, key);
        let data = text_columns(key.len(), keys)?;
        self.run_columns(&sql, data).await
    }

    async fn load_offsets(&mut self, connector: &str) -> Result<Vec<(String, u32, u64)>, DbError> {
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT topic, \"partition\", next_offset FROM {OFFSETS_TABLE} WHERE connector = $1"
                ),
                &[&connector],
            )
            .await
            .map_err(from_postgres)?;
        let mut out = Vec::new();
        for row in rows {
            let topic: String = row.try_get(0).map_err(from_postgres)?;
            let partition: i32 = row.try_get(1).map_err(from_postgres)?;
            let offset: i64 = row.try_get(2).map_err(from_postgres)?;
            out.push((topic, partition as u32, offset as u64));
        }
        Ok(out)
    }

    async fn store_offsets(
        &mut self,
        connector: &str,
        offsets: &[(String, u32, u64)],
    ) -> Result<(), DbError> {
        let sql = format!(
            "INSERT INTO {OFFSETS_TABLE} (connector, topic, \"partition\", next_offset) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (connector, topic, \"partition\") \
             DO UPDATE SET next_offset = EXCLUDED.next_offset"
        );
        let stmt = self.statement(&sql).await?;
        for (topic, partition, offset) in offsets {
            let partition = *partition as i32;
            let offset = *offset as i64;
            self.client
                .execute(&stmt, &[&connector, topic, &partition, &offset])
                .await
                .map_err(from_postgres)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_runtime::model::Decimal;

    fn table() -> TableInfo {
        let col = |name: &str, type_name: &str| TargetColumn {
            name: name.into(),
            type_name: type_name.into(),
            ty: PostgresDialect.parse_type(type_name),
            nullable: true,
        };
        TableInfo {
            name: TableName {
                schema: None,
                name: "orders".into(),
            },
            columns: vec![
                col("id", "bigint"),
                col("amount", "numeric(10,2)"),
                col("note", "text"),
            ],
            key: vec!["id".into()],
        }
    }

    #[test]
    fn upsert_uses_unnest_and_on_conflict() {
        let sql = PostgresDialect.write_sql(&table(), InsertMode::Upsert, &[0, 2], &[0]);
        assert_eq!(
            sql,
            "INSERT INTO \"orders\" (\"id\", \"note\") SELECT u.v0::bigint, u.v1::text \
             FROM UNNEST($1::text[], $2::text[]) AS u(v0, v1) \
             ON CONFLICT (\"id\") DO UPDATE SET \"note\" = EXCLUDED.\"note\""
        );
        let del = PostgresDialect.delete_sql(&table(), &[0]);
        assert_eq!(
            del,
            "DELETE FROM \"orders\" AS t USING UNNEST($1::text[]) AS u(v0) WHERE t.\"id\" = u.v0::bigint"
        );
        let upd = PostgresDialect.write_sql(&table(), InsertMode::Update, &[0, 1], &[0]);
        assert!(
            upd.starts_with("UPDATE \"orders\" AS t SET \"amount\" = u.v1::numeric(10,2)"),
            "{upd}"
        );
        // Only key columns: a valid no-op update.
        let upd = PostgresDialect.write_sql(&table(), InsertMode::Update, &[0], &[0]);
        assert_eq!(
            upd,
            "UPDATE \"orders\" AS t SET \"id\" = t.\"id\" FROM UNNEST($1::text[]) AS u(v0) \
             WHERE t.\"id\" = u.v0::bigint"
        );
    }

    #[test]
    fn types_round_trip_through_their_names() {
        for ty in [
            SqlType::Int64,
            SqlType::Decimal {
                precision: Some(10),
                scale: Some(2),
            },
            SqlType::Decimal {
                precision: None,
                scale: None,
            },
            SqlType::TimestampTz,
            SqlType::Timestamp,
            SqlType::Json,
            SqlType::Array(Box::new(SqlType::Int32)),
            SqlType::Uuid,
            SqlType::Bytes,
        ] {
            assert_eq!(
                PostgresDialect.parse_type(&PostgresDialect.type_name(&ty, false)),
                ty
            );
        }
    }

    #[test]
    fn text_forms() {
        let t = |v: Value| pg_text(&v).expect("text");
        assert_eq!(t(Value::Null), None);
        assert_eq!(
            t(Value::Bytes(bytes::Bytes::from_static(&[0, 255]))).as_deref(),
            Some("\\x00ff")
        );
        assert_eq!(
            t(Value::Timestamp(1_000_001)).as_deref(),
            Some("1970-01-01 00:00:01.000001")
        );
        assert_eq!(
            t(Value::TimestampTz(0)).as_deref(),
            Some("1970-01-01 00:00:00+00")
        );
        assert_eq!(t(Value::Date(-719_163)).as_deref(), Some("0001-12-31 BC"));
        assert_eq!(
            t(Value::Decimal(Decimal::parse("-12.50").expect("dec"))).as_deref(),
            Some("-12.50")
        );
        assert_eq!(
            t(Value::Array(vec![Value::Text("a\"b".into()), Value::Null])).as_deref(),
            Some("{\"a\\\"b\",NULL}")
        );
        assert_eq!(
            t(Value::Uuid([0x12; 16])).as_deref(),
            Some("12121212-1212-1212-1212-121212121212")
        );
        assert!(pg_text(&Value::Unavailable).is_err());
    }
}
