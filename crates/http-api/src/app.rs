//! The routes and their handlers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cache_core::{ns, Cache, NamespaceCache, Reclaim, Scope};
use hyper::header::ACCEPT;
use hyper::{Method, Request, StatusCode};
use market_cache::{
    parse_time, Fill, Request as ReadRequest, Service, Symbol, Timeframe, DEFAULT_LIMIT,
};
use serde_json::json;

use crate::encode::{CsvRows, JsonRows};
use crate::metrics::Metrics;
use crate::query::Params;
use crate::reply::{
    accepts_gzip, envelope, gzip_bytes, join_cached, split_cached, Reply, GZIP_MIN_BYTES,
};
use crate::{Error, Result};

/// How long a whole answer of closed history is kept (`api_responses`).
pub(crate) const RESPONSE_TTL: Duration = Duration::from_secs(60);

/// What the handlers share.
pub(crate) struct App {
    pub(crate) ws: Arc<crate::ws::Hub>,
    pub(crate) read: Service,
    pub(crate) cache: Cache,
    pub(crate) responses: NamespaceCache,
    pub(crate) metrics: Metrics,
    pub(crate) access_log: crate::access_log::AccessLog,
    pub(crate) max_rows: usize,
    pub(crate) token: Option<String>,
    pub(crate) guard: mem_guard::MemGuard,
}

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
    if crate::ws::is_stream_path(path) {
        let (kind, rest) = crate::ws::market(path);
        let futures = kind != market_cache::Kind::Spot;
        return match (futures, rest.starts_with("/ws")) {
            (false, true) => "/ws",
            (false, false) => "/stream",
            (true, true) => "/market/ws",
            (true, false) => "/market/stream",
        };
    }
    ROUTES
        .iter()
        .find(|(p, _)| *p == path)
        .map_or("other", |(p, _)| p)
}

impl App {
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
        if let Some(call) = path.strip_prefix("/api/v3/") {
            return self
                .binance(call, req)
                .await
                .map_err(crate::binance::to_binance);
        }
        if let Some(call) = path.strip_prefix("/fapi/v1/") {
            return self
                .futures(call, req)
                .await
                .map_err(crate::binance::to_binance);
        }
        let params = Params::parse(req.uri().query())?;
        if *allow == "POST" {
            self.authorize(req)?;
        }
        match path {
            "/api/crypto/ohlc" => self.ohlc(req, &params).await,
            "/api/crypto/markets" => self.markets().await,
            "/api/performance/stats" => self.stats().await,
            "/api/performance/cache" => Ok(Reply::json(envelope(json!(self.cache.stats()), None))),
            "/api/performance/cache/clear" => self.clear(&params),
            "/api/performance/memory" => {
                Ok(Reply::json(envelope(json!(self.guard.report()), None)))
            }
            "/api/performance/optimize" => self.optimize().await,
            "/metrics" => Ok(Reply {
                content_type: "text/plain; version=0.0.4",
                body: Bytes::from(
                    self.metrics.render(
                        &self.cache,
                        &self.read.database_stats(),
                        &self
                            .read
                            .upstream_stats()
                            .map(|u| u.hosts)
                            .unwrap_or_default(),
                        (
                            &self.read.read_stats(),
                            &self
                                .stream_markets()
                                .iter()
                                .map(|(m, st)| (*m, st))
                                .collect::<Vec<_>>(),
                        ),
                        &self.ws.stats(),
                        &self.guard.report(),
                    ),
                ),
                ..Reply::json(json!(null))
            }),
            "/healthz" => Ok(Reply::json(envelope(json!({"status": "ok"}), None))),
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

    /// The upstream streams' figures by market, for `/metrics`.
    fn stream_markets(&self) -> Vec<(&'static str, market_cache::StreamStats)> {
        [
            ("spot", self.read.stream_stats(market_cache::Kind::Spot)),
            (
                "futures",
                self.read.stream_stats(market_cache::Kind::Futures),
            ),
        ]
        .into_iter()
        .filter_map(|(m, st)| Some((m, st?)))
        .collect()
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

    /// Reads the cached bytes of `key` as a reply, with the encoding they were stored in
    /// (a small body is kept plain even for a client that accepts gzip).
    pub(crate) fn cached_reply(&self, key: &str) -> Option<Reply> {
        let hit = self.responses.get(key.as_bytes())?;
        let (content_type, gzip, body) = split_cached(&hit)?;
        Some(Reply {
            status: StatusCode::OK,
            content_type,
            body,
            gzip,
            timing: "cache;dur=0".into(),
            from_cache: true,
        })
    }

    /// Keeps a reply's bytes (and whether they are gzipped) under `key` for `ttl`.
    pub(crate) fn cache_reply(
        &self,
        key: &str,
        content_type: &str,
        gzip: bool,
        body: &[u8],
        ttl: Duration,
    ) {
        if ttl.is_zero() {
            return;
        }
        // A full cache only means the next request recomputes.
        let _ = self.responses.insert_with_ttl(
            key.as_bytes(),
            join_cached(content_type, gzip, body),
            ttl,
        );
    }

    async fn ohlc<B>(&self, req: &Request<B>, p: &Params) -> Result<Reply> {
        let market = p.get("market").unwrap_or("spot");
        let price = p.get("price").unwrap_or("trade");
        let kind = market_cache::Kind::of(market, price).ok_or_else(|| {
            Error::InvalidFormat(format!(
                "market `{}` with price `{}` does not exist: market is spot or futures, price is trade or mark (mark only for futures)",
                clip(market),
                clip(price)
            ))
        })?;
        let symbol = p.require("symbol")?.parse::<Symbol>()?.with_kind(kind);
        let timeframe: Timeframe = p.require("timeframe")?.parse()?;
        if kind.is_futures() && timeframe == Timeframe::S1 {
            return Err(Error::InvalidTimeframe(
                "the futures market has no 1s candles (1m and up)".into(),
            ));
        }
        let start = p.get("start").map(parse_time).transpose()?;
        // Without a start the latest `limit` candles before `end` are answered; without an
        // end, up to now, the forming candle included.
        let end = match p.get("end") {
            Some(e) => parse_time(e)?,
            None => timeframe.next(self.read.now()),
        };
        if start.is_some_and(|s| s >= end) {
            return Err(Error::InvalidRange);
        }
        let limit = match p.get("limit") {
            None => DEFAULT_LIMIT.min(self.max_rows),
            Some(l) => {
                let n: usize = l
                    .parse()
                    .map_err(|_| Error::InvalidLimit { max: self.max_rows })?;
                if n == 0 {
                    return Err(Error::InvalidLimit { max: self.max_rows });
                }
                if n > self.max_rows {
                    return Err(Error::RangeTooLarge {
                        asked: n,
                        max: self.max_rows,
                    });
                }
                n
            }
        };
        let fill = match p.get("fill").unwrap_or("none") {
            "none" => Fill::None,
            "previous" => Fill::Previous,
            other => {
                return Err(Error::InvalidFormat(format!(
                    "fill `{}` is not none or previous",
                    clip(other)
                )))
            }
        };
        let accept = req
            .headers()
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let format = match p.get("format") {
            Some(f @ ("json" | "csv" | "arrow")) => f,
            Some(other) => {
                return Err(Error::InvalidFormat(format!(
                    "format `{}` is not json, csv or arrow",
                    clip(other)
                )))
            }
            None if accept.contains("text/csv") => "csv",
            None if accept.contains("application/vnd.apache.arrow") => "arrow",
            None => "json",
        };
        let gzip = accepts_gzip(req);
        // A repeated request is a lookup of ready bytes.
        let key = format!(
            "ohlc|{}|{timeframe}|{start:?}|{end}|{limit}|{fill:?}|{format}|{gzip}",
            symbol.key()
        );
        if let Some(hit) = self.cached_reply(&key) {
            return Ok(hit);
        }
        let t = Instant::now();
        let request = ReadRequest {
            symbol: symbol.clone(),
            timeframe,
            start,
            end,
            limit,
            fill,
        };
        // JSON and CSV come as rows the read path keeps written for closed history; Arrow
        // is built from the candles.
        let (answer, content_type, body) = match format {
            "arrow" => {
                let answer = self.read.get(&request).await?;
                let body = market_cache::arrow_ipc(&answer.candles)?;
                let answer = answer.map(|_| ());
                (answer, "application/vnd.apache.arrow.stream", body)
            }
            "csv" => {
                let head = crate::encode::CSV_HEADER.to_vec();
                let mut answer = self.read.get_rows(&request, &CsvRows, head).await?;
                let body = std::mem::take(&mut answer.candles.bytes);
                (answer.map(|_| ()), "text/csv", body)
            }
            _ => {
                let head = crate::encode::json_open(&symbol, timeframe);
                let mut answer = self.read.get_rows(&request, &JsonRows, head).await?;
                crate::encode::json_close(&mut answer);
                let body = std::mem::take(&mut answer.candles.bytes);
                (answer.map(|_| ()), "application/json", body)
            }
        };
        // The read and the encoding are one step now for JSON and CSV: rows are copied
        // as they are gathered.
        let read_ms = t.elapsed().as_secs_f64() * 1000.0;
        let t = Instant::now();
        let mut body = Bytes::from(body);
        let gzip = gzip && body.len() >= GZIP_MIN_BYTES;
        if gzip {
            body = gzip_bytes(&body);
        }
        let encode_ms = t.elapsed().as_secs_f64() * 1000.0;
        // Answers that reach the live edge are kept only as long as it stays fresh.
        let ttl = answer.max_age.map_or(RESPONSE_TTL, |a| a.min(RESPONSE_TTL));
        self.cache_reply(&key, content_type, gzip, &body, ttl);
        let source = format!("{:?}", answer.source).to_lowercase();
        Ok(Reply {
            status: StatusCode::OK,
            content_type,
            body,
            gzip,
            timing: format!("{source};dur={read_ms:.2}, encode;dur={encode_ms:.2}"),
            from_cache: false,
        })
    }

    async fn markets(&self) -> Result<Reply> {
        let markets = self.read.markets().await?;
        Ok(Reply::json(envelope(json!(markets), None)))
    }

    async fn stats(&self) -> Result<Reply> {
        let db = self.read.database_stats();
        let read_stats = self.read.read_stats();
        let upstream = self.read.upstream_stats();
        let memory = self.guard.report();
        let data = json!({
            "cache": self.cache.stats(),
            "memory": {
                "rss_bytes": memory.analysis.rss_bytes,
                "private_bytes": memory.analysis.private_bytes,
                "limit_bytes": memory.analysis.limit_bytes,
                "usage_pct": memory.analysis.usage_pct,
                "health": memory.analysis.health,
                "trend_mb_per_min": memory.analysis.trend_mb_per_min,
                "leak_suspected": memory.analysis.leak_suspected,
                "stability_score": memory.analysis.stability_score,
                "recommendations": memory.analysis.recommendations,
                "heap": memory.heap,
                "reclaimed_bytes_total": memory.reclaimed_bytes_total,
                "reclaim_count": memory.reclaim_count,
            },
            "pools": {
                "sqlite": db.pool,
                "http": upstream.as_ref().map(|u| u.hosts.clone()).unwrap_or_default(),
            },
            "upstream": upstream.map(|u| json!({
                "base_url": u.base_url,
                "hosts": u.hosts,
                "edge_refreshes": read_stats.edge_refreshes,
                "edge_from_stream": read_stats.edge_from_stream,
                "streams": self.read.stream_stats(market_cache::Kind::Spot),
                "futures_streams": self.read.stream_stats(market_cache::Kind::Futures),
                "objects": self.read.object_stats(),
            })),
            "served_streams": self.ws.stats(),
            "queries": {"patterns": db.patterns, "slow": db.slow},
            "read_path": read_stats,
            "http": self.metrics.summary(),
            "access_log": {
                "enabled": self.access_log.enabled(),
                "dropped_lines": self.access_log.dropped(),
            },
        });
        Ok(Reply::json(envelope(data, None)))
    }

    fn clear(&self, p: &Params) -> Result<Reply> {
        let freed = match p.get("namespace") {
            None | Some("") => self.cache.clear(Scope::All),
            Some(name) => self.cache.clear(Scope::Namespace(name)),
        }
        .map_err(|e| match e {
            cache_core::Error::UnknownNamespace(n) => Error::UnknownNamespace(n),
            other => Error::Internal(other.to_string()),
        })?;
        Ok(Reply::json(envelope(json!({"bytes_freed": freed}), None)))
    }

    async fn optimize(&self) -> Result<Reply> {
        // Memory first: what the database work allocates should not count against it.
        let guard = self.guard.clone();
        let memory = tokio::task::spawn_blocking(move || guard.reclaim_now())
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let memory = match memory {
            Some((a, actions)) => json!({
                "health": a.health,
                "rss_bytes": a.rss_bytes,
                "private_bytes": a.private_bytes,
                "usage_pct": a.usage_pct,
                "bytes_freed": actions.iter().map(|x| x.bytes_freed).sum::<u64>(),
                "reclaims": actions,
                "recommendations": a.recommendations,
            }),
            None => json!({"error": "memory could not be sampled"}),
        };
        let done = self
            .read
            .optimize()
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(Reply::json(envelope(
            json!({"optimize": done.optimize, "recommendations": done.recommendations, "memory": memory}),
            None,
        )))
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

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Names the namespace that holds whole responses.
pub(crate) const RESPONSES: &str = ns::API_RESPONSES;

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("max_rows", &self.max_rows)
            .finish()
    }
}
