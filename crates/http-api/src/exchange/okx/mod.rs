//! OKX v5 as served: the market data (`/api/v5/market/...`, `/api/v5/public/...`,
//! [`market`]) ccxt's `okx` and freqtrade read, its parameters and error bodies
//! ([`errors`]), and its candle channels (`/ws/v5/business`, [`streams`]). Read from
//! ccxt 4.5's `okx.py` and `pro/okx.py` and freqtrade's `exchange/okx.py`.

mod errors;
mod market;
pub(crate) mod streams;

use hyper::Request;

use crate::reply::Reply;
use crate::state::App;
use crate::Result;

/// Answers `path` if it is one of OKX's REST routes, in OKX's error bodies.
pub(crate) async fn route<B>(app: &App, path: &str, req: &Request<B>) -> Option<Result<Reply>> {
    let call = path.strip_prefix("/api/v5/")?;
    Some(app.okx_market(call, req).await.map_err(errors::to_okx))
}
