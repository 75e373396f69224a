//! Bybit v5 as served: the market data (`/v5/market/...`, [`market`]) ccxt's `bybit` and
//! freqtrade read, its parameters and error bodies ([`errors`]), and its public kline
//! streams (`/v5/public/spot`, `/v5/public/linear`, [`streams`]). Read from Bybit's v5
//! documentation (market/kline, mark-kline, history-fund-rate, instrument, time,
//! tickers, orderbook, risk-limit, ws/connect, websocket/public/kline) and ccxt 4.5's
//! `bybit.py` and `pro/bybit.py`.

mod errors;
mod market;
pub(crate) mod streams;

use hyper::Request;

use crate::reply::Reply;
use crate::state::App;
use crate::Result;

/// Answers `path` if it is one of Bybit's REST routes, in Bybit's error bodies.
pub(crate) async fn route<B>(app: &App, path: &str, req: &Request<B>) -> Option<Result<Reply>> {
    let call = path.strip_prefix("/v5/market/")?;
    let now = app.read.now();
    Some(
        app.bybit_market(call, req)
            .await
            .map_err(|e| errors::to_bybit(e, now)),
    )
}
