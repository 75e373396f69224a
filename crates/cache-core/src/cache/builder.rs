//! [`CacheBuilder`]: a cache from a configuration, setting by setting.

use super::*;

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

    /// Turns admission on or off for the namespace `name` (added before).
    pub fn admission(mut self, name: &str, on: bool) -> Self {
        if let Some(n) = self.config.namespaces.iter_mut().find(|n| n.name == name) {
            n.admission = on;
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
                // Sized for the entries of 4 KB that fit the limit, within the sketch's
                // bounds (a few KB to 4 MB of counters).
                sketch: n
                    .admission
                    .then(|| super::sketch::Sketch::new((n.limit_bytes / 4096) as usize)),
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
