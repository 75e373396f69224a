//! The seam through which a memory monitor frees cache memory.

use crate::cache::Cache;
use crate::shard::Tier;
use crate::Result;

/// What to clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// Every namespace.
    All,
    /// One namespace, by name.
    Namespace(&'a str),
}

/// Something that holds memory it can give back on request; the cache implements it and
/// `mem-guard` calls it under memory pressure.
pub trait Reclaim: Send + Sync {
    /// Returns the bytes currently held.
    fn held_bytes(&self) -> u64;

    /// Frees at least `bytes` if that much is held, least valuable first, and returns the
    /// bytes actually freed.
    fn free_at_least(&self, bytes: u64) -> u64;

    /// Drops everything kept in compressed form; returns the bytes freed.
    fn drop_compressed(&self) -> u64;

    /// Drops everything in `scope`; returns the bytes freed.
    ///
    /// # Errors
    /// If the scope names something unknown.
    fn clear(&self, scope: Scope<'_>) -> Result<u64>;
}

impl Reclaim for Cache {
    fn held_bytes(&self) -> u64 {
        self.used_bytes()
    }

    /// Evicts least recently used entries, warm before hot, and compresses nothing: under
    /// memory pressure a compression buffer is the last thing to allocate.
    fn free_at_least(&self, bytes: u64) -> u64 {
        self.evict_at_least(bytes)
    }

    fn drop_compressed(&self) -> u64 {
        self.drop_entries(None, &[Tier::Warm])
            .expect("no namespace filter, so no unknown namespace")
    }

    fn clear(&self, scope: Scope<'_>) -> Result<u64> {
        let ns = match scope {
            Scope::All => None,
            Scope::Namespace(name) => Some(name),
        };
        self.drop_entries(ns, &[Tier::Hot, Tier::Warm])
    }
}
