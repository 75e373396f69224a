//! The database handle: pool + schema + timed sessions + optimization.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_core::{NamespaceCache, Reclaim, Scope};
use conn_pool::{SqliteConfig, SqlitePool};
use rusqlite::{self, Connection};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::log::QueryLog;
use crate::plan::{analyze, Plan};
use crate::{Error, Result, Schema};

/// Configuration of a [`Db`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DbConfig {
    /// The connection pool.
    pub pool: SqliteConfig,
    /// `PRAGMA cache_size` of every connection, in pages.
    pub cache_size_pages: i64,
    /// `PRAGMA mmap_size` of every connection, in bytes.
    pub mmap_size_bytes: u64,
    /// The most bytes the database file may grow to (`PRAGMA max_page_count`); 0 for no
    /// limit. A write past it fails as a full disk would ([`Error::Full`]) and changes
    /// nothing.
    pub max_db_bytes: u64,
    /// Calls slower than this go to the slow-query log, in ms.
    pub slow_query_ms: u64,
    /// How many slow calls the log keeps.
    pub slow_query_keep: usize,
}

impl Default for DbConfig {
    fn default() -> Self {
        Self {
            pool: SqliteConfig::default(),
            cache_size_pages: 10_000,
            mmap_size_bytes: 268_435_456,
            max_db_bytes: 0,
            slow_query_ms: 1_000,
            slow_query_keep: 100,
        }
    }
}

impl DbConfig {
    /// The defaults, for the database at `path`.
    pub fn new(path: impl Into<std::path::PathBuf>) -> Self {
        Self {
            pool: SqliteConfig::new(path),
            ..Self::default()
        }
    }
}

/// The settings every connection gets: WAL with `synchronous=NORMAL` (a commit is durable
/// at the next checkpoint, never torn), the page cache and memory map of the
/// configuration, temporary tables in memory, and the file's size limit.
fn connection_init(config: &DbConfig) -> conn_pool::ConnectionInit {
    let pragmas = format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size={}; \
         PRAGMA temp_store=MEMORY; PRAGMA mmap_size={}; PRAGMA foreign_keys=ON;",
        config.cache_size_pages, config.mmap_size_bytes
    );
    let max_db_bytes = config.max_db_bytes;
    Arc::new(move |c| {
        c.execute_batch(&pragmas)?;
        if max_db_bytes > 0 {
            let page: u64 = c.query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))? as u64;
            // SQLite keeps the limit at least at the current size.
            let pages = max_db_bytes.div_ceil(page.max(512));
            c.execute_batch(&format!("PRAGMA max_page_count={pages}"))?;
        }
        Ok(())
    })
}

/// The database: a connection pool on a file with the current schema, and the log that
/// times every query run through it. Cloning is cheap and shares it.
#[derive(Clone, Debug)]
pub struct Db {
    pool: SqlitePool,
    log: Arc<QueryLog>,
    results: Option<NamespaceCache>,
}

/// A pooled connection lent to [`Db::run`]; statements go through [`Session::time`].
pub struct Session<'a> {
    conn: &'a mut Connection,
    log: &'a QueryLog,
}

/// A piece of advice derived from plans and statistics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    /// `info` or `warning`.
    pub severity: &'static str,
    /// The query pattern it is about, if any.
    pub pattern: Option<String>,
    /// What to do and why, in plain words.
    pub message: String,
}

/// What [`Db::optimize`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OptimizeReport {
    /// The statements it ran, in order.
    pub ran: Vec<String>,
    /// Time spent in `ANALYZE`, in ms.
    pub analyze_ms: f64,
    /// Whether the checkpoint could not finish because of readers.
    pub checkpoint_busy: bool,
    /// Frames in the WAL before the checkpoint.
    pub wal_frames: i64,
    /// Frames copied into the database.
    pub checkpointed_frames: i64,
    /// Database pages afterwards.
    pub page_count: i64,
    /// Unused pages afterwards (`VACUUM` would give them back).
    pub freelist_pages: i64,
    /// Total time, in ms.
    pub duration_ms: f64,
}

impl Db {
    /// Opens (or creates) the database and brings it to `schema`'s version. `results`, if
    /// given, is the cache namespace for [`Db::cached`].
    ///
    /// # Errors
    /// [`Error::Pool`] if the file cannot be opened, [`Error::SchemaTooNew`] or
    /// [`Error::Unusable`] if it is not a database this build can use.
    pub async fn open(
        config: DbConfig,
        schema: &'static Schema,
        results: Option<NamespaceCache>,
    ) -> Result<Self> {
        let pool = SqlitePool::open_with(config.pool.clone(), connection_init(&config))?;
        pool.with(|c| schema.migrate(c)).await??;
        Ok(Self {
            pool,
            log: Arc::new(QueryLog::new(
                Duration::from_millis(config.slow_query_ms),
                config.slow_query_keep,
            )),
            results,
        })
    }

    /// Runs `f` with a session on a pooled connection.
    ///
    /// # Errors
    /// Whatever `f` returns, or [`Error::Pool`].
    pub async fn run<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&mut Session<'_>) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let log = self.log.clone();
        self.pool
            .with(move |conn| f(&mut Session { conn, log: &log }))
            .await?
    }

    /// Returns the query log.
    pub fn log(&self) -> &QueryLog {
        &self.log
    }

    /// Returns the connection pool (for its statistics).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Plans `sql` without running it.
    ///
    /// # Errors
    /// [`Error::Query`] if SQLite cannot plan it.
    pub async fn analyze(&self, sql: &str) -> Result<Plan> {
        let sql = sql.to_owned();
        self.pool.with(move |c| analyze(c, &sql)).await?
    }

    /// Returns advice from the plans of the patterns seen so far, their timings and the
    /// state of the file.
    ///
    /// # Errors
    /// [`Error::Pool`] or [`Error::Query`] if the database cannot be read.
    pub async fn recommendations(&self) -> Result<Vec<Recommendation>> {
        let patterns = self.log.patterns();
        let threshold_ms = self.log.slow_threshold().as_secs_f64() * 1000.0;
        self.pool
            .with(move |c| {
                let mut out = Vec::new();
                for p in &patterns {
                    let head = p.pattern.split_whitespace().next().unwrap_or_default();
                    if matches!(head, "SELECT" | "UPDATE" | "DELETE" | "WITH") {
                        // A pattern SQLite cannot plan on its own is simply not advised on.
                        if let Ok(plan) = analyze(c, &p.pattern) {
                            for table in &plan.full_scans {
                                out.push(Recommendation {
                                    severity: "warning",
                                    pattern: Some(p.pattern.clone()),
                                    message: format!("reads table `{table}` in full ({} runs); an index matching its WHERE clause would avoid that", p.count),
                                });
                            }
                            if plan.temp_btree {
                                out.push(Recommendation {
                                    severity: "info",
                                    pattern: Some(p.pattern.clone()),
                                    message: "sorts or groups in a temporary b-tree; an index in that order would avoid it".into(),
                                });
                            }
                        }
                    }
                    if p.max_ms >= threshold_ms {
                        out.push(Recommendation {
                            severity: "warning",
                            pattern: Some(p.pattern.clone()),
                            message: format!(
                                "slow: up to {:.1} ms a call, mean {:.3} ms over {} runs (threshold {threshold_ms:.0} ms)",
                                p.max_ms, p.mean_ms, p.count
                            ),
                        });
                    }
                }
                let q = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0));
                let analyzed = q("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")
                    .map_err(|source| Error::Query { sql: "sqlite_master".into(), source })?;
                // Planner statistics matter once there is data: a file past 1 MB of pages.
                let used = q("SELECT (page_count - freelist_count) * page_size FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size()")
                    .map_err(|source| Error::Query { sql: "pragma_page_count".into(), source })?;
                if analyzed == 0 && used > 1_000_000 {
                    out.push(Recommendation {
                        severity: "info",
                        pattern: None,
                        message: "ANALYZE has never run on this database; run optimize so the planner knows the data".into(),
                    });
                }
                let pages = q("PRAGMA page_count").unwrap_or(0);
                let free = q("PRAGMA freelist_count").unwrap_or(0);
                let page_size = q("PRAGMA page_size").unwrap_or(4096);
                if pages > 0 && free * 10 > pages {
                    out.push(Recommendation {
                        severity: "info",
                        pattern: None,
                        message: format!(
                            "{:.1} MB of the file is unused pages; VACUUM would give it back",
                            (free * page_size) as f64 / 1e6
                        ),
                    });
                }
                Ok(out)
            })
            .await?
    }

    /// Moves everything in the write-ahead log into the database file and truncates the
    /// log, so the file alone is complete (on shutdown, before a backup). Returns whether a
    /// reader kept part of it back, and the frames moved.
    ///
    /// # Errors
    /// [`Error::Pool`] or [`Error::Query`] if the database cannot be reached.
    pub async fn checkpoint(&self) -> Result<(bool, i64)> {
        self.run(|s| {
            s.time("PRAGMA wal_checkpoint(TRUNCATE)", 1, |c| {
                c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    Ok((r.get::<_, i64>(0)? != 0, r.get(2)?))
                })
            })
        })
        .await
    }

    /// Runs `PRAGMA optimize`, `ANALYZE` and a truncating WAL checkpoint, and reports.
    ///
    /// # Errors
    /// [`Error::Query`] if a step fails.
    pub async fn optimize(&self) -> Result<OptimizeReport> {
        self.run(|s| {
            let started = Instant::now();
            s.time("PRAGMA optimize", 1, |c| c.execute_batch("PRAGMA optimize"))?;
            let t = Instant::now();
            s.time("ANALYZE", 1, |c| c.execute_batch("ANALYZE"))?;
            let analyze_ms = t.elapsed().as_secs_f64() * 1000.0;
            let (busy, log, done): (i64, i64, i64) =
                s.time("PRAGMA wal_checkpoint(TRUNCATE)", 1, |c| {
                    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                })?;
            let page_count = s.time("PRAGMA page_count", 1, |c| {
                c.query_row("PRAGMA page_count", [], |r| r.get(0))
            })?;
            let freelist_pages = s.time("PRAGMA freelist_count", 1, |c| {
                c.query_row("PRAGMA freelist_count", [], |r| r.get(0))
            })?;
            Ok(OptimizeReport {
                ran: vec![
                    "PRAGMA optimize".into(),
                    "ANALYZE".into(),
                    "PRAGMA wal_checkpoint(TRUNCATE)".into(),
                ],
                analyze_ms,
                checkpoint_busy: busy != 0,
                wal_frames: log,
                checkpointed_frames: done,
                page_count,
                freelist_pages,
                duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            })
        })
        .await
    }

    /// Returns the cached result for `key`, or runs `load` once for all concurrent callers
    /// and caches what it returns (with the namespace's TTL). Without a results namespace
    /// it just runs `load`.
    ///
    /// # Errors
    /// Whatever `load` returns; [`Error::Cache`] if the value does not round-trip.
    pub async fn cached<T, F, Fut>(&self, key: &str, load: F) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        match &self.results {
            None => load().await,
            Some(ns) => match ns.get_or_load_typed(key.as_bytes(), load).await {
                Ok(v) => Ok(v),
                Err(cache_core::Error::Load(e)) => Err(match e.downcast_ref::<Error>() {
                    Some(Error::Query { sql, .. }) => {
                        Error::Unusable(format!("query failed: {sql}"))
                    }
                    // A busy pool and a full disk keep their kind: they are a 503 and a
                    // 507 to a client, not a broken database.
                    Some(Error::Pool(conn_pool::Error::Exhausted {
                        waited_ms,
                        max_size,
                    })) => Error::Pool(conn_pool::Error::Exhausted {
                        waited_ms: *waited_ms,
                        max_size: *max_size,
                    }),
                    Some(Error::Full { sql }) => Error::Full { sql: sql.clone() },
                    _ => Error::Unusable(e.to_string()),
                }),
                Err(e) => Err(e.into()),
            },
        }
    }

    /// Forgets every cached result; writers call it after changing data.
    pub fn invalidate_cached(&self) {
        if let Some(ns) = &self.results {
            // The namespace exists: the handle was made from it.
            let _ = ns.cache().clear(Scope::Namespace(ns.name()));
        }
    }
}

impl Session<'_> {
    /// Runs `f` as `executions` executions of `sql`, times it into the query log, and
    /// turns a failure into [`Error::Query`] naming the pattern.
    ///
    /// # Errors
    /// [`Error::Query`] if `f` fails.
    pub fn time<R>(
        &mut self,
        sql: &str,
        executions: u64,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<R>,
    ) -> Result<R> {
        let started = Instant::now();
        let out = f(self.conn);
        self.log.record(sql, executions, started.elapsed());
        out.map_err(|source| match source.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => Error::Full {
                sql: crate::normalize(sql),
            },
            _ => Error::Query {
                sql: crate::normalize(sql),
                source,
            },
        })
    }

    /// Runs `f` inside `BEGIN IMMEDIATE` ... `COMMIT`; any error rolls everything back.
    ///
    /// # Errors
    /// Whatever `f` returns, or [`Error::Query`] if the transaction cannot start or commit.
    pub fn transaction<R>(&mut self, f: impl FnOnce(&mut Session<'_>) -> Result<R>) -> Result<R> {
        self.time("BEGIN IMMEDIATE", 1, |c| c.execute_batch("BEGIN IMMEDIATE"))?;
        match f(self).and_then(|r| {
            self.time("COMMIT", 1, |c| c.execute_batch("COMMIT"))?;
            Ok(r)
        }) {
            Ok(r) => Ok(r),
            Err(e) => {
                // The error being returned matters more than a failed rollback.
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }
}
