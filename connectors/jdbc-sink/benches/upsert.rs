//! Upsert throughput of the JDBC sink's write path into the test environment's Postgres and
//! MariaDB (`scripts/test-env.sh up`): 100 000 changes over 50 000 keys (half inserts, half
//! updates), flushed every `batch.size` changes, each flush one transaction.
//!
//! `cargo bench -p tributary-jdbc-sink --bench upsert`

#[path = "../../../tests/support/env.rs"]
#[allow(unused_imports)]
mod env;

use std::sync::Arc;
use std::time::Instant;

use tributary_jdbc_sink::change::{Change, ChangeKind};
use tributary_jdbc_sink::config::{JdbcSinkConfig, config_def};
use tributary_jdbc_sink::mapping::{FieldSpec, SqlType};
use tributary_jdbc_sink::sink::Writer;
use tributary_jdbc_sink::table::TableName;
use tributary_runtime::config::RawConfig;
use tributary_runtime::dead_letter::ErrantRecordReporter;
use tributary_runtime::model::{Decimal, Value};
use tributary_runtime::record::{SinkRecord, TopicRecord};

const CHANGES: u64 = 100_000;
const KEYS: u64 = 50_000;

fn fields() -> Vec<FieldSpec> {
    let f = |name: &str, ty: SqlType, optional: bool| FieldSpec {
        name: name.into(),
        ty,
        optional,
    };
    vec![
        f("id", SqlType::Int64, false),
        f("name", SqlType::Text, true),
        f(
            "amount",
            SqlType::Decimal {
                precision: Some(12),
                scale: Some(2),
            },
            true,
        ),
        f("qty", SqlType::Int32, true),
        f("updated", SqlType::TimestampTz, true),
        f("note", SqlType::Text, true),
    ]
}

fn change(table: &TableName, fields: &[FieldSpec], n: u64) -> Change {
    let id = n % KEYS;
    Change {
        table: table.clone(),
        kind: ChangeKind::Upsert,
        fields: fields.to_vec(),
        values: vec![
            Value::Int(id as i64),
            Value::Text(format!("customer {id}")),
            Value::Decimal(Decimal::from_i128(i128::from(n) * 37 + 5, 2)),
            Value::Int((n % 1000) as i64),
            Value::TimestampTz(1_700_000_000_000_000 + n as i64),
            Value::Text("a note of moderate length to look like a real row".into()),
        ],
        key: vec![0],
        record: SinkRecord {
            topic: "bench".into(),
            partition: 0,
            offset: n,
            record: TopicRecord {
                key: None,
                value: None,
                headers: vec![],
                timestamp_ms: 0,
            },
        },
    }
}

async fn run(url: &str, batch: usize) -> anyhow::Result<f64> {
    let mut raw = RawConfig::new();
    for (k, v) in [
        ("connection.url", url),
        ("insert.mode", "upsert"),
        ("primary.key.mode", "record_key"),
        ("schema.evolution", "basic"),
    ] {
        raw.insert(k.into(), v.into());
    }
    raw.insert("batch.size".into(), batch.to_string());
    let parsed = config_def()
        .parse(&raw)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let config =
        JdbcSinkConfig::from_parsed("bench", &parsed).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut writer = Writer::open(Arc::new(config))
        .await
        .map_err(|e| anyhow::anyhow!(e.trace()))?;
    let errors = ErrantRecordReporter::fail_fast();
    let table = TableName {
        schema: None,
        name: format!("bench_{batch}"),
    };
    let fields = fields();
    // Warm-up creates the table.
    writer.buffer.push(change(&table, &fields, 0));
    writer
        .flush(&errors)
        .await
        .map_err(|e| anyhow::anyhow!(e.trace()))?;
    let start = Instant::now();
    for n in 0..CHANGES {
        writer.buffer.push(change(&table, &fields, n));
        if writer.buffer.len() >= batch {
            writer
                .flush(&errors)
                .await
                .map_err(|e| anyhow::anyhow!(e.trace()))?;
        }
    }
    writer
        .flush(&errors)
        .await
        .map_err(|e| anyhow::anyhow!(e.trace()))?;
    Ok(CHANGES as f64 / start.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Test runners list every target (`--list`): print nothing, so only `cargo bench` runs this.
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let env = env::TestEnv::load();
    let db = env::unique_name("jdbcbench");
    let (pg, conn) = tokio_postgres::connect(&env.pg_url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    pg.batch_execute(&format!("CREATE DATABASE {db}")).await?;
    let pg_url = env::with_database(&env.pg_url, &db);
    {
        use mysql_async::prelude::Queryable;
        let mut my = mysql_async::Conn::new(mysql_async::Opts::from_url(&env.mariadb_url)?).await?;
        my.query_drop(format!("CREATE DATABASE {db}")).await?;
        my.disconnect().await?;
    }
    let my_url = env::with_database(&env.mariadb_url, &db);
    println!("upserts: {CHANGES} changes over {KEYS} keys, 6 columns, one transaction per flush");
    for (target, url) in [("postgres", &pg_url), ("mariadb", &my_url)] {
        for batch in [1_000, 10_000] {
            let rate = run(url, batch).await?;
            println!("{target:<9} batch.size={batch:<6} {rate:>10.0} rows/s");
            // For `scripts/bench.sh sinks`, which takes the median over its repeats.
            println!(
                "RESULT {}",
                serde_json::json!({ "label": format!("{target} upsert, batch.size={batch}"), "unit": "rows/s", "value": rate })
            );
        }
    }
    Ok(())
}
