//! KIP-875 offsets API for sources, against the real servers: a position set while the
//! connector is STOPPED is checked with the server first. A binlog file MariaDB no longer
//! has, a position outside the file, an LSN behind the replication slot's confirmed
//! position or past the WAL end are refused with the reason (HTTP 400 over REST); a position
//! the server can serve is stored.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use mysql_async::prelude::Queryable as _;
use mysql_async::{Conn, Opts};
use serde_json::{Value as Json, json};
use tributary_runtime::worker::Worker;
use tributary_runtime::worker::admin::{AdminError, ConnectorOffset};
use tributary_runtime::worker::state::TargetState;

use crate::support::env::{TestEnv, unique_name, with_database};
use crate::support::in_process;

const DEADLINE: Duration = Duration::from_secs(60);

/// Waits until the connector has committed an offset; returns (partition, offset). The
/// MySQL source's schema history partition (`"history": true`) is not the position.
async fn committed(worker: &Worker, name: &str) -> Result<(Json, Json)> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(o) = worker
            .connector_offsets(name)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .into_iter()
            .find(|o| o.partition.get("history").is_none())
            && let Some(offset) = o.offset
        {
            return Ok((o.partition, offset));
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "{name} committed no offset; status {:?}",
                worker.status(name).await.ok()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes a row (`write(n)` for n = 1, 2, ...) until the connector has committed an offset;
/// returns it as (partition, offset).
async fn write_until_committed<F, Fut>(
    worker: &Worker,
    name: &str,
    mut write: F,
) -> Result<(Json, Json)>
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    for n in 1.. {
        write(n).await?;
        if let Ok(Ok(found)) =
            tokio::time::timeout(Duration::from_secs(2), committed(worker, name)).await
        {
            return Ok(found);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{name} committed no offset"
        );
    }
    bail!("ran out of row numbers")
}

/// Sets one position; the refusal's text, or `None` when it was stored.
async fn set(worker: &Worker, name: &str, partition: &Json, offset: Json) -> Option<String> {
    let change = ConnectorOffset {
        partition: partition.clone(),
        offset: Some(offset),
    };
    match worker.alter_offsets(name, vec![change], false).await {
        Ok(()) => None,
        Err(AdminError::BadRequest(message)) => Some(message),
        Err(other) => panic!("not a refusal of the position but {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_positions_are_checked_against_the_binlog() -> Result<()> {
    let env = TestEnv::load();
    let mut admin = Conn::new(Opts::from_url(&env.mariadb_url)?).await?;
    let db = unique_name("offmy");
    admin.query_drop(format!("CREATE DATABASE {db}")).await?;
    admin
        .query_drop(format!("CREATE TABLE {db}.t (id INT PRIMARY KEY)"))
        .await?;
    let dir = tempfile::tempdir()?;
    let worker = in_process::worker(dir.path()).await?;
    let name = format!("{db}-src");
    worker
        .create(
            in_process::mariadb_source(&env, &name, &db, &[("snapshot.mode", "no_data".into())]),
            TargetState::Running,
        )
        .await?;
    // A streamed row commits a binlog position.
    let url = env.mariadb_url.clone();
    let (partition, offset) = write_until_committed(&worker, &name, |n| {
        let (url, db) = (url.clone(), db.clone());
        async move {
            let mut conn = Conn::new(Opts::from_url(&url)?).await?;
            conn.query_drop(format!("INSERT INTO {db}.t VALUES ({n})"))
                .await?;
            conn.disconnect().await?;
            Ok(())
        }
    })
    .await?;
    let file = offset["file"].as_str().context("file")?.to_owned();
    // Offsets change only while STOPPED.
    assert!(matches!(
        worker
            .alter_offsets(
                &name,
                vec![ConnectorOffset {
                    partition: partition.clone(),
                    offset: Some(offset.clone())
                }],
                false
            )
            .await,
        Err(AdminError::NotStopped(_))
    ));
    worker.stop(&name).await?;

    let gone = set(
        &worker,
        &name,
        &partition,
        json!({"file": "binlog.999999", "pos": 4}),
    )
    .await
    .context("a missing binlog file is refused")?;
    assert!(
        gone.contains("binlog.999999") && gone.contains("not on the server"),
        "{gone}"
    );
    let past = set(
        &worker,
        &name,
        &partition,
        json!({"file": file, "pos": 1u64 << 40}),
    )
    .await
    .context("a position past the end of the file is refused")?;
    assert!(past.contains("outside binlog file"), "{past}");
    let wrong = set(
        &worker,
        &name,
        &json!({"server": "other"}),
        json!({"file": file, "pos": 4}),
    )
    .await
    .context("another connector's partition is refused")?;
    assert!(wrong.contains("not this connector's"), "{wrong}");
    let garbage = set(&worker, &name, &partition, json!({"lsn": 5}))
        .await
        .context("a position without file and pos is refused")?;
    assert!(garbage.contains("not a binlog position"), "{garbage}");
    // Nothing refused was stored.
    let stored = committed(&worker, &name).await?;
    assert_eq!(
        stored.1, offset,
        "a refused change left the offsets as they were"
    );

    // force=true stores what the server refuses (the operator knows better, e.g. a server
    // being restored from a backup that has the file).
    let forced = json!({"file": "binlog.999999", "pos": 4});
    worker
        .alter_offsets(
            &name,
            vec![ConnectorOffset {
                partition: partition.clone(),
                offset: Some(forced.clone()),
            }],
            true,
        )
        .await
        .map_err(|e| anyhow::anyhow!("forced alter: {e}"))?;
    assert_eq!(committed(&worker, &name).await?.1, forced);

    // The start of the current file is a position the server can serve.
    assert_eq!(
        set(&worker, &name, &partition, json!({"file": file, "pos": 4})).await,
        None
    );
    let stored = committed(&worker, &name).await?;
    assert_eq!(stored.1, json!({"file": file, "pos": 4}));

    worker.shutdown().await;
    admin.query_drop(format!("DROP DATABASE {db}")).await?;
    Ok(())
}

/// An LSN as Postgres prints it.
fn lsn_text(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_positions_are_checked_against_the_slot() -> Result<()> {
    let env = TestEnv::load();
    let db = unique_name("offpg");
    let root = in_process::pg(&env.pg_url).await?;
    root.batch_execute(&format!("CREATE DATABASE {db}")).await?;
    let admin = in_process::pg(&with_database(&env.pg_url, &db)).await?;
    admin
        .batch_execute(&format!(
            "CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION {db}_pub FOR ALL TABLES;"
        ))
        .await?;
    let dir = tempfile::tempdir()?;
    let worker = in_process::worker(dir.path()).await?;
    let name = format!("{db}-src");
    let slot = format!("{db}_slot");
    worker
        .create(
            in_process::postgres_source(&env, &name, &db, &[("snapshot.mode", "no_data".into())]),
            TargetState::Running,
        )
        .await?;
    let admin = std::sync::Arc::new(admin);
    let (partition, _) = write_until_committed(&worker, &name, |n| {
        let admin = admin.clone();
        async move {
            admin
                .batch_execute(&format!("INSERT INTO t VALUES ({n})"))
                .await
                .context("insert")
        }
    })
    .await?;
    worker.stop(&name).await?;
    // Some more WAL after the stop, so there is room between the slot and the WAL end.
    admin
        .batch_execute("INSERT INTO t SELECT g FROM generate_series(1000, 1100) g")
        .await
        .context("more WAL")?;
    let row = root
        .query_one(
            "SELECT (confirmed_flush_lsn - '0/0')::int8, (pg_current_wal_lsn() - '0/0')::int8 \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .context("reading the slot")?;
    let confirmed = u64::try_from(row.get::<_, i64>(0))?;
    let wal_end = u64::try_from(row.get::<_, i64>(1))?;
    assert!(
        confirmed > 1 && wal_end > confirmed,
        "{confirmed} {wal_end}"
    );

    let behind = set(&worker, &name, &partition, json!({"lsn": confirmed - 1}))
        .await
        .context("an LSN behind the slot is refused")?;
    assert!(
        behind.contains("behind the confirmed position") && behind.contains(&lsn_text(confirmed)),
        "{behind}"
    );
    let ahead = set(
        &worker,
        &name,
        &partition,
        json!({"lsn": wal_end + (1 << 30)}),
    )
    .await
    .context("an LSN past the WAL end is refused")?;
    assert!(
        ahead.contains("past the server's current WAL end"),
        "{ahead}"
    );
    let garbage = set(&worker, &name, &partition, json!({"file": "x", "pos": 4}))
        .await
        .context("a position without an LSN is refused")?;
    assert!(garbage.contains("no numeric \"lsn\""), "{garbage}");
    // The slot's own position is accepted and stored.
    assert_eq!(
        set(&worker, &name, &partition, json!({"lsn": confirmed})).await,
        None
    );
    let stored = committed(&worker, &name).await?;
    assert_eq!(stored.1, json!({"lsn": confirmed}));

    worker.shutdown().await;
    root.execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await
        .context("dropping the slot")?;
    root.batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .await
        .context("dropping the database")?;
    Ok(())
}
