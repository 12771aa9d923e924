//! Configuration: Debezium's MySQL/MariaDB property names, parsed and validated without I/O.
//!
//! Include/exclude lists are comma-separated regular expressions matched, as Debezium
//! matches them, against the whole identifier (`db`, `db.table`, `db.table.column`) and
//! case-insensitively. Debezium's schema-history properties (`database.history.*`,
//! `schema.history.internal.*`) are accepted and ignored with a warning: table schemas
//! come from the binlog's own row metadata, so there is no history topic to lose.

use std::sync::Arc;

use regex::{Regex, RegexBuilder};
use tributary_runtime::config::{ConfigDef, ConfigErrors, FieldType, Parsed, Secret};
use tributary_runtime::converter::json::{BinaryMode, DecimalMode, TimePrecisionMode, ValueModes};
use tributary_runtime::model::Op;

use crate::tls::{KeyStore, TlsConfig, TrustStore};

/// Debezium's class for MySQL.
pub const MYSQL_CLASS: &str = "io.debezium.connector.mysql.MySqlConnector";
/// Debezium's class for MariaDB.
pub const MARIADB_CLASS: &str = "io.debezium.connector.mariadb.MariaDbConnector";

/// Which server family the user configured (decides `source.connector`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    MySql,
    MariaDb,
}

impl Flavor {
    pub fn connector_name(self) -> &'static str {
        match self {
            Flavor::MySql => "mysql",
            Flavor::MariaDb => "mariadb",
        }
    }
}

/// `snapshot.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMode {
    /// Snapshot when no offset exists, then stream.
    Initial,
    /// Snapshot, then stop (no streaming).
    InitialOnly,
    /// Record the position without reading rows, then stream.
    NoData,
    /// Like `initial`, and also when the stored position was purged from the server.
    WhenNeeded,
    /// Never snapshot; stream from the stored position or the current end of the binlog.
    Never,
}

impl SnapshotMode {
    pub fn reads_rows(self) -> bool {
        matches!(
            self,
            SnapshotMode::Initial | SnapshotMode::InitialOnly | SnapshotMode::WhenNeeded
        )
    }
}

/// `database.ssl.mode` (what each mode does: [`crate::tls`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disabled,
    Preferred,
    Required,
    VerifyCa,
    VerifyIdentity,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disabled => "disabled",
            SslMode::Preferred => "preferred",
            SslMode::Required => "required",
            SslMode::VerifyCa => "verify_ca",
            SslMode::VerifyIdentity => "verify_identity",
        }
    }
}

/// Which databases, tables and columns are captured.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    db_include: Vec<Regex>,
    db_exclude: Vec<Regex>,
    table_include: Vec<Regex>,
    table_exclude: Vec<Regex>,
    column_include: Vec<Regex>,
    column_exclude: Vec<Regex>,
}

/// Databases never captured (server internals).
const SYSTEM_DATABASES: &[&str] = &["mysql", "information_schema", "performance_schema", "sys"];

impl Filters {
    pub fn database(&self, db: &str) -> bool {
        if SYSTEM_DATABASES.iter().any(|s| s.eq_ignore_ascii_case(db)) {
            return false;
        }
        if !self.db_include.is_empty() {
            return self.db_include.iter().any(|r| r.is_match(db));
        }
        !self.db_exclude.iter().any(|r| r.is_match(db))
    }

    pub fn table(&self, db: &str, table: &str) -> bool {
        if !self.database(db) {
            return false;
        }
        let id = format!("{db}.{table}");
        if !self.table_include.is_empty() {
            return self.table_include.iter().any(|r| r.is_match(&id));
        }
        !self.table_exclude.iter().any(|r| r.is_match(&id))
    }

    pub fn column(&self, db: &str, table: &str, column: &str) -> bool {
        let id = format!("{db}.{table}.{column}");
        if !self.column_include.is_empty() {
            return self.column_include.iter().any(|r| r.is_match(&id));
        }
        !self.column_exclude.iter().any(|r| r.is_match(&id))
    }

    /// The `table.include.list` patterns, for the preflight's "tables exist" check.
    pub fn table_include_patterns(&self) -> &[Regex] {
        &self.table_include
    }
}

/// The typed, validated connector configuration.
#[derive(Debug, Clone)]
pub struct MySqlConfig {
    pub name: Arc<str>,
    pub flavor: Flavor,
    pub hostname: String,
    pub port: u16,
    pub user: String,
    pub password: Option<Secret>,
    pub server_id: u32,
    /// `topic.prefix`: topics are `<prefix>.<db>.<table>`; also the logical server name.
    pub prefix: Arc<str>,
    pub filters: Filters,
    /// `message.key.columns`: `(db.table regex, key column names)`.
    pub key_columns: Vec<(Regex, Vec<String>)>,
    pub snapshot_mode: SnapshotMode,
    pub fetch_size: u32,
    /// `snapshot.locking.mode` is not `none`: a brief global read lock aligns the position.
    pub snapshot_lock: bool,
    pub tombstones: bool,
    pub heartbeat_ms: u64,
    pub value_modes: ValueModes,
    /// `bigint.unsigned.handling.mode=precise`: BIGINT UNSIGNED as Decimal(20,0).
    pub bigint_precise: bool,
    pub include_schema_changes: bool,
    pub transaction_metadata: bool,
    pub skipped_ops: Vec<Op>,
    /// `database.ssl.*`: mode, and the PEM files read at validation.
    pub tls: TlsConfig,
    /// Why some settings were accepted but have no effect.
    pub warnings: Vec<String>,
}

impl MySqlConfig {
    /// The key columns configured for a table, if any.
    pub fn key_columns_for(&self, db: &str, table: &str) -> Option<&[String]> {
        let id = format!("{db}.{table}");
        self.key_columns
            .iter()
            .find(|(re, _)| re.is_match(&id))
            .map(|(_, cols)| cols.as_slice())
    }

    /// `host:port`, for messages.
    pub fn target(&self) -> String {
        format!("{}:{}", self.hostname, self.port)
    }
}

const INT_MAX: i64 = i32::MAX as i64;

/// The connector's own fields.
pub fn config_def() -> ConfigDef {
    ConfigDef::new()
        .required("database.hostname", FieldType::String, "Host name or IP address of the MySQL/MariaDB server.")
        .optional("database.port", FieldType::Int { min: 1, max: 65535 }, "3306", "Port of the server.")
        .required("database.user", FieldType::String, "User with REPLICATION SLAVE, REPLICATION CLIENT, SELECT (and RELOAD, LOCK TABLES for snapshots).")
        .maybe("database.password", FieldType::Password, "Password of database.user.")
        .optional("database.server.id", FieldType::Int { min: 1, max: u32::MAX as i64 }, "184054", "Replica server id this connector uses; unique among the server's replicas.")
        .maybe("topic.prefix", FieldType::String, "Logical server name: topics are <topic.prefix>.<db>.<table>. Defaults to database.server.name, then the connector name.")
        .maybe("database.server.name", FieldType::String, "Debezium 1.x name of topic.prefix.")
        .maybe("database.include.list", FieldType::List, "Regular expressions of databases to capture.")
        .maybe("database.exclude.list", FieldType::List, "Regular expressions of databases not to capture.")
        .maybe("table.include.list", FieldType::List, "Regular expressions of tables (db.table) to capture.")
        .maybe("table.exclude.list", FieldType::List, "Regular expressions of tables (db.table) not to capture.")
        .maybe("column.include.list", FieldType::List, "Regular expressions of columns (db.table.column) to capture.")
        .maybe("column.exclude.list", FieldType::List, "Regular expressions of columns (db.table.column) not to capture.")
        .maybe("message.key.columns", FieldType::String, "Key columns per table: db.table:col1,col2;db.other:col.")
        .optional("snapshot.mode", FieldType::Enum { values: &["initial", "initial_only", "no_data", "when_needed", "never", "schema_only"] }, "initial", "When to snapshot: initial, initial_only, no_data, when_needed, never.")
        .optional("snapshot.fetch.size", FieldType::Int { min: 1, max: INT_MAX }, "10000", "Rows per snapshot chunk (keyset page).")
        .optional("snapshot.locking.mode", FieldType::Enum { values: &["minimal", "none", "extended", "minimal_percona"] }, "minimal", "minimal: a brief global read lock while the position is read; none: no lock (only safe when no DDL runs).")
        .optional("tombstones.on.delete", FieldType::Bool, "true", "Emit a tombstone after each delete.")
        .optional("heartbeat.interval.ms", FieldType::Int { min: 0, max: INT_MAX }, "0", "Emit a heartbeat record (and advance the offset) at this interval when idle; 0 disables.")
        .optional("decimal.handling.mode", FieldType::Enum { values: &["precise", "double", "string"] }, "precise", "How DECIMAL values are written.")
        .optional("time.precision.mode", FieldType::Enum { values: &["adaptive_time_microseconds", "adaptive", "connect"] }, "adaptive_time_microseconds", "How temporal values are written.")
        .optional("bigint.unsigned.handling.mode", FieldType::Enum { values: &["long", "precise"] }, "long", "BIGINT UNSIGNED as a 64-bit number (long) or Decimal(20,0) (precise).")
        .optional("binary.handling.mode", FieldType::Enum { values: &["bytes", "base64", "base64-url-safe", "hex"] }, "bytes", "How binary values are written.")
        .optional("include.schema.changes", FieldType::Bool, "true", "Emit schema-change events on <topic.prefix>, with Debezium's tableChanges (the table right after each DDL; kept on a second offset partition).")
        .optional("provide.transaction.metadata", FieldType::Bool, "false", "Emit BEGIN/END events on <topic.prefix>.transaction and a transaction block in each event.")
        .maybe("skipped.operations", FieldType::List, "Operations not emitted: c, u, d (t is always skipped by MySQL).")
        .optional("database.ssl.mode", FieldType::Enum { values: &["disabled", "preferred", "required", "verify_ca", "verify_identity"] }, "preferred", "TLS to the server. disabled: never; preferred: when the server offers it, without verifying its certificate; required: always, without verifying; verify_ca: always, the certificate must chain to database.ssl.truststore, which it requires (the host name is not checked); verify_identity: the certificate must chain to database.ssl.truststore (else the built-in webpki roots of public CAs) and name database.hostname.")
        .maybe("database.ssl.truststore", FieldType::String, "Path of a PEM file with the CA certificate(s) that verify the server: required with verify_ca; with verify_identity, the built-in webpki roots (public CAs) are used when it is not set. Not a Java key store: convert one with keytool -list -rfc -keystore <file> > ca.pem.")
        .maybe("database.ssl.truststore.password", FieldType::Password, "Not needed: the truststore is PEM (accepted for Debezium configs, ignored).")
        .maybe("database.ssl.keystore", FieldType::String, "Path of a PEM file with the client certificate (then intermediates) and its unencrypted RSA private key, for servers that require a client certificate. Convert PKCS#12 with openssl pkcs12 -in <file> -nodes -out keystore.pem.")
        .maybe("database.ssl.keystore.password", FieldType::Password, "Not needed: the keystore key is unencrypted PEM (accepted for Debezium configs, ignored).")
        .optional("include.query", FieldType::Bool, "false", "Not supported: statements are not added to the source block.")
        .ignore("database.history.", "unnecessary: table schemas come from binlog row metadata and are kept with the offsets, there is no schema-history topic")
        .ignore("schema.history.internal.", "unnecessary: table schemas come from binlog row metadata and are kept with the offsets, there is no schema-history topic")
        .ignore("database.history", "unnecessary: there is no schema-history topic")
        .ignore("database.allowPublicKeyRetrieval", "the native client negotiates authentication itself")
        .ignore("database.serverTimezone", "TIMESTAMP values are read in UTC, DATETIME values without a zone")
        .ignore("snapshot.new.tables", "new tables are captured from their first binlog event")
        .ignore("gtid.source.", "every GTID domain is followed")
        .ignore("connect.", "connection timeouts use the client's defaults")
}

fn regex_list(config: &Parsed, field: &str, errors: &mut ConfigErrors) -> Vec<Regex> {
    config
        .list(field)
        .iter()
        .filter_map(|pattern| {
            match RegexBuilder::new(&format!("^(?:{pattern})$"))
                .case_insensitive(true)
                .build()
            {
                Ok(re) => Some(re),
                Err(e) => {
                    errors.push(
                        field,
                        format!("invalid regular expression {pattern:?}: {e}; fix or remove it"),
                    );
                    None
                }
            }
        })
        .collect()
}

/// Parses `db.table:col1,col2;db2.table2:col`.
fn parse_key_columns(text: &str) -> Result<Vec<(Regex, Vec<String>)>, String> {
    let mut out = Vec::new();
    for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((table, cols)) = entry.split_once(':') else {
            return Err(format!(
                "expected <db.table>:<column>[,<column>...], got {entry:?}"
            ));
        };
        let cols: Vec<String> = cols
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect();
        if cols.is_empty() {
            return Err(format!("no key columns given for {table:?}"));
        }
        let re = RegexBuilder::new(&format!("^(?:{})$", table.trim()))
            .case_insensitive(true)
            .build()
            .map_err(|e| format!("invalid table expression {table:?}: {e}"))?;
        out.push((re, cols));
    }
    Ok(out)
}

/// Validates a parsed config (no I/O). `class` decides the flavor.
pub fn validate(name: &str, config: &Parsed) -> Result<MySqlConfig, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let mut warnings = Vec::new();
    let class = config.string("connector.class");
    let flavor = if class.to_ascii_lowercase().contains("mariadb") {
        Flavor::MariaDb
    } else {
        Flavor::MySql
    };

    let prefix = match (
        config.str("topic.prefix"),
        config.str("database.server.name"),
    ) {
        (Some(p), _) => p.to_owned(),
        (None, Some(server)) => {
            warnings.push(format!(
                "topic.prefix: not set, using database.server.name {server:?}; rename the setting to topic.prefix"
            ));
            server.to_owned()
        }
        (None, None) => {
            warnings.push(format!(
                "topic.prefix: not set, using the connector name {name:?}; set topic.prefix to choose the topic names"
            ));
            name.to_owned()
        }
    };
    if prefix.is_empty()
        || !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        errors.push(
            "topic.prefix",
            format!("must be letters, digits, '.', '_' or '-', got {prefix:?}"),
        );
    }

    let filters = Filters {
        db_include: regex_list(config, "database.include.list", &mut errors),
        db_exclude: regex_list(config, "database.exclude.list", &mut errors),
        table_include: regex_list(config, "table.include.list", &mut errors),
        table_exclude: regex_list(config, "table.exclude.list", &mut errors),
        column_include: regex_list(config, "column.include.list", &mut errors),
        column_exclude: regex_list(config, "column.exclude.list", &mut errors),
    };
    for (inc, exc) in [
        ("database.include.list", "database.exclude.list"),
        ("table.include.list", "table.exclude.list"),
        ("column.include.list", "column.exclude.list"),
    ] {
        if config.is_set(inc) && config.is_set(exc) {
            errors.push(
                exc,
                format!("cannot be used together with {inc}; keep one of them"),
            );
        }
    }

    let key_columns = match config.str("message.key.columns") {
        Some(text) => parse_key_columns(text).unwrap_or_else(|e| {
            errors.push("message.key.columns", e);
            Vec::new()
        }),
        None => Vec::new(),
    };

    let snapshot_mode = match config.str("snapshot.mode").unwrap_or("initial") {
        "initial_only" => SnapshotMode::InitialOnly,
        "no_data" => SnapshotMode::NoData,
        "schema_only" => {
            warnings.push(
                "snapshot.mode: schema_only is Debezium's old name of no_data; use no_data".into(),
            );
            SnapshotMode::NoData
        }
        "when_needed" => SnapshotMode::WhenNeeded,
        "never" => SnapshotMode::Never,
        _ => SnapshotMode::Initial,
    };

    let decimal = match config.str("decimal.handling.mode") {
        Some("double") => DecimalMode::Double,
        Some("string") => DecimalMode::String,
        _ => DecimalMode::Precise,
    };
    let time_precision = match config.str("time.precision.mode") {
        Some("adaptive") => TimePrecisionMode::Adaptive,
        Some("connect") => TimePrecisionMode::Connect,
        _ => TimePrecisionMode::AdaptiveTimeMicroseconds,
    };
    let binary = match config.str("binary.handling.mode") {
        Some("base64") => BinaryMode::Base64,
        Some("base64-url-safe") => {
            errors.push(
                "binary.handling.mode",
                "base64-url-safe is not supported yet; use bytes, base64 or hex",
            );
            BinaryMode::Base64
        }
        Some("hex") => BinaryMode::Hex,
        _ => BinaryMode::Bytes,
    };

    let mut skipped_ops = Vec::new();
    for op in config.list("skipped.operations") {
        match op.as_str() {
            "c" => skipped_ops.push(Op::Create),
            "u" => skipped_ops.push(Op::Update),
            "d" => skipped_ops.push(Op::Delete),
            "t" | "none" => {}
            other => errors.push(
                "skipped.operations",
                format!("unknown operation {other:?}; use c, u, d, t or none"),
            ),
        }
    }

    let tls = validate_tls(config, &mut errors, &mut warnings);
    if config.bool("include.query") {
        errors.push(
            "include.query",
            "true is not supported yet; remove the setting or set false",
        );
    }
    if config.str("snapshot.locking.mode") == Some("extended") {
        warnings.push(
            "snapshot.locking.mode: extended behaves as minimal (the lock is released once the position is read)".into(),
        );
    }

    let password = config.secret("database.password");
    let server_id = config.int("database.server.id").unwrap_or(184_054);
    let cfg = MySqlConfig {
        name: Arc::from(name),
        flavor,
        hostname: config.string("database.hostname"),
        port: config.int("database.port").unwrap_or(3306) as u16,
        user: config.string("database.user"),
        password,
        server_id: u32::try_from(server_id).unwrap_or(184_054),
        prefix: Arc::from(prefix.as_str()),
        filters,
        key_columns,
        snapshot_mode,
        fetch_size: config.int("snapshot.fetch.size").unwrap_or(10_000) as u32,
        snapshot_lock: config.str("snapshot.locking.mode") != Some("none"),
        tombstones: config.bool("tombstones.on.delete"),
        heartbeat_ms: config.int("heartbeat.interval.ms").unwrap_or(0) as u64,
        value_modes: ValueModes {
            decimal,
            time_precision,
            binary,
            ..ValueModes::default()
        },
        bigint_precise: config.str("bigint.unsigned.handling.mode") == Some("precise"),
        include_schema_changes: config.bool("include.schema.changes"),
        transaction_metadata: config.bool("provide.transaction.metadata"),
        skipped_ops,
        tls,
        warnings,
    };
    errors.into_result(cfg)
}

/// `database.ssl.*`: the mode, and the PEM files read and checked now, so a bad path or a
/// Java key store is refused before anything connects.
fn validate_tls(
    config: &Parsed,
    errors: &mut ConfigErrors,
    warnings: &mut Vec<String>,
) -> TlsConfig {
    // The field's enum admits only these values (and defaults to preferred); anything else
    // is refused rather than read as a weaker mode.
    let mode = match config.str("database.ssl.mode") {
        Some("disabled") => SslMode::Disabled,
        Some("preferred") | None => SslMode::Preferred,
        Some("required") => SslMode::Required,
        Some("verify_ca") => SslMode::VerifyCa,
        Some("verify_identity") => SslMode::VerifyIdentity,
        Some(other) => {
            errors.push(
                "database.ssl.mode",
                format!(
                    "unknown mode {other:?}; use disabled, preferred, required, verify_ca or \
                     verify_identity"
                ),
            );
            SslMode::VerifyIdentity
        }
    };
    let truststore = config.str("database.ssl.truststore").and_then(|path| {
        TrustStore::read(path)
            .map_err(|e| errors.push("database.ssl.truststore", e))
            .ok()
    });
    let keystore = config.str("database.ssl.keystore").and_then(|path| {
        KeyStore::read(path)
            .map_err(|e| errors.push("database.ssl.keystore", e))
            .ok()
    });
    let m = mode.as_str();
    for field in ["database.ssl.truststore", "database.ssl.keystore"] {
        if mode == SslMode::Disabled && config.is_set(field) {
            warnings.push(format!(
                "{field}: not used because database.ssl.mode=disabled"
            ));
        }
    }
    if matches!(mode, SslMode::Preferred | SslMode::Required)
        && config.is_set("database.ssl.truststore")
    {
        warnings.push(format!(
            "database.ssl.truststore: not used with database.ssl.mode={m}, which does not verify \
             the server certificate; set database.ssl.mode=verify_ca or verify_identity to verify it"
        ));
    }
    // verify_ca checks the chain but not the name: with public roots, any certificate a public
    // CA issued for any domain would pass. As the mysql client (VERIFY_CA needs --ssl-ca),
    // it needs a truststore; only verify_identity, which checks the name, may use the
    // public roots.
    if mode == SslMode::VerifyCa && !config.is_set("database.ssl.truststore") {
        errors.push(
            "database.ssl.truststore",
            "is required with database.ssl.mode=verify_ca: verify_ca checks that the server \
             certificate chains to a trusted CA but not the host name, so with public CAs any \
             certificate they issued, for any domain, would pass; set database.ssl.truststore to \
             the PEM of the CA that signed the server certificate, or use \
             database.ssl.mode=verify_identity",
        );
    }
    if mode == SslMode::VerifyIdentity && !config.is_set("database.ssl.truststore") {
        warnings.push(format!(
            "database.ssl.truststore: not set, so database.ssl.mode={m} trusts only the built-in \
             webpki roots (public CAs); set it to the PEM of your CA for a private CA"
        ));
    }
    for (field, why) in [
        (
            "database.ssl.truststore.password",
            "the truststore is a PEM file, which has no password",
        ),
        (
            "database.ssl.keystore.password",
            "the keystore is a PEM file with an unencrypted key",
        ),
    ] {
        if config.is_set(field) {
            warnings.push(format!("{field}: ignored: {why}"));
        }
    }
    TlsConfig {
        mode,
        truststore,
        keystore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_runtime::config::RawConfig;
    use tributary_runtime::registry::Registry;

    fn registry() -> Registry {
        let mut r = Registry::with_builtins();
        r.register(Arc::new(crate::MySqlPlugin));
        r
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<MySqlConfig, ConfigErrors> {
        let raw: RawConfig = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let def = Registry::config_def(&crate::MySqlPlugin);
        let parsed = def.parse(&raw)?;
        validate("mysql-source", &parsed)
    }

    const BASE: &[(&str, &str)] = &[
        ("connector.class", MYSQL_CLASS),
        ("database.hostname", "localhost"),
        ("database.user", "debezium"),
    ];

    fn with<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut v = BASE.to_vec();
        v.extend_from_slice(extra);
        v
    }

    #[test]
    fn users_debezium_example_is_accepted_verbatim() {
        let json = r#"{"name":"mysql-source","config":{"connector.class":"io.debezium.connector.mysql.MySqlConnector","database.hostname":"localhost","database.port":"3306","database.user":"debezium","database.password":"password","database.server.id":"184054","database.include.list":"ecommerce","table.include.list":"ecommerce.orders","database.history.kafka.bootstrap.servers":"localhost:9092","database.history.kafka.topic":"schema-changes.ecommerce"}}"#;
        let config = tributary_runtime::config::parse_connector_document(
            json,
            std::path::Path::new("mysql-source.json"),
        )
        .expect("json document");
        let validated = registry().validate(&config).expect("accepted as is");
        assert_eq!(validated.plugin.class(), MYSQL_CLASS);
        assert!(
            validated
                .warnings
                .iter()
                .any(|w| w.contains("database.history.kafka.topic") && w.contains("unnecessary")),
            "{:?}",
            validated.warnings
        );
        let cfg = parse(&[
            ("connector.class", MYSQL_CLASS),
            ("database.hostname", "localhost"),
            ("database.user", "debezium"),
            ("database.include.list", "ecommerce"),
            ("table.include.list", "ecommerce.orders"),
        ])
        .expect("valid");
        assert_eq!(&*cfg.prefix, "mysql-source");
        assert!(cfg.warnings.iter().any(|w| w.contains("topic.prefix")));
        assert!(cfg.filters.table("ecommerce", "orders"));
        assert!(cfg.filters.table("ECOMMERCE", "Orders"), "case-insensitive");
        assert!(!cfg.filters.table("ecommerce", "orders2"), "anchored");
        assert!(!cfg.filters.table("other", "orders"));
        assert_eq!(cfg.flavor, Flavor::MySql);
    }

    #[test]
    fn mariadb_class_and_server_name_fallback() {
        let cfg = parse(&[
            ("connector.class", MARIADB_CLASS),
            ("database.hostname", "h"),
            ("database.user", "u"),
            ("database.server.name", "legacy"),
        ])
        .expect("valid");
        assert_eq!(cfg.flavor, Flavor::MariaDb);
        assert_eq!(&*cfg.prefix, "legacy");
        assert!(
            cfg.warnings
                .iter()
                .any(|w| w.contains("database.server.name"))
        );
        let plugin = registry()
            .find(MARIADB_CLASS)
            .expect("mariadb class resolves");
        assert_eq!(plugin.class(), MYSQL_CLASS);
    }

    #[test]
    fn validation_errors_name_field_value_and_fix() {
        let err = parse(&with(&[
            ("table.include.list", "db.(orders"),
            ("message.key.columns", "db.t"),
            ("skipped.operations", "c,x"),
            ("database.ssl.mode", "verify_ca"),
            ("database.ssl.truststore", "/nonexistent/ca.pem"),
            ("database.include.list", "a"),
            ("database.exclude.list", "b"),
            ("topic.prefix", "bad prefix"),
        ]))
        .expect_err("invalid");
        let text = err.to_string();
        for needle in [
            "table.include.list: invalid regular expression \"db.(orders\"",
            "message.key.columns: expected <db.table>:<column>",
            "skipped.operations: unknown operation \"x\"",
            "database.ssl.truststore: cannot read /nonexistent/ca.pem",
            "database.exclude.list: cannot be used together with database.include.list",
            "topic.prefix: must be letters",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in {text}");
        }
        assert_eq!(err.0.len(), 6, "{text}");
    }

    #[test]
    fn key_columns_and_modes() {
        let cfg = parse(&with(&[
            ("message.key.columns", "inv.orders:a,b; inv.c.*:x"),
            ("decimal.handling.mode", "string"),
            ("time.precision.mode", "connect"),
            ("binary.handling.mode", "hex"),
            ("snapshot.mode", "when_needed"),
            ("bigint.unsigned.handling.mode", "precise"),
        ]))
        .expect("valid");
        assert_eq!(
            cfg.key_columns_for("inv", "orders"),
            Some(&["a".to_owned(), "b".to_owned()][..])
        );
        assert_eq!(
            cfg.key_columns_for("inv", "customers"),
            Some(&["x".to_owned()][..])
        );
        assert_eq!(cfg.key_columns_for("inv", "items"), None);
        assert_eq!(cfg.value_modes.decimal, DecimalMode::String);
        assert_eq!(cfg.value_modes.time_precision, TimePrecisionMode::Connect);
        assert_eq!(cfg.value_modes.binary, BinaryMode::Hex);
        assert_eq!(cfg.snapshot_mode, SnapshotMode::WhenNeeded);
        assert!(cfg.bigint_precise);
    }

    #[test]
    fn exclude_lists_and_system_databases() {
        let cfg = parse(&with(&[
            ("table.exclude.list", "inv\\.secret.*"),
            ("column.exclude.list", "inv\\.users\\.password"),
        ]))
        .expect("valid");
        assert!(cfg.filters.table("inv", "orders"));
        assert!(!cfg.filters.table("inv", "secrets"));
        assert!(!cfg.filters.table("mysql", "user"));
        assert!(!cfg.filters.column("inv", "users", "password"));
        assert!(cfg.filters.column("inv", "users", "name"));
    }

    fn fixture(name: &str) -> String {
        format!("{}/tests/fixtures/tls/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn every_ssl_mode_is_accepted_and_preferred_is_the_default() {
        let cfg = parse(BASE).expect("valid");
        assert_eq!(cfg.tls.mode, SslMode::Preferred);
        assert!(cfg.tls.truststore.is_none() && cfg.tls.keystore.is_none());
        let ca = fixture("ca.pem");
        for (text, mode) in [
            ("disabled", SslMode::Disabled),
            ("preferred", SslMode::Preferred),
            ("required", SslMode::Required),
            ("verify_ca", SslMode::VerifyCa),
            ("verify_identity", SslMode::VerifyIdentity),
        ] {
            let mut pairs = with(&[("database.ssl.mode", text)]);
            if mode == SslMode::VerifyCa {
                pairs.push(("database.ssl.truststore", ca.as_str()));
            }
            let cfg = parse(&pairs).expect(text);
            assert_eq!(cfg.tls.mode, mode);
            assert_eq!(mode.as_str(), text);
            assert!(
                !cfg.warnings
                    .iter()
                    .any(|w| w.contains("without TLS in this build")),
                "{:?}",
                cfg.warnings
            );
        }
        let err = parse(&with(&[("database.ssl.mode", "verify_full")])).expect_err("unknown");
        assert!(err.to_string().contains("database.ssl.mode"), "{err}");
    }

    #[test]
    fn verify_ca_requires_a_truststore_and_verify_identity_may_use_public_roots() {
        // verify_ca does not check the name: with public roots, any publicly issued
        // certificate would pass, so it is refused without a truststore.
        let err = parse(&with(&[("database.ssl.mode", "verify_ca")])).expect_err("no truststore");
        let text = err.to_string();
        assert!(
            text.contains("database.ssl.truststore: is required with database.ssl.mode=verify_ca")
                && text.contains("database.ssl.mode=verify_identity"),
            "{text}"
        );
        assert_eq!(err.0.len(), 1, "{text}");
        // An unreadable truststore is reported once, as unreadable.
        let err = parse(&with(&[
            ("database.ssl.mode", "verify_ca"),
            ("database.ssl.truststore", "/nonexistent/ca.pem"),
        ]))
        .expect_err("unreadable");
        assert_eq!(err.0.len(), 1, "{err}");
        assert!(err.to_string().contains("cannot read"), "{err}");
        let ca = fixture("ca.pem");
        let cfg = parse(&with(&[
            ("database.ssl.mode", "verify_ca"),
            ("database.ssl.truststore", ca.as_str()),
        ]))
        .expect("verify_ca with a truststore");
        assert!(cfg.tls.truststore.is_some());
        assert!(
            !cfg.warnings.iter().any(|w| w.contains("webpki")),
            "{:?}",
            cfg.warnings
        );
        // verify_identity checks the name too: public roots stay allowed, with a warning.
        let cfg = parse(&with(&[("database.ssl.mode", "verify_identity")])).expect("valid");
        assert!(cfg.tls.truststore.is_none());
        assert!(
            cfg.warnings
                .iter()
                .any(|w| w.contains("built-in webpki roots")),
            "{:?}",
            cfg.warnings
        );
    }

    #[test]
    fn pem_truststore_and_keystore_are_read_at_validation() {
        let ca = fixture("ca.pem");
        let keys = fixture("client-pkcs8.pem");
        let cfg = parse(&[
            ("connector.class", MYSQL_CLASS),
            ("database.hostname", "db"),
            ("database.user", "u"),
            ("database.ssl.mode", "verify_identity"),
            ("database.ssl.truststore", ca.as_str()),
            ("database.ssl.keystore", keys.as_str()),
            ("database.ssl.keystore.password", "changeit"),
        ])
        .expect("valid");
        let trust = cfg.tls.truststore.as_ref().expect("truststore");
        assert_eq!(trust.certificates, 1);
        assert_eq!(trust.path, std::path::Path::new(&ca));
        assert!(cfg.tls.keystore.is_some());
        assert!(
            cfg.warnings
                .iter()
                .any(|w| w.starts_with("database.ssl.keystore.password: ignored")),
            "{:?}",
            cfg.warnings
        );
        // The key material never shows in Debug output of the config.
        let shown = format!("{cfg:?}");
        assert!(
            shown.contains("[redacted]") && !shown.contains("PRIVATE KEY"),
            "{shown}"
        );
    }

    #[test]
    fn java_and_pkcs12_stores_are_refused_with_the_conversion_command() {
        let jks = fixture("truststore.jks");
        let p12 = fixture("client.p12");
        let err = parse(&with(&[
            ("database.ssl.mode", "verify_ca"),
            ("database.ssl.truststore", jks.as_str()),
            ("database.ssl.keystore", p12.as_str()),
        ]))
        .expect_err("not pem");
        let text = err.to_string();
        assert!(
            text.contains("database.ssl.truststore: ")
                && text.contains("is a Java key store (JKS/JCEKS), but a PEM file is expected")
                && text.contains("keytool -list -rfc -keystore"),
            "{text}"
        );
        assert!(
            text.contains("database.ssl.keystore: ")
                && text.contains("binary DER")
                && text.contains("openssl pkcs12 -in")
                && text.contains("-nodes -out keystore.pem"),
            "{text}"
        );
        assert_eq!(err.0.len(), 2, "{text}");

        let ec = fixture("client-ec.pem");
        let err = parse(&with(&[("database.ssl.keystore", ec.as_str())])).expect_err("ec key");
        assert!(
            err.to_string()
                .contains("database.ssl.keystore: the private key in")
                && err.to_string().contains("RSA client keys only"),
            "{err}"
        );
    }

    #[test]
    fn unused_tls_settings_are_warned_about() {
        let ca = fixture("ca.pem");
        let cfg = parse(&with(&[
            ("database.ssl.mode", "disabled"),
            ("database.ssl.truststore", ca.as_str()),
        ]))
        .expect("valid");
        assert!(
            cfg.warnings.iter().any(
                |w| w == "database.ssl.truststore: not used because database.ssl.mode=disabled"
            ),
            "{:?}",
            cfg.warnings
        );
        let cfg = parse(&with(&[
            ("database.ssl.mode", "required"),
            ("database.ssl.truststore", ca.as_str()),
        ]))
        .expect("valid");
        assert!(
            cfg.warnings
                .iter()
                .any(|w| w.contains("not used with database.ssl.mode=required")),
            "{:?}",
            cfg.warnings
        );
        let cfg = parse(&with(&[("database.ssl.mode", "verify_identity")])).expect("valid");
        assert!(
            cfg.warnings
                .iter()
                .any(|w| w.contains("built-in webpki roots")),
            "{:?}",
            cfg.warnings
        );
    }
}
