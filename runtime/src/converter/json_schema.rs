//! Kafka Connect `JsonConverter` with `schemas.enable=true`: `{"schema": ..., "payload": ...}`,
//! the schema in Connect's JSON form ([`super::connect::ConnectSchema::to_connect_json`]),
//! the payload exactly as with schemas disabled.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

/// `{"schema": schema, "payload": payload}`.
pub struct WithSchema<'a, P: Serialize> {
    pub schema: &'a serde_json::Value,
    pub payload: P,
}

impl<P: Serialize> Serialize for WithSchema<'_, P> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("schema", self.schema)?;
        map.serialize_entry("payload", &self.payload)?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::converter::connect::envelope_schema;
    use crate::converter::json::{EnvelopeJson, ValueModes};
    use crate::model::{
        ChangeEvent, Column, DataType, Op, Row, SnapshotMarker, SourceInfo, TableId, TableSchema,
        Value,
    };

    #[test]
    fn schema_and_payload_agree() {
        let table = Arc::new(TableSchema {
            id: TableId::new("shop", "t"),
            version: 1,
            columns: vec![
                Column::new("id", DataType::Int32, "int").not_null(),
                Column::new("at", DataType::Timestamp { precision: 6 }, "datetime(6)"),
            ],
            key: vec![0],
        });
        let event = ChangeEvent {
            op: Op::Create,
            table: table.clone(),
            before: None,
            after: Some(Row(vec![Value::Int(1), Value::Timestamp(5)])),
            source: SourceInfo {
                connector: "mysql",
                name: Arc::from("srv"),
                ts_ms: 1,
                snapshot: SnapshotMarker::False,
                db: Arc::from("shop"),
                schema: None,
                table: Some(Arc::from("t")),
                extra: vec![("pos", Value::Int(4))],
            },
            transaction: None,
            processed_ts_ms: 2,
            headers: vec![],
        };
        let modes = ValueModes::default();
        let schema = envelope_schema("srv.shop.t", &table, &event.source, &modes).to_connect_json();
        let json = serde_json::to_value(WithSchema {
            schema: &schema,
            payload: EnvelopeJson {
                event: &event,
                modes: &modes,
            },
        })
        .expect("json");
        assert_eq!(json["schema"]["name"], "srv.shop.t.Envelope");
        let fields = json["schema"]["fields"].as_array().expect("fields");
        let names: Vec<&str> = fields.iter().filter_map(|f| f["field"].as_str()).collect();
        let payload_keys: Vec<&str> = json["payload"]
            .as_object()
            .expect("payload")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(names, payload_keys);
        let after = &fields[1];
        assert_eq!(after["optional"], true);
        assert_eq!(
            after["fields"][1]["name"],
            "io.debezium.time.MicroTimestamp"
        );
        assert_eq!(json["payload"]["after"]["at"], 5);
        let source_fields: Vec<&str> = fields[2]["fields"]
            .as_array()
            .expect("source")
            .iter()
            .filter_map(|f| f["field"].as_str())
            .collect();
        let source_keys: Vec<&str> = json["payload"]["source"]
            .as_object()
            .expect("source")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(source_fields, source_keys);
    }
}
