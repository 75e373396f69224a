//! Bybit's REST market data as an upstream.
//!
//! - Candles: `/v5/market/kline` (`category=spot|linear`) and `/v5/market/mark-price-kline`
//!   (linear), `result.list` newest first, rows of strings `[start, open, high, low,
//!   close, volume, turnover]` (mark: the first five). A page is asked with `start` and
//!   `limit` only, as ccxt asks it: Bybit then answers the candles from the one holding
//!   `start` on (ccxt's fix for its issue 26736 relies on it).
//! - Funding: `/v5/market/funding/history` (linear). Bybit refuses `startTime` alone and
//!   answers `endTime` alone with the latest events up to it, so pages go back from the
//!   end of a range (no empty windows before a listing). ccxt, asked `since`, sends a
//!   window `[since, since + limit x funding interval]` instead.
//! - Errors: HTTP 200 with a non-zero `retCode` (10001 for an unknown symbol); the rate
//!   limit is 600 requests per 5 s per IP, beyond it `retCode` 10006, and 403 "access too
//!   frequent" for an IP banned for at least 10 minutes.

use std::time::Duration;

use serde_json::Value;

use super::interval;
use crate::exchange::{Base, RestApi};
use crate::{Candle, Decimal, Error, Exchange, Funding, Kind, Result, Symbol, Timeframe};

/// Candles one page holds at most (Bybit's `limit` maximum).
const PAGE: usize = 1000;
/// Funding events one page holds at most.
const FUNDING_PAGE: usize = 200;
/// The shortest funding interval Bybit uses, which sizes a funding page's window.
const SHORTEST_FUNDING_MS: i64 = 3_600_000;

/// Bybit's v5 REST protocol (also spoken by another candlecache and the tests' fake).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BybitRest;

impl RestApi for BybitRest {
    fn exchange(&self) -> Exchange {
        Exchange::Bybit
    }

    fn page(&self) -> usize {
        PAGE
    }

    fn funding_page(&self) -> usize {
        FUNDING_PAGE
    }

    fn budget(&self) -> Option<(u32, u64)> {
        Some((600, 5_000))
    }

    fn supports(&self, tf: Timeframe) -> bool {
        interval(tf).is_some()
    }

    fn futures_base(&self, _spot_base: &str) -> Option<&'static str> {
        None
    }

    fn base_suffix(&self, _base: Base) -> &'static str {
        "/v5/market"
    }

    fn base_of(&self, _kind: Kind) -> Base {
        Base::Spot
    }

    fn base_of_path(&self, _path: &str) -> Base {
        Base::Spot
    }

    fn klines_path(&self, symbol: &Symbol, tf: Timeframe, from: i64, limit: usize) -> String {
        let (path, category) = match symbol.kind() {
            Kind::Spot => ("kline", "spot"),
            Kind::Futures => ("kline", "linear"),
            Kind::Mark => ("mark-price-kline", "linear"),
        };
        format!(
            "/v5/market/{path}?category={category}&symbol={symbol}&interval={}&start={from}&limit={}",
            interval(tf).unwrap_or("?"),
            limit.clamp(1, PAGE)
        )
    }

    fn parse_klines(&self, body: &[u8], tf: Timeframe) -> Result<Vec<Candle>> {
        parse_klines(body, tf)
    }

    fn funding_path(&self, symbol: &Symbol, from: i64, limit: usize) -> String {
        let limit = limit.clamp(1, FUNDING_PAGE);
        let end = from.saturating_add(limit as i64 * SHORTEST_FUNDING_MS) - 1;
        format!(
            "/v5/market/funding/history?category=linear&symbol={symbol}&startTime={from}&endTime={end}&limit={limit}"
        )
    }

    fn funding_before_path(&self, symbol: &Symbol, end: i64, limit: usize) -> Option<String> {
        Some(format!(
            "/v5/market/funding/history?category=linear&symbol={symbol}&endTime={}&limit={}",
            end - 1,
            limit.clamp(1, FUNDING_PAGE)
        ))
    }

    fn parse_funding(&self, body: &[u8], symbol: &Symbol) -> Result<Vec<Funding>> {
        parse_funding(body, symbol)
    }

    fn envelope_error(&self, symbol: &Symbol, body: &[u8]) -> Option<Error> {
        let (code, msg) = ret_code(body)?;
        Some(match code {
            0 => return None,
            10001 if msg.to_ascii_lowercase().contains("symbol") => {
                Error::UnknownSymbol(symbol.to_string())
            }
            _ => Error::Upstream(format!("bybit retCode {code}: {msg}")),
        })
    }

    fn ban(&self, status: u16, body: &[u8]) -> Option<Duration> {
        match (status, ret_code(body).map(|(c, _)| c)) {
            // The IP is banned for at least 10 minutes.
            (403, _) | (_, Some(10018)) => Some(Duration::from_secs(600)),
            // Over the 5 s window's limit: the next window may be asked.
            (_, Some(10006)) => Some(Duration::from_secs(5)),
            _ => None,
        }
    }

    fn refusal(&self, symbol: &Symbol, status: u16, body: &[u8]) -> Error {
        match self.envelope_error(symbol, body) {
            Some(e) => e,
            None => Error::Upstream(format!(
                "bybit HTTP {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            )),
        }
    }
}

/// `retCode` and `retMsg` of a Bybit answer, when it is one.
fn ret_code(body: &[u8]) -> Option<(i64, String)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let code = v.get("retCode")?.as_i64()?;
    let msg = v.get("retMsg").and_then(Value::as_str).unwrap_or("");
    Some((code, msg.to_owned()))
}

/// `result.list` of a successful answer.
fn list(body: &[u8], what: &str) -> Result<Vec<Value>> {
    let mut v: Value = serde_json::from_slice(body)
        .map_err(|e| Error::Upstream(format!("bybit {what} are not JSON: {e}")))?;
    match v.get("retCode").and_then(Value::as_i64) {
        Some(0) => {}
        _ => {
            return Err(Error::Upstream(format!(
                "bybit {what}: not a successful answer"
            )))
        }
    }
    match v.pointer_mut("/result/list").map(Value::take) {
        Some(Value::Array(rows)) => Ok(rows),
        _ => Err(Error::Upstream(format!("bybit {what}: no result.list"))),
    }
}

/// Reads a `/v5/market/kline` or `mark-price-kline` body: rows newest first, each
/// validated, returned in time order with one row per time.
pub(crate) fn parse_klines(body: &[u8], tf: Timeframe) -> Result<Vec<Candle>> {
    let bad = |i: usize, why: String| Error::Upstream(format!("bybit kline row {i}: {why}"));
    let rows = list(body, "klines")?;
    let mut out = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let Some(row) = row.as_array().filter(|r| r.len() >= 5) else {
            return Err(bad(i, "not an array of at least 5 strings".into()));
        };
        let dec = |k: usize| -> Result<Option<Decimal>> {
            match row.get(k) {
                None => Ok(None),
                Some(Value::String(s)) => s.parse().map(Some),
                Some(other) => Err(Error::InvalidNumber(other.to_string())),
            }
        };
        let req = |k: usize| -> Result<Decimal> {
            dec(k)?.ok_or_else(|| Error::InvalidNumber(format!("field {k} is missing")))
        };
        let open_time = row[0]
            .as_str()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| bad(i, format!("start {} is not a time string", row[0])))?;
        let candle = (|| -> Result<Candle> {
            Ok(Candle {
                open_time,
                open: req(1)?,
                high: req(2)?,
                low: req(3)?,
                close: req(4)?,
                // Mark-price candles have no volume; Binance writes 0 for theirs.
                volume: match dec(5)? {
                    Some(v) => v,
                    None => "0".parse()?,
                },
                quote_volume: dec(6)?,
                trades: None,
                taker_base: None,
                taker_quote: None,
                volume_ccy: None,
            })
        })()
        .map_err(|e| bad(i, e.to_string()))?;
        candle.validate(tf).map_err(|why| bad(i, why))?;
        out.push(candle);
    }
    out.sort_by_key(|c| c.open_time);
    out.dedup_by_key(|c| c.open_time);
    Ok(out)
}

/// Reads a `/v5/market/funding/history` body: `{symbol, fundingRate,
/// fundingRateTimestamp}` newest first; returned in time order, one per time.
pub(crate) fn parse_funding(body: &[u8], symbol: &Symbol) -> Result<Vec<Funding>> {
    let bad = |i: usize, why: String| Error::Upstream(format!("bybit funding row {i}: {why}"));
    let mut out = Vec::new();
    for (i, row) in list(body, "funding rates")?.iter().enumerate() {
        let text = |k: &str| row.get(k).and_then(Value::as_str);
        if text("symbol") != Some(symbol.as_str()) {
            return Err(bad(i, format!("symbol is not {symbol}")));
        }
        let time = text("fundingRateTimestamp")
            .and_then(|t| t.parse::<i64>().ok())
            .filter(|t| *t >= 0)
            .ok_or_else(|| bad(i, "fundingRateTimestamp is not a time".into()))?;
        let rate = text("fundingRate").ok_or_else(|| bad(i, "no fundingRate".into()))?;
        rate.parse::<Decimal>()
            .map_err(|e| bad(i, format!("fundingRate: {e}")))?;
        out.push(Funding {
            time,
            rate: rate.to_owned(),
            mark_price: String::new(),
            extra: String::new(),
        });
    }
    out.sort_by_key(|f| f.time);
    out.dedup_by_key(|f| f.time);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_read_newest_first_into_time_order_exactly() {
        let body = br#"{"retCode":0,"retMsg":"OK","result":{"category":"spot","symbol":"BTCUSDT","list":[["1670605200000","17071.5","17071.5","17061","17071","4177","0.24469757"],["1670601600000","17086.5","17088","16978","17071.5","6356","0.37288112"]]},"retExtInfo":{},"time":1672025956592}"#;
        let c = parse_klines(body, Timeframe::H1).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].open_time, 1_670_601_600_000);
        assert_eq!(c[0].close.to_string(), "17071.5");
        assert_eq!(c[1].quote_volume.unwrap().to_string(), "0.24469757");
        let mark = br#"{"retCode":0,"retMsg":"OK","result":{"category":"linear","symbol":"BTCUSDT","list":[["1670608800000","17164.16","17164.16","17121.5","17131.64"]]},"retExtInfo":{},"time":1}"#;
        let m = parse_klines(mark, Timeframe::H1).unwrap();
        assert_eq!(m[0].volume.to_string(), "0");
        assert!(
            parse_klines(br#"{"retCode":0,"result":{"list":[["x"]]}}"#, Timeframe::H1).is_err()
        );
    }

    #[test]
    fn refusals_in_the_body_are_told_apart_from_pages() {
        let api = BybitRest;
        let s: Symbol = "NOPEUSDT".parse().unwrap();
        let unknown = br#"{"retCode":10001,"retMsg":"Not supported symbols","result":{},"retExtInfo":{},"time":1}"#;
        assert!(matches!(
            api.envelope_error(&s, unknown),
            Some(Error::UnknownSymbol(_))
        ));
        let page = br#"{"retCode":0,"retMsg":"OK","result":{"list":[]}}"#;
        assert!(api.envelope_error(&s, page).is_none());
        let busy = br#"{"retCode":10006,"retMsg":"Too many visits!","result":{}}"#;
        assert_eq!(api.ban(200, busy), Some(Duration::from_secs(5)));
        assert_eq!(
            api.ban(403, b"access too frequent"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(api.ban(200, page), None);
    }

    #[test]
    fn requests_are_written_as_ccxt_writes_them() {
        let api = BybitRest;
        let s: Symbol = "btcusdt".parse().unwrap();
        assert_eq!(
            api.klines_path(&s.clone().with_kind(Kind::Mark), Timeframe::D1, 0, 5000),
            "/v5/market/mark-price-kline?category=linear&symbol=BTCUSDT&interval=D&start=0&limit=1000"
        );
        assert_eq!(
            api.funding_before_path(&s, 1_000, 500).unwrap(),
            "/v5/market/funding/history?category=linear&symbol=BTCUSDT&endTime=999&limit=200"
        );
        let f = br#"{"retCode":0,"retMsg":"OK","result":{"category":"linear","list":[{"symbol":"BTCUSDT","fundingRate":"0.0001","fundingRateTimestamp":"1672041600000"},{"symbol":"BTCUSDT","fundingRate":"-0.00002263","fundingRateTimestamp":"1672012800000"}]}}"#;
        let rows = parse_funding(f, &s).unwrap();
        assert_eq!(rows[0].rate, "-0.00002263");
        assert_eq!(rows[1].time, 1_672_041_600_000);
    }
}
