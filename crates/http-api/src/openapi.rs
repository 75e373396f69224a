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
        {"name": "start", "in": "query", "schema": {"type": "string", "description": "epoch ms or RFC 3339; without it the latest `limit` candles before `end` (or now, the forming one last)"}},
        {"name": "end", "in": "query", "schema": {"type": "string", "description": "epoch ms or RFC 3339, exclusive; default now"}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 10000}},
        {"name": "format", "in": "query", "schema": {"enum": ["json", "csv", "arrow"], "default": "json"}},
        {"name": "fill", "in": "query", "schema": {"enum": ["none", "previous"], "default": "none"}}
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
    "/api/crypto/markets": {"get": {"summary": "Stored series", "responses": {"200": {"description": "Markets"}, "405": {"$ref": "#/components/responses/MethodNotAllowed"}}}},
    "/api/v3/klines": {"get": {"summary": "Binance-compatible candles: 12-field rows, decimal strings, startTime <= openTime <= endTime",
      "parameters": [
        {"name": "symbol", "in": "query", "required": true, "schema": {"type": "string", "pattern": "^[A-Za-z0-9-_.]{1,20}$"}},
        {"name": "interval", "in": "query", "required": true, "schema": {"type": "string", "enum": ["1s","1m","3m","5m","15m","30m","1h","2h","4h","6h","8h","12h","1d","3d","1w","1M"]}},
        {"name": "startTime", "in": "query", "schema": {"type": "integer", "minimum": 0}},
        {"name": "endTime", "in": "query", "schema": {"type": "integer", "minimum": 0}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 500}},
        {"name": "timeZone", "in": "query", "schema": {"type": "string", "enum": ["0", "+00:00"]}}],
      "responses": {"200": {"description": "Rows [openTime, open, high, low, close, volume, closeTime, quoteVolume, trades, takerBase, takerQuote, \"0\"]"},
        "400": {"description": "Binance error body {code, msg}"}, "502": {"description": "Upstream failed"}, "504": {"description": "Upstream timed out"}}}},
    "/api/v3/exchangeInfo": {"get": {"summary": "Passed through to the upstream and cached, or built from the stored symbols",
      "parameters": [{"name": "symbol", "in": "query", "schema": {"type": "string"}}, {"name": "symbols", "in": "query", "schema": {"type": "string"}}],
      "responses": {"200": {"description": "Exchange information"}, "400": {"description": "Binance error body {code, msg}"}}}},
    "/api/v3/time": {"get": {"summary": "The server's clock", "responses": {"200": {"description": "{serverTime}"}}}},
    "/api/v3/ping": {"get": {"summary": "Connectivity", "responses": {"200": {"description": "{}"}}}},
    "/api/performance/stats": {"get": {"summary": "Cache, pool, query and HTTP figures", "responses": {"200": {"description": "Stats"}}}},
    "/api/performance/cache": {"get": {"summary": "Cache figures per namespace and in total", "responses": {"200": {"description": "Cache stats"}}}},
    "/api/performance/memory": {"get": {"summary": "Memory: rss_bytes, private_bytes (judged), limit_bytes, usage_pct, health (Excellent, Good, Warning, Critical), trend_mb_per_min, leak_suspected, stability_score, recommendations, history, heap, profiles (per route), reclaims", "responses": {"200": {"description": "Memory report"}}}},
    "/api/performance/cache/clear": {"post": {"summary": "Clears the memory tiers (not the store)",
      "parameters": [{"name": "namespace", "in": "query", "schema": {"type": "string"}}],
      "responses": {"200": {"description": "Bytes freed"}, "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"}}}},
    "/api/performance/optimize": {"post": {"summary": "Memory reclaim if the level calls for it, then PRAGMA optimize, ANALYZE, WAL checkpoint; and advice",
      "responses": {"200": {"description": "Report"}, "401": {"$ref": "#/components/responses/Unauthorized"}}}},
    "/metrics": {"get": {"summary": "Prometheus text", "responses": {"200": {"description": "Metrics", "content": {"text/plain": {}}}}}},
    "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "OK"}}}},
    "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}}
  }
}
"##;
