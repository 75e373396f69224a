//! Settings of the upstream streams and their URL.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Settings of the upstream streams (`[upstream]` ws_* keys in the binary).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamConfig {
    /// The stream URL as configured (`wss://stream.binance.com:9443`, on which Binance's
    /// combined endpoint `/stream` is used; `wss://stream.bybit.com/v5/public/spot`); the
    /// exchange's stream protocol says what to connect to.
    #[serde(skip)]
    pub url: String,
    /// Streams one connection carries at most (Binance: 1024).
    pub max_streams_per_connection: usize,
    /// Control messages (SUBSCRIBE, UNSUBSCRIBE) sent per second per connection at most
    /// (Binance allows 5 incoming messages a second, pongs included).
    pub max_messages_per_sec: u32,
    /// A connection silent this long is replaced.
    pub watchdog_ms: u64,
    /// A connection is replaced after this long (Binance closes them at 24 h).
    pub rotate_ms: u64,
    /// A series nobody asked for this long is unsubscribed.
    pub idle_ms: u64,
    /// A series whose last event is older than this is not trusted for the edge (the
    /// read path refreshes over REST until events flow again).
    pub stale_ms: u64,
    /// First reconnect delay; doubled per failure up to `backoff_max_ms`, with jitter,
    /// and reset after a connection stayed up a minute.
    pub backoff_base_ms: u64,
    /// The longest reconnect delay.
    pub backoff_max_ms: u64,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            max_streams_per_connection: 1024,
            max_messages_per_sec: 4,
            watchdog_ms: 30_000,
            rotate_ms: 23 * 3_600_000,
            idle_ms: 300_000,
            stale_ms: 5_000,
            backoff_base_ms: 500,
            backoff_max_ms: 30_000,
        }
    }
}

impl StreamConfig {
    /// Streams at `url` with the defaults.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            ..Self::default()
        }
    }

    /// Checks the URL and the numbers; the error names the key.
    ///
    /// # Errors
    /// [`Error::Upstream`] naming what is wrong.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: &str| Err(Error::Upstream(format!("`{key}` {why}")));
        if ws_url(&self.url).is_none() {
            return bad("ws", "must start with ws:// or wss:// and name a host");
        }
        if !(1..=1024).contains(&self.max_streams_per_connection) {
            return bad("max_streams_per_connection", "must be between 1 and 1024");
        }
        if !(1..=5).contains(&self.max_messages_per_sec) {
            return bad("max_messages_per_sec", "must be between 1 and 5");
        }
        for (key, v) in [
            ("watchdog_ms", self.watchdog_ms),
            ("rotate_ms", self.rotate_ms),
            ("idle_ms", self.idle_ms),
            ("stale_ms", self.stale_ms),
            ("backoff_base_ms", self.backoff_base_ms),
        ] {
            if v == 0 {
                return bad(key, "must be greater than 0");
            }
        }
        if self.backoff_max_ms < self.backoff_base_ms {
            return bad("backoff_max_ms", "must be at least backoff_base_ms");
        }
        Ok(())
    }
}

/// `url` trimmed of trailing slashes when it is `ws(s)://` with a host; `None` otherwise.
pub(crate) fn ws_url(url: &str) -> Option<&str> {
    let u = url.trim().trim_end_matches('/');
    let host = u
        .strip_prefix("wss://")
        .or_else(|| u.strip_prefix("ws://"))?;
    (!host.is_empty() && !host.starts_with('/') && !host.contains(['?', '#', ' '])).then_some(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_urls_are_checked() {
        assert_eq!(
            ws_url("wss://stream.bybit.com/v5/public/spot/"),
            Some("wss://stream.bybit.com/v5/public/spot")
        );
        for bad in ["", "http://x", "wss://", "ws://a b", "wss:///x"] {
            assert!(ws_url(bad).is_none(), "{bad}");
        }
    }
}
