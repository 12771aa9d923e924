//! Wall time, CPU seconds and peak RSS of a child process, read from `/proc`.
//!
//! The child is polled every 2 ms: `VmHWM` (peak resident set) from `/proc/<pid>/status`
//! while it runs, then user + system CPU time from `/proc/<pid>/stat` once it is a zombie
//! (exited, not yet reaped: the kernel keeps its final accounting until `wait`).

use std::io::Read as _;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

/// What one process cost.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Usage {
    /// Spawn to exit.
    pub wall_secs: f64,
    /// User + system CPU time of the process and all its threads.
    pub cpu_secs: f64,
    /// Peak resident set size (VmHWM), MB (10^6 bytes).
    pub peak_rss_mb: f64,
}

/// A spawned child whose stderr goes to a temporary file (read back if it fails).
pub struct Measured {
    child: Child,
    started: Instant,
    stderr: std::fs::File,
    what: String,
    reaped: bool,
}

impl Drop for Measured {
    /// A child abandoned on an error path is stopped, not left running.
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Spawns `cmd` with stdin and stdout as set by the caller and stderr captured.
pub fn spawn(cmd: &mut Command, what: &str) -> Result<Measured> {
    let stderr = tempfile::tempfile().context("temporary file for stderr")?;
    let started = Instant::now();
    let child = cmd
        .stderr(Stdio::from(stderr.try_clone()?))
        .spawn()
        .with_context(|| format!("cannot start {what}"))?;
    Ok(Measured {
        child,
        started,
        stderr,
        what: what.to_owned(),
        reaped: false,
    })
}

impl Measured {
    /// The child, e.g. to take its stdin or stdout.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Waits for the child to exit; fails with its stderr unless it exited with 0.
    pub fn finish(mut self) -> Result<Usage> {
        let pid = self.child.id();
        let mut peak_kib = 0u64;
        let mut cpu_secs = None;
        loop {
            match proc_stat(pid) {
                Some(('Z', ticks)) => {
                    cpu_secs = Some(ticks as f64 / clock_ticks());
                    break;
                }
                Some(_) => {
                    if let Some(kib) = vm_hwm_kib(pid) {
                        peak_kib = peak_kib.max(kib);
                    }
                }
                None => break,
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let wall_secs = self.started.elapsed().as_secs_f64();
        let status = self.child.wait()?;
        self.reaped = true;
        self.check(status)?;
        Ok(Usage {
            wall_secs,
            cpu_secs: cpu_secs.context("the child's CPU time was not readable from /proc")?,
            peak_rss_mb: peak_kib as f64 * 1024.0 / 1e6,
        })
    }

    fn check(&mut self, status: ExitStatus) -> Result<()> {
        if status.success() {
            return Ok(());
        }
        let mut err = String::new();
        use std::io::Seek as _;
        let _ = self.stderr.seek(std::io::SeekFrom::Start(0));
        let _ = self.stderr.read_to_string(&mut err);
        let tail: Vec<&str> = err.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("{} failed ({status}):\n{}", self.what, tail.join("\n"))
    }
}

/// Runs `cmd` (stdin and stdout to /dev/null unless set) to completion and measures it.
pub fn run(cmd: &mut Command, what: &str) -> Result<Usage> {
    spawn(cmd.stdin(Stdio::null()), what)?.finish()
}

/// State letter and utime + stime (clock ticks) of a process.
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces: fields after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((state, utime + stime))
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_child_has_cpu_time_and_a_resident_set() {
        // Busy for about 0.3 s of CPU in a shell loop.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"]);
        let usage = run(&mut cmd, "busy shell").expect("runs");
        assert!(usage.cpu_secs > 0.0, "{usage:?}");
        assert!(usage.peak_rss_mb > 0.0, "{usage:?}");
        assert!(usage.wall_secs >= usage.cpu_secs * 0.5, "{usage:?}");
    }

    #[test]
    fn a_failing_child_reports_its_stderr() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo 'access denied for cdc' >&2; exit 3"]);
        let err = run(&mut cmd, "a tool").expect_err("fails").to_string();
        assert!(err.contains("a tool failed"), "{err}");
        assert!(err.contains("access denied for cdc"), "{err}");
    }
}
