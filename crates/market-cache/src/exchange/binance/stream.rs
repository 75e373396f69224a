//! Binance's WebSocket market streams as an upstream: `<symbol>@kline_<interval>` topics
//! on the combined `/stream` endpoint, SUBSCRIBE/UNSUBSCRIBE with an id, closed candles
//! marked `"x": true`; the server pings and tungstenite answers.

use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::exchange::{Frame, Kline, StreamApi};
use crate::live::streams::config::ws_url;
use crate::{Candle, Decimal, Error, Symbol, Timeframe};

/// Topics one SUBSCRIBE carries, to keep each message small.
const PER_MESSAGE: usize = 100;

/// Binance's stream protocol (also spoken by another candlecache and the tests' fake).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BinanceStream;

impl StreamApi for BinanceStream {
    fn endpoint(&self, url: &str) -> Option<String> {
        let u = ws_url(url)?;
        let base = u
            .strip_suffix("/stream")
            .or_else(|| u.strip_suffix("/ws"))
            .unwrap_or(u);
        Some(format!("{base}/stream"))
    }

    fn default_url(&self, rest_base: &str, futures: bool) -> Option<String> {
        let url = if futures {
            default_futures_stream_url(rest_base)
        } else {
            default_stream_url(rest_base)
        };
        url.map(str::to_owned)
    }

    fn topic(&self, symbol: &Symbol, tf: Timeframe) -> String {
        format!("{}@kline_{tf}", symbol.as_str().to_ascii_lowercase())
    }

    fn control(&self, subscribe: bool, topics: &[String], id: u64) -> String {
        let method = if subscribe {
            "SUBSCRIBE"
        } else {
            "UNSUBSCRIBE"
        };
        serde_json::json!({"method": method, "params": topics, "id": id}).to_string()
    }

    fn topics_per_message(&self) -> usize {
        PER_MESSAGE
    }

    fn keepalive(&self) -> Option<(Duration, &'static str)> {
        None
    }

    /// A kline event (combined `{"stream","data"}` or raw), a reply to SUBSCRIBE, or an
    /// error.
    fn read<'a>(&self, text: &'a str) -> Frame<'a> {
        // One pass over the frame: a combined frame's `data` is kept as the upstream
        // wrote it (served streams relay those bytes) and parsed on its own.
        #[derive(Deserialize)]
        struct Combined<'a> {
            #[serde(borrow)]
            stream: Option<&'a RawValue>,
            #[serde(borrow)]
            data: Option<&'a RawValue>,
        }
        let bad = |why: &str| Frame::Bad(why.to_owned());
        let Ok(frame) = serde_json::from_str::<Combined<'_>>(text) else {
            return bad("not JSON");
        };
        let combined = frame
            .stream
            .and_then(|s| serde_json::from_str::<&str>(s.get()).ok())
            .zip(frame.data);
        let (stream, event) = match combined {
            Some((s, d)) => (Some(s), d.get()),
            None => (None, text.trim()),
        };
        let Ok(mut data) = serde_json::from_str::<Value>(event) else {
            return bad("not JSON");
        };
        if stream.is_none() {
            if data.get("result").is_some() && data.get("id").is_some() {
                return Frame::Ack;
            }
            if let Some(err) = data
                .get("error")
                .or_else(|| data.get("code").map(|_| &data))
            {
                return Frame::Bad(format!("upstream error {err}"));
            }
        }
        if data.get("e").and_then(Value::as_str) != Some("kline") {
            return bad("not a kline event");
        }
        let Some(k) = data.get("k") else {
            return bad("no k");
        };
        let (Some(sym), Some(interval)) = (
            k.get("s").and_then(Value::as_str),
            k.get("i").and_then(Value::as_str),
        ) else {
            return bad("no symbol or interval");
        };
        let topic = format!("{}@kline_{interval}", sym.to_ascii_lowercase());
        if stream.is_some_and(|s| s != topic) || data.get("s").and_then(Value::as_str) != Some(sym)
        {
            return Frame::Unexpected;
        }
        let closed = k.get("x").and_then(Value::as_bool) == Some(true);
        Frame::Klines {
            topic,
            raw: event,
            klines: vec![Kline {
                body: data["k"].take(),
                closed,
            }],
        }
    }

    fn candle(&self, kline: &Kline, tf: Timeframe) -> std::result::Result<Candle, String> {
        kline_candle(&kline.body, tf)
    }
}

/// The default stream host for an upstream REST base URL: Binance's for Binance's spot
/// hosts, none for anything else (another candlecache, a test server).
pub(crate) fn default_stream_url(rest_base: &str) -> Option<&'static str> {
    let host = rest_base
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = host.split(['/', ':']).next().unwrap_or_default();
    matches!(
        host,
        "api.binance.com"
            | "api1.binance.com"
            | "api2.binance.com"
            | "api3.binance.com"
            | "api4.binance.com"
            | "api-gcp.binance.com"
            | "data-api.binance.vision"
    )
    .then_some("wss://stream.binance.com:9443")
}

/// The default stream host for a futures REST base URL: Binance's USD-M market streams for
/// `fapi.binance.com`, none for anything else.
pub(crate) fn default_futures_stream_url(futures_base: &str) -> Option<&'static str> {
    let host = futures_base
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = host.split(['/', ':']).next().unwrap_or_default();
    (host == "fapi.binance.com").then_some("wss://fstream.binance.com/market")
}

/// The candle of a kline event's `k` object, validated against the interval.
fn kline_candle(k: &Value, tf: Timeframe) -> std::result::Result<Candle, String> {
    let dec = |key: &str| -> std::result::Result<Option<Decimal>, String> {
        match k.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => s.parse().map(Some).map_err(|e: Error| e.to_string()),
            Some(other) => Err(format!("{key} is {other}, not a decimal string")),
        }
    };
    let req = |key: &str| dec(key)?.ok_or_else(|| format!("{key} is missing"));
    let open_time = k
        .get("t")
        .and_then(Value::as_i64)
        .ok_or("t is not an integer")?;
    let c = Candle {
        open_time,
        open: req("o")?,
        high: req("h")?,
        low: req("l")?,
        close: req("c")?,
        volume: req("v")?,
        quote_volume: dec("q")?,
        trades: k.get("n").and_then(Value::as_u64),
        taker_base: dec("V")?,
        taker_quote: dec("Q")?,
        volume_ccy: None,
    };
    c.validate(tf)?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_stream_hosts_are_binance_s_own() {
        assert_eq!(
            default_stream_url("https://api.binance.com"),
            Some("wss://stream.binance.com:9443")
        );
        assert_eq!(default_stream_url("http://127.0.0.1:8080"), None);
        assert_eq!(
            default_futures_stream_url("https://fapi.binance.com"),
            Some("wss://fstream.binance.com/market")
        );
        assert_eq!(default_futures_stream_url("http://127.0.0.1:8080"), None);
    }

    #[test]
    fn frames_are_read_as_binance_writes_them() {
        let api = BinanceStream;
        let event = r#"{"e":"kline","E":1,"s":"BTCUSDT","k":{"t":60000,"s":"BTCUSDT","i":"1m","o":"1","h":"1","l":"1","c":"1","v":"1","x":true}}"#;
        let combined = format!(r#"{{"stream":"btcusdt@kline_1m","data":{event}}}"#);
        match api.read(&combined) {
            Frame::Klines { topic, raw, klines } => {
                assert_eq!(topic, "btcusdt@kline_1m");
                assert_eq!(raw, event);
                assert!(klines[0].closed);
            }
            other => panic!("{other:?}"),
        }
        let foreign = combined.replace(r#""stream":"btcusdt"#, r#""stream":"ethusdt"#);
        assert!(matches!(api.read(&foreign), Frame::Unexpected));
        assert!(matches!(api.read(r#"{"result":null,"id":1}"#), Frame::Ack));
        assert!(matches!(api.read("nope"), Frame::Bad(_)));
        assert!(matches!(
            api.read(r#"{"code":2,"msg":"Invalid request"}"#),
            Frame::Bad(_)
        ));
        assert_eq!(
            api.control(true, &["btcusdt@kline_1m".into()], 7),
            r#"{"id":7,"method":"SUBSCRIBE","params":["btcusdt@kline_1m"]}"#
        );
    }

    #[test]
    fn kline_events_are_validated() {
        let k: Value = serde_json::from_str(
            r#"{"t":60000,"o":"1.5","h":"2","l":"1","c":"1.75","v":"10","q":"15","n":3,"V":"4","Q":"6","x":false}"#,
        )
        .unwrap();
        let c = kline_candle(&k, Timeframe::M1).unwrap();
        assert_eq!(c.close.to_string(), "1.75");
        assert_eq!(c.trades, Some(3));
        let mut off = k.clone();
        off["t"] = 61_000.into();
        assert!(kline_candle(&off, Timeframe::M1)
            .unwrap_err()
            .contains("grid"));
        let mut low = k;
        low["l"] = "3".into();
        assert!(kline_candle(&low, Timeframe::M1).is_err());
    }
}
