//! One served stream connection: the handshake (checked before any upgrade), a reader
//! that applies the protocol's control messages and the limits (messages a second, pings
//! and pongs, sizes, binary frames), and a writer that drains the client's queue into the
//! socket and sends the close frame.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use market_cache::Kind;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::hub::{Client, Hub};
use super::protocol::{Opening, Protocol, Stream};
use crate::{Error, Result};

impl Hub {
    /// Answers a stream handshake: 101 and a task serving the connection, or an error
    /// before any upgrade (bad stream, no upstream streams, too many connections).
    pub(crate) fn upgrade(
        self: &Arc<Self>,
        protocol: &'static dyn Protocol,
        mut req: Request<Incoming>,
    ) -> Result<Response<http_body_util::Full<Bytes>>> {
        let Opening {
            kind,
            streams,
            combined,
        } = protocol.open(req.uri().path(), req.uri().query())?;
        let headers = req.headers();
        let has = |name, token: &str| {
            headers.get_all(name).iter().any(|v| {
                v.to_str()
                    .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            })
        };
        let key = headers.get(SEC_WEBSOCKET_KEY).map(HeaderValue::as_bytes);
        let (true, true, Some(key)) = (has(UPGRADE, "websocket"), has(CONNECTION, "upgrade"), key)
        else {
            return Err(Error::UpgradeRequired(
                "this is a WebSocket endpoint: connect with a WebSocket client (Upgrade: websocket)"
                    .into(),
            ));
        };
        if headers
            .get("sec-websocket-version")
            .is_none_or(|v| v.as_bytes() != b"13")
        {
            return Err(Error::UpgradeRequired(
                "Sec-WebSocket-Version must be 13".into(),
            ));
        }
        // RFC 6455 4.1: 16 random bytes in base64, so 22 characters and `==`.
        let key_ok = key.len() == 24
            && key.ends_with(b"==")
            && key[..22]
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/');
        if !key_ok {
            return Err(Error::InvalidFormat(
                "Sec-WebSocket-Key must be 16 bytes in base64 (RFC 6455)".into(),
            ));
        }
        if streams.len() > self.config.max_streams_per_connection {
            return Err(Error::InvalidStream(format!(
                "{} streams asked; at most {} a connection",
                streams.len(),
                self.config.max_streams_per_connection
            )));
        }
        if !self.read.has_streams(protocol.exchange(), kind) {
            return Err(Error::StreamsUnavailable(format!(
                "no {kind} upstream stream is configured ({}); served streams relay the upstream's events",
                protocol.upstream_hint(kind)
            )));
        }
        let taken = self.connections.fetch_add(1, Ordering::AcqRel);
        if taken >= self.config.max_connections {
            self.connections.fetch_sub(1, Ordering::AcqRel);
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            return Err(Error::Busy(format!(
                "{} stream connections are open, the configured maximum",
                self.config.max_connections
            )));
        }
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key);
        let on_upgrade = hyper::upgrade::on(&mut req);
        let hub = self.clone();
        tokio::spawn(async move {
            let _slot = Slot(hub.clone());
            // A client that goes away during the handshake is not an error.
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            let mut ws_config = WebSocketConfig::default();
            ws_config.max_message_size = Some(hub.config.max_message_bytes);
            ws_config.max_frame_size = Some(hub.config.max_message_bytes);
            // Clients send a few small control messages; tungstenite's 128 KiB read
            // buffer per connection would be most of a client's memory.
            ws_config.read_buffer_size = 4 * 1024;
            ws_config.write_buffer_size = 16 * 1024;
            let ws = WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                Some(ws_config),
            )
            .await;
            hub.serve(ws, protocol, kind, streams, combined).await;
        });
        let mut resp = Response::new(http_body_util::Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = resp.headers_mut();
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Ok(v) = HeaderValue::from_str(&accept) {
            h.insert(SEC_WEBSOCKET_ACCEPT, v);
        }
        Ok(resp)
    }

    /// Serves one connection until either side closes it.
    async fn serve<T>(
        self: &Arc<Self>,
        ws: WebSocketStream<T>,
        protocol: &'static dyn Protocol,
        kind: Kind,
        streams: Vec<Stream>,
        combined: bool,
    ) where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(self.config.queue);
        let client = Arc::new(Client {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            protocol,
            kind,
            tx,
            combined: AtomicBool::new(combined),
            close: watch::channel(None).0,
        });
        let (sink, mut stream) = ws.split();
        let writer = tokio::spawn(write(
            sink,
            rx,
            client.close.subscribe(),
            self.stop.subscribe(),
        ));
        let mut subscribed: Vec<String> = Vec::new();
        for stream in &streams {
            self.subscribe(&client, stream);
            subscribed.push(stream.name.clone());
        }
        let max_rate = protocol.max_messages_per_sec(self.config.max_messages_per_sec);
        let mut closing = client.close.subscribe();
        let mut stop = self.stop.subscribe();
        let mut recent: std::collections::VecDeque<tokio::time::Instant> =
            std::collections::VecDeque::new();
        let ping_every = Duration::from_millis(self.config.ping_ms);
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
        let mut last_pong = tokio::time::Instant::now();
        let pong_timeout = Duration::from_millis(self.config.pong_timeout_ms);
        loop {
            tokio::select! {
                frame = stream.next() => {
                    let counted = matches!(
                        frame,
                        Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_)))
                    );
                    if counted && !self.within_rate(&mut recent, max_rate) {
                        self.counters.closed_rate.fetch_add(1, Ordering::Relaxed);
                        client.close(1008, "too many messages a second");
                        break;
                    }
                    match frame {
                        None | Some(Ok(Message::Close(_))) => {
                            client.close(1000, "");
                            break;
                        }
                        Some(Err(e)) => {
                            use tokio_tungstenite::tungstenite::Error as WsError;
                            let (code, reason) = match e {
                                WsError::Capacity(_) => (1009, "message too big"),
                                WsError::Protocol(_) | WsError::Utf8(_) => (1002, "protocol error"),
                                _ => (1000, ""),
                            };
                            client.close(code, reason);
                            break;
                        }
                        Some(Ok(Message::Text(t))) => {
                            let changes = protocol.control(
                                kind,
                                &subscribed,
                                &client.combined,
                                t.as_str(),
                                self.config.max_streams_per_connection,
                            );
                            if changes.refused {
                                self.counters.bad_requests.fetch_add(1, Ordering::Relaxed);
                            }
                            for name in &changes.remove {
                                if let Some(i) = subscribed.iter().position(|s| s == name) {
                                    subscribed.remove(i);
                                    self.unsubscribe(&client, name);
                                }
                            }
                            subscribed.extend(changes.add.iter().map(|s| s.name.clone()));
                            client.push(Message::text(changes.reply), &self.counters);
                            for more in changes.more_replies {
                                client.push(Message::text(more), &self.counters);
                            }
                            // After the reply, as the exchanges order them: each new
                            // stream's current event.
                            for stream in &changes.add {
                                self.subscribe(&client, stream);
                            }
                        }
                        Some(Ok(Message::Binary(_))) => {
                            self.counters.bad_requests.fetch_add(1, Ordering::Relaxed);
                            client.close(1003, "binary frames are not accepted; send JSON text");
                            break;
                        }
                        Some(Ok(Message::Pong(_))) => last_pong = tokio::time::Instant::now(),
                        // Pings are answered by tungstenite itself.
                        Some(Ok(_)) => {}
                    }
                }
                _ = ping.tick() => {
                    if last_pong.elapsed() >= pong_timeout {
                        self.counters.closed_pong.fetch_add(1, Ordering::Relaxed);
                        client.close(1008, "no pong within the timeout");
                        break;
                    }
                    client.push(Message::Ping(Bytes::new()), &self.counters);
                }
                _ = closing.changed() => break,
                _ = stop.changed() => {
                    client.close(1001, "server shutting down");
                    break;
                }
            }
        }
        for name in &subscribed {
            self.unsubscribe(&client, name);
        }
        // The writer sends the close frame (bounded in time) and ends.
        let _ = writer.await;
    }

    /// True while the client stays within its messages a second.
    fn within_rate(
        &self,
        recent: &mut std::collections::VecDeque<tokio::time::Instant>,
        max: usize,
    ) -> bool {
        let now = tokio::time::Instant::now();
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            recent.pop_front();
        }
        recent.push_back(now);
        recent.len() <= max
    }
}

/// Gives a connection slot back when its task ends.
struct Slot(Arc<Hub>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How long a closing client's socket gets to take the close frame (a slow client's
/// socket may still be full of events), after which the connection is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Writes a client's queue to its socket, batching what is queued; on a close reason
/// (or the server stopping) sends the close frame within [`CLOSE_GRACE`].
async fn write<S>(
    mut sink: S,
    mut rx: mpsc::Receiver<Message>,
    mut close: watch::Receiver<Option<(u16, &'static str)>>,
    mut stop: watch::Receiver<bool>,
) where
    S: futures_util::Sink<Message> + Unpin,
{
    let mut going_away = false;
    loop {
        tokio::select! {
            biased;
            _ = close.changed() => break,
            _ = stop.changed() => {
                going_away = true;
                break;
            }
            m = rx.recv() => {
                let Some(m) = m else { break };
                let sent = async {
                    sink.feed(m).await?;
                    while let Ok(m) = rx.try_recv() {
                        sink.feed(m).await?;
                    }
                    sink.flush().await
                };
                tokio::select! {
                    r = sent => if r.is_err() { return },
                    // A socket that does not drain is abandoned when the client is closed.
                    _ = close.changed() => break,
                }
            }
        }
    }
    let reason = *close.borrow();
    let (code, reason) = match (reason, going_away) {
        (Some(r), _) => r,
        (None, true) => (1001, "server shutting down"),
        (None, false) => (1000, ""),
    };
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        sink.send(Message::Close(Some(frame))).await
    })
    .await;
}
