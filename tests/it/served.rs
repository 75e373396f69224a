//! Binance-compatible streams served by candlecache, against the fake exchange with its
//! clock moving: every event a client gets must be byte for byte the event the exchange
//! sent for that moment; one upstream subscription however many clients; upstream
//! reconnects invisible to clients; every limit hit and answered as specified.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use crate::fake_exchange::{self as fake, FakeExchange, WsFault};
use crate::http::{get, raw, spawn, Server};
use crate::live::{assert_stored_equal, stream_server, stream_server_with};

const NAME: &str = "btcusdt@kline_1s";

pub(crate) type Client = WebSocket<MaybeTlsStream<TcpStream>>;

fn connect(srv: &Server, path: &str) -> Client {
    connect_at(srv.addr, path)
}

pub(crate) fn connect_at(addr: std::net::SocketAddr, path: &str) -> Client {
    let (ws, resp) = tungstenite::connect(format!("ws://{addr}{path}")).unwrap();
    assert_eq!(resp.status(), 101);
    if let MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
    }
    ws
}

/// The handshake's refusal: status and the JSON error envelope.
fn refused(srv: &Server, path: &str) -> (u16, Value) {
    match tungstenite::connect(format!("ws://{}{path}", srv.addr)) {
        Err(tungstenite::Error::Http(resp)) => {
            let body: Value = serde_json::from_slice(resp.body().as_deref().unwrap_or(b"null"))
                .unwrap_or(Value::Null);
            (resp.status().as_u16(), body)
        }
        Ok(_) => panic!("{path}: the handshake was accepted"),
        Err(e) => panic!("{path}: {e}"),
    }
}

/// What a client read: text frames, or how the connection ended.
enum Got {
    Text(String),
    Closed(Option<(CloseCode, String)>),
    /// The socket failed before a close frame was read: tungstenite flushes its automatic
    /// pong before reading, and after the server has closed that write meets a broken pipe.
    Reset,
    Nothing,
}

fn next(ws: &mut Client, within: Duration) -> Got {
    let until = Instant::now() + within;
    while Instant::now() < until {
        match ws.read() {
            Ok(Message::Text(t)) => return Got::Text(t.to_string()),
            Ok(Message::Close(c)) => {
                return Got::Closed(c.map(|c| (c.code, c.reason.to_string())));
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                return Got::Closed(None)
            }
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                return Got::Reset
            }
            Err(e) => panic!("reading: {e}"),
        }
    }
    Got::Nothing
}

/// The next text frame within `within`, if one comes (a close or a reset fails the test).
pub(crate) fn text_within(ws: &mut Client, within: Duration) -> Option<String> {
    match next(ws, within) {
        Got::Text(t) => Some(t),
        Got::Nothing => None,
        Got::Closed(c) => panic!("closed: {c:?}"),
        Got::Reset => panic!("the connection was reset"),
    }
}

fn text(ws: &mut Client, within: Duration) -> String {
    match next(ws, within) {
        Got::Text(t) => t,
        Got::Closed(c) => panic!("closed: {c:?}"),
        Got::Reset => panic!("the connection was reset"),
        Got::Nothing => panic!("nothing within {within:?}"),
    }
}

/// Reads until the connection closes; the close code.
fn close_code(ws: &mut Client, within: Duration) -> Option<u16> {
    let until = Instant::now() + within;
    while Instant::now() < until {
        match next(ws, Duration::from_millis(200)) {
            Got::Closed(c) => return c.map(|(code, _)| code.into()),
            Got::Reset => panic!("reset before a close frame was read"),
            Got::Text(_) | Got::Nothing => {}
        }
    }
    panic!("not closed within {within:?}");
}

fn send(ws: &mut Client, msg: &str) {
    ws.send(Message::text(msg)).unwrap();
}

/// SUBSCRIBEs `NAME` with request `id` and checks Binance's reply.
fn subscribe(ws: &mut Client, id: u64) {
    send(
        ws,
        &format!(r#"{{"method":"SUBSCRIBE","params":["{NAME}"],"id":{id}}}"#),
    );
    assert_eq!(
        text(ws, Duration::from_secs(2)),
        format!(r#"{{"result":null,"id":{id}}}"#)
    );
}

/// The exchange's event object for the moment an event says it was sent, as the
/// exchange writes it.
fn exchange_event(stream: &str, event: &Value) -> String {
    let k = &event["k"];
    let interval = k["i"].as_str().unwrap();
    let v: Value = serde_json::from_str(&fake::kline_event(
        stream,
        interval,
        fake::interval_ms(interval).unwrap(),
        k["t"].as_i64().unwrap(),
        event["E"].as_i64().unwrap(),
    ))
    .unwrap();
    v["data"].to_string()
}

/// Checks an event frame (raw or combined) against the exchange's; returns the event.
fn check_event(frame: &str, combined: bool) -> Value {
    let (stream, data) = if combined {
        let v: Value = serde_json::from_str(frame).unwrap();
        let data = v["data"].to_string();
        // The wrapper holds the event text unchanged.
        assert_eq!(
            frame,
            format!(
                "{{\"stream\":\"{}\",\"data\":{data}}}",
                v["stream"].as_str().unwrap()
            )
        );
        (v["stream"].as_str().unwrap().to_owned(), data)
    } else {
        (NAME.to_owned(), frame.to_owned())
    };
    let event: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(
        data,
        exchange_event(&stream, &event),
        "not the exchange's event"
    );
    event
}

fn served(srv: &Server) -> Value {
    get(srv.addr, "/api/performance/stats").json()["data"]["served_streams"].clone()
}

#[test]
fn raw_combined_and_subscribing_clients_get_the_exchanges_events_byte_for_byte() {
    let ex = FakeExchange::start();
    let dir = tempfile::tempdir().unwrap();
    let srv = stream_server(&ex, dir.path());
    let mut raw_client = connect(&srv, &format!("/ws/{NAME}"));
    let first = check_event(&text(&mut raw_client, Duration::from_secs(10)), false);
    let mut combined = connect(&srv, &format!("/stream?streams={NAME}"));
    std::thread::sleep(Duration::from_millis(50));
    // ccxt pro's way: a path that is not a stream, then SUBSCRIBE.
    let mut subscriber = connect(&srv, "/ws/0");
    let asked = fake::now_ms();
    subscribe(&mut subscriber, 1);
    // Joining mid-candle, the current event comes at once: sent before we asked.
    let current = check_event(&text(&mut subscriber, Duration::from_secs(2)), false);
    assert!(current["E"].as_i64().unwrap() <= asked, "{current}");
    assert!(first["E"].as_i64() <= current["E"].as_i64());
    send(&mut subscriber, r#"{"method":"LIST_SUBSCRIPTIONS","id":2}"#);

    let until = Instant::now() + Duration::from_secs(4);
    let mut seen = [0usize; 3];
    let mut closed = [0usize; 3];
    let mut listed = false;
    while Instant::now() < until {
        for (i, ws) in [&mut raw_client, &mut combined, &mut subscriber]
            .into_iter()
            .enumerate()
        {
            if let Got::Text(t) = next(ws, Duration::from_millis(20)) {
                if t.contains("\"result\"") {
                    assert_eq!(t, format!(r#"{{"result":["{NAME}"],"id":2}}"#));
                    listed = true;
                    continue;
                }
                let e = check_event(&t, i == 1);
                seen[i] += 1;
                closed[i] += usize::from(e["k"]["x"] == true);
            }
        }
    }
    assert!(listed);
    for i in 0..3 {
        // The fake sends every 250 ms and closes a 1s candle each second.
        assert!(seen[i] >= 10 && closed[i] >= 2, "{seen:?} {closed:?}");
    }
    let s = served(&srv);
    assert_eq!(
        (s["connections"].as_u64(), s["streams"].as_u64()),
        (Some(3), Some(1)),
        "{s}"
    );
    assert_eq!(ex.ws_subscribes(), vec![NAME.to_owned()]);
}

#[test]
fn a_hundred_clients_cost_one_upstream_subscription() {
    let ex = FakeExchange::start();
    let dir = tempfile::tempdir().unwrap();
    let srv = stream_server(&ex, dir.path());
    let mut clients: Vec<Client> = (0..100)
        .map(|i| {
            if i % 2 == 0 {
                connect(&srv, &format!("/ws/{NAME}"))
            } else {
                connect(&srv, &format!("/stream?streams={NAME}"))
            }
        })
        .collect();
    for (i, ws) in clients.iter_mut().enumerate() {
        for _ in 0..2 {
            check_event(&text(ws, Duration::from_secs(10)), i % 2 == 1);
        }
    }
    let s = served(&srv);
    assert_eq!(s["connections"], 100, "{s}");
    assert_eq!(s["subscriptions"], 100, "{s}");
    assert_eq!(ex.ws_connections(), 1);
    assert_eq!(ex.ws_subscribes(), vec![NAME.to_owned()]);
    // The last client gone, the stream is no longer served.
    drop(clients);
    let until = Instant::now() + Duration::from_secs(5);
    while served(&srv)["streams"] != 0 {
        assert!(Instant::now() < until, "{}", served(&srv));
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_upstream_reconnect_is_invisible_to_clients_and_the_gap_is_backfilled() {
    let ex = FakeExchange::start();
    let dir = tempfile::tempdir().unwrap();
    let srv = stream_server(&ex, dir.path());
    let start = fake::now_ms() / 1000 * 1000;
    let mut ws = connect(&srv, &format!("/ws/{NAME}"));
    let _ = text(&mut ws, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(1));
    ex.inject_ws(&[WsFault::Drop]);
    let dropped = fake::now_ms();
    let until = Instant::now() + Duration::from_secs(5);
    let mut last_e = 0;
    while Instant::now() < until {
        match next(&mut ws, Duration::from_millis(100)) {
            Got::Text(t) => last_e = check_event(&t, false)["E"].as_i64().unwrap(),
            Got::Closed(c) => panic!("the client was closed: {c:?}"),
            Got::Reset => panic!("the client's connection was reset"),
            Got::Nothing => {}
        }
    }
    assert!(ex.ws_connections() >= 2, "no reconnect happened");
    assert!(
        last_e > dropped + 1000,
        "events did not resume: {last_e} vs {dropped}"
    );
    // The closed candles of the gap were stored from REST, equal to the exchange's.
    let end = fake::now_ms() / 1000 * 1000 - 2000;
    let db = dir.path().join("c.db");
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let got = crate::upstream::exported(&db, "1s", start, end);
        if got == crate::upstream::expected_csv(1000, start, end) || Instant::now() > until {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_stored_equal(&db, start, end);
}

#[test]
fn bad_handshakes_messages_and_frames_get_binance_errors_or_a_clean_close() {
    let ex = FakeExchange::start();
    let dir = tempfile::tempdir().unwrap();
    let srv = stream_server(&ex, dir.path());
    // Before any upgrade: the JSON envelope.
    let r = get(srv.addr, "/ws/0");
    assert_eq!(r.status, 426);
    assert_eq!(r.json()["error"]["code"], "upgrade_required");
    for path in [
        "/ws/btcusdt@depth".to_owned(),
        "/ws/btcusdt@kline_7m".to_owned(),
        "/ws/a/b".to_owned(),
    ] {
        let (status, body) = refused(&srv, &path);
        assert_eq!(status, 400, "{path}");
        assert_eq!(body["error"]["code"], "invalid_stream", "{path}: {body}");
    }
    let r = raw(
        srv.addr,
        b"GET /ws/0 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
    );
    assert_eq!(r.status, 426);

    // Control messages, paced under 5 a second.
    let mut ws = connect(&srv, "/ws/0");
    let too_many: Vec<String> = (0..1025).map(|i| format!("s{i}usdt@kline_1m")).collect();
    let cases: Vec<(String, i64, &str)> = vec![
        ("{not json".into(), 3, "Invalid JSON"),
        (
            r#"{"method":"FOO","id":1}"#.into(),
            2,
            "unknown variant `FOO`",
        ),
        (
            r#"{"params":[],"id":2}"#.into(),
            2,
            "missing field `method`",
        ),
        (
            r#"{"method":"SUBSCRIBE","params":[],"id":-3}"#.into(),
            2,
            "unsigned integer",
        ),
        (
            r#"{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":4}"#.into(),
            2,
            "kline streams",
        ),
        (
            r#"{"method":"SUBSCRIBE","params":[7],"id":5}"#.into(),
            2,
            "strings",
        ),
        (
            serde_json::json!({"method": "SUBSCRIBE", "params": too_many, "id": 6}).to_string(),
            2,
            "too many streams",
        ),
        (
            r#"{"method":"SET_PROPERTY","params":["combined",1],"id":7}"#.into(),
            1,
            "expected Boolean",
        ),
        (
            r#"{"method":"GET_PROPERTY","params":["colour"],"id":8}"#.into(),
            0,
            "Unknown property",
        ),
    ];
    for (msg, code, says) in &cases {
        send(&mut ws, msg);
        let reply: Value = serde_json::from_str(&text(&mut ws, Duration::from_secs(2))).unwrap();
        assert_eq!(reply["error"]["code"], *code, "{msg}: {reply}");
        assert!(
            reply["error"]["msg"].as_str().unwrap().contains(says),
            "{msg}: {reply}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // None of that subscribed anything upstream.
    assert!(ex.ws_subscribes().is_empty(), "{:?}", ex.ws_subscribes());
    for (msg, want) in [
        (
            r#"{"method":"GET_PROPERTY","params":["combined"],"id":9}"#,
            r#"{"result":false,"id":9}"#,
        ),
        (
            r#"{"method":"SET_PROPERTY","params":["combined",true],"id":10}"#,
            r#"{"result":null,"id":10}"#,
        ),
        (
            r#"{"method":"GET_PROPERTY","params":["combined"],"id":11}"#,
            r#"{"result":true,"id":11}"#,
        ),
    ] {
        send(&mut ws, msg);
        assert_eq!(text(&mut ws, Duration::from_secs(2)), want);
        std::thread::sleep(Duration::from_millis(250));
    }
    // Combined now: events arrive wrapped.
    subscribe(&mut ws, 12);
    check_event(&text(&mut ws, Duration::from_secs(10)), true);

    // More than 5 messages a second: closed with 1008.
    for i in 0..6 {
        let _ = ws.send(Message::text(format!(
            r#"{{"method":"LIST_SUBSCRIPTIONS","id":{i}}}"#
        )));
    }
    assert_eq!(close_code(&mut ws, Duration::from_secs(5)), Some(1008));
    // A binary frame: 1003. An oversized message: 1009.
    let mut ws = connect(&srv, "/ws/0");
    ws.send(Message::binary(vec![1u8, 2, 3])).unwrap();
    assert_eq!(close_code(&mut ws, Duration::from_secs(5)), Some(1003));
    let mut ws = connect(&srv, "/ws/0");
    let _ = ws.send(Message::text("x".repeat(70 * 1024)));
    assert_eq!(close_code(&mut ws, Duration::from_secs(5)), Some(1009));
    let s = served(&srv);
    assert_eq!(s["closed_rate"], 1, "{s}");
    assert!(s["bad_requests"].as_u64().unwrap() >= 10, "{s}");
    // The server is fine: a new client is served.
    let mut ws = connect(&srv, &format!("/ws/{NAME}"));
    check_event(&text(&mut ws, Duration::from_secs(5)), false);
}

/// A handshake by hand, for a client that never answers pings.
fn silent_client(srv: &Server, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(srv.addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    s
}

/// Server frames (unmasked) in `bytes` after the HTTP head: (opcode, payload).
fn frames(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let head = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(bytes.starts_with(b"HTTP/1.1 101"));
    let mut b = &bytes[head..];
    let mut out = Vec::new();
    while b.len() >= 2 {
        let op = b[0] & 0x0f;
        let (len, at) = match b[1] & 0x7f {
            126 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        if b.len() < at + len {
            break;
        }
        out.push((op, b[at..at + len].to_vec()));
        b = &b[at + len..];
    }
    out
}

#[test]
fn connection_pings_and_slow_client_limits_close_as_specified() {
    let ex = FakeExchange::start();
    let dir = tempfile::tempdir().unwrap();
    let srv = stream_server_with(
        &ex,
        dir.path(),
        "[server.ws]\nmax_connections = 3\nmax_streams_per_connection = 3\nping_ms = 300\npong_timeout_ms = 1000\nqueue = 8\n",
    );
    // More streams in the URL than a connection may hold.
    let (status, body) = refused(
        &srv,
        "/stream?streams=a1usdt@kline_1m/a2usdt@kline_1m/a3usdt@kline_1m/a4usdt@kline_1m",
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_stream"))
    );
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at most 3"));
    // A client that never answers a ping: pinged, then closed with 1008.
    let mut silent = silent_client(&srv, "/ws/0");
    std::thread::sleep(Duration::from_millis(1800));
    silent
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut bytes = Vec::new();
    let _ = silent.read_to_end(&mut bytes);
    let got = frames(&bytes);
    assert!(got.iter().any(|(op, _)| *op == 0x9), "no ping: {got:?}");
    let close = got
        .iter()
        .find(|(op, _)| *op == 0x8)
        .expect("a close frame");
    assert_eq!(u16::from_be_bytes([close.1[0], close.1[1]]), 1008);
    assert_eq!(served(&srv)["closed_pong"], 1);

    // At most 3 connections: the fourth handshake gets 503 with the envelope.
    let held: Vec<Client> = (0..3).map(|_| connect(&srv, "/ws/0")).collect();
    let (status, body) = refused(&srv, "/ws/0");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("busy")),
        "{body}"
    );
    assert_eq!(served(&srv)["refused"], 1);
    drop(held);

    // A client that stops reading during a burst: its queue of 8 overflows and it is
    // closed with 1008; the server's memory does not follow the burst.
    let until = Instant::now() + Duration::from_secs(5);
    while served(&srv)["connections"] != 0 {
        assert!(Instant::now() < until);
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut slow = connect(&srv, &format!("/ws/{NAME}"));
    check_event(&text(&mut slow, Duration::from_secs(10)), false);
    let before = rss_kb(&srv);
    ex.inject_ws(&[WsFault::Burst(60_000)]);
    let until = Instant::now() + Duration::from_secs(30);
    while served(&srv)["closed_slow"] != 1 {
        assert!(Instant::now() < until, "{}", served(&srv));
        std::thread::sleep(Duration::from_millis(50));
    }
    let grown_kb = rss_kb(&srv).saturating_sub(before);
    // The burst is ~25 MB of frames; a queue that followed it would hold most of it.
    assert!(grown_kb < 12_000, "grew {grown_kb} kB");
    let mut n = 0;
    let code = loop {
        match next(&mut slow, Duration::from_secs(5)) {
            Got::Text(_) => n += 1,
            Got::Closed(c) => break c.map(|(code, _)| u16::from(code)),
            // The close frame was sent (the server counted this client as closed slow,
            // above) but the client's pending pong hit the closed socket first.
            Got::Reset => break Some(1008),
            Got::Nothing => panic!("neither frames nor a close"),
        }
    };
    assert_eq!(code, Some(1008), "after {n} frames");
}

/// The server's resident memory in kB.
fn rss_kb(srv: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", srv.child.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn without_upstream_streams_the_handshake_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let srv = spawn(&dir.path().join("c.db"), &["serve"]);
    let (status, body) = refused(&srv, &format!("/ws/{NAME}"));
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "streams_unavailable", "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("--upstream-ws"));
}

#[test]
fn a_candlecache_chained_to_another_relays_the_exchanges_events() {
    let ex = FakeExchange::start();
    let dir = tempfile::tempdir().unwrap();
    let first = stream_server(&ex, dir.path());
    let second_dir = tempfile::tempdir().unwrap();
    let second = spawn(
        &second_dir.path().join("c.db"),
        &[
            "serve",
            "--upstream",
            &format!("http://{}", first.addr),
            "--upstream-ws",
            &format!("ws://{}", first.addr),
        ],
    );
    let mut ws = connect(&second, &format!("/ws/{NAME}"));
    let mut closed = 0;
    let until = Instant::now() + Duration::from_secs(4);
    let mut n = 0;
    while Instant::now() < until {
        if let Got::Text(t) = next(&mut ws, Duration::from_millis(100)) {
            let e = check_event(&t, false);
            closed += usize::from(e["k"]["x"] == true);
            n += 1;
        }
    }
    assert!(n >= 8 && closed >= 2, "{n} events, {closed} closed");
    // The exchange saw one stream connection: the first candlecache's.
    assert_eq!(ex.ws_connections(), 1);
    assert_eq!(served(&first)["connections"], 1);
    // And the second serves the edge from its stream.
    let r = get(
        second.addr,
        "/api/v3/klines?symbol=BTCUSDT&interval=1s&limit=3",
    );
    assert_eq!(r.status, 200);
}

#[test]
fn subscribing_new_streams_never_holds_up_the_events_of_others() {
    let ex = FakeExchange::start();
    let dir = tempfile::tempdir().unwrap();
    let srv = stream_server(&ex, dir.path());
    let mut ws = connect(&srv, &format!("/ws/{NAME}"));
    let _ = text(&mut ws, Duration::from_secs(10));
    // Ten more streams, one at a time: more SUBSCRIBE messages than the upstream's five
    // a second, so some wait for their turn, while this client's events must not.
    let addr = srv.addr;
    let opener = std::thread::spawn(move || {
        let others: Vec<Client> = fake::SYMBOLS[1..]
            .iter()
            .flat_map(|s| ["1s", "1m"].map(|i| format!("/ws/{}@kline_{i}", s.to_ascii_lowercase())))
            .take(10)
            .map(|path| {
                std::thread::sleep(Duration::from_millis(60));
                connect_at(addr, &path)
            })
            .collect();
        std::thread::sleep(Duration::from_secs(3));
        others
    });
    let until = Instant::now() + Duration::from_secs(3);
    let mut last = Instant::now();
    let mut longest = Duration::ZERO;
    while Instant::now() < until {
        if let Got::Text(t) = next(&mut ws, Duration::from_millis(20)) {
            check_event(&t, false);
            longest = longest.max(last.elapsed());
            last = Instant::now();
        }
    }
    let others = opener.join().unwrap();
    // The fake sends every 250 ms; a paced SUBSCRIBE once held reading for up to 1 s.
    assert!(longest < Duration::from_millis(700), "a gap of {longest:?}");
    assert_eq!(ex.ws_subscribes().len(), 11, "{:?}", ex.ws_subscribes());
    drop(others);
}

#[test]
fn futures_streams_are_relayed_on_market_ws_and_their_closes_stored_as_futures() {
    let ex = FakeExchange::start();
    let dir = tempfile::tempdir().unwrap();
    let srv = spawn(
        &dir.path().join("c.db"),
        &[
            "serve",
            "--upstream",
            &ex.url(),
            "--upstream-ws",
            "off",
            "--upstream-futures-ws",
            &format!("ws://{}/market", ex.ws_addr),
        ],
    );
    // Spot has no stream here; the futures market has.
    let (status, body) = refused(&srv, "/ws/btcusdt@kline_1m");
    assert_eq!(status, 503, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("--upstream-ws"));
    // ccxt pro's futures client: /market/ws/<n>, then SUBSCRIBE.
    let mut ws = connect(&srv, "/market/ws/0");
    send(
        &mut ws,
        r#"{"method":"SUBSCRIBE","params":["btcusdt@kline_1s"],"id":1}"#,
    );
    let reply: Value = serde_json::from_str(&text(&mut ws, Duration::from_secs(2))).unwrap();
    assert_eq!(
        reply["error"]["code"], 2,
        "futures have no 1s klines: {reply}"
    );
    send(
        &mut ws,
        r#"{"method":"SUBSCRIBE","params":["btcusdt@kline_1m"],"id":2}"#,
    );
    assert_eq!(
        text(&mut ws, Duration::from_secs(2)),
        r#"{"result":null,"id":2}"#
    );
    let until = Instant::now() + Duration::from_secs(70);
    let (mut events, mut closed) = (0, None);
    // Until a candle closed and at least three events came (a close may come first, when
    // the test starts just before a minute ends).
    while Instant::now() < until && (closed.is_none() || events < 3) {
        let Got::Text(t) = next(&mut ws, Duration::from_millis(200)) else {
            continue;
        };
        let event: Value = serde_json::from_str(&t).unwrap();
        let k = &event["k"];
        // Byte for byte the futures event the exchange sent (its prices, not spot's).
        let want: Value = serde_json::from_str(&fake::kline_event_as(
            true,
            "btcusdt@kline_1m",
            "1m",
            60_000,
            k["t"].as_i64().unwrap(),
            event["E"].as_i64().unwrap(),
        ))
        .unwrap();
        assert_eq!(t, want["data"].to_string());
        events += 1;
        if k["x"] == true && closed.is_none() {
            closed = k["t"].as_i64();
        }
    }
    assert!(events >= 3, "{events} events");
    let t = closed.expect("a 1m candle closed within 70 s");
    assert_eq!(ex.ws_connections(), 1);
    assert!(ex.ws_subscribes().iter().any(|s| s == "btcusdt@kline_1m"));
    // The closed candle is served (and stored) as the exchange's final futures candle.
    let rows = get(
        srv.addr,
        &format!("/fapi/v1/klines?symbol=BTCUSDT&interval=1m&startTime={t}&endTime={t}"),
    )
    .json();
    let want: Value =
        serde_json::from_str(&fake::futures::row("BTCUSDT", false, 60_000, t, i64::MAX)).unwrap();
    assert_eq!(rows[0], want);
    let stats = get(srv.addr, "/api/performance/stats").json();
    assert!(stats["data"]["upstream"]["futures_streams"]["closed_stored"].as_u64() >= Some(1));
    assert_eq!(served(&srv)["streams"], 1);
    let metrics = String::from_utf8(get(srv.addr, "/metrics").body).unwrap();
    assert!(
        metrics.contains("candlecache_stream_streams{exchange=\"binance\",market=\"futures\"} 1"),
        "{metrics}"
    );
    assert!(!metrics.contains("market=\"spot\""), "no spot streams here");
    // Nothing of it went to a spot series.
    let markets = get(srv.addr, "/api/crypto/markets").json();
    for m in markets["data"].as_array().unwrap() {
        assert_eq!(m["kind"], "futures", "{m}");
    }
    assert!(ex
        .klines_seen()
        .iter()
        .all(|s| s.path.starts_with("/fapi/v1/")));
}
