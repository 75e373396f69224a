//! The live edge's rules, in one place: when a candle is final, which chunks may still
//! change, how long each kind of edge may be kept, and how long an answer may be served
//! again. The read path, the upstream backfill, the object store, the streams and the
//! HTTP layer (through [`Answer::keep_for`](crate::Answer::keep_for)) all ask here.
//!
//! The contract (shared/design.md, "The live edge"): a candle closed upstream is served as
//! closed within 1 s of the closing event with a stream, 3 s of its close on REST alone;
//! the forming candle served is at most 1 s older than the latest event (2 s on REST).

use std::time::Duration;

use crate::model::grid::chunk_start;
use crate::Timeframe;

/// A candle counts as final only this long after its close: the upstream's clock may lag
/// ours a little, and a candle stored too early would be stored half-formed.
pub(crate) const CLOSE_GRACE_MS: i64 = 2_000;
/// A funding event counts as published this long after its time; a page that ends short
/// proves the events complete only up to now minus this.
pub(crate) const FUNDING_GRACE_MS: i64 = 60_000;
/// How long an answer whose edge came from a stream may be served again: well inside
/// the contract's 1 s, so a newer event shows at once to the next poll after it.
const STREAM_ANSWER_AGE: Duration = Duration::from_millis(200);
/// How long the stored part of an edge chunk read for a stream stays in memory; a new
/// closed candle changes its key anyway.
pub(crate) const STREAM_CHUNK_TTL: Duration = Duration::from_secs(10);
/// How long a whole encoded answer of closed history is kept (`api_responses`).
pub const RESPONSE_TTL: Duration = Duration::from_secs(60);
/// How long an answer over the live edge is kept at most, whatever else allows.
const EDGE_ANSWER_MAX: Duration = Duration::from_secs(60);

/// Where the candles of a chunk came from, for the answer's freshness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Edge {
    /// Closed history: never changes.
    #[default]
    Closed,
    /// The edge, refreshed over REST (or, without an upstream, from the store).
    Refreshed,
    /// The edge, from the upstream's stream.
    Stream,
}

impl Edge {
    /// The freshest of two: an answer is as fresh as its freshest chunk must be.
    pub(crate) fn max(self, other: Edge) -> Edge {
        match (self, other) {
            (Edge::Stream, _) | (_, Edge::Stream) => Edge::Stream,
            (Edge::Refreshed, _) | (_, Edge::Refreshed) => Edge::Refreshed,
            _ => Edge::Closed,
        }
    }
}

/// How the edge is kept fresh: with an upstream, re-read from it at most once per
/// `refresh` (single-flight); without one only an import can change it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    pub(crate) refresh: Duration,
    pub(crate) upstream: bool,
}

impl Rules {
    /// Whether a chunk ending at `end` may still change at `now`.
    pub(crate) fn is_edge(end: i64, now: i64) -> bool {
        end > now - CLOSE_GRACE_MS
    }

    /// How long a chunk of `tf` is kept in memory: closed history for good (`None`), the
    /// edge for the refresh period, or without an upstream for the timeframe's TTL.
    pub(crate) fn chunk_ttl(&self, tf: Timeframe, edge: bool) -> Option<Duration> {
        edge.then(|| {
            if self.upstream {
                self.refresh
            } else {
                forming_ttl(tf)
            }
        })
    }

    /// How long an answer whose freshest chunk is `edge` may be served again.
    pub(crate) fn max_age(&self, tf: Timeframe, edge: Edge) -> Option<Duration> {
        match edge {
            Edge::Closed => None,
            Edge::Stream => Some(STREAM_ANSWER_AGE),
            // Half the refresh period: with the chunk's own period on top, the forming
            // candle served stays within the contract's 2 s of the upstream.
            Edge::Refreshed if self.upstream => Some(self.refresh / 2),
            Edge::Refreshed => Some(forming_ttl(tf).min(EDGE_ANSWER_MAX)),
        }
    }
}

/// The open time after which candles of `tf` may still be forming at `now`: candles
/// opening before it are final and may be stored.
pub(crate) fn closed_end(tf: Timeframe, now: i64) -> i64 {
    tf.floor(now - CLOSE_GRACE_MS).max(0)
}

/// The open time of the first chunk of `tf` that may still change at `now`.
pub(crate) fn edge_chunk_start(tf: Timeframe, now: i64) -> i64 {
    chunk_start(tf, now - CLOSE_GRACE_MS)
}

/// Whether a stream whose last event came at `last_event` is fresh enough at `now` to
/// serve the edge from.
pub(crate) fn stream_fresh(last_event: Option<i64>, now: i64, stale_ms: u64) -> bool {
    last_event.is_some_and(|t| now - t <= stale_ms as i64)
}

/// Whether funding events up to `end` are all published at `now`, so an answer reaching
/// no further is closed history.
pub fn funding_settled(end: i64, now: i64) -> bool {
    end < now - FUNDING_GRACE_MS
}

/// How long an encoded answer with `max_age` may be kept: the smaller of its `max_age`
/// and [`RESPONSE_TTL`].
pub(crate) fn keep_for(max_age: Option<Duration>) -> Duration {
    max_age.map_or(RESPONSE_TTL, |a| a.min(RESPONSE_TTL))
}

/// How long a chunk that holds the still-forming candle may be served from memory when
/// there is no upstream (only an import can change it then).
fn forming_ttl(tf: Timeframe) -> Duration {
    // A sixth of the candle (a whole one below a minute), from a minute to a day.
    let len = (tf.fixed_ms().unwrap_or(30 * 86_400_000) / 1000) as u64;
    let secs = if len <= 60 { len } else { (len / 6).max(60) };
    Duration::from_secs(secs.min(86_400))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_edge_is_kept_no_longer_than_the_contract_allows() {
        let rest = Rules {
            refresh: Duration::from_secs(1),
            upstream: true,
        };
        assert_eq!(rest.max_age(Timeframe::M1, Edge::Closed), None);
        assert_eq!(
            rest.max_age(Timeframe::M1, Edge::Refreshed),
            Some(Duration::from_millis(500))
        );
        assert!(rest.max_age(Timeframe::M1, Edge::Stream) < Some(Duration::from_secs(1)));
        let local = Rules {
            upstream: false,
            ..rest
        };
        assert_eq!(
            local.max_age(Timeframe::W1, Edge::Refreshed),
            Some(EDGE_ANSWER_MAX)
        );
        assert_eq!(keep_for(None), RESPONSE_TTL);
        assert_eq!(
            keep_for(Some(Duration::from_millis(200))),
            Duration::from_millis(200)
        );
        assert!(Rules::is_edge(10_000, 11_000));
        assert!(!Rules::is_edge(10_000, 12_000));
        assert_eq!(closed_end(Timeframe::M1, 62_000), 60_000);
        assert_eq!(closed_end(Timeframe::M1, 61_999), 0);
    }
}
