//! Preflight errors name the problem and the fix.

use std::time::Duration;

use super::*;

#[tokio::test]
async fn table_without_key_gets_the_alter_table_fix() {
    let db = TestDb::create(
        "pgpre",
        "CREATE TABLE keyed (id int PRIMARY KEY); CREATE TABLE loose (a int, b text);",
    )
    .await;
    db.publish_all().await;
    let err = source(db.config(&[]))
        .check()
        .await
        .expect_err("loose has no identity");
    assert!(
        err.message
            .contains("table public.loose has REPLICA IDENTITY DEFAULT and no primary key")
            && err
                .message
                .contains("ALTER TABLE \"public\".\"loose\" REPLICA IDENTITY FULL"),
        "{}",
        err.message
    );
    // Excluding the table, or fixing it, passes.
    source(db.config(&[("table.exclude.list", "public.loose")]))
        .check()
        .await
        .unwrap_or_else(|e| panic!("excluded: {}", e.trace()));
    db.admin
        .batch_execute("ALTER TABLE loose REPLICA IDENTITY FULL")
        .await
        .expect("alter");
    source(db.config(&[]))
        .check()
        .await
        .unwrap_or_else(|e| panic!("fixed: {}", e.trace()));
    db.cleanup().await;
}

#[tokio::test]
async fn missing_publication_and_busy_slot() {
    let db = TestDb::create("pgpre", "CREATE TABLE t (id int PRIMARY KEY);").await;
    let err = source(db.config(&[]))
        .check()
        .await
        .expect_err("no publication");
    assert!(
        err.message.contains("publication.name")
            && err
                .message
                .contains("publication.autocreate.mode is disabled")
            && err.message.contains("CREATE PUBLICATION"),
        "{}",
        err.message
    );
    // all_tables needs a superuser; cdc is not one.
    let err = source(db.config(&[("publication.autocreate.mode", "all_tables")]))
        .check()
        .await
        .expect_err("cdc cannot create FOR ALL TABLES");
    assert!(err.message.contains("superuser"), "{}", err.message);

    db.publish_all().await;
    let src = source(db.config(&[("snapshot.mode", "no_data")]));
    src.check()
        .await
        .unwrap_or_else(|e| panic!("ok: {}", e.trace()));
    let mut task = open(&src, vec![]).await.expect("open");
    wait_for("slot active", Duration::from_secs(10), || async {
        db.slot_active_pid().await.is_some()
    })
    .await;
    let err = source(db.config(&[])).check().await.expect_err("slot busy");
    assert!(
        err.message.contains("is active in another session"),
        "{}",
        err.message
    );
    task.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn role_without_replication_is_told_how_to_fix_it() {
    let db = TestDb::create("pgrole", "CREATE TABLE t (id int PRIMARY KEY);").await;
    db.publish_all().await;
    let role = crate::env::unique_name("norep");
    db.admin
        .batch_execute(&format!("CREATE ROLE {role} LOGIN PASSWORD 'pw'"))
        .await
        .expect("role");
    let err = source(db.config(&[
        ("database.user", role.as_str()),
        ("database.password", "pw"),
    ]))
    .check()
    .await
    .expect_err("no REPLICATION");
    assert!(
        err.message
            .contains(&format!("role {role} has neither REPLICATION nor SUPERUSER. Run ALTER ROLE \"{role}\" REPLICATION")),
        "{}",
        err.message
    );
    db.admin
        .batch_execute(&format!("DROP ROLE {role}"))
        .await
        .expect("drop role");
    db.cleanup().await;
}
