//! Shared history on an object store (`file://` here): instances with their own databases
//! and one object store ask the exchange once for a closed month; racing instances leave
//! one object; a fresh instance serves from the objects; a damaged object is not served.

use std::process::Command;

use serde_json::Value;

use crate::fake_exchange::{FakeExchange, SYMBOL};
use crate::http::{get, spawn};
use crate::upstream::{expected_csv, exported};
use crate::{binary, run};

const HOUR: i64 = 3_600_000;

/// Epoch ms of a `YYYY-MM-01` date (the months used here).
fn ms(date: &str) -> i64 {
    let (y, m) = (
        date[..4].parse::<i64>().unwrap(),
        date[5..7].parse::<i64>().unwrap(),
    );
    // Days from 1970-01-01 to the first of the month (civil-from-days inverse).
    let (y2, m2) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) * 86_400_000
}

fn fetch_args<'a>(url: &'a str, objects: &'a str, start: &'a str, end: &'a str) -> Vec<&'a str> {
    vec![
        "fetch",
        "--symbol",
        SYMBOL,
        "--timeframe",
        "1h",
        "--start",
        start,
        "--end",
        end,
        "--upstream",
        url,
        "--object-store",
        objects,
    ]
}

/// `serve` with the fake exchange `url` as upstream (no streams) and the object store
/// `objects`, plus `extra` flags.
fn serve_shared(
    db: &std::path::Path,
    url: &str,
    objects: &str,
    extra: &[&str],
) -> crate::http::Server {
    let mut args = vec![
        "serve",
        "--upstream",
        url,
        "--upstream-ws",
        "off",
        "--object-store",
        objects,
    ];
    args.extend_from_slice(extra);
    spawn(db, &args)
}

fn objects_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// Asserts two lists of candle lines are equal, showing the first difference only.
fn same(got: &[String], want: &[String], what: &str) {
    if let Some(i) = (0..got.len().max(want.len())).find(|i| got.get(*i) != want.get(*i)) {
        panic!(
            "{what}: {} lines, {} expected; first difference at {i}: {:?} vs {:?}",
            got.len(),
            want.len(),
            got.get(i),
            want.get(i)
        );
    }
}

/// Binance klines rows as the exchange's CSV lines.
fn as_csv(rows: &[Value]) -> Vec<String> {
    rows.iter()
        .map(|g| {
            let fields: Vec<String> = g
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect();
            fields.join(",")
        })
        .collect()
}

#[test]
fn instances_share_closed_months_through_the_object_store() {
    let ex = FakeExchange::start();
    let url = ex.url();
    let shared = tempfile::tempdir().unwrap();
    let objects = format!("file://{}", shared.path().display());
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let db = |i: usize| dirs[i].path().join("c.db");
    let (feb, apr) = (ms("2024-02-01"), ms("2024-04-01"));
    let (s, e) = (feb.to_string(), apr.to_string());

    // The first instance fetches two closed months from the exchange and publishes them.
    let (st, out, err) = run(&db(0), &fetch_args(&url, &objects, &s, &e));
    assert!(st.success(), "{out}{err}");
    let asked = ex.klines_seen().len();
    assert!(asked >= 2, "{asked}");
    assert!(out.contains("2 published"), "{out}");
    assert_eq!(
        objects_under(shared.path()),
        [
            "exchange=binance/symbol=BTCUSDT/timeframe=1h/year=2024/month=02/BTCUSDT-1h-2024-02.parquet",
            "exchange=binance/symbol=BTCUSDT/timeframe=1h/year=2024/month=03/BTCUSDT-1h-2024-03.parquet",
        ]
    );
    // The second reads them: no exchange request, the same candles, the exchange's.
    let (st, out, err) = run(&db(1), &fetch_args(&url, &objects, &s, &e));
    assert!(st.success(), "{out}{err}");
    assert!(out.contains("2 months read"), "{out}");
    assert_eq!(
        ex.klines_seen().len(),
        asked,
        "the exchange was asked again"
    );
    let want = expected_csv(HOUR, feb, apr);
    assert_eq!(exported(&db(0), "1h", feb, apr), want);
    assert_eq!(exported(&db(1), "1h", feb, apr), want);

    // Two instances racing on a new month leave one object, and both have the month.
    let (may, jun) = (ms("2024-05-01"), ms("2024-06-01"));
    let (s2, e2) = (ms("2024-04-01").to_string(), may.to_string());
    let racers: Vec<_> = [db(0), db(1)]
        .iter()
        .map(|d| {
            Command::new(binary())
                .arg("--db")
                .arg(d)
                .args(fetch_args(&url, &objects, &s2, &e2))
                .output()
                .unwrap()
        })
        .collect();
    for r in &racers {
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    }
    let april: Vec<_> = objects_under(shared.path())
        .into_iter()
        .filter(|p| p.contains("month=04"))
        .collect();
    assert_eq!(april.len(), 1, "{april:?}");
    let want_apr = expected_csv(HOUR, ms("2024-04-01"), may);
    assert_eq!(exported(&db(0), "1h", ms("2024-04-01"), may), want_apr);
    assert_eq!(exported(&db(1), "1h", ms("2024-04-01"), may), want_apr);

    // A damaged object is refused, and the exchange answers instead.
    let may_path = shared.path().join(
        "exchange=binance/symbol=BTCUSDT/timeframe=1h/year=2024/month=05/BTCUSDT-1h-2024-05.parquet",
    );
    std::fs::create_dir_all(may_path.parent().unwrap()).unwrap();
    std::fs::write(&may_path, b"PAR1 not really parquet").unwrap();

    // A fresh instance serving with the object store answers the shared months without
    // the exchange, and May (damaged object) from the exchange, correctly.
    let srv = serve_shared(&db(2), &url, &objects, &[]);
    let before = ex.klines_seen().len();
    let rows = |from: i64, to: i64| -> Vec<Value> {
        let v = get(
            srv.addr,
            &format!(
                "/api/v3/klines?symbol={SYMBOL}&interval=1h&startTime={from}&endTime={}&limit=1000",
                to - 1
            ),
        )
        .json();
        v.as_array().unwrap().clone()
    };
    // One read-path chunk (1000 candles on the epoch grid), inside the shared March and
    // April: a chunk is loaded whole, and a month it touches that nobody published would
    // be fetched from the exchange.
    let (c0, c1) = (475 * 1000 * HOUR, 476 * 1000 * HOUR);
    assert!(c0 >= ms("2024-03-01") && c1 <= may);
    assert_eq!(as_csv(&rows(c0, c1)), expected_csv(HOUR, c0, c1));
    assert_eq!(
        ex.klines_seen().len(),
        before,
        "shared months came from the objects"
    );
    let got_may = rows(may, jun);
    assert_eq!(got_may.len(), expected_csv(HOUR, may, jun).len());
    assert!(
        ex.klines_seen().len() > before,
        "May came from the exchange"
    );
    let stats = get(srv.addr, "/api/performance/stats").json();
    let o = &stats["data"]["upstream"]["objects"];
    // The shared chunk from its row groups (its months are read back whole afterwards,
    // in the background); the damaged May refused, by the window read and the fill.
    assert!(o["windows_read"].as_u64() >= Some(1), "{o}");
    assert!(o["rejected"].as_u64() >= Some(1), "{o}");
    drop(srv);

    // sync: what is there is not written again; imported files are not known complete.
    let (st, out, err) = run(&db(0), &["sync", "--object-store", &objects]);
    assert!(st.success(), "{err}");
    assert!(out.contains("0 published"), "{out}");
    // markets says where the months are: locally, and which the object store holds.
    let (st, out, err) = run(&db(0), &["markets", "--object-store", &objects]);
    assert!(st.success(), "{err}");
    assert!(out.contains("4 months 2024-02..2024-05"), "{out}");
    let (st, out, _) = run(&db(0), &["markets", "--json", "--object-store", &objects]);
    assert!(st.success());
    let m: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(m[0]["object_store"]["months"], 4, "{m}");
    let (st, _, err) = run(&db(0), &["sync", "--object-store", "ftp://nowhere"]);
    assert!(!st.success());
    assert!(err.contains("s3:// or file://"), "{err}");
}

/// An S3 endpoint that answers every request with `status` and an S3 error body.
fn failing_store(status: &'static str) -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let xml = "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>no</Message></Error>";
                let _ = write!(
                    &conn,
                    "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
                    xml.len()
                );
            });
        }
    });
    format!("http://{addr}")
}

#[test]
fn an_unreachable_object_store_costs_seconds_and_the_exchange_answers() {
    // Nothing listens on port 1: every request to the store is refused.
    store_fails_and_the_exchange_answers("http://127.0.0.1:1");
}

#[test]
fn an_object_store_refusing_with_403_or_500_costs_seconds_and_the_exchange_answers() {
    store_fails_and_the_exchange_answers(&failing_store("403 Forbidden"));
    store_fails_and_the_exchange_answers(&failing_store("500 Internal Server Error"));
}

fn store_fails_and_the_exchange_answers(endpoint: &str) {
    let ex = FakeExchange::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!("[object_store]\nurl = \"s3://bucket/prefix\"\nendpoint = \"{endpoint}\"\nallow_http = true\naccess_key_id = \"k\"\nsecret_access_key = \"do-not-print-me\"\n"),
    )
    .unwrap();
    let srv = spawn(
        &dir.path().join("c.db"),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "serve",
            "--upstream",
            &ex.url(),
            "--upstream-ws",
            "off",
        ],
    );
    let a = ms("2024-03-01");
    let b = a + 48 * HOUR;
    let t = std::time::Instant::now();
    let r = get(
        srv.addr,
        &format!(
            "/api/v3/klines?symbol={SYMBOL}&interval=1h&startTime={a}&endTime={}",
            b - 1
        ),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json().as_array().unwrap().len(),
        expected_csv(HOUR, a, b).len()
    );
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t.elapsed()
    );
    let stats = get(srv.addr, "/api/performance/stats").json();
    let o = &stats["data"]["upstream"]["objects"];
    assert!(o["errors"].as_u64() >= Some(1), "{o}");
    assert!(
        !stats.to_string().contains("do-not-print-me"),
        "the secret is never shown"
    );
}

#[test]
fn concurrent_requests_in_one_missing_month_fetch_it_once() {
    let ex = FakeExchange::start();
    let shared = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let objects = format!("file://{}", shared.path().display());
    let srv = serve_shared(&dir.path().join("c.db"), &ex.url(), &objects, &[]);
    let addr = srv.addr;
    // Eight 1m chunks (1000 candles on the epoch grid) inside March 2024, asked at once.
    let first = ms("2024-03-01").div_euclid(1000 * 60_000) + 1;
    let threads: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                let t = (first + i) * 1000 * 60_000;
                get(
                    addr,
                    &format!("/api/v3/klines?symbol={SYMBOL}&interval=1m&startTime={t}&limit=1000"),
                )
                .status
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 200);
    }
    let starts: Vec<String> = ex
        .klines_seen()
        .iter()
        .map(|s| s.query["startTime"].clone())
        .collect();
    let mut unique = starts.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        starts.len(),
        "a page was asked twice: {starts:?}"
    );
    // March was published once, whole.
    let march: Vec<_> = objects_under(shared.path())
        .into_iter()
        .filter(|p| p.contains("timeframe=1m/year=2024/month=03"))
        .collect();
    assert_eq!(march.len(), 1, "{march:?}");
}

#[test]
fn bounded_local_stores_drop_safe_months_and_read_them_back_exactly() {
    const MINUTE: i64 = 60_000;
    let ex = FakeExchange::start();
    let shared = tempfile::tempdir().unwrap();
    let objects = format!("file://{}", shared.path().display());
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    // A month of 1m is about 45,000 candles, megabytes in SQLite: a 1 MB bound keeps none.
    let serve = |i: usize| {
        serve_shared(
            &dirs[i].path().join("c.db"),
            &ex.url(),
            &objects,
            &["--local-max-mb", "1"],
        )
    };
    let chunk = |k: i64| {
        let first = ms("2024-02-01").div_euclid(1000 * MINUTE) + 1;
        (first + k) * 1000 * MINUTE
    };
    let (mar, apr) = (ms("2024-03-01"), ms("2024-04-01"));
    // Chunks 0..3 are in February, 50..53 in March.
    assert!(chunk(3) + 1000 * MINUTE <= mar && chunk(50) >= mar && chunk(53) < apr);
    let klines = |addr, t: i64| -> Vec<String> {
        let r = get(
            addr,
            &format!(
                "/api/v3/klines?symbol={SYMBOL}&interval=1m&startTime={t}&endTime={}&limit=1000",
                t + 1000 * MINUTE - 1
            ),
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        as_csv(r.json().as_array().unwrap())
    };
    let objects_stats =
        |addr| get(addr, "/api/performance/stats").json()["data"]["upstream"]["objects"].clone();
    let want = |k: i64| expected_csv(MINUTE, chunk(k), chunk(k) + 1000 * MINUTE);

    let a = serve(0);
    same(&klines(a.addr, chunk(0)), &want(0), "chunk 0 from a");
    same(&klines(a.addr, chunk(50)), &want(50), "chunk 50 from a");
    let fetched = ex.klines_seen().len();
    assert!(
        fetched >= 80,
        "two whole months from the exchange: {fetched}"
    );
    // Both months are published, then dropped locally to keep under 1 MB.
    let t = std::time::Instant::now();
    while objects_stats(a.addr)["months_dropped"].as_u64() < Some(2) {
        assert!(t.elapsed().as_secs() < 30, "{}", objects_stats(a.addr));
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let o = objects_stats(a.addr);
    assert_eq!(
        (o["months_written"].as_u64(), o["local_max_bytes"].as_u64()),
        (Some(2), Some(1_000_000)),
        "{o}"
    );
    let months = objects_under(shared.path());
    assert_eq!(months.len(), 2, "{months:?}");
    // Chunks not in memory come back from the object store, exactly, without the exchange.
    same(&klines(a.addr, chunk(1)), &want(1), "chunk 1 from a");
    same(&klines(a.addr, chunk(51)), &want(51), "chunk 51 from a");
    // Answered from their row groups (the months are read back whole afterwards).
    let o = objects_stats(a.addr);
    let n = |k: &str| o[k].as_u64().unwrap_or(0);
    assert!(n("windows_read") + n("months_read") >= 2, "{o}");
    // Two more instances, as bounded, answer every chunk from the objects.
    let (b, c) = (serve(1), serve(2));
    for k in [2, 3, 52, 53] {
        same(
            &klines(b.addr, chunk(k)),
            &want(k),
            &format!("chunk {k} from b"),
        );
        same(
            &klines(c.addr, chunk(k)),
            &want(k),
            &format!("chunk {k} from c"),
        );
    }
    same(&klines(a.addr, chunk(3)), &want(3), "chunk 3 from a");
    assert_eq!(
        ex.klines_seen().len(),
        fetched,
        "the exchange was asked again"
    );
    // The markets list says where the months are.
    let m = get(b.addr, "/api/crypto/markets").json();
    let series = m["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["timeframe"] == "1m")
        .cloned()
        .unwrap();
    assert_eq!(series["object_store"]["months"], 2, "{series}");
    assert_eq!(
        series["object_store"]["ranges"],
        serde_json::json!([["2024-02", "2024-03"]])
    );
    // Each keeps less than a month locally once its trim has run.
    for srv in [&a, &b, &c] {
        let t = std::time::Instant::now();
        loop {
            let m = get(srv.addr, "/api/crypto/markets").json();
            let local = m["data"][0]["count"].as_u64().unwrap();
            if local < 20_000 {
                break;
            }
            assert!(t.elapsed().as_secs() < 30, "{local} candles kept locally");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
}

/// Closed months the exchange's klines answers covered in full, from the requests seen
/// and the fake's own answers to them (which skip the exchange's holes): what an instance
/// that made them holds complete.
fn months_answered(seen: &[crate::fake_exchange::Seen], step: i64) -> Vec<(i64, i64)> {
    let mut spans: Vec<(i64, i64)> = seen
        .iter()
        .filter(|s| s.path == "/api/v3/klines")
        .filter_map(|s| {
            let n = |k: &str| s.query.get(k).and_then(|v| v.parse::<i64>().ok());
            let from = (n("startTime")? + step - 1).div_euclid(step) * step;
            let limit = n("limit").unwrap_or(500).clamp(1, 1000) as usize;
            let answer = crate::fake_exchange::answer_up_to(step, &s.query, s.at, 1000);
            // A full page reaches its last candle; a short one the end asked (or now).
            let to = match answer.last() {
                Some(last) if answer.len() == limit => last + step,
                _ => (n("endTime").unwrap_or(s.at).min(s.at) + 1).div_euclid(step) * step,
            };
            Some((from, to))
        })
        .collect();
    spans.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::new();
    for (a, b) in spans {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    let mut months = Vec::new();
    for (a, b) in merged {
        for y in 2017..=2025 {
            for m in 1..=12 {
                let start = ms(&format!("{y}-{m:02}-01"));
                let next = if m == 12 {
                    ms(&format!("{}-01-01", y + 1))
                } else {
                    ms(&format!("{y}-{:02}-01", m + 1))
                };
                if a <= start && next <= b {
                    months.push((start, next));
                }
            }
        }
    }
    months
}

#[test]
fn a_month_an_instance_holds_complete_is_published_before_another_needs_it() {
    let ex = FakeExchange::start();
    let shared = tempfile::tempdir().unwrap();
    let objects = format!("file://{}", shared.path().display());
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = serve_shared(&dirs[0].path().join("c.db"), &ex.url(), &objects, &[]);
    // January 2024 in 1h: the read path fills the months its chunks touch, and the page
    // ending the last of them runs on past it.
    let (jan, feb) = (ms("2024-01-01"), ms("2024-02-01"));
    let window = format!(
        "/api/v3/klines?symbol={SYMBOL}&interval=1h&startTime={jan}&endTime={}&limit=1000",
        feb - 1
    );
    let first = get(a.addr, &window);
    assert_eq!(first.status, 200);
    let held = months_answered(&ex.klines_seen(), HOUR);
    // The case this guards: a page brought a month beyond those the read needed.
    let touched = [ms("2023-12-01"), jan, feb];
    assert!(
        held.iter().any(|(m, _)| !touched.contains(m)),
        "no page ran past the months read: {held:?}"
    );
    drop(a);
    let before = ex.klines_seen().len();
    let second = serve_shared(&dirs[1].path().join("c.db"), &ex.url(), &objects, &[]);
    // The window the first instance read: its chunks reach into the month past it.
    assert_eq!(get(second.addr, &window).body, first.body);
    // Every read-path chunk (1,000 candles on the epoch grid, loaded whole) lying in the
    // months the first instance held: read without the exchange, and exact.
    let inside = |a: i64, b: i64| {
        held.iter().any(|(m, n)| *m <= a && b <= *n)
            || held
                .windows(2)
                .any(|w| w[0].1 == w[1].0 && w[0].0 <= a && b <= w[1].1)
    };
    let chunk = 1000 * HOUR;
    let mut read = 0;
    for k in held[0].0 / chunk..=held[held.len() - 1].1 / chunk {
        let (a, b) = (k * chunk, (k + 1) * chunk);
        if !inside(a, b) {
            continue;
        }
        let rows = get(
            second.addr,
            &format!(
                "/api/v3/klines?symbol={SYMBOL}&interval=1h&startTime={a}&endTime={}&limit=1000",
                b - 1
            ),
        )
        .json();
        same(
            &as_csv(rows.as_array().unwrap()),
            &expected_csv(HOUR, a, b),
            "a chunk in the months the first instance held",
        );
        read += 1;
    }
    assert!(read >= 2, "{held:?}");
    assert_eq!(
        ex.klines_seen().len(),
        before,
        "the second instance asked the exchange for a month the first held complete ({held:?})"
    );
}
