//! The exchange seam: each exchange's upstream protocol behind two interfaces, so that the
//! backfill ([`crate::upstream`]), the streams ([`crate::live`]), the store and the read
//! path never branch on an exchange's name. Adding an exchange adds a folder here (and its
//! served facade in http-api); nothing else changes.
//!
//! - [`RestApi`]: how a page of candles or funding events is asked for and read, and what
//!   a refusal means. A page is always "up to `limit` candles opening at or after `from`,
//!   in time order" whatever the exchange's own paging is (Binance's `startTime`, Bybit's
//!   newest-first `start`/`end`, OKX's `after`/`before` cursors): the implementation
//!   turns one into the other and sorts.
//! - [`StreamApi`]: the upstream stream protocol: topic names, subscribe messages, the
//!   client-side keepalive, limits, and frames read into kline events with their `closed`
//!   flag (Binance's `x`, Bybit's and OKX's `confirm`).

pub(crate) mod binance;
pub(crate) mod bybit;
pub(crate) mod okx;

use std::time::Duration;

use serde_json::Value;

use crate::{Candle, Error, Exchange, Funding, Kind, Result, Symbol, Timeframe};

/// Which of an upstream's two bases serves a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Base {
    /// The spot API (and, for exchanges with one host, everything).
    Spot,
    /// The derivatives API (Binance's `fapi`).
    Futures,
}

/// An endpoint's own request limit, which the client paces under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pace {
    /// The endpoint (a path without its query); each has its own window.
    pub(crate) endpoint: String,
    /// Requests the exchange allows per window.
    pub(crate) limit: u32,
    /// The window, ms.
    pub(crate) window_ms: i64,
}

/// An exchange's REST market-data protocol, as the backfill uses it.
pub(crate) trait RestApi: Send + Sync + std::fmt::Debug + 'static {
    /// The exchange whose protocol this is (stored with its series).
    fn exchange(&self) -> Exchange;
    /// The most candles one page may ask for.
    fn page(&self) -> usize;
    /// The most candles one page of `kind` may ask for (OKX: fewer for mark price).
    fn page_of(&self, _kind: Kind) -> usize {
        self.page()
    }
    /// The limit of the endpoint a request goes to, for exchanges that limit each
    /// endpoint on its own (OKX); `None`: [`RestApi::budget`] or the weight header rules.
    fn pace(&self, _path: &str) -> Option<Pace> {
        None
    }
    /// For an exchange whose pages are windows (OKX's `before`/`after`), where the page
    /// of `limit` candles from `from` ends (exclusive): the page proves that window
    /// complete however few candles it holds. `None`: a page runs from `from` to its
    /// last candle (a short page is the present).
    fn window(&self, _tf: Timeframe, _from: i64, _limit: usize) -> Option<i64> {
        None
    }
    /// The most funding events one page may ask for.
    fn funding_page(&self) -> usize {
        self.page()
    }
    /// The requests the exchange allows per window (count, window ms), for exchanges
    /// that do not report a used weight the client can follow (Binance does).
    fn budget(&self) -> Option<(u32, u64)> {
        None
    }
    /// Whether the exchange has candles of `tf` (Bybit has no 1s, 8h or 3d).
    fn supports(&self, _tf: Timeframe) -> bool {
        true
    }
    /// For an exchange that pages funding events back from an end (Bybit refuses a start
    /// alone), path and query of the up to `limit` latest events before `end`; `None`
    /// when pages go forward ([`RestApi::funding_path`]).
    fn funding_before_path(&self, _symbol: &Symbol, _end: i64, _limit: usize) -> Option<String> {
        None
    }
    /// A refusal written into a 2xx body (Bybit's `retCode`), which is not a body cut
    /// short and must not be fetched again; `None` for a page.
    fn envelope_error(&self, _symbol: &Symbol, _body: &[u8]) -> Option<Error> {
        None
    }
    /// How long to stay away after an answer that says the exchange is banning us
    /// (Bybit's 403 or `retCode` 10006/10018); `None` for any other answer.
    fn ban(&self, _status: u16, _body: &[u8]) -> Option<Duration> {
        None
    }
    /// The default derivatives base for a spot base, when the exchange keeps them apart
    /// (Binance: `fapi.binance.com` for its own hosts); `None`: the spot base serves both.
    fn futures_base(&self, spot_base: &str) -> Option<&'static str>;
    /// The API path a user may leave on a base URL (`/api/v3`, `/fapi/v1`), taken off.
    fn base_suffix(&self, base: Base) -> &'static str;
    /// Which base serves `kind`'s candles.
    fn base_of(&self, kind: Kind) -> Base;
    /// Which base a passed-through `path` goes to.
    fn base_of_path(&self, path: &str) -> Base;
    /// Path and query of a page of up to `limit` candles of `symbol` opening at or after
    /// `from`.
    fn klines_path(&self, symbol: &Symbol, tf: Timeframe, from: i64, limit: usize) -> String;
    /// The candles of a page body, validated against `tf`, in time order, one per time.
    fn parse_klines(&self, body: &[u8], tf: Timeframe) -> Result<Vec<Candle>>;
    /// Path and query of a page of funding events from `from` on.
    fn funding_path(&self, symbol: &Symbol, from: i64, limit: usize) -> String;
    /// The funding events of a page body, in time order.
    fn parse_funding(&self, body: &[u8], symbol: &Symbol) -> Result<Vec<Funding>>;
    /// What a non-2xx answer means ([`Error::UnknownSymbol`] or [`Error::Upstream`]).
    fn refusal(&self, symbol: &Symbol, status: u16, body: &[u8]) -> Error;
}

/// A frame from an upstream stream, read by its exchange's [`StreamApi`].
#[derive(Debug)]
pub(crate) enum Frame<'a> {
    /// Kline events of one topic. `raw` is the event as the exchange wrote it (served
    /// streams relay these bytes).
    Klines {
        topic: String,
        raw: &'a str,
        klines: Vec<Kline>,
    },
    /// A reply to a control message, a pong: nothing to do.
    Ack,
    /// The exchange reported an error, or the frame is not what the protocol allows.
    Bad(String),
    /// An event naming a symbol or interval that contradicts its topic.
    Unexpected,
}

/// One kline of a frame, not yet checked against its series.
#[derive(Debug)]
pub(crate) struct Kline {
    /// The exchange's object for the candle (read by [`StreamApi::candle`]).
    pub(crate) body: Value,
    /// Whether the exchange says the candle is final.
    pub(crate) closed: bool,
}

/// An exchange's upstream stream protocol.
pub(crate) trait StreamApi: Send + Sync + std::fmt::Debug + 'static {
    /// The URL to connect to for the configured stream URL `url` (Binance's host with or
    /// without `/stream`; Bybit's `/v5/public/<category>` as it is); `None` when `url`
    /// cannot be one.
    fn endpoint(&self, url: &str) -> Option<String>;
    /// The stream URL of the spot (or with `futures` the derivatives) market for a stream
    /// URL a user gave: as it is where each market has its own (Binance's).
    fn market_url(&self, ws: &str, _futures: bool) -> String {
        ws.trim().to_owned()
    }
    /// The exchange's own stream URL for its REST host `rest_base`; `None` for any other
    /// host (another candlecache, a test server: their streams are given, not guessed).
    fn default_url(&self, rest_base: &str, futures: bool) -> Option<String>;
    /// The topic that carries `symbol`'s candles of `tf`.
    fn topic(&self, symbol: &Symbol, tf: Timeframe) -> String;
    /// The message that subscribes (or unsubscribes) `topics`; `id` numbers it.
    fn control(&self, subscribe: bool, topics: &[String], id: u64) -> String;
    /// Topics one control message may carry.
    fn topics_per_message(&self) -> usize;
    /// A text the client must send every so often to keep the connection (Bybit's
    /// `{"op":"ping"}`, OKX's `ping`); `None` when the server pings (Binance).
    fn keepalive(&self) -> Option<(Duration, &'static str)>;
    /// Reads one text frame.
    fn read<'a>(&self, text: &'a str) -> Frame<'a>;
    /// The candle of one kline, validated against `tf`.
    fn candle(&self, kline: &Kline, tf: Timeframe) -> std::result::Result<Candle, String>;
}
