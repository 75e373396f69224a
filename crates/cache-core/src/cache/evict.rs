//! Eviction: which entries go when room is needed or memory is reclaimed (exact LRU across
//! shards from bounded scans), and moving entries between the hot and warm tiers.

use super::victims::{Mode, Victims};
use super::*;

/// Candidates taken from each list of each shard per eviction scan.
const SCAN_DEPTH: usize = 8;
/// Entries an eviction scan may look at per list and shard, relinking included.
const SCAN_STEPS: usize = 256;
/// Upper bound on eviction scans per `free` call; each scan locks every shard once.
const MAX_SCANS: u32 = 64;

impl Inner {
    fn warm_over_share(&self, scope: Option<u16>) -> bool {
        let (warm, limit) = match scope {
            Some(ns) => {
                let st = &self.namespaces[usize::from(ns)];
                (st.bytes[1].load(Ordering::Acquire), st.limit)
            }
            None => (
                self.namespaces
                    .iter()
                    .map(|st| st.bytes[1].load(Ordering::Acquire))
                    .sum(),
                self.budget,
            ),
        };
        warm as f64 > limit as f64 * self.warm_max_share
    }

    /// Frees at least `need` bytes from one namespace or from all, least recently used
    /// first, and returns what it freed (possibly less when too little is held).
    ///
    /// A scan takes the oldest entries of every shard's lists; merged by stamp they are
    /// the globally oldest. They are kept between calls (entries stored later are newer,
    /// and touched ones fail the stamp check), until a shard whose list was cut short
    /// runs out or a list empties; then the next call scans again, so the order stays
    /// exact while a scan's cost is spread over many evictions.
    pub(super) fn free(&self, scope: Option<u16>, need: u64, mode: Mode) -> u64 {
        let slot = scope.map_or(self.namespaces.len(), usize::from);
        // Held for the whole call: concurrent writers of one scope queue here instead of
        // scanning and evicting the same entries twice.
        let mut v = self.victims[slot].lock();
        let mut freed = 0;
        let mut scans = 0;
        while freed < need {
            if !v.valid {
                if scans == MAX_SCANS {
                    break;
                }
                scans += 1;
                freed += self.scan(scope, &mut v);
                if v.lists[0].is_empty() && v.lists[1].is_empty() {
                    v.valid = false;
                    // A scan that met only expired entries (and evicted them) may have
                    // stopped short of live ones: look again rather than give up.
                    if !v.truncated.iter().flatten().any(|t| *t) {
                        break;
                    }
                }
                continue;
            }
            let warm = match mode {
                Mode::Reclaim => !v.lists[1].is_empty(),
                Mode::Pressure => {
                    !v.lists[1].is_empty() && (v.lists[0].is_empty() || self.warm_over_share(scope))
                }
            };
            let tier = if warm { Tier::Warm } else { Tier::Hot };
            let t = tier as usize;
            let Some(c) = v.lists[t].pop() else {
                v.valid = false;
                continue;
            };
            freed += if mode == Mode::Pressure && tier == Tier::Hot {
                self.demote(&c)
            } else {
                self.evict(&c, Cause::Evicted)
            };
            v.remaining[t][c.shard] -= 1;
            if (v.remaining[t][c.shard] == 0 && v.truncated[t][c.shard]) || v.lists[t].is_empty() {
                // That shard may hold older entries than the candidates left.
                v.valid = false;
            }
        }
        freed
    }

    /// Refills the candidate lists of one scope; evicts expired entries met on the way
    /// and returns the bytes that freed.
    fn scan(&self, scope: Option<u16>, v: &mut Victims) -> u64 {
        let now = self.clock.now_nanos();
        let shards = self.shards.len();
        for t in 0..2 {
            v.lists[t].clear();
            v.remaining[t].clear();
            v.remaining[t].resize(shards, 0);
            v.truncated[t].clear();
            v.truncated[t].resize(shards, false);
        }
        for (i, shard) in self.shards.iter().enumerate() {
            let mut s = shard.write();
            for ns in 0..self.namespaces.len() as u16 {
                if scope.is_some_and(|only| only != ns) {
                    continue;
                }
                for tier in [Tier::Hot, Tier::Warm] {
                    let t = tier as usize;
                    let before = v.lists[t].len();
                    let more = s.oldest(i, ns, tier, SCAN_DEPTH, SCAN_STEPS, now, &mut v.lists[t]);
                    v.remaining[t][i] += v.lists[t].len() - before;
                    v.truncated[t][i] |= more;
                }
            }
        }
        let mut freed = 0;
        for t in 0..2 {
            // Dead entries go first, whatever their age.
            let expired: Vec<Candidate> =
                v.lists[t].iter().filter(|c| c.expired).copied().collect();
            for c in &expired {
                freed += self.evict(c, Cause::Expired);
                v.remaining[t][c.shard] -= 1;
            }
            v.lists[t].retain(|c| !c.expired);
            // Newest first, so `pop` yields the oldest.
            v.lists[t].sort_unstable_by_key(|c| std::cmp::Reverse(c.stamp));
        }
        v.valid = !(v.lists[0].is_empty() && v.lists[1].is_empty());
        freed
    }

    /// Evicts the candidate if it is still what the scan saw; returns the bytes freed.
    fn evict(&self, c: &Candidate, cause: Cause) -> u64 {
        let mut s = self.shards[c.shard].write();
        let still = s
            .live(c.idx, c.id)
            .is_some_and(|n| n.stamp.load(Ordering::Relaxed) == c.stamp || cause == Cause::Expired);
        if !still {
            return 0;
        }
        let node = s.remove(c.idx);
        self.removed(&node, cause);
        node.charge
    }

    /// Compresses a hot candidate into the warm tier, or evicts it when compression does
    /// not save enough; returns the bytes freed.
    fn demote(&self, c: &Candidate) -> u64 {
        let value = {
            let s = self.shards[c.shard].read();
            match s.live(c.idx, c.id) {
                Some(n) if n.stamp.load(Ordering::Relaxed) == c.stamp && n.tier == Tier::Hot => {
                    // Never read since it was stored (a scan, a one-off answer): it goes
                    // without being compressed, so a request that only makes room pays
                    // no compression for what nobody asked for again.
                    if !n.read.load(Ordering::Relaxed) {
                        drop(s);
                        return self.evict(c, Cause::Evicted);
                    }
                    n.value.clone()
                }
                _ => return 0,
            }
        };
        // Compression runs outside the lock; the id and stamp checks below catch any
        // change made meanwhile.
        let block = lz4_flex::block::compress(&value);
        let keep = block.len() as f64 <= value.len() as f64 * (1.0 - self.min_saving);
        let mut s = self.shards[c.shard].write();
        let (ns, old, key_len) = match s.live(c.idx, c.id) {
            Some(n) if n.stamp.load(Ordering::Relaxed) == c.stamp && n.tier == Tier::Hot => {
                (n.ns, n.charge, n.key.len())
            }
            _ => return 0,
        };
        let st = &self.namespaces[usize::from(ns)];
        if !keep {
            Counters::bump(&st.counters.rejected_compression, 1);
            let node = s.remove(c.idx);
            self.removed(&node, Cause::Evicted);
            return old;
        }
        let new = key_len as u64 + block.len() as u64 + ENTRY_OVERHEAD_BYTES;
        st.warm_stored
            .fetch_add(block.len() as u64, Ordering::AcqRel);
        s.retier(
            c.idx,
            Tier::Warm,
            Bytes::from(block),
            new,
            self.clock.now_nanos(),
        );
        st.bytes[0].fetch_sub(old, Ordering::AcqRel);
        st.entries[0].fetch_sub(1, Ordering::AcqRel);
        st.bytes[1].fetch_add(new, Ordering::AcqRel);
        st.entries[1].fetch_add(1, Ordering::AcqRel);
        st.warm_raw.fetch_add(value.len() as u64, Ordering::AcqRel);
        self.release(ns, old - new);
        Counters::bump(&st.counters.demotions, 1);
        Counters::bump(&st.counters.bytes_freed, old - new);
        old - new
    }

    /// Moves a warm entry back to the hot tier once room for its raw size is reserved.
    pub(super) fn promote(&self, ns: u16, sh: usize, idx: u32, id: u64, value: Bytes) {
        let (old, key_len) = {
            let s = self.shards[sh].read();
            match s.live(idx, id) {
                Some(n) if n.tier == Tier::Warm => (n.charge, n.key.len()),
                _ => return,
            }
        };
        let new = key_len as u64 + value.len() as u64 + ENTRY_OVERHEAD_BYTES;
        let extra = new.saturating_sub(old);
        if self.make_room(ns, extra).is_err() {
            return;
        }
        let mut s = self.shards[sh].write();
        match s.live(idx, id) {
            Some(n) if n.tier == Tier::Warm && n.charge == old => {
                let (raw_len, stored) = (n.raw_len as u64, n.value.len() as u64);
                s.retier(idx, Tier::Hot, value, new, self.clock.now_nanos());
                let st = &self.namespaces[usize::from(ns)];
                st.bytes[1].fetch_sub(old, Ordering::AcqRel);
                st.entries[1].fetch_sub(1, Ordering::AcqRel);
                st.bytes[0].fetch_add(new, Ordering::AcqRel);
                st.entries[0].fetch_add(1, Ordering::AcqRel);
                st.warm_raw.fetch_sub(raw_len, Ordering::AcqRel);
                st.warm_stored.fetch_sub(stored, Ordering::AcqRel);
                Counters::bump(&st.counters.promotions, 1);
            }
            _ => self.release(ns, extra),
        }
    }
}

impl Cache {
    /// Frees at least `bytes` by evicting least recently used entries, warm before hot,
    /// without compressing anything; returns the bytes freed.
    pub(crate) fn evict_at_least(&self, bytes: u64) -> u64 {
        self.inner.free(None, bytes, Mode::Reclaim)
    }
}
