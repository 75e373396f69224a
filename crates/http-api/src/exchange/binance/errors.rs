//! Binance's parameters and error bodies: `{"code": -1121, "msg": "Invalid symbol."}`
//! with its codes, and `startTime`/`endTime`/`limit` checked as it checks them.

use hyper::StatusCode;

use crate::query::Params;
use crate::{Error, Result};

pub(crate) fn binance(status: StatusCode, code: i32, msg: impl Into<String>) -> Error {
    Error::Binance {
        status,
        code,
        msg: msg.into(),
    }
}

pub(crate) fn illegal(param: &str, range: &str) -> Error {
    binance(
        StatusCode::BAD_REQUEST,
        -1100,
        format!("Illegal characters found in parameter '{param}'; legal range is '{range}'."),
    )
}

/// Our errors in Binance's words and codes.
pub(crate) fn to_binance(e: Error) -> Error {
    let bad = StatusCode::BAD_REQUEST;
    match e {
        Error::Binance { .. } | Error::NotFound(_) | Error::MethodNotAllowed { .. } => e,
        Error::DuplicateParameter(p) => {
            binance(bad, -1101, format!("Duplicate values for parameter '{p}'."))
        }
        Error::MissingParameter(p) => binance(
            bad,
            -1102,
            format!("Mandatory parameter '{p}' was not sent, was empty/null, or malformed."),
        ),
        Error::InvalidSymbol(_) | Error::UnknownSymbol(_) => binance(bad, -1121, "Invalid symbol."),
        Error::InvalidTimeframe(_) => binance(bad, -1120, "Invalid interval."),
        Error::InvalidFormat(m) | Error::InvalidTime(m) => binance(bad, -1100, m),
        Error::Upstream(m) => binance(StatusCode::BAD_GATEWAY, -1000, m),
        Error::NotConfigured(m) => binance(StatusCode::NOT_FOUND, -1000, m),
        Error::UpstreamTimeout(m) => binance(StatusCode::GATEWAY_TIMEOUT, -1007, m),
        Error::Busy(m) => binance(StatusCode::SERVICE_UNAVAILABLE, -1008, m),
        Error::Internal(ref detail) | Error::Config(ref detail) => {
            // The client gets no detail; the operator must.
            eprintln!("candlecache: internal error on a Binance route: {detail}");
            binance(e.status(), -1000, e.to_string())
        }
        other => binance(other.status(), -1000, other.to_string()),
    }
}

/// `startTime`, `endTime` (inclusive) and `limit` (`default` when absent, at most `max`)
/// as Binance checks them: a limit of 0 is -1130, a start after the end -1023.
pub(crate) fn range(
    p: &Params,
    default: usize,
    max: usize,
) -> Result<(Option<i64>, Option<i64>, usize)> {
    let start = number(p, "startTime")?;
    let end = number(p, "endTime")?;
    let limit = match number(p, "limit")? {
        None => default,
        Some(0) => {
            return Err(binance(
                StatusCode::BAD_REQUEST,
                -1130,
                "Invalid data sent for a parameter: 'limit' must be at least 1.",
            ))
        }
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX).min(max),
    };
    if let (Some(s), Some(e)) = (start, end) {
        if s > e {
            return Err(binance(
                StatusCode::BAD_REQUEST,
                -1023,
                "Start time is greater than end time.",
            ));
        }
    }
    Ok((start, end, limit))
}

/// An optional integer parameter in Binance's `^[0-9]{1,20}$`.
fn number(p: &Params, name: &str) -> Result<Option<i64>> {
    match p.get(name) {
        None | Some("") => Ok(None),
        Some(v) if v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit()) => v
            .parse()
            .map(Some)
            .map_err(|_| illegal(name, "^[0-9]{1,20}$")),
        Some(_) => Err(illegal(name, "^[0-9]{1,20}$")),
    }
}
