"""DuckDB (httpfs from PyPI, no download at run time) reads the candles instances wrote to
an S3-compatible store, in place, and times it.

usage: duckdb_objects.py ENDPOINT BUCKET_PREFIX SYMBOL TIMEFRAME START_MS END_MS
Prints one JSON line: rows [[ms, o, h, l, c, v], ...] of the range and the seconds the
query took (best of 3, a fresh connection each time so nothing is cached).
"""

import json
import os
import sys
import time

import duckdb
import duckdb_ext

endpoint, prefix, symbol, tf, start, end = sys.argv[1:7]
start, end = int(start), int(end)
cfg = {
    "autoinstall_known_extensions": False,
    "extension_directory": os.path.join(list(duckdb_ext.__path__)[0], "extensions"),
}


def query():
    con = duckdb.connect(config=cfg)
    con.execute("LOAD httpfs")
    host = endpoint.split("://", 1)[1]
    con.execute(
        f"CREATE SECRET s3 (TYPE S3, KEY_ID 'test', SECRET 'test', REGION 'us-east-1', "
        f"ENDPOINT '{host}', URL_STYLE 'path', USE_SSL false)"
    )
    t = time.perf_counter()
    rows = con.execute(
        f"""SELECT epoch_ms(time), open, high, low, close, volume
            FROM read_parquet('s3://{prefix}/**/*.parquet', hive_partitioning = true)
            WHERE symbol = ? AND timeframe = ? AND time >= make_timestamp(? * 1000)
              AND time < make_timestamp(? * 1000)
            ORDER BY time""",
        [symbol, tf, start, end],
    ).fetchall()
    return time.perf_counter() - t, rows


best, rows = min((query() for _ in range(3)), key=lambda r: r[0])
print(json.dumps({"seconds": best, "rows": [list(r) for r in rows]}))
