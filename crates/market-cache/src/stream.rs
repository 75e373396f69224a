//! The live edge from the upstream's WebSocket market streams (Binance's
//! `<symbol>@kline_<interval>` on the combined endpoint): one subscription per series
//! however many clients ask, subscribed on the first request that touches the series'
//! edge and dropped when nobody asked for a while; closed candles stored as they close;
//! after every (re)connect the gap is backfilled over REST before the stream is trusted.
//!
//! The read path asks [`Streams::touch`] for a [`View`]: `None` means "no trustworthy
//! stream for this series right now" and the read path refreshes the edge over REST.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::store::{CandleStore, MarketMeta};
use crate::time::Now;
use crate::upstream::Upstream;
use crate::{Candle, Decimal, Error, Result, Symbol, Timeframe};

/// Settings of the upstream streams (`[upstream]` ws_* keys in the binary).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamConfig {
    /// The stream host, `wss://stream.binance.com:9443`; the combined endpoint `/stream`
    /// is used on it. (In the binary's file it is `[upstream] ws`.)
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
        if stream_base(&self.url).is_none() {
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

/// `ws(s)://host[:port]` without a trailing `/ws`, `/stream` or slash.
fn stream_base(url: &str) -> Option<String> {
    let u = url.trim().trim_end_matches('/');
    let u = u
        .strip_suffix("/stream")
        .or_else(|| u.strip_suffix("/ws"))
        .unwrap_or(u);
    let host = u
        .strip_prefix("wss://")
        .or_else(|| u.strip_prefix("ws://"))?;
    (!host.is_empty() && !host.contains(['?', '#', ' '])).then(|| u.to_owned())
}

/// The default stream host for an upstream REST base URL: Binance's for Binance's spot
/// hosts, none for anything else (another candlecache, a test server).
pub fn default_stream_url(rest_base: &str) -> Option<&'static str> {
    let host = rest_base
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = host.split(['/', ':']).next().unwrap_or_default();
    matches!(
        host,
        "api.binance.com"
            | "api1.binance.com"
            | "api2.binance.com"
            | "api3.binance.com"
            | "api4.binance.com"
            | "api-gcp.binance.com"
            | "data-api.binance.vision"
    )
    .then_some("wss://stream.binance.com:9443")
}

/// The default stream host for a futures REST base URL: Binance's USD-M market streams for
/// `fapi.binance.com`, none for anything else.
pub fn default_futures_stream_url(futures_base: &str) -> Option<&'static str> {
    let host = futures_base
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = host.split(['/', ':']).next().unwrap_or_default();
    (host == "fapi.binance.com").then_some("wss://fstream.binance.com/market")
}

/// What the stream knows of a series' edge, for the read path.
#[derive(Debug, Clone)]
pub(crate) struct View {
    /// Closed candles received but not yet in the store (usually none, at most a few).
    pub unstored: Vec<Candle>,
    /// The forming candle as of the last event.
    pub forming: Option<Candle>,
    /// Bumped whenever the store gained candles of the series from the stream, so a
    /// cached copy of the edge chunk read before is not used again.
    pub generation: u64,
}

/// A served client's view of one stream: the upstream's events, byte for byte.
pub struct Watch {
    /// The latest event (usually the forming candle), so a client joining mid-candle
    /// has it at once.
    pub current: Option<Bytes>,
    /// Every later event, as the upstream's event object (`{"e":"kline",...}`) exactly as
    /// received. A receiver that falls 256 events behind sees
    /// `RecvError::Lagged`.
    pub events: broadcast::Receiver<Bytes>,
}

/// Events a stream's feed holds for its slowest receiver.
pub(crate) const FEED_CAPACITY: usize = 256;

/// Figures of one stream.
#[derive(Debug, Clone, Serialize)]
pub struct StreamInfo {
    /// `btcusdt@kline_1m`.
    pub stream: String,
    /// `subscribing`, `backfilling` or `live`.
    pub state: &'static str,
    /// Events received.
    pub events: u64,
    /// Served receivers of the stream's events.
    pub watchers: u64,
    /// Milliseconds since the last event, if any arrived.
    pub last_event_age_ms: Option<i64>,
}

/// Figures of the upstream streams, for /stats, /metrics and the dashboard.
#[derive(Debug, Clone, Serialize)]
pub struct StreamStats {
    /// The stream host.
    pub url: String,
    /// Connections open now.
    pub connections: u64,
    /// Streams subscribed.
    pub streams: u64,
    /// Streams trusted for the edge now.
    pub live_streams: u64,
    /// Reconnects after a drop, a refusal, a stall or a rotation.
    pub reconnects: u64,
    /// Connections replaced by the watchdog for silence.
    pub stalls: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
    /// Kline events received.
    pub events: u64,
    /// Kline events a second over the last 10 s.
    pub events_per_sec: f64,
    /// Closed candles stored from the stream.
    pub closed_stored: u64,
    /// Frames that were not valid JSON events (logged, never stored).
    pub bad_frames: u64,
    /// Events for a stream not subscribed, or whose symbol or interval contradicts it.
    pub unexpected: u64,
    /// Events older than what the series already had.
    pub out_of_order: u64,
    /// REST backfills run after a (re)subscription.
    pub backfills: u64,
    /// Per stream.
    pub per_stream: Vec<StreamInfo>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// SUBSCRIBE sent (or to be sent); no event yet.
    Subscribing,
    /// Events flow; the REST backfill of the gap before them runs.
    Backfilling,
    /// Backfilled and receiving: the edge comes from here.
    Live,
}

struct Series {
    symbol: Symbol,
    tf: Timeframe,
    conn: usize,
    state: State,
    last_touch: i64,
    last_event: Option<i64>,
    events: u64,
    forming: Option<Candle>,
    unstored: VecDeque<Candle>,
    /// Open time of the last closed candle received on the current connection: the next
    /// closed one proves the slots between them empty.
    last_closed: Option<i64>,
    generation: u64,
    /// The events, for served streams.
    feed: broadcast::Sender<Bytes>,
    last_raw: Option<Bytes>,
}

#[derive(Default)]
struct Counters {
    reconnects: AtomicU64,
    stalls: AtomicU64,
    connect_failures: AtomicU64,
    events: AtomicU64,
    closed_stored: AtomicU64,
    bad_frames: AtomicU64,
    unexpected: AtomicU64,
    out_of_order: AtomicU64,
    backfills: AtomicU64,
}

struct Conn {
    /// Names of streams to subscribe.
    tx: mpsc::UnboundedSender<String>,
    streams: usize,
    open: bool,
}

struct Shared<S> {
    config: StreamConfig,
    base: String,
    store: S,
    upstream: Upstream,
    now: Now,
    series: Mutex<HashMap<String, Series>>,
    conns: Mutex<Vec<Option<Conn>>>,
    counters: Counters,
    /// Event counts per second over the last seconds, for events/s.
    rate: Mutex<VecDeque<(i64, u64)>>,
    writer: mpsc::UnboundedSender<(String, Candle, (i64, i64))>,
}

/// The upstream streams of one candlecache. Cloning shares them.
pub(crate) struct Streams<S> {
    shared: Arc<Shared<S>>,
}

impl<S> Clone for Streams<S> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data that is still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The stream name Binance uses for a series.
pub(crate) fn stream_name(symbol: &Symbol, tf: Timeframe) -> String {
    format!("{}@kline_{tf}", symbol.as_str().to_ascii_lowercase())
}

impl<S: CandleStore + Clone + Send + Sync + 'static> Streams<S> {
    /// Streams from `config.url`, storing closed candles in `store` and backfilling gaps
    /// from `upstream`. Must be called inside a Tokio runtime (it starts the writer task).
    ///
    /// # Errors
    /// [`Error::Upstream`] if the configuration is invalid.
    pub(crate) fn new(
        config: StreamConfig,
        store: S,
        upstream: Upstream,
        now: Now,
    ) -> Result<Self> {
        config.validate()?;
        let base = stream_base(&config.url).unwrap_or_default();
        let (writer, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            config,
            base,
            store,
            upstream,
            now,
            series: Mutex::new(HashMap::new()),
            conns: Mutex::new(Vec::new()),
            counters: Counters::default(),
            rate: Mutex::new(VecDeque::new()),
            writer,
        });
        tokio::spawn(write_closed(Arc::downgrade(&shared), rx));
        Ok(Self { shared })
    }

    /// Notes that a request touched the series' live edge: subscribes it if it is not
    /// yet; returns what the stream knows when the stream can be trusted for the edge.
    pub(crate) fn touch(&self, symbol: &Symbol, tf: Timeframe) -> Option<View> {
        let sh = &self.shared;
        let now = (sh.now)();
        let mut series = lock(&sh.series);
        let s = self.series(&mut series, symbol, tf, now);
        let fresh = s
            .last_event
            .is_some_and(|t| now - t <= sh.config.stale_ms as i64);
        (s.state == State::Live && fresh).then(|| View {
            unstored: s.unstored.iter().cloned().collect(),
            forming: s.forming.clone(),
            generation: s.generation,
        })
    }

    /// The series' events for a served stream, subscribing upstream if needed. The
    /// series stays subscribed while a receiver is alive.
    pub(crate) fn watch(&self, symbol: &Symbol, tf: Timeframe) -> Watch {
        let now = (self.shared.now)();
        let mut series = lock(&self.shared.series);
        let s = self.series(&mut series, symbol, tf, now);
        Watch {
            current: s.last_raw.clone(),
            events: s.feed.subscribe(),
        }
    }

    /// The series, touched now; subscribed first if it is new.
    fn series<'a>(
        &self,
        series: &'a mut HashMap<String, Series>,
        symbol: &Symbol,
        tf: Timeframe,
        now: i64,
    ) -> &'a mut Series {
        let name = stream_name(symbol, tf);
        let s = series.entry(name).or_insert_with_key(|name| Series {
            symbol: symbol.clone(),
            tf,
            conn: self.assign(name),
            state: State::Subscribing,
            last_touch: now,
            last_event: None,
            events: 0,
            forming: None,
            unstored: VecDeque::new(),
            last_closed: None,
            generation: 0,
            feed: broadcast::channel(FEED_CAPACITY).0,
            last_raw: None,
        });
        s.last_touch = now;
        s
    }

    /// Picks a connection with room for one more stream (opening one if none has) and
    /// asks it to subscribe.
    fn assign(&self, name: &str) -> usize {
        let mut conns = lock(&self.shared.conns);
        let max = self.shared.config.max_streams_per_connection;
        let slot = conns
            .iter()
            .position(|c| c.as_ref().is_some_and(|c| c.streams < max))
            .or_else(|| conns.iter().position(Option::is_none));
        let idx = match slot {
            Some(i) if conns[i].is_some() => i,
            found => {
                let (tx, rx) = mpsc::unbounded_channel();
                let i = found.unwrap_or(conns.len());
                let conn = Conn {
                    tx,
                    streams: 0,
                    open: false,
                };
                if i == conns.len() {
                    conns.push(Some(conn));
                } else {
                    conns[i] = Some(conn);
                }
                tokio::spawn(run_connection(Arc::downgrade(&self.shared), i, rx));
                i
            }
        };
        if let Some(c) = conns[idx].as_mut() {
            c.streams += 1;
            let _ = c.tx.send(name.to_owned());
        }
        idx
    }

    /// The figures.
    pub(crate) fn stats(&self) -> StreamStats {
        let sh = &self.shared;
        let now = (sh.now)();
        let c = &sh.counters;
        let series = lock(&sh.series);
        let mut per_stream: Vec<StreamInfo> = series
            .iter()
            .map(|(name, s)| StreamInfo {
                stream: name.clone(),
                state: match s.state {
                    State::Subscribing => "subscribing",
                    State::Backfilling => "backfilling",
                    State::Live => "live",
                },
                events: s.events,
                watchers: s.feed.receiver_count() as u64,
                last_event_age_ms: s.last_event.map(|t| now - t),
            })
            .collect();
        per_stream.sort_by(|a, b| a.stream.cmp(&b.stream));
        let live = series
            .values()
            .filter(|s| {
                s.state == State::Live
                    && s.last_event
                        .is_some_and(|t| now - t <= sh.config.stale_ms as i64)
            })
            .count() as u64;
        drop(series);
        let connections = lock(&sh.conns).iter().flatten().filter(|c| c.open).count() as u64;
        let rate = lock(&sh.rate);
        let window: u64 = rate
            .iter()
            .filter(|(sec, _)| *sec >= now / 1000 - 10 && *sec < now / 1000)
            .map(|(_, n)| n)
            .sum();
        StreamStats {
            url: sh.base.clone(),
            connections,
            streams: per_stream.len() as u64,
            live_streams: live,
            reconnects: c.reconnects.load(Ordering::Relaxed),
            stalls: c.stalls.load(Ordering::Relaxed),
            connect_failures: c.connect_failures.load(Ordering::Relaxed),
            events: c.events.load(Ordering::Relaxed),
            events_per_sec: window as f64 / 10.0,
            closed_stored: c.closed_stored.load(Ordering::Relaxed),
            bad_frames: c.bad_frames.load(Ordering::Relaxed),
            unexpected: c.unexpected.load(Ordering::Relaxed),
            out_of_order: c.out_of_order.load(Ordering::Relaxed),
            backfills: c.backfills.load(Ordering::Relaxed),
            per_stream,
        }
    }
}

/// Stores closed candles in arrival order, one at a time, so the store's series grows
/// in order and a reader never sees a later candle without an earlier one.
async fn write_closed<S: CandleStore + Clone + Send + Sync + 'static>(
    shared: std::sync::Weak<Shared<S>>,
    mut rx: mpsc::UnboundedReceiver<(String, Candle, (i64, i64))>,
) {
    while let Some((name, candle, covered)) = rx.recv().await {
        let Some(sh) = shared.upgrade() else { return };
        let (symbol, tf) = match lock(&sh.series).get(&name) {
            Some(s) => (s.symbol.clone(), s.tf),
            None => continue,
        };
        let meta = MarketMeta::new(symbol.clone(), sh.upstream.exchange());
        let open_time = candle.open_time;
        let written = sh
            .store
            .write_covered(&meta, tf, vec![candle], covered)
            .await;
        if let Err(e) = &written {
            // The REST backfill of the next (re)connect, or the history read, fetches it.
            eprintln!("candlecache: stream {name}: storing the closed candle failed: {e}");
        } else {
            sh.counters.closed_stored.fetch_add(1, Ordering::Relaxed);
        }
        let mut series = lock(&sh.series);
        if let Some(s) = series.get_mut(&name) {
            s.unstored.retain(|c| c.open_time != open_time);
            s.generation += 1;
        }
    }
}

/// At most `per_sec` messages in any second. It never sleeps itself: the session keeps
/// reading events while a message waits for its turn.
struct Pace {
    per_sec: u32,
    sent: VecDeque<tokio::time::Instant>,
}

impl Pace {
    /// `None` if a message may go now, else when the next one may.
    fn next_free(&mut self) -> Option<tokio::time::Instant> {
        let now = tokio::time::Instant::now();
        while self
            .sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            self.sent.pop_front();
        }
        (self.sent.len() >= self.per_sec as usize)
            .then(|| self.sent.front().map(|t| *t + Duration::from_secs(1)))
            .flatten()
    }

    fn note(&mut self) {
        self.sent.push_back(tokio::time::Instant::now());
    }
}

/// Streams per SUBSCRIBE message, to keep each message small.
const PER_MESSAGE: usize = 100;

/// One upstream connection: connects, subscribes its streams, reads events, and
/// reconnects (backoff with jitter) on a drop, a refusal, silence or age.
async fn run_connection<S: CandleStore + Clone + Send + Sync + 'static>(
    shared: std::sync::Weak<Shared<S>>,
    idx: usize,
    mut rx: mpsc::UnboundedReceiver<String>,
) {
    let mut failures: u32 = 0;
    let mut wanted: Vec<String> = Vec::new();
    let mut first = true;
    loop {
        let Some(sh) = shared.upgrade() else { return };
        {
            // Under the lock `assign` sends with, so no subscription is sent to a
            // connection that is going away.
            let mut conns = lock(&sh.conns);
            while let Ok(name) = rx.try_recv() {
                apply(&mut wanted, name);
            }
            if wanted.is_empty() && !first {
                // Nothing left to stream: give the slot back.
                conns[idx] = None;
                return;
            }
        }
        first = false;
        let config = sh.config.clone();
        let url = format!("{}/stream", sh.base);
        drop(sh);
        let connected = tokio::time::timeout(Duration::from_secs(10), connect(&url)).await;
        let ws = match connected {
            Ok(Ok(ws)) => ws,
            Ok(Err(e)) => {
                failed(&shared, &mut failures, &config, &e).await;
                continue;
            }
            Err(_) => {
                failed(&shared, &mut failures, &config, "connect timed out").await;
                continue;
            }
        };
        let Some(sh) = shared.upgrade() else { return };
        if let Some(Some(c)) = lock(&sh.conns).get_mut(idx) {
            c.open = true;
        }
        drop(sh);
        let started = tokio::time::Instant::now();
        let end = session(&shared, idx, ws, &mut rx, &mut wanted, &config).await;
        let Some(sh) = shared.upgrade() else { return };
        if let Some(Some(c)) = lock(&sh.conns).get_mut(idx) {
            c.open = false;
        }
        // Every series of this connection must be backfilled again before it is trusted.
        for s in lock(&sh.series).values_mut().filter(|s| s.conn == idx) {
            s.state = State::Subscribing;
            s.last_closed = None;
        }
        if started.elapsed() >= Duration::from_secs(60) {
            failures = 0;
        }
        match end {
            SessionEnd::Empty => {}
            SessionEnd::Stalled => {
                sh.counters.stalls.fetch_add(1, Ordering::Relaxed);
                sh.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                eprintln!("candlecache: upstream stream {url} silent; reconnecting");
            }
            SessionEnd::Rotate => {
                sh.counters.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            SessionEnd::Dropped(why) => {
                sh.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                eprintln!("candlecache: upstream stream {url} dropped ({why}); reconnecting");
                drop(sh);
                failures += 1;
                tokio::time::sleep(backoff(&config, failures)).await;
            }
        }
    }
}

async fn failed<S>(
    shared: &std::sync::Weak<Shared<S>>,
    failures: &mut u32,
    config: &StreamConfig,
    why: &str,
) {
    if let Some(sh) = shared.upgrade() {
        sh.counters.connect_failures.fetch_add(1, Ordering::Relaxed);
        if *failures == 0 {
            eprintln!(
                "candlecache: upstream stream {}: {why}; serving the edge over REST until it connects",
                sh.base
            );
        }
    }
    *failures += 1;
    tokio::time::sleep(backoff(config, *failures)).await;
}

/// Exponential backoff with ±50 % jitter so many instances do not reconnect in step.
fn backoff(config: &StreamConfig, failures: u32) -> Duration {
    let exp = config
        .backoff_base_ms
        .saturating_mul(1u64 << failures.saturating_sub(1).min(16))
        .min(config.backoff_max_ms);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    // A cheap spread: the clock's nanoseconds, mixed.
    let mix = nanos.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 33;
    let jitter = exp / 2 + mix % (exp.max(1));
    Duration::from_millis(jitter.min(config.backoff_max_ms))
}

fn apply(wanted: &mut Vec<String>, name: String) {
    if !wanted.contains(&name) {
        wanted.push(name);
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str) -> std::result::Result<Ws, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut ws_config = WebSocketConfig::default();
    // Kline events are a few hundred bytes; nothing legitimate comes near this.
    ws_config.max_message_size = Some(1 << 20);
    ws_config.max_frame_size = Some(1 << 20);
    let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(
        url,
        Some(ws_config),
        true,
        Some(tokio_tungstenite::Connector::Rustls(Arc::new(tls))),
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(ws)
}

enum SessionEnd {
    Empty,
    Stalled,
    Rotate,
    Dropped(String),
}

async fn session<S: CandleStore + Clone + Send + Sync + 'static>(
    shared: &std::sync::Weak<Shared<S>>,
    idx: usize,
    ws: Ws,
    rx: &mut mpsc::UnboundedReceiver<String>,
    wanted: &mut Vec<String>,
    config: &StreamConfig,
) -> SessionEnd {
    let (mut sink, mut stream) = ws.split();
    let mut pace = Pace {
        per_sec: config.max_messages_per_sec,
        sent: VecDeque::new(),
    };
    let mut next_id: u64 = 1;
    let mut subscribed: Vec<String> = Vec::new();
    let started = tokio::time::Instant::now();
    let mut last_frame = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Bring the subscriptions in line with what is wanted, a paced message at a time.
        let add: Vec<String> = wanted
            .iter()
            .filter(|w| !subscribed.contains(w))
            .take(PER_MESSAGE)
            .cloned()
            .collect();
        let remove: Vec<String> = subscribed
            .iter()
            .filter(|s| !wanted.contains(s))
            .take(PER_MESSAGE)
            .cloned()
            .collect();
        for (method, names) in [("SUBSCRIBE", &add), ("UNSUBSCRIBE", &remove)] {
            if names.is_empty() || pace.next_free().is_some() {
                continue;
            }
            pace.note();
            let msg = serde_json::json!({"method": method, "params": names, "id": next_id});
            next_id += 1;
            if let Err(e) = sink.send(Message::text(msg.to_string())).await {
                return SessionEnd::Dropped(e.to_string());
            }
            if method == "SUBSCRIBE" {
                subscribed.extend(names.iter().cloned());
            } else {
                subscribed.retain(|s| !names.contains(s));
            }
        }
        if wanted.is_empty() {
            let _ = sink.send(Message::Close(None)).await;
            return SessionEnd::Empty;
        }
        let pending = wanted.iter().any(|w| !subscribed.contains(w))
            || subscribed.iter().any(|s| !wanted.contains(s));
        let turn = pace.next_free().unwrap_or_else(tokio::time::Instant::now);
        tokio::select! {
            frame = stream.next() => {
                last_frame = tokio::time::Instant::now();
                match frame {
                    None => return SessionEnd::Dropped("closed".into()),
                    Some(Err(e)) => return SessionEnd::Dropped(e.to_string()),
                    Some(Ok(Message::Text(t))) => {
                        let Some(sh) = shared.upgrade() else { return SessionEnd::Empty };
                        on_text(&sh, idx, t.as_str());
                    }
                    Some(Ok(Message::Close(_))) => return SessionEnd::Dropped("closed by the upstream".into()),
                    Some(Ok(Message::Binary(_))) => {
                        if let Some(sh) = shared.upgrade() {
                            sh.counters.bad_frames.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    // Pings are answered by tungstenite on the next read or write.
                    Some(Ok(_)) => {}
                }
            }
            cmd = rx.recv() => match cmd {
                Some(cmd) => apply(wanted, cmd),
                None => return SessionEnd::Empty,
            },
            _ = tick.tick() => {
                if last_frame.elapsed() >= Duration::from_millis(config.watchdog_ms) {
                    return SessionEnd::Stalled;
                }
                if started.elapsed() >= Duration::from_millis(config.rotate_ms) {
                    return SessionEnd::Rotate;
                }
                let Some(sh) = shared.upgrade() else { return SessionEnd::Empty };
                unsubscribe_idle(&sh, idx, wanted);
                // Flushes a pong tungstenite may have queued.
                let _ = sink.flush().await;
            }
            // Wake when the next paced subscription change may go.
            () = tokio::time::sleep_until(turn), if pending => {}
        }
    }
}

/// Drops the series of connection `idx` nobody asked for within `idle_ms`.
fn unsubscribe_idle<S>(sh: &Shared<S>, idx: usize, wanted: &mut Vec<String>) {
    let now = (sh.now)();
    let idle = sh.config.idle_ms as i64;
    let mut series = lock(&sh.series);
    let gone: Vec<String> = series
        .iter()
        .filter(|(_, s)| s.conn == idx && now - s.last_touch > idle && s.feed.receiver_count() == 0)
        .map(|(n, _)| n.clone())
        .collect();
    for name in &gone {
        series.remove(name);
        wanted.retain(|w| w != name);
    }
    drop(series);
    if !gone.is_empty() {
        if let Some(Some(c)) = lock(&sh.conns).get_mut(idx) {
            c.streams = c.streams.saturating_sub(gone.len());
        }
    }
}

/// Handles one text frame: a kline event (combined `{"stream","data"}` or raw), a reply
/// to SUBSCRIBE, or an error. Anything else is counted and dropped.
fn on_text<S: CandleStore + Clone + Send + Sync + 'static>(
    sh: &Arc<Shared<S>>,
    idx: usize,
    text: &str,
) {
    let bad = |why: &str| {
        let n = sh.counters.bad_frames.fetch_add(1, Ordering::Relaxed) + 1;
        // The first few are logged; a flood is counted.
        if n <= 5 {
            eprintln!(
                "candlecache: upstream stream frame ignored ({why}): {}",
                text.chars().take(200).collect::<String>()
            );
        }
    };
    // One pass over the frame: a combined frame's `data` is kept as the upstream wrote
    // it (served streams relay those bytes) and parsed on its own.
    #[derive(Deserialize)]
    struct Frame<'a> {
        #[serde(borrow)]
        stream: Option<&'a RawValue>,
        #[serde(borrow)]
        data: Option<&'a RawValue>,
    }
    let Ok(frame) = serde_json::from_str::<Frame<'_>>(text) else {
        return bad("not JSON");
    };
    let combined = frame
        .stream
        .and_then(|s| serde_json::from_str::<&str>(s.get()).ok())
        .zip(frame.data);
    let (stream, event) = match combined {
        Some((s, d)) => (Some(s), d.get()),
        None => (None, text.trim()),
    };
    let Ok(data) = serde_json::from_str::<Value>(event) else {
        return bad("not JSON");
    };
    if stream.is_none() {
        if data.get("result").is_some() && data.get("id").is_some() {
            return;
        }
        if let Some(err) = data
            .get("error")
            .or_else(|| data.get("code").map(|_| &data))
        {
            return bad(&format!("upstream error {err}"));
        }
    }
    if data.get("e").and_then(Value::as_str) != Some("kline") {
        return bad("not a kline event");
    }
    let Some(k) = data.get("k") else {
        return bad("no k");
    };
    let (Some(sym), Some(interval)) = (
        k.get("s").and_then(Value::as_str),
        k.get("i").and_then(Value::as_str),
    ) else {
        return bad("no symbol or interval");
    };
    let name = format!("{}@kline_{interval}", sym.to_ascii_lowercase());
    if stream.is_some_and(|s| s != name) || data.get("s").and_then(Value::as_str) != Some(sym) {
        sh.counters.unexpected.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let now = (sh.now)();
    let mut series = lock(&sh.series);
    let Some(s) = series.get_mut(&name).filter(|s| s.conn == idx) else {
        drop(series);
        sh.counters.unexpected.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let candle = match kline_candle(k, s.tf) {
        Ok(c) => c,
        Err(why) => {
            drop(series);
            return bad(&why);
        }
    };
    let closed = k.get("x").and_then(Value::as_bool) == Some(true);
    let newest = s
        .forming
        .as_ref()
        .map(|f| f.open_time)
        .max(s.last_closed)
        .unwrap_or(i64::MIN);
    if candle.open_time < newest || (closed && Some(candle.open_time) == s.last_closed) {
        drop(series);
        sh.counters.out_of_order.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if s.last_event
        .is_some_and(|t| now - t > sh.config.stale_ms as i64)
    {
        // Events stopped for a while (the edge was served over REST meanwhile): what
        // came before is not known to be continuous, so backfill again.
        s.state = State::Subscribing;
        s.last_closed = None;
    }
    sh.counters.events.fetch_add(1, Ordering::Relaxed);
    s.events += 1;
    s.last_event = Some(now);
    // Everything opening before this is closed upstream.
    let closed_end = if closed {
        s.tf.next(candle.open_time)
    } else {
        candle.open_time
    };
    if closed {
        // Consecutive closes on one connection prove the slots between them empty.
        let from = s.last_closed.map_or(candle.open_time, |p| s.tf.next(p));
        let covered = (from, s.tf.next(candle.open_time));
        s.last_closed = Some(candle.open_time);
        if s.forming
            .as_ref()
            .is_some_and(|f| f.open_time <= candle.open_time)
        {
            s.forming = None;
        }
        s.unstored.push_back(candle.clone());
        let _ = sh.writer.send((name.clone(), candle, covered));
    } else {
        s.forming = Some(candle);
    }
    let raw = Bytes::copy_from_slice(event.as_bytes());
    s.last_raw = Some(raw.clone());
    // No receiver is not an error: the event is kept as `last_raw` for the next.
    let _ = s.feed.send(raw);
    if s.state == State::Subscribing {
        s.state = State::Backfilling;
        let (symbol, tf) = (s.symbol.clone(), s.tf);
        drop(series);
        tokio::spawn(backfill(
            Arc::downgrade(sh),
            name,
            symbol,
            tf,
            idx,
            closed_end,
        ));
    } else {
        drop(series);
    }
    let mut rate = lock(&sh.rate);
    let sec = now / 1000;
    match rate.back_mut() {
        Some((s, n)) if *s == sec => *n += 1,
        _ => rate.push_back((sec, 1)),
    }
    while rate.len() > 12 {
        rate.pop_front();
    }
}

/// After the first event of a (re)subscription: the closed candles the store lacks in
/// the edge chunks, up to `closed_end` (where the stream's first event says the present
/// begins), are fetched over REST; then the stream is trusted for the edge.
async fn backfill<S: CandleStore + Clone + Send + Sync + 'static>(
    shared: std::sync::Weak<Shared<S>>,
    name: String,
    symbol: Symbol,
    tf: Timeframe,
    idx: usize,
    closed_end: i64,
) {
    let Some(sh) = shared.upgrade() else { return };
    sh.counters.backfills.fetch_add(1, Ordering::Relaxed);
    let from = crate::read::edge_chunk_start(tf, (sh.now)()).min(crate::read::edge_chunk_start(
        tf,
        closed_end - 1 + crate::upstream::CLOSE_GRACE_MS,
    ));
    // The upstream's own stream says everything before `closed_end` is final, so the
    // backfill may store up to there without waiting out the usual grace.
    let as_of: Now = Arc::new(move || closed_end + crate::upstream::CLOSE_GRACE_MS);
    let result = sh
        .upstream
        .fill(&sh.store, &symbol, tf, (from, closed_end), &as_of, &|_| {})
        .await;
    let mut series = lock(&sh.series);
    let Some(s) = series.get_mut(&name).filter(|s| s.conn == idx) else {
        return;
    };
    match result {
        Ok(_) if s.state == State::Backfilling => {
            s.state = State::Live;
            s.generation += 1;
        }
        Ok(_) => {}
        Err(e) => {
            // Tried again on the next event; meanwhile the edge comes over REST.
            eprintln!("candlecache: stream {name}: backfill failed: {e}");
            s.state = State::Subscribing;
        }
    }
}

/// The candle of a kline event's `k` object, validated against the interval.
fn kline_candle(k: &Value, tf: Timeframe) -> std::result::Result<Candle, String> {
    let dec = |key: &str| -> std::result::Result<Option<Decimal>, String> {
        match k.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => s.parse().map(Some).map_err(|e: Error| e.to_string()),
            Some(other) => Err(format!("{key} is {other}, not a decimal string")),
        }
    };
    let req = |key: &str| dec(key)?.ok_or_else(|| format!("{key} is missing"));
    let open_time = k
        .get("t")
        .and_then(Value::as_i64)
        .ok_or("t is not an integer")?;
    let c = Candle {
        open_time,
        open: req("o")?,
        high: req("h")?,
        low: req("l")?,
        close: req("c")?,
        volume: req("v")?,
        quote_volume: dec("q")?,
        trades: k.get("n").and_then(Value::as_u64),
        taker_base: dec("V")?,
        taker_quote: dec("Q")?,
    };
    c.validate(tf)?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_urls_are_checked_and_normalized() {
        assert_eq!(
            stream_base("wss://stream.binance.com:9443/stream").as_deref(),
            Some("wss://stream.binance.com:9443")
        );
        assert_eq!(
            stream_base("ws://127.0.0.1:9/ws/").as_deref(),
            Some("ws://127.0.0.1:9")
        );
        for bad in ["", "http://x", "wss://", "ws://a b"] {
            assert!(stream_base(bad).is_none(), "{bad}");
        }
        assert_eq!(
            default_stream_url("https://api.binance.com"),
            Some("wss://stream.binance.com:9443")
        );
        assert_eq!(default_stream_url("http://127.0.0.1:8080"), None);
        assert_eq!(
            default_futures_stream_url("https://fapi.binance.com"),
            Some("wss://fstream.binance.com/market")
        );
        assert_eq!(default_futures_stream_url("http://127.0.0.1:8080"), None);
        assert_eq!(
            stream_base("wss://fstream.binance.com/market/stream").as_deref(),
            Some("wss://fstream.binance.com/market")
        );
    }

    #[test]
    fn kline_events_are_validated() {
        let k: Value = serde_json::from_str(
            r#"{"t":60000,"o":"1.5","h":"2","l":"1","c":"1.75","v":"10","q":"15","n":3,"V":"4","Q":"6","x":false}"#,
        )
        .unwrap();
        let c = kline_candle(&k, Timeframe::M1).unwrap();
        assert_eq!(c.close.to_string(), "1.75");
        assert_eq!(c.trades, Some(3));
        let mut off = k.clone();
        off["t"] = 61_000.into();
        assert!(kline_candle(&off, Timeframe::M1)
            .unwrap_err()
            .contains("grid"));
        let mut low = k;
        low["l"] = "3".into();
        assert!(kline_candle(&low, Timeframe::M1).is_err());
    }

    #[test]
    fn backoff_grows_with_jitter_and_stays_bounded() {
        let c = StreamConfig::default();
        for f in 1..40 {
            let d = backoff(&c, f).as_millis() as u64;
            assert!(d >= 250 && d <= c.backoff_max_ms, "{f}: {d}");
        }
        assert!(backoff(&c, 10) >= Duration::from_millis(15_000));
    }
}
