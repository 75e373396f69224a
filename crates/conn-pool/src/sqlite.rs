//! The SQLite side: a deadpool-sqlite pool with pragmas, health checks, idle cleanup and
//! statistics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_sqlite::{Hook, HookError, Pool, PoolError, Runtime};
use parking_lot::Mutex;
use serde::Serialize;

use crate::samples::Samples;
use crate::{Error, Result, SqliteConfig};

/// Wait times kept for the percentiles.
const WAIT_SAMPLES: usize = 4096;

/// A pool of SQLite connections to one database file. Cloning is cheap and shares it.
#[derive(Clone)]
pub struct SqlitePool {
    pool: Pool,
    stats: Arc<Counters>,
    config: Arc<SqliteConfig>,
}

impl std::fmt::Debug for SqlitePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlitePool")
            .field("path", &self.config.path)
            .field("stats", &self.stats())
            .finish()
    }
}

struct Counters {
    gets: AtomicU64,
    timeouts: AtomicU64,
    closed_idle: AtomicU64,
    /// Recent waits for a connection, in microseconds.
    waits_us: Mutex<Samples>,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            gets: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            closed_idle: AtomicU64::new(0),
            waits_us: Mutex::new(Samples::new(WAIT_SAMPLES)),
        }
    }
}

/// A snapshot of the pool.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolStats {
    /// The most connections the pool opens.
    pub max_size: usize,
    /// Connections open now.
    pub size: usize,
    /// Connections handed out now.
    pub in_use: usize,
    /// Open connections nobody uses now.
    pub idle: usize,
    /// Callers waiting for a connection now.
    pub waiting: usize,
    /// `in_use / max_size`.
    pub utilization: f64,
    /// Connections handed out since the pool opened.
    pub gets: u64,
    /// Callers that gave up waiting.
    pub timeouts: u64,
    /// Connections closed for sitting idle.
    pub closed_idle: u64,
    /// Median wait for a connection over the recent gets, in ms.
    pub wait_p50_ms: f64,
    /// 99th percentile of the same, in ms.
    pub wait_p99_ms: f64,
}

/// What a new connection runs before it is handed out; see [`SqlitePool::open_with`].
pub type ConnectionInit = Arc<dyn Fn(&rusqlite::Connection) -> rusqlite::Result<()> + Send + Sync>;

impl SqlitePool {
    /// Opens a pool on the database at `config.path`; the first connection is opened
    /// lazily, by the first caller.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid configuration.
    pub fn open(config: SqliteConfig) -> Result<Self> {
        Self::open_with(config, Arc::new(|_| Ok(())))
    }

    /// As [`SqlitePool::open`], running `init` on every connection the pool opens, before
    /// anyone uses it (the database's settings: journal mode, caches, limits).
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid configuration.
    pub fn open_with(config: SqliteConfig, init: ConnectionInit) -> Result<Self> {
        config.validate()?;
        let busy = Duration::from_millis(config.busy_timeout_ms);
        let pool = deadpool_sqlite::Config::new(&config.path)
            .builder(Runtime::Tokio1)
            .map_err(|e| Error::Task(e.to_string()))?
            .max_size(config.max_size)
            .wait_timeout(Some(Duration::from_millis(config.wait_timeout_ms)))
            .post_create(Hook::async_fn(move |conn, _| {
                let init = init.clone();
                Box::pin(async move {
                    conn.interact(move |c| {
                        c.busy_timeout(busy)?;
                        init(c)
                    })
                    .await
                    .map_err(|e| HookError::message(e.to_string()))?
                    .map_err(HookError::Backend)
                })
            }))
            .build()
            .map_err(|e| Error::Task(e.to_string()))?;
        Ok(Self {
            pool,
            stats: Arc::default(),
            config: Arc::new(config),
        })
    }

    /// Returns the configuration the pool was opened with.
    pub fn config(&self) -> &SqliteConfig {
        &self.config
    }

    /// Runs `f` on a pooled connection, on a blocking thread, and returns its result.
    ///
    /// # Errors
    /// [`Error::Exhausted`] if no connection frees up in time, [`Error::Open`] if a new
    /// connection cannot be opened, [`Error::Task`] if `f` panics.
    pub async fn with<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&mut rusqlite::Connection) -> R + Send + 'static,
        R: Send + 'static,
    {
        let started = Instant::now();
        let conn = self
            .pool
            .get()
            .await
            .map_err(|e| self.get_error(e, started))?;
        self.record_wait(started.elapsed());
        conn.interact(f)
            .await
            .map_err(|e| Error::Task(e.to_string()))
    }

    fn get_error(&self, e: PoolError, started: Instant) -> Error {
        match e {
            PoolError::Timeout(_) => {
                self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                Error::Exhausted {
                    waited_ms: started.elapsed().as_millis() as u64,
                    max_size: self.config.max_size,
                }
            }
            PoolError::Backend(e) => Error::Open {
                path: self.config.path.display().to_string(),
                source: Box::new(e),
            },
            PoolError::PostCreateHook(e) => Error::Open {
                path: self.config.path.display().to_string(),
                source: e.to_string().into(),
            },
            other => Error::Task(other.to_string()),
        }
    }

    fn record_wait(&self, waited: Duration) {
        self.stats.gets.fetch_add(1, Ordering::Relaxed);
        self.stats.waits_us.lock().push(waited.as_micros() as u64);
    }

    /// Closes connections idle for longer than the configured idle timeout; returns how
    /// many it closed.
    pub fn close_idle(&self) -> usize {
        let max_idle = Duration::from_millis(self.config.idle_timeout_ms);
        let removed = self
            .pool
            .retain(|_, metrics| metrics.last_used() < max_idle)
            .removed
            .len();
        self.stats
            .closed_idle
            .fetch_add(removed as u64, Ordering::Relaxed);
        removed
    }

    /// Starts a task that runs [`SqlitePool::close_idle`] every `every`; it stops when
    /// the returned handle is dropped.
    pub fn start_idle_cleanup(&self, every: Duration) -> IdleCleanup {
        let pool = self.clone();
        IdleCleanup(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                pool.close_idle();
            }
        }))
    }

    /// Returns a snapshot of the pool's size, use and waits.
    pub fn stats(&self) -> PoolStats {
        let status = self.pool.status();
        let in_use = status.size.saturating_sub(status.available);
        let (p50, p99) = self.stats.waits_us.lock().p50_p99_ms();
        PoolStats {
            max_size: status.max_size,
            size: status.size,
            in_use,
            idle: status.available,
            waiting: status.waiting,
            utilization: in_use as f64 / status.max_size.max(1) as f64,
            gets: self.stats.gets.load(Ordering::Relaxed),
            timeouts: self.stats.timeouts.load(Ordering::Relaxed),
            closed_idle: self.stats.closed_idle.load(Ordering::Relaxed),
            wait_p50_ms: p50,
            wait_p99_ms: p99,
        }
    }
}

/// The idle-cleanup task; dropping it stops the task.
#[derive(Debug)]
pub struct IdleCleanup(tokio::task::JoinHandle<()>);

impl Drop for IdleCleanup {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(dir: &tempfile::TempDir, max: usize) -> SqlitePool {
        let mut cfg = SqliteConfig::new(dir.path().join("t.db"));
        cfg.max_size = max;
        cfg.wait_timeout_ms = 200;
        SqlitePool::open(cfg).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_new_connection_runs_the_init_before_use() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = SqliteConfig::new(dir.path().join("t.db"));
        cfg.max_size = 2;
        let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = runs.clone();
        let init: ConnectionInit = Arc::new(move |c| {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            c.execute_batch("PRAGMA cache_size=1234")
        });
        let p = SqlitePool::open_with(cfg, init).unwrap();
        // Two connections at once: both new, both set up.
        let (release, held) = hold(&p).await;
        let got = p
            .with(|c| {
                let q = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
                (q("PRAGMA cache_size"), q("PRAGMA busy_timeout"))
            })
            .await
            .unwrap();
        release.send(()).unwrap();
        held.await.unwrap();
        assert_eq!(got, (1234, 5_000));
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    /// Takes a connection and keeps it until the returned sender sends.
    async fn hold(p: &SqlitePool) -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let p = p.clone();
        let held = tokio::spawn(async move {
            p.with(move |_| {
                started_tx.send(()).unwrap();
                rx.recv().unwrap();
            })
            .await
            .unwrap()
        });
        started_rx.await.unwrap();
        (tx, held)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stats_move_as_connections_are_taken_and_returned() {
        let dir = tempfile::tempdir().unwrap();
        let p = pool(&dir, 2);
        assert_eq!(p.stats().size, 0);
        let (tx, held) = hold(&p).await;
        let s = p.stats();
        assert_eq!((s.size, s.in_use, s.idle), (1, 1, 0));
        assert!((s.utilization - 0.5).abs() < 1e-9);
        tx.send(()).unwrap();
        held.await.unwrap();
        let s = p.stats();
        assert_eq!((s.size, s.in_use, s.idle, s.gets), (1, 0, 1, 1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_exhausted_pool_says_so_and_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let p = pool(&dir, 1);
        let (tx, held) = hold(&p).await;
        let err = p.with(|_| ()).await.unwrap_err();
        assert!(matches!(err, Error::Exhausted { max_size: 1, .. }), "{err}");
        assert!(err.to_string().contains("no database connection free"));
        assert_eq!(p.stats().timeouts, 1);
        tx.send(()).unwrap();
        held.await.unwrap();
        p.with(|_| ()).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_connections_are_closed() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = SqliteConfig::new(dir.path().join("t.db"));
        cfg.idle_timeout_ms = 1;
        let p = SqlitePool::open(cfg).unwrap();
        p.with(|_| ()).await.unwrap();
        assert_eq!(p.stats().size, 1);
        // The idle timeout is 1 ms; wait until the connection is older than that.
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(5) {
            tokio::task::yield_now().await;
        }
        assert_eq!(p.close_idle(), 1);
        let s = p.stats();
        assert_eq!((s.size, s.closed_idle), (0, 1));
    }

    #[test]
    fn invalid_configuration_is_named() {
        let mut cfg = SqliteConfig::new("x.db");
        cfg.max_size = 0;
        let err = SqlitePool::open(cfg).unwrap_err();
        assert!(err.to_string().contains("`max_size`"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unopenable_database_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = SqlitePool::open(SqliteConfig::new(dir.path().join("no/such/dir/x.db"))).unwrap();
        let err = p.with(|_| ()).await.unwrap_err();
        assert!(matches!(err, Error::Open { .. }), "{err}");
        assert!(err.to_string().contains("x.db"), "{err}");
    }
}
