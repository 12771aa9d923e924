//! A crash mid-stream (the worker's runtime dropped without shutdown: no drain, no final
//! offset commit), then a restart on the same data directory: nothing is lost.

use std::time::Duration;

use anyhow::Result;
use mysql_async::prelude::Queryable as _;

use crate::harness::*;

#[test]
fn crash_mid_stream_then_restart_loses_nothing() -> Result<()> {
    let env = test_env();
    let dir = tempfile::tempdir()?;
    let setup = tokio::runtime::Runtime::new()?;
    let db = setup.block_on(async {
        let mut admin = admin(&env).await?;
        let db = fresh_db(&mut admin, "mycrash").await?;
        admin
            .query_drop(format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT)"))
            .await?;
        anyhow::Ok(db)
    })?;
    let topic = format!("{db}.{db}.t");

    // First life: stream part of a steady write load, then crash.
    let first = tokio::runtime::Runtime::new()?;
    let writer_db = db.clone();
    let writer_env = env.clone();
    let writer = setup.spawn(async move {
        let mut conn = admin(&writer_env).await?;
        for batch in 0..40 {
            let values: Vec<String> = (1..=50)
                .map(|i| format!("({}, {i})", batch * 50 + i))
                .collect();
            conn.query_drop(format!(
                "INSERT INTO {writer_db}.t VALUES {}",
                values.join(",")
            ))
            .await?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        anyhow::Ok(())
    });
    first.block_on(async {
        let worker = start_worker(dir.path()).await?;
        worker
            .put_config(connector_config(&env, "crash", &db, &[]))
            .await?;
        wait_for(&worker, "crash", &topic, DEADLINE, |r| r.len() >= 300).await?;
        anyhow::Ok(())
    })?;
    // The crash: every task of the first worker stops at its next await point.
    first.shutdown_background();
    setup.block_on(writer)??;

    // Second life on the same directory.
    let second = tokio::runtime::Runtime::new()?;
    second.block_on(async {
        let worker = start_worker(dir.path()).await?;
        let records = wait_for(&worker, "crash", &topic, DEADLINE, |r| {
            let mut ids: Vec<i64> = r
                .iter()
                .filter_map(|x| x.after().and_then(|a| a["id"].as_i64()))
                .collect();
            ids.sort_unstable();
            ids.dedup();
            ids.len() == 2000
        })
        .await?;
        let mut ids: Vec<i64> = records
            .iter()
            .filter_map(|x| x.after().and_then(|a| a["id"].as_i64()))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(
            ids,
            (1..=2000).collect::<Vec<_>>(),
            "every row after the crash"
        );
        worker.shutdown().await;
        anyhow::Ok(())
    })?;
    setup.block_on(async {
        let mut admin = admin(&env).await?;
        admin.query_drop(format!("DROP DATABASE {db}")).await?;
        anyhow::Ok(())
    })?;
    Ok(())
}
