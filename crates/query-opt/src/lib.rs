//! candlecache's SQL side: versioned schemas, timing of every query, the slow-query log, query
//! plans, recommendations and optimization.
//!
//! # Overview
//! - [`Db`] opens the database through a `conn_pool::SqlitePool`, brings the caller's
//!   [`Schema`] to its version (kept in `PRAGMA user_version`) and runs work on a
//!   pooled connection as a [`Session`]. Every statement a session runs goes through
//!   [`Session::time`], which feeds the [`QueryLog`]: statistics per normalized pattern and
//!   a log of the last slow queries.
//! - [`analyze`] runs `EXPLAIN QUERY PLAN` and flags full scans and temporary b-trees;
//!   [`Db::recommendations`] turns plans and statistics into advice; [`Db::optimize`] runs
//!   `PRAGMA optimize`, `ANALYZE` and a WAL checkpoint and reports what it did.
//! - [`Db::cached`] keeps query results in a `cache-core` namespace, with its TTL.
//!
//! # Example
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), query_opt::Error> {
//! let dir = tempfile::tempdir().unwrap();
//! const SCHEMA: query_opt::Schema =
//!     query_opt::Schema::new(&["CREATE TABLE candles (open_time INTEGER PRIMARY KEY)"]);
//! let config = query_opt::DbConfig::new(dir.path().join("c.db"));
//! let db = query_opt::Db::open(config, &SCHEMA, None).await?;
//! let n: i64 = db
//!     .run(|s| s.time("SELECT count(*) FROM candles", 1, |c| {
//!         c.query_row("SELECT count(*) FROM candles", [], |r| r.get(0))
//!     }))
//!     .await?;
//! assert_eq!(n, 0);
//! assert_eq!(db.log().patterns()[0].count, 1);
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod db;
mod error;
mod log;
mod migrate;
mod plan;

pub use db::{Db, DbConfig, OptimizeReport, Recommendation, Session};
pub use error::{Error, Result};
pub use log::{normalize, PatternStats, QueryLog, SlowQuery};
pub use migrate::Schema;
pub use plan::{analyze, Plan};
