//! The read path's state: the store, the two chunk namespaces, the upstream, the
//! streams and the object store it reads through, and its counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cache_core::{ns, Cache, NamespaceCache};

use super::types::{LiveConfig, ReadStats};
use crate::live::edge::Rules;
use crate::live::streams::config::StreamConfig;
use crate::live::streams::{StreamStats, Streams, Watch};
use crate::model::time::Now;
use crate::objects::Objects;
use crate::store::CandleStore;
use crate::upstream::Upstream;
use crate::{Error, Exchange, Kind, Result, Symbol, Timeframe};

#[derive(Default)]
pub(super) struct Counters {
    pub(super) chunk_hits: AtomicU64,
    pub(super) chunk_loads: AtomicU64,
    pub(super) prefetches: AtomicU64,
    pub(super) edge_refreshes: AtomicU64,
    pub(super) edge_from_stream: AtomicU64,
}

/// The read path over a store. Cloning is cheap and shares it.
pub(crate) struct ReadPath<S> {
    pub(super) inner: Arc<Inner<S>>,
}

impl<S> Clone for ReadPath<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

pub(super) struct Inner<S> {
    pub(super) store: S,
    pub(super) history: NamespaceCache,
    pub(super) recent: NamespaceCache,
    pub(super) now: Now,
    pub(super) counters: Counters,
    /// Prefetches running at once are bounded so they never crowd out requests.
    pub(super) prefetch_slots: tokio::sync::Semaphore,
    /// One per configured exchange: a series is fetched from its own exchange's.
    pub(super) venues: Vec<Venue<S>>,
    pub(super) live: LiveConfig,
    /// The shared object store of closed months, between the store and the upstream.
    pub(super) objects: std::sync::OnceLock<Objects>,
}

/// One exchange's upstream and its streams (spot and derivatives markets').
pub(super) struct Venue<S> {
    pub(super) upstream: Upstream,
    streams: [Option<Streams<S>>; 2],
}

impl<S: CandleStore + Clone + Send + Sync + 'static> ReadPath<S> {
    /// A read path over `store`, caching closed chunks in `historical_data` and chunks
    /// that hold the forming candle in `market_data_ohlcv`, backfilling what the store
    /// lacks from each series' exchange among `upstreams` and keeping the live edge fresh
    /// as `live` and the upstreams' streams say. With a stream configured it must be
    /// called inside a Tokio runtime.
    ///
    /// # Errors
    /// If `cache` lacks either namespace, or a stream configuration is invalid.
    pub(crate) fn new(
        store: S,
        cache: &Cache,
        now: Now,
        upstreams: Vec<Upstream>,
        live: LiveConfig,
    ) -> Result<Self> {
        let mut venues = Vec::with_capacity(upstreams.len());
        for up in upstreams {
            let open = |cfg: Option<&StreamConfig>| match cfg {
                Some(cfg) => Streams::new(
                    cfg.clone(),
                    up.stream_api(),
                    store.clone(),
                    up.clone(),
                    now.clone(),
                )
                .map(Some),
                None => Ok(None),
            };
            let streams = [open(up.streams(false))?, open(up.streams(true))?];
            venues.push(Venue {
                upstream: up,
                streams,
            });
        }
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
                venues,
                live,
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

    /// The upstream of `exchange`, if one is configured.
    pub(crate) fn upstream_of(&self, exchange: Exchange) -> Option<&Upstream> {
        self.venue(exchange).map(|v| &v.upstream)
    }

    /// The upstream `symbol`'s candles come from, if its exchange has one.
    pub(crate) fn upstream_for(&self, symbol: &Symbol) -> Option<&Upstream> {
        self.upstream_of(symbol.exchange())
    }

    /// Every configured upstream.
    pub(crate) fn upstreams(&self) -> impl Iterator<Item = &Upstream> {
        self.inner.venues.iter().map(|v| &v.upstream)
    }

    fn venue(&self, exchange: Exchange) -> Option<&Venue<S>> {
        self.inner
            .venues
            .iter()
            .find(|v| v.upstream.exchange() == exchange)
    }

    /// Figures of the upstream streams of `kind`'s market on `exchange`, when they are
    /// configured.
    pub(crate) fn stream_stats(&self, exchange: Exchange, kind: Kind) -> Option<StreamStats> {
        self.streams_of(exchange, kind).map(Streams::stats)
    }

    /// True when streams of `kind`'s market on `exchange` are configured (served streams
    /// need them).
    pub(crate) fn has_streams(&self, exchange: Exchange, kind: Kind) -> bool {
        self.streams_of(exchange, kind).is_some()
    }

    /// The upstream's events of a series for a served stream; `None` without upstream
    /// streams (nothing would ever arrive).
    pub(crate) fn watch(&self, symbol: &Symbol, tf: Timeframe) -> Option<Watch> {
        self.streams_for(symbol).map(|s| s.watch(symbol, tf))
    }

    /// The streams that carry `symbol`'s events: its exchange's spot or derivatives
    /// market's. Mark prices have no kline stream; their edge is refreshed over REST.
    pub(super) fn streams_for(&self, symbol: &Symbol) -> Option<&Streams<S>> {
        self.streams_of(symbol.exchange(), symbol.kind())
    }

    fn streams_of(&self, exchange: Exchange, kind: Kind) -> Option<&Streams<S>> {
        let market = match kind {
            Kind::Spot => 0,
            Kind::Futures => 1,
            Kind::Mark => return None,
        };
        self.venue(exchange)?.streams[market].as_ref()
    }

    /// The live edge's rules for `symbol`'s series (the refresh period, whether its
    /// exchange has an upstream).
    pub(super) fn rules(&self, symbol: &Symbol) -> Rules {
        Rules {
            refresh: self.inner.live.refresh,
            upstream: self.upstream_for(symbol).is_some(),
        }
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
}
