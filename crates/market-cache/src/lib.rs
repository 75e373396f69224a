//! The market domain of candlecache: symbols, timeframes and their exchange alignment,
//! exact decimal candles, the store, import and export.
//!
//! # Overview
//! - [`Symbol`], [`Timeframe`] (16 exchange intervals; Monday weeks, calendar months,
//!   epoch-aligned 3d), [`parse_time`], [`Decimal`] and [`Candle`].
//! - [`CandleStore`], implemented by [`SqliteStore`] on `query-opt`: idempotent batched
//!   writes, exact reads ([`CandleStore::read`]) and Arrow reads
//!   ([`CandleStore::read_batch`], schema [`candle_schema`]), the [`Market`] list.
//! - [`import`]: Binance kline CSV (with or without header, ms or µs), freqtrade JSON,
//!   generic CSV with a header, Parquet, and zip archives of those; rows are validated
//!   and rejects reported with their line.
//! - [`export`]: CSV, Binance kline CSV, one Parquet file, or a hive-partitioned dataset.
//!
//! - [`resample`] to coarser timeframes (Monday weeks, calendar months), [`gaps`] and
//!   [`fill_previous`].
//!
//! - [`read`]: the chunked read path over `cache-core`; [`upstream`]: backfill from a
//!   Binance-compatible exchange with coverage, and the Binance klines row format;
//!   [`stream`]: the live edge from the exchange's WebSocket kline streams.
//!
//! # Example
//! ```
//! use market_cache::{parse_time, Timeframe};
//! let t = parse_time("2024-01-03T12:00:00Z")?;
//! assert_eq!(Timeframe::W1.floor(t), parse_time("2024-01-01")?); // a Monday
//! # Ok::<(), market_cache::Error>(())
//! ```

mod candle;
mod decimal;
mod error;
pub mod export;
mod funding;
pub mod health;
pub mod import;
pub mod objects;
pub mod read;
mod resample;
mod sqlite_store;
mod store;
pub mod stream;
mod symbol;
mod time;
mod timeframe;
pub mod upstream;
mod wire;

pub use candle::Candle;
pub use decimal::{Decimal, MAX_SCALE};
pub use error::{Error, Result};
pub use funding::{funding_json, parse_funding, Funding};
pub use resample::{fill_previous, gaps, resample, resample_batch};
pub use sqlite_store::SqliteStore;
pub use store::{candle_schema, CandleStore, Market, MarketMeta, Scales, WriteReport};
pub use symbol::{Kind, Symbol};
pub use time::{epoch_to_ms, format_time, parse_time};
pub use timeframe::Timeframe;
pub use wire::arrow_ipc;
