//! Every column type with edge values, compared value by value, read by the snapshot and
//! by the stream.

use anyhow::Result;
use mysql_async::prelude::Queryable as _;
use serde_json::{Value as Json, json};
use tributary_runtime::model::time::days_from_civil;

use crate::harness::*;

const COLUMNS: &str = "id INT PRIMARY KEY,
    ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
    mi MEDIUMINT, mi2 MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED,
    bi BIGINT, biu BIGINT UNSIGNED,
    dec65 DECIMAL(65,30), dec2 DECIMAL(10,2), f FLOAT, d DOUBLE,
    b1 BIT(1), b10 BIT(10), bo BOOL,
    dt DATE, tm TIME(3), tmn TIME(6), dtm DATETIME(6), ts TIMESTAMP(6) NULL, yr YEAR,
    c CHAR(5), vc VARCHAR(50), tx TEXT, lat VARCHAR(10) CHARACTER SET latin1,
    bin BINARY(4), vb VARBINARY(10), bl BLOB,
    js JSON, en ENUM('small','medium','large'), st SET('a','b','c'),
    geo GEOMETRY, nul INT NULL, zd DATE NULL, zdt DATETIME NULL, zdtn DATETIME NOT NULL";

const VALUES: &str = "-128, 255, -32768, 65535,
    -8388608, -1, 16777215, -2147483648, 4294967295,
    -9223372036854775808, 18446744073709551615,
    '-12345678901234567890123456789012345.123456789012345678901234567890', -12.34, 1.5, -2.25,
    b'1', b'1000000001', TRUE,
    '2024-02-29', '-838:59:59.000', '-12:34:56.789012', '9999-12-31 23:59:59.999999',
    '2038-01-19 03:14:07.999999', 2155,
    'ab', 'héllo 😀 世界', REPEAT('x', 3000), 'café',
    0x00010203, 0xff00, 0xdeadbeef,
    '{\"a\": [1, 2, {\"b\": null}]}', 'medium', 'c,a',
    ST_GeomFromText('POINT(1 2)'), NULL, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00'";

fn expected(id: i64) -> Json {
    let b64 = |bytes: &[u8]| {
        use std::fmt::Write as _;
        // Minimal base64 (standard alphabet, padded) to keep the test self-contained.
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..4 {
                if i <= chunk.len() {
                    let _ = write!(out, "{}", A[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    };
    let mut wkb = vec![1u8, 1, 0, 0, 0];
    wkb.extend_from_slice(&1f64.to_le_bytes());
    wkb.extend_from_slice(&2f64.to_le_bytes());
    let day_us = 86_400_000_000i64;
    json!({
        "id": id,
        "ti": -128, "tiu": 255, "si": -32768, "siu": 65535,
        "mi": -8_388_608, "mi2": -1, "miu": 16_777_215, "i": -2_147_483_648i64, "iu": 4_294_967_295u64,
        "bi": i64::MIN, "biu": u64::MAX,
        "dec65": "-12345678901234567890123456789012345.123456789012345678901234567890",
        "dec2": "-12.34", "f": 1.5, "d": -2.25,
        "b1": true, "b10": b64(&[0x01, 0x02]), "bo": 1,
        "dt": days_from_civil(2024, 2, 29),
        "tm": -((838 * 3600 + 59 * 60 + 59) * 1_000_000i64),
        "tmn": -((12 * 3600 + 34 * 60 + 56) * 1_000_000i64 + 789_012),
        "dtm": days_from_civil(9999, 12, 31) * day_us + day_us - 1,
        "ts": "2038-01-19T03:14:07.999999Z",
        "yr": 2155,
        "c": "ab", "vc": "héllo 😀 世界", "tx": "x".repeat(3000), "lat": "café",
        "bin": b64(&[0, 1, 2, 3]), "vb": b64(&[0xff, 0]), "bl": b64(&[0xde, 0xad, 0xbe, 0xef]),
        "js": "{\"a\": [1, 2, {\"b\": null}]}", "en": "medium", "st": "a,c",
        "geo": {"wkb": b64(&wkb), "srid": null}, "nul": null, "zd": null, "zdt": null, "zdtn": 0,
    })
}

fn compare(what: &str, got: &Json, want: &Json) -> Vec<String> {
    let mut problems = Vec::new();
    let (Some(got), Some(want)) = (got.as_object(), want.as_object()) else {
        return vec![format!("{what}: not objects: {got}")];
    };
    for (k, w) in want {
        match got.get(k) {
            Some(g) if g == w => {}
            Some(g) => problems.push(format!("{what}.{k}: got {g}, want {w}")),
            None => problems.push(format!("{what}.{k}: missing")),
        }
    }
    for k in got.keys() {
        if !want.contains_key(k) {
            problems.push(format!("{what}.{k}: unexpected column"));
        }
    }
    problems
}

#[tokio::test(flavor = "multi_thread")]
async fn every_type_with_edge_values_in_snapshot_and_stream() -> Result<()> {
    let env = test_env();
    let mut admin = admin(&env).await?;
    let db = fresh_db(&mut admin, "mytypes").await?;
    admin
        .query_drop("SET SESSION sql_mode = '', time_zone = '+00:00'")
        .await?;
    admin
        .query_drop(format!("CREATE TABLE {db}.t ({COLUMNS})"))
        .await?;
    admin
        .query_drop(format!("INSERT INTO {db}.t VALUES (1, {VALUES})"))
        .await?;

    let dir = tempfile::tempdir()?;
    let worker = start_worker(dir.path()).await?;
    worker
        .put_config(connector_config(
            &env,
            "types",
            &db,
            &[
                ("decimal.handling.mode", "string"),
                ("tombstones.on.delete", "false"),
            ],
        ))
        .await?;
    let topic = format!("{db}.{db}.t");
    wait_for(&worker, "types", &topic, DEADLINE, |r| !r.is_empty()).await?;
    admin
        .query_drop(format!("INSERT INTO {db}.t VALUES (2, {VALUES})"))
        .await?;
    admin.query_drop(format!("UPDATE {db}.t SET mi = 8388607, tm = '838:59:59.999', yr = 0, en = 'large', st = '' WHERE id = 2")).await?;
    let records = wait_for(&worker, "types", &topic, DEADLINE, |r| r.len() >= 3).await?;

    let mut problems = Vec::new();
    assert_eq!(records[0].op(), Some("r"));
    assert_eq!(records[0].source()["snapshot"], "last");
    problems.extend(compare(
        "snapshot",
        records[0].after().unwrap_or(&Json::Null),
        &expected(1),
    ));
    assert_eq!(records[1].op(), Some("c"));
    problems.extend(compare(
        "stream",
        records[1].after().unwrap_or(&Json::Null),
        &expected(2),
    ));
    let mut updated = expected(2);
    updated["mi"] = json!(8_388_607);
    updated["tm"] = json!((838 * 3600 + 59 * 60 + 59) * 1_000_000i64 + 999_000);
    updated["yr"] = json!(0);
    updated["en"] = json!("large");
    updated["st"] = json!("");
    problems.extend(compare(
        "update.before",
        records[2].before().unwrap_or(&Json::Null),
        &expected(2),
    ));
    problems.extend(compare(
        "update.after",
        records[2].after().unwrap_or(&Json::Null),
        &updated,
    ));
    assert!(
        problems.is_empty(),
        "{} mismatches:\n{}",
        problems.len(),
        problems.join("\n")
    );

    worker.shutdown().await;
    admin.query_drop(format!("DROP DATABASE {db}")).await?;
    Ok(())
}
