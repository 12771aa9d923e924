//! Prometheus metrics at `GET /metrics`: every name is a constant here, and values are read
//! from the worker's live state (task status, progress counters, log partitions) when scraped,
//! so the hot path pays nothing beyond the counters it already keeps.

use std::fmt::Write;

use crate::worker::Worker;
use crate::worker::state::State;

pub const TASK_RECORDS: &str = "tributary_task_records_total";
pub const TASK_BYTES: &str = "tributary_task_bytes_total";
pub const TASK_RECORDS_PER_SEC: &str = "tributary_task_records_per_second";
pub const TASK_STATE: &str = "tributary_task_state";
pub const TASK_RESTARTS: &str = "tributary_task_restarts";
pub const SOURCE_LAG_MS: &str = "tributary_source_lag_milliseconds";
pub const SNAPSHOT_ROWS_DONE: &str = "tributary_snapshot_rows_done";
pub const SNAPSHOT_ROWS_ESTIMATED: &str = "tributary_snapshot_rows_estimated";
pub const LOG_END_OFFSET: &str = "tributary_log_partition_end_offset";
pub const LOG_START_OFFSET: &str = "tributary_log_partition_start_offset";
pub const LOG_BYTES: &str = "tributary_log_partition_bytes";
pub const CONNECTORS: &str = "tributary_connectors";
pub const RSS_BYTES: &str = "process_resident_memory_bytes";

const STATES: [(State, &str); 6] = [
    (State::Unassigned, "UNASSIGNED"),
    (State::Running, "RUNNING"),
    (State::Paused, "PAUSED"),
    (State::Stopped, "STOPPED"),
    (State::Failed, "FAILED"),
    (State::Restarting, "RESTARTING"),
];

struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: Vec<(String, f64)>,
}

impl Family {
    fn new(name: &'static str, kind: &'static str, help: &'static str) -> Self {
        Family {
            name,
            kind,
            help,
            samples: Vec::new(),
        }
    }

    fn push(&mut self, labels: &[(&str, &str)], value: f64) {
        let mut text = String::new();
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            let _ = write!(text, "{k}=\"{}\"", escape(v));
        }
        self.samples.push((text, value));
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        for (labels, value) in &self.samples {
            if labels.is_empty() {
                let _ = writeln!(out, "{} {value}", self.name);
            } else {
                let _ = writeln!(out, "{}{{{labels}}} {value}", self.name);
            }
        }
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders all metrics in the Prometheus text exposition format (version 0.0.4).
pub async fn render(worker: &Worker) -> String {
    let mut records = Family::new(
        TASK_RECORDS,
        "counter",
        "Records handled by the task (produced by a source, consumed by a sink).",
    );
    let mut bytes = Family::new(
        TASK_BYTES,
        "counter",
        "Bytes of the records handled by the task.",
    );
    let mut rate = Family::new(
        TASK_RECORDS_PER_SEC,
        "gauge",
        "Average records per second since the task started.",
    );
    let mut state = Family::new(TASK_STATE, "gauge", "1 for the task's current state.");
    let mut restarts = Family::new(
        TASK_RESTARTS,
        "gauge",
        "Restart attempts since the task was last healthy.",
    );
    let mut lag = Family::new(
        SOURCE_LAG_MS,
        "gauge",
        "Now minus the source commit time of the last record handled.",
    );
    let mut snap_done = Family::new(
        SNAPSHOT_ROWS_DONE,
        "gauge",
        "Rows read by the running or last snapshot.",
    );
    let mut snap_total = Family::new(
        SNAPSHOT_ROWS_ESTIMATED,
        "gauge",
        "Estimated rows of the running or last snapshot.",
    );
    let names = worker.list().await;
    let mut connectors = Family::new(CONNECTORS, "gauge", "Connectors configured on this worker.");
    connectors.push(&[], names.len() as f64);
    for name in &names {
        let (Ok(status), Ok(progress)) = (worker.status(name).await, worker.progress(name).await)
        else {
            continue;
        };
        let kind = match status.kind {
            crate::connector::ConnectorKind::Source => "source",
            crate::connector::ConnectorKind::Sink => "sink",
        };
        for (task, p) in status.tasks.iter().zip(progress.iter()) {
            let id = task.id.to_string();
            let labels = [
                ("connector", name.as_str()),
                ("task", id.as_str()),
                ("type", kind),
            ];
            records.push(&labels, p.records as f64);
            bytes.push(&labels, p.bytes as f64);
            rate.push(&labels, p.records_per_sec);
            restarts.push(&labels, f64::from(task.restarts));
            for (s, label) in STATES {
                let l = [
                    ("connector", name.as_str()),
                    ("task", id.as_str()),
                    ("state", label),
                ];
                state.push(&l, if task.state == s { 1.0 } else { 0.0 });
            }
            if let Some(ms) = p.lag_ms {
                lag.push(&labels, ms as f64);
            }
            if let Some(s) = &p.snapshot {
                snap_done.push(&labels, s.rows_done as f64);
                snap_total.push(&labels, s.rows_estimated as f64);
            }
        }
    }
    let mut end = Family::new(
        LOG_END_OFFSET,
        "gauge",
        "Next offset of the partition (high watermark).",
    );
    let mut start = Family::new(
        LOG_START_OFFSET,
        "gauge",
        "First retained offset of the partition.",
    );
    let mut size = Family::new(LOG_BYTES, "gauge", "Bytes on disk of the partition.");
    if let Ok(topics) = worker.store().list_topics().await {
        for t in topics {
            for p in t.partitions {
                let id = p.partition.to_string();
                let labels = [("topic", t.name.as_str()), ("partition", id.as_str())];
                end.push(&labels, p.high_watermark as f64);
                start.push(&labels, p.log_start_offset as f64);
                size.push(&labels, p.size_bytes as f64);
            }
        }
    }
    let mut rss = Family::new(RSS_BYTES, "gauge", "Resident set size of this process.");
    if let Some(bytes) = resident_bytes() {
        rss.push(&[], bytes as f64);
    }
    let mut out = String::with_capacity(4096);
    for family in [
        &connectors,
        &records,
        &bytes,
        &rate,
        &state,
        &restarts,
        &lag,
        &snap_done,
        &snap_total,
        &end,
        &start,
        &size,
        &rss,
    ] {
        family.render(&mut out);
    }
    out
}

fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut f = Family::new("x", "gauge", "help");
        f.push(&[("a", "q\"b\\n\nz")], 1.0);
        let mut out = String::new();
        f.render(&mut out);
        assert_eq!(
            out,
            "# HELP x help\n# TYPE x gauge\nx{a=\"q\\\"b\\\\n\\nz\"} 1\n"
        );
    }
}
