//! Kafka Connect predicates (KIP-585): `TopicNameMatches`, `HasHeaderKey`,
//! `RecordIsTombstone`.

use std::collections::HashMap;
use std::sync::Arc;

use regex::Regex;

use super::config::{Props, split_list};
use super::settings_of;
use crate::config::{ConfigErrors, RawConfig, did_you_mean};
use crate::data::ConnectRecord;

/// A condition on a record.
#[derive(Debug)]
pub enum Predicate {
    /// `pattern`: the whole topic name matches.
    TopicNameMatches(Regex),
    /// `name`: the record has a header with this key.
    HasHeaderKey(String),
    /// The value is null.
    RecordIsTombstone,
}

const TYPES: &[&str] = &[
    "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
    "org.apache.kafka.connect.transforms.predicates.HasHeaderKey",
    "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone",
];

/// Class names users may write in `predicates.<alias>.type`.
pub fn known_predicates() -> &'static [&'static str] {
    TYPES
}

impl Predicate {
    pub fn test(&self, record: &ConnectRecord) -> bool {
        match self {
            Predicate::TopicNameMatches(re) => re.is_match(&record.topic),
            Predicate::HasHeaderKey(name) => record.headers.iter().any(|(k, _)| k == name),
            Predicate::RecordIsTombstone => record.value.is_none(),
        }
    }
}

/// The declared predicates by alias.
pub fn from_config(raw: &RawConfig, errors: &mut ConfigErrors) -> HashMap<String, Arc<Predicate>> {
    let aliases = raw
        .get("predicates")
        .map(|p| split_list(p))
        .unwrap_or_default();
    let mut out = HashMap::new();
    for alias in &aliases {
        let prefix = format!("predicates.{alias}.");
        let mut settings = settings_of(raw, &prefix);
        let Some(type_name) = settings.remove("type").map(|t| t.trim().to_owned()) else {
            errors.push(format!("{prefix}type"), "is required: the predicate class");
            continue;
        };
        let simple = type_name.rsplit('.').next().unwrap_or(&type_name);
        let props = Props::new(prefix.clone(), &settings);
        let predicate = match simple {
            "TopicNameMatches" => {
                let pattern = props.required("pattern");
                props
                    .full_regex("pattern", &pattern)
                    .map(Predicate::TopicNameMatches)
            }
            "HasHeaderKey" => Some(Predicate::HasHeaderKey(props.required("name"))),
            "RecordIsTombstone" => Some(Predicate::RecordIsTombstone),
            _ => {
                let hint = did_you_mean(&type_name, TYPES.iter().copied())
                    .map(|s| format!(" (did you mean {s:?}?)"))
                    .unwrap_or_default();
                errors.push(
                    format!("{prefix}type"),
                    format!(
                        "unknown predicate {type_name:?}{hint}; known: {}",
                        TYPES.join(", ")
                    ),
                );
                None
            }
        };
        errors.0.extend(props.finish().0);
        if let Some(p) = predicate {
            out.insert(alias.clone(), Arc::new(p));
        }
    }
    for key in raw.keys() {
        if let Some(rest) = key.strip_prefix("predicates.") {
            let alias = rest.split('.').next().unwrap_or_default();
            if !aliases.iter().any(|a| a == alias) {
                errors.push(
                    key.clone(),
                    format!("predicate {alias:?} is not listed in predicates"),
                );
            }
        }
    }
    out
}
