//! The sink writing into the real Postgres.

use anyhow::{Context, Result};
use serde_json::json;
use tokio_postgres::{Client, NoTls};
use tributary_runtime::dead_letter::ErrantRecordReporter;
use tributary_runtime::record::{ConsumerOffsets, TopicPartition};

use crate::env::{TestEnv, unique_name, with_database};
use crate::harness::*;

/// A fresh database: its URL and a client on it.
async fn database() -> Result<(String, Client)> {
    let env = TestEnv::load();
    let name = unique_name("jdbcsink");
    let (admin, conn) = tokio_postgres::connect(&env.pg_url, NoTls).await?;
    tokio::spawn(conn);
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    let url = with_database(&env.pg_url, &name);
    let (client, conn) = tokio_postgres::connect(&url, NoTls).await?;
    tokio::spawn(conn);
    Ok((url, client))
}

const UPSERT: &[(&str, &str)] = &[
    ("insert.mode", "upsert"),
    ("primary.key.mode", "record_key"),
    ("delete.enabled", "true"),
    ("truncate.enabled", "true"),
    ("schema.evolution", "basic"),
];

async fn rows(client: &Client, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
    let rows = client
        .query(sql, &[])
        .await
        .with_context(|| sql.to_owned())?;
    Ok(rows
        .iter()
        .map(|r| {
            (0..r.len())
                .map(|i| r.get::<_, Option<String>>(i))
                .collect()
        })
        .collect())
}

#[tokio::test]
async fn types_round_trip_toast_delete_and_reduction() -> Result<()> {
    let (url, client) = database().await?;
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
    // Same key twice in one batch: the last one wins.
    batch.push(record(
        topic,
        3,
        Some(&key(3)),
        Some(&event(
            &fields,
            "u",
            None,
            Some(typed_row(3, "second", true)),
        )),
    ));
    task.put(batch)
        .await
        .map_err(|e| anyhow::anyhow!(e.trace()))?;
    task.flush().await.map_err(|e| anyhow::anyhow!(e.trace()))?;

    let got = rows(
        &client,
        "SELECT id::text, amount::text, ts::text, (tstz AT TIME ZONE 'UTC')::text, day::text, doc::text, \
         encode(blob, 'hex'), uid::text, mood, score::text, flag::text, note, tags::text \
         FROM inv_public_orders ORDER BY id",
    )
    .await?;
    assert_eq!(got.len(), 3);
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(
        got[0],
        vec![
            s("1"),
            s("-12345.67"),
            s("2024-03-01 12:30:45.123457"),
            s("2024-03-01 12:30:45.123456"),
            s("2024-03-01"),
            s("{\"a\": [1, 2]}"),
            s("00ff10"),
            s("123e4567-e89b-12d3-a456-426614174000"),
            s("happy"),
            s("1.5"),
            s("true"),
            s("first"),
            s("{x,\"y \\\"q\\\"\"}"),
        ]
    );
    assert_eq!(got[2][11], s("second"));
    // Column types from the Connect schema.
    let types = rows(
        &client,
        "SELECT column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_name = 'inv_public_orders' ORDER BY ordinal_position",
    )
    .await?;
    let ty = |c: &str| {
        types
            .iter()
            .find(|r| r[0].as_deref() == Some(c))
            .and_then(|r| r[1].clone())
    };
    assert_eq!(ty("amount").as_deref(), Some("numeric"));
    assert_eq!(ty("tstz").as_deref(), Some("timestamp with time zone"));
    assert_eq!(ty("ts").as_deref(), Some("timestamp without time zone"));
    assert_eq!(ty("doc").as_deref(), Some("jsonb"));
    assert_eq!(ty("uid").as_deref(), Some("uuid"));
    assert_eq!(ty("tags").as_deref(), Some("ARRAY"));
    let pk = rows(
        &client,
        "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid \
         AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'inv_public_orders'::regclass AND i.indisprimary",
    )
    .await?;
    assert_eq!(pk, vec![vec![s("id")]]);

    // An update with unchanged TOAST columns (note, blob, tags) keeps the stored values;
    // a delete removes row 2.
    let mut toast = typed_row(1, PLACEHOLDER, true);
    toast["score"] = json!(9.25);
    toast["blob"] = json!(base64_of(PLACEHOLDER));
    toast["tags"] = json!([PLACEHOLDER]);
    task.put(vec![
        record(
            topic,
            4,
            Some(&key(1)),
            Some(&event(&fields, "u", None, Some(toast))),
        ),
        record(
            topic,
            5,
            Some(&key(2)),
            Some(&event(
                &fields,
                "d",
                Some(typed_row(2, "first", true)),
                None,
            )),
        ),
        record(topic, 6, Some(&key(2)), None),
    ])
    .await
    .map_err(|e| anyhow::anyhow!(e.trace()))?;
    let mut consumed = ConsumerOffsets::new();
    consumed.insert(TopicPartition::new(topic, 0), 7);
    let durable = task
        .pre_commit(&consumed)
        .await
        .map_err(|e| anyhow::anyhow!(e.trace()))?;
    assert_eq!(durable, consumed);
    let got = rows(&client, "SELECT id::text, score::text, note, encode(blob, 'hex'), tags::text FROM inv_public_orders ORDER BY id").await?;
    assert_eq!(
        got,
        vec![
            vec![
                s("1"),
                s("9.25"),
                s("first"),
                s("00ff10"),
                s("{x,\"y \\\"q\\\"\"}")
            ],
            vec![
                s("3"),
                s("1.5"),
                s("second"),
                s("00ff10"),
                s("{x,\"y \\\"q\\\"\"}")
            ],
        ]
    );
    let leaked = rows(&client, &format!("SELECT count(*)::text FROM inv_public_orders WHERE note = '{PLACEHOLDER}' OR tags::text LIKE '%{PLACEHOLDER}%'")).await?;
    assert_eq!(leaked, vec![vec![s("0")]]);
    task.close().await;
    Ok(())
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn evolves_adds_widens_and_relaxes_then_truncates() -> Result<()> {
    let (url, client) = database().await?;
    let mut task = open_task(&url, UPSERT, ErrantRecordReporter::fail_fast()).await?;
    let v1 = vec![
        field("id", "int64", false),
        field("qty", "int32", false),
        logical(
            "price",
            "bytes",
            "org.apache.kafka.connect.data.Decimal",
            &[("scale", "2"), ("connect.decimal.precision", "5")],
        ),
    ];
    let row1 = json!({"id": 1, "qty": 5, "price": decimal_b64(99_999)});
    task.put(vec![record(
        "shop.items",
        0,
        Some(&key(1)),
        Some(&event(&v1, "c", None, Some(row1))),
    )])
    .await
    .map_err(|e| anyhow::anyhow!(e.trace()))?;
    task.flush().await.map_err(|e| anyhow::anyhow!(e.trace()))?;
    // The source widened qty to BIGINT (now nullable), price to DECIMAL(10,2), added a column.
    let v2 = vec![
        field("id", "int64", false),
        field("qty", "int64", true),
        logical(
            "price",
            "bytes",
            "org.apache.kafka.connect.data.Decimal",
            &[("scale", "2"), ("connect.decimal.precision", "10")],
        ),
        field("color", "string", true),
    ];
    let row2 = json!({"id": 2, "qty": 5_000_000_000_i64, "price": decimal_b64(1_234_567_801), "color": "red"});
    let row3 = json!({"id": 3, "qty": null, "price": null, "color": null});
    task.put(vec![
        record(
            "shop.items",
            1,
            Some(&key(2)),
            Some(&event(&v2, "c", None, Some(row2))),
        ),
        record(
            "shop.items",
            2,
            Some(&key(3)),
            Some(&event(&v2, "c", None, Some(row3))),
        ),
    ])
    .await
    .map_err(|e| anyhow::anyhow!(e.trace()))?;
    task.flush().await.map_err(|e| anyhow::anyhow!(e.trace()))?;
    let cols = rows(
        &client,
        "SELECT column_name::text, format_type(a.atttypid, a.atttypmod), is_nullable::text FROM information_schema.columns c \
         JOIN pg_attribute a ON a.attrelid = 'shop_items'::regclass AND a.attname = c.column_name \
         WHERE table_name = 'shop_items' ORDER BY ordinal_position",
    )
    .await?;
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(
        cols,
        vec![
            vec![s("id"), s("bigint"), s("NO")],
            vec![s("qty"), s("bigint"), s("YES")],
            vec![s("price"), s("numeric(10,2)"), s("YES")],
            vec![s("color"), s("text"), s("YES")],
        ]
    );
    let got = rows(
        &client,
        "SELECT id::text, qty::text, price::text, color FROM shop_items ORDER BY id",
    )
    .await?;
    assert_eq!(
        got[1],
        vec![s("2"), s("5000000000"), s("12345678.01"), s("red")]
    );
    assert_eq!(got[0], vec![s("1"), s("5"), s("999.99"), None]);
    // Truncate, then one more row in the same batch.
    let row4 = json!({"id": 4, "qty": 1, "price": null, "color": "blue"});
    task.put(vec![
        record("shop.items", 3, None, Some(&truncate_event())),
        record(
            "shop.items",
            4,
            Some(&key(4)),
            Some(&event(&v2, "c", None, Some(row4))),
        ),
    ])
    .await
    .map_err(|e| anyhow::anyhow!(e.trace()))?;
    task.flush().await.map_err(|e| anyhow::anyhow!(e.trace()))?;
    let got = rows(&client, "SELECT id::text FROM shop_items ORDER BY id").await?;
    assert_eq!(got, vec![vec![s("4")]]);
    Ok(())
}

#[tokio::test]
async fn poison_row_is_reported_and_the_rest_flows() -> Result<()> {
    let (url, client) = database().await?;
    client
        .batch_execute("CREATE TABLE people (id bigint PRIMARY KEY, name varchar(5) NOT NULL)")
        .await?;
    let fields = vec![field("id", "int64", false), field("name", "string", true)];
    let batch = |base: u64| {
        vec![
            record(
                "people",
                base,
                Some(&key(1)),
                Some(&event(
                    &fields,
                    "c",
                    None,
                    Some(json!({"id": 1, "name": "ann"})),
                )),
            ),
            record(
                "people",
                base + 1,
                Some(&key(2)),
                Some(&event(
                    &fields,
                    "c",
                    None,
                    Some(json!({"id": 2, "name": "much too long"})),
                )),
            ),
            record(
                "people",
                base + 2,
                Some(&key(3)),
                Some(&event(
                    &fields,
                    "c",
                    None,
                    Some(json!({"id": 3, "name": null})),
                )),
            ),
            record(
                "people",
                base + 3,
                Some(&key(4)),
                Some(&event(
                    &fields,
                    "c",
                    None,
                    Some(json!({"id": 4, "name": "bo"})),
                )),
            ),
        ]
    };
    // errors.tolerance=none: the task fails naming the record, nothing is committed.
    let mut strict = open_task(
        &url,
        &[
            ("insert.mode", "upsert"),
            ("primary.key.mode", "record_key"),
        ],
        ErrantRecordReporter::fail_fast(),
    )
    .await?;
    // A put writes what it was handed before returning, so the put itself fails.
    let err = strict
        .put(batch(0))
        .await
        .expect_err("a rejected row fails the task");
    assert!(err.message.contains("people-0@1"), "{}", err.trace());
    let count = rows(&client, "SELECT count(*)::text FROM people").await?;
    assert_eq!(count, vec![vec![Some("0".to_owned())]]);
    // errors.tolerance=all: the bad rows are skipped, the good ones written.
    let (reporter, _dir) = tolerant()?;
    let mut lenient = open_task(
        &url,
        &[
            ("insert.mode", "upsert"),
            ("primary.key.mode", "record_key"),
        ],
        reporter,
    )
    .await?;
    lenient
        .put(batch(0))
        .await
        .map_err(|e| anyhow::anyhow!(e.trace()))?;
    lenient
        .flush()
        .await
        .map_err(|e| anyhow::anyhow!(e.trace()))?;
    let got = rows(&client, "SELECT id::text, name FROM people ORDER BY id").await?;
    assert_eq!(
        got,
        vec![
            vec![Some("1".into()), Some("ann".into())],
            vec![Some("4".into()), Some("bo".into())]
        ]
    );
    Ok(())
}

#[tokio::test]
async fn exactly_once_skips_what_the_target_already_has() -> Result<()> {
    let (url, client) = database().await?;
    let config = [
        ("insert.mode", "insert"),
        ("primary.key.mode", "kafka"),
        ("schema.evolution", "basic"),
        ("exactly.once", "true"),
    ];
    let fields = vec![field("n", "int64", false)];
    let records = |from: u64, to: u64| -> Vec<_> {
        (from..to)
            .map(|o| {
                record(
                    "counts",
                    o,
                    None,
                    Some(&event(&fields, "c", None, Some(json!({"n": o})))),
                )
            })
            .collect()
    };
    let mut task = open_task(&url, &config, ErrantRecordReporter::fail_fast()).await?;
    task.put(records(0, 10))
        .await
        .map_err(|e| anyhow::anyhow!(e.trace()))?;
    task.flush().await.map_err(|e| anyhow::anyhow!(e.trace()))?;
    task.close().await;
    // The consumer offset was never committed: a new task is handed 0..15 again. Plain
    // inserts into a kafka-keyed table would fail on the duplicates if they were written.
    let mut task = open_task(&url, &config, ErrantRecordReporter::fail_fast()).await?;
    task.put(records(0, 15))
        .await
        .map_err(|e| anyhow::anyhow!(e.trace()))?;
    task.flush().await.map_err(|e| anyhow::anyhow!(e.trace()))?;
    let got = rows(
        &client,
        "SELECT count(*)::text, count(DISTINCT n)::text, max(__connect_offset)::text FROM counts",
    )
    .await?;
    assert_eq!(
        got,
        vec![vec![
            Some("15".into()),
            Some("15".into()),
            Some("14".into())
        ]]
    );
    let stored = rows(&client, "SELECT topic, \"partition\"::text, next_offset::text FROM __tributary_sink_offsets WHERE connector = 'jdbc-test'").await?;
    assert_eq!(
        stored,
        vec![vec![
            Some("counts".into()),
            Some("0".into()),
            Some("15".into())
        ]]
    );
    Ok(())
}

#[tokio::test]
async fn flat_rows_keyed_by_value_fields_and_update_mode() -> Result<()> {
    let (url, client) = database().await?;
    let flat = |id: i64, region: &str, total: i64| {
        json!({"schema": {"type": "struct", "optional": false, "fields": [
            field("id", "int64", false), field("Region", "string", false), field("total", "int64", true)]},
            "payload": {"id": id, "Region": region, "total": total}})
    };
    let config = [
        ("insert.mode", "upsert"),
        ("pk.mode", "record_value"),
        ("pk.fields", "id,Region"),
        ("auto.create", "true"),
        ("table.name.format", "sales_${topic}"),
    ];
    let mut task = open_task(&url, &config, ErrantRecordReporter::fail_fast()).await?;
    task.put(vec![
        record("eu.daily", 0, None, Some(&flat(1, "north", 10))),
        record("eu.daily", 1, None, Some(&flat(1, "south", 20))),
        record("eu.daily", 2, None, Some(&flat(1, "north", 11))),
    ])
    .await
    .map_err(|e| anyhow::anyhow!(e.trace()))?;
    task.flush().await.map_err(|e| anyhow::anyhow!(e.trace()))?;
    // quote.identifiers=false folds Region to region, as an unquoted name would be.
    let got = rows(
        &client,
        "SELECT id::text, region, total::text FROM sales_eu_daily ORDER BY region",
    )
    .await?;
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(
        got,
        vec![
            vec![s("1"), s("north"), s("11")],
            vec![s("1"), s("south"), s("20")]
        ]
    );
    // insert.mode=update changes existing rows and never inserts.
    let update = [
        ("insert.mode", "update"),
        ("pk.mode", "record_value"),
        ("pk.fields", "id,Region"),
        ("table.name.format", "sales_${topic}"),
    ];
    let mut task = open_task(&url, &update, ErrantRecordReporter::fail_fast()).await?;
    task.put(vec![
        record("eu.daily", 3, None, Some(&flat(1, "south", 21))),
        record("eu.daily", 4, None, Some(&flat(2, "east", 5))),
    ])
    .await
    .map_err(|e| anyhow::anyhow!(e.trace()))?;
    task.flush().await.map_err(|e| anyhow::anyhow!(e.trace()))?;
    let got = rows(
        &client,
        "SELECT id::text, region, total::text FROM sales_eu_daily ORDER BY region",
    )
    .await?;
    assert_eq!(
        got,
        vec![
            vec![s("1"), s("north"), s("11")],
            vec![s("1"), s("south"), s("21")]
        ]
    );
    Ok(())
}
