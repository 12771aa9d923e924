//! Configuration: Debezium's Postgres connector names, parsed and checked without network
//! I/O. The TLS files (`database.sslrootcert`, `database.sslcert`, `database.sslkey`) and, for
//! `verify-full` without a root certificate, the system trust store are read here, so a bad
//! one is a config error ([`crate::tls`]). `verify-ca` requires `database.sslrootcert`.

use std::collections::BTreeMap;
use std::time::Duration;

use tributary_runtime::config::{ConfigDef, ConfigErrors, FieldType, Parsed, Secret};
use tributary_runtime::converter::json::{BinaryMode, DecimalMode, TimePrecisionMode, ValueModes};
use tributary_runtime::model::{Op, TableId};

use crate::tls::{TlsFiles, TlsSettings};

/// `snapshot.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMode {
    /// Snapshot on the first start, then stream.
    Initial,
    /// Snapshot, then stop (no streaming).
    InitialOnly,
    /// Create the slot and stream; never read existing rows.
    NoData,
    /// Snapshot when there is no usable offset or the slot is gone.
    WhenNeeded,
    /// Never snapshot (alias of `no_data` kept for Debezium configs).
    Never,
}

/// `publication.autocreate.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicationMode {
    AllTables,
    Disabled,
    Filtered,
}

/// `interval.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntervalMode {
    /// Approximate microseconds (Debezium `MicroDuration`).
    Numeric,
    /// ISO-8601 text (`P1Y2M3DT4H5M6.78S`).
    String,
}

/// `database.sslmode`, as libpq and Debezium name them; what each checks is in [`crate::tls`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plaintext only.
    Disable,
    /// Treated as `prefer` (libpq tries plaintext first).
    Allow,
    /// TLS when the server accepts it, else plaintext.
    Prefer,
    /// TLS; the certificate is not checked unless `database.sslrootcert` is set.
    Require,
    /// TLS; the certificate chain is checked, not the host name (needs `database.sslrootcert`).
    VerifyCa,
    /// TLS; the certificate chain and the host name are checked.
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// `None` for anything else: never read as a weaker mode.
    fn parse(text: &str) -> Option<SslMode> {
        Some(match text {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }
}

/// The validated connector configuration.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// Connector name.
    pub name: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<Secret>,
    pub dbname: String,
    pub topic_prefix: String,
    pub slot_name: String,
    pub publication_name: String,
    pub publication_mode: PublicationMode,
    pub schema_filter: NameFilter,
    pub table_filter: NameFilter,
    pub column_filter: NameFilter,
    /// `message.key.columns`: fully qualified table to key column names.
    pub key_columns: BTreeMap<TableId, Vec<String>>,
    pub snapshot_mode: SnapshotMode,
    pub snapshot_fetch_size: usize,
    /// `snapshot.max.threads`: connections reading tables in parallel during the snapshot.
    pub snapshot_max_threads: usize,
    pub slot_drop_on_stop: bool,
    pub heartbeat_interval: Option<Duration>,
    pub heartbeat_action_query: Option<String>,
    pub interval_mode: IntervalMode,
    pub value_modes: ValueModes,
    pub tombstones_on_delete: bool,
    pub provide_transaction_metadata: bool,
    pub skipped_operations: Vec<Op>,
    pub status_update_interval: Duration,
    /// `database.sslmode` and the `database.ssl*` files, loaded and checked.
    pub tls: TlsSettings,
    pub max_batch_size: usize,
}

/// Include or exclude list of anchored regular expressions (Debezium semantics: a name is
/// captured when it matches an include pattern, or, with no include list, matches no
/// exclude pattern).
#[derive(Debug, Clone, Default)]
pub struct NameFilter {
    include: Vec<regex::Regex>,
    exclude: Vec<regex::Regex>,
}

impl NameFilter {
    fn build(
        include_field: &'static str,
        include: Vec<String>,
        exclude_field: &'static str,
        exclude: Vec<String>,
        errors: &mut ConfigErrors,
    ) -> NameFilter {
        if !include.is_empty() && !exclude.is_empty() {
            errors.push(
                exclude_field,
                format!("cannot be combined with {include_field}; set only one of them"),
            );
        }
        let compile = |field: &'static str, list: Vec<String>, errors: &mut ConfigErrors| {
            list.into_iter()
                .filter_map(|p| match regex::Regex::new(&format!("^(?:{p})$")) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        errors.push(field, format!("invalid regular expression {p:?}: {e}"));
                        None
                    }
                })
                .collect()
        };
        NameFilter {
            include: compile(include_field, include, errors),
            exclude: compile(exclude_field, exclude, errors),
        }
    }

    pub fn matches(&self, name: &str) -> bool {
        if !self.include.is_empty() {
            return self.include.iter().any(|r| r.is_match(name));
        }
        !self.exclude.iter().any(|r| r.is_match(name))
    }

    /// True when neither list is set.
    pub fn is_open(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }
}

impl PgConfig {
    /// Is this table captured by the schema and table filters?
    pub fn captures(&self, table: &TableId) -> bool {
        self.schema_filter.matches(&table.namespace)
            && self
                .table_filter
                .matches(&format!("{}.{}", table.namespace, table.name))
    }

    /// Is this column captured by `column.include.list`/`column.exclude.list`?
    pub fn captures_column(&self, table: &TableId, column: &str) -> bool {
        self.column_filter
            .matches(&format!("{}.{}.{column}", table.namespace, table.name))
    }

    /// The topic of a table's change events.
    pub fn topic(&self, table: &TableId) -> String {
        format!("{}.{}.{}", self.topic_prefix, table.namespace, table.name)
    }

    /// `__debezium-heartbeat.<prefix>`.
    pub fn heartbeat_topic(&self) -> String {
        format!("__debezium-heartbeat.{}", self.topic_prefix)
    }

    /// `<prefix>.transaction`.
    pub fn transaction_topic(&self) -> String {
        format!("{}.transaction", self.topic_prefix)
    }

    /// `<prefix>.message` for logical decoding messages of other applications.
    pub fn message_topic(&self) -> String {
        format!("{}.message", self.topic_prefix)
    }
}

pub(crate) fn config_def() -> ConfigDef {
    let int = |min, max| FieldType::Int { min, max };
    ConfigDef::new()
        .required(
            "database.hostname",
            FieldType::String,
            "Host name or IP address of the Postgres server.",
        )
        .optional(
            "database.port",
            int(1, 65535),
            "5432",
            "Port of the Postgres server.",
        )
        .required(
            "database.user",
            FieldType::String,
            "Role used to connect; needs REPLICATION (or superuser) and SELECT on the captured tables.",
        )
        .maybe(
            "database.password",
            FieldType::Password,
            "Password of database.user.",
        )
        .required(
            "database.dbname",
            FieldType::String,
            "Database to capture.",
        )
        .required(
            "topic.prefix",
            FieldType::String,
            "Logical server name: topics are <topic.prefix>.<schema>.<table>.",
        )
        .optional(
            "plugin.name",
            FieldType::Enum {
                values: &["pgoutput"],
            },
            "pgoutput",
            "Logical decoding output plugin; only pgoutput (built into Postgres 10+) is supported.",
        )
        .optional(
            "slot.name",
            FieldType::String,
            "debezium",
            "Logical replication slot name.",
        )
        .optional(
            "publication.name",
            FieldType::String,
            "dbz_publication",
            "Publication that selects the tables pgoutput sends.",
        )
        .optional(
            "publication.autocreate.mode",
            FieldType::Enum {
                values: &["all_tables", "disabled", "filtered"],
            },
            "all_tables",
            "Create the publication when missing: for all tables, never, or for the captured tables only.",
        )
        .maybe(
            "schema.include.list",
            FieldType::List,
            "Regular expressions of schemas to capture.",
        )
        .maybe(
            "schema.exclude.list",
            FieldType::List,
            "Regular expressions of schemas not to capture.",
        )
        .maybe(
            "table.include.list",
            FieldType::List,
            "Regular expressions of schema.table names to capture.",
        )
        .maybe(
            "table.exclude.list",
            FieldType::List,
            "Regular expressions of schema.table names not to capture.",
        )
        .maybe(
            "column.include.list",
            FieldType::List,
            "Regular expressions of schema.table.column names to include in events.",
        )
        .maybe(
            "column.exclude.list",
            FieldType::List,
            "Regular expressions of schema.table.column names to leave out of events.",
        )
        .maybe(
            "message.key.columns",
            FieldType::String,
            "Key columns for tables without a suitable primary key: schema.table:col1,col2;schema.other:col.",
        )
        .optional(
            "snapshot.mode",
            FieldType::Enum {
                values: &["initial", "initial_only", "no_data", "when_needed", "never"],
            },
            "initial",
            "When to read the existing rows of the captured tables.",
        )
        .optional(
            "snapshot.fetch.size",
            int(1, 1_000_000),
            "10240",
            "Rows per snapshot chunk (one primary-key range per query).",
        )
        .optional(
            "snapshot.max.threads",
            int(1, 64),
            "1",
            "Connections reading tables in parallel during the initial snapshot; each imports \
             the same exported snapshot, so what is read is the same. One table is read by one \
             connection.",
        )
        .optional(
            "slot.drop.on.stop",
            FieldType::Bool,
            "false",
            "Drop the replication slot when the task stops (testing only: loses the position).",
        )
        .optional(
            "heartbeat.interval.ms",
            int(0, i64::from(i32::MAX)),
            "0",
            "Emit a heartbeat this often so the confirmed LSN advances while only unpublished tables change; 0 disables.",
        )
        .maybe(
            "heartbeat.action.query",
            FieldType::String,
            "SQL run on each heartbeat, e.g. an update of a published heartbeat table.",
        )
        .optional(
            "decimal.handling.mode",
            FieldType::Enum {
                values: &["precise", "double", "string"],
            },
            "precise",
            "How numeric values are written.",
        )
        .optional(
            "time.precision.mode",
            FieldType::Enum {
                values: &["adaptive", "adaptive_time_microseconds", "connect"],
            },
            "adaptive",
            "How time and timestamp values are written.",
        )
        .optional(
            "binary.handling.mode",
            FieldType::Enum {
                values: &["bytes", "base64", "hex"],
            },
            "bytes",
            "How bytea values are written.",
        )
        .optional(
            "interval.handling.mode",
            FieldType::Enum {
                values: &["numeric", "string"],
            },
            "numeric",
            "How interval values are written: approximate microseconds or ISO-8601 text.",
        )
        .optional(
            "unavailable.value.placeholder",
            FieldType::String,
            "__debezium_unavailable_value",
            "Written for unchanged TOAST values the server did not send.",
        )
        .optional(
            "tombstones.on.delete",
            FieldType::Bool,
            "true",
            "Emit a tombstone after each delete event.",
        )
        .optional(
            "provide.transaction.metadata",
            FieldType::Bool,
            "false",
            "Emit BEGIN/END events on <topic.prefix>.transaction and a transaction block in events.",
        )
        .optional(
            "skipped.operations",
            FieldType::List,
            "t",
            "Operations not to emit: c, u, d, t, or none.",
        )
        .optional(
            "status.update.interval.ms",
            int(1, 3_600_000),
            "10000",
            "How often a standby status update is sent even when nothing new is confirmed.",
        )
        .optional(
            "database.sslmode",
            FieldType::Enum {
                values: &["disable", "allow", "prefer", "require", "verify-ca", "verify-full"],
            },
            "prefer",
            "TLS of both connections (SQL and replication): disable; allow and prefer (TLS when the server offers it, else plaintext); require (TLS, certificate not checked unless database.sslrootcert is set); verify-ca (chain to database.sslrootcert, which it requires; host name not checked); verify-full (chain and host name).",
        )
        .maybe(
            "database.sslrootcert",
            FieldType::String,
            "PEM file of the CA certificates that may sign the server certificate. Required with verify-ca; without it verify-full uses the system trust store.",
        )
        .maybe(
            "database.sslcert",
            FieldType::String,
            "Client certificate (PEM, or DER) for servers that ask for one; needs database.sslkey.",
        )
        .maybe(
            "database.sslkey",
            FieldType::String,
            "Private key of database.sslcert: unencrypted PEM (PKCS#8, PKCS#1 or SEC1) or DER PKCS#8.",
        )
        .maybe(
            "database.sslpassword",
            FieldType::Password,
            "Accepted for Debezium configs but not used: an encrypted database.sslkey is refused; decrypt the key instead.",
        )
        .ignore(
            "database.sslfactory",
            "TLS is built in (rustls); database.sslmode and database.sslrootcert/sslcert/sslkey configure it",
        )
        .optional(
            "max.batch.size",
            int(1, 1_000_000),
            "2048",
            "Records returned by one poll at most.",
        )
        .ignore("max.queue.size", "the task streams straight into the worker's batches")
        .ignore("poll.interval.ms", "poll returns as soon as records arrive")
        .ignore("include.schema.changes", "Postgres has no schema change events")
}

/// Builds the typed config, collecting every error.
pub fn validate(name: &str, parsed: &Parsed) -> Result<PgConfig, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let port = parsed.int("database.port").unwrap_or(5432);
    let slot_name = parsed.string("slot.name");
    if slot_name.is_empty()
        || slot_name.len() > 63
        || !slot_name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        errors.push(
            "slot.name",
            format!(
                "must be 1 to 63 characters of lower-case letters, digits and underscores (a Postgres replication slot name), got {slot_name:?}"
            ),
        );
    }
    let publication_name = parsed.string("publication.name");
    if publication_name.is_empty() || publication_name.len() > 63 {
        errors.push(
            "publication.name",
            format!("must be 1 to 63 characters, got {publication_name:?}"),
        );
    }
    let topic_prefix = parsed.string("topic.prefix");
    if let Err(e) = tributary_runtime::log::validate_topic_name(&format!("{topic_prefix}.s.t")) {
        errors.push("topic.prefix", e.to_string());
    }
    let schema_filter = NameFilter::build(
        "schema.include.list",
        parsed.list("schema.include.list"),
        "schema.exclude.list",
        parsed.list("schema.exclude.list"),
        &mut errors,
    );
    let table_filter = NameFilter::build(
        "table.include.list",
        parsed.list("table.include.list"),
        "table.exclude.list",
        parsed.list("table.exclude.list"),
        &mut errors,
    );
    let column_filter = NameFilter::build(
        "column.include.list",
        parsed.list("column.include.list"),
        "column.exclude.list",
        parsed.list("column.exclude.list"),
        &mut errors,
    );
    let key_columns = match parsed.str("message.key.columns") {
        Some(text) => match parse_key_columns(text) {
            Ok(k) => k,
            Err(e) => {
                errors.push("message.key.columns", e);
                BTreeMap::new()
            }
        },
        None => BTreeMap::new(),
    };
    let snapshot_mode = match parsed.string("snapshot.mode").as_str() {
        "initial_only" => SnapshotMode::InitialOnly,
        "no_data" => SnapshotMode::NoData,
        "when_needed" => SnapshotMode::WhenNeeded,
        "never" => SnapshotMode::Never,
        _ => SnapshotMode::Initial,
    };
    let publication_mode = match parsed.string("publication.autocreate.mode").as_str() {
        "disabled" => PublicationMode::Disabled,
        "filtered" => PublicationMode::Filtered,
        _ => PublicationMode::AllTables,
    };
    if publication_mode == PublicationMode::Filtered && table_filter.is_open() {
        errors.push(
            "publication.autocreate.mode",
            "filtered needs table.include.list (the tables to put in the publication); set table.include.list or use all_tables",
        );
    }
    let skipped_operations = match parse_skipped(&parsed.list("skipped.operations")) {
        Ok(ops) => ops,
        Err(e) => {
            errors.push("skipped.operations", e);
            Vec::new()
        }
    };
    let heartbeat_ms = parsed.int("heartbeat.interval.ms").unwrap_or(0);
    let heartbeat_action_query = parsed
        .str("heartbeat.action.query")
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(str::to_owned);
    if heartbeat_action_query.is_some() && heartbeat_ms == 0 {
        errors.push(
            "heartbeat.action.query",
            "is only run on heartbeats; set heartbeat.interval.ms above 0",
        );
    }
    let file = |field: &str| {
        parsed
            .str(field)
            .map(str::trim)
            .filter(|path| !path.is_empty())
    };
    let host = parsed.string("database.hostname");
    // The field's enum admits only the six modes (default prefer); anything else is an error,
    // not a fallback to a weaker mode.
    let sslmode = parsed.str("database.sslmode").unwrap_or("prefer");
    let mode = SslMode::parse(sslmode).unwrap_or_else(|| {
        errors.push(
            "database.sslmode",
            format!(
                "unknown mode {sslmode:?}; use disable, allow, prefer, require, verify-ca or verify-full"
            ),
        );
        SslMode::VerifyFull
    });
    let tls = TlsSettings::build(
        mode,
        host.trim(),
        TlsFiles {
            rootcert: file("database.sslrootcert"),
            cert: file("database.sslcert"),
            key: file("database.sslkey"),
        },
        &mut errors,
    );
    let value_modes = ValueModes {
        decimal: match parsed.string("decimal.handling.mode").as_str() {
            "double" => DecimalMode::Double,
            "string" => DecimalMode::String,
            _ => DecimalMode::Precise,
        },
        time_precision: match parsed.string("time.precision.mode").as_str() {
            "adaptive_time_microseconds" => TimePrecisionMode::AdaptiveTimeMicroseconds,
            "connect" => TimePrecisionMode::Connect,
            _ => TimePrecisionMode::Adaptive,
        },
        binary: match parsed.string("binary.handling.mode").as_str() {
            "base64" => BinaryMode::Base64,
            "hex" => BinaryMode::Hex,
            _ => BinaryMode::Bytes,
        },
        unavailable_placeholder: parsed.string("unavailable.value.placeholder"),
    };
    let config = PgConfig {
        name: name.to_owned(),
        host,
        port: u16::try_from(port).unwrap_or(5432),
        user: parsed.string("database.user"),
        password: parsed.secret("database.password"),
        dbname: parsed.string("database.dbname"),
        topic_prefix,
        slot_name,
        publication_name,
        publication_mode,
        schema_filter,
        table_filter,
        column_filter,
        key_columns,
        snapshot_mode,
        snapshot_fetch_size: parsed.int("snapshot.fetch.size").unwrap_or(10240) as usize,
        snapshot_max_threads: parsed.int("snapshot.max.threads").unwrap_or(1) as usize,
        slot_drop_on_stop: parsed.bool("slot.drop.on.stop"),
        heartbeat_interval: (heartbeat_ms > 0).then(|| Duration::from_millis(heartbeat_ms as u64)),
        heartbeat_action_query,
        interval_mode: if parsed.string("interval.handling.mode") == "string" {
            IntervalMode::String
        } else {
            IntervalMode::Numeric
        },
        value_modes,
        tombstones_on_delete: parsed.bool("tombstones.on.delete"),
        provide_transaction_metadata: parsed.bool("provide.transaction.metadata"),
        skipped_operations,
        status_update_interval: Duration::from_millis(
            parsed.int("status.update.interval.ms").unwrap_or(10_000) as u64,
        ),
        tls,
        max_batch_size: parsed.int("max.batch.size").unwrap_or(2048) as usize,
    };
    errors.into_result(config)
}

/// `schema.table:col1,col2;schema.other:col`.
fn parse_key_columns(text: &str) -> Result<BTreeMap<TableId, Vec<String>>, String> {
    let mut out = BTreeMap::new();
    for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let (table, columns) = entry
            .split_once(':')
            .ok_or_else(|| format!("expected schema.table:col1,col2, got {entry:?}"))?;
        let (schema, name) = table
            .trim()
            .split_once('.')
            .ok_or_else(|| format!("table {table:?} must be qualified as schema.table"))?;
        let columns: Vec<String> = columns
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect();
        if columns.is_empty() {
            return Err(format!("no key columns given for {table}"));
        }
        out.insert(TableId::new(schema, name), columns);
    }
    Ok(out)
}

fn parse_skipped(list: &[String]) -> Result<Vec<Op>, String> {
    let mut ops = Vec::new();
    for item in list {
        match item.as_str() {
            "none" => return Ok(Vec::new()),
            "c" => ops.push(Op::Create),
            "u" => ops.push(Op::Update),
            "d" => ops.push(Op::Delete),
            "t" => ops.push(Op::Truncate),
            other => {
                return Err(format!(
                    "unknown operation {other:?}; use c, u, d, t or none"
                ));
            }
        }
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::Verification;
    use tributary_runtime::config::RawConfig;

    fn parse(extra: &[(&str, &str)]) -> Result<PgConfig, ConfigErrors> {
        let mut raw: RawConfig = [
            ("database.hostname", "127.0.0.1"),
            ("database.user", "cdc"),
            ("database.dbname", "app"),
            ("topic.prefix", "srv"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        raw.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let parsed = config_def().parse(&raw)?;
        validate("pg", &parsed)
    }

    #[test]
    fn defaults_follow_debezium() {
        let c = parse(&[]).expect("valid");
        assert_eq!(c.port, 5432);
        assert_eq!(c.slot_name, "debezium");
        assert_eq!(c.publication_name, "dbz_publication");
        assert_eq!(c.snapshot_mode, SnapshotMode::Initial);
        assert_eq!(c.publication_mode, PublicationMode::AllTables);
        assert!(c.tombstones_on_delete);
        assert_eq!(c.skipped_operations, vec![Op::Truncate]);
        assert!(c.heartbeat_interval.is_none());
        assert_eq!(
            c.topic(&TableId::new("public", "orders")),
            "srv.public.orders"
        );
    }

    #[test]
    fn missing_required_fields_are_named() {
        let raw = RawConfig::new();
        let err = config_def().parse(&raw).expect_err("required fields");
        let text = err.to_string();
        for f in [
            "database.hostname",
            "database.user",
            "database.dbname",
            "topic.prefix",
        ] {
            assert!(text.contains(&format!("{f}: is required")), "{text}");
        }
    }

    #[test]
    fn bad_values_name_field_and_fix() {
        let err =
            parse(&[("slot.name", "My-Slot"), ("snapshot.mode", "initiall")]).expect_err("invalid");
        let text = err.to_string();
        assert!(text.contains("snapshot.mode: must be one of"), "{text}");
        assert!(text.contains("did you mean \"initial\""), "{text}");

        let err = parse(&[("slot.name", "My-Slot")]).expect_err("slot name");
        assert!(
            err.to_string().contains("slot.name: must be 1 to 63"),
            "{err}"
        );

        let err = parse(&[("plugin.name", "decoderbufs")]).expect_err("plugin");
        assert!(err.to_string().contains("plugin.name"), "{err}");

        let err = parse(&[("publication.autocreate.mode", "filtered")]).expect_err("filtered");
        assert!(err.to_string().contains("table.include.list"), "{err}");

        let err = parse(&[("heartbeat.action.query", "select 1")]).expect_err("hb");
        assert!(err.to_string().contains("heartbeat.interval.ms"), "{err}");

        let err = parse(&[("skipped.operations", "x")]).expect_err("ops");
        assert!(
            err.to_string()
                .contains("skipped.operations: unknown operation \"x\"")
        );

        let err = parse(&[("table.include.list", "public.(")]).expect_err("regex");
        assert!(
            err.to_string()
                .contains("table.include.list: invalid regular expression")
        );

        let err = parse(&[
            ("table.include.list", "public.a"),
            ("table.exclude.list", "public.b"),
        ])
        .expect_err("both lists");
        assert!(
            err.to_string()
                .contains("table.exclude.list: cannot be combined")
        );
    }

    fn fixture(name: &str) -> String {
        format!("{}/testdata/tls/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn sslmode_values_and_verification() {
        let c = parse(&[]).expect("valid");
        assert_eq!(c.tls.mode, SslMode::Prefer);
        assert_eq!(c.tls.verification, Verification::None);
        for (text, mode) in [
            ("disable", SslMode::Disable),
            ("allow", SslMode::Allow),
            ("prefer", SslMode::Prefer),
            ("require", SslMode::Require),
            ("VERIFY-CA", SslMode::VerifyCa),
            ("verify-full", SslMode::VerifyFull),
        ] {
            let c = parse(&[
                ("database.sslmode", text),
                ("database.sslrootcert", &fixture("ca.pem")),
            ])
            .unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(c.tls.mode, mode, "{text}");
            assert_eq!(c.tls.mode.as_str(), text.to_ascii_lowercase());
        }
        // As libpq: a root certificate makes require (and prefer) check the chain.
        let c = parse(&[
            ("database.sslmode", "require"),
            ("database.sslrootcert", &fixture("ca.pem")),
        ])
        .expect("valid");
        assert_eq!(c.tls.verification, Verification::Chain);
        assert!(c.tls.trust_source().contains("ca.pem"));
        let c = parse(&[("database.sslmode", "require")]).expect("valid");
        assert_eq!(c.tls.verification, Verification::None);
        let c = parse(&[
            ("database.sslmode", "verify-full"),
            ("database.sslrootcert", &fixture("ca.pem")),
        ])
        .expect("valid");
        assert_eq!(c.tls.verification, Verification::Full);

        let err = parse(&[("database.sslmode", "verify_full")]).expect_err("typo");
        let text = err.to_string();
        assert!(text.contains("database.sslmode: must be one of"), "{text}");
        assert!(text.contains("did you mean \"verify-full\""), "{text}");
    }

    #[test]
    fn verify_ca_requires_a_root_cert() {
        // verify-ca does not check the name: against the system's public CAs any certificate
        // they issued would pass, so (as libpq) it needs database.sslrootcert.
        let err = parse(&[("database.sslmode", "verify-ca")]).expect_err("no root cert");
        let text = err.to_string();
        assert!(
            text.contains("database.sslrootcert: is required with database.sslmode=verify-ca")
                && text.contains("database.sslmode=verify-full"),
            "{text}"
        );
        assert_eq!(err.0.len(), 1, "{text}");
        let c = parse(&[
            ("database.sslmode", "verify-ca"),
            ("database.sslrootcert", &fixture("ca.pem")),
        ])
        .expect("valid");
        assert_eq!(c.tls.verification, Verification::Chain);
        assert!(c.tls.trust_source().contains("ca.pem"));
    }

    #[test]
    fn sslmode_text_maps_to_exactly_one_mode() {
        for mode in [
            SslMode::Disable,
            SslMode::Allow,
            SslMode::Prefer,
            SslMode::Require,
            SslMode::VerifyCa,
            SslMode::VerifyFull,
        ] {
            assert_eq!(SslMode::parse(mode.as_str()), Some(mode));
        }
        // Never a silent fallback to prefer.
        assert_eq!(SslMode::parse("verify_full"), None);
        assert_eq!(SslMode::parse(""), None);
    }

    #[test]
    fn verify_without_root_cert_uses_the_system_store() {
        let system_has_cas = !rustls_native_certs::load_native_certs().certs.is_empty();
        let result = parse(&[("database.sslmode", "verify-full")]);
        if system_has_cas {
            let c = result.expect("system roots");
            assert_eq!(c.tls.trust_source(), "the system trust store");
        } else {
            let text = result.expect_err("no roots").to_string();
            assert!(text.contains("database.sslrootcert: is required"), "{text}");
        }
    }

    #[test]
    fn tls_file_errors_name_the_field() {
        let err = parse(&[
            ("database.sslmode", "verify-ca"),
            ("database.sslrootcert", "/nonexistent/root.crt"),
        ])
        .expect_err("missing file");
        let text = err.to_string();
        assert!(
            text.contains("database.sslrootcert: cannot read /nonexistent/root.crt"),
            "{text}"
        );

        let err = parse(&[
            ("database.sslmode", "verify-ca"),
            ("database.sslrootcert", &fixture("client.key")),
        ])
        .expect_err("a key is no CA");
        assert!(
            err.to_string().contains("database.sslrootcert: ")
                && err.to_string().contains("holds no certificate"),
            "{err}"
        );

        let err = parse(&[("database.sslcert", &fixture("client.pem"))]).expect_err("no key");
        assert!(
            err.to_string()
                .contains("database.sslkey: is required with database.sslcert"),
            "{err}"
        );
        let err = parse(&[("database.sslkey", &fixture("client.key"))]).expect_err("no cert");
        assert!(
            err.to_string()
                .contains("database.sslcert: is required with database.sslkey"),
            "{err}"
        );

        let err = parse(&[
            ("database.sslcert", &fixture("client.pem")),
            ("database.sslkey", &fixture("client-encrypted.key")),
            ("database.sslpassword", "secret"),
        ])
        .expect_err("encrypted key");
        let text = err.to_string();
        assert!(text.contains("database.sslkey: "), "{text}");
        assert!(text.contains("is encrypted"), "{text}");
        assert!(text.contains("openssl pkey"), "{text}");

        let err = parse(&[
            ("database.sslcert", &fixture("client.pem")),
            ("database.sslkey", &fixture("other.key")),
        ])
        .expect_err("key of another certificate");
        assert!(
            err.to_string()
                .contains("database.sslkey: does not go with the certificate"),
            "{err}"
        );

        let err = parse(&[
            ("database.hostname", "not a host"),
            ("database.sslmode", "verify-full"),
            ("database.sslrootcert", &fixture("ca.pem")),
        ])
        .expect_err("name cannot be verified");
        assert!(err.to_string().contains("database.hostname: "), "{err}");

        // Files are not read when TLS is off.
        let c = parse(&[
            ("database.sslmode", "disable"),
            ("database.sslrootcert", "/nonexistent/root.crt"),
        ])
        .expect("disable ignores the files");
        assert_eq!(c.tls.mode, SslMode::Disable);
    }

    #[test]
    fn client_certificate_pem_and_der() {
        for key in ["client.key", "client.pk8"] {
            let c = parse(&[
                ("database.sslmode", "require"),
                ("database.sslcert", &fixture("client.pem")),
                ("database.sslkey", &fixture(key)),
            ])
            .unwrap_or_else(|e| panic!("{key}: {e}"));
            assert!(c.tls.has_client_certificate(), "{key}");
        }
    }

    #[test]
    fn sslfactory_is_ignored_with_a_warning() {
        let mut raw: RawConfig = [
            ("database.hostname", "127.0.0.1"),
            ("database.user", "cdc"),
            ("database.dbname", "app"),
            ("topic.prefix", "srv"),
            (
                "database.sslfactory",
                "org.postgresql.ssl.DefaultJavaSSLFactory",
            ),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let parsed = config_def().parse(&raw).expect("accepted");
        assert!(
            parsed
                .warnings
                .iter()
                .any(|w| w.starts_with("database.sslfactory: ignored")),
            "{:?}",
            parsed.warnings
        );
        raw.insert("database.sslfactroy".into(), "x".into());
        assert!(config_def().parse(&raw).is_err(), "a typo is still refused");
    }

    #[test]
    fn filters_and_key_columns() {
        let c = parse(&[
            ("table.include.list", "public.orders,inv\\..*"),
            ("column.exclude.list", "public.orders.secret"),
            ("message.key.columns", "public.orders:a,b; inv.x:id"),
            ("skipped.operations", "none"),
        ])
        .expect("valid");
        assert!(c.captures(&TableId::new("public", "orders")));
        assert!(!c.captures(&TableId::new("public", "orders2")));
        assert!(c.captures(&TableId::new("inv", "anything")));
        let orders = TableId::new("public", "orders");
        assert!(!c.captures_column(&orders, "secret"));
        assert!(c.captures_column(&orders, "amount"));
        assert_eq!(c.key_columns[&orders], vec!["a", "b"]);
        assert!(c.skipped_operations.is_empty());
        let err = parse(&[("message.key.columns", "orders:a")]).expect_err("unqualified");
        assert!(err.to_string().contains("schema.table"), "{err}");
    }
}
