//! Every connector this binary ships, by `connector.class`.

use tributary_runtime::registry::Registry;

/// The registry of built-in and connector-crate plugins.
pub fn registry() -> Registry {
    // Connector crates add one `registry.register(...)` line here each.
    let mut registry = Registry::with_builtins();
    registry.register(std::sync::Arc::new(tributary_mysql_binlog::MySqlPlugin));
    registry.register(std::sync::Arc::new(tributary_postgres::PostgresPlugin));
    registry.register(std::sync::Arc::new(tributary_jdbc_source::JdbcSourcePlugin));
    registry.register(std::sync::Arc::new(tributary_jdbc_sink::JdbcSinkPlugin));
    registry.register(std::sync::Arc::new(tributary_s3_sink::S3SinkPlugin));
    registry
}
