//! The SQL side of candlecache: schema, query timing and optimization.
//!
//! This crate will own the versioned schema (candles `WITHOUT ROWID` keyed by symbol,
//! timeframe and open time; symbols; coverage), `EXPLAIN QUERY PLAN` analysis that flags
//! full scans and temporary b-trees, timing of every query with statistics per normalized
//! pattern, the slow-query log, recommendations, `optimize()` (PRAGMA optimize, ANALYZE,
//! WAL checkpoint) and query results cached in a `cache-core` namespace.
//!
//! It may depend on `cache-core` and `conn-pool`.
