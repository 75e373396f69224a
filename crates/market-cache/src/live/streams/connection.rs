//! One upstream stream connection: connect, subscribe its topics a paced message at a
//! time, read frames, and reconnect (backoff with jitter) on a drop, a refusal, silence
//! (the watchdog) or age (rotation).

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use super::config::StreamConfig;
use super::events::on_text;
use super::state::{lock, Shared, State};
use crate::store::CandleStore;

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

/// A connection up this long resets the backoff.
const HEALTHY_MS: i64 = 60_000;

/// One upstream connection: connects, subscribes its streams, reads events, and
/// reconnects (backoff with jitter) on a drop, a refusal, silence or age.
pub(super) async fn run_connection<S: CandleStore + Clone + Send + Sync + 'static>(
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
        let url = sh.endpoint.clone();
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
        let now = sh.now.clone();
        drop(sh);
        let started = now();
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
        if now() - started >= HEALTHY_MS {
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
                sh.endpoint
            );
        }
    }
    *failures += 1;
    tokio::time::sleep(backoff(config, *failures)).await;
}

/// Exponential backoff with ±50 % jitter so many instances do not reconnect in step.
pub(super) fn backoff(config: &StreamConfig, failures: u32) -> Duration {
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
    let Some(sh) = shared.upgrade() else {
        return SessionEnd::Empty;
    };
    let (api, now) = (sh.api.clone(), sh.now.clone());
    drop(sh);
    let per_message = api.topics_per_message().max(1);
    let keepalive = api.keepalive();
    let mut next_id: u64 = 1;
    let mut subscribed: HashSet<String> = HashSet::new();
    // What to subscribe and unsubscribe, worked out again only when `wanted` changed: a
    // connection carries up to 1,024 streams and reads thousands of frames a second.
    let (mut add, mut remove) = (VecDeque::new(), VecDeque::new());
    let mut changed = true;
    // The watchdog, the rotation and the keepalive read the service's clock, the one the
    // live-edge tests move; only the pacing of control messages is on Tokio's time, since
    // it sleeps until a message may go.
    let started = now();
    let mut last_frame = started;
    let mut last_ping = started;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if changed {
            let want: HashSet<&str> = wanted.iter().map(String::as_str).collect();
            add = wanted
                .iter()
                .filter(|w| !subscribed.contains(*w))
                .cloned()
                .collect();
            remove = subscribed
                .iter()
                .filter(|s| !want.contains(s.as_str()))
                .cloned()
                .collect();
            changed = false;
        }
        // Bring the subscriptions in line with what is wanted, a paced message at a time.
        for (subscribe, names) in [(true, &mut add), (false, &mut remove)] {
            if names.is_empty() || pace.next_free().is_some() {
                continue;
            }
            let batch: Vec<String> = names.drain(..per_message.min(names.len())).collect();
            pace.note();
            let msg = api.control(subscribe, &batch, next_id);
            next_id += 1;
            if let Err(e) = sink.send(Message::text(msg)).await {
                return SessionEnd::Dropped(e.to_string());
            }
            for name in batch {
                if subscribe {
                    subscribed.insert(name);
                } else {
                    subscribed.remove(&name);
                }
            }
        }
        if wanted.is_empty() {
            close(&mut sink, &mut stream).await;
            return SessionEnd::Empty;
        }
        let pending = !add.is_empty() || !remove.is_empty();
        let turn = pace.next_free().unwrap_or_else(tokio::time::Instant::now);
        tokio::select! {
            frame = stream.next() => {
                last_frame = now();
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
                Some(cmd) => {
                    apply(wanted, cmd);
                    changed = true;
                }
                None => return SessionEnd::Empty,
            },
            _ = tick.tick() => {
                let t = now();
                if t - last_frame >= config.watchdog_ms as i64 {
                    return SessionEnd::Stalled;
                }
                if t - started >= config.rotate_ms as i64 {
                    close(&mut sink, &mut stream).await;
                    return SessionEnd::Rotate;
                }
                if let Some((every, text)) = keepalive {
                    if t - last_ping >= every.as_millis() as i64 {
                        last_ping = t;
                        if let Err(e) = sink.send(Message::text(text)).await {
                            return SessionEnd::Dropped(e.to_string());
                        }
                    }
                }
                let Some(sh) = shared.upgrade() else { return SessionEnd::Empty };
                changed |= unsubscribe_idle(&sh, idx, wanted);
                // Flushes a pong tungstenite may have queued.
                let _ = sink.flush().await;
            }
            // Wake when the next paced subscription change may go.
            () = tokio::time::sleep_until(turn), if pending => {}
        }
    }
}

/// The closing handshake: our Close, then frames read until the exchange's Close (for
/// at most a second). Dropping the socket at once would leave the exchange's frames
/// unread, and a kernel resets such a connection, which can discard what we sent last
/// (an UNSUBSCRIBE) before the exchange reads it.
async fn close(
    sink: &mut futures_util::stream::SplitSink<Ws, Message>,
    stream: &mut futures_util::stream::SplitStream<Ws>,
) {
    if sink.send(Message::Close(None)).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(Ok(frame)) = stream.next().await {
            if frame.is_close() {
                break;
            }
        }
    })
    .await;
}

/// Drops the series of connection `idx` nobody asked for within `idle_ms`; says whether
/// it dropped any.
fn unsubscribe_idle<S>(sh: &Shared<S>, idx: usize, wanted: &mut Vec<String>) -> bool {
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
    !gone.is_empty()
}
