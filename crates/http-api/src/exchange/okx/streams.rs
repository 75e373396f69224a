//! OKX's candle channels as served: `/ws/v5/business`, `{"op":"subscribe","args":
//! [{"channel":"candle1m","instId":"BTC-USDT"}]}` answered with one `{"event":
//! "subscribe","arg":{...},"connId":...}` per channel (the request's `id` echoed), a text
//! `ping` answered `pong` (OKX has no protocol-level ping), errors as `{"event":"error",
//! "code":"60018",...}`, and the pushes relayed as OKX wrote them. `/ws/v5/public` is
//! OKX's too: candle channels moved off it in 2023 and OKX refuses them there (60018),
//! as does candlecache. One connection carries spot and swap channels (the instrument id
//! says which); `mark-price-candle<bar>` is served beside `candle<bar>`.
//! Read from ccxt pro 4.5's `okx.py` (`get_url`, `subscribe`, `ping`,
//! `handle_error_message`, `handle_ohlcv`).

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use market_cache::{okx, Exchange, Kind, Symbol};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::streams::protocol::{Changes, Opening, Protocol, Stream};
use crate::{Error, Result};

/// The connection id in events (clients do not read it).
const CONN_ID: &str = "candlecache";
/// OKX bounds requests per connection per hour (480 subscribes); a client is held to this
/// many messages a second, far above what a client following OKX's limits sends.
const MESSAGES_PER_SEC: usize = 50;

/// OKX's served stream protocol.
pub(crate) struct OkxStreams;

impl Protocol for OkxStreams {
    fn exchange(&self) -> Exchange {
        Exchange::Okx
    }

    fn route_name(&self, path: &str) -> Option<&'static str> {
        match path.trim_end_matches('/') {
            "/ws/v5/business" => Some("/ws/v5/business"),
            "/ws/v5/public" => Some("/ws/v5/public"),
            p if p.starts_with("/ws/v5/") => Some("/ws/v5/other"),
            _ => None,
        }
    }

    fn open(&self, path: &str, _query: Option<&str>) -> Result<Opening> {
        let public = match path.trim_end_matches('/') {
            "/ws/v5/business" => false,
            "/ws/v5/public" => true,
            other => {
                return Err(Error::InvalidStream(format!(
                    "{other} is not served by candlecache: OKX's /ws/v5/business (candles) is"
                )))
            }
        };
        // OKX frames events one way; the flag marks a connection on `/public`, where
        // candle channels are refused.
        Ok(Opening {
            kind: Kind::Spot,
            streams: Vec::new(),
            combined: public,
        })
    }

    fn max_messages_per_sec(&self, _configured: usize) -> usize {
        MESSAGES_PER_SEC
    }

    fn control(
        &self,
        _kind: Kind,
        subscribed: &[String],
        public: &AtomicBool,
        text: &str,
        max_streams: usize,
    ) -> Changes {
        let mut changes = Changes::default();
        if text.trim() == "ping" {
            changes.reply = "pong".into();
            return changes;
        }
        let Ok(req) = serde_json::from_str::<Value>(text) else {
            changes.refused = true;
            changes.reply = error("60012", &format!("Illegal request: {text}"), None);
            return changes;
        };
        let id = req.get("id").and_then(Value::as_str);
        let op = req.get("op").and_then(Value::as_str).unwrap_or("");
        let args: Vec<Value> = req
            .get("args")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let public = public.load(Ordering::Relaxed);
        let outcome = match op {
            _ if args.is_empty() => Err(error("60012", &format!("Illegal request: {text}"), id)),
            "subscribe" => subscribe(subscribed, &args, public, max_streams, id, &mut changes),
            "unsubscribe" => unsubscribe(subscribed, &args, id, &mut changes),
            _ => Err(error("60012", &format!("Illegal request: {text}"), id)),
        };
        match outcome {
            Ok(mut replies) => {
                changes.reply = replies.remove(0);
                changes.more_replies = replies;
            }
            Err(reply) => {
                changes.refused = true;
                changes.add.clear();
                changes.remove.clear();
                changes.reply = reply;
            }
        }
        changes
    }

    fn frame(&self, _name: &str, event: &Bytes, _combined: bool) -> Option<Message> {
        let text = std::str::from_utf8(event).ok()?;
        Some(Message::text(text.to_owned()))
    }

    fn upstream_hint(&self, _kind: Kind) -> &'static str {
        "--upstream-okx-ws / [upstream.okx] ws"
    }
}

/// An error event as OKX writes it.
fn error(code: &str, msg: &str, id: Option<&str>) -> String {
    let mut v = json!({"event": "error", "code": code, "msg": msg, "connId": CONN_ID});
    if let Some(id) = id {
        v["id"] = json!(id);
    }
    v.to_string()
}

/// A subscribe or unsubscribe event for one channel.
fn event(op: &str, arg: &Value, id: Option<&str>) -> String {
    let mut v = json!({"event": op, "arg": arg, "connId": CONN_ID});
    if let Some(id) = id {
        v["id"] = json!(id);
    }
    v.to_string()
}

/// A candle channel, checked: `candle<bar>` or `mark-price-candle<bar>` of a spot or swap
/// instrument. The stream's name is `channel:instId`, the upstream's topic for it.
fn parse_arg(arg: &Value) -> std::result::Result<Stream, String> {
    let channel = arg.get("channel").and_then(Value::as_str).unwrap_or("");
    let inst = arg.get("instId").and_then(Value::as_str).unwrap_or("");
    let missing = || {
        format!("Wrong URL or channel:{channel},instId:{inst} doesn't exist. Please use the correct URL, channel and parameters referring to API document.")
    };
    let (mark, name) = match channel.strip_prefix("mark-price-candle") {
        Some(bar) => (true, bar),
        None => (false, channel.strip_prefix("candle").ok_or_else(missing)?),
    };
    let tf = okx::timeframe(name).ok_or_else(missing)?;
    if inst.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(missing());
    }
    let parts: Vec<&str> = inst.split('-').collect();
    let kind = match (&parts[..], mark) {
        ([_, _], false) => Kind::Spot,
        ([_, q, "SWAP"], false) if *q != "USD" => Kind::Futures,
        ([_, q, "SWAP"], true) if *q != "USD" => Kind::Mark,
        _ => return Err(missing()),
    };
    let symbol: Symbol = inst.parse().map_err(|_| missing())?;
    Ok(Stream {
        name: format!("{channel}:{inst}"),
        symbol: symbol.with_kind(kind),
        tf,
    })
}

fn subscribe(
    subscribed: &[String],
    args: &[Value],
    public: bool,
    max_streams: usize,
    id: Option<&str>,
    changes: &mut Changes,
) -> std::result::Result<Vec<String>, String> {
    let mut replies = Vec::new();
    for arg in args {
        let stream = parse_arg(arg).map_err(|m| error("60018", &m, id))?;
        if public {
            let m = format!("Wrong URL or channel:{},instId:{} doesn't exist. Please use the correct URL, channel and parameters referring to API document.", arg["channel"].as_str().unwrap_or(""), arg["instId"].as_str().unwrap_or(""));
            return Err(error("60018", &m, id));
        }
        replies.push(event("subscribe", arg, id));
        // Subscribing again is not an error on OKX; the channel is simply kept.
        if !subscribed.contains(&stream.name) && !changes.add.iter().any(|s| s.name == stream.name)
        {
            changes.add.push(stream);
        }
    }
    if subscribed.len() + changes.add.len() > max_streams {
        return Err(error(
            "60012",
            &format!("at most {max_streams} channels a connection on candlecache"),
            id,
        ));
    }
    Ok(replies)
}

fn unsubscribe(
    subscribed: &[String],
    args: &[Value],
    id: Option<&str>,
    changes: &mut Changes,
) -> std::result::Result<Vec<String>, String> {
    let mut replies = Vec::new();
    for arg in args {
        let stream = parse_arg(arg).map_err(|m| error("60018", &m, id))?;
        if subscribed.contains(&stream.name) {
            changes.remove.push(stream.name);
        }
        replies.push(event("unsubscribe", arg, id));
    }
    Ok(replies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_messages_are_answered_as_okx_answers_them() {
        let p = OkxStreams;
        let business = AtomicBool::new(false);
        let c = p.control(
            Kind::Spot,
            &[],
            &business,
            r#"{"id":"7","op":"subscribe","args":[{"channel":"candle1m","instId":"BTC-USDT"},{"channel":"mark-price-candle1Dutc","instId":"BTC-USDT-SWAP"}]}"#,
            100,
        );
        assert!(!c.refused);
        assert_eq!(c.add.len(), 2);
        assert_eq!(c.add[0].name, "candle1m:BTC-USDT");
        assert_eq!(c.add[1].symbol.kind(), Kind::Mark);
        let first: Value = serde_json::from_str(&c.reply).unwrap();
        assert_eq!(first["event"], "subscribe");
        assert_eq!(first["id"], "7");
        assert_eq!(first["arg"]["instId"], "BTC-USDT");
        assert_eq!(c.more_replies.len(), 1);
        assert_eq!(
            p.control(Kind::Spot, &[], &business, "ping", 100).reply,
            "pong"
        );
        for bad in [
            r#"{"op":"subscribe","args":[{"channel":"candle1h","instId":"BTC-USDT"}]}"#,
            r#"{"op":"subscribe","args":[{"channel":"candle1m","instId":"BTC-USD-SWAP"}]}"#,
            r#"{"op":"subscribe","args":[{"channel":"tickers","instId":"BTC-USDT"}]}"#,
            r#"{"op":"subscribe","args":[]}"#,
            "nope",
        ] {
            let c = p.control(Kind::Spot, &[], &business, bad, 100);
            assert!(c.refused && c.add.is_empty(), "{bad}");
            let v: Value = serde_json::from_str(&c.reply).unwrap();
            assert_eq!(v["event"], "error", "{bad}");
        }
        let public = AtomicBool::new(true);
        let c = p.control(
            Kind::Spot,
            &[],
            &public,
            r#"{"op":"subscribe","args":[{"channel":"candle1m","instId":"BTC-USDT"}]}"#,
            100,
        );
        assert!(c.refused);
        assert!(c.reply.contains("60018"));
    }

    #[test]
    fn okx_paths_are_okx_s() {
        let p = OkxStreams;
        assert_eq!(p.route_name("/ws/v5/business"), Some("/ws/v5/business"));
        assert!(p.open("/ws/v5/private", None).is_err());
        assert!(p.open("/ws/v5/public", None).unwrap().combined);
    }
}
