//! After the first event of a (re)subscription, the gap before it is filled over REST
//! before the stream is trusted for the edge.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::state::{lock, Shared, State};
use crate::live::edge::{edge_chunk_start, CLOSE_GRACE_MS};
use crate::model::time::Now;
use crate::store::CandleStore;
use crate::{Symbol, Timeframe};

/// After the first event of a (re)subscription: the closed candles the store lacks in
/// the edge chunks, up to `closed_end` (where the stream's first event says the present
/// begins), are fetched over REST; then the stream is trusted for the edge.
pub(super) async fn backfill<S: CandleStore + Clone + Send + Sync + 'static>(
    shared: std::sync::Weak<Shared<S>>,
    name: String,
    symbol: Symbol,
    tf: Timeframe,
    idx: usize,
    closed_end: i64,
) {
    let Some(sh) = shared.upgrade() else { return };
    sh.counters.backfills.fetch_add(1, Ordering::Relaxed);
    let from =
        edge_chunk_start(tf, (sh.now)()).min(edge_chunk_start(tf, closed_end - 1 + CLOSE_GRACE_MS));
    // The upstream's own stream says everything before `closed_end` is final, so the
    // backfill may store up to there without waiting out the usual grace.
    let as_of: Now = Arc::new(move || closed_end + CLOSE_GRACE_MS);
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
