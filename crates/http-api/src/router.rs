//! The route table and the dispatch: a path to its handler (404, or 405 with `Allow`),
//! the token for mutating routes, the exchange facades by path prefix.

use std::sync::Arc;

use bytes::Bytes;
use hyper::{Method, Request};
use serde_json::json;

use crate::exchange;
use crate::query::Params;
use crate::reply::{envelope, Reply};
use crate::state::App;
use crate::{Error, Result};

/// The routes: path, allowed methods, and the route name used in metrics.
pub(crate) const ROUTES: &[(&str, &str)] = &[
    ("/", "GET"),
    ("/assets/dashboard.js", "GET"),
    ("/assets/dashboard.css", "GET"),
    ("/api/crypto/ohlc", "GET"),
    ("/api/crypto/markets", "GET"),
    ("/api/v3/klines", "GET"),
    ("/api/v3/exchangeInfo", "GET"),
    ("/api/v3/time", "GET"),
    ("/api/v3/ping", "GET"),
    ("/fapi/v1/klines", "GET"),
    ("/fapi/v1/markPriceKlines", "GET"),
    ("/fapi/v1/fundingRate", "GET"),
    ("/fapi/v1/exchangeInfo", "GET"),
    ("/fapi/v1/time", "GET"),
    ("/fapi/v1/ping", "GET"),
    ("/fapi/v1/depth", "GET"),
    ("/fapi/v1/premiumIndex", "GET"),
    ("/fapi/v1/ticker/24hr", "GET"),
    ("/fapi/v1/ticker/bookTicker", "GET"),
    ("/fapi/v1/ticker/price", "GET"),
    ("/v5/market/kline", "GET"),
    ("/v5/market/mark-price-kline", "GET"),
    ("/v5/market/funding/history", "GET"),
    ("/v5/market/instruments-info", "GET"),
    ("/v5/market/risk-limit", "GET"),
    ("/v5/market/tickers", "GET"),
    ("/v5/market/orderbook", "GET"),
    ("/v5/market/time", "GET"),
    ("/api/v5/market/candles", "GET"),
    ("/api/v5/market/history-candles", "GET"),
    ("/api/v5/market/mark-price-candles", "GET"),
    ("/api/v5/market/history-mark-price-candles", "GET"),
    ("/api/v5/public/funding-rate-history", "GET"),
    ("/api/v5/public/instruments", "GET"),
    ("/api/v5/public/position-tiers", "GET"),
    ("/api/v5/public/time", "GET"),
    ("/api/v5/market/tickers", "GET"),
    ("/api/v5/market/ticker", "GET"),
    ("/api/v5/market/books", "GET"),
    ("/api/v5/public/funding-rate", "GET"),
    ("/api/v5/public/mark-price", "GET"),
    ("/api/performance/stats", "GET"),
    ("/api/performance/cache", "GET"),
    ("/api/performance/memory", "GET"),
    ("/api/performance/cache/clear", "POST"),
    ("/api/performance/optimize", "POST"),
    ("/metrics", "GET"),
    ("/healthz", "GET"),
    ("/openapi.json", "GET"),
    ("/asyncapi.json", "GET"),
];

/// Returns the route name for metrics: the path if it is a route, else `other`.
pub(crate) fn route_name(path: &str) -> &'static str {
    if let Some(route) = crate::streams::route_name(path) {
        return route;
    }
    ROUTES
        .iter()
        .find(|(p, _)| *p == path)
        .map_or("other", |(p, _)| p)
}

impl App {
    /// Answers one request that is not a stream handshake.
    pub(crate) async fn handle<B>(self: &Arc<Self>, req: &Request<B>) -> Result<Reply> {
        let path = req.uri().path();
        let Some((_, allow)) = ROUTES.iter().find(|(p, _)| *p == path) else {
            return Err(Error::NotFound(path.chars().take(200).collect()));
        };
        let method = req.method();
        let allowed = method.as_str() == *allow || (*allow == "GET" && method == Method::HEAD);
        if !allowed {
            return Err(Error::MethodNotAllowed {
                method: method.to_string(),
                allow,
            });
        }
        if let Some(reply) = exchange::route(self, path, req).await {
            return reply;
        }
        let params = Params::parse(req.uri().query())?;
        if *allow == "POST" {
            self.authorize(req)?;
        }
        match path {
            "/api/crypto/ohlc" => self.ohlc(req, &params).await,
            "/api/crypto/markets" => self.markets(&params).await,
            "/api/performance/stats" => self.stats().await,
            "/api/performance/cache" => Ok(Reply::json(envelope(
                self.read.now(),
                json!(self.cache.stats()),
                None,
            ))),
            "/api/performance/cache/clear" => self.clear(&params),
            "/api/performance/memory" => Ok(Reply::json(envelope(
                self.read.now(),
                json!(self.guard.report()),
                None,
            ))),
            "/api/performance/optimize" => self.optimize().await,
            "/metrics" => Ok(self.prometheus()),
            "/healthz" => Ok(Reply::json(envelope(
                self.read.now(),
                json!({"status": "ok"}),
                None,
            ))),
            "/" => Ok(asset("text/html; charset=utf-8", DASHBOARD_HTML)),
            "/assets/dashboard.js" => Ok(asset("text/javascript; charset=utf-8", DASHBOARD_JS)),
            "/assets/dashboard.css" => Ok(asset("text/css; charset=utf-8", DASHBOARD_CSS)),
            "/asyncapi.json" => Ok(Reply {
                body: Bytes::from_static(crate::openapi::ASYNCAPI.as_bytes()),
                ..Reply::json(json!(null))
            }),
            _ => Ok(Reply {
                body: Bytes::from_static(crate::openapi::DOCUMENT.as_bytes()),
                ..Reply::json(json!(null))
            }),
        }
    }

    fn authorize<B>(&self, req: &Request<B>) -> Result<()> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let given = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        // Constant-time: the comparison does not stop at the first differing byte.
        let same = given.len() == token.len()
            && given
                .bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if same {
            Ok(())
        } else {
            Err(Error::Unauthorized)
        }
    }
}

/// The dashboard: one page, its script and its style, compiled in.
const DASHBOARD_HTML: &str = include_str!("dashboard/index.html");
const DASHBOARD_JS: &str = include_str!("dashboard/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("dashboard/dashboard.css");

fn asset(content_type: &'static str, body: &'static str) -> Reply {
    Reply {
        content_type,
        body: Bytes::from_static(body.as_bytes()),
        ..Reply::json(json!(null))
    }
}
