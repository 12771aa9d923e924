//! Secrets never leave the worker: config values of password fields, and of any key that
//! looks like a credential, are shown as `[hidden]`.

use serde_json::{Map, Value as Json};

use crate::config::{ConfigDef, FieldType, RawConfig};
use crate::registry::Registry;

/// What a hidden value is replaced with.
pub const HIDDEN: &str = "[hidden]";

/// Whether the value of `key` is a secret: a `Password` field of the connector's definition,
/// or a key whose name says credential.
pub fn is_secret(key: &str, def: Option<&ConfigDef>) -> bool {
    if def
        .and_then(|d| d.field(key))
        .is_some_and(|f| f.ty == FieldType::Password)
    {
        return true;
    }
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "credential",
        "sasl.jaas.config",
        "user.info",
    ]
    .iter()
    .any(|needle| k.contains(needle))
        || k.ends_with(".key")
        || k == "key"
}

/// The definition of the connector a config names, when the class is known.
pub fn definition_for(registry: &Registry, config: &RawConfig) -> Option<ConfigDef> {
    let class = config.get("connector.class")?;
    registry
        .find(class)
        .map(|p| Registry::config_def(p.as_ref()))
}

/// A config as a JSON object of strings, secrets hidden; `name` first when given, as Kafka
/// Connect includes it in the config map.
pub fn redacted_config(
    name: Option<&str>,
    config: &RawConfig,
    def: Option<&ConfigDef>,
) -> Map<String, Json> {
    let mut out = Map::new();
    if let Some(name) = name {
        out.insert("name".into(), Json::String(name.to_owned()));
    }
    for (k, v) in config {
        let shown = if is_secret(k, def) {
            HIDDEN.to_owned()
        } else {
            v.clone()
        };
        out.insert(k.clone(), Json::String(shown));
    }
    out
}

/// One value, hidden if secret.
pub fn redacted_value(key: &str, value: &str, def: Option<&ConfigDef>) -> String {
    if is_secret(key, def) {
        HIDDEN.to_owned()
    } else {
        value.to_owned()
    }
}

/// Where a client sent `[hidden]` back for a key that has a value, keeps that value (so a
/// config read from the API can be edited and written back).
pub fn restore_hidden(new: &mut RawConfig, old: &RawConfig) {
    for (k, v) in new.iter_mut() {
        if v == HIDDEN
            && let Some(previous) = old.get(k)
        {
            v.clone_from(previous);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> RawConfig {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn hides_password_fields_and_credential_looking_keys() {
        let def = ConfigDef::new().maybe("database.pw", FieldType::Password, "pw");
        let config = raw(&[
            ("database.pw", "a"),
            ("database.password", "b"),
            ("aws.secret.access.key", "c"),
            ("api.token", "d"),
            ("ssl.key", "e"),
            ("topic.prefix", "visible"),
            ("key.converter", "visible too"),
        ]);
        let shown = redacted_config(Some("n"), &config, Some(&def));
        assert_eq!(shown["name"], "n");
        for hidden in [
            "database.pw",
            "database.password",
            "aws.secret.access.key",
            "api.token",
            "ssl.key",
        ] {
            assert_eq!(shown[hidden], HIDDEN, "{hidden}");
        }
        assert_eq!(shown["topic.prefix"], "visible");
        assert_eq!(shown["key.converter"], "visible too");
        let text = serde_json::to_string(&shown).expect("json");
        for secret in ["\"a\"", "\"b\"", "\"c\"", "\"d\"", "\"e\""] {
            assert!(!text.contains(secret), "{text}");
        }
    }

    #[test]
    fn hidden_values_sent_back_keep_the_stored_secret() {
        let old = raw(&[("database.password", "s3cret"), ("x", "1")]);
        let mut new = raw(&[
            ("database.password", HIDDEN),
            ("x", "2"),
            ("other.password", HIDDEN),
        ]);
        restore_hidden(&mut new, &old);
        assert_eq!(new["database.password"], "s3cret");
        assert_eq!(new["x"], "2");
        assert_eq!(
            new["other.password"], HIDDEN,
            "no previous value: kept literally"
        );
    }
}
