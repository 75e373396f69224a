//! Binance's klines rows as an answer can be asked in (the served `/api/v3/klines`,
//! `/fapi/v1/klines`), and its funding rows.

use std::fmt::Write;

use crate::codec::encoded::RowFormat;
use crate::{Candle, Decimal, Funding, Symbol, Timeframe};

/// The elements of Binance's klines array, as rows an answer can be asked in: 12 fields
/// a row, decimals as strings with at least `min_places` places (Binance spot pads to 8,
/// its futures API prints each symbol's own precision: `0` keeps the stored places),
/// close time = next open - 1 ms.
#[derive(Debug, Clone)]
pub struct KlineRows {
    places: u8,
    id: String,
}

impl KlineRows {
    /// Rows with every decimal written to at least `min_places` places.
    pub fn new(min_places: u8) -> Self {
        Self {
            places: min_places,
            id: format!("klines-{min_places}"),
        }
    }
}

impl RowFormat for KlineRows {
    fn id(&self) -> &str {
        &self.id
    }

    fn separator(&self) -> &'static [u8] {
        b","
    }

    fn write(&self, c: &Candle, tf: Timeframe, s: &mut Vec<u8>) {
        let places = self.places;
        let zero = Decimal::new(0, places);
        let quoted = |s: &mut Vec<u8>, v: Decimal| {
            s.extend_from_slice(b",\"");
            v.round_to(v.scale().max(places)).write_exact(s);
            s.push(b'"');
        };
        let int = |s: &mut Vec<u8>, v: i128| Decimal::new(v, 0).write_exact(s);
        s.push(b'[');
        int(s, i128::from(c.open_time));
        for v in [c.open, c.high, c.low, c.close, c.volume] {
            quoted(s, v);
        }
        s.push(b',');
        int(s, i128::from(tf.next(c.open_time) - 1));
        quoted(s, c.quote_volume.unwrap_or(zero));
        s.push(b',');
        int(s, i128::from(c.trades.unwrap_or(0)));
        quoted(s, c.taker_base.unwrap_or(zero));
        quoted(s, c.taker_quote.unwrap_or(zero));
        s.extend_from_slice(b",\"0\"]");
    }
}

/// Writes funding rows as Binance does, field for field.
pub fn funding_json(symbol: &Symbol, rows: &[Funding]) -> Vec<u8> {
    let mut s = String::with_capacity(rows.len() * 100 + 2);
    s.push('[');
    for (i, f) in rows.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        // The strings were checked to be decimals (or empty), so they need no escaping.
        let _ = write!(
            s,
            r#"{{"symbol":"{symbol}","fundingTime":{},"fundingRate":"{}","markPrice":"{}"}}"#,
            f.time, f.rate, f.mark_price
        );
    }
    s.push(']');
    s.into_bytes()
}
