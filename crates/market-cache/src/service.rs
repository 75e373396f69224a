//! The front door of market-cache: one [`Service`] built once from a cache, the
//! database's configuration, an optional upstream, an optional object store and one
//! clock. http-api and the binary reach candles, imports, exports, backfills and the
//! figures of the layers below only through it.

use std::path::Path;
use std::sync::Arc;

use crate::settings::DbSettings;
use bytes::Bytes;
use cache_core::{ns, Cache, CacheConfig};
use serde::Serialize;

use crate::codec::encoded::{RowFormat, Rows};
use crate::export::{ExportFormat, ExportReport, ExportTo};
use crate::health::{DatabaseStats, HostStats, Optimized};
use crate::import::{ImportOptions, ImportReport, Progress};
use crate::live::streams::{StreamStats, Watch};
use crate::model::time::Now;
use crate::objects::{local_months, ObjectStats, Objects, Published};
use crate::read::{Answer, LiveConfig, ReadPath, ReadStats, Request};
use crate::store::sqlite::OnCovered;
use crate::upstream::{FillProgress, FillReport, Upstream};
use crate::{Error, Exchange, Funding, Kind, Market, Result, SqliteStore, Symbol, Timeframe};

/// The cache a one-shot command's service reads through when it is given none: small,
/// since such a command reads each chunk once.
const ONE_SHOT_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// The market data service. Cloning is cheap and shares it.
#[derive(Clone)]
pub struct Service {
    read: ReadPath<SqliteStore>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field(
                "upstreams",
                &self
                    .read
                    .upstreams()
                    .map(Upstream::base_url)
                    .collect::<Vec<_>>(),
            )
            .field("objects", &self.read.objects().map(|o| o.stats().url))
            .finish_non_exhaustive()
    }
}

/// How a [`Service`] is built: [`Service::builder`], then the parts it has, then
/// [`ServiceBuilder::open`].
#[must_use = "a builder does nothing until it is opened"]
pub struct ServiceBuilder {
    db: DbSettings,
    cache: Option<Cache>,
    upstreams: Vec<Upstream>,
    live: LiveConfig,
    objects: Option<Objects>,
    now: Now,
}

/// The upstream as the figures show it.
#[derive(Debug, Clone, Serialize)]
pub struct UpstreamStats {
    /// The exchange whose API it is.
    pub exchange: Exchange,
    /// The spot API's base URL.
    pub base_url: String,
    /// The USD-M futures API's base URL.
    pub futures_url: String,
    /// The HTTP client's figures per host.
    pub hosts: Vec<HostStats>,
}

/// What publishing the closed months to the object store did.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct SyncReport {
    /// Closed months the database has candles in.
    pub months: u64,
    /// Months this call published.
    pub created: u64,
    /// Months the object store had already.
    pub existed: u64,
    /// Months not known complete (imported files are not; fetched ranges are).
    pub incomplete: u64,
}

impl Service {
    /// Starts building a service over the database `db` describes.
    pub fn builder(db: DbSettings) -> ServiceBuilder {
        ServiceBuilder {
            db,
            cache: None,
            upstreams: Vec::new(),
            live: LiveConfig::default(),
            objects: None,
            now: cache_core::wall_clock(),
        }
    }

    /// Answers a request from cached chunks, loading what is missing from the store, the
    /// object store or the upstream (in that order).
    ///
    /// # Errors
    /// [`Error::UnknownSymbol`] when neither the store nor the upstream knows the series,
    /// store and upstream errors.
    pub async fn get(&self, req: &Request) -> Result<Answer> {
        self.read.get(req).await
    }

    /// [`Self::get`] with the candles written as rows in `format`, after what `out` holds
    /// (a body's opening, so the body is written in one buffer). The rows of closed
    /// chunks are written once and cached beside them, so over cached history an answer
    /// is a copy of ready bytes; for the same request the rows equal `format` applied to
    /// [`Self::get`]'s candles.
    ///
    /// # Errors
    /// As [`Self::get`].
    pub async fn get_rows(
        &self,
        req: &Request,
        format: &dyn RowFormat,
        out: Vec<u8>,
    ) -> Result<Answer<Rows>> {
        self.read.get_rows(req, format, out).await
    }

    /// Every stored series; with an object store, each says which months it holds there.
    ///
    /// # Errors
    /// Store errors.
    pub async fn markets(&self) -> Result<Vec<Market>> {
        self.read.markets().await
    }

    /// Funding events of a futures symbol: with `start`, the first `limit` with
    /// `start <= time < end`; without, the latest `limit` before `end`.
    ///
    /// # Errors
    /// [`Error::UnknownSymbol`] when the upstream does not know it, upstream and store errors.
    pub async fn funding(
        &self,
        symbol: &Symbol,
        start: Option<i64>,
        end: i64,
        limit: usize,
    ) -> Result<Vec<Funding>> {
        self.read.funding(symbol, start, end, limit).await
    }

    /// The upstream's events of a series for a served stream; `None` without upstream
    /// streams of its market.
    pub fn watch(&self, symbol: &Symbol, tf: Timeframe) -> Option<Watch> {
        self.read.watch(symbol, tf)
    }

    /// True when `exchange`'s streams of `kind`'s market are configured.
    pub fn has_streams(&self, exchange: Exchange, kind: Kind) -> bool {
        self.read.has_streams(exchange, kind)
    }

    /// The service's clock, epoch ms.
    pub fn now(&self) -> i64 {
        self.read.now()
    }

    /// The service's clock, for everything that must agree with the live edge on what
    /// "now" is (the HTTP layer's dates, the memory guard's samples).
    pub fn clock(&self) -> Now {
        self.read.clock().clone()
    }

    /// The read path's counters.
    pub fn read_stats(&self) -> ReadStats {
        self.read.stats()
    }

    /// Figures of `exchange`'s streams of `kind`'s market, when they are configured.
    pub fn stream_stats(&self, exchange: Exchange, kind: Kind) -> Option<StreamStats> {
        self.read.stream_stats(exchange, kind)
    }

    /// Each upstream and its HTTP client's figures.
    pub fn upstream_stats(&self) -> Vec<UpstreamStats> {
        self.read
            .upstreams()
            .map(|u| UpstreamStats {
                exchange: u.exchange(),
                base_url: u.base_url().to_owned(),
                futures_url: u.futures_url().to_owned(),
                hosts: u.stats(),
            })
            .collect()
    }

    /// The object store's figures, when there is one.
    pub fn object_stats(&self) -> Option<ObjectStats> {
        self.read.objects().map(Objects::stats)
    }

    /// The database's figures: pool, query patterns, slow queries.
    pub fn database_stats(&self) -> DatabaseStats {
        self.read.store().database_stats()
    }

    /// Refreshes the planner's statistics, checkpoints the WAL and says what it advises.
    ///
    /// # Errors
    /// Database errors.
    pub async fn optimize(&self) -> Result<Optimized> {
        self.read.store().optimize().await
    }

    /// `path_and_query` as `exchange`'s upstream answers it (status and body; the spot or
    /// futures API by its path): live data candlecache does not store. `None` without an
    /// upstream for it.
    ///
    /// # Errors
    /// Upstream errors (unreachable, timeouts).
    pub async fn pass_through(
        &self,
        exchange: Exchange,
        path_and_query: &str,
    ) -> Result<Option<(u16, Bytes)>> {
        match self.read.upstream_of(exchange) {
            Some(up) => up.get_raw(path_and_query).await.map(Some),
            None => Ok(None),
        }
    }

    /// True when an upstream for `exchange` is configured.
    pub fn has_upstream(&self, exchange: Exchange) -> bool {
        self.read.upstream_of(exchange).is_some()
    }

    /// Imports one file (a zip: each entry).
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::Malformed`], [`Error::Unnamed`] (no symbol or timeframe),
    /// invalid rows under the default [`crate::OnInvalid::Fail`], database errors.
    pub async fn import_path(
        &self,
        path: &Path,
        opts: &ImportOptions,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<Vec<ImportReport>> {
        crate::import::import_path(self.read.store(), path, opts, progress).await
    }

    /// Imports a file's bytes already in memory (`name` stands for its file name).
    ///
    /// # Errors
    /// As [`Service::import_path`].
    pub async fn import_bytes(
        &self,
        name: &str,
        data: Vec<u8>,
        opts: &ImportOptions,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<Vec<ImportReport>> {
        crate::import::import_bytes(self.read.store(), name, data, opts, progress).await
    }

    /// Exports `[start, end)` of one stored series; `progress` gets the rows written.
    ///
    /// # Errors
    /// [`Error::UnknownSymbol`], [`Error::Io`], [`Error::Encode`], [`Error::Config`] for a
    /// dataset asked into a writer.
    #[allow(clippy::too_many_arguments)]
    pub async fn export(
        &self,
        symbol: &Symbol,
        tf: Timeframe,
        (start, end): (i64, i64),
        format: ExportFormat,
        to: ExportTo,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<ExportReport> {
        crate::export::export(
            self.read.store(),
            symbol,
            tf,
            start,
            end,
            format,
            to,
            progress,
        )
        .await
    }

    /// Backfills `[start, end)` of a series: closed months from the object store first
    /// (publishing those it had to fetch), the rest from the upstream; the report counts
    /// both.
    ///
    /// # Errors
    /// [`Error::Config`] without an upstream, upstream and store errors.
    pub async fn fill(
        &self,
        symbol: &Symbol,
        tf: Timeframe,
        range: (i64, i64),
        progress: &(dyn Fn(FillProgress) + Send + Sync),
    ) -> Result<FillReport> {
        let Some(up) = self.read.upstream_for(symbol) else {
            return Err(Error::Config(format!(
                "a backfill of {} needs an upstream for it",
                symbol.exchange()
            )));
        };
        let store = self.read.store();
        let now = self.read.clock();
        let mut from_months = FillReport::default();
        if let Some(obj) = self.read.objects() {
            (from_months, _) = obj.fill(store, symbol, tf, range, Some(up), now).await?;
        }
        let mut report = up.fill(store, symbol, tf, range, now, progress).await?;
        if let Some(obj) = self.read.objects() {
            obj.publish_noted(store, now(), Some((symbol, tf))).await;
        }
        report.pages += from_months.pages;
        report.fetched += from_months.fetched;
        report.inserted += from_months.inserted;
        Ok(report)
    }

    /// Publishes every complete closed month the database holds to the object store;
    /// `progress` gets (months done, months in all).
    ///
    /// # Errors
    /// [`Error::Config`] without an object store, object-store and store errors.
    pub async fn sync(&self, progress: &(dyn Fn(u64, u64) + Send + Sync)) -> Result<SyncReport> {
        let Some(obj) = self.read.objects() else {
            return Err(Error::Config("publishing needs an object store".into()));
        };
        let store = self.read.store();
        let months = local_months(store, self.now()).await?;
        let mut report = SyncReport {
            months: months.len() as u64,
            ..SyncReport::default()
        };
        for (i, (symbol, tf, month)) in months.iter().enumerate() {
            match obj.publish(store, symbol, *tf, *month).await? {
                Some(Published::Created) => report.created += 1,
                Some(Published::Existed) => report.existed += 1,
                None => report.incomplete += 1,
            }
            progress(i as u64 + 1, report.months);
        }
        Ok(report)
    }

    /// With an object store: publishes the months that closed complete since they were
    /// written (from the stream, or pages that ran past a read), and returns how many.
    /// Serving calls it every few seconds.
    pub async fn publish_closed(&self) -> u64 {
        match self.read.objects() {
            Some(obj) => obj.publish_noted(self.read.store(), self.now(), None).await,
            None => 0,
        }
    }

    /// With a bounded local store (`local_max_mb`): drops months safe in the object store
    /// while the store is larger than the bound; returns how many. Otherwise nothing.
    ///
    /// # Errors
    /// Store errors.
    pub async fn trim_local(&self) -> Result<u64> {
        self.read.trim_local().await
    }

    /// Checkpoints the WAL into the database file (truncating it), so the file alone is
    /// complete; says whether a reader blocked part of it, and the frames moved.
    ///
    /// # Errors
    /// Database errors.
    pub async fn checkpoint(&self) -> Result<(bool, i64)> {
        Ok(self.read.store().db().checkpoint().await?)
    }

    /// The bound on the local store in bytes, if there is one.
    pub fn local_max_bytes(&self) -> Option<u64> {
        self.read.objects().and_then(Objects::local_max_bytes)
    }
}

impl ServiceBuilder {
    /// The cache the read path keeps chunks in (namespaces `historical_data` and
    /// `market_data_ohlcv`); query results are cached in its `strategy_results` when it
    /// has one, so they count against its budget and the memory guard reclaims them.
    /// Without it a small private cache serves, and query results are not cached.
    pub fn cache(mut self, cache: &Cache) -> Self {
        self.cache = Some(cache.clone());
        self
    }

    /// An exchange to backfill its series from and keep their live edge fresh with (its
    /// streams as [`Upstream::with_streams`] says); one per exchange, a later one for the
    /// same exchange replaces the earlier.
    pub fn upstream(mut self, upstream: Option<Upstream>) -> Self {
        if let Some(up) = upstream {
            self.upstreams.retain(|u| u.exchange() != up.exchange());
            self.upstreams.push(up);
        }
        self
    }

    /// How the live edge is kept fresh (streams, REST refresh period).
    pub fn live(mut self, live: LiveConfig) -> Self {
        self.live = live;
        self
    }

    /// The shared object store of closed months.
    pub fn objects(mut self, objects: Option<Objects>) -> Self {
        self.objects = objects;
        self
    }

    /// The clock (the system's by default); tests move it.
    pub fn clock(mut self, now: Now) -> Self {
        self.now = now;
        self
    }

    /// Opens the database (migrating its schema) and builds the service. With upstream
    /// streams configured it must be called inside a Tokio runtime.
    ///
    /// # Errors
    /// [`Error::Db`] if the database cannot be opened, [`Error::Config`] for a cache
    /// without the read path's namespaces, an invalid stream configuration, or a bounded
    /// local store without an upstream to read dropped months back through.
    pub async fn open(self) -> Result<Service> {
        let bounded = self
            .objects
            .as_ref()
            .is_some_and(|o| o.local_max_bytes().is_some());
        if bounded && self.upstreams.is_empty() {
            return Err(Error::Config(
                "a bounded local store (local_max_mb) needs an upstream: dropped months come back through it, from the object store first".into(),
            ));
        }
        let (cache, results) = match self.cache {
            Some(c) => {
                let results = c.namespace(ns::STRATEGY_RESULTS).ok();
                (c, results)
            }
            None => {
                let config = CacheConfig {
                    budget_bytes: ONE_SHOT_CACHE_BYTES,
                    ..CacheConfig::default()
                };
                let c = Cache::new(config).map_err(|e| Error::Config(e.to_string()))?;
                (c, None)
            }
        };
        // Every covered write tells the object-store tier which months may have become
        // complete, so it publishes them whoever wrote them.
        let covered = self.objects.clone().map(|o| {
            OnCovered(Arc::new(move |symbol: &Symbol, tf, range| {
                o.note_covered(symbol, tf, range);
            }))
        });
        let store = SqliteStore::open_with(self.db, results, covered).await?;
        let read = ReadPath::new(store, &cache, self.now, self.upstreams, self.live)?;
        if let Some(objects) = self.objects {
            read.set_objects(objects);
        }
        Ok(Service { read })
    }
}
