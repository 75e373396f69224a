//! Exporting candles: CSV, Binance kline CSV, one Parquet file, or a hive-partitioned
//! Parquet dataset (`symbol=/timeframe=/year=/`) that DuckDB, polars and Spark read.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, TimestampMillisecondArray};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::Serialize;

use crate::codec::schema::parquet_schema;
use crate::model::time::{civil_from_days, days_from_civil, DAY_MS};
use crate::store::CandleStore;
use crate::{Error, Result, Symbol, Timeframe};

/// Candles read from the store per step, to bound memory on long histories.
const STEP_CANDLES: i64 = 200_000;

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// `time,open,high,low,close,volume` with a header, exact decimals.
    Csv,
    /// Binance's 12-column kline CSV without header.
    Binance,
    /// One Parquet file.
    Parquet,
    /// A directory of Parquet files, `symbol=S/timeframe=TF/year=YYYY/part-0.parquet`.
    Dataset,
}

impl FromStr for ExportFormat {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "csv" => Ok(Self::Csv),
            "binance" => Ok(Self::Binance),
            "parquet" => Ok(Self::Parquet),
            "dataset" => Ok(Self::Dataset),
            other => Err(format!(
                "unknown format `{other}`: use csv, binance, parquet or dataset"
            )),
        }
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    /// Candles written.
    pub rows: u64,
    /// Files written.
    pub files: Vec<PathBuf>,
}

fn to_parquet_batch(b: &RecordBatch) -> Result<RecordBatch> {
    let time = b
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("candle batches hold time as int64");
    let ts = TimestampMillisecondArray::new(time.values().clone(), None).with_timezone("UTC");
    let mut cols: Vec<ArrayRef> = vec![Arc::new(ts)];
    cols.extend(b.columns()[1..].iter().cloned());
    RecordBatch::try_new(parquet_schema(), cols).map_err(|e| encode("arrow", e))
}

fn encode(what: &'static str, e: impl std::fmt::Display) -> Error {
    Error::Encode {
        what,
        message: e.to_string(),
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The open times that split `[start, end)` into steps of at most [`STEP_CANDLES`].
fn steps(tf: Timeframe, start: i64, end: i64) -> Vec<(i64, i64)> {
    let len = tf
        .fixed_ms()
        .unwrap_or(31 * DAY_MS)
        .saturating_mul(STEP_CANDLES);
    let mut out = Vec::new();
    let mut s = start;
    while s < end {
        let e = s.saturating_add(len).min(end);
        out.push((s, e));
        s = e;
    }
    out
}

fn writer(path: &Path) -> Result<ArrowWriter<File>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let file = File::create(path).map_err(io(path))?;
    ArrowWriter::try_new(file, parquet_schema(), Some(parquet_props()))
        .map_err(|e| encode("parquet", e))
}

fn parquet_props() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build()
}

fn year_of(ms: i64) -> i64 {
    civil_from_days(ms.div_euclid(DAY_MS)).0
}

/// Where an export goes.
pub enum ExportTo {
    /// A file (CSV, Binance CSV, Parquet) or a directory (the dataset); parents are made.
    Path(PathBuf),
    /// Any writer, e.g. standard output (not for the dataset, which is many files).
    Writer(Box<dyn Write + Send>),
}

impl std::fmt::Debug for ExportTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Path(p) => f.debug_tuple("Path").field(p).finish(),
            Self::Writer(_) => f.write_str("Writer"),
        }
    }
}

impl ExportTo {
    /// The writer of a single-file export, the file created (with its parents) if a path.
    fn open(self, files: &mut Vec<PathBuf>) -> Result<(Box<dyn Write + Send>, PathBuf)> {
        match self {
            Self::Writer(w) => Ok((w, PathBuf::from("-"))),
            Self::Path(out) => {
                if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(io(dir))?;
                }
                let file = File::create(&out).map_err(io(&out))?;
                files.push(out.clone());
                Ok((Box::new(BufWriter::new(file)), out))
            }
        }
    }
}

/// Exports `[start, end)` of one series to `to`; `progress` gets the rows written so far.
///
/// # Errors
/// [`Error::UnknownSymbol`], [`Error::Io`] if `to` cannot be written, [`Error::Encode`],
/// [`Error::Config`] for a dataset asked into a writer.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn export<S: CandleStore>(
    store: &S,
    symbol: &Symbol,
    tf: Timeframe,
    start: i64,
    end: i64,
    format: ExportFormat,
    to: ExportTo,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<ExportReport> {
    // Only the stored range is walked: an open end (i64::MAX) would be billions of steps.
    let markets = store.markets().await?;
    let Some(series) = markets.iter().find(|m| {
        m.symbol == symbol.as_str() && m.kind == symbol.kind() && m.timeframe == tf.name()
    }) else {
        return Err(Error::UnknownSymbol(format!("{symbol} {tf}")));
    };
    let start = start.max(series.first_time.unwrap_or(start));
    let end = end.min(series.last_time.map_or(end, |l| l.saturating_add(1)));
    let mut rows = 0u64;
    let mut files = Vec::new();
    match format {
        ExportFormat::Csv | ExportFormat::Binance => {
            let (mut w, out) = to.open(&mut files)?;
            let werr = io(&out);
            if format == ExportFormat::Csv {
                writeln!(w, "time,open,high,low,close,volume").map_err(&werr)?;
            }
            for (s, e) in steps(tf, start, end) {
                for c in store.read(symbol, tf, s, e).await? {
                    if format == ExportFormat::Csv {
                        writeln!(
                            w,
                            "{},{},{},{},{},{}",
                            c.open_time, c.open, c.high, c.low, c.close, c.volume
                        )
                    } else {
                        let opt = |d: Option<crate::Decimal>| {
                            d.map_or_else(|| "0".to_owned(), |d| d.to_string())
                        };
                        writeln!(
                            w,
                            "{},{},{},{},{},{},{},{},{},{},{},0",
                            c.open_time,
                            c.open,
                            c.high,
                            c.low,
                            c.close,
                            c.volume,
                            tf.next(c.open_time) - 1,
                            opt(c.quote_volume),
                            c.trades.unwrap_or(0),
                            opt(c.taker_base),
                            opt(c.taker_quote)
                        )
                    }
                    .map_err(&werr)?;
                    rows += 1;
                }
                progress(rows);
            }
            w.flush().map_err(&werr)?;
        }
        ExportFormat::Parquet => {
            let (w, _) = to.open(&mut files)?;
            let mut w = ArrowWriter::try_new(w, parquet_schema(), Some(parquet_props()))
                .map_err(|e| encode("parquet", e))?;
            for (s, e) in steps(tf, start, end) {
                let b = store.read_batch(symbol, tf, s, e).await?;
                if b.num_rows() > 0 {
                    rows += b.num_rows() as u64;
                    w.write(&to_parquet_batch(&b)?)
                        .map_err(|e| encode("parquet", e))?;
                }
                progress(rows);
            }
            w.close().map_err(|e| encode("parquet", e))?;
        }
        ExportFormat::Dataset => {
            let ExportTo::Path(out) = to else {
                return Err(Error::Config(
                    "a dataset is a directory of files; give it a path".into(),
                ));
            };
            let dir = out
                .join(format!("symbol={symbol}"))
                .join(format!("timeframe={tf}"));
            let mut current: Option<(i64, ArrowWriter<File>)> = None;
            for (s, e) in steps(tf, start, end) {
                let b = store.read_batch(symbol, tf, s, e).await?;
                let times = b
                    .column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .expect("candle batches hold time as int64")
                    .clone();
                let mut from = 0;
                while from < b.num_rows() {
                    let year = year_of(times.value(from));
                    let next_year = days_from_civil(year + 1, 1, 1) * DAY_MS;
                    let to = from + times.values()[from..].partition_point(|t| *t < next_year);
                    if current.as_ref().is_none_or(|(y, _)| *y != year) {
                        if let Some((_, w)) = current.take() {
                            w.close().map_err(|e| encode("parquet", e))?;
                        }
                        let path = dir.join(format!("year={year}")).join("part-0.parquet");
                        files.push(path.clone());
                        current = Some((year, writer(&path)?));
                    }
                    let part = to_parquet_batch(&b.slice(from, to - from))?;
                    if let Some((_, w)) = current.as_mut() {
                        w.write(&part).map_err(|e| encode("parquet", e))?;
                    }
                    rows += (to - from) as u64;
                    from = to;
                }
                progress(rows);
            }
            if let Some((_, w)) = current.take() {
                w.close().map_err(|e| encode("parquet", e))?;
            }
        }
    }
    Ok(ExportReport { rows, files })
}
