//! Buckets, tasks and records for the tests.

use std::process::Command;
use std::sync::Arc;

use aws_sdk_s3::Client;
use bytes::Bytes;
use tributary_runtime::config::RawConfig;
use tributary_runtime::data::decode::RecordDecoder;
use tributary_runtime::dead_letter::ErrantRecordReporter;
use tributary_runtime::record::{SinkRecord, TopicRecord};
use tributary_runtime::transforms::TransformChain;
use tributary_s3_sink::{S3SinkConfig, S3SinkTask, Store};

use crate::env::{TestEnv, unique_name};

/// A new bucket and a client for it.
pub struct Bucket {
    pub env: TestEnv,
    pub name: String,
    pub client: Client,
}

impl Bucket {
    pub async fn new(prefix: &str) -> Bucket {
        let env = TestEnv::load();
        let name = unique_name(prefix);
        let config = sink_config(
            &env,
            &name,
            &[("format.class", "json"), ("flush.size", "1")],
        );
        let store = Store::connect(&config).await;
        let client = store.client().clone();
        client
            .create_bucket()
            .bucket(&name)
            .send()
            .await
            .expect("create bucket");
        Bucket { env, name, client }
    }

    /// Every key in the bucket, sorted.
    pub async fn keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.name)
                .set_continuation_token(token)
                .send()
                .await
                .expect("list objects");
            keys.extend(
                out.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            match out.next_continuation_token() {
                Some(t) => token = Some(t.to_owned()),
                None => break,
            }
        }
        keys.sort();
        keys
    }

    pub async fn get(&self, key: &str) -> Vec<u8> {
        let out = self
            .client
            .get_object()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
            .expect("get object");
        out.body
            .collect()
            .await
            .expect("read body")
            .into_bytes()
            .to_vec()
    }

    /// A sink config for this bucket plus `pairs`.
    pub fn config(&self, pairs: &[(&str, &str)]) -> S3SinkConfig {
        sink_config(&self.env, &self.name, pairs)
    }

    /// A task writing to this bucket; `converters` are `value.converter*` settings.
    pub async fn task(&self, pairs: &[(&str, &str)], converters: &[(&str, &str)]) -> S3SinkTask {
        self.task_with_transforms(pairs, converters, &[]).await
    }

    /// [`task`](Self::task) with a chain of single message transforms (`transforms=...`,
    /// `transforms.<name>.*`) applied to every record before it is written.
    pub async fn task_with_transforms(
        &self,
        pairs: &[(&str, &str)],
        converters: &[(&str, &str)],
        transforms: &[(&str, &str)],
    ) -> S3SinkTask {
        let config = Arc::new(self.config(pairs));
        let store = Store::connect(&config).await;
        let raw = |pairs: &[(&str, &str)]| -> RawConfig {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let chain = TransformChain::from_config(&raw(transforms)).expect("transforms");
        let decoder = RecordDecoder::from_config(&raw(converters))
            .expect("converters")
            .with_transforms(chain);
        S3SinkTask::new(
            config,
            store,
            Arc::new(decoder),
            ErrantRecordReporter::fail_fast(),
        )
        .expect("task")
    }

    /// Runs `script` with the environment's Python (pyarrow, fastavro) on `object`, saved to
    /// a local file passed as `sys.argv[1]`; returns stdout.
    pub async fn python(&self, script: &str, key: &str) -> String {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("object");
        std::fs::write(&path, self.get(key).await).expect("write object");
        let out = Command::new(&self.env.python)
            .arg("-c")
            .arg(script)
            .arg(&path)
            .output()
            .expect("run python");
        assert!(
            out.status.success(),
            "python failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8")
    }
}

pub fn sink_config(env: &TestEnv, bucket: &str, pairs: &[(&str, &str)]) -> S3SinkConfig {
    let mut raw: RawConfig = [
        ("s3.bucket.name", bucket),
        ("s3.region", env.s3_region.as_str()),
        ("store.url", env.s3_endpoint.as_str()),
        ("aws.access.key.id", env.s3_access_key.as_str()),
        ("aws.secret.access.key", env.s3_secret_key.as_str()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    raw.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let parsed = S3SinkConfig::config_def()
        .parse(&raw)
        .expect("parse config");
    S3SinkConfig::from_parsed(&parsed).expect("valid config")
}

/// `value.converter` settings for Kafka Connect JSON with schemas.
pub const JSON_WITH_SCHEMAS: &[(&str, &str)] = &[
    (
        "value.converter",
        "org.apache.kafka.connect.json.JsonConverter",
    ),
    ("value.converter.schemas.enable", "true"),
];

/// A record at `offset` of `topic`-`partition` with a JSON value.
pub fn record(
    topic: &str,
    partition: u32,
    offset: u64,
    timestamp_ms: i64,
    value: &serde_json::Value,
) -> SinkRecord {
    SinkRecord {
        topic: topic.into(),
        partition,
        offset,
        record: TopicRecord {
            key: None,
            value: Some(Bytes::from(value.to_string())),
            headers: Vec::new(),
            timestamp_ms,
        },
    }
}
