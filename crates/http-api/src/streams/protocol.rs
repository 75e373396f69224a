//! The seam between the fan-out and an exchange's served stream protocol: what a
//! handshake path asks for, what a control message changes and answers, and how an event
//! is framed for a client. The hub and the connections know nothing else of an exchange.

use std::sync::atomic::AtomicBool;

use bytes::Bytes;
use market_cache::{Exchange, Kind, Symbol, Timeframe};
use tokio_tungstenite::tungstenite::Message;

use crate::Result;

/// One stream a client asks for: its name as the client wrote it (canonical), and the
/// series it carries.
#[derive(Debug, Clone)]
pub(crate) struct Stream {
    pub(crate) name: String,
    /// The series' symbol; a spot one is put on the connection's market (Binance's and
    /// Bybit's paths say the market, OKX's instrument ids do).
    pub(crate) symbol: Symbol,
    pub(crate) tf: Timeframe,
}

/// What a handshake asks for.
#[derive(Debug)]
pub(crate) struct Opening {
    /// The market the path serves.
    pub(crate) kind: Kind,
    /// The streams named by the path or query (none: subscribe by message).
    pub(crate) streams: Vec<Stream>,
    /// Whether events are wrapped with their stream's name.
    pub(crate) combined: bool,
}

/// What one control message does.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// The reply, sent before the new streams' current events.
    pub(crate) reply: String,
    /// Further replies after it (OKX answers each channel of a request on its own).
    pub(crate) more_replies: Vec<String>,
    /// Streams to add (after the reply).
    pub(crate) add: Vec<Stream>,
    /// Stream names to drop.
    pub(crate) remove: Vec<String>,
    /// The message was refused (counted as a bad request).
    pub(crate) refused: bool,
}

/// An exchange's served stream protocol.
pub(crate) trait Protocol: Send + Sync + 'static {
    /// The exchange whose streams these are.
    fn exchange(&self) -> Exchange;
    /// The metrics name of `path` if this protocol serves it.
    fn route_name(&self, path: &str) -> Option<&'static str>;
    /// What a handshake on `path?query` asks for.
    fn open(&self, path: &str, query: Option<&str>) -> Result<Opening>;
    /// Applies one control message of a client on `kind`'s market subscribed to
    /// `subscribed` (at most `max_streams`); `combined` is the client's framing.
    fn control(
        &self,
        kind: Kind,
        subscribed: &[String],
        combined: &AtomicBool,
        text: &str,
        max_streams: usize,
    ) -> Changes;
    /// The messages a second a client may send, given the configured limit (Binance's
    /// 5, which its clients pace themselves to).
    fn max_messages_per_sec(&self, configured: usize) -> usize {
        configured
    }
    /// An event of stream `name` as a frame, combined or raw.
    fn frame(&self, name: &str, event: &Bytes, combined: bool) -> Option<Message>;
    /// How to configure the upstream streams `kind`'s served streams need.
    fn upstream_hint(&self, kind: Kind) -> &'static str;
}
