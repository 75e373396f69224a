//! Bybit's market data (`/v5/market/...`): `kline` and `mark-price-kline` with Bybit's
//! parameters and semantics answered from the store (and Bybit for what it lacks),
//! `funding/history` likewise, `time` on the service's clock, `instruments-info` and
//! `risk-limit` passed through and cached (instruments built from the store without an
//! upstream), `tickers` and `orderbook` passed through with a 1 s cache.
//!
//! Kline semantics, as Bybit answers (v5 docs) and ccxt relies on: `start` and `end` are
//! inclusive ms; with `start` alone the candles from the one holding `start` on (ccxt
//! 4.5 `fetch_ohlcv`, its fix for issue 26736); with `end` the latest `limit` at or
//! before it (and at or after `start`); `list` newest first, the forming candle included.

use std::time::Duration;

use hyper::Request;
use market_cache::{
    bybit, Decimal, Exchange, Fill, Kind, Market, Request as ReadRequest, Symbol, RESPONSE_TTL,
};
use serde_json::{json, Value};

use super::errors::params;
use crate::exchange::printed;
use crate::query::Params;
use crate::reply::{accepts_gzip, Reply};
use crate::state::{App, Made};
use crate::{Error, Result};

/// How long live data passed through (tickers, order books) is served again.
const LIVE_TTL: Duration = Duration::from_secs(1);
/// `kline`'s default and largest `limit`.
const KLINE_LIMIT: (usize, usize) = (200, 1000);
/// `funding/history`'s default and largest `limit`.
const FUNDING_LIMIT: (usize, usize) = (200, 200);

impl App {
    pub(crate) async fn bybit_market<B>(&self, call: &str, req: &Request<B>) -> Result<Reply> {
        let p = Params::parse(req.uri().query())?;
        let query = req.uri().query();
        let path = format!("/v5/market/{call}");
        match call {
            "kline" => self.bybit_kline(&p, false, accepts_gzip(req)).await,
            "mark-price-kline" => self.bybit_kline(&p, true, accepts_gzip(req)).await,
            "funding/history" => self.bybit_funding(&p).await,
            "time" => {
                let now = self.read.now();
                Ok(Reply::json(ok(
                    json!({"timeSecond": (now / 1000).to_string(), "timeNano": (i128::from(now) * 1_000_000).to_string()}),
                    now,
                )))
            }
            "instruments-info" if !self.read.has_upstream(Exchange::Bybit) => {
                let kind = category(&p)?;
                let markets = self.read.markets().await?;
                Ok(Reply::json(ok(instruments(&markets, kind, &p), self.read.now())))
            }
            "instruments-info" | "risk-limit" => {
                self.pass_through(Exchange::Bybit, &path, query, RESPONSE_TTL)
                    .await
            }
            "tickers" | "orderbook" => {
                self.pass_through(Exchange::Bybit, &path, query, LIVE_TTL)
                    .await
            }
            _ => Err(Error::NotFound(format!(
                "{path} is not served (kline, mark-price-kline, funding/history, instruments-info, risk-limit, tickers, orderbook, time)"
            ))),
        }
    }

    /// `kline` (or with `mark` `mark-price-kline`) as Bybit answers it, gzipped for a
    /// client that takes it.
    async fn bybit_kline(&self, p: &Params, mark: bool, gzip: bool) -> Result<Reply> {
        let mut kind = category(p)?;
        if mark {
            if kind != Kind::Futures {
                return Err(params(
                    "params error: mark-price-kline is served for category linear",
                ));
            }
            kind = Kind::Mark;
        }
        let symbol = symbol(p)?.with_kind(kind);
        let iv = p.require("interval")?;
        let tf = bybit::timeframe(iv).ok_or_else(|| Error::InvalidTimeframe(iv.to_owned()))?;
        let limit = limit(p, KLINE_LIMIT)?;
        let (start, end) = (time(p, "start")?, time(p, "end")?);
        if let (Some(s), Some(e)) = (start, end) {
            if s > e {
                return Err(params("params error: start is after end"));
            }
        }
        let now = self.read.now();
        let key = format!(
            "bybit-kline|{}|{tf}|{start:?}|{end:?}|{limit}|{gzip}",
            symbol.key()
        );
        self.answer(&key, gzip, || async {
            let from = start.map(|s| tf.floor(s));
            // With `start` alone: forward from it; with `end`: the latest up to it.
            let request = ReadRequest {
                symbol: symbol.clone(),
                timeframe: tf,
                start: if end.is_none() { from } else { None },
                end: end.map_or(tf.next(now), |e| e.saturating_add(1).min(tf.next(now))),
                limit,
                fill: Fill::None,
            };
            let answer = self.read.get(&request).await?;
            let keep_for = answer.keep_for();
            let mut list = String::from("[");
            for c in answer
                .candles
                .iter()
                .rev()
                .filter(|c| from.is_none_or(|f| c.open_time >= f))
            {
                if list.len() > 1 {
                    list.push(',');
                }
                list.push_str(&format!("[\"{}\"", c.open_time));
                let mut fields = vec![c.open, c.high, c.low, c.close];
                if !mark {
                    fields.push(c.volume);
                    fields.push(c.quote_volume.unwrap_or(Decimal::new(0, 0)));
                }
                for d in fields {
                    list.push_str(",\"");
                    list.push_str(&printed(d));
                    list.push('"');
                }
                list.push(']');
            }
            list.push(']');
            let body = format!(
                r#"{{"retCode":0,"retMsg":"OK","result":{{"symbol":"{symbol}","category":"{}","list":{list}}},"retExtInfo":{{}},"time":{now}}}"#,
                category_name(kind)
            );
            Ok(Made::json(body, keep_for))
        })
        .await
    }

    /// `funding/history` (linear) as Bybit answers it: newest first; `endTime` alone (or
    /// neither) the latest `limit` up to it; `startTime` needs an `endTime`, as on Bybit.
    async fn bybit_funding(&self, p: &Params) -> Result<Reply> {
        if category(p)? != Kind::Futures {
            return Err(params(
                "params error: funding history is served for category linear",
            ));
        }
        let symbol = symbol(p)?.with_kind(Kind::Futures);
        let limit = limit(p, FUNDING_LIMIT)?;
        let (start, end) = (time(p, "startTime")?, time(p, "endTime")?);
        if start.is_some() && end.is_none() {
            return Err(params("params error: startTime needs endTime"));
        }
        let now = self.read.now();
        let end_excl = end.map_or(now + 1, |e| e.saturating_add(1));
        let key = format!("bybit-funding|{}|{start:?}|{end:?}|{limit}", symbol.key());
        let keep_for = if end.is_some_and(|e| market_cache::funding_settled(e, now)) {
            RESPONSE_TTL
        } else {
            LIVE_TTL
        };
        self.answer(&key, false, || async {
            let rows = match start {
                Some(s) => {
                    self.read
                        .funding(&symbol, Some(s), end_excl, usize::MAX)
                        .await?
                }
                None => self.read.funding(&symbol, None, end_excl, limit).await?,
            };
            let list: Vec<Value> = rows
                .iter()
                .rev()
                .take(limit)
                .map(|f| {
                    json!({
                        "symbol": symbol.as_str(),
                        "fundingRate": f.rate,
                        "fundingRateTimestamp": f.time.to_string(),
                    })
                })
                .collect();
            let body = ok(json!({"category": "linear", "list": list}), now);
            Ok(Made::json(body.to_string(), keep_for))
        })
        .await
    }
}

/// A successful answer around `result`.
fn ok(result: Value, now: i64) -> Value {
    json!({"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": now})
}

/// The market of `category`: spot or linear (Bybit's default when absent); inverse and
/// option are refused by name.
fn category(p: &Params) -> Result<Kind> {
    match p.get("category").unwrap_or("linear") {
        "spot" => Ok(Kind::Spot),
        "linear" => Ok(Kind::Futures),
        c @ ("inverse" | "option") => Err(params(format!(
            "params error: category {c} is not served by candlecache (spot, linear)"
        ))),
        _ => Err(params("params error: category must be spot or linear")),
    }
}

fn category_name(kind: Kind) -> &'static str {
    if kind == Kind::Spot {
        "spot"
    } else {
        "linear"
    }
}

/// `symbol`, upper case as Bybit requires.
fn symbol(p: &Params) -> Result<Symbol> {
    let raw = p.require("symbol")?;
    if raw.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(Error::UnknownSymbol(raw.to_owned()));
    }
    Ok(raw.parse::<Symbol>()?.with_exchange(Exchange::Bybit))
}

/// `limit`: `default` when absent, at least 1, larger values served as `max`.
fn limit(p: &Params, (default, max): (usize, usize)) -> Result<usize> {
    match p.get("limit").filter(|l| !l.is_empty()) {
        None => Ok(default),
        Some(l) => match l.parse::<i64>() {
            Ok(n) if n >= 1 => Ok((n as usize).min(max)),
            _ => Err(params(format!("params error: limit must be 1 to {max}"))),
        },
    }
}

/// A time parameter in ms, if given.
fn time(p: &Params, key: &str) -> Result<Option<i64>> {
    match p.get(key).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => match v.parse::<i64>() {
            Ok(t) if t >= 0 => Ok(Some(t)),
            _ => Err(params(format!("params error: {key} must be a time in ms"))),
        },
    }
}

/// `instruments-info` of the stored Bybit markets of `kind`'s category, without an
/// upstream: the fields ccxt's `bybit.parse_market` reads.
fn instruments(markets: &[Market], kind: Kind, p: &Params) -> Value {
    let wanted = p.get("symbol");
    let mut seen: Vec<&str> = Vec::new();
    let mut list = Vec::new();
    for m in markets
        .iter()
        .filter(|m| m.exchange == Exchange::Bybit && m.kind == kind)
    {
        if seen.contains(&m.symbol.as_str()) || wanted.is_some_and(|w| w != m.symbol) {
            continue;
        }
        seen.push(&m.symbol);
        let tick = printed(Decimal::new(1, m.price_precision));
        let base = m.base.clone().unwrap_or_default();
        let quote = m.quote.clone().unwrap_or_default();
        let mut item = json!({
            "symbol": m.symbol,
            "baseCoin": base,
            "quoteCoin": quote,
            "status": "Trading",
            "priceFilter": {"tickSize": tick},
            "lotSizeFilter": {"basePrecision": "0.000001", "minOrderQty": "0.000001", "maxOrderQty": "1000000"},
        });
        if kind == Kind::Futures {
            item["contractType"] = json!("LinearPerpetual");
            item["settleCoin"] = json!(quote);
            item["fundingInterval"] = json!(480);
            item["lotSizeFilter"]["qtyStep"] = json!("0.001");
        }
        list.push(item);
    }
    json!({"category": category_name(kind), "list": list, "nextPageCursor": ""})
}
