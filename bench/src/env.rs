//! The test environment's servers and tools, from `.test-env/env` (written by
//! `scripts/test-env.sh up`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, Result};

/// Variables of `.test-env/env`.
pub struct TestEnv {
    vars: BTreeMap<String, String>,
}

impl TestEnv {
    /// Reads `$TRIB_TEST_ENV_FILE`, else `<repo>/.test-env/env`.
    pub fn load() -> Result<Self> {
        let path = match std::env::var_os("TRIB_TEST_ENV_FILE") {
            Some(p) => PathBuf::from(p),
            None => repo_root().join(".test-env/env"),
        };
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {}: start the test environment with scripts/test-env.sh up",
                path.display()
            )
        })?;
        let vars = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| {
                let v = v.trim().trim_matches('\'').trim_matches('"');
                (k.trim().to_owned(), v.to_owned())
            })
            .collect();
        Ok(TestEnv { vars })
    }

    /// A variable that must be set.
    pub fn get(&self, key: &str) -> Result<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .with_context(|| {
                format!("{key} is not set in the test environment file: run scripts/test-env.sh up")
            })
    }
}

/// The repository root: `$TRIB_REPO_ROOT` (set by scripts/bench.sh), else the source tree
/// this binary was built from.
pub fn repo_root() -> PathBuf {
    std::env::var_os("TRIB_REPO_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")))
}
