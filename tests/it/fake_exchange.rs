//! A fake Binance-compatible exchange on a loopback port: deterministic candles with
//! holes (minutes the exchange truly has no candle for), a still-forming last candle that
//! changes with the clock, Binance's klines semantics and row format, and faults injected
//! on demand: 500s, 429 with Retry-After, truncated bodies and duplicated rows.
//!
//! On a second port it speaks Binance's combined WebSocket market streams
//! (`/stream`, SUBSCRIBE/UNSUBSCRIBE/LIST_SUBSCRIPTIONS, `<symbol>@kline_<interval>`):
//! every 250 ms the forming candle of each subscribed stream, and each candle once with
//! `"x":true` and its final values as it closes; with faults: a dropped connection, a
//! stall (socket open, nothing sent), refused connections and malformed frames.

#[path = "fake_bybit.rs"]
pub(crate) mod bybit;
#[path = "fake_okx.rs"]
pub(crate) mod okx;

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A fault applied to the next klines request.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fault {
    /// `500 Internal Server Error`.
    ServerError,
    /// `429` with `Retry-After: secs`.
    RateLimit(u64),
    /// The right head, half the body, then the connection closes.
    Truncate,
    /// Every row sent twice.
    Duplicate,
    /// The right answer, after this many ms.
    Delay(u64),
}

/// One klines request as the exchange saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    /// `/api/v3/klines`, or the `/fapi/v1` call.
    pub(crate) path: String,
    pub(crate) query: HashMap<String, String>,
    /// Epoch ms of arrival.
    pub(crate) at: i64,
}

/// A fault of the stream side, applied by the open connections (the first to look).
#[derive(Debug, Clone, Copy)]
pub(crate) enum WsFault {
    /// The TCP connection is shut down without a close frame.
    Drop,
    /// Nothing is sent or read for this many ms; the socket stays open.
    Stall(u64),
    /// This many copies of the first stream's forming event at once, as fast as the
    /// socket takes them (a burst that outruns a client that does not read).
    Burst(usize),
    /// Garbage text, a binary frame, an event for another symbol, an event for a stream
    /// not subscribed and an out-of-order event, then business as usual.
    Malformed,
}

#[derive(Default)]
struct State {
    faults: Mutex<VecDeque<Fault>>,
    klines: Mutex<Vec<Seen>>,
    other: Mutex<Vec<String>>,
    stop: AtomicBool,
    ws_faults: Mutex<VecDeque<WsFault>>,
    /// Stream connections still to refuse (HTTP 403 before the handshake).
    ws_refuse: AtomicU64,
    ws_connections: AtomicU64,
    ws_open: AtomicU64,
    /// Milliseconds between the forming events of a stream; 0 means 250.
    ws_period_ms: AtomicU64,
    ws_subscribes: Mutex<Vec<String>>,
    ws_unsubscribes: Mutex<Vec<String>>,
    /// Bybit `{"op":"ping"}` messages received.
    ws_pings: AtomicU64,
    /// Answer the next Bybit requests with `retCode` 10006 (too many visits).
    bybit_busy: AtomicU64,
    /// OKX requests per endpoint in the last 2 s, and those refused with 50011.
    okx_sent: Mutex<HashMap<String, VecDeque<i64>>>,
    okx_limited: AtomicU64,
}

/// The symbol the exchange lists.
pub(crate) const SYMBOL: &str = "BTCUSDT";
/// When it was listed: 2024-01-01T00:00:00Z.
pub(crate) const LISTED: i64 = 1_704_067_200_000;
/// Every symbol it lists; the first is the one most tests use.
pub(crate) const SYMBOLS: [&str; 8] = [
    SYMBOL, "ETHUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT", "SOLUSDT", "DOGEUSDT", "LTCUSDT",
];

/// Beyond [`SYMBOLS`], spot symbols `C000USDT` .. `C491USDT` are listed too (500 in all,
/// for fleet-sized loads); exchangeInfo names only the first eight, to stay small.
pub(crate) const MORE_SYMBOLS: usize = 492;

/// The `n`th of every spot symbol listed: [`SYMBOLS`], then the numbered ones.
#[allow(dead_code)] // the fleet bench's; the tests use SYMBOLS
pub(crate) fn symbol_n(n: usize) -> String {
    match SYMBOLS.get(n) {
        Some(s) => (*s).to_owned(),
        None => format!("C{:03}USDT", n - SYMBOLS.len()),
    }
}

/// Whether the spot market lists `symbol`, and its index among the listed ones.
pub(crate) fn spot_index(symbol: &str) -> Option<usize> {
    if let Some(i) = SYMBOLS.iter().position(|s| *s == symbol) {
        return Some(i);
    }
    let n: usize = symbol
        .strip_prefix('C')?
        .strip_suffix("USDT")
        .filter(|d| d.len() == 3)?
        .parse()
        .ok()?;
    (n < MORE_SYMBOLS).then_some(SYMBOLS.len() + n)
}

/// The exchangeInfo body it serves: Binance's shape with the filters clients read.
pub(crate) fn exchange_info() -> String {
    let symbols: Vec<String> = SYMBOLS
        .iter()
        .map(|s| {
            let base = s.trim_end_matches("USDT");
            format!(
                r#"{{"symbol":"{s}","status":"TRADING","baseAsset":"{base}","baseAssetPrecision":8,"quoteAsset":"USDT","quotePrecision":8,"quoteAssetPrecision":8,"orderTypes":["LIMIT","LIMIT_MAKER","MARKET","STOP_LOSS_LIMIT","TAKE_PROFIT_LIMIT"],"icebergAllowed":true,"ocoAllowed":true,"isSpotTradingAllowed":true,"isMarginTradingAllowed":false,"filters":[{{"filterType":"PRICE_FILTER","minPrice":"0.00000001","maxPrice":"1000000.00000000","tickSize":"0.00000001"}},{{"filterType":"LOT_SIZE","minQty":"0.00001000","maxQty":"9000.00000000","stepSize":"0.00001000"}},{{"filterType":"NOTIONAL","minNotional":"5.00000000","applyMinToMarket":true,"maxNotional":"9000000.00000000","applyMaxToMarket":false,"avgPriceMins":5}}],"permissions":[],"permissionSets":[["SPOT"]]}}"#
            )
        })
        .collect();
    format!(
        r#"{{"timezone":"UTC","serverTime":1,"rateLimits":[],"exchangeFilters":[],"symbols":[{}]}}"#,
        symbols.join(",")
    )
}

/// Binance's USD-M futures API (`/fapi/v1`) on the same port, as Binance answers it: the
/// same listing and holes as spot but other prices (2 places, volumes 3), mark-price klines
/// (8 places, volumes "0"), funding every 8 h (a few ms late, as Binance's often are),
/// exchangeInfo, depth, premium index and tickers.
pub(crate) mod futures {
    use super::{dec, interval_ms, now_ms, LISTED, SYMBOLS};
    use std::collections::HashMap;

    /// Funding happens every 8 hours.
    pub(crate) const FUNDING_EVERY: i64 = 8 * 3_600_000;

    fn num(q: &HashMap<String, String>, k: &str) -> Option<i64> {
        q.get(k).and_then(|v| v.parse().ok())
    }

    fn cents(m: i64) -> String {
        format!("{}.{:02}", m / 100, m % 100)
    }

    fn milli(m: i64) -> String {
        format!("{}.{:03}", m / 1000, m % 1000)
    }

    fn index(symbol: &str) -> i64 {
        SYMBOLS.iter().position(|s| *s == symbol).unwrap_or(0) as i64
    }

    /// The futures row of `symbol`'s candle opening at `t` (`mark`: the mark price's).
    pub(crate) fn row(symbol: &str, mark: bool, iv: i64, t: i64, now: i64) -> String {
        let k = t / iv;
        let n = index(symbol);
        let open = 4_000_000 / (n + 1) + (k * 613) % 1_000_000;
        let forming = t + iv > now;
        let close = if forming {
            open + (now - t) / 100
        } else {
            open + (k * 17) % 20_000 - 10_000
        };
        let high = open.max(close) + k % 5_000;
        let low = open.min(close) - k % 4_000;
        if mark {
            // Mark prices carry 8 places; the volume fields are zero, trades counts samples.
            let p = |v: i64| dec(v * 1_000_000 + (k % 97));
            return format!(
                "[{t},\"{}\",\"{}\",\"{}\",\"{}\",\"0\",{},\"0\",{},\"0\",\"0\",\"0\"]",
                p(open),
                p(high),
                p(low.max(1)),
                p(close),
                t + iv - 1,
                (iv / 1000).min(60),
            );
        }
        let volume = if forming {
            (now - t) + 1
        } else {
            50_000 + (k * 11) % 900_000
        };
        let quote = volume * (open / 100) / 1000;
        format!(
            "[{t},\"{}\",\"{}\",\"{}\",\"{}\",\"{}\",{},\"{}\",{},\"{}\",\"{}\",\"0\"]",
            cents(open),
            cents(high),
            cents(low.max(1)),
            cents(close),
            milli(volume),
            t + iv - 1,
            cents(quote * 100),
            k % 1000,
            milli(volume / 2),
            cents(quote * 50),
        )
    }

    /// The klines (or mark-price klines) body for `q`, with the futures limit of 1500.
    pub(crate) fn klines(q: &HashMap<String, String>, mark: bool, now: i64) -> String {
        let iv = interval_ms(q.get("interval").map_or("", String::as_str)).unwrap_or(60_000);
        let symbol = q.get("symbol").map_or(SYMBOLS[0], String::as_str);
        let out: Vec<String> = super::answer_up_to(iv, q, now, 1500)
            .into_iter()
            .map(|t| row(symbol, mark, iv, t, now))
            .collect();
        format!("[{}]", out.join(","))
    }

    /// The funding event `k` (every 8 h from the listing): time (a few ms late), rate, mark.
    pub(crate) fn funding_event(symbol: &str, k: i64) -> (i64, String, String) {
        let t = LISTED + k * FUNDING_EVERY + k % 4;
        let r = (k * 37 + index(symbol) * 11) % 200 - 60;
        let rate = if r < 0 {
            format!("-0.{:08}", -r)
        } else {
            format!("0.{r:08}")
        };
        let mark =
            dec((4_000_000 / (index(symbol) + 1) + (k * 613) % 1_000_000) * 1_000_000 + k % 97);
        (t, rate, mark)
    }

    /// The fundingRate body for `q`: inclusive range, limit default 100 max 1000, the
    /// latest `limit` without startTime.
    pub(crate) fn funding(q: &HashMap<String, String>, now: i64) -> String {
        let symbol = q.get("symbol").map_or(SYMBOLS[0], String::as_str);
        let limit = num(q, "limit").unwrap_or(100).clamp(1, 1000) as usize;
        let end = num(q, "endTime").unwrap_or(now).min(now);
        let last = (end - LISTED) / FUNDING_EVERY;
        let start = num(q, "startTime");
        let events = |ks: Vec<i64>| -> Vec<(i64, String, String)> {
            ks.into_iter()
                .map(|k| funding_event(symbol, k))
                .filter(|(t, _, _)| *t <= end && start.is_none_or(|s| *t >= s))
                .collect()
        };
        let chosen = match start {
            Some(s) => {
                let first = ((s - LISTED).max(0) / FUNDING_EVERY).max(0);
                let mut e = events((first..=last).collect());
                e.truncate(limit);
                e
            }
            None => {
                let mut e = events(((last - limit as i64 - 1).max(0)..=last).collect());
                let extra = e.len().saturating_sub(limit);
                e.drain(..extra);
                e
            }
        };
        let rows: Vec<String> = chosen
            .into_iter()
            .map(|(t, rate, mark)| {
                format!(r#"{{"symbol":"{symbol}","fundingTime":{t},"fundingRate":"{rate}","markPrice":"{mark}"}}"#)
            })
            .collect();
        format!("[{}]", rows.join(","))
    }

    /// The futures exchangeInfo: the same symbols as USD-M perpetuals.
    pub(crate) fn exchange_info() -> String {
        let symbols: Vec<String> = SYMBOLS
            .iter()
            .map(|s| {
                let base = s.trim_end_matches("USDT");
                format!(
                    r#"{{"symbol":"{s}","pair":"{s}","contractType":"PERPETUAL","deliveryDate":4133404800000,"onboardDate":{LISTED},"status":"TRADING","maintMarginPercent":"2.5000","requiredMarginPercent":"5.0000","baseAsset":"{base}","quoteAsset":"USDT","marginAsset":"USDT","pricePrecision":2,"quantityPrecision":3,"baseAssetPrecision":8,"quotePrecision":8,"underlyingType":"COIN","underlyingSubType":[],"triggerProtect":"0.0500","liquidationFee":"0.012500","marketTakeBound":"0.05","maxMoveOrderLimit":10000,"filters":[{{"filterType":"PRICE_FILTER","minPrice":"0.10","maxPrice":"4529764","tickSize":"0.10"}},{{"filterType":"LOT_SIZE","minQty":"0.001","maxQty":"1000","stepSize":"0.001"}},{{"filterType":"MARKET_LOT_SIZE","minQty":"0.001","maxQty":"120","stepSize":"0.001"}},{{"filterType":"MAX_NUM_ORDERS","limit":200}},{{"filterType":"MIN_NOTIONAL","notional":"100"}},{{"filterType":"PERCENT_PRICE","multiplierUp":"1.0500","multiplierDown":"0.9500","multiplierDecimal":"4"}}],"orderTypes":["LIMIT","MARKET","STOP","STOP_MARKET","TAKE_PROFIT","TAKE_PROFIT_MARKET","TRAILING_STOP_MARKET"],"timeInForce":["GTC","IOC","FOK","GTX","GTD"]}}"#
                )
            })
            .collect();
        format!(
            r#"{{"timezone":"UTC","serverTime":{},"futuresType":"U_MARGINED","rateLimits":[],"exchangeFilters":[],"assets":[{{"asset":"USDT","marginAvailable":true,"autoAssetExchange":"-10000"}}],"symbols":[{}]}}"#,
            now_ms(),
            symbols.join(",")
        )
    }

    fn last_price(symbol: &str, now: i64) -> String {
        let r = row(symbol, false, 60_000, now / 60_000 * 60_000, now);
        r.split('"').nth(7).unwrap_or("1.00").to_owned()
    }

    /// The answer to `path` (one of the `/fapi/v1` calls) and `q`: status line and body.
    pub(crate) fn answer(
        path: &str,
        q: &HashMap<String, String>,
        now: i64,
    ) -> (&'static str, String) {
        let known = |q: &HashMap<String, String>| {
            q.get("symbol")
                .is_none_or(|s| SYMBOLS.contains(&s.as_str()))
        };
        if !known(q) || (path.ends_with("lines") && !q.contains_key("symbol")) {
            return (
                "400 Bad Request",
                r#"{"code":-1121,"msg":"Invalid symbol."}"#.to_owned(),
            );
        }
        let symbol = q.get("symbol").map_or(SYMBOLS[0], String::as_str);
        let body = match path {
            "/fapi/v1/klines" => {
                if q.get("interval").is_some_and(|i| i == "1s") {
                    return (
                        "400 Bad Request",
                        r#"{"code":-1120,"msg":"Invalid interval."}"#.to_owned(),
                    );
                }
                klines(q, false, now)
            }
            "/fapi/v1/markPriceKlines" => klines(q, true, now),
            "/fapi/v1/fundingRate" => funding(q, now),
            "/fapi/v1/exchangeInfo" => exchange_info(),
            "/fapi/v1/time" => format!(r#"{{"serverTime":{now}}}"#),
            "/fapi/v1/ping" => "{}".to_owned(),
            "/fapi/v1/depth" => {
                let p = last_price(symbol, now);
                format!(
                    r#"{{"lastUpdateId":{now},"E":{now},"T":{now},"bids":[["{p}","1.000"],["1.00","2.000"]],"asks":[["{p}","1.500"],["999999.00","2.000"]]}}"#
                )
            }
            "/fapi/v1/premiumIndex" => {
                let one = |s: &str| {
                    let k = (now - LISTED) / FUNDING_EVERY;
                    let (_, rate, mark) = funding_event(s, k);
                    format!(
                        r#"{{"symbol":"{s}","markPrice":"{mark}","indexPrice":"{mark}","estimatedSettlePrice":"{mark}","lastFundingRate":"{rate}","interestRate":"0.00010000","nextFundingTime":{},"time":{now}}}"#,
                        LISTED + (k + 1) * FUNDING_EVERY
                    )
                };
                match q.get("symbol") {
                    Some(s) => one(s),
                    None => format!(
                        "[{}]",
                        SYMBOLS.iter().map(|s| one(s)).collect::<Vec<_>>().join(",")
                    ),
                }
            }
            "/fapi/v1/ticker/24hr" | "/fapi/v1/ticker/bookTicker" | "/fapi/v1/ticker/price" => {
                let one = |s: &str| {
                    let p = last_price(s, now);
                    match path {
                        "/fapi/v1/ticker/price" => {
                            format!(r#"{{"symbol":"{s}","price":"{p}","time":{now}}}"#)
                        }
                        "/fapi/v1/ticker/bookTicker" => format!(
                            r#"{{"symbol":"{s}","bidPrice":"{p}","bidQty":"1.000","askPrice":"{p}","askQty":"1.500","time":{now}}}"#
                        ),
                        _ => format!(
                            r#"{{"symbol":"{s}","priceChange":"0.00","priceChangePercent":"0.000","weightedAvgPrice":"{p}","lastPrice":"{p}","lastQty":"0.001","openPrice":"{p}","highPrice":"{p}","lowPrice":"{p}","volume":"1000.000","quoteVolume":"1000000.00","openTime":{},"closeTime":{now},"firstId":1,"lastId":2,"count":2}}"#,
                            now - 86_400_000
                        ),
                    }
                };
                match q.get("symbol") {
                    Some(s) => one(s),
                    None => format!(
                        "[{}]",
                        SYMBOLS.iter().map(|s| one(s)).collect::<Vec<_>>().join(",")
                    ),
                }
            }
            _ => return ("404 Not Found", "{}".to_owned()),
        };
        ("200 OK", body)
    }
}

pub(crate) struct FakeExchange {
    pub(crate) addr: SocketAddr,
    pub(crate) ws_addr: SocketAddr,
    state: Arc<State>,
}

impl Drop for FakeExchange {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake the accept loops so they see the flag.
        let _ = TcpStream::connect(self.addr);
        let _ = TcpStream::connect(self.ws_addr);
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

pub(crate) fn interval_ms(name: &str) -> Option<i64> {
    Some(match name {
        "1s" => 1_000,
        "1m" => 60_000,
        "3m" => 180_000,
        "5m" => 300_000,
        "15m" => 900_000,
        "30m" => 1_800_000,
        "1h" => 3_600_000,
        "2h" => 7_200_000,
        "4h" => 14_400_000,
        "1d" => 86_400_000,
        _ => return None,
    })
}

/// Whether the exchange has a candle of interval `iv` opening at `t` (a multiple of `iv`).
pub(crate) fn exists(iv: i64, t: i64, now: i64) -> bool {
    t >= LISTED && t <= now && (t / iv) % 97 != 5
}

fn dec(m: i64) -> String {
    format!("{}.{:08}", m / 100_000_000, m % 100_000_000)
}

/// The Binance row of [`SYMBOL`]'s candle opening at `t`; the forming one depends on `now`.
pub(crate) fn row(iv: i64, t: i64, now: i64) -> String {
    row_of(SYMBOL, iv, t, now)
}

/// The Binance row of `symbol`'s candle opening at `t` (each symbol at its own price).
pub(crate) fn row_of(symbol: &str, iv: i64, t: i64, now: i64) -> String {
    let k = t / iv;
    let n = spot_index(symbol).unwrap_or(0) as i64;
    let open = 2_000_000_000_000 / (n + 1) + (k * 7919) % 100_000_000_000;
    let (close, volume) = if t + iv > now {
        // Still forming: it grows as time passes.
        (open + (now - t) * 1000, (now - t) * 100_000 + 1)
    } else {
        (
            open + (k * 31) % 2_000_000 - 1_000_000,
            100_000_000 + (k * 13) % 1_000_000_000,
        )
    };
    let high = open.max(close) + k % 500_000;
    let low = open.min(close) - k % 400_000;
    let quote = volume / 1000 * 20_000;
    format!(
        "[{t},\"{}\",\"{}\",\"{}\",\"{}\",\"{}\",{},\"{}\",{},\"{}\",\"{}\",\"0\"]",
        dec(open),
        dec(high),
        dec(low),
        dec(close),
        dec(volume),
        t + iv - 1,
        dec(quote),
        k % 1000,
        dec(volume / 2),
        dec(quote / 2),
    )
}

/// The open times Binance would answer `query` with.
pub(crate) fn answer(iv: i64, query: &HashMap<String, String>, now: i64) -> Vec<i64> {
    answer_up_to(iv, query, now, 1000)
}

/// As [`answer`] with the largest `limit` at `max` (1500 on the futures API).
pub(crate) fn answer_up_to(
    iv: i64,
    query: &HashMap<String, String>,
    now: i64,
    max: i64,
) -> Vec<i64> {
    let num = |k: &str| query.get(k).and_then(|v| v.parse::<i64>().ok());
    let limit = num("limit").unwrap_or(500).clamp(1, max) as usize;
    let end = num("endTime").unwrap_or(now).min(now);
    let mut out = Vec::new();
    match num("startTime") {
        Some(s) => {
            let mut t = (s.max(LISTED) + iv - 1) / iv * iv;
            while t <= end && out.len() < limit {
                if exists(iv, t, now) {
                    out.push(t);
                }
                t += iv;
            }
        }
        None => {
            let mut t = end / iv * iv;
            while t >= LISTED && out.len() < limit {
                if exists(iv, t, now) {
                    out.push(t);
                }
                t -= iv;
            }
            out.reverse();
        }
    }
    out
}

/// The klines body for `query` as Binance writes it.
pub(crate) fn klines_body(query: &HashMap<String, String>, now: i64) -> String {
    let iv = interval_ms(query.get("interval").map_or("", String::as_str)).unwrap_or(60_000);
    let symbol = query.get("symbol").map_or(SYMBOL, String::as_str);
    let rows: Vec<String> = answer(iv, query, now)
        .into_iter()
        .map(|t| row_of(symbol, iv, t, now))
        .collect();
    format!("[{}]", rows.join(","))
}

/// The klines body for the query string `q` as Binance writes it now.
pub(crate) fn klines_for(q: &str) -> String {
    klines_body(&parse_query(q), now_ms())
}

fn parse_query(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

impl FakeExchange {
    pub(crate) fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let ws_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let ws_addr = ws_listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        for (listener, handler) in [
            (listener, serve as fn(TcpStream, &State)),
            (ws_listener, serve_ws),
        ] {
            let s = state.clone();
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if s.stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(conn) = conn else { continue };
                    let s = s.clone();
                    std::thread::spawn(move || handler(conn, &s));
                }
            });
        }
        Self {
            addr,
            ws_addr,
            state,
        }
    }

    /// The stream host, as `--upstream-ws` takes it.
    pub(crate) fn ws_url(&self) -> String {
        format!("ws://{}", self.ws_addr)
    }

    /// Queues faults for the open stream connections.
    pub(crate) fn inject_ws(&self, faults: &[WsFault]) {
        self.state.ws_faults.lock().unwrap().extend(faults);
    }

    /// Refuses the next `n` stream connections.
    pub(crate) fn refuse_ws(&self, n: u64) {
        self.state.ws_refuse.store(n, Ordering::SeqCst);
    }

    /// Sends each subscribed stream's forming candle every `ms` (250 by default).
    #[allow(dead_code)] // `cargo xtask bench ws` sets it; these tests keep the default.
    pub(crate) fn set_ws_period(&self, ms: u64) {
        self.state.ws_period_ms.store(ms.max(1), Ordering::SeqCst);
    }

    /// Stream connections accepted so far (refused ones not counted).
    pub(crate) fn ws_connections(&self) -> u64 {
        self.state.ws_connections.load(Ordering::SeqCst)
    }

    /// Stream connections open now.
    pub(crate) fn ws_open(&self) -> u64 {
        self.state.ws_open.load(Ordering::SeqCst)
    }

    /// Every stream name unsubscribed so far, in order.
    pub(crate) fn ws_unsubscribes(&self) -> Vec<String> {
        self.state.ws_unsubscribes.lock().unwrap().clone()
    }

    /// Bybit pings received on the stream side.
    #[allow(dead_code)] // read by the Bybit tests only
    pub(crate) fn ws_pings(&self) -> u64 {
        self.state.ws_pings.load(Ordering::SeqCst)
    }

    /// OKX requests refused so far for exceeding an endpoint's limit.
    pub(crate) fn okx_limited(&self) -> u64 {
        self.state.okx_limited.load(Ordering::SeqCst)
    }

    /// Answers the next `n` Bybit REST requests with `retCode` 10006, as Bybit does over
    /// its limit.
    pub(crate) fn bybit_busy(&self, n: u64) {
        self.state.bybit_busy.store(n, Ordering::SeqCst);
    }

    /// Every stream name subscribed so far, in order, repeats included.
    pub(crate) fn ws_subscribes(&self) -> Vec<String> {
        self.state.ws_subscribes.lock().unwrap().clone()
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues faults for the next klines requests, in order.
    pub(crate) fn inject(&self, faults: &[Fault]) {
        self.state.faults.lock().unwrap().extend(faults);
    }

    /// The klines requests seen, spot and futures (and funding rates) alike.
    pub(crate) fn klines_seen(&self) -> Vec<Seen> {
        self.state.klines.lock().unwrap().clone()
    }

    /// Paths of the other requests seen so far.
    pub(crate) fn others_seen(&self) -> Vec<String> {
        self.state.other.lock().unwrap().clone()
    }
}

fn serve(conn: TcpStream, s: &State) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        // Skip the headers; no request here has a body.
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" || h == "\n" {
                break;
            }
        }
        let target = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let now = now_ms();
        let (status, body, fault) = match path {
            "/api/v3/klines" => {
                let q = parse_query(query);
                s.klines.lock().unwrap().push(Seen {
                    path: path.to_owned(),
                    query: q.clone(),
                    at: now,
                });
                let fault = s.faults.lock().unwrap().pop_front();
                if q.get("symbol").is_none_or(|s| spot_index(s).is_none()) {
                    (
                        "400 Bad Request",
                        r#"{"code":-1121,"msg":"Invalid symbol."}"#.to_owned(),
                        None,
                    )
                } else {
                    ("200 OK", klines_body(&q, now), fault)
                }
            }
            "/api/v3/exchangeInfo" => {
                s.other.lock().unwrap().push(target.clone());
                ("200 OK", exchange_info(), None)
            }
            p if p.starts_with("/v5/market/") => {
                s.other.lock().unwrap().push(target.clone());
                let q = parse_query(query);
                if p.ends_with("kline") || p.ends_with("funding/history") {
                    s.klines.lock().unwrap().push(Seen {
                        path: p.to_owned(),
                        query: q.clone(),
                        at: now,
                    });
                }
                let busy = s
                    .bybit_busy
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if busy {
                    (
                        "200 OK",
                        bybit::refusal(10006, "Too many visits!", now),
                        None,
                    )
                } else {
                    let (status, body) = bybit::answer(p, &q, now);
                    (status, body, None)
                }
            }
            p if p.starts_with("/api/v5/") => {
                s.other.lock().unwrap().push(target.clone());
                let q = parse_query(query);
                if p.contains("candles") || p.ends_with("funding-rate-history") {
                    s.klines.lock().unwrap().push(Seen {
                        path: p.to_owned(),
                        query: q.clone(),
                        at: now,
                    });
                }
                let (status, body) = okx::answer(s, p, &q, now);
                (status, body, None)
            }
            p if p.starts_with("/fapi/v1/") => {
                s.other.lock().unwrap().push(target.clone());
                let history = p.ends_with("lines") || p.ends_with("fundingRate");
                if history {
                    s.klines.lock().unwrap().push(Seen {
                        path: p.to_owned(),
                        query: parse_query(query),
                        at: now,
                    });
                }
                let fault = if history {
                    s.faults.lock().unwrap().pop_front()
                } else {
                    None
                };
                let (status, body) = futures::answer(p, &parse_query(query), now);
                (status, body, fault)
            }
            _ => {
                s.other.lock().unwrap().push(target.clone());
                ("404 Not Found", "{}".to_owned(), None)
            }
        };
        let head = |status: &str, extra: &str, len: usize| {
            format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len}\r\nx-mbx-used-weight-1m: 2\r\n{extra}\r\n"
            )
        };
        let written = match fault {
            Some(Fault::ServerError) => out
                .write_all(head("500 Internal Server Error", "", 2).as_bytes())
                .and_then(|()| out.write_all(b"{}")),
            Some(Fault::RateLimit(secs)) => {
                let body = r#"{"code":-1003,"msg":"Too many requests."}"#;
                out.write_all(
                    head(
                        "429 Too Many Requests",
                        &format!("retry-after: {secs}\r\n"),
                        body.len(),
                    )
                    .as_bytes(),
                )
                .and_then(|()| out.write_all(body.as_bytes()))
            }
            Some(Fault::Truncate) => {
                let _ = out.write_all(head(status, "", body.len()).as_bytes());
                let _ = out.write_all(&body.as_bytes()[..body.len() / 2]);
                return;
            }
            Some(Fault::Duplicate) => {
                let inner = &body[1..body.len() - 1];
                let doubled = if inner.is_empty() {
                    body.clone()
                } else {
                    format!("[{inner},{inner}]")
                };
                out.write_all(head(status, "", doubled.len()).as_bytes())
                    .and_then(|()| out.write_all(doubled.as_bytes()))
            }
            Some(Fault::Delay(ms)) => {
                std::thread::sleep(std::time::Duration::from_millis(ms));
                out.write_all(head(status, "", body.len()).as_bytes())
                    .and_then(|()| out.write_all(body.as_bytes()))
            }
            None => out
                .write_all(head(status, "", body.len()).as_bytes())
                .and_then(|()| out.write_all(body.as_bytes())),
        };
        if written.is_err() {
            return;
        }
    }
}

/// The kline event of the candle opening at `t` on stream `name`, as Binance sends it.
pub(crate) fn kline_event(name: &str, interval: &str, iv: i64, t: i64, now: i64) -> String {
    kline_event_as(false, name, interval, iv, t, now)
}

/// As [`kline_event`], of the futures market when `futures`.
pub(crate) fn kline_event_as(
    futures: bool,
    name: &str,
    interval: &str,
    iv: i64,
    t: i64,
    now: i64,
) -> String {
    let symbol = name
        .split('@')
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    let row = if futures {
        futures::row(&symbol, false, iv, t, now)
    } else {
        row_of(&symbol, iv, t, now)
    };
    let r: Vec<serde_json::Value> = serde_json::from_str(&row).unwrap();
    let closed = t + iv <= now;
    serde_json::json!({
        "stream": name,
        "data": {
            "e": "kline", "E": now, "s": symbol,
            "k": {
                "t": t, "T": t + iv - 1, "s": symbol, "i": interval, "f": 100, "L": 200,
                "o": r[1], "c": r[4], "h": r[2], "l": r[3], "v": r[5], "n": r[8],
                "x": closed, "q": r[7], "V": r[9], "Q": r[10], "B": "0"
            }
        }
    })
    .to_string()
}

/// Counts a stream connection as open until its handler returns.
struct Open<'a>(&'a AtomicU64);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One stream connection: Binance's combined endpoint with its JSON methods.
fn serve_ws(conn: TcpStream, s: &State) {
    use tungstenite::Message;
    if s.stop.load(Ordering::SeqCst) {
        return;
    }
    let refuse = s
        .ws_refuse
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if refuse {
        let mut conn = conn;
        let _ = conn
            .write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        return;
    }
    let _ = conn.set_nodelay(true);
    // `/market/...` is the futures market's streams (Binance's `fstream.../market`);
    // `/v5/public/...` Bybit's.
    let mut path = String::new();
    // tungstenite's callback type fixes the error type, a whole HTTP response.
    #[allow(clippy::result_large_err)]
    let seen_path = |req: &tungstenite::handshake::server::Request,
                     resp: tungstenite::handshake::server::Response| {
        path = req.uri().path().to_owned();
        Ok(resp)
    };
    let Ok(mut ws) = tungstenite::accept_hdr(conn, seen_path) else {
        return;
    };
    s.ws_connections.fetch_add(1, Ordering::SeqCst);
    s.ws_open.fetch_add(1, Ordering::SeqCst);
    let _open = Open(&s.ws_open);
    if let Some(category) = path.strip_prefix("/v5/public/") {
        return bybit::serve_ws(ws, s, category == "linear");
    }
    if let Some(which) = path.strip_prefix("/ws/v5/") {
        return okx::serve_ws(ws, s, which == "public");
    }
    let futures = path.starts_with("/market");
    let period = match s.ws_period_ms.load(Ordering::SeqCst) {
        0 => 250,
        ms => ms,
    };
    let _ = ws
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis((period / 50).clamp(1, 5))));
    // Stream name -> (interval name, interval ms, open time of the last candle sent).
    // Each stream is sent on its own phase, as an exchange's streams are, not all at once.
    let mut subs: HashMap<String, (String, i64, Option<i64>, std::time::Instant)> = HashMap::new();
    loop {
        if s.stop.load(Ordering::SeqCst) {
            return;
        }
        match ws.read() {
            Ok(Message::Text(t)) => {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(t.as_str()) else {
                    continue;
                };
                let id = v["id"].clone();
                let names: Vec<String> = v["params"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|p| p.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                let reply = match v["method"].as_str() {
                    Some("SUBSCRIBE") => {
                        for n in names {
                            s.ws_subscribes.lock().unwrap().push(n.clone());
                            let iv_name = n.rsplit('_').next().unwrap_or_default().to_owned();
                            if let Some(iv) = interval_ms(&iv_name) {
                                let phase = (subs.len() as u64 * 7919) % period;
                                let due = std::time::Instant::now() + Duration::from_millis(phase);
                                subs.entry(n).or_insert((iv_name, iv, None, due));
                            }
                        }
                        serde_json::json!({"result": null, "id": id})
                    }
                    Some("UNSUBSCRIBE") => {
                        for n in names {
                            s.ws_unsubscribes.lock().unwrap().push(n.clone());
                            subs.remove(&n);
                        }
                        serde_json::json!({"result": null, "id": id})
                    }
                    Some("LIST_SUBSCRIPTIONS") => {
                        serde_json::json!({"result": subs.keys().collect::<Vec<_>>(), "id": id})
                    }
                    _ => {
                        serde_json::json!({"error": {"code": 2, "msg": "Invalid request"}, "id": id})
                    }
                };
                if ws.send(Message::text(reply.to_string())).is_err() {
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
        let fault = if subs.is_empty() {
            None
        } else {
            s.ws_faults.lock().unwrap().pop_front()
        };
        match fault {
            Some(WsFault::Drop) => {
                let _ = ws.get_ref().shutdown(std::net::Shutdown::Both);
                return;
            }
            Some(WsFault::Stall(ms)) => std::thread::sleep(Duration::from_millis(ms)),
            Some(WsFault::Burst(n)) => {
                let now = now_ms();
                if let Some((name, (iv_name, iv, _, _))) = subs.iter().next() {
                    let f = kline_event_as(futures, name, iv_name, *iv, now / *iv * *iv, now);
                    for _ in 0..n {
                        if ws.send(Message::text(f.clone())).is_err() {
                            return;
                        }
                    }
                }
            }
            Some(WsFault::Malformed) => {
                let now = now_ms();
                let first = subs.keys().next().cloned().unwrap_or_default();
                let frames = [
                    Message::text("{not json"),
                    Message::binary(vec![0u8, 1, 2]),
                    Message::text(
                        kline_event_as(futures, &first, "1s", 1000, now / 1000 * 1000, now)
                            .replace(SYMBOL, "FOOUSDT"),
                    ),
                    Message::text(kline_event_as(
                        futures,
                        "btcusdt@kline_1h",
                        "1h",
                        3_600_000,
                        now / 3_600_000 * 3_600_000,
                        now,
                    )),
                    Message::text(kline_event_as(
                        futures,
                        &first,
                        "1s",
                        1000,
                        now / 1000 * 1000 - 60_000,
                        now,
                    )),
                    Message::text(
                        r#"{"stream":"btcusdt@kline_1s","data":{"e":"kline","s":"BTCUSDT","k":{"t":"x"}}}"#,
                    ),
                ];
                for f in frames {
                    if ws.send(f).is_err() {
                        return;
                    }
                }
            }
            None => {}
        }
        let tick = std::time::Instant::now();
        let now = now_ms();
        for (name, (iv_name, iv, last, due)) in subs.iter_mut() {
            if tick < *due {
                continue;
            }
            *due += Duration::from_millis(period);
            if *due < tick {
                *due = tick + Duration::from_millis(period);
            }
            let open = now / *iv * *iv;
            let mut frames = Vec::new();
            if let Some(prev) = *last {
                // Each candle closes once, with its final values.
                let mut t = prev;
                while t < open {
                    if exists(*iv, t, now) {
                        frames.push(kline_event_as(futures, name, iv_name, *iv, t, now));
                    }
                    t += *iv;
                }
            }
            if exists(*iv, open, now) {
                frames.push(kline_event_as(futures, name, iv_name, *iv, open, now));
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
