//! Binance's upstream protocol: REST market data ([`rest`]), its klines and funding rows
//! as answers are written ([`rows`]), and its WebSocket market streams ([`stream`]).

pub(crate) mod rest;
pub(crate) mod rows;
pub(crate) mod stream;
