//! A worker in the test process (the runtime's API, no binary) with the CDC sources
//! registered, and the MariaDB source config the in-process tests share.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use mysql_async::Opts;
use tributary_runtime::config::{ConnectorConfig, WorkerConfig};
use tributary_runtime::registry::Registry;
use tributary_runtime::worker::Worker;

use super::env::TestEnv;

/// A worker on the embedded log in `dir`, offsets flushed at once, with the built-in
/// connectors and the MariaDB/MySQL and Postgres sources.
pub async fn worker(dir: &Path) -> Result<Arc<Worker>> {
    let mut registry = Registry::with_builtins();
    registry.register(Arc::new(tributary_mysql_binlog::MySqlPlugin));
    registry.register(Arc::new(tributary_postgres::PostgresPlugin));
    Worker::start(
        WorkerConfig {
            data_dir: dir.to_path_buf(),
            offset_flush_interval_ms: 0,
            progress_interval_secs: 3600,
            ..Default::default()
        },
        registry,
    )
    .await
    .context("worker start")
}

/// The MariaDB source on the test environment's server as its CDC user, capturing `db`
/// under topic prefix `db`, with a random server id; `extra` settings added or replaced.
pub fn mariadb_source(
    env: &TestEnv,
    name: &str,
    db: &str,
    extra: &[(&str, String)],
) -> ConnectorConfig {
    let opts = Opts::from_url(&env.mariadb_cdc_url).expect("cdc url");
    let server_id = (1_000_000 + rand::random::<u32>() % 1_000_000_000).to_string();
    let config: BTreeMap<String, String> = [
        (
            "connector.class",
            "io.debezium.connector.mariadb.MariaDbConnector".to_owned(),
        ),
        ("database.hostname", opts.ip_or_hostname().to_owned()),
        ("database.port", opts.tcp_port().to_string()),
        ("database.user", opts.user().unwrap_or_default().to_owned()),
        (
            "database.password",
            opts.pass().unwrap_or_default().to_owned(),
        ),
        ("database.server.id", server_id),
        ("topic.prefix", db.to_owned()),
        ("database.include.list", db.to_owned()),
        ("database.ssl.mode", "disabled".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    with_extra(name, config, extra)
}

/// The Postgres source on the test environment's server as its CDC user, capturing the
/// database `db` through the existing publication `<db>_pub` and the slot `<db>_slot`, under
/// topic prefix `db`; `extra` settings added or replaced.
pub fn postgres_source(
    env: &TestEnv,
    name: &str,
    db: &str,
    extra: &[(&str, String)],
) -> ConnectorConfig {
    let port = env.var("TRIB_PG_PORT").unwrap_or("15432").to_owned();
    let config: BTreeMap<String, String> = [
        (
            "connector.class",
            "io.debezium.connector.postgresql.PostgresConnector".to_owned(),
        ),
        ("database.hostname", "127.0.0.1".to_owned()),
        ("database.port", port),
        ("database.user", "cdc".to_owned()),
        ("database.password", "cdc".to_owned()),
        ("database.dbname", db.to_owned()),
        ("topic.prefix", db.to_owned()),
        ("slot.name", format!("{db}_slot")),
        ("publication.name", format!("{db}_pub")),
        ("publication.autocreate.mode", "disabled".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    with_extra(name, config, extra)
}

/// A SQL connection to Postgres at `url`.
pub async fn pg(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// `base` with `extra` added or replaced, as the connector `name`.
fn with_extra(
    name: &str,
    mut config: BTreeMap<String, String>,
    extra: &[(&str, String)],
) -> ConnectorConfig {
    for (k, v) in extra {
        config.insert((*k).to_owned(), v.clone());
    }
    ConnectorConfig {
        name: name.to_owned(),
        config,
    }
}
