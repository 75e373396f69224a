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

/// Candidates taken from each list of each shard per eviction scan.
const SCAN_DEPTH: usize = 8;
/// Entries an eviction scan may look at per list and shard, relinking included.
const SCAN_STEPS: usize = 256;
/// Upper bound on eviction scans per `free` call; each scan locks every shard once.
const MAX_SCANS: u32 = 64;
/// Upper bound on attempts to reserve room for one entry.
const MAX_ROOM_ROUNDS: u32 = 64;

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

/// Builds a [`Cache`]; starts from [`CacheConfig::default`].
#[derive(Debug, Default)]
pub struct CacheBuilder {
    config: CacheConfig,
    clock: Option<Arc<dyn Clock>>,
}

impl CacheBuilder {
    /// Starts from the given configuration.
    pub fn from_config(config: CacheConfig) -> Self {
        Self {
            config,
            clock: None,
        }
    }

    /// Sets the global byte budget.
    pub fn budget_bytes(mut self, bytes: u64) -> Self {
        self.config.budget_bytes = bytes;
        self
    }

    /// Adds a namespace, or replaces the one with the same name.
    pub fn namespace(mut self, name: &str, ttl: Duration, limit_bytes: u64) -> Self {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let ns = NamespaceConfig::new(name, ttl_ms, limit_bytes);
        match self.config.namespaces.iter_mut().find(|n| n.name == name) {
            Some(slot) => *slot = ns,
            None => self.config.namespaces.push(ns),
        }
        self
    }

    /// Removes every namespace, so that only those added afterwards exist.
    pub fn no_namespaces(mut self) -> Self {
        self.config.namespaces.clear();
        self
    }

    /// Sets the number of lock shards (a power of two).
    pub fn shards(mut self, shards: usize) -> Self {
        self.config.shards = shards;
        self
    }

    /// Sets the share compression must save for an entry to be kept warm.
    pub fn min_compression_saving(mut self, share: f64) -> Self {
        self.config.min_compression_saving = share;
        self
    }

    /// Sets the share of a limit above which pressure evicts warm entries first.
    pub fn warm_max_share(mut self, share: f64) -> Self {
        self.config.warm_max_share = share;
        self
    }

    /// Sets how many warm hits promote an entry back to hot (0: never).
    pub fn promote_after_warm_hits(mut self, hits: u32) -> Self {
        self.config.promote_after_warm_hits = hits;
        self
    }

    /// Uses `clock` for TTLs and recency instead of the system clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Validates the configuration and builds the cache.
    ///
    /// # Errors
    /// [`Error::Config`] naming the invalid key.
    pub fn build(self) -> Result<Cache> {
        let cfg = self.config;
        cfg.validate()?;
        let shards = if cfg.shards == 0 {
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            (cores * 4).next_power_of_two().clamp(4, 64)
        } else {
            cfg.shards
        };
        let namespaces = cfg
            .namespaces
            .iter()
            .map(|n| NsState {
                name: n.name.clone(),
                ttl_nanos: n.ttl_ms.saturating_mul(1_000_000),
                limit: n.limit_bytes,
                used: AtomicU64::new(0),
                bytes: Default::default(),
                entries: Default::default(),
                warm_raw: AtomicU64::new(0),
                warm_stored: AtomicU64::new(0),
                counters: Counters::default(),
                flights: Flights::default(),
            })
            .collect::<Vec<_>>();
        let inner = Inner {
            shards: (0..shards)
                .map(|_| RwLock::new(Shard::new(namespaces.len())))
                .collect(),
            victims: (0..=namespaces.len()).map(|_| Mutex::default()).collect(),
            mask: shards - 1,
            hasher: foldhash::fast::FixedState::with_seed(0x9e37_79b9_7f4a_7c15),
            namespaces: namespaces.into_boxed_slice(),
            budget: cfg.budget_bytes,
            used: AtomicU64::new(0),
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock::new())),
            min_saving: cfg.min_compression_saving,
            warm_max_share: cfg.warm_max_share,
            promote_after: cfg.promote_after_warm_hits,
        };
        Ok(Cache {
            inner: Arc::new(inner),
        })
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

    /// Frees at least `bytes` by evicting least recently used entries, warm before hot,
    /// without compressing anything; returns the bytes freed.
    pub(crate) fn evict_at_least(&self, bytes: u64) -> u64 {
        self.inner.free(None, bytes, Mode::Reclaim)
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Making room for a write: demote hot entries before evicting warm ones.
    Pressure,
    /// Freeing memory on request: evict, warm first, and compress nothing.
    Reclaim,
}

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
}

/// Plain copies of [`Counters`] for a snapshot.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CounterValues {
    pub(crate) inserts: u64,
    pub(crate) demotions: u64,
    pub(crate) promotions: u64,
    pub(crate) evictions: u64,
    pub(crate) expirations: u64,
    pub(crate) removals: u64,
    pub(crate) bytes_freed: u64,
    pub(crate) rejected_compression: u64,
    pub(crate) loads: u64,
    pub(crate) load_errors: u64,
    pub(crate) coalesced: u64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }

    fn snapshot(&self) -> CounterValues {
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
        }
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
}

/// Eviction candidates of one scope (a namespace, or all), oldest last.
#[derive(Default)]
struct Victims {
    lists: [Vec<Candidate>; 2],
    /// Candidates left per tier and shard.
    remaining: [Vec<usize>; 2],
    /// Whether the scan stopped short of the end of that shard's list.
    truncated: [Vec<bool>; 2],
    valid: bool,
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

/// Which budget a reservation ran into, and by how many bytes.
enum Short {
    Namespace(u64),
    Budget(u64),
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
        self.make_room(ns, charge)?;
        let (hash, sh) = self.locate(ns, key);
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

    fn release(&self, ns: u16, bytes: u64) {
        self.namespaces[usize::from(ns)]
            .used
            .fetch_sub(bytes, Ordering::AcqRel);
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Reserves `size` bytes in the namespace and the budget, or reports the shortfall.
    /// Both counters only ever move within their limits, so the invariant holds at all
    /// times, not only between operations.
    fn try_charge(&self, ns: u16, size: u64) -> std::result::Result<(), Short> {
        let st = &self.namespaces[usize::from(ns)];
        let mut cur = st.used.load(Ordering::Acquire);
        loop {
            if cur + size > st.limit {
                return Err(Short::Namespace(cur + size - st.limit));
            }
            match st.used.compare_exchange_weak(
                cur,
                cur + size,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        let mut cur = self.used.load(Ordering::Acquire);
        loop {
            if cur + size > self.budget {
                st.used.fetch_sub(size, Ordering::AcqRel);
                return Err(Short::Budget(cur + size - self.budget));
            }
            match self.used.compare_exchange_weak(
                cur,
                cur + size,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(now) => cur = now,
            }
        }
    }

    fn make_room(&self, ns: u16, size: u64) -> Result<()> {
        let mut idle_rounds = 0;
        for _ in 0..MAX_ROOM_ROUNDS {
            let (scope, need) = match self.try_charge(ns, size) {
                Ok(()) => return Ok(()),
                Err(Short::Namespace(n)) => (Some(ns), n),
                Err(Short::Budget(n)) => (None, n),
            };
            if self.free(scope, need, Mode::Pressure) == 0 {
                // Nothing was evictable: other writers hold the room as reservations.
                idle_rounds += 1;
                if idle_rounds > 8 {
                    break;
                }
                std::thread::yield_now();
            }
        }
        let st = &self.namespaces[usize::from(ns)];
        Err(Error::NoRoom {
            ns: st.name.clone(),
            size,
            rounds: MAX_ROOM_ROUNDS,
        })
    }

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
    fn free(&self, scope: Option<u16>, need: u64, mode: Mode) -> u64 {
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
    fn promote(&self, ns: u16, sh: usize, idx: u32, id: u64, value: Bytes) {
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

#[cfg(test)]
mod tests;
