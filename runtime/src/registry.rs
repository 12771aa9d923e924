//! Maps `connector.class` values (class names, aliases, short names) to implementations, and
//! validates a raw connector config end to end without I/O.

use std::sync::Arc;

use regex::Regex;

use crate::config::{
    ConfigDef, ConfigErrors, ConnectorConfig, FieldType, Parsed, RawConfig, did_you_mean,
    interpolate,
};
use crate::connector::{Connector, ConnectorKind, Plugin};
use crate::converter::RecordEncoder;
use crate::data::decode::RecordDecoder;
use crate::data::encode::DataEncoder;
use crate::dead_letter::ErrorPolicy;
use crate::kafka::ConnectorKafkaSettings;
use crate::storage::TopicSelector;
use crate::transforms::TransformChain;

/// Fields every connector accepts.
pub fn common_config_def() -> ConfigDef {
    ConfigDef::new()
        .required("connector.class", FieldType::String, "Connector implementation: a class name or alias from /connector-plugins.")
        .optional("tasks.max", FieldType::Int { min: 1, max: 1024 }, "1", "Maximum number of tasks.")
        .maybe("key.converter", FieldType::String, "Converter class for record keys.")
        .maybe("value.converter", FieldType::String, "Converter class for record values.")
        .prefix("key.converter.")
        .prefix("value.converter.")
        .maybe("transforms", FieldType::List, "Single message transforms, applied in order: aliases, each configured by transforms.<alias>.type and its settings.")
        .prefix("transforms.")
        .maybe("predicates", FieldType::List, "Predicates for transforms: aliases, each configured by predicates.<alias>.type.")
        .prefix("predicates.")
        .optional("errors.tolerance", FieldType::Enum { values: &["none", "all"] }, "none", "Whether bad records fail the task (none) or are skipped to the dead-letter topic (all).")
        .optional("exactly.once.support", FieldType::Enum { values: &["requested", "required", "disabled"] }, "requested", "Exactly-once source delivery (KIP-618): requested or disabled run at-least-once; required is not supported yet.")
        .optional("errors.retry.timeout", FieldType::Int { min: -1, max: i64::MAX }, "0", "How long (ms) a transient failure of a record is retried in place; -1 retries forever, 0 restarts the task with backoff instead.")
        .optional("errors.retry.delay.max.ms", FieldType::Int { min: 1, max: i64::MAX }, "60000", "Longest wait between two retries of a transient failure.")
        .optional("errors.log.enable", FieldType::Bool, "false", "Log every failing record with its position (skipped records are always logged).")
        .optional("errors.log.include.messages", FieldType::Bool, "false", "Include record keys and values in those logs (may expose personal data).")
        .maybe("errors.deadletterqueue.topic.name", FieldType::String, "Sink connectors: topic that receives records skipped under errors.tolerance=all, unchanged.")
        .optional("errors.deadletterqueue.topic.replication.factor", FieldType::Int { min: -1, max: 32767 }, "3", "Replication factor of the dead-letter topic when the storage is Kafka.")
        .optional("errors.deadletterqueue.context.headers.enable", FieldType::Bool, "false", "Add __connect.errors.* headers (original topic, partition, offset, stage, exception) to dead-lettered records.")
        .ignore("header.converter", "headers are passed through as bytes")
        .ignore("config.action.reload", "configs reload through the REST API and the connectors directory")
        .maybe("topic.creation.groups", FieldType::List, "Source connectors: topic creation groups (KIP-158), each configured by topic.creation.<group>.include/exclude/partitions/replication.factor/<topic config>; the first matching group wins, else topic.creation.default.*. Applies with Kafka storage.")
        .prefix("topic.creation.")
        .prefix("producer.override.")
        .prefix("consumer.override.")
}

/// Fields every sink accepts.
pub fn sink_config_def() -> ConfigDef {
    ConfigDef::new()
        .maybe(
            "topics",
            FieldType::List,
            "Topics to consume (comma-separated).",
        )
        .maybe(
            "topics.regex",
            FieldType::String,
            "Regular expression of topics to consume.",
        )
}

/// A connector config that passed validation.
#[derive(Clone)]
pub struct Validated {
    pub plugin: Arc<dyn Plugin>,
    pub connector: Connector,
    pub tasks_max: u32,
    /// Source connectors: how records are encoded.
    pub encoder: Option<RecordEncoder>,
    /// Sink connectors: how records read from topics are decoded.
    pub decoder: Option<Arc<RecordDecoder>>,
    /// Sink connectors: which topics to consume.
    pub topics: Option<TopicSelector>,
    /// The connector's single message transforms (empty when none are configured).
    pub transforms: TransformChain,
    /// Source connectors with transforms: how transformed records are encoded.
    pub data_encoder: Option<Arc<DataEncoder>>,
    /// `errors.*`: tolerance, retries, logging, dead-letter topic.
    pub errors: ErrorPolicy,
    /// `producer.override.*`, `consumer.override.*`, `topic.creation.*` (Kafka storage).
    pub kafka: ConnectorKafkaSettings,
    /// Keys accepted but ignored, with why.
    pub warnings: Vec<String>,
}

/// The known connector plugins.
#[derive(Default, Clone)]
pub struct Registry {
    plugins: Vec<Arc<dyn Plugin>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry with the built-in connectors (datagen, file sink).
    pub fn with_builtins() -> Self {
        let mut r = Registry::new();
        r.register(Arc::new(crate::connectors::datagen::DatagenPlugin));
        r.register(Arc::new(crate::connectors::file_sink::FileSinkPlugin));
        r
    }

    pub fn register(&mut self, plugin: Arc<dyn Plugin>) {
        self.plugins.push(plugin);
    }

    pub fn plugins(&self) -> &[Arc<dyn Plugin>] {
        &self.plugins
    }

    /// Finds a plugin by class name, alias, or simple class name (with or without the
    /// `Connector` suffix), as Kafka Connect resolves `connector.class`.
    pub fn find(&self, class: &str) -> Option<Arc<dyn Plugin>> {
        let simple = |name: &str| name.rsplit('.').next().unwrap_or(name).to_owned();
        self.plugins
            .iter()
            .find(|p| p.class() == class || p.aliases().contains(&class))
            .or_else(|| {
                self.plugins.iter().find(|p| {
                    let s = simple(p.class());
                    s == class || s.strip_suffix("Connector") == Some(class)
                })
            })
            .cloned()
    }

    /// The full definition of a plugin's config: common fields, sink fields, its own.
    pub fn config_def(plugin: &dyn Plugin) -> ConfigDef {
        let mut def = common_config_def();
        if plugin.kind() == ConnectorKind::Sink {
            def = def.merge(sink_config_def());
        }
        def.merge(plugin.config_def())
    }

    /// Validates a connector config without I/O: interpolation, class, every field, and the
    /// connector's own rules. Returns every error found.
    pub fn validate(&self, config: &ConnectorConfig) -> Result<Validated, ConfigErrors> {
        let raw = interpolate(&config.config)?;
        let class = raw
            .get("connector.class")
            .map(String::as_str)
            .unwrap_or_default();
        let Some(plugin) = self.find(class) else {
            let names = self
                .plugins
                .iter()
                .flat_map(|p| std::iter::once(p.class()).chain(p.aliases().iter().copied()));
            let hint = did_you_mean(class, names)
                .map(|s| format!(" (did you mean {s:?}?)"))
                .unwrap_or_default();
            let known: Vec<&str> = self.plugins.iter().map(|p| p.class()).collect();
            return Err(ConfigErrors::single(
                "connector.class",
                format!(
                    "unknown connector class {class:?}{hint}; known: {}",
                    known.join(", ")
                ),
            ));
        };
        let def = Self::config_def(plugin.as_ref());
        // Checks that need only the raw keys run first, so their errors are reported together
        // with the field errors of the parse.
        let mut errors = ConfigErrors::default();
        let topics = if plugin.kind() == ConnectorKind::Sink {
            sink_topics(&raw, &mut errors)
        } else {
            None
        };
        let parsed = match def.parse(&raw) {
            Ok(parsed) => parsed,
            Err(parse_errors) => {
                let mut all = parse_errors;
                all.0.extend(errors.0);
                return Err(all);
            }
        };
        check_common(&parsed, &mut errors);
        let connector = match plugin.validate(&config.name, &parsed) {
            Ok(c) => Some(c),
            Err(e) => {
                errors.0.extend(e.0);
                None
            }
        };
        let converters = converter_settings(&parsed);
        let encoder = match &connector {
            Some(Connector::Source(source)) => {
                match RecordEncoder::from_config(&converters, source.value_modes()) {
                    Ok(enc) => Some(enc),
                    Err(e) => {
                        errors.0.extend(e.0);
                        None
                    }
                }
            }
            _ => None,
        };
        let transforms = match TransformChain::from_config(&transform_settings(&raw)) {
            Ok(chain) => chain,
            Err(e) => {
                errors.0.extend(e.0);
                TransformChain::default()
            }
        };
        // Sinks see records after their transforms, as in Kafka Connect.
        let decoder = match &connector {
            Some(Connector::Sink(_)) => match RecordDecoder::from_config(&converters) {
                Ok(dec) => Some(Arc::new(dec.with_transforms(transforms.clone()))),
                Err(e) => {
                    errors.0.extend(e.0);
                    None
                }
            },
            _ => None,
        };
        let data_encoder = match &connector {
            Some(Connector::Source(_)) if !transforms.is_empty() => {
                Some(Arc::new(DataEncoder::from_config(&converters)))
            }
            _ => None,
        };
        let mut warnings = parsed.warnings.clone();
        let error_policy = match ErrorPolicy::from_parsed(
            &parsed,
            plugin.kind() == ConnectorKind::Sink,
            &mut warnings,
        ) {
            Ok(p) => p,
            Err(e) => {
                errors.0.extend(e.0);
                ErrorPolicy::default()
            }
        };
        let kafka =
            ConnectorKafkaSettings::from_raw(plugin.kind(), &raw, &mut errors, &mut warnings);
        let tasks_max = parsed.int("tasks.max").map_or(1, |n| n as u32);
        let connector = match connector {
            Some(c) if errors.is_empty() => c,
            _ => return Err(errors),
        };
        Ok(Validated {
            plugin,
            connector,
            tasks_max,
            encoder,
            decoder,
            topics,
            transforms,
            data_encoder,
            errors: error_policy,
            kafka,
            warnings,
        })
    }
}

/// The `key.converter*` / `value.converter*` settings of a connector config, with their
/// full keys.
fn converter_settings(parsed: &Parsed) -> RawConfig {
    let mut converters = RawConfig::new();
    for side in ["key.converter", "value.converter"] {
        converters.extend(
            parsed
                .with_prefix(&format!("{side}."))
                .into_iter()
                .map(|(k, v)| (format!("{side}.{k}"), v)),
        );
        if let Some(v) = parsed.str(side) {
            converters.insert(side.to_owned(), v.to_owned());
        }
    }
    converters
}

/// The `transforms*` / `predicates*` settings of a connector config.
fn transform_settings(raw: &RawConfig) -> RawConfig {
    raw.iter()
        .filter(|(k, _)| k.starts_with("transforms") || k.starts_with("predicates"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn check_common(parsed: &Parsed, errors: &mut ConfigErrors) {
    if parsed.str("exactly.once.support") == Some("required") {
        errors.push(
            "exactly.once.support",
            "\"required\" is not supported yet: exactly-once source delivery needs Kafka transactions, and no broker installable here supports them; use \"requested\" (at-least-once, duplicates possible after a crash)",
        );
    }
}

fn sink_topics(raw: &RawConfig, errors: &mut ConfigErrors) -> Option<TopicSelector> {
    let topics = raw.get("topics");
    match (
        topics.is_some(),
        raw.get("topics.regex").map(String::as_str),
    ) {
        (true, Some(_)) => {
            errors.push("topics", "set either topics or topics.regex, not both");
            None
        }
        (true, None) => {
            let names: Vec<String> = topics
                .map(|t| {
                    t.split(',')
                        .map(str::trim)
                        .filter(|n| !n.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            if names.is_empty() {
                errors.push("topics", "must name at least one topic");
                return None;
            }
            for name in &names {
                if let Err(e) = crate::log::validate_topic_name(name) {
                    errors.push("topics", e.to_string());
                }
            }
            Some(TopicSelector::Names(names))
        }
        (false, Some(pattern)) => match Regex::new(&format!("^(?:{pattern})$")) {
            Ok(re) => Some(TopicSelector::Regex(re)),
            Err(e) => {
                errors.push("topics.regex", format!("invalid regular expression: {e}"));
                None
            }
        },
        (false, None) => {
            errors.push("topics", "a sink needs topics or topics.regex");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn validate(pairs: &[(&str, &str)]) -> Result<Validated, ConfigErrors> {
        Registry::with_builtins().validate(&ConnectorConfig {
            name: "c".into(),
            config: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        })
    }

    #[test]
    fn transforms_and_error_settings_are_validated_and_kept() {
        let v = validate(&[
            ("connector.class", "datagen"),
            ("transforms", "unwrap,route"),
            (
                "transforms.unwrap.type",
                "io.debezium.transforms.ExtractNewRecordState",
            ),
            ("transforms.route.type", "RegexRouter"),
            ("transforms.route.regex", "(.*)"),
            ("transforms.route.replacement", "copy-$1"),
            ("transforms.route.predicate", "notTombstone"),
            ("transforms.route.negate", "true"),
            ("predicates", "notTombstone"),
            ("predicates.notTombstone.type", "RecordIsTombstone"),
            ("errors.tolerance", "all"),
        ])
        .unwrap_or_else(|e| panic!("valid: {e}"));
        assert_eq!(v.transforms.aliases(), ["unwrap", "route"]);
        assert!(
            v.data_encoder.is_some(),
            "sources with transforms get an encoder"
        );
        assert!(v.errors.tolerate);

        let v = validate(&[
            ("connector.class", "FileStreamSink"),
            ("topics", "a"),
            ("file", "/tmp/tributary-registry-test-sink.jsonl"),
            ("errors.tolerance", "all"),
            ("errors.retry.timeout", "-1"),
            ("errors.deadletterqueue.topic.name", "dlq-a"),
            ("errors.deadletterqueue.context.headers.enable", "true"),
            ("errors.log.enable", "true"),
        ])
        .unwrap_or_else(|e| panic!("valid: {e}"));
        assert_eq!(v.errors.dlq_topic.as_deref(), Some("dlq-a"));
        assert!(v.errors.context_headers && v.errors.log_enable);
        assert_eq!(v.errors.retry_timeout, None);
        assert_eq!(v.errors.retry_delay_max, Duration::from_secs(60));
        assert!(v.data_encoder.is_none());
    }

    #[test]
    fn bad_transform_and_error_settings_name_their_keys() {
        let err = validate(&[
            ("connector.class", "datagen"),
            ("transforms", "route"),
            ("transforms.route.type", "RegexRouter"),
            ("transforms.route.regex", "(unclosed"),
            ("transforms.route.replacement", "x"),
            ("errors.tolerance", "some"),
            ("errors.retry.timeout", "soon"),
        ])
        .err()
        .expect("invalid");
        let fields: Vec<&str> = err.0.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"errors.tolerance"), "{fields:?}");
        assert!(fields.contains(&"errors.retry.timeout"), "{fields:?}");

        let err = validate(&[
            ("connector.class", "datagen"),
            ("transforms", "route"),
            ("transforms.route.type", "RegexRouter"),
            ("transforms.route.regex", "(unclosed"),
            ("transforms.route.replacement", "x"),
        ])
        .err()
        .expect("invalid");
        assert_eq!(err.0[0].field, "transforms.route.regex");

        let err = validate(&[
            ("connector.class", "FileStreamSink"),
            ("topics", "a"),
            ("file", "/tmp/tributary-registry-test-sink.jsonl"),
            ("errors.tolerance", "all"),
            ("errors.deadletterqueue.topic.name", "bad/topic"),
        ])
        .err()
        .expect("invalid");
        assert_eq!(err.0[0].field, "errors.deadletterqueue.topic.name");
    }
}
