//! Integration tests of the JDBC sink against the real Postgres and MariaDB of the test
//! environment (`scripts/test-env.sh up`). Each test uses its own database.

#[path = "../../../tests/support/env.rs"]
mod env;
mod harness;
mod mariadb;
mod postgres;
