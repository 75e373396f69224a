use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Configuration of a [`SqlitePool`](crate::SqlitePool); plain data with the design's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqliteConfig {
    /// The database file; created if missing.
    pub path: PathBuf,
    /// The most connections open at once.
    pub max_size: usize,
    /// How long a caller waits for a free connection before [`Error::Exhausted`], in ms.
    pub wait_timeout_ms: u64,
    /// How long SQLite retries a locked database before failing a statement, in ms.
    pub busy_timeout_ms: u64,
    /// Connections idle longer than this are closed by the idle cleanup, in ms.
    pub idle_timeout_ms: u64,
}

impl SqliteConfig {
    /// The defaults, for the database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            ..Self::default()
        }
    }

    /// Checks every field and names the first one that is wrong.
    ///
    /// # Errors
    /// [`Error::Config`] naming the key.
    pub fn validate(&self) -> Result<()> {
        let bad = |key, reason: &str| {
            Err(Error::Config {
                key,
                reason: reason.into(),
            })
        };
        if self.path.as_os_str().is_empty() {
            return bad("path", "must not be empty");
        }
        if !(1..=1024).contains(&self.max_size) {
            return bad("max_size", "must be between 1 and 1024");
        }
        if self.wait_timeout_ms == 0 {
            return bad("wait_timeout_ms", "must be greater than 0");
        }
        if self.idle_timeout_ms == 0 {
            return bad("idle_timeout_ms", "must be greater than 0");
        }
        Ok(())
    }
}

impl Default for SqliteConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("candlecache.db"),
            max_size: 20,
            wait_timeout_ms: 30_000,
            busy_timeout_ms: 5_000,
            idle_timeout_ms: 300_000,
        }
    }
}

/// Configuration of an [`HttpClient`](crate::HttpClient); plain data with the design's
/// defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
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
    /// The request weight the upstream allows per window (Binance spot: 6000 a minute),
    /// read back from its `X-MBX-USED-WEIGHT-*` header; 0 turns the budget off.
    pub weight_limit: u32,
    /// The share of `weight_limit` the client allows itself, leaving room for others.
    pub weight_share: f64,
    /// The length of the upstream's weight window, in ms.
    pub weight_window_ms: u64,
    /// The User-Agent header sent.
    pub user_agent: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 5_000,
            request_timeout_ms: 30_000,
            retries: 3,
            backoff_base_ms: 250,
            backoff_max_ms: 8_000,
            deadline_ms: 60_000,
            max_idle_per_host: 50,
            idle_timeout_ms: 90_000,
            weight_limit: 6_000,
            weight_share: 0.8,
            weight_window_ms: 60_000,
            user_agent: concat!("candlecache/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

impl HttpConfig {
    /// Checks every field and names the first one that is wrong.
    ///
    /// # Errors
    /// [`Error::Config`] naming the key.
    pub fn validate(&self) -> Result<()> {
        let bad = |key, reason: &str| {
            Err(Error::Config {
                key,
                reason: reason.into(),
            })
        };
        for (key, v) in [
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("request_timeout_ms", self.request_timeout_ms),
            ("deadline_ms", self.deadline_ms),
            ("weight_window_ms", self.weight_window_ms),
            ("idle_timeout_ms", self.idle_timeout_ms),
        ] {
            if v == 0 {
                return bad(key, "must be greater than 0");
            }
        }
        if self.retries > 20 {
            return bad("retries", "must be at most 20");
        }
        if self.backoff_max_ms < self.backoff_base_ms {
            return bad("backoff_max_ms", "must be at least backoff_base_ms");
        }
        if !(self.weight_share > 0.0 && self.weight_share <= 1.0) {
            return bad("weight_share", "must be above 0 and at most 1");
        }
        if self.user_agent.is_empty() || !self.user_agent.bytes().all(|b| (32..127).contains(&b)) {
            return bad("user_agent", "must be non-empty printable ASCII");
        }
        Ok(())
    }
}
