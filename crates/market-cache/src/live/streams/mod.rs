//! The live edge from the upstream's WebSocket streams: one subscription per series
//! however many clients ask, subscribed on the first request that touches the series'
//! edge and dropped when nobody asked for a while; closed candles stored as they close;
//! after every (re)connect the gap is backfilled over REST before the stream is trusted.
//! The exchange's protocol is behind [`StreamApi`]; nothing here names an exchange.
//!
//! The read path asks [`Streams::touch`] for a [`View`]: `None` means "no trustworthy
//! stream for this series right now" and the read path refreshes the edge over REST.
//!
//! The parts: [`config`] (settings and URL), `state` (what the tasks share), this file
//! (the registry: which series are wanted, on which connection), `connection` (one
//! connection's life), `events` (frames applied to series), `writer` (closed candles
//! stored in order), `backfill` (the gap after a (re)subscription).

mod backfill;
pub(crate) mod config;
mod connection;
mod events;
mod state;
mod writer;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::{broadcast, mpsc};

use crate::exchange::StreamApi;
use crate::live::edge::stream_fresh;
use crate::model::time::Now;
use crate::store::CandleStore;
use crate::upstream::Upstream;
use crate::{Result, Symbol, Timeframe};
use config::StreamConfig;
use connection::run_connection;
pub(crate) use state::View;
pub use state::Watch;
use state::FEED_CAPACITY;
use state::{lock, Conn, Counters, Series, Shared, State};
use writer::write_closed;

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

impl<S: CandleStore + Clone + Send + Sync + 'static> Streams<S> {
    /// Streams from `config.url`, storing closed candles in `store` and backfilling gaps
    /// from `upstream`. Must be called inside a Tokio runtime (it starts the writer task).
    ///
    /// # Errors
    /// [`Error::Upstream`] if the configuration is invalid.
    pub(crate) fn new(
        config: StreamConfig,
        api: Arc<dyn StreamApi>,
        store: S,
        upstream: Upstream,
        now: Now,
    ) -> Result<Self> {
        config.validate()?;
        let endpoint = api.endpoint(&config.url).ok_or_else(|| {
            crate::Error::Upstream(format!(
                "`ws` {} is not a stream URL of this exchange",
                config.url
            ))
        })?;
        let (writer, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            config,
            endpoint,
            store,
            api,
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
        let fresh = stream_fresh(s.last_event, now, sh.config.stale_ms);
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
        let name = self.shared.api.topic(symbol, tf);
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
                s.state == State::Live && stream_fresh(s.last_event, now, sh.config.stale_ms)
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
            url: sh.endpoint.clone(),
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::config::StreamConfig;
    use super::connection::backoff;

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
