//! ALTER TABLE mid-stream: events on both sides carry the columns of their time.

use anyhow::Result;
use mysql_async::prelude::Queryable as _;
use serde_json::{Value as Json, json};

use crate::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn alter_table_add_drop_modify_mid_stream() -> Result<()> {
    let env = test_env();
    let mut admin = admin(&env).await?;
    let db = fresh_db(&mut admin, "myddl").await?;
    admin
        .query_drop(format!(
            "CREATE TABLE {db}.t (id INT PRIMARY KEY, a INT, b VARCHAR(10))"
        ))
        .await?;
    let dir = tempfile::tempdir()?;
    let worker = start_worker(dir.path()).await?;
    worker
        .put_config(connector_config(
            &env,
            "ddl",
            &db,
            &[("snapshot.mode", "no_data")],
        ))
        .await?;
    wait_streaming(&worker, "ddl", &mut admin, &db).await?;
    for sql in [
        format!("INSERT INTO {db}.t VALUES (1, 10, 'x')"),
        format!("ALTER TABLE {db}.t ADD COLUMN c INT NOT NULL DEFAULT 7"),
        format!("INSERT INTO {db}.t VALUES (2, 20, 'y', 9)"),
        format!("UPDATE {db}.t SET a = 11 WHERE id = 1"),
        format!("ALTER TABLE {db}.t DROP COLUMN a"),
        format!("INSERT INTO {db}.t VALUES (3, 'z', 5)"),
        format!("ALTER TABLE {db}.t MODIFY COLUMN c BIGINT NOT NULL"),
        format!("INSERT INTO {db}.t VALUES (4, 'w', 123456789012)"),
    ] {
        admin.query_drop(sql).await?;
    }
    let topic = format!("{db}.{db}.t");
    let r = wait_for(&worker, "ddl", &topic, DEADLINE, |r| r.len() >= 5).await?;
    assert_eq!(r[0].after(), Some(&json!({"id": 1, "a": 10, "b": "x"})));
    assert_eq!(
        r[1].after(),
        Some(&json!({"id": 2, "a": 20, "b": "y", "c": 9}))
    );
    assert_eq!(
        r[2].before(),
        Some(&json!({"id": 1, "a": 10, "b": "x", "c": 7}))
    );
    assert_eq!(
        r[2].after(),
        Some(&json!({"id": 1, "a": 11, "b": "x", "c": 7}))
    );
    assert_eq!(r[3].after(), Some(&json!({"id": 3, "b": "z", "c": 5})));
    assert_eq!(
        r[4].after(),
        Some(&json!({"id": 4, "b": "w", "c": 123_456_789_012i64}))
    );

    let changes = wait_for(&worker, "ddl", &db, DEADLINE, |r| r.len() >= 3).await?;
    let ddl: Vec<String> = changes
        .iter()
        .filter_map(|r| {
            r.value
                .as_ref()
                .and_then(|v| v["ddl"].as_str().map(str::to_owned))
        })
        .collect();
    assert!(ddl.iter().any(|d| d.contains("ADD COLUMN c")), "{ddl:?}");
    assert!(ddl.iter().any(|d| d.contains("DROP COLUMN a")), "{ddl:?}");
    worker.shutdown().await;
    admin.query_drop(format!("DROP DATABASE {db}")).await?;
    Ok(())
}

// --- tableChanges: the schema history (include.schema.changes) -------------------------

/// The `tableChanges` entry of `db.table` in a schema-change record.
fn entry<'a>(record: &'a Json, db: &str, table: &str) -> Option<&'a Json> {
    let id = format!("\"{db}\".\"{table}\"");
    record["tableChanges"]
        .as_array()?
        .iter()
        .find(|c| c["id"] == id.as_str())
}

/// A table as both sides can tell it: columns in order with (name, type, nullable, length),
/// and the primary key.
#[derive(Debug, PartialEq)]
struct Shape {
    columns: Vec<(String, String, bool, Option<i64>)>,
    key: Vec<String>,
}

fn shape_of(entry: &Json) -> Shape {
    let table = &entry["table"];
    let columns = table["columns"]
        .as_array()
        .map(|cols| {
            cols.iter()
                .enumerate()
                .map(|(i, c)| {
                    assert_eq!(
                        c["position"],
                        json!(i + 1),
                        "positions are 1-based and dense"
                    );
                    (
                        c["name"].as_str().unwrap_or_default().to_owned(),
                        c["typeName"].as_str().unwrap_or_default().to_owned(),
                        c["optional"].as_bool().unwrap_or_default(),
                        c["length"].as_i64().filter(|_| c["jdbcType"] == 12),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let key = table["primaryKeyColumnNames"]
        .as_array()
        .map(|k| {
            k.iter()
                .map(|n| n.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default();
    Shape { columns, key }
}

/// The same from information_schema, now.
async fn shape_now(conn: &mut mysql_async::Conn, db: &str, table: &str) -> Result<Shape> {
    let columns: Vec<(String, String, String, Option<u64>)> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, IS_NULLABLE, CHARACTER_MAXIMUM_LENGTH \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        .await?;
    let key: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? \
             AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
            (db, table),
        )
        .await?;
    Ok(Shape {
        columns: columns
            .into_iter()
            .map(|(n, t, null, len)| {
                let t = t.to_ascii_uppercase();
                let len = (t == "VARCHAR").then(|| len.map(|l| l as i64)).flatten();
                (n, t, null == "YES", len)
            })
            .collect(),
        key,
    })
}

/// Waits for the schema-change record of exactly this DDL text.
async fn wait_ddl(
    worker: &tributary_runtime::worker::Worker,
    name: &str,
    db: &str,
    ddl: &str,
) -> Result<Json> {
    let records = wait_for(worker, name, db, DEADLINE, |r| {
        r.iter()
            .any(|x| x.value.as_ref().is_some_and(|v| v["ddl"] == ddl))
    })
    .await?;
    Ok(records
        .into_iter()
        .filter_map(|r| r.value)
        .find(|v| v["ddl"] == ddl)
        .unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_emits_a_create_record_per_table() -> Result<()> {
    let env = test_env();
    let mut admin = admin(&env).await?;
    let db = fresh_db(&mut admin, "myhsnap").await?;
    admin
        .query_drop(format!(
            "CREATE TABLE {db}.t (id INT NOT NULL AUTO_INCREMENT, k2 VARCHAR(20) NOT NULL, \
             price DECIMAL(10,2) DEFAULT 1.50, kind ENUM('a','b') NULL, note TEXT, \
             PRIMARY KEY (id, k2)) DEFAULT CHARSET=utf8mb4"
        ))
        .await?;
    admin
        .query_drop(format!("INSERT INTO {db}.t (k2) VALUES ('x')"))
        .await?;
    let dir = tempfile::tempdir()?;
    let worker = start_worker(dir.path()).await?;
    worker
        .put_config(connector_config(&env, "hsnap", &db, &[]))
        .await?;
    wait_for(&worker, "hsnap", &format!("{db}.{db}.t"), DEADLINE, |r| {
        !r.is_empty()
    })
    .await?;
    let records = wait_for(&worker, "hsnap", &db, DEADLINE, |r| {
        r.iter().any(|x| {
            x.value
                .as_ref()
                .is_some_and(|v| entry(v, &db, "t").is_some())
        })
    })
    .await?;
    let record = records
        .iter()
        .filter_map(|r| r.value.as_ref())
        .find(|v| entry(v, &db, "t").is_some())
        .cloned()
        .unwrap_or_default();
    assert_eq!(record["source"]["snapshot"], "true");
    assert_eq!(record["databaseName"], db.as_str());
    assert!(
        record["ddl"]
            .as_str()
            .is_some_and(|d| d.starts_with("CREATE TABLE `t`")),
        "ddl is SHOW CREATE TABLE: {}",
        record["ddl"]
    );
    let e = entry(&record, &db, "t").cloned().unwrap_or_default();
    assert_eq!(e["type"], "CREATE");
    assert_eq!(shape_of(&e), shape_now(&mut admin, &db, "t").await?);
    let table = &e["table"];
    assert_eq!(table["primaryKeyColumnNames"], json!(["id", "k2"]));
    assert_eq!(table["defaultCharsetName"], "utf8mb4");
    let cols = &table["columns"];
    assert_eq!(cols[0]["jdbcType"], 4);
    assert_eq!(cols[0]["autoIncremented"], true);
    assert_eq!(cols[0]["optional"], false);
    assert_eq!(cols[1]["charsetName"], "utf8mb4");
    assert_eq!(
        (
            cols[2]["jdbcType"].clone(),
            cols[2]["length"].clone(),
            cols[2]["scale"].clone()
        ),
        (json!(3), json!(10), json!(2))
    );
    assert_eq!(cols[2]["defaultValueExpression"], "1.50");
    assert_eq!(cols[3]["enumValues"], json!(["'a'", "'b'"]));
    assert_eq!(cols[4]["typeName"], "TEXT");
    // The history is stored on its own partition, beside the binlog position.
    let offsets = worker
        .connector_offsets("hsnap")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let history = offsets
        .iter()
        .find(|o| o.partition["history"] == true)
        .and_then(|o| o.offset.clone())
        .unwrap_or_default();
    assert!(history["tables"][&db]["t"].is_object(), "{history}");
    worker.shutdown().await;
    admin.query_drop(format!("DROP DATABASE {db}")).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn alter_mid_stream_gives_the_structure_right_after_it() -> Result<()> {
    let env = test_env();
    let mut admin = admin(&env).await?;
    let db = fresh_db(&mut admin, "myhalter").await?;
    admin
        .query_drop(format!(
            "CREATE TABLE {db}.t (id INT PRIMARY KEY, a INT, b VARCHAR(10))"
        ))
        .await?;
    let dir = tempfile::tempdir()?;
    let worker = start_worker(dir.path()).await?;
    worker
        .put_config(connector_config(
            &env,
            "halter",
            &db,
            &[("snapshot.mode", "no_data")],
        ))
        .await?;
    wait_streaming(&worker, "halter", &mut admin, &db).await?;
    let mut expected = Vec::new();
    for ddl in [
        format!("ALTER TABLE {db}.t ADD COLUMN c INT NOT NULL DEFAULT 7 AFTER id"),
        format!("ALTER TABLE {db}.t DROP COLUMN a"),
        format!("ALTER TABLE {db}.t MODIFY COLUMN c BIGINT NOT NULL"),
        format!("ALTER TABLE {db}.t CHANGE b bb VARCHAR(30) FIRST"),
        format!("ALTER TABLE {db}.t DROP PRIMARY KEY, ADD PRIMARY KEY (id, c)"),
        format!("ALTER TABLE {db}.t ENGINE=InnoDB, ADD COLUMN d INT"),
    ] {
        admin.query_drop(&ddl).await?;
        expected.push((ddl, shape_now(&mut admin, &db, "t").await?));
    }
    for (ddl, want) in &expected {
        let record = wait_ddl(&worker, "halter", &db, ddl).await?;
        let e = entry(&record, &db, "t").cloned().unwrap_or_default();
        assert_eq!(e["type"], "ALTER", "{ddl}");
        assert_eq!(&shape_of(&e), want, "{ddl}");
    }
    // A statement on no captured table has no entries.
    admin
        .query_drop(format!("CREATE TABLE {db}.probe2 (id INT)"))
        .await?;
    let ddl = format!("TRUNCATE TABLE {db}.t");
    admin.query_drop(&ddl).await?;
    let record = wait_ddl(&worker, "halter", &db, &ddl).await?;
    assert_eq!(record["tableChanges"], json!([]));
    worker.shutdown().await;
    admin.query_drop(format!("DROP DATABASE {db}")).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn catch_up_shows_each_alter_as_of_its_position() -> Result<()> {
    let env = test_env();
    let mut admin = admin(&env).await?;
    let db = fresh_db(&mut admin, "myhcatch").await?;
    admin
        .query_drop(format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, a INT)"))
        .await?;
    let dir = tempfile::tempdir()?;
    let worker = start_worker(dir.path()).await?;
    worker
        .put_config(connector_config(
            &env,
            "hcatch",
            &db,
            &[("snapshot.mode", "no_data")],
        ))
        .await?;
    wait_streaming(&worker, "hcatch", &mut admin, &db).await?;
    worker.stop("hcatch").await?;

    // While the connector is stopped: two ALTERs of the same table.
    let first = format!("ALTER TABLE {db}.t ADD COLUMN c1 VARCHAR(5)");
    admin.query_drop(&first).await?;
    let after_first = shape_now(&mut admin, &db, "t").await?;
    let second = format!("ALTER TABLE {db}.t ADD COLUMN c2 INT AFTER id, DROP COLUMN a");
    admin.query_drop(&second).await?;
    let after_second = shape_now(&mut admin, &db, "t").await?;
    assert_ne!(after_first, after_second);

    worker.resume("hcatch").await?;
    let record = wait_ddl(&worker, "hcatch", &db, &first).await?;
    let e = entry(&record, &db, "t").cloned().unwrap_or_default();
    assert_eq!(
        shape_of(&e),
        after_first,
        "the structure after ALTER 1, not today's"
    );
    let record = wait_ddl(&worker, "hcatch", &db, &second).await?;
    let e = entry(&record, &db, "t").cloned().unwrap_or_default();
    assert_eq!(shape_of(&e), after_second);
    worker.shutdown().await;
    admin.query_drop(format!("DROP DATABASE {db}")).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn unparsable_ddl_reads_information_schema_when_live_and_keeps_the_old_one_in_catch_up()
-> Result<()> {
    let env = test_env();
    let mut admin = admin(&env).await?;
    let db = fresh_db(&mut admin, "myhparse").await?;
    admin
        .query_drop(format!("CREATE TABLE {db}.t (id INT PRIMARY KEY)"))
        .await?;
    let dir = tempfile::tempdir()?;
    let worker = start_worker(dir.path()).await?;
    worker
        .put_config(connector_config(
            &env,
            "hparse",
            &db,
            &[("snapshot.mode", "no_data")],
        ))
        .await?;
    wait_streaming(&worker, "hparse", &mut admin, &db).await?;
    // MariaDB accepts ADD COLUMN (list); the DDL parser does not.
    let live = format!("ALTER TABLE {db}.t ADD COLUMN (p INT, q INT)");
    admin.query_drop(&live).await?;
    let want = shape_now(&mut admin, &db, "t").await?;
    let record = wait_ddl(&worker, "hparse", &db, &live).await?;
    let e = entry(&record, &db, "t").cloned().unwrap_or_default();
    assert_eq!(shape_of(&e), want, "live: read from information_schema");

    worker.stop("hparse").await?;
    let old = format!("ALTER TABLE {db}.t ADD COLUMN (r INT)");
    admin.query_drop(&old).await?;
    let next = format!("ALTER TABLE {db}.t ADD COLUMN z INT");
    admin.query_drop(&next).await?;
    worker.resume("hparse").await?;
    let record = wait_ddl(&worker, "hparse", &db, &old).await?;
    assert_eq!(
        record["tableChanges"],
        json!([]),
        "catch-up: not followed, no entry"
    );
    let record = wait_ddl(&worker, "hparse", &db, &next).await?;
    let e = entry(&record, &db, "t").cloned().unwrap_or_default();
    let names: Vec<String> = shape_of(&e).columns.into_iter().map(|c| c.0).collect();
    assert_eq!(names, ["id", "p", "q", "z"], "the old definition was kept");
    worker.shutdown().await;
    admin.query_drop(format!("DROP DATABASE {db}")).await?;
    Ok(())
}

#[test]
fn history_survives_a_crash() -> Result<()> {
    let env = test_env();
    let dir = tempfile::tempdir()?;
    let setup = tokio::runtime::Runtime::new()?;
    let db = setup.block_on(async {
        let mut admin = admin(&env).await?;
        let db = fresh_db(&mut admin, "myhcrash").await?;
        admin
            .query_drop(format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, a INT)"))
            .await?;
        anyhow::Ok(db)
    })?;
    let first_ddl = format!("ALTER TABLE {db}.t ADD COLUMN x INT");
    let first = tokio::runtime::Runtime::new()?;
    first.block_on(async {
        let mut admin = admin(&env).await?;
        let worker = start_worker(dir.path()).await?;
        worker
            .put_config(connector_config(
                &env,
                "hcrash",
                &db,
                &[("snapshot.mode", "no_data")],
            ))
            .await?;
        wait_streaming(&worker, "hcrash", &mut admin, &db).await?;
        admin.query_drop(&first_ddl).await?;
        wait_ddl(&worker, "hcrash", &db, &first_ddl).await?;
        // Until the history with column x is committed.
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let offsets = worker
                .connector_offsets("hcrash")
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let has_x = offsets.iter().any(|o| {
                o.partition["history"] == true
                    && o.offset.as_ref().is_some_and(|v| {
                        v["tables"][&db]["t"]["columns"]
                            .as_array()
                            .is_some_and(|c| c.iter().any(|c| c["name"] == "x"))
                    })
            });
            if has_x {
                break;
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "history not committed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        anyhow::Ok(())
    })?;
    // The crash: the first worker's tasks stop at their next await point.
    first.shutdown_background();

    let second = tokio::runtime::Runtime::new()?;
    second.block_on(async {
        let mut admin = admin(&env).await?;
        // While down, then after the restart: each record shows its own position's table.
        let down = format!("ALTER TABLE {db}.t ADD COLUMN y INT AFTER id");
        admin.query_drop(&down).await?;
        let after_down = shape_now(&mut admin, &db, "t").await?;
        let worker = start_worker(dir.path()).await?;
        wait_running(&worker, "hcrash").await?;
        let live = format!("ALTER TABLE {db}.t DROP COLUMN a");
        admin.query_drop(&live).await?;
        let after_live = shape_now(&mut admin, &db, "t").await?;
        let record = wait_ddl(&worker, "hcrash", &db, &down).await?;
        let e = entry(&record, &db, "t").cloned().unwrap_or_default();
        assert_eq!(shape_of(&e), after_down);
        let record = wait_ddl(&worker, "hcrash", &db, &live).await?;
        let e = entry(&record, &db, "t").cloned().unwrap_or_default();
        assert_eq!(shape_of(&e), after_live);
        worker.shutdown().await;
        admin.query_drop(format!("DROP DATABASE {db}")).await?;
        anyhow::Ok(())
    })?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn offsets_api_keeps_the_history_consistent() -> Result<()> {
    use tributary_runtime::worker::admin::{AdminError, ConnectorOffset};
    let env = test_env();
    let mut admin = admin(&env).await?;
    let db = fresh_db(&mut admin, "myhoff").await?;
    admin
        .query_drop(format!("CREATE TABLE {db}.t (id INT PRIMARY KEY)"))
        .await?;
    let dir = tempfile::tempdir()?;
    let worker = start_worker(dir.path()).await?;
    worker
        .put_config(connector_config(
            &env,
            "hoff",
            &db,
            &[("snapshot.mode", "no_data")],
        ))
        .await?;
    wait_streaming(&worker, "hoff", &mut admin, &db).await?;
    worker.stop("hoff").await?;
    let offsets = worker
        .connector_offsets("hoff")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(offsets.len(), 2, "{offsets:?}");
    let main = offsets
        .iter()
        .find(|o| o.partition == json!({"server": db}))
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no main partition in {offsets:?}"))?;
    let history = offsets
        .iter()
        .find(|o| o.partition["history"] == true)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no history partition in {offsets:?}"))?;
    // The history cannot be set by hand.
    match worker
        .alter_offsets("hoff", vec![history.clone()], false)
        .await
    {
        Err(AdminError::BadRequest(m)) => assert!(m.contains("schema history"), "{m}"),
        other => panic!("history partition accepted: {other:?}"),
    }
    let creates = |records: &[Rec]| {
        records
            .iter()
            .filter(|r| {
                r.value
                    .as_ref()
                    .is_some_and(|v| entry(v, &db, "t").is_some_and(|e| e["type"] == "CREATE"))
            })
            .count()
    };
    let before = creates(&read_topic(&worker, &db)?);
    assert_eq!(before, 1, "seeded once at the first start");
    // A main position set by hand: the history is read again (CREATE records again).
    worker
        .alter_offsets(
            "hoff",
            vec![ConnectorOffset {
                partition: main.partition.clone(),
                offset: main.offset.clone(),
            }],
            false,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    worker.resume("hoff").await?;
    wait_for(&worker, "hoff", &db, DEADLINE, |r| creates(r) == 2).await?;
    worker.shutdown().await;
    admin.query_drop(format!("DROP DATABASE {db}")).await?;
    Ok(())
}

/// The column names of a `tableChanges` entry, in order.
fn column_names(entry: &Json) -> Vec<String> {
    shape_of(entry).columns.into_iter().map(|c| c.0).collect()
}

/// The column `name` of a `tableChanges` entry.
fn column<'a>(entry: &'a Json, name: &str) -> &'a Json {
    entry["table"]["columns"]
        .as_array()
        .and_then(|cols| cols.iter().find(|c| c["name"] == name))
        .unwrap_or(&Json::Null)
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_and_latin1_defaults_are_read_without_panicking() -> Result<()> {
    let env = test_env();
    let mut admin = admin(&env).await?;
    let db = fresh_db(&mut admin, "myhbin").await?;
    // A BINARY default that is not UTF-8, and latin1 defaults and comments beyond ASCII: in
    // information_schema and SHOW CREATE TABLE alike.
    admin
        .query_drop(format!(
            "CREATE TABLE {db}.t (id INT PRIMARY KEY, b BINARY(2) DEFAULT x'FFFE', \
             l VARCHAR(5) CHARACTER SET latin1 DEFAULT 'é', \
             c CHAR(3) CHARACTER SET latin1 DEFAULT 'ñ' COMMENT 'ç') DEFAULT CHARSET=latin1"
        ))
        .await?;
    admin
        .query_drop(format!("INSERT INTO {db}.t (id) VALUES (1)"))
        .await?;
    let dir = tempfile::tempdir()?;
    let worker = start_worker(dir.path()).await?;
    worker
        .put_config(connector_config(&env, "hbin", &db, &[]))
        .await?;
    let records = wait_for(&worker, "hbin", &db, DEADLINE, |r| {
        r.iter().any(|x| {
            x.value
                .as_ref()
                .is_some_and(|v| entry(v, &db, "t").is_some())
        })
    })
    .await?;
    let record = records
        .iter()
        .filter_map(|r| r.value.as_ref())
        .find(|v| entry(v, &db, "t").is_some())
        .cloned()
        .unwrap_or_default();
    assert!(
        record["ddl"]
            .as_str()
            .is_some_and(|d| d.starts_with("CREATE TABLE `t`")),
        "{}",
        record["ddl"]
    );
    let e = entry(&record, &db, "t").cloned().unwrap_or_default();
    assert_eq!(e["type"], "CREATE");
    assert_eq!(column_names(&e), ["id", "b", "l", "c"]);
    assert_eq!(shape_of(&e), shape_now(&mut admin, &db, "t").await?);
    assert_eq!(e["table"]["defaultCharsetName"], "latin1");
    assert_eq!(column(&e, "b")["hasDefaultValue"], true);
    assert_eq!(column(&e, "l")["defaultValueExpression"], "é");
    assert_eq!(column(&e, "l")["charsetName"], "latin1");
    assert_eq!(column(&e, "c")["defaultValueExpression"], "ñ");
    assert_eq!(column(&e, "c")["comment"], "ç");
    wait_streaming(&worker, "hbin", &mut admin, &db).await?;

    // Mid-stream: one ALTER the history follows itself, one it reads from
    // information_schema (the parser refuses ADD COLUMN with a list).
    let followed =
        format!("ALTER TABLE {db}.t ADD COLUMN m BINARY(1) DEFAULT x'80', DEFAULT CHARSET=utf8mb4");
    admin.query_drop(&followed).await?;
    let want = shape_now(&mut admin, &db, "t").await?;
    let record = wait_ddl(&worker, "hbin", &db, &followed).await?;
    let e = entry(&record, &db, "t").cloned().unwrap_or_default();
    assert_eq!(column_names(&e), ["id", "b", "l", "c", "m"]);
    assert_eq!(shape_of(&e), want);
    assert_eq!(e["table"]["defaultCharsetName"], "utf8mb4");
    let read = format!("ALTER TABLE {db}.t ADD COLUMN (p INT, q VARCHAR(2) DEFAULT 'ü')");
    admin.query_drop(&read).await?;
    let want = shape_now(&mut admin, &db, "t").await?;
    let record = wait_ddl(&worker, "hbin", &db, &read).await?;
    let e = entry(&record, &db, "t").cloned().unwrap_or_default();
    assert_eq!(e["type"], "ALTER");
    assert_eq!(column_names(&e), ["id", "b", "l", "c", "m", "p", "q"]);
    assert_eq!(shape_of(&e), want, "read from information_schema");
    assert_eq!(column(&e, "b")["hasDefaultValue"], true);
    assert_eq!(column(&e, "l")["defaultValueExpression"], "é");
    assert_eq!(column(&e, "q")["defaultValueExpression"], "ü");
    // Rows still flow: the task did not fail.
    admin
        .query_drop(format!("INSERT INTO {db}.t (id) VALUES (2)"))
        .await?;
    wait_for(&worker, "hbin", &format!("{db}.{db}.t"), DEADLINE, |r| {
        r.iter().any(|x| x.after().is_some_and(|a| a["id"] == 2))
    })
    .await?;
    worker.shutdown().await;
    admin.query_drop(format!("DROP DATABASE {db}")).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn unparsable_alter_renaming_out_of_the_captured_tables_drops_it() -> Result<()> {
    let env = test_env();
    let mut admin = admin(&env).await?;
    let db = fresh_db(&mut admin, "myhren").await?;
    admin
        .query_drop(format!("CREATE TABLE {db}.t (id INT PRIMARY KEY)"))
        .await?;
    let dir = tempfile::tempdir()?;
    let worker = start_worker(dir.path()).await?;
    let excluded = format!("{db}.archive_t");
    worker
        .put_config(connector_config(
            &env,
            "hren",
            &db,
            &[
                ("snapshot.mode", "no_data"),
                ("table.exclude.list", excluded.as_str()),
            ],
        ))
        .await?;
    wait_streaming(&worker, "hren", &mut admin, &db).await?;
    let ddl = format!("ALTER TABLE {db}.t ADD COLUMN (p INT, q INT), RENAME TO {db}.archive_t");
    admin.query_drop(&ddl).await?;
    let record = wait_ddl(&worker, "hren", &db, &ddl).await?;
    let changes = record["tableChanges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["type"], "DROP");
    assert_eq!(changes[0]["id"], format!("\"{db}\".\"t\""));
    // The stored history forgets t.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let offsets = worker
            .connector_offsets("hren")
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let history = offsets
            .iter()
            .find(|o| o.partition["history"] == true)
            .and_then(|o| o.offset.clone())
            .unwrap_or_default();
        if history["tables"].is_object() && history["tables"][&db]["t"].is_null() {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "t still in the history: {history}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    worker.shutdown().await;
    admin.query_drop(format!("DROP DATABASE {db}")).await?;
    Ok(())
}
