//! Query timing: statistics per normalized pattern and a log of the last slow queries.

use std::collections::VecDeque;
use std::time::Duration;

use dashmap::DashMap;
use parking_lot::Mutex;
use serde::Serialize;

/// Statistics of one query pattern.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatternStats {
    /// The normalized statement.
    pub pattern: String,
    /// How many times it ran (a batch of N executions counts N).
    pub count: u64,
    /// Total time, in ms.
    pub total_ms: f64,
    /// Mean time per execution, in ms.
    pub mean_ms: f64,
    /// Longest single call, in ms.
    pub max_ms: f64,
}

/// One call that took longer than the slow-query threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlowQuery {
    /// The normalized statement.
    pub pattern: String,
    /// How long the call took, in ms.
    pub duration_ms: f64,
    /// Executions in the call.
    pub executions: u64,
    /// When it finished, epoch ms.
    pub at_ms: u64,
}

#[derive(Default, Clone)]
struct Entry {
    count: u64,
    total: Duration,
    max: Duration,
}

/// Records how long queries take. Shared by all sessions of a [`Db`](crate::Db).
pub struct QueryLog {
    slow_threshold: Duration,
    slow_keep: usize,
    /// By pattern: every statement records here, so a concurrent map keeps statements
    /// of different patterns from queueing on one lock.
    patterns: DashMap<String, Entry>,
    /// A short ring written only by slow calls: one lock is enough.
    slow: Mutex<VecDeque<SlowQuery>>,
}

impl std::fmt::Debug for QueryLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryLog")
            .field("slow_threshold", &self.slow_threshold)
            .field("patterns", &self.patterns.len())
            .finish()
    }
}

impl QueryLog {
    /// Creates a log that keeps the last `slow_keep` calls slower than `slow_threshold`.
    pub fn new(slow_threshold: Duration, slow_keep: usize) -> Self {
        Self {
            slow_threshold,
            slow_keep,
            patterns: DashMap::default(),
            slow: Mutex::default(),
        }
    }

    /// Records a call of `sql` that ran `executions` times in `took`.
    pub fn record(&self, sql: &str, executions: u64, took: Duration) {
        let pattern = normalize(sql);
        {
            // A pattern seen before (nearly every call) is found without copying its text.
            let mut e = match self.patterns.get_mut(&pattern) {
                Some(e) => e,
                None => self.patterns.entry(pattern.clone()).or_default(),
            };
            e.count += executions;
            e.total += took;
            e.max = e.max.max(took);
        }
        if took >= self.slow_threshold {
            let mut slow = self.slow.lock();
            if slow.len() == self.slow_keep {
                slow.pop_front();
            }
            if self.slow_keep > 0 {
                slow.push_back(SlowQuery {
                    pattern,
                    duration_ms: ms(took),
                    executions,
                    at_ms: cache_core::wall_ms().max(0) as u64,
                });
            }
        }
    }

    /// Returns the statistics of every pattern seen, most total time first.
    pub fn patterns(&self) -> Vec<PatternStats> {
        let mut out: Vec<PatternStats> = self
            .patterns
            .iter()
            .map(|kv| (kv.key().clone(), kv.value().clone()))
            .map(|(p, e)| PatternStats {
                pattern: p,
                count: e.count,
                total_ms: ms(e.total),
                mean_ms: ms(e.total) / e.count.max(1) as f64,
                max_ms: ms(e.max),
            })
            .collect();
        out.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms));
        out
    }

    /// Returns the last slow calls, oldest first.
    pub fn slow(&self) -> Vec<SlowQuery> {
        self.slow.lock().iter().cloned().collect()
    }

    /// Returns the slow-query threshold.
    pub fn slow_threshold(&self) -> Duration {
        self.slow_threshold
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Turns a statement into its pattern: literals become `?`, runs of whitespace one space,
/// keywords keep their case, lists of placeholders collapse to one.
pub fn normalize(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut prev_ident = false;
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                // A string literal; '' inside is an escaped quote.
                while let Some(d) = chars.next() {
                    if d == '\'' {
                        if chars.peek() == Some(&'\'') {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
                out.push('?');
                prev_ident = false;
            }
            c if c.is_ascii_digit() && !prev_ident => {
                while chars
                    .peek()
                    .is_some_and(|d| d.is_ascii_alphanumeric() || *d == '.')
                {
                    chars.next();
                }
                out.push('?');
                prev_ident = false;
            }
            '?' | '$' | ':' | '@' => {
                // Bound parameters, numbered or named.
                while chars
                    .peek()
                    .is_some_and(|d| d.is_ascii_alphanumeric() || *d == '_')
                {
                    chars.next();
                }
                out.push('?');
                prev_ident = false;
            }
            c if c.is_whitespace() => {
                while chars.peek().is_some_and(|d| d.is_whitespace()) {
                    chars.next();
                }
                if !out.is_empty() {
                    out.push(' ');
                }
                prev_ident = false;
            }
            c => {
                prev_ident = c.is_ascii_alphanumeric() || c == '_';
                out.push(c);
            }
        }
    }
    // "(?, ?, ?)" and "(?,?)" both become "(?)": lists of any length are one pattern.
    let mut s = out.trim_end().to_owned();
    for from in ["?, ?", "?,?"] {
        while s.contains(from) {
            s = s.replace(from, "?");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(sql: &str, pattern: &str) {
        assert_eq!(normalize(sql), pattern, "{sql}");
    }

    #[test]
    fn patterns_drop_literals_and_whitespace() {
        check("SELECT * FROM t WHERE a = 5", "SELECT * FROM t WHERE a = ?");
        check(
            "SELECT *\n   FROM t  WHERE a = 'x''y'",
            "SELECT * FROM t WHERE a = ?",
        );
        check("SELECT 1.5e3, x2 FROM t2", "SELECT ?, x2 FROM t2");
        check(
            "SELECT * FROM t WHERE id IN (1, 2, 3)",
            "SELECT * FROM t WHERE id IN (?)",
        );
        check(
            "SELECT * FROM t WHERE a = ?1 AND b = :name",
            "SELECT * FROM t WHERE a = ? AND b = ?",
        );
        check("  SELECT 1  ", "SELECT ?");
    }

    #[test]
    fn the_log_counts_patterns_and_keeps_the_last_slow_calls() {
        let log = QueryLog::new(Duration::from_millis(10), 2);
        log.record("SELECT * FROM t WHERE a = 1", 1, Duration::from_millis(1));
        log.record("SELECT * FROM t WHERE a = 2", 1, Duration::from_millis(30));
        log.record(
            "INSERT INTO t VALUES (?, ?)",
            500,
            Duration::from_millis(20),
        );
        log.record("SELECT * FROM t WHERE a = 3", 1, Duration::from_millis(50));
        let p = log.patterns();
        assert_eq!(p[0].pattern, "SELECT * FROM t WHERE a = ?");
        assert_eq!(p[0].count, 3);
        assert!((p[0].total_ms - 81.0).abs() < 1e-6);
        assert!((p[0].max_ms - 50.0).abs() < 1e-6);
        assert_eq!(p[1].count, 500);
        assert!((p[1].mean_ms - 0.04).abs() < 1e-9);
        let slow = log.slow();
        assert_eq!(slow.len(), 2, "only the last two are kept");
        assert_eq!(slow[0].executions, 500);
        assert!((slow[1].duration_ms - 50.0).abs() < 1e-6);
    }
}
