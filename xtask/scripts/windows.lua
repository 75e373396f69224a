-- wrk script of `cargo xtask bench http`: random, unaligned windows of 1,000 1h candles
-- over a stored span. The chunks are all in memory (read once before the run), but
-- almost every window is a new request, so the response cache misses: this measures
-- answers assembled from cached chunks.
-- Arguments after `--`: json | csv | klines (Binance's route, what ccxt and freqtrade
-- page with), the symbol, and the span's length in hours from 2020-01-01.

local FIRST = 1577836800000
local HOUR = 3600000
local kind, symbol, span = "json", "BTCUSDT", 16000

function init(args)
  kind = args[1] or kind
  symbol = args[2] or symbol
  span = tonumber(args[3]) or span
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end

function request()
  local start = FIRST + math.random(0, span - 1000) * HOUR + math.random(0, HOUR - 1)
  local path
  if kind == "klines" then
    path = "/api/v3/klines?symbol=" .. symbol .. "&interval=1h&startTime=" .. start ..
      "&limit=1000"
  else
    path = "/api/crypto/ohlc?symbol=" .. symbol .. "&timeframe=1h&start=" .. start ..
      "&end=" .. (start + 1000 * HOUR)
    if kind == "csv" then
      path = path .. "&format=csv"
    end
  end
  return wrk.format("GET", path)
end
