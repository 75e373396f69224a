//! The store's work inside one session: rows as stored (integers at the symbol's
//! scales), the multi-row upsert, coverage intervals, symbols and their scales.

use query_opt::Session;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{params, OptionalExtension};

use super::sql::*;
use super::{MarketMeta, Scales, WriteReport, VALUE_COLUMNS};
use crate::{Candle, Decimal, Symbol, Timeframe};

/// A candle with its values scaled to integers, ready to store.
pub(super) struct StoredRow {
    open_time: i64,
    values: [Option<i128>; 10],
}

impl StoredRow {
    /// Scales a candle to `scales`, which are at least the candle's own.
    pub(super) fn new(c: &Candle, scales: Scales) -> Self {
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
                at(c.volume_ccy, 9),
            ],
        }
    }
}

/// Upserts `candles` (deduplicated, in time order) of the series `id` at `scales`, and
/// keeps the series' range and count: one statement per 64 candles.
pub(super) fn write_rows(
    s: &mut Session<'_>,
    id: i64,
    scales: Scales,
    tf: Timeframe,
    candles: &[Candle],
) -> query_opt::Result<WriteReport> {
    let rows: Vec<StoredRow> = candles.iter().map(|c| StoredRow::new(c, scales)).collect();
    let tf_name = tf.name();
    let tf = tf_name.as_str();
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
                bind_values(&mut stmt, 2 + k * 11, r)?;
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
pub(super) fn dedup(mut candles: Vec<Candle>) -> Vec<Candle> {
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
pub(super) fn uncover(
    s: &mut Session<'_>,
    id: i64,
    tf: &str,
    a: i64,
    b: i64,
) -> query_opt::Result<()> {
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
pub(super) fn cover(
    s: &mut Session<'_>,
    id: i64,
    tf: &str,
    a: i64,
    b: i64,
) -> query_opt::Result<()> {
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
pub(super) fn symbol_row(
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
                meta.symbol.exchange().as_str(),
                meta.base,
                meta.quote,
                need.price,
                need.volume,
                need.quote_volume,
                need.taker_base,
                need.taker_quote,
                meta.symbol.kind().as_str(),
                need.volume_ccy
            ],
        )
    })?;
    Ok(lookup(s, &meta.symbol)?.expect("the symbol was just inserted"))
}

pub(super) fn lookup(
    s: &mut Session<'_>,
    symbol: &Symbol,
) -> query_opt::Result<Option<(i64, Scales)>> {
    s.time(SYMBOL_SQL, 1, |c| {
        let key = [
            symbol.as_str(),
            symbol.kind().as_str(),
            symbol.exchange().as_str(),
        ];
        c.query_row(SYMBOL_SQL, key, |r| {
            Ok((
                r.get(0)?,
                Scales {
                    price: r.get(1)?,
                    volume: r.get(2)?,
                    quote_volume: r.get(3)?,
                    taker_base: r.get(4)?,
                    taker_quote: r.get(5)?,
                    volume_ccy: r.get(6)?,
                },
            ))
        })
        .optional()
    })
}

/// Candles per multi-row upsert statement (11 parameters each, far below SQLite's limit).
pub(super) const UPSERT_ROWS: usize = 64;

/// [`UPSERT_SQL`] with [`UPSERT_ROWS`] rows of values.
pub(super) fn upsert_many_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let (head, tail) = UPSERT_SQL
            .split_once(" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)")
            .expect("the upsert has one row of values");
        // The series' id and timeframe are bound once for all rows (`?1`, `?2`); each
        // row's eleven values take the next free numbers.
        let row = "(?1, ?2, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
        format!("{head} VALUES {}{tail}", vec![row; UPSERT_ROWS].join(", "))
    })
}

/// Binds one row's open time and ten values starting after parameter `offset`
/// (parameters count from 1; the series' id and timeframe are bound by the caller).
pub(super) fn bind_values(
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
pub(super) fn rescale(
    s: &mut Session<'_>,
    id: i64,
    have: Scales,
    want: Scales,
) -> query_opt::Result<()> {
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
                want.taker_quote,
                want.volume_ccy
            ],
        )
    })?;
    Ok(())
}

pub(super) fn to_value(v: Option<i128>) -> Value {
    match v {
        None => Value::Null,
        // Values beyond i64 (a month of quote volume at 8 places can be) are kept as
        // floats; the only loss is in their last digits.
        Some(m) => i64::try_from(m).map_or(Value::Real(m as f64), Value::Integer),
    }
}

pub(super) fn decimal(v: ValueRef<'_>, scale: u8) -> Option<Decimal> {
    match v {
        ValueRef::Integer(m) => Some(Decimal::new(i128::from(m), scale)),
        ValueRef::Real(m) => Some(Decimal::new(m as i128, scale)),
        _ => None,
    }
}

pub(super) fn float(v: ValueRef<'_>, div: f64) -> Option<f64> {
    match v {
        ValueRef::Integer(m) => Some(m as f64 / div),
        ValueRef::Real(m) => Some(m / div),
        _ => None,
    }
}
