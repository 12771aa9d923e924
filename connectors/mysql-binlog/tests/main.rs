//! Integration tests of the binlog connector against the real MariaDB of the test
//! environment (`scripts/test-env.sh up`). One binary, one module per area; every test
//! uses its own database.

#[path = "../../../tests/support/env.rs"]
mod env;

mod harness;

mod crash;
mod preflight;
mod resume;
mod schema_change;
mod snapshot;
mod streaming;
mod tls;
mod types;
