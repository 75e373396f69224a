//! The fan-out: one topic per served stream, one pump per topic that frames each event
//! once per form (raw, and combined when a client wants it) and hands the same bytes to
//! every subscriber's bounded queue; a full queue closes that client (1008), so memory
//! never grows with a slow reader. The last subscriber out stops the pump, so the
//! upstream subscription goes idle.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use market_cache::{Kind, Service};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use super::config::{WsConfig, WsStats};
use super::protocol::{Protocol, Stream};

#[derive(Default)]
pub(super) struct Counters {
    pub(super) frames_sent: AtomicU64,
    pub(super) refused: AtomicU64,
    pub(super) closed_slow: AtomicU64,
    pub(super) closed_rate: AtomicU64,
    pub(super) closed_pong: AtomicU64,
    pub(super) bad_requests: AtomicU64,
}

/// The served streams of one server.
pub(crate) struct Hub {
    pub(super) read: Service,
    pub(super) config: WsConfig,
    /// One topic per market and stream; a concurrent map, so subscribing to one stream
    /// does not wait on another's.
    topics: DashMap<String, Arc<Topic>>,
    pub(super) connections: AtomicUsize,
    pub(super) next_id: AtomicU64,
    pub(super) stop: watch::Sender<bool>,
    pub(super) counters: Arc<Counters>,
}

/// One served stream and its subscribers.
struct Topic {
    name: String,
    protocol: &'static dyn Protocol,
    inner: Mutex<TopicInner>,
}

/// Behind a mutex, not a concurrent map: the pump walks every subscriber per event and
/// a subscriber joins with the latest event, which must not interleave with a send.
struct TopicInner {
    /// The latest event, for a client joining mid-candle.
    last: Option<Bytes>,
    subs: Vec<Arc<Client>>,
    pump: Option<tokio::task::AbortHandle>,
}

pub(super) struct Client {
    pub(super) id: u64,
    /// The protocol of the connection's path.
    pub(super) protocol: &'static dyn Protocol,
    /// The market of the connection's path: spot (`/ws`, `/stream`) or USD-M futures
    /// (`/market/ws`, `/market/stream`, as Binance's futures streams are named).
    pub(super) kind: Kind,
    pub(super) tx: mpsc::Sender<Message>,
    pub(super) combined: AtomicBool,
    /// The first reason to close wins; both halves of the connection watch it.
    pub(super) close: watch::Sender<Option<(u16, &'static str)>>,
}

impl Client {
    /// Asks both halves to close with `code`; true if this was the first reason given.
    pub(super) fn close(&self, code: u16, reason: &'static str) -> bool {
        self.close.send_if_modified(|c| {
            let first = c.is_none();
            if first {
                *c = Some((code, reason));
            }
            first
        })
    }

    /// Queues a frame; a full queue closes the client (1008).
    pub(super) fn push(&self, m: Message, counters: &Counters) -> bool {
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

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data: still usable after a panic elsewhere.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Hub {
    pub(crate) fn new(read: Service, config: WsConfig) -> Self {
        Self {
            read,
            config,
            topics: DashMap::default(),
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
        WsStats {
            connections: self.connections.load(Ordering::Relaxed) as u64,
            streams: self.topics.len() as u64,
            subscriptions: self
                .topics
                .iter()
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

    /// Adds a client to a stream (starting the stream's pump if it is the first) and
    /// queues the latest event for it.
    pub(super) fn subscribe(&self, client: &Arc<Client>, stream: &Stream) {
        let key = topic_key(client, &stream.name);
        let topic = match self.topics.entry(key) {
            Entry::Occupied(e) => e.get().clone(),
            Entry::Vacant(e) => {
                let kind = match stream.symbol.kind() {
                    Kind::Spot => client.kind,
                    named => named,
                };
                let symbol = stream
                    .symbol
                    .clone()
                    .with_kind(kind)
                    .with_exchange(client.protocol.exchange());
                let Some(w) = self.read.watch(&symbol, stream.tf) else {
                    return;
                };
                let topic = Arc::new(Topic {
                    name: stream.name.clone(),
                    protocol: client.protocol,
                    inner: Mutex::new(TopicInner {
                        last: w.current,
                        subs: Vec::new(),
                        pump: None,
                    }),
                });
                let pump = tokio::spawn(pump(topic.clone(), w.events, self.counters.clone()));
                lock(&topic.inner).pump = Some(pump.abort_handle());
                e.insert(topic.clone());
                topic
            }
        };
        let mut inner = lock(&topic.inner);
        if let Some(last) = &inner.last {
            let combined = client.combined.load(Ordering::Relaxed);
            if let Some(m) = topic.protocol.frame(&topic.name, last, combined) {
                client.push(m, &self.counters);
            }
        }
        inner.subs.push(client.clone());
    }

    /// Removes a client from a stream; the last one out stops the pump, so the upstream
    /// subscription can go idle.
    pub(super) fn unsubscribe(&self, client: &Client, name: &str) {
        let key = topic_key(client, name);
        let Entry::Occupied(entry) = self.topics.entry(key) else {
            return;
        };
        let topic = entry.get().clone();
        let mut inner = lock(&topic.inner);
        inner.subs.retain(|c| c.id != client.id);
        if inner.subs.is_empty() {
            if let Some(p) = inner.pump.take() {
                p.abort();
            }
            drop(inner);
            entry.remove();
        }
    }
}

/// A topic per exchange, market and stream: `btcusdt@kline_1m` is another series on each
/// market, `kline.1.BTCUSDT` on each of Bybit's.
fn topic_key(client: &Client, name: &str) -> String {
    format!("{}|{}|{name}", client.protocol.exchange(), client.kind)
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
        let Some(raw) = topic.protocol.frame(&topic.name, &event, false) else {
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
                        let Some(m) = topic.protocol.frame(&topic.name, &event, true) else {
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
