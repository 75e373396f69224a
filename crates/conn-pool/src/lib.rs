//! Pooled connections for candlecache.
//!
//! Today: the SQLite pool. [`SqlitePool`] hands out rusqlite connections from a
//! deadpool-sqlite pool (20 by default). Every connection gets the busy timeout and runs the
//! caller's setup ([`SqlitePool::open_with`]: query-opt sets the database's pragmas there)
//! when it is created, is health-checked when it is recycled, and is closed
//! after sitting idle too long ([`SqlitePool::close_idle`], or the task started by
//! [`SqlitePool::start_idle_cleanup`]). [`SqlitePool::stats`] reports size, use, waiters
//! and the wait-time percentiles.
//!
//! [`HttpClient`] fetches from the upstream exchange: a hyper-util pool of keep-alive
//! connections (50 idle per host) over rustls with bundled web PKI roots, connect and
//! request timeouts, retries with exponential backoff and jitter on connect errors, 5xx and
//! truncated bodies, 429/418 waited out per Retry-After without spending a retry, an
//! overall deadline, a budget fed by the `X-MBX-USED-WEIGHT-1M` header that keeps the
//! request weight under the exchange's limit, and per-host [`HostStats`].
//!
//! # Example
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir().unwrap();
//! let config = conn_pool::SqliteConfig::new(dir.path().join("c.db"));
//! let init = std::sync::Arc::new(|c: &rusqlite::Connection| c.execute_batch("PRAGMA journal_mode=WAL"));
//! let pool = conn_pool::SqlitePool::open_with(config, init)?;
//! let mode: String = pool
//!     .with(|c| c.query_row("PRAGMA journal_mode", [], |r| r.get(0)))
//!     .await??;
//! assert_eq!(mode, "wal");
//! assert_eq!(pool.stats().size, 1);
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod config;
mod error;
mod http;
mod samples;
mod sqlite;

pub use config::{HttpConfig, SqliteConfig};
pub use error::{Error, Result};
pub use http::{HostStats, HttpClient, HttpResponse};
pub use sqlite::{ConnectionInit, IdleCleanup, PoolStats, SqlitePool};
