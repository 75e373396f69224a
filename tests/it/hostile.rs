//! Hostile HTTP input against the real server: every request gets its 4xx, nothing gets a
//! 5xx or hangs, and the server is fine afterwards.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::http::{get, raw, spawn};

const TOKEN: &str = "s3cret-token-for-tests";

/// `(request, expected status)`; requests are raw bytes, closed after one answer.
fn cases() -> Vec<(Vec<u8>, u16)> {
    let get = |target: &str| {
        format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").into_bytes()
    };
    let method = |m: &str, target: &str| {
        format!(
            "{m} {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .into_bytes()
    };
    let ohlc = |q: &str| get(&format!("/api/crypto/ohlc?{q}"));
    let klines = |q: &str| get(&format!("/api/v3/klines?{q}"));
    vec![
        // Missing, malformed and out-of-range parameters.
        (ohlc(""), 400),
        (ohlc("symbol=XRPETH"), 400),
        (ohlc("timeframe=1m"), 400),
        (ohlc("symbol=XRPETH&timeframe=7x"), 400),
        (ohlc("symbol=XRPETH&timeframe=1m&start=yesterday"), 400),
        (ohlc("symbol=XRPETH&timeframe=1m&start=99999999999999999999999"), 400),
        (ohlc("symbol=XRPETH&timeframe=1m&start=2019-13-45T25:61:00Z"), 400),
        (ohlc("symbol=XRPETH&timeframe=1m&start=1570760000000&end=1570750000000"), 400),
        (ohlc("symbol=XRPETH&timeframe=1m&limit=0"), 400),
        (ohlc("symbol=XRPETH&timeframe=1m&limit=-5"), 400),
        (ohlc("symbol=XRPETH&timeframe=1m&limit=1e9"), 400),
        (ohlc("symbol=XRPETH&timeframe=1m&limit=99999999999999999999"), 400),
        (ohlc("symbol=XRPETH&timeframe=1m&format=xml"), 400),
        (ohlc("symbol=XRPETH&timeframe=1m&fill=zero"), 400),
        (ohlc("symbol=NOSUCHPAIR&timeframe=1m"), 404),
        // Duplicate parameters are refused, not guessed.
        (ohlc("symbol=XRPETH&symbol=XRPUSDT&timeframe=1m"), 400),
        (ohlc("symbol=XRPETH&timeframe=1m&timeframe=1h"), 400),
        (klines("symbol=XRPETH&symbol=BTCUSDT&interval=1m"), 400),
        // Injection strings in every parameter.
        (ohlc("symbol=XRPETH%27%3BDROP%20TABLE%20candles%3B--&timeframe=1m"), 400),
        (ohlc("symbol=XRPETH&timeframe=1m%27%20OR%20%271%27%3D%271"), 400),
        (ohlc("symbol=%3Cscript%3Ealert(1)%3C%2Fscript%3E&timeframe=1m"), 400),
        (ohlc("symbol=XRPETH%0d%0aSet-Cookie:%20x=1&timeframe=1m"), 400),
        (ohlc("symbol=XRP%00ETH&timeframe=1m"), 400),
        (ohlc("symbol=%ZZ&timeframe=1m"), 400),
        (ohlc("symbol=%F0%9F%92%A9&timeframe=1m"), 400),
        (ohlc(&format!("symbol={}&timeframe=1m", "A".repeat(300))), 400),
        (ohlc("symbol=XRPETH&timeframe=1m&start=1%3B%20SELECT%201"), 400),
        (klines("symbol=XRPETH&interval=1m&startTime=abc"), 400),
        (klines("symbol=XRPETH&interval=1m&limit=0"), 400),
        (klines("symbol=&interval="), 400),
        (klines("symbol=XRPETH&interval=1m&timeZone=Europe%2FParis"), 400),
        // Path traversal and unknown paths.
        (get("/../../etc/passwd"), 404),
        (get("/api/../../etc/passwd"), 404),
        (get("/%2e%2e/%2e%2e/etc/passwd"), 404),
        (get("/assets/../Cargo.toml"), 404),
        (get("/assets/dashboard.js/../../../../etc/shadow"), 404),
        (get("/assets/%2e%2e%2fCargo.toml"), 404),
        (get("/api/crypto/ohlc/../../../etc/passwd"), 404),
        // Wrong methods.
        (method("DELETE", "/api/crypto/ohlc?symbol=XRPETH&timeframe=1m"), 405),
        (method("PUT", "/"), 405),
        (method("POST", "/api/crypto/markets"), 405),
        (method("PATCH", "/metrics"), 405),
        (get("/api/performance/cache/clear"), 405),
        (method("TRACE", "/healthz"), 405),
        // Mutations without, or with a wrong, token.
        (method("POST", "/api/performance/cache/clear"), 401),
        (
            format!("POST /api/performance/optimize HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", &TOKEN[..TOKEN.len() - 1]).into_bytes(),
            401,
        ),
        (
            format!("POST /api/performance/cache/clear HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {TOKEN}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").into_bytes(),
            401,
        ),
        // Oversized.
        (get(&format!("/api/crypto/ohlc?symbol={}", "A".repeat(9000))), 414),
        (
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n", "b".repeat(70_000)).into_bytes(),
            431,
        ),
        (
            b"POST /api/performance/optimize HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\nConnection: close\r\n\r\n".to_vec(),
            413,
        ),
        // Broken HTTP.
        (b"GARBAGE\r\n\r\n".to_vec(), 400),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n".to_vec(), 400),
        (b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(), 400),
        (b"GET  HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".to_vec(), 400),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".to_vec(), 400),
        // HTTP/1.0, without Host, with a bad parameter.
        (b"GET /api/crypto/ohlc?symbol=XRPETH HTTP/1.0\r\n\r\n".to_vec(), 400),
    ]
}

#[test]
fn hostile_requests_get_their_4xx_and_the_server_stays_well() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[server]\nheader_timeout_secs = 1\n").unwrap();
    let srv = spawn(
        &dir.path().join("c.db"),
        &[
            "--config",
            config.to_str().unwrap(),
            "serve",
            "--demo",
            "--token",
            TOKEN,
        ],
    );
    let cases = cases();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut wrong = Vec::new();
    for (request, want) in &cases {
        let t = Instant::now();
        let r = raw(srv.addr, request);
        let line = String::from_utf8_lossy(&request[..request.len().min(90)])
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        assert!(t.elapsed() < Duration::from_secs(10), "slow: {line}");
        if r.status != *want {
            wrong.push(format!("{line}: {} (want {want})", r.status));
        }
        assert!(r.header("set-cookie").is_none(), "{line}");
        // Our own answers carry the envelope (or Binance's body on /api/v3).
        if r.header("content-type") == Some("application/json") {
            let v = r.json();
            assert!(v["success"] == false || v["code"].is_i64(), "{line}: {v}");
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");

    // Slow headers: a client that never finishes its head is cut off, not waited for.
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let t = Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "held for {:?}",
        t.elapsed()
    );
    let head = String::from_utf8_lossy(&buf);
    assert!(
        head.is_empty() || head.starts_with("HTTP/1.1 408"),
        "{head}"
    );

    // With the right token the mutations work; HTTP/1.0 works; nothing was a 5xx.
    let ok = raw(
        srv.addr,
        format!("POST /api/performance/cache/clear HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert_eq!(ok.status, 200);
    assert_eq!(raw(srv.addr, b"GET /healthz HTTP/1.0\r\n\r\n").status, 200);
    let metrics = String::from_utf8(get(srv.addr, "/metrics").body).unwrap();
    let fives: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("candlecache_http_requests_total") && l.contains("status=\"5"))
        .collect();
    assert!(fives.is_empty(), "{fives:?}");
    assert_eq!(
        get(
            srv.addr,
            "/api/crypto/ohlc?symbol=XRPETH&timeframe=1h&limit=3"
        )
        .status,
        200
    );
}
