"""ccxt's okx client with only `urls.api.rest` pointed at candlecache (markets restricted
to spot and swap): load_markets, three pages of fetch_ohlcv with `since` on spot and on
the perpetual swap, from a range older than OKX's recent 1,440 candles (ccxt then asks
history-candles) and from a recent one (candles), fetch_ohlcv with params={"price":
"mark"}, and fetch_funding_rate_history, each compared row for row with the same calls
made directly against the exchange (closed candles: the forming one moves).

Then ccxt pro's okx with `urls.api.ws` pointed at candlecache too: watch_ohlcv on 1m for
SECONDS on each (ccxt pro asks `/business` for candle channels); every candle's open must
be the exchange's.

usage: ccxt_okx_check.py BASE_URL EXCHANGE_URL SPOT_ID SINCE_MS WS_BASE SECONDS
Prints one JSON line with what it compared; exits 1 on any mismatch.
"""

import asyncio
import json
import sys
import time

import ccxt
import ccxt.pro as ccxtpro

base, exchange_url, spot_id, since = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ws_base, seconds = sys.argv[5], float(sys.argv[6])
OPTIONS = {"fetchMarkets": {"types": ["spot", "swap"]}, "fetchCurrencies": False}
HOUR = 3_600_000


def client(url):
    ex = ccxt.okx({"enableRateLimit": False, "options": dict(OPTIONS)})
    # The only change: where the REST API lives.
    ex.urls["api"]["rest"] = url
    return ex


def pages(ex, symbol, params, start, n, limit):
    rows, at = [], start
    for _ in range(n):
        page = ex.fetch_ohlcv(symbol, "1h", since=at, limit=limit, params=params)
        if not page:
            break
        rows += page
        at = page[-1][0] + 1
    now = int(time.time() * 1000)
    return [r for r in rows if r[0] + HOUR <= now - 5_000]


ours, theirs = client(base), client(exchange_url)
markets = ours.load_markets()
spot = next(s for s, m in markets.items() if m["id"] == spot_id)
swap = next(s for s, m in markets.items() if m["id"] == spot_id + "-SWAP")
problems = []
if sorted(markets) != sorted(theirs.load_markets()):
    problems.append("the markets differ from the exchange's")

recent = (int(time.time() * 1000) // HOUR - 700) * HOUR
compared = {}
for name, symbol, params, start, limit in [
    ("spot_history", spot, {}, since, 300),
    ("spot_recent", spot, {}, recent, 300),
    ("swap_history", swap, {}, since, 300),
    ("mark_history", swap, {"price": "mark"}, since, 100),
]:
    got, want = pages(ours, symbol, params, start, 3, limit), pages(theirs, symbol, params, start, 3, limit)
    compared[name] = len(got)
    if len(got) < 2 * limit:
        problems.append(f"{name}: only {len(got)} candles in three pages")
    if got != want:
        diff = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        problems.append(f"{name}: row {diff} differs: {got[diff:diff+1]} vs {want[diff:diff+1]}")

fund = ours.fetch_funding_rate_history(swap, since=since, limit=100)
want = theirs.fetch_funding_rate_history(swap, since=since, limit=100)
strip = lambda rows: [(r["timestamp"], r["fundingRate"], r["info"]) for r in rows]
compared["funding"] = len(fund)
if not fund or strip(fund) != strip(want):
    problems.append(f"funding differs: {len(fund)} vs {len(want)} rows")


async def watch(symbol):
    ex = ccxtpro.okx({"options": dict(OPTIONS)})
    ex.urls["api"]["rest"] = base
    ex.urls["api"]["ws"] = ws_base + "/ws/v5"
    updates, opens = 0, {}
    try:
        await ex.load_markets()
        started = time.time()
        while time.time() - started < seconds:
            candles = await asyncio.wait_for(ex.watch_ohlcv(symbol, "1m"), timeout=10)
            updates += 1
            for c in candles:
                opens[c[0]] = c[1]
    finally:
        await ex.close()
    return updates, opens


for name, symbol in [("spot", spot), ("swap", swap)]:
    updates, opens = asyncio.run(watch(symbol))
    compared[f"watched_{name}"] = updates
    if updates < 3:
        problems.append(f"watch_ohlcv {name}: {updates} updates in {seconds} s")
    for t, o in opens.items():
        want = theirs.fetch_ohlcv(symbol, "1m", since=t, limit=1)
        if not want or want[0][0] != t or want[0][1] != o:
            problems.append(f"watch_ohlcv {name}: the candle of {t} opened at {o}, the exchange says {want[:1]}")

print(json.dumps({"spot": spot, "swap": swap, "compared": compared, "problems": problems}))
sys.exit(1 if problems else 0)
