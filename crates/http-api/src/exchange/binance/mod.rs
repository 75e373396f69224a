//! Binance's served protocols: the spot market data (`/api/v3`, [`spot`]), USD-M futures
//! (`/fapi/v1`, [`futures`]), `exchangeInfo` from the store ([`info`]), its parameters and
//! error bodies ([`errors`]), and its WebSocket market streams ([`streams`]).

mod errors;
mod futures;
mod info;
mod spot;
pub(crate) mod streams;

use hyper::Request;

use crate::reply::Reply;
use crate::state::App;
use crate::Result;

/// Answers `path` if it is one of Binance's REST routes, in Binance's error bodies.
pub(crate) async fn route<B>(app: &App, path: &str, req: &Request<B>) -> Option<Result<Reply>> {
    let reply = if let Some(call) = path.strip_prefix("/api/v3/") {
        app.binance_spot(call, req).await
    } else if let Some(call) = path.strip_prefix("/fapi/v1/") {
        app.futures(call, req).await
    } else {
        return None;
    };
    Some(reply.map_err(errors::to_binance))
}
