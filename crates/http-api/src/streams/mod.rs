//! WebSocket market streams served to clients, so ccxt pro and freqtrade with websockets
//! on work with only URLs changed. The exchange's protocol (paths, control messages,
//! frames) is behind [`protocol::Protocol`]; Binance's is
//! `crate::exchange::binance::streams`.
//!
//! Fan-out: one upstream subscription per stream however many clients (the read path's
//! streams keep it), one task per served stream that encodes each event once (raw and,
//! when a client wants it, combined) and hands the same bytes to every subscriber's
//! bounded queue. A client whose queue is full is closed with 1008; memory never grows
//! with a slow reader.
//!
//! The parts: `config` (limits, figures), `protocol` (the seam), `hub` (topics and the
//! fan-out), `connection` (handshake, reader, writer).

mod config;
mod connection;
mod hub;
pub(crate) mod protocol;

pub use config::WsConfig;
pub(crate) use config::WsStats;
pub(crate) use hub::Hub;

use crate::exchange::binance::streams::BinanceStreams;
use crate::exchange::bybit::streams::BybitStreams;
use crate::exchange::okx::streams::OkxStreams;
use protocol::Protocol;

/// The served stream protocols, tried in order by path: OKX's before Binance's, since
/// `/ws/v5/...` is OKX's although Binance's `/ws/<stream>` would take it.
static PROTOCOLS: [&dyn Protocol; 3] = [&OkxStreams, &BinanceStreams, &BybitStreams];

/// The protocol serving `path` as streams, if one does.
pub(crate) fn protocol_for(path: &str) -> Option<&'static dyn Protocol> {
    PROTOCOLS
        .iter()
        .copied()
        .find(|p| p.route_name(path).is_some())
}

/// The metrics name of a stream path.
pub(crate) fn route_name(path: &str) -> Option<&'static str> {
    PROTOCOLS.iter().find_map(|p| p.route_name(path))
}
