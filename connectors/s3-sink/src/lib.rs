//! S3 sink connector.
//!
//! Not implemented yet: see issue 8.
