//! Single message transforms (Kafka Connect `transforms=a,b`, `transforms.a.type=...`).
//!
//! A connector's transforms form a [`TransformChain`] built once from its config (during
//! validation, so a bad setting is a config error naming `transforms.<alias>.<key>`) and
//! applied to each record in order: on the sink side after decoding, on the source side
//! before encoding (see [`crate::worker::source`]). A transform may change the topic, key,
//! value and headers, or drop the record (`Ok(None)`); a dropped record still counts as
//! processed, so its offset commits.
//!
//! Transforms work on Kafka Connect's data model ([`ConnectRecord`]): a field added or
//! removed gives a new struct schema, which the Avro encoder registers as a new version.
//!
//! Predicates (`predicates=p`, `predicates.p.type=...`, `transforms.a.predicate=p`,
//! `transforms.a.negate=true`) make a transform apply only to matching records.

mod config;
pub mod expr;
mod fields;
mod filter;
mod outbox;
mod predicate;
mod router;
mod structs;
mod timestamp;
mod unwrap;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::config::{ConfigErrors, RawConfig, did_you_mean};
use crate::data::ConnectRecord;
use crate::error::ConnectorError;

use config::Props;
pub use config::split_list;
pub use predicate::{Predicate, known_predicates};

/// One transform: takes a record, returns it changed, or `None` to drop it.
pub trait Transform: Send + Sync + fmt::Debug {
    fn apply(&self, record: ConnectRecord) -> Result<Option<ConnectRecord>, ConnectorError>;
}

/// A transform with its alias and optional predicate.
#[derive(Debug, Clone)]
struct Step {
    alias: String,
    transform: Arc<dyn Transform>,
    predicate: Option<(Arc<Predicate>, bool)>,
}

/// The configured transforms of one connector, applied in order.
#[derive(Debug, Clone, Default)]
pub struct TransformChain {
    steps: Vec<Step>,
}

/// Which side of a record a `$Key`/`$Value` transform works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Key,
    Value,
}

/// A known transform type: its class names and how to build it.
struct Kind {
    names: &'static [&'static str],
    build: fn(&Props<'_>, Option<Side>) -> Arc<dyn Transform>,
    /// Whether the class needs a `$Key` / `$Value` suffix (Kafka's field transforms).
    sided: bool,
}

const KINDS: &[Kind] = &[
    Kind {
        names: &[
            "io.debezium.transforms.ExtractNewRecordState",
            "ExtractNewRecordState",
            "unwrap",
        ],
        build: |p, _| Arc::new(unwrap::ExtractNewRecordState::new(p)),
        sided: false,
    },
    Kind {
        names: &[
            "io.debezium.transforms.ByLogicalTableRouter",
            "ByLogicalTableRouter",
            "reroute",
        ],
        build: |p, _| Arc::new(router::ByLogicalTableRouter::new(p)),
        sided: false,
    },
    Kind {
        names: &[
            "org.apache.kafka.connect.transforms.RegexRouter",
            "RegexRouter",
        ],
        build: |p, _| Arc::new(router::RegexRouter::new(p)),
        sided: false,
    },
    Kind {
        names: &["org.apache.kafka.connect.transforms.Filter", "Filter"],
        build: |p, _| Arc::new(filter::Filter::new(p)),
        sided: false,
    },
    Kind {
        names: &[
            "io.tributary.transforms.ContentFilter",
            "ContentFilter",
            "io.debezium.transforms.Filter",
        ],
        build: |p, _| Arc::new(filter::ContentFilter::new(p)),
        sided: false,
    },
    Kind {
        names: &[
            "io.debezium.transforms.outbox.EventRouter",
            "EventRouter",
            "outbox",
        ],
        build: |p, _| Arc::new(outbox::EventRouter::new(p)),
        sided: false,
    },
    Kind {
        names: &[
            "org.apache.kafka.connect.transforms.InsertField",
            "InsertField",
        ],
        build: |p, s| Arc::new(fields::InsertField::new(p, s.unwrap_or(Side::Value))),
        sided: true,
    },
    Kind {
        names: &[
            "org.apache.kafka.connect.transforms.ReplaceField",
            "ReplaceField",
        ],
        build: |p, s| Arc::new(fields::ReplaceField::new(p, s.unwrap_or(Side::Value))),
        sided: true,
    },
    Kind {
        names: &["org.apache.kafka.connect.transforms.MaskField", "MaskField"],
        build: |p, s| Arc::new(fields::MaskField::new(p, s.unwrap_or(Side::Value))),
        sided: true,
    },
    Kind {
        names: &[
            "org.apache.kafka.connect.transforms.TimestampConverter",
            "TimestampConverter",
        ],
        build: |p, s| {
            Arc::new(timestamp::TimestampConverter::new(
                p,
                s.unwrap_or(Side::Value),
            ))
        },
        sided: true,
    },
    Kind {
        names: &[
            "org.apache.kafka.connect.transforms.ValueToKey",
            "ValueToKey",
        ],
        build: |p, _| Arc::new(fields::ValueToKey::new(p)),
        sided: false,
    },
];

/// Class names users may write in `transforms.<alias>.type`.
pub fn known_types() -> Vec<&'static str> {
    KINDS.iter().map(|k| k.names[0]).collect()
}

/// Finds a transform type by class name or alias, with its `$Key`/`$Value` side.
fn find_kind(type_name: &str) -> Option<(&'static Kind, Option<Side>)> {
    let (base, side) = match type_name.rsplit_once('$') {
        Some((base, "Key")) => (base, Some(Side::Key)),
        Some((base, "Value")) => (base, Some(Side::Value)),
        _ => (type_name, None),
    };
    KINDS
        .iter()
        .find(|k| k.names.contains(&base))
        .map(|k| (k, side))
}

/// `transforms.<alias>.*` (or `predicates.<alias>.*`) without the prefix.
fn settings_of(raw: &RawConfig, prefix: &str) -> BTreeMap<String, String> {
    raw.iter()
        .filter_map(|(k, v)| k.strip_prefix(prefix).map(|s| (s.to_owned(), v.clone())))
        .collect()
}

impl TransformChain {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The aliases, in order.
    pub fn aliases(&self) -> Vec<&str> {
        self.steps.iter().map(|s| s.alias.as_str()).collect()
    }

    /// Builds the chain from a connector config (`transforms`, `transforms.*`, `predicates`,
    /// `predicates.*`). Every problem is reported with its full key.
    pub fn from_config(raw: &RawConfig) -> Result<Self, ConfigErrors> {
        let mut errors = ConfigErrors::default();
        let predicates = predicate::from_config(raw, &mut errors);
        let aliases = raw
            .get("transforms")
            .map(|t| split_list(t))
            .unwrap_or_default();
        let mut steps = Vec::new();
        for (i, alias) in aliases.iter().enumerate() {
            if aliases[..i].contains(alias) {
                errors.push(
                    "transforms",
                    format!("alias {alias:?} is listed more than once"),
                );
                continue;
            }
            let prefix = format!("transforms.{alias}.");
            let mut settings = settings_of(raw, &prefix);
            let Some(type_name) = settings.remove("type").map(|t| t.trim().to_owned()) else {
                errors.push(format!("{prefix}type"), "is required: the transform class");
                continue;
            };
            let Some((kind, side)) = find_kind(&type_name) else {
                let names = KINDS.iter().flat_map(|k| k.names.iter().copied());
                let hint = did_you_mean(&type_name, names)
                    .map(|s| format!(" (did you mean {s:?}?)"))
                    .unwrap_or_default();
                errors.push(
                    format!("{prefix}type"),
                    format!(
                        "unknown transform {type_name:?}{hint}; known: {}",
                        known_types().join(", ")
                    ),
                );
                continue;
            };
            if kind.sided && side.is_none() {
                errors.push(
                    format!("{prefix}type"),
                    format!("{type_name} works on the key or the value: use {type_name}$Key or {type_name}$Value"),
                );
                continue;
            }
            let predicate_name = settings.remove("predicate").map(|p| p.trim().to_owned());
            let negate = settings.remove("negate");
            let predicate = match predicate_name.filter(|p| !p.is_empty()) {
                None => {
                    if negate.is_some() {
                        errors.push(
                            format!("{prefix}negate"),
                            "only applies together with transforms.<alias>.predicate",
                        );
                    }
                    None
                }
                Some(name) => match predicates.get(&name) {
                    Some(p) => {
                        let negate = match negate.as_deref().map(|n| n.trim().to_ascii_lowercase())
                        {
                            None => false,
                            Some(n) if n == "true" => true,
                            Some(n) if n == "false" => false,
                            Some(n) => {
                                errors.push(
                                    format!("{prefix}negate"),
                                    format!("must be true or false, got {n:?}"),
                                );
                                false
                            }
                        };
                        Some((p.clone(), negate))
                    }
                    None => {
                        errors.push(
                            format!("{prefix}predicate"),
                            format!("unknown predicate {name:?}; declare it in predicates={name} with predicates.{name}.type"),
                        );
                        None
                    }
                },
            };
            let props = Props::new(prefix, &settings);
            let transform = (kind.build)(&props, side);
            errors.0.extend(props.finish().0);
            steps.push(Step {
                alias: alias.clone(),
                transform,
                predicate,
            });
        }
        for key in raw.keys() {
            if let Some(rest) = key.strip_prefix("transforms.") {
                let alias = rest.split('.').next().unwrap_or_default();
                if !aliases.iter().any(|a| a == alias) {
                    errors.push(
                        key.clone(),
                        format!("transform {alias:?} is not listed in transforms"),
                    );
                }
            }
        }
        errors.into_result(TransformChain { steps })
    }

    /// Applies every transform in order. `Ok(None)`: a transform dropped the record.
    /// Errors are definite and name the transform's alias.
    pub fn apply(&self, record: ConnectRecord) -> Result<Option<ConnectRecord>, ConnectorError> {
        let mut record = record;
        for step in &self.steps {
            if let Some((predicate, negate)) = &step.predicate
                && predicate.test(&record) == *negate
            {
                continue;
            }
            match step.transform.apply(record) {
                Ok(Some(r)) => record = r,
                Ok(None) => return Ok(None),
                Err(e) => {
                    return Err(ConnectorError::new(
                        e.kind,
                        format!("transform {}: {}", step.alias, e.message),
                    ));
                }
            }
        }
        Ok(Some(record))
    }
}

/// A definite transform error.
fn fail(message: impl Into<String>) -> ConnectorError {
    ConnectorError::definite(message)
}

#[cfg(test)]
mod tests;
