//! Months that may have become complete locally, whatever wrote them (a fill, a page that
//! ran past the month asked, the stream), published once closed: an instance holding a
//! month complete shares it before another instance asks the exchange for it.

use super::bucket::{Noted, Objects, Published};
use super::codec::month_path;
use crate::live::edge::CLOSE_GRACE_MS;
use crate::store::CandleStore;
use crate::{Symbol, Timeframe};

impl Objects {
    /// Notes that `[a, b)` of a series was written as covered.
    pub(crate) fn note_covered(&self, symbol: &Symbol, tf: Timeframe, (a, b): (i64, i64)) {
        if !Self::keeps(tf) {
            return;
        }
        let mut noted = self.noted();
        let mut month = Timeframe::Mo1.floor(a);
        while month < b {
            let key = month_path(symbol, tf, month).to_string();
            if !noted.shared.contains(&key) {
                noted
                    .months
                    .entry(key)
                    .or_insert_with(|| (symbol.clone(), tf, month));
            }
            month = Timeframe::Mo1.next(month);
        }
    }

    /// Remembers that a month is in the object store.
    pub(super) fn shared(&self, symbol: &Symbol, tf: Timeframe, month: i64) {
        let key = month_path(symbol, tf, month).to_string();
        let mut noted = self.noted();
        noted.months.remove(&key);
        noted.shared.insert(key);
    }

    /// Publishes the noted months that have closed (of `only` that series, or of all),
    /// each if the store holds it complete; months still open stay noted. A month found
    /// incomplete is forgotten until a write notes it again; one the object store refused
    /// is counted there and left to `candlecache sync`. Returns how many were created.
    pub(crate) async fn publish_noted<S: CandleStore + Sync>(
        &self,
        store: &S,
        now: i64,
        only: Option<(&Symbol, Timeframe)>,
    ) -> u64 {
        let closed = now - CLOSE_GRACE_MS;
        let due: Vec<(Symbol, Timeframe, i64)> = {
            let mut noted = self.noted();
            let keys: Vec<String> = noted
                .months
                .iter()
                .filter(|(_, (s, tf, m))| {
                    Timeframe::Mo1.next(*m) <= closed
                        && only.is_none_or(|(os, otf)| os == s && otf == *tf)
                })
                .map(|(k, _)| k.clone())
                .collect();
            keys.iter().filter_map(|k| noted.months.remove(k)).collect()
        };
        let mut created = 0;
        for (symbol, tf, month) in due {
            match self.publish(store, &symbol, tf, month).await {
                Ok(Some(Published::Created)) => created += 1,
                Ok(_) => {}
                Err(e) => eprintln!(
                    "candlecache: publishing {}: {e}",
                    month_path(&symbol, tf, month)
                ),
            }
        }
        created
    }

    fn noted(&self) -> std::sync::MutexGuard<'_, Noted> {
        self.noted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
