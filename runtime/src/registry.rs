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
use crate::storage::TopicSelector;

/// Fields every connector accepts.
pub fn common_config_def() -> ConfigDef {
    ConfigDef::new()
        .required("connector.class", FieldType::String, "Connector implementation: a class name or alias from /connector-plugins.")
        .optional("tasks.max", FieldType::Int { min: 1, max: 1024 }, "1", "Maximum number of tasks.")
        .maybe("key.converter", FieldType::String, "Converter class for record keys.")
        .maybe("value.converter", FieldType::String, "Converter class for record values.")
        .prefix("key.converter.")
        .prefix("value.converter.")
        .maybe("transforms", FieldType::List, "Single message transforms (not supported yet).")
        .prefix("transforms.")
        .optional("errors.tolerance", FieldType::Enum { values: &["none", "all"] }, "none", "Whether bad records fail the task (none) or are skipped to the dead-letter topic (all).")
        .optional("exactly.once.support", FieldType::Enum { values: &["requested", "required", "disabled"] }, "requested", "Exactly-once source delivery (KIP-618): requested or disabled run at-least-once; required is not supported yet.")
        .ignore("errors.", "error handling beyond errors.tolerance=none arrives with dead-letter topics")
        .ignore("header.converter", "headers are passed through as bytes")
        .ignore("config.action.reload", "configs reload through the REST API and the connectors directory")
        .ignore("topic.creation.", "applies to the Kafka storage backend")
        .ignore("producer.override.", "applies to the Kafka storage backend")
        .ignore("consumer.override.", "applies to the Kafka storage backend")
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
    /// Sink connectors: which topics to consume.
    pub topics: Option<TopicSelector>,
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
        let encoder = match &connector {
            Some(Connector::Source(source)) => {
                let mut converters = parsed.with_prefix("key.converter.");
                converters = converters
                    .into_iter()
                    .map(|(k, v)| (format!("key.converter.{k}"), v))
                    .collect();
                converters.extend(
                    parsed
                        .with_prefix("value.converter.")
                        .into_iter()
                        .map(|(k, v)| (format!("value.converter.{k}"), v)),
                );
                for side in ["key.converter", "value.converter"] {
                    if let Some(v) = parsed.str(side) {
                        converters.insert(side.to_owned(), v.to_owned());
                    }
                }
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
            topics,
            warnings: parsed.warnings.clone(),
        })
    }
}

fn check_common(parsed: &Parsed, errors: &mut ConfigErrors) {
    if parsed.str("exactly.once.support") == Some("required") {
        errors.push(
            "exactly.once.support",
            "\"required\" is not supported yet: exactly-once source delivery needs Kafka transactions, and no broker installable here supports them; use \"requested\" (at-least-once, duplicates possible after a crash)",
        );
    }
    if !parsed.list("transforms").is_empty() {
        errors.push(
            "transforms",
            "single message transforms are not supported yet; remove the transforms settings",
        );
    }
    if parsed.str("errors.tolerance") == Some("all") {
        errors.push(
            "errors.tolerance",
            "\"all\" (skip bad records to a dead-letter topic) is not supported yet; use \"none\"",
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
