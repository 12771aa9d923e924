//! A progress line on stderr while data loads: redrawn in place on a terminal, one line per
//! 10 % otherwise (logs of CI runs stay short).

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use crate::report::number;

/// Progress of loading `total` rows.
pub struct Progress {
    label: String,
    total: u64,
    started: Instant,
    last_draw: Instant,
    last_decile: u64,
    tty: bool,
}

impl Progress {
    pub fn new(label: impl Into<String>, total: u64) -> Self {
        let now = Instant::now();
        Progress {
            label: label.into(),
            total: total.max(1),
            started: now,
            last_draw: now - Duration::from_secs(1),
            last_decile: 0,
            tty: std::io::stderr().is_terminal(),
        }
    }

    /// `done` rows are loaded.
    pub fn update(&mut self, done: u64) {
        let decile = done * 10 / self.total;
        let due = if self.tty {
            self.last_draw.elapsed() >= Duration::from_millis(100) || done >= self.total
        } else {
            decile > self.last_decile
        };
        if !due {
            return;
        }
        self.last_draw = Instant::now();
        self.last_decile = decile;
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let width = 30usize;
        let filled = (done as usize * width / self.total as usize).min(width);
        let line = format!(
            "{}: [{}{}] {}/{} rows ({:.0}%), {} rows/s",
            self.label,
            "#".repeat(filled),
            "-".repeat(width - filled),
            number(done as f64, 0),
            number(self.total as f64, 0),
            done as f64 * 100.0 / self.total as f64,
            number(done as f64 / secs, 0)
        );
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r{line}\x1b[K");
            if done >= self.total {
                let _ = writeln!(err);
            }
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }
}

/// A status line on stderr (what the benchmark is doing now).
pub fn say(text: impl AsRef<str>) {
    eprintln!("bench: {}", text.as_ref());
}
