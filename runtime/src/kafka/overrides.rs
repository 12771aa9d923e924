//! Client property overrides: `producer.override.*` and `consumer.override.*`.
//!
//! Kafka Connect lets a connector config override its clients' properties, filtered by the
//! worker's `connector.client.config.override.policy` (`All` by default since Connect 3.0).
//! Here the policy is `All` except for the properties that would break what the runtime
//! promises: an offset commits only after its records are durable. Those are refused at
//! validation, with the key and the reason, both in connector configs and in the worker's
//! `storage.producer.override` / `storage.consumer.override`.
//!
//! Order of application (last wins): the runtime's settings, the worker's overrides, the
//! connector's overrides; then the runtime's guarantees are set again, so even a property
//! that slipped through cannot weaken them.
//!
//! Names are librdkafka's, which are the Java client's for the common properties
//! (`linger.ms`, `batch.size`, `compression.type`, `fetch.min.bytes`, ...). Unknown names and
//! bad values are caught at validation by librdkafka's own property table (no client is
//! created, nothing connects).

use std::collections::BTreeMap;

use rdkafka::config::ClientConfig;

use crate::config::ConfigErrors;

/// Which client an override is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    Producer,
    Consumer,
}

impl Client {
    /// The config prefix of this client's overrides.
    pub fn prefix(self) -> &'static str {
        match self {
            Client::Producer => "producer.override.",
            Client::Consumer => "consumer.override.",
        }
    }
}

/// Why `key=value` may not be overridden on `client`, or `None` when it may.
pub fn refusal(client: Client, key: &str, value: &str) -> Option<String> {
    let v = value.trim().to_ascii_lowercase();
    let reason = match (client, key) {
        (_, "bootstrap.servers" | "metadata.broker.list") => {
            "a connector's topics are created, listed and read on the worker's cluster \
             (storage.bootstrap_servers); it cannot be moved to another one"
                .to_owned()
        }
        (Client::Producer, "enable.idempotence") if v != "true" => {
            "must stay true: without idempotence a retried batch can be written twice or out \
             of order"
                .to_owned()
        }
        (Client::Producer, "acks" | "request.required.acks") if v != "all" && v != "-1" => {
            format!(
                "must be all (or -1), got {value:?}: a source offset is committed only once \
                 every in-sync replica has its records"
            )
        }
        (Client::Producer, "transactional.id") => {
            "transactions are not used (exactly.once.support=required is not supported); a \
             transactional producer would refuse every send outside a transaction"
                .to_owned()
        }
        (Client::Producer, "max.in.flight.requests.per.connection" | "max.in.flight") => {
            match v.parse::<i64>() {
                Ok(n) if (1..=5).contains(&n) => return None,
                _ => format!(
                    "must be between 1 and 5, got {value:?}: the idempotent producer keeps \
                     order only with at most 5 requests in flight"
                ),
            }
        }
        (Client::Producer, "retries" | "message.send.max.retries") => match v.parse::<i64>() {
            Ok(n) if n >= 1 => return None,
            _ => {
                format!("must be at least 1, got {value:?}: the idempotent producer needs retries")
            }
        },
        (Client::Producer, "queuing.strategy") if v != "fifo" => {
            "must stay fifo: records of a partition are acknowledged in the order they were \
             produced"
                .to_owned()
        }
        (Client::Consumer, "enable.auto.commit") if v != "false" => {
            "must stay false: a sink's offsets are committed only after the sink reports the \
             records durable (pre_commit); auto-commit would commit records it has not written"
                .to_owned()
        }
        (Client::Consumer, "group.id") => {
            "a sink's consumer group is connect-<connector name>; the offsets API reads and \
             resets it there"
                .to_owned()
        }
        (Client::Consumer, "group.instance.id") => {
            "every task of the connector would share one static member id and fence the others"
                .to_owned()
        }
        (Client::Consumer, "isolation.level") if v != "read_committed" => {
            format!(
                "must stay read_committed, got {value:?}: a sink would write records of \
                 transactions that are later aborted"
            )
        }
        (Client::Consumer, "enable.partition.eof") if v != "true" => {
            "must stay true: the consumer checks where a resumed partition starts with \
             end-of-partition events"
                .to_owned()
        }
        _ => return None,
    };
    Some(reason)
}

/// Checks overrides for `client` (keys without the prefix); errors name `field_prefix` + key.
///
/// Each property is refused if it would break a guarantee, then set on a scratch librdkafka
/// configuration, which rejects unknown names and malformed values without creating a client.
pub fn check(
    client: Client,
    field_prefix: &str,
    overrides: &BTreeMap<String, String>,
    errors: &mut ConfigErrors,
) {
    for (key, value) in overrides {
        let field = format!("{field_prefix}{key}");
        if key.trim().is_empty() {
            errors.push(field, "needs a property name after the prefix");
            continue;
        }
        if let Some(reason) = refusal(client, key, value) {
            errors.push(field, reason);
            continue;
        }
        let mut scratch = ClientConfig::new();
        scratch.set(key, value);
        if let Err(e) = scratch.create_native_config() {
            errors.push(field, format!("not accepted by the Kafka client: {e}"));
        }
    }
}

/// The overrides of `client` in a raw connector config, keys without the prefix.
pub fn from_raw(client: Client, raw: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    raw.iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(client.prefix())
                .map(|key| (key.to_owned(), v.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(client: Client, pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let overrides = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut errors = ConfigErrors::default();
        check(client, client.prefix(), &overrides, &mut errors);
        errors.0.into_iter().map(|e| (e.field, e.message)).collect()
    }

    #[test]
    fn guarantee_breaking_producer_overrides_are_refused_by_name() {
        let errors = errors_of(
            Client::Producer,
            &[
                ("enable.idempotence", "false"),
                ("acks", "1"),
                ("transactional.id", "x"),
                ("max.in.flight.requests.per.connection", "6"),
                ("retries", "0"),
                ("bootstrap.servers", "elsewhere:9092"),
            ],
        );
        let fields: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "producer.override.acks",
                "producer.override.bootstrap.servers",
                "producer.override.enable.idempotence",
                "producer.override.max.in.flight.requests.per.connection",
                "producer.override.retries",
                "producer.override.transactional.id",
            ]
        );
        assert!(errors[0].1.contains("must be all"), "{errors:?}");
    }

    #[test]
    fn harmless_overrides_pass_and_unknown_ones_are_caught_by_librdkafka() {
        let errors = errors_of(
            Client::Producer,
            &[
                ("linger.ms", "50"),
                ("acks", "all"),
                ("enable.idempotence", "true"),
                ("compression.type", "lz4"),
                ("max.in.flight.requests.per.connection", "5"),
            ],
        );
        assert!(errors.is_empty(), "{errors:?}");
        let errors = errors_of(Client::Producer, &[("request.required.acks", "-1")]);
        assert!(errors.is_empty(), "{errors:?}");
        let errors = errors_of(
            Client::Consumer,
            &[
                ("fetch.min.bytes", "1024"),
                ("auto.offset.reset", "latest"),
                ("enable.auto.commit", "false"),
                ("session.timeout.ms", "6000"),
            ],
        );
        assert!(errors.is_empty(), "{errors:?}");
        let errors = errors_of(
            Client::Producer,
            &[("linger.mss", "5"), ("compression.type", "brotli")],
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors
                .iter()
                .all(|(_, m)| m.starts_with("not accepted by the Kafka client")),
            "{errors:?}"
        );
    }

    #[test]
    fn guarantee_breaking_consumer_overrides_are_refused_by_name() {
        let errors = errors_of(
            Client::Consumer,
            &[
                ("enable.auto.commit", "true"),
                ("group.id", "other"),
                ("isolation.level", "read_uncommitted"),
                ("enable.partition.eof", "false"),
                ("group.instance.id", "me"),
            ],
        );
        assert_eq!(errors.len(), 5, "{errors:?}");
        let auto = errors
            .iter()
            .find(|(f, _)| f == "consumer.override.enable.auto.commit")
            .expect("auto-commit refused");
        assert!(auto.1.contains("pre_commit"), "{auto:?}");
    }

    #[test]
    fn overrides_are_read_from_a_raw_config_without_their_prefix() {
        let raw: BTreeMap<String, String> = [
            ("producer.override.linger.ms", "7"),
            ("consumer.override.fetch.min.bytes", "1"),
            ("topics", "a"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let producer = from_raw(Client::Producer, &raw);
        assert_eq!(producer.len(), 1);
        assert_eq!(producer["linger.ms"], "7");
        assert_eq!(from_raw(Client::Consumer, &raw)["fetch.min.bytes"], "1");
    }
}
