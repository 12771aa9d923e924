//! Rotation, object keys, committed offsets and replays (exactly-once objects).

use std::collections::BTreeMap;

use serde_json::json;
use tributary_runtime::connector::SinkTask;
use tributary_runtime::record::{ConsumerOffsets, SinkRecord, TopicPartition};

use crate::harness::{Bucket, JSON_WITH_SCHEMAS, record};

/// 2024-01-01T10:00:00Z.
const T10: i64 = 1_704_103_200_000;
const HOUR: i64 = 3_600_000;

fn orders(topic: &str, range: std::ops::Range<u64>) -> Vec<SinkRecord> {
    let schema = json!({"type": "struct", "name": "orders", "optional": false, "fields": [
        {"field": "id", "type": "int64", "optional": false},
        {"field": "note", "type": "string", "optional": true}
    ]});
    range
        .map(|o| {
            // Offsets 0..6 fall in hour 10, the rest in hour 11.
            let ts = if o < 6 {
                T10 + o as i64 * 1000
            } else {
                T10 + HOUR + o as i64 * 1000
            };
            record(
                topic,
                0,
                o,
                ts,
                &json!({"schema": schema, "payload": {"id": o, "note": format!("n{o}")}}),
            )
        })
        .collect()
}

const HOURLY: &[(&str, &str)] = &[
    (
        "format.class",
        "io.confluent.connect.s3.format.json.JsonFormat",
    ),
    ("flush.size", "4"),
    (
        "partitioner.class",
        "io.confluent.connect.storage.partitioner.TimeBasedPartitioner",
    ),
    ("path.format", "'year'=YYYY/'month'=MM/'day'=dd/'hour'=HH"),
    ("partition.duration.ms", "3600000"),
    ("timestamp.extractor", "Record"),
    ("timezone", "UTC"),
];

async fn contents(bucket: &Bucket) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for key in bucket.keys().await {
        let body = bucket.get(&key).await;
        out.insert(key, body);
    }
    out
}

#[tokio::test]
async fn time_partitioned_keys_offsets_and_replay() {
    let bucket = Bucket::new("s3rot").await;
    let topic = "shop.orders";
    let tp = TopicPartition::new(topic, 0);
    let mut task = bucket.task(HOURLY, JSON_WITH_SCHEMAS).await;
    task.put(orders(topic, 0..10)).await.expect("put");
    let consumed: ConsumerOffsets = [(tp.clone(), 10)].into();
    // 0-3 fill one object (flush.size 4); 4,5 (hour 10) and 6,7 (hour 11) the next commit;
    // 8,9 stay open, so the committed offset is 8.
    assert_eq!(
        task.pre_commit(&consumed).await.expect("pre_commit"),
        [(tp.clone(), 8)].into()
    );
    let first = contents(&bucket).await;
    let dir10 = "topics/shop.orders/year=2024/month=01/day=01/hour=10";
    let dir11 = "topics/shop.orders/year=2024/month=01/day=01/hour=11";
    let expected_keys = [
        format!("{dir10}/shop.orders+0+0000000000.json"),
        format!("{dir10}/shop.orders+0+0000000004.json"),
        format!("{dir11}/shop.orders+0+0000000006.json"),
    ];
    assert_eq!(first.keys().cloned().collect::<Vec<_>>(), expected_keys);
    let lines = |body: &[u8]| String::from_utf8(body.to_vec()).expect("utf8");
    assert_eq!(
        lines(&first[&expected_keys[1]]),
        "{\"id\":4,\"note\":\"n4\"}\n{\"id\":5,\"note\":\"n5\"}\n"
    );
    assert_eq!(lines(&first[&expected_keys[0]]).lines().count(), 4);
    assert_eq!(task.open_files(), 1);
    // A crash here: the open file (8, 9) is lost with the task, never visible.
    task.close().await;

    // Restart at the committed offset 8, with more records: 8..12 make the next object.
    let mut task = bucket.task(HOURLY, JSON_WITH_SCHEMAS).await;
    task.put(orders(topic, 8..12)).await.expect("put");
    assert_eq!(
        task.pre_commit(&[(tp.clone(), 12)].into())
            .await
            .expect("pre_commit"),
        [(tp.clone(), 12)].into()
    );
    task.close().await;
    let second = contents(&bucket).await;
    let new_key = format!("{dir11}/shop.orders+0+0000000008.json");
    assert_eq!(second.len(), 4);
    assert_eq!(lines(&second[&new_key]).lines().count(), 4);

    // A replay from an older offset (commit lost) rewrites the same keys with the same bytes.
    let mut task = bucket.task(HOURLY, JSON_WITH_SCHEMAS).await;
    task.put(orders(topic, 4..12)).await.expect("replay");
    assert_eq!(
        task.pre_commit(&[(tp.clone(), 12)].into())
            .await
            .expect("pre_commit"),
        [(tp.clone(), 12)].into()
    );
    assert_eq!(
        contents(&bucket).await,
        second,
        "a replay changed the bucket"
    );
}

#[tokio::test]
async fn record_time_rotation_and_schema_change_roll_files() {
    let bucket = Bucket::new("s3roll").await;
    let topic = "t";
    let tp = TopicPartition::new(topic, 0);
    let pairs = [
        ("format.class", "json"),
        ("flush.size", "1000"),
        ("rotate.interval.ms", "60000"),
    ];
    let mut task = bucket.task(&pairs, JSON_WITH_SCHEMAS).await;
    let v1 = json!({"type": "struct", "optional": false, "fields": [{"field": "a", "type": "int32", "optional": false}]});
    let v2 = json!({"type": "struct", "optional": false, "fields": [{"field": "a", "type": "int32", "optional": false}, {"field": "b", "type": "int32", "optional": true}]});
    let records = vec![
        record(topic, 0, 0, 0, &json!({"schema": v1, "payload": {"a": 0}})),
        record(
            topic,
            0,
            1,
            30_000,
            &json!({"schema": v1, "payload": {"a": 1}}),
        ),
        // Schema change: 0-1 are committed before 2 is written.
        record(
            topic,
            0,
            2,
            40_000,
            &json!({"schema": v2, "payload": {"a": 2, "b": 2}}),
        ),
        // 60 s after offset 2's time: 2-3 are committed before 4.
        record(
            topic,
            0,
            3,
            50_000,
            &json!({"schema": v2, "payload": {"a": 3, "b": null}}),
        ),
        record(
            topic,
            0,
            4,
            100_000,
            &json!({"schema": v2, "payload": {"a": 4, "b": 4}}),
        ),
    ];
    task.put(records).await.expect("put");
    assert_eq!(
        task.pre_commit(&[(tp.clone(), 5)].into())
            .await
            .expect("pre_commit"),
        [(tp, 4)].into()
    );
    assert_eq!(
        bucket.keys().await,
        [
            "topics/t/partition=0/t+0+0000000000.json",
            "topics/t/partition=0/t+0+0000000002.json"
        ]
    );
    assert_eq!(
        bucket.get("topics/t/partition=0/t+0+0000000002.json").await,
        b"{\"a\":2,\"b\":2}\n{\"a\":3,\"b\":null}\n"
    );
}

#[tokio::test]
async fn field_partitioner_and_missing_field_fails_the_task() {
    let bucket = Bucket::new("s3field").await;
    let pairs = [
        ("format.class", "json"),
        ("flush.size", "2"),
        ("partitioner.class", "FieldPartitioner"),
        ("partition.field.name", "region"),
    ];
    let mut task = bucket
        .task(
            &pairs,
            &[
                (
                    "value.converter",
                    "org.apache.kafka.connect.json.JsonConverter",
                ),
                ("value.converter.schemas.enable", "false"),
            ],
        )
        .await;
    task.put(vec![
        record("t", 1, 10, 0, &json!({"region": "eu", "n": 1})),
        record("t", 1, 11, 0, &json!({"region": "us", "n": 2})),
    ])
    .await
    .expect("put");
    assert_eq!(
        bucket.keys().await,
        [
            "topics/t/region=eu/t+1+0000000010.json",
            "topics/t/region=us/t+1+0000000011.json"
        ]
    );
    let err = task
        .put(vec![record("t", 1, 12, 0, &json!({"n": 3}))])
        .await
        .expect_err("no region field");
    assert!(
        err.message.contains("t-1@12") && err.message.contains("\"region\" is missing"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn scheduled_rotation_commits_open_files_on_the_wall_clock() {
    let bucket = Bucket::new("s3sched").await;
    let tp = TopicPartition::new("t", 0);
    let pairs = [
        ("format.class", "json"),
        ("flush.size", "1000"),
        ("rotate.schedule.interval.ms", "200"),
    ];
    let mut task = bucket
        .task(
            &pairs,
            &[(
                "value.converter",
                "org.apache.kafka.connect.json.JsonConverter",
            )],
        )
        .await;
    task.put(vec![record("t", 0, 0, 0, &json!({"a": 1}))])
        .await
        .expect("put");
    let consumed: ConsumerOffsets = [(tp.clone(), 1)].into();
    assert_eq!(
        task.pre_commit(&consumed).await.expect("pre_commit"),
        ConsumerOffsets::new(),
        "nothing is uploaded yet"
    );
    // The runtime calls pre_commit periodically while offsets are uncommitted.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the open file was never committed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if task.pre_commit(&consumed).await.expect("pre_commit") == consumed {
            break;
        }
    }
    assert_eq!(
        bucket.keys().await,
        ["topics/t/partition=0/t+0+0000000000.json"]
    );
}
