//! Snapshots of the cache's counters, serializable to JSON.

use std::collections::BTreeMap;

use serde::Serialize;

/// A point-in-time view of the whole cache: per namespace and in total.
#[derive(Debug, Clone, Serialize)]
pub struct CacheStats {
    /// The global byte budget.
    pub budget_bytes: u64,
    /// Bytes charged across all namespaces (entries plus reservations in flight).
    pub used_bytes: u64,
    /// The sum over all namespaces.
    pub total: NamespaceStats,
    /// Each namespace by name.
    pub namespaces: BTreeMap<String, NamespaceStats>,
}

/// Counters and sizes of one namespace (or of all, in [`CacheStats::total`]).
///
/// Counters count since the cache was built; sizes are current.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NamespaceStats {
    /// Default TTL in milliseconds (0 in the total).
    pub ttl_ms: u64,
    /// The byte limit (the sum of limits in the total).
    pub limit_bytes: u64,
    /// Bytes charged now.
    pub used_bytes: u64,
    /// Reads that found a value, in either tier.
    pub hits: u64,
    /// Reads answered from the hot tier.
    pub hits_hot: u64,
    /// Reads answered by decompressing from the warm tier.
    pub hits_warm: u64,
    /// Reads that found nothing, or only an expired value.
    pub misses: u64,
    /// `hits / (hits + misses)`, 0 before the first read.
    pub hit_rate: f64,
    /// Values stored.
    pub inserts: u64,
    /// Entries held now, both tiers.
    pub entries: u64,
    /// Entries held uncompressed.
    pub entries_hot: u64,
    /// Entries held compressed.
    pub entries_warm: u64,
    /// Bytes charged to hot entries.
    pub bytes_hot: u64,
    /// Bytes charged to warm entries.
    pub bytes_warm: u64,
    /// Hot entries compressed into the warm tier.
    pub demotions: u64,
    /// Warm entries moved back to the hot tier.
    pub promotions: u64,
    /// Entries dropped to make room or on reclaim (not expiry, not explicit removal).
    pub evictions: u64,
    /// Entries dropped because their TTL ran out.
    pub expirations: u64,
    /// Entries removed by a caller or by a clear.
    pub removals: u64,
    /// Bytes given back by evictions, expirations, demotions and clears.
    pub bytes_freed: u64,
    /// Demotions that did not save enough and evicted instead.
    pub rejected_compression: u64,
    /// Uncompressed size of what the warm tier holds.
    pub warm_raw_bytes: u64,
    /// Compressed size of the warm tier's values (keys and overhead not included).
    pub warm_stored_bytes: u64,
    /// Uncompressed over compressed size of the warm tier's values (0 when empty).
    pub compression_ratio: f64,
    /// Bytes the warm tier saves by compressing.
    pub bytes_saved: u64,
    /// Loader runs of `get_or_load`.
    pub loads: u64,
    /// Loader runs that failed.
    pub load_errors: u64,
    /// Callers that waited for another caller's load instead of running their own.
    pub coalesced_waits: u64,
    /// New entries that displaced others because their keys were asked for often enough
    /// (namespaces with admission).
    pub admitted: u64,
    /// New entries not stored: they would have displaced others and their keys were
    /// asked for once (namespaces with admission).
    pub rejected_by_admission: u64,
}

impl NamespaceStats {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        ttl_ms: u64,
        limit_bytes: u64,
        used_bytes: u64,
        hits: [u64; 2],
        misses: u64,
        entries: [u64; 2],
        bytes: [u64; 2],
        [warm_raw_bytes, warm_values]: [u64; 2],
        c: CounterValues,
    ) -> Self {
        let mut s = Self {
            ttl_ms,
            limit_bytes,
            used_bytes,
            hits: hits[0] + hits[1],
            hits_hot: hits[0],
            hits_warm: hits[1],
            misses,
            hit_rate: 0.0,
            inserts: c.inserts,
            entries: entries[0] + entries[1],
            entries_hot: entries[0],
            entries_warm: entries[1],
            bytes_hot: bytes[0],
            bytes_warm: bytes[1],
            demotions: c.demotions,
            promotions: c.promotions,
            evictions: c.evictions,
            expirations: c.expirations,
            removals: c.removals,
            bytes_freed: c.bytes_freed,
            rejected_compression: c.rejected_compression,
            warm_raw_bytes,
            compression_ratio: 0.0,
            bytes_saved: 0,
            loads: c.loads,
            load_errors: c.load_errors,
            coalesced_waits: c.coalesced,
            admitted: c.admitted,
            rejected_by_admission: c.rejected_admission,
            warm_stored_bytes: warm_values,
        };
        s.derive();
        s
    }

    fn derive(&mut self) {
        let reads = self.hits + self.misses;
        self.hit_rate = if reads == 0 {
            0.0
        } else {
            self.hits as f64 / reads as f64
        };
        self.compression_ratio = if self.warm_stored_bytes == 0 {
            0.0
        } else {
            self.warm_raw_bytes as f64 / self.warm_stored_bytes as f64
        };
        self.bytes_saved = self.warm_raw_bytes.saturating_sub(self.warm_stored_bytes);
    }

    fn add(&mut self, o: &NamespaceStats) {
        self.limit_bytes += o.limit_bytes;
        self.used_bytes += o.used_bytes;
        self.hits += o.hits;
        self.hits_hot += o.hits_hot;
        self.hits_warm += o.hits_warm;
        self.misses += o.misses;
        self.inserts += o.inserts;
        self.entries += o.entries;
        self.entries_hot += o.entries_hot;
        self.entries_warm += o.entries_warm;
        self.bytes_hot += o.bytes_hot;
        self.bytes_warm += o.bytes_warm;
        self.demotions += o.demotions;
        self.promotions += o.promotions;
        self.evictions += o.evictions;
        self.expirations += o.expirations;
        self.removals += o.removals;
        self.bytes_freed += o.bytes_freed;
        self.rejected_compression += o.rejected_compression;
        self.warm_raw_bytes += o.warm_raw_bytes;
        self.loads += o.loads;
        self.load_errors += o.load_errors;
        self.coalesced_waits += o.coalesced_waits;
        self.admitted += o.admitted;
        self.rejected_by_admission += o.rejected_by_admission;
        self.warm_stored_bytes += o.warm_stored_bytes;
    }
}

impl CacheStats {
    pub(crate) fn new(
        budget_bytes: u64,
        used_bytes: u64,
        namespaces: BTreeMap<String, NamespaceStats>,
    ) -> Self {
        let mut total = NamespaceStats::default();
        for ns in namespaces.values() {
            total.add(ns);
        }
        total.derive();
        Self {
            budget_bytes,
            used_bytes,
            total,
            namespaces,
        }
    }
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
    pub(crate) admitted: u64,
    pub(crate) rejected_admission: u64,
}
