-- wrk script of `cargo xtask bench http`: as windows.lua, through Binance's klines route
-- (the path ccxt and freqtrade page with): random, unaligned windows of 1,000 1h candles
-- over the first 16,000 hours of the generated BTCUSDT series (1M 1m candles make 16,666). The chunks are all in
-- memory (read once before the run), but almost every window is a new request, so the
-- response cache misses: this measures answers assembled from cached chunks.

local FIRST = 1577836800000
local HOUR = 3600000
local SPAN = 16000 - 1000

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end

function request()
  local start = FIRST + math.random(0, SPAN) * HOUR + math.random(0, HOUR - 1)
  local path = "/api/v3/klines?symbol=BTCUSDT&interval=1h&startTime=" .. start ..
    "&limit=1000"
  return wrk.format("GET", path)
end
