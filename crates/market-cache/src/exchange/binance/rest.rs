//! Binance's REST market data (`/api/v3`, `/fapi/v1`): klines pages from `startTime`,
//! funding pages, and what its error bodies mean.

use serde_json::Value;

use crate::exchange::{Base, RestApi};
use crate::{Candle, Decimal, Error, Exchange, Funding, Kind, Result, Symbol, Timeframe};

/// Candles one upstream page holds at most (Binance's `limit` maximum).
pub const PAGE: usize = 1000;
/// Binance's USD-M futures API, the futures upstream when the spot one is Binance's.
pub(crate) const BINANCE_FUTURES: &str = "https://fapi.binance.com";

/// Binance's REST protocol (also spoken by another candlecache and the tests' fake).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BinanceRest;

/// Whether `host` is one of Binance's.
pub(crate) fn is_binance_host(host: &str) -> bool {
    host.ends_with("binance.com") || host.ends_with("binance.us")
}

impl RestApi for BinanceRest {
    fn supports(&self, tf: Timeframe) -> bool {
        super::supports(tf)
    }
    fn exchange(&self) -> Exchange {
        Exchange::Binance
    }

    fn page(&self) -> usize {
        PAGE
    }

    fn futures_base(&self, spot_base: &str) -> Option<&'static str> {
        let host = spot_base
            .split_once("://")
            .map_or("", |(_, h)| h)
            .split(['/', ':'])
            .next()
            .unwrap_or("");
        is_binance_host(host).then_some(BINANCE_FUTURES)
    }

    fn base_suffix(&self, base: Base) -> &'static str {
        match base {
            Base::Spot => "/api/v3",
            Base::Futures => "/fapi/v1",
        }
    }

    fn base_of(&self, kind: Kind) -> Base {
        if kind.is_futures() {
            Base::Futures
        } else {
            Base::Spot
        }
    }

    fn base_of_path(&self, path: &str) -> Base {
        if path.starts_with("/fapi/") {
            Base::Futures
        } else {
            Base::Spot
        }
    }

    fn klines_path(&self, symbol: &Symbol, tf: Timeframe, from: i64, limit: usize) -> String {
        let path = match symbol.kind() {
            Kind::Spot => "/api/v3/klines",
            Kind::Futures => "/fapi/v1/klines",
            Kind::Mark => "/fapi/v1/markPriceKlines",
        };
        format!(
            "{path}?symbol={symbol}&interval={tf}&startTime={from}&limit={}",
            limit.clamp(1, PAGE)
        )
    }

    fn parse_klines(&self, body: &[u8], tf: Timeframe) -> Result<Vec<Candle>> {
        parse_klines(body, tf)
    }

    fn funding_path(&self, symbol: &Symbol, from: i64, limit: usize) -> String {
        format!(
            "/fapi/v1/fundingRate?symbol={symbol}&startTime={from}&limit={}",
            limit.clamp(1, PAGE)
        )
    }

    fn parse_funding(&self, body: &[u8], symbol: &Symbol) -> Result<Vec<Funding>> {
        parse_funding(body, symbol)
    }

    fn refusal(&self, symbol: &Symbol, status: u16, body: &[u8]) -> Error {
        refusal(symbol, status, body)
    }
}

/// What a non-2xx answer means: Binance's `-1121` is an unknown symbol.
pub(crate) fn refusal(symbol: &Symbol, status: u16, body: &[u8]) -> Error {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let code = parsed.as_ref().and_then(|v| v.get("code")?.as_i64());
    let msg = parsed
        .as_ref()
        .and_then(|v| v.get("msg")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
    match code {
        Some(-1121) => Error::UnknownSymbol(symbol.to_string()),
        _ => Error::Upstream(format!("HTTP {status}: {msg}")),
    }
}

/// Parses a Binance klines body: rows of `[openTime, "open", "high", "low", "close",
/// "volume", closeTime, "quoteVolume", trades, "takerBase", "takerQuote", "ignore"]`.
/// Every row is validated; rows repeating an open time are dropped; the result is in time
/// order.
pub fn parse_klines(body: &[u8], tf: Timeframe) -> Result<Vec<Candle>> {
    let bad = |i: usize, why: String| Error::Upstream(format!("kline row {i}: {why}"));
    let rows: Vec<Vec<Value>> = serde_json::from_slice(body)
        .map_err(|e| Error::Upstream(format!("klines are not a JSON array of rows: {e}")))?;
    let mut out: Vec<Candle> = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        if row.len() < 6 {
            return Err(bad(i, format!("{} fields, want at least 6", row.len())));
        }
        let dec = |k: usize| -> Result<Option<Decimal>> {
            match row.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => s.parse().map(Some),
                Some(Value::Number(n)) => n.to_string().parse().map(Some),
                Some(other) => Err(Error::InvalidNumber(other.to_string())),
            }
        };
        let req = |k: usize| -> Result<Decimal> {
            dec(k)?.ok_or_else(|| Error::InvalidNumber(format!("field {k} is missing")))
        };
        let open_time = row[0]
            .as_i64()
            .ok_or_else(|| bad(i, format!("open time {} is not an integer", row[0])))?;
        let candle = (|| -> Result<Candle> {
            Ok(Candle {
                open_time,
                open: req(1)?,
                high: req(2)?,
                low: req(3)?,
                close: req(4)?,
                volume: req(5)?,
                quote_volume: dec(7)?,
                trades: row.get(8).and_then(Value::as_u64),
                taker_base: dec(9)?,
                taker_quote: dec(10)?,
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

/// Parses a `/fapi/v1/fundingRate` body: `[{"symbol", "fundingTime", "fundingRate",
/// "markPrice"}]`. Rows of another symbol or with values that are not decimals are refused;
/// the result is in time order with one row per time.
pub fn parse_funding(body: &[u8], symbol: &Symbol) -> Result<Vec<Funding>> {
    let bad = |i: usize, why: String| Error::Upstream(format!("funding row {i}: {why}"));
    let rows: Vec<Value> = serde_json::from_slice(body)
        .map_err(|e| Error::Upstream(format!("funding rates are not a JSON array: {e}")))?;
    let mut out = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let text = |k: &str| row.get(k).and_then(Value::as_str);
        if text("symbol") != Some(symbol.as_str()) {
            return Err(bad(i, format!("symbol is not {symbol}")));
        }
        let time = row
            .get("fundingTime")
            .and_then(Value::as_i64)
            .filter(|t| *t >= 0)
            .ok_or_else(|| bad(i, "fundingTime is not a time".into()))?;
        let rate = text("fundingRate").ok_or_else(|| bad(i, "no fundingRate".into()))?;
        rate.parse::<Decimal>()
            .map_err(|e| bad(i, format!("fundingRate: {e}")))?;
        let mark = text("markPrice").unwrap_or("");
        if !mark.is_empty() {
            mark.parse::<Decimal>()
                .map_err(|e| bad(i, format!("markPrice: {e}")))?;
        }
        out.push(Funding {
            time,
            rate: rate.to_owned(),
            mark_price: mark.to_owned(),
            extra: String::new(),
        });
    }
    out.sort_by_key(|f| f.time);
    out.dedup_by_key(|f| f.time);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::rows::{funding_json, KlineRows};
    use super::*;
    use crate::codec::encoded::Rows;

    const PAGE_JSON: &str = r#"[[1499040000000,"0.01634790","0.80000000","0.01575800","0.01577100","148976.11427815",1499644799999,"2434.19055334",308,"1756.87402397","28.46694368","0"]]"#;
    #[test]
    fn binance_rows_round_trip_byte_for_byte() {
        // The example row of Binance's documentation, as a weekly candle... it opens on a
        // Monday (2017-07-03); its close is a week later less 1 ms.
        let candles = parse_klines(PAGE_JSON.as_bytes(), Timeframe::W1).unwrap();
        assert_eq!(candles.len(), 1);
        assert_eq!(candles[0].trades, Some(308));
        let rows = Rows::write_after(b"[".to_vec(), &candles, Timeframe::W1, &KlineRows::new(8));
        let page = [rows.bytes.as_slice(), b"]"].concat();
        assert_eq!(String::from_utf8(page).unwrap(), PAGE_JSON);
    }

    #[test]
    fn bad_rows_are_named() {
        for (body, want) in [
            (r#"{"code":-1121}"#, "not a JSON array"),
            (r#"[[1,"1"]]"#, "2 fields"),
            (r#"[["x","1","1","1","1","1"]]"#, "not an integer"),
            (r#"[[0,"1","0.5","1","1","1"]]"#, "low 1 is above high 0.5"),
            (r#"[[1,"1","1","1","1","1"]]"#, "grid"),
            (r#"[[0,"abc","1","1","1","1"]]"#, "invalid number"),
        ] {
            let e = parse_klines(body.as_bytes(), Timeframe::M1)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{body}: {e}");
        }
    }

    #[test]
    fn repeated_rows_are_dropped_and_order_restored() {
        let body = r#"[[120000,"1","1","1","1","1"],[60000,"2","2","2","2","2"],[120000,"1","1","1","1","1"]]"#;
        let c = parse_klines(body.as_bytes(), Timeframe::M1).unwrap();
        assert_eq!(
            c.iter().map(|c| c.open_time).collect::<Vec<_>>(),
            [60_000, 120_000]
        );
    }

    #[test]
    fn binance_funding_rows_round_trip_byte_for_byte() {
        let body = r#"[{"symbol":"BTCUSDT","fundingTime":1698768000001,"fundingRate":"-0.00002263","markPrice":"34287.54619963"},{"symbol":"BTCUSDT","fundingTime":1568102400000,"fundingRate":"0.00010000","markPrice":""}]"#;
        let s: Symbol = "BTCUSDT".parse().unwrap();
        let rows = parse_funding(body.as_bytes(), &s).unwrap();
        assert_eq!(rows[0].time, 1_568_102_400_000);
        let back = String::from_utf8(funding_json(&s, &rows)).unwrap();
        let mut want: Vec<Value> = serde_json::from_str(body).unwrap();
        want.reverse();
        assert_eq!(serde_json::from_str::<Vec<Value>>(&back).unwrap(), want);
    }

    #[test]
    fn foreign_or_broken_rows_are_refused() {
        let s: Symbol = "BTCUSDT".parse().unwrap();
        for (body, want) in [
            (r#"{"code":-1121}"#, "not a JSON array"),
            (
                r#"[{"symbol":"ETHUSDT","fundingTime":1,"fundingRate":"0.1"}]"#,
                "symbol",
            ),
            (
                r#"[{"symbol":"BTCUSDT","fundingTime":"x","fundingRate":"0.1"}]"#,
                "fundingTime",
            ),
            (
                r#"[{"symbol":"BTCUSDT","fundingTime":1,"fundingRate":"1\"}"}]"#,
                "fundingRate",
            ),
            (
                r#"[{"symbol":"BTCUSDT","fundingTime":1,"fundingRate":"0.1","markPrice":"<b>"}]"#,
                "markPrice",
            ),
        ] {
            let e = parse_funding(body.as_bytes(), &s).unwrap_err().to_string();
            assert!(e.contains(want), "{body}: {e}");
        }
    }
}
