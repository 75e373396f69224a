//! OKX v5 beside Binance and Bybit through the real binary and the fake exchange speaking
//! all three: OKX's candle routes on both clocks and every cursor combination, value for
//! value as the exchange answers, fetched once and paced under OKX's limits; funding with
//! its cursors; OKX's refusals; the candle channels of `/ws/v5/business` relayed with one
//! upstream subscription per channel and their closed candles equal to the exchange's.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use tungstenite::Message;

use crate::fake_exchange::{self as fake, okx, FakeExchange, LISTED};
use crate::http::{get, spawn};
use crate::live::pct;
use crate::served::{connect_at as connect, text_within as text, Client};

const DAY: i64 = 86_400_000;

fn target(path: &str, pairs: &[(&str, String)]) -> (String, HashMap<String, String>) {
    let q: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let mut parts: Vec<_> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.sort();
    (format!("{path}?{}", parts.join("&")), q)
}

fn data(v: &Value) -> Vec<Value> {
    assert_eq!(v["code"], "0", "{v}");
    v["data"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("no data: {v}"))
}

/// The closed rows (`confirm` "1"): the forming one moves with the clock.
fn closed(rows: Vec<Value>) -> Vec<Value> {
    rows.into_iter()
        .filter(|r| r.as_array().and_then(|a| a.last()) == Some(&Value::from("1")))
        .collect()
}

fn history_seen(ex: &FakeExchange) -> usize {
    ex.klines_seen()
        .iter()
        .filter(|s| s.path.starts_with("/api/v5/"))
        .count()
}

#[test]
fn okx_candles_on_both_clocks_and_every_cursor_equal_the_exchange_and_are_fetched_once() {
    let ex = FakeExchange::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let url = ex.url();
    let srv = spawn(&db, &["serve", "--upstream-okx", &url]);
    let a = srv.addr;
    let t0 = LISTED + 40 * DAY + 1_234;
    let bars = [
        ("1m", 2 * 3_600_000),
        ("1H", 9 * DAY),
        ("4H", 30 * DAY),
        ("6H", 40 * DAY),
        ("6Hutc", 40 * DAY),
        ("12H", 60 * DAY),
        ("1D", 100 * DAY),
        ("1Dutc", 100 * DAY),
        ("2D", 150 * DAY),
        ("3Dutc", 200 * DAY),
        ("1W", 300 * DAY),
        ("1Wutc", 300 * DAY),
        ("1M", 400 * DAY),
        ("1Mutc", 400 * DAY),
        ("3M", 600 * DAY),
        ("3Mutc", 600 * DAY),
    ];
    for (inst, route, mark) in [
        ("BTC-USDT", "candles", false),
        ("ETH-USDT-SWAP", "history-candles", false),
        ("BTC-USDT-SWAP", "mark-price-candles", true),
    ] {
        for (bar, span) in bars {
            let after = t0 + span;
            let cursors: Vec<Vec<(&str, String)>> = vec![
                vec![("after", after.to_string())],
                vec![
                    ("after", after.to_string()),
                    ("before", t0.to_string()),
                    ("limit", "300".into()),
                ],
                vec![("after", after.to_string()), ("limit", "7".into())],
            ];
            for cursor in cursors {
                let mut pairs = vec![("instId", inst.to_owned()), ("bar", bar.to_owned())];
                pairs.extend(cursor);
                let path = format!("/api/v5/market/{route}");
                let (t, q) = target(&path, &pairs);
                let r = get(a, &t);
                assert_eq!(r.status, 200, "{t}: {}", String::from_utf8_lossy(&r.body));
                let got = data(&r.json());
                // The exchange's history route holds all of it (its recent one only
                // the latest 1,440); candlecache serves all on both.
                let truth = if mark {
                    "/api/v5/market/history-mark-price-candles"
                } else {
                    "/api/v5/market/history-candles"
                };
                let (_, body) = okx::candles(truth, &q, fake::now_ms());
                let want = data(&serde_json::from_str(&body).unwrap());
                assert!(!want.is_empty(), "{t}");
                assert_eq!(got, want, "{t}: field for field, newest first");
                let before = history_seen(&ex);
                assert_eq!(data(&get(a, &t).json()), want, "{t} again");
                assert_eq!(history_seen(&ex), before, "{t}: a second ask costs nothing");
            }
        }
    }
    // The latest daily candles on Hong Kong time: the closed ones equal, the forming one
    // last with confirm 0.
    let (t, q) = target(
        "/api/v5/market/candles",
        &[
            ("instId", "BTC-USDT".into()),
            ("bar", "1D".into()),
            ("limit", "5".into()),
        ],
    );
    let got = data(&get(a, &t).json());
    assert_eq!(got.len(), 5, "{got:?}");
    assert_eq!(got[0][8], "0", "the forming candle first, as OKX answers");
    let (_, body) = okx::candles("/api/v5/market/candles", &q, fake::now_ms());
    let want = data(&serde_json::from_str(&body).unwrap());
    assert_eq!(closed(got.clone()), closed(want));
    let open = got[0][0].as_str().unwrap().parse::<i64>().unwrap();
    assert_eq!(
        open.rem_euclid(DAY),
        16 * 3_600_000,
        "a 1D candle opens at 16:00 UTC"
    );
    // The same daily candles through /api/crypto/ohlc with the offset, as stored.
    let ohlc = get(
        a,
        &format!(
            "/api/crypto/ohlc?exchange=okx&symbol=BTC-USDT&timeframe=1d&tz=%2B08:00&start={}&end={}",
            LISTED + 40 * DAY,
            LISTED + 140 * DAY
        ),
    )
    .json();
    let rows = ohlc["data"]["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("{ohlc}"));
    assert_eq!(ohlc["data"]["timeframe"], "1d+08:00");
    let (_, q) = target(
        "/api/v5/market/history-candles",
        &[
            ("instId", "BTC-USDT".into()),
            ("bar", "1D".into()),
            ("after", (LISTED + 140 * DAY).to_string()),
            ("before", (LISTED + 40 * DAY - 1).to_string()),
            ("limit", "300".into()),
        ],
    );
    let (_, body) = okx::candles("/api/v5/market/history-candles", &q, fake::now_ms());
    let mut want = data(&serde_json::from_str(&body).unwrap());
    want.reverse();
    assert_eq!(rows.len(), want.len(), "{ohlc}");
    for (r, w) in rows.iter().zip(&want) {
        assert_eq!(r[0].as_i64().unwrap().to_string(), w[0].as_str().unwrap());
        assert_eq!(r[4].as_f64(), w[4].as_str().unwrap().parse::<f64>().ok());
    }
    // Stored as OKX's.
    let markets = get(a, "/api/crypto/markets?exchange=okx").json();
    let list = markets["data"].as_array().unwrap();
    assert!(list.iter().all(|m| m["exchange"] == "okx"), "{markets}");
    assert!(
        list.iter().any(|m| m["timeframe"] == "1d+08:00"),
        "{markets}"
    );
    assert_eq!(ex.okx_limited(), 0, "never over OKX's limits");
}

#[test]
fn okx_funding_cursors_refusals_and_pacing() {
    let ex = FakeExchange::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let url = ex.url();
    let srv = spawn(&db, &["serve", "--upstream-okx", &url]);
    let a = srv.addr;
    let inst = "BTC-USDT-SWAP";
    for cursor in [
        vec![("after", (LISTED + 100 * DAY).to_string())],
        vec![
            ("after", (LISTED + 100 * DAY).to_string()),
            ("before", (LISTED + 80 * DAY).to_string()),
            ("limit", "20".into()),
        ],
    ] {
        let mut pairs = vec![("instId", inst.to_owned())];
        pairs.extend(cursor);
        let (t, q) = target("/api/v5/public/funding-rate-history", &pairs);
        let got = data(&get(a, &t).json());
        let (_, body) = okx::funding(&q, fake::now_ms());
        let want = data(&serde_json::from_str(&body).unwrap());
        assert!(!want.is_empty());
        assert_eq!(got, want, "{t}");
        let before = history_seen(&ex);
        assert_eq!(data(&get(a, &t).json()), want);
        assert_eq!(history_seen(&ex), before, "{t}: a second ask costs nothing");
    }
    // Refusals in OKX's envelope and codes.
    for (t, code) in [
        ("/api/v5/market/candles?instId=NOPE-USDT&bar=1H", "51001"),
        ("/api/v5/market/candles?instId=BTC-USDT&bar=1h", "51000"),
        ("/api/v5/market/candles?bar=1H", "50014"),
        ("/api/v5/market/candles?instId=BTC-USD-SWAP", "51000"),
        ("/api/v5/market/candles?instId=BTC-USDT-240329", "51000"),
        ("/api/v5/market/candles?instId=BTC-USDT&after=soon", "51000"),
        ("/api/v5/market/mark-price-candles?instId=BTC-USDT", "51000"),
        (
            "/api/v5/public/funding-rate-history?instId=BTC-USDT",
            "51000",
        ),
    ] {
        let r = get(a, t);
        assert!(r.status >= 400, "{t}: {}", r.status);
        let v = r.json();
        assert_eq!(v["code"], code, "{t}: {v}");
        assert_eq!(v["data"], serde_json::json!([]), "{t}");
    }
    let time = data(&get(a, "/api/v5/public/time").json());
    assert!(time[0]["ts"].as_str().unwrap().parse::<i64>().unwrap() > LISTED);
    // Eight instruments' minutes over a day at once: 40 history pages, paced under the
    // endpoint's 20 requests per 2 s, none refused.
    let day = LISTED + 200 * DAY;
    let handles: Vec<_> = okx::SPOT[..8]
        .iter()
        .map(|inst| {
            let t = format!(
                "/api/crypto/ohlc?exchange=okx&symbol={inst}&timeframe=1m&start={day}&end={}&limit=1440",
                day + DAY
            );
            std::thread::spawn(move || get(a, &t))
        })
        .collect();
    for h in handles {
        let r = h.join().unwrap();
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    assert_eq!(ex.okx_limited(), 0, "paced under OKX's limits");
}

#[test]
fn okx_candle_channels_are_fanned_out_and_their_closed_candles_are_the_exchange_s() {
    let ex = FakeExchange::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let url = ex.url();
    let ws_url = format!("{}/ws/v5", ex.ws_url());
    let srv = spawn(
        &db,
        &[
            "serve",
            "--upstream-okx",
            &url,
            "--upstream-okx-ws",
            &ws_url,
        ],
    );
    let a = srv.addr;
    let inst = "BTC-USDT-SWAP";
    let sub = format!(
        r#"{{"id":"1","op":"subscribe","args":[{{"channel":"candle1m","instId":"{inst}"}}]}}"#
    );
    let mut clients: Vec<Client> = (0..3).map(|_| connect(a, "/ws/v5/business")).collect();
    for ws in &mut clients {
        ws.send(Message::text(sub.clone())).unwrap();
        let reply: Value =
            serde_json::from_str(&text(ws, Duration::from_secs(5)).unwrap()).unwrap();
        assert_eq!(reply["event"], "subscribe", "{reply}");
        assert_eq!(reply["arg"]["instId"], inst);
        assert_eq!(reply["id"], "1");
        ws.send(Message::text("ping")).unwrap();
    }
    let until = Instant::now() + Duration::from_secs(75);
    let mut final_row: Option<Value> = None;
    let mut pongs = 0;
    while final_row.is_none() && Instant::now() < until {
        for ws in &mut clients {
            let Some(t) = text(ws, Duration::from_millis(200)) else {
                continue;
            };
            if t == "pong" {
                pongs += 1;
                continue;
            }
            let v: Value = serde_json::from_str(&t).unwrap();
            assert_eq!(v["arg"]["channel"], "candle1m", "{v}");
            let row = &v["data"][0];
            if row[8] == "1" {
                let t0 = row[0].as_str().unwrap().parse::<i64>().unwrap();
                let want = okx::row(inst, "1m", false, t0, i64::MAX).unwrap();
                assert_eq!(
                    row,
                    &serde_json::json!(want),
                    "the final candle is the exchange's"
                );
                final_row = Some(row.clone());
            }
        }
    }
    assert_eq!(pongs, 3, "each ping answered");
    let final_row = final_row.expect("a candle closed within 75 s");
    assert_eq!(
        ex.ws_subscribes()
            .iter()
            .filter(|t| **t == format!("candle1m:{inst}"))
            .count(),
        1,
        "one upstream subscription for three clients"
    );
    // Stored as the exchange's final candle, served by the candle route.
    let t0 = final_row[0].as_str().unwrap().parse::<i64>().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let q = format!(
        "/api/v5/market/candles?instId={inst}&bar=1m&after={}&before={}",
        t0 + 1,
        t0 - 1
    );
    assert_eq!(data(&get(a, &q).json()), vec![final_row]);
    // Candle channels on /ws/v5/public are refused as OKX refuses them.
    let mut public = connect(a, "/ws/v5/public");
    public
        .send(Message::text(sub.replace(r#""id":"1","#, "")))
        .unwrap();
    let v: Value =
        serde_json::from_str(&text(&mut public, Duration::from_secs(5)).unwrap()).unwrap();
    assert_eq!(
        (v["event"].as_str(), v["code"].as_str()),
        (Some("error"), Some("60018"))
    );
}

/// The figures of docs/BENCHMARKS.md for OKX: `cargo test --release -p candlecache-tests
/// --test it okx::freshness_figures -- --ignored --nocapture` (OKX_LIVE_SECS a mode,
/// default 180). A client polls `/api/v5/market/candles?instId=BTC-USDT&bar=1m&limit=3`
/// every 100 ms. "Close visible": from a candle's close to the first answer with the
/// exchange's final values and `confirm` "1"; "forming age": how old the forming
/// candle's values were (the fake writes the moment into its volume, to 100 ms).
#[test]
#[ignore = "minutes of polling; run by hand for docs/BENCHMARKS.md"]
fn freshness_figures() {
    let secs: u64 = std::env::var("OKX_LIVE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(180);
    let ex = FakeExchange::start();
    let dir = tempfile::tempdir().unwrap();
    let url = ex.url();
    let ws = format!("{}/ws/v5", ex.ws_url());
    let inst = "BTC-USDT";
    let q = format!("/api/v5/market/candles?instId={inst}&bar=1m&limit=3");
    println!("| OKX edge from | close visible p50 / p99 / max (ms) | candles | forming age p50 / p99 / max (ms) | closed served wrong past the bound | exchange candle requests a minute |\n|---|---|---|---|---|---|");
    for (what, ws_arg, bound) in [
        ("REST only (refresh 1 s)", "off", 3_000),
        ("upstream stream", ws.as_str(), 1_000),
    ] {
        let srv = spawn(
            &dir.path().join(format!("{}.db", ws_arg.len())),
            &["serve", "--upstream-okx", &url, "--upstream-okx-ws", ws_arg],
        );
        let _ = get(srv.addr, &q);
        std::thread::sleep(Duration::from_secs(3));
        let before = history_seen(&ex);
        let until = Instant::now() + Duration::from_secs(secs);
        let mut seen = Vec::new();
        while Instant::now() < until {
            let asked = fake::now_ms();
            let rows = data(&get(srv.addr, &q).json());
            seen.push((asked, fake::now_ms(), rows));
            std::thread::sleep(Duration::from_millis(100));
        }
        let requests = history_seen(&ex) - before;
        let (mut visible, mut age, mut wrong) = (Vec::new(), Vec::new(), 0);
        let mut first_final: std::collections::BTreeMap<i64, i64> = Default::default();
        for (asked, answered, rows) in &seen {
            for r in rows {
                let t: i64 = r[0].as_str().unwrap().parse().unwrap();
                let close = t + 60_000;
                if close <= *asked {
                    let want = serde_json::json!(okx::row(inst, "1m", false, t, i64::MAX).unwrap());
                    if *r == want {
                        first_final.entry(t).or_insert(*answered);
                    } else if asked - close > bound {
                        wrong += 1;
                    }
                } else {
                    let vol: f64 = r[5].as_str().unwrap().parse().unwrap();
                    let as_of = t + ((vol * 10_000.0).round() as i64 - 1) * 100;
                    age.push(asked - as_of);
                }
            }
        }
        let start = seen.first().map_or(0, |s| s.0);
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
