//! The settings a [`Service`](crate::Service) is built from, in market-cache's own terms:
//! the binary reads them from its file and flags and never names the layers below
//! (query-opt's database configuration, conn-pool's HTTP client), which stay free to
//! change.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The database: its file, its connection pool and its query log (`[database]` in the
/// binary's file; the path comes from `--db`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DbSettings {
    /// The database file.
    #[serde(skip)]
    pub path: PathBuf,
    /// Calls slower than this (ms) are kept in the slow-query log.
    pub slow_query_ms: u64,
    /// How many slow calls are kept.
    pub slow_query_keep: usize,
    /// The most MB the database file may grow to; 0 for no limit.
    pub max_db_mb: u64,
    /// `[database.pool]`.
    pub pool: PoolSettings,
}

/// The SQLite connection pool (`[database.pool]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolSettings {
    /// Connections at most.
    pub max_size: usize,
    /// How long a request waits for a free connection before it is answered busy (ms).
    pub wait_timeout_ms: u64,
    /// How long a connection waits for SQLite's write lock (ms).
    pub busy_timeout_ms: u64,
    /// Idle connections are closed after this long (ms).
    pub idle_timeout_ms: u64,
}

impl Default for DbSettings {
    fn default() -> Self {
        let d = query_opt::DbConfig::default();
        Self {
            path: d.pool.path.clone(),
            slow_query_ms: d.slow_query_ms,
            slow_query_keep: d.slow_query_keep,
            max_db_mb: d.max_db_bytes / 1_000_000,
            pool: PoolSettings::default(),
        }
    }
}

impl Default for PoolSettings {
    fn default() -> Self {
        let d = query_opt::DbConfig::default().pool;
        Self {
            max_size: d.max_size,
            wait_timeout_ms: d.wait_timeout_ms,
            busy_timeout_ms: d.busy_timeout_ms,
            idle_timeout_ms: d.idle_timeout_ms,
        }
    }
}

impl DbSettings {
    /// The defaults, for the database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            ..Self::default()
        }
    }

    /// query-opt's configuration (pragmas at the design's defaults).
    pub(crate) fn db_config(&self) -> query_opt::DbConfig {
        let mut c = query_opt::DbConfig::new(&self.path);
        c.slow_query_ms = self.slow_query_ms;
        c.slow_query_keep = self.slow_query_keep;
        c.max_db_bytes = self.max_db_mb.saturating_mul(1_000_000);
        c.pool.max_size = self.pool.max_size;
        c.pool.wait_timeout_ms = self.pool.wait_timeout_ms;
        c.pool.busy_timeout_ms = self.pool.busy_timeout_ms;
        c.pool.idle_timeout_ms = self.pool.idle_timeout_ms;
        c
    }
}

/// The upstream's HTTP client (`[upstream.client]`): timeouts, retries and the request
/// weight budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientSettings {
    /// Giving up on a TCP (and TLS) connect after this long, in ms.
    pub connect_timeout_ms: u64,
    /// Giving up on one attempt (send, headers and the whole body) after this long, in ms.
    pub request_timeout_ms: u64,
    /// Retries after the first attempt on connect errors, 5xx and truncated bodies.
    pub retries: u32,
    /// The first retry waits about this long; each further one twice as long, in ms.
    pub backoff_base_ms: u64,
    /// No single backoff is longer than this, in ms.
    pub backoff_max_ms: u64,
    /// All attempts and waits (Retry-After, weight budget) of one call end by then, in ms.
    pub deadline_ms: u64,
    /// Idle keep-alive connections kept per host.
    pub max_idle_per_host: usize,
    /// Idle connections are closed after this long, in ms.
    pub idle_timeout_ms: u64,
    /// The request weight the upstream allows per window (Binance spot: 6000 a minute);
    /// 0 turns the budget off.
    pub weight_limit: u32,
    /// The share of `weight_limit` the client allows itself, leaving room for others.
    pub weight_share: f64,
    /// The length of the upstream's weight window, in ms.
    pub weight_window_ms: u64,
    /// The User-Agent header sent.
    pub user_agent: String,
}

impl Default for ClientSettings {
    fn default() -> Self {
        let d = conn_pool::HttpConfig::default();
        Self {
            connect_timeout_ms: d.connect_timeout_ms,
            request_timeout_ms: d.request_timeout_ms,
            retries: d.retries,
            backoff_base_ms: d.backoff_base_ms,
            backoff_max_ms: d.backoff_max_ms,
            deadline_ms: d.deadline_ms,
            max_idle_per_host: d.max_idle_per_host,
            idle_timeout_ms: d.idle_timeout_ms,
            weight_limit: d.weight_limit,
            weight_share: d.weight_share,
            weight_window_ms: d.weight_window_ms,
            user_agent: d.user_agent,
        }
    }
}

impl ClientSettings {
    /// Checks the numbers; the error names the key.
    ///
    /// # Errors
    /// [`Error::Config`] naming the key and what is wrong.
    pub fn validate(&self) -> Result<()> {
        self.http_config()
            .validate()
            .map_err(|e| Error::Config(e.to_string()))
    }

    /// conn-pool's configuration.
    pub(crate) fn http_config(&self) -> conn_pool::HttpConfig {
        conn_pool::HttpConfig {
            connect_timeout_ms: self.connect_timeout_ms,
            request_timeout_ms: self.request_timeout_ms,
            retries: self.retries,
            backoff_base_ms: self.backoff_base_ms,
            backoff_max_ms: self.backoff_max_ms,
            deadline_ms: self.deadline_ms,
            max_idle_per_host: self.max_idle_per_host,
            idle_timeout_ms: self.idle_timeout_ms,
            weight_limit: self.weight_limit,
            weight_share: self.weight_share,
            weight_window_ms: self.weight_window_ms,
            user_agent: self.user_agent.clone(),
        }
    }
}
