//! TLS against the real MariaDB of the test environment, whose certificate is signed by
//! `TRIB_TLS_CA` and names IP 127.0.0.1 and DNS tributary-test-server only (not `localhost`).
//!
//! Every connection of the connector uses `database.ssl.*`: a user created `REQUIRE SSL`
//! snapshots and streams end to end (the server refuses any of its connections without TLS),
//! and the same user with `disabled` fails with an error that says why.

use anyhow::{Context as _, Result, ensure};
use mysql_async::Conn;
use mysql_async::prelude::Queryable as _;
use tributary_mysql_binlog::MySqlSource;
use tributary_mysql_binlog::config::validate;
use tributary_mysql_binlog::tls::ServerOpts;
use tributary_runtime::config::ConnectorConfig;
use tributary_runtime::connector::Connector;
use tributary_runtime::error::{ConnectorError, ErrorKind};
use tributary_runtime::registry::Registry;

use crate::env::TestEnv;
use crate::harness::*;

fn ca(env: &TestEnv) -> String {
    env.var("TRIB_TLS_CA")
        .expect("TRIB_TLS_CA in the env file: rerun scripts/test-env.sh up")
        .to_owned()
}

fn untrusted_ca(env: &TestEnv) -> String {
    env.var("TRIB_TLS_UNTRUSTED_CA")
        .expect("TRIB_TLS_UNTRUSTED_CA in the env file: rerun scripts/test-env.sh up")
        .to_owned()
}

/// The connector as the plugin builds it (validation reads the PEM files).
fn mysql_source(config: &ConnectorConfig) -> MySqlSource {
    let def = Registry::config_def(&tributary_mysql_binlog::MySqlPlugin);
    let parsed = def.parse(&config.config).expect("config parses");
    MySqlSource::new(validate(&config.name, &parsed).expect("config valid"))
}

/// A config for `db` with `database.ssl.*` and the host to connect to.
fn tls_config(env: &TestEnv, db: &str, host: &str, extra: &[(&str, &str)]) -> ConnectorConfig {
    let mut cfg = connector_config(env, "tls", db, extra);
    cfg.config.insert("database.hostname".into(), host.into());
    cfg
}

/// `Ssl_cipher` of a connection (empty without TLS), asked of the server itself.
async fn ssl_cipher(conn: &mut Conn) -> Result<String> {
    let row: Option<(String, String)> = conn.query_first("SHOW STATUS LIKE 'Ssl_cipher'").await?;
    Ok(row.map(|(_, v)| v).unwrap_or_default())
}

/// A user that the server lets in over TLS only, with the connector's grants.
async fn require_ssl_user(admin: &mut Conn) -> Result<String> {
    let user = crate::env::unique_name("tlsuser");
    admin
        .query_drop(format!(
            "CREATE USER '{user}'@'%' IDENTIFIED BY 'tls-pw' REQUIRE SSL"
        ))
        .await?;
    admin
        .query_drop(format!(
            "GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT, RELOAD, LOCK TABLES ON *.* TO '{user}'@'%'"
        ))
        .await?;
    Ok(user)
}

fn as_user(mut cfg: ConnectorConfig, user: &str) -> ConnectorConfig {
    cfg.config.insert("database.user".into(), user.into());
    cfg.config
        .insert("database.password".into(), "tls-pw".into());
    cfg
}

#[tokio::test(flavor = "multi_thread")]
async fn the_connectors_own_connections_are_encrypted_as_the_mode_says() -> Result<()> {
    let env = test_env();
    let ca = ca(&env);
    let (host, ..) = cdc_parts(&env);
    ensure!(
        host == "127.0.0.1",
        "the test server is named by IP: {host}"
    );
    for (mode, encrypted) in [
        ("disabled", false),
        ("preferred", true),
        ("required", true),
        ("verify_ca", true),
        ("verify_identity", true),
    ] {
        let source = mysql_source(&tls_config(
            &env,
            "tlsmodes",
            &host,
            &[
                ("database.ssl.mode", mode),
                ("database.ssl.truststore", ca.as_str()),
            ],
        ));
        let mut conn = source
            .connect()
            .await
            .with_context(|| format!("connect with database.ssl.mode={mode}"))?;
        let cipher = ssl_cipher(&mut conn).await?;
        assert_eq!(
            !cipher.is_empty(),
            encrypted,
            "{mode}: Ssl_cipher {cipher:?}"
        );
        let negotiated = ServerOpts::negotiated(&mut conn).await?;
        assert_eq!(negotiated.cipher, cipher, "{mode}");
        assert_eq!(
            negotiated.version.starts_with("TLSv1."),
            encrypted,
            "{mode}: {negotiated:?}"
        );
        conn.disconnect().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn require_ssl_user_snapshots_and_streams_with_verify_identity() -> Result<()> {
    let env = test_env();
    let ca = ca(&env);
    let (host, ..) = cdc_parts(&env);
    let mut admin = admin(&env).await?;
    let db = fresh_db(&mut admin, "mytls").await?;
    admin
        .query_drop(format!(
            "CREATE TABLE {db}.t (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL)"
        ))
        .await?;
    admin
        .query_drop(format!(
            "INSERT INTO {db}.t VALUES (1, 'one'), (2, 'two'), (3, 'three')"
        ))
        .await?;
    let user = require_ssl_user(&mut admin).await?;

    let dir = tempfile::tempdir()?;
    let worker = start_worker(dir.path()).await?;
    let config = as_user(
        tls_config(
            &env,
            &db,
            &host,
            &[
                ("database.ssl.mode", "verify_identity"),
                ("database.ssl.truststore", ca.as_str()),
                // Heartbeats and lag checks open connections of their own too.
                ("heartbeat.interval.ms", "200"),
            ],
        ),
        &user,
    );
    // The preflight (REST's check) over TLS as this user.
    match registry().validate(&config)?.connector {
        Connector::Source(source) => source.check().await?,
        Connector::Sink(_) => anyhow::bail!("source expected"),
    }
    worker.put_config(config).await?;
    let topic = format!("{db}.{db}.t");
    let records = wait_for(&worker, "tls", &topic, DEADLINE, |r| r.len() >= 3).await?;
    let snapshot: Vec<_> = records
        .iter()
        .map(|r| (r.op().map(str::to_owned), r.after().cloned()))
        .collect();
    assert_eq!(
        snapshot,
        [(1, "one"), (2, "two"), (3, "three")]
            .map(|(id, name)| (
                Some("r".to_owned()),
                Some(serde_json::json!({"id": id, "name": name}))
            ))
            .to_vec()
    );

    admin
        .query_drop(format!(
            "INSERT INTO {db}.t VALUES (4, 'four'), (5, 'five')"
        ))
        .await?;
    admin
        .query_drop(format!("UPDATE {db}.t SET name = 'uno' WHERE id = 1"))
        .await?;
    let records = wait_for(&worker, "tls", &topic, DEADLINE, |r| r.len() >= 6).await?;
    let streamed: Vec<_> = records[3..]
        .iter()
        .map(|r| (r.op().map(str::to_owned), r.after().cloned()))
        .collect();
    assert_eq!(
        streamed,
        vec![
            (
                Some("c".into()),
                Some(serde_json::json!({"id": 4, "name": "four"}))
            ),
            (
                Some("c".into()),
                Some(serde_json::json!({"id": 5, "name": "five"}))
            ),
            (
                Some("u".into()),
                Some(serde_json::json!({"id": 1, "name": "uno"}))
            ),
        ]
    );
    let status = serde_json::to_value(worker.status("tls").await?)?;
    assert!(!status.to_string().contains("FAILED"), "{status}");

    worker.shutdown().await;
    admin.query_drop(format!("DROP USER '{user}'@'%'")).await?;
    admin.query_drop(format!("DROP DATABASE {db}")).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn require_ssl_user_with_ssl_disabled_fails_saying_the_connection_was_not_encrypted()
-> Result<()> {
    let env = test_env();
    let (host, ..) = cdc_parts(&env);
    let mut admin = admin(&env).await?;
    let db = fresh_db(&mut admin, "mytlsoff").await?;
    let user = require_ssl_user(&mut admin).await?;
    let config = as_user(
        tls_config(&env, &db, &host, &[("database.ssl.mode", "disabled")]),
        &user,
    );

    let err: ConnectorError = mysql_source(&config)
        .connect()
        .await
        .map(|_| ())
        .expect_err("the server refuses a plaintext connection of a REQUIRE SSL user")
        .into();
    assert_eq!(err.kind, ErrorKind::Config, "{}", err.message);
    for needle in [
        "access denied",
        &user,
        "the connection was not encrypted (database.ssl.mode=disabled)",
        "REQUIRE SSL",
        "set database.ssl.mode=verify_identity",
    ] {
        assert!(
            err.message.contains(needle),
            "{needle:?} in {}",
            err.message
        );
    }

    // The same through a worker: the task fails with that reason in its status.
    let dir = tempfile::tempdir()?;
    let worker = start_worker(dir.path()).await?;
    worker.put_config(config).await?;
    let status = wait_failed(&worker, "tls", DEADLINE).await?;
    assert!(
        status.contains("the connection was not encrypted (database.ssl.mode=disabled)"),
        "{status}"
    );
    worker.shutdown().await;
    admin.query_drop(format!("DROP USER '{user}'@'%'")).await?;
    admin.query_drop(format!("DROP DATABASE {db}")).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_ca_with_a_ca_that_did_not_sign_the_server_fails_clearly() -> Result<()> {
    let env = test_env();
    let untrusted = untrusted_ca(&env);
    let (host, ..) = cdc_parts(&env);
    for mode in ["verify_ca", "verify_identity"] {
        let config = tls_config(
            &env,
            "tlsuntrusted",
            &host,
            &[
                ("database.ssl.mode", mode),
                ("database.ssl.truststore", untrusted.as_str()),
            ],
        );
        let source = match registry().validate(&config)?.connector {
            Connector::Source(source) => source,
            Connector::Sink(_) => anyhow::bail!("source expected"),
        };
        let err = source.check().await.expect_err("untrusted CA");
        assert_eq!(err.kind, ErrorKind::Config, "{mode}: {}", err.message);
        for needle in [
            "is not signed by a CA in database.ssl.truststore".to_owned(),
            untrusted.clone(),
            format!("(database.ssl.mode={mode})"),
            "set database.ssl.truststore to the PEM of the CA that signed it".to_owned(),
        ] {
            assert!(
                err.message.contains(&needle),
                "{mode}: {needle:?} in {}",
                err.message
            );
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_identity_checks_the_host_name_and_verify_ca_does_not() -> Result<()> {
    let env = test_env();
    let ca = ca(&env);
    let config = |mode: &str| {
        tls_config(
            &env,
            "tlslocalhost",
            "localhost",
            &[
                ("database.ssl.mode", mode),
                ("database.ssl.truststore", ca.as_str()),
            ],
        )
    };

    // The certificate names 127.0.0.1 and tributary-test-server, not localhost.
    let err: ConnectorError = mysql_source(&config("verify_identity"))
        .connect()
        .await
        .map(|_| ())
        .expect_err("name mismatch")
        .into();
    assert_eq!(err.kind, ErrorKind::Config, "{}", err.message);
    for needle in [
        "is not valid for host localhost",
        "tributary-test-server",
        "(database.ssl.mode=verify_identity)",
        "set database.ssl.mode=verify_ca to verify the CA only",
    ] {
        assert!(
            err.message.contains(needle),
            "{needle:?} in {}",
            err.message
        );
    }

    // verify_ca: same CA, same host, connects; every later connection of the connector too.
    let source = mysql_source(&config("verify_ca"));
    for _ in 0..2 {
        let mut conn = source.connect().await.context("verify_ca to localhost")?;
        let cipher = ssl_cipher(&mut conn).await?;
        assert!(!cipher.is_empty(), "encrypted: {cipher:?}");
        conn.disconnect().await?;
    }
    // ... but still not with a CA that did not sign the server's certificate.
    let untrusted = untrusted_ca(&env);
    let mut cfg = config("verify_ca");
    cfg.config
        .insert("database.ssl.truststore".into(), untrusted.clone());
    let err = mysql_source(&cfg)
        .connect()
        .await
        .map(|_| ())
        .expect_err("untrusted CA");
    assert!(
        err.to_string()
            .contains("is not signed by a CA in database.ssl.truststore"),
        "{err}"
    );
    Ok(())
}
