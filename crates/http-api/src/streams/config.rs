//! Limits of the served streams and their figures.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Limits of the served streams (`[server.ws]` in the binary's file). The defaults are
/// Binance's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WsConfig {
    /// Stream connections open at once at most; beyond, the handshake gets 503.
    pub max_connections: usize,
    /// Streams one connection may subscribe.
    pub max_streams_per_connection: usize,
    /// Messages (text frames, pings, pongs) a client may send a second; more closes the
    /// connection (1008), as Binance does.
    pub max_messages_per_sec: usize,
    /// A ping is sent this often.
    pub ping_ms: u64,
    /// A client that sent no pong for this long is closed (1008).
    pub pong_timeout_ms: u64,
    /// Frames queued for one client at most; a client that falls this far behind is
    /// closed (1008) instead of holding memory.
    pub queue: usize,
    /// The largest message a client may send, in bytes (larger: closed with 1009).
    pub max_message_bytes: usize,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            max_streams_per_connection: 1024,
            max_messages_per_sec: 5,
            ping_ms: 20_000,
            pong_timeout_ms: 60_000,
            queue: 1024,
            max_message_bytes: 64 * 1024,
        }
    }
}

impl WsConfig {
    /// Checks the numbers; the error names the key.
    ///
    /// # Errors
    /// [`Error::Config`] naming the key.
    pub fn validate(&self) -> Result<()> {
        for (key, v) in [
            ("max_connections", self.max_connections as u64),
            (
                "max_streams_per_connection",
                self.max_streams_per_connection as u64,
            ),
            ("max_messages_per_sec", self.max_messages_per_sec as u64),
            ("ping_ms", self.ping_ms),
            ("pong_timeout_ms", self.pong_timeout_ms),
            ("queue", self.queue as u64),
            ("max_message_bytes", self.max_message_bytes as u64),
        ] {
            if v == 0 {
                return Err(Error::Config(format!(
                    "[server.ws] `{key}` must be greater than 0"
                )));
            }
        }
        Ok(())
    }
}

/// Figures of the served streams, for /stats and /metrics.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct WsStats {
    pub(crate) connections: u64,
    pub(crate) streams: u64,
    pub(crate) subscriptions: u64,
    pub(crate) frames_sent: u64,
    pub(crate) refused: u64,
    pub(crate) closed_slow: u64,
    pub(crate) closed_rate: u64,
    pub(crate) closed_pong: u64,
    pub(crate) bad_requests: u64,
}
