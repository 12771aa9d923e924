//! `database.sslmode` against the test server (ssl=on, a certificate for IP 127.0.0.1 and DNS
//! tributary-test-server signed by `TRIB_TLS_CA`). Role `cdc_tls` may connect only with TLS
//! (a `hostnossl ... reject` line in pg_hba.conf), so its connections prove encryption.

use std::io::Write;
use std::time::Duration;

use tributary_postgres::config::PgConfig;
use tributary_postgres::replication::ReplicationConnection;
use tributary_postgres::slot;
use tributary_runtime::connector::Plugin;
use tributary_runtime::model::Op;
use tributary_runtime::record::Payload;

use super::*;

const TLS_ROLE: &str = "cdc_tls";
const HBA_LINE: &str = "hostnossl all cdc_tls 127.0.0.1/32 reject";

fn env_path(env: &TestEnv, key: &str) -> String {
    env.var(key)
        .unwrap_or_else(|| panic!("{key} missing from the env file; run scripts/test-env.sh up"))
        .to_owned()
}

fn port(env: &TestEnv) -> String {
    env.var("TRIB_PG_PORT").unwrap_or("15432").to_owned()
}

/// Creates role `cdc_tls` and makes pg_hba.conf refuse it without TLS; idempotent, and
/// serialised between test processes by an advisory lock. Returns once the server applies it.
async fn tls_only_role(env: &TestEnv) {
    let admin = connect(&env.pg_url).await;
    admin
        .execute("SELECT pg_advisory_lock(7143201)", &[])
        .await
        .expect("advisory lock");
    admin
        .batch_execute(&format!(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{TLS_ROLE}') THEN
                 CREATE ROLE {TLS_ROLE} LOGIN REPLICATION PASSWORD '{TLS_ROLE}';
                 GRANT pg_read_all_data TO {TLS_ROLE};
               END IF;
             END $$;"
        ))
        .await
        .expect("create role cdc_tls");
    let hba = Path::new(&env_path(env, "TRIB_PG_DATADIR")).join("pg_hba.conf");
    let text =
        std::fs::read_to_string(&hba).unwrap_or_else(|e| panic!("read {}: {e}", hba.display()));
    if !text.lines().any(|l| l.trim() == HBA_LINE) {
        // In place (truncate and write), so the file keeps its owner (the postgres OS user).
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&hba)
            .unwrap_or_else(|e| panic!("open {}: {e}", hba.display()));
        file.write_all(
            format!("# tributary TLS tests: {TLS_ROLE} only over TLS\n{HBA_LINE}\n{text}")
                .as_bytes(),
        )
        .expect("write pg_hba.conf");
        file.sync_all().expect("sync pg_hba.conf");
    }
    admin
        .execute("SELECT pg_reload_conf()", &[])
        .await
        .expect("reload");
    admin
        .execute("SELECT pg_advisory_unlock(7143201)", &[])
        .await
        .expect("advisory unlock");
    // The reload is asynchronous: wait until a plaintext login is refused.
    let url = format!(
        "postgres://{TLS_ROLE}:{TLS_ROLE}@127.0.0.1:{}/postgres?sslmode=disable",
        port(env)
    );
    wait_for(
        "pg_hba.conf to refuse cdc_tls in plaintext",
        Duration::from_secs(20),
        || {
            let url = url.clone();
            async move {
                match tokio_postgres::connect(&url, NoTls).await {
                    Ok(_) => false,
                    Err(e) => e
                        .as_db_error()
                        .is_some_and(|d| d.message().contains("no encryption")),
                }
            }
        },
    )
    .await;
}

/// The validated config the connector would run with.
fn pg_config(raw: &RawConfig) -> PgConfig {
    let mut raw = raw.clone();
    raw.remove("connector.class");
    let parsed = tributary_postgres::PostgresPlugin
        .config_def()
        .parse(&raw)
        .unwrap_or_else(|e| panic!("parse: {e}"));
    tributary_postgres::config::validate("pg", &parsed).unwrap_or_else(|e| panic!("validate: {e}"))
}

/// `pg_stat_ssl.ssl` of a SQL connection the connector opens.
async fn sql_connection_encrypted(cfg: &PgConfig) -> bool {
    let client = slot::connect_sql(cfg)
        .await
        .unwrap_or_else(|e| panic!("connect_sql: {e:?}"));
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0)
}

/// Server-side view of a walsender: `pg_stat_ssl.ssl` of the backend with this
/// application_name.
async fn walsender_encrypted(admin: &Client, application_name: &str) -> Option<bool> {
    admin
        .query_opt(
            "SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
             WHERE a.backend_type = 'walsender' AND a.application_name = $1",
            &[&application_name],
        )
        .await
        .expect("pg_stat_activity")
        .map(|r| r.get(0))
}

fn tls_role_config<'a>(db: &TestDb, extra: &[(&'a str, &'a str)]) -> RawConfig {
    let mut all = vec![("database.user", TLS_ROLE), ("database.password", TLS_ROLE)];
    all.extend_from_slice(extra);
    db.config(&all)
}

#[tokio::test]
async fn tls_verify_full_snapshot_and_stream_with_both_connections_encrypted() {
    let env = test_env();
    tls_only_role(&env).await;
    let ca = env_path(&env, "TRIB_TLS_CA");
    let db = TestDb::create(
        "pgtls",
        "CREATE TABLE items (id int PRIMARY KEY, name text);
         INSERT INTO items VALUES (1, 'a'), (2, 'b');",
    )
    .await;
    db.publish_all().await;
    let raw = tls_role_config(
        &db,
        &[
            ("database.sslmode", "verify-full"),
            ("database.sslrootcert", ca.as_str()),
        ],
    );
    let src = source(raw.clone());
    src.check()
        .await
        .unwrap_or_else(|e| panic!("check: {}", e.trace()));
    assert!(sql_connection_encrypted(&pg_config(&raw)).await);

    let mut task = open(&src, vec![])
        .await
        .unwrap_or_else(|e| panic!("open: {}", e.trace()));
    let snap = poll_until(task.as_mut(), "snapshot", Duration::from_secs(20), |r| {
        r.len() >= 2
    })
    .await;
    assert_eq!(snap.len(), 2);
    db.admin
        .batch_execute(
            "INSERT INTO items VALUES (3, 'c'); UPDATE items SET name = 'bb' WHERE id = 2;",
        )
        .await
        .expect("changes");
    let stream = poll_until(task.as_mut(), "stream", Duration::from_secs(20), |r| {
        r.len() >= 2
    })
    .await;
    let ops: Vec<Op> = stream
        .iter()
        .filter_map(|r| match &r.payload {
            Payload::Change(e) => Some(e.op),
            _ => None,
        })
        .collect();
    assert_eq!(ops, vec![Op::Create, Op::Update]);

    // While the task streams: its walsender (the slot's active pid, in pg_stat_replication)
    // and every other backend of cdc_tls in this database are encrypted.
    let row = db
        .admin
        .query_one(
            "SELECT s.ssl, s.version, r.state FROM pg_replication_slots sl \
             JOIN pg_stat_replication r ON r.pid = sl.active_pid \
             JOIN pg_stat_ssl s ON s.pid = sl.active_pid WHERE sl.slot_name = $1",
            &[&db.slot],
        )
        .await
        .expect("walsender of the slot");
    let (ssl, version): (bool, Option<String>) = (row.get(0), row.get(1));
    assert!(ssl, "replication connection not encrypted");
    assert!(version.is_some_and(|v| v.starts_with("TLSv1.")));
    let (encrypted, total): (i64, i64) = {
        let r = db
            .admin
            .query_one(
                "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_activity a \
                 JOIN pg_stat_ssl s USING (pid) WHERE a.usename = $1 AND a.datname = $2",
                &[&TLS_ROLE, &db.name],
            )
            .await
            .expect("backends of cdc_tls");
        (r.get(0), r.get(1))
    };
    assert!(
        total >= 2,
        "expected the task's SQL and replication connections, got {total}"
    );
    assert_eq!(encrypted, total);
    task.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn tls_disable_is_refused_for_a_tls_only_role() {
    let env = test_env();
    tls_only_role(&env).await;
    let db = TestDb::create("pgtls", "CREATE TABLE t (id int PRIMARY KEY);").await;
    db.publish_all().await;
    let raw = tls_role_config(&db, &[("database.sslmode", "disable")]);
    let err = source(raw.clone())
        .check()
        .await
        .expect_err("plaintext is refused");
    let text = err.trace();
    assert!(
        text.contains("refuses unencrypted connections") && text.contains("database.sslmode"),
        "{text}"
    );
    let err = ReplicationConnection::connect(&slot::connect_params(&pg_config(&raw)))
        .await
        .err()
        .expect("replication connection refused too");
    let text = err.to_string();
    assert!(
        text.contains("refuses unencrypted connections") && text.contains("database.sslmode"),
        "{text}"
    );
    db.cleanup().await;
}

#[tokio::test]
async fn tls_untrusted_ca_is_refused() {
    let env = test_env();
    let untrusted = env_path(&env, "TRIB_TLS_UNTRUSTED_CA");
    let db = TestDb::create("pgtls", "CREATE TABLE t (id int PRIMARY KEY);").await;
    db.publish_all().await;
    let raw = db.config(&[
        ("database.sslmode", "verify-ca"),
        ("database.sslrootcert", untrusted.as_str()),
    ]);
    let err = source(raw.clone()).check().await.expect_err("untrusted CA");
    let text = err.trace();
    assert!(
        text.contains("not signed by a CA in database.sslrootcert")
            && text.contains("untrusted-ca.pem")
            && text.contains("database.sslmode=verify-ca"),
        "{text}"
    );
    let err = ReplicationConnection::connect(&slot::connect_params(&pg_config(&raw)))
        .await
        .err()
        .expect("replication connection refused too");
    assert!(
        err.to_string()
            .contains("not signed by a CA in database.sslrootcert"),
        "{err}"
    );
    // Without database.sslrootcert the system store is used, which does not know the test CA.
    let err = source(db.config(&[("database.sslmode", "verify-full")]))
        .check()
        .await
        .expect_err("test CA is not a system CA");
    assert!(
        err.trace()
            .contains("not signed by a CA in the system trust store"),
        "{}",
        err.trace()
    );
    db.cleanup().await;
}

#[tokio::test]
async fn tls_host_name_checked_only_by_verify_full() {
    let env = test_env();
    let ca = env_path(&env, "TRIB_TLS_CA");
    let db = TestDb::create("pgtls", "CREATE TABLE t (id int PRIMARY KEY);").await;
    db.publish_all().await;
    // The certificate names 127.0.0.1 and tributary-test-server, not localhost.
    let full = db.config(&[
        ("database.hostname", "localhost"),
        ("database.sslmode", "verify-full"),
        ("database.sslrootcert", ca.as_str()),
    ]);
    let err = source(full.clone())
        .check()
        .await
        .expect_err("localhost is not in the certificate");
    let text = err.trace();
    assert!(
        text.contains("not valid for \"localhost\"") && text.contains("verify-ca"),
        "{text}"
    );
    let err = ReplicationConnection::connect(&slot::connect_params(&pg_config(&full)))
        .await
        .err()
        .expect("replication connection refused too");
    assert!(
        err.to_string().contains("not valid for \"localhost\""),
        "{err}"
    );

    let ca_only = db.config(&[
        ("database.hostname", "localhost"),
        ("database.sslmode", "verify-ca"),
        ("database.sslrootcert", ca.as_str()),
    ]);
    source(ca_only.clone())
        .check()
        .await
        .unwrap_or_else(|e| panic!("verify-ca to localhost: {}", e.trace()));
    let cfg = pg_config(&ca_only);
    assert!(sql_connection_encrypted(&cfg).await);
    let conn = ReplicationConnection::connect(&slot::connect_params(&cfg))
        .await
        .unwrap_or_else(|e| panic!("replication verify-ca to localhost: {e}"));
    assert!(conn.is_encrypted());
    conn.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn tls_prefer_encrypts_when_the_server_offers_it() {
    let env = test_env();
    let db = TestDb::create("pgtls", "CREATE TABLE t (id int PRIMARY KEY);").await;
    db.publish_all().await;
    // The default (prefer) and require (no certificate check) with role cdc, which may also
    // connect in plaintext: the server offers TLS, so both kinds use it.
    for mode in ["prefer", "require"] {
        let cfg = pg_config(&db.config(&[("database.sslmode", mode)]));
        assert!(sql_connection_encrypted(&cfg).await, "{mode}: sql");
        let mut params = slot::connect_params(&cfg);
        params.application_name = format!("{}_{mode}", db.name);
        let mut conn = ReplicationConnection::connect(&params)
            .await
            .unwrap_or_else(|e| panic!("{mode}: replication: {e}"));
        assert!(conn.is_encrypted(), "{mode}: replication");
        conn.simple_query("IDENTIFY_SYSTEM")
            .await
            .unwrap_or_else(|e| panic!("{mode}: IDENTIFY_SYSTEM: {e}"));
        assert_eq!(
            walsender_encrypted(&db.admin, &params.application_name).await,
            Some(true),
            "{mode}: pg_stat_ssl of the walsender"
        );
        conn.close().await;
    }
    // disable really is plaintext, so the checks above can fail.
    let cfg = pg_config(&db.config(&[("database.sslmode", "disable")]));
    assert!(!sql_connection_encrypted(&cfg).await);
    let mut params = slot::connect_params(&cfg);
    params.application_name = format!("{}_disable", db.name);
    let mut conn = ReplicationConnection::connect(&params)
        .await
        .unwrap_or_else(|e| panic!("disable: replication: {e}"));
    assert!(!conn.is_encrypted());
    conn.simple_query("IDENTIFY_SYSTEM")
        .await
        .unwrap_or_else(|e| panic!("disable: IDENTIFY_SYSTEM: {e}"));
    assert_eq!(
        walsender_encrypted(&db.admin, &params.application_name).await,
        Some(false)
    );
    conn.close().await;

    // The server's certificate gives channel binding data, so SCRAM above ran as
    // SCRAM-SHA-256-PLUS (a wrong binding fails the login).
    let ca = env_path(&env, "TRIB_TLS_CA");
    let server_pem = Path::new(&ca).with_file_name("server.pem");
    let pem =
        std::fs::read(&server_pem).unwrap_or_else(|e| panic!("read {}: {e}", server_pem.display()));
    let der = pem_body(&pem);
    assert!(tributary_postgres::tls::tls_server_end_point(&der).is_some());
    db.cleanup().await;
}

/// The DER of the first PEM certificate.
fn pem_body(pem: &[u8]) -> Vec<u8> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem)
        .expect("PEM certificate")
        .to_vec()
}
