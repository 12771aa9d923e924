//! JDBC sink connector (Postgres and MySQL/MariaDB targets).
//!
//! Not implemented yet: see issue 9.
