//! Errors carry a kind, and one policy decides what the runtime does with each kind.

use std::time::Duration;

/// What kind of failure this is; [`ErrorKind::policy`] maps it to the runtime's reaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The configuration is wrong: rejected before anything starts (HTTP 400 at submit).
    Config,
    /// Worth retrying: network blips, a restarting server, a deadlock, a full queue.
    Transient,
    /// Retrying will not help: the task goes to FAILED with the reason in its status.
    Definite,
}

/// What the runtime does with an error of a given kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaction {
    RejectConfig,
    RetryWithBackoff,
    Fail,
}

impl ErrorKind {
    /// The one place that maps error kinds to reactions.
    pub fn policy(self) -> Reaction {
        match self {
            ErrorKind::Config => Reaction::RejectConfig,
            ErrorKind::Transient => Reaction::RetryWithBackoff,
            ErrorKind::Definite => Reaction::Fail,
        }
    }
}

/// An error raised by a connector, a converter or the storage layer.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ConnectorError {
    pub kind: ErrorKind,
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ConnectorError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ConnectorError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Transient, message)
    }

    pub fn definite(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Definite, message)
    }

    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The message followed by its chain of causes, for `/status` traces and logs.
    pub fn trace(&self) -> String {
        let mut out = self.message.clone();
        let mut cause: Option<&(dyn std::error::Error + 'static)> = self
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static));
        while let Some(err) = cause {
            out.push_str(": ");
            out.push_str(&err.to_string());
            cause = err.source();
        }
        out
    }
}

impl From<crate::log::LogError> for ConnectorError {
    fn from(err: crate::log::LogError) -> Self {
        let kind = err.kind();
        ConnectorError::new(kind, "embedded log").with_source(err)
    }
}

impl From<crate::offsets::OffsetStoreError> for ConnectorError {
    fn from(err: crate::offsets::OffsetStoreError) -> Self {
        let kind = err.kind();
        ConnectorError::new(kind, "offset store").with_source(err)
    }
}

/// Capped exponential backoff for task restarts and transient retries.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            attempt: 0,
        }
    }

    /// The delay before the next attempt, with ±20 % jitter so restarts do not synchronise.
    pub fn next_delay(&mut self) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.min(20));
        self.attempt = self.attempt.saturating_add(1);
        let base = self.initial.saturating_mul(factor).min(self.max);
        let jitter = rand::random_range(0.8..1.2);
        base.mul_f64(jitter).min(self.max)
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(80) && first <= Duration::from_millis(120));
        for _ in 0..10 {
            assert!(b.next_delay() <= Duration::from_secs(2));
        }
        assert!(b.next_delay() >= Duration::from_millis(1600));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(120));
    }

    #[test]
    fn trace_includes_causes() {
        let io = std::io::Error::other("disk on fire");
        let err = ConnectorError::transient("append failed").with_source(io);
        assert_eq!(err.trace(), "append failed: disk on fire");
        assert_eq!(err.kind.policy(), Reaction::RetryWithBackoff);
    }
}
