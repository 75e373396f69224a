use crate::{Decimal, Timeframe};

/// One candle as the exchange reports it; prices and volumes are exact decimals.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Candle {
    /// Open time, epoch ms.
    pub open_time: i64,
    /// First trade price.
    pub open: Decimal,
    /// Highest trade price.
    pub high: Decimal,
    /// Lowest trade price.
    pub low: Decimal,
    /// Last trade price.
    pub close: Decimal,
    /// Traded base-asset volume.
    pub volume: Decimal,
    /// Traded quote-asset volume, when the source has it.
    pub quote_volume: Option<Decimal>,
    /// Number of trades, when the source has it.
    pub trades: Option<u64>,
    /// Base volume bought by takers, when the source has it.
    pub taker_base: Option<Decimal>,
    /// Quote volume bought by takers, when the source has it.
    pub taker_quote: Option<Decimal>,
    /// The volume in the other currency of exchanges that report three (OKX's `volCcy`:
    /// base currency of a swap, whose `volume` counts contracts; quote currency on spot).
    #[serde(default)]
    pub volume_ccy: Option<Decimal>,
}

impl Candle {
    /// Checks the candle against the rules every exchange candle obeys; returns what is
    /// wrong, in words.
    pub fn validate(&self, tf: Timeframe) -> Result<(), String> {
        if self.open_time < 0 {
            return Err(format!("open time {} is before 1970", self.open_time));
        }
        if !tf.is_aligned(self.open_time) {
            return Err(format!(
                "open time {} ({}) is not on the {tf} grid",
                self.open_time,
                crate::model::time::format_time(self.open_time)
            ));
        }
        let (o, h, l, c) = (self.open, self.high, self.low, self.close);
        if [o, h, l, c].iter().any(|p| p.is_negative()) {
            return Err("negative price".into());
        }
        if l > h {
            return Err(format!("low {l} is above high {h}"));
        }
        if o < l || o > h {
            return Err(format!("open {o} is outside low {l} .. high {h}"));
        }
        if c < l || c > h {
            return Err(format!("close {c} is outside low {l} .. high {h}"));
        }
        let volumes = [
            Some(self.volume),
            self.quote_volume,
            self.taker_base,
            self.taker_quote,
            self.volume_ccy,
        ];
        if volumes.iter().flatten().any(|v| v.is_negative()) {
            return Err("negative volume".into());
        }
        Ok(())
    }
}
