//! The sink's config: Debezium JDBC sink and Confluent JDBC sink names, parsed and checked
//! without I/O.

use tributary_runtime::config::{ConfigDef, ConfigErrors, FieldType, Parsed, Secret};

/// Debezium's default `unavailable.value.placeholder` (unchanged TOAST columns).
pub const DEFAULT_PLACEHOLDER: &str = "__debezium_unavailable_value";

/// Which SQL dialect the target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialectKind {
    Postgres,
    /// MySQL and MariaDB.
    MySql,
}

/// Where and how to connect, from `connection.url` plus the credential fields.
#[derive(Debug, Clone)]
pub struct Connection {
    pub dialect: DialectKind,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub password: Option<Secret>,
    /// Postgres `currentSchema` URL parameter: where unqualified tables live.
    pub schema: Option<String>,
}

/// `insert.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertMode {
    Insert,
    Upsert,
    Update,
}

/// `primary.key.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrimaryKeyMode {
    None,
    /// `__connect_topic`, `__connect_partition`, `__connect_offset`.
    Kafka,
    RecordKey,
    RecordValue,
}

/// The validated sink config.
#[derive(Debug, Clone)]
pub struct JdbcSinkConfig {
    pub connector: String,
    pub connection: Connection,
    pub insert_mode: InsertMode,
    pub pk_mode: PrimaryKeyMode,
    pub pk_fields: Vec<String>,
    pub delete_enabled: bool,
    pub truncate_enabled: bool,
    pub table_name_format: String,
    /// Create missing tables.
    pub auto_create: bool,
    /// Add missing columns, widen types and relax NOT NULL.
    pub evolve: bool,
    pub batch_size: usize,
    pub quote_identifiers: bool,
    pub exactly_once: bool,
    pub placeholder: String,
}

const PK_MODES: &[&str] = &["none", "kafka", "record_key", "record_value"];

/// The connector's own fields.
pub fn config_def() -> ConfigDef {
    let on_off = FieldType::Bool;
    ConfigDef::new()
        .required("connection.url", FieldType::String, "Target database: jdbc:postgresql://host:port/db, jdbc:mysql://..., jdbc:mariadb://..., postgres://user:pass@host/db or mysql://user:pass@host/db.")
        .maybe("connection.username", FieldType::String, "Database user (overrides a user in connection.url).")
        .maybe("connection.user", FieldType::String, "Database user (Confluent's name for connection.username).")
        .maybe("connection.password", FieldType::Password, "Database password (overrides a password in connection.url).")
        .optional("insert.mode", FieldType::Enum { values: &["insert", "upsert", "update"] }, "insert", "insert: plain INSERT; upsert: insert or update by primary key; update: UPDATE by primary key only.")
        .maybe("primary.key.mode", FieldType::Enum { values: PK_MODES }, "Where the primary key comes from: none (the default), kafka (__connect_topic, __connect_partition, __connect_offset), record_key (the key struct), record_value (primary.key.fields of the value).")
        .maybe("pk.mode", FieldType::Enum { values: PK_MODES }, "Confluent's name for primary.key.mode.")
        .maybe("primary.key.fields", FieldType::List, "Primary key columns: a subset of the key fields (record_key) or the value fields that form the key (record_value).")
        .maybe("pk.fields", FieldType::List, "Confluent's name for primary.key.fields.")
        .maybe("quote.sql.identifiers", FieldType::Enum { values: &["always", "never"] }, "Confluent's quoting switch: always is quote.identifiers=true.")
        .optional("delete.enabled", on_off, "false", "Delete rows for delete events (op d) and tombstones. Needs primary.key.mode=record_key.")
        .optional("truncate.enabled", on_off, "false", "Truncate the table for truncate events (op t).")
        .optional("table.name.format", FieldType::String, "${topic}", "Target table name: ${topic} (dots replaced by _), ${source.db}, ${source.schema}, ${source.table}. A dot in the result qualifies the table with a schema (Postgres) or database (MySQL).")
        .maybe("collection.name.format", FieldType::String, "Debezium 3 name of table.name.format.")
        .optional("schema.evolution", FieldType::Enum { values: &["none", "basic"] }, "none", "basic: create missing tables, add missing columns, widen column types and drop NOT NULL as the records require.")
        .optional("auto.create", on_off, "false", "Create missing tables (Confluent).")
        .optional("auto.evolve", on_off, "false", "Add missing columns, widen types, drop NOT NULL (Confluent).")
        .optional("batch.size", FieldType::Int { min: 1, max: 1_000_000 }, "3000", "Most records per write (one transaction each); what one poll hands over is written before the next poll.")
        .optional("quote.identifiers", on_off, "false", "Keep identifiers exactly as the records spell them. false: Postgres folds them to lower case as an unquoted name would be.")
        .optional("use.reduction.buffer", on_off, "false", "Accepted for compatibility: changes to one key within a batch are always collapsed to the last one when there is a primary key.")
        .optional("exactly.once", on_off, "false", "Store consumed offsets in the table __tributary_sink_offsets of the target, in the same transaction as the rows, and resume from there.")
        .optional("unavailable.value.placeholder", FieldType::String, DEFAULT_PLACEHOLDER, "Values equal to this (unchanged TOAST columns) are left out of the UPDATE.")
        .ignore("dialect.name", "the dialect follows connection.url")
        .ignore("connection.pool.", "the sink keeps one connection per task")
        .ignore("connection.provider", "the sink keeps one connection per task")
        .ignore("hibernate.", "the sink does not use Hibernate")
        .ignore("max.retries", "transient failures restart the task with backoff")
        .ignore("retry.backoff.ms", "transient failures restart the task with backoff")
        .ignore("database.time_zone", "timestamps are written in UTC")
        .ignore("db.timezone", "timestamps are written in UTC")
        .ignore("connection.attempts", "transient failures restart the task with backoff")
        .ignore("connection.backoff.ms", "transient failures restart the task with backoff")
}

impl JdbcSinkConfig {
    /// Checks a parsed config; every error names its field.
    pub fn from_parsed(name: &str, config: &Parsed) -> Result<Self, ConfigErrors> {
        let mut errors = ConfigErrors::default();
        let mut connection = match parse_url(&config.string("connection.url")) {
            Ok(c) => Some(c),
            Err(e) => {
                errors.push("connection.url", e);
                None
            }
        };
        let user = config
            .str("connection.username")
            .or_else(|| config.str("connection.user"));
        if let Some(c) = connection.as_mut() {
            if let Some(user) = user {
                c.user = user.to_owned();
            }
            if let Some(password) = config.secret("connection.password") {
                c.password = Some(password);
            }
            if c.user.is_empty() {
                errors.push(
                    "connection.username",
                    "no user: set connection.username or put user= in connection.url",
                );
            }
        }
        let insert_mode = match config.str("insert.mode") {
            Some("upsert") => InsertMode::Upsert,
            Some("update") => InsertMode::Update,
            _ => InsertMode::Insert,
        };
        let pk_mode = match config.str("primary.key.mode").or(config.str("pk.mode")) {
            Some("kafka") => PrimaryKeyMode::Kafka,
            Some("record_key") => PrimaryKeyMode::RecordKey,
            Some("record_value") => PrimaryKeyMode::RecordValue,
            _ => PrimaryKeyMode::None,
        };
        let pk_fields = if config.is_set("primary.key.fields") {
            config.list("primary.key.fields")
        } else {
            config.list("pk.fields")
        };
        let delete_enabled = config.bool("delete.enabled");
        if pk_mode == PrimaryKeyMode::RecordValue && pk_fields.is_empty() {
            errors.push(
                "primary.key.fields",
                "required with primary.key.mode=record_value: name the value fields that form the key",
            );
        }
        if pk_mode == PrimaryKeyMode::Kafka && !pk_fields.is_empty() && pk_fields.len() != 3 {
            errors.push(
                "primary.key.fields",
                "with primary.key.mode=kafka give three names (topic, partition, offset) or none",
            );
        }
        if delete_enabled && pk_mode != PrimaryKeyMode::RecordKey {
            errors.push(
                "delete.enabled",
                "deletes need the key: set primary.key.mode=record_key",
            );
        }
        if insert_mode != InsertMode::Insert && pk_mode == PrimaryKeyMode::None {
            errors.push(
                "insert.mode",
                format!(
                    "{} needs a primary key: set primary.key.mode (record_key for Debezium topics)",
                    config.string("insert.mode")
                ),
            );
        }
        let table_name_format = config
            .str("collection.name.format")
            .map_or_else(|| config.string("table.name.format"), str::to_owned);
        if table_name_format.trim().is_empty() {
            errors.push("table.name.format", "must not be empty");
        }
        for var in placeholders(&table_name_format) {
            if !["topic", "source.db", "source.schema", "source.table"].contains(&var.as_str()) {
                errors.push(
                    "table.name.format",
                    format!("unknown variable ${{{var}}}; use ${{topic}}, ${{source.db}}, ${{source.schema}} or ${{source.table}}"),
                );
            }
        }
        let basic = config.str("schema.evolution") == Some("basic");
        let placeholder = config.string("unavailable.value.placeholder");
        let Some(connection) = connection else {
            return Err(errors);
        };
        errors.into_result(JdbcSinkConfig {
            connector: name.to_owned(),
            connection,
            insert_mode,
            pk_mode,
            pk_fields,
            delete_enabled,
            truncate_enabled: config.bool("truncate.enabled"),
            table_name_format,
            auto_create: basic || config.bool("auto.create"),
            evolve: basic || config.bool("auto.evolve"),
            batch_size: config.int("batch.size").map_or(3000, |n| n as usize),
            quote_identifiers: config.bool("quote.identifiers")
                || config.str("quote.sql.identifiers") == Some("always"),
            exactly_once: config.bool("exactly.once"),
            placeholder,
        })
    }
}

/// The `${...}` variables of a format.
fn placeholders(format: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = format;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                out.push(after[..end].to_owned());
                rest = &after[end + 1..];
            }
            None => {
                out.push(after.to_owned());
                break;
            }
        }
    }
    out
}

/// Parses `jdbc:postgresql://`, `jdbc:mysql://`, `jdbc:mariadb://`, `postgres[ql]://`,
/// `mysql://` and `mariadb://` URLs.
pub fn parse_url(url: &str) -> Result<Connection, String> {
    let url = url.trim();
    let bare = url.strip_prefix("jdbc:").unwrap_or(url);
    let Some((scheme, rest)) = bare.split_once("://") else {
        return Err(format!(
            "expected jdbc:postgresql://host:port/database or mysql://user@host/database, got {:?}",
            redact_url(url)
        ));
    };
    let (dialect, default_port) = match scheme.to_ascii_lowercase().as_str() {
        "postgresql" | "postgres" => (DialectKind::Postgres, 5432),
        "mysql" | "mariadb" => (DialectKind::MySql, 3306),
        other => {
            return Err(format!(
                "unsupported database {other:?}: the JDBC sink writes to postgresql, mysql and mariadb"
            ));
        }
    };
    let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = main.split_once('/').unwrap_or((main, ""));
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    // A JDBC URL may list several hosts; the first one is used.
    let hostport = hostport.split(',').next().unwrap_or_default();
    let (host, port) = split_host_port(hostport, default_port)?;
    if host.is_empty() {
        return Err("no host in connection.url".into());
    }
    let database = percent_decode(path.trim_end_matches('/'));
    if database.is_empty() {
        return Err("no database in connection.url: add /<database> after the host".into());
    }
    let mut user = String::new();
    let mut password = None;
    if let Some(info) = userinfo {
        let (u, p) = info.split_once(':').unwrap_or((info, ""));
        user = percent_decode(u);
        if !p.is_empty() {
            password = Some(Secret::new(percent_decode(p)));
        }
    }
    let mut schema = None;
    for pair in query.split(['&', ';']).filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "user" => user = percent_decode(v),
            "password" => password = Some(Secret::new(percent_decode(v))),
            "currentSchema" | "search_path" => schema = Some(percent_decode(v)),
            _ => {}
        }
    }
    Ok(Connection {
        dialect,
        host,
        port,
        database,
        user,
        password,
        schema,
    })
}

fn split_host_port(hostport: &str, default_port: u16) -> Result<(String, u16), String> {
    if let Some(v6) = hostport.strip_prefix('[') {
        let (host, rest) = v6
            .split_once(']')
            .ok_or("unterminated [ in the host of connection.url")?;
        let port = match rest.strip_prefix(':') {
            Some(p) => parse_port(p)?,
            None => default_port,
        };
        return Ok((host.to_owned(), port));
    }
    match hostport.rsplit_once(':') {
        Some((host, port)) => Ok((host.to_owned(), parse_port(port)?)),
        None => Ok((hostport.to_owned(), default_port)),
    }
}

fn parse_port(port: &str) -> Result<u16, String> {
    port.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("port must be 1..65535, got {port:?}"))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// The URL with any password replaced, for error messages.
fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(at) = out.find('@')
        && let Some(scheme_end) = out.find("://")
        && let Some(colon) = out[scheme_end + 3..at].find(':')
    {
        out.replace_range(scheme_end + 3 + colon + 1..at, "***");
    }
    if let Some(i) = out.find("password=") {
        let end = out[i..].find(['&', ';']).map_or(out.len(), |e| i + e);
        out.replace_range(i + 9..end, "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_runtime::config::RawConfig;

    fn parse(pairs: &[(&str, &str)]) -> Result<JdbcSinkConfig, ConfigErrors> {
        let raw: RawConfig = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let parsed = config_def().parse(&raw)?;
        JdbcSinkConfig::from_parsed("t", &parsed)
    }

    #[test]
    fn jdbc_and_plain_urls() {
        let c = parse_url(
            "jdbc:postgresql://db.local:6543/shop?user=u&password=p%40ss&currentSchema=s1",
        )
        .expect("valid");
        assert_eq!(c.dialect, DialectKind::Postgres);
        assert_eq!(
            (c.host.as_str(), c.port, c.database.as_str()),
            ("db.local", 6543, "shop")
        );
        assert_eq!(c.user, "u");
        assert_eq!(c.password.as_ref().map(Secret::expose), Some("p@ss"));
        assert_eq!(c.schema.as_deref(), Some("s1"));
        let m = parse_url("mysql://root:pw@127.0.0.1/inv").expect("valid");
        assert_eq!(
            (m.dialect, m.port, m.user.as_str()),
            (DialectKind::MySql, 3306, "root")
        );
        let m = parse_url("jdbc:mariadb://h:3307/inv").expect("valid");
        assert_eq!(
            (m.dialect, m.port, m.user.as_str()),
            (DialectKind::MySql, 3307, "")
        );
        assert!(parse_url("jdbc:oracle:thin:@h:1521/x").is_err());
        assert!(parse_url("postgres://h:5432").is_err());
        assert!(parse_url("postgres://h:99999/d").is_err());
    }

    #[test]
    fn redacts_passwords_in_messages() {
        assert_eq!(redact_url("x://u:secret@h/d"), "x://u:***@h/d");
        assert_eq!(
            redact_url("x://h/d?password=s&a=b"),
            "x://h/d?password=***&a=b"
        );
    }

    #[test]
    fn credentials_fields_override_the_url() {
        let c = parse(&[
            ("connection.url", "jdbc:postgresql://h/d?user=a"),
            ("connection.username", "b"),
            ("connection.password", "pw"),
        ])
        .expect("valid");
        assert_eq!(c.connection.user, "b");
        assert_eq!(format!("{:?}", c.connection.password), "Some([redacted])");
        let c = parse(&[
            ("connection.url", "mysql://h/d"),
            ("connection.user", "c"),
            ("pk.mode", "record_value"),
            ("pk.fields", "a,b"),
        ])
        .expect("valid");
        assert_eq!(c.connection.user, "c");
        assert_eq!(c.pk_mode, PrimaryKeyMode::RecordValue);
        assert_eq!(c.pk_fields, ["a", "b"]);
    }

    #[test]
    fn errors_name_the_field() {
        let err = parse(&[
            ("connection.url", "jdbc:postgresql://h/d"),
            ("insert.mode", "upsert"),
            ("delete.enabled", "true"),
            ("table.name.format", "${topc}"),
        ])
        .expect_err("invalid");
        let text = err.to_string();
        for field in [
            "connection.username",
            "insert.mode",
            "delete.enabled",
            "table.name.format",
        ] {
            assert!(text.contains(field), "{field} missing from {text}");
        }
        let err = parse(&[("connection.url", "oracle://h/d")]).expect_err("invalid");
        assert!(err.to_string().starts_with("connection.url:"), "{err}");
        let err = parse(&[
            ("connection.url", "mysql://u@h/d"),
            ("primary.key.mode", "record_value"),
        ])
        .expect_err("invalid");
        assert!(err.to_string().contains("primary.key.fields"), "{err}");
    }

    #[test]
    fn schema_evolution_basic_turns_on_create_and_evolve() {
        let c = parse(&[
            ("connection.url", "mysql://u@h/d"),
            ("schema.evolution", "basic"),
            ("primary.key.mode", "record_key"),
            ("insert.mode", "upsert"),
        ])
        .expect("valid");
        assert!(c.auto_create && c.evolve);
        assert_eq!(c.batch_size, 3000);
        assert_eq!(c.table_name_format, "${topic}");
    }
}
