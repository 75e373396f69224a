//! The domain's values: symbols, timeframes and their alignment, exact decimals, candles,
//! funding events and time.

pub(crate) mod candle;
pub(crate) mod decimal;
pub(crate) mod funding;
pub(crate) mod grid;
pub(crate) mod symbol;
pub(crate) mod time;
pub(crate) mod timeframe;
