//! Byte forms of candles: the fixed-width chunk form the cache keeps, Arrow, and rows
//! written once per text format.

pub(crate) mod encoded;
pub(crate) mod schema;
pub(crate) mod wire;
