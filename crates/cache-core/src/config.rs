use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Names of the namespaces every default configuration has.
pub mod ns {
    /// Recent candles, short-lived (300 s, 50 MB by default).
    pub const MARKET_DATA_OHLCV: &str = "market_data_ohlcv";
    /// Closed candle history (3600 s, 200 MB by default).
    pub const HISTORICAL_DATA: &str = "historical_data";
    /// Results computed from candles (1800 s, 100 MB by default).
    pub const STRATEGY_RESULTS: &str = "strategy_results";
    /// Whole encoded HTTP responses (60 s, 50 MB by default).
    pub const API_RESPONSES: &str = "api_responses";
}

const MB: u64 = 1_000_000;

/// Configuration of a [`Cache`](crate::Cache); plain data, checked by [`CacheConfig::validate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// The most bytes all namespaces together may hold.
    pub budget_bytes: u64,
    /// Number of lock shards, a power of two; 0 picks one from the number of cores.
    pub shards: usize,
    /// A demoted entry is kept compressed only if compression saves at least this share (0..1).
    pub min_compression_saving: f64,
    /// Above this share of a limit in the warm tier, pressure evicts warm entries instead of
    /// demoting more hot ones.
    pub warm_max_share: f64,
    /// A warm entry moves back to the hot tier on this many warm hits; 0 never promotes.
    ///
    /// Promotion costs a compression of the hot entry it displaces, several times the
    /// cost of one decompression, so it should wait for real popularity: on the Zipf
    /// benchmark with 64 KB values, 8 gave twice the throughput of 2 at the same hit ratio.
    pub promote_after_warm_hits: u32,
    /// The namespaces, each with its own TTL and byte limit.
    pub namespaces: Vec<NamespaceConfig>,
}

/// One namespace: a name, a default TTL and a byte limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceConfig {
    /// The name: 1 to 64 of `a-z`, `0-9` and `_`.
    pub name: String,
    /// Default time to live of entries, in milliseconds.
    pub ttl_ms: u64,
    /// The most bytes this namespace may hold.
    pub limit_bytes: u64,
    /// Admit a new entry that would displace others only if its key was asked for more
    /// than once lately (a frequency sketch, TinyLFU's idea): one-off answers then never
    /// push out answers that are read. For namespaces of many one-off values (the
    /// response cache); off for those whose every entry is wanted (chunks).
    #[serde(default)]
    pub admission: bool,
}

impl NamespaceConfig {
    /// Creates a namespace configuration.
    pub fn new(name: impl Into<String>, ttl_ms: u64, limit_bytes: u64) -> Self {
        Self {
            name: name.into(),
            ttl_ms,
            limit_bytes,
            admission: false,
        }
    }

    /// The same namespace with admission on or off.
    #[must_use]
    pub fn with_admission(mut self, on: bool) -> Self {
        self.admission = on;
        self
    }
}

impl Default for CacheConfig {
    /// The defaults of the system candlecache replaces: 500 MB and four namespaces.
    fn default() -> Self {
        Self {
            budget_bytes: 500 * MB,
            shards: 0,
            min_compression_saving: 0.20,
            warm_max_share: 0.5,
            promote_after_warm_hits: 8,
            namespaces: vec![
                NamespaceConfig::new(ns::MARKET_DATA_OHLCV, 300_000, 50 * MB),
                NamespaceConfig::new(ns::HISTORICAL_DATA, 3_600_000, 200 * MB),
                NamespaceConfig::new(ns::STRATEGY_RESULTS, 1_800_000, 100 * MB),
                NamespaceConfig::new(ns::API_RESPONSES, 60_000, 50 * MB).with_admission(true),
            ],
        }
    }
}

impl CacheConfig {
    /// Checks every field and names the first one that is wrong.
    ///
    /// # Errors
    /// [`Error::Config`] naming the key and the reason.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: String, reason: &str| {
            Err(Error::Config {
                key,
                reason: reason.to_owned(),
            })
        };
        if self.budget_bytes == 0 {
            return bad("budget_bytes".into(), "must be greater than 0");
        }
        if self.shards != 0 && (!self.shards.is_power_of_two() || self.shards > 1024) {
            return bad(
                "shards".into(),
                "must be 0 (auto) or a power of two up to 1024",
            );
        }
        if !(0.0..1.0).contains(&self.min_compression_saving) {
            return bad(
                "min_compression_saving".into(),
                "must be at least 0 and below 1",
            );
        }
        if !(0.0..=1.0).contains(&self.warm_max_share) {
            return bad("warm_max_share".into(), "must be between 0 and 1");
        }
        if self.namespaces.is_empty() {
            return bad("namespaces".into(), "must name at least one namespace");
        }
        if self.namespaces.len() > usize::from(u16::MAX) {
            return bad("namespaces".into(), "has too many entries");
        }
        for (i, n) in self.namespaces.iter().enumerate() {
            let valid_name = !n.name.is_empty()
                && n.name.len() <= 64
                && n.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid_name {
                return bad(
                    format!("namespaces[{i}].name"),
                    "must be 1 to 64 of a-z, 0-9 and _",
                );
            }
            if self.namespaces[..i].iter().any(|m| m.name == n.name) {
                return bad(format!("namespaces[{i}].name"), "is used twice");
            }
            if n.ttl_ms == 0 {
                return bad(format!("namespaces[{i}].ttl_ms"), "must be greater than 0");
            }
            if n.limit_bytes == 0 {
                return bad(
                    format!("namespaces[{i}].limit_bytes"),
                    "must be greater than 0",
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(edit: impl FnOnce(&mut CacheConfig), key: &str) {
        let mut cfg = CacheConfig::default();
        edit(&mut cfg);
        match cfg.validate() {
            Err(Error::Config { key: k, .. }) => assert_eq!(k, key),
            other => panic!("expected a config error on {key}, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_valid_and_match_the_replaced_system() {
        let cfg = CacheConfig::default();
        cfg.validate().unwrap();
        assert_eq!(cfg.budget_bytes, 500_000_000);
        let find = |n: &str| cfg.namespaces.iter().find(|c| c.name == n).unwrap().clone();
        assert_eq!(find(ns::MARKET_DATA_OHLCV).ttl_ms, 300_000);
        assert_eq!(find(ns::HISTORICAL_DATA).limit_bytes, 200_000_000);
        assert_eq!(find(ns::STRATEGY_RESULTS).ttl_ms, 1_800_000);
        assert_eq!(find(ns::API_RESPONSES).limit_bytes, 50_000_000);
    }

    #[test]
    fn invalid_fields_are_named() {
        check(|c| c.budget_bytes = 0, "budget_bytes");
        check(|c| c.shards = 3, "shards");
        check(|c| c.min_compression_saving = 1.0, "min_compression_saving");
        check(
            |c| c.min_compression_saving = -0.1,
            "min_compression_saving",
        );
        check(|c| c.warm_max_share = 1.5, "warm_max_share");
        check(|c| c.namespaces.clear(), "namespaces");
        check(
            |c| c.namespaces[1].name = "Bad Name".into(),
            "namespaces[1].name",
        );
        check(
            |c| c.namespaces[2].name = c.namespaces[0].name.clone(),
            "namespaces[2].name",
        );
        check(|c| c.namespaces[0].ttl_ms = 0, "namespaces[0].ttl_ms");
        check(
            |c| c.namespaces[3].limit_bytes = 0,
            "namespaces[3].limit_bytes",
        );
    }

    #[test]
    fn unknown_keys_are_refused_when_parsing() {
        let err = serde_json::from_str::<CacheConfig>(r#"{"budget_byts": 5}"#).unwrap_err();
        assert!(err.to_string().contains("budget_byts"), "{err}");
    }
}
