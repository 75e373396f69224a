//! Funding rates of USD-M perpetual futures, as Binance's `/fapi/v1/fundingRate` lists them.
//!
//! Rates and mark prices are kept as the exchange's decimal strings: a rate has more places
//! than any candle column, and nothing computes with them here, they are only printed back.

use serde::{Deserialize, Serialize};

/// One funding event of a symbol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Funding {
    /// When the funding was settled, epoch ms (not on a grid: Binance's can be a few ms late).
    pub time: i64,
    /// The rate, a decimal string such as `0.00010000` or `-0.00002263`.
    pub rate: String,
    /// The mark price at that time; empty for early records the exchange has none for.
    pub mark_price: String,
    /// The exchange's other fields of the event as it wrote them, a JSON object (OKX:
    /// `realizedRate`, `method`, `formulaType`); empty where there are none.
    #[serde(default)]
    pub extra: String,
}
