//! What the handlers share ([`App`]), and the one pipeline every cached answer goes
//! through ([`App::answer`]): the response-cache lookup, the encoding the client takes,
//! how long the bytes are kept, and the insert.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cache_core::{ns, Cache, NamespaceCache};
use hyper::StatusCode;
use market_cache::{Exchange, Service};

use crate::metrics::Metrics;
use crate::reply::{gzip_bytes, join_cached, split_cached, Reply, GZIP_MIN_BYTES};
use crate::{Error, Result};

/// Names the namespace that holds whole responses.
pub(crate) const RESPONSES: &str = ns::API_RESPONSES;

/// What the handlers share.
pub(crate) struct App {
    pub(crate) ws: Arc<crate::streams::Hub>,
    pub(crate) read: Service,
    pub(crate) cache: Cache,
    pub(crate) responses: NamespaceCache,
    pub(crate) metrics: Metrics,
    pub(crate) access_log: crate::access_log::AccessLog,
    pub(crate) max_rows: usize,
    pub(crate) token: Option<String>,
    pub(crate) guard: mem_guard::MemGuard,
}

/// What a handler made, for [`App::answer`] to encode, keep and send.
pub(crate) struct Made {
    pub(crate) status: StatusCode,
    pub(crate) content_type: &'static str,
    pub(crate) body: Bytes,
    /// How long the bytes may be served again: for candles `Answer::keep_for` (the
    /// smaller of the answer's `max_age` and the response TTL); zero keeps nothing.
    pub(crate) keep_for: Duration,
    /// Server-Timing entries of the making.
    pub(crate) timing: String,
}

impl Made {
    /// A JSON body kept for `keep_for`.
    pub(crate) fn json(body: impl Into<Bytes>, keep_for: Duration) -> Self {
        Self {
            status: StatusCode::OK,
            content_type: "application/json",
            body: body.into(),
            keep_for,
            timing: String::new(),
        }
    }
}

impl App {
    /// The one answer pipeline of the cached routes (`/api/crypto/ohlc`, the klines and
    /// funding routes, everything passed through): the ready bytes kept under `key` if
    /// there are any; else `make`, gzipped when the client takes it (`gzip`) and the body
    /// is at least [`GZIP_MIN_BYTES`], kept for its `keep_for` if it succeeded.
    ///
    /// # Errors
    /// `make`'s, and [`Error::Internal`] when the body cannot be encoded (never an empty
    /// body instead).
    pub(crate) async fn answer<F, Fut>(&self, key: &str, gzip: bool, make: F) -> Result<Reply>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Made>>,
    {
        if let Some(hit) = self.cached_reply(key) {
            return Ok(hit);
        }
        let made = make().await?;
        let t = Instant::now();
        let gzip = gzip && made.body.len() >= GZIP_MIN_BYTES;
        let body = if gzip {
            gzip_bytes(&made.body).map_err(|e| Error::Internal(format!("gzip: {e}")))?
        } else {
            made.body
        };
        let encode = format!("encode;dur={:.2}", t.elapsed().as_secs_f64() * 1000.0);
        if made.status.is_success() && !made.keep_for.is_zero() {
            // A full cache only means the next request makes it again.
            let _ = self.responses.insert_with_ttl(
                key.as_bytes(),
                join_cached(made.content_type, gzip, &body),
                made.keep_for,
            );
        }
        Ok(Reply {
            status: made.status,
            content_type: made.content_type,
            body,
            gzip,
            timing: if made.timing.is_empty() {
                encode
            } else {
                format!("{}, {encode}", made.timing)
            },
            from_cache: false,
        })
    }

    /// The bytes kept under `key` as a reply, in the encoding they were stored in (a small
    /// body is kept plain even for a client that accepts gzip).
    fn cached_reply(&self, key: &str) -> Option<Reply> {
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

    /// `path?query` as the upstream answers it, kept `ttl` when it succeeded: market data
    /// candlecache does not store (exchangeInfo, depth, tickers) costs the exchange one
    /// request per `ttl` however many clients ask, within the client's weight budget.
    ///
    /// # Errors
    /// [`Error::NotConfigured`] without an upstream; the upstream's failures.
    pub(crate) async fn pass_through(
        &self,
        exchange: Exchange,
        path: &str,
        query: Option<&str>,
        ttl: Duration,
    ) -> Result<Reply> {
        let path = match query {
            Some(q) if !q.is_empty() => format!("{path}?{q}"),
            _ => path.to_owned(),
        };
        let key = format!("raw|{exchange}|{path}");
        self.answer(&key, false, || async {
            let Some((status, body)) = self.read.pass_through(exchange, &path).await? else {
                return Err(Error::NotConfigured(format!(
                    "{} is live exchange data passed through to an upstream, and none is configured here for {exchange} (serve --help: --upstream, --upstream-bybit)",
                    path.split('?').next().unwrap_or_default()
                )));
            };
            Ok(Made {
                status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                ..Made::json(body, ttl)
            })
        })
        .await
    }
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("max_rows", &self.max_rows)
            .finish()
    }
}
