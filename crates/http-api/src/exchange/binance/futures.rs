//! Binance's USD-M futures market data (`/fapi/v1`), as freqtrade and ccxt's `binanceusdm`
//! call it: klines, mark-price klines and funding rates answered from the store (and the
//! upstream's futures API for what it lacks); exchangeInfo, depth, premiumIndex and tickers
//! passed through with a short cache, since they are live data and never stored.

use std::time::Duration;

use hyper::Request;
use market_cache::{funding_json, funding_settled, Exchange, Kind, Symbol, RESPONSE_TTL};
use serde_json::json;

use super::errors::{illegal, range};
use crate::query::Params;
use crate::reply::Reply;
use crate::state::{App, Made};
use crate::Result;

/// How long live data passed through (depth, tickers, premium index) is served again: a
/// fleet polling every few seconds costs the exchange about one request a second a call.
const LIVE_TTL: Duration = Duration::from_secs(1);
/// `fundingRate`'s default and largest `limit`.
const FUNDING_LIMIT: (usize, usize) = (100, 1000);

impl App {
    pub(crate) async fn futures<B>(&self, call: &str, req: &Request<B>) -> Result<Reply> {
        let p = Params::parse(req.uri().query())?;
        let query = req.uri().query();
        match call {
            "klines" => self.klines(req, &p, Kind::Futures).await,
            "markPriceKlines" => self.klines(req, &p, Kind::Mark).await,
            "fundingRate" => self.funding_rate(req, &p).await,
            "time" => Ok(Reply::json(json!({"serverTime": self.read.now()}))),
            "ping" => Ok(Reply::json(json!({}))),
            "exchangeInfo" => self.exchange_info(query, &p, true).await,
            live => {
                self.pass_through(
                    Exchange::Binance,
                    &format!("/fapi/v1/{live}"),
                    query,
                    LIVE_TTL,
                )
                .await
            }
        }
    }

    /// Funding rates of one symbol from the store (fetched once from the upstream), or of
    /// every symbol passed through when none is named, as Binance answers both.
    async fn funding_rate<B>(&self, req: &Request<B>, p: &Params) -> Result<Reply> {
        let Some(raw) = p.get("symbol").filter(|s| !s.is_empty()) else {
            return self
                .pass_through(
                    Exchange::Binance,
                    "/fapi/v1/fundingRate",
                    req.uri().query(),
                    LIVE_TTL,
                )
                .await;
        };
        if raw.len() > 20 || !raw.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(illegal("symbol", "^[A-Z0-9-_.]{1,20}$"));
        }
        let symbol = raw.parse::<Symbol>()?.with_kind(Kind::Futures);
        let (start, end_incl, limit) = range(p, FUNDING_LIMIT.0, FUNDING_LIMIT.1)?;
        let now = self.read.now();
        let end = end_incl.map_or(now + 1, |e| e.saturating_add(1));
        let key = format!("funding|{}|{start:?}|{end_incl:?}|{limit}", symbol.key());
        // An answer up to now may gain the next event; history does not change.
        let keep_for = if end_incl.is_some_and(|e| funding_settled(e, now)) {
            RESPONSE_TTL
        } else {
            LIVE_TTL
        };
        self.answer(&key, false, || async {
            let rows = self.read.funding(&symbol, start, end, limit).await?;
            Ok(Made::json(funding_json(&symbol, &rows), keep_for))
        })
        .await
    }
}
