//! The candle store's tables, as the migrations that build them (run by `query_opt::Db`).

use query_opt::Schema;

/// The store's schema: version 4.
pub(crate) static SCHEMA: Schema = Schema::new(&[V1, V2, V3, V4]);

/// Version 1.
///
/// Prices and volumes are integers: the exchange's decimal string with the point removed,
/// scaled by the symbol's `*_scale` of that column (the exchange's precision), so values
/// round-trip exactly. A value too large for 64 bits at its scale is stored as a float of
/// the same scaled number. `series` keeps per symbol and timeframe what `markets` lists. `coverage`
/// records ranges known complete (also those the exchange confirmed empty).
const V1: &str = "
CREATE TABLE symbols (
    id          INTEGER PRIMARY KEY,
    symbol      TEXT NOT NULL UNIQUE,
    exchange    TEXT NOT NULL,
    base        TEXT,
    quote       TEXT,
    price_scale        INTEGER NOT NULL,
    volume_scale       INTEGER NOT NULL,
    quote_volume_scale INTEGER NOT NULL,
    taker_base_scale   INTEGER NOT NULL,
    taker_quote_scale  INTEGER NOT NULL
);
CREATE TABLE series (
    symbol_id  INTEGER NOT NULL REFERENCES symbols(id),
    timeframe  TEXT NOT NULL,
    first_time INTEGER,
    last_time  INTEGER,
    count      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (symbol_id, timeframe)
) WITHOUT ROWID;
CREATE TABLE candles (
    symbol_id    INTEGER NOT NULL,
    timeframe    TEXT NOT NULL,
    open_time    INTEGER NOT NULL,
    open         INTEGER NOT NULL,
    high         INTEGER NOT NULL,
    low          INTEGER NOT NULL,
    close        INTEGER NOT NULL,
    volume       INTEGER NOT NULL,
    quote_volume INTEGER,
    trades       INTEGER,
    taker_base   INTEGER,
    taker_quote  INTEGER,
    PRIMARY KEY (symbol_id, timeframe, open_time)
) WITHOUT ROWID;
CREATE TABLE coverage (
    symbol_id  INTEGER NOT NULL,
    timeframe  TEXT NOT NULL,
    start_time INTEGER NOT NULL,
    end_time   INTEGER NOT NULL,
    PRIMARY KEY (symbol_id, timeframe, start_time)
) WITHOUT ROWID;
";

/// Version 2: USD-M futures beside spot.
///
/// Binance lists `BTCUSDT` on the spot and the futures market with different prices, so a
/// symbol row is one name of one kind (`spot`, `futures`, `mark`); candles, series and
/// coverage stay keyed by the symbol's id. SQLite cannot drop a `UNIQUE` constraint in
/// place, so `symbols` is rebuilt (same ids) as its documentation recommends. `funding`
/// holds funding rates per futures symbol as the exchange's decimal strings (rates have
/// more places than any candle scale and are only ever printed back); their coverage rows
/// use the timeframe name `funding`.
const V2: &str = "
CREATE TABLE symbols_v2 (
    id          INTEGER PRIMARY KEY,
    symbol      TEXT NOT NULL,
    kind        TEXT NOT NULL DEFAULT 'spot',
    exchange    TEXT NOT NULL,
    base        TEXT,
    quote       TEXT,
    price_scale        INTEGER NOT NULL,
    volume_scale       INTEGER NOT NULL,
    quote_volume_scale INTEGER NOT NULL,
    taker_base_scale   INTEGER NOT NULL,
    taker_quote_scale  INTEGER NOT NULL,
    UNIQUE (symbol, kind)
);
INSERT INTO symbols_v2 (id, symbol, kind, exchange, base, quote, price_scale, volume_scale,
    quote_volume_scale, taker_base_scale, taker_quote_scale)
    SELECT id, symbol, 'spot', exchange, base, quote, price_scale, volume_scale,
    quote_volume_scale, taker_base_scale, taker_quote_scale FROM symbols;
DROP TABLE symbols;
ALTER TABLE symbols_v2 RENAME TO symbols;
CREATE TABLE funding (
    symbol_id    INTEGER NOT NULL,
    funding_time INTEGER NOT NULL,
    rate         TEXT NOT NULL,
    mark_price   TEXT NOT NULL,
    PRIMARY KEY (symbol_id, funding_time)
) WITHOUT ROWID;
";

/// Version 3: the exchange in every series' identity.
///
/// Binance and Bybit both list `BTCUSDT` (spot and perpetual) at different prices, so a
/// symbol row is one name of one kind on one exchange. Until now `exchange` held the
/// upstream's host when it was not Binance's own (a test server, another candlecache):
/// every such series spoke Binance's protocol, so every existing row becomes `binance`,
/// ids unchanged (candles, series, coverage and funding stay keyed by them).
const V3: &str = "
CREATE TABLE symbols_v3 (
    id          INTEGER PRIMARY KEY,
    symbol      TEXT NOT NULL,
    kind        TEXT NOT NULL DEFAULT 'spot',
    exchange    TEXT NOT NULL DEFAULT 'binance',
    base        TEXT,
    quote       TEXT,
    price_scale        INTEGER NOT NULL,
    volume_scale       INTEGER NOT NULL,
    quote_volume_scale INTEGER NOT NULL,
    taker_base_scale   INTEGER NOT NULL,
    taker_quote_scale  INTEGER NOT NULL,
    UNIQUE (exchange, symbol, kind)
);
INSERT INTO symbols_v3 (id, symbol, kind, exchange, base, quote, price_scale, volume_scale,
    quote_volume_scale, taker_base_scale, taker_quote_scale)
    SELECT id, symbol, kind, 'binance', base, quote, price_scale, volume_scale,
    quote_volume_scale, taker_base_scale, taker_quote_scale FROM symbols;
DROP TABLE symbols;
ALTER TABLE symbols_v3 RENAME TO symbols;
";

/// Version 4: a third volume (OKX reports contracts, base and quote volume of a swap;
/// `volume_ccy` keeps its `volCcy`), and a funding event's other fields (OKX's realized
/// rate). Added columns, so no row is rewritten.
const V4: &str = "
ALTER TABLE candles ADD COLUMN volume_ccy INTEGER;
ALTER TABLE symbols ADD COLUMN volume_ccy_scale INTEGER NOT NULL DEFAULT 0;
ALTER TABLE funding ADD COLUMN extra TEXT NOT NULL DEFAULT '';
";

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;

    #[test]
    fn a_version_1_file_keeps_its_symbols_ids_and_candles() {
        let mut c = Connection::open_in_memory().unwrap();
        c.execute_batch(V1).unwrap();
        c.execute_batch(
            "INSERT INTO symbols VALUES (7, 'BTCUSDT', 'binance', 'BTC', 'USDT', 2, 5, 5, 5, 5);
             INSERT INTO candles VALUES (7, '1m', 60000, 1, 2, 0, 1, 9, NULL, NULL, NULL, NULL);
             PRAGMA user_version = 1;",
        )
        .unwrap();
        SCHEMA.migrate(&mut c).unwrap();
        let (id, kind): (i64, String) = c
            .query_row(
                "SELECT id, kind FROM symbols WHERE symbol = 'BTCUSDT'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((id, kind.as_str()), (7, "spot"));
        // The same name as a futures symbol is now a second row.
        c.execute(
            "INSERT INTO symbols (symbol, kind, exchange, price_scale, volume_scale, quote_volume_scale, taker_base_scale, taker_quote_scale) VALUES ('BTCUSDT', 'futures', 'binance', 1, 3, 3, 3, 3)",
            [],
        )
        .unwrap();
        let n: i64 = c
            .query_row(
                "SELECT count(*) FROM candles WHERE symbol_id = 7",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1);
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 4);
    }

    #[test]
    fn a_version_2_file_becomes_binance_with_its_ids_and_bybit_lists_the_same_names() {
        let mut c = Connection::open_in_memory().unwrap();
        c.execute_batch(V1).unwrap();
        c.execute_batch(V2).unwrap();
        c.execute_batch(
            "INSERT INTO symbols VALUES (3, 'BTCUSDT', 'spot', '127.0.0.1', 'BTC', 'USDT', 2, 5, 5, 5, 5);
             INSERT INTO symbols VALUES (4, 'BTCUSDT', 'futures', 'binance', 'BTC', 'USDT', 1, 3, 3, 3, 3);
             INSERT INTO candles VALUES (4, '1h', 3600000, 1, 2, 0, 1, 9, NULL, NULL, NULL, NULL);
             INSERT INTO funding VALUES (4, 28800000, '0.0001', '1');
             INSERT INTO series VALUES (4, '1h', 3600000, 3600000, 1);
             PRAGMA user_version = 2;
             PRAGMA foreign_keys = ON;",
        )
        .unwrap();
        // As the store opens it: foreign keys enforced, `series` pointing at the symbols
        // table the migration rebuilds.
        SCHEMA.migrate(&mut c).unwrap();
        let enforced: bool = c
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert!(enforced, "the connection's setting is restored");
        let series: i64 = c
            .query_row("SELECT count(*) FROM series WHERE symbol_id = 4", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(series, 1);
        let rows: Vec<(i64, String, String)> = c
            .prepare("SELECT id, kind, exchange FROM symbols ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                (3, "spot".into(), "binance".into()),
                (4, "futures".into(), "binance".into())
            ]
        );
        c.execute(
            "INSERT INTO symbols (symbol, kind, exchange, price_scale, volume_scale, quote_volume_scale, taker_base_scale, taker_quote_scale) VALUES ('BTCUSDT', 'futures', 'bybit', 1, 3, 3, 3, 3)",
            [],
        )
        .unwrap();
        let again = c.execute(
            "INSERT INTO symbols (symbol, kind, exchange, price_scale, volume_scale, quote_volume_scale, taker_base_scale, taker_quote_scale) VALUES ('BTCUSDT', 'futures', 'binance', 1, 3, 3, 3, 3)",
            [],
        );
        assert!(again.is_err(), "one row per exchange, name and kind");
        let (candles, funding): (i64, i64) = c
            .query_row(
                "SELECT (SELECT count(*) FROM candles WHERE symbol_id = 4), (SELECT count(*) FROM funding WHERE symbol_id = 4)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((candles, funding), (1, 1));
    }
}
