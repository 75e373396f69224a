//! A month as a Parquet object: its path in the hive layout, and the candles written
//! and read back exactly (the decimal places in the key-value metadata).

use std::sync::Arc;

use arrow_array::{Array, Float64Array, RecordBatch, TimestampMillisecondArray, UInt64Array};
use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::{KeyValue, ParquetMetaData};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::statistics::Statistics;

use crate::codec::schema::parquet_schema;
use crate::codec::wire::candles_batch;
use crate::store::Scales;
use crate::{Candle, Decimal, Error, Kind, Result, Symbol, Timeframe};

/// The partition name of the exchange and market: the exchange for spot, with its
/// perpetual market's name (`_usdm`, `_linear`, `_swap`; and `_mark`) for derivatives, so
/// the layout stays the design's five levels and no two series share an object.
pub(super) fn exchange_key(symbol: &Symbol) -> String {
    let e = symbol.exchange();
    match symbol.kind() {
        Kind::Spot => e.to_string(),
        Kind::Futures => format!("{e}_{}", e.derivatives()),
        Kind::Mark => format!("{e}_{}_mark", e.derivatives()),
    }
}

/// The object of a month: `exchange=<e>/symbol=<S>/timeframe=<tf>/year=<YYYY>/month=<MM>/...`.
pub(crate) fn month_path(symbol: &Symbol, tf: Timeframe, month: i64) -> ObjectPath {
    let t = crate::format_time(month);
    let (year, mon) = (&t[..4], &t[5..7]);
    ObjectPath::from(format!(
        "exchange={}/symbol={symbol}/timeframe={tf}/year={year}/month={mon}/{symbol}-{tf}-{year}-{mon}.parquet",
        exchange_key(symbol)
    ))
}

/// Rows a row group holds at most.
pub(super) const ROW_GROUP_ROWS: usize = 10_000;

const META_SERIES: &str = "candlecache.series";
const META_SCALES: &str = "candlecache.scales";

fn series_tag(symbol: &Symbol, tf: Timeframe, month: i64) -> String {
    format!("{}/{symbol}/{tf}/{month}", exchange_key(symbol))
}

pub(super) fn encode(
    symbol: &Symbol,
    tf: Timeframe,
    month: i64,
    candles: &[Candle],
) -> Result<Vec<u8>> {
    let err = |e: parquet::errors::ParquetError| Error::Encode {
        what: "parquet",
        message: e.to_string(),
    };
    let s = Scales::of(candles);
    let scales = format!(
        "{},{},{},{},{},{}",
        s.price, s.volume, s.quote_volume, s.taker_base, s.taker_quote, s.volume_ccy
    );
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        // A read-path chunk (1,000 candles) then needs one or two row groups, which a
        // reader fetches alone; DuckDB and polars, which fetch a row group's columns one
        // request each, read a whole month of 1m in 5 groups rather than 45.
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_key_value_metadata(Some(vec![
            KeyValue::new(META_SERIES.to_owned(), series_tag(symbol, tf, month)),
            KeyValue::new(META_SCALES.to_owned(), scales),
        ]))
        .build();
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, parquet_schema(), Some(props)).map_err(err)?;
    w.write(&candles_batch(candles)?).map_err(err)?;
    w.close().map_err(err)?;
    Ok(out)
}

/// The month's candles from an object, or why it is not this series' month.
pub(super) fn decode(
    bytes: Bytes,
    symbol: &Symbol,
    tf: Timeframe,
    month: i64,
) -> std::result::Result<Vec<Candle>, String> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| e.to_string())?;
    let next = Timeframe::Mo1.next(month);
    read(builder, symbol, tf, month, (month, next))
}

/// The length of the metadata from an object's last 8 bytes (length, then `PAR1`).
pub(super) fn footer_len(tail: &[u8]) -> std::result::Result<usize, String> {
    match tail.len().checked_sub(8).map(|at| &tail[at..]) {
        Some([a, b, c, d, b'P', b'A', b'R', b'1']) => {
            Ok(u32::from_le_bytes([*a, *b, *c, *d]) as usize)
        }
        _ => Err("it is not Parquet".into()),
    }
}

/// The row groups of an object that may hold candles of `[a, b)`, from the statistics of
/// its `time` column (a group without them is taken).
pub(super) fn row_groups_for(meta: &ParquetMetaData, (a, b): (i64, i64)) -> Vec<usize> {
    (0..meta.num_row_groups())
        .filter(|&i| match meta.row_group(i).column(0).statistics() {
            Some(Statistics::Int64(s)) => match (s.min_opt(), s.max_opt()) {
                (Some(lo), Some(hi)) => *lo < b && *hi >= a,
                _ => true,
            },
            _ => true,
        })
        .collect()
}

/// Byte ranges of an object: the parts fetched of it, read as if the whole were there.
pub(super) struct Parts {
    pub(super) len: u64,
    pub(super) parts: Vec<(u64, Bytes)>,
}

impl Length for Parts {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for Parts {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        use bytes::Buf;
        let (at, part) = self.part(start, 0)?;
        Ok(part.slice(at..).reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let (at, part) = self.part(start, length)?;
        Ok(part.slice(at..at + length))
    }
}

impl Parts {
    fn part(&self, start: u64, length: usize) -> parquet::errors::Result<(usize, &Bytes)> {
        self.parts
            .iter()
            // A read of unknown length (`length` 0) starts inside a part, never at the
            // end of the one before it.
            .find(|(off, b)| *off <= start && start + length.max(1) as u64 <= off + b.len() as u64)
            .map(|(off, b)| ((start - off) as usize, b))
            .ok_or_else(|| {
                parquet::errors::ParquetError::General(format!(
                    "bytes {start}..+{length} were not fetched"
                ))
            })
    }
}

/// The candles of `[a, b)` from the fetched `parts` of a month's object whose metadata
/// is `meta`: only the row groups that may hold them are read.
pub(super) fn decode_window(
    meta: Arc<ParquetMetaData>,
    parts: Parts,
    symbol: &Symbol,
    tf: Timeframe,
    month: i64,
    window: (i64, i64),
) -> std::result::Result<Vec<Candle>, String> {
    let groups = row_groups_for(&meta, window);
    let meta =
        ArrowReaderMetadata::try_new(meta, ArrowReaderOptions::new()).map_err(|e| e.to_string())?;
    let builder =
        ParquetRecordBatchReaderBuilder::new_with_metadata(parts, meta).with_row_groups(groups);
    read(builder, symbol, tf, month, window)
}

/// The candles of `[a, b)` a reader of a month's object gives, checked: the series
/// named, the decimal places there, candlecache's columns, rows in the month and in order.
fn read<T: ChunkReader + 'static>(
    builder: ParquetRecordBatchReaderBuilder<T>,
    symbol: &Symbol,
    tf: Timeframe,
    month: i64,
    (a, b): (i64, i64),
) -> std::result::Result<Vec<Candle>, String> {
    let kv = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .cloned()
        .unwrap_or_default();
    let meta = |k: &str| kv.iter().find(|e| e.key == k).and_then(|e| e.value.clone());
    let want = series_tag(symbol, tf, month);
    if meta(META_SERIES).as_deref() != Some(want.as_str()) {
        return Err(format!("it is not {want}"));
    }
    let scales: Vec<u8> = meta(META_SCALES)
        .unwrap_or_default()
        .split(',')
        .filter_map(|v| v.parse().ok())
        .collect();
    // Objects written before `volume_ccy` have five scales and ten columns.
    let (price, volume, quote, taker_base, taker_quote, volume_ccy) = match scales[..] {
        [p, v, q, tb, tq] => (p, v, q, tb, tq, None),
        [p, v, q, tb, tq, vc] => (p, v, q, tb, tq, Some(vc)),
        _ => return Err("its decimal places are missing".into()),
    };
    let shape = |s: &arrow_schema::Schema| -> Vec<(String, arrow_schema::DataType)> {
        s.fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect()
    };
    let mut want = shape(&parquet_schema());
    if volume_ccy.is_none() {
        want.pop();
    }
    if shape(builder.schema()) != want {
        return Err(format!(
            "its columns are not candlecache's: {:?}",
            shape(builder.schema())
        ));
    }
    let reader = builder.build().map_err(|e| e.to_string())?;
    let next = Timeframe::Mo1.next(month);
    let mut out: Vec<Candle> = Vec::new();
    let mut prev = None;
    for batch in reader {
        let batch: RecordBatch = batch.map_err(|e| e.to_string())?;
        let time = column::<TimestampMillisecondArray>(&batch, 0)?;
        let f = |i| column::<Float64Array>(&batch, i);
        let (o, h, l, c, v, q) = (f(1)?, f(2)?, f(3)?, f(4)?, f(5)?, f(6)?);
        let trades = column::<UInt64Array>(&batch, 7)?;
        let (tb, tq) = (f(8)?, f(9)?);
        let vc = match volume_ccy {
            Some(scale) => Some((f(10)?, scale)),
            None => None,
        };
        let at = |a: &Float64Array, r: usize, scale: u8| -> std::result::Result<Decimal, String> {
            Decimal::from_f64(a.value(r), scale).ok_or_else(|| format!("row {r}: not a number"))
        };
        let opt = |a: &Float64Array, r: usize, scale: u8| {
            (!a.is_null(r)).then(|| at(a, r, scale)).transpose()
        };
        for r in 0..batch.num_rows() {
            let candle = Candle {
                open_time: time.value(r),
                open: at(o, r, price)?,
                high: at(h, r, price)?,
                low: at(l, r, price)?,
                close: at(c, r, price)?,
                volume: at(v, r, volume)?,
                quote_volume: opt(q, r, quote)?,
                trades: (!trades.is_null(r)).then(|| trades.value(r)),
                taker_base: opt(tb, r, taker_base)?,
                taker_quote: opt(tq, r, taker_quote)?,
                volume_ccy: match vc {
                    Some((a, scale)) => opt(a, r, scale)?,
                    None => None,
                },
            };
            if candle.open_time < month || candle.open_time >= next {
                return Err(format!("row {r} is outside the month"));
            }
            if prev.is_some_and(|p| p >= candle.open_time) {
                return Err(format!("row {r} is out of order"));
            }
            prev = Some(candle.open_time);
            candle
                .validate(tf)
                .map_err(|why| format!("row {r}: {why}"))?;
            if candle.open_time >= a && candle.open_time < b {
                out.push(candle);
            }
        }
    }
    Ok(out)
}

fn column<T: 'static>(batch: &RecordBatch, i: usize) -> std::result::Result<&T, String> {
    batch
        .column(i)
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| format!("column {i} has another type"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candle(t: i64, o: &str, v: &str) -> Candle {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        Candle {
            open_time: t,
            open: d(o),
            high: d(o),
            low: d(o),
            close: d(o),
            volume: d(v),
            quote_volume: Some(d(v)),
            trades: Some(7),
            taker_base: None,
            taker_quote: Some(d("0.10000000")),
            volume_ccy: Some(d("12.5")),
        }
    }

    #[test]
    fn a_month_round_trips_exactly_and_a_foreign_one_is_refused() {
        let sym: Symbol = "BTCUSDT".parse().unwrap();
        let month = crate::parse_time("2024-02-01").unwrap();
        let candles = vec![
            candle(month, "42000.01", "12.34567"),
            candle(month + 3_600_000, "0.00000123", "987654321.12345"),
        ];
        let bytes = encode(&sym, Timeframe::H1, month, &candles).unwrap();
        let back = decode(bytes.clone().into(), &sym, Timeframe::H1, month).unwrap();
        assert_eq!(back, candles);
        // Another series, another month, the futures market or damage: refused.
        let eth: Symbol = "ETHUSDT".parse().unwrap();
        let fut = sym.clone().with_kind(Kind::Futures);
        assert!(decode(bytes.clone().into(), &eth, Timeframe::H1, month).is_err());
        assert!(decode(bytes.clone().into(), &sym, Timeframe::M1, month).is_err());
        assert!(decode(bytes.clone().into(), &fut, Timeframe::H1, month).is_err());
        let mut cut = bytes.clone();
        cut.truncate(bytes.len() / 2);
        assert!(decode(cut.into(), &sym, Timeframe::H1, month).is_err());
        assert_eq!(
            month_path(&fut, Timeframe::H1, month).as_ref(),
            "exchange=binance_usdm/symbol=BTCUSDT/timeframe=1h/year=2024/month=02/BTCUSDT-1h-2024-02.parquet"
        );
    }

    #[test]
    fn a_window_reads_only_its_row_groups_and_equals_the_month_s_slice() {
        let sym: Symbol = "BTCUSDT".parse().unwrap();
        let month = crate::parse_time("2024-02-01").unwrap();
        let r = ROW_GROUP_ROWS as i64;
        let candles: Vec<Candle> = (0..r * 5 / 2)
            .map(|i| candle(month + i * 60_000, &format!("{}.5", 100 + i), "1.25"))
            .collect();
        let bytes = Bytes::from(encode(&sym, Timeframe::M1, month, &candles).unwrap());
        let len = footer_len(&bytes).unwrap();
        let meta = parquet::file::metadata::ParquetMetaDataReader::decode_metadata(
            &bytes[bytes.len() - 8 - len..bytes.len() - 8],
        )
        .unwrap();
        assert_eq!(meta.num_row_groups(), 3);
        let meta = Arc::new(meta);
        // Inside the second row group alone; across all three.
        let (alone, across) = ((r + r / 5, r + r * 7 / 10), (r * 9 / 10, 2 * r + r / 10));
        for ((from, to), groups) in [(alone, vec![1]), (across, vec![0, 1, 2])] {
            let window = (month + from * 60_000, month + to * 60_000);
            assert_eq!(row_groups_for(&meta, window), groups);
            // Only those bytes are there, a part a group: reading any other would fail.
            let parts = groups
                .iter()
                .map(|g| {
                    let cols = meta.row_group(*g).columns();
                    let lo = cols.iter().map(|c| c.byte_range().0).min().unwrap();
                    let hi = cols
                        .iter()
                        .map(|c| c.byte_range().0 + c.byte_range().1)
                        .max()
                        .unwrap();
                    (lo, bytes.slice(lo as usize..hi as usize))
                })
                .collect();
            let parts = Parts {
                len: bytes.len() as u64,
                parts,
            };
            let got =
                decode_window(meta.clone(), parts, &sym, Timeframe::M1, month, window).unwrap();
            assert_eq!(got, candles[from as usize..to as usize]);
        }
        assert!(footer_len(b"not parquet at all").is_err());
        // A reader opened where one part ends and the next begins reads the next.
        let parts = Parts {
            len: 8,
            parts: vec![
                (0, Bytes::from_static(b"abcd")),
                (4, Bytes::from_static(b"efgh")),
            ],
        };
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut parts.get_read(4).unwrap(), &mut rest).unwrap();
        assert_eq!(rest, "efgh");
    }
}
