//! S3 sink connector, configured like Confluent's `io.confluent.connect.s3.S3SinkConnector`.
//!
//! ```text
//!  SinkRecord ─ decode ─ partitioner ─► open file per (topic partition, encoded partition)
//!                                        in a local spill directory (small fixed buffers)
//!  rotation (flush.size, rotate.interval.ms, schema change per schema.compatibility,
//!            rotate.schedule.interval.ms)
//!        ─► finish file ─► PutObject / multipart upload ─► offsets may be committed
//! ```
//!
//! Object keys are Confluent's:
//! `<topics.dir>/<topic>/<encoded partition>/<topic>+<kafka partition>+<start offset>.<ext>`,
//! the start offset zero-padded to 10 digits. With a deterministic partitioner and
//! record-time rotation a replay after a crash rewrites the same keys with the same bytes,
//! so the bucket holds each record exactly once ([`sink`] explains when offsets move).

pub mod compatibility;
pub mod config;
pub mod format;
pub mod partitioner;
pub mod path_format;
pub mod sink;
pub mod store;

use std::sync::Arc;

use tributary_runtime::config::{ConfigDef, ConfigErrors, Parsed};
use tributary_runtime::connector::{Connector, ConnectorKind, Plugin};

pub use config::S3SinkConfig;
pub use sink::{S3Sink, S3SinkTask};
pub use store::Store;

/// The S3 sink plugin.
pub struct S3SinkPlugin;

impl Plugin for S3SinkPlugin {
    fn class(&self) -> &'static str {
        "io.confluent.connect.s3.S3SinkConnector"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["s3-sink", "s3"]
    }

    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Sink
    }

    fn config_def(&self) -> ConfigDef {
        S3SinkConfig::config_def()
    }

    fn validate(&self, _name: &str, config: &Parsed) -> Result<Connector, ConfigErrors> {
        let config = S3SinkConfig::from_parsed(config)?;
        Ok(Connector::Sink(Arc::new(S3Sink {
            config: Arc::new(config),
        })))
    }
}
