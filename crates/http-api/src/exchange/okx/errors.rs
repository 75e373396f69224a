//! OKX's error body, `{"code": "51000", "msg": "...", "data": []}`, with its codes (ccxt's
//! `okx.exceptions`): 50014 a parameter missing, 51000 a parameter wrong, 51001 no such
//! instrument (BadRequest / BadSymbol), 50011 too many requests (RateLimitExceeded),
//! 50026 a system error (ExchangeNotAvailable, which freqtrade retries), 50004 a
//! timeout (RequestTimeout). ccxt reads the code whatever the HTTP status.

use hyper::StatusCode;
use serde_json::json;

use crate::Error;

/// An OKX error with `code` and `msg`, answered with `status`.
pub(crate) fn okx(status: StatusCode, code: &str, msg: impl Into<String>) -> Error {
    let body = json!({"code": code, "msg": msg.into(), "data": []});
    Error::Exchange {
        status,
        body: body.to_string(),
    }
}

/// A wrong parameter (51000).
pub(crate) fn param(name: &str) -> Error {
    okx(
        StatusCode::BAD_REQUEST,
        "51000",
        format!("Parameter {name} error"),
    )
}

/// Our errors in OKX's words and codes.
pub(crate) fn to_okx(e: Error) -> Error {
    let bad = StatusCode::BAD_REQUEST;
    match e {
        Error::Exchange { .. } | Error::MethodNotAllowed { .. } => e,
        Error::NotFound(m) | Error::NotConfigured(m) => okx(StatusCode::NOT_FOUND, "51000", m),
        Error::MissingParameter(p) => okx(bad, "50014", format!("Parameter {p} can not be empty")),
        Error::DuplicateParameter(p) => okx(bad, "51000", format!("Parameter {p} error")),
        Error::InvalidSymbol(_) | Error::UnknownSymbol(_) => {
            okx(bad, "51001", "Instrument ID does not exist")
        }
        Error::InvalidTimeframe(_) => okx(bad, "51000", "Parameter bar error"),
        Error::InvalidFormat(m) | Error::InvalidTime(m) => okx(bad, "51000", m),
        Error::Busy(m) => okx(StatusCode::TOO_MANY_REQUESTS, "50011", m),
        Error::Upstream(m) => okx(StatusCode::SERVICE_UNAVAILABLE, "50026", m),
        Error::UpstreamTimeout(m) => okx(StatusCode::GATEWAY_TIMEOUT, "50004", m),
        Error::Internal(ref detail) | Error::Config(ref detail) => {
            eprintln!("candlecache: internal error on an OKX route: {detail}");
            okx(e.status(), "50026", e.to_string())
        }
        other => okx(other.status(), "51000", other.to_string()),
    }
}
