//! The HTTP face of candlecache: a hyper 1.x server with the routes and envelopes of the
//! design.
//!
//! # Overview
//! [`serve`] answers on a bound listener until its shutdown future completes, then lets
//! requests in flight finish. Routes: `/api/crypto/ohlc` (JSON, CSV or Arrow IPC by
//! `format` or `Accept`, gzip for large bodies), `/api/crypto/markets`,
//! the Binance-compatible `/api/v3/klines`, `exchangeInfo`, `time` and `ping`,
//! `/api/performance/stats`, `/api/performance/cache`, `/api/performance/memory` (the
//! memory guard's report), `POST /api/performance/cache/clear`,
//! `POST /api/performance/optimize`, `/metrics` (Prometheus text), `/healthz`,
//! `/openapi.json`, `/asyncapi.json`, and the Binance-compatible WebSocket streams
//! `/ws/<stream>`, `/ws` and `/stream?streams=` ([`WsConfig`] holds their limits). Every route's handler is profiled for allocations by the guard. Errors use one envelope and one status mapping ([`Error::status`]).
//! Limits: URL 8 KiB (414), head 64 KiB (431), body 64 KiB (413), headers within 10 s.
//! A repeated `/api/crypto/ohlc` request is a lookup of ready bytes in `api_responses`.
//!
//! It never runs SQL itself: everything comes through `market_cache::Service`.

#![forbid(unsafe_code)]
// The route handler's future nests the read path's (service, read path, chunk loads,
// object store, upstream client); its layout passes the default query depth of 128.
#![recursion_limit = "256"]

mod access_log;
mod encode;
mod error;
mod exchange;
mod metrics;
mod openapi;
mod query;
mod reply;
mod router;
mod routes;
mod server;
mod state;
mod streams;

pub use error::{Error, Result};
pub use server::{serve, HttpConfig};
pub use streams::WsConfig;
