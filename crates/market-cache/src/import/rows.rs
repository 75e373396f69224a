//! Rows of a source: CSV (Binance's columns or a header naming them), freqtrade JSON and
//! Parquet, each cell turned into an exact decimal candle or a reason it is refused.

use std::fs::File;
use std::io::BufRead;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int32Type, Int64Type,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt64Type,
};
use arrow_array::{Array, ArrayRef, RecordBatchReader};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::parse::{io, malformed, Data, Format, Loc, Row, Source};
use crate::model::time::{epoch_to_ms, parse_time, DAY_MS};
use crate::{Candle, Decimal, Error, Result};

/// Decimal places kept from float sources (freqtrade JSON, float Parquet columns).
const FLOAT_SCALE: u8 = 8;

impl Source {
    pub(super) fn csv_rows(&self, f: &mut dyn FnMut(Row, u64) -> bool) -> Result<u64> {
        let mut reader = self.reader()?;
        let mut line = String::new();
        let mut done = 0u64;
        let mut number = 0usize;
        let mut cols = (self.format == Format::BinanceCsv).then(Columns::binance);
        loop {
            line.clear();
            let n = reader.read_line(&mut line).map_err(|e| match e.kind() {
                std::io::ErrorKind::InvalidData => {
                    malformed(&self.name, format!("line {}", number + 1), "not UTF-8 text")
                }
                _ => Error::Io {
                    path: self.name.clone().into(),
                    source: e,
                },
            })?;
            if n == 0 {
                return Ok(done);
            }
            done += n as u64;
            number += 1;
            let text = line.trim_start_matches('\u{feff}').trim();
            if text.is_empty() {
                continue;
            }
            let Some(c) = &cols else {
                cols = Some(
                    Columns::from_header(text)
                        .map_err(|reason| malformed(&self.name, "header (line 1)", reason))?,
                );
                continue;
            };
            let loc = Loc {
                kind: "line",
                n: number as u64,
            };
            let row = c
                .parse(text)
                .map(|candle| (loc, candle))
                .map_err(|r| (loc, r));
            if !f(row, done) {
                return Ok(done);
            }
        }
    }

    pub(super) fn json_rows(&self, f: &mut dyn FnMut(Row, u64) -> bool) -> Result<u64> {
        let data = match &self.data {
            Data::Memory(v) => std::borrow::Cow::Borrowed(v.as_slice()),
            Data::File(p, _) => std::borrow::Cow::Owned(std::fs::read(p).map_err(io(p))?),
        };
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&data).map_err(|e| {
            malformed(
                &self.name,
                format!("line {}, column {}", e.line(), e.column()),
                format!("not a freqtrade JSON array of candles: {e}"),
            )
        })?;
        let total = data.len() as u64;
        for (i, v) in rows.iter().enumerate() {
            let loc = Loc {
                kind: "row",
                n: i as u64 + 1,
            };
            let row = json_candle(v).map(|c| (loc, c)).map_err(|r| (loc, r));
            if !f(row, total * (i as u64 + 1) / rows.len() as u64) {
                break;
            }
        }
        Ok(total)
    }

    pub(super) fn parquet_rows(&self, f: &mut dyn FnMut(Row, u64) -> bool) -> Result<u64> {
        let bad =
            |e: parquet::errors::ParquetError| malformed(&self.name, "parquet", e.to_string());
        let builder = match &self.data {
            Data::File(p, _) => {
                ParquetRecordBatchReaderBuilder::try_new(File::open(p).map_err(io(p))?)
                    .map(|b| b.with_batch_size(8192).build())
            }
            Data::Memory(v) => ParquetRecordBatchReaderBuilder::try_new(bytes_of(v))
                .map(|b| b.with_batch_size(8192).build()),
        };
        let reader = builder.map_err(bad)?.map_err(bad)?;
        let schema = reader.schema();
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let cols = Columns::from_names(&names).map_err(|r| malformed(&self.name, "schema", r))?;
        let total = self.len();
        let mut row_number = 0u64;
        for batch in reader {
            let batch = batch.map_err(|e| malformed(&self.name, "parquet", e.to_string()))?;
            let col = |i: usize| batch.column(i).clone();
            for r in 0..batch.num_rows() {
                row_number += 1;
                let loc = Loc {
                    kind: "row",
                    n: row_number,
                };
                let row = cols
                    .parquet_candle(&col, r)
                    .map(|c| (loc, c))
                    .map_err(|e| (loc, e));
                if !f(row, total) {
                    return Ok(total);
                }
            }
        }
        Ok(total)
    }
}

fn bytes_of(v: &[u8]) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(v)
}

/// Column positions of the candle fields in a row.
struct Columns {
    time: usize,
    ohlcv: [usize; 5],
    quote_volume: Option<usize>,
    trades: Option<usize>,
    taker_base: Option<usize>,
    taker_quote: Option<usize>,
}

impl Columns {
    /// Binance's 12 columns: open time, o, h, l, c, v, close time, quote volume, trades,
    /// taker buy base, taker buy quote, ignore.
    fn binance() -> Self {
        Self {
            time: 0,
            ohlcv: [1, 2, 3, 4, 5],
            quote_volume: Some(7),
            trades: Some(8),
            taker_base: Some(9),
            taker_quote: Some(10),
        }
    }

    fn from_header(line: &str) -> std::result::Result<Self, String> {
        let names: Vec<String> = line
            .split(',')
            .map(|s| s.trim().trim_matches('"').to_owned())
            .collect();
        Self::from_names(&names)
    }

    fn from_names(names: &[String]) -> std::result::Result<Self, String> {
        let norm: Vec<String> = names
            .iter()
            .map(|n| n.trim().to_ascii_lowercase().replace([' ', '-'], "_"))
            .collect();
        let find = |options: &[&str]| norm.iter().position(|n| options.contains(&n.as_str()));
        let need = |options: &[&str], what: &str| {
            find(options).ok_or_else(|| format!("no `{what}` column (found: {})", names.join(", ")))
        };
        Ok(Self {
            time: need(
                &[
                    "time",
                    "timestamp",
                    "date",
                    "datetime",
                    "open_time",
                    "opentime",
                    "t",
                ],
                "time",
            )?,
            ohlcv: [
                need(&["open", "o"], "open")?,
                need(&["high", "h"], "high")?,
                need(&["low", "l"], "low")?,
                need(&["close", "c"], "close")?,
                need(&["volume", "vol", "v"], "volume")?,
            ],
            quote_volume: find(&["quote_volume", "quote_asset_volume", "qav"]),
            trades: find(&["trades", "count", "number_of_trades", "num_trades"]),
            taker_base: find(&[
                "taker_buy_base",
                "taker_buy_volume",
                "taker_buy_base_volume",
                "taker_buy_base_asset_volume",
            ]),
            taker_quote: find(&[
                "taker_buy_quote",
                "taker_buy_quote_volume",
                "taker_buy_quote_asset_volume",
            ]),
        })
    }

    fn parse(&self, line: &str) -> std::result::Result<Candle, String> {
        // Fields beyond the 16th are never candle values; a fixed array avoids an
        // allocation per line.
        let mut buf = [""; 16];
        let mut n = 0;
        // Split on the byte: `str::split(',')` searched for each field afresh, a tenth of
        // an import's time. A comma is ASCII, so every cut is a char boundary.
        let mut from = 0;
        for (i, b) in line.bytes().chain([b',']).enumerate() {
            if b == b',' {
                if n < buf.len() {
                    buf[n] = clean(line.get(from..i).unwrap_or_default());
                }
                n += 1;
                from = i + 1;
            }
        }
        let fields = &buf[..n.min(buf.len())];
        let get = |i: usize, what: &str| -> std::result::Result<&str, String> {
            fields
                .get(i)
                .copied()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("{n} fields, no {what}"))
        };
        let dec = |i: usize, what: &str| -> std::result::Result<Decimal, String> {
            let s = get(i, what)?;
            s.parse()
                .map_err(|_| format!("{what} `{}` is not a number", clip(s)))
        };
        let opt_dec =
            |i: Option<usize>, what: &str| -> std::result::Result<Option<Decimal>, String> {
                match i.and_then(|i| fields.get(i)).filter(|s| !s.is_empty()) {
                    None => Ok(None),
                    Some(s) => s
                        .parse()
                        .map(Some)
                        .map_err(|_| format!("{what} `{}` is not a number", clip(s))),
                }
            };
        let t = get(self.time, "time")?;
        let open_time = parse_time(t).map_err(|e| e.to_string())?;
        let trades = match self
            .trades
            .and_then(|i| fields.get(i))
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(s) => Some(
                s.parse::<u64>()
                    .or_else(|_| {
                        s.parse::<f64>()
                            .ok()
                            .filter(|v| v.fract() == 0.0 && *v >= 0.0)
                            .map(|v| v as u64)
                            .ok_or(())
                    })
                    .map_err(|_| format!("trades `{}` is not a count", clip(s)))?,
            ),
        };
        Ok(Candle {
            open_time,
            open: dec(self.ohlcv[0], "open")?,
            high: dec(self.ohlcv[1], "high")?,
            low: dec(self.ohlcv[2], "low")?,
            close: dec(self.ohlcv[3], "close")?,
            volume: dec(self.ohlcv[4], "volume")?,
            quote_volume: opt_dec(self.quote_volume, "quote volume")?,
            trades,
            taker_base: opt_dec(self.taker_base, "taker buy base volume")?,
            taker_quote: opt_dec(self.taker_quote, "taker buy quote volume")?,
            volume_ccy: None,
        })
    }

    fn parquet_candle(
        &self,
        col: &dyn Fn(usize) -> ArrayRef,
        r: usize,
    ) -> std::result::Result<Candle, String> {
        let value = |i: usize, what: &str| -> std::result::Result<Decimal, String> {
            arrow_decimal(col(i).as_ref(), r)?.ok_or_else(|| format!("{what} is null"))
        };
        let optional = |i: Option<usize>| -> std::result::Result<Option<Decimal>, String> {
            i.map_or(Ok(None), |i| arrow_decimal(col(i).as_ref(), r))
        };
        let trades = match self.trades {
            None => None,
            Some(i) => arrow_decimal(col(i).as_ref(), r)?
                .map(|d| {
                    d.at_scale(0)
                        .and_then(|v| u64::try_from(v).ok())
                        .ok_or_else(|| format!("trades {d} is not a count"))
                })
                .transpose()?,
        };
        Ok(Candle {
            open_time: arrow_time(col(self.time).as_ref(), r)?,
            open: value(self.ohlcv[0], "open")?,
            high: value(self.ohlcv[1], "high")?,
            low: value(self.ohlcv[2], "low")?,
            close: value(self.ohlcv[3], "close")?,
            volume: value(self.ohlcv[4], "volume")?,
            quote_volume: optional(self.quote_volume)?,
            trades,
            taker_base: optional(self.taker_base)?,
            taker_quote: optional(self.taker_quote)?,
            volume_ccy: None,
        })
    }
}

/// Trims spaces and quotes, touching only fields that have any.
fn clean(f: &str) -> &str {
    let b = f.as_bytes();
    let edge = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_whitespace() || *c == b'"');
    if edge(b.first()) || edge(b.last()) {
        f.trim().trim_matches('"').trim()
    } else {
        f
    }
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

fn json_number(v: &serde_json::Value, what: &str) -> std::result::Result<Decimal, String> {
    match v {
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Ok(Decimal::new(i128::from(i), 0)),
            (None, Some(f)) => Decimal::from_f64(f, FLOAT_SCALE)
                .ok_or_else(|| format!("{what} {n} is out of range")),
            _ => Err(format!("{what} {n} is out of range")),
        },
        serde_json::Value::String(s) => s
            .parse()
            .map_err(|_| format!("{what} `{}` is not a number", clip(s))),
        other => Err(format!(
            "{what} is {} , not a number",
            clip(&other.to_string())
        )),
    }
}

fn json_candle(v: &serde_json::Value) -> std::result::Result<Candle, String> {
    let a = v
        .as_array()
        .ok_or("not an array [time, open, high, low, close, volume]")?;
    if a.len() < 6 {
        return Err(format!(
            "{} values, need time, open, high, low, close, volume",
            a.len()
        ));
    }
    let open_time = match &a[0] {
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(epoch_to_ms)
            .filter(|t| *t >= 0)
            .ok_or_else(|| format!("time {n} is not a non-negative integer"))?,
        serde_json::Value::String(s) => parse_time(s).map_err(|e| e.to_string())?,
        other => return Err(format!("time {} is not a number", clip(&other.to_string()))),
    };
    Ok(Candle {
        open_time,
        open: json_number(&a[1], "open")?,
        high: json_number(&a[2], "high")?,
        low: json_number(&a[3], "low")?,
        close: json_number(&a[4], "close")?,
        volume: json_number(&a[5], "volume")?,
        quote_volume: None,
        trades: None,
        taker_base: None,
        taker_quote: None,
        volume_ccy: None,
    })
}

fn arrow_decimal(a: &dyn Array, r: usize) -> std::result::Result<Option<Decimal>, String> {
    if a.is_null(r) {
        return Ok(None);
    }
    let float = |v: f64| {
        Decimal::from_f64(v, FLOAT_SCALE).ok_or_else(|| format!("{v} is not a finite number"))
    };
    Ok(Some(match a.data_type() {
        DataType::Float64 => float(a.as_primitive::<Float64Type>().value(r))?,
        DataType::Float32 => float(f64::from(a.as_primitive::<Float32Type>().value(r)))?,
        DataType::Int64 => Decimal::new(i128::from(a.as_primitive::<Int64Type>().value(r)), 0),
        DataType::Int32 => Decimal::new(i128::from(a.as_primitive::<Int32Type>().value(r)), 0),
        DataType::UInt64 => Decimal::new(i128::from(a.as_primitive::<UInt64Type>().value(r)), 0),
        DataType::Decimal128(_, s) if (0..=crate::MAX_SCALE as i8).contains(s) => {
            Decimal::new(a.as_primitive::<Decimal128Type>().value(r), *s as u8)
        }
        DataType::Utf8 => {
            let s = a.as_string::<i32>().value(r);
            s.parse()
                .map_err(|_| format!("`{}` is not a number", clip(s)))?
        }
        DataType::LargeUtf8 => {
            let s = a.as_string::<i64>().value(r);
            s.parse()
                .map_err(|_| format!("`{}` is not a number", clip(s)))?
        }
        other => return Err(format!("a {other} column cannot hold prices")),
    }))
}

fn arrow_time(a: &dyn Array, r: usize) -> std::result::Result<i64, String> {
    if a.is_null(r) {
        return Err("time is null".into());
    }
    let t = match a.data_type() {
        DataType::Timestamp(unit, _) => match unit {
            TimeUnit::Second => a.as_primitive::<TimestampSecondType>().value(r) * 1000,
            TimeUnit::Millisecond => a.as_primitive::<TimestampMillisecondType>().value(r),
            TimeUnit::Microsecond => a
                .as_primitive::<TimestampMicrosecondType>()
                .value(r)
                .div_euclid(1000),
            TimeUnit::Nanosecond => a
                .as_primitive::<TimestampNanosecondType>()
                .value(r)
                .div_euclid(1_000_000),
        },
        DataType::Int64 => epoch_to_ms(a.as_primitive::<Int64Type>().value(r)),
        DataType::Date32 => i64::from(a.as_primitive::<Date32Type>().value(r)) * DAY_MS,
        DataType::Utf8 => parse_time(a.as_string::<i32>().value(r)).map_err(|e| e.to_string())?,
        other => return Err(format!("a {other} column cannot hold times")),
    };
    if t < 0 {
        return Err(format!("time {t} is before 1970"));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_columns_are_found_by_name_in_any_case() {
        let c = Columns::from_header("Date,Open,High,Low,Close,Volume").unwrap();
        let candle = c.parse("2024-01-01,1.5,2,1,1.75,100").unwrap();
        assert_eq!(candle.open_time, 1_704_067_200_000);
        assert_eq!(candle.close.to_string(), "1.75");
        assert!(candle.quote_volume.is_none());
        let err = Columns::from_header("when,open,high,low,close,volume")
            .err()
            .unwrap();
        assert!(err.contains("no `time` column"), "{err}");
        let futures = Columns::from_header("open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore").unwrap();
        let c = futures
            .parse("1704067200000,1,2,0.5,1.5,10,1704067259999,15,7,4,6,0")
            .unwrap();
        assert_eq!(
            (c.trades, c.taker_quote.map(|d| d.to_string())),
            (Some(7), Some("6".into()))
        );
    }

    #[test]
    fn binance_rows_read_ms_and_us_alike() {
        let b = Columns::binance();
        let ms = b
            .parse("1735689600000,1.0,2.0,0.5,1.5,10.0,1735689659999,15,7,4,6,0")
            .unwrap();
        let us = b
            .parse("1735689600000000,1.0,2.0,0.5,1.5,10.0,1735689659999999,15,7,4,6,0")
            .unwrap();
        assert_eq!(ms, us);
        assert!(b
            .parse("1735689600000,abc,2,0.5,1.5,10")
            .unwrap_err()
            .contains("open `abc`"));
        assert!(b
            .parse("1735689600000,1,2")
            .unwrap_err()
            .contains("3 fields"));
    }
}
