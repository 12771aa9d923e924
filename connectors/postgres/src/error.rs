//! Errors of the Postgres connector and the one place that classifies them.

use tributary_runtime::error::{ConnectorError, ErrorKind};

/// Everything that can go wrong talking to Postgres.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// Network trouble: the server restarted, the connection dropped.
    #[error("connection to {what} failed")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The server answered with an error (SQLSTATE in `code`).
    #[error("server error {code} during {context}: {message}")]
    Server {
        code: String,
        message: String,
        context: String,
    },
    /// A SQL-connection error from tokio-postgres.
    #[error("{context}")]
    Sql {
        context: String,
        #[source]
        source: tokio_postgres::Error,
    },
    /// The server sent something this client does not understand.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The server or a table is not set up for logical replication; the text says how to fix it.
    #[error("{0}")]
    Setup(String),
    /// The replication slot is gone or invalidated.
    #[error("{0}")]
    SlotLost(String),
    /// A position set through the offsets API that the slot cannot resume from.
    #[error("{0}")]
    Position(String),
    /// TLS could not be set up as `database.sslmode` asks; the message says why and what to change.
    #[error("TLS with {what}: {message}")]
    Tls { what: String, message: String },
    /// Authentication failed or is not supported.
    #[error("authentication of {user} failed: {message}")]
    Auth { user: String, message: String },
}

impl PgError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        PgError::Io {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn sql(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> PgError {
        let context = context.into();
        move |source| PgError::Sql { context, source }
    }

    /// What the runtime does with this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            PgError::Io { .. } => ErrorKind::Transient,
            PgError::Sql { source, .. } => match source.code() {
                // Permission, missing object, bad config: retrying will not help.
                Some(code)
                    if code.code().starts_with("42")
                        || code.code().starts_with("28")
                        || code.code().starts_with("3D") =>
                {
                    ErrorKind::Definite
                }
                _ => ErrorKind::Transient,
            },
            PgError::Server { code, .. } => {
                // 55006 object in use (slot active elsewhere), 53xxx resources, 57P admin
                // shutdown, 08 connection: worth retrying.
                if code == "55006"
                    || code.starts_with("53")
                    || code.starts_with("57")
                    || code.starts_with("08")
                    || code.starts_with("40")
                {
                    ErrorKind::Transient
                } else {
                    ErrorKind::Definite
                }
            }
            PgError::Protocol(_)
            | PgError::Setup(_)
            | PgError::SlotLost(_)
            | PgError::Position(_) => ErrorKind::Definite,
            PgError::Auth { .. } | PgError::Tls { .. } => ErrorKind::Definite,
        }
    }
}

impl From<PgError> for ConnectorError {
    fn from(err: PgError) -> Self {
        let kind = err.kind();
        match err {
            // Self-explanatory messages stay as they are.
            PgError::Setup(m)
            | PgError::SlotLost(m)
            | PgError::Protocol(m)
            | PgError::Position(m) => ConnectorError::new(kind, m),
            tls @ PgError::Tls { .. } => ConnectorError::new(kind, tls.to_string()),
            PgError::Server {
                code,
                message,
                context,
            } if context == "preflight" => {
                ConnectorError::new(kind, format!("{message} (SQLSTATE {code})"))
            }
            PgError::Sql { context, source }
                if source.code()
                    == Some(&tokio_postgres::error::SqlState::INVALID_CATALOG_NAME) =>
            {
                let detail = source
                    .as_db_error()
                    .map_or_else(|| source.to_string(), |e| e.message().to_owned());
                ConnectorError::new(
                    kind,
                    format!(
                        "{context}: {detail}: database.dbname names a database that does not exist on this server; create it or fix database.dbname"
                    ),
                )
            }
            other => ConnectorError::new(kind, "postgres").with_source(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let busy = PgError::Server {
            code: "55006".into(),
            message: "replication slot \"s\" is active for PID 1".into(),
            context: "START_REPLICATION".into(),
        };
        assert_eq!(busy.kind(), ErrorKind::Transient);
        let missing = PgError::Server {
            code: "42704".into(),
            message: "replication slot \"s\" does not exist".into(),
            context: "START_REPLICATION".into(),
        };
        assert_eq!(missing.kind(), ErrorKind::Definite);
        let io = PgError::io("x", std::io::Error::other("reset"));
        assert_eq!(ConnectorError::from(io).kind, ErrorKind::Transient);
    }
}
