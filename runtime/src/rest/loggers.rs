//! `/admin/loggers`: read and change log levels at runtime.
//!
//! Loggers are `tracing` targets (module paths such as `tributary_runtime::worker`), plus
//! `root` for the default level. Levels use Kafka Connect's names (TRACE, DEBUG, INFO, WARN,
//! ERROR, FATAL = ERROR, OFF). The binary backs this with a `tracing_subscriber` reload
//! handle, so a change takes effect at once; [`ReloadableLevels::detached`] keeps the
//! levels without applying them (for embedding the router without owning the subscriber).

use std::collections::BTreeMap;
use std::sync::Mutex;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tracing_subscriber::EnvFilter;

use super::RestState;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery};

/// The level of one logger as Kafka Connect shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoggerLevel {
    pub level: String,
    /// When it was last changed over REST (ms since the epoch); `null` if never.
    pub last_modified: Option<i64>,
}

/// Where log levels live.
pub trait LogLevels: Send + Sync {
    /// Every configured logger, `root` included.
    fn levels(&self) -> BTreeMap<String, LoggerLevel>;
    /// Sets a logger's level; returns the loggers affected.
    fn set(&self, logger: &str, level: &str) -> Result<Vec<String>, String>;
}

type Apply = Box<dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync>;

/// Levels kept as `EnvFilter` directives and applied through a callback (a reload handle).
pub struct ReloadableLevels {
    state: Mutex<Directives>,
    apply: Option<Apply>,
}

struct Directives {
    root: String,
    targets: BTreeMap<String, LoggerLevel>,
    /// Directives we do not model (span filters, ...), kept as given.
    other: Vec<String>,
    root_modified: Option<i64>,
}

impl Directives {
    fn parse(spec: &str) -> Self {
        let mut d = Directives {
            root: "INFO".into(),
            targets: BTreeMap::new(),
            other: Vec::new(),
            root_modified: None,
        };
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                None if normalize_level(part).is_some() => {
                    d.root = normalize_level(part).unwrap_or_default()
                }
                Some((target, level))
                    if valid_logger(target).is_ok() && normalize_level(level).is_some() =>
                {
                    d.targets.insert(
                        target.to_owned(),
                        LoggerLevel {
                            level: normalize_level(level).unwrap_or_default(),
                            last_modified: None,
                        },
                    );
                }
                _ => d.other.push(part.to_owned()),
            }
        }
        d
    }

    fn render(&self) -> String {
        let mut parts = vec![self.root.to_ascii_lowercase()];
        parts.extend(
            self.targets
                .iter()
                .map(|(t, l)| format!("{t}={}", l.level.to_ascii_lowercase())),
        );
        parts.extend(self.other.iter().cloned());
        parts.join(",")
    }
}

/// Kafka Connect (log4j) level names to ours; `None` if unknown.
fn normalize_level(level: &str) -> Option<String> {
    let upper = level.trim().to_ascii_uppercase();
    match upper.as_str() {
        "TRACE" | "DEBUG" | "INFO" | "WARN" | "ERROR" | "OFF" => Some(upper),
        "FATAL" => Some("ERROR".into()),
        "WARNING" => Some("WARN".into()),
        _ => None,
    }
}

fn valid_logger(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 200 {
        return Err("logger name must have 1 to 200 characters".into());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'.' | b'-'))
    {
        return Err(format!(
            "invalid logger name {name:?}: use a module path such as tributary_runtime::worker, or root"
        ));
    }
    Ok(())
}

fn now_ms() -> i64 {
    crate::converter::now_ms()
}

impl ReloadableLevels {
    /// Levels that `apply` puts into effect; `spec` is the filter in use at start.
    pub fn new(
        spec: &str,
        apply: impl Fn(EnvFilter) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        ReloadableLevels {
            state: Mutex::new(Directives::parse(spec)),
            apply: Some(Box::new(apply)),
        }
    }

    /// Levels that are kept and shown but not applied to any subscriber.
    pub fn detached(spec: &str) -> Self {
        ReloadableLevels {
            state: Mutex::new(Directives::parse(spec)),
            apply: None,
        }
    }

    /// The current filter, as `EnvFilter` directives.
    pub fn directives(&self) -> String {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .render()
    }
}

impl LogLevels for ReloadableLevels {
    fn levels(&self) -> BTreeMap<String, LoggerLevel> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = state.targets.clone();
        out.insert(
            "root".into(),
            LoggerLevel {
                level: state.root.clone(),
                last_modified: state.root_modified,
            },
        );
        out
    }

    fn set(&self, logger: &str, level: &str) -> Result<Vec<String>, String> {
        valid_logger(logger)?;
        let level = normalize_level(level).ok_or_else(|| {
            format!("invalid log level {level:?}; use TRACE, DEBUG, INFO, WARN, ERROR or OFF")
        })?;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = Directives {
            root: state.root.clone(),
            targets: state.targets.clone(),
            other: state.other.clone(),
            root_modified: state.root_modified,
        };
        let now = Some(now_ms());
        let mut affected = vec![logger.to_owned()];
        if logger == "root" {
            next.root = level;
            next.root_modified = now;
        } else {
            // Children inherit the new level, as log4j does for loggers below the one set.
            let prefix = format!("{logger}::");
            for (name, l) in next.targets.iter_mut() {
                if name.starts_with(&prefix) {
                    l.level.clone_from(&level);
                    l.last_modified = now;
                    affected.push(name.clone());
                }
            }
            next.targets.insert(
                logger.to_owned(),
                LoggerLevel {
                    level,
                    last_modified: now,
                },
            );
        }
        let filter =
            EnvFilter::try_new(next.render()).map_err(|e| format!("invalid filter: {e}"))?;
        if let Some(apply) = &self.apply {
            apply(filter)?;
        }
        *state = next;
        affected.sort();
        Ok(affected)
    }
}

/// The level in effect for `logger`: its own, else its closest configured parent's, else root.
fn effective(levels: &BTreeMap<String, LoggerLevel>, logger: &str) -> LoggerLevel {
    let mut name = logger;
    loop {
        if let Some(l) = levels.get(name) {
            return l.clone();
        }
        match name.rfind("::") {
            Some(i) => name = &name[..i],
            None => break,
        }
    }
    levels.get("root").cloned().unwrap_or(LoggerLevel {
        level: "INFO".into(),
        last_modified: None,
    })
}

/// `GET /admin/loggers`.
pub async fn list(State(state): State<RestState>) -> Json<Value> {
    let levels = state.loggers.levels();
    let out: Map<String, Value> = levels
        .into_iter()
        .map(|(k, v)| (k, serde_json::to_value(v).unwrap_or(Value::Null)))
        .collect();
    Json(Value::Object(out))
}

/// `GET /admin/loggers/{logger}`: `{"level": ...}` (the effective level).
pub async fn get(
    State(state): State<RestState>,
    ApiPath(logger): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    valid_logger(&logger).map_err(ApiError::bad_request)?;
    let level = effective(&state.loggers.levels(), &logger);
    Ok(Json(
        json!({"level": level.level, "last_modified": level.last_modified}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetLevel {
    level: String,
}

#[derive(Deserialize)]
pub struct ScopeQuery {
    scope: Option<String>,
}

/// `PUT /admin/loggers/{logger}` with `{"level": "DEBUG"}`: the affected loggers (200), or
/// 204 with `?scope=cluster` (one worker is the whole cluster here).
pub async fn set(
    State(state): State<RestState>,
    ApiPath(logger): ApiPath<String>,
    ApiQuery(query): ApiQuery<ScopeQuery>,
    ApiJson(body): ApiJson<SetLevel>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let affected = state
        .loggers
        .set(&logger, &body.level)
        .map_err(ApiError::bad_request)?;
    tracing::info!(logger = %logger, level = %body.level, "log level changed");
    match query.scope.as_deref() {
        Some(s) if s.eq_ignore_ascii_case("cluster") => {
            Ok(axum::http::StatusCode::NO_CONTENT.into_response())
        }
        None => Ok(Json(affected).into_response()),
        Some(s) if s.eq_ignore_ascii_case("worker") => Ok(Json(affected).into_response()),
        Some(other) => Err(ApiError::bad_request(format!(
            "scope: must be worker or cluster, got {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn parses_and_renders_directives() {
        let d = Directives::parse("info,tributary_runtime::worker=debug,h2[span]=off");
        assert_eq!(d.root, "INFO");
        assert_eq!(d.targets["tributary_runtime::worker"].level, "DEBUG");
        assert_eq!(
            d.render(),
            "info,tributary_runtime::worker=debug,h2[span]=off"
        );
    }

    #[test]
    fn set_applies_a_new_filter_and_children_follow() {
        let applied = Arc::new(Mutex::new(Vec::new()));
        let sink = applied.clone();
        let levels = ReloadableLevels::new("warn,a::b::c=info", move |f| {
            sink.lock().map_err(|e| e.to_string())?.push(f.to_string());
            Ok(())
        });
        let affected = levels.set("a::b", "debug").expect("set");
        assert_eq!(affected, vec!["a::b".to_string(), "a::b::c".to_string()]);
        let shown = levels.levels();
        assert_eq!(shown["a::b::c"].level, "DEBUG");
        assert!(shown["a::b"].last_modified.is_some());
        assert_eq!(shown["root"].level, "WARN");
        let last = applied
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .expect("applied");
        assert!(last.contains("a::b=debug"), "{last}");
        assert_eq!(effective(&shown, "a::b::x").level, "DEBUG");
        assert_eq!(effective(&shown, "z").level, "WARN");
        assert!(levels.set("a b", "debug").is_err());
        assert!(levels.set("a", "verbose").is_err());
        levels.set("root", "FATAL").expect("fatal maps to error");
        assert_eq!(levels.levels()["root"].level, "ERROR");
    }

    #[test]
    fn a_real_reload_handle_changes_what_is_enabled() {
        use tracing_subscriber::layer::SubscriberExt;
        let (filter, handle) = tracing_subscriber::reload::Layer::new(EnvFilter::new("warn"));
        let subscriber = tracing_subscriber::registry().with(filter);
        let levels =
            ReloadableLevels::new("warn", move |f| handle.reload(f).map_err(|e| e.to_string()));
        tracing::subscriber::with_default(subscriber, || {
            assert!(!tracing::enabled!(target: "tributary_runtime::worker", tracing::Level::DEBUG));
            levels
                .set("tributary_runtime::worker", "DEBUG")
                .expect("set");
            tracing::callsite::rebuild_interest_cache();
            assert!(tracing::enabled!(target: "tributary_runtime::worker", tracing::Level::DEBUG));
            assert!(!tracing::enabled!(target: "other", tracing::Level::DEBUG));
        });
    }
}
