//! The walk over a request's chunks: the stored timeframe (or the one to resample from)
//! is picked once, the chunk grid is walked forwards (a range) or backwards (the latest
//! N), each chunk taken from [`super::tiers`], and the answer built (gaps, `fill`, the
//! page, `max_age`). Each request enters here once; `fill=previous` is its last step.

use std::sync::atomic::Ordering;

use super::path::ReadPath;
use super::resample::{fill_between, gaps};
use super::slices::Slices;
use super::types::{Answer, Fill, Request, Source, MAX_LIMIT};
use crate::codec::encoded::{RowFormat, Rows};
use crate::live::edge::{closed_end, Edge};
use crate::model::grid::{chunk_end, chunk_start};
use crate::store::CandleStore;
use crate::{Error, Result, Symbol, Timeframe};

impl<S: CandleStore + Clone + Send + Sync + 'static> ReadPath<S> {
    /// Answers a request from cached chunks, loading the missing ones from the store.
    ///
    /// # Errors
    /// [`Error::UnknownSymbol`] if the store has no series for the symbol, [`Error::Db`]
    /// if reading fails.
    pub(crate) async fn get(&self, req: &Request) -> Result<Answer> {
        let a = self.walk(req, None).await?;
        Ok(self.candles(req, a))
    }

    /// The walked answer as candles, its gaps filled when the request asks.
    fn candles(&self, req: &Request, a: Answer<Slices>) -> Answer {
        let mut a = a.map(|s| s.candles());
        if req.fill == Fill::Previous {
            let tf = req.timeframe;
            let limit = req.limit.clamp(1, MAX_LIMIT);
            let mut span_end = a.next_start.unwrap_or(req.end);
            // Filled slots count against `limit` like candles: a far `end` over a sparse
            // series must not become millions of flat candles.
            let lower = match (req.start, a.candles.first().map(|c| c.open_time)) {
                // A page from a start: at most `limit` slots from its first candle; the
                // rest is the next page.
                (Some(_), Some(first)) => {
                    let cap = slots_after(tf, first, limit);
                    if cap < span_end {
                        span_end = cap;
                        a.next_start = Some(cap);
                    }
                    first
                }
                // The latest `limit` slots before the end; an earlier candle only carries
                // its close into the first of them.
                (None, Some(_)) => slots_before(tf, span_end, limit),
                _ => span_end,
            };
            let carry = a.candles.partition_point(|c| c.open_time < lower);
            a.candles = fill_between(&a.candles[carry.saturating_sub(1)..], tf, lower, span_end)
                .into_iter()
                .skip_while(|c| c.open_time < lower)
                .take_while(|c| c.open_time < span_end)
                .collect();
            // The gaps that remain reported are those of the span answered.
            let from = a.candles.first().map_or(span_end, |c| c.open_time);
            a.gaps.retain(|g| g.1 > from && g.0 < span_end);
            for g in &mut a.gaps {
                *g = (g.0.max(from), g.1.min(span_end));
            }
            let now = (self.inner.now)();
            a.partial_last = a.candles.last().is_some_and(|c| tf.next(c.open_time) > now);
        }
        a
    }

    /// [`Self::get`] with the candles written as rows in `format` after what `out`
    /// holds; rows of closed chunks are written once and kept, so this is mostly a copy
    /// over cached history.
    ///
    /// # Errors
    /// As [`Self::get`].
    pub(crate) async fn get_rows(
        &self,
        req: &Request,
        format: &dyn RowFormat,
        out: Vec<u8>,
    ) -> Result<Answer<Rows>> {
        // Filled slots are made from candles: a filled answer (rarely asked for) walks for
        // candles and writes its rows at the end.
        let kept_rows = req.fill == Fill::None;
        let a = self.walk(req, kept_rows.then_some(format)).await?;
        if kept_rows {
            return Ok(a.map(|s| s.rows(req.timeframe, format, out)));
        }
        let a = self.candles(req, a);
        Ok(a.map(|c| Rows::write_after(out, &c, req.timeframe, format)))
    }

    /// The request's candles, or with a `format` its rows, before the answer is built.
    async fn walk(&self, req: &Request, format: Option<&dyn RowFormat>) -> Result<Answer<Slices>> {
        let tf = req.timeframe;
        let markets = self.inner.store.markets().await?;
        let stored: Vec<Timeframe> = markets
            .iter()
            .filter(|m| {
                m.symbol == req.symbol.as_str()
                    && m.kind == req.symbol.kind()
                    && m.exchange == req.symbol.exchange()
            })
            .filter_map(|m| m.timeframe.parse().ok())
            .collect();
        // The finest stored timeframe whose candles sum into the one asked, to resample from.
        let finer = stored.iter().copied().filter(|s| s.nests_in(tf)).min();
        let upstream = self.upstream_for(&req.symbol);
        if stored.contains(&tf) || upstream.is_none() {
            // The stored timeframe itself, else resampled from a finer one.
            let source_tf = if stored.contains(&tf) {
                tf
            } else if stored.is_empty() {
                return Err(Error::UnknownSymbol(req.symbol.to_string()));
            } else {
                finer.ok_or_else(|| {
                    Error::UnknownSymbol(format!("{} has no timeframe finer than {tf}", req.symbol))
                })?
            };
            return self
                .collect(req, source_tf, upstream.is_some(), format)
                .await;
        }
        // A timeframe the exchange has no candles of (a daily candle on another clock, a
        // quarter on Binance) is summed from the coarsest one it has that nests in it.
        if let Some(source) = upstream.and_then(|u| u.source_for(tf)) {
            return self.collect(req, source, true, format).await;
        }
        // With an upstream, a timeframe not stored is fetched as it is; resampling is the
        // fallback for series the upstream does not know (imported from files).
        match self.collect(req, tf, true, format).await {
            Err(Error::UnknownSymbol(_)) if finer.is_some() => {
                self.collect(req, finer.unwrap_or(tf), false, format).await
            }
            other => other,
        }
    }

    async fn collect(
        &self,
        req: &Request,
        source_tf: Timeframe,
        backfill: bool,
        format: Option<&dyn RowFormat>,
    ) -> Result<Answer<Slices>> {
        let Some(start) = req.start else {
            return self.latest(req, source_tf, backfill, format).await;
        };
        let tf = req.timeframe;
        let limit = req.limit.clamp(1, MAX_LIMIT);
        let start = if tf.is_aligned(start) {
            start
        } else {
            tf.next(start)
        };
        let resampling = source_tf != tf;
        let mut slices = Slices::default();
        let mut tally = Tally::default();
        // Read chunk by chunk until the range or the limit is covered: chunks of the stored
        // timeframe, or resampled chunks of the timeframe asked (cached in turn, so a
        // weekly view over years of 1m is computed once).
        let grid = if resampling { tf } else { source_tf };
        let mut chunk = chunk_start(grid, start);
        while chunk < req.end {
            let next = chunk_end(grid, chunk);
            let (part, hit, edge) = self
                .part(req, source_tf, (chunk, next), backfill, format)
                .await?;
            tally.add(hit, edge);
            if !hit && !backfill && !resampling {
                // Never ahead of need from an upstream: its request weight is scarce.
                self.prefetch(&req.symbol, source_tf, chunk, next)
            }
            let inside = part.lower(start)..part.lower(req.end);
            let empty = inside.is_empty();
            slices.push(part, inside);
            if empty && next < req.end {
                // An empty chunk: skip to where the next candle can be, instead of walking
                // empty chunks one by one (a start of 0 would walk decades).
                match self
                    .next_needed(&req.symbol, source_tf, next, req.end, backfill)
                    .await?
                {
                    Some(t) if t > next => {
                        chunk = chunk_start(grid, t);
                        continue;
                    }
                    Some(_) => {}
                    None => break,
                }
            }
            // One candle more than the limit tells whether there is a next page.
            if slices.len() > limit {
                break;
            }
            chunk = next;
        }
        let next_start = slices.keep_first(limit);
        let span_end = next_start.unwrap_or(req.end);
        Ok(self.answer(req, source_tf, slices, (start, span_end), next_start, tally))
    }

    /// The latest `limit` candles before `req.end`: chunks walked backwards from the end
    /// until enough candles are found or the series begins.
    async fn latest(
        &self,
        req: &Request,
        source_tf: Timeframe,
        backfill: bool,
        format: Option<&dyn RowFormat>,
    ) -> Result<Answer<Slices>> {
        let tf = req.timeframe;
        let limit = req.limit.clamp(1, MAX_LIMIT);
        let grid = if source_tf != tf { tf } else { source_tf };
        let symbol = &req.symbol;
        // Without an upstream nothing lies past the last stored candle: start there rather
        // than walk empty chunks up to `end`.
        let mut from = req.end - 1;
        if !backfill {
            match self
                .inner
                .store
                .prev_open(symbol, source_tf, req.end)
                .await?
            {
                Some(last) => from = from.min(last),
                None => {
                    return Ok(self.answer(
                        req,
                        source_tf,
                        Slices::default(),
                        (req.end, req.end),
                        None,
                        Tally::default(),
                    ))
                }
            }
        }
        let mut slices = Slices::default();
        let mut tally = Tally::default();
        let mut chunk = chunk_start(grid, from.max(0));
        loop {
            let next = chunk_end(grid, chunk);
            let (part, hit, edge) = self
                .part(req, source_tf, (chunk, next), backfill, format)
                .await?;
            tally.add(hit, edge);
            let inside = 0..part.lower(req.end);
            let empty = inside.is_empty();
            slices.push(part, inside);
            if slices.len() >= limit || chunk <= 0 {
                break;
            }
            if empty {
                // An empty chunk (fetched from the upstream if there is one): go on only
                // where the store has an earlier candle, else the series begins here.
                match self.inner.store.prev_open(symbol, source_tf, chunk).await? {
                    Some(t) => chunk = chunk_start(grid, tf.floor(t)),
                    None => break,
                }
                continue;
            }
            chunk = chunk_start(grid, chunk - 1);
        }
        slices.reverse();
        slices.keep_last(limit);
        let span = match (slices.first_time(), slices.last_time()) {
            (Some(f), Some(l)) => (f, tf.next(l).min(req.end)),
            _ => (req.end, req.end),
        };
        Ok(self.answer(req, source_tf, slices, span, None, tally))
    }

    /// The answer over `slices`, which span `[span.0, span.1)`.
    fn answer(
        &self,
        req: &Request,
        source_tf: Timeframe,
        slices: Slices,
        (start, span_end): (i64, i64),
        next_start: Option<i64>,
        tally: Tally,
    ) -> Answer<Slices> {
        let tf = req.timeframe;
        let gap_list = gaps(slices.times(), tf, start, span_end);
        let now = (self.inner.now)();
        let partial_last = slices.last_time().is_some_and(|t| tf.next(t) > now);
        let max_age = self.rules(&req.symbol).max_age(tf, tally.edge);
        if tally.edge == Edge::Stream {
            self.inner
                .counters
                .edge_from_stream
                .fetch_add(1, Ordering::Relaxed);
        }
        Answer {
            candles: slices,
            source: match (tally.hits, tally.loads) {
                (_, 0) => Source::Cache,
                (0, _) => Source::Store,
                _ => Source::Mixed,
            },
            resampled_from: (source_tf != tf).then_some(source_tf),
            gaps: gap_list,
            partial_last,
            next_start,
            max_age,
        }
    }

    /// The first time at or after `from` (before `end`) where a candle may be: the next
    /// stored one, or with an upstream the next range not yet covered.
    pub(super) async fn next_needed(
        &self,
        symbol: &Symbol,
        tf: Timeframe,
        from: i64,
        end: i64,
        backfill: bool,
    ) -> Result<Option<i64>> {
        let stored = self.inner.store.next_open(symbol, tf, from).await?;
        let uncovered = match self.upstream_for(symbol) {
            Some(_) if backfill => {
                let closed_end = closed_end(tf, (self.inner.now)());
                let gap = self
                    .inner
                    .store
                    .missing(symbol, tf, from, end.min(closed_end))
                    .await?;
                gap.first()
                    .map(|g| g.0)
                    .or((end > closed_end).then_some(closed_end.max(from)))
            }
            _ => None,
        };
        Ok([stored, uncovered]
            .into_iter()
            .flatten()
            .filter(|t| *t < end)
            .min())
    }
}

/// What the chunks of an answer were: how many came from memory, and the freshest kind
/// of edge among them.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    hits: u32,
    loads: u32,
    edge: Edge,
}

impl Tally {
    fn add(&mut self, hit: bool, edge: Edge) {
        if hit {
            self.hits += 1
        } else {
            self.loads += 1
        }
        self.edge = self.edge.max(edge);
    }
}

/// The open time `n` slots of `tf` after the slot opening at `t`.
fn slots_after(tf: Timeframe, t: i64, n: usize) -> i64 {
    match tf.fixed_ms() {
        Some(ms) => t.saturating_add(ms.saturating_mul(n as i64)),
        None => (0..n).fold(t, |t, _| tf.next(t)),
    }
}

/// The open time of the first of the last `n` slots of `tf` opening before `end`.
fn slots_before(tf: Timeframe, end: i64, n: usize) -> i64 {
    let last = tf.floor(end - 1);
    match tf.fixed_ms() {
        Some(ms) => last.saturating_sub(ms.saturating_mul(n as i64 - 1)),
        None => (1..n).fold(last, |t, _| tf.floor(t - 1)),
    }
}
