//! The worker's own config (YAML or JSON), with typed sections and unknown keys rejected.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::connector::ConnectorConfig;
use super::def::ConfigErrors;
use crate::log::LogConfig;

/// Where topics live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum StorageConfig {
    /// The embedded durable log in `<data_dir>/log` (the default: nothing else to run).
    Embedded {
        #[serde(default)]
        log: LogConfig,
    },
    /// A Kafka cluster: topics, sink consumer groups (`connect-<name>`) and source offsets
    /// (compacted `offset.storage.topic`) live there.
    Kafka(crate::kafka::KafkaStorageConfig),
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig::Embedded {
            log: LogConfig::default(),
        }
    }
}

/// The REST listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestConfig {
    /// Address to listen on; 127.0.0.1 unless listening elsewhere is a deliberate choice.
    pub listen: String,
    /// Who may call the API; without it every request is allowed (as Kafka Connect).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<RestAuthConfig>,
    /// Serve HTTPS with this certificate and key (PEM files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<RestTlsConfig>,
}

impl Default for RestConfig {
    fn default() -> Self {
        RestConfig {
            listen: "127.0.0.1:8083".into(),
            auth: None,
            tls: None,
        }
    }
}

/// REST authentication: bearer tokens and/or basic-auth users. Secret values may be
/// `${env:VAR}` or `${file:/path}` references, resolved when the listener starts.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestAuthConfig {
    /// Accepted `Authorization: Bearer <token>` values.
    pub tokens: Vec<RestToken>,
    /// Accepted `Authorization: Basic` users.
    pub users: Vec<RestUser>,
}

/// A bearer token and what it may do.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestToken {
    pub token: String,
    #[serde(default)]
    pub role: RestRole,
}

/// A basic-auth user and what it may do.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestUser {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub role: RestRole,
}

/// `admin` may do everything; `read_only` may only read (other methods get 403).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestRole {
    #[default]
    Admin,
    ReadOnly,
}

impl std::fmt::Debug for RestAuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let users: Vec<(&str, RestRole)> = self
            .users
            .iter()
            .map(|u| (u.username.as_str(), u.role))
            .collect();
        f.debug_struct("RestAuthConfig")
            .field("tokens", &format_args!("[{} redacted]", self.tokens.len()))
            .field("users", &users)
            .finish()
    }
}

/// TLS for the REST listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestTlsConfig {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// How failed tasks are restarted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestartConfig {
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl Default for RestartConfig {
    fn default() -> Self {
        RestartConfig {
            initial_backoff_ms: 500,
            max_backoff_ms: 60_000,
        }
    }
}

/// Worker configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Identifies this worker in `/status` (`worker_id`).
    pub worker_id: Option<String>,
    /// Everything durable: topics, offsets, connector configs and states.
    pub data_dir: PathBuf,
    /// Directory of connector files (YAML/JSON) to load at start.
    pub connectors_dir: Option<PathBuf>,
    pub storage: StorageConfig,
    pub rest: RestConfig,
    /// Commit source offsets and sink consumer offsets at most this often (ms). 0 commits
    /// as soon as records become durable (still coalescing commits while one is running).
    pub offset_flush_interval_ms: u64,
    pub restart: RestartConfig,
    /// Seconds between progress lines in the log for each running task.
    pub progress_interval_secs: u64,
    /// Default converters for every connector, with Kafka Connect's worker keys:
    /// `key.converter`, `value.converter` and their `key.converter.*` / `value.converter.*`
    /// settings. A connector that sets its own `<side>.converter` uses only its own settings
    /// for that side, as Kafka Connect does.
    pub converters: BTreeMap<String, String>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            worker_id: None,
            data_dir: PathBuf::from("data"),
            connectors_dir: None,
            storage: StorageConfig::default(),
            rest: RestConfig::default(),
            offset_flush_interval_ms: 0,
            restart: RestartConfig::default(),
            progress_interval_secs: 10,
            converters: BTreeMap::new(),
        }
    }
}

impl WorkerConfig {
    /// `config` with the worker's converter defaults for each side it does not set itself.
    pub fn with_converter_defaults(&self, config: &ConnectorConfig) -> ConnectorConfig {
        let mut out = config.clone();
        for side in ["key.converter", "value.converter"] {
            if config.config.contains_key(side) {
                continue;
            }
            let prefix = format!("{side}.");
            for (k, v) in &self.converters {
                if k == side || k.starts_with(&prefix) {
                    out.config.insert(k.clone(), v.clone());
                }
            }
        }
        out
    }

    /// Reads a worker config file (YAML, or JSON by extension).
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors::single("<file>", format!("cannot read {}: {e}", path.display()))
        })?;
        Self::parse(&text, path.extension().is_some_and(|e| e == "json"))
    }

    pub fn parse(text: &str, json: bool) -> Result<Self, ConfigErrors> {
        let parsed: Result<WorkerConfig, String> = if json {
            serde_json::from_str(text).map_err(|e| e.to_string())
        } else {
            serde_saphyr::from_str(text).map_err(|e| e.to_string())
        };
        let config = parsed.map_err(|e| ConfigErrors::single("<worker config>", e))?;
        config.validate()
    }

    fn validate(self) -> Result<Self, ConfigErrors> {
        let mut errors = ConfigErrors::default();
        for key in self.converters.keys() {
            let side_ok = ["key.converter", "value.converter"]
                .iter()
                .any(|side| key == side || key.starts_with(&format!("{side}.")));
            if !side_ok {
                errors.push(
                    format!("converters.{key}"),
                    "only key.converter, value.converter and their .* settings belong here",
                );
            }
        }
        match &self.storage {
            StorageConfig::Embedded { log } => {
                if log.segment_bytes < 4096 {
                    errors.push(
                        "storage.log.segment_bytes",
                        format!("must be at least 4096, got {}", log.segment_bytes),
                    );
                }
                if log.default_partitions == 0 {
                    errors.push("storage.log.default_partitions", "must be at least 1");
                }
            }
            StorageConfig::Kafka(kafka) => kafka.validate(&mut errors),
        }
        if self.restart.initial_backoff_ms == 0
            || self.restart.max_backoff_ms < self.restart.initial_backoff_ms
        {
            errors.push("restart", "need 0 < initial_backoff_ms <= max_backoff_ms");
        }
        if self.rest.listen.parse::<std::net::SocketAddr>().is_err() {
            errors.push(
                "rest.listen",
                format!(
                    "must be host:port with an IP address, got {:?}",
                    self.rest.listen
                ),
            );
        }
        if let Some(auth) = &self.rest.auth {
            if auth.tokens.is_empty() && auth.users.is_empty() {
                errors.push("rest.auth", "needs at least one of tokens or users (remove rest.auth to disable authentication)");
            }
            if auth.tokens.iter().any(|t| t.token.is_empty()) {
                errors.push("rest.auth.tokens", "a token must not be empty");
            }
            if auth
                .users
                .iter()
                .any(|u| u.username.is_empty() || u.username.contains(':') || u.password.is_empty())
            {
                errors.push(
                    "rest.auth.users",
                    "a user needs a non-empty username without ':' and a non-empty password",
                );
            }
        }
        errors.into_result(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_yaml() {
        let c = WorkerConfig::parse("data_dir: /tmp/x\nstorage:\n  type: embedded\n  log:\n    fsync: {mode: interval, interval_ms: 50}\n", false)
            .expect("valid");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        let StorageConfig::Embedded { log } = &c.storage else {
            panic!("embedded storage expected");
        };
        assert_eq!(
            log.fsync,
            crate::log::FsyncPolicy::Interval { interval_ms: 50 }
        );
        assert_eq!(c.rest.listen, "127.0.0.1:8083");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected() {
        let err = WorkerConfig::parse("data_dri: /tmp\n", false).expect_err("typo");
        assert!(err.to_string().contains("data_dri"), "{err}");
        let err =
            WorkerConfig::parse("rest: {listen: 'localhost'}\n", false).expect_err("bad listen");
        assert!(err.to_string().contains("rest.listen"), "{err}");
    }

    #[test]
    fn kafka_storage_parses_and_validates() {
        let c = WorkerConfig::parse(
            "storage:\n  type: kafka\n  bootstrap_servers: 127.0.0.1:9092\n  compression.type: lz4\n  topic.creation.default:\n    partitions: 3\n    cleanup.policy: compact\n  producer.override:\n    linger.ms: 20\n",
            false,
        )
        .expect("valid");
        let StorageConfig::Kafka(kafka) = &c.storage else {
            panic!("kafka storage expected");
        };
        assert_eq!(kafka.bootstrap_servers, "127.0.0.1:9092");
        assert_eq!(kafka.topic_creation.partitions, 3);
        assert_eq!(kafka.compression, crate::kafka::config::Compression::Lz4);
        assert_eq!(kafka.producer_override["linger.ms"], serde_json::json!(20));
        let err = WorkerConfig::parse("storage: {type: kafka, bootstrap_servers: ''}\n", false)
            .expect_err("empty brokers");
        assert!(
            err.to_string().contains("storage.bootstrap_servers"),
            "{err}"
        );
        let err = WorkerConfig::parse(
            "storage: {type: kafka, bootstrap_servers: 'h:1', linger: 5}\n",
            false,
        )
        .expect_err("unknown key");
        assert!(err.to_string().contains("linger"), "{err}");
    }
}

#[cfg(test)]
mod converter_default_tests {
    use super::*;

    fn connector(pairs: &[(&str, &str)]) -> ConnectorConfig {
        ConnectorConfig {
            name: "c".into(),
            config: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn worker_converters_apply_per_side_unless_the_connector_sets_its_own() {
        let worker = WorkerConfig::parse(
            "converters:\n  value.converter: io.confluent.connect.avro.AvroConverter\n  value.converter.schema.registry.url: http://registry:8081\n  key.converter: org.apache.kafka.connect.storage.StringConverter\n",
            false,
        )
        .expect("valid");
        let merged = worker.with_converter_defaults(&connector(&[
            ("connector.class", "datagen"),
            (
                "key.converter",
                "org.apache.kafka.connect.json.JsonConverter",
            ),
            ("key.converter.schemas.enable", "false"),
        ]));
        let get = |k: &str| merged.config.get(k).map(String::as_str);
        assert_eq!(
            get("value.converter"),
            Some("io.confluent.connect.avro.AvroConverter")
        );
        assert_eq!(
            get("value.converter.schema.registry.url"),
            Some("http://registry:8081")
        );
        assert_eq!(
            get("key.converter"),
            Some("org.apache.kafka.connect.json.JsonConverter"),
            "the connector's own side wins"
        );
        assert_eq!(get("key.converter.schemas.enable"), Some("false"));
    }

    #[test]
    fn other_keys_under_converters_are_rejected() {
        let err = WorkerConfig::parse("converters:\n  header.converter: x\n", false)
            .expect_err("rejected");
        assert!(
            err.to_string().contains("converters.header.converter"),
            "{err}"
        );
    }
}
