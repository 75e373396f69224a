"""DuckDB reading a candlecache SQLite file: the same range as market-cache's range bench,
as an Arrow table with the same columns (prices and volumes divided by their scales).

Usage: duckdb_range.py DB SYMBOL TIMEFRAME START END REPEAT [PARQUET]   -> one JSON line
With PARQUET, DuckDB reads the same range from that Parquet export instead (read_parquet).
"""
import json
import os
import sqlite3
import sys
import time

import duckdb


def main():
    db, symbol, tf, start, end, repeat = sys.argv[1:7]
    start, end, repeat = int(start), int(end), int(repeat)
    with sqlite3.connect(db) as c:
        sid, *scales = c.execute(
            "SELECT id, price_scale, volume_scale, quote_volume_scale, taker_base_scale, taker_quote_scale "
            "FROM symbols WHERE symbol = ?", (symbol,)).fetchone()
    p, v, q, tb, tq = (10 ** s for s in scales)
    cfg = {"autoinstall_known_extensions": False}
    try:  # the duckdb-ext-sqlite package ships the sqlite scanner (no network needed)
        import duckdb_ext
        cfg["extension_directory"] = os.path.join(list(duckdb_ext.__path__)[0], "extensions")
    except ImportError:
        pass
    con = duckdb.connect(config=cfg)
    con.sql("LOAD sqlite")
    sql = (f"SELECT open_time AS time, open / {p} AS open, high / {p} AS high, low / {p} AS low, "
           f"close / {p} AS close, volume / {v} AS volume, quote_volume / {q} AS quote_volume, "
           f"CAST(trades AS UBIGINT) AS trades, taker_base / {tb} AS taker_buy_base, "
           f"taker_quote / {tq} AS taker_buy_quote "
           f"FROM sqlite_scan('{db}', 'candles') WHERE symbol_id = {sid} AND timeframe = '{tf}' "
           f"AND open_time >= {start} AND open_time < {end} ORDER BY open_time")
    if len(sys.argv) > 7:
        sql = (f"SELECT * FROM read_parquet('{sys.argv[7]}') WHERE time >= epoch_ms({start}) "
               f"AND time < epoch_ms({end}) ORDER BY time")
    secs, rows = [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        table = con.sql(sql).fetch_arrow_table()
        secs.append(time.perf_counter() - t)
        rows = table.num_rows
    print(json.dumps({"rows": rows, "seconds": secs, "duckdb": duckdb.__version__}))


if __name__ == "__main__":
    main()
