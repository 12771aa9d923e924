//! Dropping records: Kafka's `Filter` (drops every record its predicate selects) and the
//! content filter (keeps, drops or re-routes records by a condition on their fields).

use tracing::debug;

use super::Transform;
use super::config::Props;
use super::expr::Expr;
use crate::data::ConnectRecord;
use crate::error::ConnectorError;

/// `org.apache.kafka.connect.transforms.Filter`: drops the record. Used with a predicate
/// (`transforms.f.predicate`), it drops the records the predicate matches (or, with
/// `negate=true`, those it does not).
#[derive(Debug)]
pub struct Filter;

impl Filter {
    pub fn new(_: &Props<'_>) -> Self {
        Filter
    }
}

impl Transform for Filter {
    fn apply(&self, _: ConnectRecord) -> Result<Option<ConnectRecord>, ConnectorError> {
        Ok(None)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    /// Keep matching records, drop the rest.
    Keep,
    /// Drop matching records.
    Drop,
    /// Send matching records to this topic, leave the rest as they are.
    Route(String),
}

/// `io.tributary.transforms.ContentFilter`: evaluates `condition` (see
/// [`super::expr`]) on each record. `topic=<name>` routes matching records there (others are
/// untouched); otherwise `action=keep` (default) keeps matching records and drops the rest,
/// `action=drop` drops matching records. A condition that cannot be decided (a missing field
/// compared to a number) does not match. Also accepted as `io.debezium.transforms.Filter`
/// with `language` ignored (the expression language is ours, not Groovy/JavaScript).
#[derive(Debug)]
pub struct ContentFilter {
    condition: Option<Expr>,
    action: Action,
}

impl ContentFilter {
    pub fn new(p: &Props<'_>) -> Self {
        let text = p.required("condition");
        let condition = match Expr::parse(&text) {
            Ok(e) => Some(e),
            Err(e) => {
                if !text.is_empty() {
                    p.error("condition", e);
                }
                None
            }
        };
        p.get("language");
        let action = match p.get("topic") {
            Some(topic) => {
                if p.get("action").is_some() {
                    p.error(
                        "action",
                        "set either topic (route matches) or action (keep/drop), not both",
                    );
                }
                if let Err(e) = crate::log::validate_topic_name(topic) {
                    p.error("topic", e.to_string());
                }
                Action::Route(topic.to_owned())
            }
            None => match p.one_of("action", &["keep", "drop"], "keep") {
                "drop" => Action::Drop,
                _ => Action::Keep,
            },
        };
        ContentFilter { condition, action }
    }
}

impl Transform for ContentFilter {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, ConnectorError> {
        let Some(condition) = &self.condition else {
            return Ok(Some(record));
        };
        let matched = condition.matches(&record)?;
        Ok(match (&self.action, matched) {
            (Action::Keep, true) | (Action::Drop, false) => Some(record),
            (Action::Keep, false) | (Action::Drop, true) => {
                debug!(topic = %record.topic, offset = record.offset, "record filtered out");
                None
            }
            (Action::Route(topic), true) => {
                record.topic = topic.as_str().into();
                Some(record)
            }
            (Action::Route(_), false) => Some(record),
        })
    }
}
