//! OKX's candle channels as an upstream: `/ws/v5/business` (candle channels moved there
//! from `/public` in 2023, where OKX now refuses them), `{"op":"subscribe","args":
//! [{"channel":"candle1m","instId":"BTC-USDT"}]}` (many channels a request: OKX counts
//! 480 subscribe requests an hour per connection, not channels), a text `ping` before
//! 30 s of silence (OKX has no protocol-level ping; it answers `pong`), pushes
//! `{"arg":{channel,instId},"data":[[ts,o,h,l,c,vol,volCcy,volCcyQuote,confirm]]}` with
//! `confirm` "1" on the candle's final push. Mark price: `mark-price-candle<bar>`.

use std::time::Duration;

use serde_json::Value;

use super::bar;
use super::rest::candle_row;
use crate::exchange::{Frame, Kline, StreamApi};
use crate::live::streams::config::ws_url;
use crate::{Candle, Kind, Symbol, Timeframe};

/// OKX's stream protocol (also spoken by another candlecache and the tests' fake).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OkxStream;

/// Channels a subscribe request carries (OKX bounds a request at 64 KB, far above).
const CHANNELS_PER_REQUEST: usize = 100;

impl StreamApi for OkxStream {
    fn endpoint(&self, url: &str) -> Option<String> {
        ws_url(url).map(str::to_owned)
    }

    fn market_url(&self, ws: &str, _futures: bool) -> String {
        let ws = ws.trim().trim_end_matches('/');
        if ws.ends_with("/business") {
            return ws.to_owned();
        }
        // A user may give the base (`wss://ws.okx.com:8443/ws/v5`) or its public path.
        let base = ws.strip_suffix("/public").unwrap_or(ws);
        format!("{base}/business")
    }

    fn default_url(&self, rest_base: &str, futures: bool) -> Option<String> {
        let host = rest_base
            .split_once("://")
            .map_or("", |(_, h)| h)
            .split(['/', ':'])
            .next()
            .unwrap_or("");
        matches!(host, "www.okx.com" | "okx.com" | "aws.okx.com")
            .then(|| self.market_url("wss://ws.okx.com:8443/ws/v5", futures))
    }

    fn topic(&self, symbol: &Symbol, tf: Timeframe) -> String {
        let prefix = if symbol.kind() == Kind::Mark {
            "mark-price-candle"
        } else {
            "candle"
        };
        format!("{prefix}{}:{symbol}", bar(tf).unwrap_or_default())
    }

    fn control(&self, subscribe: bool, topics: &[String], id: u64) -> String {
        let op = if subscribe {
            "subscribe"
        } else {
            "unsubscribe"
        };
        let args: Vec<Value> = topics
            .iter()
            .map(|t| {
                let (channel, inst) = t.split_once(':').unwrap_or((t, ""));
                serde_json::json!({"channel": channel, "instId": inst})
            })
            .collect();
        serde_json::json!({"id": id.to_string(), "op": op, "args": args}).to_string()
    }

    fn topics_per_message(&self) -> usize {
        CHANNELS_PER_REQUEST
    }

    fn keepalive(&self) -> Option<(Duration, &'static str)> {
        Some((Duration::from_secs(25), "ping"))
    }

    fn read<'a>(&self, text: &'a str) -> Frame<'a> {
        if text.trim() == "pong" {
            return Frame::Ack;
        }
        let Ok(mut v) = serde_json::from_str::<Value>(text) else {
            return Frame::Bad("neither JSON nor pong".into());
        };
        if let Some(event) = v.get("event").and_then(Value::as_str) {
            return match event {
                "error" => Frame::Bad(format!(
                    "upstream error {}: {}",
                    v.get("code").and_then(Value::as_str).unwrap_or(""),
                    v.get("msg").and_then(Value::as_str).unwrap_or("")
                )),
                // subscribe, unsubscribe, notice, channel-conn-count
                _ => Frame::Ack,
            };
        }
        let arg = |k: &str| v.pointer(&format!("/arg/{k}")).and_then(Value::as_str);
        let (Some(channel), Some(inst)) = (arg("channel"), arg("instId")) else {
            return Frame::Bad("neither an event nor a push".into());
        };
        if !channel.starts_with("candle") && !channel.starts_with("mark-price-candle") {
            return Frame::Unexpected;
        }
        let topic = format!("{channel}:{inst}");
        let Some(Value::Array(data)) = v.get_mut("data").map(Value::take) else {
            return Frame::Bad("a push without data".into());
        };
        let mut klines = Vec::with_capacity(data.len());
        for row in data {
            let closed = row
                .as_array()
                .and_then(|r| r.last())
                .and_then(Value::as_str)
                == Some("1");
            klines.push(Kline { body: row, closed });
        }
        Frame::Klines {
            topic,
            raw: text.trim(),
            klines,
        }
    }

    fn candle(&self, kline: &Kline, tf: Timeframe) -> std::result::Result<Candle, String> {
        candle_row(&kline.body, tf).map(|(c, _)| c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUSH: &str = r#"{"arg":{"channel":"candle1D","instId":"BTC-USDT"},"data":[["1597026383085","8533.02","8553.74","8527.17","8548.26","45247","529.5858061","529.5858061","0"]]}"#;

    #[test]
    fn pushes_are_read_as_okx_writes_them() {
        let api = OkxStream;
        let s: Symbol = "BTC-USDT".parse().unwrap();
        let day = super::super::timeframe("1D").unwrap();
        assert_eq!(api.topic(&s, day), "candle1D:BTC-USDT");
        match api.read(PUSH) {
            Frame::Klines { topic, raw, klines } => {
                assert_eq!(topic, "candle1D:BTC-USDT");
                assert_eq!(raw, PUSH);
                assert!(!klines[0].closed);
                // The docs' example time is not on any grid: the candle is refused.
                assert!(api.candle(&klines[0], day).is_err());
            }
            other => panic!("{other:?}"),
        }
        let on_grid = PUSH.replace("1597026383085", "1596988800000");
        let Frame::Klines { klines, .. } = api.read(&on_grid) else {
            panic!()
        };
        let c = api.candle(&klines[0], day).unwrap();
        assert_eq!(c.volume_ccy.unwrap().to_string(), "529.5858061");
        assert!(matches!(api.read("pong"), Frame::Ack));
        let ok = r#"{"event":"subscribe","arg":{"channel":"candle1m","instId":"BTC-USDT"},"connId":"a4d3ae55"}"#;
        assert!(matches!(api.read(ok), Frame::Ack));
        let refused = r#"{"event":"error","code":"60018","msg":"Wrong URL or channel:candle1m,instId:BTC-USDT doesn't exist. Please use the correct URL, channel and parameters referring to API document.","connId":"a4d3ae55"}"#;
        assert!(matches!(api.read(refused), Frame::Bad(_)));
    }

    #[test]
    fn both_markets_stream_from_business() {
        let api = OkxStream;
        assert_eq!(
            api.default_url("https://www.okx.com", true).as_deref(),
            Some("wss://ws.okx.com:8443/ws/v5/business")
        );
        assert_eq!(
            api.market_url("ws://127.0.0.1:9/ws/v5/public", false),
            "ws://127.0.0.1:9/ws/v5/business"
        );
        assert_eq!(api.default_url("http://127.0.0.1:9", false), None);
        assert_eq!(
            api.control(true, &["candle1m:BTC-USDT".into()], 7),
            r#"{"args":[{"channel":"candle1m","instId":"BTC-USDT"}],"id":"7","op":"subscribe"}"#
        );
    }
}
