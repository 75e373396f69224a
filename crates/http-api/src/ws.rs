//! Binance-compatible WebSocket market streams served to clients, so ccxt pro and
//! freqtrade with websockets on work with only URLs changed: `/ws/<stream>` (raw
//! events), `/ws` and `/ws/<anything without @>` (ccxt pro's `/ws/0`, subscribe by
//! message), `/stream?streams=a/b` (combined `{"stream","data"}` frames); the methods
//! SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY and GET_PROPERTY with
//! Binance's replies and errors.
//!
//! Fan-out: one upstream subscription per stream however many clients (the read path's
//! streams keep it), one task per served stream that encodes each event once (raw and,
//! when a client wants it, combined) and hands the same bytes to every subscriber's
//! bounded queue. A client whose queue is full is closed with 1008; memory never grows
//! with a slow reader.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use market_cache::{Kind, Service, Symbol, Timeframe};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

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

#[derive(Default)]
struct Counters {
    frames_sent: AtomicU64,
    refused: AtomicU64,
    closed_slow: AtomicU64,
    closed_rate: AtomicU64,
    closed_pong: AtomicU64,
    bad_requests: AtomicU64,
}

/// The served streams of one server.
pub(crate) struct Hub {
    read: Service,
    config: WsConfig,
    topics: Mutex<HashMap<String, Arc<Topic>>>,
    connections: AtomicUsize,
    next_id: AtomicU64,
    stop: watch::Sender<bool>,
    counters: Arc<Counters>,
}

/// One served stream and its subscribers.
struct Topic {
    name: String,
    inner: Mutex<TopicInner>,
}

struct TopicInner {
    /// The latest event, for a client joining mid-candle.
    last: Option<Bytes>,
    subs: Vec<Arc<Client>>,
    pump: Option<tokio::task::AbortHandle>,
}

struct Client {
    id: u64,
    /// The market of the connection's path: spot (`/ws`, `/stream`) or USD-M futures
    /// (`/market/ws`, `/market/stream`, as Binance's futures streams are named).
    kind: Kind,
    tx: mpsc::Sender<Message>,
    combined: AtomicBool,
    /// The first reason to close wins; both halves of the connection watch it.
    close: watch::Sender<Option<(u16, &'static str)>>,
}

impl Client {
    /// Asks both halves to close with `code`; true if this was the first reason given.
    fn close(&self, code: u16, reason: &'static str) -> bool {
        self.close.send_if_modified(|c| {
            let first = c.is_none();
            if first {
                *c = Some((code, reason));
            }
            first
        })
    }

    /// Queues a frame; a full queue closes the client (1008).
    fn push(&self, m: Message, counters: &Counters) -> bool {
        match self.tx.try_send(m) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if self.close(1008, "slow client: too many frames queued") {
                    counters.closed_slow.fetch_add(1, Ordering::Relaxed);
                }
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data: still usable after a panic elsewhere.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A path served as streams, and what it asks for.
pub(crate) fn is_stream_path(path: &str) -> bool {
    let (_, path) = market(path);
    path == "/ws" || path.starts_with("/ws/") || path == "/stream" || path == "/stream/"
}

/// The market a stream path serves and the path within it: `/market/...` is USD-M futures
/// (`wss://fstream.binance.com/market/ws`), anything else spot.
pub(crate) fn market(path: &str) -> (Kind, &str) {
    match path.strip_prefix("/market") {
        Some(rest) if rest.starts_with('/') => (Kind::Futures, rest),
        _ => (Kind::Spot, path),
    }
}

/// A topic per market and stream: `btcusdt@kline_1m` is another series on each market.
fn topic_key(kind: Kind, name: &str) -> String {
    match kind {
        Kind::Spot => name.to_owned(),
        other => format!("{other}|{name}"),
    }
}

/// A kline stream name, checked: `btcusdt@kline_1m` (the symbol in any case; served and
/// listed in lower case as Binance names them).
fn parse_stream(name: &str) -> std::result::Result<(String, Symbol, Timeframe), String> {
    let (sym, kind) = name
        .split_once('@')
        .ok_or_else(|| format!("invalid stream name `{name}`"))?;
    let interval = kind.strip_prefix("kline_").ok_or_else(|| {
        format!("unsupported stream `{name}`: candlecache serves kline streams (<symbol>@kline_<interval>)")
    })?;
    let tf: Timeframe = interval
        .parse()
        .map_err(|_| format!("invalid interval `{interval}` in stream `{name}`"))?;
    if tf.as_str() != interval {
        return Err(format!("invalid interval `{interval}` in stream `{name}`"));
    }
    let symbol: Symbol = sym
        .to_ascii_uppercase()
        .parse()
        .map_err(|_| format!("invalid symbol `{sym}` in stream `{name}`"))?;
    let canonical = format!("{}@kline_{}", sym.to_ascii_lowercase(), tf.as_str());
    Ok((canonical, symbol, tf))
}

type Target = (Vec<(String, Symbol, Timeframe)>, bool);

/// A parsed stream, if `kind`'s market has it: Binance's futures streams have no `1s`.
fn on_market(
    kind: Kind,
    s: (String, Symbol, Timeframe),
) -> std::result::Result<(String, Symbol, Timeframe), String> {
    if kind.is_futures() && s.2 == Timeframe::S1 {
        return Err(format!(
            "invalid interval `1s` in stream `{}`: the futures market has no 1s klines",
            s.0
        ));
    }
    Ok(s)
}

/// The streams a path and query ask for, and whether frames are combined.
fn target(path: &str, query: Option<&str>) -> Result<Target> {
    let mut names: Vec<&str> = Vec::new();
    let combined = if path == "/stream" || path == "/stream/" {
        for (k, v) in query
            .unwrap_or("")
            .split('&')
            .filter_map(|p| p.split_once('='))
        {
            if k == "streams" {
                names.extend(v.split('/').filter(|s| !s.is_empty()));
            }
        }
        true
    } else {
        let rest = path.trim_start_matches("/ws").trim_start_matches('/');
        if rest.contains('/') {
            return Err(Error::InvalidStream(format!(
                "`{path}`: one stream per /ws/<stream>; use /stream?streams=a/b for several"
            )));
        }
        // ccxt pro connects to /ws/0, /ws/1, ...: not a stream name, so a plain /ws.
        if rest.contains('@') {
            names.push(rest);
        }
        false
    };
    let mut streams = Vec::new();
    for n in names {
        let s = parse_stream(n).map_err(Error::InvalidStream)?;
        if !streams.iter().any(|(c, _, _)| *c == s.0) {
            streams.push(s);
        }
    }
    Ok((streams, combined))
}

impl Hub {
    pub(crate) fn new(read: Service, config: WsConfig) -> Self {
        Self {
            read,
            config,
            topics: Mutex::new(HashMap::new()),
            connections: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            stop: watch::channel(false).0,
            counters: Arc::default(),
        }
    }

    /// Closes every client with 1001 (going away).
    pub(crate) fn shutdown(&self) {
        self.stop.send_replace(true);
    }

    pub(crate) fn stats(&self) -> WsStats {
        let c = &self.counters;
        let topics = lock(&self.topics);
        WsStats {
            connections: self.connections.load(Ordering::Relaxed) as u64,
            streams: topics.len() as u64,
            subscriptions: topics
                .values()
                .map(|t| lock(&t.inner).subs.len() as u64)
                .sum(),
            frames_sent: c.frames_sent.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            closed_slow: c.closed_slow.load(Ordering::Relaxed),
            closed_rate: c.closed_rate.load(Ordering::Relaxed),
            closed_pong: c.closed_pong.load(Ordering::Relaxed),
            bad_requests: c.bad_requests.load(Ordering::Relaxed),
        }
    }

    /// Answers a stream handshake: 101 and a task serving the connection, or an error
    /// before any upgrade (bad stream, no upstream streams, too many connections).
    pub(crate) fn upgrade(
        self: &Arc<Self>,
        mut req: Request<Incoming>,
    ) -> Result<Response<http_body_util::Full<Bytes>>> {
        let (kind, path) = market(req.uri().path());
        let (streams, combined) = target(path, req.uri().query())?;
        let streams = streams
            .into_iter()
            .map(|s| on_market(kind, s))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(Error::InvalidStream)?;
        let headers = req.headers();
        let has = |name, token: &str| {
            headers.get_all(name).iter().any(|v| {
                v.to_str()
                    .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            })
        };
        let key = headers.get(SEC_WEBSOCKET_KEY).map(HeaderValue::as_bytes);
        let (true, true, Some(key)) = (has(UPGRADE, "websocket"), has(CONNECTION, "upgrade"), key)
        else {
            return Err(Error::UpgradeRequired(
                "this is a WebSocket endpoint: connect with a WebSocket client (Upgrade: websocket)"
                    .into(),
            ));
        };
        if headers
            .get("sec-websocket-version")
            .is_none_or(|v| v.as_bytes() != b"13")
        {
            return Err(Error::UpgradeRequired(
                "Sec-WebSocket-Version must be 13".into(),
            ));
        }
        if streams.len() > self.config.max_streams_per_connection {
            return Err(Error::InvalidStream(format!(
                "{} streams asked; at most {} a connection",
                streams.len(),
                self.config.max_streams_per_connection
            )));
        }
        if !self.read.has_streams(kind) {
            let how = if kind == Kind::Spot {
                "--upstream-ws / [upstream] ws"
            } else {
                "--upstream-futures-ws / [upstream] futures_ws"
            };
            return Err(Error::StreamsUnavailable(format!(
                "no {kind} upstream stream is configured ({how}); served streams relay the upstream's events"
            )));
        }
        let taken = self.connections.fetch_add(1, Ordering::AcqRel);
        if taken >= self.config.max_connections {
            self.connections.fetch_sub(1, Ordering::AcqRel);
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            return Err(Error::Busy(format!(
                "{} stream connections are open, the configured maximum",
                self.config.max_connections
            )));
        }
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key);
        let on_upgrade = hyper::upgrade::on(&mut req);
        let hub = self.clone();
        tokio::spawn(async move {
            let _slot = Slot(hub.clone());
            // A client that goes away during the handshake is not an error.
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            let mut ws_config = WebSocketConfig::default();
            ws_config.max_message_size = Some(hub.config.max_message_bytes);
            ws_config.max_frame_size = Some(hub.config.max_message_bytes);
            // Clients send a few small control messages; tungstenite's 128 KiB read
            // buffer per connection would be most of a client's memory.
            ws_config.read_buffer_size = 4 * 1024;
            ws_config.write_buffer_size = 16 * 1024;
            let ws = WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                Some(ws_config),
            )
            .await;
            hub.serve(ws, kind, streams, combined).await;
        });
        let mut resp = Response::new(http_body_util::Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = resp.headers_mut();
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Ok(v) = HeaderValue::from_str(&accept) {
            h.insert(SEC_WEBSOCKET_ACCEPT, v);
        }
        Ok(resp)
    }

    /// Serves one connection until either side closes it.
    async fn serve<T>(
        self: &Arc<Self>,
        ws: WebSocketStream<T>,
        kind: Kind,
        streams: Vec<(String, Symbol, Timeframe)>,
        combined: bool,
    ) where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(self.config.queue);
        let client = Arc::new(Client {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            kind,
            tx,
            combined: AtomicBool::new(combined),
            close: watch::channel(None).0,
        });
        let (sink, mut stream) = ws.split();
        let writer = tokio::spawn(write(
            sink,
            rx,
            client.close.subscribe(),
            self.stop.subscribe(),
        ));
        let mut subscribed: Vec<String> = Vec::new();
        for (name, symbol, tf) in streams {
            self.subscribe(&client, &name, &symbol, tf);
            subscribed.push(name);
        }
        let mut closing = client.close.subscribe();
        let mut stop = self.stop.subscribe();
        let mut recent: std::collections::VecDeque<tokio::time::Instant> =
            std::collections::VecDeque::new();
        let ping_every = Duration::from_millis(self.config.ping_ms);
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
        let mut last_pong = tokio::time::Instant::now();
        let pong_timeout = Duration::from_millis(self.config.pong_timeout_ms);
        loop {
            tokio::select! {
                frame = stream.next() => {
                    let counted = matches!(
                        frame,
                        Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_)))
                    );
                    if counted && !self.within_rate(&mut recent) {
                        self.counters.closed_rate.fetch_add(1, Ordering::Relaxed);
                        client.close(1008, "too many messages: at most 5 a second");
                        break;
                    }
                    match frame {
                        None | Some(Ok(Message::Close(_))) => {
                            client.close(1000, "");
                            break;
                        }
                        Some(Err(e)) => {
                            use tokio_tungstenite::tungstenite::Error as WsError;
                            let (code, reason) = match e {
                                WsError::Capacity(_) => (1009, "message too big"),
                                WsError::Protocol(_) | WsError::Utf8(_) => (1002, "protocol error"),
                                _ => (1000, ""),
                            };
                            client.close(code, reason);
                            break;
                        }
                        Some(Ok(Message::Text(t))) => {
                            let mut added = Vec::new();
                            let reply = self.control(&client, t.as_str(), &mut subscribed, &mut added);
                            client.push(Message::text(reply), &self.counters);
                            // After the reply, as Binance orders them: each new stream's
                            // current event.
                            for (name, symbol, tf) in added {
                                self.subscribe(&client, &name, &symbol, tf);
                            }
                        }
                        Some(Ok(Message::Binary(_))) => {
                            self.counters.bad_requests.fetch_add(1, Ordering::Relaxed);
                            client.close(1003, "binary frames are not accepted; send JSON text");
                            break;
                        }
                        Some(Ok(Message::Pong(_))) => last_pong = tokio::time::Instant::now(),
                        // Pings are answered by tungstenite itself.
                        Some(Ok(_)) => {}
                    }
                }
                _ = ping.tick() => {
                    if last_pong.elapsed() >= pong_timeout {
                        self.counters.closed_pong.fetch_add(1, Ordering::Relaxed);
                        client.close(1008, "no pong within the timeout");
                        break;
                    }
                    client.push(Message::Ping(Bytes::new()), &self.counters);
                }
                _ = closing.changed() => break,
                _ = stop.changed() => {
                    client.close(1001, "server shutting down");
                    break;
                }
            }
        }
        for name in &subscribed {
            self.unsubscribe(&client, name);
        }
        // The writer sends the close frame (bounded in time) and ends.
        let _ = writer.await;
    }

    /// True while the client stays within its messages a second.
    fn within_rate(&self, recent: &mut std::collections::VecDeque<tokio::time::Instant>) -> bool {
        let now = tokio::time::Instant::now();
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            recent.pop_front();
        }
        recent.push_back(now);
        recent.len() <= self.config.max_messages_per_sec
    }

    /// Answers one control message as Binance does.
    fn control(
        &self,
        client: &Arc<Client>,
        text: &str,
        subscribed: &mut Vec<String>,
        added: &mut Vec<(String, Symbol, Timeframe)>,
    ) -> String {
        let reply = match parse_request(text) {
            Ok(req) => self.apply(client, req, subscribed, added),
            Err((id, err)) => Err((id, err)),
        };
        // Written by hand to keep Binance's key order.
        match reply {
            Ok((id, result)) => format!("{{\"result\":{result},\"id\":{id}}}"),
            Err((id, (code, msg))) => {
                self.counters.bad_requests.fetch_add(1, Ordering::Relaxed);
                let error = json!({"code": code, "msg": msg});
                format!("{{\"error\":{error},\"id\":{id}}}")
            }
        }
    }

    fn apply(
        &self,
        client: &Arc<Client>,
        req: ControlRequest,
        subscribed: &mut Vec<String>,
        added: &mut Vec<(String, Symbol, Timeframe)>,
    ) -> std::result::Result<(Value, Value), (Value, (i32, String))> {
        let id = req.id;
        let fail = |code: i32, msg: String| Err((id.clone(), (code, msg)));
        let strings = |params: &[Value]| -> Option<Vec<String>> {
            params
                .iter()
                .map(|p| p.as_str().map(str::to_owned))
                .collect()
        };
        match req.method.as_str() {
            "SUBSCRIBE" | "UNSUBSCRIBE" => {
                let Some(names) = strings(&req.params) else {
                    return fail(2, "Invalid request: stream names must be strings".into());
                };
                let mut parsed = Vec::with_capacity(names.len());
                for n in &names {
                    match parse_stream(n).and_then(|s| on_market(client.kind, s)) {
                        Ok(s) => parsed.push(s),
                        Err(e) => return fail(2, format!("Invalid request: {e}")),
                    }
                }
                if req.method == "SUBSCRIBE" {
                    let mut new: Vec<(String, Symbol, Timeframe)> = Vec::new();
                    for p in parsed {
                        if !subscribed.contains(&p.0) && !new.iter().any(|q| q.0 == p.0) {
                            new.push(p);
                        }
                    }
                    let total = subscribed.len() + new.len();
                    if total > self.config.max_streams_per_connection {
                        return fail(
                            2,
                            format!(
                                "Invalid request: too many streams: at most {} a connection ({total} asked)",
                                self.config.max_streams_per_connection
                            ),
                        );
                    }
                    for (name, symbol, tf) in new {
                        subscribed.push(name.clone());
                        added.push((name, symbol, tf));
                    }
                } else {
                    for (name, _, _) in parsed {
                        if let Some(i) = subscribed.iter().position(|s| *s == name) {
                            subscribed.remove(i);
                            self.unsubscribe(client, &name);
                        }
                    }
                }
                Ok((id, Value::Null))
            }
            "LIST_SUBSCRIPTIONS" => Ok((id, json!(subscribed))),
            "SET_PROPERTY" => match req.params.as_slice() {
                [Value::String(p), v] if p == "combined" => match v {
                    Value::Bool(b) => {
                        client.combined.store(*b, Ordering::Relaxed);
                        Ok((id, Value::Null))
                    }
                    _ => fail(1, "Invalid value type: expected Boolean".into()),
                },
                [Value::String(_), _] => fail(0, "Unknown property".into()),
                _ => fail(2, "Invalid request: property name must be a string".into()),
            },
            "GET_PROPERTY" => match req.params.as_slice() {
                [Value::String(p)] if p == "combined" => {
                    Ok((id, Value::Bool(client.combined.load(Ordering::Relaxed))))
                }
                [Value::String(_)] => fail(0, "Unknown property".into()),
                _ => fail(2, "Invalid request: property name must be a string".into()),
            },
            other => fail(
                2,
                format!(
                    "Invalid request: unknown variant `{other}`, expected one of `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`"
                ),
            ),
        }
    }

    /// Adds a client to a stream (starting the stream's pump if it is the first) and
    /// queues the latest event for it.
    fn subscribe(&self, client: &Arc<Client>, name: &str, symbol: &Symbol, tf: Timeframe) {
        let key = topic_key(client.kind, name);
        let mut topics = lock(&self.topics);
        let topic = match topics.get(&key) {
            Some(t) => t.clone(),
            None => {
                let symbol = symbol.clone().with_kind(client.kind);
                let Some(w) = self.read.watch(&symbol, tf) else {
                    return;
                };
                let topic = Arc::new(Topic {
                    name: name.to_owned(),
                    inner: Mutex::new(TopicInner {
                        last: w.current,
                        subs: Vec::new(),
                        pump: None,
                    }),
                });
                let pump = tokio::spawn(pump(topic.clone(), w.events, self.counters.clone()));
                lock(&topic.inner).pump = Some(pump.abort_handle());
                topics.insert(key, topic.clone());
                topic
            }
        };
        drop(topics);
        let mut inner = lock(&topic.inner);
        if let Some(last) = &inner.last {
            if let Some(m) = frame(&topic.name, last, client.combined.load(Ordering::Relaxed)) {
                client.push(m, &self.counters);
            }
        }
        inner.subs.push(client.clone());
    }

    /// Removes a client from a stream; the last one out stops the pump, so the upstream
    /// subscription can go idle.
    fn unsubscribe(&self, client: &Client, name: &str) {
        let key = topic_key(client.kind, name);
        let mut topics = lock(&self.topics);
        let Some(topic) = topics.get(&key).cloned() else {
            return;
        };
        let mut inner = lock(&topic.inner);
        inner.subs.retain(|c| c.id != client.id);
        if inner.subs.is_empty() {
            if let Some(p) = inner.pump.take() {
                p.abort();
            }
            drop(inner);
            topics.remove(&key);
        }
    }
}

/// Gives a connection slot back when its task ends.
struct Slot(Arc<Hub>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An event as a frame: the upstream's object as is, or wrapped for combined streams.
fn frame(name: &str, event: &Bytes, combined: bool) -> Option<Message> {
    let bytes = if combined {
        let mut b = Vec::with_capacity(event.len() + name.len() + 24);
        b.extend_from_slice(b"{\"stream\":\"");
        b.extend_from_slice(name.as_bytes());
        b.extend_from_slice(b"\",\"data\":");
        b.extend_from_slice(event);
        b.push(b'}');
        Bytes::from(b)
    } else {
        event.clone()
    };
    Utf8Bytes::try_from(bytes).ok().map(Message::Text)
}

/// Hands each event of a stream to its subscribers, encoded once per form.
async fn pump(topic: Arc<Topic>, mut events: broadcast::Receiver<Bytes>, counters: Arc<Counters>) {
    loop {
        let event = match events.recv().await {
            Ok(e) => e,
            // This task only copies references; falling behind means a burst, not a
            // slow client. Carry on from the newest.
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let Some(raw) = frame(&topic.name, &event, false) else {
            continue;
        };
        let mut combined: Option<Message> = None;
        let mut inner = lock(&topic.inner);
        inner.last = Some(event.clone());
        let mut sent = 0;
        for c in &inner.subs {
            let m = if c.combined.load(Ordering::Relaxed) {
                match &combined {
                    Some(m) => m.clone(),
                    None => {
                        let Some(m) = frame(&topic.name, &event, true) else {
                            continue;
                        };
                        combined = Some(m.clone());
                        m
                    }
                }
            } else {
                raw.clone()
            };
            if c.push(m, &counters) {
                sent += 1;
            }
        }
        drop(inner);
        counters.frames_sent.fetch_add(sent, Ordering::Relaxed);
    }
}

/// How long a closing client's socket gets to take the close frame (a slow client's
/// socket may still be full of events), after which the connection is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Writes a client's queue to its socket, batching what is queued; on a close reason
/// (or the server stopping) sends the close frame within [`CLOSE_GRACE`].
async fn write<S>(
    mut sink: S,
    mut rx: mpsc::Receiver<Message>,
    mut close: watch::Receiver<Option<(u16, &'static str)>>,
    mut stop: watch::Receiver<bool>,
) where
    S: futures_util::Sink<Message> + Unpin,
{
    let mut going_away = false;
    loop {
        tokio::select! {
            biased;
            _ = close.changed() => break,
            _ = stop.changed() => {
                going_away = true;
                break;
            }
            m = rx.recv() => {
                let Some(m) = m else { break };
                let sent = async {
                    sink.feed(m).await?;
                    while let Ok(m) = rx.try_recv() {
                        sink.feed(m).await?;
                    }
                    sink.flush().await
                };
                tokio::select! {
                    r = sent => if r.is_err() { return },
                    // A socket that does not drain is abandoned when the client is closed.
                    _ = close.changed() => break,
                }
            }
        }
    }
    let reason = *close.borrow();
    let (code, reason) = match (reason, going_away) {
        (Some(r), _) => r,
        (None, true) => (1001, "server shutting down"),
        (None, false) => (1000, ""),
    };
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        sink.send(Message::Close(Some(frame))).await
    })
    .await;
}

/// A control message: `{"method": ..., "params": [...], "id": ...}`.
struct ControlRequest {
    method: String,
    params: Vec<Value>,
    id: Value,
}

type RequestError = (Value, (i32, String));

/// Reads a control message, with Binance's errors for what is wrong.
fn parse_request(text: &str) -> std::result::Result<ControlRequest, RequestError> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| (Value::Null, (3, format!("Invalid JSON: {e}"))))?;
    let Value::Object(map) = v else {
        return Err((
            Value::Null,
            (2, "Invalid request: expected an object".into()),
        ));
    };
    let id = match map.get("id") {
        Some(Value::Number(n)) if n.is_u64() => Value::Number(n.clone()),
        Some(Value::String(s))
            if s.len() <= 36 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') =>
        {
            Value::String(s.clone())
        }
        Some(Value::Null) | None => Value::Null,
        Some(_) => {
            return Err((
                Value::Null,
                (
                    2,
                    "Invalid request: request ID must be an unsigned integer".into(),
                ),
            ))
        }
    };
    if let Some(k) = map
        .keys()
        .find(|k| !matches!(k.as_str(), "method" | "params" | "id"))
    {
        return Err((
            id,
            (
                2,
                format!("Invalid request: unknown field `{k}`; too many parameters"),
            ),
        ));
    }
    let method = match map.get("method") {
        Some(Value::String(m)) => m.clone(),
        Some(_) => return Err((id, (2, "Invalid request: method must be a string".into()))),
        None => return Err((id, (2, "Invalid request: missing field `method`".into()))),
    };
    let params = match map.get("params") {
        Some(Value::Array(a)) => a.clone(),
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err((id, (2, "Invalid request: params must be an array".into()))),
    };
    Ok(ControlRequest { method, params, id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_are_checked_and_canonical() {
        let (n, s, tf) = parse_stream("BTCUSDT@kline_1M").unwrap();
        assert_eq!(
            (n.as_str(), s.as_str(), tf),
            ("btcusdt@kline_1M", "BTCUSDT", Timeframe::Mo1)
        );
        assert_eq!(parse_stream("ethbtc@kline_1s").unwrap().2, Timeframe::S1);
        for bad in [
            "btcusdt",
            "btcusdt@trade",
            "btcusdt@kline_2m",
            "@kline_1m",
            "b t@kline_1m",
            "btcusdt@kline_",
        ] {
            assert!(parse_stream(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_name_their_streams() {
        let (s, c) = target("/ws/btcusdt@kline_1m", None).unwrap();
        assert_eq!((s.len(), c), (1, false));
        let (s, c) = target("/ws/0", None).unwrap();
        assert_eq!((s.len(), c), (0, false));
        let (s, c) = target(
            "/stream",
            Some("streams=btcusdt@kline_1m/ethusdt@kline_5m/btcusdt@kline_1m"),
        )
        .unwrap();
        assert_eq!((s.len(), c), (2, true));
        assert!(target("/ws/a/b", None).is_err());
        assert!(target("/stream", Some("streams=btcusdt@depth")).is_err());
    }

    #[test]
    fn control_messages_get_binance_errors() {
        let code = |t: &str| parse_request(t).err().map(|(_, (c, _))| c);
        assert_eq!(code("{"), Some(3));
        assert_eq!(code("[]"), Some(2));
        assert_eq!(code(r#"{"params":[],"id":1}"#), Some(2));
        assert_eq!(
            code(r#"{"method":"SUBSCRIBE","params":[],"id":-1}"#),
            Some(2)
        );
        assert_eq!(
            code(r#"{"method":"SUBSCRIBE","params":[],"id":1,"x":2}"#),
            Some(2)
        );
        assert_eq!(
            code(r#"{"method":"SUBSCRIBE","params":{},"id":1}"#),
            Some(2)
        );
        let ok = parse_request(r#"{"method":"LIST_SUBSCRIPTIONS","id":"a1"}"#).unwrap();
        assert_eq!(
            (ok.method.as_str(), ok.id),
            ("LIST_SUBSCRIPTIONS", json!("a1"))
        );
    }

    #[test]
    fn combined_frames_wrap_the_event_unchanged() {
        let ev = Bytes::from_static(br#"{"e":"kline","k":{"c":"1.10"}}"#);
        let Some(Message::Text(t)) = frame("btcusdt@kline_1m", &ev, true) else {
            panic!()
        };
        let v: Value = serde_json::from_str(t.as_str()).unwrap();
        assert_eq!(v["stream"], "btcusdt@kline_1m");
        assert_eq!(v["data"]["k"]["c"], "1.10");
        let Some(Message::Text(t)) = frame("x", &ev, false) else {
            panic!()
        };
        assert_eq!(t.as_bytes(), &ev[..]);
    }
}
