//! The chunk grid: a timeframe's candles in fixed runs of [`CHUNK_CANDLES`] on its own
//! grid, so overlapping requests share chunks. The read path caches by it, the live edge
//! judges by it which chunks may still change.

use crate::Timeframe;

/// Candles of the stored timeframe per cached chunk.
pub(crate) const CHUNK_CANDLES: i64 = 1000;

/// The open time of the chunk holding `t` (months: a thousand months, so one chunk).
pub(crate) fn chunk_start(tf: Timeframe, t: i64) -> i64 {
    match tf.fixed_ms() {
        Some(len) => {
            let span = len * CHUNK_CANDLES;
            // Weeks open on Mondays (and a grid on another clock off the epoch), so
            // their chunks count from the first boundary after it.
            let origin = if tf.is_aligned(0) { 0 } else { tf.next(0) };
            origin + (t - origin).div_euclid(span) * span
        }
        None => 0,
    }
}

/// Where the chunk opening at `start` ends (exclusive).
pub(crate) fn chunk_end(tf: Timeframe, start: i64) -> i64 {
    match tf.fixed_ms() {
        Some(len) => start + len * CHUNK_CANDLES,
        None => i64::MAX,
    }
}
