//! Candles as JSON (the envelope of the design) and CSV.

use std::io::Write as _;

use market_cache::Answer;
use market_cache::{Candle, Decimal, Symbol, Timeframe};

/// `{"success": true, "data": {symbol, timeframe, columns, rows}, "meta": {...}, "timestamp"}`;
/// numbers in shortest round-trip form, time as integer ms.
pub(crate) fn json(symbol: &Symbol, tf: Timeframe, a: &Answer) -> Vec<u8> {
    let mut s = Vec::with_capacity(512 + a.candles.len() * 64);
    let (market, price) = symbol.kind().market_and_price();
    let _ = write!(
        s,
        r#"{{"success":true,"data":{{"symbol":"{symbol}","market":"{market}","price":"{price}","timeframe":"{tf}","columns":["time","open","high","low","close","volume"],"rows":["#
    );
    // Numbers written directly, not through `write!`: at 1,000 rows a request this loop
    // was most of an answer's time.
    for (i, c) in a.candles.iter().enumerate() {
        s.extend_from_slice(if i > 0 { b",[" } else { b"[" });
        Decimal::new(i128::from(c.open_time), 0).write_exact(&mut s);
        for v in [c.open, c.high, c.low, c.close, c.volume] {
            s.push(b',');
            v.write_shortest(&mut s);
        }
        s.push(b']');
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
    s
}

/// `time,open,high,low,close,volume` with a header; values as the exchange wrote them.
pub(crate) fn csv(candles: &[Candle]) -> Vec<u8> {
    let mut s = Vec::with_capacity(40 + candles.len() * 64);
    s.extend_from_slice(b"time,open,high,low,close,volume\n");
    for c in candles {
        Decimal::new(i128::from(c.open_time), 0).write_exact(&mut s);
        for v in [c.open, c.high, c.low, c.close, c.volume] {
            s.push(b',');
            v.write_exact(&mut s);
        }
        s.push(b'\n');
    }
    s
}
