//! USD-M futures beside spot through the real binary and a fake exchange: `/fapi/v1`
//! klines, mark-price klines and funding rates answered from the store with Binance's
//! semantics, limits and errors; live data passed through with a short cache; the CLI's
//! `--market`/`--price`; spot and futures of one name kept apart.

use std::collections::HashMap;

use serde_json::Value;

use crate::fake_exchange::{self as fake, FakeExchange, LISTED, SYMBOL};
use crate::http::{get, spawn};
use crate::run;

const HOUR: i64 = 3_600_000;

fn query(pairs: &[(&str, String)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn rows(v: &Value) -> &Vec<Value> {
    v.as_array().unwrap_or_else(|| panic!("not an array: {v}"))
}

/// How many requests the fake saw for `path`.
fn seen(ex: &FakeExchange, path: &str) -> usize {
    ex.others_seen()
        .iter()
        .filter(|t| t.split('?').next() == Some(path))
        .count()
}

#[test]
fn fapi_klines_mark_price_and_funding_equal_the_exchange_and_are_fetched_once() {
    let ex = FakeExchange::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let url = ex.url();
    let srv = spawn(&db, &["serve", "--upstream", &url, "--upstream-ws", "off"]);
    let a = srv.addr;
    let now = fake::now_ms();
    // A closed stretch of 1h candles, with the fake's holes in it.
    let start = LISTED + 30 * 24 * HOUR;
    let end = start + 1600 * HOUR - 1;

    for (path, mark) in [
        ("/fapi/v1/klines", false),
        ("/fapi/v1/markPriceKlines", true),
    ] {
        let target = format!(
            "{path}?symbol={SYMBOL}&interval=1h&startTime={start}&endTime={end}&limit=1500"
        );
        let r = get(a, &target);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let want: Value = serde_json::from_str(&fake::futures::klines(
            &query(&[
                ("symbol", SYMBOL.into()),
                ("interval", "1h".into()),
                ("startTime", start.to_string()),
                ("endTime", end.to_string()),
                ("limit", "1500".into()),
            ]),
            mark,
            now,
        ))
        .unwrap();
        // Every field as the exchange wrote it: prices with the futures' 2 places, volumes
        // with 3, mark prices with 8 and volume "0".
        assert_eq!(r.json(), want, "{path}");
        assert_eq!(rows(&want).len(), 1500, "the futures limit is 1500");
        let again = seen(&ex, path);
        assert_eq!(get(a, &target).json(), want);
        let sub = format!(
            "{path}?symbol={SYMBOL}&interval=1h&startTime={}&limit=10",
            start + 5 * HOUR
        );
        assert_eq!(rows(&get(a, &sub).json()).len(), 10);
        assert_eq!(
            seen(&ex, path),
            again,
            "{path}: covered ranges are not fetched again"
        );
    }
    // The spot series of the same name is another series with other prices.
    let spot = get(
        a,
        &format!("/api/v3/klines?symbol={SYMBOL}&interval=1h&startTime={start}&limit=3"),
    )
    .json();
    let fut = get(
        a,
        &format!("/fapi/v1/klines?symbol={SYMBOL}&interval=1h&startTime={start}&limit=3"),
    )
    .json();
    assert_eq!(rows(&spot)[0][0], rows(&fut)[0][0]);
    assert_ne!(rows(&spot)[0][1], rows(&fut)[0][1]);
    assert_eq!(
        rows(&spot)[0][1].as_str().unwrap(),
        fake::row(HOUR, rows(&spot)[0][0].as_i64().unwrap(), now)
            .split('"')
            .nth(1)
            .unwrap()
    );

    // The latest candles, the forming one last; limit beyond 1500 is 1500.
    let latest = get(
        a,
        &format!("/fapi/v1/klines?symbol={SYMBOL}&interval=1m&limit=3"),
    )
    .json();
    let latest = rows(&latest);
    assert_eq!(latest.len(), 3);
    let last_open = latest[2][0].as_i64().unwrap();
    assert!(
        last_open <= fake::now_ms() && last_open > fake::now_ms() - 2 * 60_000,
        "{last_open}"
    );
    let many = get(
        a,
        &format!("/fapi/v1/klines?symbol={SYMBOL}&interval=1h&startTime={start}&limit=2000"),
    )
    .json();
    assert_eq!(rows(&many).len(), 1500);
    // The listing probe answers from the first candle.
    let probe = get(
        a,
        &format!("/fapi/v1/klines?symbol={SYMBOL}&interval=1d&startTime=0&limit=499"),
    )
    .json();
    assert_eq!(rows(&probe)[0][0], LISTED);

    // Funding: Binance's rows, inclusive range, 1000 at most, the latest without a start.
    let f = get(
        a,
        &format!("/fapi/v1/fundingRate?symbol={SYMBOL}&startTime={LISTED}&limit=1000"),
    );
    assert_eq!(f.status, 200, "{}", String::from_utf8_lossy(&f.body));
    let want: Value = serde_json::from_str(&fake::futures::funding(
        &query(&[
            ("symbol", SYMBOL.into()),
            ("startTime", LISTED.to_string()),
            ("limit", "1000".into()),
        ]),
        fake::now_ms(),
    ))
    .unwrap();
    assert_eq!(f.json(), want);
    assert_eq!(rows(&want).len(), 1000);
    let t5 = rows(&want)[5]["fundingTime"].as_i64().unwrap();
    let t9 = rows(&want)[9]["fundingTime"].as_i64().unwrap();
    let range = get(
        a,
        &format!("/fapi/v1/fundingRate?symbol={SYMBOL}&startTime={t5}&endTime={t9}"),
    )
    .json();
    assert_eq!(rows(&range)[..], rows(&want)[5..=9]);
    let calls = seen(&ex, "/fapi/v1/fundingRate");
    let recent = get(a, "/fapi/v1/fundingRate?symbol=btcusdt&limit=5").json();
    let want_recent: Value = serde_json::from_str(&fake::futures::funding(
        &query(&[("symbol", SYMBOL.into()), ("limit", "5".into())]),
        fake::now_ms(),
    ))
    .unwrap();
    assert_eq!(recent, want_recent);
    let asked: Vec<String> = ex
        .others_seen()
        .into_iter()
        .filter(|t| t.starts_with("/fapi/v1/fundingRate"))
        .collect();
    assert!(
        asked.len() <= calls + 2,
        "only the uncovered tail is asked: {asked:?}"
    );
    let before = seen(&ex, "/fapi/v1/fundingRate");
    assert_eq!(
        get(
            a,
            &format!("/fapi/v1/fundingRate?symbol={SYMBOL}&startTime={t5}&endTime={t9}")
        )
        .json(),
        range
    );
    assert_eq!(
        seen(&ex, "/fapi/v1/fundingRate"),
        before,
        "stored funding is not fetched again"
    );

    // Binance's errors.
    for (target, code) in [
        (
            format!("/fapi/v1/klines?symbol={SYMBOL}&interval=1s"),
            -1120,
        ),
        (
            "/fapi/v1/klines?symbol=NOPEUSDT&interval=1m".to_owned(),
            -1121,
        ),
        (format!("/fapi/v1/klines?symbol={SYMBOL}"), -1102),
        (
            format!("/fapi/v1/klines?symbol={SYMBOL}&interval=1m&limit=0"),
            -1130,
        ),
        (
            format!("/fapi/v1/markPriceKlines?symbol={SYMBOL}&interval=1m&startTime=5&endTime=4"),
            -1023,
        ),
        (
            format!("/fapi/v1/fundingRate?symbol={SYMBOL}&limit=0"),
            -1130,
        ),
        (
            format!("/fapi/v1/fundingRate?symbol={SYMBOL}&startTime=9&endTime=1"),
            -1023,
        ),
        ("/fapi/v1/fundingRate?symbol=BTC%22USDT".to_owned(), -1100),
        ("/fapi/v1/fundingRate?symbol=NOPEUSDT".to_owned(), -1121),
    ] {
        let r = get(a, &target);
        assert_eq!(
            r.status,
            400,
            "{target}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["code"], code, "{target}");
    }

    // Live data: passed through, one upstream request per second however many ask.
    let depth = format!("/fapi/v1/depth?symbol={SYMBOL}&limit=5");
    let before = seen(&ex, "/fapi/v1/depth");
    for _ in 0..5 {
        let r = get(a, &depth);
        assert_eq!(r.status, 200);
        assert!(r.json()["bids"].as_array().is_some_and(|b| !b.is_empty()));
    }
    assert_eq!(seen(&ex, "/fapi/v1/depth"), before + 1);
    for target in [
        format!("/fapi/v1/premiumIndex?symbol={SYMBOL}"),
        "/fapi/v1/premiumIndex".to_owned(),
        "/fapi/v1/ticker/24hr".to_owned(),
        format!("/fapi/v1/ticker/bookTicker?symbol={SYMBOL}"),
        "/fapi/v1/exchangeInfo".to_owned(),
        "/fapi/v1/ping".to_owned(),
    ] {
        let r = get(a, &target);
        assert_eq!(r.status, 200, "{target}");
        r.json();
    }
    assert_eq!(
        get(a, "/fapi/v1/exchangeInfo").json()["symbols"][0]["contractType"],
        "PERPETUAL"
    );
    let t = get(a, "/fapi/v1/time").json()["serverTime"]
        .as_i64()
        .unwrap();
    assert!((t - fake::now_ms()).abs() < 5_000);

    // /api/crypto/ohlc and markets know the market type and price kind.
    let ohlc = |extra: &str| {
        get(
            a,
            &format!(
                "/api/crypto/ohlc?symbol={SYMBOL}&timeframe=1h&start={start}&end={}{extra}",
                start + 3 * HOUR
            ),
        )
    };
    let fut = ohlc("&market=futures").json();
    assert_eq!(fut["data"]["market"], "futures");
    let want_open: f64 = rows(
        &get(
            a,
            &format!("/fapi/v1/klines?symbol={SYMBOL}&interval=1h&startTime={start}&limit=1"),
        )
        .json(),
    )[0][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(fut["data"]["rows"][0][1].as_f64().unwrap(), want_open);
    let mark = ohlc("&market=futures&price=mark").json();
    assert_eq!(mark["data"]["price"], "mark");
    assert_eq!(mark["data"]["rows"][0][5].as_f64().unwrap(), 0.0);
    for bad in [
        "&price=mark",
        "&market=options",
        "&price=last&market=futures",
    ] {
        let r = ohlc(bad);
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.json()["error"]["code"], "invalid_format");
    }
    let markets = get(a, "/api/crypto/markets").json();
    let kinds: Vec<&str> = markets["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["symbol"] == SYMBOL && m["timeframe"] == "1h")
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["futures", "mark", "spot"]);
    drop(srv);

    // A restart keeps it all: nothing closed is asked again.
    let srv = spawn(&db, &["serve", "--upstream", &url, "--upstream-ws", "off"]);
    let before = (
        seen(&ex, "/fapi/v1/fundingRate"),
        seen(&ex, "/fapi/v1/markPriceKlines"),
    );
    assert_eq!(
        get(
            srv.addr,
            &format!("/fapi/v1/fundingRate?symbol={SYMBOL}&startTime={t5}&endTime={t9}")
        )
        .json(),
        range
    );
    let target = format!("/fapi/v1/markPriceKlines?symbol={SYMBOL}&interval=1h&startTime={start}&endTime={end}&limit=1500");
    assert_eq!(rows(&get(srv.addr, &target).json()).len(), 1500);
    assert_eq!(
        before,
        (
            seen(&ex, "/fapi/v1/fundingRate"),
            seen(&ex, "/fapi/v1/markPriceKlines")
        )
    );
}

#[test]
fn the_cli_fetches_imports_and_exports_futures_apart_from_spot() {
    let ex = FakeExchange::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let url = ex.url();
    let start = LISTED + 3 * 24 * HOUR;
    let end = start + 200 * HOUR;
    let (s, e) = (start.to_string(), end.to_string());
    for price in ["trade", "mark"] {
        let (st, out, err) = run(
            &db,
            &[
                "fetch",
                "--symbol",
                SYMBOL,
                "--timeframe",
                "1h",
                "--start",
                &s,
                "--end",
                &e,
                "--market",
                "futures",
                "--price",
                price,
                "--upstream",
                &url,
            ],
        );
        assert!(st.success(), "{out}{err}");
        let (st, csv, err) = run(
            &db,
            &[
                "export",
                "--symbol",
                SYMBOL,
                "--timeframe",
                "1h",
                "--market",
                "futures",
                "--price",
                price,
                "--start",
                &s,
                "--end",
                &e,
                "--format",
                "binance",
                "-",
            ],
        );
        assert!(st.success(), "{err}");
        let now = fake::now_ms();
        let want: Vec<String> = (start..end)
            .step_by(HOUR as usize)
            .filter(|t| fake::exists(HOUR, *t, now))
            .map(|t| {
                fake::futures::row(SYMBOL, price == "mark", HOUR, t, now)
                    .trim_matches(['[', ']'])
                    .replace('"', "")
            })
            .collect();
        let got: Vec<&str> = csv.lines().collect();
        let first_diff = got.iter().zip(&want).position(|(g, w)| g != w);
        assert_eq!(
            (got.len(), first_diff),
            (want.len(), None),
            "{price}: {:?}",
            first_diff.map(|i| (got[i], &want[i]))
        );
    }
    // No spot series came of it.
    let (st, _, err) = run(
        &db,
        &[
            "export",
            "--symbol",
            SYMBOL,
            "--timeframe",
            "1h",
            "--format",
            "csv",
            "-",
        ],
    );
    assert!(!st.success());
    assert!(err.contains("BTCUSDT"), "{err}");
    let (st, _, err) = run(
        &db,
        &[
            "fetch",
            "--symbol",
            SYMBOL,
            "--timeframe",
            "1h",
            "--start",
            &s,
            "--price",
            "mark",
            "--upstream",
            &url,
        ],
    );
    assert!(!st.success());
    assert!(err.contains("--market futures"), "{err}");

    // Binance's futures CSVs have a header; imported as futures they stay futures.
    let csv = dir.path().join("ETHUSDT-1h-2024-01.csv");
    std::fs::write(
        &csv,
        "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n\
         1704067200000,2281.87,2290.00,2275.12,2285.50,19736.351,1704070799999,45057313.06,14000,9000.100,20545000.10,0\n\
         1704070800000,2285.50,2299.99,2280.00,2296.10,20736.350,1704074399999,47057313.06,15000,9100.100,20945000.10,0\n",
    )
    .unwrap();
    let (st, out, err) = run(
        &db,
        &["import", csv.to_str().unwrap(), "--market", "futures"],
    );
    assert!(st.success(), "{out}{err}");
    let (st, out, _) = run(&db, &["markets"]);
    assert!(st.success());
    let eth: Vec<&str> = out.lines().filter(|l| l.starts_with("ETHUSDT")).collect();
    assert_eq!(eth.len(), 1, "{out}");
    assert!(eth[0].contains("futures"), "{out}");
    let srv = spawn(&db, &["serve"]);
    let r = get(
        srv.addr,
        "/fapi/v1/klines?symbol=ETHUSDT&interval=1h&startTime=1704067200000&endTime=1704070800000",
    )
    .json();
    assert_eq!(r[1][4], "2296.10");
    assert_eq!(r[0][5], "19736.351");
    let spot = get(
        srv.addr,
        "/api/v3/klines?symbol=ETHUSDT&interval=1h&startTime=1704067200000",
    );
    assert_eq!(spot.status, 400, "no spot ETHUSDT was imported");
    // Without an upstream exchangeInfo comes from the store, each market its own.
    let info = get(srv.addr, "/fapi/v1/exchangeInfo").json();
    let listed: Vec<&str> = info["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["symbol"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&"ETHUSDT"), "{info}");
    assert_eq!(info["symbols"][0]["contractType"], "PERPETUAL");
    let spot = get(srv.addr, "/api/v3/exchangeInfo").json();
    assert!(
        !spot["symbols"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["symbol"] == "ETHUSDT"),
        "{spot}"
    );
    // Live data needs an upstream: without one it is not here (404), not a failed gateway.
    let r = get(srv.addr, "/fapi/v1/depth?symbol=ETHUSDT");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["code"], -1000);
}
