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
    worker
        .create(
            connector(
                "sink",
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
    worker.pause("sink").await.expect("pause");
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
    worker.resume("sink").await.expect("resume");
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
    std::fs::write(
        connectors.join("gen.yaml"),
        format!(
            "name: gen\nconfig:\n  connector.class: datagen\n  topic.prefix: {prefix}\n  tables: [a, b]\n  total: {total}\n  batch.size: 1024\n"
        ),
    )
    .expect("gen config");
    std::fs::write(
        connectors.join("sink.json"),
        serde_json::json!({"name": "sink", "config": {
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
            committed_at_kill = committed_seq_in_topic(&probe).unwrap_or(0);
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
