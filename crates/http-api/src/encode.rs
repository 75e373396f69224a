//! Candles as JSON (the envelope of the design) and CSV.

use std::fmt::Write as _;

use market_cache::Answer;
use market_cache::{Candle, Symbol, Timeframe};

/// `{"success": true, "data": {symbol, timeframe, columns, rows}, "meta": {...}, "timestamp"}`;
/// numbers in shortest round-trip form, time as integer ms.
pub(crate) fn json(symbol: &Symbol, tf: Timeframe, a: &Answer) -> Vec<u8> {
    let mut s = String::with_capacity(64 + a.candles.len() * 64);
    let (market, price) = symbol.kind().market_and_price();
    let _ = write!(
        s,
        r#"{{"success":true,"data":{{"symbol":"{symbol}","market":"{market}","price":"{price}","timeframe":"{tf}","columns":["time","open","high","low","close","volume"],"rows":["#
    );
    for (i, c) in a.candles.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "[{},{},{},{},{},{}]",
            c.open_time,
            c.open.to_f64(),
            c.high.to_f64(),
            c.low.to_f64(),
            c.close.to_f64(),
            c.volume.to_f64()
        );
    }
    let gaps: Vec<[i64; 2]> = a.gaps.iter().map(|(x, y)| [*x, *y]).collect();
    let meta = serde_json::json!({
        "source": a.source,
        "cached": a.source == market_cache::Source::Cache,
        "rows": a.candles.len(),
        "gaps": gaps,
        "partial_last": a.partial_last,
        "next_start": a.next_start,
        "resampled_from": a.resampled_from.map(|t| t.to_string()),
    });
    let _ = write!(
        s,
        r#"]}},"meta":{meta},"timestamp":"{}"}}"#,
        crate::reply::now_rfc3339()
    );
    s.into_bytes()
}

/// `time,open,high,low,close,volume` with a header; values as the exchange wrote them.
pub(crate) fn csv(candles: &[Candle]) -> Vec<u8> {
    let mut s = String::with_capacity(40 + candles.len() * 64);
    s.push_str("time,open,high,low,close,volume\n");
    for c in candles {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{}",
            c.open_time, c.open, c.high, c.low, c.close, c.volume
        );
    }
    s.into_bytes()
}
