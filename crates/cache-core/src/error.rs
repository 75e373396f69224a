use std::sync::Arc;

/// Errors returned by `cache-core`.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The entry is larger than its namespace limit or the global budget allows.
    #[error("entry of {size} bytes exceeds the limit of {limit} bytes for namespace `{ns}`")]
    EntryTooLarge {
        /// The namespace the entry was meant for.
        ns: String,
        /// The charged size of the entry (key + value + overhead).
        size: u64,
        /// The smallest of the namespace limit and the global budget.
        limit: u64,
    },
    /// No namespace with that name was configured.
    #[error("unknown namespace `{0}`")]
    UnknownNamespace(String),
    /// Concurrent reservations kept the cache too full to admit the entry.
    #[error("no room for {size} bytes in namespace `{ns}` after {rounds} reclaim rounds")]
    NoRoom {
        /// The namespace the entry was meant for.
        ns: String,
        /// The charged size of the entry.
        size: u64,
        /// How many times the cache tried to make room.
        rounds: u32,
    },
    /// The configuration is invalid; the message names the key.
    #[error("invalid cache configuration: `{key}` {reason}")]
    Config {
        /// The configuration key at fault, e.g. `namespaces[1].limit_bytes`.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A typed value could not be encoded or decoded.
    #[error("typed value codec failed")]
    Codec(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// The loader of `get_or_load` failed; every waiter of that load sees the same error.
    #[error("loader failed")]
    Load(#[source] Arc<dyn std::error::Error + Send + Sync>),
}

/// The result type of `cache-core`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
