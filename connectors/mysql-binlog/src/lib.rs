//! MySQL/MariaDB binlog source connector.
//!
//! Not implemented yet: see issue 4. The crate exists so the workspace layout is the one the
//! user fixed, and so the binary's registry already has a place to wire it in.
