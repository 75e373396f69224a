use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::model::time::{civil_from_days, days_from_civil, DAY_MS};
use crate::Error;

/// A candle interval, with its alignment: a span and the clock its candles open on.
///
/// On UTC (offset 0) all spans are aligned to the Unix epoch except `1w` (weeks start
/// Monday 00:00) and `1M`/`3M` (calendar months, quarters from January). `2d` and `3d`
/// count days from the epoch, like Binance's `3d`. With an offset the same rules hold on
/// the clock that far east of UTC: `1d+08:00` opens at 16:00 UTC (OKX's Hong Kong bars).
/// The offset is part of the series' identity; an offset that moves no boundary (`1h`
/// at `+08:00`) is dropped, so one grid has one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Timeframe {
    span: Span,
    /// Minutes east of UTC.
    offset: i16,
}

/// The length of a candle, before its alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Span {
    S1,
    M1,
    M3,
    M5,
    M15,
    M30,
    H1,
    H2,
    H4,
    H6,
    H8,
    H12,
    D1,
    D2,
    D3,
    W1,
    Mo1,
    Mo3,
}

/// 1970-01-05, the first Monday after the epoch, in ms.
const FIRST_MONDAY_MS: i64 = 4 * DAY_MS;

const fn utc(span: Span) -> Timeframe {
    Timeframe { span, offset: 0 }
}

impl Timeframe {
    /// One second.
    pub const S1: Self = utc(Span::S1);
    /// One minute.
    pub const M1: Self = utc(Span::M1);
    /// Three minutes.
    pub const M3: Self = utc(Span::M3);
    /// Five minutes.
    pub const M5: Self = utc(Span::M5);
    /// Fifteen minutes.
    pub const M15: Self = utc(Span::M15);
    /// Thirty minutes.
    pub const M30: Self = utc(Span::M30);
    /// One hour.
    pub const H1: Self = utc(Span::H1);
    /// Two hours.
    pub const H2: Self = utc(Span::H2);
    /// Four hours.
    pub const H4: Self = utc(Span::H4);
    /// Six hours.
    pub const H6: Self = utc(Span::H6);
    /// Eight hours.
    pub const H8: Self = utc(Span::H8);
    /// Twelve hours.
    pub const H12: Self = utc(Span::H12);
    /// One day.
    pub const D1: Self = utc(Span::D1);
    /// Two days, epoch-aligned.
    pub const D2: Self = utc(Span::D2);
    /// Three days, epoch-aligned.
    pub const D3: Self = utc(Span::D3);
    /// One week, from Monday 00:00.
    pub const W1: Self = utc(Span::W1);
    /// One calendar month.
    #[allow(non_upper_case_globals)] // `1M` beside `1m`: the exchange's case, kept readable
    pub const Mo1: Self = utc(Span::Mo1);
    /// One calendar quarter (January, April, July, October).
    #[allow(non_upper_case_globals)]
    pub const Mo3: Self = utc(Span::Mo3);

    /// Every span on UTC, finest first.
    pub const ALL: [Timeframe; 18] = [
        Self::S1,
        Self::M1,
        Self::M3,
        Self::M5,
        Self::M15,
        Self::M30,
        Self::H1,
        Self::H2,
        Self::H4,
        Self::H6,
        Self::H8,
        Self::H12,
        Self::D1,
        Self::D2,
        Self::D3,
        Self::W1,
        Self::Mo1,
        Self::Mo3,
    ];

    /// The same span on the clock `minutes` east of UTC (-14:00 ..= +14:00).
    ///
    /// # Errors
    /// [`Error::InvalidTimeframe`] for an offset outside that range.
    pub fn with_offset(self, minutes: i32) -> Result<Self, Error> {
        if !(-14 * 60..=14 * 60).contains(&minutes) {
            return Err(Error::InvalidTimeframe(format!(
                "{} with an offset of {minutes} minutes (at most 14 hours either way)",
                self.span_name()
            )));
        }
        let moved = Self {
            span: self.span,
            offset: minutes as i16,
        };
        // An offset that is a whole number of candles moves no boundary.
        let same = match moved.fixed_ms() {
            Some(len) => i64::from(minutes) * 60_000 % len == 0,
            None => minutes == 0,
        };
        Ok(if same { utc(self.span) } else { moved })
    }

    /// Minutes east of UTC of the clock the candles open on.
    pub fn offset_minutes(self) -> i32 {
        i32::from(self.offset)
    }

    /// The same span on UTC.
    pub fn on_utc(self) -> Self {
        utc(self.span)
    }

    /// The span's name, e.g. `1m` or `1M`, without the offset.
    pub fn span_name(self) -> &'static str {
        match self.span {
            Span::S1 => "1s",
            Span::M1 => "1m",
            Span::M3 => "3m",
            Span::M5 => "5m",
            Span::M15 => "15m",
            Span::M30 => "30m",
            Span::H1 => "1h",
            Span::H2 => "2h",
            Span::H4 => "4h",
            Span::H6 => "6h",
            Span::H8 => "8h",
            Span::H12 => "12h",
            Span::D1 => "1d",
            Span::D2 => "2d",
            Span::D3 => "3d",
            Span::W1 => "1w",
            Span::Mo1 => "1M",
            Span::Mo3 => "3M",
        }
    }

    /// The name the store and the API use: the span's name, then the offset when there
    /// is one (`1d+08:00`).
    pub fn name(self) -> String {
        self.to_string()
    }

    /// Returns the fixed length in ms, or `None` for months and quarters.
    pub fn fixed_ms(self) -> Option<i64> {
        const MIN: i64 = 60_000;
        Some(match self.span {
            Span::S1 => 1000,
            Span::M1 => MIN,
            Span::M3 => 3 * MIN,
            Span::M5 => 5 * MIN,
            Span::M15 => 15 * MIN,
            Span::M30 => 30 * MIN,
            Span::H1 => 60 * MIN,
            Span::H2 => 120 * MIN,
            Span::H4 => 240 * MIN,
            Span::H6 => 360 * MIN,
            Span::H8 => 480 * MIN,
            Span::H12 => 720 * MIN,
            Span::D1 => DAY_MS,
            Span::D2 => 2 * DAY_MS,
            Span::D3 => 3 * DAY_MS,
            Span::W1 => 7 * DAY_MS,
            Span::Mo1 | Span::Mo3 => return None,
        })
    }

    fn offset_ms(self) -> i64 {
        i64::from(self.offset) * 60_000
    }

    /// Returns the open time of the candle containing `t` (ms).
    pub fn floor(self, t: i64) -> i64 {
        let off = self.offset_ms();
        let local = t + off;
        let open = match self.span {
            Span::W1 => local - (local - FIRST_MONDAY_MS).rem_euclid(7 * DAY_MS),
            Span::Mo1 | Span::Mo3 => {
                let (y, m, _) = civil_from_days(local.div_euclid(DAY_MS));
                let m = if self.span == Span::Mo3 {
                    m - (m - 1) % 3
                } else {
                    m
                };
                days_from_civil(y, m, 1) * DAY_MS
            }
            _ => {
                let len = self.fixed_ms().expect("only months have no fixed length");
                local - local.rem_euclid(len)
            }
        };
        open - off
    }

    /// Returns the open time of the candle after the one opening at or containing `t`.
    pub fn next(self, t: i64) -> i64 {
        let open = self.floor(t);
        match self.fixed_ms() {
            Some(len) => open + len,
            None => {
                let off = self.offset_ms();
                let months = if self.span == Span::Mo3 { 3 } else { 1 };
                let (y, m, _) = civil_from_days((open + off).div_euclid(DAY_MS));
                let (y, m) = if m + months > 12 {
                    (y + 1, m + months - 12)
                } else {
                    (y, m + months)
                };
                days_from_civil(y, m, 1) * DAY_MS - off
            }
        }
    }

    /// Returns whether `t` is the open time of a candle.
    pub fn is_aligned(self, t: i64) -> bool {
        self.floor(t) == t
    }

    /// Whether candles of `self` can be summed into candles of `coarser` exactly: every
    /// `coarser` boundary is one of `self`'s.
    pub fn nests_in(self, coarser: Timeframe) -> bool {
        let Some(len) = self.fixed_ms() else {
            // Months nest in quarters on the same clock.
            return self.offset == coarser.offset
                && self <= coarser
                && coarser.fixed_ms().is_none();
        };
        if self >= coarser {
            return false;
        }
        // Boundaries of `coarser` are a whole number of its lengths apart (days for weeks
        // and months); when `len` divides that and one boundary is aligned, all are.
        let step = match coarser.fixed_ms() {
            Some(c) if coarser.span != Span::W1 => c,
            _ => DAY_MS,
        };
        step % len == 0 && self.is_aligned(coarser.floor(0))
    }
}

impl FromStr for Timeframe {
    type Err = Error;

    /// Parses the names, case-sensitive (`1m` is a minute, `1M` a month), with an
    /// optional offset: `1d+08:00`, `1w-05:00`.
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::InvalidTimeframe(s.chars().take(16).collect());
        let (name, offset) = match s.find(['+', '-']) {
            Some(at) => (&s[..at], Some(&s[at..])),
            None => (s, None),
        };
        let tf = Self::ALL
            .into_iter()
            .find(|tf| tf.span_name() == name)
            .ok_or_else(bad)?;
        match offset {
            None => Ok(tf),
            Some(o) => tf.with_offset(parse_offset(o).ok_or_else(bad)?),
        }
    }
}

/// Minutes east of UTC of `+HH:MM` or `-HH:MM` (also `Z` and `+HH`).
pub fn parse_offset(s: &str) -> Option<i32> {
    if s == "Z" || s.eq_ignore_ascii_case("utc") {
        return Some(0);
    }
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let rest = &s[1..];
    let (h, m) = rest.split_once(':').unwrap_or((rest, "00"));
    let digits = |x: &str| x.len() == 2 && x.bytes().all(|b| b.is_ascii_digit());
    if !digits(h) || !digits(m) {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 14 && m < 60).then_some(sign * (h * 60 + m))
}

impl TryFrom<String> for Timeframe {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}

impl From<Timeframe> for String {
    fn from(t: Timeframe) -> String {
        t.to_string()
    }
}

impl fmt::Display for Timeframe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.offset == 0 {
            return f.pad(self.span_name());
        }
        let sign = if self.offset < 0 { '-' } else { '+' };
        let m = self.offset.unsigned_abs();
        f.pad(&format!(
            "{}{sign}{:02}:{:02}",
            self.span_name(),
            m / 60,
            m % 60
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::time::parse_time;

    fn t(s: &str) -> i64 {
        parse_time(s).unwrap()
    }

    #[test]
    fn names_round_trip_and_are_case_sensitive() {
        for tf in Timeframe::ALL {
            assert_eq!(tf.name().parse::<Timeframe>().unwrap(), tf);
        }
        assert_eq!("1M".parse::<Timeframe>().unwrap(), Timeframe::Mo1);
        assert_eq!("1m".parse::<Timeframe>().unwrap(), Timeframe::M1);
        for bad in [
            "", "1H", "2m", "60", "1min", "1mo", "1d+8", "1d+15:00", "1d+08:60", "+08:00",
        ] {
            assert!(bad.parse::<Timeframe>().is_err(), "{bad}");
        }
    }

    #[test]
    fn weeks_start_on_monday_and_months_on_the_first() {
        // 2024-01-03 is a Wednesday; its week opened Monday 2024-01-01.
        assert_eq!(
            Timeframe::W1.floor(t("2024-01-03T12:00:00Z")),
            t("2024-01-01")
        );
        assert_eq!(Timeframe::W1.next(t("2024-01-03")), t("2024-01-08"));
        assert!(Timeframe::W1.is_aligned(t("1970-01-05")));
        assert!(!Timeframe::W1.is_aligned(0), "the epoch was a Thursday");
        assert_eq!(
            Timeframe::Mo1.floor(t("2024-02-29T23:59:59Z")),
            t("2024-02-01")
        );
        assert_eq!(Timeframe::Mo1.next(t("2024-12-15")), t("2025-01-01"));
        // 19,723 days after the epoch; 3d candles open every third day from it.
        assert_eq!(Timeframe::D3.floor(t("2024-01-01")), t("2023-12-31"));
        assert_eq!(
            Timeframe::H1.next(t("2024-01-01T10:30:00Z")),
            t("2024-01-01T11:00:00Z")
        );
        assert!(Timeframe::M1.is_aligned(1_570_752_000_000));
        assert!(!Timeframe::M5.is_aligned(1_570_752_060_000));
    }

    #[test]
    fn offsets_move_the_boundaries_onto_another_clock() {
        let hk = |tf: Timeframe| tf.with_offset(8 * 60).unwrap();
        // OKX's 1D opens at 16:00 UTC, its 1W on Monday 00:00 Hong Kong time.
        assert_eq!(
            hk(Timeframe::D1).floor(t("2024-01-03T15:59:59Z")),
            t("2024-01-02T16:00:00Z")
        );
        assert_eq!(
            hk(Timeframe::D1).floor(t("2024-01-03T16:00:00Z")),
            t("2024-01-03T16:00:00Z")
        );
        assert_eq!(
            hk(Timeframe::W1).floor(t("2024-01-03")),
            t("2023-12-31T16:00:00Z")
        );
        assert_eq!(
            hk(Timeframe::Mo1).floor(t("2024-02-29T16:30:00Z")),
            t("2024-02-29T16:00:00Z")
        );
        assert_eq!(
            hk(Timeframe::Mo1).next(t("2024-12-31T16:00:00Z")),
            t("2025-01-31T16:00:00Z")
        );
        assert_eq!(
            hk(Timeframe::Mo3).floor(t("2024-05-10")),
            t("2024-03-31T16:00:00Z")
        );
        assert_eq!(Timeframe::Mo3.next(t("2024-11-10")), t("2025-01-01"));
        assert_eq!(
            hk(Timeframe::H6).floor(t("2024-01-01T01:00:00Z")),
            t("2023-12-31T22:00:00Z")
        );
        // A whole number of candles moves nothing: one grid, one name.
        assert_eq!(hk(Timeframe::H4), Timeframe::H4);
        assert_eq!(hk(Timeframe::D1).name(), "1d+08:00");
        assert_eq!("1d+08:00".parse::<Timeframe>().unwrap(), hk(Timeframe::D1));
        assert_eq!(
            "1w-05:30".parse::<Timeframe>().unwrap().offset_minutes(),
            -330
        );
        assert!(Timeframe::D1.with_offset(15 * 60).is_err());
    }

    #[test]
    fn only_grids_whose_boundaries_all_meet_nest() {
        let hk = |tf: Timeframe| tf.with_offset(8 * 60).unwrap();
        assert!(Timeframe::H1.nests_in(hk(Timeframe::D1)));
        assert!(Timeframe::H4.nests_in(hk(Timeframe::W1)));
        assert!(
            !Timeframe::H6.nests_in(hk(Timeframe::D1)),
            "16:00 is not a 6h boundary"
        );
        assert!(!Timeframe::D1.nests_in(hk(Timeframe::W1)));
        assert!(hk(Timeframe::D1).nests_in(hk(Timeframe::Mo3)));
        assert!(Timeframe::Mo1.nests_in(Timeframe::Mo3));
        assert!(!Timeframe::Mo1.nests_in(hk(Timeframe::Mo3)));
        assert!(!Timeframe::D2.nests_in(Timeframe::W1));
        assert!(Timeframe::D1.nests_in(Timeframe::D3));
        assert!(!Timeframe::D1.nests_in(Timeframe::D1));
    }
}
