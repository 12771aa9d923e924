//! Postgres: catalog lookups over the extended protocol, row reads over the simple protocol
//! (text values, parsed by the Postgres CDC connector's type code under the same pinned
//! session settings).

use tokio_postgres::{Client, NoTls, SimpleQueryMessage};
use tracing::warn;

use tributary_postgres::config::IntervalMode;
use tributary_postgres::replication::PINNED_SETTINGS;
use tributary_postgres::schema::{TypeCatalog, ValueParser, build_column};
use tributary_runtime::converter::json::DecimalMode;
use tributary_runtime::model::{Row, Value};

use super::{Decoder, Described, TableRef};
use crate::config::{ConnectionUrl, NumericMapping};
use crate::error::JdbcError;
use crate::schema::jdbc_column;

/// A SQL connection; its connection future runs on its own task.
pub struct PgConnection {
    client: Client,
    catalog: TypeCatalog,
    parser: ValueParser,
}

impl PgConnection {
    pub async fn open(url: &ConnectionUrl) -> Result<PgConnection, JdbcError> {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&url.host)
            .port(url.port)
            .application_name("tributary-jdbc-source");
        if let Some(db) = &url.database {
            config.dbname(db);
        }
        // Like libpq and pgjdbc, the operating-system user when none is given.
        let user = url
            .user
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "postgres".to_owned());
        config.user(&user);
        if let Some(pw) = &url.password {
            config.password(pw.expose());
        }
        let options: Vec<String> = PINNED_SETTINGS
            .iter()
            .map(|(k, v)| format!("-c {k}={}", v.replace(' ', "\\ ")))
            .collect();
        config.options(options.join(" "));
        let (client, connection) =
            config
                .connect(NoTls)
                .await
                .map_err(|e| JdbcError::Connect {
                    target: format!(
                        "postgres at {}:{}/{} as {} (connection.url, connection.user, connection.password)",
                        url.host,
                        url.port,
                        url.database.as_deref().unwrap_or(""),
                        user
                    ),
                    source: Box::new(e),
                })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                warn!(error = %e, "jdbc source postgres connection ended");
            }
        });
        Ok(PgConnection {
            client,
            catalog: TypeCatalog::default(),
            parser: ValueParser {
                decimal: DecimalMode::Precise,
                interval: IntervalMode::String,
            },
        })
    }

    pub async fn tables(&mut self, types: &[String]) -> Result<Vec<TableRef>, JdbcError> {
        let kinds: Vec<String> = types
            .iter()
            .map(|t| {
                if t == "TABLE" {
                    "BASE TABLE".to_owned()
                } else {
                    t.clone()
                }
            })
            .collect();
        let rows = self
            .client
            .query(
                "SELECT current_database()::text, table_schema::text, table_name::text \
                 FROM information_schema.tables \
                 WHERE table_type = ANY($1) \
                   AND table_schema NOT IN ('pg_catalog', 'information_schema') \
                   AND table_schema NOT LIKE 'pg\\_toast%' \
                 ORDER BY 2, 3",
                &[&kinds],
            )
            .await
            .map_err(JdbcError::postgres("cannot list tables"))?;
        Ok(rows
            .iter()
            .map(|r| TableRef {
                catalog: Some(r.get(0)),
                schema: Some(r.get(1)),
                name: r.get(2),
            })
            .collect())
    }

    pub async fn describe(
        &mut self,
        table: &TableRef,
        mapping: NumericMapping,
    ) -> Result<Vec<Described>, JdbcError> {
        let schema = table.schema.clone().unwrap_or_else(|| "public".to_owned());
        let rows = self
            .client
            .query(
                "SELECT a.attname::text, a.atttypid::int8, a.atttypmod, a.attnotnull, \
                        coalesce(pg_get_expr(d.adbin, d.adrelid), '') AS dflt, a.attidentity::text \
                 FROM pg_attribute a \
                 JOIN pg_class c ON c.oid = a.attrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
                 WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum",
                &[&schema, &table.name],
            )
            .await
            .map_err(JdbcError::postgres(format!(
                "cannot describe table {}",
                table.fqn()
            )))?;
        Ok(rows
            .iter()
            .map(|r| {
                let name: String = r.get(0);
                let oid: i64 = r.get(1);
                let modifier: i32 = r.get(2);
                let not_null: bool = r.get(3);
                let default: String = r.get(4);
                let identity: String = r.get(5);
                self.described(
                    &name,
                    oid as u32,
                    modifier,
                    !not_null,
                    default.starts_with("nextval(") || !identity.is_empty(),
                    mapping,
                )
            })
            .collect())
    }

    fn described(
        &self,
        name: &str,
        oid: u32,
        modifier: i32,
        nullable: bool,
        auto_increment: bool,
        mapping: NumericMapping,
    ) -> Described {
        let resolved = self.catalog.resolve(oid, modifier, IntervalMode::String);
        let kind = resolved.kind.clone();
        Described {
            column: jdbc_column(build_column(name, resolved, nullable), mapping),
            auto_increment,
            decoder: Decoder::Postgres(kind),
        }
    }

    pub async fn describe_query(
        &mut self,
        sql: &str,
        mapping: NumericMapping,
    ) -> Result<Vec<Described>, JdbcError> {
        let statement = self.client.prepare(sql).await.map_err(JdbcError::postgres(
            "cannot prepare the custom query (query)",
        ))?;
        Ok(statement
            .columns()
            .iter()
            .map(|c| self.described(c.name(), c.type_().oid(), -1, true, false, mapping))
            .collect())
    }

    pub async fn now_micros(&mut self) -> Result<i64, JdbcError> {
        let row = self
            .client
            .query_one(
                "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::int8",
                &[],
            )
            .await
            .map_err(JdbcError::postgres("cannot read the database clock"))?;
        Ok(row.get(0))
    }

    pub async fn fetch(&mut self, sql: &str, decoders: &[Decoder]) -> Result<Vec<Row>, JdbcError> {
        let messages = self
            .client
            .simple_query(sql)
            .await
            .map_err(JdbcError::postgres("poll query failed"))?;
        let mut rows = Vec::new();
        for message in messages {
            let SimpleQueryMessage::Row(row) = message else {
                continue;
            };
            if row.len() != decoders.len() {
                return Err(JdbcError::Value(format!(
                    "query returned {} columns, expected {} (did the table change?)",
                    row.len(),
                    decoders.len()
                )));
            }
            let mut values = Vec::with_capacity(decoders.len());
            for (i, decoder) in decoders.iter().enumerate() {
                let Decoder::Postgres(kind) = decoder else {
                    return Err(JdbcError::Value(
                        "mysql decoder on a postgres connection".into(),
                    ));
                };
                let name = row.columns().get(i).map_or("?", |c| c.name());
                values.push(match row.get(i) {
                    None => Value::Null,
                    Some(text) => self
                        .parser
                        .parse(kind, text)
                        .map_err(|e| JdbcError::Value(format!("column {name}: {e}")))?,
                });
            }
            rows.push(Row(values));
        }
        Ok(rows)
    }
}
