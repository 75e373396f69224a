//! The accept loop: HTTP/1.1 with limits, an access log line per request, graceful
//! shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cache_core::Cache;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use market_cache::Service;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::reply::{error_response, response};
use crate::router::route_name;
use crate::state::{App, RESPONSES};
use crate::Error;

/// URLs longer than this are refused with 414.
const MAX_URL_BYTES: usize = 8 * 1024;
/// Request heads larger than this are refused with 431.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Bodies larger than this are refused with 413; no endpoint needs one.
const MAX_BODY_BYTES: u64 = 64 * 1024;

/// Configuration of the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The most candles one answer may hold.
    pub max_rows: usize,
    /// Headers must arrive within this many seconds.
    pub header_timeout_secs: u64,
    /// Bearer token for the mutating endpoints; required when listening beyond loopback.
    pub token: Option<String>,
    /// One line per request on stderr (written by a thread of its own).
    pub access_log: bool,
    /// The served WebSocket streams (`[server.ws]`).
    pub ws: crate::streams::WsConfig,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_rows: market_cache::MAX_LIMIT,
            header_timeout_secs: 10,
            token: None,
            access_log: true,
            ws: crate::streams::WsConfig::default(),
        }
    }
}

/// Serves until `shutdown` completes, then lets requests in flight finish (up to 10 s).
///
/// # Errors
/// [`Error::Config`] if the configuration is unusable (no token beyond loopback, a
/// zero in `[server.ws]`).
pub async fn serve(
    listener: TcpListener,
    config: HttpConfig,
    read: Service,
    cache: Cache,
    guard: mem_guard::MemGuard,
    shutdown: impl Future<Output = ()>,
) -> crate::Result<()> {
    let local = listener
        .local_addr()
        .map_err(|e| Error::Internal(e.to_string()))?;
    if !local.ip().is_loopback() && config.token.is_none() {
        return Err(Error::Config(format!(
            "listening on {local} (beyond loopback) needs a token for the mutating endpoints"
        )));
    }
    config.ws.validate()?;
    let responses = cache
        .namespace(RESPONSES)
        .map_err(|e| Error::Internal(e.to_string()))?;
    let ws = Arc::new(crate::streams::Hub::new(read.clone(), config.ws.clone()));
    let app = Arc::new(App {
        ws,
        read,
        cache,
        responses,
        metrics: Default::default(),
        access_log: crate::access_log::AccessLog::start(config.access_log),
        max_rows: config.max_rows,
        token: config.token.clone(),
        guard,
    });
    // hyper-util's graceful shutdown does not take connections with upgrades, so the
    // connections watch a stop signal themselves and hold `done` until they end.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (done, mut all_done) = tokio::sync::mpsc::channel::<()>(1);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(config.header_timeout_secs))
        .max_buf_size(MAX_HEAD_BYTES);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of descriptors or a reset before accept: keep serving the others.
                Err(_) => continue,
            },
            () = &mut shutdown => break,
        };
        // Small writes (stream events, short answers) go out at once, not after the
        // peer's delayed ACK.
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = service_fn(move |req: Request<Incoming>| {
            let app = app.clone();
            async move { Ok::<_, std::convert::Infallible>(handle(&app, req, peer).await) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let mut stopped = stopped.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let _done = done;
            tokio::pin!(conn);
            // A client that goes away mid-request is not our error.
            let stopping = tokio::select! {
                _ = conn.as_mut() => false,
                r = stopped.wait_for(|s| *s) => r.is_ok(),
            };
            if stopping {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        });
    }
    let _ = stop.send(true);
    app.ws.shutdown();
    drop(done);
    let _ = tokio::time::timeout(Duration::from_secs(10), all_done.recv()).await;
    Ok(())
}

async fn handle(
    app: &Arc<App>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<http_body_util::Full<Bytes>> {
    let started = Instant::now();
    let method = req.method().clone();
    let path: String = req.uri().path().chars().take(200).collect();
    // Measured without formatting the URI: this runs on every request.
    let uri = req.uri();
    let uri_len = uri.path_and_query().map_or(0, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len());
    let body_len = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    // hyper's read buffer limit is not a head limit (heads of 100 KB pass it), so the
    // head is measured here too: name, ": ", value and CRLF per header.
    let head_len = uri_len
        + req
            .headers()
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>();
    let result = if uri_len > MAX_URL_BYTES {
        Err(Error::UriTooLong(MAX_URL_BYTES))
    } else if head_len > MAX_HEAD_BYTES {
        Err(Error::HeadersTooLarge(MAX_HEAD_BYTES))
    } else if body_len > MAX_BODY_BYTES {
        Err(Error::PayloadTooLarge(MAX_BODY_BYTES as usize))
    } else if let Some(protocol) = crate::streams::protocol_for(&path) {
        if req.method() == Method::GET {
            app.ws.upgrade(protocol, req)
        } else {
            Err(Error::MethodNotAllowed {
                method: req.method().to_string(),
                allow: "GET",
            })
        }
    } else {
        let (parts, body) = req.into_parts();
        // No endpoint takes a body, but one that is sent must be whole and well-formed:
        // a broken chunked body is a broken request, not an empty one.
        match drain(body).await {
            Err(e) => Err(e),
            Ok(()) => {
                let head_only = parts.method == Method::HEAD;
                let head = Request::from_parts(parts, ());
                let app = app.clone();
                let route = route_name(&path);
                // Its own task, so a panic in a handler becomes a 500 for this request
                // only; and aborted if the client goes away first, so abandoned requests
                // do not pile up.
                let task = AbortOnDrop(tokio::spawn(async move {
                    app.guard.profiles().future(route, app.handle(&head)).await
                }));
                match task.await {
                    Ok(r) => r.map(|reply| response(reply, head_only)),
                    Err(e) => Err(Error::Internal(format!("handler failed: {e}"))),
                }
            }
        }
    };
    let resp = result.unwrap_or_else(|e| {
        if let Error::Internal(detail) | Error::Config(detail) = &e {
            eprintln!("candlecache: internal error on {method} {path}: {detail}");
        }
        error_response(&e, app.read.now())
    });
    let took = started.elapsed();
    app.metrics
        .record(route_name(&path), resp.status().as_u16(), took);
    if app.access_log.enabled() {
        app.access_log.line(format!(
            "{peer} {method} {path} {} {}B {:.2}ms",
            resp.status().as_u16(),
            http_body::Body::size_hint(resp.body()).exact().unwrap_or(0),
            took.as_secs_f64() * 1000.0
        ));
    }
    resp
}

/// Reads a request body to its end (at most [`MAX_BODY_BYTES`]) and drops it.
async fn drain(body: Incoming) -> crate::Result<()> {
    use http_body::Body as _;
    use http_body_util::BodyExt as _;
    if body.is_end_stream() {
        return Ok(());
    }
    match http_body_util::Limited::new(body, MAX_BODY_BYTES as usize)
        .collect()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(Error::PayloadTooLarge(MAX_BODY_BYTES as usize))
        }
        Err(e) => Err(Error::MalformedBody(e.to_string())),
    }
}

/// A spawned task that is aborted when this handle is dropped: hyper drops a request's
/// future when its connection closes.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        // A no-op once the task has finished.
        self.0.abort();
    }
}

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}
