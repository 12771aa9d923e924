//! Connectors built into the runtime, for users and for tests.

pub mod datagen;
pub mod file_sink;
