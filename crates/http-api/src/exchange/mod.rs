//! The exchanges' served facades: each exchange's REST routes, error bodies and stream
//! protocol in one folder, so ccxt, ccxt pro and freqtrade speak to candlecache as to the
//! exchange. Adding an exchange adds a folder and a line in [`route`] and
//! [`crate::streams::protocol_for`]; the answer pipeline, the hub and the fan-out do not
//! change.

pub(crate) mod binance;
pub(crate) mod bybit;

use hyper::Request;

use crate::reply::Reply;
use crate::state::App;
use crate::Result;

/// Answers `path` if an exchange's facade serves it.
pub(crate) async fn route<B>(app: &App, path: &str, req: &Request<B>) -> Option<Result<Reply>> {
    match binance::route(app, path, req).await {
        Some(reply) => Some(reply),
        None => bybit::route(app, path, req).await,
    }
}
