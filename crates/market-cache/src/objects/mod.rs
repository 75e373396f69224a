//! The object-store tier: closed history shared by many instances as immutable,
//! hive-partitioned Parquet that DuckDB, DataFusion, Spark and Trino read in place.
//!
//! One object per complete, closed calendar month of a series, at
//! `exchange=<e>/symbol=<S>/timeframe=<tf>/year=<YYYY>/month=<MM>/<S>-<tf>-<YYYY>-<MM>.parquet`,
//! written with a create-only put, so instances racing on a month leave exactly one object
//! and the loser keeps the winner's. Columns are those of the Parquet export (`time` as
//! timestamp(ms, UTC), floats); the key-value metadata names the series and the decimal
//! places of each column, so a reader gets the exchange's exact decimals back and can tell
//! a foreign or damaged object from a good one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow_array::{Array, Float64Array, RecordBatch, TimestampMillisecondArray, UInt64Array};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use crate::codec::wire::candles_batch;
use crate::export::parquet_schema;
use crate::live::edge::CLOSE_GRACE_MS;
use crate::model::time::Now;
use crate::store::{CandleStore, MarketMeta, Scales};
use crate::upstream::{FillReport, Upstream};
use crate::{Candle, Decimal, Error, Kind, Result, Symbol, Timeframe};

/// `[object_store]`: where the shared history lives.
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObjectConfig {
    /// `s3://bucket/prefix` or `file:///path`.
    pub url: Option<String>,
    /// An S3-compatible endpoint (`http://127.0.0.1:9000`); AWS's by default.
    pub endpoint: Option<String>,
    /// The S3 region (`us-east-1` by default).
    pub region: Option<String>,
    /// Allow plain HTTP endpoints (local test servers).
    pub allow_http: bool,
    /// The partition period: `month` (the only one so far).
    pub partition: Option<String>,
    /// Credentials; the `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` environment variables
    /// are used when these are absent. Never logged or shown.
    pub access_key_id: Option<String>,
    /// See `access_key_id`.
    pub secret_access_key: Option<String>,
}

impl std::fmt::Debug for ObjectConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectConfig")
            .field("url", &self.url)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("allow_http", &self.allow_http)
            .field("partition", &self.partition)
            .field("credentials", &self.access_key_id.as_ref().map(|_| "(set)"))
            .finish()
    }
}

/// What the tier did, for `/api/performance/stats`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ObjectStats {
    /// The store's URL (without credentials).
    pub url: String,
    /// Months read from the object store into the local store.
    pub months_read: u64,
    /// Months this instance created.
    pub months_written: u64,
    /// Months another instance had created first.
    pub months_existing: u64,
    /// Objects refused as foreign or damaged.
    pub rejected: u64,
    /// Requests that failed (unreachable, refused); reads fell through to the upstream.
    pub errors: u64,
    /// Months dropped from the local store because they are safe in the object store.
    pub months_dropped: u64,
    /// `[store] local_max_mb` in bytes: the local store is trimmed to this; `None`: kept
    /// whole.
    pub local_max_bytes: Option<u64>,
}

/// Where a series' months are in the object store, for the markets list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMonths {
    /// Month objects of the series.
    pub months: u64,
    /// Runs of consecutive months, first and last as `YYYY-MM`.
    pub ranges: Vec<(String, String)>,
}

/// The month objects of one series, as the listing found them.
type Listing = std::collections::HashMap<(String, String, String), Vec<(u16, u8)>>;

/// A listing and when it was made.
type Listed = (std::time::Instant, Arc<Listing>);

/// Months of the local store a read is using: a trim never drops them under it. Dropping
/// it lets the trim go on.
#[derive(Debug, Default)]
#[must_use = "the months are protected only while this is held"]
pub(crate) struct Held(Vec<tokio::sync::OwnedMutexGuard<()>>);

#[derive(Default)]
struct Counters {
    read: AtomicU64,
    written: AtomicU64,
    existing: AtomicU64,
    rejected: AtomicU64,
    errors: AtomicU64,
    dropped: AtomicU64,
    /// The clock of least-recent use: a month's last read is the tick it was given.
    tick: AtomicU64,
}

/// What a publish found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Published {
    /// This call created the object.
    Created,
    /// The object was there already (another instance, or an earlier run).
    Existed,
}

/// A shared object store of closed months. Cloning shares it.
#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    url: Arc<str>,
    counters: Arc<Counters>,
    /// One filler per month at a time: concurrent requests touching a month the store lacks
    /// read (or fetch) it once. One small entry per month ever filled.
    filling: Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// The tick of each month's last read from the local store (least recent dropped
    /// first); months not read since start count as oldest.
    used: Arc<std::sync::Mutex<std::collections::HashMap<String, u64>>>,
    local_max_bytes: Option<u64>,
    /// The last listing and when it was made: the markets list shows it for a while.
    listing: Arc<tokio::sync::Mutex<Option<Listed>>>,
}

/// How long a listing of the object store is reused by the markets list.
const LISTING_TTL: std::time::Duration = std::time::Duration::from_secs(30);

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Objects").field("url", &self.url).finish()
    }
}

fn store_error(e: impl std::error::Error) -> Error {
    // The causes too: object_store's own message often hides the one that matters.
    let mut message = format!("object store: {e}");
    let mut cause = e.source();
    while let Some(c) = cause {
        message.push_str(&format!(": {c}"));
        cause = c.source();
    }
    Error::Upstream(message)
}

impl Objects {
    /// Opens the store `config.url` names.
    ///
    /// # Errors
    /// [`Error::Config`] for a URL that is not `s3://bucket[/prefix]` or `file:///path`, a
    /// partition other than `month`, or a directory that cannot be created.
    pub fn open(config: &ObjectConfig) -> Result<Self> {
        let bad = |m: String| Error::Config(format!("[object_store] {m}"));
        let url = config
            .url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| bad("`url` is missing".into()))?;
        if let Some(p) = config.partition.as_deref().filter(|p| *p != "month") {
            return Err(bad(format!("`partition` `{p}` is not supported (month)")));
        }
        let store: Arc<dyn ObjectStore> = if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(bad(format!(
                    "`url` `{url}` must be an absolute file:///path"
                )));
            }
            std::fs::create_dir_all(path)
                .map_err(|e| bad(format!("cannot create `{path}`: {e}")))?;
            Arc::new(
                object_store::local::LocalFileSystem::new_with_prefix(path)
                    .map_err(|e| bad(e.to_string()))?,
            )
        } else if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad(format!("`url` `{url}` names no bucket")));
            }
            // object_store's HTTP client (reqwest with rustls and no provider of its own)
            // takes the process's default TLS provider for https endpoints. Ignored if
            // one is installed already.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let mut b = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_region(config.region.as_deref().unwrap_or("us-east-1"))
                .with_allow_http(config.allow_http)
                // Create-only puts with If-None-Match, as S3, R2 and MinIO support.
                .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch)
                // An unreachable or failing store must cost a request seconds, not the
                // crate's default of minutes of retries: the exchange answers instead.
                .with_client_options(
                    // The whole client options replace the builder's, `allow_http` too.
                    object_store::ClientOptions::new()
                        .with_allow_http(config.allow_http)
                        .with_connect_timeout(std::time::Duration::from_secs(3))
                        .with_timeout(std::time::Duration::from_secs(30)),
                )
                .with_retry(object_store::RetryConfig {
                    max_retries: 2,
                    retry_timeout: std::time::Duration::from_secs(10),
                    ..Default::default()
                });
            if let Some(e) = &config.endpoint {
                b = b.with_endpoint(e);
            }
            if let (Some(k), Some(s)) = (&config.access_key_id, &config.secret_access_key) {
                b = b.with_access_key_id(k).with_secret_access_key(s);
            }
            let s3 = b.build().map_err(|e| bad(e.to_string()))?;
            if prefix.trim_matches('/').is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(
                    s3,
                    prefix.trim_matches('/'),
                ))
            }
        } else {
            return Err(bad(format!(
                "`url` `{url}` must start with s3:// or file://"
            )));
        };
        Ok(Self {
            store,
            url: url.into(),
            counters: Arc::default(),
            filling: Arc::default(),
            used: Arc::default(),
            local_max_bytes: None,
            listing: Arc::default(),
        })
    }

    /// Bounds the local store to `bytes` (`[store] local_max_mb`): the trim ([`Service::trim_local`](crate::Service::trim_local)) drops
    /// the least recently read months that are safe in the object store beyond it.
    #[must_use]
    pub fn with_local_max(mut self, bytes: Option<u64>) -> Self {
        self.local_max_bytes = bytes;
        self
    }

    /// `[store] local_max_mb` in bytes, if the local store is bounded.
    pub fn local_max_bytes(&self) -> Option<u64> {
        self.local_max_bytes
    }

    /// The per-month turn: one filler (or trimmer) of a month at a time.
    fn turn(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.filling
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(key.to_owned())
            .or_default()
            .clone()
    }

    /// The store's figures.
    pub fn stats(&self) -> ObjectStats {
        let c = &self.counters;
        ObjectStats {
            url: self.url.to_string(),
            months_read: c.read.load(Ordering::Relaxed),
            months_written: c.written.load(Ordering::Relaxed),
            months_existing: c.existing.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            months_dropped: c.dropped.load(Ordering::Relaxed),
            local_max_bytes: self.local_max_bytes,
        }
    }

    /// Whether `tf` is kept in the object store: 1s months would be 2.6M rows an object.
    pub(crate) fn keeps(tf: Timeframe) -> bool {
        tf != Timeframe::S1
    }

    /// Makes the closed months of `[start, end)` complete in `store`: a month the store
    /// lacks is read from the object store; a month the object store lacks too is fetched
    /// whole from `upstream` (if any) and published, so the next instance reads it from
    /// here. Months still open are left to the caller. An object store that fails is
    /// counted and skipped: the upstream answers instead.
    ///
    /// Returns what the upstream was asked for, and the closed months of the range held
    /// so that no trim drops them before the caller has read them.
    ///
    /// # Errors
    /// Store errors, and upstream errors when a month has to come from the upstream.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn fill<S: CandleStore + Sync>(
        &self,
        store: &S,
        exchange: &str,
        symbol: &Symbol,
        tf: Timeframe,
        (start, end): (i64, i64),
        upstream: Option<&Upstream>,
        now: &Now,
    ) -> Result<(FillReport, Held)> {
        let mut report = FillReport::default();
        let mut held = Held::default();
        if !Self::keeps(tf) {
            return Ok((report, held));
        }
        let closed = now() - CLOSE_GRACE_MS;
        let mut month = Timeframe::Mo1.floor(start);
        while month < end {
            let next = Timeframe::Mo1.next(month);
            if next > closed {
                break;
            }
            let key = month_path(exchange, symbol, tf, month).to_string();
            if self.local_max_bytes.is_some() {
                // Recency matters only to a trim.
                let tick = self.counters.tick.fetch_add(1, Ordering::Relaxed) + 1;
                self.used
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(key.clone(), tick);
            }
            // Months are taken in time order, so two readers never wait on each other.
            held.0.push(self.turn(&key).lock_owned().await);
            // Looked at after waiting: whoever went first may have filled it.
            if !store.missing(symbol, tf, month, next).await?.is_empty() {
                let meta = MarketMeta::new(symbol.clone(), exchange);
                match self.get_month(exchange, symbol, tf, month).await {
                    Some(candles) => {
                        store
                            .write_covered(&meta, tf, candles, (month, next))
                            .await?;
                        self.counters.read.fetch_add(1, Ordering::Relaxed);
                    }
                    None => {
                        if let Some(up) = upstream {
                            let r = up
                                .fill(store, symbol, tf, (month, next), now, &|_| {})
                                .await?;
                            report.pages += r.pages;
                            report.fetched += r.fetched;
                            report.inserted += r.inserted;
                            // Sharing is best effort: the candles are stored either way.
                            let _ = self.publish(store, exchange, symbol, tf, month).await;
                        }
                    }
                }
            }
            month = next;
        }
        Ok((report, held))
    }

    /// Drops months from `store` while it uses more than `[store] local_max_mb`: closed,
    /// complete months, least recently read first, each only once it is safe in the
    /// object store (there already, or published now). A month a read holds is skipped.
    /// Returns how many months were dropped.
    ///
    /// # Errors
    /// Store errors. An object store that fails ends the trim (nothing unsafe is dropped).
    pub(crate) async fn trim<S: CandleStore + Sync>(&self, store: &S, now: i64) -> Result<u64> {
        let Some(max) = self.local_max_bytes else {
            return Ok(0);
        };
        if store.used_bytes().await? <= max {
            return Ok(0);
        }
        let mut months = local_months(store, now).await?;
        {
            let used = self
                .used
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            months.sort_by_cached_key(|(e, s, tf, m)| {
                let last = used.get(month_path(e, s, *tf, *m).as_ref()).copied();
                (last.unwrap_or(0), *m)
            });
        }
        let mut dropped = 0;
        for (exchange, symbol, tf, month) in months {
            if store.used_bytes().await? <= max {
                break;
            }
            let path = month_path(&exchange, &symbol, tf, month);
            let turn = self.turn(path.as_ref());
            let Ok(_turn) = turn.try_lock_owned() else {
                continue;
            };
            let next = Timeframe::Mo1.next(month);
            if !store.missing(&symbol, tf, month, next).await?.is_empty() {
                continue;
            }
            let safe = match self.store.head(&path).await {
                Ok(_) => true,
                Err(object_store::Error::NotFound { .. }) => self
                    .publish(store, &exchange, &symbol, tf, month)
                    .await
                    .is_ok_and(|p| p.is_some()),
                Err(e) => {
                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                    eprintln!("candlecache: object store {}: {path}: {e}", self.url);
                    false
                }
            };
            if !safe {
                break;
            }
            store.forget(&symbol, tf, month, next).await?;
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            dropped += 1;
        }
        Ok(dropped)
    }

    /// Where each series' months are in the object store, from a listing at most
    /// [`LISTING_TTL`] old; keyed by (exchange partition, symbol, timeframe) as
    /// [`Self::months_of`] asks.
    ///
    /// # Errors
    /// [`Error::Upstream`] when the object store cannot be listed.
    async fn listing(&self) -> Result<Arc<Listing>> {
        let mut last = self.listing.lock().await;
        if let Some((_, l)) = last.as_ref().filter(|(at, _)| at.elapsed() < LISTING_TTL) {
            return Ok(l.clone());
        }
        use futures_util::TryStreamExt;
        let mut out = Listing::new();
        let mut objects = self.store.list(None);
        while let Some(meta) = objects.try_next().await.map_err(|e| {
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
            store_error(e)
        })? {
            let mut parts = meta.location.parts();
            let mut level = |name: &str| {
                parts.next().and_then(|p| {
                    p.as_ref()
                        .strip_prefix(name)
                        .and_then(|v| v.strip_prefix('='))
                        .map(str::to_owned)
                })
            };
            let (Some(e), Some(s), Some(t), Some(y), Some(m)) = (
                level("exchange"),
                level("symbol"),
                level("timeframe"),
                level("year"),
                level("month"),
            ) else {
                continue;
            };
            if let (Ok(y), Ok(m)) = (y.parse(), m.parse()) {
                out.entry((e, s, t)).or_default().push((y, m));
            }
        }
        for months in out.values_mut() {
            months.sort_unstable();
            months.dedup();
        }
        let out = Arc::new(out);
        *last = Some((std::time::Instant::now(), out.clone()));
        Ok(out)
    }

    /// Says for each series of `markets` which of its months the object store holds (from
    /// a listing at most 30 s old). A store that cannot be listed leaves them unsaid.
    pub(crate) async fn annotate(&self, markets: &mut [crate::Market]) {
        for m in markets.iter_mut() {
            let Ok(symbol) = m.symbol.parse::<Symbol>() else {
                continue;
            };
            let symbol = symbol.with_kind(m.kind);
            match self.months_of(&m.exchange, &symbol, &m.timeframe).await {
                Ok(months) => m.object_store = Some(months),
                Err(e) => {
                    eprintln!("candlecache: object store {}: cannot list: {e}", self.url);
                    return;
                }
            }
        }
    }

    /// The months of a series in the object store (from a listing at most 30 s old).
    ///
    /// # Errors
    /// [`Error::Upstream`] when the object store cannot be listed.
    pub(crate) async fn months_of(
        &self,
        exchange: &str,
        symbol: &Symbol,
        tf: &str,
    ) -> Result<ObjectMonths> {
        let listing = self.listing().await?;
        let key = (
            exchange_key(exchange, symbol.kind()),
            symbol.to_string(),
            tf.to_owned(),
        );
        let months = listing.get(&key).map(Vec::as_slice).unwrap_or_default();
        let mut ranges: Vec<((u16, u8), (u16, u8))> = Vec::new();
        for &m in months {
            match ranges.last_mut() {
                Some((_, last)) if next_month(*last) == m => *last = m,
                _ => ranges.push((m, m)),
            }
        }
        let name = |(y, m): (u16, u8)| format!("{y:04}-{m:02}");
        Ok(ObjectMonths {
            months: months.len() as u64,
            ranges: ranges
                .into_iter()
                .map(|(a, b)| (name(a), name(b)))
                .collect(),
        })
    }

    /// Publishes the month opening at `month` of a series from `store`, if the store has
    /// it complete; `None` if it has not.
    ///
    /// # Errors
    /// Store errors, and [`Error::Upstream`] when the object store refuses the write.
    pub(crate) async fn publish<S: CandleStore + Sync>(
        &self,
        store: &S,
        exchange: &str,
        symbol: &Symbol,
        tf: Timeframe,
        month: i64,
    ) -> Result<Option<Published>> {
        let next = Timeframe::Mo1.next(month);
        if !store.missing(symbol, tf, month, next).await?.is_empty() {
            return Ok(None);
        }
        let candles = store.read(symbol, tf, month, next).await?;
        let body = encode(exchange, symbol, tf, month, &candles)?;
        let path = month_path(exchange, symbol, tf, month);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&path, PutPayload::from(body), opts)
            .await
        {
            Ok(_) => {
                self.counters.written.fetch_add(1, Ordering::Relaxed);
                Ok(Some(Published::Created))
            }
            Err(object_store::Error::AlreadyExists { .. }) => {
                self.counters.existing.fetch_add(1, Ordering::Relaxed);
                Ok(Some(Published::Existed))
            }
            Err(e) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                Err(store_error(e))
            }
        }
    }

    /// The candles of one month from the object store, checked; `None` when there is no
    /// object, it cannot be read, or it is not this series' month (counted as rejected).
    async fn get_month(
        &self,
        exchange: &str,
        symbol: &Symbol,
        tf: Timeframe,
        month: i64,
    ) -> Option<Vec<Candle>> {
        let path = month_path(exchange, symbol, tf, month);
        let got = match self.store.get_opts(&path, GetOptions::default()).await {
            Ok(g) => g.bytes().await,
            Err(e) => Err(e),
        };
        let bytes = match got {
            Ok(b) => b,
            Err(object_store::Error::NotFound { .. }) => return None,
            Err(e) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("candlecache: object store {}: {path}: {e}", self.url);
                return None;
            }
        };
        match decode(bytes, exchange, symbol, tf, month) {
            Ok(c) => Some(c),
            Err(why) => {
                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                eprintln!(
                    "candlecache: object store {}: {path} refused: {why}",
                    self.url
                );
                None
            }
        }
    }
}

fn next_month((y, m): (u16, u8)) -> (u16, u8) {
    if m == 12 {
        (y + 1, 1)
    } else {
        (y, m + 1)
    }
}

/// The closed months the local store has candles in, series by series: what `sync`
/// publishes and what a trim may drop. Months whose candles are not known complete are
/// listed too; callers check.
///
/// # Errors
/// Store errors.
pub(crate) async fn local_months<S: CandleStore + Sync>(
    store: &S,
    now: i64,
) -> Result<Vec<(String, Symbol, Timeframe, i64)>> {
    let closed = now - CLOSE_GRACE_MS;
    let mut months = Vec::new();
    for m in store.markets().await? {
        let (Ok(tf), Some(first), Some(last)) =
            (m.timeframe.parse::<Timeframe>(), m.first_time, m.last_time)
        else {
            continue;
        };
        let Ok(symbol) = m.symbol.parse::<Symbol>() else {
            continue;
        };
        if !Objects::keeps(tf) {
            continue;
        }
        let symbol = symbol.with_kind(m.kind);
        let mut month = Timeframe::Mo1.floor(first);
        while month <= last && Timeframe::Mo1.next(month) <= closed {
            months.push((m.exchange.clone(), symbol.clone(), tf, month));
            month = Timeframe::Mo1.next(month);
        }
    }
    Ok(months)
}

/// The partition name of the exchange and market: the exchange for spot, with `_usdm`
/// (and `_mark`) for the futures market's series, so the layout stays the design's five
/// levels and spot and futures of one name never share an object.
fn exchange_key(exchange: &str, kind: Kind) -> String {
    match kind {
        Kind::Spot => exchange.to_owned(),
        Kind::Futures => format!("{exchange}_usdm"),
        Kind::Mark => format!("{exchange}_usdm_mark"),
    }
}

/// The object of a month: `exchange=<e>/symbol=<S>/timeframe=<tf>/year=<YYYY>/month=<MM>/...`.
pub(crate) fn month_path(exchange: &str, symbol: &Symbol, tf: Timeframe, month: i64) -> ObjectPath {
    let t = crate::format_time(month);
    let (year, mon) = (&t[..4], &t[5..7]);
    ObjectPath::from(format!(
        "exchange={}/symbol={symbol}/timeframe={tf}/year={year}/month={mon}/{symbol}-{tf}-{year}-{mon}.parquet",
        exchange_key(exchange, symbol.kind())
    ))
}

const META_SERIES: &str = "candlecache.series";
const META_SCALES: &str = "candlecache.scales";

fn series_tag(exchange: &str, symbol: &Symbol, tf: Timeframe, month: i64) -> String {
    format!(
        "{}/{symbol}/{tf}/{month}",
        exchange_key(exchange, symbol.kind())
    )
}

fn encode(
    exchange: &str,
    symbol: &Symbol,
    tf: Timeframe,
    month: i64,
    candles: &[Candle],
) -> Result<Vec<u8>> {
    let err = |e: parquet::errors::ParquetError| Error::Encode {
        what: "parquet",
        message: e.to_string(),
    };
    let s = Scales::of(candles);
    let scales = format!(
        "{},{},{},{},{}",
        s.price, s.volume, s.quote_volume, s.taker_base, s.taker_quote
    );
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_key_value_metadata(Some(vec![
            KeyValue::new(
                META_SERIES.to_owned(),
                series_tag(exchange, symbol, tf, month),
            ),
            KeyValue::new(META_SCALES.to_owned(), scales),
        ]))
        .build();
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, parquet_schema(), Some(props)).map_err(err)?;
    w.write(&candles_batch(candles)?).map_err(err)?;
    w.close().map_err(err)?;
    Ok(out)
}

/// The month's candles from an object, or why it is not this series' month.
fn decode(
    bytes: bytes::Bytes,
    exchange: &str,
    symbol: &Symbol,
    tf: Timeframe,
    month: i64,
) -> std::result::Result<Vec<Candle>, String> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| e.to_string())?;
    let kv = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .cloned()
        .unwrap_or_default();
    let meta = |k: &str| kv.iter().find(|e| e.key == k).and_then(|e| e.value.clone());
    let want = series_tag(exchange, symbol, tf, month);
    if meta(META_SERIES).as_deref() != Some(want.as_str()) {
        return Err(format!("it is not {want}"));
    }
    let scales: Vec<u8> = meta(META_SCALES)
        .unwrap_or_default()
        .split(',')
        .filter_map(|v| v.parse().ok())
        .collect();
    let [price, volume, quote, taker_base, taker_quote] = scales[..] else {
        return Err("its decimal places are missing".into());
    };
    let shape = |s: &arrow_schema::Schema| -> Vec<(String, arrow_schema::DataType)> {
        s.fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect()
    };
    if shape(builder.schema()) != shape(&parquet_schema()) {
        return Err(format!(
            "its columns are not candlecache's: {:?}",
            shape(builder.schema())
        ));
    }
    let reader = builder.build().map_err(|e| e.to_string())?;
    let next = Timeframe::Mo1.next(month);
    let mut out: Vec<Candle> = Vec::new();
    for batch in reader {
        let batch: RecordBatch = batch.map_err(|e| e.to_string())?;
        let time = column::<TimestampMillisecondArray>(&batch, 0)?;
        let f = |i| column::<Float64Array>(&batch, i);
        let (o, h, l, c, v, q) = (f(1)?, f(2)?, f(3)?, f(4)?, f(5)?, f(6)?);
        let trades = column::<UInt64Array>(&batch, 7)?;
        let (tb, tq) = (f(8)?, f(9)?);
        let at = |a: &Float64Array, r: usize, scale: u8| -> std::result::Result<Decimal, String> {
            Decimal::from_f64(a.value(r), scale).ok_or_else(|| format!("row {r}: not a number"))
        };
        let opt = |a: &Float64Array, r: usize, scale: u8| {
            (!a.is_null(r)).then(|| at(a, r, scale)).transpose()
        };
        for r in 0..batch.num_rows() {
            let candle = Candle {
                open_time: time.value(r),
                open: at(o, r, price)?,
                high: at(h, r, price)?,
                low: at(l, r, price)?,
                close: at(c, r, price)?,
                volume: at(v, r, volume)?,
                quote_volume: opt(q, r, quote)?,
                trades: (!trades.is_null(r)).then(|| trades.value(r)),
                taker_base: opt(tb, r, taker_base)?,
                taker_quote: opt(tq, r, taker_quote)?,
            };
            if candle.open_time < month || candle.open_time >= next {
                return Err(format!("row {r} is outside the month"));
            }
            if out.last().is_some_and(|p| p.open_time >= candle.open_time) {
                return Err(format!("row {r} is out of order"));
            }
            candle
                .validate(tf)
                .map_err(|why| format!("row {r}: {why}"))?;
            out.push(candle);
        }
    }
    Ok(out)
}

fn column<T: 'static>(batch: &RecordBatch, i: usize) -> std::result::Result<&T, String> {
    batch
        .column(i)
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| format!("column {i} has another type"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candle(t: i64, o: &str, v: &str) -> Candle {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        Candle {
            open_time: t,
            open: d(o),
            high: d(o),
            low: d(o),
            close: d(o),
            volume: d(v),
            quote_volume: Some(d(v)),
            trades: Some(7),
            taker_base: None,
            taker_quote: Some(d("0.10000000")),
        }
    }

    #[test]
    fn a_month_round_trips_exactly_and_a_foreign_one_is_refused() {
        let sym: Symbol = "BTCUSDT".parse().unwrap();
        let month = crate::parse_time("2024-02-01").unwrap();
        let candles = vec![
            candle(month, "42000.01", "12.34567"),
            candle(month + 3_600_000, "0.00000123", "987654321.12345"),
        ];
        let bytes = encode("binance", &sym, Timeframe::H1, month, &candles).unwrap();
        let back = decode(bytes.clone().into(), "binance", &sym, Timeframe::H1, month).unwrap();
        assert_eq!(back, candles);
        // Another series, another month, the futures market or damage: refused.
        let eth: Symbol = "ETHUSDT".parse().unwrap();
        let fut = sym.clone().with_kind(Kind::Futures);
        assert!(decode(bytes.clone().into(), "binance", &eth, Timeframe::H1, month).is_err());
        assert!(decode(bytes.clone().into(), "binance", &sym, Timeframe::M1, month).is_err());
        assert!(decode(bytes.clone().into(), "binance", &fut, Timeframe::H1, month).is_err());
        let mut cut = bytes.clone();
        cut.truncate(bytes.len() / 2);
        assert!(decode(cut.into(), "binance", &sym, Timeframe::H1, month).is_err());
        assert_eq!(
            month_path("binance", &fut, Timeframe::H1, month).as_ref(),
            "exchange=binance_usdm/symbol=BTCUSDT/timeframe=1h/year=2024/month=02/BTCUSDT-1h-2024-02.parquet"
        );
    }
}
