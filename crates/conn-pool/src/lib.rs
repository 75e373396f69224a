//! Pooled connections for candlecache: SQLite and HTTP.
//!
//! This crate will own the SQLite connection pool (deadpool-sqlite over rusqlite, with the
//! pragmas applied at connection creation, a health check on recycle, idle cleanup and
//! pool statistics) and the pooled HTTP client used to reach the upstream exchange
//! (hyper-util with rustls, keep-alive, timeouts, retries with exponential backoff and
//! jitter, Retry-After and the exchange's used-weight budget, per-host statistics).
//!
//! No other crate names deadpool or the HTTP client's types in a public signature.
//! It may depend on `cache-core` only.
