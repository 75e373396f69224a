//! The real server, started by the real binary on a free loopback port, asked by a plain
//! HTTP/1.1 client over TCP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::{binary, fixture, run};

pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    pub(crate) _dir: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `candlecache serve --demo` on port 0 with a fresh database.
fn start() -> Server {
    start_with(None)
}

/// As [`start`], with a configuration file holding `toml`.
fn start_with(toml: Option<&str>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = Vec::new();
    if let Some(t) = toml {
        let p = dir.path().join("c.toml");
        std::fs::write(&p, t).unwrap();
        args.extend(["--config".into(), p.display().to_string()]);
    }
    args.push("serve".into());
    args.push("--demo".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut srv = spawn(&dir.path().join("c.db"), &args);
    srv._dir = Some(dir);
    srv
}

/// Runs `candlecache --db DB ARGS --listen 127.0.0.1:0` and waits until it listens.
pub(crate) fn spawn(db: &std::path::Path, args: &[&str]) -> Server {
    spawn_with_stderr(db, args, Stdio::null())
}

/// As [`spawn`], with the server's stderr going to `stderr`.
pub(crate) fn spawn_with_stderr(db: &std::path::Path, args: &[&str], stderr: Stdio) -> Server {
    let mut child = Command::new(binary())
        .arg("--db")
        .arg(db)
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server said where it listens");
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("not a listening line: {line:?}"))
        .parse()
        .unwrap();
    Server {
        child,
        addr,
        _dir: None,
    }
}

pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Sends raw bytes and reads the whole answer (the request asks to close).
pub(crate) fn raw(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP head came back");
    let head = String::from_utf8_lossy(&buf[..text_end]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect();
    Reply {
        status,
        headers,
        body: buf[text_end + 4..].to_vec(),
    }
}

pub(crate) fn request(addr: SocketAddr, method: &str, target: &str, extra: &str) -> Reply {
    raw(
        addr,
        format!(
            "{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{extra}\r\n"
        )
        .as_bytes(),
    )
}

pub(crate) fn get(addr: SocketAddr, target: &str) -> Reply {
    request(addr, "GET", target, "")
}

const OHLC: &str =
    "/api/crypto/ohlc?symbol=XRPETH&timeframe=1m&start=1570752000000&end=1570773600000";

#[test]
fn formats_aggregates_caching_and_errors_over_http() {
    let srv = start();
    let a = srv.addr;
    let lines: Vec<String> = std::fs::read_to_string(fixture("XRPETH-1m.csv"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let in_range: Vec<&String> = lines
        .iter()
        .filter(|l| l.split(',').next().unwrap().parse::<i64>().unwrap() < 1_570_773_600_000)
        .collect();

    // JSON.
    let r = get(a, OHLC);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-cache"), Some("miss"));
    assert!(r.header("server-timing").is_some());
    let v = r.json();
    assert_eq!(v["success"], true);
    let rows = v["data"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), in_range.len());
    assert_eq!(rows[0][0], 1_570_752_000_000i64);
    assert_eq!(rows[0][1].as_f64().unwrap(), 0.00141342);
    assert_eq!(v["meta"]["rows"], in_range.len());
    assert!(!v["meta"]["gaps"].as_array().unwrap().is_empty());
    // The same request again is a lookup.
    assert_eq!(get(a, OHLC).header("x-cache"), Some("hit"));

    // CSV, values exactly as the exchange wrote them.
    let r = get(a, &format!("{OHLC}&format=csv"));
    assert_eq!(r.header("content-type"), Some("text/csv"));
    let csv = String::from_utf8(r.body).unwrap();
    let mut csv_lines = csv.lines();
    assert_eq!(csv_lines.next(), Some("time,open,high,low,close,volume"));
    for (got, want) in csv_lines.zip(&in_range) {
        assert_eq!(got, want.split(',').take(6).collect::<Vec<_>>().join(","));
    }

    // Arrow IPC, parsed back.
    let r = request(
        a,
        "GET",
        OHLC,
        "Accept: application/vnd.apache.arrow.stream\r\n",
    );
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.apache.arrow.stream")
    );
    let reader =
        arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(r.body), None).unwrap();
    let schema = reader.schema();
    assert_eq!(
        schema.field(0).data_type(),
        &arrow_schema::DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, Some("UTC".into()))
    );
    let n: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(n, in_range.len());

    // gzip for clients that accept it.
    let r = request(
        a,
        "GET",
        &format!("{OHLC}&limit=500"),
        "Accept-Encoding: gzip\r\n",
    );
    assert_eq!(r.header("content-encoding"), Some("gzip"));

    // A week opens on Monday and a month on the 1st; both equal aggregates computed here.
    let rows: Vec<Vec<f64>> = lines
        .iter()
        .map(|l| l.split(',').take(6).map(|x| x.parse().unwrap()).collect())
        .collect();
    let high = rows.iter().map(|r| r[2]).fold(f64::MIN, f64::max);
    let low = rows.iter().map(|r| r[3]).fold(f64::MAX, f64::min);
    let vol: f64 = rows.iter().map(|r| r[5]).sum();
    for (tf, open) in [("1w", 1_570_406_400_000i64), ("1M", 1_569_888_000_000)] {
        let v = get(
            a,
            &format!(
                "/api/crypto/ohlc?symbol=XRPETH&timeframe={tf}&start=2019-09-01&end=2019-12-01"
            ),
        )
        .json();
        let c = &v["data"]["rows"][0];
        assert_eq!(c[0], open, "{tf}");
        assert_eq!(
            (c[1].as_f64().unwrap(), c[4].as_f64().unwrap()),
            (rows[0][1], rows.last().unwrap()[4])
        );
        assert_eq!(
            (c[2].as_f64().unwrap(), c[3].as_f64().unwrap()),
            (high, low)
        );
        assert!((c[5].as_f64().unwrap() - vol).abs() < 1e-6);
    }

    // Gaps filled with the previous close.
    let v = get(a, &format!("{OHLC}&fill=previous")).json();
    assert_eq!(v["data"]["rows"].as_array().unwrap().len(), 360);

    // Markets, stats, cache, metrics, OpenAPI, health.
    let v = get(a, "/api/crypto/markets").json();
    assert_eq!(v["data"].as_array().unwrap().len(), 3);
    let v = get(a, "/api/performance/stats").json();
    assert!(v["data"]["cache"]["total"]["hits"].as_u64().unwrap() > 0);
    assert!(v["data"]["queries"]["patterns"].as_array().unwrap().len() > 1);
    let v = get(a, "/api/performance/cache").json();
    assert!(
        v["data"]["namespaces"]["api_responses"]["entries"]
            .as_u64()
            .unwrap()
            > 0
    );
    let metrics = String::from_utf8(get(a, "/metrics").body).unwrap();
    for m in [
        "candlecache_http_requests_total{route=\"/api/crypto/ohlc\",status=\"200\"}",
        "candlecache_cache_hits_total",
        "candlecache_http_request_duration_seconds_bucket",
        "candlecache_sqlite_pool_connections",
    ] {
        assert!(metrics.contains(m), "{m}");
    }
    let doc = get(a, "/openapi.json").json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/api/crypto/ohlc"]["get"]["parameters"].is_array());

    // Clearing the cache forgets the ready answer; the store keeps the candles.
    let r = request(
        a,
        "POST",
        "/api/performance/cache/clear",
        "Content-Length: 0\r\n",
    );
    assert_eq!(r.status, 200);
    assert!(r.json()["data"]["bytes_freed"].as_u64().unwrap() > 0);
    let r = get(a, OHLC);
    assert_eq!((r.status, r.header("x-cache")), (200, Some("miss")));
    let r = request(
        a,
        "POST",
        "/api/performance/optimize",
        "Content-Length: 0\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["data"]["optimize"]["ran"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Malformed requests: 4xx with the envelope, and the server stays healthy.
    let long = format!("/api/crypto/ohlc?symbol={}", "A".repeat(9000));
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "GET",
            "/api/crypto/ohlc?timeframe=1m".into(),
            400,
            "missing_parameter",
        ),
        (
            "GET",
            "/api/crypto/ohlc?symbol=XRPETH".into(),
            400,
            "missing_parameter",
        ),
        (
            "GET",
            "/api/crypto/ohlc?symbol=BTC%2FUSDT&timeframe=1m".into(),
            400,
            "invalid_symbol",
        ),
        (
            "GET",
            "/api/crypto/ohlc?symbol=NOPE&timeframe=1m".into(),
            404,
            "unknown_symbol",
        ),
        (
            "GET",
            "/api/crypto/ohlc?symbol=XRPETH&timeframe=1H".into(),
            400,
            "invalid_timeframe",
        ),
        (
            "GET",
            "/api/crypto/ohlc?symbol=XRPETH&timeframe=1m&start=yesterday".into(),
            400,
            "invalid_time",
        ),
        (
            "GET",
            "/api/crypto/ohlc?symbol=XRPETH&timeframe=1m&start=-5".into(),
            400,
            "invalid_time",
        ),
        (
            "GET",
            "/api/crypto/ohlc?symbol=XRPETH&timeframe=1m&end=2024-02-30".into(),
            400,
            "invalid_time",
        ),
        (
            "GET",
            "/api/crypto/ohlc?symbol=XRPETH&timeframe=1m&start=2024-01-02&end=2024-01-01".into(),
            400,
            "invalid_range",
        ),
        (
            "GET",
            "/api/crypto/ohlc?symbol=XRPETH&timeframe=1m&limit=0".into(),
            400,
            "invalid_limit",
        ),
        (
            "GET",
            "/api/crypto/ohlc?symbol=XRPETH&timeframe=1m&limit=ten".into(),
            400,
            "invalid_limit",
        ),
        (
            "GET",
            "/api/crypto/ohlc?symbol=XRPETH&timeframe=1m&limit=-1".into(),
            400,
            "invalid_limit",
        ),
        (
            "GET",
            "/api/crypto/ohlc?symbol=XRPETH&timeframe=1m&limit=1000001".into(),
            400,
            "range_too_large",
        ),
        (
            "GET",
            "/api/crypto/ohlc?symbol=XRPETH&timeframe=1m&format=xml".into(),
            400,
            "invalid_format",
        ),
        (
            "GET",
            "/api/crypto/ohlc?symbol=XRPETH&timeframe=1m&fill=zero".into(),
            400,
            "invalid_format",
        ),
        (
            "GET",
            "/api/crypto/ohlc?symbol=XRPETH&symbol=BTCUSDT&timeframe=1m".into(),
            400,
            "duplicate_parameter",
        ),
        (
            "GET",
            "/api/crypto/ohlc?symbol=XRPETH'%20OR%201=1--&timeframe=1m".into(),
            400,
            "invalid_symbol",
        ),
        (
            "GET",
            "/api/crypto/ohlc?symbol=%ZZ&timeframe=1m".into(),
            400,
            "invalid_format",
        ),
        ("GET", "/../../etc/passwd".into(), 404, "not_found"),
        ("GET", "/api/crypto/nothing".into(), 404, "not_found"),
        (
            "POST",
            "/api/crypto/ohlc?symbol=XRPETH&timeframe=1m".into(),
            405,
            "method_not_allowed",
        ),
        (
            "DELETE",
            "/api/performance/cache".into(),
            405,
            "method_not_allowed",
        ),
        (
            "GET",
            "/api/performance/cache/clear".into(),
            405,
            "method_not_allowed",
        ),
        (
            "POST",
            "/api/performance/cache/clear?namespace=nope".into(),
            404,
            "unknown_namespace",
        ),
        ("GET", long, 414, "uri_too_long"),
    ];
    for (method, target, status, code) in &cases {
        let extra = if *method == "POST" {
            "Content-Length: 0\r\n"
        } else {
            ""
        };
        let r = request(a, method, target, extra);
        assert_eq!(
            r.status,
            *status,
            "{method} {}",
            &target[..target.len().min(80)]
        );
        let v = r.json();
        assert_eq!(
            (v["success"].as_bool(), v["error"]["code"].as_str()),
            (Some(false), Some(*code)),
            "{method} {target:.80}"
        );
        if *status == 405 {
            assert!(r.header("allow").is_some());
        }
    }
    let r = request(
        a,
        "POST",
        "/api/performance/optimize",
        &format!("Content-Length: {}\r\n", 1 << 20),
    );
    assert_eq!(r.status, 413);
    // Protocol-level junk gets a 4xx from the HTTP layer, never a 5xx or a hang.
    for junk in [
        b"GARBAGE\r\n\r\n".to_vec(),
        format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "b".repeat(70_000)
        )
        .into_bytes(),
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n".to_vec(),
    ] {
        let mut s = TcpStream::connect(a).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let _ = s.write_all(&junk);
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        let head = String::from_utf8_lossy(&buf);
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no response to {:.40?}", String::from_utf8_lossy(&junk)));
        assert!((400..500).contains(&status), "{head:.80}");
        if junk.len() > 70_000 {
            assert_eq!(status, 431, "{head:.80}");
        }
    }
    assert_eq!(raw(a, b"GET /healthz HTTP/1.0\r\n\r\n").status, 200);
    assert_eq!(get(a, "/healthz").json()["data"]["status"], "ok");
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let mut srv = start();
    assert_eq!(get(srv.addr, "/healthz").status, 200);
    let status = Command::new("kill")
        .args(["-TERM", &srv.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(code) = srv.child.try_wait().unwrap() {
            assert!(code.success(), "{code}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_configuration_file_is_applied_and_a_bad_one_refused_by_key() {
    let srv = start_with(Some(
        "[server]\nmax_rows = 5\n\n[cache]\nbudget_bytes = 50000000\n",
    ));
    let r = get(
        srv.addr,
        "/api/crypto/ohlc?symbol=XRPETH&timeframe=1m&limit=6",
    );
    assert_eq!(r.json()["error"]["code"], "range_too_large");
    let v = get(srv.addr, "/api/performance/cache").json();
    assert_eq!(v["data"]["budget_bytes"], 50_000_000);

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[cache]\nwarm_max_share = 2.0\n").unwrap();
    let out = Command::new(binary())
        .arg("--config")
        .arg(&bad)
        .arg("--db")
        .arg(dir.path().join("c.db"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warm_max_share"), "{err}");
}

#[test]
fn the_dashboard_page_and_its_assets_are_served_from_the_binary() {
    let srv = start();
    let page = get(srv.addr, "/");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    let html = String::from_utf8(page.body).unwrap();
    // Everything the page loads comes from this server.
    for asset in ["/assets/dashboard.js", "/assets/dashboard.css"] {
        assert!(html.contains(asset), "{asset} not referenced");
        let r = get(srv.addr, asset);
        assert_eq!(r.status, 200, "{asset}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert!(r.body.len() > 1000, "{asset}");
    }
    assert!(!html.contains("http://") && !html.contains("https://"));
    let js = String::from_utf8(get(srv.addr, "/assets/dashboard.js").body).unwrap();
    for endpoint in [
        "/api/crypto/markets",
        "/api/crypto/ohlc",
        "/api/performance/stats",
        "/api/performance/memory",
    ] {
        assert!(js.contains(endpoint), "the script does not ask {endpoint}");
    }
    assert_eq!(request(srv.addr, "POST", "/", "").status, 405);
    assert_eq!(get(srv.addr, "/assets/missing.js").status, 404);
}

#[test]
fn the_access_log_has_a_line_per_request_and_can_be_turned_off() {
    for (flag, want) in [(None, 3), (Some("--no-access-log"), 0)] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("stderr.log");
        let mut args = vec!["serve"];
        args.extend(flag);
        let mut srv = spawn_with_stderr(
            &dir.path().join("c.db"),
            &args,
            std::fs::File::create(&log).unwrap().into(),
        );
        let addr = srv.addr;
        for target in ["/healthz", "/nope?x=1", "/api/crypto/markets"] {
            get(addr, target);
        }
        Command::new("kill")
            .args(["-TERM", &srv.child.id().to_string()])
            .status()
            .unwrap();
        assert!(srv.child.wait().unwrap().success());
        // Written by a thread of its own, and flushed before the process exits.
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| l.contains(" GET /")).collect();
        assert_eq!(lines.len(), want, "{text}");
        if want > 0 {
            assert!(lines[1].contains("GET /nope 404"), "{text}");
            assert!(lines[0].ends_with("ms"), "{text}");
        }
    }
}

/// Decodes a body by its Content-Encoding.
fn decoded(r: &Reply) -> Vec<u8> {
    match r.header("content-encoding") {
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&r.body[..])
                .read_to_end(&mut out)
                .expect("a gzip body decodes");
            out
        }
        None => r.body.clone(),
        Some(other) => panic!("unexpected encoding {other}"),
    }
}

/// The part of a body that does not depend on when it was made.
fn stable(body: &[u8], json_envelope: bool) -> Vec<u8> {
    if json_envelope {
        let v: Value = serde_json::from_slice(body).unwrap();
        v["data"].to_string().into_bytes()
    } else {
        body.to_vec()
    }
}

#[test]
fn every_body_decodes_for_clients_with_and_without_gzip_on_miss_and_hit() {
    let srv = start();
    // (Accept-Encoding, whether it accepts gzip)
    let encodings = [
        ("gzip", true),
        ("gzip;q=0.5", true),
        ("deflate, gzip;q=1.0, br", true),
        ("*", true),
        ("x-gzip", true),
        ("gzip;q=0", false),
        ("gzip; q=0.000, *", false),
        ("identity", false),
        ("br, deflate", false),
    ];
    let mut targets = Vec::new();
    for limit in [2, 1000] {
        for format in ["json", "csv", "arrow"] {
            targets.push((
                format!("/api/crypto/ohlc?symbol=XRPETH&timeframe=1m&start=1570752000000&limit={limit}&format={format}"),
                format == "json",
            ));
        }
        targets.push((
            format!(
                "/api/v3/klines?symbol=XRPETH&interval=1m&startTime=1570752000000&limit={limit}"
            ),
            false,
        ));
    }
    for (target, envelope) in &targets {
        let plain = get(srv.addr, target);
        assert_eq!(plain.status, 200, "{target}");
        assert_eq!(plain.header("content-encoding"), None, "{target}");
        let want = stable(&plain.body, *envelope);
        let large = plain.body.len() >= 1024;
        for (enc, accepts) in encodings {
            // The first asks with this encoding may miss; the second is a hit.
            for attempt in 0..2 {
                let r = request(
                    srv.addr,
                    "GET",
                    target,
                    &format!("Accept-Encoding: {enc}\r\n"),
                );
                assert_eq!(r.status, 200, "{target} {enc}");
                let gz = r.header("content-encoding") == Some("gzip");
                assert_eq!(
                    gz,
                    accepts && large,
                    "{target} with {enc:?}, attempt {attempt}"
                );
                assert_eq!(
                    stable(&decoded(&r), *envelope),
                    want,
                    "{target} with {enc:?}"
                );
                if attempt == 1 {
                    assert_eq!(r.header("x-cache"), Some("hit"), "{target} {enc}");
                }
            }
        }
    }
}

#[test]
fn without_a_start_the_latest_candles_are_answered() {
    let srv = start();
    let markets = get(srv.addr, "/api/crypto/markets").json();
    let last = markets["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["symbol"] == "XRPETH" && m["timeframe"] == "1m")
        .unwrap()["last_time"]
        .as_i64()
        .unwrap();
    let times = |v: &Value| -> Vec<i64> {
        v["data"]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[0].as_i64().unwrap())
            .collect()
    };
    let latest = get(
        srv.addr,
        "/api/crypto/ohlc?symbol=XRPETH&timeframe=1m&limit=5",
    )
    .json();
    let t = times(&latest);
    assert_eq!(t.len(), 5);
    assert_eq!(*t.last().unwrap(), last);
    assert!(t.windows(2).all(|w| w[0] < w[1]));
    // The same candles as a forward page from the first of them.
    let forward = get(
        srv.addr,
        &format!(
            "/api/crypto/ohlc?symbol=XRPETH&timeframe=1m&start={}&limit=5",
            t[0]
        ),
    )
    .json();
    assert_eq!(latest["data"]["rows"], forward["data"]["rows"]);
    // With an end only: the latest before it.
    let end = last - 30 * 60_000;
    let before = get(
        srv.addr,
        &format!("/api/crypto/ohlc?symbol=XRPETH&timeframe=1m&end={end}&limit=3"),
    )
    .json();
    let b = times(&before);
    assert_eq!(b.len(), 3);
    assert!(
        *b.last().unwrap() < end && *b.last().unwrap() >= end - 5 * 60_000,
        "{b:?}"
    );
    // Resampled, too: the last hour bucket holds the last candle.
    let hours = times(
        &get(
            srv.addr,
            "/api/crypto/ohlc?symbol=XRPETH&timeframe=1h&limit=3",
        )
        .json(),
    );
    assert_eq!(hours.len(), 3);
    assert_eq!(*hours.last().unwrap(), last / 3_600_000 * 3_600_000);
    // Binance's klines without startTime: exactly `limit` rows, the last one the latest.
    let k: Value = serde_json::from_slice(
        &get(srv.addr, "/api/v3/klines?symbol=XRPETH&interval=1m&limit=7").body,
    )
    .unwrap();
    let k = k.as_array().unwrap();
    assert_eq!(k.len(), 7);
    assert_eq!(k[6][0].as_i64().unwrap(), last);
}

#[test]
fn head_request_bodies_and_listening_beyond_loopback() {
    let srv = start();
    let a = srv.addr;
    // HEAD: the GET's status and length, no body.
    let target = "/api/crypto/ohlc?symbol=XRPETH&timeframe=1m&limit=50";
    let full = get(a, target);
    let head = request(a, "HEAD", target, "");
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(
        head.header("content-length").map(str::to_owned),
        Some(full.body.len().to_string())
    );
    // A broken chunked body is a 400, a whole one is read and ignored.
    for (body, status) in [
        ("zz\r\nnot hex\r\n0\r\n\r\n", 400),
        ("5\r\nhello\r\n0\r\n\r\n", 200),
    ] {
        let r = raw(
            a,
            format!("POST /api/performance/optimize HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{body}").as_bytes(),
        );
        assert_eq!(r.status, status, "{body:?}");
        if status == 400 {
            assert_eq!(r.json()["error"]["code"], "malformed_body");
        }
    }
    // Beyond loopback without a token: refused at start, naming the fix, before binding.
    let dir = tempfile::tempdir().unwrap();
    let (status, _, err) = run(
        &dir.path().join("c.db"),
        &["serve", "--listen", "0.0.0.0:0"],
    );
    assert!(!status.success());
    assert!(
        err.contains("beyond loopback") && err.contains("--token"),
        "{err}"
    );
}

#[test]
fn a_blocked_access_log_drops_and_counts_lines_and_never_holds_up_requests() {
    let dir = tempfile::tempdir().unwrap();
    // stderr is a pipe nobody reads: the access log's writer blocks once it is full.
    let srv = spawn_with_stderr(&dir.path().join("c.db"), &["serve"], Stdio::piped());
    // Pipelined on one connection: 25,000 requests, more than the log's queue and the
    // pipe hold together.
    let n = 25_000;
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut reader = s.try_clone().unwrap();
    let counter = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        let mut seen = 0usize;
        let mut tail = Vec::new();
        while seen < n {
            let got = match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => k,
            };
            tail.extend_from_slice(&buf[..got]);
            seen += tail.windows(15).filter(|w| w == b"HTTP/1.1 200 OK").count();
            let keep = tail.len().saturating_sub(14);
            tail.drain(..keep);
        }
        seen
    });
    let one = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    for _ in 0..n / 500 {
        s.write_all(&one.repeat(500)).unwrap();
    }
    assert_eq!(counter.join().unwrap(), n);
    let stats = get(srv.addr, "/api/performance/stats").json();
    let log = &stats["data"]["access_log"];
    assert_eq!(log["enabled"], true);
    assert!(log["dropped_lines"].as_u64().unwrap() > 0, "{log}");
}
