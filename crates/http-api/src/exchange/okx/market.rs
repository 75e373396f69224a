//! OKX's market data: the four candle routes and `funding-rate-history` with OKX's
//! cursors, answered from the store (and OKX for what it lacks); `public/time` on the
//! service's clock; `public/instruments` and `position-tiers` passed through and cached
//! (instruments built from the store without an upstream); tickers, books,
//! `public/funding-rate` and `public/mark-price` passed through with a 1 s cache.
//!
//! Cursors, as ccxt's `fetch_ohlcv` uses them: `after` = older than, `before` = newer
//! than, both exclusive ms; the answer is the newest `limit` records between them, newest
//! first (with `before` alone the latest ones, as OKX's documentation says), the forming
//! candle with `confirm` "0". OKX's recent routes hold only the latest 1,440 candles;
//! candlecache serves all it has on both.

use std::time::Duration;

use hyper::Request;
use market_cache::{
    okx, Decimal, Exchange, Fill, Kind, Market, Request as ReadRequest, Symbol, RESPONSE_TTL,
};
use serde_json::{json, Map, Value};

use super::errors::param;
use crate::exchange::printed;
use crate::query::Params;
use crate::reply::{accepts_gzip, Reply};
use crate::state::{App, Made};
use crate::{Error, Result};

/// How long live data passed through (tickers, books, current funding) is served again.
const LIVE_TTL: Duration = Duration::from_secs(1);
/// Default and largest `limit` of the trade and the mark candle routes, and of funding.
const CANDLES_LIMIT: (usize, usize) = (100, 300);
const MARK_LIMIT: (usize, usize) = (100, 100);
const FUNDING_LIMIT: (usize, usize) = (100, 100);

impl App {
    pub(crate) async fn okx_market<B>(&self, call: &str, req: &Request<B>) -> Result<Reply> {
        let p = Params::parse(req.uri().query())?;
        let query = req.uri().query();
        let path = format!("/api/v5/{call}");
        let gzip = accepts_gzip(req);
        match call {
            "market/candles" | "market/history-candles" => self.okx_candles(&p, false, gzip).await,
            "market/mark-price-candles" | "market/history-mark-price-candles" => {
                self.okx_candles(&p, true, gzip).await
            }
            "public/funding-rate-history" => self.okx_funding(&p).await,
            "public/time" => {
                let now = self.read.now();
                Ok(Reply::json(ok(json!([{"ts": now.to_string()}]))))
            }
            "public/instruments" if !self.read.has_upstream(Exchange::Okx) => {
                let markets = self.read.markets().await?;
                Ok(Reply::json(instruments(&markets, &p)?))
            }
            "public/instruments" | "public/position-tiers" => {
                self.pass_through(Exchange::Okx, &path, query, RESPONSE_TTL)
                    .await
            }
            "market/tickers" | "market/ticker" | "market/books" | "public/funding-rate"
            | "public/mark-price" => {
                self.pass_through(Exchange::Okx, &path, query, LIVE_TTL)
                    .await
            }
            _ => Err(Error::NotFound(format!(
                "{path} is not served (market/candles, history-candles, mark-price-candles, history-mark-price-candles, tickers, ticker, books; public/funding-rate-history, funding-rate, mark-price, instruments, position-tiers, time)"
            ))),
        }
    }

    /// The candle routes (with `mark` the mark-price ones) as OKX answers them.
    async fn okx_candles(&self, p: &Params, mark: bool, gzip: bool) -> Result<Reply> {
        let mut symbol = inst(p)?;
        if mark {
            if symbol.kind() != Kind::Futures {
                return Err(param("instId"));
            }
            symbol = symbol.with_kind(Kind::Mark);
        }
        let name = p.get("bar").filter(|b| !b.is_empty()).unwrap_or("1m");
        let tf = okx::timeframe(name).ok_or_else(|| param("bar"))?;
        let limit = limit(p, if mark { MARK_LIMIT } else { CANDLES_LIMIT })?;
        let (after, before) = (time(p, "after")?, time(p, "before")?);
        let now = self.read.now();
        let key = format!(
            "okx-candles|{}|{tf}|{after:?}|{before:?}|{limit}|{gzip}",
            symbol.key()
        );
        self.answer(&key, gzip, || async {
            let request = ReadRequest {
                symbol: symbol.clone(),
                timeframe: tf,
                start: None,
                end: after.map_or(tf.next(now), |a| a.min(tf.next(now))),
                limit,
                fill: Fill::None,
            };
            let answer = self.read.get(&request).await?;
            let keep_for = answer.keep_for();
            let mut data = String::from("[");
            for c in answer
                .candles
                .iter()
                .rev()
                .filter(|c| before.is_none_or(|b| c.open_time > b))
            {
                if data.len() > 1 {
                    data.push(',');
                }
                data.push_str(&format!("[\"{}\"", c.open_time));
                let mut fields = vec![c.open, c.high, c.low, c.close];
                if !mark {
                    let quote = c.quote_volume.unwrap_or(Decimal::new(0, 0));
                    fields.extend([c.volume, c.volume_ccy.unwrap_or(quote), quote]);
                }
                for d in fields {
                    data.push_str(",\"");
                    data.push_str(&printed(d));
                    data.push('"');
                }
                let closed = tf.next(c.open_time) <= now;
                data.push_str(if closed { ",\"1\"]" } else { ",\"0\"]" });
            }
            data.push(']');
            let body = format!(r#"{{"code":"0","msg":"","data":{data}}}"#);
            Ok(Made::json(body, keep_for))
        })
        .await
    }

    /// `funding-rate-history` as OKX answers it: newest first, the cursors as for candles.
    async fn okx_funding(&self, p: &Params) -> Result<Reply> {
        let symbol = inst(p)?;
        if symbol.kind() != Kind::Futures {
            return Err(param("instId"));
        }
        let limit = limit(p, FUNDING_LIMIT)?;
        let (after, before) = (time(p, "after")?, time(p, "before")?);
        let now = self.read.now();
        let end = after.map_or(now + 1, |a| a.min(now + 1));
        let key = format!("okx-funding|{}|{after:?}|{before:?}|{limit}", symbol.key());
        let keep_for = if after.is_some_and(|a| market_cache::funding_settled(a, now)) {
            RESPONSE_TTL
        } else {
            LIVE_TTL
        };
        self.answer(&key, false, || async {
            let rows = match before {
                Some(b) => {
                    let from = b.saturating_add(1);
                    self.read
                        .funding(&symbol, Some(from), end, usize::MAX)
                        .await?
                }
                None => self.read.funding(&symbol, None, end, limit).await?,
            };
            let data: Vec<Value> = rows
                .iter()
                .rev()
                .take(limit)
                .map(|f| {
                    let mut row: Map<String, Value> =
                        serde_json::from_str(&f.extra).unwrap_or_default();
                    row.insert("fundingRate".into(), json!(f.rate));
                    row.insert("fundingTime".into(), json!(f.time.to_string()));
                    row.insert("instId".into(), json!(symbol.as_str()));
                    row.insert("instType".into(), json!("SWAP"));
                    for (k, v) in [("formulaType", "noRate"), ("method", "current_period")] {
                        row.entry(k).or_insert_with(|| json!(v));
                    }
                    row.entry("realizedRate").or_insert_with(|| json!(f.rate));
                    Value::Object(row)
                })
                .collect();
            Ok(Made::json(ok(Value::Array(data)).to_string(), keep_for))
        })
        .await
    }
}

/// A successful answer around `data`.
fn ok(data: Value) -> Value {
    json!({"code": "0", "msg": "", "data": data})
}

/// `instId`: spot (`BTC-USDT`) or a linear perpetual swap (`BTC-USDT-SWAP`), OKX's ids as
/// they are (case-sensitive); inverse swaps, dated futures and options are refused by name.
fn inst(p: &Params) -> Result<Symbol> {
    let raw = p.require("instId")?;
    if raw.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(Error::UnknownSymbol(raw.to_owned()));
    }
    let parts: Vec<&str> = raw.split('-').collect();
    let kind = match parts[..] {
        [_, _] => Kind::Spot,
        [_, "USD", "SWAP"] => return Err(param(
            "instId (inverse swaps are not served by candlecache: spot and USDT/USDC swaps are)",
        )),
        [_, _, "SWAP"] => Kind::Futures,
        _ => {
            return Err(param(
                "instId (futures and options are not served by candlecache: spot and swaps are)",
            ))
        }
    };
    Ok(raw
        .parse::<Symbol>()?
        .with_kind(kind)
        .with_exchange(Exchange::Okx))
}

/// `limit`: `default` when absent, at least 1, larger values served as `max`.
fn limit(p: &Params, (default, max): (usize, usize)) -> Result<usize> {
    match p.get("limit").filter(|l| !l.is_empty()) {
        None => Ok(default),
        Some(l) => match l.parse::<i64>() {
            Ok(n) if n >= 1 => Ok((n as usize).min(max)),
            _ => Err(param("limit")),
        },
    }
}

/// A cursor in ms, if given.
fn time(p: &Params, key: &str) -> Result<Option<i64>> {
    match p.get(key).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse::<i64>().map(Some).map_err(|_| param(key)),
    }
}

/// `public/instruments` of the stored OKX markets, without an upstream: the fields ccxt's
/// `okx.parse_market` reads. `instType` is required, as on OKX; futures and options are
/// empty lists (candlecache serves none).
fn instruments(markets: &[Market], p: &Params) -> Result<Value> {
    let kind = match p.require("instType")? {
        "SPOT" => Kind::Spot,
        "SWAP" => Kind::Futures,
        "FUTURES" | "OPTION" | "MARGIN" => return Ok(ok(json!([]))),
        _ => return Err(param("instType")),
    };
    let wanted = p.get("instId");
    let mut seen: Vec<&str> = Vec::new();
    let mut data = Vec::new();
    for m in markets
        .iter()
        .filter(|m| m.exchange == Exchange::Okx && m.kind == kind)
    {
        if seen.contains(&m.symbol.as_str()) || wanted.is_some_and(|w| w != m.symbol) {
            continue;
        }
        seen.push(&m.symbol);
        let tick = printed(Decimal::new(1, m.price_precision));
        let mut parts = m.symbol.split('-');
        let (base, quote) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let mut item = json!({
            "instType": if kind == Kind::Spot { "SPOT" } else { "SWAP" },
            "instId": m.symbol,
            "baseCcy": if kind == Kind::Spot { base } else { "" },
            "quoteCcy": if kind == Kind::Spot { quote } else { "" },
            "settleCcy": "",
            "tickSz": tick,
            "lotSz": "0.00000001",
            "minSz": "0.00001",
            "state": "live",
            "lever": "",
            "listTime": "",
        });
        if kind == Kind::Futures {
            let family = format!("{base}-{quote}");
            item["settleCcy"] = json!(quote);
            item["uly"] = json!(family);
            item["instFamily"] = json!(family);
            item["ctType"] = json!("linear");
            item["ctVal"] = json!("1");
            item["ctValCcy"] = json!(base);
            item["ctMult"] = json!("1");
            item["lotSz"] = json!("1");
            item["minSz"] = json!("1");
            item["lever"] = json!("100");
        }
        data.push(item);
    }
    Ok(ok(Value::Array(data)))
}
