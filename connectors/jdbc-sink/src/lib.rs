//! JDBC sink connector: keeps Postgres and MySQL/MariaDB tables equal to the change
//! streams of the topics it reads.
//!
//! Accepts the Debezium JDBC sink's config (`io.debezium.connector.jdbc.JdbcSinkConnector`)
//! and the Confluent one's (`io.confluent.connect.jdbc.JdbcSinkConnector`). Consumes the
//! Debezium envelope natively (`op` c/r/u upsert, d delete, t truncate) and flat rows.
//!
//! * [`config`]: fields, `connection.url` forms, validation.
//! * [`change`]: decoded records to row changes (key, table name, placeholder).
//! * [`buffer`]: the reduction buffer (last change per key wins).
//! * [`dialect`]: the [`dialect::Dialect`] (SQL text) and [`dialect::Target`] (connection)
//!   traits, with Postgres and MySQL/MariaDB implementations.
//! * [`table`]: target table metadata and the schema changes a batch needs.
//! * [`sink`]: the task; see its docs for offsets, transactions and errors.

pub mod buffer;
pub mod change;
pub mod config;
pub mod dialect;
pub mod error;
pub mod mapping;
pub mod sink;
pub mod table;

use std::sync::Arc;

use tributary_runtime::config::{ConfigDef, ConfigErrors, Parsed};
use tributary_runtime::connector::{Connector, ConnectorKind, Plugin};

/// The plugin the binary registers.
pub struct JdbcSinkPlugin;

impl Plugin for JdbcSinkPlugin {
    fn class(&self) -> &'static str {
        "io.debezium.connector.jdbc.JdbcSinkConnector"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &[
            "io.confluent.connect.jdbc.JdbcSinkConnector",
            "jdbc-sink",
            "jdbc",
            "JdbcSink",
        ]
    }

    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Sink
    }

    fn config_def(&self) -> ConfigDef {
        config::config_def()
    }

    fn validate(&self, name: &str, config: &Parsed) -> Result<Connector, ConfigErrors> {
        let config = config::JdbcSinkConfig::from_parsed(name, config)?;
        Ok(Connector::Sink(Arc::new(sink::JdbcSink {
            config: Arc::new(config),
        })))
    }
}
