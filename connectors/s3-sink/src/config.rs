//! The S3 sink's configuration, with Confluent's S3 sink connector names, and its pure
//! validation.

use std::path::PathBuf;
use std::time::Duration;

use tributary_runtime::config::{ConfigDef, ConfigErrors, FieldType, Parsed, Secret};

use crate::compatibility::SchemaCompatibility;
use crate::partitioner::{PartitionerConfig, TimestampExtractor};
use crate::path_format::{PathFormat, TimeZone};

/// Confluent's class names of the formats, by our format.
pub const AVRO_FORMAT: &str = "io.confluent.connect.s3.format.avro.AvroFormat";
pub const JSON_FORMAT: &str = "io.confluent.connect.s3.format.json.JsonFormat";
pub const PARQUET_FORMAT: &str = "io.confluent.connect.s3.format.parquet.ParquetFormat";
pub const BYTES_FORMAT: &str = "io.confluent.connect.s3.format.bytearray.ByteArrayFormat";

const MIB: i64 = 1024 * 1024;
/// S3's minimum part size (every part but the last).
pub const MIN_PART_SIZE: i64 = 5 * MIB;
/// S3's maximum part size.
pub const MAX_PART_SIZE: i64 = 5 * 1024 * MIB;

/// The object format (`format.class`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatKind {
    /// Avro object container files (`.avro`).
    Avro,
    /// One JSON document per line (`.json`, `.json.gz`).
    Json,
    /// Parquet with a schema derived from the Connect schema (`.parquet`).
    Parquet,
    /// Raw value bytes, separated by `format.bytearray.separator` (`.bin`).
    Bytes,
}

/// Avro container block codec (`avro.codec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AvroCodec {
    Null,
    Deflate,
}

/// Parquet page codec (`parquet.codec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParquetCodec {
    None,
    Snappy,
}

/// Whole-object compression of JSON and byte-array objects (`s3.compression.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
}

/// What to do with a record whose value is null (`behavior.on.null.values`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NullBehavior {
    /// The task fails (Confluent's default).
    Fail,
    /// The record is skipped (its offset still counts as consumed).
    Ignore,
    /// JSON writes `null`, byte-array writes an empty record.
    Write,
}

/// Where credentials come from.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// `aws.access.key.id` / `aws.secret.access.key`.
    Static {
        access_key: String,
        secret_key: Secret,
    },
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`) only.
    Environment,
    /// The AWS default chain: environment, profile files, web identity, ECS, EC2 IMDS.
    DefaultChain,
}

/// A validated S3 sink configuration.
#[derive(Debug, Clone)]
pub struct S3SinkConfig {
    pub bucket: String,
    pub region: String,
    /// Custom endpoint for S3-compatible servers (`store.url`).
    pub endpoint: Option<String>,
    pub path_style: bool,
    pub credentials: Credentials,
    pub topics_dir: String,
    pub directory_delim: String,
    pub file_delim: String,
    pub format: FormatKind,
    pub avro_codec: AvroCodec,
    pub parquet_codec: ParquetCodec,
    pub compression: Compression,
    pub bytes_separator: Vec<u8>,
    pub bytes_extension: String,
    pub flush_size: u64,
    /// Record-time rotation (`rotate.interval.ms`).
    pub rotate_interval_ms: Option<i64>,
    /// Wall-clock rotation (`rotate.schedule.interval.ms`).
    pub rotate_schedule: Option<Duration>,
    pub partitioner: PartitionerConfig,
    pub part_size: usize,
    pub null_behavior: NullBehavior,
    /// `schema.compatibility`: what a schema change does to the open files
    /// ([`crate::compatibility`]).
    pub schema_compatibility: SchemaCompatibility,
    /// Attempts per S3 request (`s3.part.retries` + 1).
    pub max_attempts: u32,
    /// Where open files are buffered (`s3.spill.dir`; default the system temp directory).
    pub spill_dir: Option<PathBuf>,
}

impl S3SinkConfig {
    /// The connector's own fields.
    pub fn config_def() -> ConfigDef {
        ConfigDef::new()
            .required("s3.bucket.name", FieldType::String, "The S3 bucket objects are written to.")
            .optional("s3.region", FieldType::String, "us-west-2", "AWS region of the bucket.")
            .maybe("store.url", FieldType::String, "Custom S3 endpoint, e.g. http://127.0.0.1:9000 for MinIO or other S3-compatible servers.")
            .maybe("s3.path.style.access.enabled", FieldType::Bool, "Path-style addressing (bucket in the path). Default: true with store.url, false otherwise.")
            .maybe("aws.access.key.id", FieldType::String, "Static access key id (with aws.secret.access.key). Default: the AWS default credentials chain.")
            .maybe("aws.secret.access.key", FieldType::Password, "Static secret access key.")
            .optional("s3.credentials.provider.class", FieldType::String, "com.amazonaws.auth.DefaultAWSCredentialsProviderChain", "DefaultAWSCredentialsProviderChain (environment, profile, web identity, container, instance metadata) or EnvironmentVariableCredentialsProvider.")
            .optional("topics.dir", FieldType::String, "topics", "Top-level directory of the objects.")
            .optional("directory.delim", FieldType::String, "/", "Directory delimiter of object keys.")
            .optional("file.delim", FieldType::String, "+", "Delimiter between topic, partition and start offset in file names.")
            .required("format.class", FieldType::String, "io.confluent.connect.s3.format.{avro.AvroFormat, json.JsonFormat, parquet.ParquetFormat, bytearray.ByteArrayFormat} (or avro, json, parquet, bytearray).")
            .optional("avro.codec", FieldType::Enum { values: &["null", "deflate"] }, "null", "Avro container block codec.")
            .optional("parquet.codec", FieldType::Enum { values: &["none", "snappy"] }, "snappy", "Parquet page codec.")
            .optional("s3.compression.type", FieldType::Enum { values: &["none", "gzip"] }, "none", "Whole-object compression of JSON and byte-array objects.")
            .optional("format.bytearray.separator", FieldType::String, "\\n", "Separator between records of ByteArrayFormat objects (escapes \\n, \\r, \\t understood).")
            .optional("format.bytearray.extension", FieldType::String, ".bin", "File extension of ByteArrayFormat objects.")
            .required("flush.size", FieldType::Int { min: 1, max: i64::MAX }, "Records per object: a topic partition's open objects are committed when it has written this many records.")
            .optional("rotate.interval.ms", FieldType::Int { min: -1, max: i64::MAX }, "-1", "Commit a topic partition's objects when a record's timestamp (from timestamp.extractor) is this far past the first record of the open objects. Deterministic: exactly-once keys.")
            .optional("rotate.schedule.interval.ms", FieldType::Int { min: -1, max: i64::MAX }, "-1", "Commit open objects every this many wall-clock ms. Not deterministic: a replay after a crash can cut objects differently (duplicates across keys).")
            .optional("partitioner.class", FieldType::String, "io.confluent.connect.storage.partitioner.DefaultPartitioner", "DefaultPartitioner, FieldPartitioner, TimeBasedPartitioner, DailyPartitioner or HourlyPartitioner (io.confluent.connect.storage.partitioner.*).")
            .maybe("partition.field.name", FieldType::List, "FieldPartitioner: record value fields the objects are partitioned by (dotted for nested).")
            .maybe("path.format", FieldType::String, "TimeBasedPartitioner: Joda-Time pattern of the partition directory, e.g. 'year'=YYYY/'month'=MM/'day'=dd/'hour'=HH.")
            .maybe("partition.duration.ms", FieldType::Int { min: 1, max: i64::MAX }, "TimeBasedPartitioner: the duration of one time partition.")
            .optional("locale", FieldType::String, "en-US", "Locale of path.format (only numeric fields are supported, so it does not change output).")
            .optional("timezone", FieldType::String, "UTC", "Time zone of path.format: UTC, an offset like +02:00, or an IANA name like Europe/Paris.")
            .optional("timestamp.extractor", FieldType::Enum { values: &["record", "recordfield", "wallclock"] }, "Wallclock", "Time-based partitioning and rotate.interval.ms take the time from the record timestamp (Record), a value field (RecordField) or the wall clock (Wallclock, not deterministic).")
            .maybe("timestamp.field", FieldType::String, "RecordField: the value field with the timestamp (dotted for nested): epoch ms, a Connect Timestamp/Date, Debezium Micro/NanoTimestamp, or an ISO-8601 string.")
            .optional("s3.part.size", FieldType::Int { min: MIN_PART_SIZE, max: MAX_PART_SIZE }, "26214400", "Multipart upload part size in bytes (min 5 MiB).")
            .optional("s3.part.retries", FieldType::Int { min: 0, max: 100 }, "3", "Retries of a failed S3 request.")
            .optional("behavior.on.null.values", FieldType::Enum { values: &["fail", "ignore", "write"] }, "fail", "Records with a null value (tombstones): fail the task, ignore them, or write them (JSON: null; byte array: empty).")
            .optional("schema.compatibility", FieldType::Enum { values: &["none", "backward", "forward", "full"] }, "NONE", "NONE: every value schema change commits the open objects. BACKWARD/FULL: a record with a newer schema version commits them and its schema becomes current; records with an older version of the same schema are projected onto the current one (missing fields take their defaults, or null) and written to the open objects. FORWARD: the reverse (newer records are projected onto the older current schema). Records that cannot be projected (another schema name, no version, types that do not promote) commit the open objects.")
            .maybe("s3.spill.dir", FieldType::String, "Local directory open objects are buffered in (default: the system temp directory).")
            .ignore("storage.class", "the only storage is S3")
            .ignore("s3.acl.canned", "objects get the bucket's default ACL")
            .ignore("s3.ssea.name", "server-side encryption follows the bucket's default")
            .ignore("s3.sse.", "server-side encryption follows the bucket's default")
            .ignore("s3.retry.backoff.ms", "the AWS SDK's standard retry backoff is used")
            .ignore("s3.http.send.expect.continue", "not needed by the AWS SDK for Rust")
            .ignore("s3.wan.mode", "transfer acceleration is not supported")
            .ignore("schema.cache.size", "schemas are cached by id")
            .ignore("enhanced.avro.schema.support", "Avro objects carry the writer schema unchanged")
            .ignore("connect.meta.data", "Avro objects carry the writer schema unchanged")
            .ignore("filename.offset.zero.pad.width", "start offsets are zero-padded to 10 digits as Confluent's default")
            .ignore("retry.backoff.ms", "the AWS SDK's standard retry backoff is used")
            .ignore("store.kafka.keys", "keys are not stored")
            .ignore("store.kafka.headers", "headers are not stored")
    }

    /// Checks a parsed config; collects every error.
    pub fn from_parsed(config: &Parsed) -> Result<S3SinkConfig, ConfigErrors> {
        let mut errors = ConfigErrors::default();
        let bucket = config.string("s3.bucket.name");
        if let Err(message) = check_bucket(&bucket) {
            errors.push("s3.bucket.name", message);
        }
        let endpoint = config
            .str("store.url")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        if let Some(url) = &endpoint
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            errors.push(
                "store.url",
                format!("must start with http:// or https://, got {url:?}"),
            );
        }
        let path_style = if config.is_set("s3.path.style.access.enabled") {
            config.bool("s3.path.style.access.enabled")
        } else {
            endpoint.is_some()
        };
        let credentials = match (
            config.str("aws.access.key.id"),
            config.secret("aws.secret.access.key"),
        ) {
            (Some(id), Some(secret)) if !id.is_empty() => Credentials::Static {
                access_key: id.to_owned(),
                secret_key: secret,
            },
            (Some(_), None) => {
                errors.push(
                    "aws.secret.access.key",
                    "is required with aws.access.key.id",
                );
                Credentials::DefaultChain
            }
            (None, Some(_)) => {
                errors.push(
                    "aws.access.key.id",
                    "is required with aws.secret.access.key",
                );
                Credentials::DefaultChain
            }
            _ => {
                let provider = config.string("s3.credentials.provider.class");
                let simple = provider.rsplit('.').next().unwrap_or(&provider);
                match simple {
                    "DefaultAWSCredentialsProviderChain"
                    | "DefaultCredentialsProvider"
                    | "default" => Credentials::DefaultChain,
                    "EnvironmentVariableCredentialsProvider" | "env" => Credentials::Environment,
                    _ => {
                        errors.push("s3.credentials.provider.class", format!("unsupported provider {provider:?}; use DefaultAWSCredentialsProviderChain, EnvironmentVariableCredentialsProvider, or aws.access.key.id/aws.secret.access.key"));
                        Credentials::DefaultChain
                    }
                }
            }
        };
        let format_class = config.string("format.class");
        let format = match parse_format(&format_class) {
            Some(f) => f,
            None => {
                errors.push("format.class", format!("unknown format {format_class:?}; use {AVRO_FORMAT}, {JSON_FORMAT}, {PARQUET_FORMAT} or {BYTES_FORMAT}"));
                FormatKind::Json
            }
        };
        let compression = match config.str("s3.compression.type") {
            Some("gzip") => Compression::Gzip,
            _ => Compression::None,
        };
        if compression == Compression::Gzip
            && matches!(format, FormatKind::Avro | FormatKind::Parquet)
        {
            errors.push("s3.compression.type", "gzip applies to JSON and byte-array objects; use avro.codec or parquet.codec for Avro and Parquet");
        }
        let null_behavior = match config.str("behavior.on.null.values") {
            Some("ignore") => NullBehavior::Ignore,
            Some("write") => NullBehavior::Write,
            _ => NullBehavior::Fail,
        };
        if null_behavior == NullBehavior::Write
            && matches!(format, FormatKind::Avro | FormatKind::Parquet)
        {
            errors.push("behavior.on.null.values", "write is supported with JSON and byte-array formats only (Avro and Parquet records need a value); use ignore or fail");
        }
        let rotate_interval_ms = config.int("rotate.interval.ms").filter(|&n| n > 0);
        let rotate_schedule = config
            .int("rotate.schedule.interval.ms")
            .filter(|&n| n > 0)
            .map(|n| Duration::from_millis(n as u64));
        if config.int("rotate.interval.ms") == Some(0) {
            errors.push("rotate.interval.ms", "must be positive, or -1 to disable");
        }
        if config.int("rotate.schedule.interval.ms") == Some(0) {
            errors.push(
                "rotate.schedule.interval.ms",
                "must be positive, or -1 to disable",
            );
        }
        let partitioner = parse_partitioner(config, &mut errors);
        let spill_dir = config
            .str("s3.spill.dir")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from);
        if let Some(dir) = &spill_dir
            && dir.exists()
            && !dir.is_dir()
        {
            errors.push(
                "s3.spill.dir",
                format!("{} is not a directory", dir.display()),
            );
        }
        let result = S3SinkConfig {
            bucket,
            region: config.string("s3.region"),
            endpoint,
            path_style,
            credentials,
            topics_dir: config.string("topics.dir").trim_matches('/').to_owned(),
            directory_delim: config.string("directory.delim"),
            file_delim: config.string("file.delim"),
            format,
            avro_codec: if config.str("avro.codec") == Some("deflate") {
                AvroCodec::Deflate
            } else {
                AvroCodec::Null
            },
            parquet_codec: if config.str("parquet.codec") == Some("none") {
                ParquetCodec::None
            } else {
                ParquetCodec::Snappy
            },
            compression,
            bytes_separator: unescape(&config.string("format.bytearray.separator")).into_bytes(),
            bytes_extension: config.string("format.bytearray.extension"),
            flush_size: config.int("flush.size").unwrap_or(1).max(1) as u64,
            rotate_interval_ms,
            rotate_schedule,
            partitioner,
            part_size: config.int("s3.part.size").unwrap_or(25 * MIB) as usize,
            null_behavior,
            schema_compatibility: SchemaCompatibility::parse(
                &config.string("schema.compatibility"),
            )
            .unwrap_or(SchemaCompatibility::None),
            max_attempts: config.int("s3.part.retries").unwrap_or(3) as u32 + 1,
            spill_dir,
        };
        if result.directory_delim.is_empty() {
            errors.push("directory.delim", "must not be empty");
        }
        if result.file_delim.is_empty() {
            errors.push("file.delim", "must not be empty");
        }
        errors.into_result(result)
    }

    /// The file extension of this format, with its leading dot.
    pub fn extension(&self) -> String {
        let base = match self.format {
            FormatKind::Avro => ".avro".to_owned(),
            FormatKind::Json => ".json".to_owned(),
            FormatKind::Parquet => match self.parquet_codec {
                ParquetCodec::None => ".parquet".to_owned(),
                ParquetCodec::Snappy => ".snappy.parquet".to_owned(),
            },
            FormatKind::Bytes => self.bytes_extension.clone(),
        };
        match self.compression {
            Compression::Gzip => format!("{base}.gz"),
            Compression::None => base,
        }
    }
}

fn parse_format(class: &str) -> Option<FormatKind> {
    let simple = class
        .trim()
        .rsplit('.')
        .next()
        .unwrap_or(class)
        .to_ascii_lowercase();
    Some(match simple.as_str() {
        "avroformat" | "avro" => FormatKind::Avro,
        "jsonformat" | "json" => FormatKind::Json,
        "parquetformat" | "parquet" => FormatKind::Parquet,
        "bytearrayformat" | "bytearray" | "bytes" => FormatKind::Bytes,
        _ => return None,
    })
}

fn parse_extractor(config: &Parsed, errors: &mut ConfigErrors) -> TimestampExtractor {
    match config.str("timestamp.extractor") {
        Some("record") => TimestampExtractor::Record,
        Some("recordfield") => match config.str("timestamp.field").filter(|s| !s.is_empty()) {
            Some(field) => {
                TimestampExtractor::RecordField(field.split('.').map(str::to_owned).collect())
            }
            None => {
                errors.push(
                    "timestamp.field",
                    "is required with timestamp.extractor=RecordField",
                );
                TimestampExtractor::Record
            }
        },
        _ => TimestampExtractor::Wallclock,
    }
}

fn time_based(
    config: &Parsed,
    path: Option<&str>,
    duration_ms: Option<i64>,
    errors: &mut ConfigErrors,
) -> PartitionerConfig {
    let extractor = parse_extractor(config, errors);
    let zone = TimeZone::parse(&config.string("timezone"))
        .map_err(|message| errors.push("timezone", message))
        .ok();
    let Some(path) = path.filter(|p| !p.is_empty()) else {
        errors.push("path.format", "is required with TimeBasedPartitioner");
        return PartitionerConfig::Default;
    };
    let Some(duration_ms) = duration_ms else {
        errors.push(
            "partition.duration.ms",
            "is required with TimeBasedPartitioner",
        );
        return PartitionerConfig::Default;
    };
    let format = match PathFormat::parse(path) {
        Ok(f) => f,
        Err(message) => {
            errors.push("path.format", message);
            return PartitionerConfig::Default;
        }
    };
    match zone {
        Some(zone) => PartitionerConfig::Time {
            format,
            duration_ms,
            zone,
            extractor,
        },
        None => PartitionerConfig::Default,
    }
}

fn parse_partitioner(config: &Parsed, errors: &mut ConfigErrors) -> PartitionerConfig {
    let class = config.string("partitioner.class");
    let simple = class.trim().rsplit('.').next().unwrap_or(&class).to_owned();
    match simple.as_str() {
        "DefaultPartitioner" | "default" => PartitionerConfig::Default,
        "FieldPartitioner" | "field" => {
            let names = config.list("partition.field.name");
            if names.is_empty() {
                errors.push("partition.field.name", "is required with FieldPartitioner");
            }
            PartitionerConfig::Field {
                fields: names
                    .iter()
                    .map(|f| f.split('.').map(str::to_owned).collect())
                    .collect(),
                names,
            }
        }
        "TimeBasedPartitioner" | "time" => time_based(
            config,
            config.str("path.format"),
            config.int("partition.duration.ms"),
            errors,
        ),
        "DailyPartitioner" | "daily" => time_based(
            config,
            Some("'year'=YYYY/'month'=MM/'day'=dd"),
            Some(86_400_000),
            errors,
        ),
        "HourlyPartitioner" | "hourly" => time_based(
            config,
            Some("'year'=YYYY/'month'=MM/'day'=dd/'hour'=HH"),
            Some(3_600_000),
            errors,
        ),
        _ => {
            errors.push("partitioner.class", format!("unknown partitioner {class:?}; use DefaultPartitioner, FieldPartitioner, TimeBasedPartitioner, DailyPartitioner or HourlyPartitioner"));
            PartitionerConfig::Default
        }
    }
}

/// Bucket names per S3's rules (3-63 characters, lowercase letters, digits, dots, hyphens).
fn check_bucket(bucket: &str) -> Result<(), String> {
    let ok_chars = bucket
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
    if bucket.len() < 3 || bucket.len() > 63 || !ok_chars {
        return Err(format!(
            "must be 3 to 63 lowercase letters, digits, dots or hyphens, got {bucket:?}"
        ));
    }
    Ok(())
}

/// `\n`, `\r`, `\t` and `\\` escapes, as written in a config file.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_runtime::config::RawConfig;

    fn parse(pairs: &[(&str, &str)]) -> Result<S3SinkConfig, ConfigErrors> {
        let raw: RawConfig = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let parsed = S3SinkConfig::config_def().parse(&raw)?;
        S3SinkConfig::from_parsed(&parsed)
    }

    #[test]
    fn confluent_names_parse() {
        let c = parse(&[
            ("s3.bucket.name", "my-bucket"),
            ("format.class", AVRO_FORMAT),
            ("flush.size", "1000"),
            ("store.url", "http://127.0.0.1:19000"),
            (
                "partitioner.class",
                "io.confluent.connect.storage.partitioner.TimeBasedPartitioner",
            ),
            ("path.format", "'year'=YYYY/'month'=MM/'day'=dd"),
            ("partition.duration.ms", "3600000"),
            ("timestamp.extractor", "Record"),
            ("schema.compatibility", "Backward"),
            ("aws.access.key.id", "ak"),
            ("aws.secret.access.key", "sk"),
        ])
        .expect("valid");
        assert_eq!(c.format, FormatKind::Avro);
        assert_eq!(c.schema_compatibility, SchemaCompatibility::Backward);
        assert!(c.path_style);
        assert_eq!(c.topics_dir, "topics");
        assert_eq!(c.part_size, 25 * 1024 * 1024);
        assert!(matches!(
            c.partitioner,
            PartitionerConfig::Time {
                duration_ms: 3_600_000,
                extractor: TimestampExtractor::Record,
                ..
            }
        ));
        assert!(matches!(c.credentials, Credentials::Static { .. }));
        assert_eq!(c.extension(), ".avro");
    }

    #[test]
    fn errors_name_fields() {
        let err = parse(&[
            ("s3.bucket.name", "Bad_Bucket"),
            (
                "format.class",
                "io.confluent.connect.s3.format.avro.AvroFormat",
            ),
            ("flush.size", "10"),
            ("s3.compression.type", "gzip"),
            ("partitioner.class", "FieldPartitioner"),
            ("s3.part.size", "1024"),
        ])
        .expect_err("invalid");
        let text = err.to_string();
        assert!(
            text.contains("s3.part.size: must be between 5242880"),
            "{text}"
        );
        let err = parse(&[
            ("s3.bucket.name", "Bad_Bucket"),
            ("format.class", "avro"),
            ("flush.size", "10"),
            ("s3.compression.type", "gzip"),
            ("partitioner.class", "FieldPartitioner"),
            ("timestamp.extractor", "RecordField"),
        ])
        .expect_err("invalid");
        let text = err.to_string();
        assert!(text.contains("s3.bucket.name:"), "{text}");
        assert!(text.contains("s3.compression.type:"), "{text}");
        assert!(text.contains("partition.field.name: is required"), "{text}");
        let err = parse(&[
            ("s3.bucket.name", "b-1"),
            ("format.class", "json"),
            ("flush.size", "10"),
            ("partitioner.class", "TimeBasedPartitioner"),
            ("path.format", "YYYY"),
            ("partition.duration.ms", "1000"),
            ("timestamp.extractor", "RecordField"),
            ("timezone", "Mars/Olympus"),
        ])
        .expect_err("invalid");
        let text = err.to_string();
        assert!(text.contains("timestamp.field: is required"), "{text}");
        assert!(text.contains("timezone:"), "{text}");
    }

    #[test]
    fn extensions_follow_confluent() {
        let c = parse(&[
            ("s3.bucket.name", "b-1"),
            ("format.class", JSON_FORMAT),
            ("flush.size", "1"),
            ("s3.compression.type", "gzip"),
        ])
        .expect("valid");
        assert_eq!(c.extension(), ".json.gz");
        assert_eq!(c.schema_compatibility, SchemaCompatibility::None);
        let c = parse(&[
            ("s3.bucket.name", "b-1"),
            ("format.class", PARQUET_FORMAT),
            ("flush.size", "1"),
        ])
        .expect("valid");
        assert_eq!(c.extension(), ".snappy.parquet");
        let c = parse(&[
            ("s3.bucket.name", "b-1"),
            ("format.class", BYTES_FORMAT),
            ("flush.size", "1"),
        ])
        .expect("valid");
        assert_eq!(c.extension(), ".bin");
        assert_eq!(c.bytes_separator, b"\n");
    }
}
