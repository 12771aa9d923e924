//! End-to-end tests of the `tributary` binary and of the real-server test environment.
//! One test binary (one link) with a module per area.

mod compose;
mod configs;
mod converters;
mod crash;
mod dead_letter;
mod env_smoke;
mod jdbc_sink;
mod jdbc_source;
mod kafka;
mod offsets;
mod outage;
mod rest;
mod s3_sink;
mod support;
mod transforms;
