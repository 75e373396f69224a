//! Bybit's error body, `{"retCode": 10001, "retMsg": "...", "result": {}, "retExtInfo": {},
//! "time": ms}`, with its codes: 10001 parameter errors (an unknown symbol included, HTTP
//! 200 as Bybit answers them), 10006 too many visits, 10016 a system error, 10017 a path
//! not found. ccxt's `bybit.handle_errors` maps these to BadRequest, RateLimitExceeded and
//! ExchangeError.

use hyper::StatusCode;
use serde_json::json;

use crate::Error;

/// A Bybit error at `now` with `code` and `msg`, answered with `status`.
pub(crate) fn bybit(status: StatusCode, code: i64, msg: impl Into<String>, now: i64) -> Error {
    let body = json!({
        "retCode": code,
        "retMsg": msg.into(),
        "result": {},
        "retExtInfo": {},
        "time": now,
    });
    Error::Exchange {
        status,
        body: body.to_string(),
    }
}

/// A parameter error (10001), which Bybit answers with HTTP 200.
pub(crate) fn params(msg: impl Into<String>) -> Error {
    Error::InvalidFormat(msg.into())
}

/// Our errors in Bybit's words and codes.
pub(crate) fn to_bybit(e: Error, now: i64) -> Error {
    let ok = StatusCode::OK;
    match e {
        Error::Exchange { .. } | Error::MethodNotAllowed { .. } => e,
        Error::NotFound(m) => bybit(StatusCode::NOT_FOUND, 10017, m, now),
        Error::MissingParameter(p) => {
            bybit(ok, 10001, format!("params error: {p} is missing"), now)
        }
        Error::DuplicateParameter(p) => {
            bybit(ok, 10001, format!("params error: {p} is given twice"), now)
        }
        Error::InvalidSymbol(_) | Error::UnknownSymbol(_) => {
            bybit(ok, 10001, "Not supported symbols", now)
        }
        Error::InvalidTimeframe(_) => bybit(ok, 10001, "params error: Invalid period!", now),
        Error::InvalidFormat(m) | Error::InvalidTime(m) => bybit(ok, 10001, m, now),
        Error::Busy(m) => bybit(StatusCode::SERVICE_UNAVAILABLE, 10006, m, now),
        Error::Upstream(m) => bybit(StatusCode::BAD_GATEWAY, 10016, m, now),
        Error::UpstreamTimeout(m) => bybit(StatusCode::GATEWAY_TIMEOUT, 10016, m, now),
        Error::NotConfigured(m) => bybit(StatusCode::NOT_FOUND, 10017, m, now),
        Error::Internal(ref detail) | Error::Config(ref detail) => {
            eprintln!("candlecache: internal error on a Bybit route: {detail}");
            bybit(e.status(), 10016, e.to_string(), now)
        }
        other => bybit(other.status(), 10001, other.to_string(), now),
    }
}
