//! The HTTP face of candlecache.
//!
//! This crate will own the hyper 1.x server: the routes and envelopes of the design
//! (`/api/crypto/ohlc`, `/api/v3/klines` and the other Binance-compatible calls,
//! `/api/performance/*`, `/metrics`, `/healthz`, `/openapi.json`), format negotiation
//! (JSON, CSV, Arrow IPC, gzip), request limits, error mapping in one place, access logs
//! and graceful shutdown.
//!
//! It may depend on every library crate; it never runs SQL itself.
