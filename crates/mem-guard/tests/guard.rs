//! The guard driven by scripted samples, reclaiming from a real cache.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cache_core::{Cache, Reclaim};
use mem_guard::{Config, Error, Health, MemGuard, Sample, SampleSource, Trigger};

const MB: u64 = 1_000_000;

/// Plays back resident-memory readings (MB), 10 s apart; shared so a test can add more.
#[derive(Clone, Default)]
struct Script(Arc<Mutex<(i64, VecDeque<f64>)>>);

impl Script {
    fn push(&self, mb: impl IntoIterator<Item = f64>) {
        self.0.lock().unwrap().1.extend(mb);
    }
}

impl SampleSource for Script {
    fn sample(&mut self) -> mem_guard::Result<Sample> {
        let mut s = self.0.lock().unwrap();
        let mb =
            s.1.pop_front()
                .ok_or_else(|| Error::Sample("script ran out".into()))?;
        s.0 += 10_000;
        Ok(Sample {
            at_ms: 1_750_000_000_000 + s.0,
            rss_bytes: (mb * MB as f64) as u64 + 300 * MB,
            private_bytes: (mb * MB as f64) as u64,
            accounted_bytes: 0,
            virtual_bytes: 3 * 1024 * MB,
            system_total_bytes: 24_000 * MB,
            system_available_bytes: 18_000 * MB,
        })
    }
}

fn config(limit_mb: u64) -> Config {
    Config {
        limit_mb,
        ..Config::default()
    }
}

/// Feeds `n` readings through `tick` and returns the last analysis.
fn run(limit_mb: u64, n: usize, f: impl Fn(usize) -> f64) -> mem_guard::Analysis {
    let script = Script::default();
    script.push((0..n).map(f));
    let guard = MemGuard::new(config(limit_mb), script).unwrap();
    let mut last = None;
    for _ in 0..n {
        last = guard.tick();
    }
    assert!(guard.tick().is_none(), "the script is spent");
    assert_eq!(guard.report().sample_errors, 1);
    assert_eq!(guard.report().samples, n);
    last.unwrap()
}

#[test]
fn the_guard_classifies_what_it_samples() {
    // Flat at 300 MB of 2000: healthy, stable, no trend.
    let flat = run(2000, 60, |_| 300.0);
    assert_eq!(flat.health, Health::Excellent);
    assert!(!flat.leak_suspected && flat.stability_score == 100);

    // Growing 2 MB a minute for 3 minutes: a trend, too short to call a leak.
    let growing = run(2000, 18, |i| 300.0 + i as f64 / 3.0);
    assert!((growing.trend_mb_per_min - 2.0).abs() < 0.01, "{growing:?}");
    assert!(!growing.leak_suspected);

    // The same growth for 15 minutes with a little jitter: a leak suspect.
    let leaking = run(2000, 90, |i| {
        300.0 + i as f64 / 3.0 + if i % 3 == 0 { 0.4 } else { -0.2 }
    });
    assert!(leaking.leak_suspected, "{leaking:?}");
    assert!(leaking.trend_r2 > 0.95);
    assert!(leaking.recommendations.iter().any(|r| r.contains("leak")));

    // Noise of +-80 MB around a flat line: no leak, lower stability.
    let noisy = run(2000, 90, |i| 500.0 + [80.0, -80.0, 30.0, -30.0][i % 4]);
    assert!(!noisy.leak_suspected);
    assert!(noisy.stability_score < flat.stability_score, "{noisy:?}");

    // One spike to 1.9 GB and back: the level follows the latest sample, no trend.
    let spiking = run(2000, 60, |i| if i == 40 { 1900.0 } else { 400.0 });
    assert_eq!(spiking.health, Health::Excellent);
    assert!(
        !spiking.leak_suspected && spiking.trend_r2 < 0.2,
        "{spiking:?}"
    );

    // Levels against a 1000 MB limit.
    for (mb, level) in [
        (100.0, Health::Excellent),
        (700.0, Health::Good),
        (820.0, Health::Warning),
        (930.0, Health::Critical),
    ] {
        assert_eq!(run(1000, 3, |_| mb).health, level, "{mb}");
    }
}

/// A cache with `n` entries of 100 KB that compress well, over a 64 MB budget.
fn filled_cache(n: usize) -> Cache {
    let cache = Cache::builder()
        .no_namespaces()
        .budget_bytes(64 * MB)
        .namespace("data", Duration::from_secs(3600), 64 * MB)
        .build()
        .unwrap();
    let ns = cache.namespace("data").unwrap();
    for i in 0..n {
        let value: Vec<u8> = (0..100_000u32)
            .map(|j| ((i as u32 * 7 + j / 10) % 251) as u8)
            .collect();
        let key = format!("k{i}");
        ns.insert(key.as_bytes(), Bytes::from(value)).unwrap();
        // A cache in use: read once, so pressure compresses it rather than evicting it.
        ns.get(key.as_bytes()).unwrap();
    }
    cache
}

#[test]
fn a_warning_reclaims_from_a_real_cache_and_the_cache_agrees() {
    let cache = filled_cache(300);
    let before = cache.stats();
    assert!(before.used_bytes > 25 * MB, "{}", before.used_bytes);
    let script = Script::default();
    // Limit 1000 MB, freeing down to 790 MB: 600 is Good, 812 is Warning and asks for 22 MB
    // of the cache's 30.
    script.push([600.0, 812.0]);
    let guard = MemGuard::new(
        Config {
            reclaim_to: 0.79,
            ..config(1000)
        },
        script.clone(),
    )
    .unwrap();
    guard.register("cache", Arc::new(cache.clone()));

    let good = guard.tick().unwrap();
    assert_eq!(good.health, Health::Good);
    assert!(guard.report().reclaims.is_empty());
    assert_eq!(cache.stats().used_bytes, before.used_bytes);

    let warning = guard.tick().unwrap();
    assert_eq!(warning.health, Health::Warning);
    let after = cache.stats();
    let report = guard.report();
    assert_eq!(report.reclaims.len(), 1, "{:?}", report.reclaims);
    let action = &report.reclaims[0];
    assert_eq!(
        (
            action.trigger,
            action.level,
            action.by.as_str(),
            action.action
        ),
        (Trigger::Sampler, Health::Warning, "cache", "evict_lru")
    );
    // What the guard says it freed is what the cache lost and counted as freed.
    assert_eq!(action.bytes_freed, before.used_bytes - after.used_bytes);
    assert_eq!(
        action.bytes_freed,
        after.total.bytes_freed - before.total.bytes_freed
    );
    assert!(action.bytes_freed >= 22 * MB, "{}", action.bytes_freed);
    assert!(
        action.bytes_freed < 23 * MB,
        "only what was asked for: {}",
        action.bytes_freed
    );
    assert!(after.total.evictions > before.total.evictions);
    assert_eq!(report.reclaimed_bytes_total, action.bytes_freed);
    assert_eq!(action.private_bytes, 812 * MB);
}

#[test]
fn critical_drops_the_warm_tier_and_halves_the_hot_one() {
    let cache = filled_cache(900);
    let before = cache.stats();
    assert!(
        before.total.bytes_warm > 0,
        "pressure demoted entries: {before:?}"
    );
    let script = Script::default();
    script.push([950.0]);
    let guard = MemGuard::new(config(1000), script).unwrap();
    guard.register("cache", Arc::new(cache.clone()));
    assert_eq!(guard.tick().unwrap().health, Health::Critical);
    let after = cache.stats();
    assert_eq!(after.total.bytes_warm, 0);
    assert!(after.total.bytes_hot <= before.total.bytes_hot / 2);
    let r = guard.report();
    let kinds: Vec<&str> = r.reclaims.iter().map(|a| a.action).collect();
    assert_eq!(kinds, ["drop_warm", "shrink_hot"]);
    assert_eq!(r.reclaims[0].bytes_freed, before.total.bytes_warm);
    assert_eq!(
        r.reclaimed_bytes_total,
        before.used_bytes - after.used_bytes
    );
}

#[test]
fn on_demand_reclaim_does_nothing_when_healthy_and_acts_when_not() {
    let cache = filled_cache(100);
    let script = Script::default();
    script.push([300.0, 850.0]);
    let guard = MemGuard::new(config(1000), script).unwrap();
    guard.register("cache", Arc::new(cache.clone()));
    let held = cache.held_bytes();
    let (a, done) = guard.reclaim_now().unwrap();
    assert_eq!((a.health, done.len()), (Health::Excellent, 0));
    assert_eq!(cache.held_bytes(), held);
    let (a, done) = guard.reclaim_now().unwrap();
    assert_eq!(a.health, Health::Warning);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].trigger, Trigger::OnDemand);
    assert_eq!(done[0].bytes_freed, held - cache.held_bytes());
}

#[test]
fn the_sampler_runs_on_its_own_thread_until_dropped() {
    let script = Script::default();
    script.push(std::iter::repeat_n(100.0, 1000));
    let guard = MemGuard::new(
        Config {
            sample_interval_ms: 100,
            ..config(1000)
        },
        script,
    )
    .unwrap();
    let sampler = guard.start();
    let t = Instant::now();
    while guard.report().samples < 3 {
        assert!(t.elapsed() < Duration::from_secs(10), "no samples");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(sampler);
    let n = guard.report().samples;
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(guard.report().samples, n, "stopped");
    assert!(guard.report().history.len() == n);
}

#[test]
fn the_process_source_reads_this_process() {
    // A test process can be tiny (nextest runs each test alone); memory it touches itself
    // must show as private.
    let touched = vec![7u8; 8 * MB as usize];
    let guard = MemGuard::for_process(Config::default()).unwrap();
    let a = guard.tick().unwrap();
    let r = guard.report();
    assert!(a.rss_bytes > 4 * MB, "{a:?}");
    assert!(
        a.private_bytes > 4 * MB && a.private_bytes <= a.rss_bytes,
        "{a:?}"
    );
    assert_eq!(std::hint::black_box(&touched)[MB as usize], 7);
    assert!(r.virtual_bytes >= a.rss_bytes);
    assert!(r.system_total_bytes > r.system_available_bytes && r.system_available_bytes > 0);
}

#[test]
fn bad_configuration_is_refused_with_its_key() {
    let e = MemGuard::new(
        Config {
            critical: 0.7,
            ..Config::default()
        },
        Script::default(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "memory.warning: 0.8 must be below critical (0.7)"
    );
}

/// Feeds readings of private memory = `outside(i)` MB + what `cache` holds after `fill(i)`
/// ran, through a guard with the cache registered; the last analysis.
fn with_cache(
    n: usize,
    cache: &Cache,
    fill: impl Fn(usize),
    outside: impl Fn(usize) -> f64,
) -> mem_guard::Analysis {
    let script = Script::default();
    let guard = MemGuard::new(config(4000), script.clone()).unwrap();
    guard.register("cache", Arc::new(cache.clone()));
    let mut last = None;
    for i in 0..n {
        fill(i);
        script.push([outside(i) + cache.used_bytes() as f64 / MB as f64]);
        last = guard.tick();
    }
    last.unwrap()
}

#[test]
fn a_cache_filling_to_its_budget_is_no_leak_and_a_real_leak_still_is() {
    let empty = || {
        Cache::builder()
            .no_namespaces()
            .budget_bytes(64 * MB)
            .namespace("data", Duration::from_secs(3600), 64 * MB)
            .build()
            .unwrap()
    };
    let put = |cache: &Cache, i: usize| {
        let ns = cache.namespace("data").unwrap();
        // 300 KB a tick: 1.8 MB a minute, steadily, for 15 minutes.
        let value: Vec<u8> = (0..300_000u32).map(|j| (j % 251) as u8 ^ i as u8).collect();
        ns.insert(format!("k{i}").as_bytes(), Bytes::from(value))
            .unwrap();
    };
    // The cache fills, nothing else grows: a trend, but no leak.
    let cache = empty();
    let filling = with_cache(90, &cache, |i| put(&cache, i), |_| 300.0);
    assert!(filling.trend_mb_per_min > 1.5, "{filling:?}");
    assert!(filling.outside_trend_mb_per_min.abs() < 0.1, "{filling:?}");
    assert!(!filling.leak_suspected, "{filling:?}");
    assert!(filling
        .recommendations
        .iter()
        .any(|r| r.contains("no leak")));
    // The same cache, flat, while memory outside it grows 2 MB a minute: a leak.
    let cache = empty();
    for i in 0..10 {
        put(&cache, i);
    }
    let leaking = with_cache(90, &cache, |_| {}, |i| 300.0 + i as f64 / 3.0);
    assert!(leaking.leak_suspected, "{leaking:?}");
    assert!(
        (leaking.outside_trend_mb_per_min - 2.0).abs() < 0.05,
        "{leaking:?}"
    );
}
