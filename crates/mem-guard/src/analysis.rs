//! What a window of memory samples says: growth rate, leak suspicion, stability, health.

use serde::Serialize;

use crate::Config;

/// One reading of the process and the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// When, epoch ms.
    pub at_ms: i64,
    /// Resident memory of the process, everything the OS counts (file pages included).
    pub rss_bytes: u64,
    /// The resident memory that is the process's own: anonymous and shared-memory pages,
    /// without file pages (a memory-mapped database is counted once per mapping in RSS,
    /// but it is the OS's page cache). Health and trend are judged on this.
    pub private_bytes: u64,
    /// Of `private_bytes`, what the registered caches account for themselves (their
    /// budgeted entries); a source leaves it 0 and the guard fills it in. Leak suspicion
    /// judges the memory outside it, so a cache filling toward its budget is no leak.
    pub accounted_bytes: u64,
    /// Virtual memory of the process.
    pub virtual_bytes: u64,
    /// The system's total memory.
    pub system_total_bytes: u64,
    /// The system's available memory.
    pub system_available_bytes: u64,
}

/// How the process stands against its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Health {
    /// Under half the limit.
    Excellent,
    /// Under the warning share.
    Good,
    /// At or over the warning share: reclaim frees down to the target.
    Warning,
    /// At or over the critical share: the warm tier is dropped and the hot tier shrunk.
    Critical,
}

/// The analysis of a window of samples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    /// The latest resident memory, everything the OS counts.
    pub rss_bytes: u64,
    /// The latest private resident memory, which the level and the trend judge.
    pub private_bytes: u64,
    /// The limit it is judged against.
    pub limit_bytes: u64,
    /// `rss / limit`, in percent.
    pub usage_pct: f64,
    /// The health level.
    pub health: Health,
    /// Least-squares growth of resident memory, MB a minute.
    pub trend_mb_per_min: f64,
    /// How well a straight line fits (r², 0 to 1).
    pub trend_r2: f64,
    /// Minutes between the first and the last sample: the trend's window.
    pub window_minutes: f64,
    /// Growth of private memory outside what the caches account for, MB a minute.
    pub outside_trend_mb_per_min: f64,
    /// Sustained, well-fitting growth above the leak rate of the memory outside what the
    /// caches account for.
    pub leak_suspected: bool,
    /// 0 (erratic or growing) to 100 (flat).
    pub stability_score: u8,
    /// What to do, in words.
    pub recommendations: Vec<String>,
}

/// Slope (per ms) and r² of the least-squares line through `(t, y)`.
fn fit(points: &[(f64, f64)]) -> (f64, f64) {
    let n = points.len() as f64;
    if points.len() < 2 {
        return (0.0, 0.0);
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in points {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
        syy += (y - my) * (y - my);
    }
    if sxx == 0.0 {
        return (0.0, 0.0);
    }
    let slope = sxy / sxx;
    let r2 = if syy == 0.0 {
        // A flat line fits perfectly, but there is no growth to explain.
        0.0
    } else {
        (sxy * sxy) / (sxx * syy)
    };
    (slope, r2)
}

/// Analyses `samples` (oldest first) against the thresholds of `t`.
pub fn analyze(samples: &[Sample], t: &Config) -> Analysis {
    let rss = samples.last().map_or(0, |s| s.rss_bytes);
    let private = samples.last().map_or(0, |s| s.private_bytes);
    let limit_bytes = t.limit_bytes();
    let usage = private as f64 / limit_bytes.max(1) as f64;
    let health = if usage >= t.critical {
        Health::Critical
    } else if usage >= t.warning {
        Health::Warning
    } else if usage >= 0.5 {
        Health::Good
    } else {
        Health::Excellent
    };
    let t0 = samples.first().map_or(0, |s| s.at_ms);
    let points: Vec<(f64, f64)> = samples
        .iter()
        .map(|s| {
            (
                (s.at_ms - t0) as f64 / 60_000.0,
                s.private_bytes as f64 / 1e6,
            )
        })
        .collect();
    let (slope, r2) = fit(&points);
    let minutes = points.last().map_or(0.0, |p| p.0);
    let outside: Vec<(f64, f64)> = samples
        .iter()
        .zip(&points)
        .map(|(s, p)| {
            (
                p.0,
                s.private_bytes.saturating_sub(s.accounted_bytes) as f64 / 1e6,
            )
        })
        .collect();
    let (outside_slope, outside_r2) = fit(&outside);
    let leak = outside_slope >= t.leak_mb_per_min
        && outside_r2 >= t.leak_min_r2
        && minutes >= t.leak_min_minutes;
    // Stability: relative spread of the readings around their line, plus growth.
    let mean = points.iter().map(|p| p.1).sum::<f64>() / points.len().max(1) as f64;
    let spread = if points.len() < 2 || mean == 0.0 {
        0.0
    } else {
        let var = points
            .iter()
            .map(|(x, y)| {
                let fitted = mean + slope * (x - minutes / 2.0);
                (y - fitted).powi(2)
            })
            .sum::<f64>()
            / points.len() as f64;
        var.sqrt() / mean
    };
    // Growth over a few seconds says little: its weight rises with the window up to the
    // leak window.
    let weight = (minutes / t.leak_min_minutes).clamp(0.0, 1.0);
    let growth_penalty = (slope.max(0.0) / t.leak_mb_per_min.max(1e-9)).min(1.0) * 40.0 * weight;
    let score =
        (100.0 - (spread * 500.0).min(60.0) - growth_penalty - if leak { 20.0 } else { 0.0 })
            .clamp(0.0, 100.0);
    let mut recommendations = Vec::new();
    match health {
        Health::Critical => recommendations.push(format!(
            "memory is at {:.0} % of the {} MB limit: the warm tier is dropped and the hot tier shrunk; lower the cache budget (--cache-mb) or raise the limit",
            usage * 100.0,
            t.limit_mb
        )),
        Health::Warning => recommendations.push(format!(
            "memory is at {:.0} % of the {} MB limit: the cache is being reclaimed; consider a smaller cache budget",
            usage * 100.0,
            t.limit_mb
        )),
        _ => {}
    }
    if leak {
        recommendations.push(format!(
            "memory outside the cache grows {outside_slope:.1} MB a minute steadily over {minutes:.0} minutes: a leak is suspected; compare the per-route allocation profiles"
        ));
    } else if outside_slope < t.leak_mb_per_min
        && slope >= t.leak_mb_per_min
        && minutes >= t.leak_min_minutes
    {
        recommendations.push(format!(
            "resident memory grows {slope:.1} MB a minute as the cache fills toward its budget; no leak"
        ));
    } else if slope >= t.leak_mb_per_min && minutes >= t.leak_min_minutes {
        recommendations.push(format!(
            "resident memory grows {slope:.1} MB a minute, unevenly: watch the trend"
        ));
    }
    if score < 50.0 && !leak {
        recommendations.push(
            "memory use swings widely: large answers (Arrow, long ranges) may be allocating in bursts; lower max_rows or use paging".into(),
        );
    }
    if recommendations.is_empty() {
        recommendations.push("memory is healthy; nothing to do".into());
    }
    Analysis {
        rss_bytes: rss,
        private_bytes: private,
        limit_bytes,
        usage_pct: usage * 100.0,
        health,
        trend_mb_per_min: slope,
        trend_r2: r2,
        window_minutes: minutes,
        outside_trend_mb_per_min: outside_slope,
        leak_suspected: leak,
        stability_score: score.round() as u8,
        recommendations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1_000_000;

    /// `n` samples 10 s apart with resident memory `f(i)` MB.
    fn series(n: usize, f: impl Fn(usize) -> f64) -> Vec<Sample> {
        (0..n)
            .map(|i| Sample {
                at_ms: 1_700_000_000_000 + i as i64 * 10_000,
                rss_bytes: (f(i) * MB as f64) as u64 + 50 * MB,
                private_bytes: (f(i) * MB as f64) as u64,
                accounted_bytes: 0,
                virtual_bytes: 4000 * MB,
                system_total_bytes: 24_000 * MB,
                system_available_bytes: 20_000 * MB,
            })
            .collect()
    }

    #[test]
    fn flat_memory_is_stable_and_healthy() {
        let a = analyze(&series(60, |_| 300.0), &Config::default());
        assert_eq!(a.health, Health::Excellent);
        assert!(!a.leak_suspected);
        assert_eq!(a.stability_score, 100);
        assert!(a.trend_mb_per_min.abs() < 1e-9);
        assert_eq!(a.recommendations, ["memory is healthy; nothing to do"]);
    }

    #[test]
    fn steady_growth_is_a_leak_suspect() {
        // 0.5 MB every 10 s = 3 MB a minute, for 10 minutes.
        let a = analyze(&series(60, |i| 300.0 + i as f64 * 0.5), &Config::default());
        assert!((a.trend_mb_per_min - 3.0).abs() < 1e-6, "{a:?}");
        assert!(a.trend_r2 > 0.99);
        assert!(a.leak_suspected);
        assert!(a.stability_score < 50, "{a:?}");
        assert!(a.recommendations.iter().any(|r| r.contains("leak")));
    }

    #[test]
    fn growth_over_too_short_a_window_is_not_yet_a_leak() {
        let a = analyze(&series(12, |i| 300.0 + i as f64 * 0.5), &Config::default());
        assert!(a.trend_mb_per_min > 2.9 && !a.leak_suspected, "{a:?}");
    }

    #[test]
    fn noise_without_growth_is_no_leak_but_less_stable() {
        let a = analyze(
            &series(90, |i| 300.0 + if i % 2 == 0 { 60.0 } else { -60.0 }),
            &Config::default(),
        );
        assert!(!a.leak_suspected);
        assert!(a.trend_r2 < 0.1);
        assert!(a.stability_score < 80, "{a:?}");
    }

    #[test]
    fn a_spike_is_not_a_trend() {
        let a = analyze(
            &series(60, |i| if i == 30 { 900.0 } else { 300.0 }),
            &Config::default(),
        );
        assert!(!a.leak_suspected);
        assert!(a.trend_mb_per_min.abs() < 1.0);
    }

    #[test]
    fn health_follows_the_limit() {
        let t = Config {
            limit_mb: 1000,
            ..Config::default()
        };
        for (rss, want) in [
            (100.0, Health::Excellent),
            (600.0, Health::Good),
            (850.0, Health::Warning),
            (950.0, Health::Critical),
        ] {
            let a = analyze(&series(3, |_| rss), &t);
            assert_eq!(a.health, want, "{rss}");
            assert!((a.usage_pct - rss / 10.0).abs() < 1e-6);
        }
        assert_eq!(analyze(&[], &t).health, Health::Excellent);
    }
}
