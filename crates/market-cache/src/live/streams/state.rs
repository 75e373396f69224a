//! What the streams of one upstream share: the series subscribed, the connections, the
//! counters, and the queue of closed candles to store.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc};

use super::config::StreamConfig;
use crate::exchange::StreamApi;
use crate::model::time::Now;
use crate::upstream::Upstream;
use crate::{Candle, Symbol, Timeframe};

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
    /// received. A receiver that falls 64 events behind sees
    /// `RecvError::Lagged`.
    pub events: broadcast::Receiver<Bytes>,
}

/// Events a stream's feed holds for its slowest receiver. Its readers are the served
/// streams' hub tasks, which only hand events on (a slow client has a queue of its own),
/// so a few seconds of events is plenty; and a broadcast channel keeps every slot's last
/// event, so this times an event's size is what a watched series holds.
pub(crate) const FEED_CAPACITY: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// SUBSCRIBE sent (or to be sent); no event yet.
    Subscribing,
    /// Events flow; the REST backfill of the gap before them runs.
    Backfilling,
    /// Backfilled and receiving: the edge comes from here.
    Live,
}

pub(super) struct Series {
    pub(super) symbol: Symbol,
    pub(super) tf: Timeframe,
    pub(super) conn: usize,
    pub(super) state: State,
    pub(super) last_touch: i64,
    pub(super) last_event: Option<i64>,
    pub(super) events: u64,
    pub(super) forming: Option<Candle>,
    pub(super) unstored: VecDeque<Candle>,
    /// Open time of the last closed candle received on the current connection: the next
    /// closed one proves the slots between them empty.
    pub(super) last_closed: Option<i64>,
    pub(super) generation: u64,
    /// The events, for served streams.
    pub(super) feed: broadcast::Sender<Bytes>,
    pub(super) last_raw: Option<Bytes>,
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) reconnects: AtomicU64,
    pub(super) stalls: AtomicU64,
    pub(super) connect_failures: AtomicU64,
    pub(super) events: AtomicU64,
    pub(super) closed_stored: AtomicU64,
    pub(super) bad_frames: AtomicU64,
    pub(super) unexpected: AtomicU64,
    pub(super) out_of_order: AtomicU64,
    pub(super) backfills: AtomicU64,
}

pub(super) struct Conn {
    /// Names of streams to subscribe.
    pub(super) tx: mpsc::UnboundedSender<String>,
    pub(super) streams: usize,
    pub(super) open: bool,
}

pub(super) struct Shared<S> {
    pub(super) config: StreamConfig,
    /// The URL connected to.
    pub(super) endpoint: String,
    pub(super) store: S,
    /// The exchange's stream protocol.
    pub(super) api: Arc<dyn StreamApi>,
    pub(super) upstream: Upstream,
    pub(super) now: Now,
    /// The series by topic. A mutex, not a concurrent map: a new series is assigned a
    /// connection (`conns`) while its entry is made, a connection's end resets all of its
    /// series at once, and a trim removes idle ones across the map; those steps must see
    /// one consistent map, and each holds the lock for microseconds (no I/O under it).
    pub(super) series: Mutex<HashMap<String, Series>>,
    /// Connections by slot; locked after `series` when both are held.
    pub(super) conns: Mutex<Vec<Option<Conn>>>,
    pub(super) counters: Counters,
    /// Event counts per second over the last seconds, for events/s.
    pub(super) rate: Mutex<VecDeque<(i64, u64)>>,
    pub(super) writer: mpsc::UnboundedSender<(String, Candle, (i64, i64))>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data that is still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
