//! End-to-end tests of the `tributary` binary and of the real-server test environment.
//! One test binary (one link) with a module per area.

mod configs;
mod converters;
mod crash;
mod env_smoke;
mod kafka;
mod rest;
mod support;
