//! The versioned schema. Each migration moves `PRAGMA user_version` up by one.

use rusqlite::Connection;

use crate::{Error, Result};

/// The schema version this build creates and understands.
pub const SCHEMA_VERSION: i64 = 1;

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

/// Brings the schema to [`SCHEMA_VERSION`] inside one transaction.
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    let unusable = |e: rusqlite::Error| Error::Unusable(e.to_string());
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(unusable)?;
    if found > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction().map_err(unusable)?;
    if found < 1 {
        tx.execute_batch(V1).map_err(unusable)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(unusable)?;
    tx.commit().map_err(unusable)
}
