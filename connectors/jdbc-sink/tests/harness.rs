//! Builds sink tasks and Debezium-shaped JSON records for the tests.

#![allow(dead_code)]

use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::{Value as J, json};
use tributary_jdbc_sink::config::{JdbcSinkConfig, config_def};
use tributary_jdbc_sink::sink::JdbcSink;
use tributary_runtime::config::RawConfig;
use tributary_runtime::connector::{SinkConnector, SinkTask, SinkTaskContext};
use tributary_runtime::data::decode::RecordDecoder;
use tributary_runtime::dead_letter::{ErrantRecordReporter, ErrorPolicy};
use tributary_runtime::log::{EmbeddedLog, LogConfig};
use tributary_runtime::progress::ProgressHandle;
use tributary_runtime::record::{SinkRecord, TopicRecord};
use tributary_runtime::storage::EmbeddedStore;

pub const PLACEHOLDER: &str = "__debezium_unavailable_value";

/// A sink task over `url` with the given extra config.
pub async fn open_task(
    url: &str,
    extra: &[(&str, &str)],
    errors: ErrantRecordReporter,
) -> Result<Box<dyn SinkTask>> {
    let mut raw = RawConfig::new();
    raw.insert("connection.url".into(), url.into());
    for (k, v) in extra {
        raw.insert(k.to_string(), v.to_string());
    }
    let parsed = config_def()
        .parse(&raw)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let config =
        JdbcSinkConfig::from_parsed("jdbc-test", &parsed).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut converters = RawConfig::new();
    for side in ["key", "value"] {
        converters.insert(
            format!("{side}.converter"),
            "org.apache.kafka.connect.json.JsonConverter".into(),
        );
        converters.insert(format!("{side}.converter.schemas.enable"), "true".into());
    }
    let decoder = RecordDecoder::from_config(&converters).map_err(|e| anyhow::anyhow!("{e}"))?;
    let sink = JdbcSink {
        config: Arc::new(config),
    };
    let task = sink
        .open_task(SinkTaskContext {
            connector: "jdbc-test".into(),
            task_id: 0,
            progress: ProgressHandle::new(),
            decoder: Arc::new(decoder),
            errors,
        })
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.trace()))?;
    Ok(task)
}

/// A reporter with `errors.tolerance=all` (bad records are skipped), and its log dir.
pub fn tolerant() -> Result<(ErrantRecordReporter, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let log = EmbeddedLog::open(dir.path(), LogConfig::default()).context("open log")?;
    let store = EmbeddedStore::new(log);
    let policy = ErrorPolicy {
        tolerate: true,
        ..ErrorPolicy::default()
    };
    Ok((
        ErrantRecordReporter::new(policy, store, "jdbc-test".into(), 0),
        dir,
    ))
}

/// A Connect JSON schema field.
pub fn field(name: &str, ty: &str, optional: bool) -> J {
    json!({"field": name, "type": ty, "optional": optional})
}

/// A Connect JSON schema field with a logical name (and parameters).
pub fn logical(name: &str, ty: &str, logical: &str, params: &[(&str, &str)]) -> J {
    let mut f = json!({"field": name, "type": ty, "optional": true, "name": logical, "version": 1});
    if !params.is_empty() {
        let p: serde_json::Map<String, J> = params
            .iter()
            .map(|(k, v)| (k.to_string(), J::from(*v)))
            .collect();
        f["parameters"] = J::Object(p);
    }
    f
}

/// A Debezium change event (JsonConverter with schemas) for a row with `fields`.
pub fn event(fields: &[J], op: &str, before: Option<J>, after: Option<J>) -> J {
    let row =
        json!({"type": "struct", "optional": true, "name": "server.db.t.Value", "fields": fields});
    let mut before_schema = row.clone();
    before_schema["field"] = J::from("before");
    let mut after_schema = row;
    after_schema["field"] = J::from("after");
    json!({
        "schema": {"type": "struct", "name": "server.db.t.Envelope", "optional": false, "fields": [
            before_schema, after_schema,
            {"field": "source", "type": "struct", "optional": false, "fields": [
                field("db", "string", false), field("table", "string", true)]},
            field("op", "string", false),
            field("ts_ms", "int64", true),
        ]},
        "payload": {"before": before, "after": after, "source": {"db": "inv", "table": "t"}, "op": op, "ts_ms": 0}
    })
}

/// A truncate event.
pub fn truncate_event() -> J {
    json!({
        "schema": {"type": "struct", "optional": false, "fields": [
            {"field": "source", "type": "struct", "optional": false, "fields": [
                field("db", "string", false), field("table", "string", true)]},
            field("op", "string", false),
        ]},
        "payload": {"source": {"db": "inv", "table": "t"}, "op": "t"}
    })
}

/// An int64 `id` key.
pub fn key(id: i64) -> J {
    json!({"schema": {"type": "struct", "optional": false, "fields": [field("id", "int64", false)]},
           "payload": {"id": id}})
}

pub fn record(topic: &str, offset: u64, key: Option<&J>, value: Option<&J>) -> SinkRecord {
    SinkRecord {
        topic: topic.into(),
        partition: 0,
        offset,
        record: TopicRecord {
            key: key.map(|k| bytes::Bytes::from(k.to_string())),
            value: value.map(|v| bytes::Bytes::from(v.to_string())),
            headers: vec![],
            timestamp_ms: 0,
        },
    }
}

/// Base64 of a decimal's unscaled big-endian two's-complement bytes.
pub fn decimal_b64(unscaled: i64) -> String {
    use base64::Engine;
    let bytes = unscaled.to_be_bytes();
    let neg = unscaled < 0;
    let mut start = 0;
    while start < 7 {
        let b = bytes[start];
        let next_sign = bytes[start + 1] & 0x80 != 0;
        if (b == 0 && !next_sign && !neg) || (b == 0xff && next_sign && neg) {
            start += 1;
        } else {
            break;
        }
    }
    base64::engine::general_purpose::STANDARD.encode(&bytes[start..])
}

/// The all-types row schema used by the round-trip tests.
pub fn typed_fields(with_array: bool) -> Vec<J> {
    let mut f = vec![
        field("id", "int64", false),
        logical(
            "amount",
            "bytes",
            "org.apache.kafka.connect.data.Decimal",
            &[("scale", "2"), ("connect.decimal.precision", "12")],
        ),
        logical("ts", "int64", "io.debezium.time.MicroTimestamp", &[]),
        logical("tstz", "string", "io.debezium.time.ZonedTimestamp", &[]),
        logical("day", "int32", "io.debezium.time.Date", &[]),
        logical("doc", "string", "io.debezium.data.Json", &[]),
        field("blob", "bytes", true),
        logical("uid", "string", "io.debezium.data.Uuid", &[]),
        logical(
            "mood",
            "string",
            "io.debezium.data.Enum",
            &[("allowed", "happy,sad")],
        ),
        field("score", "double", true),
        field("flag", "boolean", true),
        field("note", "string", true),
    ];
    if with_array {
        f.push(json!({"field": "tags", "type": "array", "optional": true, "items": {"type": "string", "optional": true}}));
    }
    f
}

/// A row for [`typed_fields`].
pub fn typed_row(id: i64, note: &str, with_array: bool) -> J {
    let mut row = json!({
        "id": id,
        "amount": decimal_b64(-1_234_567 * id),
        "ts": 1_709_296_245_123_456_i64 + id,
        "tstz": "2024-03-01T12:30:45.123456Z",
        "day": 19_783,
        "doc": "{\"a\": [1, 2]}",
        "blob": "AP8Q",
        "uid": "123e4567-e89b-12d3-a456-426614174000",
        "mood": "happy",
        "score": 1.5,
        "flag": true,
        "note": note,
    });
    if with_array {
        row["tags"] = json!(["x", "y \"q\""]);
    }
    row
}
