use std::io::Write;

use bytes::Bytes;

use super::*;

fn record(i: u64) -> TopicRecord {
    TopicRecord {
        key: Some(Bytes::from(format!("key-{i}"))),
        value: Some(Bytes::from(format!("value-{i}-{}", "x".repeat(200)))),
        headers: vec![],
        timestamp_ms: 1_700_000_000_000 + i as i64,
    }
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        ..LogConfig::default()
    }
}

async fn append(
    log: &EmbeddedLog,
    topic: &str,
    partition: u32,
    range: std::ops::Range<u64>,
) -> u64 {
    let records = range.map(record).collect();
    let bases = log
        .append(vec![AppendEntry {
            topic: Arc::from(topic),
            partition,
            records,
        }])
        .await
        .expect("append");
    bases[0]
}

fn read_all(log: &EmbeddedLog, topic: &str, partition: u32, from: u64) -> Vec<(u64, TopicRecord)> {
    let p = log.partition(topic, partition).expect("partition");
    let mut cursor = ReadCursor::at(from);
    let mut out = Vec::new();
    loop {
        let (batch, next) = p.read(cursor, 333, 1 << 20).expect("read");
        if batch.is_empty() {
            return out;
        }
        out.extend(batch);
        cursor = next;
    }
}

#[tokio::test]
async fn append_read_across_segments_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let log = EmbeddedLog::open(dir.path(), config()).expect("open");
        log.ensure_topic("t", 2).expect("topic");
        assert_eq!(append(&log, "t", 0, 0..1000).await, 0);
        assert_eq!(append(&log, "t", 0, 1000..2000).await, 1000);
        assert_eq!(append(&log, "t", 1, 0..10).await, 0);
        let all = read_all(&log, "t", 0, 0);
        assert_eq!(all.len(), 2000);
        for (i, (offset, rec)) in all.iter().enumerate() {
            assert_eq!(*offset, i as u64);
            assert_eq!(rec, &record(i as u64));
        }
        let p = log.partition("t", 0).expect("partition");
        assert!(p.segment_files().len() > 5, "small segments roll");
        // Read from the middle.
        let tail = read_all(&log, "t", 0, 1234);
        assert_eq!(tail.first().map(|r| r.0), Some(1234));
        assert_eq!(tail.len(), 766);
    }
    let log = EmbeddedLog::open(dir.path(), config()).expect("reopen");
    assert_eq!(read_all(&log, "t", 0, 0).len(), 2000);
    assert_eq!(read_all(&log, "t", 1, 0).len(), 10);
    assert_eq!(
        append(&log, "t", 0, 2000..2001).await,
        2000,
        "offsets continue after reopen"
    );
}

#[tokio::test]
async fn second_writer_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _log = EmbeddedLog::open(dir.path(), config()).expect("open");
    assert!(matches!(
        EmbeddedLog::open(dir.path(), config()),
        Err(LogError::Locked(_))
    ));
    // Read-only access works beside the writer.
    EmbeddedLog::open_read_only(dir.path()).expect("read-only open");
}

#[tokio::test]
async fn torn_tail_is_truncated_and_never_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path;
    {
        let log = EmbeddedLog::open(dir.path(), LogConfig::default()).expect("open");
        log.ensure_topic("t", 1).expect("topic");
        append(&log, "t", 0, 0..100).await;
        path = log.partition("t", 0).expect("p").segment_files()[0].clone();
    }
    let len = std::fs::metadata(&path).expect("meta").len();
    // Damage the last record's bytes, then add a half-written frame after it.
    let mut data = std::fs::read(&path).expect("read");
    let last = data.len() - 3;
    data[last] ^= 0xff;
    data.extend_from_slice(&[0x40, 0, 0, 0, 1, 2]);
    std::fs::File::create(&path)
        .expect("create")
        .write_all(&data)
        .expect("write");

    let log = EmbeddedLog::open(dir.path(), LogConfig::default()).expect("reopen");
    let all = read_all(&log, "t", 0, 0);
    assert_eq!(all.len(), 99, "the damaged last record is dropped");
    for (i, (offset, rec)) in all.iter().enumerate() {
        assert_eq!((*offset, rec), (i as u64, &record(i as u64)));
    }
    assert!(
        std::fs::metadata(&path).expect("meta").len() < len,
        "file truncated"
    );
    assert_eq!(
        append(&log, "t", 0, 99..100).await,
        99,
        "the lost offset is reused"
    );
    assert_eq!(read_all(&log, "t", 0, 0).len(), 100);
}

#[tokio::test]
async fn garbage_file_tail_of_zeros_is_truncated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path;
    {
        let log = EmbeddedLog::open(dir.path(), LogConfig::default()).expect("open");
        log.ensure_topic("t", 1).expect("topic");
        append(&log, "t", 0, 0..5).await;
        path = log.partition("t", 0).expect("p").segment_files()[0].clone();
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open");
    f.write_all(&[0u8; 4096]).expect("zeros");
    drop(f);
    let log = EmbeddedLog::open(dir.path(), LogConfig::default()).expect("reopen");
    assert_eq!(read_all(&log, "t", 0, 0).len(), 5);
}

#[tokio::test]
async fn consumer_groups_are_independent_and_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tp = TopicPartition::new("t", 0);
    {
        let log = EmbeddedLog::open(dir.path(), config()).expect("open");
        log.ensure_topic("t", 1).expect("topic");
        append(&log, "t", 0, 0..10).await;
        log.commit_group("a", &ConsumerOffsets::from([(tp.clone(), 7)]))
            .expect("commit a");
        log.commit_group("b", &ConsumerOffsets::from([(tp.clone(), 3)]))
            .expect("commit b");
        assert!(log.commit_group("../etc", &ConsumerOffsets::new()).is_err());
    }
    let log = EmbeddedLog::open(dir.path(), config()).expect("reopen");
    assert_eq!(log.group_offsets("a").expect("a").get(&tp), Some(&7));
    assert_eq!(log.group_offsets("b").expect("b").get(&tp), Some(&3));
    assert!(log.group_offsets("c").expect("c").is_empty());
    assert_eq!(log.groups(), vec!["a".to_owned(), "b".to_owned()]);
}

#[tokio::test]
async fn retention_by_size_deletes_oldest_sealed_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = EmbeddedLog::open(
        dir.path(),
        LogConfig {
            retention_bytes: Some(200 * 1024),
            ..config()
        },
    )
    .expect("open");
    log.ensure_topic("t", 1).expect("topic");
    for chunk in 0..20u64 {
        append(&log, "t", 0, chunk * 100..(chunk + 1) * 100).await;
    }
    let p = log.partition("t", 0).expect("p");
    let before = p.size_bytes();
    log.enforce_retention();
    let after = p.size_bytes();
    assert!(before > 200 * 1024);
    assert!(
        after <= 200 * 1024 + 64 * 1024,
        "within one segment of the limit: {after}"
    );
    assert!(p.log_start() > 0);
    let err = p
        .read(ReadCursor::at(0), 10, 1 << 20)
        .expect_err("deleted range");
    assert!(matches!(err, LogError::OffsetOutOfRange { .. }));
    let rest = read_all(&log, "t", 0, p.log_start());
    assert_eq!(rest.last().map(|r| r.0), Some(1999));
    assert_eq!(rest.len() as u64, 2000 - p.log_start());
}

#[tokio::test]
async fn retention_by_time_keeps_the_active_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = EmbeddedLog::open(
        dir.path(),
        LogConfig {
            retention_ms: Some(1000),
            ..config()
        },
    )
    .expect("open");
    log.ensure_topic("t", 1).expect("topic");
    append(&log, "t", 0, 0..1000).await; // timestamps in 2023: all expired
    log.enforce_retention();
    let p = log.partition("t", 0).expect("p");
    assert!(p.log_start() > 0);
    assert_eq!(p.high_watermark(), 1000);
    assert!(
        !read_all(&log, "t", 0, p.log_start()).is_empty(),
        "active segment kept"
    );
}

/// `fsync: always` overlaps a group's fsync (syncer thread) with writing the next group:
/// with many appends in flight, every append is acknowledged with the bases of its
/// submission order, an acknowledged record is always readable (the high watermark covers
/// it), and nothing is lost or reordered across segment rolls and a reopen.
#[tokio::test]
async fn pipelined_fsync_acknowledges_every_append_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = EmbeddedLog::open(dir.path(), config()).expect("open");
    assert_eq!(log.config().fsync, FsyncPolicy::Always);
    log.ensure_topic("piped", 2).expect("topic");
    let pending: Vec<_> = (0..300u64)
        .map(|i| {
            let p = (i % 2) as u32;
            let first = (i / 2) * 10;
            let append = log.append(vec![AppendEntry {
                topic: Arc::from("piped"),
                partition: p,
                records: (first..first + 10).map(record).collect(),
            }]);
            let log = log.clone();
            tokio::spawn(async move {
                let bases = append.await.expect("append");
                // Acknowledged means durable and visible.
                let hw = log
                    .partition("piped", p)
                    .expect("partition")
                    .high_watermark();
                assert!(
                    hw >= bases[0] + 10,
                    "acked up to {} but hw {hw}",
                    bases[0] + 10
                );
                (i, bases[0])
            })
        })
        .collect();
    for handle in pending {
        let (i, base) = handle.await.expect("join");
        assert_eq!(base, (i / 2) * 10, "append {i} got base {base}");
    }
    let check = |log: &EmbeddedLog| {
        for p in 0..2 {
            let records = read_all(log, "piped", p, 0);
            assert_eq!(records.len(), 1500);
            for (n, (offset, r)) in records.iter().enumerate() {
                assert_eq!(*offset, n as u64);
                assert_eq!(r, &record(n as u64));
            }
        }
    };
    check(&log);
    let segments = std::fs::read_dir(dir.path().join("topics/piped/0"))
        .expect("dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "log"))
        })
        .count();
    assert!(
        segments > 2,
        "the test should roll segments, got {segments}"
    );
    drop(log);
    // The writer and syncer threads finish with the last handle; reopen sees everything.
    let reopened = (0..100)
        .find_map(|_| match EmbeddedLog::open(dir.path(), config()) {
            Ok(log) => Some(log),
            Err(_) => {
                std::thread::sleep(std::time::Duration::from_millis(20));
                None
            }
        })
        .expect("reopen");
    check(&reopened);
}

#[test]
fn topic_names_follow_kafka_rules() {
    assert!(validate_topic_name("inventory.orders_v2-x").is_ok());
    for bad in ["", ".", "..", "a/b", "a b", "ü", &"x".repeat(250)] {
        assert!(validate_topic_name(bad).is_err(), "{bad:?}");
    }
}
