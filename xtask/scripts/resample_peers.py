"""polars and pandas resampling the same Binance 1m CSV as market-cache's resample bench,
timed from data in memory, and checked equal to candlecache's output files.

Usage: resample_peers.py CSV OUTDIR REPEAT   -> one JSON line
"""
import json
import statistics
import sys
import time

import numpy as np
import pandas as pd
import polars as pl

COLS = ["open_time", "open", "high", "low", "close", "volume", "close_time", "qav", "trades", "tbb", "tbq", "ignore"]


def timed(f, repeat):
    secs, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        secs.append(time.perf_counter() - t)
    return statistics.median(secs), out


def main():
    csv, out, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
    m = pl.read_csv(csv, has_header=False, new_columns=COLS, schema_overrides={"ignore": pl.Utf8})
    m = m.with_columns(pl.from_epoch("open_time", time_unit="ms").dt.replace_time_zone("UTC").alias("dt")).sort("dt")
    aggs = [pl.col("open").first(), pl.col("high").max(), pl.col("low").min(), pl.col("close").last(), pl.col("volume").sum()]
    res = {"polars": pl.__version__, "pandas": pd.__version__}
    pdf = m.select("dt", "open", "high", "low", "close", "volume").to_pandas().set_index("dt")
    how = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    for name, every, start_by, rule in [("1h", "1h", "window", "1h"), ("1w", "1w", "monday", "W-MON")]:
        s, p = timed(lambda: m.group_by_dynamic("dt", every=every, start_by=start_by, closed="left", label="left").agg(aggs), repeat)
        res[f"polars_{name}"] = s
        s2, q = timed(lambda: pdf.resample(rule, closed="left", label="left").agg(how).dropna(subset=["open"]), repeat)
        res[f"pandas_{name}"] = s2
        ours = pl.read_csv(f"{out}/ours-{name}.csv")
        p_ms = p["dt"].dt.epoch("ms").to_numpy()
        same = (len(ours) == len(p) == len(q)
                and np.array_equal(ours["time"].to_numpy(), p_ms)
                and np.array_equal(ours["time"].to_numpy(), q.index.as_unit("ms").asi8)
                and all(np.allclose(ours[c].to_numpy(), p[c].to_numpy(), rtol=1e-12) for c in ["open", "high", "low", "close", "volume"])
                and all(np.allclose(ours[c].to_numpy(), q[c].to_numpy(), rtol=1e-12) for c in ["open", "high", "low", "close", "volume"]))
        res[f"equal_{name}"] = bool(same)
        res[f"rows_{name}"] = len(p)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
