"""ccxt's binanceusdm client with only `urls.api.fapiPublic` pointed at candlecache:
load_markets, fetch_ohlcv paging (1h, three pages of 1500), fetch_ohlcv with
params={"price": "mark"}, and fetch_funding_rate_history, each compared row for row with
the same calls made directly against the exchange.

Then ccxt pro's binanceusdm with `urls.api.ws.linear` pointed at candlecache too:
watch_ohlcv on 1m for SECONDS (ccxt connects to /market/ws/<n>); every update's open must
be the exchange's.

usage: ccxt_usdm_check.py BASE_URL EXCHANGE_URL MARKET_ID SINCE_MS WS_BASE SECONDS
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


def client(url):
    ex = ccxt.binanceusdm(
        {
            "enableRateLimit": False,
            "options": {"fetchMarkets": {"types": ["linear"]}, "fetchCurrencies": False},
        }
    )
    # The only change: where the public futures API lives.
    ex.urls["api"]["fapiPublic"] = url + "/fapi/v1"
    return ex


def pages(ex, symbol, params, n):
    rows, at = [], since
    for _ in range(n):
        page = ex.fetch_ohlcv(symbol, "1h", since=at, limit=1500, params=params)
        if not page:
            break
        rows += page
        at = page[-1][0] + 1
    return rows


ours, theirs = client(base), client(exchange_url)
markets = ours.load_markets()
symbol = next(s for s, m in markets.items() if m["id"] == market_id)
problems = []
if markets[symbol]["type"] != "swap" or not markets[symbol]["linear"]:
    problems.append(f"{symbol} is not a linear swap: {markets[symbol]['type']}")
if sorted(markets) != sorted(theirs.load_markets()):
    problems.append("the markets differ from the exchange's")

compared = {}
for name, params in [("trade", {}), ("mark", {"price": "mark"})]:
    got, want = pages(ours, symbol, params, 3), pages(theirs, symbol, params, 3)
    compared[name] = len(got)
    if len(got) < 3000:
        problems.append(f"{name}: only {len(got)} candles in three pages")
    if got != want:
        diff = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        problems.append(f"{name}: row {diff} differs: {got[diff:diff+1]} vs {want[diff:diff+1]}")

fund = ours.fetch_funding_rate_history(symbol, since=since, limit=1000)
want = theirs.fetch_funding_rate_history(symbol, since=since, limit=1000)
strip = lambda rows: [(r["timestamp"], r["fundingRate"], r["info"].get("markPrice")) for r in rows]
compared["funding"] = len(fund)
if not fund or strip(fund) != strip(want):
    problems.append(f"funding differs: {len(fund)} vs {len(want)} rows")



async def watch():
    ex = ccxtpro.binanceusdm(
        {"options": {"fetchMarkets": {"types": ["linear"]}, "fetchCurrencies": False}}
    )
    ex.urls["api"]["fapiPublic"] = base + "/fapi/v1"
    ex.urls["api"]["ws"]["linear"] = ws_base + "/ws"
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


updates, opens = asyncio.run(watch())
compared["watched_updates"] = updates
if updates < 3:
    problems.append(f"watch_ohlcv: {updates} updates in {seconds} s")
for t, o in opens.items():
    want = theirs.fetch_ohlcv(symbol, "1m", since=t, limit=1)
    if not want or want[0][0] != t or want[0][1] != o:
        problems.append(f"watch_ohlcv: the candle of {t} opened at {o}, the exchange says {want[:1]}")

print(json.dumps({"symbol": symbol, "compared": compared, "problems": problems}))
sys.exit(1 if problems else 0)
