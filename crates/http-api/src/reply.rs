//! Replies: the body with its content type and encoding, the JSON envelopes, gzip as
//! clients ask for it, the form whole answers are cached in, and the HTTP response
//! built from a reply.

use std::fmt::Write as _;

use bytes::Bytes;
use hyper::header::{HeaderValue, ACCEPT_ENCODING, ALLOW, CONTENT_ENCODING, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use market_cache::format_time;
use serde_json::json;

use crate::Error;

/// Bodies larger than this are gzipped for clients that accept it.
pub(crate) const GZIP_MIN_BYTES: usize = 1024;

/// A response body with its content type, and the timings for Server-Timing.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) content_type: &'static str,
    pub(crate) body: Bytes,
    pub(crate) gzip: bool,
    pub(crate) timing: String,
    pub(crate) from_cache: bool,
}

impl Reply {
    pub(crate) fn json(v: serde_json::Value) -> Self {
        Self {
            status: StatusCode::OK,
            content_type: "application/json",
            body: Bytes::from(v.to_string()),
            gzip: false,
            timing: String::new(),
            from_cache: false,
        }
    }
}

/// The error envelope at `now` (the service's clock), with the status the error maps to.
pub(crate) fn error_response(e: &Error, now: i64) -> Response<http_body_util::Full<Bytes>> {
    let body = match e {
        Error::Binance { code, msg, .. } => json!({"code": code, "msg": msg}).to_string(),
        Error::Exchange { body, .. } => body.clone(),
        _ => json!({
            "success": false,
            "error": {"code": e.code(), "message": e.to_string()},
            "timestamp": format_time(now),
        })
        .to_string(),
    };
    let mut r = Response::new(http_body_util::Full::new(Bytes::from(body)));
    *r.status_mut() = e.status();
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Error::Busy(_) = e {
        r.headers_mut()
            .insert(hyper::header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    if let Error::MethodNotAllowed { allow, .. } = e {
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static(allow));
    }
    r
}

/// `{"success": true, "data": ..., "meta": ..., "timestamp": ...}` at `now` (the service's
/// clock).
pub(crate) fn envelope(
    now: i64,
    data: serde_json::Value,
    meta: Option<serde_json::Value>,
) -> serde_json::Value {
    let mut v = json!({"success": true, "data": data, "timestamp": format_time(now)});
    if let Some(m) = meta {
        v["meta"] = m;
    }
    v
}

/// Whether the client takes a gzipped body: `gzip` (or `x-gzip`, or `*` when gzip is not
/// named) with a q-value above 0, as RFC 9110 12.5.3 reads `Accept-Encoding`.
pub(crate) fn accepts_gzip<B>(req: &Request<B>) -> bool {
    let mut gzip = None;
    let mut star = None;
    for entry in req
        .headers()
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = entry.split(';');
        let coding = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(Some(1.0), |(_, v)| v.trim().parse::<f32>().ok());
        // An unreadable q-value refuses the coding rather than guessing.
        let wanted = q.is_some_and(|q| q > 0.0);
        match coding.as_str() {
            "gzip" | "x-gzip" => gzip = Some(gzip.unwrap_or(false) || wanted),
            "*" => star = Some(wanted),
            _ => {}
        }
    }
    gzip.or(star).unwrap_or(false)
}

/// `b` gzipped; an encoder failure is the caller's error to answer, never an empty body.
pub(crate) fn gzip_bytes(b: &[u8]) -> std::io::Result<Bytes> {
    use std::io::Write;
    let mut enc =
        flate2::write::GzEncoder::new(Vec::with_capacity(b.len() / 4), flate2::Compression::fast());
    enc.write_all(b)?;
    enc.finish().map(Bytes::from)
}

/// Cached responses are stored as `content-type \n encoding \n body`, the encoding being
/// `gzip` or empty, so a hit is sent exactly as it was encoded.
pub(crate) fn join_cached(content_type: &str, gzip: bool, body: &[u8]) -> Bytes {
    let enc: &[u8] = if gzip { b"gzip" } else { b"" };
    let mut v = Vec::with_capacity(content_type.len() + enc.len() + 2 + body.len());
    v.extend_from_slice(content_type.as_bytes());
    v.push(b'\n');
    v.extend_from_slice(enc);
    v.push(b'\n');
    v.extend_from_slice(body);
    Bytes::from(v)
}

pub(crate) fn split_cached(v: &Bytes) -> Option<(&'static str, bool, Bytes)> {
    let nl = v.iter().position(|b| *b == b'\n')?;
    let ct = match &v[..nl] {
        b"text/csv" => "text/csv",
        b"application/vnd.apache.arrow.stream" => "application/vnd.apache.arrow.stream",
        _ => "application/json",
    };
    let rest = &v[nl + 1..];
    let nl2 = rest.iter().position(|b| *b == b'\n')?;
    let gzip = &rest[..nl2] == b"gzip";
    // The body is shared, not copied.
    Some((ct, gzip, v.slice(nl + 1 + nl2 + 1..)))
}

/// Builds the HTTP response of a reply, with its headers.
pub(crate) fn response(reply: Reply, head_only: bool) -> Response<http_body_util::Full<Bytes>> {
    let len = reply.body.len();
    let body = if head_only { Bytes::new() } else { reply.body };
    let mut r = Response::new(http_body_util::Full::new(body));
    *r.status_mut() = reply.status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    if reply.gzip {
        h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    h.insert("vary", HeaderValue::from_static("accept, accept-encoding"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if reply.content_type.starts_with("text/html") {
        // The page loads only its own script and style and talks only to this server.
        h.insert(
            "content-security-policy",
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            ),
        );
    }
    h.insert(
        "x-cache",
        HeaderValue::from_static(if reply.from_cache { "hit" } else { "miss" }),
    );
    if !reply.timing.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&reply.timing) {
            h.insert("server-timing", v);
        }
    }
    if head_only {
        let mut s = String::new();
        let _ = write!(s, "{len}");
        if let Ok(v) = HeaderValue::from_str(&s) {
            h.insert(hyper::header::CONTENT_LENGTH, v);
        }
    }
    r
}
