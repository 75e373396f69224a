"""ccxt pro's binance client pointed at candlecache's served streams: watch_ohlcv on 1s
candles for SECONDS, then every candle it saw close is checked against candlecache's REST
answer and the exchange's own.

usage: ccxt_pro_check.py BASE_URL WS_BASE EXCHANGE_URL MARKET_ID SECONDS
Prints one JSON line with what it saw; exits 1 on any mismatch.
"""

import asyncio
import json
import sys
import time
import urllib.request

import ccxt
import ccxt.pro as ccxtpro

base, ws_base, exchange_url, market_id, seconds = (
    sys.argv[1],
    sys.argv[2],
    sys.argv[3],
    sys.argv[4],
    float(sys.argv[5]),
)


def rest_rows(url_base, t0, t1):
    url = f"{url_base}/api/v3/klines?symbol={market_id}&interval=1s&startTime={t0}&endTime={t1}&limit=1000"
    with urllib.request.urlopen(url) as r:
        return {row[0]: [row[0]] + [float(x) for x in row[1:6]] for row in json.load(r)}


async def main():
    exchange = ccxtpro.binance(
        {
            "enableRateLimit": False,
            "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False},
        }
    )
    # The only changes: the REST base and the stream base.
    exchange.urls["api"]["public"] = base + "/api/v3"
    exchange.urls["api"]["ws"]["spot"] = ws_base + "/ws"
    try:
        markets = await exchange.load_markets()
        symbol = next(s for s, m in markets.items() if m["id"] == market_id)
        seen = {}
        updates = 0
        started = time.time()
        first_update_s = None
        while time.time() - started < seconds:
            candles = await asyncio.wait_for(exchange.watch_ohlcv(symbol, "1s"), 10)
            if first_update_s is None:
                first_update_s = time.time() - started
            updates += 1
            for c in candles:
                seen[c[0]] = [c[0]] + [float(x) for x in c[1:6]]
    finally:
        await exchange.close()
    newest = max(seen)
    closed = sorted(t for t in seen if t < newest)
    problems = []
    if updates < seconds * 2:
        problems.append(f"only {updates} updates in {seconds} s")
    if len(closed) < seconds - 3:
        problems.append(f"only {len(closed)} closed candles in {seconds} s")
    time.sleep(1.5)
    ours = rest_rows(base, closed[0], closed[-1])
    theirs = rest_rows(exchange_url, closed[0], closed[-1])
    for t in closed:
        if seen[t] != ours.get(t):
            problems.append(f"candle {t}: ccxt pro {seen[t]} vs candlecache REST {ours.get(t)}")
        if seen[t] != theirs.get(t):
            problems.append(f"candle {t}: ccxt pro {seen[t]} vs the exchange {theirs.get(t)}")
    print(
        json.dumps(
            {
                "ccxt": ccxt.__version__,
                "symbol": symbol,
                "updates": updates,
                "first_update_s": round(first_update_s or -1, 3),
                "closed_candles": len(closed),
                "problems": problems[:5],
            }
        )
    )
    return 1 if problems else 0


sys.exit(asyncio.run(main()))
