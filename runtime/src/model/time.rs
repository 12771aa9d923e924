//! Calendar arithmetic for the wire formats (no time-zone database needed: values are UTC or
//! zone-less by the time they reach the model).

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number since 1970-01-01: `(year, month, day)`.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// ISO-8601 UTC text of microseconds since the epoch, as Debezium's `ZonedTimestamp`
/// writes it: `2024-03-01T12:30:45.123456Z` (fraction trimmed of trailing zeros).
pub fn format_timestamp_utc(micros: i64) -> String {
    let days = micros.div_euclid(86_400_000_000);
    let in_day = micros.rem_euclid(86_400_000_000);
    let (y, m, d) = civil_from_days(days);
    format!("{}T{}Z", format_date(y, m, d), format_time_of_day(in_day))
}

/// `YYYY-MM-DD` (years outside 0..=9999 get a sign, as ISO-8601 extended years).
pub fn format_date(year: i64, month: u32, day: u32) -> String {
    if (0..=9999).contains(&year) {
        format!("{year:04}-{month:02}-{day:02}")
    } else {
        format!("{year:+05}-{month:02}-{day:02}")
    }
}

/// `HH:MM:SS[.ffffff]` of microseconds within a day.
pub fn format_time_of_day(micros: i64) -> String {
    let secs = micros / 1_000_000;
    let frac = micros % 1_000_000;
    let base = format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    );
    if frac == 0 {
        base
    } else {
        let digits = format!("{frac:06}");
        format!("{base}.{}", digits.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for days in [-719_468, -1, 0, 1, 18_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn formats_like_debezium() {
        assert_eq!(format_timestamp_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_timestamp_utc(1_709_296_245_123_450),
            "2024-03-01T12:30:45.12345Z"
        );
        assert_eq!(format_timestamp_utc(-1), "1969-12-31T23:59:59.999999Z");
    }
}

/// Parses `HH:MM[:SS[.fffffffff]]` into microseconds within a day (nanoseconds truncated).
pub fn parse_time_of_day(text: &str) -> Option<i64> {
    let mut parts = text.splitn(3, ':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let (s, frac) = match parts.next() {
        None => (0, 0),
        Some(sec) => {
            let (whole, frac) = sec.split_once('.').unwrap_or((sec, ""));
            if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let micros = format!("{frac:0<6}");
            (whole.parse::<i64>().ok()?, micros[..6].parse::<i64>().ok()?)
        }
    };
    if !(0..=24).contains(&h) || !(0..60).contains(&m) || !(0..=60).contains(&s) {
        return None;
    }
    Some(((h * 60 + m) * 60 + s) * 1_000_000 + frac)
}

/// Splits a trailing UTC offset (`Z`, `+05:30`, `-0800`, `+05`) off a time text: the rest
/// and the offset in seconds east of UTC.
pub fn split_offset(text: &str) -> Option<(&str, i32)> {
    if let Some(rest) = text.strip_suffix('Z').or_else(|| text.strip_suffix('z')) {
        return Some((rest, 0));
    }
    let at = text.rfind(['+', '-'])?;
    let (rest, offset) = text.split_at(at);
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let digits: String = offset[1..].chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m) = match digits.len() {
        2 => (digits.parse::<i32>().ok()?, 0),
        4 => (
            digits[..2].parse::<i32>().ok()?,
            digits[2..].parse::<i32>().ok()?,
        ),
        _ => return None,
    };
    Some((rest, sign * (h * 3600 + m * 60)))
}

/// Parses an ISO-8601 timestamp with an offset (`2024-03-01T12:30:45.123456Z`,
/// `2024-03-01T12:30:45+02:00`; a space may replace the `T`) into microseconds since the
/// epoch, UTC.
pub fn parse_timestamp_tz(text: &str) -> Option<i64> {
    let (local, offset) = split_offset(text.trim())?;
    let local = parse_timestamp(local)?;
    Some(local - i64::from(offset) * 1_000_000)
}

/// Parses a zone-less ISO-8601 timestamp (`2024-03-01T12:30:45.123456`, or with a space)
/// into microseconds since the epoch.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let (date, time) = text
        .split_once('T')
        .or_else(|| text.split_once(' '))
        .unwrap_or((text, "00:00"));
    Some(parse_date(date)? * 86_400_000_000 + parse_time_of_day(time)?)
}

/// Parses `YYYY-MM-DD` (optionally signed extended years) into days since 1970-01-01.
pub fn parse_date(text: &str) -> Option<i64> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'-' => (-1, &text[1..]),
        b'+' => (1, &text[1..]),
        _ => (1, text),
    };
    let mut parts = rest.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(sign * y, m, d))
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_text() {
        for micros in [0, 1, -1, 1_709_296_245_123_456, -62_135_596_800_000_000] {
            assert_eq!(
                parse_timestamp_tz(&format_timestamp_utc(micros)),
                Some(micros)
            );
        }
        assert_eq!(
            parse_timestamp_tz("2024-03-01T14:30:45+02:00"),
            parse_timestamp_tz("2024-03-01T12:30:45Z")
        );
        assert_eq!(
            parse_timestamp_tz("2024-03-01 12:30:45.5-0130"),
            Some(1_709_296_245_500_000 + 5_400_000_000)
        );
        assert_eq!(parse_timestamp_tz("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_time_of_day("25:00:00"), None);
        assert_eq!(
            parse_time_of_day("12:00:00.123456789"),
            Some(43_200_123_456)
        );
    }
}
