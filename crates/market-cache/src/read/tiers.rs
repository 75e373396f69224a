//! Where a chunk comes from. The tiers, in the order a chunk is looked for:
//! 1. memory: the rows kept for the format (`historical_data`, closed chunks), else the
//!    chunk (`historical_data` closed, `market_data_ohlcv` the edge), single-flight;
//! 2. the upstream's stream, for an edge chunk of a live series (its unstored closed
//!    candles and the forming one, over the store's part);
//! 3. the object store (closed months the store lacks) — [`crate::objects`];
//! 4. the exchange over REST (ranges not covered, and the forming candle) —
//!    [`crate::upstream`];
//! 5. the SQLite store, which every tier above 1 writes into and which is the only thing
//!    read.
//!
//! How long each kind of chunk is kept is the live edge's rule ([`crate::live::edge`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::path::ReadPath;
use super::resample::resample;
use super::slices::Part;
use super::types::Request;
use crate::codec::encoded::{RowBlock, RowFormat};
use crate::codec::wire::{decode_chunk, encode_chunk};
use crate::live::edge::{Edge, Rules, STREAM_CHUNK_TTL};
use crate::model::grid::{chunk_end, chunk_start};
use crate::store::CandleStore;
use crate::{Candle, Error, Result, Symbol, Timeframe};

impl<S: CandleStore + Clone + Send + Sync + 'static> ReadPath<S> {
    /// One chunk of the grid the request walks: stored candles of `source_tf`, or
    /// candles of the timeframe asked resampled from it. With a `format`, a closed chunk
    /// comes as its rows in that format, written once and kept beside the chunk.
    pub(super) async fn part(
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
            // A closed chunk of months this instance holds none of, answered from the
            // object store's row groups it needs; the months are kept locally after.
            if let (Some(obj), true, false) = (self.inner.objects.get(), backfill, is_edge) {
                let now = (self.inner.now)();
                if let Some(candles) = obj.window(store, symbol, tf, (start, end), now).await? {
                    self.keep_months(symbol.clone(), tf, (start, end));
                    return Ok(candles);
                }
            }
            // Held until the store is read: a trim must not drop the months under it.
            let mut _held = None;
            if let (Some(obj), true) = (self.inner.objects.get(), backfill) {
                let (_, held) = obj
                    .fill(
                        store,
                        symbol,
                        tf,
                        (start, end),
                        self.upstream_for(symbol),
                        &self.inner.now,
                    )
                    .await?;
                _held = Some(held);
            }
            let forming = match self.upstream_for(symbol) {
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
        let got = self
            .cached_part(&key, symbol, tf, is_edge, "chunk", load)
            .await?;
        if got.1 {
            counters.chunk_hits.fetch_add(1, Ordering::Relaxed);
        }
        Ok(got)
    }

    /// Fills the months of `range` into the local store in the background, from the
    /// object store (the exchange for a month it lacks after all).
    fn keep_months(&self, symbol: Symbol, tf: Timeframe, range: (i64, i64)) {
        let this = self.clone();
        tokio::spawn(async move {
            let Some(obj) = this.inner.objects.get() else {
                return;
            };
            let up = this.upstream_for(&symbol);
            let filled = obj
                .fill(&this.inner.store, &symbol, tf, range, up, &this.inner.now)
                .await;
            if let Err(e) = filled {
                eprintln!("candlecache: keeping {symbol} {tf} locally: {e}");
            }
        });
    }

    /// [`Self::cached`] for a chunk of `tf`: the live edge for its refresh period (or,
    /// without an upstream, the timeframe's TTL), closed history for good.
    async fn cached_part<F, Fut>(
        &self,
        key: &str,
        symbol: &Symbol,
        tf: Timeframe,
        is_edge: bool,
        what: &'static str,
        load: F,
    ) -> Result<(Arc<Vec<Candle>>, bool, Edge)>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<Candle>>>,
    {
        let ttl = self.rules(symbol).chunk_ttl(tf, is_edge);
        let (candles, hit) = self.cached(key, ttl, what, load).await?;
        let edge = if is_edge {
            Edge::Refreshed
        } else {
            Edge::Closed
        };
        Ok((candles, hit, edge))
    }

    /// Whether a chunk ending at `end` may still change now.
    fn is_edge(&self, end: i64) -> bool {
        Rules::is_edge(end, (self.inner.now)())
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
        let is_edge = self.is_edge(end);
        self.cached_part(&key, symbol, tf, is_edge, "resampled chunk", load)
            .await
    }

    /// After a miss, loads the neighbouring chunks in the background if they are not in
    /// memory: range queries tend to move along. Never blocks; skipped when two
    /// prefetches are already running.
    pub(super) fn prefetch(&self, symbol: &Symbol, tf: Timeframe, start: i64, end: i64) {
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
                // Ahead of need only while requests have connections to spare: a prefetch
                // holding the last one would make the next request wait, or be refused busy.
                let spare = this.inner.store.has_spare_connection();
                if !cached && spare && this.chunk(&symbol, tf, s, e, false).await.is_ok() {
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

/// The error of a single-flight load, as the read path's own: the loader's error is shared
/// by every waiter, so the kinds callers answer differently are rebuilt.
pub(super) fn load_error(e: cache_core::Error, what: &'static str) -> Error {
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
