//! The store on SQLite: the `CandleStore` implementation, its SQL and its helpers.

use std::sync::Arc;

use arrow_array::builder::{Float64Builder, Int64Builder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch};
use cache_core::NamespaceCache;
use query_opt::{Db, Session};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{params, Connection, OptionalExtension};

use super::schema::SCHEMA;
use crate::settings::DbSettings;
use crate::store::{
    candle_schema, CandleStore, Market, MarketMeta, Scales, WriteReport, VALUE_COLUMNS,
};
use crate::{Candle, Decimal, Error, Funding, Result, Symbol, Timeframe};

/// A candle with its values scaled to integers, ready to store.
struct StoredRow {
    open_time: i64,
    values: [Option<i128>; 9],
}

impl StoredRow {
    /// Scales a candle to `scales`, which are at least the candle's own.
    fn new(c: &Candle, scales: Scales) -> Self {
        let cols = scales.columns();
        let at = |d: Option<Decimal>, i: usize| {
            d.map(|d| {
                d.at_scale(cols[i])
                    .unwrap_or_else(|| (d.to_f64() * 10_f64.powi(i32::from(cols[i]))) as i128)
            })
        };
        Self {
            open_time: c.open_time,
            values: [
                at(Some(c.open), 0),
                at(Some(c.high), 1),
                at(Some(c.low), 2),
                at(Some(c.close), 3),
                at(Some(c.volume), 4),
                at(c.quote_volume, 5),
                c.trades.map(i128::from),
                at(c.taker_base, 7),
                at(c.taker_quote, 8),
            ],
        }
    }
}

/// The coverage rows of funding events use this in place of a timeframe.
const FUNDING: &str = "funding";

/// The store on SQLite, through `query-opt` (so every statement is timed).
#[derive(Clone, Debug)]
pub struct SqliteStore {
    db: Db,
}

pub(crate) const RANGE_SQL: &str = "SELECT open_time, open, high, low, close, volume, quote_volume, trades, taker_base, taker_quote FROM candles WHERE symbol_id = ?1 AND timeframe = ?2 AND open_time >= ?3 AND open_time < ?4 ORDER BY open_time";
const UPSERT_SQL: &str = "INSERT INTO candles (symbol_id, timeframe, open_time, open, high, low, close, volume, quote_volume, trades, taker_base, taker_quote) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT (symbol_id, timeframe, open_time) DO UPDATE SET open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close, volume = excluded.volume, quote_volume = excluded.quote_volume, trades = excluded.trades, taker_base = excluded.taker_base, taker_quote = excluded.taker_quote WHERE (open, high, low, close, volume, quote_volume, trades, taker_base, taker_quote) IS NOT (excluded.open, excluded.high, excluded.low, excluded.close, excluded.volume, excluded.quote_volume, excluded.trades, excluded.taker_base, excluded.taker_quote)";
/// The first and last open times in a range: two seeks on the key. (`min()` and `max()`
/// together in one select scan the whole range, a second pass over what is then read.)
const BOUNDS_SQL: &str = "SELECT (SELECT open_time FROM candles WHERE symbol_id = ?1 AND timeframe = ?2 AND open_time >= ?3 AND open_time < ?4 ORDER BY open_time LIMIT 1), (SELECT open_time FROM candles WHERE symbol_id = ?1 AND timeframe = ?2 AND open_time >= ?3 AND open_time < ?4 ORDER BY open_time DESC LIMIT 1)";
/// Ranges with at least this many candles are read in two halves at once.
const PARALLEL_MIN_ROWS: usize = 65_536;
const COUNT_SQL: &str = "SELECT count(*) FROM candles WHERE symbol_id = ?1 AND timeframe = ?2 AND open_time BETWEEN ?3 AND ?4";
const SYMBOL_SQL: &str = "SELECT id, price_scale, volume_scale, quote_volume_scale, taker_base_scale, taker_quote_scale FROM symbols WHERE symbol = ?1 AND kind = ?2";
const NEW_SYMBOL_SQL: &str = "INSERT INTO symbols (symbol, exchange, base, quote, price_scale, volume_scale, quote_volume_scale, taker_base_scale, taker_quote_scale, kind) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
const SCALES_SQL: &str = "UPDATE symbols SET price_scale = ?2, volume_scale = ?3, quote_volume_scale = ?4, taker_base_scale = ?5, taker_quote_scale = ?6 WHERE id = ?1";
const SERIES_SQL: &str = "INSERT INTO series (symbol_id, timeframe, first_time, last_time, count) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (symbol_id, timeframe) DO UPDATE SET first_time = min(coalesce(first_time, excluded.first_time), excluded.first_time), last_time = max(coalesce(last_time, excluded.last_time), excluded.last_time), count = count + excluded.count";
const LAST_OF_SERIES_SQL: &str =
    "SELECT last_time FROM series WHERE symbol_id = ?1 AND timeframe = ?2";
const NEXT_SQL: &str = "SELECT min(open_time) FROM candles WHERE symbol_id = ?1 AND timeframe = ?2 AND open_time >= ?3";
const PREV_SQL: &str =
    "SELECT max(open_time) FROM candles WHERE symbol_id = ?1 AND timeframe = ?2 AND open_time < ?3";
const COVERED_SQL: &str = "SELECT start_time, end_time FROM coverage WHERE symbol_id = ?1 AND timeframe = ?2 AND start_time < ?4 AND end_time > ?3 ORDER BY start_time";
/// Intervals touching `[?3, ?4]`, which a new covered range merges with.
const TOUCHING_SQL: &str = "SELECT min(start_time), max(end_time) FROM coverage WHERE symbol_id = ?1 AND timeframe = ?2 AND start_time <= ?4 AND end_time >= ?3";
const UNCOVER_SQL: &str = "DELETE FROM coverage WHERE symbol_id = ?1 AND timeframe = ?2 AND start_time <= ?4 AND end_time >= ?3";
const DELETE_INTERVAL_SQL: &str =
    "DELETE FROM coverage WHERE symbol_id = ?1 AND timeframe = ?2 AND start_time = ?3";
const COVER_SQL: &str =
    "INSERT INTO coverage (symbol_id, timeframe, start_time, end_time) VALUES (?1, ?2, ?3, ?4)";
const FORGET_SQL: &str =
    "DELETE FROM candles WHERE symbol_id = ?1 AND timeframe = ?2 AND open_time >= ?3 AND open_time < ?4";
const FIRST_SQL: &str =
    "SELECT min(open_time) FROM candles WHERE symbol_id = ?1 AND timeframe = ?2";
const LAST_SQL: &str = "SELECT max(open_time) FROM candles WHERE symbol_id = ?1 AND timeframe = ?2";
const SERIES_AFTER_FORGET_SQL: &str = "UPDATE series SET first_time = ?3, last_time = ?4, count = max(count - ?5, 0) WHERE symbol_id = ?1 AND timeframe = ?2";
const USED_SQL: &str = "SELECT (page_count - freelist_count) * page_size FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size()";
const FUNDING_UPSERT_SQL: &str = "INSERT INTO funding (symbol_id, funding_time, rate, mark_price) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (symbol_id, funding_time) DO UPDATE SET rate = excluded.rate, mark_price = excluded.mark_price WHERE (rate, mark_price) IS NOT (excluded.rate, excluded.mark_price)";
const FUNDING_SQL: &str = "SELECT funding_time, rate, mark_price FROM funding WHERE symbol_id = ?1 AND funding_time >= ?2 AND funding_time < ?3 ORDER BY funding_time";
const MARKETS_SQL: &str = "SELECT s.symbol, s.exchange, s.base, s.quote, r.timeframe, r.first_time, r.last_time, r.count, s.price_scale, s.kind FROM series r JOIN symbols s ON s.id = r.symbol_id ORDER BY s.symbol, s.kind, r.timeframe";

impl SqliteStore {
    /// Opens (or creates) the store's database, migrating its schema.
    ///
    /// # Errors
    /// [`Error::Db`] if the file cannot be opened or is not a store this build can use.
    pub async fn open(config: DbSettings) -> Result<Self> {
        Self::open_with(config, None).await
    }

    /// As [`SqliteStore::open`], caching query results in `results`.
    pub(crate) async fn open_with(
        config: DbSettings,
        results: Option<NamespaceCache>,
    ) -> Result<Self> {
        Ok(Self {
            db: Db::open(config.db_config(), &SCHEMA, results).await?,
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
        let tf = tf.as_str();
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
        what: &'static str,
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
        let tf_name = tf.as_str();
        let columns = self
            .range(symbol, move |c, id, sc| {
                let div = sc.columns().map(|s| 10_f64.powi(i32::from(s)));
                let mut time = Int64Builder::with_capacity(capacity);
                let mut prices: [Float64Builder; 5] =
                    std::array::from_fn(|_| Float64Builder::with_capacity(capacity));
                let mut optional: [Float64Builder; 3] =
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
                }
                let mut cols: Vec<ArrayRef> = vec![Arc::new(time.finish())];
                cols.extend(prices.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
                let [mut qv, mut tb, mut tq] = optional;
                cols.push(Arc::new(qv.finish()));
                cols.push(Arc::new(trades.finish()));
                cols.push(Arc::new(tb.finish()));
                cols.push(Arc::new(tq.finish()));
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
        let meta = meta.clone();
        let report = self
            .db
            .run(move |s| {
                s.transaction(|s| {
                    let (id, scales) = symbol_row(s, &meta, Scales::of(&candles))?;
                    if let Some((a, b)) = covered.filter(|(a, b)| a < b) {
                        cover(s, id, tf.as_str(), a, b)?;
                    }
                    write_rows(s, id, scales, tf, &candles)
                })
            })
            .await?;
        if report.inserted + report.updated > 0 {
            self.db.invalidate_cached();
        }
        Ok(report)
    }
}

/// Upserts `candles` (deduplicated, in time order) of the series `id` at `scales`, and
/// keeps the series' range and count: one statement per 64 candles.
fn write_rows(
    s: &mut Session<'_>,
    id: i64,
    scales: Scales,
    tf: Timeframe,
    candles: &[Candle],
) -> query_opt::Result<WriteReport> {
    let rows: Vec<StoredRow> = candles.iter().map(|c| StoredRow::new(c, scales)).collect();
    let tf = tf.as_str();
    if rows.is_empty() {
        return Ok(WriteReport::default());
    }
    let lo = rows.iter().map(|r| r.open_time).min().unwrap_or(0);
    let hi = rows.iter().map(|r| r.open_time).max().unwrap_or(0);
    let count = |s: &mut Session<'_>| -> query_opt::Result<u64> {
        s.time(COUNT_SQL, 1, |c| {
            c.query_row(COUNT_SQL, params![id, tf, lo, hi], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
        })
    };
    // Rows after the series' last candle cannot conflict: then every row written is new,
    // and the two range counts (a scan of the batch's range each) are not needed.
    let last: Option<i64> = s.time(LAST_OF_SERIES_SQL, 1, |c| {
        c.query_row(LAST_OF_SERIES_SQL, params![id, tf], |r| r.get(0))
            .optional()
            .map(Option::flatten)
    })?;
    let appending = last.is_none_or(|last| lo > last);
    let before = if appending { 0 } else { count(s)? };
    let n = rows.len() as u64;
    let written = s.time(UPSERT_SQL, n, |c| {
        // Many rows a statement: one VDBE run per 64 candles instead of per candle, which
        // is most of the per-row cost left besides the b-tree.
        let mut written = 0u64;
        let mut chunks = rows.chunks_exact(UPSERT_ROWS);
        let mut stmt = c.prepare_cached(upsert_many_sql())?;
        stmt.raw_bind_parameter(1, id)?;
        stmt.raw_bind_parameter(2, tf)?;
        for chunk in &mut chunks {
            for (k, r) in chunk.iter().enumerate() {
                bind_values(&mut stmt, 2 + k * 10, r)?;
            }
            written += stmt.raw_execute()? as u64;
        }
        let mut one = c.prepare_cached(UPSERT_SQL)?;
        one.raw_bind_parameter(1, id)?;
        one.raw_bind_parameter(2, tf)?;
        for r in chunks.remainder() {
            bind_values(&mut one, 2, r)?;
            written += one.raw_execute()? as u64;
        }
        Ok(written)
    })?;
    let inserted = if appending {
        written
    } else {
        count(s)? - before
    };
    s.time(SERIES_SQL, 1, |c| {
        c.execute(SERIES_SQL, params![id, tf, lo, hi, inserted as i64])
    })?;
    Ok(WriteReport {
        inserted,
        updated: written - inserted,
        unchanged: n - written,
    })
}

/// Time order with one candle per open time (the last given wins): an upstream page can
/// repeat a row, and one statement may not upsert the same key twice.
fn dedup(mut candles: Vec<Candle>) -> Vec<Candle> {
    if candles.windows(2).all(|w| w[0].open_time < w[1].open_time) {
        return candles;
    }
    // Stable, so among equal times the last given stays last.
    candles.sort_by_key(|c| c.open_time);
    let mut out: Vec<Candle> = Vec::with_capacity(candles.len());
    for c in candles {
        match out.last_mut() {
            Some(l) if l.open_time == c.open_time => *l = c,
            _ => out.push(c),
        }
    }
    out
}

/// Records `[a, b)` as no longer complete: the intervals overlapping it keep only their
/// parts outside it.
fn uncover(s: &mut Session<'_>, id: i64, tf: &str, a: i64, b: i64) -> query_opt::Result<()> {
    let overlapping: Vec<(i64, i64)> = s.time(COVERED_SQL, 1, |c| {
        let mut stmt = c.prepare_cached(COVERED_SQL)?;
        let rows = stmt.query_map(params![id, tf, a, b], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect()
    })?;
    for (lo, hi) in overlapping {
        s.time(DELETE_INTERVAL_SQL, 1, |c| {
            c.execute(DELETE_INTERVAL_SQL, params![id, tf, lo])
        })?;
        for (x, y) in [(lo, a), (b, hi)] {
            if x < y {
                s.time(COVER_SQL, 1, |c| {
                    c.execute(COVER_SQL, params![id, tf, x, y])
                })?;
            }
        }
    }
    Ok(())
}

/// Records `[a, b)` as complete, merged with the intervals it overlaps or touches.
fn cover(s: &mut Session<'_>, id: i64, tf: &str, a: i64, b: i64) -> query_opt::Result<()> {
    let (lo, hi): (Option<i64>, Option<i64>) = s.time(TOUCHING_SQL, 1, |c| {
        c.query_row(TOUCHING_SQL, params![id, tf, a, b], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
    })?;
    s.time(UNCOVER_SQL, 1, |c| {
        c.execute(UNCOVER_SQL, params![id, tf, a, b])
    })?;
    let (a, b) = (lo.map_or(a, |lo| lo.min(a)), hi.map_or(b, |hi| hi.max(b)));
    s.time(COVER_SQL, 1, |c| {
        c.execute(COVER_SQL, params![id, tf, a, b])
    })?;
    Ok(())
}

/// The id and scales of `meta`'s symbol, created if new; its scales raised to `need`.
fn symbol_row(
    s: &mut Session<'_>,
    meta: &MarketMeta,
    need: Scales,
) -> query_opt::Result<(i64, Scales)> {
    if let Some((id, have)) = lookup(s, &meta.symbol)? {
        let scales = have.max(need);
        if scales != have {
            rescale(s, id, have, scales)?;
        }
        return Ok((id, scales));
    }
    s.time(NEW_SYMBOL_SQL, 1, |c| {
        c.execute(
            NEW_SYMBOL_SQL,
            params![
                meta.symbol.as_str(),
                meta.exchange,
                meta.base,
                meta.quote,
                need.price,
                need.volume,
                need.quote_volume,
                need.taker_base,
                need.taker_quote,
                meta.symbol.kind().as_str()
            ],
        )
    })?;
    Ok(lookup(s, &meta.symbol)?.expect("the symbol was just inserted"))
}

fn lookup(s: &mut Session<'_>, symbol: &Symbol) -> query_opt::Result<Option<(i64, Scales)>> {
    s.time(SYMBOL_SQL, 1, |c| {
        c.query_row(SYMBOL_SQL, [symbol.as_str(), symbol.kind().as_str()], |r| {
            Ok((
                r.get(0)?,
                Scales {
                    price: r.get(1)?,
                    volume: r.get(2)?,
                    quote_volume: r.get(3)?,
                    taker_base: r.get(4)?,
                    taker_quote: r.get(5)?,
                },
            ))
        })
        .optional()
    })
}

/// Candles per multi-row upsert statement (12 parameters each, far below SQLite's limit).
const UPSERT_ROWS: usize = 64;

/// [`UPSERT_SQL`] with [`UPSERT_ROWS`] rows of values.
fn upsert_many_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let (head, tail) = UPSERT_SQL
            .split_once(" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)")
            .expect("the upsert has one row of values");
        // The series' id and timeframe are bound once for all rows (`?1`, `?2`); each
        // row's ten values take the next free numbers.
        let row = "(?1, ?2, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
        format!("{head} VALUES {}{tail}", vec![row; UPSERT_ROWS].join(", "))
    })
}

/// Binds one row's open time and nine values starting after parameter `offset`
/// (parameters count from 1; the series' id and timeframe are bound by the caller).
fn bind_values(
    stmt: &mut rusqlite::CachedStatement<'_>,
    offset: usize,
    r: &StoredRow,
) -> rusqlite::Result<()> {
    stmt.raw_bind_parameter(offset + 1, r.open_time)?;
    for (i, v) in r.values.iter().enumerate() {
        stmt.raw_bind_parameter(offset + 2 + i, to_value(*v))?;
    }
    Ok(())
}

/// Raises a symbol's scales: every stored value of a column whose scale grows is
/// multiplied by the power of ten it grows by, so it keeps its value.
fn rescale(s: &mut Session<'_>, id: i64, have: Scales, want: Scales) -> query_opt::Result<()> {
    let sets: Vec<String> = have
        .columns()
        .iter()
        .zip(want.columns())
        .zip(VALUE_COLUMNS)
        .filter(|((h, w), _)| w > h)
        .map(|((h, w), col)| format!("{col} = {col} * {}", 10_i64.pow(u32::from(w - h))))
        .collect();
    let sql = format!(
        "UPDATE candles SET {} WHERE symbol_id = ?1",
        sets.join(", ")
    );
    s.time(&sql, 1, |c| c.execute(&sql, [id]))?;
    s.time(SCALES_SQL, 1, |c| {
        c.execute(
            SCALES_SQL,
            params![
                id,
                want.price,
                want.volume,
                want.quote_volume,
                want.taker_base,
                want.taker_quote
            ],
        )
    })?;
    Ok(())
}

fn to_value(v: Option<i128>) -> Value {
    match v {
        None => Value::Null,
        // Values beyond i64 (a month of quote volume at 8 places can be) are kept as
        // floats; the only loss is in their last digits.
        Some(m) => i64::try_from(m).map_or(Value::Real(m as f64), Value::Integer),
    }
}

fn decimal(v: ValueRef<'_>, scale: u8) -> Option<Decimal> {
    match v {
        ValueRef::Integer(m) => Some(Decimal::new(i128::from(m), scale)),
        ValueRef::Real(m) => Some(Decimal::new(m as i128, scale)),
        _ => None,
    }
}

fn float(v: ValueRef<'_>, div: f64) -> Option<f64> {
    match v {
        ValueRef::Integer(m) => Some(m as f64 / div),
        ValueRef::Real(m) => Some(m / div),
        _ => None,
    }
}

impl CandleStore for SqliteStore {
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
        self.missing_in(symbol, tf.as_str(), start, end).await
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
                            new += stmt.execute(params![id, f.time, f.rate, f.mark_price])? as u64;
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
        self.missing_in(symbol, FUNDING, start, end).await
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
        let tf_name = tf.as_str();
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
        let tf_name = tf.as_str();
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
        let tf = tf.as_str();
        let dropped = self
            .db
            .run(move |s| {
                s.transaction(|s| {
                    uncover(s, id, tf, start, end)?;
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
                                exchange: r.get(1)?,
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
