//! Errors of the JDBC source, classified once into the runtime's kinds.

use tributary_runtime::error::{ConnectorError, ErrorKind};

/// What went wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum JdbcError {
    /// A table, column or setting that does not fit: the task fails with this text.
    #[error("{0}")]
    Setup(String),
    /// Connecting failed (network, server restarting): retried with backoff.
    #[error("cannot connect to {target}")]
    Connect {
        target: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A query failed: retried when the server or network is at fault.
    #[error("{context}")]
    Query {
        context: String,
        transient: bool,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A value could not be read as its column type.
    #[error("{0}")]
    Value(String),
}

impl JdbcError {
    pub fn postgres(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> JdbcError {
        let context = context.into();
        move |e| {
            // Server errors with a SQLSTATE are definite unless the class says otherwise:
            // 08 connection exception, 40 transaction rollback, 53 insufficient resources,
            // 57 operator intervention (shutdown), 58 system error.
            let transient = match e.code() {
                None => true,
                Some(code) => matches!(&code.code()[..2], "08" | "40" | "53" | "57" | "58"),
            };
            JdbcError::Query {
                context,
                transient,
                source: Box::new(e),
            }
        }
    }

    pub fn mysql(context: impl Into<String>) -> impl FnOnce(mysql_async::Error) -> JdbcError {
        let context = context.into();
        move |e| {
            let transient = match &e {
                mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => true,
                // 1205 lock wait timeout, 1213 deadlock, 2013 lost connection, 1040 too many
                // connections, 1053 shutdown in progress.
                mysql_async::Error::Server(s) => matches!(s.code, 1205 | 1213 | 2013 | 1040 | 1053),
                _ => false,
            };
            JdbcError::Query {
                context,
                transient,
                source: Box::new(e),
            }
        }
    }
}

impl From<JdbcError> for ConnectorError {
    fn from(e: JdbcError) -> Self {
        let kind = match &e {
            JdbcError::Setup(_) | JdbcError::Value(_) => ErrorKind::Definite,
            JdbcError::Connect { .. } => ErrorKind::Transient,
            JdbcError::Query { transient, .. } => {
                if *transient {
                    ErrorKind::Transient
                } else {
                    ErrorKind::Definite
                }
            }
        };
        let message = e.to_string();
        let source = match e {
            JdbcError::Connect { source, .. } | JdbcError::Query { source, .. } => Some(source),
            _ => None,
        };
        ConnectorError {
            kind,
            message,
            source,
        }
    }
}
