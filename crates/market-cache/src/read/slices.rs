//! What the read path walks before it answers: ranges of chunks, as decoded candles or as
//! rows already written, so cutting an answer to its range and limit copies nothing.

use std::ops::Range;
use std::sync::Arc;

use crate::codec::encoded::{RowBlock, RowFormat, Rows};
use crate::Candle;

/// One chunk of an answer: its candles, or its rows in the answer's format.
#[derive(Clone)]
pub(super) enum Part {
    Candles(Arc<Vec<Candle>>),
    Rows(RowBlock),
}

impl Part {
    fn len(&self) -> usize {
        match self {
            Part::Candles(c) => c.len(),
            Part::Rows(r) => r.len(),
        }
    }

    fn time(&self, i: usize) -> i64 {
        match self {
            Part::Candles(c) => c[i].open_time,
            Part::Rows(r) => r.time(i),
        }
    }

    /// The index of the first candle opening at or after `t` (a chunk is in time order).
    pub(super) fn lower(&self, t: i64) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.time(mid) < t {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

/// Ranges of parts in time order: the candles of an answer before they are copied out.
#[derive(Default)]
pub(super) struct Slices {
    parts: Vec<(Part, Range<usize>)>,
    count: usize,
}

impl Slices {
    /// Appends `range` of `part` (later than everything held).
    pub(super) fn push(&mut self, part: Part, range: Range<usize>) {
        if !range.is_empty() {
            self.count += range.len();
            self.parts.push((part, range));
        }
    }

    /// How many candles are held.
    pub(super) fn len(&self) -> usize {
        self.count
    }

    /// The parts in reverse order: [`Self::push`] in reverse time order, then this.
    pub(super) fn reverse(&mut self) {
        self.parts.reverse();
    }

    /// Keeps the first `n` candles; the open time of the first one dropped.
    pub(super) fn keep_first(&mut self, n: usize) -> Option<i64> {
        let mut seen = 0;
        for i in 0..self.parts.len() {
            let (part, range) = &mut self.parts[i];
            if seen + range.len() > n {
                let cut = range.start + (n - seen);
                let dropped = part.time(cut);
                range.end = cut;
                let keep = if range.start == range.end { i } else { i + 1 };
                self.parts.truncate(keep);
                self.count = n;
                return Some(dropped);
            }
            seen += range.len();
        }
        None
    }

    /// Keeps the last `n` candles.
    pub(super) fn keep_last(&mut self, n: usize) {
        let mut drop = self.count.saturating_sub(n);
        self.count -= drop;
        while drop > 0 {
            let Some((_, range)) = self.parts.first_mut() else {
                return;
            };
            if range.len() > drop {
                range.start += drop;
                return;
            }
            drop -= range.len();
            self.parts.remove(0);
        }
    }

    /// The open times held, in order.
    pub(super) fn times(&self) -> impl Iterator<Item = i64> + '_ {
        self.parts
            .iter()
            .flat_map(|(p, r)| r.clone().map(move |i| p.time(i)))
    }

    pub(super) fn first_time(&self) -> Option<i64> {
        self.parts.first().map(|(p, r)| p.time(r.start))
    }

    pub(super) fn last_time(&self) -> Option<i64> {
        self.parts.last().map(|(p, r)| p.time(r.end - 1))
    }

    /// The candles held; parts held as rows are skipped (the read path walks candles or
    /// rows, never both).
    pub(super) fn candles(&self) -> Vec<Candle> {
        let mut out = Vec::with_capacity(self.count);
        for (p, r) in &self.parts {
            if let Part::Candles(c) = p {
                out.extend_from_slice(&c[r.clone()]);
            }
        }
        out
    }

    /// The rows held, joined by `format`'s separator, after what `bytes` holds; parts
    /// held as candles are written on the way.
    pub(super) fn rows(
        &self,
        tf: crate::Timeframe,
        format: &dyn RowFormat,
        mut bytes: Vec<u8>,
    ) -> Rows {
        let sep = format.separator();
        let size: usize = self
            .parts
            .iter()
            .map(|(p, r)| match p {
                Part::Rows(b) => b.rows(r.clone()).len(),
                Part::Candles(_) => r.len() * 64,
            })
            .sum();
        bytes.reserve(size);
        for (p, r) in &self.parts {
            match p {
                Part::Rows(b) => bytes.extend_from_slice(b.rows(r.clone())),
                Part::Candles(c) => {
                    for c in &c[r.clone()] {
                        format.write(c, tf, &mut bytes);
                        bytes.extend_from_slice(sep);
                    }
                }
            }
        }
        if self.count > 0 {
            bytes.truncate(bytes.len() - sep.len());
        }
        Rows {
            bytes,
            count: self.count,
        }
    }
}
