//! Bybit's public kline streams as served: `/v5/public/spot` and `/v5/public/linear`,
//! `{"op":"subscribe","args":["kline.1.BTCUSDT"],"req_id":"1"}` (at most 10 topics a
//! request on spot, as Bybit allows), `unsubscribe`, `{"op":"ping"}` answered
//! `{"success":true,"ret_msg":"pong",...,"op":"ping"}` as Bybit answers on public
//! channels, and the pushes relayed as Bybit wrote them. `/v5/public/inverse` and
//! `option` are refused by name.

use std::sync::atomic::AtomicBool;

use bytes::Bytes;
use market_cache::{bybit, Exchange, Kind, Symbol};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::streams::protocol::{Changes, Opening, Protocol, Stream};
use crate::{Error, Result};

/// Topics one subscribe request may carry on spot (Bybit's limit; linear has none).
const SPOT_ARGS: usize = 10;
/// Bybit documents no limit on a public connection's messages a second; a client is
/// still held to this many.
const MESSAGES_PER_SEC: usize = 100;
/// The connection id in replies (clients do not read it).
const CONN_ID: &str = "candlecache";

/// Bybit's served stream protocol.
pub(crate) struct BybitStreams;

impl Protocol for BybitStreams {
    fn exchange(&self) -> Exchange {
        Exchange::Bybit
    }

    fn route_name(&self, path: &str) -> Option<&'static str> {
        match path.trim_end_matches('/') {
            "/v5/public/spot" => Some("/v5/public/spot"),
            "/v5/public/linear" => Some("/v5/public/linear"),
            "/v5/public/inverse" | "/v5/public/option" => Some("/v5/public/other"),
            _ => None,
        }
    }

    fn open(&self, path: &str, _query: Option<&str>) -> Result<Opening> {
        let kind = match path.trim_end_matches('/') {
            "/v5/public/spot" => Kind::Spot,
            "/v5/public/linear" => Kind::Futures,
            other => {
                return Err(Error::InvalidStream(format!(
                    "{other} is not served by candlecache: Bybit's spot and linear streams are"
                )))
            }
        };
        Ok(Opening {
            kind,
            streams: Vec::new(),
            combined: false,
        })
    }

    fn max_messages_per_sec(&self, _configured: usize) -> usize {
        MESSAGES_PER_SEC
    }

    fn control(
        &self,
        kind: Kind,
        subscribed: &[String],
        _combined: &AtomicBool,
        text: &str,
        max_streams: usize,
    ) -> Changes {
        let mut changes = Changes::default();
        let Ok(req) = serde_json::from_str::<Value>(text) else {
            changes.refused = true;
            changes.reply = reply(false, "error:request not json", "", "");
            return changes;
        };
        let op = req.get("op").and_then(Value::as_str).unwrap_or("");
        let req_id = req.get("req_id").and_then(Value::as_str).unwrap_or("");
        let args: Vec<&str> = req
            .get("args")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let outcome = match op {
            "ping" => {
                changes.reply = reply(true, "pong", req_id, "ping");
                return changes;
            }
            "subscribe" => subscribe(kind, subscribed, &args, max_streams, &mut changes),
            "unsubscribe" => unsubscribe(subscribed, &args, &mut changes),
            _ => Err(format!("error:unknown op `{op}`")),
        };
        changes.reply = match outcome {
            Ok(()) => reply(true, op, req_id, op),
            Err(msg) => {
                changes.refused = true;
                changes.add.clear();
                changes.remove.clear();
                reply(false, &msg, req_id, op)
            }
        };
        changes
    }

    fn frame(&self, _name: &str, event: &Bytes, _combined: bool) -> Option<Message> {
        let text = std::str::from_utf8(event).ok()?;
        Some(Message::text(text.to_owned()))
    }

    fn upstream_hint(&self, _kind: Kind) -> &'static str {
        "--upstream-bybit-ws / [upstream.bybit] ws"
    }
}

/// A reply as Bybit writes them on public channels.
fn reply(success: bool, ret_msg: &str, req_id: &str, op: &str) -> String {
    let mut v = json!({"success": success, "ret_msg": ret_msg, "conn_id": CONN_ID, "op": op});
    if !req_id.is_empty() {
        v["req_id"] = json!(req_id);
    }
    v.to_string()
}

/// A kline topic, checked: `kline.<interval>.<SYMBOL>`.
fn parse_topic(topic: &str) -> std::result::Result<Stream, String> {
    let bad = || format!("error:handler not found,topic:{topic}");
    let mut parts = topic.splitn(3, '.');
    let (Some("kline"), Some(iv), Some(sym)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let tf = bybit::timeframe(iv).ok_or_else(bad)?;
    if sym.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(bad());
    }
    let symbol: Symbol = sym.parse().map_err(|_| bad())?;
    Ok(Stream {
        name: topic.to_owned(),
        // The hub puts it on the protocol's exchange.
        symbol,
        tf,
    })
}

fn subscribe(
    kind: Kind,
    subscribed: &[String],
    args: &[&str],
    max_streams: usize,
    changes: &mut Changes,
) -> std::result::Result<(), String> {
    if args.is_empty() {
        return Err("error:args is empty".into());
    }
    if kind == Kind::Spot && args.len() > SPOT_ARGS {
        return Err(format!("args size >{SPOT_ARGS}"));
    }
    for t in args {
        let stream = parse_topic(t)?;
        if subscribed.contains(&stream.name) || changes.add.iter().any(|s| s.name == stream.name) {
            return Err(format!("error:already subscribed,topic:{t}"));
        }
        changes.add.push(stream);
    }
    if subscribed.len() + changes.add.len() > max_streams {
        return Err(format!(
            "error:at most {max_streams} topics a connection on candlecache"
        ));
    }
    Ok(())
}

fn unsubscribe(
    subscribed: &[String],
    args: &[&str],
    changes: &mut Changes,
) -> std::result::Result<(), String> {
    for t in args {
        if !subscribed.iter().any(|s| s == t) {
            return Err(format!("error:not subscribed,topic:{t}"));
        }
        changes.remove.push((*t).to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_messages_are_answered_as_bybit_answers_them() {
        let p = BybitStreams;
        let flag = AtomicBool::new(false);
        let c = p.control(
            Kind::Spot,
            &[],
            &flag,
            r#"{"op":"subscribe","args":["kline.1.BTCUSDT"],"req_id":"7"}"#,
            100,
        );
        assert!(!c.refused);
        assert_eq!(c.add[0].tf, market_cache::Timeframe::M1);
        let v: Value = serde_json::from_str(&c.reply).unwrap();
        assert_eq!(v["success"], true);
        assert_eq!(v["req_id"], "7");
        assert_eq!(v["op"], "subscribe");
        let pong = p.control(Kind::Spot, &[], &flag, r#"{"op":"ping"}"#, 100);
        let v: Value = serde_json::from_str(&pong.reply).unwrap();
        assert_eq!(v["ret_msg"], "pong");
        let eleven: Vec<String> = (0..11)
            .map(|i| {
                format!(
                    "kline.{}.BTCUSDT",
                    [1, 3, 5, 15, 30, 60, 120, 240, 360, 720, 1][i]
                )
            })
            .collect();
        let many = json!({"op": "subscribe", "args": eleven}).to_string();
        assert!(p.control(Kind::Spot, &[], &flag, &many, 100).refused);
        for bad in [
            r#"{"op":"subscribe","args":["kline.2.BTCUSDT"]}"#,
            r#"{"op":"subscribe","args":["orderbook.1.BTCUSDT"]}"#,
            r#"{"op":"subscribe","args":["kline.1.btcusdt"]}"#,
            r#"{"op":"dance"}"#,
            "nope",
        ] {
            let c = p.control(Kind::Futures, &[], &flag, bad, 100);
            assert!(c.refused, "{bad}");
            assert!(c.add.is_empty());
        }
        let again = p.control(
            Kind::Futures,
            &["kline.1.BTCUSDT".into()],
            &flag,
            r#"{"op":"subscribe","args":["kline.1.BTCUSDT"]}"#,
            100,
        );
        assert!(again.refused);
        assert!(p.open("/v5/public/inverse", None).is_err());
        assert_eq!(
            p.open("/v5/public/linear", None).unwrap().kind,
            Kind::Futures
        );
    }
}
