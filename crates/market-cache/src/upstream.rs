//! Backfill from a Binance-compatible upstream: what the store lacks is fetched once, in
//! pages of 1000 candles, validated, stored idempotently and recorded as covered, so a
//! range is never fetched twice; the still-forming candle is returned but never stored.

use std::sync::Arc;

use bytes::Bytes;
use conn_pool::{HostStats, HttpClient, HttpConfig};
use serde::Serialize;
use serde_json::Value;

use crate::encoded::RowFormat;
use crate::store::{CandleStore, MarketMeta};
use crate::time::Now;
use crate::{parse_funding, Candle, Decimal, Error, Funding, Kind, Result, Symbol, Timeframe};

/// Candles one upstream page holds at most (Binance's `limit` maximum).
pub const PAGE: usize = 1000;
/// A candle counts as final only this long after its close: the upstream's clock may lag
/// ours a little, and a candle stored too early would be stored half-formed.
pub(crate) const CLOSE_GRACE_MS: i64 = 2_000;

/// A Binance-compatible exchange API (`/api/v3/klines`), or another candlecache.
#[derive(Clone, Debug)]
pub struct Upstream {
    client: HttpClient,
    base: Arc<str>,
    /// Where `/fapi/...` goes: Binance's futures host when `base` is Binance's, else `base`.
    futures: Arc<str>,
    exchange: Arc<str>,
}

/// Binance's USD-M futures API, the futures upstream when the spot one is Binance's.
pub(crate) const BINANCE_FUTURES: &str = "https://fapi.binance.com";
/// A funding event counts as published this long after its time; a page that ends short
/// proves the events complete only up to now minus this.
pub(crate) const FUNDING_GRACE_MS: i64 = 60_000;

/// What a backfill did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FillReport {
    /// Upstream pages fetched.
    pub pages: u64,
    /// Final candles received (duplicates in a page counted once).
    pub fetched: u64,
    /// Candles that were new to the store.
    pub inserted: u64,
    /// Milliseconds of the range that were already covered and not fetched.
    pub already_covered_ms: i64,
    /// Candles still forming at the end of the range: returned, not stored.
    #[serde(skip)]
    pub forming: Vec<Candle>,
}

/// Progress of a backfill, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct FillProgress {
    /// Everything up to this open time is done.
    pub done_until: i64,
    /// Pages so far.
    pub pages: u64,
    /// Final candles received so far.
    pub fetched: u64,
}

impl Upstream {
    /// An upstream at `base_url` (`https://api.binance.com`; a trailing `/api/v3` is
    /// accepted too).
    ///
    /// # Errors
    /// [`Error::Upstream`] if the URL is not http(s) or the client configuration is invalid.
    pub fn new(base_url: &str, config: HttpConfig) -> Result<Self> {
        let base = normalize(base_url, "/api/v3")?;
        let host = base
            .split_once("://")
            .map_or("", |(_, h)| h)
            .split(['/', ':'])
            .next()
            .unwrap_or("");
        let exchange = if host.ends_with("binance.com") || host.ends_with("binance.us") {
            "binance"
        } else {
            host
        };
        let futures = if exchange == "binance" {
            BINANCE_FUTURES
        } else {
            base
        };
        Ok(Self {
            client: HttpClient::new(config)?,
            base: base.into(),
            futures: futures.into(),
            exchange: exchange.into(),
        })
    }

    /// The same upstream with its futures API at `base_url` (`https://fapi.binance.com`; a
    /// trailing `/fapi/v1` is accepted too).
    ///
    /// # Errors
    /// [`Error::Upstream`] if the URL is not http(s).
    pub fn with_futures(mut self, base_url: &str) -> Result<Self> {
        self.futures = normalize(base_url, "/fapi/v1")?.into();
        Ok(self)
    }

    /// The futures API's base URL, without a trailing slash.
    pub fn futures_url(&self) -> &str {
        &self.futures
    }
}

/// `url` without trailing slashes and `api_suffix`, checked to be http(s) with a host.
fn normalize<'a>(url: &'a str, api_suffix: &str) -> Result<&'a str> {
    let base = url.trim().trim_end_matches('/');
    let base = base.strip_suffix(api_suffix).unwrap_or(base);
    base.strip_prefix("https://")
        .or_else(|| base.strip_prefix("http://"))
        .filter(|h| !h.is_empty() && !h.contains(['?', '#', ' ']))
        .ok_or_else(|| {
            Error::Upstream(format!(
                "upstream URL `{}` must start with http:// or https:// and name a host",
                url.chars().take(100).collect::<String>()
            ))
        })?;
    Ok(base)
}

impl Upstream {
    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The exchange's name as stored with its symbols (`binance`, else the host).
    pub(crate) fn exchange(&self) -> &str {
        &self.exchange
    }

    /// Per-host traffic figures of the client.
    pub(crate) fn stats(&self) -> Vec<HostStats> {
        self.client.stats()
    }

    /// GETs `path_and_query` (starting with `/`) from the upstream as it is; returns the
    /// status and body. For the market-data calls passed through (exchangeInfo).
    ///
    /// # Errors
    /// [`Error::Upstream`] or [`Error::UpstreamTimeout`] when the upstream fails.
    pub(crate) async fn get_raw(&self, path_and_query: &str) -> Result<(u16, Bytes)> {
        let base = if path_and_query.starts_with("/fapi/") {
            &self.futures
        } else {
            &self.base
        };
        let r = self.client.get(&format!("{base}{path_and_query}")).await?;
        Ok((r.status.as_u16(), r.body))
    }

    /// One page: up to `limit` candles with open time at or after `start`, in time order,
    /// validated. Repeated rows are dropped.
    ///
    /// # Errors
    /// [`Error::UnknownSymbol`] when the upstream does not know the symbol, [`Error::Upstream`]
    /// for any other refusal or for rows that are not valid candles.
    pub(crate) async fn klines(
        &self,
        symbol: &Symbol,
        tf: Timeframe,
        start: i64,
        limit: usize,
    ) -> Result<Vec<Candle>> {
        let (base, path) = match symbol.kind() {
            Kind::Spot => (&self.base, "/api/v3/klines"),
            Kind::Futures => (&self.futures, "/fapi/v1/klines"),
            Kind::Mark => (&self.futures, "/fapi/v1/markPriceKlines"),
        };
        let url = format!(
            "{base}{path}?symbol={symbol}&interval={tf}&startTime={start}&limit={}",
            limit.clamp(1, PAGE)
        );
        let (resp, rows) = self
            .client
            .get_decoded(&url, |body| {
                parse_klines(body, tf).map_err(|e| e.to_string())
            })
            .await?;
        match rows {
            // An upstream that ignored startTime would make a short page look like the
            // end of the history; refuse it rather than record a false coverage.
            Some(rows) if rows.first().is_some_and(|c| c.open_time < start) => {
                Err(Error::Upstream(format!(
                    "the upstream answered startTime={start} with earlier candles"
                )))
            }
            Some(rows) => Ok(rows),
            None => Err(refusal(symbol, resp.status.as_u16(), &resp.body)),
        }
    }

    fn meta(&self, symbol: &Symbol) -> MarketMeta {
        MarketMeta::new(symbol.clone(), &self.exchange)
    }

    /// Makes `[start, end)` of the series complete in `store`: fetches the parts not yet
    /// covered, page by page from their start, stores each page with the range it proves
    /// complete (gaps the exchange has are remembered too), and returns the candles
    /// still forming at the end, which are not stored.
    ///
    /// # Errors
    /// As [`Upstream::klines`], and [`Error::Db`] when storing fails; pages stored before
    /// a failure stay stored and covered.
    pub(crate) async fn fill<S: CandleStore + Sync>(
        &self,
        store: &S,
        symbol: &Symbol,
        tf: Timeframe,
        (start, end): (i64, i64),
        now: &Now,
        progress: &(dyn Fn(FillProgress) + Sync),
    ) -> Result<FillReport> {
        let mut report = FillReport::default();
        if start >= end {
            return Ok(report);
        }
        // Candles opening before this are closed (with a margin) and may be stored.
        let closed_end = tf.floor(now() - CLOSE_GRACE_MS).max(0);
        let missing = store
            .missing(symbol, tf, start, end.min(closed_end))
            .await?;
        let missing_ms: i64 = missing.iter().map(|(a, b)| b - a).sum();
        report.already_covered_ms = (end.min(closed_end) - start).max(0) - missing_ms;
        let meta = self.meta(symbol);
        let mut forming_from = (end > closed_end).then_some(closed_end.max(start));
        for (a, b) in missing {
            let mut cursor = a;
            while cursor < b {
                let page = self.klines(symbol, tf, cursor, PAGE).await?;
                report.pages += 1;
                let full = page.len() >= PAGE;
                // A full page proves everything up to its last candle; a short one, that
                // nothing more has closed yet.
                let covered_to = match page.last() {
                    Some(l) if full => tf.next(l.open_time).min(closed_end),
                    _ => closed_end,
                };
                let (closed, open): (Vec<Candle>, Vec<Candle>) =
                    page.into_iter().partition(|c| c.open_time < closed_end);
                if !full && forming_from.is_some() {
                    // A short page reached the present: it holds the forming candles, if
                    // the exchange has any.
                    report.forming = open.into_iter().filter(|c| c.open_time < end).collect();
                    forming_from = None;
                }
                report.fetched += closed.len() as u64;
                let written = store
                    .write_covered(&meta, tf, closed, (cursor, covered_to.max(cursor)))
                    .await?;
                report.inserted += written.inserted;
                if covered_to <= cursor {
                    break;
                }
                cursor = covered_to;
                progress(FillProgress {
                    done_until: cursor.min(end),
                    pages: report.pages,
                    fetched: report.fetched,
                });
            }
        }
        if let Some(from) = forming_from {
            let page = self.klines(symbol, tf, from, PAGE).await?;
            report.pages += 1;
            report.forming = page
                .into_iter()
                .filter(|c| c.open_time >= closed_end && c.open_time < end)
                .collect();
        }
        Ok(report)
    }
}

impl Upstream {
    /// One page of funding events of a futures symbol from `start` on, in time order.
    ///
    /// # Errors
    /// As [`Upstream::klines`].
    pub(crate) async fn funding(
        &self,
        symbol: &Symbol,
        start: i64,
        limit: usize,
    ) -> Result<Vec<Funding>> {
        let url = format!(
            "{}/fapi/v1/fundingRate?symbol={symbol}&startTime={start}&limit={}",
            self.futures,
            limit.clamp(1, PAGE)
        );
        let (resp, rows) = self
            .client
            .get_decoded(&url, |body| {
                parse_funding(body, symbol).map_err(|e| e.to_string())
            })
            .await?;
        match rows {
            Some(rows) if rows.first().is_some_and(|f| f.time < start) => Err(Error::Upstream(
                format!("the upstream answered startTime={start} with earlier funding"),
            )),
            Some(rows) => Ok(rows),
            None => Err(refusal(symbol, resp.status.as_u16(), &resp.body)),
        }
    }

    /// Makes the funding events of `[start, end)` complete in `store`, as [`Upstream::fill`]
    /// does for candles: only what is not covered is fetched, in pages of 1000; a full page
    /// proves up to its last event, a short one up to now less [`FUNDING_GRACE_MS`].
    /// Returns the pages fetched.
    ///
    /// # Errors
    /// As [`Upstream::funding`], and [`Error::Db`] when storing fails.
    pub(crate) async fn fill_funding<S: CandleStore + Sync>(
        &self,
        store: &S,
        symbol: &Symbol,
        (start, end): (i64, i64),
        now: &Now,
    ) -> Result<u64> {
        let symbol = symbol.clone().with_kind(Kind::Futures);
        let published = now() - FUNDING_GRACE_MS;
        let meta = self.meta(&symbol);
        let mut pages = 0;
        for (a, b) in store
            .missing_funding(&symbol, start, end.min(now()))
            .await?
        {
            let mut cursor = a;
            while cursor < b {
                let page = self.funding(&symbol, cursor, PAGE).await?;
                pages += 1;
                let full = page.len() >= PAGE;
                let covered_to = match page.last() {
                    Some(l) if full => l.time + 1,
                    _ => published,
                };
                store
                    .write_funding(&meta, page, (cursor, covered_to.max(cursor)))
                    .await?;
                // A short page reached the present: nothing more to ask for now.
                if !full || covered_to <= cursor {
                    break;
                }
                cursor = covered_to;
            }
        }
        Ok(pages)
    }
}

/// What a non-2xx answer means: Binance's `-1121` is an unknown symbol.
fn refusal(symbol: &Symbol, status: u16, body: &[u8]) -> Error {
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

/// The elements of Binance's klines array, as rows an answer can be asked in: 12 fields
/// a row, decimals as strings with at least `min_places` places (Binance spot pads to 8,
/// its futures API prints each symbol's own precision: `0` keeps the stored places),
/// close time = next open - 1 ms.
#[derive(Debug, Clone)]
pub struct KlineRows {
    places: u8,
    id: String,
}

impl KlineRows {
    /// Rows with every decimal written to at least `min_places` places.
    pub fn new(min_places: u8) -> Self {
        Self {
            places: min_places,
            id: format!("klines-{min_places}"),
        }
    }
}

impl RowFormat for KlineRows {
    fn id(&self) -> &str {
        &self.id
    }

    fn separator(&self) -> &'static [u8] {
        b","
    }

    fn write(&self, c: &Candle, tf: Timeframe, s: &mut Vec<u8>) {
        let places = self.places;
        let zero = Decimal::new(0, places);
        let quoted = |s: &mut Vec<u8>, v: Decimal| {
            s.extend_from_slice(b",\"");
            v.round_to(v.scale().max(places)).write_exact(s);
            s.push(b'"');
        };
        let int = |s: &mut Vec<u8>, v: i128| Decimal::new(v, 0).write_exact(s);
        s.push(b'[');
        int(s, i128::from(c.open_time));
        for v in [c.open, c.high, c.low, c.close, c.volume] {
            quoted(s, v);
        }
        s.push(b',');
        int(s, i128::from(tf.next(c.open_time) - 1));
        quoted(s, c.quote_volume.unwrap_or(zero));
        s.push(b',');
        int(s, i128::from(c.trades.unwrap_or(0)));
        quoted(s, c.taker_base.unwrap_or(zero));
        quoted(s, c.taker_quote.unwrap_or(zero));
        s.extend_from_slice(b",\"0\"]");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoded::Rows;

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
    fn upstream_urls_are_checked() {
        for bad in ["api.binance.com", "ftp://x", "http://", ""] {
            assert!(Upstream::new(bad, HttpConfig::default()).is_err(), "{bad}");
        }
        let u = Upstream::new("https://api.binance.com/api/v3/", HttpConfig::default()).unwrap();
        assert_eq!(u.base_url(), "https://api.binance.com");
        assert_eq!(&*u.exchange, "binance");
        // Binance's futures live on their own host; anything else serves both.
        assert_eq!(u.futures_url(), BINANCE_FUTURES);
        let other = Upstream::new("http://127.0.0.1:9/", HttpConfig::default()).unwrap();
        assert_eq!(other.futures_url(), "http://127.0.0.1:9");
        let over = other.with_futures("http://127.0.0.1:8/fapi/v1").unwrap();
        assert_eq!(over.futures_url(), "http://127.0.0.1:8");
        assert!(over.with_futures("fapi.binance.com").is_err());
    }
}
