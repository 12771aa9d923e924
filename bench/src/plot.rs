//! `--plot`: an SVG chart of durable records over time for the catch-up runs. Tributary's
//! runs are drawn from the worker's 100 ms samples; a ceiling (an external program, whose
//! progress is not observable) as a dashed line at its average rate. SVG needs no plotting
//! library and keeps its labels readable; `rsvg-convert -o plot.png plot.svg` makes a PNG.

use std::fmt::Write as _;

/// One line of the chart.
pub struct Line {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
}

const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

fn nice_step(max: f64) -> f64 {
    let raw = (max / 5.0).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

/// The chart as an SVG document.
pub fn svg(title: &str, lines: &[Line]) -> String {
    let (w, h, left, right, top, bottom) = (900.0, 480.0, 80.0, 260.0, 40.0, 50.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let max_x = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .fold(0.0f64, f64::max)
        .max(1e-3);
    let max_y = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(0.0f64, f64::max)
        .max(1.0);
    let sx = |x: f64| left + x / max_x * pw;
    let sy = |y: f64| top + ph - y / max_y * ph;
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{left}" y="22" font-size="15">{title}</text>"##
    );
    let step_x = nice_step(max_x);
    let mut x = 0.0;
    while x <= max_x + 1e-9 {
        let _ = write!(
            s,
            r##"<line x1="{0}" y1="{1}" x2="{0}" y2="{2}" stroke="#ddd"/><text x="{0}" y="{3}" text-anchor="middle">{4}</text>"##,
            sx(x),
            top,
            top + ph,
            top + ph + 16.0,
            format_tick(x)
        );
        x += step_x;
    }
    let step_y = nice_step(max_y);
    let mut y = 0.0;
    while y <= max_y + 1e-9 {
        let _ = write!(
            s,
            r##"<line x1="{0}" y1="{1}" x2="{2}" y2="{1}" stroke="#ddd"/><text x="{3}" y="{4}" text-anchor="end">{5}</text>"##,
            left,
            sy(y),
            left + pw,
            left - 6.0,
            sy(y) + 4.0,
            crate::report::number(y, 0)
        );
        y += step_y;
    }
    let _ = write!(
        s,
        r##"<text x="{0}" y="{1}" text-anchor="middle">seconds</text><text x="16" y="{2}" transform="rotate(-90 16 {2})" text-anchor="middle">records durable / read</text>"##,
        left + pw / 2.0,
        h - 10.0,
        top + ph / 2.0
    );
    for (i, line) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<String> = line
            .points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
            .collect();
        let dash = if line.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let _ = write!(
            s,
            r##"<polyline fill="none" stroke="{color}" stroke-width="2"{dash} points="{}"/>"##,
            pts.join(" ")
        );
        let ly = top + 10.0 + i as f64 * 18.0;
        let _ = write!(
            s,
            r##"<line x1="{0}" y1="{1}" x2="{2}" y2="{1}" stroke="{color}" stroke-width="2"{dash}/><text x="{3}" y="{4}">{5}</text>"##,
            left + pw + 10.0,
            ly,
            left + pw + 34.0,
            left + pw + 40.0,
            ly + 4.0,
            escape(&line.label)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn format_tick(x: f64) -> String {
    if x.fract().abs() < 1e-9 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}").trim_end_matches('0').to_owned()
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Lines of a catch-up chart: each ceiling run at its average rate, each Tributary run from
/// its samples.
pub fn catchup_lines(
    rows: u64,
    ceilings: &[(&str, &crate::Series)],
    samples: &[Vec<(f64, u64)>],
) -> Vec<Line> {
    let mut lines = Vec::new();
    for (name, series) in ceilings {
        for (i, secs) in series.secs.iter().enumerate() {
            lines.push(Line {
                label: format!("{name}, run {}", i + 1),
                points: vec![(0.0, 0.0), (*secs, rows as f64)],
                dashed: true,
            });
        }
    }
    for (i, run) in samples.iter().enumerate() {
        lines.push(Line {
            label: format!("tributary, run {}", i + 1),
            points: run.iter().map(|(t, n)| (*t, *n as f64)).collect(),
            dashed: false,
        });
    }
    lines
}

/// Writes the chart to `path` when `--plot` was given.
pub fn write(path: Option<&std::path::Path>, title: &str, lines: &[Line]) -> anyhow::Result<()> {
    if let Some(path) = path {
        std::fs::write(path, svg(title, lines))
            .map_err(|e| anyhow::anyhow!("cannot write the plot to {}: {e}", path.display()))?;
        crate::progress::say(format!("plot written to {}", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round_numbers() {
        assert_eq!(nice_step(500_000.0), 100_000.0);
        assert_eq!(nice_step(3.2), 1.0);
        assert_eq!(nice_step(12.0), 2.5);
    }

    #[test]
    fn every_line_is_drawn_with_its_label() {
        let doc = svg(
            "catch-up",
            &[
                Line {
                    label: "tributary run 1".into(),
                    points: vec![(0.0, 0.0), (1.0, 10.0)],
                    dashed: false,
                },
                Line {
                    label: "a <b> & c".into(),
                    points: vec![(0.0, 0.0), (0.5, 10.0)],
                    dashed: true,
                },
            ],
        );
        assert_eq!(doc.matches("<polyline").count(), 2);
        assert!(doc.contains("tributary run 1"));
        assert!(doc.contains("a &lt;b&gt; &amp; c"));
        assert!(doc.contains("stroke-dasharray"));
    }
}
