//! Kafka storage (issue 7) against the real broker of the test environment (tansu).
//!
//! Every test uses its own topic prefix, offsets topic and consumer group, so tests run in
//! parallel and never see each other's data.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use tributary_runtime::config::{ConnectorConfig, StorageConfig, WorkerConfig};
use tributary_runtime::kafka::config::SinkAssignment;
use tributary_runtime::kafka::offsets::parse_key;
use tributary_runtime::kafka::{KafkaStorageConfig, KafkaStore};
use tributary_runtime::record::{ConsumerOffsets, TopicPartition, TopicRecord};
use tributary_runtime::registry::Registry;
use tributary_runtime::storage::{ProduceRecord, TopicSelector, TopicStore};
use tributary_runtime::worker::Worker;
use tributary_runtime::worker::state::TargetState;

use crate::support::env::{TestEnv, unique_name};

fn kafka_config(env: &TestEnv, offsets_topic: &str) -> KafkaStorageConfig {
    let mut c = KafkaStorageConfig::new(env.kafka_bootstrap.clone());
    c.offsets_topic = offsets_topic.to_owned();
    c
}

/// Waits for `done` with a deadline; panics with `what` and the last state.
async fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + timeout;
    loop {
        let state = done();
        match state {
            Ok(()) => return,
            Err(state) if Instant::now() >= deadline => {
                panic!("timed out waiting for {what}: {state}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Datagen `seq`s of the complete lines of an envelope-format sink file.
fn sink_seqs(out: &Path) -> (BTreeSet<u64>, usize) {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let complete = text.rfind('\n').map_or(0, |i| i + 1);
    let mut seqs = BTreeSet::new();
    let mut lines = 0;
    for line in text[..complete].lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("sink line is JSON");
        let seq = v["value"]["source"]["seq"]
            .as_u64()
            .or_else(|| v["value"]["payload"]["source"]["seq"].as_u64())
            .unwrap_or_else(|| panic!("no source.seq in {line}"));
        seqs.insert(seq);
        lines += 1;
    }
    (seqs, lines)
}

fn missing(seqs: &BTreeSet<u64>, total: u64) -> Vec<u64> {
    (0..total).filter(|s| !seqs.contains(s)).take(10).collect()
}

fn connector(name: &str, pairs: &[(&str, &str)]) -> ConnectorConfig {
    ConnectorConfig {
        name: name.to_owned(),
        config: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagen_through_kafka_into_a_file_sink() {
    let env = TestEnv::load();
    let prefix = unique_name("roundtrip");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out.jsonl");
    let total: u64 = 5_000;
    let worker = Worker::start(
        WorkerConfig {
            data_dir: dir.path().join("data"),
            storage: StorageConfig::Kafka(kafka_config(&env, &format!("{prefix}-offsets"))),
            ..WorkerConfig::default()
        },
        Registry::with_builtins(),
    )
    .await
    .expect("worker starts on Kafka storage");
    assert!(worker.embedded_log().is_none());
    let total_text = total.to_string();
    worker
        .create(
            connector(
                "gen",
                &[
                    ("connector.class", "datagen"),
                    ("topic.prefix", &prefix),
                    ("tables", "a,b"),
                    ("total", &total_text),
                    ("rate", "1000"),
                ],
            ),
            TargetState::Running,
        )
        .await
        .expect("create datagen");
    let out_text = out.display().to_string();
    let regex = format!("{prefix}\\..*");
    // Unique: the sink's consumer group is connect-<name> on a broker shared by all tests.
    let sink_name = format!("{prefix}-sink");
    worker
        .create(
            connector(
                &sink_name,
                &[
                    ("connector.class", "FileStreamSink"),
                    ("file", &out_text),
                    ("file.format", "envelope"),
                    ("topics.regex", &regex),
                ],
            ),
            TargetState::Running,
        )
        .await
        .expect("create sink");
    // Pause the sink mid-stream (datagen is rate-limited, so it is still producing), then
    // resume: the consumer keeps its position, nothing is lost or skipped.
    wait_for(
        "the first lines in the sink file",
        Duration::from_secs(60),
        || {
            let (seqs, _) = sink_seqs(&out);
            if seqs.is_empty() {
                Err("no lines yet".into())
            } else {
                Ok(())
            }
        },
    )
    .await;
    worker.pause(&sink_name).await.expect("pause");
    wait_for(
        "the source to finish while the sink is paused",
        Duration::from_secs(60),
        || {
            let stored = futures::executor::block_on(worker.offsets().load("gen")).expect("load");
            let seq = stored.first().and_then(|s| s.offset.value["seq"].as_u64());
            if seq == Some(total - 1) {
                Ok(())
            } else {
                Err(format!("committed {seq:?}"))
            }
        },
    )
    .await;
    let (paused_seqs, _) = sink_seqs(&out);
    assert!(
        (paused_seqs.len() as u64) < total,
        "the sink finished before the pause could prove anything"
    );
    worker.resume(&sink_name).await.expect("resume");
    wait_for(
        "every seq in the sink file",
        Duration::from_secs(90),
        || {
            let (seqs, _) = sink_seqs(&out);
            let gone = missing(&seqs, total);
            if gone.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} of {total} seqs, first missing {gone:?}",
                    seqs.len()
                ))
            }
        },
    )
    .await;
    let (_, lines) = sink_seqs(&out);
    assert_eq!(lines as u64, total, "no duplicates without a crash");
    // Source offsets went to the offsets topic, in Kafka Connect's key format.
    let stored = worker.offsets().load("gen").await.expect("load offsets");
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].offset.value["seq"], serde_json::json!(total - 1));
    // The sink's offsets (KIP-875 GET) come from its consumer group in Kafka: every
    // partition committed past the last record the sink wrote (the file's lines carry
    // topic, partition and offset; tansu's watermarks are not reliable).
    let mut ends: std::collections::BTreeMap<(String, u64), u64> = Default::default();
    for line in std::fs::read_to_string(&out).expect("sink file").lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let key = (
            v["topic"].as_str().expect("topic").to_owned(),
            v["partition"].as_u64().expect("partition"),
        );
        let next = v["offset"].as_u64().expect("offset") + 1;
        let end = ends.entry(key).or_default();
        *end = (*end).max(next);
    }
    assert_eq!(ends.len(), 2, "{ends:?}");
    // Commits trail the file's last line a little: wait for them, then compare.
    let deadline = Instant::now() + Duration::from_secs(30);
    let committed = loop {
        let committed: std::collections::BTreeMap<(String, u64), u64> = worker
            .connector_offsets(&sink_name)
            .await
            .expect("sink offsets")
            .iter()
            .map(|o| {
                let offset = o.offset.as_ref().expect("an offset");
                (
                    (
                        o.partition["kafka_topic"]
                            .as_str()
                            .expect("topic")
                            .to_owned(),
                        o.partition["kafka_partition"].as_u64().expect("partition"),
                    ),
                    offset["kafka_offset"].as_u64().expect("kafka_offset"),
                )
            })
            .collect();
        if committed == ends || Instant::now() >= deadline {
            break committed;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        committed, ends,
        "the sink's group offsets are the topics' ends"
    );
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_are_created_with_the_configured_settings() {
    let env = TestEnv::load();
    let prefix = unique_name("autocreate");
    let mut config = kafka_config(&env, &format!("{prefix}-offsets"));
    config.topic_creation.partitions = 3;
    config.topic_creation.cleanup_policy = Some("compact".into());
    config.topic_creation.retention_ms = Some(3_600_000);
    let store = KafkaStore::new(config).expect("store");
    let topic = format!("{prefix}.orders");
    assert_eq!(store.ensure_topic(&topic).await.expect("create"), 3);
    // Idempotent: the existing topic is used as is.
    assert_eq!(store.ensure_topic(&topic).await.expect("again"), 3);
    let listed = store.list_topics().await.expect("list");
    let t = listed
        .iter()
        .find(|t| t.name == topic)
        .expect("topic listed");
    assert_eq!(t.partitions.len(), 3);

    // tansu describes only explicitly set configs: exactly what we set must be there.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &env.kafka_bootstrap)
        .create()
        .expect("admin");
    let described = admin
        .describe_configs([&ResourceSpecifier::Topic(&topic)], &AdminOptions::new())
        .await
        .expect("describe");
    let resource = described
        .into_iter()
        .next()
        .expect("one resource")
        .expect("described");
    let entry = |name: &str| {
        resource
            .get(name)
            .and_then(|e| e.value.clone())
            .unwrap_or_default()
    };
    assert_eq!(entry("cleanup.policy"), "compact");
    assert_eq!(entry("retention.ms"), "3600000");
}

#[tokio::test]
async fn dead_letter_topics_get_one_partition_as_in_kafka_connect() {
    let env = TestEnv::load();
    let prefix = unique_name("dlqcreate");
    let mut config = kafka_config(&env, &format!("{prefix}-offsets"));
    config.topic_creation.partitions = 4;
    let store = KafkaStore::new(config).expect("store");
    let dlq = format!("{prefix}.dlq");
    // One broker here: a replication factor of 1 (the worker default, 3, needs 3 brokers).
    assert_eq!(
        store
            .ensure_dead_letter_topic(&dlq, 1)
            .await
            .expect("create the dead-letter topic"),
        1
    );
    let listed = store.list_topics().await.expect("list");
    let t = listed.iter().find(|t| t.name == dlq).expect("topic listed");
    assert_eq!(
        t.partitions.len(),
        1,
        "not topic.creation.default.partitions"
    );
    // An ordinary topic still gets the configured partitions.
    assert_eq!(
        store
            .ensure_topic(&format!("{prefix}.data"))
            .await
            .expect("create"),
        4
    );
}

fn record(n: u64) -> TopicRecord {
    TopicRecord {
        key: Some(format!("key-{n}").into_bytes().into()),
        value: Some(format!("{{\"n\":{n}}}").into_bytes().into()),
        headers: vec![("h".into(), bytes::Bytes::from_static(b"v"))],
        timestamp_ms: 1_700_000_000_000,
    }
}

/// Produces `count` keyed records spread by murmur2 over the topic's partitions.
async fn produce(store: &KafkaStore, topic: &str, count: u64) {
    let partitions = store.ensure_topic(topic).await.expect("topic");
    let topic: Arc<str> = Arc::from(topic);
    let records = (0..count)
        .map(|n| {
            let record = record(n);
            ProduceRecord {
                topic: topic.clone(),
                partition: store.partition(record.key.as_deref(), partitions),
                record,
            }
        })
        .collect();
    store
        .produce(records)
        .await
        .expect("all records acknowledged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sink_tasks_in_one_group_share_partitions_without_loss() {
    let env = TestEnv::load();
    let prefix = unique_name("twotasks");
    let mut config = kafka_config(&env, &format!("{prefix}-offsets"));
    config.topic_creation.partitions = 4;
    let store = KafkaStore::new(config).expect("store");
    let topic = format!("{prefix}.events");
    let group = format!("connect-{prefix}");
    let count = 2_000u64;
    produce(&store, &topic, count).await;

    let selector = TopicSelector::Names(vec![topic.clone()]);
    let mut tasks = Vec::new();
    for task_id in 0..2 {
        tasks.push(
            store
                .consumer(&group, selector.clone(), task_id, 2)
                .await
                .expect("consumer"),
        );
    }
    // Read half of everything, commit it, then "restart" both tasks (new consumers, same
    // group) and read the rest: the union is everything, the halves are disjoint.
    let mut seen: Vec<BTreeSet<u64>> = vec![BTreeSet::new(), BTreeSet::new()];
    let mut by_partition: Vec<BTreeSet<u32>> = vec![BTreeSet::new(), BTreeSet::new()];
    let mut committed: Vec<ConsumerOffsets> = vec![ConsumerOffsets::new(), ConsumerOffsets::new()];
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.iter().map(BTreeSet::len).sum::<usize>() < (count / 2) as usize {
        assert!(Instant::now() < deadline, "first half never arrived");
        for (i, task) in tasks.iter_mut().enumerate() {
            let records = task
                .poll(100, Duration::from_millis(200))
                .await
                .expect("poll");
            for r in records {
                seen[i].insert(r.offset + ((r.partition as u64) << 32));
                by_partition[i].insert(r.partition);
                committed[i].insert(
                    TopicPartition::new(r.topic.clone(), r.partition),
                    r.offset + 1,
                );
            }
        }
    }
    for (i, task) in tasks.iter_mut().enumerate() {
        task.commit(&committed[i]).await.expect("commit");
        assert_eq!(
            task.assignment().len(),
            2,
            "each task owns two of four partitions"
        );
    }
    drop(tasks);
    assert!(by_partition[0].is_disjoint(&by_partition[1]));

    let mut tasks = Vec::new();
    for task_id in 0..2 {
        tasks.push(
            store
                .consumer(&group, selector.clone(), task_id, 2)
                .await
                .expect("consumer"),
        );
    }
    let mut again = 0usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.iter().map(BTreeSet::len).sum::<usize>() < count as usize {
        assert!(
            Instant::now() < deadline,
            "rest never arrived: {} of {count}: {:?}",
            seen.iter().map(BTreeSet::len).sum::<usize>(),
            seen.iter()
                .map(|s| {
                    let mut m = std::collections::BTreeMap::new();
                    for x in s {
                        *m.entry(x >> 32).or_insert(0) += 1;
                    }
                    m
                })
                .collect::<Vec<_>>()
        );
        for (i, task) in tasks.iter_mut().enumerate() {
            for r in task
                .poll(500, Duration::from_millis(200))
                .await
                .expect("poll")
            {
                assert!(
                    !by_partition[1 - i].contains(&r.partition),
                    "partition {} read by both tasks",
                    r.partition
                );
                if !seen[i].insert(r.offset + ((r.partition as u64) << 32)) {
                    again += 1;
                }
            }
        }
    }
    assert!(seen[0].is_disjoint(&seen[1]));
    assert_eq!(
        again, 0,
        "records below the committed offsets were read again"
    );
}

/// One member of a consumer group driven as the sink runner drives it: every record read
/// is "durable" at once, so everything consumed is committed after each poll and, above
/// all, before a revoked partition is released.
struct Member {
    consumer: Box<dyn tributary_runtime::storage::TopicConsumer>,
    consumed: ConsumerOffsets,
    read: u64,
}

impl Member {
    /// One poll; checks each record is the next one of its partition (no gap, no repeat,
    /// whoever read the previous one) and comes from a partition this member owns.
    async fn step(&mut self, next: &mut std::collections::BTreeMap<u32, u64>) {
        let records = self
            .consumer
            .poll(200, Duration::from_millis(100))
            .await
            .expect("poll");
        let owned = self.consumer.assignment();
        for r in records {
            let tp = TopicPartition::new(r.topic.clone(), r.partition);
            assert!(
                owned.contains(&tp),
                "record of {tp} not assigned here: {owned:?}"
            );
            let expected = next.entry(r.partition).or_insert(0);
            assert_eq!(
                r.offset, *expected,
                "partition {}: got offset {}, expected {} (a gap is a loss, a lower one a re-read)",
                r.partition, r.offset, expected
            );
            *expected += 1;
            self.consumed.insert(tp, r.offset + 1);
            self.read += 1;
        }
        self.consumer.commit(&self.consumed).await.expect("commit");
        let revoking = self.consumer.revoking();
        if !revoking.is_empty() {
            // Committed above, while still the owner; now forget and give them up.
            for tp in &revoking {
                self.consumed.remove(tp);
            }
            self.consumer.release(&revoking).await.expect("release");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_of_one_group_hand_partitions_over_without_loss() {
    let env = TestEnv::load();
    let prefix = unique_name("groupmembers");
    let mut config = kafka_config(&env, &format!("{prefix}-offsets"));
    config.topic_creation.partitions = 4;
    config.sink_assignment = SinkAssignment::Group;
    let store = KafkaStore::new(config).expect("store");
    let topic = format!("{prefix}.events");
    let group = format!("connect-{prefix}");
    let count = 3_000u64;
    produce(&store, &topic, count / 3).await;

    let selector = TopicSelector::Names(vec![topic.clone()]);
    let member = |task_id| {
        let store = store.clone();
        let group = group.clone();
        let selector = selector.clone();
        async move {
            Member {
                consumer: store
                    .consumer(&group, selector, task_id, 2)
                    .await
                    .expect("consumer"),
                consumed: ConsumerOffsets::new(),
                read: 0,
            }
        }
    };
    let total = |next: &std::collections::BTreeMap<u32, u64>| next.values().sum::<u64>();
    let mut next = std::collections::BTreeMap::new();
    // The first member alone owns every partition.
    let mut a = member(0).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while a.read < 200 {
        assert!(
            Instant::now() < deadline,
            "the first member read {} records",
            a.read
        );
        a.step(&mut next).await;
    }
    // A second member joins while records keep coming: the group splits the partitions.
    let mut b = member(1).await;
    let mut produced = count / 3;
    let deadline = Instant::now() + Duration::from_secs(90);
    while b.read < 100 || total(&next) < produced {
        assert!(
            Instant::now() < deadline,
            "the second member read {} records, {} of {produced} in all; owned {:?} / {:?}",
            b.read,
            total(&next),
            a.consumer.assignment(),
            b.consumer.assignment()
        );
        if b.read < 100 && produced < 10 * count {
            produce(&store, &topic, 20).await;
            produced += 20;
        }
        a.step(&mut next).await;
        b.step(&mut next).await;
        let (owned_a, owned_b) = (a.consumer.assignment(), b.consumer.assignment());
        assert!(
            owned_a.iter().all(|tp| !owned_b.contains(tp)),
            "one partition owned twice: {owned_a:?} / {owned_b:?}"
        );
    }
    let a_before_leave = a.read;
    assert!(
        a_before_leave > 200,
        "the first member stopped reading after the join"
    );
    let owned_b = b.consumer.assignment();
    assert!(
        !owned_b.is_empty() && owned_b.len() < 4,
        "the group did not split the partitions: the second member owns {owned_b:?}"
    );
    // The second member leaves (as a stopping task does: commit, then close): the first
    // takes every partition back and reads the rest from where the second one stopped.
    b.consumer.commit(&b.consumed).await.expect("commit");
    drop(b);
    produce(&store, &topic, count / 3).await;
    produced += count / 3;
    let deadline = Instant::now() + Duration::from_secs(90);
    while total(&next) < produced {
        assert!(
            Instant::now() < deadline,
            "{} of {produced} after the second member left; first member owns {:?}",
            total(&next),
            a.consumer.assignment()
        );
        a.step(&mut next).await;
    }
    assert_eq!(a.consumer.assignment().len(), 4);
    assert_eq!(total(&next), produced, "every record exactly once");
    // Nothing read twice, nothing skipped: the committed offsets are the ends.
    let committed = group_committed(&env, &group, &topic, 4);
    assert_eq!(
        committed.values().sum::<u64>(),
        produced,
        "committed {committed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_consumes_a_kafka_topic() {
    let env = TestEnv::load();
    let prefix = unique_name("clicons");
    let store = KafkaStore::new(kafka_config(&env, &format!("{prefix}-offsets"))).expect("store");
    let topic = format!("{prefix}.t");
    produce(&store, &topic, 25).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let worker_yaml = dir.path().join("worker.yaml");
    std::fs::write(
        &worker_yaml,
        format!(
            "storage:\n  type: kafka\n  bootstrap_servers: {}\n",
            env.kafka_bootstrap
        ),
    )
    .expect("worker yaml");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args([
            "topics",
            "consume",
            &topic,
            "--from-beginning",
            "--max",
            "20",
        ])
        .arg("--config")
        .arg(&worker_yaml)
        .env("TRIBUTARY_LOG", "warn")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .expect("consume finishes")
        .expect("run tributary");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 20);
    for line in &lines {
        assert_eq!(line["topic"], serde_json::json!(topic));
        assert!(line["value"]["n"].as_u64().is_some(), "{line}");
        assert!(
            line["key"].as_str().is_some_and(|k| k.starts_with("key-")),
            "{line}"
        );
        assert_eq!(line["headers"]["h"], serde_json::json!("v"));
    }

    let listed = tokio::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["topics", "list", "--config"])
        .arg(&worker_yaml)
        .env("TRIBUTARY_LOG", "warn")
        .kill_on_drop(true)
        .output();
    let listed = tokio::time::timeout(Duration::from_secs(60), listed)
        .await
        .expect("list finishes")
        .expect("run tributary");
    assert!(listed.status.success());
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&topic));
}

#[test]
fn exactly_once_required_is_rejected_clearly() {
    let registry = Registry::with_builtins();
    let with = |value: &str| {
        registry.validate(&connector(
            "gen",
            &[
                ("connector.class", "datagen"),
                ("topic.prefix", "eos"),
                ("tables", "a"),
                ("exactly.once.support", value),
            ],
        ))
    };
    let Err(err) = with("required") else {
        panic!("exactly.once.support=required was accepted");
    };
    let text = err.to_string();
    assert!(text.contains("exactly.once.support"), "{text}");
    assert!(text.contains("not supported yet"), "{text}");
    assert!(text.contains("transactions"), "{text}");
    for accepted in ["requested", "disabled"] {
        if let Err(e) = with(accepted) {
            panic!("exactly.once.support={accepted} rejected: {e}");
        }
    }
}

// --- kill -9 of the real binary --------------------------------------------------------

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_binary(worker_yaml: &Path, connectors: &Path, data: &Path) -> Running {
    Running(
        Command::new(env!("CARGO_BIN_EXE_tributary"))
            .arg("run")
            .arg("--config")
            .arg(worker_yaml)
            .arg("--connectors-dir")
            .arg(connectors)
            .arg("--data-dir")
            .arg(data)
            .args(["--rest-port", "0"])
            .env("TRIBUTARY_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn tributary"),
    )
}

/// The committed datagen seq of connector `gen`, read from the offsets topic itself.
fn committed_seq_in_topic(config: &KafkaStorageConfig) -> Option<u64> {
    let mut last = None;
    tributary_runtime::kafka::offsets::read_compacted(
        config,
        &config.offsets_topic,
        1,
        |k, v, _| {
            if let Some((connector, _)) = parse_key(k)
                && connector == "gen"
            {
                last = v
                    .and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
                    .and_then(|v| v["seq"].as_u64());
            }
        },
    )
    .ok()?;
    last
}

/// The first committed datagen seq of connector `gen` at or above `min` in the offsets
/// topic, else the last one before its end. Unlike [`committed_seq_in_topic`] it stops at
/// `min`: reading to the end chases a source that commits faster than a loaded machine
/// reads, and could only finish once the source has.
fn committed_seq_reaching(config: &KafkaStorageConfig, min: u64) -> Option<u64> {
    use rdkafka::Message;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.bootstrap_servers)
        .set("group.id", format!("probe-{}", config.offsets_topic))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .ok()?;
    let mut list = rdkafka::TopicPartitionList::new();
    list.add_partition_offset(&config.offsets_topic, 0, rdkafka::Offset::Beginning)
        .ok()?;
    reader.assign(&list).ok()?;
    let mut last = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match reader.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => return last,
            Some(Err(_)) => return last,
            Some(Ok(message)) => {
                let is_gen = message
                    .key()
                    .and_then(parse_key)
                    .is_some_and(|(connector, _)| connector == "gen");
                if !is_gen {
                    continue;
                }
                last = message
                    .payload()
                    .and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
                    .and_then(|v| v["seq"].as_u64());
                if last.is_some_and(|seq| seq >= min) {
                    return last;
                }
            }
        }
    }
    last
}

/// Records in the datagen topics (read to their end).
fn records_in_topics(config: &KafkaStorageConfig, prefix: &str) -> u64 {
    let mut total = 0;
    for table in ["a", "b"] {
        total += tributary_runtime::kafka::inspect::consume(
            config,
            &format!("{prefix}.{table}"),
            true,
            None,
            true,
            |_| Ok(()),
        )
        .expect("read topic");
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_mid_stream_then_restart_from_the_offsets_topic() {
    let env = TestEnv::load();
    let prefix = unique_name("crashkafka");
    let offsets_topic = format!("{prefix}-offsets");
    let config = kafka_config(&env, &offsets_topic);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out.jsonl");
    let connectors: PathBuf = dir.path().join("connectors");
    let data: PathBuf = dir.path().join("data");
    std::fs::create_dir_all(&connectors).expect("connectors dir");
    let total: u64 = 600_000;
    // Rate-limited so that the source is still running when the probe below sees its first
    // 60 000 offsets, however loaded the machine (at full speed it can finish first).
    std::fs::write(
        connectors.join("gen.yaml"),
        format!(
            "name: gen\nconfig:\n  connector.class: datagen\n  topic.prefix: {prefix}\n  tables: [a, b]\n  total: {total}\n  batch.size: 1024\n  rate: 20000\n"
        ),
    )
    .expect("gen config");
    std::fs::write(
        connectors.join("sink.json"),
        serde_json::json!({"name": format!("{prefix}-sink"), "config": {
            "connector.class": "FileStreamSink",
            "topics.regex": format!("{prefix}\\..*"),
            "file": out.display().to_string(),
            "file.format": "envelope"
        }})
        .to_string(),
    )
    .expect("sink config");
    let worker_yaml = dir.path().join("worker.yaml");
    std::fs::write(
        &worker_yaml,
        format!(
            "storage:\n  type: kafka\n  bootstrap_servers: {}\n  offset.storage.topic: {offsets_topic}\n",
            env.kafka_bootstrap
        ),
    )
    .expect("worker yaml");

    let mut first = start_binary(&worker_yaml, &connectors, &data);
    // Kill once the source committed a good part, but before it finished.
    let mut committed_at_kill = 0;
    let probe = config.clone();
    wait_for(
        "source offsets in the offsets topic",
        Duration::from_secs(120),
        || {
            committed_at_kill = committed_seq_reaching(&probe, 60_000).unwrap_or(0);
            if committed_at_kill >= 60_000 {
                Ok(())
            } else {
                Err(format!("committed seq {committed_at_kill}"))
            }
        },
    )
    .await;
    first.0.kill().expect("kill -9");
    first.0.wait().expect("reap");
    let committed_at_kill = committed_seq_in_topic(&config).expect("committed seq");
    assert!(
        committed_at_kill < total - 1,
        "killed too late to prove anything"
    );
    let (_, lines_at_kill) = sink_seqs(&out);

    // Local state goes: everything must come back from Kafka.
    std::fs::remove_dir_all(&data).expect("remove data dir");
    let _second = start_binary(&worker_yaml, &connectors, &data);
    wait_for(
        "every seq in the sink file",
        Duration::from_secs(180),
        || {
            let (seqs, _) = sink_seqs(&out);
            let gone = missing(&seqs, total);
            if gone.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} of {total} seqs, first missing {gone:?}",
                    seqs.len()
                ))
            }
        },
    )
    .await;
    // Resumed from the offsets topic, not from seq 0: the topics hold at most the in-flight
    // window beyond `total` (a restart from scratch would add `committed_at_kill` more).
    let produced = records_in_topics(&config, &prefix);
    assert!(
        produced < total + committed_at_kill,
        "{produced} records for {total} events: the source restarted from scratch (committed {committed_at_kill})"
    );
    // The sink resumed from its group's committed offsets: duplicates at most one batch
    // beyond what it had committed, far fewer than a re-read from the beginning.
    let (_, lines) = sink_seqs(&out);
    assert!(
        (lines as u64) < total + lines_at_kill as u64,
        "{lines} sink lines: the sink re-read from the beginning (had {lines_at_kill})"
    );
}

/// tansu answers a fetch from inside a batch with the NEXT batch; when the committed offset
/// is inside the last batch there is no next one. The consumer must still deliver the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_resumed_inside_the_last_batch_gets_the_rest_of_it() {
    let env = TestEnv::load();
    let prefix = unique_name("midbatch");
    let store = KafkaStore::new(kafka_config(&env, &format!("{prefix}-offsets"))).expect("store");
    let topic = format!("{prefix}.t");
    produce(&store, &topic, 100).await; // one produce call: one batch on tansu
    let group = format!("connect-{prefix}");
    let selector = TopicSelector::Names(vec![topic.clone()]);
    let mut first = store
        .consumer(&group, selector.clone(), 0, 1)
        .await
        .expect("consumer");
    let committed: ConsumerOffsets = [(TopicPartition::new(topic.as_str(), 0), 30)]
        .into_iter()
        .collect();
    first.commit(&committed).await.expect("commit");
    drop(first);

    let mut resumed = store
        .consumer(&group, selector, 0, 1)
        .await
        .expect("consumer");
    let mut offsets = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while offsets.len() < 70 {
        assert!(
            Instant::now() < deadline,
            "only {} of 70 records after the committed offset: {offsets:?}",
            offsets.len()
        );
        for r in resumed
            .poll(1000, Duration::from_millis(500))
            .await
            .expect("poll")
        {
            offsets.push(r.offset);
        }
    }
    assert_eq!(offsets, (30..100).collect::<Vec<u64>>());
}

// --- per-connector settings: topic.creation.*, producer/consumer.override.* ------------

/// Describes `topic`'s configs as the broker reports them. tansu 0.6.0 reports only the
/// configs set at creation, and marks them as defaults (`is_default`, source DEFAULT_CONFIG),
/// so nothing can be filtered on that: assertions compare values.
async fn topic_configs(env: &TestEnv, topic: &str) -> std::collections::BTreeMap<String, String> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &env.kafka_bootstrap)
        .create()
        .expect("admin");
    let described = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await
        .expect("describe");
    let resource = described
        .into_iter()
        .next()
        .expect("one resource")
        .expect("described");
    resource
        .entries
        .iter()
        .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
        .collect()
}

/// A source connector's KIP-158 groups decide how each of its topics is created: the first
/// group that includes (and does not exclude) the topic, else `topic.creation.default.*`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_connector_creates_its_topics_with_its_topic_creation_groups() {
    let env = TestEnv::load();
    let prefix = unique_name("kip158");
    let dir = tempfile::tempdir().expect("tempdir");
    // The worker's own default (1 partition) must not be what the topics get.
    let worker = Worker::start(
        WorkerConfig {
            data_dir: dir.path().join("data"),
            storage: StorageConfig::Kafka(kafka_config(&env, &format!("{prefix}-offsets"))),
            ..WorkerConfig::default()
        },
        Registry::with_builtins(),
    )
    .await
    .expect("worker starts on Kafka storage");
    let escaped = prefix.replace('.', "\\.");
    let compacted = format!("{escaped}\\.a");
    let wide = format!("{escaped}\\..*");
    let not_wide = format!("{escaped}\\.c");
    let name = format!("{prefix}-gen");
    worker
        .create(
            connector(
                &name,
                &[
                    ("connector.class", "datagen"),
                    ("topic.prefix", &prefix),
                    ("tables", "a,b,c"),
                    ("total", "60"),
                    ("topic.creation.groups", "compacted,wide"),
                    ("topic.creation.default.partitions", "2"),
                    ("topic.creation.default.replication.factor", "1"),
                    ("topic.creation.default.retention.ms", "7200000"),
                    ("topic.creation.compacted.include", &compacted),
                    ("topic.creation.compacted.cleanup.policy", "compact"),
                    ("topic.creation.wide.include", &wide),
                    ("topic.creation.wide.exclude", &not_wide),
                    ("topic.creation.wide.partitions", "5"),
                    ("topic.creation.wide.max.message.bytes", "2000000"),
                    ("producer.override.linger.ms", "1"),
                ],
            ),
            TargetState::Running,
        )
        .await
        .expect("create datagen");
    let store = KafkaStore::new(kafka_config(&env, &format!("{prefix}-offsets"))).expect("store");
    let partitions = |listed: &[tributary_runtime::storage::TopicInfo], table: &str| {
        listed
            .iter()
            .find(|t| t.name == format!("{prefix}.{table}"))
            .map(|t| t.partitions.len())
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let listed = loop {
        let listed = store.list_topics().await.expect("list");
        if ["a", "b", "c"]
            .iter()
            .all(|t| partitions(&listed, t).is_some())
        {
            break listed;
        }
        assert!(
            Instant::now() < deadline,
            "the datagen topics never appeared"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // a: group compacted (its own cleanup.policy; partitions from the default group; the
    // default group's retention.ms is not inherited).
    assert_eq!(partitions(&listed, "a"), Some(2));
    let a = topic_configs(&env, &format!("{prefix}.a")).await;
    assert_eq!(
        a.get("cleanup.policy").map(String::as_str),
        Some("compact"),
        "{a:?}"
    );
    assert_ne!(
        a.get("retention.ms").map(String::as_str),
        Some("7200000"),
        "{a:?}"
    );
    // b: group wide.
    assert_eq!(partitions(&listed, "b"), Some(5));
    let b = topic_configs(&env, &format!("{prefix}.b")).await;
    assert_eq!(
        b.get("max.message.bytes").map(String::as_str),
        Some("2000000"),
        "{b:?}"
    );
    assert_ne!(
        b.get("cleanup.policy").map(String::as_str),
        Some("compact"),
        "{b:?}"
    );
    // c: excluded from wide, in no other group: the default group.
    assert_eq!(partitions(&listed, "c"), Some(2));
    let c = topic_configs(&env, &format!("{prefix}.c")).await;
    assert_eq!(
        c.get("retention.ms").map(String::as_str),
        Some("7200000"),
        "{c:?}"
    );
    // The records went through the connector's own producer.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stored = worker.offsets().load(&name).await.expect("load offsets");
        if stored.first().and_then(|s| s.offset.value["seq"].as_u64()) == Some(59) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "datagen never finished: {stored:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    worker.shutdown().await;
}

#[test]
fn connector_kafka_settings_are_validated_with_the_field_and_reason() {
    let registry = Registry::with_builtins();
    let Err(err) = registry.validate(&connector(
        "gen",
        &[
            ("connector.class", "datagen"),
            ("topic.creation.groups", "g"),
            ("topic.creation.default.partitions", "many"),
            ("topic.creation.g.include", "(unclosed"),
            ("producer.override.enable.idempotence", "false"),
            ("producer.override.acks", "1"),
            ("producer.override.no.such.property", "1"),
        ],
    )) else {
        panic!("invalid Kafka settings were accepted");
    };
    let by_field: std::collections::BTreeMap<&str, &str> = err
        .0
        .iter()
        .map(|e| (e.field.as_str(), e.message.as_str()))
        .collect();
    assert!(
        by_field["topic.creation.default.partitions"].contains("integer"),
        "{err}"
    );
    assert!(
        by_field["topic.creation.default.replication.factor"].contains("required"),
        "{err}"
    );
    assert!(
        by_field["topic.creation.g.include"].contains("regular expression"),
        "{err}"
    );
    assert!(
        by_field["producer.override.enable.idempotence"].contains("idempoten"),
        "{err}"
    );
    assert!(
        by_field["producer.override.acks"].contains("must be all"),
        "{err}"
    );
    assert!(
        by_field["producer.override.no.such.property"].contains("Kafka client"),
        "{err}"
    );

    let Err(err) = registry.validate(&connector(
        "sink",
        &[
            ("connector.class", "FileStreamSink"),
            ("topics", "t"),
            ("file", "/tmp/tributary-kafka-validate.jsonl"),
            ("consumer.override.enable.auto.commit", "true"),
            ("consumer.override.isolation.level", "read_uncommitted"),
        ],
    )) else {
        panic!("auto-commit was accepted");
    };
    let fields: Vec<&str> = err.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "consumer.override.enable.auto.commit",
            "consumer.override.isolation.level"
        ],
        "{err}"
    );

    // Valid settings are kept for the Kafka storage.
    let ok = registry
        .validate(&connector(
            "sink",
            &[
                ("connector.class", "FileStreamSink"),
                ("topics", "t"),
                ("file", "/tmp/tributary-kafka-validate.jsonl"),
                ("consumer.override.fetch.min.bytes", "10"),
            ],
        ))
        .unwrap_or_else(|e| panic!("valid: {e}"));
    assert_eq!(ok.kafka.consumer_override["fetch.min.bytes"], "10");
}

#[tokio::test]
async fn on_the_embedded_storage_kafka_settings_are_accepted_and_said_to_be_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let worker = Worker::start(
        WorkerConfig {
            data_dir: dir.path().join("data"),
            ..WorkerConfig::default()
        },
        Registry::with_builtins(),
    )
    .await
    .expect("embedded worker");
    let validated = worker
        .validate(&connector(
            "gen",
            &[
                ("connector.class", "datagen"),
                ("producer.override.linger.ms", "20"),
                ("topic.creation.default.partitions", "3"),
                ("topic.creation.default.replication.factor", "1"),
            ],
        ))
        .unwrap_or_else(|e| panic!("valid: {e}"));
    let text = validated.warnings.join("\n");
    assert!(
        text.contains("producer.override.*: accepted but ignored"),
        "{text}"
    );
    assert!(
        text.contains("topic.creation.*: accepted but ignored"),
        "{text}"
    );
    worker.shutdown().await;
}

/// `producer.override.*` gives the connector a producer of its own; the worker's is
/// unchanged. Observable through a size limit the client enforces before sending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_overrides_apply_to_the_connector_only() {
    let env = TestEnv::load();
    let prefix = unique_name("prodoverride");
    let store = KafkaStore::new(kafka_config(&env, &format!("{prefix}-offsets"))).expect("store");
    let mut settings = tributary_runtime::kafka::ConnectorKafkaSettings::default();
    settings
        .producer_override
        .insert("message.max.bytes".into(), "1000".into());
    let scoped: Arc<dyn TopicStore> = Arc::new(store.with_connector("small", &settings));
    let topic = format!("{prefix}.t");
    let partitions = scoped.ensure_topic(&topic).await.expect("topic");
    assert_eq!(partitions, 1);
    let big = |n: u64| ProduceRecord {
        topic: Arc::from(topic.as_str()),
        partition: 0,
        record: TopicRecord {
            key: Some(format!("key-{n}").into_bytes().into()),
            value: Some(vec![b'x'; 4_000].into()),
            headers: Vec::new(),
            timestamp_ms: 1_700_000_000_000,
        },
    };
    let err = scoped
        .produce(vec![big(0)])
        .await
        .expect_err("over the connector's message.max.bytes");
    assert_eq!(
        err.kind,
        tributary_runtime::error::ErrorKind::Definite,
        "{err}"
    );
    assert!(err.message.to_lowercase().contains("too large"), "{err}");
    store
        .produce(vec![big(1)])
        .await
        .expect("the worker's producer has the default limit");
}

/// `consumer.override.*` reaches the connector's consumers: with `auto.offset.reset=error`
/// a group without committed offsets cannot start, while the worker's default (earliest)
/// reads from the beginning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_overrides_apply_to_the_connector_only() {
    let env = TestEnv::load();
    let prefix = unique_name("consoverride");
    let store = KafkaStore::new(kafka_config(&env, &format!("{prefix}-offsets"))).expect("store");
    let topic = format!("{prefix}.t");
    produce(&store, &topic, 10).await;
    let selector = TopicSelector::Names(vec![topic.clone()]);

    let mut settings = tributary_runtime::kafka::ConnectorKafkaSettings::default();
    settings
        .consumer_override
        .insert("auto.offset.reset".into(), "error".into());
    let scoped = store.with_connector("strict", &settings);
    let mut strict = scoped
        .consumer(&format!("connect-{prefix}-strict"), selector.clone(), 0, 1)
        .await
        .expect("consumer");
    let deadline = Instant::now() + Duration::from_secs(60);
    let err = loop {
        match strict.poll(100, Duration::from_millis(500)).await {
            Err(e) => break e,
            Ok(records) => assert!(
                records.is_empty(),
                "read {} records despite auto.offset.reset=error",
                records.len()
            ),
        }
        assert!(Instant::now() < deadline, "no offset-reset error");
    };
    assert!(err.message.to_lowercase().contains("offset"), "{err}");
    drop(strict);

    let mut default = store
        .consumer(&format!("connect-{prefix}-default"), selector, 0, 1)
        .await
        .expect("consumer");
    let mut read = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while read < 10 {
        assert!(Instant::now() < deadline, "read {read} of 10");
        read += default
            .poll(100, Duration::from_millis(500))
            .await
            .expect("poll")
            .len();
    }
}

// --- consumer group rebalance through real workers ---------------------------------------

/// `(partition, offset)` of the complete lines of an envelope-format sink file.
fn sink_positions(out: &Path) -> BTreeSet<(u32, u64)> {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let complete = text.rfind('\n').map_or(0, |i| i + 1);
    text[..complete]
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("sink line is JSON");
            let partition = v["partition"].as_u64().expect("partition") as u32;
            let offset = v["offset"].as_u64().expect("offset");
            (partition, offset)
        })
        .collect()
}

/// The committed offsets of `group` on `topic`'s `partitions`, read from the broker.
fn group_committed(
    env: &TestEnv,
    group: &str,
    topic: &str,
    partitions: u32,
) -> std::collections::BTreeMap<u32, u64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &env.kafka_bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("reader");
    let mut list = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(topic, p as i32);
    }
    let committed = reader
        .committed_offsets(list, Duration::from_secs(10))
        .expect("committed offsets");
    committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            rdkafka::Offset::Offset(n) if n >= 0 => Some((e.partition() as u32, n as u64)),
            _ => None,
        })
        .collect()
}

/// The rebalance invariant: every offset below a committed one is in some sink file.
/// Sink files only grow (fsync'd before each commit), so reading them after the committed
/// offsets is a fair check.
fn assert_committed_is_durable(
    env: &TestEnv,
    group: &str,
    topic: &str,
    outs: &[PathBuf],
) -> std::collections::BTreeMap<u32, u64> {
    let committed = group_committed(env, group, topic, 4);
    let mut durable = BTreeSet::new();
    for out in outs {
        durable.extend(sink_positions(out));
    }
    for (partition, next) in &committed {
        if let Some(gap) = (0..*next).find(|o| !durable.contains(&(*partition, *o))) {
            panic!(
                "partition {partition}: committed offset {next}, but offset {gap} is in no sink file"
            );
        }
    }
    committed
}

/// Partitions a sink file holds records of.
fn partitions_in(out: &Path) -> BTreeSet<u32> {
    sink_positions(out).into_iter().map(|(p, _)| p).collect()
}

/// A sink connector run by several workers (`sink.partition.assignment: group`): one group
/// `connect-<name>`, its tasks in all of them. While a source keeps producing, a second
/// worker joins (the group splits the partitions) and leaves, then a third one (the binary,
/// another process) joins and stops on SIGTERM. At every step the committed offsets are
/// below what the sink files hold; the remaining worker takes over each departed worker's
/// partitions past where it stopped; in the end every record is in a file (at least once)
/// and the group committed every partition to its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_tasks_of_several_workers_rebalance_without_loss() {
    let env = TestEnv::load();
    let prefix = unique_name("rebalance");
    let sink_name = format!("{prefix}-sink");
    let group = format!("connect-{sink_name}");
    let topic = format!("{prefix}.a");
    let dir = tempfile::tempdir().expect("tempdir");
    let out_files: Vec<PathBuf> = ["a", "b", "c"]
        .iter()
        .map(|w| dir.path().join(format!("out-{w}.jsonl")))
        .collect();
    let outs: &[PathBuf] = &out_files;
    let total: u64 = 9_000;
    // Each worker its own offsets topic: a starting worker reads its offsets topic to the
    // end, which would chase the source's commits if it shared worker a's.
    let worker_config = |name: &str| {
        let mut kafka = kafka_config(&env, &format!("{prefix}-offsets-{name}"));
        kafka.sink_assignment = SinkAssignment::Group;
        WorkerConfig {
            data_dir: dir.path().join(format!("data-{name}")),
            storage: StorageConfig::Kafka(kafka),
            ..WorkerConfig::default()
        }
    };
    let sink = |out: &Path| {
        let out = out.display().to_string();
        connector(
            &sink_name,
            &[
                ("connector.class", "FileStreamSink"),
                ("topics", &topic),
                ("file", &out),
                ("file.format", "envelope"),
            ],
        )
    };
    let lines = |i: usize| sink_positions(&outs[i]).len();
    let check = || assert_committed_is_durable(&env, &group, &topic, outs);

    let a = Worker::start(worker_config("a"), Registry::with_builtins())
        .await
        .expect("worker a");
    let total_text = total.to_string();
    a.create(
        connector(
            &format!("{prefix}-gen"),
            &[
                ("connector.class", "datagen"),
                ("topic.prefix", &prefix),
                ("tables", "a"),
                ("total", &total_text),
                ("rate", "200"),
                ("topic.creation.default.partitions", "4"),
                ("topic.creation.default.replication.factor", "1"),
            ],
        ),
        TargetState::Running,
    )
    .await
    .expect("create datagen");
    a.create(sink(&outs[0]), TargetState::Running)
        .await
        .expect("create sink in a");
    wait_for("worker a's first lines", Duration::from_secs(60), || {
        check();
        if lines(0) >= 300 {
            Ok(())
        } else {
            Err(format!("{} lines", lines(0)))
        }
    })
    .await;

    // Worker b joins the group.
    let b = Worker::start(worker_config("b"), Registry::with_builtins())
        .await
        .expect("worker b");
    b.create(sink(&outs[1]), TargetState::Running)
        .await
        .expect("create sink in b");
    let a_at_join = lines(0);
    wait_for("both workers reading", Duration::from_secs(90), || {
        check();
        if lines(1) >= 200 && lines(0) >= a_at_join + 200 {
            Ok(())
        } else {
            Err(format!("a {} (was {a_at_join}), b {}", lines(0), lines(1)))
        }
    })
    .await;
    let in_b = partitions_in(&outs[1]);
    assert!(
        in_b.len() < 4,
        "worker b read every partition: the group did not split them ({in_b:?})"
    );

    // Worker b leaves: a takes its partitions back and goes on past where b stopped.
    b.shutdown().await;
    drop(b);
    check();
    let takeover = |gone: usize, what: &'static str| {
        let last_of_gone: std::collections::BTreeMap<u32, u64> = sink_positions(&outs[gone])
            .into_iter()
            .fold(std::collections::BTreeMap::new(), |mut m, (p, o)| {
                let e = m.entry(p).or_insert(o);
                *e = (*e).max(o);
                m
            });
        wait_for(what, Duration::from_secs(90), move || {
            check();
            let a_now = sink_positions(&outs[0]);
            let behind: Vec<u32> = last_of_gone
                .iter()
                .filter(|(p, o)| !a_now.iter().any(|(ap, ao)| ap == *p && ao > *o))
                .map(|(p, _)| *p)
                .collect();
            if behind.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "worker a has not gone past the departed worker on {behind:?}"
                ))
            }
        })
    };
    takeover(1, "worker a taking worker b's partitions").await;

    // Worker c, the real binary, joins, then stops on SIGTERM (a kill -9 cannot be tested
    // here: tansu 0.6.0 never reassigns the partitions of a member whose session expired,
    // see docs/decisions.md).
    let connectors = dir.path().join("connectors-c");
    std::fs::create_dir_all(&connectors).expect("connectors dir");
    std::fs::write(
        connectors.join("sink.json"),
        serde_json::json!({"name": sink_name, "config": {
            "connector.class": "FileStreamSink",
            "topics": topic,
            "file": outs[2].display().to_string(),
            "file.format": "envelope"
        }})
        .to_string(),
    )
    .expect("sink config");
    let worker_yaml = dir.path().join("worker-c.yaml");
    std::fs::write(
        &worker_yaml,
        format!(
            "storage:\n  type: kafka\n  bootstrap_servers: {}\n  offset.storage.topic: {prefix}-offsets-c\n  sink.partition.assignment: group\n",
            env.kafka_bootstrap
        ),
    )
    .expect("worker yaml");
    let mut c = start_binary(&worker_yaml, &connectors, &dir.path().join("data-c"));
    wait_for("worker c reading", Duration::from_secs(90), || {
        check();
        if lines(2) >= 200 {
            Ok(())
        } else {
            Err(format!("c {}", lines(2)))
        }
    })
    .await;
    let term = Command::new("kill")
        .args(["-TERM", &c.0.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.0.try_wait().expect("try_wait").is_none() {
        assert!(
            Instant::now() < deadline,
            "worker c did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    check();
    takeover(2, "worker a taking worker c's partitions").await;

    // Everything arrives, and the group commits every partition to its end.
    wait_for(
        "every record in a sink file",
        Duration::from_secs(120),
        || {
            let committed = check();
            let mut seqs = BTreeSet::new();
            let mut ends = std::collections::BTreeMap::new();
            for out in outs {
                seqs.extend(sink_seqs(out).0);
                for (p, o) in sink_positions(out) {
                    let e = ends.entry(p).or_insert(0);
                    *e = (*e).max(o + 1);
                }
            }
            let gone = missing(&seqs, total);
            if !gone.is_empty() {
                return Err(format!(
                    "{} of {total} seqs, first missing {gone:?}",
                    seqs.len()
                ));
            }
            if committed != ends {
                return Err(format!("committed {committed:?}, ends {ends:?}"));
            }
            Ok(())
        },
    )
    .await;
    a.shutdown().await;
}
