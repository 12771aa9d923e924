//! Integration tests against the real Postgres of the test environment
//! (`scripts/test-env.sh up`). Each test uses its own database, slot and publication.

#[path = "../../../tests/support/env.rs"]
mod env;
mod pg;
