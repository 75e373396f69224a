//! Importing candle files: Binance kline CSV (spot without header, futures with; open
//! times in ms or µs), freqtrade JSON, generic CSV with a header, Parquet, and zip
//! archives holding any of those.
//!
//! Symbol and timeframe come from options or from Binance-style names
//! (`BTCUSDT-1m-2024-01.csv`, `XRP_USDT_USDT-1h-futures.json`). Every row is validated;
//! with [`OnInvalid::Fail`] the whole file is checked before anything is written, so a
//! bad file leaves the database as it was.

mod parse;
mod rows;

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::store::{CandleStore, MarketMeta};
use crate::{Candle, Error, Exchange, Kind, Result, Symbol, Timeframe};

/// What to do with rows that fail validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnInvalid {
    /// Import the valid rows and report the others.
    Skip,
    /// Import nothing if any row is invalid.
    Fail,
}

/// Options of an import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The symbol, if not taken from the file name.
    pub symbol: Option<Symbol>,
    /// The timeframe, if not taken from the file name.
    pub timeframe: Option<Timeframe>,
    /// What the candles are (spot, futures, mark price); `None` takes it from freqtrade's
    /// file names (`-futures`, `-mark`), else spot.
    pub kind: Option<Kind>,
    /// The exchange the candles come from (part of the series' identity).
    pub exchange: Exchange,
    /// What to do with invalid rows.
    pub on_invalid: OnInvalid,
    /// Rows parsed and written at a time. With [`OnInvalid::Fail`] all batches are one
    /// transaction (a file is stored whole or not at all); with [`OnInvalid::Skip`] each
    /// batch is its own, so a crash loses at most the batch in flight.
    pub batch_rows: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            symbol: None,
            timeframe: None,
            kind: None,
            exchange: Exchange::Binance,
            on_invalid: OnInvalid::Fail,
            batch_rows: 50_000,
        }
    }
}

/// A row that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reject {
    /// `line N` (text files) or `row N` (JSON, Parquet).
    pub location: String,
    /// What is wrong with it.
    pub reason: String,
}

/// What importing one file (or zip entry) did.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    /// The file, and the entry inside a zip.
    pub source: String,
    /// The format detected.
    pub format: &'static str,
    /// The symbol written.
    pub symbol: String,
    /// The timeframe written.
    pub timeframe: String,
    /// Rows read.
    pub read: u64,
    /// Candles new to the store.
    pub inserted: u64,
    /// Stored candles whose values changed.
    pub updated: u64,
    /// Candles already stored exactly so.
    pub duplicates: u64,
    /// Rows that failed validation.
    pub rejected: u64,
    /// The first rejected rows.
    pub rejects: Vec<Reject>,
    /// Time taken, in seconds.
    pub seconds: f64,
    /// Rows read per second.
    pub rows_per_s: f64,
}

/// How far an import has come, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Bytes of the current file read so far.
    pub bytes_done: u64,
    /// Bytes of the current file.
    pub bytes_total: u64,
    /// Rows read so far.
    pub rows: u64,
}

/// Rejects kept in a report.
const KEEP_REJECTS: usize = 20;

/// Imports one file (a zip: each entry) into `store`.
///
/// # Errors
/// [`Error::Io`] if the file cannot be read, [`Error::Malformed`] if it is no candle
/// file, [`Error::Unnamed`] without symbol or timeframe, [`Error::Rejected`] for invalid
/// rows under [`OnInvalid::Fail`], [`Error::Db`] if writing fails.
pub(crate) async fn import_path<S: CandleStore>(
    store: &S,
    path: &Path,
    opts: &ImportOptions,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<Vec<ImportReport>> {
    let mut reports = Vec::new();
    for source in parse::sources(path)? {
        reports.push(import_source(store, source, opts, progress).await?);
    }
    Ok(reports)
}

/// A parsed batch on its way from the parser thread to the writer.
struct Batch {
    candles: Vec<Candle>,
    read: u64,
    rejected: u64,
    rejects: Vec<Reject>,
    bytes_done: u64,
}

/// As [`import_path`], for a file's bytes already in memory (`name` stands for its file
/// name: the symbol and timeframe may come from it, and messages name it).
///
/// # Errors
/// As [`import_path`].
pub(crate) async fn import_bytes<S: CandleStore>(
    store: &S,
    name: &str,
    data: Vec<u8>,
    opts: &ImportOptions,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<Vec<ImportReport>> {
    let mut reports = Vec::new();
    for source in parse::memory_sources(name, data)? {
        reports.push(import_source(store, source, opts, progress).await?);
    }
    Ok(reports)
}

async fn import_source<S: CandleStore>(
    store: &S,
    source: parse::Source,
    opts: &ImportOptions,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<ImportReport> {
    let started = Instant::now();
    let (name_symbol, name_tf) = parse::names(&source.name);
    let symbol = opts
        .symbol
        .clone()
        .or(name_symbol)
        .ok_or_else(|| Error::Unnamed {
            file: source.name.clone(),
            what: "symbol",
        })?;
    let kind = match (opts.kind, parse::name_kind(&source.name)) {
        (_, parse::NamedAs::FundingRates) => {
            return Err(Error::Malformed {
                file: source.name.clone(),
                location: "name".into(),
                reason: "a freqtrade funding_rate file holds funding rates, not candles; funding comes from the exchange's /fapi/v1/fundingRate through an upstream".into(),
            })
        }
        (Some(k), _) | (None, parse::NamedAs::Kind(k)) => k,
        (None, parse::NamedAs::Unsaid) => Kind::Spot,
    };
    let symbol = symbol.with_kind(kind).with_exchange(opts.exchange);
    let tf = opts.timeframe.or(name_tf).ok_or_else(|| Error::Unnamed {
        file: source.name.clone(),
        what: "timeframe",
    })?;
    let meta = MarketMeta::new(symbol.clone());
    let source = Arc::new(source);
    let format = source.format;
    let mut report = ImportReport {
        source: source.name.clone(),
        format: format.name(),
        symbol: symbol.to_string(),
        timeframe: tf.to_string(),
        read: 0,
        inserted: 0,
        updated: 0,
        duplicates: 0,
        rejected: 0,
        rejects: Vec::new(),
        seconds: 0.0,
        rows_per_s: 0.0,
    };
    let mut parser = spawn_parser(source.clone(), tf, opts.batch_rows);
    let account = |report: &mut ImportReport, batch: &mut Batch| {
        report.read += batch.read;
        report.rejected += batch.rejected;
        let room = KEEP_REJECTS.saturating_sub(report.rejects.len());
        report.rejects.extend(batch.rejects.drain(..).take(room));
        progress(Progress {
            bytes_done: batch.bytes_done,
            bytes_total: source.len(),
            rows: report.read,
        });
    };
    if opts.on_invalid == OnInvalid::Fail {
        // One pass in one transaction: batches are written as they are parsed, and an
        // invalid row (or a reader that fails) rolls all of it back, so an invalid file
        // changes nothing. The WAL holds the whole import until it commits.
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let write = store.write_all(&meta, tf, rx);
        // What tells the writer to roll back; its own error is never shown (ours is).
        let abort = || Err(Error::Config("the import stopped".into()));
        let feed = async {
            let result: Result<()> = async {
                while let Some(mut batch) = parser.next().await? {
                    let clean = report.rejected == 0;
                    account(&mut report, &mut batch);
                    if clean && report.rejected > 0 {
                        // Roll back now, not after the rest of the file is counted: the
                        // transaction holds the write lock and the WAL meanwhile.
                        let _ = tx.send(abort()).await;
                    }
                    if report.rejected == 0 && tx.send(Ok(batch.candles)).await.is_err() {
                        // The writer stopped (its error is returned below).
                        break;
                    }
                }
                match report.rejects.first() {
                    Some(r) => Err(Error::Rejected {
                        file: source.name.clone(),
                        count: report.rejected as usize,
                        first: format!("{}: {}", r.location, r.reason),
                    }),
                    None => Ok(()),
                }
            }
            .await;
            if result.is_err() {
                let _ = tx.send(abort()).await;
            }
            drop(tx);
            result
        };
        let (written, fed) = tokio::join!(write, feed);
        fed?;
        let w = written?;
        report.inserted = w.inserted;
        report.updated = w.updated;
        report.duplicates = w.unchanged;
    } else {
        while let Some(mut batch) = parser.next().await? {
            account(&mut report, &mut batch);
            let w = store
                .write(&meta, tf, std::mem::take(&mut batch.candles))
                .await?;
            report.inserted += w.inserted;
            report.updated += w.updated;
            report.duplicates += w.unchanged;
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.rows_per_s = report.read as f64 / report.seconds.max(1e-9);
    Ok(report)
}

/// Parses on a blocking thread, so reading and writing overlap; at most two batches wait.
fn spawn_parser(source: Arc<parse::Source>, tf: Timeframe, batch_rows: usize) -> Parser {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let name = source.name.clone();
    let handle = tokio::task::spawn_blocking(move || {
        let empty = || Batch {
            candles: Vec::with_capacity(batch_rows),
            read: 0,
            rejected: 0,
            rejects: Vec::new(),
            bytes_done: 0,
        };
        let mut pending = empty();
        let result = source.rows(&mut |row, bytes_done| {
            pending.read += 1;
            match row {
                Ok((loc, candle)) => match candle.validate(tf) {
                    Ok(()) => pending.candles.push(candle),
                    Err(reason) => reject(&mut pending, loc, reason),
                },
                Err((loc, reason)) => reject(&mut pending, loc, reason),
            }
            if pending.read as usize >= batch_rows {
                pending.bytes_done = bytes_done;
                let full = std::mem::replace(&mut pending, empty());
                return tx.blocking_send(Ok(full)).is_ok();
            }
            true
        });
        let last = result.map(|bytes_done| {
            pending.bytes_done = bytes_done;
            pending
        });
        // A closed channel means the importer stopped listening; nothing to report to.
        match last {
            Ok(b) if b.read == 0 => {}
            other => {
                let _ = tx.blocking_send(other);
            }
        }
    });
    Parser { rx, handle, name }
}

/// The receiving end of a parser thread.
struct Parser {
    rx: tokio::sync::mpsc::Receiver<Result<Batch>>,
    handle: tokio::task::JoinHandle<()>,
    name: String,
}

impl Parser {
    /// Returns the next batch; when the parser is done, checks that it ended normally,
    /// so a parser that died is an error and not a short import.
    async fn next(&mut self) -> Result<Option<Batch>> {
        match self.rx.recv().await {
            Some(b) => b.map(Some),
            None => match (&mut self.handle).await {
                Ok(()) => Ok(None),
                Err(e) => Err(Error::Malformed {
                    file: self.name.clone(),
                    location: "reading".into(),
                    reason: format!("the reader failed: {e}"),
                }),
            },
        }
    }
}

fn reject(batch: &mut Batch, location: parse::Loc, reason: String) {
    batch.rejected += 1;
    if batch.rejects.len() < KEEP_REJECTS {
        batch.rejects.push(Reject {
            location: location.to_string(),
            reason,
        });
    }
}

/// Reads a whole reader into memory, naming the file in errors.
pub(crate) fn read_all(mut r: impl Read, name: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    r.read_to_end(&mut buf).map_err(|source| Error::Io {
        path: name.into(),
        source,
    })?;
    Ok(buf)
}
