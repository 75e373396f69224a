//! The market domain of candlecache: symbols, timeframes and their exchange alignment,
//! exact decimal candles, the store, import and export.
//!
//! # Overview
//! - [`Symbol`], [`Timeframe`] (16 exchange intervals; Monday weeks, calendar months,
//!   epoch-aligned 3d), [`parse_time`], [`Decimal`] and [`Candle`].
//! - [`Service`]: the front door. Built once ([`Service::builder`]) from a cache, the
//!   database's configuration, an optional [`Upstream`], [`Objects`] and a clock; reads
//!   ([`Service::get`] with a [`Request`], giving an [`Answer`]), imports, exports,
//!   backfills, publishing, and the figures of the layers below.
//! - [`CandleStore`], implemented by [`SqliteStore`] on `query-opt`: idempotent batched
//!   writes, exact reads ([`CandleStore::read`]) and Arrow reads
//!   ([`CandleStore::read_batch`], schema [`candle_schema`]), the [`Market`] list.
//! - Import: Binance kline CSV (with or without header, ms or µs), freqtrade JSON,
//!   generic CSV with a header, Parquet, and zip archives of those; rows are validated
//!   and rejects reported with their line.
//! - Export: CSV, Binance kline CSV, one Parquet file, or a hive-partitioned dataset.
//!
//! - [`resample`] to coarser timeframes (Monday weeks, calendar months), [`gaps`] and
//!   [`fill_previous`].
//!
//! - Behind the service: the chunked read path over `cache-core`, backfill from a
//!   Binance-compatible exchange with coverage, the live edge from the exchange's
//!   WebSocket kline streams, and the shared object store of closed months.
//!
//! # Example
//! ```
//! use market_cache::{parse_time, Timeframe};
//! let t = parse_time("2024-01-03T12:00:00Z")?;
//! assert_eq!(Timeframe::W1.floor(t), parse_time("2024-01-01")?); // a Monday
//! # Ok::<(), market_cache::Error>(())
//! ```

#![forbid(unsafe_code)]

mod codec;
mod error;
mod exchange;
mod export;
mod health;
mod import;
mod live;
mod model;
mod objects;
mod read;
mod service;
mod settings;
mod store;
mod upstream;

/// Binance's interval names.
pub mod binance {
    pub use crate::exchange::binance::timeframe;
}

/// OKX's names of things, for its served facade.
pub mod okx {
    pub use crate::exchange::okx::{bar, timeframe};
}

/// Bybit's names of things, for its served facade.
pub mod bybit {
    pub use crate::exchange::bybit::{interval, timeframe};
}

pub use codec::encoded::{RowFormat, Rows};
pub use codec::schema::candle_schema;
pub use codec::wire::arrow_ipc;
pub use error::{Error, Result};
pub use exchange::binance::rest::{parse_funding, parse_klines, PAGE};
pub use exchange::binance::rows::{funding_json, KlineRows};
pub use export::{ExportFormat, ExportReport, ExportTo};
pub use health::{
    DatabaseStats, HostStats, OptimizeReport, Optimized, PatternStats, PoolStats, Recommendation,
    SlowQuery,
};
pub use import::{ImportOptions, ImportReport, OnInvalid, Progress as ImportProgress, Reject};
pub use live::edge::{funding_settled, RESPONSE_TTL};
pub use live::streams::config::StreamConfig;
pub use live::streams::{StreamStats, Watch};
pub use model::candle::Candle;
pub use model::decimal::{Decimal, MAX_SCALE};
pub use model::funding::Funding;
pub use model::symbol::{Exchange, Kind, Symbol};
pub use model::time::{epoch_to_ms, format_time, parse_time, wall_ms, Now};
pub use model::timeframe::{parse_offset, Timeframe};
pub use objects::{ObjectConfig, ObjectStats, Objects};
pub use read::resample::{fill_previous, gaps, resample, resample_batch};
pub use read::{Answer, Fill, LiveConfig, ReadStats, Request, Source, DEFAULT_LIMIT, MAX_LIMIT};
pub use service::{Service, ServiceBuilder, SyncReport, UpstreamStats};
pub use settings::{ClientSettings, DbSettings, PoolSettings};
pub use store::sqlite::SqliteStore;
pub use store::{CandleStore, Market, MarketMeta, ObjectMonths, Scales, WriteReport};
pub use upstream::{FillProgress, FillReport, Upstream};
