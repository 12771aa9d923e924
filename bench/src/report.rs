//! Results: median with min–max over the repeats, as a Markdown table (for BENCHMARKS.md)
//! or JSON, headed with the commit and the machine.

use std::process::Command;

use serde_json::json;

/// One column: its heading and how many decimals to print.
pub struct Column {
    pub name: &'static str,
    pub decimals: usize,
}

/// One reader's figures: for each column, the value of every repeat (empty: not applicable).
pub struct Row {
    pub label: String,
    pub cells: Vec<Vec<f64>>,
}

/// A table of readers × figures.
pub struct Table {
    pub title: String,
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
}

/// Everything one scenario produced.
pub struct Report {
    pub scenario: &'static str,
    pub command: String,
    pub notes: Vec<String>,
    pub tables: Vec<Table>,
    /// Scenario-specific raw data for `--json` (e.g. throughput over time).
    pub extra: serde_json::Value,
}

/// Median, min and max of some values (`None` when empty).
pub fn summary(values: &[f64]) -> Option<(f64, f64, f64)> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some((median, v[0], v[n - 1]))
}

/// `1234567.8` with 0 decimals -> `1,234,568`.
pub fn number(x: f64, decimals: usize) -> String {
    let s = format!("{x:.decimals$}");
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i.to_owned(), format!(".{f}")),
        None => (s.clone(), String::new()),
    };
    let (sign, digits) = match int.strip_prefix('-') {
        Some(d) => ("-", d.to_owned()),
        None => ("", int),
    };
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}{frac}")
}

fn cell(values: &[f64], decimals: usize) -> String {
    match summary(values) {
        None => "–".into(),
        Some((m, _, _)) if values.len() == 1 => number(m, decimals),
        Some((m, lo, hi)) => format!(
            "{} ({}–{})",
            number(m, decimals),
            number(lo, decimals),
            number(hi, decimals)
        ),
    }
}

/// The machine and the code measured.
pub struct Machine {
    pub commit: String,
    pub cores: usize,
    pub cpu: String,
    pub load_average: String,
    pub date: String,
}

impl Machine {
    /// Reads the commit (with `+changes` when the tree is dirty) and the machine.
    pub fn probe() -> Self {
        let root = crate::env::repo_root();
        let git = |args: &[&str]| {
            Command::new("git")
                .arg("-C")
                .arg(&root)
                .args(args)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        };
        let mut commit =
            git(&["rev-parse", "--short=10", "HEAD"]).unwrap_or_else(|| "unknown".into());
        if git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty()) {
            commit.push_str(" + uncommitted changes");
        }
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let load_average = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next().map(str::to_owned))
            .unwrap_or_else(|| "?".into());
        let date = Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M UTC"])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        Machine {
            commit,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            load_average,
            date,
        }
    }
}

impl Report {
    /// Markdown: a header line, the notes, then each table.
    pub fn markdown(&self, machine: &Machine) -> String {
        let mut out = format!(
            "### `{}` — commit `{}`, {} cores ({}), load average {} at start, {}\n\n",
            self.scenario,
            machine.commit,
            machine.cores,
            machine.cpu,
            machine.load_average,
            machine.date
        );
        out.push_str(&format!("Command: `{}`\n\n", self.command));
        for note in &self.notes {
            out.push_str(&format!("{note}\n"));
        }
        if !self.notes.is_empty() {
            out.push('\n');
        }
        for table in &self.tables {
            out.push_str(&format!("{}\n\n", table.title));
            let heads: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
            out.push_str(&format!("| | {} |\n", heads.join(" | ")));
            out.push_str(&format!("|---|{}\n", "---|".repeat(heads.len())));
            for row in &table.rows {
                let cells: Vec<String> = table
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| cell(row.cells.get(i).map_or(&[][..], Vec::as_slice), c.decimals))
                    .collect();
                out.push_str(&format!("| {} | {} |\n", row.label, cells.join(" | ")));
            }
            out.push('\n');
        }
        out
    }

    /// JSON with every repeat's value beside the median, min and max.
    pub fn json(&self, machine: &Machine) -> serde_json::Value {
        let tables: Vec<serde_json::Value> = self
            .tables
            .iter()
            .map(|t| {
                let rows: Vec<serde_json::Value> = t
                    .rows
                    .iter()
                    .map(|r| {
                        let mut figures = serde_json::Map::new();
                        for (i, c) in t.columns.iter().enumerate() {
                            let runs = r.cells.get(i).cloned().unwrap_or_default();
                            let value = match summary(&runs) {
                                Some((median, min, max)) => {
                                    json!({ "median": median, "min": min, "max": max, "runs": runs })
                                }
                                None => serde_json::Value::Null,
                            };
                            figures.insert(c.name.to_owned(), value);
                        }
                        json!({ "reader": r.label, "figures": figures })
                    })
                    .collect();
                json!({ "title": t.title, "rows": rows })
            })
            .collect();
        json!({
            "scenario": self.scenario,
            "command": self.command,
            "commit": machine.commit,
            "cores": machine.cores,
            "cpu": machine.cpu,
            "load_average_at_start": machine.load_average,
            "date": machine.date,
            "notes": self.notes,
            "tables": tables,
            "extra": self.extra,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(summary(&[3.0, 1.0, 2.0]), Some((2.0, 1.0, 3.0)));
        assert_eq!(summary(&[4.0, 1.0, 2.0, 3.0]), Some((2.5, 1.0, 4.0)));
        assert_eq!(summary(&[]), None);
    }

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(number(1_234_567.8, 0), "1,234,568");
        assert_eq!(number(999.0, 0), "999");
        assert_eq!(number(-12_345.678, 2), "-12,345.68");
        assert_eq!(number(0.5, 2), "0.50");
    }

    #[test]
    fn a_cell_shows_median_and_range() {
        assert_eq!(cell(&[10.0, 30.0, 20.0], 0), "20 (10–30)");
        assert_eq!(cell(&[1500.0], 0), "1,500");
        assert_eq!(cell(&[], 0), "–");
    }
}
