//! Bybit v5: REST market data (`/v5/market/...`, read in [`rest`]) and the public kline
//! streams (`/v5/public/spot`, `/v5/public/linear`, read in [`stream`]). What is here was
//! read from Bybit's v5 documentation (bybit-exchange.github.io/docs/v5: market/kline,
//! mark-kline, history-fund-rate, websocket/public/kline, ws/connect) and from ccxt's
//! `bybit.py` (4.5), which freqtrade drives.

pub(crate) mod rest;
pub(crate) mod stream;

use crate::Timeframe;

/// Bybit's name of a timeframe (`1` `3` `5` `15` `30` `60` `120` `240` `360` `720` `D` `W`
/// `M`); `None` for the ones Bybit has no candles of (1s, 8h, 3d).
pub fn interval(tf: Timeframe) -> Option<&'static str> {
    Some(match tf {
        Timeframe::M1 => "1",
        Timeframe::M3 => "3",
        Timeframe::M5 => "5",
        Timeframe::M15 => "15",
        Timeframe::M30 => "30",
        Timeframe::H1 => "60",
        Timeframe::H2 => "120",
        Timeframe::H4 => "240",
        Timeframe::H6 => "360",
        Timeframe::H12 => "720",
        Timeframe::D1 => "D",
        Timeframe::W1 => "W",
        Timeframe::Mo1 => "M",
        _ => return None,
    })
}

/// The timeframe of a Bybit interval name, the inverse of [`interval`].
pub fn timeframe(interval_name: &str) -> Option<Timeframe> {
    Timeframe::ALL
        .into_iter()
        .find(|tf| interval(*tf) == Some(interval_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bybit_interval_names_one_timeframe() {
        let names = [
            "1", "3", "5", "15", "30", "60", "120", "240", "360", "720", "D", "W", "M",
        ];
        for n in names {
            let tf = timeframe(n).unwrap();
            assert_eq!(interval(tf), Some(n));
        }
        assert_eq!(timeframe("1m"), None);
        assert_eq!(interval(Timeframe::H8), None);
    }
}
