-- wrk script of `cargo xtask soak`: a mixed workload over 1M generated BTCUSDT 1m candles
-- (2020-01-01 onwards): cached hits, misses, resamples, Arrow and CSV, Binance klines and
-- bad requests, counted by status class per thread and reported as one JSON line.

local FIRST = 1577836800000
local MINUTE = 60000
local ROWS = 1000000

local hits = {
  "/api/crypto/ohlc?symbol=BTCUSDT&timeframe=1h&start=1586476800000&end=1590076800000",
  "/api/crypto/ohlc?symbol=BTCUSDT&timeframe=1d&start=1577836800000",
  "/api/crypto/ohlc?symbol=BTCUSDT&timeframe=1w",
  "/api/crypto/ohlc?symbol=BTCUSDT&timeframe=4h&limit=500&format=csv",
  "/api/crypto/markets",
  "/api/v3/klines?symbol=BTCUSDT&interval=1h&startTime=1580000000000&limit=1000",
  "/api/v3/exchangeInfo",
  "/healthz",
}
local bad = {
  "/api/crypto/ohlc?symbol=BTCUSDT&timeframe=7x",
  "/api/crypto/ohlc?symbol=NOPE&timeframe=1m",
  "/api/crypto/ohlc?symbol=BTCUSDT&timeframe=1m&limit=0",
  "/api/crypto/ohlc?symbol=BTCUSDT%27%3B--&timeframe=1m",
  "/api/crypto/ohlc?symbol=BTCUSDT&symbol=ETHUSDT&timeframe=1m",
  "/api/v3/klines?symbol=BTCUSDT&interval=1m&startTime=abc",
  "/../../etc/passwd",
  "/nope",
}
local tfs = { "5m", "15m", "1h", "4h", "1d", "1w" }
local formats = { "arrow", "csv" }

local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(id * 7919)
  s2, s3, s4, s5 = 0, 0, 0, 0
end

local function random_start(span)
  return FIRST + math.random(0, ROWS - span) * MINUTE
end

function request()
  local r = math.random(100)
  local path
  if r <= 40 then
    path = hits[math.random(#hits)]
  elseif r <= 65 then
    path = string.format("/api/crypto/ohlc?symbol=BTCUSDT&timeframe=1m&start=%d&limit=500", random_start(500))
  elseif r <= 80 then
    local tf = tfs[math.random(#tfs)]
    path = string.format("/api/crypto/ohlc?symbol=BTCUSDT&timeframe=%s&start=%d&limit=300", tf, random_start(20000))
  elseif r <= 90 then
    local f = formats[math.random(#formats)]
    path = string.format("/api/crypto/ohlc?symbol=BTCUSDT&timeframe=1m&start=%d&limit=1000&format=%s", random_start(1000), f)
  else
    path = bad[math.random(#bad)]
  end
  return wrk.format("GET", path)
end

function response(status, headers, body)
  if status >= 500 then s5 = s5 + 1
  elseif status >= 400 then s4 = s4 + 1
  elseif status >= 300 then s3 = s3 + 1
  else s2 = s2 + 1 end
end

function done(summary, latency, requests)
  local t = { s2 = 0, s3 = 0, s4 = 0, s5 = 0 }
  for _, thread in ipairs(threads) do
    for k, _ in pairs(t) do t[k] = t[k] + thread:get(k) end
  end
  local e = summary.errors
  io.write(string.format(
    'SOAK {"requests": %d, "duration_s": %.3f, "ok": %d, "redirect": %d, "client_error": %d, "server_error": %d, ' ..
    '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d, "status_errors": %d, ' ..
    '"p50_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}\n',
    summary.requests, summary.duration / 1e6, t.s2, t.s3, t.s4, t.s5,
    e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
