//! The SQL the SQLite store runs, in one place (every statement through
//! `query_opt::Session::time`, only bound parameters).

/// The coverage rows of funding events use this in place of a timeframe.
pub(super) const FUNDING: &str = "funding";

pub(super) const RANGE_SQL: &str = "SELECT open_time, open, high, low, close, volume, quote_volume, trades, taker_base, taker_quote, volume_ccy FROM candles WHERE symbol_id = ?1 AND timeframe = ?2 AND open_time >= ?3 AND open_time < ?4 ORDER BY open_time";
pub(super) const UPSERT_SQL: &str = "INSERT INTO candles (symbol_id, timeframe, open_time, open, high, low, close, volume, quote_volume, trades, taker_base, taker_quote, volume_ccy) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT (symbol_id, timeframe, open_time) DO UPDATE SET open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close, volume = excluded.volume, quote_volume = excluded.quote_volume, trades = excluded.trades, taker_base = excluded.taker_base, taker_quote = excluded.taker_quote, volume_ccy = excluded.volume_ccy WHERE (open, high, low, close, volume, quote_volume, trades, taker_base, taker_quote, volume_ccy) IS NOT (excluded.open, excluded.high, excluded.low, excluded.close, excluded.volume, excluded.quote_volume, excluded.trades, excluded.taker_base, excluded.taker_quote, excluded.volume_ccy)";
/// The first and last open times in a range: two seeks on the key. (`min()` and `max()`
/// together in one select scan the whole range, a second pass over what is then read.)
pub(super) const BOUNDS_SQL: &str = "SELECT (SELECT open_time FROM candles WHERE symbol_id = ?1 AND timeframe = ?2 AND open_time >= ?3 AND open_time < ?4 ORDER BY open_time LIMIT 1), (SELECT open_time FROM candles WHERE symbol_id = ?1 AND timeframe = ?2 AND open_time >= ?3 AND open_time < ?4 ORDER BY open_time DESC LIMIT 1)";
pub(super) const COUNT_SQL: &str = "SELECT count(*) FROM candles WHERE symbol_id = ?1 AND timeframe = ?2 AND open_time BETWEEN ?3 AND ?4";
pub(super) const SYMBOL_SQL: &str = "SELECT id, price_scale, volume_scale, quote_volume_scale, taker_base_scale, taker_quote_scale, volume_ccy_scale FROM symbols WHERE symbol = ?1 AND kind = ?2 AND exchange = ?3";
pub(super) const NEW_SYMBOL_SQL: &str = "INSERT INTO symbols (symbol, exchange, base, quote, price_scale, volume_scale, quote_volume_scale, taker_base_scale, taker_quote_scale, kind, volume_ccy_scale) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
pub(super) const SCALES_SQL: &str = "UPDATE symbols SET price_scale = ?2, volume_scale = ?3, quote_volume_scale = ?4, taker_base_scale = ?5, taker_quote_scale = ?6, volume_ccy_scale = ?7 WHERE id = ?1";
pub(super) const SERIES_SQL: &str = "INSERT INTO series (symbol_id, timeframe, first_time, last_time, count) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (symbol_id, timeframe) DO UPDATE SET first_time = min(coalesce(first_time, excluded.first_time), excluded.first_time), last_time = max(coalesce(last_time, excluded.last_time), excluded.last_time), count = count + excluded.count";
pub(super) const LAST_OF_SERIES_SQL: &str =
    "SELECT last_time FROM series WHERE symbol_id = ?1 AND timeframe = ?2";
pub(super) const NEXT_SQL: &str = "SELECT min(open_time) FROM candles WHERE symbol_id = ?1 AND timeframe = ?2 AND open_time >= ?3";
pub(super) const PREV_SQL: &str =
    "SELECT max(open_time) FROM candles WHERE symbol_id = ?1 AND timeframe = ?2 AND open_time < ?3";
pub(super) const COVERED_SQL: &str = "SELECT start_time, end_time FROM coverage WHERE symbol_id = ?1 AND timeframe = ?2 AND start_time < ?4 AND end_time > ?3 ORDER BY start_time";
/// Intervals touching `[?3, ?4]`, which a new covered range merges with.
pub(super) const TOUCHING_SQL: &str = "SELECT min(start_time), max(end_time) FROM coverage WHERE symbol_id = ?1 AND timeframe = ?2 AND start_time <= ?4 AND end_time >= ?3";
pub(super) const UNCOVER_SQL: &str = "DELETE FROM coverage WHERE symbol_id = ?1 AND timeframe = ?2 AND start_time <= ?4 AND end_time >= ?3";
pub(super) const DELETE_INTERVAL_SQL: &str =
    "DELETE FROM coverage WHERE symbol_id = ?1 AND timeframe = ?2 AND start_time = ?3";
pub(super) const COVER_SQL: &str =
    "INSERT INTO coverage (symbol_id, timeframe, start_time, end_time) VALUES (?1, ?2, ?3, ?4)";
pub(super) const FORGET_SQL: &str =
    "DELETE FROM candles WHERE symbol_id = ?1 AND timeframe = ?2 AND open_time >= ?3 AND open_time < ?4";
pub(super) const FIRST_SQL: &str =
    "SELECT min(open_time) FROM candles WHERE symbol_id = ?1 AND timeframe = ?2";
pub(super) const LAST_SQL: &str =
    "SELECT max(open_time) FROM candles WHERE symbol_id = ?1 AND timeframe = ?2";
pub(super) const SERIES_AFTER_FORGET_SQL: &str = "UPDATE series SET first_time = ?3, last_time = ?4, count = max(count - ?5, 0) WHERE symbol_id = ?1 AND timeframe = ?2";
pub(super) const USED_SQL: &str = "SELECT (page_count - freelist_count) * page_size FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size()";
pub(super) const FUNDING_UPSERT_SQL: &str = "INSERT INTO funding (symbol_id, funding_time, rate, mark_price, extra) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (symbol_id, funding_time) DO UPDATE SET rate = excluded.rate, mark_price = excluded.mark_price, extra = excluded.extra WHERE (rate, mark_price, extra) IS NOT (excluded.rate, excluded.mark_price, excluded.extra)";
pub(super) const FUNDING_SQL: &str = "SELECT funding_time, rate, mark_price, extra FROM funding WHERE symbol_id = ?1 AND funding_time >= ?2 AND funding_time < ?3 ORDER BY funding_time";
pub(super) const MARKETS_SQL: &str = "SELECT s.symbol, s.exchange, s.base, s.quote, r.timeframe, r.first_time, r.last_time, r.count, s.price_scale, s.kind FROM series r JOIN symbols s ON s.id = r.symbol_id ORDER BY s.exchange, s.symbol, s.kind, r.timeframe";
