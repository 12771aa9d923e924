//! Crash safety of the whole pipeline, with the real binary: datagen (1M events) -> embedded
//! log -> file sink, killed with SIGKILL at random points five times, restarted each time.
//!
//! After every kill, before restarting, the data directory itself is checked:
//! * source side: every event up to the committed source offset is in the log
//!   (the commit-order invariant), and the log holds at most the in-flight window beyond it;
//! * sink side: every record below the committed consumer offset is in the output file, and
//!   the file holds at most one uncommitted batch beyond it.
//!
//! At the end every sequence number is in the output, and duplicates are bounded by what
//! was uncommitted at each kill.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tributary_runtime::log::{EmbeddedLog, ReadCursor};

const TOTAL: u64 = 1_000_000;
/// The sink puts at most this many records between commits (runtime's MAX_POLL_RECORDS).
const SINK_BATCH: u64 = 10_000;
/// The source has at most this many records in flight (MAX_IN_FLIGHT) plus one poll batch.
const SOURCE_WINDOW: u64 = 20_000 + 2048;

fn write_connectors(dir: &Path, out: &Path) {
    std::fs::create_dir_all(dir).expect("connectors dir");
    std::fs::write(
        dir.join("gen.yaml"),
        format!("name: gen\nconfig:\n  connector.class: datagen\n  topic.prefix: crash\n  tables: [a, b, c]\n  total: {TOTAL}\n  batch.size: 2048\n"),
    )
    .expect("gen config");
    std::fs::write(
        dir.join("sink.json"),
        serde_json::json!({"name": "sink", "config": {
            "connector.class": "FileStreamSink",
            "topics.regex": "crash\\..*",
            "file": out.display().to_string(),
            "file.format": "envelope"
        }})
        .to_string(),
    )
    .expect("sink config");
}

fn start(data: &Path, connectors: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["run", "--rest-port", "0", "--data-dir"])
        .arg(data)
        .arg("--connectors-dir")
        .arg(connectors)
        .env("TRIBUTARY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn tributary")
}

/// Extracts the integer after `"<field>":` following `after` in a JSON line.
fn field_after(line: &str, after: &str, field: &str) -> Option<u64> {
    let start = line.find(after)? + after.len();
    let rest = &line[start..];
    let at = rest.find(&format!("\"{field}\":"))? + field.len() + 3;
    let digits: String = rest[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn committed_source_seq(data: &Path) -> Option<u64> {
    let raw = std::fs::read(data.join("offsets/gen.json")).ok()?;
    let entries: serde_json::Value = serde_json::from_slice(&raw).expect("offset file is JSON");
    entries[0]["offset"]["seq"].as_u64()
}

fn committed_sink_offsets(data: &Path) -> BTreeMap<(String, u32), u64> {
    let Ok(raw) = std::fs::read(data.join("log/groups/connect-sink.json")) else {
        return BTreeMap::new();
    };
    let stored: BTreeMap<String, BTreeMap<u32, u64>> =
        serde_json::from_slice(&raw).expect("group file is JSON");
    stored
        .into_iter()
        .flat_map(|(t, ps)| ps.into_iter().map(move |(p, o)| ((t.clone(), p), o)))
        .collect()
}

/// Every source seq in the log (with repetitions), and the end offset per partition.
fn log_contents(data: &Path) -> (Vec<u64>, BTreeMap<(String, u32), u64>) {
    let log = EmbeddedLog::open_read_only(&data.join("log")).expect("open log read-only");
    let mut seqs = Vec::new();
    let mut ends = BTreeMap::new();
    for topic in log.topics() {
        for p in &topic.partitions {
            let mut cursor = ReadCursor::at(p.log_start());
            loop {
                let (records, next) = p.read(cursor, 10_000, 16 << 20).expect("read log");
                if records.is_empty() {
                    break;
                }
                cursor = next;
                for (_, r) in records {
                    let value = r.value.expect("datagen writes values");
                    let text = std::str::from_utf8(&value).expect("utf8");
                    seqs.push(field_after(text, "\"source\":", "seq").expect("source.seq"));
                }
            }
            ends.insert((topic.name.to_string(), p.id), p.high_watermark());
        }
    }
    (seqs, ends)
}

struct SinkLine {
    /// Byte position of the line in the file.
    start: usize,
    topic: String,
    partition: u32,
    offset: u64,
    seq: u64,
}

/// Complete lines of the sink file, and the length of that complete prefix.
fn sink_lines(out: &Path) -> (Vec<SinkLine>, usize) {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    // A line cut by the kill has no newline yet; the sink removes it when it reopens.
    let complete_len = text.rfind('\n').map_or(0, |i| i + 1);
    let mut lines = Vec::new();
    let mut start = 0;
    for line in text[..complete_len].split_terminator('\n') {
        let topic_start = line.find("\"topic\":\"").expect("topic") + 9;
        let topic_len = line[topic_start..].find('"').expect("topic end");
        lines.push(SinkLine {
            start,
            topic: line[topic_start..topic_start + topic_len].to_owned(),
            partition: field_after(line, "", "partition").expect("partition") as u32,
            offset: field_after(line, "", "offset").expect("offset"),
            seq: field_after(line, "\"source\":", "seq").expect("seq"),
        });
        start += line.len() + 1;
    }
    (lines, complete_len)
}

/// Checks the data directory of a killed worker. `previous_len` is where the lines written
/// by this incarnation of the worker start. Returns the lines this incarnation wrote beyond
/// the committed offsets, and the new length of the file's complete lines.
fn check_after_kill(data: &Path, out: &Path, kill: usize, previous_len: usize) -> (u64, usize) {
    // Source side: everything up to the committed offset is durable in the log.
    let (log_seqs, _) = log_contents(data);
    let present: HashSet<u64> = log_seqs.iter().copied().collect();
    let max_in_log = log_seqs.iter().copied().max();
    if let Some(committed) = committed_source_seq(data) {
        let missing = (0..=committed).filter(|s| !present.contains(s)).count();
        assert_eq!(
            missing, 0,
            "kill {kill}: {missing} events up to committed seq {committed} are not in the log"
        );
        let beyond = max_in_log.unwrap_or(0).saturating_sub(committed);
        assert!(
            beyond <= SOURCE_WINDOW,
            "kill {kill}: {beyond} durable events beyond the committed offset exceed the in-flight window"
        );
    }
    // Sink side: every record below the committed consumer offset is in the file.
    let committed = committed_sink_offsets(data);
    let (lines, complete_len) = sink_lines(out);
    let mut written: BTreeMap<(String, u32), HashSet<u64>> = BTreeMap::new();
    for l in &lines {
        written
            .entry((l.topic.clone(), l.partition))
            .or_default()
            .insert(l.offset);
    }
    for (tp, &next) in &committed {
        let have = written.get(tp).cloned().unwrap_or_default();
        let missing = (0..next).filter(|o| !have.contains(o)).count();
        assert_eq!(
            missing, 0,
            "kill {kill}: {missing} records of {tp:?} below the committed offset {next} are missing from the sink file"
        );
    }
    // What this incarnation wrote but did not commit: at most the batch it was working on.
    // (Lines left uncommitted by earlier incarnations were counted at their own kill.)
    let uncommitted = lines
        .iter()
        .filter(|l| l.start >= previous_len)
        .filter(|l| {
            committed
                .get(&(l.topic.clone(), l.partition))
                .is_none_or(|&next| l.offset >= next)
        })
        .count() as u64;
    assert!(
        uncommitted <= SINK_BATCH,
        "kill {kill}: {uncommitted} lines written since the last restart are uncommitted; more than one sink batch"
    );
    (uncommitted, complete_len)
}

/// Waits for `done`, failing at the deadline or as soon as the worker exits on its own.
fn wait_until(child: &mut Child, deadline: Instant, what: &str, mut done: impl FnMut() -> bool) {
    while !done() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the worker exited ({status}) while waiting for {what}");
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The source committed its last event and the sink committed every record in the log.
fn sink_done(data: &Path) -> bool {
    if committed_source_seq(data) != Some(TOTAL - 1) {
        return false;
    }
    let committed = committed_sink_offsets(data);
    let log = EmbeddedLog::open_read_only(&data.join("log")).expect("open log read-only");
    log.topics().iter().all(|t| {
        t.partitions
            .iter()
            .all(|p| committed.get(&(t.name.to_string(), p.id)) == Some(&p.high_watermark()))
    })
}

fn file_len(path: &PathBuf) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[test]
fn kill_dash_nine_five_times_loses_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let connectors = tmp.path().join("connectors");
    let out = tmp.path().join("out.jsonl");
    write_connectors(&connectors, &out);
    let deadline = Instant::now() + Duration::from_secs(900);
    let mut uncommitted_total = 0u64;
    let mut kills = 0;
    let mut last_len = 0;
    let mut complete_len = 0;
    let mut mid_stream_kills = 0;
    while kills < 5 {
        let mut child = start(&data, &connectors);
        // Let it make progress past the previous kill, then kill it at a random moment.
        // (Or, on a fast machine, until everything is done: the kill then hits an idle worker.)
        wait_until(&mut child, deadline, "progress before kill", || {
            file_len(&out) > last_len || sink_done(&data)
        });
        std::thread::sleep(Duration::from_millis(rand::random_range(50..800)));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        kills += 1;
        last_len = file_len(&out);
        if sink_done(&data) {
            // Finished before we could kill it mid-stream: the remaining kills hit an idle
            // worker, which is still a valid crash but not the interesting one.
            eprintln!("kill {kills}: pipeline had already finished");
        } else {
            mid_stream_kills += 1;
        }
        let (uncommitted, len) = check_after_kill(&data, &out, kills, complete_len);
        uncommitted_total += uncommitted;
        complete_len = len;
    }
    assert!(mid_stream_kills >= 1, "no kill hit the pipeline mid-stream");
    // Final run: let it finish, then stop it cleanly with SIGTERM.
    let mut child = start(&data, &connectors);
    wait_until(
        &mut child,
        deadline,
        "all events committed by the sink",
        || sink_done(&data),
    );
    let pid = i32::try_from(child.id()).expect("pid");
    let rc = send_sigterm(pid);
    assert_eq!(rc, 0, "SIGTERM delivered");
    let status = child.wait().expect("wait");
    assert!(status.success(), "clean shutdown exits 0, got {status}");

    let (lines, _) = sink_lines(&out);
    let seqs: HashSet<u64> = lines.iter().map(|l| l.seq).collect();
    let missing: Vec<u64> = (0..TOTAL).filter(|s| !seqs.contains(s)).take(10).collect();
    assert!(
        missing.is_empty(),
        "sequence numbers missing from the sink output: {missing:?}"
    );
    let distinct_records: HashSet<(&str, u32, u64)> = lines
        .iter()
        .map(|l| (l.topic.as_str(), l.partition, l.offset))
        .collect();
    let record_duplicates = lines.len() as u64 - distinct_records.len() as u64;
    assert!(
        record_duplicates <= uncommitted_total,
        "{record_duplicates} duplicate records in the sink output, but only {uncommitted_total} were uncommitted at the kills"
    );
    let seq_duplicates = lines.len() as u64 - seqs.len() as u64;
    assert!(
        seq_duplicates <= uncommitted_total + 5 * SOURCE_WINDOW,
        "{seq_duplicates} duplicate events exceed the uncommitted windows of five kills"
    );
    eprintln!(
        "crash test: {} lines, {record_duplicates} duplicate records, {seq_duplicates} duplicate events over {kills} kills ({mid_stream_kills} mid-stream)",
        lines.len()
    );
}

fn send_sigterm(pid: i32) -> i32 {
    // The `kill` command keeps this crate free of `unsafe` (libc::kill would need it).
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    if status.success() { 0 } else { 1 }
}
