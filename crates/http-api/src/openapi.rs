//! The OpenAPI 3.1 document of the routes this server has today.

/// `/openapi.json`.
pub(crate) const DOCUMENT: &str = r##"{
  "openapi": "3.1.0",
  "info": {"title": "candlecache", "version": "0.1.0", "description": "Historical market candles (OHLCV), served from memory."},
  "components": {
    "schemas": {
      "Error": {"type": "object", "required": ["success", "error", "timestamp"], "properties": {
        "success": {"const": false},
        "error": {"type": "object", "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
        "timestamp": {"type": "string", "format": "date-time"}}}
    },
    "responses": {
      "BadRequest": {"description": "Invalid parameter", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "NotFound": {"description": "Unknown symbol or path", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "MethodNotAllowed": {"description": "Wrong method", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "Unauthorized": {"description": "Bearer token missing or wrong", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "PayloadTooLarge": {"description": "Body over 64 KiB", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "UriTooLong": {"description": "URL over 8 KiB", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "HeadersTooLarge": {"description": "Request head over 64 KiB (with the error envelope; heads of several hundred KB are refused by the HTTP layer, without one)"}
    }
  },
  "paths": {
    "/api/crypto/ohlc": {"get": {
      "summary": "Candles of one series; start <= open time < end",
      "parameters": [
        {"name": "symbol", "in": "query", "required": true, "schema": {"type": "string", "pattern": "^[A-Za-z0-9]{1,32}$"}},
        {"name": "timeframe", "in": "query", "required": true, "schema": {"enum": ["1s","1m","3m","5m","15m","30m","1h","2h","4h","6h","8h","12h","1d","3d","1w","1M"]}},
        {"name": "start", "in": "query", "description": "epoch ms or RFC 3339; without it the latest `limit` candles before `end` (or now, the forming one last); must be before `end` (400 otherwise)", "schema": {"anyOf": [{"type": "string", "pattern": "^[0-9]{1,13}$"}, {"type": "string", "format": "date-time"}]}},
        {"name": "end", "in": "query", "description": "epoch ms or RFC 3339, exclusive; default now", "schema": {"anyOf": [{"type": "string", "pattern": "^[0-9]{1,13}$"}, {"type": "string", "format": "date-time"}]}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 10000}},
        {"name": "format", "in": "query", "schema": {"enum": ["json", "csv", "arrow"], "default": "json"}},
        {"name": "fill", "in": "query", "schema": {"enum": ["none", "previous"], "default": "none"}},
        {"name": "exchange", "in": "query", "schema": {"enum": ["binance", "bybit"], "default": "binance", "description": "part of the series' identity: a Binance and a Bybit BTCUSDT are two series"}},
        {"name": "market", "in": "query", "schema": {"enum": ["spot", "futures"], "default": "spot", "description": "futures: Binance USD-M (/fapi/v1), Bybit linear perpetuals"}},
        {"name": "price", "in": "query", "schema": {"enum": ["trade", "mark"], "default": "trade", "description": "mark: the futures mark price (only with market=futures)"}}
      ],
      "responses": {
        "200": {"description": "Candles", "content": {"application/json": {}, "text/csv": {}, "application/vnd.apache.arrow.stream": {}}},
        "400": {"$ref": "#/components/responses/BadRequest"},
        "404": {"$ref": "#/components/responses/NotFound"},
        "405": {"$ref": "#/components/responses/MethodNotAllowed"},
        "413": {"$ref": "#/components/responses/PayloadTooLarge"},
        "414": {"$ref": "#/components/responses/UriTooLong"},
        "431": {"$ref": "#/components/responses/HeadersTooLarge"}
      }}},
    "/api/crypto/markets": {"get": {"summary": "Stored series, each with its exchange", "parameters": [{"name": "exchange", "in": "query", "schema": {"enum": ["binance", "bybit"]}, "description": "only this exchange's series"}], "responses": {"200": {"description": "Markets"}, "400": {"description": "Unknown exchange"}, "405": {"$ref": "#/components/responses/MethodNotAllowed"}}}},
    "/api/v3/klines": {"get": {"summary": "Binance-compatible candles: 12-field rows, decimal strings, startTime <= openTime <= endTime",
      "parameters": [
        {"name": "symbol", "in": "query", "required": true, "schema": {"type": "string", "pattern": "^[A-Za-z0-9-_.]{1,20}$"}},
        {"name": "interval", "in": "query", "required": true, "schema": {"type": "string", "enum": ["1s","1m","3m","5m","15m","30m","1h","2h","4h","6h","8h","12h","1d","3d","1w","1M"]}},
        {"name": "startTime", "in": "query", "description": "empty is absent, as Binance reads it", "schema": {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "maxLength": 0}]}},
        {"name": "endTime", "in": "query", "description": "empty is absent, as Binance reads it", "schema": {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "maxLength": 0}]}},
        {"name": "limit", "in": "query", "description": "empty is absent, as Binance reads it", "schema": {"anyOf": [{"type": "integer", "minimum": 1, "default": 500, "description": "larger values are served as 1000, as Binance does"}, {"type": "string", "maxLength": 0}]}},
        {"name": "timeZone", "in": "query", "schema": {"type": "string", "enum": ["0", "+00:00"]}}],
      "responses": {"200": {"description": "Rows [openTime, open, high, low, close, volume, closeTime, quoteVolume, trades, takerBase, takerQuote, \"0\"]"},
        "400": {"description": "Binance error body {code, msg}"}, "502": {"description": "Upstream failed"}, "504": {"description": "Upstream timed out"}}}},
    "/api/v3/exchangeInfo": {"get": {"summary": "Passed through to the upstream and cached, or built from the stored symbols",
      "parameters": [{"name": "symbol", "in": "query", "schema": {"type": "string", "pattern": "^[A-Za-z0-9-_.]{1,20}$"}}, {"name": "symbols", "in": "query", "schema": {"type": "string", "description": "a JSON array of symbols", "pattern": "^\\[(\"[A-Za-z0-9-_.]{1,20}\"(,\"[A-Za-z0-9-_.]{1,20}\")*)?\\]$"}}],
      "responses": {"200": {"description": "Exchange information"}, "400": {"description": "Binance error body {code, msg}"}}}},
    "/api/v3/time": {"get": {"summary": "The server's clock", "responses": {"200": {"description": "{serverTime}"}}}},
    "/api/v3/ping": {"get": {"summary": "Connectivity", "responses": {"200": {"description": "{}"}}}},
    "/fapi/v1/klines": {"get": {"summary": "Binance USD-M futures candles: as /api/v3/klines with limit at most 1500, no 1s, prices and volumes at the symbol's own precision",
      "parameters": [
        {"name": "symbol", "in": "query", "required": true, "schema": {"type": "string", "pattern": "^[A-Za-z0-9-_.]{1,20}$"}},
        {"name": "interval", "in": "query", "required": true, "schema": {"type": "string", "enum": ["1m","3m","5m","15m","30m","1h","2h","4h","6h","8h","12h","1d","3d","1w","1M"]}},
        {"name": "startTime", "in": "query", "description": "empty is absent, as Binance reads it", "schema": {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "maxLength": 0}]}},
        {"name": "endTime", "in": "query", "description": "empty is absent, as Binance reads it", "schema": {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "maxLength": 0}]}},
        {"name": "limit", "in": "query", "description": "empty is absent, as Binance reads it", "schema": {"anyOf": [{"type": "integer", "minimum": 1, "default": 500, "description": "larger values are served as 1500, as Binance does"}, {"type": "string", "maxLength": 0}]}}],
      "responses": {"200": {"description": "Rows as /api/v3/klines"}, "400": {"description": "Binance error body {code, msg}"}, "502": {"description": "Upstream failed"}, "504": {"description": "Upstream timed out"}}}},
    "/fapi/v1/markPriceKlines": {"get": {"summary": "Binance USD-M mark-price candles (volume fields \"0\"), same parameters as /fapi/v1/klines",
      "parameters": [
        {"name": "symbol", "in": "query", "required": true, "schema": {"type": "string", "pattern": "^[A-Za-z0-9-_.]{1,20}$"}},
        {"name": "interval", "in": "query", "required": true, "schema": {"type": "string", "enum": ["1m","3m","5m","15m","30m","1h","2h","4h","6h","8h","12h","1d","3d","1w","1M"]}},
        {"name": "startTime", "in": "query", "description": "empty is absent, as Binance reads it", "schema": {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "maxLength": 0}]}},
        {"name": "endTime", "in": "query", "description": "empty is absent, as Binance reads it", "schema": {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "maxLength": 0}]}},
        {"name": "limit", "in": "query", "description": "empty is absent, as Binance reads it", "schema": {"anyOf": [{"type": "integer", "minimum": 1, "default": 500, "description": "larger values are served as 1500, as Binance does"}, {"type": "string", "maxLength": 0}]}}],
      "responses": {"200": {"description": "Rows as /api/v3/klines"}, "400": {"description": "Binance error body {code, msg}"}, "502": {"description": "Upstream failed"}, "504": {"description": "Upstream timed out"}}}},
    "/fapi/v1/fundingRate": {"get": {"summary": "Funding rates [{symbol, fundingTime, fundingRate, markPrice}], stored; startTime <= fundingTime <= endTime; without startTime the latest `limit`; without symbol passed through",
      "parameters": [
        {"name": "symbol", "in": "query", "schema": {"type": "string", "pattern": "^[A-Za-z0-9]{1,20}$"}},
        {"name": "startTime", "in": "query", "description": "empty is absent, as Binance reads it", "schema": {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "maxLength": 0}]}},
        {"name": "endTime", "in": "query", "description": "empty is absent, as Binance reads it", "schema": {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "maxLength": 0}]}},
        {"name": "limit", "in": "query", "description": "empty is absent, as Binance reads it", "schema": {"anyOf": [{"type": "integer", "minimum": 1, "default": 100, "description": "larger values are served as 1000, as Binance does"}, {"type": "string", "maxLength": 0}]}}],
      "responses": {"200": {"description": "Funding events in time order"}, "400": {"description": "Binance error body {code, msg}"}, "404": {"description": "Without symbol: passed through, and no upstream is configured here (Binance's body, code -1000)"}, "502": {"description": "Upstream failed"}}}},
    "/fapi/v1/exchangeInfo": {"get": {"summary": "The futures upstream's exchangeInfo, passed through and cached 60 s", "responses": {"200": {"description": "Exchange information"}, "404": {"description": "No upstream is configured here (live data is passed through to one): Binance's body, code -1000"}, "502": {"description": "The upstream failed"}}}},
    "/fapi/v1/time": {"get": {"summary": "The server's clock", "responses": {"200": {"description": "{serverTime}"}}}},
    "/fapi/v1/ping": {"get": {"summary": "Connectivity", "responses": {"200": {"description": "{}"}}}},
    "/fapi/v1/depth": {"get": {"summary": "Order book, passed through to the futures upstream and kept 1 s (live data, never stored)", "parameters": [{"name": "symbol", "in": "query", "required": true, "schema": {"type": "string"}}, {"name": "limit", "in": "query", "schema": {"type": "integer"}}], "responses": {"200": {"description": "The upstream's answer"}, "400": {"description": "A parameter given twice, or malformed: Binance's body"}, "404": {"description": "No upstream is configured here (live data is passed through to one): Binance's body, code -1000"}, "502": {"description": "The upstream failed"}}}},
    "/fapi/v1/premiumIndex": {"get": {"summary": "Mark price and funding, passed through and kept 1 s", "parameters": [{"name": "symbol", "in": "query", "schema": {"type": "string"}}], "responses": {"200": {"description": "The upstream's answer"}, "400": {"description": "A parameter given twice, or malformed: Binance's body"}, "404": {"description": "No upstream is configured here (live data is passed through to one): Binance's body, code -1000"}, "502": {"description": "The upstream failed"}}}},
    "/fapi/v1/ticker/24hr": {"get": {"summary": "24 h tickers, passed through and kept 1 s", "parameters": [{"name": "symbol", "in": "query", "schema": {"type": "string"}}], "responses": {"200": {"description": "The upstream's answer"}, "400": {"description": "A parameter given twice, or malformed: Binance's body"}, "404": {"description": "No upstream is configured here (live data is passed through to one): Binance's body, code -1000"}, "502": {"description": "The upstream failed"}}}},
    "/fapi/v1/ticker/bookTicker": {"get": {"summary": "Best bid and ask, passed through and kept 1 s", "parameters": [{"name": "symbol", "in": "query", "schema": {"type": "string"}}], "responses": {"200": {"description": "The upstream's answer"}, "400": {"description": "A parameter given twice, or malformed: Binance's body"}, "404": {"description": "No upstream is configured here (live data is passed through to one): Binance's body, code -1000"}, "502": {"description": "The upstream failed"}}}},
    "/fapi/v1/ticker/price": {"get": {"summary": "Last prices, passed through and kept 1 s", "parameters": [{"name": "symbol", "in": "query", "schema": {"type": "string"}}], "responses": {"200": {"description": "The upstream's answer"}, "400": {"description": "A parameter given twice, or malformed: Binance's body"}, "404": {"description": "No upstream is configured here (live data is passed through to one): Binance's body, code -1000"}, "502": {"description": "The upstream failed"}}}},
    "/v5/market/kline": {"get": {"summary": "Bybit v5 candles: rows of 7 strings [start, open, high, low, close, volume, turnover], newest first, the forming one included",
      "parameters": [
        {"name": "category", "in": "query", "schema": {"type": "string", "enum": ["spot", "linear"], "default": "linear", "description": "inverse and option are refused by name"}},
        {"name": "symbol", "in": "query", "required": true, "schema": {"type": "string", "pattern": "^[A-Z0-9]{1,32}$"}},
        {"name": "interval", "in": "query", "required": true, "schema": {"type": "string", "enum": ["1","3","5","15","30","60","120","240","360","720","D","W","M"]}},
        {"name": "start", "in": "query", "description": "inclusive ms; alone: the candles from the one holding it on", "schema": {"type": "integer", "minimum": 0}},
        {"name": "end", "in": "query", "description": "inclusive ms; the latest `limit` up to it", "schema": {"type": "integer", "minimum": 0}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 200, "description": "larger values are served as 1000"}}],
      "responses": {"200": {"description": "{retCode, retMsg, result: {symbol, category, list newest first}, retExtInfo, time}; errors as retCode 10001 with HTTP 200, as Bybit answers"}, "404": {"description": "Bybit error body"}, "502": {"description": "Upstream failed (retCode 10016)"}, "504": {"description": "Upstream timed out (retCode 10016)"}}}},
    "/v5/market/mark-price-kline": {"get": {"summary": "Bybit v5 mark-price candles (category linear): rows of 5 strings",
      "parameters": [
        {"name": "category", "in": "query", "schema": {"type": "string", "enum": ["spot", "linear"], "default": "linear", "description": "inverse and option are refused by name"}},
        {"name": "symbol", "in": "query", "required": true, "schema": {"type": "string", "pattern": "^[A-Z0-9]{1,32}$"}},
        {"name": "interval", "in": "query", "required": true, "schema": {"type": "string", "enum": ["1","3","5","15","30","60","120","240","360","720","D","W","M"]}},
        {"name": "start", "in": "query", "description": "inclusive ms; alone: the candles from the one holding it on", "schema": {"type": "integer", "minimum": 0}},
        {"name": "end", "in": "query", "description": "inclusive ms; the latest `limit` up to it", "schema": {"type": "integer", "minimum": 0}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 200, "description": "larger values are served as 1000"}}],
      "responses": {"200": {"description": "{retCode, retMsg, result: {symbol, category, list newest first}, retExtInfo, time}; errors as retCode 10001 with HTTP 200, as Bybit answers"}, "404": {"description": "Bybit error body"}, "502": {"description": "Upstream failed (retCode 10016)"}, "504": {"description": "Upstream timed out (retCode 10016)"}}}},
    "/v5/market/funding/history": {"get": {"summary": "Bybit v5 funding rates (category linear), newest first; startTime needs endTime, as on Bybit",
      "parameters": [
        {"name": "category", "in": "query", "schema": {"type": "string", "enum": ["linear"], "default": "linear"}},
        {"name": "symbol", "in": "query", "required": true, "schema": {"type": "string", "pattern": "^[A-Z0-9]{1,32}$"}},
        {"name": "startTime", "in": "query", "schema": {"type": "integer", "minimum": 0}},
        {"name": "endTime", "in": "query", "schema": {"type": "integer", "minimum": 0}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 200}}],
      "responses": {"200": {"description": "{retCode, result: {category, list: [{symbol, fundingRate, fundingRateTimestamp}]}}"}, "502": {"description": "Upstream failed"}}}},
    "/v5/market/instruments-info": {"get": {"summary": "Bybit v5 instruments: passed through and cached, or built from the stored Bybit markets without an upstream", "responses": {"200": {"description": "Bybit's answer"}, "502": {"description": "Upstream failed"}}}},
    "/v5/market/risk-limit": {"get": {"summary": "Bybit v5 risk limits, passed through and cached (freqtrade futures reads it at start)", "responses": {"200": {"description": "Bybit's answer"}, "404": {"description": "No Bybit upstream"}, "502": {"description": "Upstream failed"}}}},
    "/v5/market/tickers": {"get": {"summary": "Bybit v5 tickers, passed through with a 1 s cache", "responses": {"200": {"description": "Bybit's answer"}, "404": {"description": "No Bybit upstream"}, "502": {"description": "Upstream failed"}}}},
    "/v5/market/orderbook": {"get": {"summary": "Bybit v5 order book, passed through with a 1 s cache", "responses": {"200": {"description": "Bybit's answer"}, "404": {"description": "No Bybit upstream"}, "502": {"description": "Upstream failed"}}}},
    "/v5/market/time": {"get": {"summary": "The server's clock as Bybit writes it: {timeSecond, timeNano}", "responses": {"200": {"description": "{retCode, result: {timeSecond, timeNano}, time}"}}}},
    "/api/v5/market/candles": {"get": {"summary": "OKX v5 candles: rows of 9 strings [ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm], newest first, the forming one with confirm 0; all stored history on both the recent and the history route",
      "parameters": [
        {"name": "instId", "in": "query", "required": true, "schema": {"type": "string", "description": "BTC-USDT (spot) or BTC-USDT-SWAP; inverse swaps, futures and options are refused by name"}},
        {"name": "bar", "in": "query", "schema": {"type": "string", "default": "1m", "enum": ["1m","3m","5m","15m","30m","1H","2H","4H","6H","12H","1D","2D","3D","1W","1M","3M","6Hutc","12Hutc","1Dutc","2Dutc","3Dutc","1Wutc","1Mutc","3Mutc"], "description": "6H and longer open on Hong Kong time (UTC+8), the utc forms on UTC"}},
        {"name": "after", "in": "query", "description": "older than this ms (exclusive)", "schema": {"type": "integer"}},
        {"name": "before", "in": "query", "description": "newer than this ms (exclusive); alone: the latest", "schema": {"type": "integer"}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 100, "description": "larger values are served as 300"}}],
      "responses": {"200": {"description": "{code: \"0\", msg, data newest first}"}, "400": {"description": "OKX error body: 50014, 51000, 51001"}, "503": {"description": "Upstream failed (50026)"}, "504": {"description": "Upstream timed out (50004)"}}}},
    "/api/v5/market/history-candles": {"get": {"summary": "OKX v5 candles: rows of 9 strings [ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm], newest first, the forming one with confirm 0; all stored history on both the recent and the history route",
      "parameters": [
        {"name": "instId", "in": "query", "required": true, "schema": {"type": "string", "description": "BTC-USDT (spot) or BTC-USDT-SWAP; inverse swaps, futures and options are refused by name"}},
        {"name": "bar", "in": "query", "schema": {"type": "string", "default": "1m", "enum": ["1m","3m","5m","15m","30m","1H","2H","4H","6H","12H","1D","2D","3D","1W","1M","3M","6Hutc","12Hutc","1Dutc","2Dutc","3Dutc","1Wutc","1Mutc","3Mutc"], "description": "6H and longer open on Hong Kong time (UTC+8), the utc forms on UTC"}},
        {"name": "after", "in": "query", "description": "older than this ms (exclusive)", "schema": {"type": "integer"}},
        {"name": "before", "in": "query", "description": "newer than this ms (exclusive); alone: the latest", "schema": {"type": "integer"}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 100, "description": "larger values are served as 300"}}],
      "responses": {"200": {"description": "{code: \"0\", msg, data newest first}"}, "400": {"description": "OKX error body: 50014, 51000, 51001"}, "503": {"description": "Upstream failed (50026)"}, "504": {"description": "Upstream timed out (50004)"}}}},
    "/api/v5/market/mark-price-candles": {"get": {"summary": "OKX v5 mark-price candles (swaps): rows of 6 strings [ts, o, h, l, c, confirm]; all stored history on both routes",
      "parameters": [
        {"name": "instId", "in": "query", "required": true, "schema": {"type": "string", "description": "BTC-USDT (spot) or BTC-USDT-SWAP; inverse swaps, futures and options are refused by name"}},
        {"name": "bar", "in": "query", "schema": {"type": "string", "default": "1m", "enum": ["1m","3m","5m","15m","30m","1H","2H","4H","6H","12H","1D","2D","3D","1W","1M","3M","6Hutc","12Hutc","1Dutc","2Dutc","3Dutc","1Wutc","1Mutc","3Mutc"], "description": "6H and longer open on Hong Kong time (UTC+8), the utc forms on UTC"}},
        {"name": "after", "in": "query", "description": "older than this ms (exclusive)", "schema": {"type": "integer"}},
        {"name": "before", "in": "query", "description": "newer than this ms (exclusive); alone: the latest", "schema": {"type": "integer"}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 100, "description": "larger values are served as 100"}}],
      "responses": {"200": {"description": "{code: \"0\", msg, data newest first}"}, "400": {"description": "OKX error body: 50014, 51000, 51001"}, "503": {"description": "Upstream failed (50026)"}, "504": {"description": "Upstream timed out (50004)"}}}},
    "/api/v5/market/history-mark-price-candles": {"get": {"summary": "OKX v5 mark-price candles (swaps): rows of 6 strings [ts, o, h, l, c, confirm]; all stored history on both routes",
      "parameters": [
        {"name": "instId", "in": "query", "required": true, "schema": {"type": "string", "description": "BTC-USDT (spot) or BTC-USDT-SWAP; inverse swaps, futures and options are refused by name"}},
        {"name": "bar", "in": "query", "schema": {"type": "string", "default": "1m", "enum": ["1m","3m","5m","15m","30m","1H","2H","4H","6H","12H","1D","2D","3D","1W","1M","3M","6Hutc","12Hutc","1Dutc","2Dutc","3Dutc","1Wutc","1Mutc","3Mutc"], "description": "6H and longer open on Hong Kong time (UTC+8), the utc forms on UTC"}},
        {"name": "after", "in": "query", "description": "older than this ms (exclusive)", "schema": {"type": "integer"}},
        {"name": "before", "in": "query", "description": "newer than this ms (exclusive); alone: the latest", "schema": {"type": "integer"}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 100, "description": "larger values are served as 100"}}],
      "responses": {"200": {"description": "{code: \"0\", msg, data newest first}"}, "400": {"description": "OKX error body: 50014, 51000, 51001"}, "503": {"description": "Upstream failed (50026)"}, "504": {"description": "Upstream timed out (50004)"}}}},
    "/api/v5/public/funding-rate-history": {"get": {"summary": "OKX v5 funding rates of a swap, newest first, with OKX's after/before cursors", "parameters": [{"name": "instId", "in": "query", "required": true, "schema": {"type": "string"}}, {"name": "after", "in": "query", "schema": {"type": "integer"}}, {"name": "before", "in": "query", "schema": {"type": "integer"}}, {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 100}}], "responses": {"200": {"description": "{code, data: [{instId, instType, fundingRate, realizedRate, fundingTime, method, formulaType}]}"}, "400": {"description": "OKX error body"}, "503": {"description": "Upstream failed"}}}},
    "/api/v5/public/instruments": {"get": {"summary": "OKX v5 instruments (instType SPOT, SWAP): passed through and cached, or built from the stored OKX markets without an upstream", "responses": {"200": {"description": "OKX's answer"}, "503": {"description": "Upstream failed"}}}},
    "/api/v5/public/position-tiers": {"get": {"summary": "OKX v5 position tiers, passed through and cached", "responses": {"200": {"description": "OKX's answer"}, "404": {"description": "No OKX upstream (OKX error body)"}, "503": {"description": "Upstream failed"}}}},
    "/api/v5/public/time": {"get": {"summary": "The server's clock as OKX writes it: data [{ts}]", "responses": {"200": {"description": "{code, data: [{ts}]}"}}}},
    "/api/v5/market/tickers": {"get": {"summary": "OKX v5 tickers, passed through with a 1 s cache", "responses": {"200": {"description": "OKX's answer"}, "404": {"description": "No OKX upstream (OKX error body)"}, "503": {"description": "Upstream failed"}}}},
    "/api/v5/market/ticker": {"get": {"summary": "OKX v5 ticker, passed through with a 1 s cache", "responses": {"200": {"description": "OKX's answer"}, "404": {"description": "No OKX upstream (OKX error body)"}, "503": {"description": "Upstream failed"}}}},
    "/api/v5/market/books": {"get": {"summary": "OKX v5 order book, passed through with a 1 s cache", "responses": {"200": {"description": "OKX's answer"}, "404": {"description": "No OKX upstream (OKX error body)"}, "503": {"description": "Upstream failed"}}}},
    "/api/v5/public/funding-rate": {"get": {"summary": "OKX v5 current funding rate, passed through with a 1 s cache", "responses": {"200": {"description": "OKX's answer"}, "404": {"description": "No OKX upstream (OKX error body)"}, "503": {"description": "Upstream failed"}}}},
    "/api/v5/public/mark-price": {"get": {"summary": "OKX v5 mark price, passed through with a 1 s cache", "responses": {"200": {"description": "OKX's answer"}, "404": {"description": "No OKX upstream (OKX error body)"}, "503": {"description": "Upstream failed"}}}},
    "/api/performance/stats": {"get": {"summary": "Cache, pool, query and HTTP figures", "responses": {"200": {"description": "Stats"}}}},
    "/api/performance/cache": {"get": {"summary": "Cache figures per namespace and in total", "responses": {"200": {"description": "Cache stats"}}}},
    "/api/performance/memory": {"get": {"summary": "Memory: rss_bytes, private_bytes (judged), limit_bytes, usage_pct, health (Excellent, Good, Warning, Critical), trend_mb_per_min, leak_suspected, stability_score, recommendations, history, heap, profiles (per route), reclaims", "responses": {"200": {"description": "Memory report"}}}},
    "/api/performance/cache/clear": {"post": {"summary": "Clears the memory tiers (not the store)",
      "parameters": [{"name": "namespace", "in": "query", "schema": {"type": "string", "description": "one namespace of the cache (by default market_data_ohlcv, historical_data, strategy_results, api_responses; see /api/performance/cache); all when absent"}}],
      "responses": {"200": {"description": "Bytes freed"}, "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"}, "404": {"description": "No namespace of that name (unknown_namespace)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
    "/api/performance/optimize": {"post": {"summary": "Memory reclaim if the level calls for it, then PRAGMA optimize, ANALYZE, WAL checkpoint; and advice",
      "responses": {"200": {"description": "Report"}, "401": {"$ref": "#/components/responses/Unauthorized"}}}},
    "/metrics": {"get": {"summary": "Prometheus text", "responses": {"200": {"description": "Metrics", "content": {"text/plain": {}}}}}},
    "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "OK"}}}},
    "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}},
    "/asyncapi.json": {"get": {"summary": "The AsyncAPI 3.0 document of the served WebSocket streams", "responses": {"200": {"description": "AsyncAPI 3.0"}}}},
    "/ws/{stream}": {"get": {"summary": "WebSocket handshake: raw kline events of one stream (`btcusdt@kline_1m`); a segment without `@` (ccxt pro's `/ws/0`) is a plain /ws. Messages: see /asyncapi.json",
      "parameters": [{"name": "Upgrade", "in": "header", "required": true, "schema": {"enum": ["websocket"]}}, {"name": "Connection", "in": "header", "required": true, "schema": {"enum": ["Upgrade"]}}, {"name": "Sec-WebSocket-Version", "in": "header", "required": true, "schema": {"enum": ["13"]}}, {"name": "Sec-WebSocket-Key", "in": "header", "required": true, "schema": {"type": "string", "pattern": "^[A-Za-z0-9+/]{22}==$"}}, {"name": "stream", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^([a-z0-9]{1,32}@kline_(1s|1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w|1M)|[^@/]*)$"}}],
      "responses": {"101": {"description": "Switching to WebSocket"}, "400": {"$ref": "#/components/responses/BadRequest"}, "426": {"description": "Not a WebSocket handshake (a request without these headers)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}, "503": {"description": "No upstream stream configured, or the connection limit reached (Retry-After)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
    "/ws": {"get": {"summary": "WebSocket handshake; subscribe with {\"method\":\"SUBSCRIBE\",\"params\":[...],\"id\":1}. Messages: see /asyncapi.json",
      "parameters": [{"name": "Upgrade", "in": "header", "required": true, "schema": {"enum": ["websocket"]}}, {"name": "Connection", "in": "header", "required": true, "schema": {"enum": ["Upgrade"]}}, {"name": "Sec-WebSocket-Version", "in": "header", "required": true, "schema": {"enum": ["13"]}}, {"name": "Sec-WebSocket-Key", "in": "header", "required": true, "schema": {"type": "string", "pattern": "^[A-Za-z0-9+/]{22}==$"}}],
      "responses": {"101": {"description": "Switching to WebSocket"}, "400": {"$ref": "#/components/responses/BadRequest"}, "426": {"description": "Not a WebSocket handshake (a request without these headers)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}, "503": {"description": "No upstream stream configured, or the connection limit reached", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
    "/stream": {"get": {"summary": "WebSocket handshake: combined frames {\"stream\",\"data\"} of the streams named",
      "parameters": [{"name": "Upgrade", "in": "header", "required": true, "schema": {"enum": ["websocket"]}}, {"name": "Connection", "in": "header", "required": true, "schema": {"enum": ["Upgrade"]}}, {"name": "Sec-WebSocket-Version", "in": "header", "required": true, "schema": {"enum": ["13"]}}, {"name": "Sec-WebSocket-Key", "in": "header", "required": true, "schema": {"type": "string", "pattern": "^[A-Za-z0-9+/]{22}==$"}}, {"name": "streams", "in": "query", "schema": {"type": "string", "pattern": "^([a-z0-9]{1,32}@kline_(1s|1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w|1M)(/[a-z0-9]{1,32}@kline_(1s|1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w|1M)){0,1023})?$", "description": "stream names joined by `/`, at most max_streams_per_connection (1024)"}}],
      "responses": {"101": {"description": "Switching to WebSocket"}, "400": {"$ref": "#/components/responses/BadRequest"}, "426": {"description": "Not a WebSocket handshake (a request without these headers)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}, "503": {"description": "No upstream stream configured, or the connection limit reached", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}}
  }
}
"##;

/// `/asyncapi.json`: the messages of the served streams.
pub(crate) const ASYNCAPI: &str = r##"{
  "asyncapi": "3.0.0",
  "info": {"title": "candlecache streams", "version": "0.1.0",
    "description": "Binance-compatible WebSocket market streams relayed from candlecache's upstream: kline events byte for byte as the upstream sent them, one upstream subscription per stream however many clients. Limits: max_streams_per_connection (1024), max_messages_per_sec (5; more closes with 1008), a ping every ping_ms (20 s) and a close (1008) after pong_timeout_ms (60 s) without a pong, a queue of `queue` frames per client (a slow client is closed with 1008), messages up to max_message_bytes (64 KiB; larger: 1009), binary frames closed with 1003."},
  "servers": {"local": {"host": "127.0.0.1:8080", "protocol": "ws"}},
  "channels": {
    "raw": {"address": "/ws/{stream}", "parameters": {"stream": {"description": "`<symbol>@kline_<interval>`, or any segment without `@` for a connection that subscribes by message"}},
      "messages": {"kline": {"$ref": "#/components/messages/kline"}, "subscribe": {"$ref": "#/components/messages/control"}, "reply": {"$ref": "#/components/messages/reply"}, "error": {"$ref": "#/components/messages/error"}}},
    "combined": {"address": "/stream?streams={streams}", "parameters": {"streams": {"description": "stream names joined by `/`"}},
      "messages": {"combinedKline": {"$ref": "#/components/messages/combinedKline"}, "subscribe": {"$ref": "#/components/messages/control"}, "reply": {"$ref": "#/components/messages/reply"}, "error": {"$ref": "#/components/messages/error"}}},
    "futuresRaw": {"address": "/market/ws/{stream}", "description": "USD-M futures streams (Binance's fstream .../market/ws): as raw, no 1s interval", "parameters": {"stream": {"description": "`<symbol>@kline_<interval>`, or any segment without `@` (ccxt pro's /market/ws/<n>)"}},
      "messages": {"kline": {"$ref": "#/components/messages/kline"}, "subscribe": {"$ref": "#/components/messages/control"}, "reply": {"$ref": "#/components/messages/reply"}, "error": {"$ref": "#/components/messages/error"}}},
    "futuresCombined": {"address": "/market/stream?streams={streams}", "description": "USD-M futures streams, combined", "parameters": {"streams": {"description": "stream names joined by `/`"}},
      "messages": {"combinedKline": {"$ref": "#/components/messages/combinedKline"}, "subscribe": {"$ref": "#/components/messages/control"}, "reply": {"$ref": "#/components/messages/reply"}, "error": {"$ref": "#/components/messages/error"}}}
  },
  "operations": {
    "receiveRaw": {"action": "receive", "channel": {"$ref": "#/channels/raw"}, "messages": [{"$ref": "#/channels/raw/messages/kline"}, {"$ref": "#/channels/raw/messages/reply"}, {"$ref": "#/channels/raw/messages/error"}]},
    "controlRaw": {"action": "send", "channel": {"$ref": "#/channels/raw"}, "messages": [{"$ref": "#/channels/raw/messages/subscribe"}]},
    "receiveCombined": {"action": "receive", "channel": {"$ref": "#/channels/combined"}, "messages": [{"$ref": "#/channels/combined/messages/combinedKline"}, {"$ref": "#/channels/combined/messages/reply"}, {"$ref": "#/channels/combined/messages/error"}]},
    "controlCombined": {"action": "send", "channel": {"$ref": "#/channels/combined"}, "messages": [{"$ref": "#/channels/combined/messages/subscribe"}]}
  },
  "components": {
    "messages": {
      "kline": {"summary": "A kline event as the upstream sent it; the latest one is sent at once to a new subscriber", "payload": {"$ref": "#/components/schemas/Kline"}},
      "combinedKline": {"payload": {"type": "object", "required": ["stream", "data"], "properties": {"stream": {"type": "string"}, "data": {"$ref": "#/components/schemas/Kline"}}}},
      "control": {"payload": {"type": "object", "required": ["method"], "additionalProperties": false, "properties": {
        "method": {"enum": ["SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY"]},
        "params": {"type": "array", "description": "stream names; for the properties [\"combined\", true|false] or [\"combined\"]"},
        "id": {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^[A-Za-z0-9-]{0,36}$"}, {"type": "null"}]}}}},
      "reply": {"payload": {"type": "object", "required": ["result", "id"], "properties": {"result": {"description": "null, the list of streams, or a property's value"}, "id": {}}}},
      "error": {"payload": {"type": "object", "required": ["error", "id"], "properties": {"error": {"type": "object", "properties": {
        "code": {"type": "integer", "description": "0 unknown property, 1 invalid value type, 2 invalid request, 3 invalid JSON"}, "msg": {"type": "string"}}}, "id": {}}}}
    },
    "schemas": {
      "Kline": {"type": "object", "required": ["e", "E", "s", "k"], "properties": {
        "e": {"const": "kline"}, "E": {"type": "integer", "description": "event time, epoch ms"}, "s": {"type": "string"},
        "k": {"type": "object", "properties": {
          "t": {"type": "integer"}, "T": {"type": "integer"}, "s": {"type": "string"}, "i": {"type": "string"},
          "f": {"type": "integer"}, "L": {"type": "integer"}, "o": {"type": "string"}, "c": {"type": "string"}, "h": {"type": "string"}, "l": {"type": "string"},
          "v": {"type": "string"}, "n": {"type": "integer"}, "x": {"type": "boolean", "description": "true once, with the candle's final values"},
          "q": {"type": "string"}, "V": {"type": "string"}, "Q": {"type": "string"}, "B": {"type": "string"}}}}}
    }
  }
}
"##;

#[cfg(test)]
mod tests {
    #[test]
    fn both_documents_are_json() {
        for doc in [super::DOCUMENT, super::ASYNCAPI] {
            let v: serde_json::Value = serde_json::from_str(doc).unwrap();
            assert!(v.get("openapi").or_else(|| v.get("asyncapi")).is_some());
        }
    }

    #[test]
    fn every_route_is_documented_with_its_method() {
        let doc: serde_json::Value = serde_json::from_str(super::DOCUMENT).unwrap();
        // The dashboard's page and assets are not part of the API.
        let api = crate::router::ROUTES
            .iter()
            .filter(|(p, _)| *p != "/" && !p.starts_with("/assets/"));
        for (path, method) in api {
            let op = &doc["paths"][path][method.to_ascii_lowercase()];
            assert!(op.is_object(), "{method} {path} is not in /openapi.json");
        }
    }
}
