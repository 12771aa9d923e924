//! Target database errors, classified once: retry, bad row, or fail.

use tributary_runtime::error::ConnectorError;

/// What a failed statement means for the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbErrorKind {
    /// Connection lost, deadlock, serialization failure, timeout: restart and retry.
    Transient,
    /// The target rejects a row's data (too long, NOT NULL, out of range, bad JSON...): find
    /// the row and hand it to the errant record reporter.
    Data,
    /// Anything else (missing table, permissions, syntax): the task fails.
    Definite,
}

/// A failed statement against the target.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DbError {
    pub kind: DbErrorKind,
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl DbError {
    pub fn new(kind: DbErrorKind, message: impl Into<String>) -> Self {
        DbError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Adds what was being done to the message.
    pub fn context(mut self, what: &str) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }

    pub fn into_connector(self) -> ConnectorError {
        let message = self.message;
        let err = match self.kind {
            DbErrorKind::Transient => ConnectorError::transient(message),
            DbErrorKind::Data | DbErrorKind::Definite => ConnectorError::definite(message),
        };
        match self.source {
            Some(source) => err.with_source(BoxedError(source)),
            None => err,
        }
    }
}

impl From<DbError> for ConnectorError {
    fn from(err: DbError) -> Self {
        err.into_connector()
    }
}

#[derive(Debug)]
struct BoxedError(Box<dyn std::error::Error + Send + Sync>);

impl std::fmt::Display for BoxedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BoxedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Classifies a Postgres error by SQLSTATE.
pub fn from_postgres(err: tokio_postgres::Error) -> DbError {
    let (kind, message) = match err.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            let kind = postgres_kind(code);
            let mut message = format!("postgres error {code}: {}", db.message());
            if let Some(detail) = db.detail() {
                // Details of constraint errors carry row values: keep only the first line of
                // non-data errors.
                if kind != DbErrorKind::Data {
                    message.push_str(&format!(" ({detail})"));
                }
            }
            (kind, message)
        }
        None if err.is_closed() => (DbErrorKind::Transient, "postgres connection closed".into()),
        None => (DbErrorKind::Transient, format!("postgres: {err}")),
    };
    DbError {
        kind,
        message,
        source: Some(Box::new(err)),
    }
}

/// The kind of a Postgres SQLSTATE.
pub fn postgres_kind(code: &str) -> DbErrorKind {
    match code {
        // serialization_failure, deadlock_detected, lock_not_available, query_canceled,
        // admin/crash shutdown, cannot_connect_now.
        "40001" | "40P01" | "55P03" | "57014" | "57P01" | "57P02" | "57P03" => {
            DbErrorKind::Transient
        }
        c if c.starts_with("08") || c.starts_with("53") => DbErrorKind::Transient,
        // data_exception, integrity_constraint_violation.
        c if c.starts_with("22") || c.starts_with("23") => DbErrorKind::Data,
        _ => DbErrorKind::Definite,
    }
}

/// Classifies a MySQL/MariaDB error by server error code.
pub fn from_mysql(err: mysql_async::Error) -> DbError {
    let (kind, message) = match &err {
        mysql_async::Error::Server(server) => (
            mysql_kind(server.code),
            format!("mysql error {}: {}", server.code, server.message),
        ),
        mysql_async::Error::Io(e) => (DbErrorKind::Transient, format!("mysql connection: {e}")),
        mysql_async::Error::Driver(e) => (DbErrorKind::Transient, format!("mysql driver: {e}")),
        other => (DbErrorKind::Definite, format!("mysql: {other}")),
    };
    DbError {
        kind,
        message,
        source: Some(Box::new(err)),
    }
}

/// The kind of a MySQL/MariaDB server error code.
pub fn mysql_kind(code: u16) -> DbErrorKind {
    match code {
        // deadlock, lock wait timeout, too many connections, shutdown, gone away, lost,
        // connection killed, query interrupted.
        1213 | 1205 | 1040 | 1053 | 2006 | 2013 | 1927 | 1317 => DbErrorKind::Transient,
        // data too long, column cannot be null, out of range, incorrect value, truncated,
        // duplicate key, foreign keys, invalid JSON, CHECK constraint, incorrect datetime,
        // incorrect string value, field without default.
        1406 | 1048 | 1264 | 1366 | 1292 | 1265 | 1062 | 1451 | 1452 | 3140 | 4025 | 1411
        | 1690 | 1364 | 1416 | 4078 => DbErrorKind::Data,
        _ => DbErrorKind::Definite,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_codes() {
        assert_eq!(postgres_kind("40P01"), DbErrorKind::Transient);
        assert_eq!(postgres_kind("08006"), DbErrorKind::Transient);
        assert_eq!(postgres_kind("22001"), DbErrorKind::Data);
        assert_eq!(postgres_kind("23502"), DbErrorKind::Data);
        assert_eq!(postgres_kind("42P01"), DbErrorKind::Definite);
        assert_eq!(mysql_kind(1213), DbErrorKind::Transient);
        assert_eq!(mysql_kind(1406), DbErrorKind::Data);
        assert_eq!(mysql_kind(1146), DbErrorKind::Definite);
    }
}
