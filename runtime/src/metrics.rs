//! Prometheus metrics at `GET /metrics`: every name is a constant here, and values are read
//! from the worker's live state (task status, progress counters, log partitions) when scraped,
//! so the hot path pays nothing beyond the counters it already keeps.

use std::fmt::Write;

use crate::progress::HistogramSnapshot;
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
pub const TASK_RECORDS_DURABLE: &str = "tributary_task_records_durable_total";
pub const TASK_BYTES_DURABLE: &str = "tributary_task_bytes_durable_total";
pub const TASK_BATCHES: &str = "tributary_task_batches_total";
pub const TASK_ERRORS: &str = "tributary_task_errors_total";
pub const TASK_RETRIES: &str = "tributary_task_retries_total";
pub const TASK_DEAD_LETTER: &str = "tributary_task_dead_letter_records_total";
pub const SOURCE_LAG_BYTES: &str = "tributary_source_lag_bytes";
pub const END_TO_END_LATENCY: &str = "tributary_end_to_end_latency_seconds";
pub const PRODUCE_LATENCY: &str = "tributary_produce_latency_seconds";
pub const SINK_LAG_RECORDS: &str = "tributary_sink_lag_records";

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
    /// `(name suffix, label text, value)`; the suffix is `_bucket`/`_sum`/`_count` for
    /// histogram series, empty otherwise.
    samples: Vec<(&'static str, String, f64)>,
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
        self.push_series("", labels, value);
    }

    fn push_series(&mut self, suffix: &'static str, labels: &[(&str, &str)], value: f64) {
        let mut text = String::new();
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            let _ = write!(text, "{k}=\"{}\"", escape(v));
        }
        self.samples.push((suffix, text, value));
    }

    /// Adds the `_bucket`, `_sum` and `_count` series of a histogram.
    fn push_histogram(&mut self, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        for (bound, n) in &h.buckets {
            let le = if bound.is_infinite() {
                "+Inf".to_owned()
            } else {
                bound.to_string()
            };
            let mut l = labels.to_vec();
            l.push(("le", &le));
            self.push_series("_bucket", &l, *n as f64);
        }
        self.push_series("_sum", labels, h.sum_secs);
        self.push_series("_count", labels, h.count as f64);
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        for (suffix, labels, value) in &self.samples {
            if labels.is_empty() {
                let _ = writeln!(out, "{}{suffix} {value}", self.name);
            } else {
                let _ = writeln!(out, "{}{suffix}{{{labels}}} {value}", self.name);
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
        "How far behind its source commit time the last record handled was, when handled (Debezium's MilliSecondsBehindSource).",
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
    let mut durable_records = Family::new(
        TASK_RECORDS_DURABLE,
        "counter",
        "Records made durable: in the topic log for a source, in the target for a sink.",
    );
    let mut durable_bytes = Family::new(
        TASK_BYTES_DURABLE,
        "counter",
        "Bytes of the records made durable (log for a source, target for a sink).",
    );
    let mut batches = Family::new(
        TASK_BATCHES,
        "counter",
        "Batches produced to the log (source) or consumed from it (sink).",
    );
    let mut errors = Family::new(TASK_ERRORS, "counter", "Task failures (any kind).");
    let mut retries = Family::new(
        TASK_RETRIES,
        "counter",
        "Task failures that were retryable (the task was restarted with backoff).",
    );
    let mut dead_letter = Family::new(
        TASK_DEAD_LETTER,
        "counter",
        "Records sent to the dead-letter topic or skipped (errors.tolerance=all).",
    );
    let mut lag_bytes = Family::new(
        SOURCE_LAG_BYTES,
        "gauge",
        "Bytes the source is behind its server: Postgres slot lag (server WAL end minus confirmed LSN), MySQL binlog bytes not yet read.",
    );
    let mut e2e = Family::new(
        END_TO_END_LATENCY,
        "histogram",
        "Source commit time to durable, per stage: log (source tasks) or sink (sink tasks).",
    );
    let mut produce = Family::new(
        PRODUCE_LATENCY,
        "histogram",
        "Produce call to durable acknowledgement by the embedded log or Kafka.",
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
            let m = &p.metrics;
            durable_records.push(&labels, m.records_durable as f64);
            durable_bytes.push(&labels, m.bytes_durable as f64);
            batches.push(&labels, m.batches as f64);
            errors.push(&labels, m.errors as f64);
            retries.push(&labels, m.retries as f64);
            // Skipped under errors.tolerance=all, dead-lettered or not (runtime/src/dead_letter.rs).
            let errant = crate::dead_letter::counters(name.as_str(), task.id);
            dead_letter.push(
                &labels,
                errant.skipped.load(std::sync::atomic::Ordering::Relaxed) as f64,
            );
            if let Some(b) = m.lag_bytes {
                lag_bytes.push(&labels, b as f64);
            }
            let (stage, hist) = match status.kind {
                crate::connector::ConnectorKind::Source => ("log", &m.e2e_log),
                crate::connector::ConnectorKind::Sink => ("sink", &m.e2e_sink),
            };
            let mut l = labels.to_vec();
            l.push(("stage", stage));
            e2e.push_histogram(&l, hist);
            if status.kind == crate::connector::ConnectorKind::Source {
                produce.push_histogram(&labels, &m.produce);
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
    let mut sink_lag = Family::new(
        SINK_LAG_RECORDS,
        "gauge",
        "Records of the partition a sink has not committed yet, measured when scraped (grows while the sink is stalled); embedded log only.",
    );
    for l in worker.sink_lag().await {
        let partition = l.partition.to_string();
        sink_lag.push(
            &[
                ("connector", l.connector.as_str()),
                ("topic", l.topic.as_str()),
                ("partition", partition.as_str()),
            ],
            l.records as f64,
        );
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
        &durable_records,
        &durable_bytes,
        &batches,
        &errors,
        &retries,
        &dead_letter,
        &rate,
        &state,
        &restarts,
        &lag,
        &snap_done,
        &snap_total,
        &lag_bytes,
        &sink_lag,
        &e2e,
        &produce,
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

    #[test]
    fn histograms_render_buckets_sum_and_count() {
        let h = crate::progress::Histogram::default();
        h.observe_n(0.003, 2);
        h.observe(7.0);
        let mut f = Family::new("lat_seconds", "histogram", "latency");
        f.push_histogram(&[("connector", "c")], &h.snapshot());
        let mut out = String::new();
        f.render(&mut out);
        assert!(out.starts_with("# HELP lat_seconds latency\n# TYPE lat_seconds histogram\n"));
        for line in [
            "lat_seconds_bucket{connector=\"c\",le=\"0.0025\"} 0\n",
            "lat_seconds_bucket{connector=\"c\",le=\"0.005\"} 2\n",
            "lat_seconds_bucket{connector=\"c\",le=\"5\"} 2\n",
            "lat_seconds_bucket{connector=\"c\",le=\"10\"} 3\n",
            "lat_seconds_bucket{connector=\"c\",le=\"+Inf\"} 3\n",
            "lat_seconds_sum{connector=\"c\"} 7.006\n",
            "lat_seconds_count{connector=\"c\"} 3\n",
        ] {
            assert!(out.contains(line), "missing {line:?} in:\n{out}");
        }
    }
}
