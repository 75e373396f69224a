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
    /// `PRAGMA cache_size`, in pages.
    pub cache_size_pages: i64,
    /// `PRAGMA mmap_size`, in bytes.
    pub mmap_size_bytes: u64,
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
            cache_size_pages: 10_000,
            mmap_size_bytes: 268_435_456,
            idle_timeout_ms: 300_000,
        }
    }
}
