//! A byte-budgeted, namespaced, two-tier in-memory cache; the innermost layer of candlecache.
//!
//! It knows nothing of markets, SQLite or HTTP: it keeps byte values under keys, within a
//! global byte budget and a byte limit per namespace, and answers fast from memory.
//!
//! # Overview
//! - [`Cache`] (built by [`CacheBuilder`] or from a [`CacheConfig`]) owns the budget and
//!   the shards; [`Cache::namespace`] gives a [`NamespaceCache`] through which values are
//!   read and written. Every namespace has a default TTL, entries may override it.
//! - Tiers: new values are *hot* ([`bytes::Bytes`], shared without copying). Under
//!   pressure the least recently used hot entries are lz4-compressed into the *warm* tier
//!   if that saves enough ([`CacheConfig::min_compression_saving`]); warm entries are
//!   evicted least recently used first. A warm hit decompresses, and repeated warm hits
//!   promote the entry back to hot.
//! - Accounting is exact: each entry charges its key, its stored value and
//!   [`ENTRY_OVERHEAD_BYTES`]; bytes are reserved before an entry is stored, so no
//!   namespace ever exceeds its limit and the total never exceeds the budget.
//! - [`NamespaceCache::get_or_load`] runs one loader for all concurrent misses of a key;
//!   errors reach every waiter and are not cached.
//! - [`Cache::stats`] returns a [`CacheStats`] snapshot; [`Reclaim`] lets a memory monitor
//!   free bytes; a [`Clock`] (e.g. [`ManualClock`]) can be injected for tests.
//!
//! # Example
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use cache_core::{Cache, Reclaim, Scope};
//!
//! let cache = Cache::builder()
//!     .no_namespaces()
//!     .budget_bytes(1 << 20)
//!     .namespace("candles", Duration::from_secs(60), 512 << 10)
//!     .build()?;
//! let candles = cache.namespace("candles")?;
//! candles.insert(b"BTCUSDT/1h/0", Bytes::from_static(b"[[0,1,2,0.5,1.5,10]]"))?;
//! assert_eq!(candles.get(b"BTCUSDT/1h/0").as_deref(), Some(&b"[[0,1,2,0.5,1.5,10]]"[..]));
//! assert_eq!(cache.stats().namespaces["candles"].hits, 1);
//! assert!(cache.clear(Scope::All)? > 0);
//! # Ok::<(), cache_core::Error>(())
//! ```
#![forbid(unsafe_code)]

mod cache;
mod clock;
mod codec;
mod config;
mod error;
mod flight;
mod reclaim;
mod shard;
mod stats;

pub use cache::{Cache, CacheBuilder, NamespaceCache, ENTRY_OVERHEAD_BYTES};
pub use clock::{wall_clock, wall_ms, Clock, ManualClock, Now, SystemClock};
pub use config::{ns, CacheConfig, NamespaceConfig};
pub use error::{Error, Result};
pub use reclaim::{Reclaim, Scope};
pub use stats::{CacheStats, NamespaceStats};
