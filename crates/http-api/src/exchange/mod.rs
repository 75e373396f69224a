//! The exchanges' served facades: each exchange's REST routes, error bodies and stream
//! protocol in one folder, so ccxt, ccxt pro and freqtrade speak to candlecache as to the
//! exchange. Adding an exchange adds a folder and a line in [`route`] and
//! [`crate::streams::protocol_for`]; the answer pipeline, the hub and the fan-out do not
//! change.

pub(crate) mod binance;
pub(crate) mod bybit;
pub(crate) mod okx;

use hyper::Request;
use market_cache::Decimal;

use crate::reply::Reply;
use crate::state::App;
use crate::Result;

/// Answers `path` if an exchange's facade serves it.
pub(crate) async fn route<B>(app: &App, path: &str, req: &Request<B>) -> Option<Result<Reply>> {
    if let Some(reply) = binance::route(app, path, req).await {
        return Some(reply);
    }
    if let Some(reply) = bybit::route(app, path, req).await {
        return Some(reply);
    }
    okx::route(app, path, req).await
}

/// A decimal as Bybit and OKX print it: no trailing zeros, no trailing point.
pub(crate) fn printed(d: Decimal) -> String {
    let s = d.to_string();
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_printed_as_bybit_and_okx_print_them() {
        assert_eq!(printed("17071.50".parse().unwrap()), "17071.5");
        assert_eq!(printed("17071.00".parse().unwrap()), "17071");
        assert_eq!(printed("0.00012300".parse().unwrap()), "0.000123");
        assert_eq!(printed("268611".parse().unwrap()), "268611");
    }
}
