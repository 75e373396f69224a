//! Bybit v5 beside Binance through the real binary and the fake exchange speaking both:
//! Bybit's kline, mark-price kline and funding routes answered from the store with
//! Bybit's semantics, value for value as the exchange answers; fetched once; a Binance
//! and a Bybit series of one name kept apart; Bybit's refusals and rate-limit answers;
//! Bybit's public streams relayed with one upstream subscription per topic and their
//! closed candles stored equal to the exchange's final candle.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use tungstenite::Message;

use crate::fake_exchange::{self as fake, bybit, FakeExchange, LISTED, SYMBOL};
use crate::http::{get, spawn};
use crate::live::pct;
use crate::run;
use crate::served::{connect_at as connect, text_within as text, Client};

const HOUR: i64 = 3_600_000;

fn query(pairs: &[(&str, String)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn target(path: &str, q: &HashMap<String, String>) -> String {
    let mut pairs: Vec<_> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.sort();
    format!("{path}?{}", pairs.join("&"))
}

/// How many history requests the fake saw on `path`.
fn history_seen(ex: &FakeExchange, path: &str) -> usize {
    ex.klines_seen().iter().filter(|s| s.path == path).count()
}

fn result_list(v: &Value) -> Vec<Value> {
    assert_eq!(v["retCode"], 0, "{v}");
    v["result"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("no list: {v}"))
}

#[test]
fn bybit_klines_mark_and_funding_equal_the_exchange_and_are_fetched_once() {
    let ex = FakeExchange::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let url = ex.url();
    let srv = spawn(&db, &["serve", "--upstream-bybit", &url]);
    let a = srv.addr;
    let now = fake::now_ms();
    let start = LISTED + 20 * 24 * HOUR + 1_234;
    let end = start + 900 * HOUR;
    let cases = [
        (
            "/v5/market/kline",
            "spot",
            "60",
            vec![("start", start.to_string())],
        ),
        (
            "/v5/market/kline",
            "linear",
            "60",
            vec![
                ("start", start.to_string()),
                ("end", end.to_string()),
                ("limit", "1000".into()),
            ],
        ),
        (
            "/v5/market/kline",
            "spot",
            "240",
            vec![("end", end.to_string()), ("limit", "300".into())],
        ),
        (
            "/v5/market/mark-price-kline",
            "linear",
            "60",
            vec![("start", start.to_string()), ("limit", "700".into())],
        ),
        (
            "/v5/market/kline",
            "linear",
            "D",
            vec![
                ("start", LISTED.to_string()),
                ("end", (LISTED + 60 * 24 * HOUR).to_string()),
            ],
        ),
        (
            "/v5/market/kline",
            "spot",
            "W",
            vec![
                ("start", LISTED.to_string()),
                ("end", (LISTED + 70 * 24 * HOUR).to_string()),
            ],
        ),
        (
            "/v5/market/kline",
            "spot",
            "M",
            vec![
                ("start", LISTED.to_string()),
                ("end", (LISTED + 100 * 24 * HOUR).to_string()),
            ],
        ),
    ];
    for (path, category, interval, extra) in cases {
        let mut q = query(&[
            ("category", category.into()),
            ("symbol", SYMBOL.into()),
            ("interval", interval.into()),
        ]);
        q.extend(extra.into_iter().map(|(k, v)| (k.to_owned(), v)));
        let t = target(path, &q);
        let r = get(a, &t);
        assert_eq!(r.status, 200, "{t}: {}", String::from_utf8_lossy(&r.body));
        let got = r.json();
        assert_eq!(got["retCode"], 0, "{t}: {got}");
        let want: Value =
            serde_json::from_str(&bybit::klines(&q, path.contains("mark-price"), now)).unwrap();
        assert!(!result_list(&want).is_empty(), "{t}");
        // Value for value, field for field, newest first, as the exchange answers.
        assert_eq!(result_list(&got), result_list(&want), "{t}");
        assert_eq!(got["result"]["symbol"], SYMBOL);
        assert_eq!(got["result"]["category"], category);
        let before = history_seen(&ex, path);
        assert_eq!(
            result_list(&get(a, &t).json()),
            result_list(&want),
            "{t} again"
        );
        assert_eq!(
            history_seen(&ex, path),
            before,
            "{t}: a second ask costs the exchange nothing"
        );
    }
    // Funding: the latest 200 up to a time, then a page of ccxt's (start and end).
    for q in [
        query(&[
            ("category", "linear".into()),
            ("symbol", SYMBOL.into()),
            ("endTime", (LISTED + 200 * 24 * HOUR).to_string()),
        ]),
        query(&[
            ("category", "linear".into()),
            ("symbol", SYMBOL.into()),
            ("startTime", (LISTED + 10 * 24 * HOUR).to_string()),
            ("endTime", (LISTED + 30 * 24 * HOUR).to_string()),
            ("limit", "50".into()),
        ]),
    ] {
        let t = target("/v5/market/funding/history", &q);
        let want: Value = serde_json::from_str(&bybit::funding(&q, now)).unwrap();
        assert_eq!(result_list(&get(a, &t).json()), result_list(&want), "{t}");
        let before = history_seen(&ex, "/v5/market/funding/history");
        assert_eq!(result_list(&get(a, &t).json()), result_list(&want));
        assert_eq!(history_seen(&ex, "/v5/market/funding/history"), before);
    }
    // Stored as Bybit's, under the exchange's name.
    let markets = get(a, "/api/crypto/markets?exchange=bybit").json();
    let list = markets["data"].as_array().unwrap();
    assert!(list.iter().all(|m| m["exchange"] == "bybit"), "{markets}");
    assert!(list
        .iter()
        .any(|m| m["kind"] == "mark" && m["timeframe"] == "1h"));
    assert!(
        get(a, "/api/crypto/markets?exchange=binance").json()["data"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_binance_and_a_bybit_series_of_one_name_never_mix() {
    let ex = FakeExchange::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let url = ex.url();
    let srv = spawn(
        &db,
        &[
            "serve",
            "--upstream",
            &url,
            "--upstream-ws",
            "off",
            "--upstream-bybit",
            &url,
        ],
    );
    let a = srv.addr;
    let start = LISTED + 5 * 24 * HOUR;
    let binance = get(
        a,
        &format!("/api/v3/klines?symbol={SYMBOL}&interval=1h&startTime={start}&limit=24"),
    )
    .json();
    let bybit_q = query(&[
        ("category", "spot".into()),
        ("symbol", SYMBOL.into()),
        ("interval", "60".into()),
        ("start", start.to_string()),
        ("limit", "24".into()),
    ]);
    let by = get(a, &target("/v5/market/kline", &bybit_q)).json();
    let b_rows = binance.as_array().unwrap();
    let y_rows = result_list(&by);
    assert_eq!(b_rows.len(), y_rows.len());
    let binance_closes: Vec<&Value> = b_rows.iter().map(|r| &r[4]).collect();
    let bybit_closes: Vec<&Value> = y_rows.iter().rev().map(|r| &r[4]).collect();
    assert_ne!(binance_closes, bybit_closes);
    // candlecache's own API says which is which, and each equals its exchange.
    let ohlc = |e: &str| {
        get(
            a,
            &format!(
                "/api/crypto/ohlc?symbol={SYMBOL}&timeframe=1h&start={start}&limit=24&exchange={e}"
            ),
        )
        .json()
    };
    let (ob, oy) = (ohlc("binance"), ohlc("bybit"));
    let close = |v: &Value, i: usize| v["data"]["rows"][i][4].as_f64().unwrap();
    for i in 0..24 {
        assert_eq!(
            close(&ob, i),
            b_rows[i][4].as_str().unwrap().parse::<f64>().unwrap()
        );
        assert_eq!(
            close(&oy, i),
            y_rows[23 - i][4].as_str().unwrap().parse::<f64>().unwrap()
        );
    }
    let bad = get(
        a,
        "/api/crypto/ohlc?symbol=BTCUSDT&timeframe=1h&exchange=kraken",
    );
    assert_eq!(bad.status, 400);
    drop(srv);
    // The CLI tells them apart too.
    let (st, out, err) = run(&db, &["markets", "--exchange", "bybit"]);
    assert!(st.success(), "{err}");
    assert!(out.contains("bybit") && !out.contains("binance"), "{out}");
    let (st, _, err) = run(&db, &["markets", "--exchange", "kraken"]);
    assert!(!st.success());
    assert!(err.contains("kraken"), "{err}");
}

#[test]
fn bybit_refusals_and_rate_limits_are_answered_in_bybit_s_envelope() {
    let ex = FakeExchange::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let url = ex.url();
    let srv = spawn(&db, &["serve", "--upstream-bybit", &url]);
    let a = srv.addr;
    for (t, code) in [
        (
            "/v5/market/kline?category=spot&symbol=NOPEUSDT&interval=60",
            10001,
        ),
        (
            "/v5/market/kline?category=inverse&symbol=BTCUSD&interval=60",
            10001,
        ),
        (
            "/v5/market/kline?category=spot&symbol=BTCUSDT&interval=1h",
            10001,
        ),
        (
            "/v5/market/kline?category=spot&symbol=btcusdt&interval=60",
            10001,
        ),
        ("/v5/market/kline?category=spot&symbol=BTCUSDT", 10001),
        (
            "/v5/market/kline?category=spot&symbol=BTCUSDT&interval=60&start=-5",
            10001,
        ),
        (
            "/v5/market/mark-price-kline?category=spot&symbol=BTCUSDT&interval=60",
            10001,
        ),
        (
            "/v5/market/funding/history?category=linear&symbol=BTCUSDT&startTime=1",
            10001,
        ),
    ] {
        let r = get(a, t);
        assert_eq!(r.status, 200, "{t}");
        let v = r.json();
        assert_eq!(v["retCode"], code, "{t}: {v}");
        assert!(v["retMsg"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        assert!(v["result"].is_object() && v["retExtInfo"].is_object() && v["time"].is_i64());
    }
    assert_eq!(get(a, "/v5/market/nope").status, 404);
    // Over Bybit's limit (retCode 10006): no retry storm, a Bybit error, then recovery.
    ex.bybit_busy(1);
    let t = format!(
        "/v5/market/kline?category=spot&symbol={SYMBOL}&interval=1&start={}&limit=10",
        LISTED + HOUR
    );
    let before = history_seen(&ex, "/v5/market/kline");
    let r = get(a, &t);
    assert_eq!(
        r.json()["retCode"],
        10016,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(
        history_seen(&ex, "/v5/market/kline"),
        before + 1,
        "one request, no retries"
    );
    // Within the back-off the exchange is not asked again.
    let _ = get(a, &format!("{t}&end={}", LISTED + 2 * HOUR));
    assert_eq!(history_seen(&ex, "/v5/market/kline"), before + 1);
    std::thread::sleep(Duration::from_millis(5_200));
    let r = get(a, &t);
    assert_eq!(
        r.json()["retCode"],
        0,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    // Time on the service's clock; pass-through of live data with a 1 s cache.
    let time = get(a, "/v5/market/time").json();
    assert_eq!(time["retCode"], 0);
    let secs: i64 = time["result"]["timeSecond"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((secs - fake::now_ms() / 1000).abs() <= 2);
    let tickers = "/v5/market/tickers?category=linear&symbol=BTCUSDT";
    assert_eq!(get(a, tickers).json()["retCode"], 0);
    let n = ex
        .others_seen()
        .iter()
        .filter(|s| s.starts_with("/v5/market/tickers"))
        .count();
    assert_eq!(get(a, tickers).json()["retCode"], 0);
    assert_eq!(
        ex.others_seen()
            .iter()
            .filter(|s| s.starts_with("/v5/market/tickers"))
            .count(),
        n
    );
}

#[test]
fn bybit_streams_are_fanned_out_and_their_closed_candles_stored_as_the_exchange_s() {
    let ex = FakeExchange::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let url = ex.url();
    let ws_url = format!("{}/v5/public", ex.ws_url());
    let srv = spawn(
        &db,
        &[
            "serve",
            "--upstream-bybit",
            &url,
            "--upstream-bybit-ws",
            &ws_url,
        ],
    );
    let a = srv.addr;
    let topic = format!("kline.1.{SYMBOL}");
    let mut clients: Vec<Client> = (0..3).map(|_| connect(a, "/v5/public/spot")).collect();
    for (i, ws) in clients.iter_mut().enumerate() {
        let sub = format!(r#"{{"op":"subscribe","args":["{topic}"],"req_id":"{i}"}}"#);
        ws.send(Message::text(sub)).unwrap();
        let reply: Value =
            serde_json::from_str(&text(ws, Duration::from_secs(5)).unwrap()).unwrap();
        assert_eq!(reply["success"], true, "{reply}");
        assert_eq!(reply["op"], "subscribe");
        assert_eq!(reply["req_id"], i.to_string());
        ws.send(Message::text(r#"{"op":"ping","req_id":"p"}"#))
            .unwrap();
    }
    // Pushes as Bybit writes them, to every client; a closed candle among them within
    // the minute and a bit.
    let until = Instant::now() + Duration::from_secs(75);
    let mut closed: Option<Value> = None;
    let mut pongs = 0;
    while closed.is_none() && Instant::now() < until {
        for ws in &mut clients {
            let Some(t) = text(ws, Duration::from_millis(200)) else {
                continue;
            };
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["ret_msg"] == "pong" {
                pongs += 1;
                continue;
            }
            assert_eq!(v["topic"], topic, "{v}");
            assert_eq!(v["type"], "snapshot");
            let k = &v["data"][0];
            let want = bybit::row(
                SYMBOL,
                false,
                false,
                "1",
                k["start"].as_i64().unwrap(),
                i64::MAX,
            );
            if k["confirm"] == true {
                assert_eq!(k["close"], want[4], "the final candle is the exchange's");
                closed = Some(k.clone());
            }
        }
    }
    assert_eq!(pongs, 3, "each ping answered");
    let closed = closed.expect("a candle closed within 75 s");
    // One upstream subscription for three clients.
    assert_eq!(
        ex.ws_subscribes().iter().filter(|t| **t == topic).count(),
        1
    );
    // The closed candle is stored as Bybit's and served by the kline route.
    let t0 = closed["start"].as_i64().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let q =
        format!("/v5/market/kline?category=spot&symbol={SYMBOL}&interval=1&start={t0}&end={t0}");
    let rows = result_list(&get(a, &q).json());
    assert_eq!(rows.len(), 1, "{rows:?}");
    let want = bybit::row(SYMBOL, false, false, "1", t0, i64::MAX);
    assert_eq!(rows[0], serde_json::json!(want));
    // Other categories are refused by name, and the Binance paths still answer Binance's.
    assert!(tungstenite::connect(format!("ws://{a}/v5/public/inverse")).is_err());
}

/// One answer of the Bybit kline route to a poll: when it was asked and answered, rows.
struct Polled {
    asked: i64,
    answered: i64,
    rows: Vec<Value>,
}

/// The figures of docs/BENCHMARKS.md for Bybit: `cargo test --release -p
/// candlecache-tests --test it bybit::freshness_figures -- --ignored --nocapture`
/// (BYBIT_LIVE_SECS a mode, default 180: Bybit's finest candle is a minute). A client
/// polls `/v5/market/kline?category=spot&symbol=BTCUSDT&interval=1&limit=3` every 100 ms.
/// "Close visible": from a candle's close to the first answer with the exchange's final
/// values; "forming age": how old the forming candle's values were (the fake writes the
/// moment into its volume, to 10 ms).
#[test]
#[ignore = "minutes of polling; run by hand for docs/BENCHMARKS.md"]
fn freshness_figures() {
    let secs: u64 = std::env::var("BYBIT_LIVE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(180);
    let ex = FakeExchange::start();
    let dir = tempfile::tempdir().unwrap();
    let url = ex.url();
    let ws = format!("{}/v5/public", ex.ws_url());
    let q = format!("/v5/market/kline?category=spot&symbol={SYMBOL}&interval=1&limit=3");
    println!("| Bybit edge from | close visible p50 / p99 / max (ms) | candles | forming age p50 / p99 / max (ms) | closed served wrong past the bound | exchange kline requests a minute |\n|---|---|---|---|---|---|");
    for (what, ws_arg, bound) in [
        ("REST only (refresh 1 s)", "off", 3_000),
        ("upstream stream", ws.as_str(), 1_000),
    ] {
        let srv = spawn(
            &dir.path().join(format!("{}.db", ws_arg.len())),
            &[
                "serve",
                "--upstream-bybit",
                &url,
                "--upstream-bybit-ws",
                ws_arg,
            ],
        );
        let _ = get(srv.addr, &q);
        std::thread::sleep(Duration::from_secs(3));
        let before = history_seen(&ex, "/v5/market/kline");
        let until = Instant::now() + Duration::from_secs(secs);
        let mut seen = Vec::new();
        while Instant::now() < until {
            let asked = fake::now_ms();
            let r = get(srv.addr, &q).json();
            seen.push(Polled {
                asked,
                answered: fake::now_ms(),
                rows: result_list(&r),
            });
            std::thread::sleep(Duration::from_millis(100));
        }
        let requests = history_seen(&ex, "/v5/market/kline") - before;
        let (mut visible, mut age, mut wrong) = (Vec::new(), Vec::new(), 0);
        let mut first_final: std::collections::BTreeMap<i64, i64> = Default::default();
        for p in &seen {
            for r in &p.rows {
                let t: i64 = r[0].as_str().unwrap().parse().unwrap();
                let close = t + 60_000;
                if close <= p.asked {
                    let want =
                        serde_json::json!(bybit::row(SYMBOL, false, false, "1", t, i64::MAX));
                    if *r == want {
                        first_final.entry(t).or_insert(p.answered);
                    } else if p.asked - close > bound {
                        wrong += 1;
                    }
                } else {
                    let vol: f64 = r[5].as_str().unwrap().parse().unwrap();
                    let as_of = t + ((vol * 1000.0).round() as i64 - 1) * 10;
                    age.push(p.asked - as_of);
                }
            }
        }
        let start = seen.first().map_or(0, |s| s.asked);
        for (t, at) in first_final {
            if t + 60_000 > start {
                visible.push(at - (t + 60_000));
            }
        }
        let r = |v: &[i64]| format!("{} / {} / {}", pct(v, 0.5), pct(v, 0.99), pct(v, 1.0));
        println!(
            "| {what} | {} | {} | {} | {wrong} | {:.1} |",
            r(&visible),
            visible.len(),
            r(&age),
            requests as f64 * 60.0 / secs as f64
        );
        assert!(
            !visible.is_empty() && !age.is_empty(),
            "{what}: nothing measured"
        );
        assert_eq!(
            wrong, 0,
            "{what}: closed candles served wrong past the bound"
        );
    }
}
