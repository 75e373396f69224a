"""ccxt's bybit client with only `urls.api` pointed at candlecache (markets restricted to
spot and linear): load_markets, three pages of fetch_ohlcv with `since` on spot and on the
linear perpetual, fetch_ohlcv with params={"price": "mark"}, and
fetch_funding_rate_history, each compared row for row with the same calls made directly
against the exchange.

Then ccxt pro's bybit with `urls.api.ws.public.spot|linear` pointed at candlecache too:
watch_ohlcv on 1m for SECONDS on each; every candle's open must be the exchange's.

usage: ccxt_bybit_check.py BASE_URL EXCHANGE_URL MARKET_ID SINCE_MS WS_BASE SECONDS
Prints one JSON line with what it compared; exits 1 on any mismatch.
"""

import asyncio
import json
import sys
import time

import ccxt
import ccxt.pro as ccxtpro

base, exchange_url, market_id, since = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ws_base, seconds = sys.argv[5], float(sys.argv[6])
OPTIONS = {"fetchMarkets": {"types": ["spot", "linear"]}, "fetchCurrencies": False}


def point(ex, url):
    # The only change: where the REST API lives.
    for k in ("spot", "futures", "v2", "public", "private"):
        ex.urls["api"][k] = url
    return ex


def client(url):
    return point(ccxt.bybit({"enableRateLimit": False, "options": dict(OPTIONS)}), url)


def pages(ex, symbol, params, n, limit=1000):
    rows, at = [], since
    for _ in range(n):
        page = ex.fetch_ohlcv(symbol, "1h", since=at, limit=limit, params=params)
        if not page:
            break
        rows += page
        at = page[-1][0] + 1
    return rows


ours, theirs = client(base), client(exchange_url)
markets = ours.load_markets()
spot = next(s for s, m in markets.items() if m["id"] == market_id and m["spot"])
swap = next(s for s, m in markets.items() if m["id"] == market_id and m["swap"])
problems = []
if sorted(markets) != sorted(theirs.load_markets()):
    problems.append("the markets differ from the exchange's")

compared = {}
for name, symbol, params in [("spot", spot, {}), ("linear", swap, {}), ("mark", swap, {"price": "mark"})]:
    got, want = pages(ours, symbol, params, 3), pages(theirs, symbol, params, 3)
    compared[name] = len(got)
    if len(got) < 2500:
        problems.append(f"{name}: only {len(got)} candles in three pages")
    if got != want:
        diff = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        problems.append(f"{name}: row {diff} differs: {got[diff:diff+1]} vs {want[diff:diff+1]}")

fund = ours.fetch_funding_rate_history(swap, since=since, limit=200)
want = theirs.fetch_funding_rate_history(swap, since=since, limit=200)
strip = lambda rows: [(r["timestamp"], r["fundingRate"]) for r in rows]
compared["funding"] = len(fund)
if not fund or strip(fund) != strip(want):
    problems.append(f"funding differs: {len(fund)} vs {len(want)} rows")


async def watch(symbol):
    ex = point(ccxtpro.bybit({"options": dict(OPTIONS)}), base)
    ex.urls["api"]["ws"]["public"]["spot"] = ws_base + "/v5/public/spot"
    ex.urls["api"]["ws"]["public"]["linear"] = ws_base + "/v5/public/linear"
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


for name, symbol in [("spot", spot), ("linear", swap)]:
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
