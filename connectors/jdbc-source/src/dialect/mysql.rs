//! MySQL and MariaDB: catalog lookups in `information_schema`, row reads over the binary
//! (prepared statement) protocol, decoded by the MySQL CDC connector's value code. Sessions
//! run with `time_zone='+00:00'` so `TIMESTAMP` columns read as UTC.

use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::prelude::Queryable as _;
use mysql_async::{Conn, OptsBuilder, Value as Wire};

use tributary_mysql_binlog::decode::{Origin, convert};
use tributary_mysql_binlog::schema::{ColumnPlan, Kind, parse_enum_values};
use tributary_runtime::model::{Column, DataType, Row};

use super::{Decoder, Described, TableRef};
use crate::config::{ConnectionUrl, NumericMapping};
use crate::error::JdbcError;
use crate::schema::jdbc_column;

/// A connection with the database of the URL selected.
pub struct MyConnection {
    conn: Conn,
    database: Option<String>,
}

const BINARY_CHARSET: u16 = 63;

impl MyConnection {
    pub async fn open(url: &ConnectionUrl) -> Result<MyConnection, JdbcError> {
        let opts = OptsBuilder::default()
            .ip_or_hostname(url.host.clone())
            .tcp_port(url.port)
            .user(url.user.clone())
            .pass(url.password.as_ref().map(|p| p.expose().to_owned()))
            .db_name(url.database.clone())
            .prefer_socket(false)
            .init(vec!["SET time_zone = '+00:00'"]);
        let conn = Conn::new(opts).await.map_err(|e| JdbcError::Connect {
            target: format!(
                "mysql at {}:{}/{} as {} (connection.url, connection.user, connection.password)",
                url.host,
                url.port,
                url.database.as_deref().unwrap_or(""),
                url.user.as_deref().unwrap_or("")
            ),
            source: Box::new(e),
        })?;
        Ok(MyConnection {
            conn,
            database: url.database.clone(),
        })
    }

    pub async fn close(self) {
        let _ = self.conn.disconnect().await;
    }

    pub async fn tables(&mut self, types: &[String]) -> Result<Vec<TableRef>, JdbcError> {
        let kinds: Vec<&str> = types
            .iter()
            .map(|t| if t == "TABLE" { "BASE TABLE" } else { "VIEW" })
            .collect();
        let rows: Vec<(String, String, String)> = self
            .conn
            .exec(
                "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES \
                 WHERE (? IS NULL OR TABLE_SCHEMA = ?) \
                   AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') \
                 ORDER BY 1, 2",
                (self.database.clone(), self.database.clone()),
            )
            .await
            .map_err(JdbcError::mysql("cannot list tables"))?;
        Ok(rows
            .into_iter()
            .filter(|(_, _, t)| {
                kinds.contains(&t.as_str()) || (t == "SYSTEM VIEW" && kinds.contains(&"VIEW"))
            })
            .map(|(db, name, _)| TableRef {
                catalog: Some(db),
                schema: None,
                name,
            })
            .collect())
    }

    pub async fn describe(
        &mut self,
        table: &TableRef,
        mapping: NumericMapping,
    ) -> Result<Vec<Described>, JdbcError> {
        type InfoRow = (
            String,
            String,
            String,
            String,
            Option<u64>,
            Option<u64>,
            Option<u64>,
            Option<String>,
            String,
        );
        let rows: Vec<InfoRow> = self
            .conn
            .exec(
                "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, NUMERIC_PRECISION, \
                        NUMERIC_SCALE, DATETIME_PRECISION, CHARACTER_SET_NAME, EXTRA \
                 FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                (
                    table.catalog.clone().unwrap_or_default(),
                    table.name.clone(),
                ),
            )
            .await
            .map_err(JdbcError::mysql(format!(
                "cannot describe table {}",
                table.fqn()
            )))?;
        Ok(rows
            .into_iter()
            .enumerate()
            .map(
                |(
                    i,
                    (name, data_type, column_type, nullable, precision, scale, fsp, charset, extra),
                )| {
                    let nullable = nullable.eq_ignore_ascii_case("YES");
                    let unsigned = column_type.contains("unsigned");
                    let binary = charset.is_none() || charset.as_deref() == Some("binary");
                    let (kind, dt) = type_of(
                        &data_type.to_ascii_lowercase(),
                        unsigned,
                        binary,
                        precision.unwrap_or(0) as u32,
                        scale.unwrap_or(0) as u32,
                        fsp.unwrap_or(0).min(6) as u8,
                    );
                    let enum_values = if matches!(kind, Kind::Enum | Kind::Set) {
                        parse_enum_values(&column_type)
                    } else {
                        Vec::new()
                    };
                    described(
                        i,
                        &name,
                        kind,
                        dt,
                        &column_type,
                        nullable,
                        enum_values,
                        extra.contains("auto_increment"),
                        mapping,
                    )
                },
            )
            .collect())
    }

    pub async fn describe_query(
        &mut self,
        sql: &str,
        mapping: NumericMapping,
    ) -> Result<Vec<Described>, JdbcError> {
        let statement = self
            .conn
            .prep(sql)
            .await
            .map_err(JdbcError::mysql("cannot prepare the custom query (query)"))?;
        let out = statement
            .columns()
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let flags = c.flags();
                let unsigned = flags.contains(ColumnFlags::UNSIGNED_FLAG);
                let binary = c.character_set() == BINARY_CHARSET;
                let decimals = u32::from(c.decimals());
                let (name, sql_type) =
                    (c.name_str().into_owned(), format!("{:?}", c.column_type()));
                let data_type = if flags.contains(ColumnFlags::ENUM_FLAG) {
                    "enum"
                } else if flags.contains(ColumnFlags::SET_FLAG) {
                    "set"
                } else {
                    wire_type_name(c.column_type())
                };
                // DECIMAL display length counts the sign and the point.
                let precision = match c.column_type() {
                    ColumnType::MYSQL_TYPE_NEWDECIMAL | ColumnType::MYSQL_TYPE_DECIMAL => c
                        .column_length()
                        .saturating_sub(u32::from(decimals > 0) + u32::from(!unsigned)),
                    ColumnType::MYSQL_TYPE_BIT => c.column_length(),
                    _ => 0,
                };
                let (kind, dt) = type_of(
                    data_type,
                    unsigned,
                    binary,
                    precision,
                    decimals,
                    decimals.min(6) as u8,
                );
                let nullable = !flags.contains(ColumnFlags::NOT_NULL_FLAG);
                described(
                    i,
                    &name,
                    kind,
                    dt,
                    &sql_type,
                    nullable,
                    Vec::new(),
                    false,
                    mapping,
                )
            })
            .collect();
        let _ = self.conn.close(statement).await;
        Ok(out)
    }

    pub async fn now_micros(&mut self) -> Result<i64, JdbcError> {
        let now: Option<i64> = self
            .conn
            .query_first("SELECT CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)")
            .await
            .map_err(JdbcError::mysql("cannot read the database clock"))?;
        now.ok_or_else(|| JdbcError::Value("the database clock query returned no row".into()))
    }

    pub async fn fetch(&mut self, sql: &str, decoders: &[Decoder]) -> Result<Vec<Row>, JdbcError> {
        let rows: Vec<mysql_async::Row> = self
            .conn
            .exec(sql, ())
            .await
            .map_err(JdbcError::mysql("poll query failed"))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let names: Vec<String> = row
                .columns_ref()
                .iter()
                .map(|c| c.name_str().into_owned())
                .collect();
            let wires: Vec<Wire> = row.unwrap();
            if wires.len() != decoders.len() {
                return Err(JdbcError::Value(format!(
                    "query returned {} columns, expected {} (did the table change?)",
                    wires.len(),
                    decoders.len()
                )));
            }
            let mut values = Vec::with_capacity(wires.len());
            for (i, (wire, decoder)) in wires.into_iter().zip(decoders).enumerate() {
                let Decoder::MySql(plan) = decoder else {
                    return Err(JdbcError::Value(
                        "postgres decoder on a mysql connection".into(),
                    ));
                };
                let name = names.get(i).map_or("?", String::as_str);
                values.push(
                    convert(wire, plan, Origin::Snapshot)
                        .map_err(|e| JdbcError::Value(format!("column {name}: {e}")))?,
                );
            }
            out.push(Row(values));
        }
        Ok(out)
    }
}

#[allow(clippy::too_many_arguments)]
fn described(
    index: usize,
    name: &str,
    kind: Kind,
    data_type: DataType,
    sql_type: &str,
    nullable: bool,
    enum_values: Vec<String>,
    auto_increment: bool,
    mapping: NumericMapping,
) -> Described {
    let mut column = Column::new(name, data_type, sql_type);
    column.nullable = nullable;
    column.enum_values = enum_values.clone();
    Described {
        column: jdbc_column(column, mapping),
        auto_increment,
        decoder: Decoder::MySql(ColumnPlan {
            source_index: index,
            kind,
            nullable,
            enum_values,
        }),
    }
}

/// The decoding kind and the Kafka Connect JDBC type of a server type.
fn type_of(
    data_type: &str,
    unsigned: bool,
    binary: bool,
    precision: u32,
    scale: u32,
    fsp: u8,
) -> (Kind, DataType) {
    let int = |signed: DataType, wider: DataType| match unsigned {
        false => (Kind::Int, signed),
        true => (Kind::UInt, wider),
    };
    match data_type {
        "tinyint" => int(DataType::Int8, DataType::Int16),
        "smallint" => int(DataType::Int16, DataType::Int32),
        "mediumint" | "int" | "integer" => int(DataType::Int32, DataType::Int64),
        "bigint" if unsigned => (
            Kind::UIntDecimal,
            DataType::Decimal {
                precision: 20,
                scale: 0,
            },
        ),
        "bigint" => (Kind::Int, DataType::Int64),
        "float" => (Kind::Float, DataType::Float32),
        "double" | "real" => (Kind::Double, DataType::Float64),
        "decimal" | "numeric" => (Kind::Decimal, DataType::Decimal { precision, scale }),
        "date" => (Kind::Date, DataType::Date),
        "time" => (Kind::Time, DataType::Time { precision: fsp }),
        "datetime" => (Kind::DateTime, DataType::Timestamp { precision: fsp }),
        "timestamp" => (Kind::Timestamp, DataType::TimestampTz { precision: fsp }),
        "year" => (Kind::Year, DataType::Year),
        "bit" if precision <= 1 => (Kind::Bit(1), DataType::Bits { length: 1 }),
        "bit" => (Kind::Bit(precision), DataType::Bits { length: precision }),
        "enum" => (Kind::Enum, DataType::Enum),
        "set" => (Kind::Set, DataType::Set),
        "json" => (Kind::Json, DataType::Json),
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" => (Kind::Geometry, DataType::Bytes),
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
            (Kind::Bytes, DataType::Bytes)
        }
        _ if binary => (Kind::Bytes, DataType::Bytes),
        _ => (Kind::Text { latin1: false }, DataType::Text),
    }
}

/// The `information_schema` type name of a result-set column type.
fn wire_type_name(t: ColumnType) -> &'static str {
    use ColumnType as C;
    match t {
        C::MYSQL_TYPE_TINY => "tinyint",
        C::MYSQL_TYPE_SHORT => "smallint",
        C::MYSQL_TYPE_INT24 | C::MYSQL_TYPE_LONG => "int",
        C::MYSQL_TYPE_LONGLONG => "bigint",
        C::MYSQL_TYPE_FLOAT => "float",
        C::MYSQL_TYPE_DOUBLE => "double",
        C::MYSQL_TYPE_NEWDECIMAL | C::MYSQL_TYPE_DECIMAL => "decimal",
        C::MYSQL_TYPE_DATE | C::MYSQL_TYPE_NEWDATE => "date",
        C::MYSQL_TYPE_TIME | C::MYSQL_TYPE_TIME2 => "time",
        C::MYSQL_TYPE_DATETIME | C::MYSQL_TYPE_DATETIME2 => "datetime",
        C::MYSQL_TYPE_TIMESTAMP | C::MYSQL_TYPE_TIMESTAMP2 => "timestamp",
        C::MYSQL_TYPE_YEAR => "year",
        C::MYSQL_TYPE_BIT => "bit",
        C::MYSQL_TYPE_JSON => "json",
        C::MYSQL_TYPE_GEOMETRY => "geometry",
        C::MYSQL_TYPE_ENUM => "enum",
        C::MYSQL_TYPE_SET => "set",
        _ => "varchar",
    }
}
