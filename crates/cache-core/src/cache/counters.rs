//! What happened to a namespace's entries, counted off the hit path.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::stats::CounterValues;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    Evicted,
    Expired,
    Replaced,
    Removed,
    Cleared,
}

/// Event counters of one namespace; updated off the hit path only.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) inserts: AtomicU64,
    pub(crate) demotions: AtomicU64,
    pub(crate) promotions: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) expirations: AtomicU64,
    pub(crate) removals: AtomicU64,
    pub(crate) bytes_freed: AtomicU64,
    pub(crate) rejected_compression: AtomicU64,
    pub(crate) loads: AtomicU64,
    pub(crate) load_errors: AtomicU64,
    pub(crate) coalesced: AtomicU64,
    pub(crate) admitted: AtomicU64,
    pub(crate) rejected_admission: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CounterValues {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CounterValues {
            inserts: get(&self.inserts),
            demotions: get(&self.demotions),
            promotions: get(&self.promotions),
            evictions: get(&self.evictions),
            expirations: get(&self.expirations),
            removals: get(&self.removals),
            bytes_freed: get(&self.bytes_freed),
            rejected_compression: get(&self.rejected_compression),
            loads: get(&self.loads),
            load_errors: get(&self.load_errors),
            coalesced: get(&self.coalesced),
            admitted: get(&self.admitted),
            rejected_admission: get(&self.rejected_admission),
        }
    }
}
