//! The market domain of candlecache.
//!
//! This crate will own symbols and timeframes with their exchange alignment (Monday weeks,
//! calendar months, epoch-aligned 3d), candles as Arrow record batches, the store behind a
//! trait (SQLite first), the chunked read path over `cache-core`, resampling, gap
//! reporting and filling, import and export (Binance CSV, freqtrade JSON, generic CSV,
//! Parquet) and backfill from a Binance-compatible upstream with coverage tracking.
//!
//! It may depend on `cache-core`, `conn-pool` and `query-opt`; never on an HTTP server.
