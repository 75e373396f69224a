"""ccxt's binance client pointed at candlecache: load markets, then page through weeks of
1h candles with fetch_ohlcv, and check them against candlecache's own /api/crypto/ohlc.

usage: ccxt_check.py BASE_URL SYMBOL SINCE_MS UNTIL_MS
Prints one JSON line with what it saw; exits 1 on any mismatch.
"""

import json
import sys
import urllib.request

import ccxt

base, market_id, since, until = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

exchange = ccxt.binance(
    {
        "enableRateLimit": False,
        # Only spot markets: the futures hosts (fapi/dapi) are a different API candlecache
        # does not serve; currencies need an API key.
        "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False},
    }
)
# The one change: the public REST base URL.
exchange.urls["api"]["public"] = base + "/api/v3"

markets = exchange.load_markets()
symbol = next(s for s, m in markets.items() if m["id"] == market_id)

rows = []
cursor = since
pages = 0
while cursor < until:
    page = exchange.fetch_ohlcv(symbol, "1h", since=cursor, limit=500)
    pages += 1
    page = [r for r in page if r[0] < until]
    if not page:
        break
    rows.extend(page)
    cursor = page[-1][0] + 3600_000

problems = []
times = [r[0] for r in rows]
if len(set(times)) != len(times):
    problems.append("duplicate candles")
if times != sorted(times):
    problems.append("candles out of order")

url = f"{base}/api/crypto/ohlc?symbol={market_id}&timeframe=1h&start={since}&end={until}&limit=100000"
with urllib.request.urlopen(url) as r:
    ours = json.load(r)["data"]["rows"]
if len(ours) != len(rows):
    problems.append(f"ccxt saw {len(rows)} candles, /api/crypto/ohlc has {len(ours)}")
for a, b in zip(rows, ours):
    if [a[0]] + [float(x) for x in a[1:6]] != [b[0]] + [float(x) for x in b[1:6]]:
        problems.append(f"candle {a[0]} differs: ccxt {a} vs {b}")
        break

print(
    json.dumps(
        {
            "ccxt": ccxt.__version__,
            "markets": len(markets),
            "symbol": symbol,
            "pages": pages,
            "candles": len(rows),
            "first": times[0] if times else None,
            "last": times[-1] if times else None,
            "problems": problems,
        }
    )
)
sys.exit(1 if problems else 0)
