//! Candles as JSON (the envelope of the design) and CSV.

use std::io::Write as _;

use market_cache::{Answer, Candle, Decimal, RowFormat, Rows, Symbol, Timeframe};

/// The rows of `/api/crypto/ohlc`'s JSON: `[time,open,high,low,close,volume]`, numbers in
/// shortest round-trip form, time as integer ms.
pub(crate) struct JsonRows;

impl RowFormat for JsonRows {
    fn id(&self) -> &str {
        "ohlc-json"
    }

    fn separator(&self) -> &'static [u8] {
        b","
    }

    // Numbers written directly, not through `write!`: at 1,000 rows a request this was
    // most of an answer's time.
    fn write(&self, c: &Candle, _: Timeframe, s: &mut Vec<u8>) {
        s.push(b'[');
        Decimal::new(i128::from(c.open_time), 0).write_exact(s);
        for v in [c.open, c.high, c.low, c.close, c.volume] {
            s.push(b',');
            v.write_shortest(s);
        }
        s.push(b']');
    }
}

/// CSV lines `time,open,high,low,close,volume`, values as the exchange wrote them.
pub(crate) struct CsvRows;

impl RowFormat for CsvRows {
    fn id(&self) -> &str {
        "ohlc-csv"
    }

    fn separator(&self) -> &'static [u8] {
        b""
    }

    fn write(&self, c: &Candle, _: Timeframe, s: &mut Vec<u8>) {
        Decimal::new(i128::from(c.open_time), 0).write_exact(s);
        for v in [c.open, c.high, c.low, c.close, c.volume] {
            s.push(b',');
            v.write_exact(s);
        }
        s.push(b'\n');
    }
}

/// The opening of `{"success": true, "data": {symbol, timeframe, columns, rows}, "meta":
/// {...}, "timestamp"}`, up to where the rows written by [`JsonRows`] go.
pub(crate) fn json_open(symbol: &Symbol, tf: Timeframe) -> Vec<u8> {
    let mut s = Vec::with_capacity(256);
    let (market, price) = symbol.kind().market_and_price();
    let _ = write!(
        s,
        r#"{{"success":true,"data":{{"symbol":"{symbol}","market":"{market}","price":"{price}","timeframe":"{tf}","columns":["time","open","high","low","close","volume"],"rows":["#
    );
    s
}

/// Closes the JSON body [`json_open`] began, after its rows: the meta and the timestamp
/// (`now`, the service's clock).
pub(crate) fn json_close(a: &mut Answer<Rows>, now: i64) {
    let gaps: Vec<[i64; 2]> = a.gaps.iter().map(|(x, y)| [*x, *y]).collect();
    let meta = serde_json::json!({
        "source": a.source,
        "cached": a.source == market_cache::Source::Cache,
        "rows": a.candles.count,
        "gaps": gaps,
        "partial_last": a.partial_last,
        "next_start": a.next_start,
        "resampled_from": a.resampled_from.map(|t| t.to_string()),
    });
    let _ = write!(
        a.candles.bytes,
        r#"]}},"meta":{meta},"timestamp":"{}"}}"#,
        market_cache::format_time(now)
    );
}

/// The header line of a CSV body; the rows written by [`CsvRows`] follow it.
pub(crate) const CSV_HEADER: &[u8] = b"time,open,high,low,close,volume\n";
