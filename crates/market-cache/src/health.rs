//! What the store's database and the upstream client report, for the HTTP API and the
//! metrics: the layers below market-cache are reached through here only.

use serde::Serialize;

pub use conn_pool::{HostStats, PoolStats};
pub use query_opt::{OptimizeReport, PatternStats, Recommendation, SlowQuery};

use crate::{Result, SqliteStore};

/// The database's figures: its connection pool, its query patterns and its slow queries.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseStats {
    /// The SQLite connection pool.
    pub pool: PoolStats,
    /// Every query pattern run, with counts and timings.
    pub patterns: Vec<PatternStats>,
    /// The slowest recent calls.
    pub slow: Vec<SlowQuery>,
}

/// What `optimize` did and what the database advises.
#[derive(Debug, Clone, Serialize)]
pub struct Optimized {
    /// `ANALYZE`, `PRAGMA optimize` and the WAL checkpoint.
    pub optimize: OptimizeReport,
    /// Advice from the query log and the file.
    pub recommendations: Vec<Recommendation>,
}

impl SqliteStore {
    /// The database's figures now.
    pub fn database_stats(&self) -> DatabaseStats {
        let db = self.db();
        DatabaseStats {
            pool: db.pool().stats(),
            patterns: db.log().patterns(),
            slow: db.log().slow(),
        }
    }

    /// Refreshes the planner's statistics, checkpoints the WAL and says what it advises.
    ///
    /// # Errors
    /// Database errors.
    pub async fn optimize(&self) -> Result<Optimized> {
        let db = self.db();
        Ok(Optimized {
            optimize: db.optimize().await?,
            recommendations: db.recommendations().await?,
        })
    }
}
