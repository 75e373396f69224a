//! The fake exchange's OKX v5 side, on the same ports: REST under `/api/v5/` and the
//! candle channels at `/ws/v5/business`, as ccxt 4.5's `okx.py` / `pro/okx.py`,
//! freqtrade's `exchange/okx.py` and OKX's v5 documentation describe them:
//! - every answer `{"code":"0","msg":"","data":[...]}`, refusals `{"code":"51001",...}`
//!   (no such instrument), `51000` (a parameter), and HTTP 429 `50011` beyond an
//!   endpoint's limit (candles 40 per 2 s, history and mark candles 20, funding 10);
//! - candles: `after` older than, `before` newer than (exclusive), the newest `limit`
//!   between them (`before` alone: the latest), newest first, 9 strings with `confirm`;
//!   `candles` reaches only the latest 1,440 candles, `history-candles` everything;
//!   `limit` default 100, at most 300 (mark 100); mark rows are 6 strings;
//! - bars `1m` … `4H`, and from `6H` on both clocks: Hong Kong time (UTC+8) without a
//!   suffix, UTC with `utc`. Every bar is the sum of the minute candles inside it (the
//!   minutes have holes, as the Binance side's);
//! - `funding-rate-history` every 8 h, same cursors; `instruments`, `time`, tickers;
//! - streams: `/ws/v5/business` subscribe/unsubscribe events per channel, text `ping`
//!   answered `pong`, a push per channel every period with the forming candle and once
//!   more with `confirm` "1" and its final values when it closes; `/ws/v5/public`
//!   refuses candle channels with 60018.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::bybit::{civil, days_from_civil};
use super::{now_ms, State, LISTED};

const MIN: i64 = 60_000;
const DAY: i64 = 86_400_000;
const HK: i64 = 8 * 3_600_000;
/// Funding every 8 hours, on the hour.
pub(crate) const FUNDING_EVERY: i64 = 8 * 3_600_000;

/// The instruments it lists (spot; each also as `-SWAP`): 45, a freqtrade fleet's
/// whitelist.
pub(crate) const SPOT: [&str; 45] = [
    "BTC-USDT",
    "ETH-USDT",
    "BNB-USDT",
    "XRP-USDT",
    "ADA-USDT",
    "SOL-USDT",
    "DOGE-USDT",
    "LTC-USDT",
    "DOT-USDT",
    "AVAX-USDT",
    "LINK-USDT",
    "TRX-USDT",
    "MATIC-USDT",
    "ATOM-USDT",
    "UNI-USDT",
    "ETC-USDT",
    "XLM-USDT",
    "BCH-USDT",
    "FIL-USDT",
    "APT-USDT",
    "ARB-USDT",
    "OP-USDT",
    "NEAR-USDT",
    "ICP-USDT",
    "SUI-USDT",
    "INJ-USDT",
    "AAVE-USDT",
    "MKR-USDT",
    "SAND-USDT",
    "MANA-USDT",
    "AXS-USDT",
    "CRV-USDT",
    "LDO-USDT",
    "GRT-USDT",
    "EGLD-USDT",
    "ALGO-USDT",
    "XTZ-USDT",
    "THETA-USDT",
    "EOS-USDT",
    "FLOW-USDT",
    "CHZ-USDT",
    "KSM-USDT",
    "ZIL-USDT",
    "ENS-USDT",
    "IMX-USDT",
];

#[derive(Clone, Copy, PartialEq)]
enum Span {
    Min(i64),
    Day(i64),
    Week,
    Month(i64),
}

/// A bar name's span and whether it opens on Hong Kong time.
fn bar(name: &str) -> Option<(Span, bool)> {
    let (core, utc) = match name.strip_suffix("utc") {
        Some(c) => (c, true),
        None => (name, false),
    };
    let span = match core {
        "1m" => Span::Min(1),
        "3m" => Span::Min(3),
        "5m" => Span::Min(5),
        "15m" => Span::Min(15),
        "30m" => Span::Min(30),
        "1H" => Span::Min(60),
        "2H" => Span::Min(120),
        "4H" => Span::Min(240),
        "6H" => Span::Min(360),
        "12H" => Span::Min(720),
        "1D" => Span::Day(1),
        "2D" => Span::Day(2),
        "3D" => Span::Day(3),
        "1W" => Span::Week,
        "1M" => Span::Month(1),
        "3M" => Span::Month(3),
        _ => return None,
    };
    let long = !matches!(span, Span::Min(n) if n < 360);
    if utc && !long {
        return None;
    }
    Some((span, long && !utc))
}

fn month_floor(local: i64, months: i64) -> i64 {
    let (y, m) = civil(local.div_euclid(DAY));
    let m = m - (m - 1) % months;
    days_from_civil(y, m) * DAY
}

/// The open time of the bar holding `t`.
pub(crate) fn floor(name: &str, t: i64) -> i64 {
    let (span, hk) = bar(name).unwrap_or((Span::Min(1), false));
    let off = if hk { HK } else { 0 };
    let local = t + off;
    let open = match span {
        Span::Min(n) => local - local.rem_euclid(n * MIN),
        Span::Day(n) => local - local.rem_euclid(n * DAY),
        Span::Week => local - (local - 4 * DAY).rem_euclid(7 * DAY),
        Span::Month(n) => month_floor(local, n),
    };
    open - off
}

/// The open time of the bar after the one opening at `t`.
pub(crate) fn next(name: &str, t: i64) -> i64 {
    let (span, hk) = bar(name).unwrap_or((Span::Min(1), false));
    let off = if hk { HK } else { 0 };
    match span {
        Span::Min(n) => t + n * MIN,
        Span::Day(n) => t + n * DAY,
        Span::Week => t + 7 * DAY,
        Span::Month(n) => {
            let (y, m) = civil((t + off).div_euclid(DAY));
            let (y, m) = if m + n > 12 {
                (y + 1, m + n - 12)
            } else {
                (y, m + n)
            };
            days_from_civil(y, m) * DAY - off
        }
    }
}

/// A decimal of `m` units of 10^-`places`, as OKX prints it: no trailing zeros.
fn dec(m: i64, places: u32) -> String {
    let p = 10_i64.pow(places);
    let s = format!("{}.{:0w$}", m / p, m % p, w = places as usize);
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn index(inst: &str) -> i64 {
    let spot = inst.trim_end_matches("-SWAP");
    SPOT.iter().position(|s| *s == spot).unwrap_or(0) as i64
}

/// Whether the instrument is listed (spot, or its USDT swap).
pub(crate) fn listed(inst: &str) -> bool {
    SPOT.contains(&inst.trim_end_matches("-SWAP")) && inst.matches('-').count() <= 2
}

/// One minute: open, high, low, close (tenths), volume units, currency-volume units,
/// quote units. Spot: base volume at 4 places, volCcy = volCcyQuote (quote) at 5; swap:
/// whole contracts of 0.01 base, volCcy at 2 places, volCcyQuote at 3. None: a hole.
fn minute(inst: &str, t: i64, now: i64) -> Option<[i64; 7]> {
    let k = t / MIN;
    if t < LISTED || t > now || k % 97 == 5 {
        return None;
    }
    let swap = inst.ends_with("-SWAP");
    let n = index(inst) + if swap { 11 } else { 0 };
    let open = 300_000 / (n + 1) + (k * 577) % 80_000 + 1_000;
    let close = if t + MIN > now {
        open + (now - t) / 1_000
    } else {
        open + (k * 23) % 3_000 - 1_500
    };
    let high = open.max(close) + k % 300;
    let low = (open.min(close) - k % 250).max(1);
    let units = if t + MIN > now {
        (now - t) / 100 + 1
    } else {
        1 + (k * 7) % 5_000
    };
    let (vol, ccy, quote) = if swap {
        (units, units, units * open)
    } else {
        (units, units * open, units * open)
    };
    Some([open, high, low, close, vol, ccy, quote])
}

/// The bar of `name` opening at `t`, summed from its minutes, and whether it is closed.
fn candle(inst: &str, name: &str, t: i64, now: i64) -> Option<([i64; 7], bool)> {
    let end = next(name, t);
    let mut acc: Option<[i64; 7]> = None;
    let mut m = t;
    while m < end.min(now.saturating_add(1)) {
        if let Some(r) = minute(inst, m, now) {
            acc = Some(match acc {
                None => r,
                Some(a) => [
                    a[0],
                    a[1].max(r[1]),
                    a[2].min(r[2]),
                    r[3],
                    a[4] + r[4],
                    a[5] + r[5],
                    a[6] + r[6],
                ],
            });
        }
        m += MIN;
    }
    acc.map(|a| (a, end <= now))
}

/// A row as OKX writes it (`mark`: the mark price's 6 fields).
pub(crate) fn row(inst: &str, name: &str, mark: bool, t: i64, now: i64) -> Option<Vec<String>> {
    let (c, closed) = candle(inst, name, t, now)?;
    let confirm = if closed { "1" } else { "0" }.to_owned();
    let swap = inst.ends_with("-SWAP");
    if mark {
        let p = |v: i64| dec(v * 10 + (t / MIN) % 7, 2);
        return Some(vec![
            t.to_string(),
            p(c[0]),
            p(c[1]),
            p(c[2]),
            p(c[3]),
            confirm,
        ]);
    }
    let p = |v: i64| dec(v, 1);
    let (vol, ccy, quote) = if swap {
        (dec(c[4], 0), dec(c[5], 2), dec(c[6], 3))
    } else {
        (dec(c[4], 4), dec(c[5], 5), dec(c[6], 5))
    };
    Some(vec![
        t.to_string(),
        p(c[0]),
        p(c[1]),
        p(c[2]),
        p(c[3]),
        vol,
        ccy,
        quote,
        confirm,
    ])
}

fn num(q: &HashMap<String, String>, k: &str) -> Result<Option<i64>, ()> {
    match q.get(k) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| ()),
    }
}

fn ok(data: &str) -> String {
    format!(r#"{{"code":"0","msg":"","data":{data}}}"#)
}

/// A refusal as OKX writes it.
pub(crate) fn refusal(code: &str, msg: &str) -> String {
    format!(r#"{{"code":"{code}","msg":"{msg}","data":[]}}"#)
}

/// The open times between the cursors, newest first: the newest `limit` at or before
/// now, newer than `before` and older than `after`; `recent`: only the latest 1,440.
pub(crate) fn times(
    inst: &str,
    name: &str,
    (after, before): (Option<i64>, Option<i64>),
    limit: usize,
    recent: bool,
    now: i64,
) -> Vec<i64> {
    let newest = floor(name, now);
    let oldest = if recent {
        let mut t = newest;
        for _ in 0..1_439 {
            t = floor(name, t - 1);
        }
        t
    } else {
        floor(name, LISTED)
    };
    let mut t = match after {
        Some(a) => floor(name, a.min(now + 1) - 1),
        None => newest,
    };
    let mut out = Vec::new();
    while t >= oldest && out.len() < limit && before.is_none_or(|b| t > b) {
        if candle(inst, name, t, now).is_some() {
            out.push(t);
        }
        t = floor(name, t - 1);
    }
    out
}

pub(crate) fn candles(path: &str, q: &HashMap<String, String>, now: i64) -> (&'static str, String) {
    let mark = path.contains("mark-price");
    let recent = !path.contains("history");
    let inst = q.get("instId").map_or("", String::as_str);
    if inst.is_empty() {
        return (
            "400 Bad Request",
            refusal("50014", "Parameter instId can not be empty"),
        );
    }
    if !listed(inst) || (mark && !inst.ends_with("-SWAP")) {
        return ("200 OK", refusal("51001", "Instrument ID does not exist"));
    }
    let name = q.get("bar").map_or("1m", String::as_str);
    if bar(name).is_none() {
        return ("400 Bad Request", refusal("51000", "Parameter bar error"));
    }
    let max = if mark { 100 } else { 300 };
    let Ok(limit) = num(q, "limit") else {
        return ("400 Bad Request", refusal("51000", "Parameter limit error"));
    };
    let limit = limit.unwrap_or(100).clamp(1, max) as usize;
    let (Ok(after), Ok(before)) = (num(q, "after"), num(q, "before")) else {
        return ("400 Bad Request", refusal("51000", "Parameter after error"));
    };
    let rows: Vec<String> = times(inst, name, (after, before), limit, recent, now)
        .into_iter()
        .filter_map(|t| row(inst, name, mark, t, now))
        .map(|r| serde_json::to_string(&r).unwrap())
        .collect();
    ("200 OK", ok(&format!("[{}]", rows.join(","))))
}

/// The funding event `k` (every 8 h from the listing): time, rate and realized rate.
pub(crate) fn funding_event(inst: &str, k: i64) -> (i64, String, String) {
    let r = (k * 41 + index(inst) * 13) % 180 - 50;
    let rate = if r < 0 {
        format!("-0.{:06}", -r)
    } else {
        format!("0.{r:06}")
    };
    let realized = format!("{rate}1");
    (LISTED + k * FUNDING_EVERY, rate, realized)
}

pub(crate) fn funding(q: &HashMap<String, String>, now: i64) -> (&'static str, String) {
    let inst = q.get("instId").map_or("", String::as_str);
    if !listed(inst) || !inst.ends_with("-SWAP") {
        return ("200 OK", refusal("51001", "Instrument ID does not exist"));
    }
    let (Ok(after), Ok(before), Ok(limit)) = (num(q, "after"), num(q, "before"), num(q, "limit"))
    else {
        return ("400 Bad Request", refusal("51000", "Parameter after error"));
    };
    let limit = limit.unwrap_or(100).clamp(1, 100) as usize;
    let end = after.map_or(now, |a| (a - 1).min(now));
    let mut k = (end - LISTED).div_euclid(FUNDING_EVERY);
    let mut rows = Vec::new();
    while k >= 0 && rows.len() < limit {
        let (t, rate, realized) = funding_event(inst, k);
        if before.is_some_and(|b| t <= b) {
            break;
        }
        rows.push(format!(
            r#"{{"formulaType":"noRate","fundingRate":"{rate}","fundingTime":"{t}","instId":"{inst}","instType":"SWAP","method":"current_period","realizedRate":"{realized}"}}"#
        ));
        k -= 1;
    }
    ("200 OK", ok(&format!("[{}]", rows.join(","))))
}

fn instruments(q: &HashMap<String, String>) -> (&'static str, String) {
    let kind = q.get("instType").map_or("", String::as_str);
    let data: Vec<String> = match kind {
        "SPOT" => SPOT
            .iter()
            .map(|s| {
                let (b, qt) = s.split_once('-').unwrap();
                format!(
                    r#"{{"instType":"SPOT","instId":"{s}","uly":"","instFamily":"","baseCcy":"{b}","quoteCcy":"{qt}","settleCcy":"","ctVal":"","ctMult":"","ctValCcy":"","listTime":"{LISTED}","expTime":"","lever":"10","tickSz":"0.1","lotSz":"0.0001","minSz":"0.0001","ctType":"","state":"live","maxMktSz":"1000000"}}"#
                )
            })
            .collect(),
        "SWAP" => SPOT
            .iter()
            .map(|s| {
                let (b, _) = s.split_once('-').unwrap();
                format!(
                    r#"{{"instType":"SWAP","instId":"{s}-SWAP","uly":"{s}","instFamily":"{s}","baseCcy":"","quoteCcy":"","settleCcy":"USDT","ctVal":"0.01","ctMult":"1","ctValCcy":"{b}","listTime":"{LISTED}","expTime":"","lever":"100","tickSz":"0.1","lotSz":"1","minSz":"1","ctType":"linear","state":"live","maxMktSz":"10000"}}"#
                )
            })
            .collect(),
        "FUTURES" | "OPTION" | "MARGIN" => Vec::new(),
        _ => return ("400 Bad Request", refusal("51000", "Parameter instType error")),
    };
    ("200 OK", ok(&format!("[{}]", data.join(","))))
}

/// The requests each endpoint allows per 2 s.
fn allowed(path: &str) -> usize {
    match path.rsplit('/').next().unwrap_or("") {
        "candles" => 40,
        "funding-rate-history" => 10,
        _ => 20,
    }
}

/// The answer to `path` (under `/api/v5/`) and `q`: status line and body. Requests
/// beyond an endpoint's limit are refused with 429 / 50011 and counted.
pub(super) fn answer(
    s: &State,
    path: &str,
    q: &HashMap<String, String>,
    now: i64,
) -> (&'static str, String) {
    {
        let mut sent = s.okx_sent.lock().unwrap();
        let log = sent.entry(path.to_owned()).or_default();
        while log.front().is_some_and(|t| *t <= now - 2_000) {
            log.pop_front();
        }
        if log.len() >= allowed(path) {
            s.okx_limited.fetch_add(1, Ordering::SeqCst);
            return (
                "429 Too Many Requests",
                refusal("50011", "Too Many Requests"),
            );
        }
        log.push_back(now);
    }
    match path {
        "/api/v5/market/candles"
        | "/api/v5/market/history-candles"
        | "/api/v5/market/mark-price-candles"
        | "/api/v5/market/history-mark-price-candles" => candles(path, q, now),
        "/api/v5/public/funding-rate-history" => funding(q, now),
        "/api/v5/public/instruments" => instruments(q),
        "/api/v5/public/time" => ("200 OK", ok(&format!(r#"[{{"ts":"{now}"}}]"#))),
        "/api/v5/market/ticker" | "/api/v5/market/tickers" => {
            let inst = q.get("instId").map_or(SPOT[0], String::as_str);
            let r = row(inst, "1m", false, floor("1m", now), now).unwrap_or_default();
            let last = r.get(4).cloned().unwrap_or_default();
            (
                "200 OK",
                ok(&format!(
                    r#"[{{"instType":"SPOT","instId":"{inst}","last":"{last}","lastSz":"1","askPx":"{last}","askSz":"1","bidPx":"{last}","bidSz":"1","open24h":"{last}","high24h":"{last}","low24h":"{last}","volCcy24h":"1000","vol24h":"10","ts":"{now}","sodUtc0":"{last}","sodUtc8":"{last}"}}]"#
                )),
            )
        }
        "/api/v5/public/funding-rate" => {
            let inst = q.get("instId").map_or("BTC-USDT-SWAP", String::as_str);
            let k = (now - LISTED).div_euclid(FUNDING_EVERY) + 1;
            let (t, rate, _) = funding_event(inst, k);
            (
                "200 OK",
                ok(&format!(
                    r#"[{{"instType":"SWAP","instId":"{inst}","fundingRate":"{rate}","nextFundingRate":"","fundingTime":"{t}","nextFundingTime":"{}","method":"current_period","ts":"{now}"}}]"#,
                    t + FUNDING_EVERY
                )),
            )
        }
        "/api/v5/public/mark-price" => {
            let inst = q.get("instId").map_or("BTC-USDT-SWAP", String::as_str);
            let r = row(inst, "1m", true, floor("1m", now), now).unwrap_or_default();
            let px = r.get(4).cloned().unwrap_or_default();
            (
                "200 OK",
                ok(&format!(
                    r#"[{{"instType":"SWAP","instId":"{inst}","markPx":"{px}","ts":"{now}"}}]"#
                )),
            )
        }
        "/api/v5/public/position-tiers" => {
            let family = q
                .get("instFamily")
                .or(q.get("uly"))
                .map_or("BTC-USDT", String::as_str);
            (
                "200 OK",
                ok(&format!(
                    r#"[{{"baseMaxLoan":"","imr":"0.01","instFamily":"{family}","instId":"","maxLever":"100","maxSz":"500","minSz":"0","mmr":"0.004","optMgnFactor":"0","quoteMaxLoan":"","tier":"1","uly":"{family}"}}]"#
                )),
            )
        }
        "/api/v5/market/books" => (
            "200 OK",
            ok(&format!(
                r#"[{{"asks":[["41006.8","0.6","0","1"]],"bids":[["41006.3","0.3","0","1"]],"ts":"{now}"}}]"#
            )),
        ),
        _ => ("404 Not Found", refusal("51000", "Not Found")),
    }
}

/// The push of `channel`'s candle of `inst` opening at `t`, as OKX sends it.
pub(crate) fn push(channel: &str, inst: &str, t: i64, now: i64) -> Option<String> {
    let (mark, name) = match channel.strip_prefix("mark-price-candle") {
        Some(n) => (true, n),
        None => (false, channel.strip_prefix("candle")?),
    };
    let r = row(inst, name, mark, t, now)?;
    Some(serde_json::json!({"arg": {"channel": channel, "instId": inst}, "data": [r]}).to_string())
}

/// One OKX stream connection on `ws` (`public`: `/ws/v5/public`).
pub(super) fn serve_ws(
    mut ws: tungstenite::WebSocket<std::net::TcpStream>,
    s: &State,
    public: bool,
) {
    use tungstenite::Message;
    let period = match s.ws_period_ms.load(Ordering::SeqCst) {
        0 => 250,
        ms => ms,
    };
    let _ = ws
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis((period / 50).clamp(1, 5))));
    // (channel, instId) -> (open time of the last candle sent, when the next push is due).
    let mut subs: HashMap<(String, String), (Option<i64>, Instant)> = HashMap::new();
    loop {
        if s.stop.load(Ordering::SeqCst) {
            return;
        }
        match ws.read() {
            Ok(Message::Text(t)) if t.as_str() == "ping" => {
                s.ws_pings.fetch_add(1, Ordering::SeqCst);
                if ws.send(Message::text("pong")).is_err() {
                    return;
                }
            }
            Ok(Message::Text(t)) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                let op = v["op"].as_str().unwrap_or_default().to_owned();
                let mut replies = Vec::new();
                for a in v["args"].as_array().cloned().unwrap_or_default() {
                    let channel = a["channel"].as_str().unwrap_or_default().to_owned();
                    let inst = a["instId"].as_str().unwrap_or_default().to_owned();
                    let name = channel
                        .strip_prefix("mark-price-candle")
                        .or_else(|| channel.strip_prefix("candle"));
                    if public || name.and_then(bar).is_none() || !listed(&inst) {
                        replies.push(format!(
                            r#"{{"event":"error","code":"60018","msg":"Wrong URL or channel:{channel},instId:{inst} doesn't exist.","connId":"fake"}}"#
                        ));
                        continue;
                    }
                    if op == "subscribe" {
                        s.ws_subscribes
                            .lock()
                            .unwrap()
                            .push(format!("{channel}:{inst}"));
                        let due = Instant::now()
                            + Duration::from_millis((subs.len() as u64 * 7919) % period);
                        subs.entry((channel.clone(), inst.clone()))
                            .or_insert((None, due));
                    } else {
                        s.ws_unsubscribes
                            .lock()
                            .unwrap()
                            .push(format!("{channel}:{inst}"));
                        subs.remove(&(channel.clone(), inst.clone()));
                    }
                    replies.push(
                        serde_json::json!({"event": op, "arg": a, "connId": "fake"}).to_string(),
                    );
                }
                for r in replies {
                    if ws.send(Message::text(r)).is_err() {
                        return;
                    }
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
        for ((channel, inst), (last, due)) in subs.iter_mut() {
            if tick < *due {
                continue;
            }
            *due = tick + Duration::from_millis(period);
            let name = channel
                .trim_start_matches("mark-price-candle")
                .trim_start_matches("candle")
                .to_owned();
            let open = floor(&name, now);
            let mut frames = Vec::new();
            if let Some(prev) = *last {
                let mut t = prev;
                while t < open {
                    frames.extend(push(channel, inst, t, now));
                    t = next(&name, t);
                }
            }
            frames.extend(push(channel, inst, open, now));
            *last = Some(open);
            for f in frames {
                if ws.send(Message::text(f)).is_err() {
                    return;
                }
            }
        }
    }
}
