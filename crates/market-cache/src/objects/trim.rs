//! The local store as a bounded cache of the object store: closed months safe there are
//! dropped locally, least recently read first.

use std::sync::atomic::Ordering;

use super::bucket::Objects;
use super::codec::month_path;
use super::publish::local_months;
use crate::store::CandleStore;
use crate::Result;
use crate::Timeframe;
use object_store::ObjectStoreExt;

impl Objects {
    /// Drops months from `store` while it uses more than `[store] local_max_mb`: closed,
    /// complete months, least recently read first, each only once it is safe in the
    /// object store (there already, or published now). A month a read holds is skipped.
    /// Returns how many months were dropped.
    ///
    /// # Errors
    /// Store errors. An object store that fails ends the trim (nothing unsafe is dropped).
    pub(crate) async fn trim<S: CandleStore + Sync>(&self, store: &S, now: i64) -> Result<u64> {
        let Some(max) = self.local_max_bytes else {
            return Ok(0);
        };
        if store.used_bytes().await? <= max {
            return Ok(0);
        }
        let mut months = local_months(store, now).await?;
        {
            let used = self
                .used
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            months.sort_by_cached_key(|(s, tf, m)| {
                let last = used.get(month_path(s, *tf, *m).as_ref()).copied();
                (last.unwrap_or(0), *m)
            });
        }
        let mut dropped = 0;
        for (symbol, tf, month) in months {
            if store.used_bytes().await? <= max {
                break;
            }
            let path = month_path(&symbol, tf, month);
            let turn = self.turn(path.as_ref());
            let Ok(_turn) = turn.try_lock_owned() else {
                continue;
            };
            let next = Timeframe::Mo1.next(month);
            if !store.missing(&symbol, tf, month, next).await?.is_empty() {
                continue;
            }
            let safe = match self.store.head(&path).await {
                Ok(_) => true,
                Err(object_store::Error::NotFound { .. }) => self
                    .publish(store, &symbol, tf, month)
                    .await
                    .is_ok_and(|p| p.is_some()),
                Err(e) => {
                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                    eprintln!("candlecache: object store {}: {path}: {e}", self.url);
                    false
                }
            };
            if !safe {
                break;
            }
            store.forget(&symbol, tf, month, next).await?;
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            dropped += 1;
        }
        Ok(dropped)
    }
}
