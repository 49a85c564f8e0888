//! Calendar arithmetic on event time: RFC 3339 timestamps to microseconds since the epoch,
//! day numbers to UTC dates, and the day in minutes. Used by the validator (`parse`), the
//! table writer (hive folders `date=YYYY-MM-DD`) and the engine's day-long operators; UTC
//! only, proleptic Gregorian, no leap seconds (as RFC 3339 timestamps in events are read).

use crate::schema::{EventTime, MICROS_PER_SECOND};

/// Minutes in a day: the engine's timestamps are event-time minutes, a day is this many.
pub const DAY_MINUTES: u64 = 24 * HOUR_MINUTES;

/// Minutes in an hour (the period of the hourly tables' folders).
pub const HOUR_MINUTES: u64 = 60;

/// Parses an RFC 3339 date-time (`2025-11-08T18:23:45.123Z`, 0-9 fraction digits, `Z` or a
/// `±HH:MM` offset, `T`, `t` or a space between date and time) into microseconds since the
/// epoch, truncating digits beyond the microsecond. `None` for anything else, for leap
/// seconds, and for instants before 1970.
pub fn parse_timestamp(s: &str) -> Option<EventTime> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let mut v = 0i64;
        for &c in &b[range] {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Some(v)
    };
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut i = 19;
    let mut micros = 0i64;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 6 {
                micros = micros * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 || digits > 9 {
            return None;
        }
        for _ in digits..6 {
            micros *= 10;
        }
    }
    let offset_seconds = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    let t = seconds * MICROS_PER_SECOND + micros;
    (t >= 0).then_some(EventTime(t))
}

fn is_leap_year(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap_year(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The UTC date of a day number (days since the epoch) as `(year, month, day)`.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    #[test]
    fn fractional_seconds_of_zero_to_nine_digits() {
        let base = "2024-02-29T23:59:59".parse::<chrono::NaiveDateTime>().unwrap().and_utc().timestamp_micros();
        let cases = [
            ("", 0),
            (".1", 100_000),
            (".12", 120_000),
            (".123", 123_000),
            (".1234", 123_400),
            (".12345", 123_450),
            (".123456", 123_456),
            (".1234567", 123_456),
            (".12345678", 123_456),
            (".123456789", 123_456),
        ];
        for (frac, micros) in cases {
            let s = format!("2024-02-29T23:59:59{frac}Z");
            assert_eq!(parse_timestamp(&s), Some(EventTime(base + micros)), "{s}");
        }
        assert_eq!(parse_timestamp("2024-02-29T23:59:59.Z"), None);
        assert_eq!(parse_timestamp("2024-02-29T23:59:59.1234567890Z"), None);
    }

    #[test]
    fn calendar_edge_cases() {
        assert!(parse_timestamp("2024-02-29T00:00:00Z").is_some(), "leap day");
        assert!(parse_timestamp("2000-02-29T00:00:00Z").is_some(), "leap century");
        assert_eq!(parse_timestamp("2025-02-29T00:00:00Z"), None, "not a leap year");
        assert_eq!(parse_timestamp("1900-02-29T00:00:00Z"), None, "not a leap century");
        assert_eq!(parse_timestamp("2025-04-31T00:00:00Z"), None);
        assert_eq!(parse_timestamp("2025-01-01T24:00:00Z"), None);
        assert_eq!(parse_timestamp("2025-01-01T23:59:60Z"), None, "leap second");
        assert_eq!(parse_timestamp("1969-12-31T23:59:59Z"), None, "before the epoch");
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(EventTime(0)));
        assert_eq!(parse_timestamp("2025-01-01T00:00:00"), None, "no offset");
        // Offsets and separators agree with chrono's RFC 3339 parser.
        for s in [
            "2025-11-08T18:23:45.123+02:00",
            "2025-11-08t18:23:45-05:30",
            "2025-11-08 18:23:45.5z",
            "2025-12-31T23:59:59.999999-00:00",
        ] {
            let expected = DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros();
            assert_eq!(parse_timestamp(s), Some(EventTime(expected)), "{s}");
        }
    }

    #[test]
    fn civil_round_trip() {
        for days in [-1, 0, 59, 365, 10_957, 19_782, 20_400, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, i64::from(m), i64::from(d)), days);
        }
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }
}
