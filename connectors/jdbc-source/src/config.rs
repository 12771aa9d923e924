//! Kafka Connect `JdbcSourceConnector` settings: the field table and pure validation.
//!
//! Names, defaults and meanings are Confluent's, so an existing connector config works
//! unchanged. Validation does no I/O; [`crate::JdbcSource::check`] verifies tables and
//! columns against the database.

use std::time::Duration;

use tributary_runtime::config::{ConfigDef, ConfigErrors, FieldType, Parsed, Secret};

use crate::zone::DbTimeZone;

/// Which database the URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialectKind {
    Postgres,
    /// MySQL and MariaDB (`jdbc:mysql://`, `jdbc:mariadb://`).
    MySql,
}

/// A parsed `connection.url`.
#[derive(Debug, Clone)]
pub struct ConnectionUrl {
    pub dialect: DialectKind,
    pub host: String,
    pub port: u16,
    pub database: Option<String>,
    pub user: Option<String>,
    pub password: Option<Secret>,
}

/// `mode`: how each poll finds new rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The whole table on every poll.
    Bulk,
    /// Rows whose incrementing column is above the last one seen.
    Incrementing,
    /// Rows whose timestamp is after the last one seen.
    Timestamp,
    /// Rows after the last `(timestamp, incrementing)` pair seen.
    TimestampIncrementing,
}

impl Mode {
    pub fn uses_incrementing(self) -> bool {
        matches!(self, Mode::Incrementing | Mode::TimestampIncrementing)
    }

    pub fn uses_timestamp(self) -> bool {
        matches!(self, Mode::Timestamp | Mode::TimestampIncrementing)
    }
}

/// `numeric.mapping`: how `NUMERIC`/`DECIMAL` columns are typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumericMapping {
    /// Always Connect `Decimal`.
    None,
    /// Integers for scale 0 and precision up to 18, else `Decimal`.
    PrecisionOnly,
    /// `PrecisionOnly`, plus `FLOAT64` for scale > 0 and precision up to 18.
    BestFit,
    /// Integers for scale 0 and precision up to 18, `FLOAT64` for any scale > 0.
    BestFitEagerDouble,
}

/// The validated settings of one connector.
#[derive(Debug, Clone)]
pub struct JdbcSourceConfig {
    pub name: String,
    pub url: ConnectionUrl,
    /// Table names (`orders`, `public.orders` or `mydb.public.orders`) to read; empty = all.
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub mode: Mode,
    /// `None`: detect the auto-increment column.
    pub incrementing_column: Option<String>,
    /// Coalesced in order: the first non-null one is the row's timestamp.
    pub timestamp_columns: Vec<String>,
    pub timestamp_delay: Duration,
    /// `timestamp.initial`: epoch ms to start at without an offset (`-1`: now).
    pub timestamp_initial: Option<i64>,
    pub query: Option<String>,
    pub query_suffix: String,
    pub topic_prefix: String,
    pub poll_interval: Duration,
    pub batch_max_rows: usize,
    pub table_poll_interval: Duration,
    pub validate_non_null: bool,
    pub numeric_mapping: NumericMapping,
    /// `db.timezone`: the zone of timestamp columns without one.
    pub timezone: DbTimeZone,
    pub quote_identifiers: bool,
    /// `table.types`: `TABLE`, `VIEW`.
    pub table_types: Vec<String>,
}

/// The connector's own fields, with Confluent's names and defaults.
pub fn config_def() -> ConfigDef {
    let ms = FieldType::Int {
        min: 0,
        max: i64::from(i32::MAX),
    };
    ConfigDef::new()
        .required("connection.url", FieldType::String, "JDBC URL: jdbc:postgresql://host:port/db, jdbc:mysql://host:port/db or jdbc:mariadb://host:port/db; user and password may be URL parameters.")
        .maybe("connection.user", FieldType::String, "Database user (overrides a user in the URL).")
        .maybe("connection.password", FieldType::Password, "Database password (overrides a password in the URL).")
        .optional("connection.attempts", FieldType::Int { min: 1, max: 1000 }, "3", "Connection attempts before a poll fails (the task then retries with backoff).")
        .optional("connection.backoff.ms", ms, "10000", "Wait between connection attempts.")
        .maybe("table.whitelist", FieldType::List, "Tables to read (deprecated name of table.include.list).")
        .maybe("table.blacklist", FieldType::List, "Tables to skip (deprecated name of table.exclude.list).")
        .maybe("table.include.list", FieldType::List, "Tables to read; all tables when unset.")
        .maybe("table.exclude.list", FieldType::List, "Tables to skip.")
        .optional("table.types", FieldType::List, "TABLE", "Table types to read: TABLE, VIEW.")
        .maybe("catalog.pattern", FieldType::String, "Only tables of this catalog (database).")
        .maybe("schema.pattern", FieldType::String, "Only tables of this schema (Postgres).")
        .required("mode", FieldType::Enum { values: &["bulk", "incrementing", "timestamp", "timestamp+incrementing"] }, "How new rows are found: bulk, incrementing, timestamp or timestamp+incrementing.")
        .optional("incrementing.column.name", FieldType::String, "", "Strictly increasing column; empty detects the auto-increment column.")
        .optional("timestamp.column.name", FieldType::List, "", "Timestamp columns, coalesced in order (the first non-null one counts).")
        .optional("timestamp.delay.interval.ms", ms, "0", "Rows are read only once their timestamp is this much older than the database clock, so transactions still in flight are not skipped.")
        .maybe("timestamp.initial", FieldType::Int { min: -1, max: i64::MAX }, "Epoch ms to start timestamp modes at when no offset exists; -1 is now.")
        .optional("query", FieldType::String, "", "A custom query instead of tables; its rows go to the topic named by topic.prefix.")
        .optional("query.suffix", FieldType::String, "", "Text appended to every generated query.")
        .required("topic.prefix", FieldType::String, "Topic of a table: <topic.prefix><table>; of a query: <topic.prefix>.")
        .optional("poll.interval.ms", FieldType::Int { min: 1, max: i64::from(i32::MAX) }, "5000", "How often each table is queried for new rows.")
        .optional("batch.max.rows", FieldType::Int { min: 1, max: 1_000_000 }, "100", "Most rows read per query.")
        .optional("table.poll.interval.ms", FieldType::Int { min: 1, max: i64::from(i32::MAX) }, "60000", "How often the table list is refreshed (new tables are picked up).")
        .optional("validate.non.null", FieldType::Bool, "true", "Refuse incrementing and timestamp columns that are nullable.")
        .optional("numeric.mapping", FieldType::Enum { values: &["none", "precision_only", "best_fit", "best_fit_eager_double"] }, "none", "How NUMERIC/DECIMAL columns are typed.")
        .optional("numeric.precision.mapping", FieldType::Bool, "false", "Deprecated: true is numeric.mapping=precision_only.")
        .optional("db.timezone", FieldType::String, "UTC", "Time zone of timestamp columns without one: UTC, a fixed offset such as +02:00, or a zone name such as Europe/Berlin.")
        .optional("quote.sql.identifiers", FieldType::Enum { values: &["always", "never"] }, "always", "Quote table and column names in generated SQL.")
        .ignore("dialect.name", "the dialect follows the connection.url")
        .ignore("transaction.isolation.mode", "each query runs in its own autocommit statement")
        .ignore("table.monitoring.startup.polling.limit.ms", "tables are listed before the first poll")
        .ignore("trim.sensitive.log", "row values are never logged")
}

fn positive_ms(config: &Parsed, name: &str, default: u64) -> Duration {
    Duration::from_millis(config.int(name).map_or(default, |n| n.max(0) as u64))
}

/// Builds the typed config; collects every error.
pub fn validate(name: &str, config: &Parsed) -> Result<JdbcSourceConfig, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let url = match parse_url(&config.string("connection.url")) {
        Ok(mut url) => {
            if let Some(user) = config.str("connection.user").filter(|u| !u.is_empty()) {
                url.user = Some(user.to_owned());
            }
            if let Some(password) = config.secret("connection.password") {
                url.password = Some(password);
            }
            Some(url)
        }
        Err(e) => {
            errors.push("connection.url", e);
            None
        }
    };
    let include = match (
        config.is_set("table.whitelist"),
        config.is_set("table.include.list"),
    ) {
        (true, true) => {
            errors.push(
                "table.whitelist",
                "set table.include.list or its deprecated name table.whitelist, not both",
            );
            Vec::new()
        }
        (true, false) => config.list("table.whitelist"),
        _ => config.list("table.include.list"),
    };
    let exclude = match (
        config.is_set("table.blacklist"),
        config.is_set("table.exclude.list"),
    ) {
        (true, true) => {
            errors.push(
                "table.blacklist",
                "set table.exclude.list or its deprecated name table.blacklist, not both",
            );
            Vec::new()
        }
        (true, false) => config.list("table.blacklist"),
        _ => config.list("table.exclude.list"),
    };
    if !include.is_empty() && !exclude.is_empty() {
        errors.push("table.exclude.list", "cannot be combined with an include list (table.include.list / table.whitelist); use one of them");
    }
    let mode = match config.str("mode").unwrap_or_default() {
        "bulk" => Mode::Bulk,
        "incrementing" => Mode::Incrementing,
        "timestamp" => Mode::Timestamp,
        _ => Mode::TimestampIncrementing,
    };
    let incrementing_column = Some(config.string("incrementing.column.name"))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let timestamp_columns = config.list("timestamp.column.name");
    if mode.uses_timestamp() && timestamp_columns.is_empty() {
        errors.push(
            "timestamp.column.name",
            format!("is required with mode={}", mode_name(mode)),
        );
    }
    let query = Some(config.string("query")).filter(|q| !q.trim().is_empty());
    if query.is_some() && (!include.is_empty() || !exclude.is_empty()) {
        errors.push("query", "cannot be combined with table include/exclude lists: a custom query replaces the table list");
    }
    if query.is_some() && mode == Mode::Incrementing && incrementing_column.is_none() {
        errors.push("incrementing.column.name", "is required with a custom query (there is no table to detect the auto-increment column of)");
    }
    let topic_prefix = config.string("topic.prefix");
    if query.is_some()
        && let Err(e) = tributary_runtime::log::validate_topic_name(&topic_prefix)
    {
        errors.push("topic.prefix", format!("is the topic of the query: {e}"));
    }
    let numeric_mapping = match config.str("numeric.mapping").unwrap_or("none") {
        "precision_only" => NumericMapping::PrecisionOnly,
        "best_fit" => NumericMapping::BestFit,
        "best_fit_eager_double" => NumericMapping::BestFitEagerDouble,
        _ if config.bool("numeric.precision.mapping") => NumericMapping::PrecisionOnly,
        _ => NumericMapping::None,
    };
    let timezone = match DbTimeZone::parse(&config.string("db.timezone")) {
        Ok(zone) => zone,
        Err(e) => {
            errors.push("db.timezone", e);
            DbTimeZone::Fixed(0)
        }
    };
    if let Some(initial) = config.int("timestamp.initial")
        && !mode.uses_timestamp()
    {
        errors.push(
            "timestamp.initial",
            format!(
                "applies to timestamp modes only, got {initial} with mode={}",
                mode_name(mode)
            ),
        );
    }
    let table_types: Vec<String> = config
        .list("table.types")
        .iter()
        .map(|t| t.to_ascii_uppercase())
        .collect();
    for t in &table_types {
        if t != "TABLE" && t != "VIEW" {
            errors.push(
                "table.types",
                format!("must be TABLE and/or VIEW, got {t:?}"),
            );
        }
    }
    let Some(url) = url else {
        return Err(errors);
    };
    errors.into_result(JdbcSourceConfig {
        name: name.to_owned(),
        url,
        include,
        exclude,
        mode,
        incrementing_column,
        timestamp_columns,
        timestamp_delay: positive_ms(config, "timestamp.delay.interval.ms", 0),
        timestamp_initial: config.int("timestamp.initial"),
        query,
        query_suffix: config.string("query.suffix"),
        topic_prefix,
        poll_interval: positive_ms(config, "poll.interval.ms", 5000),
        batch_max_rows: config
            .int("batch.max.rows")
            .map_or(100, |n| n.max(1) as usize),
        table_poll_interval: positive_ms(config, "table.poll.interval.ms", 60_000),
        validate_non_null: config.bool("validate.non.null"),
        numeric_mapping,
        timezone,
        quote_identifiers: config.str("quote.sql.identifiers") != Some("never"),
        table_types,
    })
}

/// The Kafka Connect spelling of a mode.
pub fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Bulk => "bulk",
        Mode::Incrementing => "incrementing",
        Mode::Timestamp => "timestamp",
        Mode::TimestampIncrementing => "timestamp+incrementing",
    }
}

/// Parses `jdbc:postgresql://host[:port]/db?user=u&password=p`, the same for `jdbc:mysql:` and
/// `jdbc:mariadb:` (which also accept `user:password@host`).
pub fn parse_url(text: &str) -> Result<ConnectionUrl, String> {
    let text = text.trim();
    let (dialect, rest, default_port) = if let Some(rest) = text.strip_prefix("jdbc:postgresql://")
    {
        (DialectKind::Postgres, rest, 5432)
    } else if let Some(rest) = text
        .strip_prefix("jdbc:mysql://")
        .or_else(|| text.strip_prefix("jdbc:mariadb://"))
    {
        (DialectKind::MySql, rest, 3306)
    } else {
        return Err(format!(
            "must start with jdbc:postgresql://, jdbc:mysql:// or jdbc:mariadb://, got {:?}",
            text.split("//").next().unwrap_or(text)
        ));
    };
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = before_query.split_once('/').unwrap_or((before_query, ""));
    let (credentials, host_port) = match authority.rsplit_once('@') {
        Some((c, hp)) => (Some(c), hp),
        None => (None, authority),
    };
    if host_port.contains(',') {
        return Err("several hosts (failover) are not supported; name one host".into());
    }
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            let port = p
                .parse::<u16>()
                .map_err(|_| format!("port must be a number, got {p:?}"))?;
            (h, port)
        }
        _ => (host_port, default_port),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err("has no host; expected jdbc:<db>://host:port/database".into());
    }
    let mut url = ConnectionUrl {
        dialect,
        host: host.to_owned(),
        port,
        database: Some(decode(path)).filter(|d| !d.is_empty()),
        user: None,
        password: None,
    };
    if let Some(c) = credentials {
        let (u, p) = c.split_once(':').unwrap_or((c, ""));
        url.user = Some(decode(u)).filter(|u| !u.is_empty());
        url.password = Some(Secret::new(decode(p))).filter(|p| !p.expose().is_empty());
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "user" => url.user = Some(decode(v)),
            "password" => url.password = Some(Secret::new(decode(v))),
            _ => {}
        }
    }
    Ok(url)
}

/// Percent-decoding of URL parts (`%40` is `@`).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_of_each_dialect() {
        let u = parse_url("jdbc:postgresql://localhost:5432/mydb").expect("pg url");
        assert_eq!(
            (u.dialect, u.host.as_str(), u.port, u.database.as_deref()),
            (DialectKind::Postgres, "localhost", 5432, Some("mydb"))
        );
        assert!(u.user.is_none());
        let u =
            parse_url("jdbc:mysql://db.example:3307/shop?user=app&password=p%40ss&useSSL=false")
                .expect("mysql url");
        assert_eq!(
            (u.dialect, u.port, u.user.as_deref()),
            (DialectKind::MySql, 3307, Some("app"))
        );
        assert_eq!(u.password.as_ref().map(Secret::expose), Some("p@ss"));
        let u = parse_url("jdbc:mariadb://root:pw@127.0.0.1/shop").expect("mariadb url");
        assert_eq!((u.port, u.user.as_deref()), (3306, Some("root")));
        assert!(
            parse_url("jdbc:oracle:thin:@x:1521:db")
                .expect_err("oracle")
                .contains("must start with")
        );
        assert!(
            parse_url("jdbc:mysql://a:1,b:2/db")
                .expect_err("failover")
                .contains("several hosts")
        );
    }
}
