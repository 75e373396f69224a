//! Times: epoch numbers in any common unit, RFC 3339 / ISO 8601 text, and civil dates.

pub use cache_core::{wall_ms, Now};

use crate::{Error, Result};

/// Milliseconds in a day.
pub(crate) const DAY_MS: i64 = 86_400_000;

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month, day) of days since 1970-01-01.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
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

/// Converts an epoch number to milliseconds, deciding the unit by magnitude: seconds
/// below 10^11 (until the year 5138), milliseconds below 10^14, microseconds below
/// 10^17, nanoseconds above. Newer Binance files use microseconds; this reads both.
pub fn epoch_to_ms(v: i64) -> i64 {
    let a = v.unsigned_abs();
    if a < 100_000_000_000 {
        v * 1000
    } else if a < 100_000_000_000_000 {
        v
    } else if a < 100_000_000_000_000_000 {
        v.div_euclid(1000)
    } else {
        v.div_euclid(1_000_000)
    }
}

/// Parses a time: an integer in epoch seconds, ms, µs or ns (by magnitude), or RFC 3339 /
/// ISO 8601 text (`2024-01-01`, `2024-01-01T10:00:00Z`, `2024-01-01 10:00:00.5+02:00`;
/// lowercase `t`/`z` and a space separator accepted; no offset means UTC).
///
/// # Errors
/// [`Error::InvalidTime`] saying what is wrong; negative times are refused.
pub fn parse_time(s: &str) -> Result<i64> {
    let t = s.trim();
    let bad = |reason| Error::InvalidTime {
        value: s.chars().take(64).collect(),
        reason,
    };
    if t.is_empty() {
        return Err(bad("empty"));
    }
    if t.bytes().all(|b| b.is_ascii_digit() || b == b'-') && !t[1..].contains('-') {
        let v: i64 = t.parse().map_err(|_| bad("not a number of milliseconds"))?;
        if v < 0 {
            return Err(bad("before 1970"));
        }
        return Ok(epoch_to_ms(v));
    }
    // Epoch numbers written as floats, e.g. by pandas (1704067200.0).
    if let Some((int, frac)) = t.split_once('.') {
        if !int.is_empty()
            && int.bytes().all(|b| b.is_ascii_digit())
            && frac.bytes().all(|b| b.is_ascii_digit())
        {
            if frac.bytes().any(|b| b != b'0') {
                return Err(bad("fractional epoch numbers are ambiguous; use integers"));
            }
            return parse_time(int);
        }
    }
    parse_iso(t)
        .ok_or_else(|| bad("use epoch milliseconds or RFC 3339 like 2024-01-01T00:00:00Z"))
        .and_then(|ms| {
            if ms < 0 {
                Err(bad("before 1970"))
            } else {
                Ok(ms)
            }
        })
}

fn parse_iso(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = t.get(r)?;
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())).then(|| s.parse().ok())?
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(i64::from(y), mo) {
        return None;
    }
    let mut ms = days_from_civil(i64::from(y), mo, d) * DAY_MS;
    let rest = &t[10..];
    if rest.is_empty() {
        return Some(ms);
    }
    let sep = rest.as_bytes()[0];
    if !matches!(sep, b'T' | b't' | b' ') {
        return None;
    }
    let rest = &rest[1..];
    let hms_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == ':'))
        .unwrap_or(rest.len());
    let parts: Vec<&str> = rest[..hms_end].split(':').collect();
    let field = |s: &str, max: u32| -> Option<i64> {
        (s.len() == 2 && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())?
            .filter(|v| *v <= max)
            .map(i64::from)
    };
    let (h, mi, sec) = match parts.as_slice() {
        [h, m] => (field(h, 23)?, field(m, 59)?, 0),
        [h, m, s] => (field(h, 23)?, field(m, 59)?, field(s, 60)?),
        _ => return None,
    };
    ms += (h * 3600 + mi * 60 + sec) * 1000;
    let mut rest = &rest[hms_end..];
    if let Some(frac) = rest.strip_prefix('.') {
        let end = frac
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(frac.len());
        if end == 0 {
            return None;
        }
        let digits = &frac[..end.min(3)];
        let v: i64 = digits.parse().ok()?;
        ms += v * 10_i64.pow(3 - digits.len() as u32);
        rest = &frac[end..];
    }
    match rest {
        "" | "Z" | "z" => Some(ms),
        off => {
            let sign = match off.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let off = &off[1..];
            let (oh, om) = match off.len() {
                5 if off.as_bytes()[2] == b':' => (field(&off[..2], 23)?, field(&off[3..], 59)?),
                4 => (field(&off[..2], 23)?, field(&off[2..], 59)?),
                2 => (field(off, 23)?, 0),
                _ => return None,
            };
            Some(ms - sign * (oh * 3600 + om * 60) * 1000)
        }
    }
}

pub(crate) fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Formats epoch ms as RFC 3339 UTC with milliseconds, e.g. `2024-01-01T00:00:00.000Z`.
pub fn format_time(ms: i64) -> String {
    let days = ms.div_euclid(DAY_MS);
    let rem = ms.rem_euclid(DAY_MS);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Option<i64>) {
        assert_eq!(parse_time(input).ok(), expected, "{input}");
    }

    #[test]
    fn times_parse_in_every_accepted_form() {
        check("1704067200000", Some(1_704_067_200_000));
        check("1704067200", Some(1_704_067_200_000));
        check("1704067200000000", Some(1_704_067_200_000));
        check("1704067200000000000", Some(1_704_067_200_000));
        check("1704067200.0", Some(1_704_067_200_000));
        check("2024-01-01", Some(1_704_067_200_000));
        check("2024-01-01T00:00:00Z", Some(1_704_067_200_000));
        check("2024-01-01t00:00:00z", Some(1_704_067_200_000));
        check("2024-01-01 00:00:00", Some(1_704_067_200_000));
        check("2024-01-01T02:00:00+02:00", Some(1_704_067_200_000));
        check("2023-12-31T19:00:00-05:00", Some(1_704_067_200_000));
        check("2024-01-01T00:00:00.5Z", Some(1_704_067_200_500));
        check("2024-01-01T00:00:00.123456Z", Some(1_704_067_200_123));
        check("2024-01-01T00:00", Some(1_704_067_200_000));
        check("2024-02-29", Some(1_709_164_800_000));
        check("0", Some(0));
    }

    #[test]
    fn bad_times_are_refused() {
        for bad in [
            "",
            "-1",
            "abc",
            "2023-02-29",
            "2024-13-01",
            "2024-01-32",
            "2024-01-01T25:00:00Z",
            "2024-01-01X00:00",
            "2024-01-01T00:00:00+2",
            "1704067200.5",
            "1e12",
            "2024-1-1",
            "1969-12-31",
            "99999999999999999999",
            "2024-01-01T00:00:00.Z",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in [-800_000, -1, 0, 1, 19_723, 60_000, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(format_time(1_704_067_200_123), "2024-01-01T00:00:00.123Z");
    }
}
