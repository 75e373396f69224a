//! The fake exchange's Bybit v5 side, on the same ports: REST under `/v5/market/` and
//! the public streams at `/v5/public/spot` and `/v5/public/linear`, as Bybit's v5
//! documentation and ccxt 4.5's `bybit.py` describe them:
//! - every answer `{"retCode","retMsg","result","retExtInfo":{},"time"}`, refusals with
//!   HTTP 200 and a non-zero `retCode` (10001 for an unknown symbol or bad parameter);
//! - `kline` / `mark-price-kline`: `start` alone answers from the candle holding it on,
//!   `end` the latest `limit` up to it (at or after `start`), neither the latest;
//!   `list` newest first, strings, the forming candle included, decimals without
//!   trailing zeros; `limit` 1..1000 (default 200);
//! - `funding/history`: every 8 h on the hour; `startTime` alone refused, `endTime` the
//!   latest `limit` (at most 200) up to it;
//! - `instruments-info`, `tickers`, `orderbook`, `risk-limit`, `time`;
//! - streams: `subscribe`/`unsubscribe` (at most 10 topics a request on spot), `ping`
//!   answered `pong`, a push per topic every period with the forming candle and once more
//!   with `confirm: true` and its final values when it closes.
//!
//! Bybit's prices are its own (another formula than the Binance side's), so a test can
//! tell the exchanges' series apart.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{exists, now_ms, State, LISTED, SYMBOLS};

/// Funding every 8 hours, on the hour.
pub(crate) const FUNDING_EVERY: i64 = 8 * 3_600_000;
const DAY: i64 = 86_400_000;

/// The length of a Bybit interval at `t` (months vary), if Bybit has it.
pub(crate) fn interval_ms(name: &str, t: i64) -> Option<i64> {
    Some(match name {
        "1" | "3" | "5" | "15" | "30" | "60" | "120" | "240" | "360" | "720" => {
            name.parse::<i64>().ok()? * 60_000
        }
        "D" => DAY,
        "W" => 7 * DAY,
        "M" => month_next(month_floor(t)) - month_floor(t),
        _ => return None,
    })
}

/// The open time of the candle of `name` holding `t`: epoch-aligned, Monday weeks,
/// calendar months.
pub(crate) fn floor(name: &str, t: i64) -> i64 {
    match name {
        "W" => t - (t - 4 * DAY).rem_euclid(7 * DAY),
        "M" => month_floor(t),
        _ => {
            let iv = interval_ms(name, t).unwrap_or(60_000);
            t.div_euclid(iv) * iv
        }
    }
}

fn next(name: &str, t: i64) -> i64 {
    t + interval_ms(name, t).unwrap_or(60_000)
}

pub(crate) fn civil(days: i64) -> (i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m)
}

pub(crate) fn days_from_civil(y: i64, m: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn month_floor(t: i64) -> i64 {
    let (y, m) = civil(t.div_euclid(DAY));
    days_from_civil(y, m) * DAY
}

fn month_next(t: i64) -> i64 {
    let (y, m) = civil(t.div_euclid(DAY));
    let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    days_from_civil(y, m) * DAY
}

/// A decimal of `m` units of 10^-`places`, as Bybit prints it: no trailing zeros.
fn dec(m: i64, places: u32) -> String {
    let p = 10_i64.pow(places);
    let s = format!("{}.{:0w$}", m / p, m % p, w = places as usize);
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn index(symbol: &str) -> i64 {
    SYMBOLS.iter().position(|s| *s == symbol).unwrap_or(0) as i64
}

/// Whether Bybit has the candle of `name` opening at `t`: from the listing on, up to
/// now, with the Binance side's holes on the minute grid.
fn has(name: &str, t: i64, now: i64) -> bool {
    let iv = interval_ms(name, t).unwrap_or(60_000);
    if name == "W" || name == "M" {
        return next(name, t) > LISTED && t <= now;
    }
    exists(iv, t, now)
}

/// The row of `symbol`'s candle of `name` opening at `t` in `category` (`mark`: the
/// mark price's five fields), as Bybit writes it; the forming one depends on `now`.
pub(crate) fn row(
    symbol: &str,
    linear: bool,
    mark: bool,
    name: &str,
    t: i64,
    now: i64,
) -> Vec<String> {
    let iv = interval_ms(name, t).unwrap_or(60_000);
    let k = t / 60_000;
    let n = index(symbol) + if linear { 11 } else { 0 };
    // Cents; 1 place more on the mark price.
    let open = 3_000_000 / (n + 1) + (k * 577) % 800_000;
    let forming = t + iv > now;
    let close = if forming {
        open + (now - t) / 250
    } else {
        open + (k * 23) % 30_000 - 15_000
    };
    let high = open.max(close) + k % 3_000;
    let low = (open.min(close) - k % 2_500).max(1);
    if mark {
        let p = |v: i64| dec(v * 10 + k % 7, 3);
        return vec![t.to_string(), p(open), p(high), p(low), p(close)];
    }
    let volume = if forming {
        (now - t) / 10 + 1
    } else {
        10_000 + (k * 7) % 500_000
    };
    let turnover = volume * (open / 100);
    vec![
        t.to_string(),
        dec(open, 2),
        dec(high, 2),
        dec(low, 2),
        dec(close, 2),
        dec(volume, 3),
        dec(turnover, 3),
    ]
}

fn num(q: &HashMap<String, String>, k: &str) -> Option<i64> {
    q.get(k).and_then(|v| v.parse().ok())
}

/// The open times Bybit answers a kline query with, newest first.
pub(crate) fn kline_times(name: &str, q: &HashMap<String, String>, now: i64) -> Vec<i64> {
    let limit = num(q, "limit").unwrap_or(200).clamp(1, 1000) as usize;
    let start = num(q, "start");
    let mut out = Vec::new();
    match (start, num(q, "end")) {
        (Some(s), None) => {
            let mut t = floor(name, s.max(LISTED));
            while t <= now && out.len() < limit {
                if has(name, t, now) {
                    out.push(t);
                }
                t = next(name, t);
            }
            out.reverse();
        }
        (s, e) => {
            let lo = floor(name, s.unwrap_or(LISTED).max(LISTED - 40 * DAY));
            let mut t = floor(name, e.unwrap_or(now).min(now));
            while t >= lo && out.len() < limit {
                if has(name, t, now) {
                    out.push(t);
                }
                t = floor(name, t - 1);
            }
        }
    }
    out
}

fn envelope(result: &str, now: i64) -> String {
    format!(r#"{{"retCode":0,"retMsg":"OK","result":{result},"retExtInfo":{{}},"time":{now}}}"#)
}

/// A refusal as Bybit writes it (HTTP 200).
pub(crate) fn refusal(code: i64, msg: &str, now: i64) -> String {
    format!(r#"{{"retCode":{code},"retMsg":"{msg}","result":{{}},"retExtInfo":{{}},"time":{now}}}"#)
}

/// The kline (or mark-price kline) body for `q`.
pub(crate) fn klines(q: &HashMap<String, String>, mark: bool, now: i64) -> String {
    let category = q.get("category").map_or("linear", String::as_str);
    let symbol = q.get("symbol").map_or("", String::as_str);
    let name = q.get("interval").map_or("", String::as_str);
    if !matches!(category, "spot" | "linear") || (mark && category != "linear") {
        return refusal(10001, "Illegal category", now);
    }
    if !SYMBOLS.contains(&symbol) {
        return refusal(10001, "Not supported symbols", now);
    }
    if interval_ms(name, now).is_none() {
        return refusal(10001, "Invalid period!", now);
    }
    let linear = category == "linear";
    let rows: Vec<String> = kline_times(name, q, now)
        .into_iter()
        .map(|t| {
            let r = row(symbol, linear, mark, name, t, now);
            format!(
                "[{}]",
                r.iter()
                    .map(|f| format!("\"{f}\""))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        })
        .collect();
    envelope(
        &format!(
            r#"{{"symbol":"{symbol}","category":"{category}","list":[{}]}}"#,
            rows.join(",")
        ),
        now,
    )
}

/// The funding event `k` (every 8 h from the listing): time and rate.
pub(crate) fn funding_event(symbol: &str, k: i64) -> (i64, String) {
    let r = (k * 41 + index(symbol) * 13) % 180 - 50;
    let rate = if r < 0 {
        format!("-0.{:06}", -r)
    } else {
        format!("0.{r:06}")
    };
    (LISTED + k * FUNDING_EVERY, rate)
}

/// The funding history body for `q`.
pub(crate) fn funding(q: &HashMap<String, String>, now: i64) -> String {
    let symbol = q.get("symbol").map_or("", String::as_str);
    if q.get("category").map(String::as_str) != Some("linear") {
        return refusal(10001, "Illegal category", now);
    }
    if !SYMBOLS.contains(&symbol) {
        return refusal(10001, "Not supported symbols", now);
    }
    let (start, end) = (num(q, "startTime"), num(q, "endTime"));
    if start.is_some() && end.is_none() {
        return refusal(10001, "params error: endTime is required", now);
    }
    let limit = num(q, "limit").unwrap_or(200).clamp(1, 200);
    let end = end.unwrap_or(now).min(now);
    let mut rows = Vec::new();
    let mut k = (end - LISTED).div_euclid(FUNDING_EVERY);
    while k >= 0 && (rows.len() as i64) < limit {
        let (t, rate) = funding_event(symbol, k);
        if start.is_some_and(|s| t < s) {
            break;
        }
        rows.push(format!(
            r#"{{"symbol":"{symbol}","fundingRate":"{rate}","fundingRateTimestamp":"{t}"}}"#
        ));
        k -= 1;
    }
    envelope(
        &format!(r#"{{"category":"linear","list":[{}]}}"#, rows.join(",")),
        now,
    )
}

/// `instruments-info` of `category`, with the fields ccxt's `bybit` parses.
pub(crate) fn instruments(q: &HashMap<String, String>, now: i64) -> String {
    let category = q.get("category").map_or("linear", String::as_str);
    if q.get("status").is_some_and(|s| s == "PreLaunch") {
        return envelope(
            &format!(r#"{{"category":"{category}","list":[],"nextPageCursor":""}}"#),
            now,
        );
    }
    let list: Vec<String> = SYMBOLS
        .iter()
        .map(|s| {
            let base = s.trim_end_matches("USDT");
            match category {
                "spot" => format!(
                    r#"{{"symbol":"{s}","baseCoin":"{base}","quoteCoin":"USDT","innovation":"0","status":"Trading","marginTrading":"none","lotSizeFilter":{{"basePrecision":"0.000001","quotePrecision":"0.00000001","minOrderQty":"0.000048","maxOrderQty":"71.73956243","minOrderAmt":"1","maxOrderAmt":"2000000"}},"priceFilter":{{"tickSize":"0.01"}}}}"#
                ),
                _ => format!(
                    r#"{{"symbol":"{s}","contractType":"LinearPerpetual","status":"Trading","baseCoin":"{base}","quoteCoin":"USDT","launchTime":"{LISTED}","deliveryTime":"0","deliveryFeeRate":"","priceScale":"2","leverageFilter":{{"minLeverage":"1","maxLeverage":"100.00","leverageStep":"0.01"}},"priceFilter":{{"minPrice":"0.10","maxPrice":"199999.80","tickSize":"0.01"}},"lotSizeFilter":{{"maxOrderQty":"100.000","maxMktOrderQty":"100.000","minOrderQty":"0.001","qtyStep":"0.001","postOnlyMaxOrderQty":"1000.000","minNotionalValue":"5"}},"unifiedMarginTrade":true,"fundingInterval":480,"settleCoin":"USDT","copyTrading":"both","upperFundingRate":"0.00375","lowerFundingRate":"-0.00375"}}"#
                ),
            }
        })
        .collect();
    envelope(
        &format!(
            r#"{{"category":"{category}","list":[{}],"nextPageCursor":""}}"#,
            list.join(",")
        ),
        now,
    )
}

/// The answer to `path` (under `/v5/market/`) and `q`: status line and body.
pub(crate) fn answer(path: &str, q: &HashMap<String, String>, now: i64) -> (&'static str, String) {
    let body = match path {
        "/v5/market/kline" => klines(q, false, now),
        "/v5/market/mark-price-kline" => klines(q, true, now),
        "/v5/market/funding/history" => funding(q, now),
        "/v5/market/instruments-info" => instruments(q, now),
        "/v5/market/time" => envelope(
            &format!(
                r#"{{"timeSecond":"{}","timeNano":"{}"}}"#,
                now / 1000,
                now as i128 * 1_000_000
            ),
            now,
        ),
        "/v5/market/tickers" => {
            let symbol = q.get("symbol").map_or(SYMBOLS[0], String::as_str);
            let r = row(symbol, true, false, "1", now / 60_000 * 60_000, now);
            envelope(
                &format!(
                    r#"{{"category":"linear","list":[{{"symbol":"{symbol}","lastPrice":"{}","bid1Price":"{}","ask1Price":"{}","volume24h":"1000","turnover24h":"1000000","fundingRate":"0.0001"}}]}}"#,
                    r[4], r[4], r[4]
                ),
                now,
            )
        }
        "/v5/market/orderbook" => {
            let symbol = q.get("symbol").map_or(SYMBOLS[0], String::as_str);
            envelope(
                &format!(
                    r#"{{"s":"{symbol}","b":[["65000.5","1.2"]],"a":[["65001","0.8"]],"ts":{now},"u":1,"seq":1,"cts":{now}}}"#
                ),
                now,
            )
        }
        "/v5/market/risk-limit" => envelope(
            r#"{"category":"linear","list":[{"id":1,"symbol":"BTCUSDT","riskLimitValue":"2000000","maintenanceMargin":"0.005","initialMargin":"0.01","isLowestRisk":1,"maxLeverage":"100.00","mmDeduction":""}],"nextPageCursor":""}"#,
            now,
        ),
        _ => {
            return (
                "404 Not Found",
                r#"{"retCode":10017,"retMsg":"route not found"}"#.to_owned(),
            )
        }
    };
    ("200 OK", body)
}

/// The push of `topic`'s candle opening at `t`, as Bybit sends it.
pub(crate) fn push(topic: &str, linear: bool, t: i64, now: i64) -> String {
    let mut parts = topic.splitn(3, '.');
    let (_, name, symbol) = (
        parts.next(),
        parts.next().unwrap_or("1"),
        parts.next().unwrap_or(""),
    );
    let iv = interval_ms(name, t).unwrap_or(60_000);
    let r = row(symbol, linear, false, name, t, now);
    let confirm = t + iv <= now;
    serde_json::json!({
        "topic": topic,
        "data": [{
            "start": t, "end": t + iv - 1, "interval": name,
            "open": r[1], "close": r[4], "high": r[2], "low": r[3],
            "volume": r[5], "turnover": r[6], "confirm": confirm, "timestamp": now
        }],
        "ts": now,
        "type": "snapshot"
    })
    .to_string()
}

/// One Bybit stream connection on `ws` (`linear`: `/v5/public/linear`).
pub(super) fn serve_ws(
    mut ws: tungstenite::WebSocket<std::net::TcpStream>,
    s: &State,
    linear: bool,
) {
    use std::sync::atomic::Ordering;
    use tungstenite::Message;
    let period = match s.ws_period_ms.load(Ordering::SeqCst) {
        0 => 250,
        ms => ms,
    };
    let _ = ws
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis((period / 50).clamp(1, 5))));
    // Topic -> (open time of the last candle sent, when the next push is due).
    let mut subs: HashMap<String, (Option<i64>, Instant)> = HashMap::new();
    loop {
        if s.stop.load(Ordering::SeqCst) {
            return;
        }
        match ws.read() {
            Ok(Message::Text(t)) => {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(t.as_str()) else {
                    continue;
                };
                let op = v["op"].as_str().unwrap_or_default().to_owned();
                let args: Vec<String> = v["args"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|p| p.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                let reply = |ok: bool, msg: &str| {
                    let mut r = serde_json::json!({"success": ok, "ret_msg": msg, "conn_id": "fake", "op": op});
                    if let Some(id) = v.get("req_id") {
                        r["req_id"] = id.clone();
                    }
                    r.to_string()
                };
                let text = match op.as_str() {
                    "ping" => {
                        s.ws_pings.fetch_add(1, Ordering::SeqCst);
                        reply(true, "pong")
                    }
                    "subscribe" if !linear && args.len() > 10 => reply(false, "args size >10"),
                    "subscribe" => {
                        for a in args {
                            s.ws_subscribes.lock().unwrap().push(a.clone());
                            let due = Instant::now()
                                + Duration::from_millis((subs.len() as u64 * 7919) % period);
                            subs.entry(a).or_insert((None, due));
                        }
                        reply(true, "subscribe")
                    }
                    "unsubscribe" => {
                        for a in args {
                            s.ws_unsubscribes.lock().unwrap().push(a.clone());
                            subs.remove(&a);
                        }
                        reply(true, "unsubscribe")
                    }
                    _ => reply(false, "error:unknown op"),
                };
                if ws.send(Message::text(text)).is_err() {
                    return;
                }
            }
            Ok(Message::Close(_)) => return,
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
        let tick = Instant::now();
        let now = now_ms();
        for (topic, (last, due)) in subs.iter_mut() {
            if tick < *due {
                continue;
            }
            *due = tick + Duration::from_millis(period);
            let name = topic.split('.').nth(1).unwrap_or("1").to_owned();
            let open = floor(&name, now);
            let mut frames = Vec::new();
            if let Some(prev) = *last {
                let mut t = prev;
                while t < open {
                    if has(&name, t, now) {
                        frames.push(push(topic, linear, t, now));
                    }
                    t = next(&name, t);
                }
            }
            if has(&name, open, now) {
                frames.push(push(topic, linear, open, now));
            }
            *last = Some(open);
            for f in frames {
                if ws.send(Message::text(f)).is_err() {
                    return;
                }
            }
        }
    }
}
