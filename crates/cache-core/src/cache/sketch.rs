//! The admission filter of a namespace: how often each key was asked for lately, kept
//! approximately in a count-min sketch of 4-bit counters (TinyLFU's, as in caffeine and
//! moka), halved every `10 x width` increments so that old popularity fades.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

/// Rows of counters; each key touches one counter per row.
const ROWS: usize = 4;
/// Per-row seeds (from splitmix64).
const SEEDS: [u64; ROWS] = [
    0xBF58_476D_1CE4_E5B9,
    0x94D0_49BB_1331_11EB,
    0x632B_E59B_D9B4_E019,
    0xD6E8_FEB8_6659_FD93,
];
/// A counter saturates here (4 bits' worth).
const MAX: u8 = 15;

#[derive(Debug)]
pub(crate) struct Sketch {
    counters: Box<[AtomicU8]>,
    /// Counters per row, a power of two.
    width: usize,
    /// Increments since the last halving.
    added: AtomicU64,
}

impl Sketch {
    /// A sketch for about `entries` keys in play.
    pub(crate) fn new(entries: usize) -> Self {
        let width = entries.clamp(1 << 10, 1 << 20).next_power_of_two();
        Self {
            counters: (0..width * ROWS).map(|_| AtomicU8::new(0)).collect(),
            width,
            added: AtomicU64::new(0),
        }
    }

    fn slots(&self, hash: u64) -> impl Iterator<Item = usize> + '_ {
        (0..ROWS).map(move |r| {
            // One multiply-shift per row from the key's hash, each row with its own seed.
            let h = (hash ^ SEEDS[r]).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            r * self.width + ((h >> 32) as usize & (self.width - 1))
        })
    }

    /// Counts one request for the key of `hash`.
    pub(crate) fn record(&self, hash: u64) {
        for i in self.slots(hash) {
            let c = &self.counters[i];
            let v = c.load(Ordering::Relaxed);
            if v < MAX {
                // A lost increment under a race only makes the estimate a bit low.
                c.store(v + 1, Ordering::Relaxed);
            }
        }
        if self.added.fetch_add(1, Ordering::Relaxed) + 1 >= 10 * self.width as u64 {
            self.added.store(0, Ordering::Relaxed);
            for c in self.counters.iter() {
                c.store(c.load(Ordering::Relaxed) / 2, Ordering::Relaxed);
            }
        }
    }

    /// How often the key of `hash` was asked for lately (never under, rarely over).
    pub(crate) fn estimate(&self, hash: u64) -> u8 {
        self.slots(hash)
            .map(|i| self.counters[i].load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_was_asked_and_forgets_slowly() {
        let s = Sketch::new(1024);
        let h = |k: u64| k.wrapping_mul(0xA076_1D64_78BD_642F);
        for _ in 0..5 {
            s.record(h(1));
        }
        s.record(h(2));
        assert!(s.estimate(h(1)) >= 5);
        assert!(s.estimate(h(2)) >= 1);
        // Of a thousand keys never asked, nearly all estimate 0.
        let wrong = (1000..2000).filter(|k| s.estimate(h(*k)) > 0).count();
        assert!(wrong < 20, "{wrong}");
        // Ten times the width of requests for another key halve what key 1 had.
        for _ in 0..10 {
            s.record(h(1));
        }
        assert_eq!(s.estimate(h(1)), MAX);
        for _ in 0..10 * 1024 {
            s.record(h(3));
        }
        assert!(s.estimate(h(1)) <= MAX / 2 + 1, "{}", s.estimate(h(1)));
    }
}
