//! Binance's spot market data (`/api/v3`): `klines` with Binance's parameters, semantics
//! and rows, `exchangeInfo`, `time` and `ping`.

use bytes::Bytes;
use hyper::{Request, StatusCode};
use market_cache::{
    Exchange, Fill, Kind, KlineRows, Request as ReadRequest, Symbol, Timeframe, PAGE, RESPONSE_TTL,
};
use serde_json::{json, Value};

use super::errors::{binance, illegal, range};
use super::info::local_exchange_info;
use crate::query::Params;
use crate::reply::{accepts_gzip, Reply};
use crate::state::{App, Made};
use crate::{Error, Result};

/// Binance's default `limit`.
const DEFAULT_LIMIT: usize = 500;
/// The futures API's largest `limit` for klines.
const FUTURES_MAX_LIMIT: usize = 1500;

impl App {
    pub(crate) async fn binance_spot<B>(&self, call: &str, req: &Request<B>) -> Result<Reply> {
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
        let name = p.require("interval")?;
        let tf = market_cache::binance::timeframe(name)
            .ok_or_else(|| Error::InvalidTimeframe(name.chars().take(16).collect()))?;
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
        let gzip = accepts_gzip(req);
        let key = format!(
            "klines|{}|{tf}|{start:?}|{end}|{limit}|{gzip}",
            symbol.key()
        );
        self.answer(&key, gzip, || async {
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
            Ok(Made::json(body, answer.keep_for()))
        })
        .await
    }

    /// Passed through to the upstream (and cached), or built from the store without one;
    /// `/fapi/v1/exchangeInfo` for the futures market.
    pub(crate) async fn exchange_info(
        &self,
        query: Option<&str>,
        p: &Params,
        futures: bool,
    ) -> Result<Reply> {
        if self.read.has_upstream(Exchange::Binance) {
            let path = if futures {
                "/fapi/v1/exchangeInfo"
            } else {
                "/api/v3/exchangeInfo"
            };
            return self
                .pass_through(Exchange::Binance, path, query, RESPONSE_TTL)
                .await;
        }
        Ok(Reply {
            body: Bytes::from(local_exchange_info(self, p, futures).await?.to_string()),
            ..Reply::json(Value::Null)
        })
    }
}
