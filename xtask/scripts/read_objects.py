"""DuckDB (httpfs from PyPI, no download at run time) or polars reads the candles
instances wrote to an S3-compatible store, in place, and times it.

usage: read_objects.py duckdb|polars ENDPOINT BUCKET_PREFIX SYMBOL TIMEFRAME START_MS END_MS
Prints one JSON line: rows [[ms, o, h, l, c, v], ...] of the range and the seconds the
query took (best of 3, a fresh connection each time so nothing is cached).
"""

import json
import os
import sys
import time

engine, endpoint, prefix, symbol, tf, start, end = sys.argv[1:8]
start, end = int(start), int(end)
glob = f"s3://{prefix}/**/*.parquet"


def duckdb_query():
    import duckdb
    import duckdb_ext

    con = duckdb.connect(
        config={
            "autoinstall_known_extensions": False,
            "extension_directory": os.path.join(list(duckdb_ext.__path__)[0], "extensions"),
        }
    )
    con.execute("LOAD httpfs")
    host = endpoint.split("://", 1)[1]
    con.execute(
        f"CREATE SECRET s3 (TYPE S3, KEY_ID 'test', SECRET 'test', REGION 'us-east-1', "
        f"ENDPOINT '{host}', URL_STYLE 'path', USE_SSL false)"
    )
    t = time.perf_counter()
    rows = con.execute(
        f"""SELECT epoch_ms(time), open, high, low, close, volume
            FROM read_parquet('{glob}', hive_partitioning = true)
            WHERE symbol = ? AND timeframe = ? AND time >= make_timestamp(? * 1000)
              AND time < make_timestamp(? * 1000)
            ORDER BY time""",
        [symbol, tf, start, end],
    ).fetchall()
    return time.perf_counter() - t, [list(r) for r in rows]


def polars_query():
    import polars as pl

    options = {
        "aws_endpoint_url": endpoint,
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
        "aws_region": "us-east-1",
        "aws_allow_http": "true",
    }
    t = time.perf_counter()
    ms = pl.col("time").dt.epoch("ms")
    df = (
        pl.scan_parquet(glob, hive_partitioning=True, storage_options=options)
        .filter(
            (pl.col("symbol") == symbol)
            & (pl.col("timeframe") == tf)
            & (ms >= start)
            & (ms < end)
        )
        .select(ms.alias("t"), "open", "high", "low", "close", "volume")
        .sort("t")
        .collect()
    )
    return time.perf_counter() - t, [list(r) for r in df.iter_rows()]


query = {"duckdb": duckdb_query, "polars": polars_query}[engine]
best, rows = min((query() for _ in range(3)), key=lambda r: r[0])
print(json.dumps({"seconds": best, "rows": rows}))
