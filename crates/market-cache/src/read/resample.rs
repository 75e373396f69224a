//! Resampling to coarser timeframes, gap reporting and gap filling.

use std::sync::Arc;

use arrow_array::builder::{Float64Builder, Int64Builder, UInt64Builder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};

use crate::codec::schema::candle_schema;
use crate::{Candle, Decimal, Error, Result, Timeframe};

/// Resamples a time-ordered batch of [`candle_schema`] into `to` buckets, column by
/// column: the same rules as [`resample`] on floats, for large ranges and analytics.
///
/// Each row costs a comparison with the next bucket boundary and the running max, min
/// and sums; bucket boundaries (and their calendar arithmetic for weeks and months) are
/// computed once per bucket.
///
/// # Errors
/// [`Error::Encode`] if the batch does not have the candle schema.
pub fn resample_batch(batch: &RecordBatch, to: Timeframe) -> Result<RecordBatch> {
    let bad = || Error::Encode {
        what: "arrow",
        message: "not a candle batch".into(),
    };
    if batch.schema().fields().len() != candle_schema().fields().len() {
        return Err(bad());
    }
    let time = batch
        .column(0)
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(bad)?;
    let f = |i: usize| {
        batch
            .column(i)
            .as_primitive_opt::<Float64Type>()
            .ok_or_else(bad)
    };
    let (open, high, low, close, volume) = (f(1)?, f(2)?, f(3)?, f(4)?, f(5)?);
    let optional = [f(6)?, f(8)?, f(9)?, f(10)?];
    let trades = batch
        .column(7)
        .as_primitive_opt::<UInt64Type>()
        .ok_or_else(bad)?;
    let t = time.values();
    // Bucket bounds first (a binary search per bucket, the calendar work once per bucket),
    // then the reductions over contiguous slices, split over two threads for large inputs.
    let mut bounds = Vec::new();
    let mut i = 0;
    while i < t.len() {
        let bucket = to.floor(t[i]);
        let next = to.next(bucket);
        // Galloping, not a binary search over the rest: buckets are short, and a search
        // over the whole remaining array would touch cold memory at every step.
        let mut step = 1;
        while i + step < t.len() && t[i + step] < next {
            step *= 2;
        }
        let lo = i + step / 2;
        let hi = (i + step).min(t.len());
        let end = lo + t[lo..hi].partition_point(|x| *x < next);
        bounds.push((i, end, bucket));
        i = end;
    }
    let cols = Columns {
        o: open.values(),
        h: high.values(),
        l: low.values(),
        c: close.values(),
        v: volume.values(),
        optional: &optional,
        trades,
    };
    let parts: Vec<Reduced> = if t.len() >= 1 << 18 && bounds.len() >= 2 {
        let (left, right) = bounds.split_at(bounds.len() / 2);
        std::thread::scope(|s| {
            let r = s.spawn(|| cols.reduce(right));
            let l = cols.reduce(left);
            vec![l, r.join().expect("the reducing thread does not panic")]
        })
    } else {
        vec![cols.reduce(&bounds)]
    };
    let mut out_time = Int64Builder::with_capacity(bounds.len());
    let mut out: [Float64Builder; 5] =
        std::array::from_fn(|_| Float64Builder::with_capacity(bounds.len()));
    let mut out_opt: [Float64Builder; 4] = Default::default();
    let mut out_trades = UInt64Builder::new();
    for p in &parts {
        out_time.append_slice(&p.time);
        for (b, values) in out.iter_mut().zip(&p.values) {
            b.append_slice(values);
        }
        for (b, values) in out_opt.iter_mut().zip(&p.optional) {
            for v in values {
                b.append_option(*v);
            }
        }
        for v in &p.trades {
            out_trades.append_option(*v);
        }
    }
    let [mut qv, mut tb, mut tq, mut vc] = out_opt;
    let mut cols: Vec<ArrayRef> = vec![Arc::new(out_time.finish())];
    cols.extend(out.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    cols.push(Arc::new(qv.finish()));
    cols.push(Arc::new(out_trades.finish()));
    cols.push(Arc::new(tb.finish()));
    cols.push(Arc::new(tq.finish()));
    cols.push(Arc::new(vc.finish()));
    RecordBatch::try_new(candle_schema(), cols).map_err(|e| Error::Encode {
        what: "arrow",
        message: e.to_string(),
    })
}

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
                b.volume_ccy = sum(b.volume_ccy, c.volume_ccy);
            }
            _ => out.push(Candle {
                open_time: bucket,
                ..c.clone()
            }),
        }
    }
    out
}

/// The input columns of [`resample_batch`].
struct Columns<'a> {
    o: &'a [f64],
    h: &'a [f64],
    l: &'a [f64],
    c: &'a [f64],
    v: &'a [f64],
    optional: &'a [&'a arrow_array::Float64Array; 4],
    trades: &'a arrow_array::UInt64Array,
}

/// The output rows of some buckets.
#[derive(Default)]
struct Reduced {
    time: Vec<i64>,
    values: [Vec<f64>; 5],
    optional: [Vec<Option<f64>>; 4],
    trades: Vec<Option<u64>>,
}

impl Columns<'_> {
    fn reduce(&self, bounds: &[(usize, usize, i64)]) -> Reduced {
        let mut r = Reduced::default();
        for &(a, b, bucket) in bounds {
            r.time.push(bucket);
            r.values[0].push(self.o[a]);
            r.values[1].push(fold8(&self.h[a..b], f64::NEG_INFINITY, |x, y| {
                if y > x {
                    y
                } else {
                    x
                }
            }));
            r.values[2].push(fold8(&self.l[a..b], f64::INFINITY, |x, y| {
                if y < x {
                    y
                } else {
                    x
                }
            }));
            r.values[3].push(self.c[b - 1]);
            r.values[4].push(self.v[a..b].iter().sum());
            for (k, col) in self.optional.iter().enumerate() {
                // A sum of an optional column exists only if every candle has the value.
                let s = if col.null_count() == 0 {
                    Some(col.values()[a..b].iter().sum())
                } else {
                    (a..b).try_fold(0.0, |acc, i| (!col.is_null(i)).then(|| acc + col.value(i)))
                };
                r.optional[k].push(s);
            }
            let t = self.trades;
            r.trades.push(if t.null_count() == 0 {
                Some(t.values()[a..b].iter().sum())
            } else {
                (a..b).try_fold(0u64, |acc, i| (!t.is_null(i)).then(|| acc + t.value(i)))
            });
        }
        r
    }
}

/// Folds with eight independent accumulators, which the compiler turns into vector
/// max/min instructions; a single accumulator would wait on each comparison in turn.
fn fold8(v: &[f64], init: f64, f: impl Fn(f64, f64) -> f64) -> f64 {
    let mut acc = [init; 8];
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for j in 0..8 {
            acc[j] = f(acc[j], c[j]);
        }
    }
    let mut out = acc.into_iter().fold(init, &f);
    for x in rest {
        out = f(out, *x);
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
    fill_between(candles, tf, i64::MIN, end)
}

/// [`fill_previous`] making flat candles only for slots opening at or after `from` (a slot
/// of `tf`), so a candle long before a window carries its close into it without a flat
/// candle for every slot in between.
pub(crate) fn fill_between(candles: &[Candle], tf: Timeframe, from: i64, end: i64) -> Vec<Candle> {
    let mut out: Vec<Candle> = Vec::with_capacity(candles.len());
    let first_slot = |prev: &Candle| tf.next(prev.open_time).max(from);
    for c in candles {
        if let Some(prev) = out.last().cloned() {
            let mut t = first_slot(&prev);
            while t < c.open_time && t < end {
                out.push(flat(&prev, t));
                t = tf.next(t);
            }
        }
        out.push(c.clone());
    }
    if let Some(prev) = out.last().cloned() {
        let mut t = first_slot(&prev);
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
        volume_ccy: prev.volume_ccy.map(zero),
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
            volume_ccy: None,
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
