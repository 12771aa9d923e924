//! `path.format`: the Joda-Time patterns of Confluent's `TimeBasedPartitioner`
//! (`'year'=YYYY/'month'=MM/'day'=dd/'hour'=HH`), and the `timezone` they are rendered in.
//!
//! Supported fields are the numeric ones: `y`/`Y`/`u` year, `M` month, `d` day of month,
//! `D` day of year, `H` hour (0-23), `m` minute, `s` second, `S` millisecond; a run of a
//! letter sets the zero-padded width (`yy` is the two-digit year, as in Joda). Text in single
//! quotes is literal, `''` is a quote. Other letters are rejected at validation.

use jiff::Timestamp;
use jiff::tz::{Offset, TimeZone as JiffZone};

/// One piece of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Field { letter: char, width: usize },
}

/// A parsed `path.format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathFormat {
    pieces: Vec<Piece>,
}

impl PathFormat {
    /// Parses a Joda-Time pattern; the error names the unsupported part.
    pub fn parse(pattern: &str) -> Result<PathFormat, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let chars: Vec<char> = pattern.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' {
                if chars.get(i + 1) == Some(&'\'') {
                    literal.push('\'');
                    i += 2;
                    continue;
                }
                i += 1;
                loop {
                    match (chars.get(i), chars.get(i + 1)) {
                        (None, _) => return Err(format!("unterminated quote in {pattern:?}")),
                        (Some('\''), Some('\'')) => {
                            literal.push('\'');
                            i += 2;
                        }
                        (Some('\''), _) => {
                            i += 1;
                            break;
                        }
                        (Some(&c), _) => {
                            literal.push(c);
                            i += 1;
                        }
                    }
                }
                continue;
            }
            if c.is_ascii_alphabetic() {
                if !"yYuMdDHmsS".contains(c) {
                    return Err(format!(
                        "unsupported pattern letter {c:?} in {pattern:?}; supported: y Y u M d D H m s S, text in single quotes"
                    ));
                }
                let width = chars[i..].iter().take_while(|&&x| x == c).count();
                if c == 'M' && width > 2 {
                    return Err(format!(
                        "month names (MMM) are not supported in {pattern:?}; use MM"
                    ));
                }
                if !literal.is_empty() {
                    pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Field { letter: c, width });
                i += width;
                continue;
            }
            literal.push(c);
            i += 1;
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(PathFormat { pieces })
    }

    /// Renders the instant `epoch_ms` in `zone`.
    pub fn render(&self, epoch_ms: i64, zone: &TimeZone) -> String {
        let dt = zone.civil(epoch_ms);
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Field { letter, width } => {
                    let value: i64 = match letter {
                        'y' | 'Y' | 'u' if *width == 2 => i64::from(dt.year()).rem_euclid(100),
                        'y' | 'Y' | 'u' => dt.year().into(),
                        'M' => dt.month().into(),
                        'd' => dt.day().into(),
                        'D' => dt.day_of_year().into(),
                        'H' => dt.hour().into(),
                        'm' => dt.minute().into(),
                        's' => dt.second().into(),
                        _ => dt.millisecond().into(),
                    };
                    out.push_str(&format!("{value:0width$}"));
                }
            }
        }
        out
    }
}

/// The `timezone` of a time-based partitioner.
#[derive(Debug, Clone)]
pub struct TimeZone(JiffZone);

impl TimeZone {
    /// `UTC`, a fixed offset (`+02:00`, `-0530`, `GMT+2`) or an IANA name (`Europe/Paris`,
    /// from the system's zoneinfo).
    pub fn parse(name: &str) -> Result<TimeZone, String> {
        let name = name.trim();
        if name.eq_ignore_ascii_case("UTC") || name.eq_ignore_ascii_case("GMT") || name == "Z" {
            return Ok(TimeZone(JiffZone::UTC));
        }
        let offset_text = name
            .strip_prefix("GMT")
            .or_else(|| name.strip_prefix("UTC"))
            .unwrap_or(name);
        if let Some(seconds) = parse_offset(offset_text) {
            let offset = Offset::from_seconds(seconds)
                .map_err(|e| format!("invalid offset {name:?}: {e}"))?;
            return Ok(TimeZone(JiffZone::fixed(offset)));
        }
        JiffZone::get(name).map(TimeZone).map_err(|e| format!("unknown time zone {name:?} ({e}); use UTC, an offset like +02:00 or an IANA name like Europe/Paris"))
    }

    /// Offset from UTC at an instant, in ms.
    pub fn offset_ms(&self, epoch_ms: i64) -> i64 {
        match Timestamp::from_millisecond(epoch_ms) {
            Ok(ts) => i64::from(self.0.to_offset(ts).seconds()) * 1000,
            Err(_) => 0,
        }
    }

    fn civil(&self, epoch_ms: i64) -> jiff::civil::DateTime {
        let ts = Timestamp::from_millisecond(epoch_ms).unwrap_or(Timestamp::UNIX_EPOCH);
        self.0.to_datetime(ts)
    }
}

/// `+02:00`, `-0530`, `+2` as seconds east of UTC.
fn parse_offset(text: &str) -> Option<i32> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if digits.is_empty() || digits.len() > 4 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (h, m) = if digits.len() <= 2 {
        (digits.as_str(), "0")
    } else {
        digits.split_at(digits.len() - 2)
    };
    let hours: i32 = h.parse().ok()?;
    let minutes: i32 = m.parse().ok()?;
    Some(sign * (hours * 3600 + minutes * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_hive_style_paths() {
        let f = PathFormat::parse("'year'=YYYY/'month'=MM/'day'=dd/'hour'=HH").expect("parse");
        // 2024-02-29T23:59:59.999Z
        let t = 1_709_251_199_999;
        assert_eq!(
            f.render(t, &TimeZone::parse("UTC").expect("utc")),
            "year=2024/month=02/day=29/hour=23"
        );
        assert_eq!(
            f.render(t, &TimeZone::parse("+02:00").expect("offset")),
            "year=2024/month=03/day=01/hour=01"
        );
        let f = PathFormat::parse("yy-DDD 'it''s' mm:ss.SSS").expect("parse");
        assert_eq!(
            f.render(t, &TimeZone::parse("UTC").expect("utc")),
            "24-060 it's 59:59.999"
        );
    }

    #[test]
    fn rejects_unsupported() {
        assert!(PathFormat::parse("MMM").is_err());
        assert!(PathFormat::parse("EEE").is_err());
        assert!(PathFormat::parse("'open").is_err());
        assert!(TimeZone::parse("Nowhere/Special").is_err());
        assert_eq!(
            TimeZone::parse("GMT-05:30").expect("offset").offset_ms(0),
            -(5 * 3600 + 1800) * 1000
        );
    }
}
