//! Pooled connections for candlecache.
//!
//! Today: the SQLite pool. [`SqlitePool`] hands out rusqlite connections from a
//! deadpool-sqlite pool (20 by default). Every connection gets candlecache's pragmas when
//! it is created (WAL, `synchronous=NORMAL`, a 10,000-page cache, in-memory temp store,
//! 256 MiB of mmap, a busy timeout), is health-checked when it is recycled, and is closed
//! after sitting idle too long ([`SqlitePool::close_idle`], or the task started by
//! [`SqlitePool::start_idle_cleanup`]). [`SqlitePool::stats`] reports size, use, waiters
//! and the wait-time percentiles.
//!
//! Later: the pooled HTTP client for the upstream exchange.
//!
//! # Example
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir().unwrap();
//! let pool = conn_pool::SqlitePool::open(conn_pool::SqliteConfig::new(dir.path().join("c.db")))?;
//! let mode: String = pool
//!     .with(|c| c.query_row("PRAGMA journal_mode", [], |r| r.get(0)))
//!     .await??;
//! assert_eq!(mode, "wal");
//! assert_eq!(pool.stats().size, 1);
//! # Ok(()) }
//! ```

mod config;
mod error;
mod sqlite;

pub use config::SqliteConfig;
pub use error::{Error, Result};
pub use rusqlite;
pub use sqlite::{IdleCleanup, PoolStats, SqlitePool};
