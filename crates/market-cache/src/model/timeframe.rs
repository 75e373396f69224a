use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::model::time::{civil_from_days, days_from_civil, DAY_MS};
use crate::Error;

/// A candle interval, with the exchange's alignment rules.
///
/// All are aligned to the Unix epoch except `1w` (weeks start Monday 00:00 UTC) and `1M`
/// (calendar months). `3d` is epoch-aligned, like Binance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Timeframe {
    /// One second.
    S1,
    /// One minute.
    M1,
    /// Three minutes.
    M3,
    /// Five minutes.
    M5,
    /// Fifteen minutes.
    M15,
    /// Thirty minutes.
    M30,
    /// One hour.
    H1,
    /// Two hours.
    H2,
    /// Four hours.
    H4,
    /// Six hours.
    H6,
    /// Eight hours.
    H8,
    /// Twelve hours.
    H12,
    /// One day.
    D1,
    /// Three days, epoch-aligned.
    D3,
    /// One week, from Monday 00:00 UTC.
    W1,
    /// One calendar month.
    Mo1,
}

/// 1970-01-05, the first Monday after the epoch, in ms.
const FIRST_MONDAY_MS: i64 = 4 * DAY_MS;

impl Timeframe {
    /// Every timeframe, finest first.
    pub const ALL: [Timeframe; 16] = [
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
        Self::D3,
        Self::W1,
        Self::Mo1,
    ];

    /// Returns the exchange's name, e.g. `1m` or `1M`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::S1 => "1s",
            Self::M1 => "1m",
            Self::M3 => "3m",
            Self::M5 => "5m",
            Self::M15 => "15m",
            Self::M30 => "30m",
            Self::H1 => "1h",
            Self::H2 => "2h",
            Self::H4 => "4h",
            Self::H6 => "6h",
            Self::H8 => "8h",
            Self::H12 => "12h",
            Self::D1 => "1d",
            Self::D3 => "3d",
            Self::W1 => "1w",
            Self::Mo1 => "1M",
        }
    }

    /// Returns the fixed length in ms, or `None` for months.
    pub fn fixed_ms(self) -> Option<i64> {
        const MIN: i64 = 60_000;
        Some(match self {
            Self::S1 => 1000,
            Self::M1 => MIN,
            Self::M3 => 3 * MIN,
            Self::M5 => 5 * MIN,
            Self::M15 => 15 * MIN,
            Self::M30 => 30 * MIN,
            Self::H1 => 60 * MIN,
            Self::H2 => 120 * MIN,
            Self::H4 => 240 * MIN,
            Self::H6 => 360 * MIN,
            Self::H8 => 480 * MIN,
            Self::H12 => 720 * MIN,
            Self::D1 => DAY_MS,
            Self::D3 => 3 * DAY_MS,
            Self::W1 => 7 * DAY_MS,
            Self::Mo1 => return None,
        })
    }

    /// Returns the open time of the candle containing `t` (ms).
    pub fn floor(self, t: i64) -> i64 {
        match self {
            Self::W1 => t - (t - FIRST_MONDAY_MS).rem_euclid(7 * DAY_MS),
            Self::Mo1 => {
                let (y, m, _) = civil_from_days(t.div_euclid(DAY_MS));
                days_from_civil(y, m, 1) * DAY_MS
            }
            other => {
                let len = other.fixed_ms().expect("only months have no fixed length");
                t - t.rem_euclid(len)
            }
        }
    }

    /// Returns the open time of the candle after the one opening at or containing `t`.
    pub fn next(self, t: i64) -> i64 {
        let open = self.floor(t);
        match self.fixed_ms() {
            Some(len) => open + len,
            None => {
                let (y, m, _) = civil_from_days(open.div_euclid(DAY_MS));
                let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                days_from_civil(y, m, 1) * DAY_MS
            }
        }
    }

    /// Returns whether `t` is the open time of a candle.
    pub fn is_aligned(self, t: i64) -> bool {
        self.floor(t) == t
    }
}

impl FromStr for Timeframe {
    type Err = Error;

    /// Parses the exchange's names, case-sensitive: `1m` is a minute, `1M` a month.
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|tf| tf.as_str() == s)
            .ok_or_else(|| Error::InvalidTimeframe(s.chars().take(16).collect()))
    }
}

impl TryFrom<String> for Timeframe {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}

impl From<Timeframe> for String {
    fn from(t: Timeframe) -> String {
        t.as_str().to_owned()
    }
}

impl fmt::Display for Timeframe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
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
            assert_eq!(tf.as_str().parse::<Timeframe>().unwrap(), tf);
        }
        assert_eq!("1M".parse::<Timeframe>().unwrap(), Timeframe::Mo1);
        assert_eq!("1m".parse::<Timeframe>().unwrap(), Timeframe::M1);
        for bad in ["", "1H", "2m", "60", "1min", "1mo"] {
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
}
