//! The sink writing into the real MariaDB.

use anyhow::Result;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use serde_json::json;
use tributary_runtime::dead_letter::ErrantRecordReporter;

use crate::env::{TestEnv, unique_name, with_database};
use crate::harness::*;

async fn database() -> Result<(String, Conn)> {
    let env = TestEnv::load();
    let name = unique_name("jdbcsink");
    let mut admin = Conn::new(Opts::from_url(&env.mariadb_url)?).await?;
    admin.query_drop(format!("CREATE DATABASE {name}")).await?;
    admin.disconnect().await?;
    let url = with_database(&env.mariadb_url, &name);
    let conn = Conn::new(Opts::from_url(&url)?).await?;
    Ok((url, conn))
}

const UPSERT: &[(&str, &str)] = &[
    ("insert.mode", "upsert"),
    ("primary.key.mode", "record_key"),
    ("delete.enabled", "true"),
    ("truncate.enabled", "true"),
    ("schema.evolution", "basic"),
];

async fn rows(conn: &mut Conn, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
    let rows: Vec<mysql_async::Row> = conn.query(sql).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (0..r.len())
                .map(|i| r.get::<Option<String>, _>(i).flatten())
                .collect()
        })
        .collect())
}

#[tokio::test]
async fn types_round_trip_toast_and_delete() -> Result<()> {
    let (url, mut conn) = database().await?;
    let mut task = open_task(&url, UPSERT, ErrantRecordReporter::fail_fast()).await?;
    let fields = typed_fields(true);
    let topic = "inv.public.orders";
    let mut batch = Vec::new();
    for id in 1..=3 {
        batch.push(record(
            topic,
            id as u64 - 1,
            Some(&key(id)),
            Some(&event(
                &fields,
                "c",
                None,
                Some(typed_row(id, "first", true)),
            )),
        ));
    }
    task.put(batch)
        .await
        .map_err(|e| anyhow::anyhow!(e.trace()))?;
    task.flush().await.map_err(|e| anyhow::anyhow!(e.trace()))?;
    let s = |v: &str| Some(v.to_owned());
    let got = rows(
        &mut conn,
        "SELECT CAST(id AS CHAR), CAST(amount AS CHAR), CAST(ts AS CHAR), CAST(tstz AS CHAR), CAST(day AS CHAR), \
         JSON_EXTRACT(doc, '$.a[1]'), HEX(`blob`), uid, mood, CAST(score AS CHAR), CAST(flag AS CHAR), note, JSON_EXTRACT(tags, '$[1]') \
         FROM inv_public_orders ORDER BY id",
    )
    .await?;
    assert_eq!(
        got[0],
        vec![
            s("1"),
            s("-12345.67"),
            s("2024-03-01 12:30:45.123457"),
            s("2024-03-01 12:30:45.123456"),
            s("2024-03-01"),
            s("2"),
            s("00FF10"),
            s("123e4567-e89b-12d3-a456-426614174000"),
            s("happy"),
            s("1.5"),
            s("1"),
            s("first"),
            s("\"y \\\"q\\\"\""),
        ]
    );
    let mut toast = typed_row(1, PLACEHOLDER, true);
    toast["score"] = json!(9.25);
    task.put(vec![
        record(
            topic,
            3,
            Some(&key(1)),
            Some(&event(&fields, "u", None, Some(toast))),
        ),
        record(
            topic,
            4,
            Some(&key(2)),
            Some(&event(
                &fields,
                "d",
                Some(typed_row(2, "first", true)),
                None,
            )),
        ),
    ])
    .await
    .map_err(|e| anyhow::anyhow!(e.trace()))?;
    task.flush().await.map_err(|e| anyhow::anyhow!(e.trace()))?;
    let got = rows(
        &mut conn,
        "SELECT CAST(id AS CHAR), CAST(score AS CHAR), note FROM inv_public_orders ORDER BY id",
    )
    .await?;
    assert_eq!(
        got,
        vec![
            vec![s("1"), s("9.25"), s("first")],
            vec![s("3"), s("1.5"), s("first")]
        ]
    );
    Ok(())
}

#[tokio::test]
async fn evolves_and_handles_a_poison_row() -> Result<()> {
    let (url, mut conn) = database().await?;
    let (reporter, _dir) = tolerant()?;
    let mut task = open_task(&url, UPSERT, reporter).await?;
    let v1 = vec![field("id", "int64", false), field("qty", "int32", false)];
    task.put(vec![record(
        "items",
        0,
        Some(&key(1)),
        Some(&event(&v1, "c", None, Some(json!({"id": 1, "qty": 5})))),
    )])
    .await
    .map_err(|e| anyhow::anyhow!(e.trace()))?;
    task.flush().await.map_err(|e| anyhow::anyhow!(e.trace()))?;
    let v2 = vec![
        field("id", "int64", false),
        field("qty", "int64", true),
        field("color", "string", true),
    ];
    task.put(vec![
        record(
            "items",
            1,
            Some(&key(2)),
            Some(&event(
                &v2,
                "c",
                None,
                Some(json!({"id": 2, "qty": 5_000_000_000_i64, "color": "red"})),
            )),
        ),
        record(
            "items",
            2,
            Some(&key(3)),
            Some(&event(
                &v2,
                "c",
                None,
                Some(json!({"id": 3, "qty": null, "color": null})),
            )),
        ),
    ])
    .await
    .map_err(|e| anyhow::anyhow!(e.trace()))?;
    task.flush().await.map_err(|e| anyhow::anyhow!(e.trace()))?;
    let s = |v: &str| Some(v.to_owned());
    let cols = rows(&mut conn, "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'items' ORDER BY ORDINAL_POSITION").await?;
    assert_eq!(
        cols,
        vec![
            vec![s("id"), s("bigint(20)"), s("NO")],
            vec![s("qty"), s("bigint(20)"), s("YES")],
            vec![s("color"), s("longtext"), s("YES")]
        ]
    );
    // A value too long for a narrowed column is a poison row: skipped, the rest written.
    conn.query_drop("ALTER TABLE items MODIFY color varchar(4)")
        .await?;
    task.put(vec![
        record(
            "items",
            3,
            Some(&key(4)),
            Some(&event(
                &v2,
                "c",
                None,
                Some(json!({"id": 4, "qty": 1, "color": "blue"})),
            )),
        ),
        record(
            "items",
            4,
            Some(&key(5)),
            Some(&event(
                &v2,
                "c",
                None,
                Some(json!({"id": 5, "qty": 1, "color": "turquoise"})),
            )),
        ),
        record(
            "items",
            5,
            Some(&key(6)),
            Some(&event(
                &v2,
                "c",
                None,
                Some(json!({"id": 6, "qty": 1, "color": "red"})),
            )),
        ),
    ])
    .await
    .map_err(|e| anyhow::anyhow!(e.trace()))?;
    task.flush().await.map_err(|e| anyhow::anyhow!(e.trace()))?;
    let got = rows(
        &mut conn,
        "SELECT CAST(id AS CHAR), color FROM items ORDER BY id",
    )
    .await?;
    assert_eq!(
        got,
        vec![
            vec![s("1"), None],
            vec![s("2"), s("red")],
            vec![s("3"), None],
            vec![s("4"), s("blue")],
            vec![s("6"), s("red")]
        ]
    );
    Ok(())
}

/// MariaDB's TRUNCATE commits implicitly, so the sink empties the table with DELETE inside
/// the flush's transaction: a truncate followed by a row in one flush leaves only that row,
/// and with `exactly.once` the stored next offset moves in the same transaction. A replay of
/// the whole batch after a restart (the consumer offset was never committed) changes nothing.
#[tokio::test]
async fn truncate_and_a_row_in_one_flush_with_exactly_once() -> Result<()> {
    let (url, mut conn) = database().await?;
    let mut config = UPSERT.to_vec();
    config.push(("exactly.once", "true"));
    let fields = vec![field("id", "int64", false), field("name", "string", true)];
    let row =
        |id: i64, name: &str| event(&fields, "c", None, Some(json!({"id": id, "name": name})));
    let first: Vec<_> = (1..=3)
        .map(|id| {
            record(
                "shop.items",
                id as u64 - 1,
                Some(&key(id)),
                Some(&row(id, "x")),
            )
        })
        .collect();
    let second = || {
        vec![
            record("shop.items", 3, None, Some(&truncate_event())),
            record("shop.items", 4, Some(&key(4)), Some(&row(4, "after"))),
        ]
    };
    let mut task = open_task(&url, &config, ErrantRecordReporter::fail_fast()).await?;
    task.put(first.clone())
        .await
        .map_err(|e| anyhow::anyhow!(e.trace()))?;
    task.flush().await.map_err(|e| anyhow::anyhow!(e.trace()))?;
    assert_eq!(
        rows(&mut conn, "SELECT COUNT(*) FROM shop_items").await?,
        vec![vec![Some("3".to_owned())]]
    );
    task.put(second())
        .await
        .map_err(|e| anyhow::anyhow!(e.trace()))?;
    task.flush().await.map_err(|e| anyhow::anyhow!(e.trace()))?;
    task.close().await;
    let s = |v: &str| Some(v.to_owned());
    let table = "SELECT CAST(id AS CHAR), name FROM shop_items ORDER BY id";
    assert_eq!(
        rows(&mut conn, table).await?,
        vec![vec![s("4"), s("after")]]
    );
    let stored = "SELECT topic, CAST(`partition` AS CHAR), CAST(next_offset AS CHAR) \
                  FROM __tributary_sink_offsets WHERE connector = 'jdbc-test'";
    assert_eq!(
        rows(&mut conn, stored).await?,
        vec![vec![s("shop.items"), s("0"), s("5")]]
    );

    // Replayed from offset 0 by a new task: everything is below the stored offset.
    let mut task = open_task(&url, &config, ErrantRecordReporter::fail_fast()).await?;
    let mut replay = first;
    replay.extend(second());
    task.put(replay)
        .await
        .map_err(|e| anyhow::anyhow!(e.trace()))?;
    task.flush().await.map_err(|e| anyhow::anyhow!(e.trace()))?;
    assert_eq!(
        rows(&mut conn, table).await?,
        vec![vec![s("4"), s("after")]]
    );
    Ok(())
}
