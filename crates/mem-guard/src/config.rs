//! The guard's settings: the limit, the thresholds, the sampling.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How the guard samples, judges and reclaims. `[memory]` in the configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The memory limit in MB (1 MB = 10^6 bytes); 2000 by default.
    pub limit_mb: u64,
    /// Warning at this share of the limit (0.8): the cache gives memory back.
    pub warning: f64,
    /// Critical at this share of the limit (0.9): the warm tier is dropped, the hot shrunk.
    pub critical: f64,
    /// On Warning the cache frees until resident memory would be at this share (0.7).
    pub reclaim_to: f64,
    /// Growth at or above this rate, MB a minute, sustained, is a leak suspect (1.0).
    pub leak_mb_per_min: f64,
    /// ... when the straight line explains at least this share of the variance (0.8).
    pub leak_min_r2: f64,
    /// ... over at least this many minutes of samples (5).
    pub leak_min_minutes: f64,
    /// Milliseconds between samples (10 000).
    pub sample_interval_ms: u64,
    /// Minutes of samples kept (60).
    pub history_minutes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            limit_mb: 2000,
            warning: 0.8,
            critical: 0.9,
            reclaim_to: 0.7,
            leak_mb_per_min: 1.0,
            leak_min_r2: 0.8,
            leak_min_minutes: 5.0,
            sample_interval_ms: 10_000,
            history_minutes: 60,
        }
    }
}

impl Config {
    /// The limit in bytes.
    pub fn limit_bytes(&self) -> u64 {
        self.limit_mb.saturating_mul(1_000_000)
    }

    /// How many samples the history holds.
    pub(crate) fn capacity(&self) -> usize {
        let n = self.history_minutes.saturating_mul(60_000) / self.sample_interval_ms.max(1);
        (n as usize).clamp(2, 1_000_000)
    }

    /// Refuses settings that cannot work, naming the key.
    ///
    /// # Errors
    /// [`Error::Config`] for the first bad key.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &'static str, reason: String| Err(Error::Config { key, reason });
        if self.limit_mb == 0 {
            return bad("limit_mb", "must be at least 1".into());
        }
        for (key, v) in [
            ("reclaim_to", self.reclaim_to),
            ("warning", self.warning),
            ("critical", self.critical),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                return bad(key, format!("{v} is not a share in (0, 1]"));
            }
        }
        if self.warning >= self.critical {
            return bad(
                "warning",
                format!(
                    "{} must be below critical ({})",
                    self.warning, self.critical
                ),
            );
        }
        if self.reclaim_to >= self.warning {
            return bad(
                "reclaim_to",
                format!(
                    "{} must be below warning ({})",
                    self.reclaim_to, self.warning
                ),
            );
        }
        if !(self.leak_min_r2 >= 0.0 && self.leak_min_r2 <= 1.0) {
            return bad(
                "leak_min_r2",
                format!("{} is not in [0, 1]", self.leak_min_r2),
            );
        }
        for (key, v) in [
            ("leak_mb_per_min", self.leak_mb_per_min),
            ("leak_min_minutes", self.leak_min_minutes),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(key, format!("{v} must be a positive number"));
            }
        }
        if !(100..=3_600_000).contains(&self.sample_interval_ms) {
            return bad(
                "sample_interval_ms",
                format!("{} is not between 100 and 3600000", self.sample_interval_ms),
            );
        }
        if !(1..=7 * 24 * 60).contains(&self.history_minutes) {
            return bad(
                "history_minutes",
                format!("{} is not between 1 and 10080", self.history_minutes),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_keys_are_named() {
        Config::default()
            .validate()
            .unwrap_or_else(|e| panic!("{e}"));
        for (c, key) in [
            (
                Config {
                    limit_mb: 0,
                    ..Config::default()
                },
                "limit_mb",
            ),
            (
                Config {
                    warning: 0.95,
                    ..Config::default()
                },
                "warning",
            ),
            (
                Config {
                    critical: f64::NAN,
                    ..Config::default()
                },
                "critical",
            ),
            (
                Config {
                    reclaim_to: 0.85,
                    ..Config::default()
                },
                "reclaim_to",
            ),
            (
                Config {
                    sample_interval_ms: 5,
                    ..Config::default()
                },
                "sample_interval_ms",
            ),
        ] {
            match c.validate() {
                Err(Error::Config { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{key}: {other:?}"),
            }
        }
        assert_eq!(Config::default().capacity(), 360);
    }
}
