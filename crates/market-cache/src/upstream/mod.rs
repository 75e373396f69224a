//! The upstream exchange's REST API: one pooled HTTP client per upstream, the exchange's
//! protocol behind [`RestApi`], and the backfill over it ([`fill`]).

mod fill;
mod pace;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use conn_pool::{HostStats, HttpClient};

pub use fill::{FillProgress, FillReport};

use crate::exchange::binance::rest::BinanceRest;
use crate::exchange::binance::stream::BinanceStream;
use crate::exchange::bybit::rest::BybitRest;
use crate::exchange::bybit::stream::BybitStream;
use crate::exchange::okx::rest::OkxRest;
use crate::exchange::okx::stream::OkxStream;
use crate::exchange::{Base, RestApi, StreamApi};
use crate::live::streams::config::StreamConfig;
use crate::settings::ClientSettings;
use crate::store::MarketMeta;
use crate::{Candle, Error, Exchange, Funding, Result, Symbol, Timeframe};

/// An exchange's market-data API (Binance's, Bybit's, or another candlecache speaking
/// one of them), with its streams when they are configured.
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
    /// The spot and the derivatives market's streams, when configured.
    streams: [Option<StreamConfig>; 2],
    /// Wall-clock ms before which the exchange is not asked (it said it bans us).
    banned_until: Arc<AtomicI64>,
    /// Requests per endpoint, for exchanges that limit each endpoint (OKX).
    pacer: Arc<pace::Pacer>,
}

impl Upstream {
    /// A Binance-compatible upstream at `base_url` (`https://api.binance.com`; a trailing
    /// `/api/v3` is accepted too).
    ///
    /// # Errors
    /// [`Error::Upstream`] if the URL is not http(s) or the client settings are invalid.
    pub fn new(base_url: &str, client: &ClientSettings) -> Result<Self> {
        Self::of(Exchange::Binance, base_url, client)
    }

    /// `exchange`'s market-data API at `base_url` (its own host, another candlecache or a
    /// test server speaking its protocol). Exchanges that publish a fixed request limit
    /// instead of a used-weight header (Bybit) are paced under it whatever `client` says.
    ///
    /// # Errors
    /// [`Error::Upstream`] if the URL is not http(s) or the client settings are invalid.
    pub fn of(exchange: Exchange, base_url: &str, client: &ClientSettings) -> Result<Self> {
        let (api, stream): (Arc<dyn RestApi>, Arc<dyn StreamApi>) = match exchange {
            Exchange::Binance => (Arc::new(BinanceRest), Arc::new(BinanceStream)),
            Exchange::Bybit => (Arc::new(BybitRest), Arc::new(BybitStream)),
            Exchange::Okx => (Arc::new(OkxRest), Arc::new(OkxStream)),
        };
        let base = normalize(base_url, api.base_suffix(Base::Spot))?;
        let futures = api.futures_base(base).unwrap_or(base);
        let mut config = client.http_config();
        if let Some((limit, window_ms)) = api.budget() {
            config.weight_limit = limit;
            config.weight_window_ms = window_ms;
        }
        Ok(Self {
            client: HttpClient::new(config)?,
            futures: futures.into(),
            base: base.into(),
            api,
            stream,
            streams: [None, None],
            banned_until: Arc::new(AtomicI64::new(0)),
            pacer: Arc::default(),
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

    /// The stream URL of the spot (or with `futures` the derivatives) market for the
    /// stream URL `ws` a user gave (Bybit's `wss://stream.bybit.com/v5/public` serves both
    /// markets under `/spot` and `/linear`); without one, the exchange's own streams for
    /// its own hosts, none for any other.
    pub fn stream_url(&self, ws: Option<&str>, futures: bool) -> Option<String> {
        match ws {
            Some(ws) => Some(self.stream.market_url(ws, futures)),
            None => {
                let base = if futures { &self.futures } else { &self.base };
                self.stream.default_url(base, futures)
            }
        }
    }

    /// The same upstream keeping the live edge of its spot and derivatives series fresh
    /// from these streams.
    #[must_use]
    pub fn with_streams(
        mut self,
        spot: Option<StreamConfig>,
        futures: Option<StreamConfig>,
    ) -> Self {
        self.streams = [spot, futures];
        self
    }

    /// The streams of the spot (or with `futures` the derivatives) market, if configured.
    pub fn streams(&self, futures: bool) -> Option<&StreamConfig> {
        self.streams[usize::from(futures)].as_ref()
    }

    /// The futures API's base URL, without a trailing slash.
    pub fn futures_url(&self) -> &str {
        &self.futures
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The exchange whose protocol the upstream speaks (stored with its series).
    pub fn exchange(&self) -> Exchange {
        self.api.exchange()
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
        MarketMeta::new(symbol.clone())
    }

    /// GETs `path_and_query` (starting with `/`) from the upstream as it is; returns the
    /// status and body. For the market-data calls passed through (exchangeInfo).
    ///
    /// # Errors
    /// [`Error::Upstream`] or [`Error::UpstreamTimeout`] when the upstream fails.
    pub(crate) async fn get_raw(&self, path_and_query: &str) -> Result<(u16, Bytes)> {
        if let Some(pace) = self.api.pace(path_and_query) {
            self.pacer.wait(&pace).await;
        }
        let base = self.base(self.api.base_of_path(path_and_query));
        let r = self.client.get(&format!("{base}{path_and_query}")).await?;
        Ok((r.status.as_u16(), r.body))
    }

    /// For a timeframe the exchange has no candles of, the coarsest one it has whose
    /// candles sum into it exactly; `None` when it has `tf` itself (or nothing nests).
    pub(crate) fn source_for(&self, tf: Timeframe) -> Option<Timeframe> {
        if self.api.supports(tf) {
            return None;
        }
        Timeframe::ALL
            .into_iter()
            .flat_map(|s| [s, s.with_offset(tf.offset_minutes()).unwrap_or(s)])
            .filter(|s| self.api.supports(*s) && s.nests_in(tf))
            .max()
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
        if !self.api.supports(tf) {
            return Err(Error::UnknownSymbol(format!(
                "{symbol}: {} has no {tf} candles",
                self.exchange()
            )));
        }
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

    /// One page of the latest funding events before `end`, in time order, for an exchange
    /// that pages back ([`RestApi::funding_before_path`]).
    ///
    /// # Errors
    /// As [`Upstream::klines`].
    pub(crate) async fn funding_before(
        &self,
        symbol: &Symbol,
        end: i64,
        limit: usize,
    ) -> Result<Vec<Funding>> {
        let path = self
            .api
            .funding_before_path(symbol, end, limit)
            .ok_or_else(|| Error::Upstream("funding pages go forward here".into()))?;
        self.page(
            symbol,
            &path,
            i64::MIN,
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
        let until = self.banned_until.load(Ordering::Relaxed);
        let now = cache_core::wall_ms();
        if now < until {
            return Err(Error::Upstream(format!(
                "{} rate-limits this address; not asking it for another {} s",
                self.exchange(),
                (until - now + 999) / 1000
            )));
        }
        if let Some(pace) = self.api.pace(path) {
            self.pacer.wait(&pace).await;
        }
        let base = self.base(self.api.base_of(symbol.kind()));
        // A refusal in a 2xx body is decoded as such, not fetched again as if cut short.
        let (resp, rows) = self
            .client
            .get_decoded(&format!("{base}{path}"), |body| {
                match self.api.envelope_error(symbol, body) {
                    Some(e) => Ok(Err(e)),
                    None => parse(body).map(Ok).map_err(|e| e.to_string()),
                }
            })
            .await?;
        if let Some(wait) = self.api.ban(resp.status.as_u16(), &resp.body) {
            let until = cache_core::wall_ms() + wait.as_millis() as i64;
            self.banned_until.fetch_max(until, Ordering::Relaxed);
            return Err(Error::Upstream(format!(
                "{} answered {} (rate limit); backing off {} s",
                self.exchange(),
                resp.status.as_u16(),
                wait.as_secs()
            )));
        }
        match rows.transpose()? {
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
        assert_eq!(u.exchange(), Exchange::Binance);
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
