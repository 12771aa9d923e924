//! Tributary runtime: the change-event model, the connector API, the commit-order machinery
//! (ack tracker, offset store), the embedded durable log, and the worker that runs it all.
//!
//! Start at [`worker`] for how tasks run, [`ack`] for the commit-order invariant, and
//! [`log`] for the embedded storage.

pub mod ack;
pub mod config;
pub mod connector;
pub mod connectors;
pub mod converter;
pub mod data;
pub mod dead_letter;
pub mod der;
pub mod durable_file;
pub mod error;
pub mod kafka;
pub mod log;
pub mod metrics;
pub mod model;
pub mod offsets;
pub mod partitioner;
pub mod progress;
pub mod record;
pub mod registry;
pub mod rest;
pub mod schema_registry;
pub mod storage;
pub mod transforms;
pub mod worker;

/// Version reported in `source.version` and `GET /`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
