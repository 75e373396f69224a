//! Funding rates of USD-M perpetual futures, as Binance's `/fapi/v1/fundingRate` lists them.
//!
//! Rates and mark prices are kept as the exchange's decimal strings: a rate has more places
//! than any candle column, and nothing computes with them here, they are only printed back.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Decimal, Error, Result, Symbol};

/// One funding event of a symbol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Funding {
    /// When the funding was settled, epoch ms (not on a grid: Binance's can be a few ms late).
    pub time: i64,
    /// The rate, a decimal string such as `0.00010000` or `-0.00002263`.
    pub rate: String,
    /// The mark price at that time; empty for early records the exchange has none for.
    pub mark_price: String,
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
        });
    }
    out.sort_by_key(|f| f.time);
    out.dedup_by_key(|f| f.time);
    Ok(out)
}

/// Writes funding rows as Binance does, field for field.
pub fn funding_json(symbol: &Symbol, rows: &[Funding]) -> Vec<u8> {
    use std::fmt::Write;
    let mut s = String::with_capacity(rows.len() * 100 + 2);
    s.push('[');
    for (i, f) in rows.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        // The strings were checked to be decimals (or empty), so they need no escaping.
        let _ = write!(
            s,
            r#"{{"symbol":"{symbol}","fundingTime":{},"fundingRate":"{}","markPrice":"{}"}}"#,
            f.time, f.rate, f.mark_price
        );
    }
    s.push(']');
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binance_rows_round_trip_byte_for_byte() {
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
