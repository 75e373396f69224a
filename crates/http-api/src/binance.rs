//! The Binance-compatible market-data calls: `/api/v3/klines`, `exchangeInfo`, `time`
//! and `ping`, with Binance's parameters, row format and error bodies, so ccxt and
//! freqtrade work with only the base URL changed.

use bytes::Bytes;
use hyper::{Request, StatusCode};
use market_cache::{Fill, Kind, KlineRows, Request as ReadRequest, Symbol, Timeframe, PAGE};
use serde_json::{json, Value};

use crate::app::App;
use crate::query::Params;
use crate::reply::Reply;
use crate::{Error, Result};

/// Binance's default `limit`.
const DEFAULT_LIMIT: usize = 500;
/// The futures API's largest `limit` for klines.
const FUTURES_MAX_LIMIT: usize = 1500;

pub(crate) fn binance(status: StatusCode, code: i32, msg: impl Into<String>) -> Error {
    Error::Binance {
        status,
        code,
        msg: msg.into(),
    }
}

pub(crate) fn illegal(param: &str, range: &str) -> Error {
    binance(
        StatusCode::BAD_REQUEST,
        -1100,
        format!("Illegal characters found in parameter '{param}'; legal range is '{range}'."),
    )
}

/// Our errors in Binance's words and codes.
pub(crate) fn to_binance(e: Error) -> Error {
    let bad = StatusCode::BAD_REQUEST;
    match e {
        Error::Binance { .. } | Error::NotFound(_) | Error::MethodNotAllowed { .. } => e,
        Error::DuplicateParameter(p) => {
            binance(bad, -1101, format!("Duplicate values for parameter '{p}'."))
        }
        Error::MissingParameter(p) => binance(
            bad,
            -1102,
            format!("Mandatory parameter '{p}' was not sent, was empty/null, or malformed."),
        ),
        Error::InvalidSymbol(_) | Error::UnknownSymbol(_) => binance(bad, -1121, "Invalid symbol."),
        Error::InvalidTimeframe(_) => binance(bad, -1120, "Invalid interval."),
        Error::InvalidFormat(m) | Error::InvalidTime(m) => binance(bad, -1100, m),
        Error::Upstream(m) => binance(StatusCode::BAD_GATEWAY, -1000, m),
        Error::UpstreamTimeout(m) => binance(StatusCode::GATEWAY_TIMEOUT, -1007, m),
        Error::Busy(m) => binance(StatusCode::SERVICE_UNAVAILABLE, -1008, m),
        Error::Internal(ref detail) | Error::Config(ref detail) => {
            // The client gets no detail; the operator must.
            eprintln!("candlecache: internal error on a Binance route: {detail}");
            binance(e.status(), -1000, e.to_string())
        }
        other => binance(other.status(), -1000, other.to_string()),
    }
}

/// `startTime`, `endTime` (inclusive) and `limit` (`default` when absent, at most `max`)
/// as Binance checks them: a limit of 0 is -1130, a start after the end -1023.
pub(crate) fn range(
    p: &Params,
    default: usize,
    max: usize,
) -> Result<(Option<i64>, Option<i64>, usize)> {
    let start = number(p, "startTime")?;
    let end = number(p, "endTime")?;
    let limit = match number(p, "limit")? {
        None => default,
        Some(0) => {
            return Err(binance(
                StatusCode::BAD_REQUEST,
                -1130,
                "Invalid data sent for a parameter: 'limit' must be at least 1.",
            ))
        }
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX).min(max),
    };
    if let (Some(s), Some(e)) = (start, end) {
        if s > e {
            return Err(binance(
                StatusCode::BAD_REQUEST,
                -1023,
                "Start time is greater than end time.",
            ));
        }
    }
    Ok((start, end, limit))
}

/// An optional integer parameter in Binance's `^[0-9]{1,20}$`.
fn number(p: &Params, name: &str) -> Result<Option<i64>> {
    match p.get(name) {
        None | Some("") => Ok(None),
        Some(v) if v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit()) => v
            .parse()
            .map(Some)
            .map_err(|_| illegal(name, "^[0-9]{1,20}$")),
        Some(_) => Err(illegal(name, "^[0-9]{1,20}$")),
    }
}

impl App {
    pub(crate) async fn binance<B>(&self, call: &str, req: &Request<B>) -> Result<Reply> {
        let p = Params::parse(req.uri().query())?;
        match call {
            "klines" => self.klines(req, &p, Kind::Spot).await,
            "exchangeInfo" => self.exchange_info(req.uri().query(), &p, false).await,
            // The read path's clock: the one the live edge is judged by.
            "time" => Ok(Reply::json(json!({"serverTime": self.read.now()}))),
            _ => Ok(Reply::json(json!({}))),
        }
    }

    /// Klines of `kind`: spot as `/api/v3/klines` (limit at most 1000, 8 places), futures
    /// and mark price as `/fapi/v1` (limit at most 1500, no `1s`, the symbol's own places).
    pub(crate) async fn klines<B>(
        &self,
        req: &Request<B>,
        p: &Params,
        kind: Kind,
    ) -> Result<Reply> {
        let raw = p.require("symbol")?;
        if raw.len() > 20
            || !raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(illegal("symbol", "^[A-Z0-9-_.]{1,20}$"));
        }
        let symbol = raw.parse::<Symbol>()?.with_kind(kind);
        let tf: Timeframe = p.require("interval")?.parse()?;
        if kind.is_futures() && tf == Timeframe::S1 {
            return Err(Error::InvalidTimeframe("1s".into()));
        }
        let (max_limit, places) = if kind.is_futures() {
            (FUTURES_MAX_LIMIT, 0)
        } else {
            (PAGE, 8)
        };
        let (start, end_incl, limit) = range(p, DEFAULT_LIMIT, max_limit)?;
        if let Some(tz) = p.get("timeZone") {
            if !matches!(tz, "0" | "+0" | "-0" | "00:00" | "+00:00" | "-00:00" | "") {
                return Err(binance(
                    StatusCode::BAD_REQUEST,
                    -1130,
                    "Data sent for parameter 'timeZone' is not valid: only UTC is served.",
                ));
            }
        }
        let now = self.read.now();
        // Binance: startTime <= openTime <= endTime; without startTime, exactly the latest
        // `limit` candles up to endTime (or now, the last one still forming).
        let end = end_incl.map_or_else(|| tf.next(now), |e| e.saturating_add(1));
        let gzip = crate::reply::accepts_gzip(req);
        let key = format!(
            "klines|{}|{tf}|{start:?}|{end}|{limit}|{gzip}",
            symbol.key()
        );
        if let Some(hit) = self.cached_reply(&key) {
            return Ok(hit);
        }
        let mut answer = self
            .read
            .get_rows(
                &ReadRequest {
                    symbol,
                    timeframe: tf,
                    start,
                    end,
                    limit,
                    fill: Fill::None,
                },
                &KlineRows::new(places),
                vec![b'['],
            )
            .await?;
        let mut body = std::mem::take(&mut answer.candles.bytes);
        body.push(b']');
        let mut body = Bytes::from(body);
        let gzip = gzip && body.len() >= crate::reply::GZIP_MIN_BYTES;
        if gzip {
            body = crate::reply::gzip_bytes(&body);
        }
        let ttl = answer.max_age.map_or(crate::app::RESPONSE_TTL, |a| {
            a.min(crate::app::RESPONSE_TTL)
        });
        self.cache_reply(&key, "application/json", gzip, &body, ttl);
        Ok(Reply {
            body,
            gzip,
            ..Reply::json(Value::Null)
        })
    }

    /// Passed through to the upstream (and cached), or built from the store without one;
    /// `/fapi/v1/exchangeInfo` for the futures market.
    pub(crate) async fn exchange_info(
        &self,
        query: Option<&str>,
        p: &Params,
        futures: bool,
    ) -> Result<Reply> {
        if self.read.has_upstream() {
            let path = if futures {
                "/fapi/v1/exchangeInfo"
            } else {
                "/api/v3/exchangeInfo"
            };
            return self
                .pass_through(path, query, crate::app::RESPONSE_TTL)
                .await;
        }
        Ok(Reply {
            body: Bytes::from(self.local_exchange_info(p, futures).await?.to_string()),
            ..Reply::json(Value::Null)
        })
    }

    /// `path?query` as the upstream answers it, kept `ttl` when it succeeded: market data
    /// candlecache does not store (exchangeInfo, depth, tickers) costs the exchange one
    /// request per `ttl` however many clients ask, within the client's weight budget.
    pub(crate) async fn pass_through(
        &self,
        path: &str,
        query: Option<&str>,
        ttl: std::time::Duration,
    ) -> Result<Reply> {
        if !self.read.has_upstream() {
            return Err(Error::Upstream(format!(
                "{path} is live exchange data and no upstream is configured"
            )));
        }
        let path = match query {
            Some(q) if !q.is_empty() => format!("{path}?{q}"),
            _ => path.to_owned(),
        };
        let key = format!("raw|{path}");
        if let Some(hit) = self.cached_reply(&key) {
            return Ok(hit);
        }
        let Some((status, body)) = self.read.pass_through(&path).await? else {
            return Err(Error::Upstream(format!(
                "{path}: no upstream is configured"
            )));
        };
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
        if status.is_success() {
            self.cache_reply(&key, "application/json", false, &body, ttl);
        }
        Ok(Reply {
            status,
            body,
            ..Reply::json(Value::Null)
        })
    }

    async fn local_exchange_info(&self, p: &Params, futures: bool) -> Result<Value> {
        let markets = self.read.markets().await?;
        let wanted: Option<Vec<String>> = match (p.get("symbol"), p.get("symbols")) {
            (Some(s), _) => Some(vec![s.to_ascii_uppercase()]),
            (None, Some(list)) => Some(
                serde_json::from_str::<Vec<String>>(list)
                    .map_err(|_| {
                        illegal(
                            "symbols",
                            "^\\[(\"[A-Z0-9-_.]{1,20}\"(,\"[A-Z0-9-_.]{1,20}\"){0,}){0,1}\\]$",
                        )
                    })?
                    .into_iter()
                    .map(|s| s.to_ascii_uppercase())
                    .collect(),
            ),
            _ => None,
        };
        let mut symbols: Vec<Value> = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        // Futures are listed by their trade series (a mark-price series alone is no market).
        let listed = if futures { Kind::Futures } else { Kind::Spot };
        for m in markets.iter().filter(|m| m.kind == listed) {
            if seen.contains(&m.symbol.as_str()) {
                continue;
            }
            if wanted.as_ref().is_some_and(|w| !w.contains(&m.symbol)) {
                continue;
            }
            seen.push(&m.symbol);
            symbols.push(if futures {
                futures_symbol_info(m)
            } else {
                symbol_info(m)
            });
        }
        if let Some(w) = &wanted {
            if w.iter().any(|s| !seen.contains(&s.as_str())) {
                return Err(Error::UnknownSymbol(w.join(",")));
            }
        }
        Ok(json!({
            "timezone": "UTC",
            "serverTime": self.read.now(),
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000}
            ],
            "exchangeFilters": [],
            "symbols": symbols,
        }))
    }
}

/// A USD-M perpetual as Binance's futures exchangeInfo describes one, from what the store
/// knows (the fields ccxt's binanceusdm reads).
fn futures_symbol_info(m: &market_cache::Market) -> Value {
    let (base, quote) = match (&m.base, &m.quote) {
        (Some(b), Some(q)) => (b.clone(), q.clone()),
        _ => (m.symbol.clone(), "UNKNOWN".to_owned()),
    };
    let places = usize::from(m.price_precision.min(8));
    let tick = if places == 0 {
        "1".to_owned()
    } else {
        format!("0.{}1", "0".repeat(places - 1))
    };
    json!({
        "symbol": m.symbol,
        "pair": m.symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": 4_133_404_800_000i64,
        "onboardDate": m.first_time.unwrap_or(0),
        "status": "TRADING",
        "baseAsset": base,
        "quoteAsset": quote,
        "marginAsset": quote,
        "pricePrecision": m.price_precision,
        "quantityPrecision": 3,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000", "tickSize": tick},
            {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000000", "stepSize": "0.001"},
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0.001", "maxQty": "1000000", "stepSize": "0.001"},
            {"filterType": "MIN_NOTIONAL", "notional": "5"}
        ],
        "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    })
}

/// A spot market entry as Binance describes one, from what the store knows.
fn symbol_info(m: &market_cache::Market) -> Value {
    let (base, quote) = match (&m.base, &m.quote) {
        (Some(b), Some(q)) => (b.clone(), q.clone()),
        // Unknown split: the whole name as base keeps ccxt's symbol unique.
        _ => (m.symbol.clone(), "UNKNOWN".to_owned()),
    };
    let places = usize::from(m.price_precision.min(8));
    let tick = if places == 0 {
        "1.00000000".to_owned()
    } else {
        format!("0.{}1{}", "0".repeat(places - 1), "0".repeat(8 - places))
    };
    json!({
        "symbol": m.symbol,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": true,
        "ocoAllowed": true,
        "otoAllowed": false,
        "quoteOrderQtyMarketAllowed": true,
        "allowTrailingStop": true,
        "cancelReplaceAllowed": true,
        "isSpotTradingAllowed": true,
        "isMarginTradingAllowed": false,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000.00000000", "tickSize": tick},
            {"filterType": "LOT_SIZE", "minQty": "0.00000001", "maxQty": "9000000.00000000", "stepSize": "0.00000001"},
            {"filterType": "NOTIONAL", "minNotional": "0.00000000", "applyMinToMarket": false, "maxNotional": "9000000.00000000", "applyMaxToMarket": false, "avgPriceMins": 5}
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    })
}
