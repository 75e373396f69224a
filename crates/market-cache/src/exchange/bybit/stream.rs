//! Bybit's public WebSocket streams as an upstream: `/v5/public/spot` and
//! `/v5/public/linear`, topics `kline.<interval>.<SYMBOL>`, `{"op":"subscribe","args":
//! [...]}` (at most 10 topics a request on spot), `{"op":"ping"}` every 20 s from the
//! client (Bybit drops a silent connection), pushes `{"topic","type":"snapshot","ts",
//! "data":[{start,end,interval,open,close,high,low,volume,turnover,confirm,timestamp}]}`
//! with `confirm: true` on the candle's final push.

use std::time::Duration;

use serde_json::Value;

use super::interval;
use crate::exchange::{Frame, Kline, StreamApi};
use crate::live::streams::config::ws_url;
use crate::{Candle, Decimal, Error, Symbol, Timeframe};

/// Bybit's public stream protocol (also spoken by another candlecache and the tests' fake).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BybitStream;

impl StreamApi for BybitStream {
    fn endpoint(&self, url: &str) -> Option<String> {
        ws_url(url).map(str::to_owned)
    }

    fn market_url(&self, ws: &str, futures: bool) -> String {
        let ws = ws.trim().trim_end_matches('/');
        if ws.ends_with("/spot") || ws.ends_with("/linear") {
            return ws.to_owned();
        }
        format!("{ws}/{}", if futures { "linear" } else { "spot" })
    }

    fn default_url(&self, rest_base: &str, futures: bool) -> Option<String> {
        let host = rest_base
            .split_once("://")
            .map_or("", |(_, h)| h)
            .split(['/', ':'])
            .next()
            .unwrap_or("");
        matches!(host, "api.bybit.com" | "api.bytick.com")
            .then(|| self.market_url("wss://stream.bybit.com/v5/public", futures))
    }

    fn topic(&self, symbol: &Symbol, tf: Timeframe) -> String {
        format!("kline.{}.{symbol}", interval(tf).unwrap_or("?"))
    }

    fn control(&self, subscribe: bool, topics: &[String], id: u64) -> String {
        let op = if subscribe {
            "subscribe"
        } else {
            "unsubscribe"
        };
        serde_json::json!({"req_id": id.to_string(), "op": op, "args": topics}).to_string()
    }

    fn topics_per_message(&self) -> usize {
        10
    }

    fn keepalive(&self) -> Option<(Duration, &'static str)> {
        Some((Duration::from_secs(20), r#"{"op":"ping"}"#))
    }

    fn read<'a>(&self, text: &'a str) -> Frame<'a> {
        let Ok(mut v) = serde_json::from_str::<Value>(text) else {
            return Frame::Bad("not JSON".into());
        };
        if let Some(op) = v.get("op").and_then(Value::as_str) {
            // Replies to subscribe/unsubscribe/ping (spot: `success`, `ret_msg`; linear
            // answers a ping with `op: pong`).
            return match v.get("success").and_then(Value::as_bool) {
                Some(false) => Frame::Bad(format!(
                    "upstream refused `{op}`: {}",
                    v.get("ret_msg").and_then(Value::as_str).unwrap_or("")
                )),
                _ => Frame::Ack,
            };
        }
        let Some(topic) = v.get("topic").and_then(Value::as_str).map(str::to_owned) else {
            return Frame::Bad("neither a reply nor a push".into());
        };
        let mut parts = topic.splitn(3, '.');
        let (Some("kline"), Some(iv), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
            return Frame::Unexpected;
        };
        let Some(Value::Array(data)) = v.get_mut("data").map(Value::take) else {
            return Frame::Bad("a push without data".into());
        };
        let mut klines = Vec::with_capacity(data.len());
        for k in data {
            if k.get("interval").and_then(Value::as_str) != Some(iv) {
                return Frame::Unexpected;
            }
            let closed = k.get("confirm").and_then(Value::as_bool) == Some(true);
            klines.push(Kline { body: k, closed });
        }
        Frame::Klines {
            topic,
            raw: text.trim(),
            klines,
        }
    }

    fn candle(&self, kline: &Kline, tf: Timeframe) -> std::result::Result<Candle, String> {
        let k = &kline.body;
        let dec = |key: &str| -> std::result::Result<Decimal, String> {
            match k.get(key) {
                Some(Value::String(s)) => s.parse().map_err(|e: Error| format!("{key}: {e}")),
                _ => Err(format!("{key} is not a decimal string")),
            }
        };
        let open_time = k
            .get("start")
            .and_then(Value::as_i64)
            .ok_or("start is not an integer")?;
        let c = Candle {
            open_time,
            open: dec("open")?,
            high: dec("high")?,
            low: dec("low")?,
            close: dec("close")?,
            volume: dec("volume")?,
            quote_volume: Some(dec("turnover")?),
            trades: None,
            taker_base: None,
            taker_quote: None,
            volume_ccy: None,
        };
        c.validate(tf)?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUSH: &str = r#"{"topic":"kline.5.BTCUSDT","data":[{"start":1672324800000,"end":1672325099999,"interval":"5","open":"16649.5","close":"16677","high":"16677","low":"16608","volume":"2.081","turnover":"34666.4005","confirm":false,"timestamp":1672324988882}],"ts":1672324988882,"type":"snapshot"}"#;

    #[test]
    fn pushes_are_read_as_bybit_writes_them() {
        let api = BybitStream;
        let s: Symbol = "BTCUSDT".parse().unwrap();
        assert_eq!(api.topic(&s, Timeframe::M5), "kline.5.BTCUSDT");
        match api.read(PUSH) {
            Frame::Klines { topic, raw, klines } => {
                assert_eq!(topic, "kline.5.BTCUSDT");
                assert_eq!(raw, PUSH);
                assert!(!klines[0].closed);
                let c = api.candle(&klines[0], Timeframe::M5).unwrap();
                assert_eq!(c.close.to_string(), "16677");
                assert_eq!(c.quote_volume.unwrap().to_string(), "34666.4005");
            }
            other => panic!("{other:?}"),
        }
        let foreign = PUSH.replace(r#""interval":"5""#, r#""interval":"1""#);
        assert!(matches!(api.read(&foreign), Frame::Unexpected));
        let ok =
            r#"{"success":true,"ret_msg":"subscribe","conn_id":"x","req_id":"1","op":"subscribe"}"#;
        assert!(matches!(api.read(ok), Frame::Ack));
        let pong = r#"{"req_id":"","op":"pong","args":["1675418560633"],"conn_id":"x"}"#;
        assert!(matches!(api.read(pong), Frame::Ack));
        let refused = r#"{"success":false,"ret_msg":"error:handler not found,topic:kline.9.BTCUSDT","conn_id":"x","op":"subscribe"}"#;
        assert!(matches!(api.read(refused), Frame::Bad(_)));
    }

    #[test]
    fn one_stream_url_serves_both_markets() {
        let api = BybitStream;
        assert_eq!(
            api.market_url("wss://stream.bybit.com/v5/public/", true),
            "wss://stream.bybit.com/v5/public/linear"
        );
        assert_eq!(
            api.default_url("https://api.bybit.com", false).as_deref(),
            Some("wss://stream.bybit.com/v5/public/spot")
        );
        assert_eq!(api.default_url("http://127.0.0.1:9", false), None);
        assert_eq!(
            api.control(true, &["kline.1.BTCUSDT".into()], 7),
            r#"{"args":["kline.1.BTCUSDT"],"op":"subscribe","req_id":"7"}"#
        );
    }
}
