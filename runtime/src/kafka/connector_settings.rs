//! The Kafka settings of one connector config: `producer.override.*`, `consumer.override.*`
//! and `topic.creation.*`, checked by `Registry::validate` and applied by
//! [`KafkaStore::for_connector`](super::KafkaStore) when the worker runs on Kafka storage.
//!
//! | keys | source connector | sink connector |
//! |---|---|---|
//! | `producer.override.*` | its records' producer | its dead-letter producer |
//! | `consumer.override.*` | ignored (warning) | its tasks' consumers |
//! | `topic.creation.*` | topics it creates | ignored (warning) |
//!
//! On the embedded storage there are no Kafka clients: the keys are still checked, and
//! [`ConnectorKafkaSettings::embedded_warnings`] says that they do not apply.

use std::collections::BTreeMap;

use crate::config::{ConfigErrors, RawConfig};
use crate::connector::ConnectorKind;

use super::overrides::{self, Client};
use super::topic_creation::{self, TopicCreationRules};

/// A connector's own Kafka client settings (empty when it sets none).
#[derive(Debug, Clone, Default)]
pub struct ConnectorKafkaSettings {
    /// `producer.override.*`, keys without the prefix.
    pub producer_override: BTreeMap<String, String>,
    /// `consumer.override.*`, keys without the prefix (sinks only).
    pub consumer_override: BTreeMap<String, String>,
    /// `topic.creation.*` (sources only).
    pub topic_creation: Option<TopicCreationRules>,
}

impl ConnectorKafkaSettings {
    /// Reads and checks the keys of a raw connector config of `kind`; problems go to
    /// `errors` (field and reason), keys that do not apply to `kind` to `warnings`.
    pub fn from_raw(
        kind: ConnectorKind,
        raw: &RawConfig,
        errors: &mut ConfigErrors,
        warnings: &mut Vec<String>,
    ) -> Self {
        let producer_override = overrides::from_raw(Client::Producer, raw);
        overrides::check(
            Client::Producer,
            Client::Producer.prefix(),
            &producer_override,
            errors,
        );
        let mut consumer_override = overrides::from_raw(Client::Consumer, raw);
        let mut topic_creation = None;
        match kind {
            ConnectorKind::Source => {
                if !consumer_override.is_empty() {
                    warnings.push(format!(
                        "{}*: ignored, a source connector has no consumer",
                        Client::Consumer.prefix()
                    ));
                    consumer_override.clear();
                }
                topic_creation = TopicCreationRules::from_raw(raw, errors, warnings);
            }
            ConnectorKind::Sink => {
                overrides::check(
                    Client::Consumer,
                    Client::Consumer.prefix(),
                    &consumer_override,
                    errors,
                );
                if raw.keys().any(|k| k.starts_with(topic_creation::PREFIX)) {
                    warnings.push(format!(
                        "{}*: ignored, a sink connector does not create the topics it reads",
                        topic_creation::PREFIX
                    ));
                }
            }
        }
        ConnectorKafkaSettings {
            producer_override,
            consumer_override,
            topic_creation,
        }
    }

    /// Whether the connector sets anything of its own.
    pub fn is_empty(&self) -> bool {
        self.producer_override.is_empty()
            && self.consumer_override.is_empty()
            && self.topic_creation.is_none()
    }

    /// What to tell the user when the worker's storage is the embedded log.
    pub fn embedded_warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (set, keys) in [
            (
                Client::Producer.prefix(),
                !self.producer_override.is_empty(),
            ),
            (
                Client::Consumer.prefix(),
                !self.consumer_override.is_empty(),
            ),
            (topic_creation::PREFIX, self.topic_creation.is_some()),
        ] {
            if keys {
                out.push(format!(
                    "{set}*: accepted but ignored, the worker's storage is the embedded log \
                     (they apply with storage type kafka)"
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(
        kind: ConnectorKind,
        pairs: &[(&str, &str)],
    ) -> (ConnectorKafkaSettings, ConfigErrors, Vec<String>) {
        let raw: RawConfig = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut errors = ConfigErrors::default();
        let mut warnings = Vec::new();
        let s = ConnectorKafkaSettings::from_raw(kind, &raw, &mut errors, &mut warnings);
        (s, errors, warnings)
    }

    #[test]
    fn keys_that_do_not_apply_to_the_kind_are_warned_about() {
        let (s, errors, warnings) = read(
            ConnectorKind::Source,
            &[
                ("producer.override.linger.ms", "20"),
                ("consumer.override.fetch.min.bytes", "1"),
            ],
        );
        assert!(errors.is_empty(), "{errors}");
        assert_eq!(s.producer_override["linger.ms"], "20");
        assert!(s.consumer_override.is_empty());
        assert_eq!(warnings.len(), 1, "{warnings:?}");

        let (s, errors, warnings) = read(
            ConnectorKind::Sink,
            &[
                ("consumer.override.fetch.min.bytes", "1"),
                ("topic.creation.default.partitions", "x"),
            ],
        );
        assert!(
            errors.is_empty(),
            "sinks do not read topic.creation: {errors}"
        );
        assert!(s.topic_creation.is_none());
        assert_eq!(s.consumer_override["fetch.min.bytes"], "1");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(!s.is_empty());
    }

    #[test]
    fn the_embedded_storage_says_what_it_ignores() {
        let (s, _, _) = read(
            ConnectorKind::Source,
            &[
                ("producer.override.linger.ms", "20"),
                ("topic.creation.default.partitions", "2"),
                ("topic.creation.default.replication.factor", "1"),
            ],
        );
        let warnings = s.embedded_warnings();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("producer.override.*: accepted but ignored"));
        assert!(warnings[1].starts_with("topic.creation.*: accepted but ignored"));
        assert!(
            ConnectorKafkaSettings::default()
                .embedded_warnings()
                .is_empty()
        );
    }
}
