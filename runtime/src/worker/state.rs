//! Connector and task states as Kafka Connect reports them, and what is persisted.

use serde::{Deserialize, Serialize};

/// What the user asked a connector to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TargetState {
    Running,
    Paused,
    Stopped,
}

/// A connector's or task's observed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    Unassigned,
    Running,
    Paused,
    Stopped,
    Failed,
    Restarting,
}

/// Status of one task (Kafka Connect's `/status` task entry).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskStatus {
    pub id: u32,
    pub state: State,
    pub worker_id: String,
    /// Why the task failed or is restarting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// Restart attempts since the task was last healthy.
    #[serde(skip_serializing_if = "is_zero")]
    pub restarts: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Connector state block.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectorState {
    pub state: State,
    pub worker_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

/// `GET /connectors/{name}/status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectorStatus {
    pub name: String,
    pub connector: ConnectorState,
    pub tasks: Vec<TaskStatus>,
    #[serde(rename = "type")]
    pub kind: crate::connector::ConnectorKind,
}

/// What the worker persists per connector in `<data_dir>/connectors/<name>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersistedConnector {
    pub name: String,
    pub config: std::collections::BTreeMap<String, String>,
    pub target_state: TargetState,
}

/// The connector's state derived from its target and its tasks: a connector whose task failed
/// is not reported RUNNING.
pub fn connector_state(target: TargetState, tasks: &[TaskStatus]) -> State {
    match target {
        TargetState::Stopped => State::Stopped,
        _ if tasks.iter().any(|t| t.state == State::Failed) => State::Failed,
        TargetState::Paused => State::Paused,
        TargetState::Running if tasks.is_empty() => State::Unassigned,
        TargetState::Running if tasks.iter().all(|t| t.state == State::Unassigned) => {
            State::Unassigned
        }
        TargetState::Running if tasks.iter().any(|t| t.state == State::Restarting) => {
            State::Restarting
        }
        TargetState::Running => State::Running,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(state: State) -> TaskStatus {
        TaskStatus {
            id: 0,
            state,
            worker_id: "w".into(),
            trace: None,
            restarts: 0,
        }
    }

    #[test]
    fn failed_task_makes_connector_failed() {
        assert_eq!(
            connector_state(
                TargetState::Running,
                &[task(State::Running), task(State::Failed)]
            ),
            State::Failed
        );
        assert_eq!(
            connector_state(TargetState::Running, &[task(State::Running)]),
            State::Running
        );
        assert_eq!(
            connector_state(TargetState::Paused, &[task(State::Paused)]),
            State::Paused
        );
        assert_eq!(connector_state(TargetState::Stopped, &[]), State::Stopped);
        assert_eq!(
            connector_state(TargetState::Running, &[task(State::Restarting)]),
            State::Restarting
        );
    }

    #[test]
    fn status_serialises_like_kafka_connect() {
        let status = ConnectorStatus {
            name: "c".into(),
            connector: ConnectorState {
                state: State::Running,
                worker_id: "127.0.0.1:8083".into(),
                trace: None,
            },
            tasks: vec![task(State::Running)],
            kind: crate::connector::ConnectorKind::Source,
        };
        assert_eq!(
            serde_json::to_value(&status).expect("json"),
            serde_json::json!({"name": "c", "connector": {"state": "RUNNING", "worker_id": "127.0.0.1:8083"},
                "tasks": [{"id": 0, "state": "RUNNING", "worker_id": "w"}], "type": "source"})
        );
    }
}
