//! The cache proper: budgets, tiers, eviction policy and the public handle types.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::clock::{Clock, SystemClock};
use crate::config::{CacheConfig, NamespaceConfig};
use crate::flight::Flights;
use crate::shard::{Candidate, Node, Shard, Tier};
use crate::stats::{CacheStats, NamespaceStats};
use crate::{Error, Result};

/// Bytes charged per entry on top of its key and value: the node, its index slot and the
/// allocator headers of the two heap blocks, rounded up.
pub const ENTRY_OVERHEAD_BYTES: u64 = 128;

/// A byte-budgeted, namespaced, two-tier in-memory cache. Cloning is cheap and shares it.
///
/// Values live in the hot tier as [`Bytes`] and are handed out without copying. Under
/// pressure the least recently used hot entries are compressed into the warm tier (when
/// compression saves enough); warm entries are evicted least recently used first.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("budget_bytes", &self.inner.budget)
            .field("used_bytes", &self.inner.used.load(Ordering::Relaxed))
            .field("shards", &self.inner.shards.len())
            .finish()
    }
}

impl Cache {
    /// Builds a cache from a configuration with the system clock.
    ///
    /// # Errors
    /// [`Error::Config`] naming the invalid key.
    pub fn new(config: CacheConfig) -> Result<Self> {
        CacheBuilder::from_config(config).build()
    }

    /// Starts a builder from the default configuration.
    pub fn builder() -> CacheBuilder {
        CacheBuilder::default()
    }

    /// Returns a handle on one namespace; all reads and writes go through such handles.
    ///
    /// # Errors
    /// [`Error::UnknownNamespace`] if no namespace has that name.
    pub fn namespace(&self, name: &str) -> Result<NamespaceCache> {
        let ns = self.inner.ns_index(name)?;
        Ok(NamespaceCache {
            cache: self.clone(),
            ns,
        })
    }

    /// Returns the names of the configured namespaces.
    pub fn namespace_names(&self) -> Vec<String> {
        self.inner
            .namespaces
            .iter()
            .map(|n| n.name.clone())
            .collect()
    }

    /// Returns the global byte budget.
    pub fn budget_bytes(&self) -> u64 {
        self.inner.budget
    }

    /// Returns the bytes currently charged across all namespaces.
    pub fn used_bytes(&self) -> u64 {
        self.inner.used.load(Ordering::Acquire)
    }

    /// Removes expired entries everywhere and returns how many were removed.
    ///
    /// Reads already drop expired entries they meet; this reclaims the ones nobody asks for.
    pub fn purge_expired(&self) -> u64 {
        let now = self.inner.clock.now_nanos();
        let mut removed = 0;
        for shard in self.inner.shards.iter() {
            let mut s = shard.write();
            for ns in 0..self.inner.namespaces.len() as u16 {
                for tier in [Tier::Hot, Tier::Warm] {
                    for idx in s.indices(ns, tier) {
                        if s.node(idx).expires_at <= now {
                            let node = s.remove(idx);
                            self.inner.removed(&node, Cause::Expired);
                            removed += 1;
                        }
                    }
                }
            }
        }
        removed
    }

    /// Returns a snapshot of the counters and sizes of every namespace and their total.
    pub fn stats(&self) -> CacheStats {
        let inner = &self.inner;
        let mut hits = vec![[0u64; 2]; inner.namespaces.len()];
        let mut misses = vec![0u64; inner.namespaces.len()];
        for shard in inner.shards.iter() {
            let s = shard.read();
            for (i, part) in s.parts.iter().enumerate() {
                hits[i][0] += part.hits[0].load(Ordering::Relaxed);
                hits[i][1] += part.hits[1].load(Ordering::Relaxed);
                misses[i] += part.misses.load(Ordering::Relaxed);
            }
        }
        let namespaces = inner
            .namespaces
            .iter()
            .enumerate()
            .map(|(i, st)| {
                let c = &st.counters;
                let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
                let stats = NamespaceStats::new(
                    st.ttl_nanos / 1_000_000,
                    st.limit,
                    get(&st.used),
                    hits[i],
                    misses[i],
                    [get(&st.entries[0]), get(&st.entries[1])],
                    [get(&st.bytes[0]), get(&st.bytes[1])],
                    [get(&st.warm_raw), get(&st.warm_stored)],
                    c.snapshot(),
                );
                (st.name.clone(), stats)
            })
            .collect();
        CacheStats::new(inner.budget, self.used_bytes(), namespaces)
    }

    /// Drops every entry of one namespace, or of all, from the given tiers.
    pub(crate) fn drop_entries(&self, ns: Option<&str>, tiers: &[Tier]) -> Result<u64> {
        let only = ns.map(|name| self.inner.ns_index(name)).transpose()?;
        let mut freed = 0;
        for shard in self.inner.shards.iter() {
            let mut s = shard.write();
            for ns in 0..self.inner.namespaces.len() as u16 {
                if only.is_some_and(|o| o != ns) {
                    continue;
                }
                for &tier in tiers {
                    for idx in s.indices(ns, tier) {
                        let node = s.remove(idx);
                        freed += node.charge;
                        self.inner.removed(&node, Cause::Cleared);
                    }
                }
            }
        }
        Ok(freed)
    }

    /// Walks every entry and checks that the charged bytes add up, per namespace and tier,
    /// to the counters, and that no limit is exceeded.
    #[cfg(test)]
    pub(crate) fn audit(&self) -> std::result::Result<(), String> {
        let inner = &self.inner;
        let mut bytes = vec![[0u64; 2]; inner.namespaces.len()];
        let mut entries = vec![[0u64; 2]; inner.namespaces.len()];
        for shard in inner.shards.iter() {
            let s = shard.read();
            for ns in 0..inner.namespaces.len() as u16 {
                for tier in [Tier::Hot, Tier::Warm] {
                    for idx in s.indices(ns, tier) {
                        let n = s.node(idx);
                        let expected =
                            n.key.len() as u64 + n.value.len() as u64 + ENTRY_OVERHEAD_BYTES;
                        if n.charge != expected || n.tier != tier {
                            return Err(format!("entry charge {} != {expected}", n.charge));
                        }
                        bytes[usize::from(ns)][tier as usize] += n.charge;
                        entries[usize::from(ns)][tier as usize] += 1;
                    }
                }
            }
        }
        let mut total = 0;
        for (i, st) in inner.namespaces.iter().enumerate() {
            let used = st.used.load(Ordering::Acquire);
            let counted = [
                st.bytes[0].load(Ordering::Acquire),
                st.bytes[1].load(Ordering::Acquire),
            ];
            let counted_entries = [
                st.entries[0].load(Ordering::Acquire),
                st.entries[1].load(Ordering::Acquire),
            ];
            if counted != bytes[i] || counted_entries != entries[i] {
                return Err(format!(
                    "{}: counters {counted:?}/{counted_entries:?} != walked {:?}/{:?}",
                    st.name, bytes[i], entries[i]
                ));
            }
            if used != bytes[i][0] + bytes[i][1] {
                return Err(format!("{}: used {used} != {:?}", st.name, bytes[i]));
            }
            if used > st.limit {
                return Err(format!("{}: used {used} > limit {}", st.name, st.limit));
            }
            total += used;
        }
        let used = inner.used.load(Ordering::Acquire);
        if used != total || used > inner.budget {
            return Err(format!(
                "total used {used}, walked {total}, budget {}",
                inner.budget
            ));
        }
        Ok(())
    }
}

/// A handle on one namespace of a [`Cache`]. Cloning is cheap.
#[derive(Clone, Debug)]
pub struct NamespaceCache {
    pub(crate) cache: Cache,
    pub(crate) ns: u16,
}

impl NamespaceCache {
    /// Returns the namespace's name.
    pub fn name(&self) -> &str {
        &self.cache.inner.namespaces[usize::from(self.ns)].name
    }

    /// Returns the cache this namespace belongs to.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Returns the value for `key`: hot hits share the stored bytes, warm hits decompress.
    pub fn get(&self, key: &[u8]) -> Option<Bytes> {
        self.cache.inner.get(self.ns, key)
    }

    /// Stores `value` under `key` with the namespace's TTL, replacing any previous value.
    ///
    /// # Errors
    /// [`Error::EntryTooLarge`] if the entry can never fit; [`Error::NoRoom`] if concurrent
    /// writers kept the cache full.
    pub fn insert(&self, key: &[u8], value: Bytes) -> Result<()> {
        self.cache.inner.insert(self.ns, key, value, None)
    }

    /// Stores `value` with its own TTL. A zero TTL stores nothing and drops any old value.
    ///
    /// # Errors
    /// As [`NamespaceCache::insert`].
    pub fn insert_with_ttl(&self, key: &[u8], value: Bytes, ttl: Duration) -> Result<()> {
        self.cache.inner.insert(self.ns, key, value, Some(ttl))
    }

    /// Removes `key`; returns whether it was there.
    pub fn remove(&self, key: &[u8]) -> bool {
        self.cache.inner.remove(self.ns, key)
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.cache.inner.namespaces[usize::from(self.ns)].counters
    }

    pub(crate) fn flights(&self) -> &Flights {
        &self.cache.inner.namespaces[usize::from(self.ns)].flights
    }
}

struct NsState {
    name: String,
    ttl_nanos: u64,
    limit: u64,
    /// Bytes reserved or charged; the value the limit is enforced on.
    used: AtomicU64,
    bytes: [AtomicU64; 2],
    entries: [AtomicU64; 2],
    /// Uncompressed size of what the warm tier holds.
    warm_raw: AtomicU64,
    /// Compressed size of the same values.
    warm_stored: AtomicU64,
    counters: Counters,
    flights: Flights,
    /// How often keys were asked for lately, with admission on.
    sketch: Option<sketch::Sketch>,
}

struct Inner {
    shards: Box<[RwLock<Shard>]>,
    /// One per namespace, then one for the whole cache.
    victims: Box<[Mutex<Victims>]>,
    mask: usize,
    hasher: foldhash::fast::FixedState,
    namespaces: Box<[NsState]>,
    budget: u64,
    used: AtomicU64,
    clock: Arc<dyn Clock>,
    min_saving: f64,
    warm_max_share: f64,
    promote_after: u32,
}

impl Inner {
    fn ns_index(&self, name: &str) -> Result<u16> {
        self.namespaces
            .iter()
            .position(|n| n.name == name)
            .map(|i| i as u16)
            .ok_or_else(|| Error::UnknownNamespace(name.to_owned()))
    }

    fn locate(&self, ns: u16, key: &[u8]) -> (u64, usize) {
        let hash = self.hasher.hash_one((ns, key));
        // The table uses the low and the top bits; shards use the middle ones.
        (hash, (hash >> 32) as usize & self.mask)
    }

    fn get(&self, ns: u16, key: &[u8]) -> Option<Bytes> {
        let (hash, sh) = self.locate(ns, key);
        if let Some(sketch) = &self.namespaces[usize::from(ns)].sketch {
            sketch.record(hash);
        }
        let now = self.clock.now_nanos();
        let s = self.shards[sh].read();
        let part = &s.parts[usize::from(ns)];
        let Some(idx) = s.find(ns, hash, key) else {
            part.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let node = s.node(idx);
        if node.expires_at <= now {
            part.misses.fetch_add(1, Ordering::Relaxed);
            drop(s);
            self.expire(ns, hash, key, sh, now);
            return None;
        }
        node.stamp.store(now, Ordering::Relaxed);
        match node.tier {
            Tier::Hot => {
                if !node.read.load(Ordering::Relaxed) {
                    node.read.store(true, Ordering::Relaxed);
                }
                part.hits[Tier::Hot as usize].fetch_add(1, Ordering::Relaxed);
                Some(node.value.clone())
            }
            Tier::Warm => {
                part.hits[Tier::Warm as usize].fetch_add(1, Ordering::Relaxed);
                let (block, raw_len, id) = (node.value.clone(), node.raw_len, node.id);
                let warm_hits = node.warm_hits.fetch_add(1, Ordering::Relaxed) + 1;
                let promote = self.promote_after > 0 && warm_hits == self.promote_after;
                drop(s);
                // Decompression runs outside the shard lock so other keys stay fast.
                match lz4_flex::block::decompress(&block, raw_len) {
                    Ok(raw) => {
                        let value = Bytes::from(raw);
                        if promote {
                            self.promote(ns, sh, idx, id, value.clone());
                        }
                        Some(value)
                    }
                    Err(_) => {
                        // Only our own compressor wrote the block; if it cannot be read,
                        // drop it and answer as a miss rather than return wrong bytes.
                        let mut s = self.shards[sh].write();
                        if s.live(idx, id).is_some() {
                            let node = s.remove(idx);
                            self.removed(&node, Cause::Evicted);
                        }
                        None
                    }
                }
            }
        }
    }

    /// Removes `key` if it is (still) expired; reads find expired entries under the shared
    /// lock and come here for the exclusive one.
    fn expire(&self, ns: u16, hash: u64, key: &[u8], sh: usize, now: u64) {
        let mut s = self.shards[sh].write();
        if let Some(idx) = s.find(ns, hash, key) {
            if s.node(idx).expires_at <= now {
                let node = s.remove(idx);
                self.removed(&node, Cause::Expired);
            }
        }
    }

    fn insert(&self, ns: u16, key: &[u8], value: Bytes, ttl: Option<Duration>) -> Result<()> {
        let st = &self.namespaces[usize::from(ns)];
        let ttl_nanos = ttl.map_or(st.ttl_nanos, |t| {
            u64::try_from(t.as_nanos()).unwrap_or(u64::MAX)
        });
        if ttl_nanos == 0 {
            self.remove(ns, key);
            return Ok(());
        }
        let charge = key.len() as u64 + value.len() as u64 + ENTRY_OVERHEAD_BYTES;
        let limit = st.limit.min(self.budget);
        if charge > limit {
            return Err(Error::EntryTooLarge {
                ns: st.name.clone(),
                size: charge,
                limit,
            });
        }
        // The old value's bytes count toward the room the new one needs.
        self.remove_as(ns, key, Cause::Replaced);
        let (hash, sh) = self.locate(ns, key);
        if let Some(sketch) = &st.sketch {
            let fits = st.used.load(Ordering::Acquire) + charge <= st.limit
                && self.used.load(Ordering::Acquire) + charge <= self.budget;
            if !fits {
                // It would push others out: only a key asked for more than once may.
                if sketch.estimate(hash) < 2 {
                    Counters::bump(&st.counters.rejected_admission, 1);
                    return Ok(());
                }
                Counters::bump(&st.counters.admitted, 1);
            }
        }
        self.make_room(ns, charge)?;
        let now = self.clock.now_nanos();
        let node = Node::new(
            ns,
            key.into(),
            hash,
            value,
            charge,
            now.saturating_add(ttl_nanos),
            now,
        );
        let mut s = self.shards[sh].write();
        // A concurrent writer may have stored the key since; last write wins.
        if let Some(idx) = s.find(ns, hash, key) {
            let old = s.remove(idx);
            self.removed(&old, Cause::Replaced);
        }
        self.added(&node);
        s.insert(node);
        Counters::bump(&st.counters.inserts, 1);
        Ok(())
    }

    fn remove(&self, ns: u16, key: &[u8]) -> bool {
        self.remove_as(ns, key, Cause::Removed)
    }

    fn remove_as(&self, ns: u16, key: &[u8], cause: Cause) -> bool {
        let (hash, sh) = self.locate(ns, key);
        let mut s = self.shards[sh].write();
        match s.find(ns, hash, key) {
            Some(idx) => {
                let node = s.remove(idx);
                self.removed(&node, cause);
                true
            }
            None => false,
        }
    }

    /// Accounts for a node that joins the hot tier; its bytes are already reserved.
    /// Called with the node's shard locked, so counters never run ahead of entries.
    fn added(&self, node: &Node) {
        let st = &self.namespaces[usize::from(node.ns)];
        st.bytes[node.tier as usize].fetch_add(node.charge, Ordering::AcqRel);
        st.entries[node.tier as usize].fetch_add(1, Ordering::AcqRel);
    }

    /// Accounts for a node that left the cache. Called with its shard locked.
    fn removed(&self, node: &Node, cause: Cause) {
        let st = &self.namespaces[usize::from(node.ns)];
        let tier = node.tier as usize;
        st.bytes[tier].fetch_sub(node.charge, Ordering::AcqRel);
        st.entries[tier].fetch_sub(1, Ordering::AcqRel);
        if node.tier == Tier::Warm {
            st.warm_raw.fetch_sub(node.raw_len as u64, Ordering::AcqRel);
            st.warm_stored
                .fetch_sub(node.value.len() as u64, Ordering::AcqRel);
        }
        self.release(node.ns, node.charge);
        let c = &st.counters;
        match cause {
            Cause::Evicted => Counters::bump(&c.evictions, 1),
            Cause::Expired => Counters::bump(&c.expirations, 1),
            Cause::Removed | Cause::Cleared => Counters::bump(&c.removals, 1),
            Cause::Replaced => {}
        }
        if cause != Cause::Replaced && cause != Cause::Removed {
            Counters::bump(&c.bytes_freed, node.charge);
        }
    }
}

mod budget;
mod builder;
mod counters;
mod evict;
mod load;
mod sketch;
mod typed;
mod victims;

pub use builder::CacheBuilder;
pub(crate) use counters::{Cause, Counters};
use victims::Victims;

#[cfg(test)]
mod tests;
