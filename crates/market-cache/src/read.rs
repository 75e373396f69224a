//! The read path: ranges split into grid-aligned chunks cached in `cache-core`, so
//! overlapping queries share chunks; coarser timeframes resampled from the finest stored
//! one; gaps reported or filled.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cache_core::{ns, Cache, NamespaceCache};
use serde::Serialize;

use crate::encoded::{RowBlock, RowFormat, Rows};
use crate::objects::Objects;
use crate::resample::{fill_previous, gaps, resample};
use crate::store::CandleStore;
use crate::stream::{StreamConfig, StreamStats, Streams, Watch};
use crate::time::Now;
use crate::upstream::{Upstream, CLOSE_GRACE_MS, FUNDING_GRACE_MS};
use crate::wire::{decode_chunk, encode_chunk};
use crate::{Candle, Error, Funding, Kind, Result, Symbol, Timeframe};

mod slices;
use slices::{Part, Slices};

/// Candles of the stored timeframe per cached chunk.
pub(crate) const CHUNK_CANDLES: i64 = 1000;
/// Default and largest number of candles one answer holds.
pub const DEFAULT_LIMIT: usize = 10_000;
/// The largest `limit` a request may ask for.
pub const MAX_LIMIT: usize = 100_000;

/// How to treat slots without candles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fill {
    /// Leave them out and report them in [`Answer::gaps`].
    None,
    /// Fill them with flat candles at the previous close and zero volume.
    Previous,
}

/// A request for candles of one series: `start <= open time < end`.
#[derive(Debug, Clone)]
pub struct Request {
    /// The symbol.
    pub symbol: Symbol,
    /// The timeframe wanted (stored or resampled).
    pub timeframe: Timeframe,
    /// First open time, epoch ms; a start inside a candle begins at the next one. `None`
    /// asks for the latest `limit` candles before `end` (as Binance answers klines
    /// without startTime).
    pub start: Option<i64>,
    /// End of the range, exclusive, epoch ms.
    pub end: i64,
    /// At most this many candles; the rest is announced by [`Answer::next_start`].
    pub limit: usize,
    /// Gap treatment.
    pub fill: Fill,
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Every chunk was in memory.
    Cache,
    /// Every chunk was read from the store.
    Store,
    /// Some of each.
    Mixed,
}

/// The candles of a request and what is known about them.
#[derive(Debug, Clone)]
pub struct Answer<B = Vec<Candle>> {
    /// The candles, in time order: decoded, or as [`Rows`] in a caller's format.
    pub candles: B,
    /// Where they came from.
    pub source: Source,
    /// The stored timeframe they were resampled from, if they were.
    pub resampled_from: Option<Timeframe>,
    /// `[start, end)` ranges of the returned span that hold no candles.
    pub gaps: Vec<(i64, i64)>,
    /// Whether the last candle is still forming.
    pub partial_last: bool,
    /// Where the next page starts, when `limit` cut the answer short.
    pub next_start: Option<i64>,
    /// How long the answer may be served again: `None` for closed history, which never
    /// changes; the live edge only as long as the freshness contract allows.
    pub max_age: Option<Duration>,
}

impl<B> Answer<B> {
    /// The same answer with its candles turned into another form.
    pub fn map<C>(self, f: impl FnOnce(B) -> C) -> Answer<C> {
        Answer {
            candles: f(self.candles),
            source: self.source,
            resampled_from: self.resampled_from,
            gaps: self.gaps,
            partial_last: self.partial_last,
            next_start: self.next_start,
            max_age: self.max_age,
        }
    }
}

/// Counters of the read path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReadStats {
    /// Chunks found in memory.
    pub chunk_hits: u64,
    /// Chunks read from the store.
    pub chunk_loads: u64,
    /// Neighbouring chunks loaded ahead of need after a miss.
    pub prefetches: u64,
    /// Live-edge chunks re-read (with an upstream, from it over REST).
    pub edge_refreshes: u64,
    /// Answers whose edge came from the upstream's stream.
    pub edge_from_stream: u64,
}

#[derive(Default)]
struct Counters {
    chunk_hits: AtomicU64,
    chunk_loads: AtomicU64,
    prefetches: AtomicU64,
    edge_refreshes: AtomicU64,
    edge_from_stream: AtomicU64,
}

/// How the live edge is kept fresh.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// With an upstream and no trusted stream, the edge of a series is re-read from the
    /// upstream at most once per this period (single-flight across all clients).
    pub refresh: Duration,
    /// The upstream's WebSocket streams, if any.
    pub stream: Option<StreamConfig>,
    /// The futures upstream's WebSocket streams (USD-M klines), if any.
    pub futures_stream: Option<StreamConfig>,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            refresh: Duration::from_secs(1),
            stream: None,
            futures_stream: None,
        }
    }
}

/// How long an answer whose edge came from a stream may be served again: well inside
/// the contract's 1 s, so a newer event shows at once to the next poll after it.
const STREAM_ANSWER_AGE: Duration = Duration::from_millis(200);
/// How long the stored part of an edge chunk read for a stream stays in memory; a new
/// closed candle changes its key anyway.
const STREAM_CHUNK_TTL: Duration = Duration::from_secs(10);

/// Where the candles of a chunk came from, for the answer's freshness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Edge {
    /// Closed history: never changes.
    #[default]
    Closed,
    /// The edge, refreshed over REST (or, without an upstream, from the store).
    Refreshed,
    /// The edge, from the upstream's stream.
    Stream,
}

/// The read path over a store. Cloning is cheap and shares it.
pub(crate) struct ReadPath<S> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for ReadPath<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<S> {
    store: S,
    history: NamespaceCache,
    recent: NamespaceCache,
    now: Now,
    counters: Counters,
    /// Prefetches running at once are bounded so they never crowd out requests.
    prefetch_slots: tokio::sync::Semaphore,
    upstream: Option<Upstream>,
    live: LiveConfig,
    streams: Option<Streams<S>>,
    futures_streams: Option<Streams<S>>,
    /// The shared object store of closed months, between the store and the upstream.
    objects: std::sync::OnceLock<Objects>,
}

/// How long a chunk that holds the still-forming candle may be served from memory when
/// there is no upstream (only an import can change it then).
fn forming_ttl(tf: Timeframe) -> Duration {
    use Timeframe::*;
    Duration::from_secs(match tf {
        S1 => 1,
        M1 => 60,
        M3 => 180,
        M5 => 300,
        M15 => 600,
        M30 => 900,
        H1 => 1800,
        H2 | H4 => 3600,
        H6 | H8 | H12 => 7200,
        D1 => 14_400,
        D3 => 28_800,
        W1 | Mo1 => 86_400,
    })
}

/// The open time of the first chunk of `tf` that may still change at `now`: chunks ending
/// after `now - CLOSE_GRACE_MS` hold the live edge.
pub(crate) fn edge_chunk_start(tf: Timeframe, now: i64) -> i64 {
    chunk_start(tf, now - CLOSE_GRACE_MS)
}

impl<S: CandleStore + Clone + Send + Sync + 'static> ReadPath<S> {
    /// A read path over `store`, caching closed chunks in `historical_data` and chunks
    /// that hold the forming candle in `market_data_ohlcv`, backfilling what the store
    /// lacks from `upstream` and keeping the live edge fresh as `live` says. With a stream
    /// configured it must be called inside a Tokio runtime.
    ///
    /// # Errors
    /// If `cache` lacks either namespace, or the stream configuration is invalid.
    pub(crate) fn new(
        store: S,
        cache: &Cache,
        now: Now,
        upstream: Option<Upstream>,
        live: LiveConfig,
    ) -> Result<Self> {
        let open = |cfg: &Option<StreamConfig>| match (&upstream, cfg) {
            (Some(up), Some(cfg)) => {
                Streams::new(cfg.clone(), store.clone(), up.clone(), now.clone()).map(Some)
            }
            _ => Ok(None),
        };
        let streams = open(&live.stream)?;
        let futures_streams = open(&live.futures_stream)?;
        let ns = |name| {
            cache
                .namespace(name)
                .map_err(|e| Error::Config(format!("the read path's cache: {e}")))
        };
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                history: ns(ns::HISTORICAL_DATA)?,
                recent: ns(ns::MARKET_DATA_OHLCV)?,
                now,
                counters: Counters::default(),
                prefetch_slots: tokio::sync::Semaphore::new(2),
                upstream,
                live,
                streams,
                futures_streams,
                objects: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Puts the object-store tier between the store and the upstream: closed months the
    /// store lacks are read from it, and months fetched from the upstream are published to
    /// it. Set once; later calls are ignored.
    pub(crate) fn set_objects(&self, objects: Objects) {
        let _ = self.inner.objects.set(objects);
    }

    /// Every stored series; with an object store, each says which months it holds there.
    ///
    /// # Errors
    /// Store errors.
    pub(crate) async fn markets(&self) -> Result<Vec<crate::Market>> {
        let mut markets = self.inner.store.markets().await?;
        if let Some(obj) = self.inner.objects.get() {
            obj.annotate(&mut markets).await;
        }
        Ok(markets)
    }

    /// Drops months safe in the object store from the local store while it is larger than
    /// `[store] local_max_mb`; returns how many. Without either, does nothing.
    ///
    /// # Errors
    /// Store errors.
    pub(crate) async fn trim_local(&self) -> Result<u64> {
        match self.inner.objects.get() {
            Some(obj) => obj.trim(&self.inner.store, (self.inner.now)()).await,
            None => Ok(0),
        }
    }

    /// The object-store tier, if one is set.
    pub(crate) fn objects(&self) -> Option<&Objects> {
        self.inner.objects.get()
    }

    /// Returns the store.
    pub(crate) fn store(&self) -> &S {
        &self.inner.store
    }

    /// Returns the upstream, if one is configured.
    pub(crate) fn upstream(&self) -> Option<&Upstream> {
        self.inner.upstream.as_ref()
    }

    /// Figures of the upstream streams of `kind`'s market, when they are configured.
    pub(crate) fn stream_stats(&self, kind: Kind) -> Option<StreamStats> {
        self.streams_of(kind).map(Streams::stats)
    }

    /// True when streams of `kind`'s market are configured (served streams need them).
    pub(crate) fn has_streams(&self, kind: Kind) -> bool {
        self.streams_of(kind).is_some()
    }

    /// The upstream's events of a series for a served stream; `None` without upstream
    /// streams (nothing would ever arrive).
    pub(crate) fn watch(&self, symbol: &Symbol, tf: Timeframe) -> Option<Watch> {
        self.streams_for(symbol).map(|s| s.watch(symbol, tf))
    }

    /// The streams that carry `symbol`'s events: the spot or the futures market's. Mark
    /// prices have no kline stream; their edge is refreshed over REST.
    fn streams_for(&self, symbol: &Symbol) -> Option<&Streams<S>> {
        self.streams_of(symbol.kind())
    }

    fn streams_of(&self, kind: Kind) -> Option<&Streams<S>> {
        match kind {
            Kind::Spot => self.inner.streams.as_ref(),
            Kind::Futures => self.inner.futures_streams.as_ref(),
            Kind::Mark => None,
        }
    }

    /// Funding events of a futures symbol (whatever kind `symbol` was given as): with
    /// `start`, the first `limit` with `start <= time < end`; without, the latest `limit`
    /// before `end`, as Binance's `fundingRate` answers. With an upstream, what the store
    /// lacks is fetched and stored first; a range reaching the present is re-asked at most
    /// once per refresh period, by one caller however many ask.
    ///
    /// # Errors
    /// [`Error::UnknownSymbol`] when the upstream does not know it, upstream and store errors.
    pub(crate) async fn funding(
        &self,
        symbol: &Symbol,
        start: Option<i64>,
        end: i64,
        limit: usize,
    ) -> Result<Vec<Funding>> {
        let symbol = symbol.clone().with_kind(Kind::Futures);
        let store = &self.inner.store;
        let from = start.unwrap_or(0);
        if let Some(up) = &self.inner.upstream {
            let now = (self.inner.now)();
            let to = end.min(now);
            if from < to {
                let edge = to > now - FUNDING_GRACE_MS;
                let key = if edge {
                    format!("{}/funding/{from}/now", symbol.key())
                } else {
                    format!("{}/funding/{from}/{to}", symbol.key())
                };
                let fill = || async {
                    up.fill_funding(store, &symbol, (from, to), &self.inner.now)
                        .await
                        .map(|_| bytes::Bytes::new())
                };
                self.inner
                    .recent
                    .get_or_load_with_ttl(key.as_bytes(), self.inner.live.refresh, fill)
                    .await
                    .map_err(|e| load_error(e, "funding"))?;
            }
        }
        let rows = store.read_funding(&symbol, from, end).await?;
        let skip = if start.is_some() {
            0
        } else {
            rows.len().saturating_sub(limit)
        };
        Ok(rows.into_iter().skip(skip).take(limit).collect())
    }

    /// Returns the clock's time.
    pub(crate) fn now(&self) -> i64 {
        (self.inner.now)()
    }

    /// Returns the clock.
    pub(crate) fn clock(&self) -> &Now {
        &self.inner.now
    }

    /// Returns the counters.
    pub(crate) fn stats(&self) -> ReadStats {
        let c = &self.inner.counters;
        ReadStats {
            chunk_hits: c.chunk_hits.load(Ordering::Relaxed),
            chunk_loads: c.chunk_loads.load(Ordering::Relaxed),
            prefetches: c.prefetches.load(Ordering::Relaxed),
            edge_refreshes: c.edge_refreshes.load(Ordering::Relaxed),
            edge_from_stream: c.edge_from_stream.load(Ordering::Relaxed),
        }
    }

    /// Answers a request from cached chunks, loading the missing ones from the store.
    ///
    /// # Errors
    /// [`Error::UnknownSymbol`] if the store has no series for the symbol, [`Error::Db`]
    /// if reading fails.
    pub(crate) async fn get(&self, req: &Request) -> Result<Answer> {
        let mut a = self.walk(req, None).await?.map(|s| s.candles());
        if req.fill == Fill::Previous {
            let tf = req.timeframe;
            let span_end = a.next_start.unwrap_or(req.end);
            a.candles = fill_previous(&a.candles, tf, span_end);
            let now = (self.inner.now)();
            a.partial_last = a.candles.last().is_some_and(|c| tf.next(c.open_time) > now);
        }
        Ok(a)
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
        if req.fill == Fill::Previous {
            // Filled slots are made from candles; the filled answer is rarely asked for.
            let a = self.get(req).await?;
            return Ok(a.map(|c| Rows::write_after(out, &c, req.timeframe, format)));
        }
        let a = self.walk(req, Some(format)).await?;
        Ok(a.map(|s| s.rows(req.timeframe, format, out)))
    }

    /// One chunk of the grid the request walks: stored candles of `source_tf`, or
    /// candles of the timeframe asked resampled from it. With a `format`, a closed chunk
    /// comes as its rows in that format, written once and kept beside the chunk.
    async fn part(
        &self,
        req: &Request,
        source_tf: Timeframe,
        (chunk, next): (i64, i64),
        backfill: bool,
        format: Option<&dyn RowFormat>,
    ) -> Result<(Part, bool, Edge)> {
        let tf = req.timeframe;
        let resampling = source_tf != tf;
        // Only closed chunks have rows kept: they never change, as their chunks never do.
        let rows_key = format.filter(|_| !self.is_edge(next)).map(|f| {
            let chunk_key = if resampling {
                resampled_key(&req.symbol, tf, source_tf, chunk)
            } else {
                chunk_key(&req.symbol, tf, chunk)
            };
            format!("{chunk_key}/rows/{}", f.id())
        });
        if let Some(key) = &rows_key {
            if let Some(block) = self
                .inner
                .history
                .get(key.as_bytes())
                .and_then(RowBlock::from_bytes)
            {
                if !resampling {
                    self.inner
                        .counters
                        .chunk_hits
                        .fetch_add(1, Ordering::Relaxed);
                }
                return Ok((Part::Rows(block), true, Edge::Closed));
            }
        }
        let (candles, hit, edge) = if resampling {
            self.resampled(&req.symbol, tf, source_tf, chunk, next)
                .await?
        } else {
            self.chunk(&req.symbol, source_tf, chunk, next, backfill)
                .await?
        };
        match (rows_key, format, edge) {
            (Some(key), Some(format), Edge::Closed) => {
                let block = RowBlock::write(&candles, tf, format);
                // A cache refusing the entry (larger than its namespace) only costs the
                // next request the writing again.
                let _ = self
                    .inner
                    .history
                    .insert(key.as_bytes(), block.bytes().clone());
                Ok((Part::Rows(block), hit, edge))
            }
            _ => Ok((Part::Candles(candles), hit, edge)),
        }
    }

    /// The request's candles, or with a `format` its rows, before the answer is built.
    async fn walk(&self, req: &Request, format: Option<&dyn RowFormat>) -> Result<Answer<Slices>> {
        let tf = req.timeframe;
        let markets = self.inner.store.markets().await?;
        let stored: Vec<Timeframe> = markets
            .iter()
            .filter(|m| m.symbol == req.symbol.as_str() && m.kind == req.symbol.kind())
            .filter_map(|m| m.timeframe.parse().ok())
            .collect();
        // The finest stored timeframe finer than the one asked, to resample from.
        let finer = stored.iter().copied().filter(|s| *s < tf).min();
        if stored.contains(&tf) || self.inner.upstream.is_none() {
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
            let backfill = self.inner.upstream.is_some();
            return self.collect(req, source_tf, backfill, format).await;
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
        let max_age = match tally.edge {
            Edge::Closed => None,
            Edge::Stream => Some(STREAM_ANSWER_AGE),
            // Half the refresh period: with the chunk's own period on top, the forming
            // candle served stays within the contract's 2 s of the upstream.
            Edge::Refreshed if self.inner.upstream.is_some() => Some(self.inner.live.refresh / 2),
            Edge::Refreshed => Some(forming_ttl(tf).min(Duration::from_secs(60))),
        };
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
    async fn next_needed(
        &self,
        symbol: &Symbol,
        tf: Timeframe,
        from: i64,
        end: i64,
        backfill: bool,
    ) -> Result<Option<i64>> {
        let stored = self.inner.store.next_open(symbol, tf, from).await?;
        let uncovered = match &self.inner.upstream {
            Some(_) if backfill => {
                let closed_end = tf.floor((self.inner.now)() - CLOSE_GRACE_MS);
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

    /// One chunk, from memory or the store (after a backfill from the upstream when
    /// `backfill`); says whether it was in memory and whether it holds the live edge. An
    /// edge chunk comes from the upstream's stream when one is trusted for the series.
    async fn chunk(
        &self,
        symbol: &Symbol,
        tf: Timeframe,
        start: i64,
        end: i64,
        backfill: bool,
    ) -> Result<(Arc<Vec<Candle>>, bool, Edge)> {
        let counters = &self.inner.counters;
        let store = &self.inner.store;
        let is_edge = self.is_edge(end);
        if let (true, true, Some(streams)) = (is_edge, backfill, self.streams_for(symbol)) {
            if let Some(view) = streams.touch(symbol, tf) {
                // The stored part changes only when the stream stores a closed candle,
                // which bumps the generation in the key.
                let key = format!("{}/{tf}/{start}/g{}", symbol.key(), view.generation);
                let load = || async {
                    counters.chunk_loads.fetch_add(1, Ordering::Relaxed);
                    store.read(symbol, tf, start, end).await
                };
                let (stored, hit) = self
                    .cached(&key, Some(STREAM_CHUNK_TTL), "chunk", load)
                    .await?;
                let mut candles = Vec::clone(&stored);
                for c in view.unstored.into_iter().chain(view.forming) {
                    let after_last = candles.last().is_none_or(|l| c.open_time > l.open_time);
                    if after_last && c.open_time >= start && c.open_time < end {
                        candles.push(c);
                    }
                }
                if hit {
                    counters.chunk_hits.fetch_add(1, Ordering::Relaxed);
                }
                return Ok((Arc::new(candles), hit, Edge::Stream));
            }
        }
        let key = chunk_key(symbol, tf, start);
        // Single-flight: a request and a prefetch of the same chunk read the store once.
        let load = || async {
            counters.chunk_loads.fetch_add(1, Ordering::Relaxed);
            if is_edge {
                counters.edge_refreshes.fetch_add(1, Ordering::Relaxed);
            }
            // Held until the store is read: a trim must not drop the months under it.
            let mut _held = None;
            if let (Some(obj), true) = (self.inner.objects.get(), backfill) {
                let exchange = self
                    .inner
                    .upstream
                    .as_ref()
                    .map_or("binance", Upstream::exchange);
                let (_, held) = obj
                    .fill(
                        store,
                        exchange,
                        symbol,
                        tf,
                        (start, end),
                        self.inner.upstream.as_ref(),
                        &self.inner.now,
                    )
                    .await?;
                _held = Some(held);
            }
            let forming = match &self.inner.upstream {
                Some(up) if backfill => {
                    up.fill(store, symbol, tf, (start, end), &self.inner.now, &|_| {})
                        .await?
                        .forming
                }
                _ => Vec::new(),
            };
            let mut candles = store.read(symbol, tf, start, end).await?;
            let last = candles.last().map(|c| c.open_time);
            candles.extend(forming.into_iter().filter(|c| Some(c.open_time) > last));
            Ok::<_, Error>(candles)
        };
        let got = self.cached_part(&key, tf, is_edge, "chunk", load).await?;
        if got.1 {
            counters.chunk_hits.fetch_add(1, Ordering::Relaxed);
        }
        Ok(got)
    }

    /// [`Self::cached`] for a chunk of `tf`: the live edge for its refresh period (or,
    /// without an upstream, the timeframe's TTL), closed history for good.
    async fn cached_part<F, Fut>(
        &self,
        key: &str,
        tf: Timeframe,
        is_edge: bool,
        what: &'static str,
        load: F,
    ) -> Result<(Arc<Vec<Candle>>, bool, Edge)>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<Candle>>>,
    {
        let ttl = is_edge.then(|| {
            if self.inner.upstream.is_some() {
                self.inner.live.refresh
            } else {
                forming_ttl(tf)
            }
        });
        let (candles, hit) = self.cached(key, ttl, what, load).await?;
        let edge = if is_edge {
            Edge::Refreshed
        } else {
            Edge::Closed
        };
        Ok((candles, hit, edge))
    }

    /// Whether a chunk ending at `end` may still change: it ends after now - 2 s.
    fn is_edge(&self, end: i64) -> bool {
        end > (self.inner.now)() - CLOSE_GRACE_MS
    }

    /// The candles under `key` from memory, or loaded once however many ask at the same
    /// time; says whether they were in memory. With a `ttl` (the live edge) they live in
    /// `recent` that long; closed history lives in `history` and never expires.
    async fn cached<F, Fut>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        what: &'static str,
        load: F,
    ) -> Result<(Arc<Vec<Candle>>, bool)>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<Candle>>>,
    {
        let ns = if ttl.is_some() {
            &self.inner.recent
        } else {
            &self.inner.history
        };
        if let Some(hit) = ns.get(key.as_bytes()) {
            if let Ok(v) = decode_chunk(&hit) {
                return Ok((Arc::new(v), true));
            }
        }
        let load = || async { load().await.map(|v| encode_chunk(&v)) };
        let loaded = match ttl {
            Some(ttl) => ns.get_or_load_with_ttl(key.as_bytes(), ttl, load).await,
            None => ns.get_or_load(key.as_bytes(), load).await,
        };
        let bytes = loaded.map_err(|e| load_error(e, what))?;
        Ok((Arc::new(decode_chunk(&bytes)?), false))
    }

    /// The candles of `tf` in `[start, end)` (a chunk of `tf`'s grid, so whole buckets)
    /// resampled from `source`, from memory or computed from the source's chunks; says
    /// whether it was in memory.
    async fn resampled(
        &self,
        symbol: &Symbol,
        tf: Timeframe,
        source: Timeframe,
        start: i64,
        end: i64,
    ) -> Result<(Arc<Vec<Candle>>, bool, Edge)> {
        let key = resampled_key(symbol, tf, source, start);
        let load = || async {
            // Complete buckets are resampled as soon as they are complete; only the open
            // bucket's source candles wait in `pending` (candles arrive in order).
            let mut out = Vec::new();
            let mut pending: Vec<Candle> = Vec::new();
            let mut chunk = chunk_start(source, start);
            while chunk < end {
                let next = chunk_end(source, chunk);
                let (part, _, _) = self.chunk(symbol, source, chunk, next, false).await?;
                pending.extend(
                    part.iter()
                        .filter(|c| c.open_time >= start && c.open_time < end)
                        .cloned(),
                );
                if let Some(open) = pending.last().map(|l| tf.floor(l.open_time)) {
                    let split = pending.partition_point(|c| tf.floor(c.open_time) < open);
                    if split > 0 {
                        out.extend(resample(&pending[..split], tf));
                        pending.drain(..split);
                    }
                }
                if part.is_empty() && next < end {
                    match self.next_needed(symbol, source, next, end, false).await? {
                        Some(t) if t > next => {
                            chunk = chunk_start(source, t);
                            continue;
                        }
                        Some(_) => {}
                        None => break,
                    }
                }
                chunk = next;
            }
            out.extend(resample(&pending, tf));
            Ok::<_, Error>(out)
        };
        self.cached_part(&key, tf, self.is_edge(end), "resampled chunk", load)
            .await
    }

    /// After a miss, loads the neighbouring chunks in the background if they are not in
    /// memory: range queries tend to move along. Never blocks; skipped when two
    /// prefetches are already running.
    fn prefetch(&self, symbol: &Symbol, tf: Timeframe, start: i64, end: i64) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let prev = chunk_start(tf, start - 1);
        for (s, e) in [(end, chunk_end(tf, end)), (prev, start)] {
            // Nothing to fetch before the epoch or in the future.
            if s < 0 || s >= e || s > (self.inner.now)() {
                continue;
            }
            let this = self.clone();
            let symbol = symbol.clone();
            let Ok(permit) = this.inner.prefetch_slots.try_acquire() else {
                return;
            };
            permit.forget();
            handle.spawn(async move {
                let key = chunk_key(&symbol, tf, s);
                let cached = this.inner.history.get(key.as_bytes()).is_some()
                    || this.inner.recent.get(key.as_bytes()).is_some();
                if !cached && this.chunk(&symbol, tf, s, e, false).await.is_ok() {
                    this.inner
                        .counters
                        .prefetches
                        .fetch_add(1, Ordering::Relaxed);
                }
                this.inner.prefetch_slots.add_permits(1);
            });
        }
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
        self.edge = match (self.edge, edge) {
            (Edge::Stream, _) | (_, Edge::Stream) => Edge::Stream,
            (Edge::Refreshed, _) | (_, Edge::Refreshed) => Edge::Refreshed,
            _ => Edge::Closed,
        };
    }
}

/// The error of a single-flight load, as the read path's own: the loader's error is shared
/// by every waiter, so the kinds callers answer differently are rebuilt.
fn load_error(e: cache_core::Error, what: &'static str) -> Error {
    match e {
        cache_core::Error::Load(e) => match e.downcast_ref::<Error>() {
            Some(Error::UnknownSymbol(s)) => Error::UnknownSymbol(s.clone()),
            Some(Error::Upstream(s)) => Error::Upstream(s.clone()),
            Some(Error::UpstreamTimeout(s)) => Error::UpstreamTimeout(s.clone()),
            // 503 busy and 507 full keep their kind.
            Some(Error::Db(query_opt::Error::Pool(conn_pool::Error::Exhausted {
                waited_ms,
                max_size,
            }))) => Error::Db(query_opt::Error::Pool(conn_pool::Error::Exhausted {
                waited_ms: *waited_ms,
                max_size: *max_size,
            })),
            Some(Error::Db(query_opt::Error::Full { sql })) => {
                Error::Db(query_opt::Error::Full { sql: sql.clone() })
            }
            _ => Error::Db(query_opt::Error::Unusable(e.to_string())),
        },
        e => Error::Encode {
            what,
            message: e.to_string(),
        },
    }
}

/// The cache key of the stored chunk of `tf` opening at `start`.
fn chunk_key(symbol: &Symbol, tf: Timeframe, start: i64) -> String {
    format!("{}/{tf}/{start}", symbol.key())
}

/// The cache key of the chunk of `tf` opening at `start` resampled from `source`.
fn resampled_key(symbol: &Symbol, tf: Timeframe, source: Timeframe, start: i64) -> String {
    format!("{}/{tf}/from/{source}/{start}", symbol.key())
}

/// The open time of the chunk holding `t`: chunks are [`CHUNK_CANDLES`] candles on the
/// timeframe's own grid (months: a thousand months, so one chunk).
fn chunk_start(tf: Timeframe, t: i64) -> i64 {
    match tf.fixed_ms() {
        Some(len) => {
            let span = len * CHUNK_CANDLES;
            // Weeks open on Mondays, so their chunks count from the first Monday.
            let origin = if tf == Timeframe::W1 { tf.next(0) } else { 0 };
            origin + (t - origin).div_euclid(span) * span
        }
        None => 0,
    }
}

fn chunk_end(tf: Timeframe, start: i64) -> i64 {
    match tf.fixed_ms() {
        Some(len) => start + len * CHUNK_CANDLES,
        None => i64::MAX,
    }
}
