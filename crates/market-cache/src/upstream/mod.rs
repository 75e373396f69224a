//! The upstream exchange's REST API: one pooled HTTP client per upstream, the exchange's
//! protocol behind [`RestApi`], and the backfill over it ([`fill`]).

mod fill;

use std::sync::Arc;

use bytes::Bytes;
use conn_pool::{HostStats, HttpClient};

pub use fill::{FillProgress, FillReport};

use crate::exchange::binance::rest::{is_binance_host, BinanceRest};
use crate::exchange::binance::stream::BinanceStream;
use crate::exchange::{Base, RestApi, StreamApi};
use crate::settings::ClientSettings;
use crate::store::MarketMeta;
use crate::{Candle, Error, Funding, Result, Symbol, Timeframe};

/// An exchange's market-data API (Binance's, or another candlecache speaking it).
#[derive(Clone, Debug)]
pub struct Upstream {
    client: HttpClient,
    api: Arc<dyn RestApi>,
    /// The same exchange's stream protocol, for the live edge.
    stream: Arc<dyn StreamApi>,
    base: Arc<str>,
    /// Where the derivatives API is: Binance's futures host when `base` is Binance's,
    /// else `base`.
    futures: Arc<str>,
    /// The name stored with the series: the exchange's, or for a host that is not one of
    /// its own (another candlecache, a test server) the host.
    exchange: Arc<str>,
}

impl Upstream {
    /// A Binance-compatible upstream at `base_url` (`https://api.binance.com`; a trailing
    /// `/api/v3` is accepted too).
    ///
    /// # Errors
    /// [`Error::Upstream`] if the URL is not http(s) or the client settings are invalid.
    pub fn new(base_url: &str, client: &ClientSettings) -> Result<Self> {
        let api: Arc<dyn RestApi> = Arc::new(BinanceRest);
        let base = normalize(base_url, api.base_suffix(Base::Spot))?;
        let host = base
            .split_once("://")
            .map_or("", |(_, h)| h)
            .split(['/', ':'])
            .next()
            .unwrap_or("");
        let exchange = if is_binance_host(host) {
            api.name()
        } else {
            host
        };
        let futures = api.futures_base(base).unwrap_or(base);
        Ok(Self {
            client: HttpClient::new(client.http_config())?,
            futures: futures.into(),
            base: base.into(),
            exchange: exchange.into(),
            api,
            stream: Arc::new(BinanceStream),
        })
    }

    /// The same upstream with its futures API at `base_url` (`https://fapi.binance.com`; a
    /// trailing `/fapi/v1` is accepted too).
    ///
    /// # Errors
    /// [`Error::Upstream`] if the URL is not http(s).
    pub fn with_futures(mut self, base_url: &str) -> Result<Self> {
        self.futures = normalize(base_url, self.api.base_suffix(Base::Futures))?.into();
        Ok(self)
    }

    /// The futures API's base URL, without a trailing slash.
    pub fn futures_url(&self) -> &str {
        &self.futures
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The exchange's name as stored with its symbols (`binance`, else the host).
    pub(crate) fn exchange(&self) -> &str {
        &self.exchange
    }

    /// The exchange's stream protocol.
    pub(crate) fn stream_api(&self) -> Arc<dyn StreamApi> {
        self.stream.clone()
    }

    /// Per-host traffic figures of the client.
    pub(crate) fn stats(&self) -> Vec<HostStats> {
        self.client.stats()
    }

    fn base(&self, base: Base) -> &str {
        match base {
            Base::Spot => &self.base,
            Base::Futures => &self.futures,
        }
    }

    fn meta(&self, symbol: &Symbol) -> MarketMeta {
        MarketMeta::new(symbol.clone(), &self.exchange)
    }

    /// GETs `path_and_query` (starting with `/`) from the upstream as it is; returns the
    /// status and body. For the market-data calls passed through (exchangeInfo).
    ///
    /// # Errors
    /// [`Error::Upstream`] or [`Error::UpstreamTimeout`] when the upstream fails.
    pub(crate) async fn get_raw(&self, path_and_query: &str) -> Result<(u16, Bytes)> {
        let base = self.base(self.api.base_of_path(path_and_query));
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
        let path = self.api.klines_path(symbol, tf, start, limit);
        self.page(
            symbol,
            &path,
            start,
            |c: &Candle| c.open_time,
            |body| self.api.parse_klines(body, tf),
        )
        .await
    }

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
        let path = self.api.funding_path(symbol, start, limit);
        self.page(
            symbol,
            &path,
            start,
            |f: &Funding| f.time,
            |body| self.api.parse_funding(body, symbol),
        )
        .await
    }

    /// GETs one page at `path` from the base serving `symbol`, read by `parse`.
    async fn page<T>(
        &self,
        symbol: &Symbol,
        path: &str,
        start: i64,
        time: impl Fn(&T) -> i64,
        parse: impl Fn(&[u8]) -> Result<Vec<T>>,
    ) -> Result<Vec<T>> {
        let base = self.base(self.api.base_of(symbol.kind()));
        let (resp, rows) = self
            .client
            .get_decoded(&format!("{base}{path}"), |body| {
                parse(body).map_err(|e| e.to_string())
            })
            .await?;
        match rows {
            // An upstream that ignored the page's start would make a short page look like
            // the end of the history; refuse it rather than record a false coverage.
            Some(rows) if rows.first().is_some_and(|r| time(r) < start) => Err(Error::Upstream(
                format!("the upstream answered a page from {start} with earlier rows"),
            )),
            Some(rows) => Ok(rows),
            None => Err(self.api.refusal(symbol, resp.status.as_u16(), &resp.body)),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls_are_checked() {
        for bad in ["api.binance.com", "ftp://x", "http://", ""] {
            assert!(
                Upstream::new(bad, &ClientSettings::default()).is_err(),
                "{bad}"
            );
        }
        let u = Upstream::new(
            "https://api.binance.com/api/v3/",
            &ClientSettings::default(),
        )
        .unwrap();
        assert_eq!(u.base_url(), "https://api.binance.com");
        assert_eq!(&*u.exchange, "binance");
        // Binance's futures live on their own host; anything else serves both.
        assert_eq!(
            u.futures_url(),
            crate::exchange::binance::rest::BINANCE_FUTURES
        );
        let other = Upstream::new("http://127.0.0.1:9/", &ClientSettings::default()).unwrap();
        assert_eq!(other.futures_url(), "http://127.0.0.1:9");
        let over = other.with_futures("http://127.0.0.1:8/fapi/v1").unwrap();
        assert_eq!(over.futures_url(), "http://127.0.0.1:8");
        assert!(over.with_futures("fapi.binance.com").is_err());
    }
}
