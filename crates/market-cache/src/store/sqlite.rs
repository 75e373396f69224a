//! The store on SQLite: the `CandleStore` implementation, its SQL and its helpers.

use std::sync::Arc;

use arrow_array::builder::{Float64Builder, Int64Builder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch};
use cache_core::NamespaceCache;
use query_opt::{Db, Session};
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection};

use super::schema::SCHEMA;
use super::session::*;
use super::sql::*;
use crate::codec::schema::candle_schema;
use crate::settings::DbSettings;
use crate::store::{CandleStore, Market, MarketMeta, Scales, WriteReport};
use crate::{Candle, Decimal, Error, Funding, Result, Symbol, Timeframe};

/// Ranges with at least this many candles are read in two halves at once.
const PARALLEL_MIN_ROWS: usize = 65_536;

/// The store on SQLite, through `query-opt` (so every statement is timed).
#[derive(Clone, Debug)]
pub struct SqliteStore {
    db: Db,
    covered: Option<OnCovered>,
}

/// Told of every range a write records as covered, after its transaction commits: how
/// the object-store tier learns of months that may have become complete, whoever wrote
/// them (a fill, a page that ran past the month asked, the stream).
#[derive(Clone)]
pub(crate) struct OnCovered(pub(crate) Arc<CoveredFn>);

/// A series, its timeframe and the range written as covered.
pub(crate) type CoveredFn = dyn Fn(&Symbol, Timeframe, (i64, i64)) + Send + Sync;

impl std::fmt::Debug for OnCovered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnCovered")
    }
}

impl SqliteStore {
    /// Opens (or creates) the store's database, migrating its schema.
    ///
    /// # Errors
    /// [`Error::Db`] if the file cannot be opened or is not a store this build can use.
    pub async fn open(config: DbSettings) -> Result<Self> {
        Self::open_with(config, None, None).await
    }

    /// As [`SqliteStore::open`], caching query results in `results` and telling
    /// `covered` of covered ranges.
    pub(crate) async fn open_with(
        config: DbSettings,
        results: Option<NamespaceCache>,
        covered: Option<OnCovered>,
    ) -> Result<Self> {
        Ok(Self {
            db: Db::open(config.db_config(), &SCHEMA, results).await?,
            covered,
        })
    }

    /// Returns the database, for its statistics and optimization.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The one open time `sql` (bound to the series and `t`) selects, if any.
    async fn open_time(
        &self,
        sql: &'static str,
        symbol: &Symbol,
        tf: Timeframe,
        t: i64,
    ) -> Result<Option<i64>> {
        let Some((id, _)) = self.symbol(symbol).await? else {
            return Ok(None);
        };
        let tf = tf.name();
        Ok(self
            .db
            .run(move |s| {
                s.time(sql, 1, |c| {
                    c.query_row(sql, params![id, tf, t], |r| r.get(0))
                })
            })
            .await?)
    }

    /// The parts of `[start, end)` not covered under `what` (a timeframe, or funding).
    async fn missing_in(
        &self,
        symbol: &Symbol,
        what: String,
        start: i64,
        end: i64,
    ) -> Result<Vec<(i64, i64)>> {
        if start >= end {
            return Ok(Vec::new());
        }
        let Some((id, _)) = self.symbol(symbol).await? else {
            return Ok(vec![(start, end)]);
        };
        let tf = what;
        let covered: Vec<(i64, i64)> = self
            .db
            .run(move |s| {
                s.time(COVERED_SQL, 1, |c| {
                    let mut stmt = c.prepare_cached(COVERED_SQL)?;
                    let rows = stmt
                        .query_map(params![id, tf, start, end], |r| Ok((r.get(0)?, r.get(1)?)))?;
                    rows.collect()
                })
            })
            .await?;
        let mut out = Vec::new();
        let mut at = start;
        for (a, b) in covered {
            if a > at {
                out.push((at, a.min(end)));
            }
            at = at.max(b);
        }
        if at < end {
            out.push((at, end));
        }
        Ok(out)
    }

    async fn symbol(&self, symbol: &Symbol) -> Result<Option<(i64, Scales)>> {
        let symbol = symbol.clone();
        Ok(self.db.run(move |s| lookup(s, &symbol)).await?)
    }

    /// Runs a range read `f` with the symbol's id and scales, timed as [`RANGE_SQL`].
    async fn range<R: Send + 'static>(
        &self,
        symbol: &Symbol,
        f: impl FnOnce(&mut Connection, i64, Scales) -> rusqlite::Result<R> + Send + 'static,
    ) -> Result<R> {
        let Some((id, scales)) = self.symbol(symbol).await? else {
            return Err(Error::UnknownSymbol(symbol.to_string()));
        };
        Ok(self
            .db
            .run(move |s| s.time(RANGE_SQL, 1, |c| f(c, id, scales)))
            .await?)
    }
}

impl SqliteStore {
    /// Reads one range into a batch; `capacity` is a hint of the rows to expect.
    async fn read_part(
        &self,
        symbol: &Symbol,
        tf: Timeframe,
        start: i64,
        end: i64,
        capacity: usize,
    ) -> Result<RecordBatch> {
        let capacity = capacity.min(1 << 22);
        let tf_name = tf.name();
        let columns = self
            .range(symbol, move |c, id, sc| {
                let div = sc.columns().map(|s| 10_f64.powi(i32::from(s)));
                let mut time = Int64Builder::with_capacity(capacity);
                let mut prices: [Float64Builder; 5] =
                    std::array::from_fn(|_| Float64Builder::with_capacity(capacity));
                let mut optional: [Float64Builder; 4] =
                    std::array::from_fn(|_| Float64Builder::with_capacity(capacity));
                let mut trades = UInt64Builder::with_capacity(capacity);
                let mut stmt = c.prepare_cached(RANGE_SQL)?;
                let mut rows = stmt.query(params![id, tf_name, start, end])?;
                while let Some(r) = rows.next()? {
                    time.append_value(match r.get_ref_unwrap(0) {
                        ValueRef::Integer(t) => t,
                        _ => 0,
                    });
                    for (i, b) in prices.iter_mut().enumerate() {
                        b.append_value(float(r.get_ref_unwrap(i + 1), div[i]).unwrap_or(0.0));
                    }
                    optional[0].append_option(float(r.get_ref_unwrap(6), div[5]));
                    trades.append_option(r.get::<_, Option<i64>>(7)?.map(|t| t.max(0) as u64));
                    optional[1].append_option(float(r.get_ref_unwrap(8), div[7]));
                    optional[2].append_option(float(r.get_ref_unwrap(9), div[8]));
                    optional[3].append_option(float(r.get_ref_unwrap(10), div[9]));
                }
                let mut cols: Vec<ArrayRef> = vec![Arc::new(time.finish())];
                cols.extend(prices.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
                let [mut qv, mut tb, mut tq, mut vc] = optional;
                cols.push(Arc::new(qv.finish()));
                cols.push(Arc::new(trades.finish()));
                cols.push(Arc::new(tb.finish()));
                cols.push(Arc::new(tq.finish()));
                cols.push(Arc::new(vc.finish()));
                Ok(cols)
            })
            .await?;
        RecordBatch::try_new(candle_schema(), columns).map_err(|e| Error::Encode {
            what: "arrow",
            message: e.to_string(),
        })
    }
}

impl SqliteStore {
    /// Writes candles and, when given, the range they complete, in one transaction.
    async fn write_in(
        &self,
        meta: &MarketMeta,
        tf: Timeframe,
        candles: Vec<Candle>,
        covered: Option<(i64, i64)>,
    ) -> Result<WriteReport> {
        let candles = dedup(candles);
        let symbol = meta.symbol.clone();
        let meta = meta.clone();
        let report = self
            .db
            .run(move |s| {
                s.transaction(|s| {
                    let (id, scales) = symbol_row(s, &meta, Scales::of(&candles))?;
                    if let Some((a, b)) = covered.filter(|(a, b)| a < b) {
                        cover(s, id, &tf.name(), a, b)?;
                    }
                    write_rows(s, id, scales, tf, &candles)
                })
            })
            .await?;
        if report.inserted + report.updated > 0 {
            self.db.invalidate_cached();
        }
        if let (Some(on), Some(range)) = (&self.covered, covered.filter(|(a, b)| a < b)) {
            (on.0)(&symbol, tf, range);
        }
        Ok(report)
    }
}

impl CandleStore for SqliteStore {
    fn has_spare_connection(&self) -> bool {
        let p = self.db.pool().stats();
        p.waiting == 0 && p.max_size.saturating_sub(p.in_use) >= 2
    }

    async fn write(
        &self,
        meta: &MarketMeta,
        tf: Timeframe,
        candles: Vec<Candle>,
    ) -> Result<WriteReport> {
        if candles.is_empty() {
            return Ok(WriteReport::default());
        }
        self.write_in(meta, tf, candles, None).await
    }

    async fn write_covered(
        &self,
        meta: &MarketMeta,
        tf: Timeframe,
        candles: Vec<Candle>,
        covered: (i64, i64),
    ) -> Result<WriteReport> {
        self.write_in(meta, tf, candles, Some(covered)).await
    }

    async fn missing(
        &self,
        symbol: &Symbol,
        tf: Timeframe,
        start: i64,
        end: i64,
    ) -> Result<Vec<(i64, i64)>> {
        self.missing_in(symbol, tf.name(), start, end).await
    }

    async fn write_funding(
        &self,
        meta: &MarketMeta,
        rows: Vec<Funding>,
        (a, b): (i64, i64),
    ) -> Result<u64> {
        let meta = meta.clone();
        let new = self
            .db
            .run(move |s| {
                s.transaction(|s| {
                    let (id, _) = symbol_row(s, &meta, Scales::default())?;
                    if a < b {
                        cover(s, id, FUNDING, a, b)?;
                    }
                    s.time(FUNDING_UPSERT_SQL, rows.len() as u64, |c| {
                        let mut stmt = c.prepare_cached(FUNDING_UPSERT_SQL)?;
                        let mut new = 0u64;
                        for f in &rows {
                            new +=
                                stmt.execute(params![id, f.time, f.rate, f.mark_price, f.extra])?
                                    as u64;
                        }
                        Ok(new)
                    })
                })
            })
            .await?;
        Ok(new)
    }

    async fn read_funding(&self, symbol: &Symbol, start: i64, end: i64) -> Result<Vec<Funding>> {
        let Some((id, _)) = self.symbol(symbol).await? else {
            return Ok(Vec::new());
        };
        Ok(self
            .db
            .run(move |s| {
                s.time(FUNDING_SQL, 1, |c| {
                    let mut stmt = c.prepare_cached(FUNDING_SQL)?;
                    let rows = stmt.query_map(params![id, start, end], |r| {
                        Ok(Funding {
                            time: r.get(0)?,
                            rate: r.get(1)?,
                            mark_price: r.get(2)?,
                            extra: r.get(3)?,
                        })
                    })?;
                    rows.collect()
                })
            })
            .await?)
    }

    async fn missing_funding(
        &self,
        symbol: &Symbol,
        start: i64,
        end: i64,
    ) -> Result<Vec<(i64, i64)>> {
        self.missing_in(symbol, FUNDING.to_owned(), start, end)
            .await
    }

    async fn next_open(&self, symbol: &Symbol, tf: Timeframe, from: i64) -> Result<Option<i64>> {
        self.open_time(NEXT_SQL, symbol, tf, from).await
    }

    async fn prev_open(&self, symbol: &Symbol, tf: Timeframe, before: i64) -> Result<Option<i64>> {
        self.open_time(PREV_SQL, symbol, tf, before).await
    }

    async fn read(
        &self,
        symbol: &Symbol,
        tf: Timeframe,
        start: i64,
        end: i64,
    ) -> Result<Vec<Candle>> {
        let tf_name = tf.name();
        self.range(symbol, move |c, id, sc| {
            let mut stmt = c.prepare_cached(RANGE_SQL)?;
            let mut rows = stmt.query(params![id, tf_name, start, end])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                let cols = sc.columns();
                let opt = |i: usize| decimal(r.get_ref_unwrap(i + 1), cols[i]);
                let req = |i: usize| opt(i).unwrap_or(Decimal::new(0, cols[i]));
                out.push(Candle {
                    open_time: r.get(0)?,
                    open: req(0),
                    high: req(1),
                    low: req(2),
                    close: req(3),
                    volume: req(4),
                    quote_volume: opt(5),
                    trades: r.get::<_, Option<i64>>(7)?.map(|t| t.max(0) as u64),
                    taker_base: opt(7),
                    taker_quote: opt(8),
                    volume_ccy: opt(9),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn read_batch(
        &self,
        symbol: &Symbol,
        tf: Timeframe,
        start: i64,
        end: i64,
    ) -> Result<RecordBatch> {
        let Some(len) = tf.fixed_ms() else {
            return self.read_part(symbol, tf, start, end, 0).await;
        };
        // Large ranges are read as two halves on two connections at once: decoding rows
        // is CPU-bound in SQLite, and this splits it over two cores.
        let tf_name = tf.name();
        let bounds = self
            .range(symbol, move |c, id, _| {
                c.query_row(BOUNDS_SQL, params![id, tf_name, start, end], |r| {
                    Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, Option<i64>>(1)?))
                })
            })
            .await?;
        let (Some(first), Some(last)) = bounds else {
            return self.read_part(symbol, tf, start, end, 0).await;
        };
        let rows = ((last - first) / len + 1) as usize;
        if rows < PARALLEL_MIN_ROWS {
            return self.read_part(symbol, tf, first, last + 1, rows).await;
        }
        let mid = tf.floor(first + (last - first) / 2);
        let (a, b) = tokio::join!(
            self.read_part(symbol, tf, first, mid, rows / 2 + 1),
            self.read_part(symbol, tf, mid, last + 1, rows / 2 + 1)
        );
        arrow_select::concat::concat_batches(&candle_schema(), [&a?, &b?]).map_err(|e| {
            Error::Encode {
                what: "arrow",
                message: e.to_string(),
            }
        })
    }

    async fn write_all(
        &self,
        meta: &MarketMeta,
        tf: Timeframe,
        mut batches: tokio::sync::mpsc::Receiver<Result<Vec<Candle>>>,
    ) -> Result<WriteReport> {
        let meta = meta.clone();
        // The caller's error, kept aside while the transaction rolls back.
        let failed = Arc::new(std::sync::Mutex::new(None));
        let failure = failed.clone();
        let done = self
            .db
            .run(move |s| {
                s.transaction(|s| {
                    let mut total = WriteReport::default();
                    while let Some(batch) = batches.blocking_recv() {
                        let candles = match batch {
                            Ok(c) => dedup(c),
                            Err(e) => {
                                *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                                return Err(query_opt::Error::Unusable("aborted".into()));
                            }
                        };
                        let (id, scales) = symbol_row(s, &meta, Scales::of(&candles))?;
                        let w = write_rows(s, id, scales, tf, &candles)?;
                        total.inserted += w.inserted;
                        total.updated += w.updated;
                        total.unchanged += w.unchanged;
                    }
                    Ok(total)
                })
            })
            .await;
        if let Some(e) = failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(e);
        }
        let report = done?;
        if report.inserted + report.updated > 0 {
            self.db.invalidate_cached();
        }
        Ok(report)
    }

    async fn used_bytes(&self) -> Result<u64> {
        Ok(self
            .db
            .run(|s| {
                s.time(USED_SQL, 1, |c| {
                    c.query_row(USED_SQL, [], |r| r.get::<_, i64>(0))
                })
            })
            .await?
            .max(0) as u64)
    }

    async fn forget(&self, symbol: &Symbol, tf: Timeframe, start: i64, end: i64) -> Result<u64> {
        let Some((id, _)) = self.symbol(symbol).await? else {
            return Ok(0);
        };
        let tf = tf.name();
        let dropped = self
            .db
            .run(move |s| {
                s.transaction(|s| {
                    uncover(s, id, &tf, start, end)?;
                    let n = s.time(FORGET_SQL, 1, |c| {
                        c.execute(FORGET_SQL, params![id, tf, start, end])
                    })? as i64;
                    let bound = |s: &mut Session<'_>, sql: &'static str| {
                        s.time(sql, 1, |c| {
                            c.query_row(sql, params![id, tf], |r| r.get::<_, Option<i64>>(0))
                        })
                    };
                    let (first, last) = (bound(s, FIRST_SQL)?, bound(s, LAST_SQL)?);
                    s.time(SERIES_AFTER_FORGET_SQL, 1, |c| {
                        c.execute(SERIES_AFTER_FORGET_SQL, params![id, tf, first, last, n])
                    })?;
                    Ok(n as u64)
                })
            })
            .await?;
        self.db.invalidate_cached();
        Ok(dropped)
    }

    async fn markets(&self) -> Result<Vec<Market>> {
        let db = self.db.clone();
        Ok(self
            .db
            .cached("markets", || async move {
                db.run(|s| {
                    s.time(MARKETS_SQL, 1, |c| {
                        let mut stmt = c.prepare_cached(MARKETS_SQL)?;
                        let rows = stmt.query_map([], |r| {
                            Ok(Market {
                                symbol: r.get(0)?,
                                exchange: r.get::<_, String>(1)?.parse().unwrap_or_default(),
                                base: r.get(2)?,
                                quote: r.get(3)?,
                                timeframe: r.get(4)?,
                                first_time: r.get(5)?,
                                last_time: r.get(6)?,
                                count: r.get::<_, i64>(7)?.max(0) as u64,
                                price_precision: r.get(8)?,
                                kind: r.get::<_, String>(9)?.parse().unwrap_or_default(),
                                object_store: None,
                            })
                        })?;
                        rows.collect()
                    })
                })
                .await
            })
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_range_query_uses_the_primary_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(DbSettings::new(dir.path().join("t.db")))
            .await
            .unwrap();
        let plan = store.db().analyze(RANGE_SQL).await.unwrap();
        assert!(
            plan.steps.iter().any(|s| s.contains(
                "USING PRIMARY KEY (symbol_id=? AND timeframe=? AND open_time>? AND open_time<?)"
            )),
            "{plan:?}"
        );
        assert!(plan.full_scans.is_empty() && !plan.temp_btree, "{plan:?}");
        let count = store.db().analyze(COUNT_SQL).await.unwrap();
        assert!(
            count.uses_index() && count.full_scans.is_empty(),
            "{count:?}"
        );
    }
}
