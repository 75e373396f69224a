//! Backfill from a fake exchange, and the Binance-compatible endpoints, through the real
//! binary: faults, single-flight, coverage across restarts, byte-for-byte klines.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fake_exchange::{self as fake, FakeExchange, Fault, LISTED, SYMBOL};
use crate::http::{get, spawn};
use crate::run;

const MIN: i64 = 60_000;
/// Chunks of the read path are 1000 candles on the epoch grid.
const CHUNK_1M: i64 = 1000 * MIN;

/// A chunk-aligned start some days after the listing.
pub(crate) fn aligned_start() -> i64 {
    (LISTED / CHUNK_1M + 10) * CHUNK_1M
}

/// The fake's final rows of interval `iv` (ms) for `[start, end)`, as Binance kline CSV
/// lines.
pub(crate) fn expected_csv(iv: i64, start: i64, end: i64) -> Vec<String> {
    let now = fake::now_ms();
    (start..end)
        .step_by(iv as usize)
        .filter(|t| fake::exists(iv, *t, now))
        .map(|t| {
            fake::row(iv, t, now)
                .trim_matches(['[', ']'])
                .replace('"', "")
        })
        .collect()
}

/// The stored candles of the fake's symbol and timeframe `tf` in `[start, end)`, as
/// Binance CSV lines.
pub(crate) fn exported(db: &std::path::Path, tf: &str, start: i64, end: i64) -> Vec<String> {
    let (s, e) = (start.to_string(), end.to_string());
    let args = [
        "export",
        "--symbol",
        SYMBOL,
        "--timeframe",
        tf,
        "--start",
        &s,
        "--end",
        &e,
        "--format",
        "binance",
        "-",
    ];
    let (status, csv, err) = run(db, &args);
    assert!(status.success(), "{err}");
    csv.lines().map(str::to_owned).collect()
}

#[test]
fn a_backfill_through_faults_stores_exactly_the_exchange_candles_once() {
    let ex = FakeExchange::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let start = aligned_start() + 17 * MIN;
    let end = start + 3500 * MIN;
    ex.inject(&[
        Fault::ServerError,
        Fault::RateLimit(1),
        Fault::Truncate,
        Fault::Duplicate,
    ]);
    let (s, e) = (start.to_string(), end.to_string());
    let url = ex.url();
    let args = [
        "fetch",
        "--symbol",
        SYMBOL,
        "--timeframe",
        "1m",
        "--start",
        &s,
        "--end",
        &e,
        "--upstream",
        &url,
    ];
    let t = Instant::now();
    let (status, out, err) = run(&db, &args);
    assert!(status.success(), "{out}{err}");
    assert!(t.elapsed() >= Duration::from_secs(1));
    assert!(out.contains("fetched"), "{out}");
    let seen = ex.klines_seen();
    // 500, then 429 (waited out), then a truncated body, then duplicated rows: the first
    // page took four attempts; the Retry-After second was kept.
    assert!(seen.len() >= 7, "{}", seen.len());
    assert!(seen[2].at - seen[1].at >= 1000, "{:?}", &seen[..3]);
    for s in &seen[..4] {
        assert_eq!(s.query["startTime"], start.to_string());
    }

    // Exactly the exchange's candles, holes included, values as the exchange wrote them.
    let want = expected_csv(MIN, start, end);
    assert!(want.len() < 3500, "the exchange has holes");
    assert_eq!(exported(&db, "1m", start, end), want);

    // Covered, so a second fetch (or any sub-range) asks nothing.
    let before = ex.klines_seen().len();
    let (status, out, _) = run(&db, &args);
    assert!(status.success());
    assert!(out.contains("fetched 0 candles in 0 pages"), "{out}");
    let mid = (start + 100 * MIN).to_string();
    let mut sub = args;
    sub[6] = &mid;
    assert!(run(&db, &sub).0.success());
    assert_eq!(ex.klines_seen().len(), before);

    // Bad input is named.
    let (status, _, err) = run(
        &db,
        &[
            "fetch",
            "--symbol",
            SYMBOL,
            "--timeframe",
            "1m",
            "--start",
            "2024-01-01",
        ],
    );
    assert!(!status.success());
    assert!(err.contains("no upstream"), "{err}");
    for (symbol, from, to, want) in [
        (SYMBOL, &e, &s, "must be before"),
        ("NOPE", &s, &e, "unknown symbol"),
    ] {
        let fetch = [
            "fetch",
            "--symbol",
            symbol,
            "--timeframe",
            "1m",
            "--start",
            from.as_str(),
            "--end",
            to.as_str(),
            "--upstream",
            url.as_str(),
        ];
        let (status, _, err) = run(&db, &fetch);
        assert!(!status.success());
        assert!(err.contains(want), "{err}");
    }
}

#[test]
fn concurrent_identical_requests_fetch_each_page_once_and_coverage_survives_a_restart() {
    let ex = FakeExchange::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let url = ex.url();
    let start = aligned_start();
    let end = start + 3 * CHUNK_1M;
    let target = format!("/api/crypto/ohlc?symbol={SYMBOL}&timeframe=1m&start={start}&end={end}");

    let srv = spawn(&db, &["serve", "--upstream", &url]);
    let addr = srv.addr;
    let bodies: Vec<(u16, Vec<u8>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|_| {
                s.spawn(|| {
                    let r = get(addr, &target);
                    (r.status, r.body)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (status, body) in &bodies {
        assert_eq!(*status, 200, "{}", String::from_utf8_lossy(body));
    }
    let first: Value = serde_json::from_slice(&bodies[0].1).unwrap();
    let rows = first["data"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), expected_csv(MIN, start, end).len());
    for (_, b) in &bodies {
        let v: Value = serde_json::from_slice(b).unwrap();
        assert_eq!(v["data"]["rows"], first["data"]["rows"]);
    }
    let seen = ex.klines_seen();
    let mut per_page: HashMap<String, usize> = HashMap::new();
    for s in &seen {
        *per_page.entry(s.query["startTime"].clone()).or_default() += 1;
    }
    assert!(per_page.values().all(|n| *n == 1), "{per_page:?}");
    assert!(seen.len() <= 4, "{}", seen.len());
    drop(srv);

    // A restart keeps the coverage: the same range asks the exchange nothing.
    let srv = spawn(&db, &["serve", "--upstream", &url]);
    let r = get(srv.addr, &target);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"]["rows"], first["data"]["rows"]);
    let sub = format!(
        "/api/crypto/ohlc?symbol={SYMBOL}&timeframe=1m&start={}&end={}",
        start + 500 * MIN,
        start + 1500 * MIN
    );
    assert_eq!(get(srv.addr, &sub).status, 200);
    assert_eq!(ex.klines_seen().len(), seen.len());
}

#[test]
fn binance_klines_match_the_exchange_byte_for_byte() {
    let ex = FakeExchange::start();
    let dir = tempfile::tempdir().unwrap();
    let url = ex.url();
    let srv = spawn(&dir.path().join("c.db"), &["serve", "--upstream", &url]);
    let start = aligned_start() + 333 * MIN;
    let queries = [
        format!(
            "symbol={SYMBOL}&interval=1m&startTime={start}&endTime={}&limit=1000",
            start + 999 * MIN
        ),
        format!(
            "symbol={SYMBOL}&interval=1m&startTime={}&limit=700",
            start + 5 * CHUNK_1M + 1
        ),
        format!("symbol={SYMBOL}&interval=1h&startTime={start}&limit=1000"),
        format!(
            "symbol={SYMBOL}&interval=5m&endTime={}&limit=20",
            start + 40 * CHUNK_1M
        ),
        format!(
            "symbol={SYMBOL}&interval=1d&startTime={start}&endTime={}",
            start + 300 * 86_400_000
        ),
        // freqtrade's probe for the listing date.
        format!("symbol={SYMBOL}&interval=1h&startTime=0&limit=1000"),
    ];
    for q in &queries {
        let ours = get(srv.addr, &format!("/api/v3/klines?{q}"));
        assert_eq!(
            ours.status,
            200,
            "{q}: {}",
            String::from_utf8_lossy(&ours.body)
        );
        let theirs = fake::klines_for(q);
        assert!(theirs.len() > 2, "{q}");
        assert_eq!(String::from_utf8(ours.body).unwrap(), theirs, "{q}");
    }
    // Asked again, nothing new is fetched.
    let before = ex.klines_seen().len();
    for q in &queries {
        assert_eq!(get(srv.addr, &format!("/api/v3/klines?{q}")).status, 200);
    }
    assert_eq!(ex.klines_seen().len(), before);
}

#[test]
fn the_forming_candle_is_served_refreshed_and_never_stored() {
    let ex = FakeExchange::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let url = ex.url();
    let srv = spawn(&db, &["serve", "--upstream", &url]);
    let target = format!("/api/v3/klines?symbol={SYMBOL}&interval=1s&limit=5");
    let rows = |body: &[u8]| -> Vec<Value> {
        serde_json::from_slice(body)
            .unwrap_or_else(|e| panic!("{e}: not klines rows: {}", String::from_utf8_lossy(body)))
    };
    let asked = fake::now_ms();
    let first = rows(&get(srv.addr, &target).body);
    assert!(!first.is_empty());
    let last_open = first.last().unwrap()[0].as_i64().unwrap();
    assert!(
        last_open >= asked / 1000 * 1000 - 2000,
        "{last_open} vs {asked}"
    );
    // Closed candles are the exchange's own.
    for r in &first {
        let t = r[0].as_i64().unwrap();
        if t + 1000 <= asked - 2500 {
            assert_eq!(r.to_string().replace(' ', ""), fake::row(1000, t, asked));
        }
    }
    std::thread::sleep(Duration::from_millis(2500));
    let second = rows(&get(srv.addr, &target).body);
    let newer = second.last().unwrap()[0].as_i64().unwrap();
    assert!(
        newer >= last_open + 2000,
        "{newer} vs {last_open}: not refreshed"
    );
    drop(srv);
    // What is stored ends before the candles that were still forming.
    let (status, out, err) = run(&db, &["markets", "--json"]);
    assert!(status.success(), "{err}");
    let markets: Value = serde_json::from_str(&out).unwrap();
    let last_stored = markets[0]["last_time"].as_i64().unwrap();
    assert!(last_stored < newer, "{last_stored} vs {newer}");
}

#[test]
fn binance_errors_exchange_info_time_and_chaining() {
    let ex = FakeExchange::start();
    let dir = tempfile::tempdir().unwrap();
    let url = ex.url();
    let a = spawn(&dir.path().join("a.db"), &["serve", "--upstream", &url]);
    let k = "/api/v3/klines";
    for (q, status, code) in [
        ("interval=1m", 400, -1102),
        ("symbol=BTCUSDT", 400, -1102),
        ("symbol=BTCUSDT&interval=7m", 400, -1120),
        ("symbol=BTCUSDT&interval=1m&interval=1h", 400, -1101),
        ("symbol=BTC%20USDT&interval=1m", 400, -1100),
        ("symbol=BTCUSDT&interval=1m&startTime=abc", 400, -1100),
        ("symbol=BTCUSDT&interval=1m&startTime=-5", 400, -1100),
        (
            "symbol=BTCUSDT&interval=1m&startTime=20&endTime=10",
            400,
            -1023,
        ),
        ("symbol=BTCUSDT&interval=1m&limit=0", 400, -1130),
        ("symbol=BTCUSDT&interval=1m&timeZone=8", 400, -1130),
        ("symbol=ETHBTC&interval=1m", 400, -1121),
    ] {
        let r = get(a.addr, &format!("{k}?{q}"));
        assert_eq!(
            r.status,
            status,
            "{q}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let v = r.json();
        assert_eq!(v["code"], code, "{q}: {v}");
        assert!(v["msg"].as_str().is_some_and(|m| !m.is_empty()), "{q}");
    }
    // A limit over 1000 is served as 1000.
    let r = get(
        a.addr,
        &format!("{k}?symbol=BTCUSDT&interval=1m&startTime={LISTED}&limit=5000"),
    );
    assert_eq!(r.json().as_array().unwrap().len(), 1000);

    // exchangeInfo passes through once, then comes from the cache.
    for _ in 0..3 {
        let r = get(a.addr, "/api/v3/exchangeInfo");
        assert_eq!(r.status, 200);
        assert_eq!(String::from_utf8(r.body).unwrap(), fake::exchange_info());
    }
    let infos = ex
        .others_seen()
        .iter()
        .filter(|p| p.contains("exchangeInfo"))
        .count();
    assert_eq!(infos, 1);
    let before = fake::now_ms();
    let t = get(a.addr, "/api/v3/time").json()["serverTime"]
        .as_i64()
        .unwrap();
    assert!(t >= before && t <= fake::now_ms());
    assert_eq!(get(a.addr, "/api/v3/ping").body, b"{}");

    // A second instance with the first as its upstream serves the same bytes.
    let first = format!("http://{}", a.addr);
    let b = spawn(&dir.path().join("b.db"), &["serve", "--upstream", &first]);
    let q = format!(
        "symbol={SYMBOL}&interval=1h&startTime={}&limit=200",
        aligned_start()
    );
    let theirs = fake::klines_for(&q);
    let r = get(b.addr, &format!("{k}?{q}"));
    assert_eq!(String::from_utf8(r.body).unwrap(), theirs);
    let r = get(b.addr, "/api/v3/exchangeInfo");
    assert_eq!(String::from_utf8(r.body).unwrap(), fake::exchange_info());
    // Stats show the upstream traffic.
    let stats = get(b.addr, "/api/performance/stats").json();
    assert!(
        stats["data"]["upstream"]["hosts"][0]["requests"]
            .as_u64()
            .unwrap()
            >= 1
    );
    let metrics = String::from_utf8(get(b.addr, "/metrics").body).unwrap();
    assert!(
        metrics.contains("candlecache_upstream_requests_total{host="),
        "{metrics}"
    );

    // An upstream that is down is a 502 for both APIs, not a hang.
    drop(ex);
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let c = spawn(&dir.path().join("c.db"), &["serve", "--upstream", &dead]);
    let r = get(
        c.addr,
        &format!(
            "/api/crypto/ohlc?symbol={SYMBOL}&timeframe=1m&start={LISTED}&end={}",
            LISTED + MIN * 10
        ),
    );
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"]["code"], "upstream_unavailable");
    let r = get(
        c.addr,
        &format!("{k}?symbol={SYMBOL}&interval=1m&startTime={LISTED}"),
    );
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["code"], -1000);
}

#[test]
fn exchange_info_without_an_upstream_lists_the_stored_symbols() {
    let dir = tempfile::tempdir().unwrap();
    let srv = spawn(&dir.path().join("c.db"), &["serve", "--demo"]);
    let v = get(srv.addr, "/api/v3/exchangeInfo").json();
    let names: Vec<&str> = v["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["symbol"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"XRPETH"), "{names:?}");
    let xrp = &v["symbols"][0];
    assert_eq!(xrp["status"], "TRADING");
    assert!(xrp["filters"][0]["tickSize"].as_str().is_some());
    let one = get(srv.addr, "/api/v3/exchangeInfo?symbol=XRPETH").json();
    assert_eq!(one["symbols"].as_array().unwrap().len(), 1);
    let r = get(srv.addr, "/api/v3/exchangeInfo?symbol=NOPE");
    assert_eq!((r.status, r.json()["code"].as_i64()), (400, Some(-1121)));
    // Stored candles in Binance's row format: the demo file's own values.
    let r = get(
        srv.addr,
        "/api/v3/klines?symbol=XRPETH&interval=1m&startTime=1570752000000&limit=2",
    );
    let rows: Vec<Value> = r.json().as_array().unwrap().clone();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][0], 1_570_752_000_000i64);
    assert_eq!(rows[0][1], "0.00141342");
    assert_eq!(rows[0][6], 1_570_752_059_999i64);
}
