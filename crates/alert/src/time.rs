//! RFC 3339 UTC timestamps with microseconds, without a date-time crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// Formats `t` as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC, microseconds).
///
/// Times before 1970 are written as 1970-01-01T00:00:00.000000Z: the daemon
/// never produces them, and a clamped value is easier to spot than a panic.
pub fn rfc3339_micros(t: SystemTime) -> String {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => rfc3339_from_unix(
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_micros(),
        ),
        Err(_) => rfc3339_from_unix(0, 0),
    }
}

/// The current time as an RFC 3339 UTC timestamp with microseconds.
pub fn now_rfc3339() -> String {
    rfc3339_micros(SystemTime::now())
}

/// Formats seconds and microseconds since the Unix epoch (as in a pcap record
/// header) as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
///
/// Negative seconds are clamped to the epoch, microseconds above 999,999 to
/// 999,999, and years beyond 9999 to 9999-12-31T23:59:59.999999Z, so the
/// output always has the fixed 27-character shape.
pub fn rfc3339_from_unix(secs: i64, micros: u32) -> String {
    // 253402300799 = 9999-12-31T23:59:59Z
    const MAX_SECS: i64 = 253_402_300_799;
    let (secs, micros) = if secs < 0 {
        (0, 0)
    } else if secs > MAX_SECS {
        (MAX_SECS, 999_999)
    } else {
        (secs, micros.min(999_999))
    };
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
/// Howard Hinnant's `civil_from_days` algorithm (public domain).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339_from_unix(0, 0), "1970-01-01T00:00:00.000000Z");
        // date -u -d @951782400 -> 2000-02-29 00:00:00 (leap day of a century leap year)
        assert_eq!(
            rfc3339_from_unix(951_782_400, 7),
            "2000-02-29T00:00:00.000007Z"
        );
        // date -u -d @1709251199 -> 2024-02-29 23:59:59
        assert_eq!(
            rfc3339_from_unix(1_709_251_199, 999_999),
            "2024-02-29T23:59:59.999999Z"
        );
        // date -u -d @4102444800 -> 2100-01-01 (2100 is not a leap year)
        assert_eq!(
            rfc3339_from_unix(4_102_444_800, 0),
            "2100-01-01T00:00:00.000000Z"
        );
        assert_eq!(
            rfc3339_from_unix(4_107_542_399, 0),
            "2100-02-28T23:59:59.000000Z"
        );
        assert_eq!(
            rfc3339_from_unix(4_107_542_400, 0),
            "2100-03-01T00:00:00.000000Z"
        );
    }

    #[test]
    fn clamps_out_of_range() {
        assert_eq!(rfc3339_from_unix(-5, 3), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339_from_unix(i64::MAX, 0),
            "9999-12-31T23:59:59.999999Z"
        );
        assert_eq!(
            rfc3339_from_unix(10, 5_000_000),
            "1970-01-01T00:00:10.999999Z"
        );
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(rfc3339_micros(before), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn every_day_round_trips_against_a_day_counter() {
        // Walk day by day from 1970 to 2400 and check the calendar never skips
        // or repeats a date and month lengths follow the Gregorian rules.
        let mut prev = civil_from_days(0);
        assert_eq!(prev, (1970, 1, 1));
        for day in 1..(430 * 366) {
            let cur = civil_from_days(day);
            let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let mlen = |y: i64, m: u32| match m {
                2 if leap(y) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            let expect = if prev.2 < mlen(prev.0, prev.1) {
                (prev.0, prev.1, prev.2 + 1)
            } else if prev.1 < 12 {
                (prev.0, prev.1 + 1, 1)
            } else {
                (prev.0 + 1, 1, 1)
            };
            assert_eq!(cur, expect, "day {day}");
            prev = cur;
        }
    }

    #[test]
    fn now_has_fixed_shape() {
        let s = now_rfc3339();
        assert_eq!(s.len(), 27, "{s}");
        assert!(s.ends_with('Z'));
        assert_eq!(&s[10..11], "T");
        assert_eq!(&s[19..20], ".");
    }
}
