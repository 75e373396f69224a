//! Binance's upstream protocol: REST market data ([`rest`]), its klines and funding rows
//! as answers are written ([`rows`]), and its WebSocket market streams ([`stream`]).

pub(crate) mod rest;
pub(crate) mod rows;
pub(crate) mod stream;

use crate::Timeframe;

/// The timeframe of a Binance interval name (`1s` … `1M`, on UTC); `None` for any other
/// name, an offset or a span Binance has no candles of (`2d`, `3M`).
pub fn timeframe(interval: &str) -> Option<Timeframe> {
    let tf: Timeframe = interval.parse().ok()?;
    (supports(tf) && tf.name() == interval).then_some(tf)
}

/// Whether Binance has candles of `tf` (anything else is resampled from one it has).
pub(crate) fn supports(tf: Timeframe) -> bool {
    tf.offset_minutes() == 0 && tf != Timeframe::D2 && tf != Timeframe::Mo3
}
