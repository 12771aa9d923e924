//! The real-server test environment started by `scripts/test-env.sh up`.
//!
//! `up` writes `.test-env/env` (plain `KEY=value` lines) in the repository root; [`TestEnv::load`]
//! reads it. Tests that need servers never skip: when the environment is not running they
//! panic with the command to run.
//!
//! Every test must use its own database, replication slot, publication, topic and bucket
//! ([`unique_name`]) so the suite can run in parallel against the shared servers.

#![allow(dead_code)] // each test module uses a different subset

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// What every server-backed test panics with when the environment is missing.
pub const NOT_RUNNING: &str = "test environment not running: run scripts/test-env.sh up";

/// Connection details of the running test servers, all on 127.0.0.1.
#[derive(Clone, Debug)]
pub struct TestEnv {
    /// MariaDB administrative user (`mysql://root@127.0.0.1:PORT`): creates databases and tables.
    pub mariadb_url: String,
    /// MariaDB least-privilege CDC user `cdc` (REPLICATION SLAVE, REPLICATION CLIENT,
    /// SELECT, RELOAD, LOCK TABLES).
    pub mariadb_cdc_url: String,
    /// PostgreSQL superuser, database `postgres`.
    pub pg_url: String,
    /// PostgreSQL role `cdc` (LOGIN REPLICATION, member of pg_read_all_data), database `postgres`.
    pub pg_cdc_url: String,
    /// Kafka-protocol broker (tansu), `host:port`.
    pub kafka_bootstrap: String,
    /// S3 endpoint (s3s-fs), e.g. `http://127.0.0.1:19000`; needs path-style addressing.
    pub s3_endpoint: String,
    pub s3_access_key: String,
    pub s3_secret_key: String,
    pub s3_region: String,
    /// Confluent-compatible schema registry, when one runs.
    pub schema_registry_url: Option<String>,
    /// `mariadb-binlog` (reference decoder to compare against).
    pub mariadb_binlog_bin: PathBuf,
    /// Directory of the PostgreSQL 15 binaries (`psql`, `pg_recvlogical`, ...).
    pub pg_bindir: PathBuf,
    /// `pg_recvlogical` (reference logical-replication client).
    pub pg_recvlogical_bin: PathBuf,
    /// `psql`.
    pub psql_bin: PathBuf,
    /// Python with confluent-kafka, fastavro, pyarrow and boto3 installed.
    pub python: PathBuf,
    /// Every `KEY=value` of the env file, including keys without a field above.
    pub vars: BTreeMap<String, String>,
}

impl TestEnv {
    /// Reads `.test-env/env` from the repository root (or the file named by
    /// `TRIB_TEST_ENV_FILE`) and checks the servers accept connections.
    ///
    /// # Panics
    /// With [`NOT_RUNNING`] when the file is missing or a server does not answer.
    pub fn load() -> TestEnv {
        static ENV: OnceLock<TestEnv> = OnceLock::new();
        ENV.get_or_init(|| {
            let path = env_file_path();
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(err) => panic!("{NOT_RUNNING} (cannot read {}: {err})", path.display()),
            };
            let env = TestEnv::parse(&text)
                .unwrap_or_else(|err| panic!("{NOT_RUNNING} ({}: {err})", path.display()));
            env.check_listening();
            env
        })
        .clone()
    }

    /// Builds a `TestEnv` from the text of an env file.
    pub fn parse(text: &str) -> Result<TestEnv, String> {
        let vars = parse_env_file(text);
        let get = |key: &str| -> Result<String, String> {
            match vars.get(key) {
                Some(value) if !value.is_empty() => Ok(value.clone()),
                _ => Err(format!("{key} missing or empty")),
            }
        };
        let path = |key: &str| get(key).map(PathBuf::from);
        Ok(TestEnv {
            mariadb_url: get("TRIB_MARIADB_URL")?,
            mariadb_cdc_url: get("TRIB_MARIADB_CDC_URL")?,
            pg_url: get("TRIB_PG_URL")?,
            pg_cdc_url: get("TRIB_PG_CDC_URL")?,
            kafka_bootstrap: get("TRIB_KAFKA_BOOTSTRAP")?,
            s3_endpoint: get("TRIB_S3_ENDPOINT")?,
            s3_access_key: get("TRIB_S3_ACCESS_KEY")?,
            s3_secret_key: get("TRIB_S3_SECRET_KEY")?,
            s3_region: get("TRIB_S3_REGION")?,
            schema_registry_url: get("TRIB_SCHEMA_REGISTRY_URL").ok(),
            mariadb_binlog_bin: path("TRIB_MARIADB_BINLOG_BIN")?,
            pg_bindir: path("TRIB_PG_BINDIR")?,
            pg_recvlogical_bin: path("TRIB_PG_RECVLOGICAL_BIN")?,
            psql_bin: path("TRIB_PSQL_BIN")?,
            python: path("TRIB_PYTHON")?,
            vars,
        })
    }

    /// Any value of the env file, e.g. `env.var("TRIB_PG_DATADIR")`.
    pub fn var(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }

    /// Fails fast, with the command to run, when a server of a stale env file is gone
    /// (e.g. after a reboot), instead of letting each test time out on its own.
    fn check_listening(&self) {
        let targets = [
            ("TRIB_MARIADB_URL", host_port(&self.mariadb_url)),
            ("TRIB_PG_URL", host_port(&self.pg_url)),
            ("TRIB_KAFKA_BOOTSTRAP", Some(self.kafka_bootstrap.clone())),
            ("TRIB_S3_ENDPOINT", host_port(&self.s3_endpoint)),
        ];
        for (key, target) in targets {
            let Some(addr) = target.as_deref().and_then(|t| t.parse::<SocketAddr>().ok()) else {
                panic!("{NOT_RUNNING} ({key} has no 127.0.0.1:PORT address: {target:?})");
            };
            if let Err(err) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                panic!("{NOT_RUNNING} (nothing accepts connections on {addr} for {key}: {err})");
            }
        }
    }
}

/// `<repo>/.test-env/env`, or `$TRIB_TEST_ENV_FILE` when set. The repository root is the
/// nearest ancestor of the crate (this module is shared by the root package and the
/// connector crates) that holds `scripts/test-env.sh`.
pub fn env_file_path() -> PathBuf {
    match std::env::var_os("TRIB_TEST_ENV_FILE") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => {
            let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
            let root = crate_dir
                .ancestors()
                .find(|dir| dir.join("scripts").join("test-env.sh").is_file())
                .unwrap_or(crate_dir);
            root.join(".test-env").join("env")
        }
    }
}

/// Parses `KEY=value` lines: `#` comments, blank lines, an optional `export ` prefix and
/// values wrapped in matching single or double quotes are accepted.
pub fn parse_env_file(text: &str) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        let unquoted = ['\'', '"']
            .iter()
            .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
            .unwrap_or(value);
        vars.insert(key.trim().to_owned(), unquoted.to_owned());
    }
    vars
}

/// `host:port` of a URL such as `mysql://user:pw@127.0.0.1:13306/db?x=y`.
pub fn host_port(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    Some(host_port.to_owned())
}

/// The same URL with its database (path) replaced, keeping any `?query`:
/// `with_database("postgres://u:p@h:1/postgres", "t1")` is `postgres://u:p@h:1/t1`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// A name no other test (in this or any earlier run) uses: `prefix` followed by 16 random
/// hex digits. Only `[a-z0-9]`, starting with a letter, so the same name is valid as an
/// unquoted MariaDB/PostgreSQL identifier, a replication slot or publication, a Kafka topic,
/// a consumer group and an S3 bucket (3..=63 chars).
///
/// # Panics
/// When `prefix` is not `[a-z][a-z0-9]*` or longer than 40 chars (a bug in the test).
pub fn unique_name(prefix: &str) -> String {
    let valid = prefix.len() <= 40
        && prefix.starts_with(|c: char| c.is_ascii_lowercase())
        && prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    assert!(
        valid,
        "unique_name prefix must match [a-z][a-z0-9]{{0,39}}, got {prefix:?}"
    );
    format!("{prefix}{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_quoted_and_exported_lines() {
        let vars = parse_env_file("# c\n\nA=1\nexport B='two words'\nC=\"x=y\"\nD=\n");
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["B"], "two words");
        assert_eq!(vars["C"], "x=y");
        assert_eq!(vars["D"], "");
    }

    #[test]
    fn missing_key_is_an_error() {
        let err = TestEnv::parse("TRIB_MARIADB_URL=mysql://root@127.0.0.1:1\n")
            .expect_err("incomplete env file must be rejected");
        assert!(err.contains("TRIB_MARIADB_CDC_URL"), "{err}");
    }

    #[test]
    fn url_helpers() {
        assert_eq!(
            host_port("mysql://cdc:cdc@127.0.0.1:13306").as_deref(),
            Some("127.0.0.1:13306")
        );
        assert_eq!(
            host_port("http://127.0.0.1:19000/").as_deref(),
            Some("127.0.0.1:19000")
        );
        assert_eq!(
            with_database("postgres://u:p@h:1/postgres", "t1"),
            "postgres://u:p@h:1/t1"
        );
        assert_eq!(with_database("mysql://u@h:1", "d"), "mysql://u@h:1/d");
        assert_eq!(
            with_database("postgres://h:1/a?sslmode=disable", "b"),
            "postgres://h:1/b?sslmode=disable"
        );
    }

    #[test]
    fn unique_names_differ_and_fit_every_namespace() {
        let a = unique_name("smoke");
        let b = unique_name("smoke");
        assert_ne!(a, b);
        assert!(
            a.len() <= 63
                && a.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
    }

    #[test]
    #[should_panic(expected = "unique_name prefix")]
    fn unique_name_rejects_underscores() {
        unique_name("bad_prefix");
    }
}
