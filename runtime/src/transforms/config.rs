//! The settings of one transform or predicate (`transforms.<alias>.*`), read with errors that
//! name the full key, and unknown keys rejected with a did-you-mean.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;

use crate::config::{ConfigErrors, did_you_mean};

/// The keys of one alias, without the `transforms.<alias>.` prefix.
pub struct Props<'a> {
    /// `transforms.<alias>.` or `predicates.<alias>.`
    prefix: String,
    values: &'a BTreeMap<String, String>,
    read: RefCell<BTreeSet<String>>,
    errors: RefCell<ConfigErrors>,
}

impl<'a> Props<'a> {
    pub fn new(prefix: String, values: &'a BTreeMap<String, String>) -> Self {
        Props {
            prefix,
            values,
            read: RefCell::new(BTreeSet::from(["type".to_owned()])),
            errors: RefCell::new(ConfigErrors::default()),
        }
    }

    /// The full key of a setting, for error messages.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Records an error about setting `name`.
    pub fn error(&self, name: &str, message: impl Into<String>) {
        self.errors.borrow_mut().push(self.key(name), message);
    }

    /// A trimmed, non-empty value.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.read.borrow_mut().insert(name.to_owned());
        self.values
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    pub fn string(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or(default).to_owned()
    }

    pub fn required(&self, name: &str) -> String {
        match self.get(name) {
            Some(v) => v.to_owned(),
            None => {
                self.error(name, "is required");
                String::new()
            }
        }
    }

    pub fn list(&self, name: &str) -> Vec<String> {
        self.get(name).map(split_list).unwrap_or_default()
    }

    pub fn bool(&self, name: &str, default: bool) -> bool {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None => default,
            Some("true") => true,
            Some("false") => false,
            Some(other) => {
                self.error(name, format!("must be true or false, got {other:?}"));
                default
            }
        }
    }

    /// One of `values` (case-insensitive), or the default.
    pub fn one_of(
        &self,
        name: &str,
        values: &[&'static str],
        default: &'static str,
    ) -> &'static str {
        let Some(v) = self.get(name) else {
            return default;
        };
        match values.iter().find(|x| x.eq_ignore_ascii_case(v)) {
            Some(x) => x,
            None => {
                let hint = did_you_mean(&v.to_ascii_lowercase(), values.iter().copied())
                    .map(|s| format!(" (did you mean {s:?}?)"))
                    .unwrap_or_default();
                self.error(
                    name,
                    format!("must be one of {}, got {v:?}{hint}", values.join(", ")),
                );
                default
            }
        }
    }

    /// A regular expression that must match the whole input (Java's `Matcher.matches`).
    pub fn full_regex(&self, name: &str, pattern: &str) -> Option<Regex> {
        match Regex::new(&format!("^(?:{pattern})$")) {
            Ok(re) => Some(re),
            Err(e) => {
                self.error(name, format!("invalid regular expression: {e}"));
                None
            }
        }
    }

    /// Every error, plus one per key that no reader asked for.
    pub fn finish(self) -> ConfigErrors {
        let read = self.read.into_inner();
        let mut errors = self.errors.into_inner();
        for key in self.values.keys() {
            if read.contains(key) {
                continue;
            }
            let hint = did_you_mean(key, read.iter().map(String::as_str))
                .map(|s| format!(" (did you mean {:?}?)", format!("{}{s}", self.prefix)))
                .unwrap_or_default();
            errors.push(
                format!("{}{key}", self.prefix),
                format!("unknown setting for this transform{hint}"),
            );
        }
        errors
    }
}

/// A comma-separated list, trimmed, empty items dropped.
pub fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A Java regex replacement (`$1`, `${name}`) in the `regex` crate's syntax (`${1}`), so a
/// group number followed by text (`$1_x`) keeps its meaning.
pub fn java_replacement(replacement: &str) -> String {
    let mut out = String::with_capacity(replacement.len() + 4);
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(other) => out.push(other),
                None => out.push('\\'),
            },
            '$' if chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push_str("${");
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    out.push(d);
                    chars.next();
                }
                out.push('}');
            }
            '$' => out.push('$'),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_replacements_translate() {
        assert_eq!(java_replacement("$1"), "${1}");
        assert_eq!(java_replacement("x_$1_$2y"), "x_${1}_${2}y");
        assert_eq!(java_replacement("${name}"), "${name}");
        assert_eq!(java_replacement("a\\$b"), "a$$b");
    }

    #[test]
    fn unknown_keys_are_named_with_a_hint() {
        let values: BTreeMap<String, String> = [("regex", "a"), ("replacment", "b")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let props = Props::new("transforms.route.".into(), &values);
        props.get("regex");
        props.get("replacement");
        let errors = props.finish();
        assert_eq!(errors.0.len(), 1);
        assert_eq!(errors.0[0].field, "transforms.route.replacment");
        assert!(errors.0[0].message.contains("transforms.route.replacement"));
    }
}
