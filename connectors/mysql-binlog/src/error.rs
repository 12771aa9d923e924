//! Errors of the binlog connector, each classified once into the runtime's error kinds.

use tributary_runtime::error::{ConnectorError, ErrorKind};

/// What went wrong while talking to the server or decoding the binlog.
#[derive(Debug, thiserror::Error)]
pub enum MySqlError {
    /// Could not connect or the connection dropped: retried with backoff.
    #[error("connection to {target} failed")]
    Connect {
        target: String,
        #[source]
        source: mysql_async::Error,
    },
    /// The server refused the credentials: retrying cannot help.
    /// `hint` is empty or starts with "; " (e.g. the connection was not encrypted).
    #[error(
        "connection to {target} failed: access denied ({message}): check database.user and \
         database.password; the user needs REPLICATION SLAVE, REPLICATION CLIENT, SELECT, \
         RELOAD and LOCK TABLES{hint}"
    )]
    AccessDenied {
        target: String,
        message: String,
        hint: String,
    },
    /// TLS could not be established as `database.ssl.mode` asks; the message says what to
    /// change. Retrying cannot help.
    #[error("{0}")]
    Tls(String),
    /// A query failed (the statement is named, never row values).
    #[error("{what} failed")]
    Query {
        what: String,
        #[source]
        source: mysql_async::Error,
    },
    /// The server is not set up for CDC; the message says how to fix it.
    #[error("{0}")]
    Preflight(String),
    /// The stored position is no longer on the server.
    #[error(
        "binlog position {position} is no longer on the server (binlog purged: {detail}); \
         set snapshot.mode=when_needed to take a new snapshot automatically, or reset this \
         connector's offsets and restart it"
    )]
    Purged { position: String, detail: String },
    /// A binlog event failed its CRC32 checksum.
    #[error(
        "binlog event at {file}:{pos} (type {event_type}) failed its CRC32 checksum \
         (stored {stored:#010x}, computed {computed:#010x}); the binlog is corrupt or the \
         connection altered it"
    )]
    Checksum {
        file: String,
        pos: u64,
        event_type: u8,
        stored: u32,
        computed: u32,
    },
    /// An event the connector cannot decode and must not skip.
    #[error("{0}")]
    Unsupported(String),
    /// A binlog event could not be decoded.
    #[error("cannot decode {what} at {file}:{pos}")]
    Decode {
        what: String,
        file: String,
        pos: u64,
        #[source]
        source: std::io::Error,
    },
    /// A position set through the offsets API that the server cannot resume from.
    #[error("{0}")]
    Position(String),
    /// A stored offset could not be understood.
    #[error("stored offset is invalid: {0}; reset this connector's offsets")]
    BadOffset(String),
}

impl MySqlError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            MySqlError::Connect { .. } => ErrorKind::Transient,
            MySqlError::AccessDenied { .. } | MySqlError::Tls(_) => ErrorKind::Config,
            MySqlError::Query { source, .. } => match source {
                mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => ErrorKind::Transient,
                mysql_async::Error::Server(e) if matches!(e.code, 1205 | 1213 | 2013) => {
                    ErrorKind::Transient
                }
                _ => ErrorKind::Definite,
            },
            MySqlError::Preflight(_) => ErrorKind::Config,
            MySqlError::Purged { .. }
            | MySqlError::Checksum { .. }
            | MySqlError::Unsupported(_)
            | MySqlError::Decode { .. }
            | MySqlError::Position(_)
            | MySqlError::BadOffset(_) => ErrorKind::Definite,
        }
    }

    /// A failed connection attempt: access denied (1044/1045) is a config error, anything
    /// else is retried.
    pub fn connect(target: String, source: mysql_async::Error) -> Self {
        match source {
            mysql_async::Error::Server(e) if matches!(e.code, 1044 | 1045) => {
                MySqlError::AccessDenied {
                    target,
                    message: e.message,
                    hint: String::new(),
                }
            }
            source => MySqlError::Connect { target, source },
        }
    }

    pub fn query(what: impl Into<String>, source: mysql_async::Error) -> Self {
        MySqlError::Query {
            what: what.into(),
            source,
        }
    }
}

impl From<MySqlError> for ConnectorError {
    fn from(err: MySqlError) -> Self {
        let kind = err.kind();
        // The message carries the whole chain: the runtime shows it in the task status.
        let mut message = err.to_string();
        let mut cause = std::error::Error::source(&err);
        while let Some(c) = cause {
            message.push_str(": ");
            message.push_str(&c.to_string());
            cause = c.source();
        }
        ConnectorError::new(kind, message)
    }
}
