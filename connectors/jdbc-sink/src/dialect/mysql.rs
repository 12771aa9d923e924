//! MySQL and MariaDB: multi-row `INSERT ... VALUES (...), (...) ON DUPLICATE KEY UPDATE`
//! with bound parameters, chunked under the protocol's 65 535 placeholders per statement.
//! The session runs in UTC with strict SQL mode, so a value the column cannot hold is an
//! error (a poison row) instead of a silent truncation.

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Params, Value as MyValue};
use tributary_runtime::model::Value;
use tributary_runtime::model::time::civil_from_days;

use super::{Dialect, OFFSETS_TABLE, Target, type_params};
use crate::config::{Connection, InsertMode};
use crate::error::{DbError, DbErrorKind, from_mysql};
use crate::mapping::SqlType;
use crate::table::{Alteration, TableInfo, TableName, TargetColumn};

/// Placeholders allowed in one prepared statement.
const MAX_PLACEHOLDERS: usize = 65_535;

/// MySQL/MariaDB SQL text.
#[derive(Debug, Clone, Copy)]
pub struct MySqlDialect;

impl Dialect for MySqlDialect {
    fn quote(&self, ident: &str) -> String {
        format!("`{}`", ident.replace('`', "``"))
    }

    fn folds_to_lower(&self) -> bool {
        false
    }

    fn type_name(&self, ty: &SqlType, key: bool) -> String {
        match ty {
            SqlType::Bool => "boolean".into(),
            SqlType::Int16 => "smallint".into(),
            SqlType::Int32 => "int".into(),
            SqlType::Int64 => "bigint".into(),
            SqlType::Float32 => "float".into(),
            SqlType::Float64 => "double".into(),
            SqlType::Decimal {
                precision: Some(p),
                scale,
            } if *p <= 65 => format!("decimal({p},{})", scale.unwrap_or(0).min(30).min(*p)),
            SqlType::Decimal { scale, .. } => {
                format!("decimal(65,{})", scale.unwrap_or(30).min(30))
            }
            SqlType::Text if key => "varchar(255)".into(),
            SqlType::Text => "longtext".into(),
            SqlType::Bytes if key => "varbinary(255)".into(),
            SqlType::Bytes => "longblob".into(),
            SqlType::Date => "date".into(),
            SqlType::Time => "time(6)".into(),
            SqlType::TimeTz => "varchar(32)".into(),
            // Zoned timestamps are stored in UTC: TIMESTAMP stops at 2038.
            SqlType::Timestamp | SqlType::TimestampTz => "datetime(6)".into(),
            SqlType::Json | SqlType::Array(_) => "json".into(),
            SqlType::Uuid => "char(36)".into(),
            SqlType::Interval => "bigint".into(),
            SqlType::Other(name) => name.clone(),
        }
    }

    fn parse_type(&self, name: &str) -> SqlType {
        let lower = name.to_ascii_lowercase();
        let base = lower.split(['(', ' ']).next().unwrap_or(&lower);
        let unsigned = lower.contains("unsigned");
        match base {
            "tinyint" if lower.starts_with("tinyint(1)") => SqlType::Bool,
            "boolean" | "bool" => SqlType::Bool,
            "tinyint" => SqlType::Int16,
            "smallint" if unsigned => SqlType::Int32,
            "smallint" => SqlType::Int16,
            "mediumint" => SqlType::Int32,
            "int" | "integer" if unsigned => SqlType::Int64,
            "int" | "integer" => SqlType::Int32,
            "bigint" if unsigned => SqlType::Other(lower.clone()),
            "bigint" => SqlType::Int64,
            "float" => SqlType::Float32,
            "double" | "real" => SqlType::Float64,
            "decimal" | "numeric" => {
                let (precision, scale) = type_params(&lower);
                SqlType::Decimal { precision, scale }
            }
            "varchar" | "char" | "text" | "tinytext" | "mediumtext" | "longtext" | "enum"
            | "set" => {
                if lower == "char(36)" {
                    SqlType::Uuid
                } else {
                    SqlType::Text
                }
            }
            "binary" | "varbinary" | "blob" | "tinyblob" | "mediumblob" | "longblob" => {
                SqlType::Bytes
            }
            "date" => SqlType::Date,
            "time" => SqlType::Time,
            "datetime" | "timestamp" => SqlType::Timestamp,
            "json" => SqlType::Json,
            _ => SqlType::Other(lower.clone()),
        }
    }

    fn alter(
        &self,
        table: &TableName,
        alteration: &Alteration,
        current: Option<&TargetColumn>,
    ) -> String {
        let t = self.table(table);
        match alteration {
            Alteration::AddColumn(f) => format!(
                "ALTER TABLE {t} ADD COLUMN {} {}",
                self.quote(&f.name),
                self.type_name(&f.ty, false)
            ),
            Alteration::Widen {
                column,
                to,
                nullable,
            } => {
                let null = if *nullable { " NULL" } else { " NOT NULL" };
                format!(
                    "ALTER TABLE {t} MODIFY COLUMN {} {}{null}",
                    self.quote(column),
                    self.type_name(to, false)
                )
            }
            Alteration::DropNotNull { column } => format!(
                "ALTER TABLE {t} MODIFY COLUMN {} {} NULL",
                self.quote(column),
                current.map_or("longtext", |c| c.type_name.as_str())
            ),
        }
    }

    /// `DELETE FROM`: MySQL's `TRUNCATE` commits the transaction implicitly, which would
    /// break the all-or-nothing flush.
    fn truncate(&self, table: &TableName) -> String {
        format!("DELETE FROM {}", self.table(table))
    }

    fn offsets_table_ddl(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {OFFSETS_TABLE} (connector varchar(255) NOT NULL, \
             topic varchar(255) NOT NULL, `partition` int NOT NULL, next_offset bigint NOT NULL, \
             PRIMARY KEY (connector, topic, `partition`)) ENGINE=InnoDB"
        )
    }
}

impl MySqlDialect {
    /// The write statement for `rows` rows of one shape.
    pub fn write_sql(
        &self,
        table: &TableInfo,
        mode: InsertMode,
        columns: &[usize],
        key: &[usize],
        rows: usize,
    ) -> String {
        let t = self.table(&table.name);
        let name = |c: usize| self.quote(&table.columns[c].name);
        if mode == InsertMode::Update {
            let mut sets: Vec<String> = columns
                .iter()
                .filter(|c| !key.contains(c))
                .map(|&c| format!("{} = ?", name(c)))
                .collect();
            if sets.is_empty() {
                // Every column is a key column: nothing to change, but the statement must
                // still be valid (and binds only the key values).
                sets = key
                    .iter()
                    .map(|&c| format!("{n} = {n}", n = name(c)))
                    .collect();
            }
            let conds: Vec<String> = key.iter().map(|&c| format!("{} = ?", name(c))).collect();
            return format!(
                "UPDATE {t} SET {} WHERE {}",
                sets.join(", "),
                conds.join(" AND ")
            );
        }
        let names: Vec<String> = columns.iter().map(|&c| name(c)).collect();
        let tuple = format!("({})", vec!["?"; columns.len()].join(", "));
        let mut sql = format!(
            "INSERT INTO {t} ({}) VALUES {}",
            names.join(", "),
            vec![tuple.as_str(); rows].join(", ")
        );
        if mode == InsertMode::Upsert && !key.is_empty() {
            let mut sets: Vec<String> = columns
                .iter()
                .filter(|c| !key.contains(c))
                .map(|&c| format!("{n} = VALUES({n})", n = name(c)))
                .collect();
            if sets.is_empty() {
                sets = key
                    .iter()
                    .map(|&c| format!("{n} = {n}", n = name(c)))
                    .collect();
            }
            sql.push_str(&format!(" ON DUPLICATE KEY UPDATE {}", sets.join(", ")));
        }
        sql
    }

    pub fn delete_sql(&self, table: &TableInfo, key: &[usize], rows: usize) -> String {
        let names: Vec<String> = key
            .iter()
            .map(|&c| self.quote(&table.columns[c].name))
            .collect();
        let tuple = format!("({})", vec!["?"; key.len()].join(", "));
        format!(
            "DELETE FROM {} WHERE ({}) IN ({})",
            self.table(&table.name),
            names.join(", "),
            vec![tuple.as_str(); rows].join(", ")
        )
    }
}

/// A value as a MySQL parameter.
pub fn my_value(value: &Value) -> Result<MyValue, String> {
    Ok(match value {
        Value::Null => MyValue::NULL,
        Value::Unavailable => return Err("unavailable value reached the writer".into()),
        Value::Bool(b) => MyValue::Int(i64::from(*b)),
        Value::Int(v) => MyValue::Int(*v),
        Value::UInt(v) => MyValue::UInt(*v),
        Value::Decimal(d) => MyValue::Bytes(d.to_string().into_bytes()),
        Value::Float32(f) => MyValue::Float(*f),
        Value::Float64(f) => MyValue::Double(*f),
        Value::Text(s) | Value::Json(s) | Value::Enum(s) => MyValue::Bytes(s.as_bytes().to_vec()),
        Value::Bytes(b) | Value::Bits { bytes: b, .. } => MyValue::Bytes(b.to_vec()),
        Value::Date(days) => {
            let (y, m, d) = civil_from_days(i64::from(*days));
            let y = u16::try_from(y).map_err(|_| format!("year {y} is out of MySQL's range"))?;
            MyValue::Date(y, m as u8, d as u8, 0, 0, 0, 0)
        }
        Value::Time(micros) => {
            let neg = *micros < 0;
            let abs = micros.unsigned_abs();
            let secs = abs / 1_000_000;
            MyValue::Time(
                neg,
                (secs / 86_400) as u32,
                ((secs / 3600) % 24) as u8,
                ((secs / 60) % 60) as u8,
                (secs % 60) as u8,
                (abs % 1_000_000) as u32,
            )
        }
        Value::Timestamp(micros) | Value::TimestampTz(micros) => {
            let days = micros.div_euclid(86_400_000_000);
            let in_day = micros.rem_euclid(86_400_000_000);
            let (y, m, d) = civil_from_days(days);
            let y = u16::try_from(y).map_err(|_| format!("year {y} is out of MySQL's range"))?;
            let secs = in_day / 1_000_000;
            MyValue::Date(
                y,
                m as u8,
                d as u8,
                (secs / 3600) as u8,
                ((secs / 60) % 60) as u8,
                (secs % 60) as u8,
                (in_day % 1_000_000) as u32,
            )
        }
        Value::Interval {
            months: 0,
            days: 0,
            micros,
        } => MyValue::Int(*micros),
        Value::TimeTz { .. } | Value::Interval { .. } => MyValue::Bytes(
            super::postgres::pg_text(value)?
                .unwrap_or_default()
                .into_bytes(),
        ),
        Value::Uuid(bytes) => MyValue::Bytes(super::postgres::uuid_text(bytes).into_bytes()),
        Value::Set(members) => MyValue::Bytes(members.join(",").into_bytes()),
        Value::Array(items) => MyValue::Bytes(json_array(items)?.to_string().into_bytes()),
    })
}

fn json_array(items: &[Value]) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    items
        .iter()
        .map(|v| {
            Ok(match v {
                Value::Null => J::Null,
                Value::Bool(b) => J::from(*b),
                Value::Int(i) => J::from(*i),
                Value::UInt(u) => J::from(*u),
                Value::Float32(f) => J::from(f64::from(*f)),
                Value::Float64(f) => J::from(*f),
                Value::Json(s) => serde_json::from_str(s).unwrap_or_else(|_| J::from(s.as_str())),
                Value::Array(inner) => json_array(inner)?,
                other => J::from(super::postgres::pg_text(other)?.unwrap_or_default()),
            })
        })
        .collect::<Result<Vec<_>, String>>()
        .map(J::Array)
}

/// A MySQL/MariaDB connection running the sink's statements.
pub struct MySqlTarget {
    conn: Conn,
}

impl MySqlTarget {
    pub async fn connect(c: &Connection) -> Result<Self, DbError> {
        let opts = OptsBuilder::default()
            .ip_or_hostname(c.host.clone())
            .tcp_port(c.port)
            .user(Some(c.user.clone()))
            .pass(c.password.as_ref().map(|p| p.expose().to_owned()))
            .db_name(Some(c.database.clone()))
            .stmt_cache_size(64);
        let mut conn = Conn::new(opts).await.map_err(|e| {
            from_mysql(e).context(&format!(
                "cannot connect to mysql at {}:{}/{}",
                c.host, c.port, c.database
            ))
        })?;
        conn.query_drop(
            "SET SESSION time_zone = '+00:00', \
             sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,ERROR_FOR_DIVISION_BY_ZERO', \
             character_set_client = utf8mb4, character_set_connection = utf8mb4, \
             character_set_results = utf8mb4",
        )
        .await
        .map_err(from_mysql)?;
        Ok(MySqlTarget { conn })
    }

    async fn exec(&mut self, sql: &str, params: Vec<MyValue>) -> Result<(), DbError> {
        self.conn
            .exec_drop(sql, Params::Positional(params))
            .await
            .map_err(from_mysql)
    }
}

fn params_of<'a>(rows: impl Iterator<Item = &'a Vec<Value>>) -> Result<Vec<MyValue>, DbError> {
    let mut out = Vec::new();
    for row in rows {
        for v in row {
            out.push(my_value(v).map_err(|e| DbError::new(DbErrorKind::Data, e))?);
        }
    }
    Ok(out)
}

#[async_trait]
impl Target for MySqlTarget {
    fn dialect(&self) -> &dyn Dialect {
        &MySqlDialect
    }

    async fn execute(&mut self, sql: &str) -> Result<(), DbError> {
        self.conn.query_drop(sql).await.map_err(from_mysql)
    }

    async fn describe(&mut self, table: &TableName) -> Result<Option<TableInfo>, DbError> {
        let schema = table.schema.clone();
        let rows: Vec<(String, String, String, String)> = self
            .conn
            .exec(
                "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_KEY FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                (schema.clone(), table.name.clone()),
            )
            .await
            .map_err(from_mysql)?;
        if rows.is_empty() {
            return Ok(None);
        }
        let key: Vec<String> = self
            .conn
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
                 WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? \
                 AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
                (schema, table.name.clone()),
            )
            .await
            .map_err(from_mysql)?;
        let columns = rows
            .into_iter()
            .map(|(name, type_name, nullable, _)| TargetColumn {
                ty: MySqlDialect.parse_type(&type_name),
                name,
                type_name,
                nullable: nullable == "YES",
            })
            .collect();
        Ok(Some(TableInfo {
            name: table.clone(),
            columns,
            key,
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
        if mode == InsertMode::Update {
            let sql = MySqlDialect.write_sql(table, mode, columns, key, 1);
            for row in rows {
                // SET values first, then the key in WHERE.
                let mut ordered: Vec<Value> = columns
                    .iter()
                    .zip(row)
                    .filter(|(c, _)| !key.contains(c))
                    .map(|(_, v)| v.clone())
                    .collect();
                for k in key {
                    if let Some(pos) = columns.iter().position(|c| c == k) {
                        ordered.push(row[pos].clone());
                    }
                }
                let params = params_of(std::iter::once(&ordered))?;
                self.exec(&sql, params).await?;
            }
            return Ok(());
        }
        let per_statement = (MAX_PLACEHOLDERS / columns.len().max(1)).clamp(1, 10_000);
        for chunk in rows.chunks(per_statement) {
            let sql = MySqlDialect.write_sql(table, mode, columns, key, chunk.len());
            let params = params_of(chunk.iter())?;
            self.exec(&sql, params).await?;
        }
        Ok(())
    }

    async fn delete(
        &mut self,
        table: &TableInfo,
        key: &[usize],
        keys: &[Vec<Value>],
    ) -> Result<(), DbError> {
        let per_statement = (MAX_PLACEHOLDERS / key.len().max(1)).clamp(1, 10_000);
        for chunk in keys.chunks(per_statement) {
            let sql = MySqlDialect.delete_sql(table, key, chunk.len());
            let params = params_of(chunk.iter())?;
            self.exec(&sql, params).await?;
        }
        Ok(())
    }

    async fn load_offsets(&mut self, connector: &str) -> Result<Vec<(String, u32, u64)>, DbError> {
        let rows: Vec<(String, u32, u64)> = self
            .conn
            .exec(
                format!(
                    "SELECT topic, `partition`, next_offset FROM {OFFSETS_TABLE} WHERE connector = ?"
                ),
                (connector,),
            )
            .await
            .map_err(from_mysql)?;
        Ok(rows)
    }

    async fn store_offsets(
        &mut self,
        connector: &str,
        offsets: &[(String, u32, u64)],
    ) -> Result<(), DbError> {
        let sql = format!(
            "INSERT INTO {OFFSETS_TABLE} (connector, topic, `partition`, next_offset) VALUES (?, ?, ?, ?) \
             ON DUPLICATE KEY UPDATE next_offset = VALUES(next_offset)"
        );
        for (topic, partition, offset) in offsets {
            self.conn
                .exec_drop(&sql, (connector, topic, partition, offset))
                .await
                .map_err(from_mysql)?;
        }
        Ok(())
    }

    async fn close(self: Box<Self>) {
        let _ = self.conn.disconnect().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_row_upsert_and_delete() {
        let col = |name: &str| TargetColumn {
            name: name.into(),
            type_name: "int".into(),
            ty: SqlType::Int32,
            nullable: false,
        };
        let table = TableInfo {
            name: TableName {
                schema: Some("db".into()),
                name: "t".into(),
            },
            columns: vec![col("id"), col("v")],
            key: vec!["id".into()],
        };
        assert_eq!(
            MySqlDialect.write_sql(&table, InsertMode::Upsert, &[0, 1], &[0], 2),
            "INSERT INTO `db`.`t` (`id`, `v`) VALUES (?, ?), (?, ?) ON DUPLICATE KEY UPDATE `v` = VALUES(`v`)"
        );
        assert_eq!(
            MySqlDialect.delete_sql(&table, &[0], 2),
            "DELETE FROM `db`.`t` WHERE (`id`) IN ((?), (?))"
        );
        assert_eq!(
            MySqlDialect.write_sql(&table, InsertMode::Update, &[0, 1], &[0], 1),
            "UPDATE `db`.`t` SET `v` = ? WHERE `id` = ?"
        );
        // A table whose only columns are its key: a valid no-op update.
        assert_eq!(
            MySqlDialect.write_sql(&table, InsertMode::Update, &[0], &[0], 1),
            "UPDATE `db`.`t` SET `id` = `id` WHERE `id` = ?"
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
            SqlType::Timestamp,
            SqlType::Json,
            SqlType::Uuid,
            SqlType::Bytes,
            SqlType::Text,
            SqlType::Bool,
        ] {
            assert_eq!(
                MySqlDialect.parse_type(&MySqlDialect.type_name(&ty, false)),
                ty
            );
        }
        assert_eq!(MySqlDialect.parse_type("tinyint(1)"), SqlType::Bool);
        assert_eq!(MySqlDialect.parse_type("int(11)"), SqlType::Int32);
    }

    #[test]
    fn values_bind_as_mysql_types() {
        assert_eq!(
            my_value(&Value::Timestamp(86_400_000_001)).expect("ts"),
            MyValue::Date(1970, 1, 2, 0, 0, 0, 1)
        );
        assert_eq!(
            my_value(&Value::Time(-3_723_000_004)).expect("time"),
            MyValue::Time(true, 0, 1, 2, 3, 4)
        );
        assert_eq!(
            my_value(&Value::Array(vec![Value::Int(1), Value::Null])).expect("array"),
            MyValue::Bytes(b"[1,null]".to_vec())
        );
    }
}
