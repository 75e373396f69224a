//! Closed months a read needs, from the object store, else from the exchange and then
//! published for the next instance.

use std::sync::atomic::Ordering;

use super::bucket::{Held, Objects};
use super::codec::month_path;
use crate::live::edge::CLOSE_GRACE_MS;
use crate::model::time::Now;
use crate::store::{CandleStore, MarketMeta};
use crate::upstream::{FillReport, Upstream};
use crate::{Result, Symbol, Timeframe};

impl Objects {
    /// Makes the closed months of `[start, end)` complete in `store`: a month the store
    /// lacks is read from the object store; a month the object store lacks too is fetched
    /// whole from `upstream` (if any) and published, so the next instance reads it from
    /// here. Months still open are left to the caller. An object store that fails is
    /// counted and skipped: the upstream answers instead.
    ///
    /// Returns what the upstream was asked for, and the closed months of the range held
    /// so that no trim drops them before the caller has read them.
    ///
    /// # Errors
    /// Store errors, and upstream errors when a month has to come from the upstream.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn fill<S: CandleStore + Sync>(
        &self,
        store: &S,
        symbol: &Symbol,
        tf: Timeframe,
        (start, end): (i64, i64),
        upstream: Option<&Upstream>,
        now: &Now,
    ) -> Result<(FillReport, Held)> {
        let mut report = FillReport::default();
        let mut held = Held::default();
        if !Self::keeps(tf) {
            return Ok((report, held));
        }
        let closed = now() - CLOSE_GRACE_MS;
        let mut month = Timeframe::Mo1.floor(start);
        while month < end {
            let next = Timeframe::Mo1.next(month);
            if next > closed {
                break;
            }
            let key = month_path(symbol, tf, month).to_string();
            if self.local_max_bytes.is_some() {
                // Recency matters only to a trim.
                let tick = self.counters.tick.fetch_add(1, Ordering::Relaxed) + 1;
                self.used
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(key.clone(), tick);
            }
            // Months are taken in time order, so two readers never wait on each other.
            held.0.push(self.turn(&key).lock_owned().await);
            // Looked at after waiting: whoever went first may have filled it.
            if !store.missing(symbol, tf, month, next).await?.is_empty() {
                let meta = MarketMeta::new(symbol.clone());
                match self.get_month(symbol, tf, month).await {
                    Some(candles) => {
                        // Known shared before the write notes it.
                        self.shared(symbol, tf, month);
                        store
                            .write_covered(&meta, tf, candles, (month, next))
                            .await?;
                        self.counters.read.fetch_add(1, Ordering::Relaxed);
                    }
                    None => {
                        if let Some(up) = upstream {
                            let r = up
                                .fill(store, symbol, tf, (month, next), now, &|_| {})
                                .await?;
                            report.pages += r.pages;
                            report.fetched += r.fetched;
                            report.inserted += r.inserted;
                            // This month, and any later one the last page completed:
                            // sharing is best effort, the candles are stored either way.
                            self.publish_noted(store, now(), Some((symbol, tf))).await;
                        }
                    }
                }
            }
            month = next;
        }
        Ok((report, held))
    }
}
