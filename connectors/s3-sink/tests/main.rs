//! Integration tests of the S3 sink against the real S3 server (s3s-fs) of the test
//! environment (`scripts/test-env.sh up`). Every test uses its own bucket.

#[path = "../../../tests/support/env.rs"]
mod env;

mod harness;

mod compatibility;
mod formats;
mod rotation;
mod upload;
