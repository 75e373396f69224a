//! The candle store: a trait, and its SQLite implementation.

pub(crate) mod schema;
mod session;
mod sql;
pub(crate) mod sqlite;

use arrow_array::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::{Candle, Decimal, Exchange, Funding, Kind, Result, Symbol, Timeframe};

/// Decimal places a symbol stores for each column: the exchange's precision. Set by the
/// first write and raised (rescaling stored rows) when a later value needs more.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scales {
    /// Open, high, low and close.
    pub price: u8,
    /// Volume.
    pub volume: u8,
    /// Quote volume.
    pub quote_volume: u8,
    /// Taker buy base volume.
    pub taker_base: u8,
    /// Taker buy quote volume.
    pub taker_quote: u8,
    /// Volume in the other currency (OKX's `volCcy`).
    #[serde(default)]
    pub volume_ccy: u8,
}

impl Scales {
    /// The most places any candle of `candles` uses, per column.
    pub fn of(candles: &[Candle]) -> Scales {
        let mut s = Scales::default();
        let max = |slot: &mut u8, d: Option<Decimal>| {
            if let Some(d) = d {
                *slot = (*slot).max(d.scale());
            }
        };
        for c in candles {
            for p in [c.open, c.high, c.low, c.close] {
                max(&mut s.price, Some(p));
            }
            max(&mut s.volume, Some(c.volume));
            max(&mut s.quote_volume, c.quote_volume);
            max(&mut s.taker_base, c.taker_base);
            max(&mut s.taker_quote, c.taker_quote);
            max(&mut s.volume_ccy, c.volume_ccy);
        }
        s
    }

    pub(crate) fn max(self, o: Scales) -> Scales {
        Scales {
            price: self.price.max(o.price),
            volume: self.volume.max(o.volume),
            quote_volume: self.quote_volume.max(o.quote_volume),
            taker_base: self.taker_base.max(o.taker_base),
            taker_quote: self.taker_quote.max(o.taker_quote),
            volume_ccy: self.volume_ccy.max(o.volume_ccy),
        }
    }

    /// The scale of each stored value column, in [`StoredRow`] order (trades: 0).
    pub(crate) fn columns(self) -> [u8; 10] {
        let p = self.price;
        [
            p,
            p,
            p,
            p,
            self.volume,
            self.quote_volume,
            0,
            self.taker_base,
            self.taker_quote,
            self.volume_ccy,
        ]
    }
}

/// The value columns of the candle table, in [`StoredRow`] order.
pub(crate) const VALUE_COLUMNS: [&str; 10] = [
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "trades",
    "taker_base",
    "taker_quote",
    "volume_ccy",
];

/// Market metadata kept with a symbol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketMeta {
    /// The symbol (its exchange and kind included).
    pub symbol: Symbol,
    /// Base asset, when known.
    pub base: Option<String>,
    /// Quote asset, when known.
    pub quote: Option<String>,
}

impl MarketMeta {
    /// Metadata for `symbol`, with base and quote split off when the quote asset is a
    /// well-known one.
    pub fn new(symbol: Symbol) -> Self {
        let (base, quote) = symbol.split().map_or((None, None), |(b, q)| {
            (Some(b.to_owned()), Some(q.to_owned()))
        });
        Self {
            symbol,
            base,
            quote,
        }
    }
}

/// One stored series: a symbol and timeframe with its range and count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Market {
    /// The symbol.
    pub symbol: String,
    /// The exchange.
    pub exchange: Exchange,
    /// Base asset, when known.
    pub base: Option<String>,
    /// Quote asset, when known.
    pub quote: Option<String>,
    /// The timeframe.
    pub timeframe: String,
    /// Open time of the first candle, epoch ms.
    pub first_time: Option<i64>,
    /// Open time of the last candle, epoch ms.
    pub last_time: Option<i64>,
    /// Candles stored.
    pub count: u64,
    /// Decimal places of prices (the exchange's price precision).
    pub price_precision: u8,
    /// Spot, futures or mark price.
    pub kind: Kind,
    /// The series' months in the shared object store; `None` without one (the fields above
    /// describe the local store). Always serialized: the cache's codec is not
    /// self-describing, so a skipped field would not read back.
    pub object_store: Option<ObjectMonths>,
}

impl Market {
    /// The series' symbol, with its exchange and kind; `None` for a name that is not one.
    pub fn series(&self) -> Option<Symbol> {
        let symbol: Symbol = self.symbol.parse().ok()?;
        Some(symbol.with_kind(self.kind).with_exchange(self.exchange))
    }
}

/// What one write did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WriteReport {
    /// Candles that were not stored before.
    pub inserted: u64,
    /// Stored candles whose values changed.
    pub updated: u64,
    /// Candles already stored exactly so.
    pub unchanged: u64,
}

/// Where candles live. SQLite is the first backend; others can come behind this trait.
/// The futures are `Send` so callers can run them on any runtime thread.
pub trait CandleStore {
    /// Writes candles idempotently in one transaction: a candle stored twice changes
    /// nothing, a changed one is updated. A new symbol is created with `meta`.
    fn write(
        &self,
        meta: &MarketMeta,
        tf: Timeframe,
        candles: Vec<Candle>,
    ) -> impl std::future::Future<Output = Result<WriteReport>> + Send;
    /// Returns the exact candles with `start <= open_time < end`, in time order.
    fn read(
        &self,
        symbol: &Symbol,
        tf: Timeframe,
        start: i64,
        end: i64,
    ) -> impl std::future::Future<Output = Result<Vec<Candle>>> + Send;
    /// Returns the same range as an Arrow batch of [`candle_schema`](crate::candle_schema).
    fn read_batch(
        &self,
        symbol: &Symbol,
        tf: Timeframe,
        start: i64,
        end: i64,
    ) -> impl std::future::Future<Output = Result<RecordBatch>> + Send;
    /// Lists every stored series.
    fn markets(&self) -> impl std::future::Future<Output = Result<Vec<Market>>> + Send;
    /// As [`CandleStore::write`], and records in the same transaction that `covered`
    /// (`[start, end)`) is complete: every candle the exchange has there is stored. A
    /// crash leaves both or neither.
    fn write_covered(
        &self,
        meta: &MarketMeta,
        tf: Timeframe,
        candles: Vec<Candle>,
        covered: (i64, i64),
    ) -> impl std::future::Future<Output = Result<WriteReport>> + Send;
    /// The parts of `[start, end)` not recorded as complete, in time order.
    fn missing(
        &self,
        symbol: &Symbol,
        tf: Timeframe,
        start: i64,
        end: i64,
    ) -> impl std::future::Future<Output = Result<Vec<(i64, i64)>>> + Send;
    /// The open time of the first stored candle at or after `from`.
    fn next_open(
        &self,
        symbol: &Symbol,
        tf: Timeframe,
        from: i64,
    ) -> impl std::future::Future<Output = Result<Option<i64>>> + Send;
    /// Returns the open time of the last stored candle opening before `before`.
    fn prev_open(
        &self,
        symbol: &Symbol,
        tf: Timeframe,
        before: i64,
    ) -> impl std::future::Future<Output = Result<Option<i64>>> + Send;
    /// Stores funding events of a futures symbol idempotently and records, in the same
    /// transaction, that `covered` (`[start, end)`) holds every event the exchange has;
    /// returns how many were new.
    fn write_funding(
        &self,
        meta: &MarketMeta,
        rows: Vec<Funding>,
        covered: (i64, i64),
    ) -> impl std::future::Future<Output = Result<u64>> + Send;
    /// The stored funding events with `start <= time < end`, in time order.
    fn read_funding(
        &self,
        symbol: &Symbol,
        start: i64,
        end: i64,
    ) -> impl std::future::Future<Output = Result<Vec<Funding>>> + Send;
    /// The parts of `[start, end)` whose funding events are not known complete.
    fn missing_funding(
        &self,
        symbol: &Symbol,
        start: i64,
        end: i64,
    ) -> impl std::future::Future<Output = Result<Vec<(i64, i64)>>> + Send;
    /// As [`CandleStore::write`] for every batch `batches` yields, in one transaction: all
    /// are stored when the channel closes, none when it yields an error (which is
    /// returned). Batches are written as they arrive, so the caller's reading overlaps.
    fn write_all(
        &self,
        meta: &MarketMeta,
        tf: Timeframe,
        batches: tokio::sync::mpsc::Receiver<Result<Vec<Candle>>>,
    ) -> impl std::future::Future<Output = Result<WriteReport>> + Send;
    /// The bytes the stored data occupies (the space a delete frees counts as free).
    fn used_bytes(&self) -> impl std::future::Future<Output = Result<u64>> + Send;
    /// Whether background work (a prefetch) may take a connection now without leaving a
    /// request to wait for one: it never takes the last free connection.
    fn has_spare_connection(&self) -> bool {
        true
    }

    /// Drops the candles of `[start, end)` and the record that the range is complete, in
    /// one transaction, for a range kept safe elsewhere (a later read fetches it back);
    /// returns how many candles were dropped.
    fn forget(
        &self,
        symbol: &Symbol,
        tf: Timeframe,
        start: i64,
        end: i64,
    ) -> impl std::future::Future<Output = Result<u64>> + Send;
}

/// Where a series' months are in the object store, for the markets list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMonths {
    /// Month objects of the series.
    pub months: u64,
    /// Runs of consecutive months, first and last as `YYYY-MM`.
    pub ranges: Vec<(String, String)>,
}
