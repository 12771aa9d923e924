//! Preflight against the real server: passes for the CDC user, and names the fix for
//! missing tables and privileges.

use std::sync::Arc;

use anyhow::Result;
use mysql_async::prelude::Queryable as _;
use tributary_runtime::connector::{Connector, SourceConnector};

use crate::harness::*;

fn source(config: &tributary_runtime::config::ConnectorConfig) -> Arc<dyn SourceConnector> {
    match registry().validate(config).expect("valid config").connector {
        Connector::Source(s) => s,
        Connector::Sink(_) => panic!("source expected"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn preflight_passes_for_cdc_user_and_names_missing_tables_and_grants() -> Result<()> {
    let env = test_env();
    let mut admin = admin(&env).await?;
    let db = fresh_db(&mut admin, "mypre").await?;
    admin
        .query_drop(format!("CREATE TABLE {db}.t (id INT PRIMARY KEY)"))
        .await?;

    source(&connector_config(&env, "pre", &db, &[]))
        .check()
        .await?;

    let missing = format!("{db}.nope");
    let err = source(&connector_config(
        &env,
        "pre",
        &db,
        &[("table.include.list", missing.as_str())],
    ))
    .check()
    .await
    .expect_err("missing table");
    assert!(
        err.message.contains("table.include.list entry")
            && err.message.contains(&format!("{db}.nope"))
            && err.message.contains("matches no table"),
        "{}",
        err.message
    );

    // A user without replication grants.
    let user = crate::env::unique_name("nogrant");
    admin
        .query_drop(format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'"))
        .await?;
    admin
        .query_drop(format!("GRANT SELECT ON {db}.* TO '{user}'@'%'"))
        .await?;
    let mut cfg = connector_config(&env, "pre", &db, &[]);
    cfg.config.insert("database.user".into(), user.clone());
    cfg.config.insert("database.password".into(), "pw".into());
    let err = source(&cfg).check().await.expect_err("no grants");
    assert!(
        err.message.contains("REPLICATION SLAVE")
            && err.message.contains("GRANT REPLICATION SLAVE"),
        "{}",
        err.message
    );
    assert!(err.message.contains(&user), "{}", err.message);

    admin.query_drop(format!("DROP USER '{user}'@'%'")).await?;
    admin.query_drop(format!("DROP DATABASE {db}")).await?;
    Ok(())
}
