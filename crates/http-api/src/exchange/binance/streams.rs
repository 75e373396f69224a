//! Binance's WebSocket market streams as served: `/ws/<stream>` (raw events), `/ws` and
//! `/ws/<anything without @>` (ccxt pro's `/ws/0`, subscribe by message),
//! `/stream?streams=a/b` (combined `{"stream","data"}` frames), the same under `/market`
//! for USD-M futures; the methods SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY
//! and GET_PROPERTY with Binance's replies and errors.

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use market_cache::{Exchange, Kind, Symbol, Timeframe};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::query::decode;
use crate::streams::protocol::{Changes, Opening, Protocol, Stream};
use crate::{Error, Result};

/// Binance's served stream protocol.
pub(crate) struct BinanceStreams;

impl Protocol for BinanceStreams {
    fn exchange(&self) -> Exchange {
        Exchange::Binance
    }
    fn route_name(&self, path: &str) -> Option<&'static str> {
        let (kind, rest) = market(path);
        let ws = rest == "/ws" || rest.starts_with("/ws/");
        let stream = rest == "/stream" || rest == "/stream/";
        if !ws && !stream {
            return None;
        }
        Some(match (kind.is_futures(), ws) {
            (false, true) => "/ws",
            (false, false) => "/stream",
            (true, true) => "/market/ws",
            (true, false) => "/market/stream",
        })
    }

    fn open(&self, path: &str, query: Option<&str>) -> Result<Opening> {
        let (kind, path) = market(path);
        let (streams, combined) = target(path, query)?;
        let streams = streams
            .into_iter()
            .map(|s| on_market(kind, s))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(Error::InvalidStream)?;
        Ok(Opening {
            kind,
            streams,
            combined,
        })
    }

    fn control(
        &self,
        kind: Kind,
        subscribed: &[String],
        combined: &AtomicBool,
        text: &str,
        max_streams: usize,
    ) -> Changes {
        let mut changes = Changes::default();
        let reply = match parse_request(text) {
            Ok(req) => apply(kind, subscribed, combined, req, max_streams, &mut changes),
            Err((id, err)) => Err((id, err)),
        };
        // Written by hand to keep Binance's key order.
        changes.reply = match reply {
            Ok((id, result)) => format!("{{\"result\":{result},\"id\":{id}}}"),
            Err((id, (code, msg))) => {
                changes.refused = true;
                changes.add.clear();
                changes.remove.clear();
                let error = json!({"code": code, "msg": msg});
                format!("{{\"error\":{error},\"id\":{id}}}")
            }
        };
        changes
    }

    fn frame(&self, name: &str, event: &Bytes, combined: bool) -> Option<Message> {
        frame(name, event, combined)
    }

    fn upstream_hint(&self, kind: Kind) -> &'static str {
        if kind == Kind::Spot {
            "--upstream-ws / [upstream] ws"
        } else {
            "--upstream-futures-ws / [upstream] futures_ws"
        }
    }
}

/// The market a stream path serves and the path within it: `/market/...` is USD-M futures
/// (`wss://fstream.binance.com/market/ws`), anything else spot.
fn market(path: &str) -> (Kind, &str) {
    match path.strip_prefix("/market") {
        Some(rest) if rest.starts_with('/') => (Kind::Futures, rest),
        _ => (Kind::Spot, path),
    }
}

/// A kline stream name, checked: `btcusdt@kline_1m` (the symbol in any case; served and
/// listed in lower case as Binance names them).
fn parse_stream(name: &str) -> std::result::Result<Stream, String> {
    let (sym, kind) = name
        .split_once('@')
        .ok_or_else(|| format!("invalid stream name `{name}`"))?;
    let interval = kind.strip_prefix("kline_").ok_or_else(|| {
        format!("unsupported stream `{name}`: candlecache serves kline streams (<symbol>@kline_<interval>)")
    })?;
    let tf: Timeframe = market_cache::binance::timeframe(interval)
        .ok_or_else(|| format!("invalid interval `{interval}` in stream `{name}`"))?;
    let symbol: Symbol = sym
        .to_ascii_uppercase()
        .parse()
        .map_err(|_| format!("invalid symbol `{sym}` in stream `{name}`"))?;
    let canonical = format!("{}@kline_{}", sym.to_ascii_lowercase(), tf);
    Ok(Stream {
        name: canonical,
        symbol,
        tf,
    })
}

type Target = (Vec<Stream>, bool);

/// A parsed stream, if `kind`'s market has it: Binance's futures streams have no `1s`.
fn on_market(kind: Kind, s: Stream) -> std::result::Result<Stream, String> {
    if kind.is_futures() && s.tf == Timeframe::S1 {
        return Err(format!(
            "invalid interval `1s` in stream `{}`: the futures market has no 1s klines",
            s.name
        ));
    }
    Ok(s)
}

/// The streams a path and query ask for, and whether frames are combined.
fn target(path: &str, query: Option<&str>) -> Result<Target> {
    let undecodable =
        || Error::InvalidStream("a stream name is not valid UTF-8 after decoding".into());
    let mut names: Vec<String> = Vec::new();
    let combined = if path == "/stream" || path == "/stream/" {
        for (k, v) in query
            .unwrap_or("")
            .split('&')
            .filter_map(|p| p.split_once('='))
        {
            if k == "streams" {
                let v = decode(v).ok_or_else(undecodable)?;
                names.extend(v.split('/').filter(|s| !s.is_empty()).map(str::to_owned));
            }
        }
        true
    } else {
        let rest = path.trim_start_matches("/ws").trim_start_matches('/');
        if rest.contains('/') {
            return Err(Error::InvalidStream(format!(
                "`{path}`: one stream per /ws/<stream>; use /stream?streams=a/b for several"
            )));
        }
        // Clients may escape the `@` (`%40`).
        let rest = decode(rest).ok_or_else(undecodable)?;
        // ccxt pro connects to /ws/0, /ws/1, ...: not a stream name, so a plain /ws.
        if rest.contains('@') {
            names.push(rest);
        }
        false
    };
    let mut streams = Vec::new();
    for n in &names {
        let s = parse_stream(n).map_err(Error::InvalidStream)?;
        if !streams.iter().any(|c: &Stream| c.name == s.name) {
            streams.push(s);
        }
    }
    Ok((streams, combined))
}

fn apply(
    kind: Kind,
    subscribed: &[String],
    combined: &AtomicBool,
    req: ControlRequest,
    max_streams: usize,
    changes: &mut Changes,
) -> std::result::Result<(Value, Value), (Value, (i32, String))> {
    let id = req.id;
    let fail = |code: i32, msg: String| Err((id.clone(), (code, msg)));
    let strings = |params: &[Value]| -> Option<Vec<String>> {
        params
            .iter()
            .map(|p| p.as_str().map(str::to_owned))
            .collect()
    };
    match req.method.as_str() {
        "SUBSCRIBE" | "UNSUBSCRIBE" => {
            let Some(names) = strings(&req.params) else {
                return fail(2, "Invalid request: stream names must be strings".into());
            };
            let mut parsed = Vec::with_capacity(names.len());
            for n in &names {
                match parse_stream(n).and_then(|s| on_market(kind, s)) {
                    Ok(s) => parsed.push(s),
                    Err(e) => return fail(2, format!("Invalid request: {e}")),
                }
            }
            if req.method == "SUBSCRIBE" {
                let mut new: Vec<Stream> = Vec::new();
                for p in parsed {
                    if !subscribed.contains(&p.name) && !new.iter().any(|q| q.name == p.name) {
                        new.push(p);
                    }
                }
                let total = subscribed.len() + new.len();
                if total > max_streams {
                    return fail(
                        2,
                        format!(
                            "Invalid request: too many streams: at most {max_streams} a connection ({total} asked)"
                        ),
                    );
                }
                changes.add = new;
            } else {
                changes.remove = parsed
                    .into_iter()
                    .map(|p| p.name)
                    .filter(|name| subscribed.contains(name))
                    .collect();
            }
            Ok((id, Value::Null))
        }
        "LIST_SUBSCRIPTIONS" => Ok((id, json!(subscribed))),
        "SET_PROPERTY" => match req.params.as_slice() {
            [Value::String(p), v] if p == "combined" => match v {
                Value::Bool(b) => {
                    combined.store(*b, Ordering::Relaxed);
                    Ok((id, Value::Null))
                }
                _ => fail(1, "Invalid value type: expected Boolean".into()),
            },
            [Value::String(_), _] => fail(0, "Unknown property".into()),
            _ => fail(2, "Invalid request: property name must be a string".into()),
        },
        "GET_PROPERTY" => match req.params.as_slice() {
            [Value::String(p)] if p == "combined" => {
                Ok((id, Value::Bool(combined.load(Ordering::Relaxed))))
            }
            [Value::String(_)] => fail(0, "Unknown property".into()),
            _ => fail(2, "Invalid request: property name must be a string".into()),
        },
        other => fail(
            2,
            format!(
                "Invalid request: unknown variant `{other}`, expected one of `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`"
            ),
        ),
    }
}

/// An event as a frame: the upstream's object as is, or wrapped for combined streams.
fn frame(name: &str, event: &Bytes, combined: bool) -> Option<Message> {
    let bytes = if combined {
        let mut b = Vec::with_capacity(event.len() + name.len() + 24);
        b.extend_from_slice(b"{\"stream\":\"");
        b.extend_from_slice(name.as_bytes());
        b.extend_from_slice(b"\",\"data\":");
        b.extend_from_slice(event);
        b.push(b'}');
        Bytes::from(b)
    } else {
        event.clone()
    };
    Utf8Bytes::try_from(bytes).ok().map(Message::Text)
}

/// A control message: `{"method": ..., "params": [...], "id": ...}`.
struct ControlRequest {
    method: String,
    params: Vec<Value>,
    id: Value,
}

type RequestError = (Value, (i32, String));

/// Reads a control message, with Binance's errors for what is wrong.
fn parse_request(text: &str) -> std::result::Result<ControlRequest, RequestError> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| (Value::Null, (3, format!("Invalid JSON: {e}"))))?;
    let Value::Object(map) = v else {
        return Err((
            Value::Null,
            (2, "Invalid request: expected an object".into()),
        ));
    };
    let id = match map.get("id") {
        Some(Value::Number(n)) if n.is_u64() => Value::Number(n.clone()),
        Some(Value::String(s))
            if s.len() <= 36 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') =>
        {
            Value::String(s.clone())
        }
        Some(Value::Null) | None => Value::Null,
        Some(_) => {
            return Err((
                Value::Null,
                (
                    2,
                    "Invalid request: request ID must be an unsigned integer".into(),
                ),
            ))
        }
    };
    if let Some(k) = map
        .keys()
        .find(|k| !matches!(k.as_str(), "method" | "params" | "id"))
    {
        return Err((
            id,
            (
                2,
                format!("Invalid request: unknown field `{k}`; too many parameters"),
            ),
        ));
    }
    let method = match map.get("method") {
        Some(Value::String(m)) => m.clone(),
        Some(_) => return Err((id, (2, "Invalid request: method must be a string".into()))),
        None => return Err((id, (2, "Invalid request: missing field `method`".into()))),
    };
    let params = match map.get("params") {
        Some(Value::Array(a)) => a.clone(),
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err((id, (2, "Invalid request: params must be an array".into()))),
    };
    Ok(ControlRequest { method, params, id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_are_checked_and_canonical() {
        let s = parse_stream("BTCUSDT@kline_1M").unwrap();
        assert_eq!(
            (s.name.as_str(), s.symbol.as_str(), s.tf),
            ("btcusdt@kline_1M", "BTCUSDT", Timeframe::Mo1)
        );
        assert_eq!(parse_stream("ethbtc@kline_1s").unwrap().tf, Timeframe::S1);
        for bad in [
            "btcusdt",
            "btcusdt@trade",
            "btcusdt@kline_2m",
            "@kline_1m",
            "b t@kline_1m",
            "btcusdt@kline_",
        ] {
            assert!(parse_stream(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_name_their_streams() {
        let (s, c) = target("/ws/btcusdt@kline_1m", None).unwrap();
        assert_eq!((s.len(), c), (1, false));
        let (s, c) = target("/ws/0", None).unwrap();
        assert_eq!((s.len(), c), (0, false));
        let (s, c) = target(
            "/stream",
            Some("streams=btcusdt@kline_1m/ethusdt@kline_5m/btcusdt@kline_1m"),
        )
        .unwrap();
        assert_eq!((s.len(), c), (2, true));
        assert!(target("/ws/a/b", None).is_err());
        assert!(target("/stream", Some("streams=btcusdt@depth")).is_err());
    }

    #[test]
    fn control_messages_get_binance_errors() {
        let code = |t: &str| parse_request(t).err().map(|(_, (c, _))| c);
        assert_eq!(code("{"), Some(3));
        assert_eq!(code("[]"), Some(2));
        assert_eq!(code(r#"{"params":[],"id":1}"#), Some(2));
        assert_eq!(
            code(r#"{"method":"SUBSCRIBE","params":[],"id":-1}"#),
            Some(2)
        );
        assert_eq!(
            code(r#"{"method":"SUBSCRIBE","params":[],"id":1,"x":2}"#),
            Some(2)
        );
        assert_eq!(
            code(r#"{"method":"SUBSCRIBE","params":{},"id":1}"#),
            Some(2)
        );
        let ok = parse_request(r#"{"method":"LIST_SUBSCRIPTIONS","id":"a1"}"#).unwrap();
        assert_eq!(
            (ok.method.as_str(), ok.id),
            ("LIST_SUBSCRIPTIONS", json!("a1"))
        );
    }

    #[test]
    fn combined_frames_wrap_the_event_unchanged() {
        let ev = Bytes::from_static(br#"{"e":"kline","k":{"c":"1.10"}}"#);
        let Some(Message::Text(t)) = frame("btcusdt@kline_1m", &ev, true) else {
            panic!()
        };
        let v: Value = serde_json::from_str(t.as_str()).unwrap();
        assert_eq!(v["stream"], "btcusdt@kline_1m");
        assert_eq!(v["data"]["k"]["c"], "1.10");
        let Some(Message::Text(t)) = frame("x", &ev, false) else {
            panic!()
        };
        assert_eq!(t.as_bytes(), &ev[..]);
    }
}
