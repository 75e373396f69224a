//! Resampling to coarser timeframes, gap reporting and gap filling.

use crate::{Candle, Decimal, Timeframe};

/// Aggregates time-ordered candles into `to` buckets: open of the first, highest high,
/// lowest low, close of the last, and sums of volumes and trades. Buckets without source
/// candles are left out, as exchanges do. A sum of an optional column is present only if
/// every candle of the bucket has it.
///
/// Weeks open on Monday 00:00 UTC and months on the 1st, whatever the source grid.
pub fn resample(candles: &[Candle], to: Timeframe) -> Vec<Candle> {
    let mut out: Vec<Candle> = Vec::new();
    for c in candles {
        let bucket = to.floor(c.open_time);
        match out.last_mut() {
            Some(b) if b.open_time == bucket => {
                b.high = b.high.max(c.high);
                b.low = b.low.min(c.low);
                b.close = c.close;
                b.volume = b.volume + c.volume;
                b.quote_volume = sum(b.quote_volume, c.quote_volume);
                b.trades = b.trades.zip(c.trades).map(|(a, b)| a + b);
                b.taker_base = sum(b.taker_base, c.taker_base);
                b.taker_quote = sum(b.taker_quote, c.taker_quote);
            }
            _ => out.push(Candle {
                open_time: bucket,
                ..c.clone()
            }),
        }
    }
    out
}

fn sum(a: Option<Decimal>, b: Option<Decimal>) -> Option<Decimal> {
    a.zip(b).map(|(a, b)| a + b)
}

/// Returns the `[start, end)` ranges of `tf` slots within `[start, end)` that hold no
/// candle; `times` are the open times present, in order.
pub fn gaps(
    times: impl IntoIterator<Item = i64>,
    tf: Timeframe,
    start: i64,
    end: i64,
) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    // The first slot that opens at or after `start`.
    let mut expected = if tf.is_aligned(start) {
        start
    } else {
        tf.next(start)
    };
    for t in times {
        if t < expected {
            continue;
        }
        if t >= end {
            break;
        }
        if t > expected {
            out.push((expected, t));
        }
        expected = tf.next(t);
    }
    if expected < end {
        out.push((expected, end));
    }
    out
}

/// Fills the empty slots between candles with flat candles at the previous close and zero
/// volume (`fill=previous`). Slots before the first candle stay empty: there is no
/// previous close to repeat.
pub fn fill_previous(candles: &[Candle], tf: Timeframe, end: i64) -> Vec<Candle> {
    let mut out = Vec::with_capacity(candles.len());
    for c in candles {
        if let Some(prev) = out.last().cloned() {
            let prev: Candle = prev;
            let mut t = tf.next(prev.open_time);
            while t < c.open_time && t < end {
                out.push(flat(&prev, t));
                t = tf.next(t);
            }
        }
        out.push(c.clone());
    }
    if let Some(prev) = out.last().cloned() {
        let mut t = tf.next(prev.open_time);
        while t < end {
            out.push(flat(&prev, t));
            t = tf.next(t);
        }
    }
    out
}

fn flat(prev: &Candle, open_time: i64) -> Candle {
    let zero = |d: Decimal| Decimal::new(0, d.scale());
    Candle {
        open_time,
        open: prev.close,
        high: prev.close,
        low: prev.close,
        close: prev.close,
        volume: zero(prev.volume),
        quote_volume: prev.quote_volume.map(zero),
        trades: prev.trades.map(|_| 0),
        taker_base: prev.taker_base.map(zero),
        taker_quote: prev.taker_quote.map(zero),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_time;

    fn c(t: &str, o: &str, h: &str, l: &str, cl: &str, v: &str) -> Candle {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        Candle {
            open_time: parse_time(t).unwrap(),
            open: d(o),
            high: d(h),
            low: d(l),
            close: d(cl),
            volume: d(v),
            quote_volume: None,
            trades: Some(1),
            taker_base: None,
            taker_quote: None,
        }
    }

    #[test]
    fn buckets_take_first_max_min_last_and_sums() {
        let src = [
            c("2024-01-01T00:00:00Z", "10", "12", "9", "11", "1.5"),
            c("2024-01-01T00:01:00Z", "11", "15", "10", "14", "2.25"),
            c("2024-01-01T00:04:00Z", "14", "14", "8", "9", "1"),
            c("2024-01-01T00:05:00Z", "9", "9", "9", "9", "0"),
        ];
        let out = resample(&src, Timeframe::M5);
        assert_eq!(out.len(), 2);
        let b = &out[0];
        assert_eq!(b.open_time, parse_time("2024-01-01").unwrap());
        let s = |d: Decimal| d.to_string();
        assert_eq!(
            (s(b.open), s(b.high), s(b.low), s(b.close), s(b.volume)),
            (
                "10".into(),
                "15".into(),
                "8".into(),
                "9".into(),
                "4.75".into()
            )
        );
        assert_eq!(b.trades, Some(3));
    }

    #[test]
    fn weeks_open_on_monday_even_across_a_month() {
        // 2024-01-31 is a Wednesday, 2024-02-04 a Sunday: one week, opened Monday 01-29.
        let src = [
            c("2024-01-31T10:00:00Z", "1", "2", "1", "2", "1"),
            c("2024-02-04T23:59:00Z", "2", "3", "1", "3", "1"),
            c("2024-02-05T00:00:00Z", "3", "3", "3", "3", "1"),
        ];
        let w = resample(&src, Timeframe::W1);
        assert_eq!(
            w.iter().map(|x| x.open_time).collect::<Vec<_>>(),
            vec![
                parse_time("2024-01-29").unwrap(),
                parse_time("2024-02-05").unwrap()
            ]
        );
        let m = resample(&src, Timeframe::Mo1);
        assert_eq!(
            m.iter().map(|x| x.open_time).collect::<Vec<_>>(),
            vec![
                parse_time("2024-01-01").unwrap(),
                parse_time("2024-02-01").unwrap()
            ]
        );
    }

    #[test]
    fn gaps_are_half_open_ranges_of_missing_slots() {
        let m = 60_000;
        let times = [0, m, 4 * m, 5 * m];
        assert_eq!(
            gaps(times, Timeframe::M1, 0, 8 * m),
            vec![(2 * m, 4 * m), (6 * m, 8 * m)]
        );
        // A start inside a candle begins at the next boundary.
        assert_eq!(gaps(times, Timeframe::M1, 30_000, 2 * m), vec![]);
        assert_eq!(gaps([], Timeframe::M1, 0, 3 * m), vec![(0, 3 * m)]);
    }

    #[test]
    fn fill_previous_repeats_the_last_close_with_zero_volume() {
        let src = [
            c("2024-01-01T00:00:00Z", "10", "12", "9", "11", "1.5"),
            c("2024-01-01T00:03:00Z", "11", "15", "10", "14", "2"),
        ];
        let end = parse_time("2024-01-01T00:05:00Z").unwrap();
        let out = fill_previous(&src, Timeframe::M1, end);
        assert_eq!(out.len(), 5);
        assert_eq!(out[1].close.to_string(), "11");
        assert_eq!(out[1].volume.to_string(), "0.0");
        assert_eq!(out[1].trades, Some(0));
        assert_eq!(out[4].open.to_string(), "14");
    }
}
