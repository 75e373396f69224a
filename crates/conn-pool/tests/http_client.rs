//! The HTTP client against a scripted server on a loopback port: retries, Retry-After,
//! truncated bodies, keep-alive, the weight budget and the deadline.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use conn_pool::{Error, HttpClient, HttpConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One scripted answer: raw bytes, then whether to close the connection.
struct Answer(Vec<u8>, bool);

fn ok(body: &str, extra: &str) -> Answer {
    Answer(
        format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n{extra}\r\n{body}",
            body.len()
        )
        .into_bytes(),
        false,
    )
}

fn status(code: &str, headers: &str, body: &str) -> Answer {
    Answer(
        format!(
            "HTTP/1.1 {code}\r\ncontent-length: {}\r\n{headers}\r\n{body}",
            body.len()
        )
        .into_bytes(),
        false,
    )
}

#[derive(Default)]
struct Server {
    script: Mutex<VecDeque<Answer>>,
    connections: AtomicUsize,
    /// Arrival time (epoch ms) of each request.
    arrivals: Mutex<Vec<i64>>,
}

fn epoch_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Serves `script` in order (then `200 ok`) on a loopback port; returns its base URL.
async fn serve(script: Vec<Answer>) -> (String, Arc<Server>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = Arc::new(Server {
        script: Mutex::new(script.into()),
        ..Server::default()
    });
    let s = server.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            s.connections.fetch_add(1, Ordering::SeqCst);
            let s = s.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    buf.drain(..end);
                    s.arrivals.lock().unwrap().push(epoch_ms());
                    let answer = s
                        .script
                        .lock()
                        .unwrap()
                        .pop_front()
                        .unwrap_or_else(|| ok("ok", ""));
                    if sock.write_all(&answer.0).await.is_err() || answer.1 {
                        return;
                    }
                }
            });
        }
    });
    (url, server)
}

fn config() -> HttpConfig {
    HttpConfig {
        backoff_base_ms: 10,
        backoff_max_ms: 40,
        deadline_ms: 10_000,
        ..HttpConfig::default()
    }
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff() {
    let (url, server) = serve(vec![
        status("500 Internal Server Error", "", "boom"),
        status("503 Service Unavailable", "", ""),
        ok("[1,2,3]", ""),
    ])
    .await;
    let client = HttpClient::new(config()).unwrap();
    let r = client.get(&format!("{url}/x")).await.unwrap();
    assert_eq!(&r.body[..], b"[1,2,3]");
    let s = &client.stats()[0];
    assert_eq!((s.requests, s.retries, s.errors), (3, 2, 0));
    assert_eq!(server.arrivals.lock().unwrap().len(), 3);
    assert!(s.latency_p99_ms >= s.latency_p50_ms);
}

#[tokio::test]
async fn retries_run_out() {
    let (url, _server) = serve((0..10).map(|_| status("502 Bad Gateway", "", "")).collect()).await;
    let client = HttpClient::new(HttpConfig {
        retries: 2,
        ..config()
    })
    .unwrap();
    match client.get(&url).await {
        Err(Error::Upstream { attempts, .. }) => assert_eq!(attempts, 3),
        other => panic!("{other:?}"),
    }
    assert_eq!(client.stats()[0].errors, 1);
}

#[tokio::test]
async fn retry_after_is_waited_out_without_spending_a_retry() {
    let (url, server) = serve(vec![
        status("429 Too Many Requests", "retry-after: 1\r\n", "{}"),
        status("418 I'm a teapot", "retry-after: 1\r\n", "{}"),
        ok("fine", ""),
    ])
    .await;
    // No retries at all: the waits must not count as retries.
    let client = HttpClient::new(HttpConfig {
        retries: 0,
        ..config()
    })
    .unwrap();
    let t = Instant::now();
    let r = client.get(&url).await.unwrap();
    let took = t.elapsed();
    assert_eq!(&r.body[..], b"fine");
    assert!(took >= Duration::from_secs(2), "{took:?}");
    let arrivals = server.arrivals.lock().unwrap().clone();
    assert!(arrivals[1] - arrivals[0] >= 1000 && arrivals[2] - arrivals[1] >= 1000);
    let s = &client.stats()[0];
    assert_eq!((s.rate_limited, s.retries), (2, 0));
    assert!(s.waited_ms >= 2000);
}

#[tokio::test]
async fn a_retry_after_beyond_the_deadline_fails_at_once() {
    let (url, _server) = serve(vec![status(
        "429 Too Many Requests",
        "retry-after: 30\r\n",
        "",
    )])
    .await;
    let client = HttpClient::new(HttpConfig {
        deadline_ms: 1000,
        ..config()
    })
    .unwrap();
    let t = Instant::now();
    assert!(matches!(
        client.get(&url).await,
        Err(Error::Deadline { .. })
    ));
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn truncated_bodies_are_fetched_again() {
    let (url, server) = serve(vec![
        // Promises 100 bytes, sends 9 and hangs up.
        Answer(
            b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n[1,2,3,4,".to_vec(),
            true,
        ),
        ok("[1,2,3,4,5]", ""),
    ])
    .await;
    let client = HttpClient::new(config()).unwrap();
    let r = client.get(&url).await.unwrap();
    assert_eq!(&r.body[..], b"[1,2,3,4,5]");
    assert_eq!(client.stats()[0].retries, 1);
    assert_eq!(server.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn bodies_that_do_not_decode_are_fetched_again() {
    // Complete as far as HTTP can tell (no length, closed), but cut mid-JSON.
    let (url, _server) = serve(vec![
        Answer(
            b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n[[1,2],[3".to_vec(),
            true,
        ),
        ok("[[1,2],[3,4]]", ""),
    ])
    .await;
    let client = HttpClient::new(config()).unwrap();
    let (_, v) = client
        .get_decoded(&url, |b| {
            serde_json_like_check(b)
                .then_some(b.len())
                .ok_or_else(|| "not JSON".to_owned())
        })
        .await
        .unwrap();
    assert_eq!(v, Some(13));
    assert_eq!(client.stats()[0].retries, 1);
}

/// Balanced brackets: enough of a JSON check for this test.
fn serde_json_like_check(b: &[u8]) -> bool {
    let mut depth = 0i32;
    for c in b {
        match c {
            b'[' => depth += 1,
            b']' => depth -= 1,
            _ => {}
        }
    }
    depth == 0 && !b.is_empty()
}

#[tokio::test]
async fn client_errors_are_returned_not_retried() {
    let body = r#"{"code":-1121,"msg":"Invalid symbol."}"#;
    let (url, server) = serve(vec![status("400 Bad Request", "", body)]).await;
    let client = HttpClient::new(config()).unwrap();
    let r = client.get(&url).await.unwrap();
    assert_eq!(r.status.as_u16(), 400);
    assert_eq!(&r.body[..], body.as_bytes());
    assert_eq!(server.arrivals.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn connections_are_kept_alive() {
    let (url, server) = serve(vec![]).await;
    let client = HttpClient::new(config()).unwrap();
    for _ in 0..20 {
        client.get(&url).await.unwrap();
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
    assert_eq!(client.stats()[0].requests, 20);
    assert_eq!(client.stats()[0].bytes, 40);
}

#[tokio::test]
async fn refused_connections_fail_after_the_retries() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = HttpClient::new(HttpConfig {
        retries: 1,
        ..config()
    })
    .unwrap();
    match client.get(&format!("http://{addr}/")).await {
        Err(Error::Upstream {
            attempts, reason, ..
        }) => {
            assert_eq!(attempts, 2);
            assert!(reason.contains("onnect"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_weight_budget_waits_for_the_next_window() {
    let window = 1000;
    let heavy = "x-mbx-used-weight-1m: 10\r\n";
    let (url, server) = serve(vec![ok("a", heavy), ok("b", heavy)]).await;
    let client = HttpClient::new(HttpConfig {
        weight_limit: 10,
        weight_share: 1.0,
        weight_window_ms: window,
        ..config()
    })
    .unwrap();
    client.get(&url).await.unwrap();
    client.get(&url).await.unwrap();
    let arrivals = server.arrivals.lock().unwrap().clone();
    // The upstream said the window's weight is spent, so the second request waited for
    // the next window.
    assert_ne!(arrivals[0] / window as i64, arrivals[1] / window as i64);
    assert!(client.stats()[0].waited_ms > 0);
    assert_eq!(client.stats()[0].used_weight, 10);
}

#[tokio::test]
async fn bad_urls_and_configurations_are_named() {
    let client = HttpClient::new(config()).unwrap();
    for url in ["not a url", "ftp://example.com/x", "/relative"] {
        assert!(
            matches!(client.get(url).await, Err(Error::Url { .. })),
            "{url}"
        );
    }
    let bad = HttpConfig {
        weight_share: 0.0,
        ..config()
    };
    match HttpClient::new(bad) {
        Err(Error::Config { key, .. }) => assert_eq!(key, "weight_share"),
        other => panic!("{other:?}"),
    }
}
