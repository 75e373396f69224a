//! The one task that stores closed candles from the streams, in arrival order.

use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

use super::state::{lock, Shared};
use crate::store::{CandleStore, MarketMeta};
use crate::Candle;

/// Stores closed candles in arrival order, one at a time, so the store's series grows
/// in order and a reader never sees a later candle without an earlier one.
pub(super) async fn write_closed<S: CandleStore + Clone + Send + Sync + 'static>(
    shared: std::sync::Weak<Shared<S>>,
    mut rx: mpsc::UnboundedReceiver<(String, Candle, (i64, i64))>,
) {
    while let Some((name, candle, covered)) = rx.recv().await {
        let Some(sh) = shared.upgrade() else { return };
        let (symbol, tf) = match lock(&sh.series).get(&name) {
            Some(s) => (s.symbol.clone(), s.tf),
            None => continue,
        };
        let meta = MarketMeta::new(symbol.clone());
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
