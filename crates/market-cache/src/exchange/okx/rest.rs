//! OKX's REST market data as an upstream.
//!
//! - Candles: `/api/v5/market/candles` (the latest 1,440 candles only) and
//!   `history-candles` (older), `mark-price-candles` and `history-mark-price-candles`;
//!   `instId` is OKX's id (`BTC-USDT`, `BTC-USDT-SWAP`), `bar` its bar name. `data` is
//!   newest first, rows of strings `[ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm]`
//!   (mark: `[ts, o, h, l, c, confirm]`). A page is asked as ccxt asks it: the window
//!   `before = from - 1`, `after = from + limit candles` (both exclusive), so it holds
//!   every candle of the window and proves the window complete however few it has.
//! - Funding: `/api/v5/public/funding-rate-history`, newest first; `after` alone (older
//!   than) pages back from the end of a range, as for Bybit.
//! - Limits, from ccxt's request costs at 100 ms a unit: candles 40 requests per 2 s,
//!   history and mark candles 20, funding history 10; beyond them HTTP 429 with code
//!   `50011`. Errors come as `{"code": "51001", "msg": …, "data": []}` (51001: no such
//!   instrument).

use std::time::Duration;

use serde_json::Value;

use super::bar;
use crate::exchange::{Base, Pace, RestApi};
use crate::{Candle, Decimal, Error, Exchange, Funding, Kind, Result, Symbol, Timeframe};

/// Candles a page holds at most (300 for trades, 100 for mark price).
const PAGE: usize = 300;
const MARK_PAGE: usize = 100;
/// Funding events a page holds at most.
const FUNDING_PAGE: usize = 100;
/// The recent endpoint reaches this many candles back; older ones come from the history
/// endpoint. A margin of 40 candles keeps a page near the border on the history side.
const RECENT: i64 = 1_400;

/// OKX's v5 REST protocol (also spoken by another candlecache and the tests' fake).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OkxRest;

/// The end (exclusive) of the window of `limit` candles from `from`.
fn window_end(tf: Timeframe, from: i64, limit: usize) -> i64 {
    match tf.fixed_ms() {
        Some(len) => from.saturating_add(len.saturating_mul(limit as i64)),
        None => (0..limit).fold(from, |t, _| tf.next(t)),
    }
}

impl RestApi for OkxRest {
    fn exchange(&self) -> Exchange {
        Exchange::Okx
    }

    fn page(&self) -> usize {
        PAGE
    }

    fn page_of(&self, kind: Kind) -> usize {
        if kind == Kind::Mark {
            MARK_PAGE
        } else {
            PAGE
        }
    }

    fn funding_page(&self) -> usize {
        FUNDING_PAGE
    }

    fn pace(&self, path: &str) -> Option<Pace> {
        let endpoint = path.split('?').next().unwrap_or(path);
        let per_2s = match endpoint.rsplit('/').next().unwrap_or("") {
            "candles" => 40,
            "funding-rate-history" => 10,
            _ => 20,
        };
        Some(Pace {
            endpoint: endpoint.to_owned(),
            limit: per_2s,
            window_ms: 2_000,
        })
    }

    fn supports(&self, tf: Timeframe) -> bool {
        bar(tf).is_some()
    }

    fn window(&self, tf: Timeframe, from: i64, limit: usize) -> Option<i64> {
        Some(window_end(tf, from, limit))
    }

    fn futures_base(&self, _spot_base: &str) -> Option<&'static str> {
        None
    }

    fn base_suffix(&self, _base: Base) -> &'static str {
        "/api/v5"
    }

    fn base_of(&self, _kind: Kind) -> Base {
        Base::Spot
    }

    fn base_of_path(&self, _path: &str) -> Base {
        Base::Spot
    }

    fn klines_path(&self, symbol: &Symbol, tf: Timeframe, from: i64, limit: usize) -> String {
        let limit = limit.clamp(1, self.page_of(symbol.kind()));
        let len = tf.fixed_ms().unwrap_or(31 * 86_400_000);
        let old = from < cache_core::wall_ms().saturating_sub(len.saturating_mul(RECENT));
        let path = match (symbol.kind(), old) {
            (Kind::Mark, false) => "mark-price-candles",
            (Kind::Mark, true) => "history-mark-price-candles",
            (_, false) => "candles",
            (_, true) => "history-candles",
        };
        format!(
            "/api/v5/market/{path}?instId={symbol}&bar={}&before={}&after={}&limit={limit}",
            bar(tf).unwrap_or_default(),
            from - 1,
            window_end(tf, from, limit)
        )
    }

    fn parse_klines(&self, body: &[u8], tf: Timeframe) -> Result<Vec<Candle>> {
        parse_klines(body, tf)
    }

    fn funding_path(&self, symbol: &Symbol, from: i64, limit: usize) -> String {
        format!(
            "/api/v5/public/funding-rate-history?instId={symbol}&before={}&limit={}",
            from - 1,
            limit.clamp(1, FUNDING_PAGE)
        )
    }

    fn funding_before_path(&self, symbol: &Symbol, end: i64, limit: usize) -> Option<String> {
        Some(format!(
            "/api/v5/public/funding-rate-history?instId={symbol}&after={end}&limit={}",
            limit.clamp(1, FUNDING_PAGE)
        ))
    }

    fn parse_funding(&self, body: &[u8], symbol: &Symbol) -> Result<Vec<Funding>> {
        parse_funding(body, symbol)
    }

    fn envelope_error(&self, symbol: &Symbol, body: &[u8]) -> Option<Error> {
        let (code, msg) = code(body)?;
        Some(match code.as_str() {
            "0" => return None,
            "51001" => Error::UnknownSymbol(symbol.to_string()),
            _ => Error::Upstream(format!("okx code {code}: {msg}")),
        })
    }

    fn ban(&self, status: u16, body: &[u8]) -> Option<Duration> {
        // Over an endpoint's 2 s window: the next window may be asked.
        (status == 429 || code(body).is_some_and(|(c, _)| c == "50011"))
            .then(|| Duration::from_secs(2))
    }

    fn refusal(&self, symbol: &Symbol, status: u16, body: &[u8]) -> Error {
        match self.envelope_error(symbol, body) {
            Some(e) => e,
            None => Error::Upstream(format!(
                "okx HTTP {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            )),
        }
    }
}

/// `code` and `msg` of an OKX answer, when it is one.
fn code(body: &[u8]) -> Option<(String, String)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let code = v.get("code")?.as_str()?.to_owned();
    let msg = v.get("msg").and_then(Value::as_str).unwrap_or("");
    Some((code, msg.to_owned()))
}

/// `data` of a successful answer.
fn data(body: &[u8], what: &str) -> Result<Vec<Value>> {
    let mut v: Value = serde_json::from_slice(body)
        .map_err(|e| Error::Upstream(format!("okx {what} are not JSON: {e}")))?;
    if v.get("code").and_then(Value::as_str) != Some("0") {
        return Err(Error::Upstream(format!(
            "okx {what}: not a successful answer"
        )));
    }
    match v.get_mut("data").map(Value::take) {
        Some(Value::Array(rows)) => Ok(rows),
        _ => Err(Error::Upstream(format!("okx {what}: no data"))),
    }
}

/// One candle row as OKX writes it (REST and streams alike): 9 strings, or 6 for mark
/// price (no volumes); the last is `confirm`. Returns the candle and whether it is final.
pub(crate) fn candle_row(
    row: &Value,
    tf: Timeframe,
) -> std::result::Result<(Candle, bool), String> {
    let row = row
        .as_array()
        .filter(|r| r.len() == 9 || r.len() == 6)
        .ok_or("not an array of 9 (or 6) strings")?;
    let text = |k: usize| {
        row[k]
            .as_str()
            .ok_or_else(|| format!("field {k} is not a string"))
    };
    let dec = |k: usize| -> std::result::Result<Decimal, String> {
        text(k)?
            .parse()
            .map_err(|e: Error| format!("field {k}: {e}"))
    };
    let open_time = text(0)?
        .parse::<i64>()
        .map_err(|_| format!("ts {} is not a time", row[0]))?;
    let full = row.len() == 9;
    let c = Candle {
        open_time,
        open: dec(1)?,
        high: dec(2)?,
        low: dec(3)?,
        close: dec(4)?,
        // Mark-price candles have no volume; Binance writes 0 for theirs.
        volume: if full { dec(5)? } else { Decimal::new(0, 0) },
        quote_volume: if full { Some(dec(7)?) } else { None },
        trades: None,
        taker_base: None,
        taker_quote: None,
        volume_ccy: if full { Some(dec(6)?) } else { None },
    };
    c.validate(tf)?;
    let closed = match text(row.len() - 1)? {
        "1" => true,
        "0" => false,
        other => return Err(format!("confirm `{other}` is neither 0 nor 1")),
    };
    Ok((c, closed))
}

/// Reads a candles body: rows newest first, each validated, returned in time order with
/// one row per time.
pub(crate) fn parse_klines(body: &[u8], tf: Timeframe) -> Result<Vec<Candle>> {
    let mut out = Vec::new();
    for (i, row) in data(body, "candles")?.iter().enumerate() {
        let (c, _) = candle_row(row, tf)
            .map_err(|why| Error::Upstream(format!("okx candle row {i}: {why}")))?;
        out.push(c);
    }
    out.sort_by_key(|c| c.open_time);
    out.dedup_by_key(|c| c.open_time);
    Ok(out)
}

/// Reads a `funding-rate-history` body: `{instId, fundingRate, realizedRate, fundingTime,
/// method, formulaType, instType}` newest first; returned in time order, one per time,
/// with the fields besides the rate and time kept as OKX wrote them.
pub(crate) fn parse_funding(body: &[u8], symbol: &Symbol) -> Result<Vec<Funding>> {
    let bad = |i: usize, why: String| Error::Upstream(format!("okx funding row {i}: {why}"));
    let mut out = Vec::new();
    for (i, row) in data(body, "funding rates")?.into_iter().enumerate() {
        let Value::Object(mut row) = row else {
            return Err(bad(i, "not an object".into()));
        };
        if row.get("instId").and_then(Value::as_str) != Some(symbol.as_str()) {
            return Err(bad(i, format!("instId is not {symbol}")));
        }
        let time = row
            .get("fundingTime")
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<i64>().ok())
            .filter(|t| *t >= 0)
            .ok_or_else(|| bad(i, "fundingTime is not a time".into()))?;
        let rate = match row.remove("fundingRate") {
            Some(Value::String(r)) => r,
            _ => return Err(bad(i, "no fundingRate".into())),
        };
        rate.parse::<Decimal>()
            .map_err(|e| bad(i, format!("fundingRate: {e}")))?;
        for key in ["instId", "instType", "fundingTime"] {
            row.remove(key);
        }
        out.push(Funding {
            time,
            rate,
            mark_price: String::new(),
            extra: Value::Object(row).to_string(),
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
        // ccxt's example of a swap page (contracts, base and quote volume).
        let body = br#"{"code":"0","msg":"","data":[["1678928760000","24341.4","24344","24313.2","24323","628","2.5819","62800","0"],["1678928700000","24324.1","24347.6","24321.7","24341.4","2565","10.5401","256500","1"]]}"#;
        let c = parse_klines(body, Timeframe::M1).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].open_time, 1_678_928_700_000);
        assert_eq!(c[0].volume.to_string(), "2565");
        assert_eq!(c[0].volume_ccy.unwrap().to_string(), "10.5401");
        assert_eq!(c[1].quote_volume.unwrap().to_string(), "62800");
        let mark = br#"{"code":"0","msg":"","data":[["1678928760000","24341.4","24344","24313.2","24323","1"]]}"#;
        let m = parse_klines(mark, Timeframe::M1).unwrap();
        assert_eq!(
            (m[0].volume.to_string(), m[0].volume_ccy),
            ("0".into(), None)
        );
        assert!(parse_klines(br#"{"code":"0","data":[["x"]]}"#, Timeframe::M1).is_err());
    }

    #[test]
    fn refusals_in_the_body_are_told_apart_from_pages() {
        let api = OkxRest;
        let s: Symbol = "NOPE-USDT".parse().unwrap();
        let unknown = br#"{"code":"51001","msg":"Instrument ID does not exist","data":[]}"#;
        assert!(matches!(
            api.envelope_error(&s, unknown),
            Some(Error::UnknownSymbol(_))
        ));
        let page = br#"{"code":"0","msg":"","data":[]}"#;
        assert!(api.envelope_error(&s, page).is_none());
        let busy = br#"{"code":"50011","msg":"Too Many Requests","data":[]}"#;
        assert_eq!(api.ban(429, busy), Some(Duration::from_secs(2)));
        assert_eq!(api.ban(200, page), None);
    }

    #[test]
    fn requests_are_written_as_ccxt_writes_them() {
        let api = OkxRest;
        let s: Symbol = "BTC-USDT-SWAP".parse().unwrap();
        let t = 1_700_000_000_000 - 1_700_000_000_000 % 60_000;
        assert_eq!(
            api.klines_path(&s.clone().with_kind(Kind::Mark), Timeframe::M1, t, 5000),
            format!(
                "/api/v5/market/history-mark-price-candles?instId=BTC-USDT-SWAP&bar=1m&before={}&after={}&limit=100",
                t - 1,
                t + 100 * 60_000
            )
        );
        let recent = Timeframe::H1.floor(cache_core::wall_ms());
        assert!(api
            .klines_path(&s, Timeframe::H1, recent, 300)
            .starts_with("/api/v5/market/candles?"));
        assert_eq!(
            api.funding_before_path(&s, 1_000, 500).unwrap(),
            "/api/v5/public/funding-rate-history?instId=BTC-USDT-SWAP&after=1000&limit=100"
        );
        let f = br#"{"code":"0","msg":"","data":[{"formulaType":"noRate","fundingRate":"0.0000746572581679","fundingTime":"1703059200000","instId":"BTC-USDT-SWAP","instType":"SWAP","method":"next_period","realizedRate":"0.0000746572581679"},{"formulaType":"noRate","fundingRate":"-0.0001","fundingTime":"1703030400000","instId":"BTC-USDT-SWAP","instType":"SWAP","method":"next_period","realizedRate":"-0.0001"}]}"#;
        let rows = parse_funding(f, &s).unwrap();
        assert_eq!(rows[0].rate, "-0.0001");
        assert_eq!(rows[1].time, 1_703_059_200_000);
        assert!(rows[1]
            .extra
            .contains(r#""realizedRate":"0.0000746572581679""#));
        assert_eq!(
            api.pace("/api/v5/market/candles?instId=x").unwrap().limit,
            40
        );
        assert_eq!(
            api.pace("/api/v5/market/history-candles?x").unwrap().limit,
            20
        );
    }
}
