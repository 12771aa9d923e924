//! Configuration: connector configs (Kafka Connect shape) and the worker config.

mod connector;
mod def;
mod worker;

pub use connector::{
    ConnectorConfig, connector_from_json, interpolate, parse_connector_document,
    validate_connector_name,
};
pub use def::{
    ConfigDef, ConfigErrors, FieldDef, FieldError, FieldType, Importance, Parsed, RawConfig,
    Secret, did_you_mean,
};
pub use worker::{
    RestAuthConfig, RestConfig, RestRole, RestTlsConfig, RestToken, RestUser, RestartConfig,
    StorageConfig, WorkerConfig,
};
