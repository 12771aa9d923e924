//! GitOps: a directory of connector files (YAML/JSON) is the source of truth.
//!
//! [`DirectoryReconciler`] runs inside the worker (`tributary run --connectors-dir DIR`):
//! every few seconds it compares the files with the running connectors: a new file creates
//! its connector, a changed file updates it (its tasks restart; others are untouched), a
//! removed file deletes (or stops) it. A file that does not parse or validate is reported
//! once and left alone, and so is the connector it manages: a typo never deletes anything.
//! Which connectors came from files is persisted in `<data_dir>/managed-connectors.json`,
//! so a file removed while the worker was down is noticed. Connectors created over REST are
//! not touched; REST config changes to a file-managed connector are refused (409).
//!
//! [`plan`] is the pure diff behind `tributary plan DIR` / `apply DIR`, which talk to a
//! running worker over REST.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{info, warn};

use super::redact::{HIDDEN, is_secret};
use crate::config::{ConfigErrors, ConnectorConfig, RawConfig, parse_connector_document};
use crate::durable_file::write_atomic;
use crate::worker::{Worker, WorkerError};

/// What happens to a file-managed connector whose file is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnRemoved {
    #[default]
    Delete,
    /// Stop it and leave it (no longer file-managed) for someone to delete.
    Stop,
}

/// What one reconcile round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub removed: Vec<String>,
    /// Files that could not be used this round, with why.
    pub invalid: Vec<(PathBuf, String)>,
}

impl ReconcileReport {
    pub fn changed(&self) -> bool {
        !(self.created.is_empty() && self.updated.is_empty() && self.removed.is_empty())
    }
}

#[derive(Serialize, Deserialize, Default)]
struct Persisted {
    connectors: BTreeMap<String, PathBuf>,
}

/// Keeps the worker's connectors in line with a directory of connector files.
pub struct DirectoryReconciler {
    worker: Arc<Worker>,
    dir: PathBuf,
    on_removed: OnRemoved,
    state_path: PathBuf,
    managed: Mutex<BTreeMap<String, PathBuf>>,
    last_problems: Mutex<Vec<(PathBuf, String)>>,
    writes: Arc<tokio::sync::Mutex<()>>,
}

/// Connector files of a directory, sorted.
pub fn connector_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        })
        .collect();
    paths.sort();
    Ok(paths)
}

/// Parses every connector file; per file either the config or why it is unusable.
pub fn read_connector_files(
    dir: &Path,
) -> std::io::Result<Vec<(PathBuf, Result<ConnectorConfig, ConfigErrors>)>> {
    let mut out = Vec::new();
    for path in connector_files(dir)? {
        let parsed = match std::fs::read_to_string(&path) {
            Ok(text) => parse_connector_document(&text, &path),
            Err(e) => Err(ConfigErrors::single("<file>", format!("cannot read: {e}"))),
        };
        out.push((path, parsed));
    }
    Ok(out)
}

impl DirectoryReconciler {
    pub fn new(worker: Arc<Worker>, dir: &Path, on_removed: OnRemoved) -> Self {
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let state_path = worker.data_dir().join("managed-connectors.json");
        let persisted: Persisted = std::fs::read(&state_path)
            .ok()
            .and_then(|raw| serde_json::from_slice(&raw).ok())
            .unwrap_or_default();
        // Only files of this directory: another directory's connectors are not ours to remove.
        let managed = persisted
            .connectors
            .into_iter()
            .filter(|(_, path)| path.parent() == Some(dir.as_path()))
            .collect();
        DirectoryReconciler {
            worker,
            dir,
            on_removed,
            state_path,
            managed: Mutex::new(managed),
            last_problems: Mutex::new(Vec::new()),
            writes: Arc::default(),
        }
    }

    /// The file managing `name`, if any.
    pub fn managed_file(&self, name: &str) -> Option<PathBuf> {
        self.managed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// The lock a round holds; REST changes take it too.
    pub fn write_lock(&self) -> Arc<tokio::sync::Mutex<()>> {
        self.writes.clone()
    }

    /// One round: apply created, changed and removed files.
    pub async fn reconcile(&self) -> Result<ReconcileReport, WorkerError> {
        let _writing = self.writes.lock().await;
        let mut report = ReconcileReport::default();
        let files = read_connector_files(&self.dir).map_err(|source| WorkerError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let mut desired: BTreeMap<String, (PathBuf, ConnectorConfig)> = BTreeMap::new();
        let mut held_files: BTreeSet<PathBuf> = BTreeSet::new();
        for (path, parsed) in files {
            let checked = parsed.and_then(|c| self.worker.validate(&c).map(|_| c));
            match checked {
                Ok(config) => {
                    if let Some((other, _)) = desired.get(&config.name) {
                        report.invalid.push((
                            path.clone(),
                            format!(
                                "connector {} is also defined in {}",
                                config.name,
                                other.display()
                            ),
                        ));
                        held_files.insert(path);
                        continue;
                    }
                    desired.insert(config.name.clone(), (path, config));
                }
                Err(errors) => {
                    report.invalid.push((path.clone(), errors.to_string()));
                    held_files.insert(path);
                }
            }
        }
        self.report_problems(&report.invalid);
        let mut managed = self
            .managed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let before = managed.clone();
        let desired_names: BTreeSet<String> = desired.keys().cloned().collect();
        for (name, (path, config)) in desired {
            match self.worker.connector_config(&name).await {
                Err(WorkerError::NotFound(_)) => {
                    info!(connector = %name, file = %path.display(), "connector file added; creating");
                    self.worker
                        .create(config, crate::worker::state::TargetState::Running)
                        .await?;
                    report.created.push(name.clone());
                }
                Ok(current) if current == config => {}
                Ok(current) => {
                    let keys = crate::worker::admin::changed_keys(&current.config, &config.config);
                    info!(connector = %name, file = %path.display(), changed = ?keys, "connector file changed; updating and restarting");
                    self.worker.put_config(config).await?;
                    report.updated.push(name.clone());
                }
                Err(e) => return Err(e),
            }
            managed.insert(name, path);
        }
        // Managed connectors no file defines any more (file removed, or now naming another
        // connector); connectors of files that failed to parse are held as they are.
        let gone: Vec<(String, PathBuf)> = managed
            .iter()
            .filter(|(name, path)| !desired_names.contains(*name) && !held_files.contains(*path))
            .map(|(n, p)| (n.clone(), p.clone()))
            .collect();
        for (name, path) in gone {
            let result = match self.on_removed {
                OnRemoved::Delete => {
                    info!(connector = %name, file = %path.display(), "connector file removed; deleting");
                    self.worker.delete(&name).await
                }
                OnRemoved::Stop => {
                    info!(connector = %name, file = %path.display(), "connector file removed; stopping");
                    self.worker.stop(&name).await
                }
            };
            match result {
                Ok(()) | Err(WorkerError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
            managed.remove(&name);
            report.removed.push(name);
        }
        if managed != before {
            self.persist(&managed)?;
        }
        *self.managed.lock().unwrap_or_else(|p| p.into_inner()) = managed;
        Ok(report)
    }

    fn persist(&self, managed: &BTreeMap<String, PathBuf>) -> Result<(), WorkerError> {
        let data = serde_json::to_vec_pretty(&Persisted {
            connectors: managed.clone(),
        })
        .map_err(|e| WorkerError::Io {
            path: self.state_path.clone(),
            source: std::io::Error::other(e),
        })?;
        write_atomic(&self.state_path, &data).map_err(|source| WorkerError::Io {
            path: self.state_path.clone(),
            source,
        })
    }

    /// Logs problems with files when they change (not every round).
    fn report_problems(&self, problems: &[(PathBuf, String)]) {
        let mut last = self.last_problems.lock().unwrap_or_else(|p| p.into_inner());
        if last.as_slice() == problems {
            return;
        }
        for (path, why) in problems {
            warn!(file = %path.display(), error = %why, "connector file ignored until fixed; its connector is left as it is");
        }
        *last = problems.to_vec();
    }

    /// Reconciles every `every` until `shutdown` turns true.
    pub fn spawn(
        self: Arc<Self>,
        every: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if let Err(e) = self.reconcile().await {
                    warn!(dir = %self.dir.display(), error = %e, "reconciling the connectors directory failed; retrying");
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
            }
        })
    }
}

/// One key that differs between the worker and a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyChange {
    pub key: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// A step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum PlanStep {
    Create {
        name: String,
        config: RawConfig,
    },
    Update {
        name: String,
        changes: Vec<KeyChange>,
    },
    Delete {
        name: String,
    },
}

/// What would change to bring `current` (the worker's configs, as served over REST with
/// secrets hidden) in line with `desired`. A hidden value cannot be compared and counts as
/// unchanged. Connectors without a file are deleted only with `prune`.
pub fn plan(
    desired: &[ConnectorConfig],
    current: &BTreeMap<String, RawConfig>,
    prune: bool,
) -> Vec<PlanStep> {
    let mut steps = Vec::new();
    for config in desired {
        let Some(existing) = current.get(&config.name) else {
            steps.push(PlanStep::Create {
                name: config.name.clone(),
                config: config
                    .config
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            if is_secret(k, None) {
                                HIDDEN.to_owned()
                            } else {
                                v.clone()
                            },
                        )
                    })
                    .collect(),
            });
            continue;
        };
        let keys: BTreeSet<&String> = existing
            .keys()
            .chain(config.config.keys())
            .filter(|k| *k != "name")
            .collect();
        let mut changes = Vec::new();
        for key in keys {
            let before = existing.get(key);
            let after = config.config.get(key);
            if before == after || (before.is_some_and(|b| b == HIDDEN) && after.is_some()) {
                continue;
            }
            let show = |v: Option<&String>| {
                v.map(|v| {
                    if is_secret(key, None) {
                        HIDDEN.to_owned()
                    } else {
                        v.clone()
                    }
                })
            };
            changes.push(KeyChange {
                key: key.clone(),
                before: show(before),
                after: show(after),
            });
        }
        if !changes.is_empty() {
            steps.push(PlanStep::Update {
                name: config.name.clone(),
                changes,
            });
        }
    }
    if prune {
        let names: BTreeSet<&str> = desired.iter().map(|c| c.name.as_str()).collect();
        for name in current.keys().filter(|n| !names.contains(n.as_str())) {
            steps.push(PlanStep::Delete { name: name.clone() });
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> RawConfig {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn connector(name: &str, pairs: &[(&str, &str)]) -> ConnectorConfig {
        ConnectorConfig {
            name: name.into(),
            config: raw(pairs),
        }
    }

    #[test]
    fn plan_creates_updates_and_prunes() {
        let desired = vec![
            connector("new", &[("connector.class", "datagen")]),
            connector(
                "same",
                &[("connector.class", "datagen"), ("database.password", "s")],
            ),
            connector(
                "changed",
                &[("connector.class", "datagen"), ("tables", "a,b")],
            ),
        ];
        let current: BTreeMap<String, RawConfig> = [
            (
                "same".to_string(),
                raw(&[
                    ("name", "same"),
                    ("connector.class", "datagen"),
                    ("database.password", HIDDEN),
                ]),
            ),
            (
                "changed".to_string(),
                raw(&[
                    ("name", "changed"),
                    ("connector.class", "datagen"),
                    ("tables", "a"),
                    ("rate", "5"),
                ]),
            ),
            ("extra".to_string(), raw(&[("connector.class", "datagen")])),
        ]
        .into_iter()
        .collect();
        let steps = plan(&desired, &current, false);
        assert_eq!(steps.len(), 2, "{steps:?}");
        assert!(matches!(&steps[0], PlanStep::Create { name, .. } if name == "new"));
        let PlanStep::Update { name, changes } = &steps[1] else {
            panic!("{steps:?}")
        };
        assert_eq!(name, "changed");
        assert_eq!(
            changes,
            &vec![
                KeyChange {
                    key: "rate".into(),
                    before: Some("5".into()),
                    after: None
                },
                KeyChange {
                    key: "tables".into(),
                    before: Some("a".into()),
                    after: Some("a,b".into())
                },
            ]
        );
        let pruned = plan(&desired, &current, true);
        assert_eq!(
            pruned.last(),
            Some(&PlanStep::Delete {
                name: "extra".into()
            })
        );
    }

    #[test]
    fn plan_never_shows_secrets() {
        let desired = vec![connector(
            "c",
            &[("connector.class", "x"), ("db.password", "new-secret")],
        )];
        let current: BTreeMap<String, RawConfig> =
            [("c".to_string(), raw(&[("connector.class", "x")]))]
                .into_iter()
                .collect();
        let text = serde_json::to_string(&plan(&desired, &current, false)).expect("json");
        assert!(!text.contains("new-secret"), "{text}");
    }
}
