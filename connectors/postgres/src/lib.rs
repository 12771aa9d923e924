//! Postgres logical replication (pgoutput) source connector.
//!
//! Not implemented yet: see issue 5.
