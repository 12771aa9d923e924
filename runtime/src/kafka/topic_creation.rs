//! A source connector's topic creation rules (Kafka Connect KIP-158, `topic.creation.*`).
//!
//! ```text
//! topic.creation.groups=compacted,logs          named groups, tried in this order
//! topic.creation.default.partitions=3           required once any topic.creation.* is set
//! topic.creation.default.replication.factor=1   required likewise; -1 = the broker's default
//! topic.creation.default.<topic config>=...     e.g. cleanup.policy, retention.ms
//! topic.creation.<group>.include=a\..*,b        comma-separated regexes, whole-name match
//! topic.creation.<group>.exclude=a\.tmp.*       exclusion wins over inclusion
//! topic.creation.<group>.partitions=...         default: the default group's
//! topic.creation.<group>.replication.factor=... default: the default group's
//! topic.creation.<group>.<topic config>=...     the group's own (not inherited)
//! ```
//!
//! A topic the connector writes to that does not exist yet is created with the settings of
//! the first named group whose `include` matches it and whose `exclude` does not, else with
//! the default group's. An existing topic is used as it is. Without any `topic.creation.*`
//! key, the worker's `storage.topic.creation.default` applies (Kafka Connect would leave the
//! topic to the broker's auto-creation). Sink connectors do not create topics, so they
//! ignore these keys (with a warning).

use std::collections::BTreeMap;

use regex::Regex;

use crate::config::{ConfigErrors, RawConfig};

/// The prefix of every topic creation key.
pub const PREFIX: &str = "topic.creation.";
/// The default group's alias.
pub const DEFAULT_GROUP: &str = "default";

/// What a new topic is created with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSettings {
    /// Partition count; -1 lets the broker decide (`num.partitions`).
    pub partitions: i32,
    /// Replication factor; -1 lets the broker decide (`default.replication.factor`).
    pub replication_factor: i32,
    /// Topic configs (`cleanup.policy`, `retention.ms`, ...).
    pub configs: BTreeMap<String, String>,
}

/// A named group of `topic.creation.groups`.
#[derive(Debug, Clone)]
struct Group {
    name: String,
    include: Option<Regex>,
    exclude: Option<Regex>,
    settings: TopicSettings,
}

impl Group {
    fn matches(&self, topic: &str) -> bool {
        self.include.as_ref().is_some_and(|re| re.is_match(topic))
            && !self.exclude.as_ref().is_some_and(|re| re.is_match(topic))
    }
}

/// A connector's topic creation rules.
#[derive(Debug, Clone)]
pub struct TopicCreationRules {
    default: TopicSettings,
    groups: Vec<Group>,
}

impl TopicCreationRules {
    /// The group that decides how `topic` is created, and its settings.
    pub fn for_topic(&self, topic: &str) -> (&str, &TopicSettings) {
        self.groups
            .iter()
            .find(|g| g.matches(topic))
            .map_or((DEFAULT_GROUP, &self.default), |g| {
                (g.name.as_str(), &g.settings)
            })
    }

    /// Parses and checks the `topic.creation.*` keys of a raw connector config. `None` when
    /// there are none (or when they are invalid: every problem is in `errors`).
    pub fn from_raw(
        raw: &RawConfig,
        errors: &mut ConfigErrors,
        warnings: &mut Vec<String>,
    ) -> Option<Self> {
        let keys: BTreeMap<&str, &str> = raw
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(PREFIX).map(|rest| (rest, v.as_str())))
            .collect();
        if keys.is_empty() {
            return None;
        }
        let before = errors.0.len();
        let mut names: Vec<String> = Vec::new();
        for name in keys
            .get("groups")
            .map(|list| split_list(list))
            .unwrap_or_default()
        {
            if name == DEFAULT_GROUP {
                warnings.push(format!(
                    "{PREFIX}groups: {DEFAULT_GROUP} is always defined, listing it changes nothing"
                ));
            } else if !names.contains(&name) {
                names.push(name);
            }
        }
        // Each key belongs to the longest alias it starts with.
        let mut by_group: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
        for (rest, value) in &keys {
            if *rest == "groups" {
                continue;
            }
            let owner = std::iter::once(DEFAULT_GROUP)
                .chain(names.iter().map(String::as_str))
                .filter(|alias| {
                    rest.strip_prefix(alias)
                        .is_some_and(|p| p.starts_with('.') && p.len() > 1)
                })
                .max_by_key(|alias| alias.len());
            match owner {
                Some(alias) => {
                    by_group
                        .entry(alias)
                        .or_default()
                        .insert(&rest[alias.len() + 1..], value);
                }
                None => warnings.push(format!(
                    "{PREFIX}{rest}: ignored, its group is not listed in {PREFIX}groups"
                )),
            }
        }

        let empty = BTreeMap::new();
        let default_keys = by_group.get(DEFAULT_GROUP).unwrap_or(&empty);
        let field = |group: &str, prop: &str| format!("{PREFIX}{group}.{prop}");
        for prop in ["include", "exclude"] {
            if default_keys.contains_key(prop) {
                warnings.push(format!(
                    "{}: ignored, the default group takes every topic no group of {PREFIX}groups takes",
                    field(DEFAULT_GROUP, prop)
                ));
            }
        }
        let required = |prop: &str, errors: &mut ConfigErrors| {
            errors.push(
                field(DEFAULT_GROUP, prop),
                "is required once any topic.creation.* setting is present (Kafka Connect KIP-158); use -1 for the broker's default",
            );
        };
        let partitions = match default_keys.get("partitions") {
            Some(v) => count(
                &field(DEFAULT_GROUP, "partitions"),
                v,
                i32::MAX.into(),
                errors,
            ),
            None => {
                required("partitions", errors);
                None
            }
        };
        let replication_factor = match default_keys.get("replication.factor") {
            Some(v) => count(
                &field(DEFAULT_GROUP, "replication.factor"),
                v,
                i16::MAX.into(),
                errors,
            ),
            None => {
                required("replication.factor", errors);
                None
            }
        };
        let default_configs = topic_configs(DEFAULT_GROUP, default_keys, errors);

        let mut groups = Vec::new();
        for name in &names {
            let props = by_group.get(name.as_str()).unwrap_or(&empty);
            let include = patterns(&field(name, "include"), props.get("include"), errors);
            let exclude = patterns(&field(name, "exclude"), props.get("exclude"), errors);
            if props
                .get("include")
                .is_none_or(|v| split_list(v).is_empty())
            {
                warnings.push(format!(
                    "{}: empty, so group {name} matches no topic",
                    field(name, "include")
                ));
            }
            let group_partitions = props
                .get("partitions")
                .map(|v| count(&field(name, "partitions"), v, i32::MAX.into(), errors));
            let group_replication = props.get("replication.factor").map(|v| {
                count(
                    &field(name, "replication.factor"),
                    v,
                    i16::MAX.into(),
                    errors,
                )
            });
            let configs = topic_configs(name, props, errors);
            if let (Some(partitions), Some(replication_factor)) = (
                group_partitions.unwrap_or(partitions),
                group_replication.unwrap_or(replication_factor),
            ) {
                groups.push(Group {
                    name: name.clone(),
                    include,
                    exclude,
                    settings: TopicSettings {
                        partitions,
                        replication_factor,
                        configs,
                    },
                });
            }
        }
        if errors.0.len() > before {
            return None;
        }
        Some(TopicCreationRules {
            default: TopicSettings {
                partitions: partitions?,
                replication_factor: replication_factor?,
                configs: default_configs,
            },
            groups,
        })
    }
}

/// Kafka Connect's list syntax: comma-separated, trimmed, empty items dropped.
fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A partition count or replication factor: -1 (the broker's default) or 1..=max.
fn count(field: &str, value: &str, max: i64, errors: &mut ConfigErrors) -> Option<i32> {
    match value.trim().parse::<i64>() {
        Ok(n) if n == -1 || (1..=max).contains(&n) => i32::try_from(n).ok(),
        Ok(n) => {
            errors.push(
                field,
                format!("must be -1 (the broker's default) or between 1 and {max}, got {n}"),
            );
            None
        }
        Err(_) => {
            errors.push(field, format!("must be an integer, got {value:?}"));
            None
        }
    }
}

/// A list of regexes as one whole-name pattern (Java's `Pattern.matches` of `a|b`).
fn patterns(field: &str, value: Option<&&str>, errors: &mut ConfigErrors) -> Option<Regex> {
    let items = split_list(value?);
    if items.is_empty() {
        return None;
    }
    let mut ok = true;
    for item in &items {
        if let Err(e) = Regex::new(item) {
            errors.push(field, format!("invalid regular expression {item:?}: {e}"));
            ok = false;
        }
    }
    if !ok {
        return None;
    }
    let alternatives: Vec<String> = items.iter().map(|i| format!("(?:{i})")).collect();
    match Regex::new(&format!("^(?:{})$", alternatives.join("|"))) {
        Ok(re) => Some(re),
        Err(e) => {
            errors.push(field, format!("invalid regular expressions: {e}"));
            None
        }
    }
}

/// A group's topic configs: every key but the group's own settings. Values the broker would
/// refuse for the well-known configs are caught here; others are the broker's to judge.
fn topic_configs(
    group: &str,
    props: &BTreeMap<&str, &str>,
    errors: &mut ConfigErrors,
) -> BTreeMap<String, String> {
    let mut configs = BTreeMap::new();
    for (key, value) in props {
        if matches!(
            *key,
            "include" | "exclude" | "partitions" | "replication.factor"
        ) {
            continue;
        }
        let field = format!("{PREFIX}{group}.{key}");
        let trimmed = value.trim();
        if trimmed.is_empty() {
            errors.push(field, "must not be empty");
            continue;
        }
        if *key == "cleanup.policy" {
            let mut policies: Vec<&str> = trimmed.split(',').map(str::trim).collect();
            policies.sort_unstable();
            policies.dedup();
            if policies.is_empty() || !policies.iter().all(|p| matches!(*p, "delete" | "compact")) {
                errors.push(
                    field,
                    format!("must be delete, compact or compact,delete, got {value:?}"),
                );
                continue;
            }
        } else if (key.ends_with(".ms") || key.ends_with(".bytes") || *key == "min.insync.replicas")
            && trimmed.parse::<i64>().is_err()
        {
            errors.push(field, format!("must be an integer, got {value:?}"));
            continue;
        }
        configs.insert((*key).to_owned(), trimmed.to_owned());
    }
    configs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> (Option<TopicCreationRules>, ConfigErrors, Vec<String>) {
        let raw: RawConfig = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut errors = ConfigErrors::default();
        let mut warnings = Vec::new();
        let rules = TopicCreationRules::from_raw(&raw, &mut errors, &mut warnings);
        (rules, errors, warnings)
    }

    #[test]
    fn no_keys_no_rules() {
        let (rules, errors, warnings) = parse(&[("tables", "a")]);
        assert!(rules.is_none() && errors.is_empty() && warnings.is_empty());
    }

    #[test]
    fn first_matching_group_wins_else_default() {
        let (rules, errors, warnings) = parse(&[
            ("topic.creation.groups", "compacted, logs ,compacted"),
            ("topic.creation.default.partitions", "3"),
            ("topic.creation.default.replication.factor", "-1"),
            ("topic.creation.default.retention.ms", "600000"),
            (
                "topic.creation.compacted.include",
                "db\\.inventory\\..*, db\\.users",
            ),
            ("topic.creation.compacted.exclude", "db\\.inventory\\.tmp.*"),
            ("topic.creation.compacted.cleanup.policy", "compact"),
            ("topic.creation.logs.include", "db\\..*"),
            ("topic.creation.logs.partitions", "6"),
            ("topic.creation.logs.replication.factor", "2"),
        ]);
        assert!(errors.is_empty(), "{errors}");
        assert!(warnings.is_empty(), "{warnings:?}");
        let rules = rules.expect("rules");

        let (group, s) = rules.for_topic("db.inventory.orders");
        assert_eq!(group, "compacted");
        // Partitions and replication factor come from the default group; topic configs do not.
        assert_eq!((s.partitions, s.replication_factor), (3, -1));
        assert_eq!(
            s.configs.iter().collect::<Vec<_>>(),
            [(&"cleanup.policy".to_owned(), &"compact".to_owned())]
        );
        assert_eq!(rules.for_topic("db.users").0, "compacted");
        // Excluded from the first group, so the next one that includes it wins.
        let (group, s) = rules.for_topic("db.inventory.tmp1");
        assert_eq!(group, "logs");
        assert_eq!((s.partitions, s.replication_factor), (6, 2));
        assert!(s.configs.is_empty());
        // Whole-name match: a prefix or suffix does not count.
        assert_eq!(rules.for_topic("xdb.users").0, "default");
        assert_eq!(rules.for_topic("db.usersx").0, "logs");
        let (group, s) = rules.for_topic("other");
        assert_eq!(group, "default");
        assert_eq!(s.partitions, 3);
        assert_eq!(s.configs["retention.ms"], "600000");
    }

    #[test]
    fn the_default_group_needs_partitions_and_replication_factor() {
        let (rules, errors, _) = parse(&[("topic.creation.default.cleanup.policy", "compact")]);
        assert!(rules.is_none());
        let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "topic.creation.default.partitions",
                "topic.creation.default.replication.factor"
            ]
        );
        assert!(errors.0[0].message.contains("is required"), "{errors}");
    }

    #[test]
    fn bad_values_name_the_field_and_the_reason() {
        let (rules, errors, _) = parse(&[
            ("topic.creation.groups", "g"),
            ("topic.creation.default.partitions", "three"),
            ("topic.creation.default.replication.factor", "0"),
            ("topic.creation.default.cleanup.policy", "forever"),
            ("topic.creation.default.retention.ms", "1h"),
            ("topic.creation.g.include", "ok.*,(unclosed"),
            ("topic.creation.g.exclude", "[z-a]"),
            ("topic.creation.g.partitions", "-2"),
            ("topic.creation.g.replication.factor", "40000"),
        ]);
        assert!(rules.is_none());
        let by_field: BTreeMap<&str, &str> = errors
            .0
            .iter()
            .map(|e| (e.field.as_str(), e.message.as_str()))
            .collect();
        assert_eq!(by_field.len(), 8, "{errors}");
        assert!(by_field["topic.creation.default.partitions"].contains("integer"));
        assert!(by_field["topic.creation.default.replication.factor"].contains("got 0"));
        assert!(by_field["topic.creation.default.cleanup.policy"].contains("forever"));
        assert!(by_field["topic.creation.default.retention.ms"].contains("integer"));
        assert!(by_field["topic.creation.g.include"].contains("(unclosed"));
        assert!(by_field["topic.creation.g.exclude"].contains("regular expression"));
        assert!(by_field["topic.creation.g.partitions"].contains("got -2"));
        assert!(by_field["topic.creation.g.replication.factor"].contains("32767"));
    }

    #[test]
    fn keys_of_unlisted_groups_and_empty_includes_are_warned_about() {
        let (rules, errors, warnings) = parse(&[
            ("topic.creation.groups", "g"),
            ("topic.creation.default.partitions", "1"),
            ("topic.creation.default.replication.factor", "1"),
            ("topic.creation.other.partitions", "5"),
            ("topic.creation.default.include", ".*"),
        ]);
        assert!(errors.is_empty(), "{errors}");
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(
            warnings
                .iter()
                .any(|w| w.starts_with("topic.creation.other.partitions: ignored"))
        );
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("group g matches no topic"))
        );
        assert_eq!(rules.expect("rules").for_topic("anything").0, "default");
    }

    #[test]
    fn a_group_alias_may_contain_dots() {
        let (rules, errors, _) = parse(&[
            ("topic.creation.groups", "a,a.b"),
            ("topic.creation.default.partitions", "1"),
            ("topic.creation.default.replication.factor", "1"),
            ("topic.creation.a.include", "x"),
            ("topic.creation.a.b.include", "y"),
            ("topic.creation.a.b.partitions", "4"),
        ]);
        assert!(errors.is_empty(), "{errors}");
        let rules = rules.expect("rules");
        assert_eq!(rules.for_topic("x").0, "a");
        let (group, s) = rules.for_topic("y");
        assert_eq!((group, s.partitions), ("a.b", 4));
    }
}
