//! OKX v5: REST market data (`/api/v5/market/...`, `/api/v5/public/...`, read in [`rest`])
//! and the candle channels of `/ws/v5/business` (read in [`stream`]). What is here was
//! read from ccxt's `okx.py` and ccxt pro's `okx.py` (4.5, which freqtrade drives: bar
//! names, the `after`/`before` window it sends, the history endpoint past 1,440 candles,
//! request costs, error codes, the text `ping`, candle channels on `/business`) and from
//! freqtrade's `exchange/okx.py` (300 candles a page, 100 for mark and history).

pub(crate) mod rest;
pub(crate) mod stream;

use crate::Timeframe;

/// Hong Kong time, on which OKX's bars of 6 hours and longer open unless `utc` is asked.
const HONG_KONG: i32 = 8 * 60;

/// OKX's bar names of spans under 6 hours (the same on both clocks).
const SHORT: [(&str, Timeframe); 8] = [
    ("1m", Timeframe::M1),
    ("3m", Timeframe::M3),
    ("5m", Timeframe::M5),
    ("15m", Timeframe::M15),
    ("30m", Timeframe::M30),
    ("1H", Timeframe::H1),
    ("2H", Timeframe::H2),
    ("4H", Timeframe::H4),
];

/// OKX's bar names of 6 hours and longer, without the `utc` suffix.
const LONG: [(&str, Timeframe); 8] = [
    ("6H", Timeframe::H6),
    ("12H", Timeframe::H12),
    ("1D", Timeframe::D1),
    ("2D", Timeframe::D2),
    ("3D", Timeframe::D3),
    ("1W", Timeframe::W1),
    ("1M", Timeframe::Mo1),
    ("3M", Timeframe::Mo3),
];

/// OKX's bar name of a timeframe: `1m` … `4H`, and for longer spans `6H` … `3M` on Hong
/// Kong time or `6Hutc` … `3Mutc` on UTC; `None` for any other (1s, 8h, other clocks).
pub fn bar(tf: Timeframe) -> Option<String> {
    if let Some((name, _)) = SHORT.iter().find(|(_, t)| *t == tf) {
        return Some((*name).to_owned());
    }
    let (name, _) = LONG.iter().find(|(_, t)| *t == tf.on_utc())?;
    match tf.offset_minutes() {
        0 => Some(format!("{name}utc")),
        HONG_KONG => Some((*name).to_owned()),
        _ => None,
    }
}

/// The timeframe of an OKX bar name, the inverse of [`bar`].
pub fn timeframe(bar_name: &str) -> Option<Timeframe> {
    if let Some((_, tf)) = SHORT.iter().find(|(n, _)| *n == bar_name) {
        return Some(*tf);
    }
    let (name, utc) = match bar_name.strip_suffix("utc") {
        Some(name) => (name, true),
        None => (bar_name, false),
    };
    let (_, tf) = LONG.iter().find(|(n, _)| *n == name)?;
    if utc {
        Some(*tf)
    } else {
        tf.with_offset(HONG_KONG).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_time;

    #[test]
    fn every_okx_bar_names_one_timeframe_on_its_clock() {
        let names = [
            "1m", "3m", "5m", "15m", "30m", "1H", "2H", "4H", "6H", "12H", "1D", "2D", "3D", "1W",
            "1M", "3M", "6Hutc", "12Hutc", "1Dutc", "2Dutc", "3Dutc", "1Wutc", "1Mutc", "3Mutc",
        ];
        for n in names {
            let tf = timeframe(n).unwrap();
            assert_eq!(bar(tf).as_deref(), Some(n));
        }
        for bad in ["1h", "1d", "4Hutc", "1s", "8H", ""] {
            assert_eq!(timeframe(bad), None, "{bad}");
        }
        // A 1D candle opens at 16:00 UTC, a 1Dutc one at midnight.
        let t = parse_time("2024-03-05T10:00:00Z").unwrap();
        let hk = timeframe("1D").unwrap();
        assert_eq!(hk.floor(t), parse_time("2024-03-04T16:00:00Z").unwrap());
        assert_eq!(
            timeframe("1Dutc").unwrap().floor(t),
            parse_time("2024-03-05").unwrap()
        );
        assert_eq!(bar(Timeframe::H8), None);
    }
}
