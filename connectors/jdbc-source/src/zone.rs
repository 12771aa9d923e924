//! `db.timezone`: the zone the database's timestamp columns without a zone are written in.
//! Kafka Connect's JDBC source takes a Java zone ID; so do we: `UTC`, a fixed offset such as
//! `+02:00`, or an IANA name such as `Europe/Berlin`, whose offset changes with daylight
//! saving time (jiff, with the system zone database or its bundled copy).

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// A validated `db.timezone`.
#[derive(Debug, Clone)]
pub enum DbTimeZone {
    /// UTC plus this many seconds.
    Fixed(i32),
    /// A zone with rules (daylight saving), by its IANA name.
    Named(TimeZone),
}

impl DbTimeZone {
    /// Parses `UTC`, `GMT`, `Z`, a fixed offset (`+02:00`, `UTC-0530`) or an IANA name.
    pub fn parse(text: &str) -> Result<DbTimeZone, String> {
        if let Ok(seconds) = parse_offset(text) {
            return Ok(DbTimeZone::Fixed(seconds));
        }
        TimeZone::get(text.trim()).map(DbTimeZone::Named).map_err(|e| {
            format!(
                "must be UTC, a fixed offset such as +02:00 or a zone name such as Europe/Berlin, got {text:?} ({e})"
            )
        })
    }

    pub fn is_utc(&self) -> bool {
        match self {
            DbTimeZone::Fixed(s) => *s == 0,
            DbTimeZone::Named(tz) => tz.to_fixed_offset().is_ok_and(|o| o.seconds() == 0),
        }
    }

    /// The zone's offset from UTC, in seconds, at the UTC instant `epoch_us`.
    pub fn offset_at(&self, epoch_us: i64) -> i32 {
        match self {
            DbTimeZone::Fixed(s) => *s,
            DbTimeZone::Named(tz) => {
                Timestamp::from_microsecond(epoch_us).map_or(0, |ts| tz.to_offset(ts).seconds())
            }
        }
    }

    /// The UTC instant of the wall-clock time `local_us` (microseconds since 1970-01-01
    /// 00:00 on the zone's clock). A time that occurs twice (clocks set back) is the earlier
    /// instant; one that never occurs (clocks set forward) is moved forward by the gap, as
    /// java.time resolves them.
    pub fn to_utc(&self, local_us: i64) -> i64 {
        match self {
            DbTimeZone::Fixed(s) => local_us - i64::from(*s) * 1_000_000,
            DbTimeZone::Named(tz) => {
                let civil = Timestamp::from_microsecond(local_us)
                    .map(|ts| ts.to_zoned(TimeZone::UTC).datetime());
                civil
                    .and_then(|dt| tz.to_ambiguous_zoned(dt).compatible())
                    .map_or(local_us, |z| z.timestamp().as_microsecond())
            }
        }
    }
}

/// `UTC`, `GMT`, `Z` with an optional `±hh[:mm]` / `±hhmm` offset, in seconds.
pub fn parse_offset(text: &str) -> Result<i32, String> {
    let t = text.trim();
    let upper = t.to_ascii_uppercase();
    let rest = ["UTC", "GMT", "Z", "ETC/UTC", "ETC/GMT"]
        .iter()
        .find_map(|p| upper.strip_prefix(p))
        .unwrap_or(&upper);
    if rest.is_empty() {
        return Ok(0);
    }
    let bad = || format!("not a fixed offset: {t:?}");
    let (sign, digits) = match rest.as_bytes().first() {
        Some(b'+') => (1, &rest[1..]),
        Some(b'-') => (-1, &rest[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = match digits.split_once(':') {
        Some((h, m)) => (h, m),
        None if digits.len() == 4 => digits.split_at(2),
        None => (digits, "0"),
    };
    let h: i32 = h.parse().map_err(|_| bad())?;
    let m: i32 = m.parse().map_err(|_| bad())?;
    if h > 18 || m > 59 {
        return Err(bad());
    }
    Ok(sign * (h * 3600 + m * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Microseconds of a UTC (or wall-clock) date and time.
    fn us(y: i16, mo: i8, d: i8, h: i8, mi: i8) -> i64 {
        jiff::civil::date(y, mo, d)
            .at(h, mi, 0, 0)
            .to_zoned(TimeZone::UTC)
            .map(|z| z.timestamp().as_microsecond())
            .expect("valid date")
    }

    #[test]
    fn fixed_offsets() {
        assert_eq!(parse_offset("UTC"), Ok(0));
        assert_eq!(parse_offset("+02:00"), Ok(7200));
        assert_eq!(parse_offset("UTC-0530"), Ok(-19800));
        assert!(parse_offset("Europe/Berlin").is_err());
        let z = DbTimeZone::parse("+02:00").expect("offset");
        assert_eq!(z.to_utc(us(2024, 1, 1, 12, 0)), us(2024, 1, 1, 10, 0));
        assert!(DbTimeZone::parse("UTC").expect("utc").is_utc());
    }

    #[test]
    fn named_zones_follow_daylight_saving() {
        let berlin = DbTimeZone::parse("Europe/Berlin").expect("zone database");
        assert!(!berlin.is_utc());
        // Winter: UTC+1; summer: UTC+2.
        assert_eq!(berlin.offset_at(us(2024, 1, 15, 12, 0)), 3600);
        assert_eq!(berlin.offset_at(us(2024, 7, 15, 12, 0)), 7200);
        assert_eq!(
            berlin.to_utc(us(2024, 1, 15, 12, 0)),
            us(2024, 1, 15, 11, 0)
        );
        assert_eq!(
            berlin.to_utc(us(2024, 7, 15, 12, 0)),
            us(2024, 7, 15, 10, 0)
        );
        // 2024-10-27 02:30 happens twice in Berlin: the earlier (still summer) instant.
        assert_eq!(
            berlin.to_utc(us(2024, 10, 27, 2, 30)),
            us(2024, 10, 27, 0, 30)
        );
        // 2024-03-31 02:30 never happens: moved forward by the hour.
        assert_eq!(
            berlin.to_utc(us(2024, 3, 31, 2, 30)),
            us(2024, 3, 31, 1, 30)
        );
        let err = DbTimeZone::parse("Mars/Olympus").expect_err("unknown zone");
        assert!(err.contains("zone name such as Europe/Berlin"), "{err}");
    }
}
