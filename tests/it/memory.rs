//! The memory guard in the real server: a small limit, a cache filled past it, the reclaim
//! seen in /api/performance/memory while every request still succeeds.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::http::{get, request, spawn, Server};
use crate::{imported_candles, run, FIRST, MINUTE};

const ROWS: i64 = 120_000;

fn memory(srv: &Server) -> Value {
    let r = get(srv.addr, "/api/performance/memory");
    assert_eq!(r.status, 200);
    r.json()["data"].clone()
}

#[test]
fn a_small_memory_limit_makes_the_cache_give_memory_back_and_requests_still_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let db = imported_candles(dir.path(), ROWS);

    // What this server needs before it caches anything, measured by starting it once.
    let baseline = {
        let srv = spawn(&db, &["serve"]);
        let m = memory(&srv);
        assert_eq!(m["health"], "Excellent");
        assert!(m["heap"]["installed"].as_bool().unwrap(), "{m}");
        m["private_bytes"].as_u64().unwrap()
    };
    // Warning at 20 MB above that: well below what the cache will be asked to hold.
    let limit_mb = (baseline + 20_000_000) / 800_000;
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[memory]\nsample_interval_ms = 200\n").unwrap();
    let limit = limit_mb.to_string();
    let srv = spawn(
        &db,
        &[
            "--config",
            config.to_str().unwrap(),
            "serve",
            "--memory-limit-mb",
            &limit,
            "--cache-mb",
            "400",
        ],
    );
    assert_eq!(memory(&srv)["limit_bytes"], limit_mb * 1_000_000);

    // Distinct ranges of 5000 candles as JSON, CSV and Arrow: each is cached as chunks and as a
    // whole response, together far more than the headroom.
    let started = Instant::now();
    let mut requests = 0;
    let mut reclaimed = false;
    'fill: for round in 0..3 {
        for k in 0..24 {
            let start = FIRST + (k * 5000) * MINUTE;
            let format = ["json", "csv", "arrow"][round as usize];
            let limit = 5000 - round;
            let r = get(
                srv.addr,
                &format!("/api/crypto/ohlc?symbol=BTCUSDT&timeframe=1m&start={start}&limit={limit}&format={format}"),
            );
            requests += 1;
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            if round < 2 {
                continue;
            }
            if memory(&srv)["reclaim_count"].as_u64().unwrap() > 0 && k >= 5 {
                reclaimed = true;
                break 'fill;
            }
            assert!(started.elapsed() < Duration::from_secs(120), "bounded");
        }
    }
    // The sampler runs every 200 ms; give it a moment if the last requests were quick.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !reclaimed && Instant::now() < deadline {
        reclaimed = memory(&srv)["reclaim_count"].as_u64().unwrap() > 0;
        std::thread::sleep(Duration::from_millis(100));
    }
    let m = memory(&srv);
    assert!(reclaimed, "no reclaim after {requests} requests: {m:#}");
    let actions = m["reclaims"].as_array().unwrap();
    assert!(!actions.is_empty());
    let mut sum = 0;
    for a in actions {
        assert_eq!(a["trigger"], "sampler", "{a}");
        assert_eq!(a["by"], "cache");
        assert!(a["level"] == "Warning" || a["level"] == "Critical", "{a}");
        assert!(
            a["private_bytes"].as_u64().unwrap() >= limit_mb * 800_000,
            "{a}"
        );
        sum += a["bytes_freed"].as_u64().unwrap();
    }
    assert!(sum > 0);
    assert_eq!(m["reclaimed_bytes_total"].as_u64().unwrap(), sum);
    // The cache counted at least those bytes as freed (it also evicts for its own limits).
    let cache = get(srv.addr, "/api/performance/cache").json()["data"].clone();
    assert!(
        cache["total"]["bytes_freed"].as_u64().unwrap() >= sum,
        "{cache}"
    );
    assert!(m["history"].as_array().unwrap().len() >= 2);
    assert!(!m["recommendations"].as_array().unwrap().is_empty());
    // Every route answered so far is profiled.
    let profiles = m["profiles"].as_array().unwrap();
    let ohlc = profiles
        .iter()
        .find(|p| p["scope"] == "/api/crypto/ohlc")
        .unwrap();
    assert_eq!(ohlc["calls"].as_u64().unwrap(), requests);
    assert!(
        ohlc["allocated_bytes"].as_u64().unwrap() > 100_000_000,
        "{ohlc}"
    );

    // What was given back is read again from SQLite, correctly.
    let r = get(
        srv.addr,
        &format!("/api/crypto/ohlc?symbol=BTCUSDT&timeframe=1m&start={FIRST}&limit=3&format=csv"),
    );
    assert_eq!(r.status, 200);
    let body = String::from_utf8(r.body).unwrap();
    assert_eq!(body.lines().count(), 4, "{body}");

    // The same figures for Prometheus, and the reclaims in /stats.
    let metrics = String::from_utf8(get(srv.addr, "/metrics").body).unwrap();
    for name in [
        "candlecache_memory_rss_bytes ",
        "candlecache_memory_health ",
        "candlecache_memory_reclaimed_bytes_total ",
        "candlecache_heap_live_bytes ",
        "candlecache_route_allocated_bytes_total{route=\"/api/crypto/ohlc\"} ",
    ] {
        assert!(metrics.contains(name), "{name} missing");
    }
    let stats = get(srv.addr, "/api/performance/stats").json()["data"].clone();
    assert!(stats["memory"]["reclaimed_bytes_total"].as_u64().unwrap() >= sum);

    // On demand, through optimize: reports what it did (if anything) besides the database.
    let r = request(srv.addr, "POST", "/api/performance/optimize", "");
    assert_eq!(r.status, 200);
    let o = r.json()["data"].clone();
    assert!(o["memory"]["health"].is_string(), "{o}");
    assert!(o["memory"]["bytes_freed"].is_u64());
    assert!(o["optimize"]["ran"].is_array());
}

#[test]
fn a_bad_memory_setting_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[memory]\nwarning = 0.95\n").unwrap();
    let (st, _, err) = run(
        &dir.path().join("c.db"),
        &["--config", config.to_str().unwrap(), "serve"],
    );
    assert!(!st.success());
    assert!(
        err.contains("[memory] memory.warning: 0.95 must be below critical (0.9)"),
        "{err}"
    );
    let (st, _, err) = run(
        &dir.path().join("c.db"),
        &["serve", "--memory-limit-mb", "0"],
    );
    assert!(!st.success());
    assert!(err.contains("--memory-limit-mb"), "{err}");
}
