//! What a read asks and what it answers.

use std::time::Duration;

use serde::Serialize;

use crate::live::edge::keep_for;
use crate::{Candle, Symbol, Timeframe};

/// Default and largest number of candles one answer holds.
pub const DEFAULT_LIMIT: usize = 10_000;
/// The largest `limit` a request may ask for.
pub const MAX_LIMIT: usize = 100_000;

/// How to treat slots without candles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fill {
    /// Leave them out and report them in [`Answer::gaps`].
    None,
    /// Fill them with flat candles at the previous close and zero volume.
    Previous,
}

/// A request for candles of one series: `start <= open time < end`.
#[derive(Debug, Clone)]
pub struct Request {
    /// The symbol.
    pub symbol: Symbol,
    /// The timeframe wanted (stored or resampled).
    pub timeframe: Timeframe,
    /// First open time, epoch ms; a start inside a candle begins at the next one. `None`
    /// asks for the latest `limit` candles before `end` (as Binance answers klines
    /// without startTime).
    pub start: Option<i64>,
    /// End of the range, exclusive, epoch ms.
    pub end: i64,
    /// At most this many candles; the rest is announced by [`Answer::next_start`].
    pub limit: usize,
    /// Gap treatment.
    pub fill: Fill,
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Every chunk was in memory.
    Cache,
    /// Every chunk was read from the store.
    Store,
    /// Some of each.
    Mixed,
}

/// The candles of a request and what is known about them.
#[derive(Debug, Clone)]
pub struct Answer<B = Vec<Candle>> {
    /// The candles, in time order: decoded, or as [`Rows`](crate::Rows) in a caller's format.
    pub candles: B,
    /// Where they came from.
    pub source: Source,
    /// The stored timeframe they were resampled from, if they were.
    pub resampled_from: Option<Timeframe>,
    /// `[start, end)` ranges of the returned span that hold no candles.
    pub gaps: Vec<(i64, i64)>,
    /// Whether the last candle is still forming.
    pub partial_last: bool,
    /// Where the next page starts, when `limit` cut the answer short.
    pub next_start: Option<i64>,
    /// How long the answer may be served again: `None` for closed history, which never
    /// changes; the live edge only as long as the freshness contract allows.
    pub max_age: Option<Duration>,
}

impl<B> Answer<B> {
    /// The same answer with its candles turned into another form.
    pub fn map<C>(self, f: impl FnOnce(B) -> C) -> Answer<C> {
        Answer {
            candles: f(self.candles),
            source: self.source,
            resampled_from: self.resampled_from,
            gaps: self.gaps,
            partial_last: self.partial_last,
            next_start: self.next_start,
            max_age: self.max_age,
        }
    }

    /// How long the answer, encoded, may be served again: the smaller of its `max_age`
    /// and [`RESPONSE_TTL`](crate::RESPONSE_TTL) (closed history).
    pub fn keep_for(&self) -> Duration {
        keep_for(self.max_age)
    }
}

/// Counters of the read path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReadStats {
    /// Chunks found in memory.
    pub chunk_hits: u64,
    /// Chunks read from the store.
    pub chunk_loads: u64,
    /// Neighbouring chunks loaded ahead of need after a miss.
    pub prefetches: u64,
    /// Live-edge chunks re-read (with an upstream, from it over REST).
    pub edge_refreshes: u64,
    /// Answers whose edge came from the upstream's stream.
    pub edge_from_stream: u64,
}

/// How the live edge is kept fresh.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// With an upstream and no trusted stream, the edge of a series is re-read from the
    /// upstream at most once per this period (single-flight across all clients).
    pub refresh: Duration,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            refresh: Duration::from_secs(1),
        }
    }
}
