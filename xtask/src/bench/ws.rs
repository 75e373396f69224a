//! `cargo xtask bench ws`: served streams under load. Many clients over many streams,
//! candlecache against a bare fan-out baseline (a minimal tokio-tungstenite server
//! written only for this bench: one upstream connection, a broadcast channel per stream,
//! no limits, no validation), both fed by the tests' fake exchange in the same run.
//! Measured per target: events delivered a second, event-to-client latency (the
//! client's clock minus the exchange's event time `E`), and resident memory per client.
//!
//! The baseline server and the load client run from the release build of xtask (hidden
//! tasks `ws-baseline` and `ws-load`), so every party is optimised.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::{provenance, publish, rss_bytes};
use crate::fake_exchange::{self as fake, FakeExchange};
use crate::process::root;
use crate::process::Started;

struct Options {
    clients: usize,
    streams: usize,
    seconds: u64,
}

/// The exchange's pace per stream: an event every 250 ms (Binance sends kline updates
/// every 1-2 s, so this is already several times its rate), and a stress rate.
const PERIODS_MS: [u64; 2] = [250, 20];

fn options(args: &[&str]) -> Result<Options> {
    let mut o = Options {
        clients: 1000,
        streams: 50,
        seconds: 20,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it
            .next()
            .with_context(|| format!("{a} needs a number"))?
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .with_context(|| format!("{a} takes a positive whole number"))?;
        match *a {
            "--clients" => o.clients = v as usize,
            "--streams" => o.streams = v as usize,
            "--seconds" => o.seconds = v,
            other => bail!(
                "unexpected argument {other}; usage: cargo xtask bench ws [--clients 1000] [--streams 50] [--seconds 20]"
            ),
        }
    }
    Ok(o)
}

/// Stream names the fake exchange serves: its symbols times its intervals.
fn stream_names(n: usize) -> Result<Vec<String>> {
    let intervals = ["1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "1d"];
    let names: Vec<String> = intervals
        .iter()
        .flat_map(|i| {
            fake::SYMBOLS
                .iter()
                .map(move |s| format!("{}@kline_{i}", s.to_ascii_lowercase()))
        })
        .take(n)
        .collect();
    if names.len() < n {
        bail!("the fake exchange serves at most {} streams", names.len());
    }
    Ok(names)
}

pub(crate) fn bench(args: &[&str]) -> Result<()> {
    let o = options(args)?;
    let names = stream_names(o.streams)?;
    // The fake exchange runs in this process: optimised like every other party.
    if super::in_release("ws", args)? {
        return Ok(());
    }
    let xtask = root().join("target/release/xtask");
    let dir = root().join("target/bench/ws");
    std::fs::create_dir_all(&dir)?;
    let mut body = format!(
        "{}\n{} clients, each on one of {} streams (`/ws/<stream>`, {} clients a stream), fed by the tests' fake exchange (one connection per server), {} s measured after all connected. Latency: the client's clock minus the event's `E` (the exchange's send time), so it includes the exchange's own sending; memory: the server's resident memory with the clients connected minus before, per client. The baseline is a bare tokio-tungstenite fan-out written for this bench (one broadcast channel per stream, no limits, no validation).\n\n| exchange pace per stream | server | events delivered/s | vs baseline | latency p50 | p99 | max | memory per client |\n|---|---|---|---|---|---|---|---|\n",
        provenance("ws", args),
        o.clients,
        o.streams,
        o.clients / o.streams.max(1),
        o.seconds
    );
    let mut verdicts = Vec::new();
    for period in PERIODS_MS {
        let rows = measure(&o, &names, &xtask, &dir, period)?;
        let base_rate = rows[0].1["events_per_sec"].as_f64().unwrap_or(0.0);
        for (target, r, per_client) in &rows {
            let rate = r["events_per_sec"].as_f64().unwrap_or(0.0);
            body.push_str(&format!(
                "| every {period} ms | {target} | {} | {:.2}x | {} ms | {} ms | {} ms | {:.1} KB |\n",
                super::si(rate),
                rate / base_rate.max(1.0),
                r["p50_ms"],
                r["p99_ms"],
                r["max_ms"],
                per_client / 1024.0
            ));
        }
        let cc = &rows[1].1;
        let ratio = cc["events_per_sec"].as_f64().unwrap_or(0.0) / base_rate.max(1.0);
        let p99 = cc["p99_ms"].as_u64().unwrap_or(u64::MAX);
        verdicts.push(format!(
            "every {period} ms: {ratio:.2}x the baseline's events/s (goal 0.8x: {}), p99 {p99} ms (goal under 10 ms: {})",
            if ratio >= 0.8 { "met" } else { "NOT met" },
            if p99 < 10 { "met" } else { "NOT met" },
        ));
    }
    body.push_str(&format!("\n{}.\n", verdicts.join("; ")));
    publish("ws", &body)?;
    Ok(())
}

/// One pace: the baseline, then candlecache, each with a fresh fake exchange.
fn measure(
    o: &Options,
    names: &[String],
    xtask: &std::path::Path,
    dir: &std::path::Path,
    period: u64,
) -> Result<Vec<(&'static str, Value, f64)>> {
    let mut rows = Vec::new();
    for target in ["bare fan-out (baseline)", "candlecache"] {
        let ex = FakeExchange::start();
        ex.set_ws_period(period);
        let (server, url) = if target == "candlecache" {
            let db = dir.join("ws.db");
            let (s, base) = super::serve_on_fake(&db, &ex)?;
            (s, base.replacen("http://", "ws://", 1))
        } else {
            start_baseline(xtask, &ex.ws_url(), names)?
        };
        eprintln!(
            "xtask: {target}: {} clients over {} streams, an event every {period} ms a stream, {} s",
            o.clients, o.streams, o.seconds
        );
        let pid = server.0.id();
        let idle = rss_bytes(pid)?;
        let load = Command::new(xtask)
            .args([
                "ws-load",
                &url,
                &o.clients.to_string(),
                &o.seconds.to_string(),
            ])
            .args(names)
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start the load client")?;
        // Memory with every client connected, sampled in the middle of the run.
        std::thread::sleep(Duration::from_secs(o.seconds / 2 + 5));
        let loaded = rss_bytes(pid)?;
        let out = load.wait_with_output()?;
        drop(server);
        if !out.status.success() {
            bail!("the load client failed against {target}");
        }
        let r: Value = serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "load client output: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })?;
        let per_client = loaded.saturating_sub(idle) as f64 / o.clients as f64;
        rows.push((target, r, per_client));
    }
    Ok(rows)
}

fn start_baseline(
    xtask: &std::path::Path,
    upstream: &str,
    names: &[String],
) -> Result<(Started, String)> {
    crate::clients::listening(
        Command::new(xtask)
            .args(["ws-baseline", upstream])
            .args(names),
    )
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// `xtask ws-baseline UPSTREAM STREAM...`: the bare fan-out server.
#[allow(clippy::result_large_err)] // tungstenite's callback type, not ours.
pub(crate) fn baseline(args: &[&str]) -> Result<()> {
    let [upstream, names @ ..] = args else {
        bail!("usage: xtask ws-baseline UPSTREAM STREAM...");
    };
    let upstream = format!("{upstream}/stream");
    let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    runtime()?.block_on(async move {
        let mut feeds: HashMap<String, broadcast::Sender<Bytes>> = HashMap::new();
        for n in &names {
            feeds.insert(n.clone(), broadcast::channel(1024).0);
        }
        let feeds = Arc::new(feeds);
        let (ws, _) = tokio_tungstenite::connect_async(upstream.as_str()).await?;
        let (mut sink, mut stream) = ws.split();
        sink.send(Message::text(
            json!({"method": "SUBSCRIBE", "params": names, "id": 1}).to_string(),
        ))
        .await?;
        let up = feeds.clone();
        tokio::spawn(async move {
            #[derive(serde::Deserialize)]
            struct Frame<'a> {
                stream: &'a str,
                #[serde(borrow)]
                data: &'a serde_json::value::RawValue,
            }
            while let Some(Ok(m)) = stream.next().await {
                if let Message::Text(t) = m {
                    if let Ok(f) = serde_json::from_str::<Frame<'_>>(t.as_str()) {
                        if let Some(tx) = up.get(f.stream) {
                            let _ = tx.send(Bytes::copy_from_slice(f.data.get().as_bytes()));
                        }
                    }
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("listening on ws://{}", listener.local_addr()?);
        loop {
            let (tcp, _) = listener.accept().await?;
            let _ = tcp.set_nodelay(true);
            let feeds = feeds.clone();
            tokio::spawn(async move {
                let mut path = String::new();
                let Ok(ws) = tokio_tungstenite::accept_hdr_async(
                    tcp,
                    |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
                        path = req.uri().path().to_owned();
                        Ok(resp)
                    },
                )
                .await
                else {
                    return;
                };
                let name = path.trim_start_matches("/ws/");
                let Some(mut rx) = feeds.get(name).map(broadcast::Sender::subscribe) else {
                    return;
                };
                let (mut sink, mut incoming) = ws.split();
                loop {
                    tokio::select! {
                        ev = rx.recv() => match ev {
                            Ok(b) => {
                                let Ok(t) = Utf8Bytes::try_from(b) else { continue };
                                if sink.send(Message::Text(t)).await.is_err() { return }
                            }
                            Err(broadcast::error::RecvError::Lagged(_)) => {}
                            Err(broadcast::error::RecvError::Closed) => return,
                        },
                        m = incoming.next() => if !matches!(m, Some(Ok(_))) { return },
                    }
                }
            });
        }
    })
}

/// `xtask ws-load URL CLIENTS SECONDS STREAM...`: connects the clients (client i to
/// stream i mod n), waits until all are connected, measures for SECONDS and prints one
/// JSON line.
pub(crate) fn load(args: &[&str]) -> Result<()> {
    let [url, clients, seconds, names @ ..] = args else {
        bail!("usage: xtask ws-load URL CLIENTS SECONDS STREAM...");
    };
    let clients: usize = clients.parse()?;
    let seconds: u64 = seconds.parse()?;
    let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    let url = (*url).to_owned();
    runtime()?.block_on(async move {
        let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let delivered = Arc::new(AtomicU64::new(0));
        // Latency histogram in ms, 0..=1000 (the last bucket is "1000 or more").
        let hist: Arc<Vec<AtomicU64>> = Arc::new((0..=1000).map(|_| AtomicU64::new(0)).collect());
        let connected = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for i in 0..clients {
            let target = format!("{url}/ws/{}", names[i % names.len()]);
            let (measuring, delivered, hist, connected) = (
                measuring.clone(),
                delivered.clone(),
                hist.clone(),
                connected.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let Ok((ws, _)) = tokio_tungstenite::connect_async(target.as_str()).await else {
                    return;
                };
                connected.fetch_add(1, Ordering::SeqCst);
                let (_sink, mut stream) = ws.split();
                while let Some(Ok(m)) = stream.next().await {
                    let Message::Text(t) = m else { continue };
                    if !measuring.load(Ordering::Relaxed) {
                        continue;
                    }
                    let now = fake::now_ms();
                    // `"E":` is the event time; found without parsing the whole event.
                    let e = t
                        .as_str()
                        .split_once("\"E\":")
                        .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
                        .and_then(|v| v.parse::<i64>().ok());
                    if let Some(e) = e {
                        let ms = (now - e).clamp(0, 1000) as usize;
                        hist[ms].fetch_add(1, Ordering::Relaxed);
                        delivered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
            // Connects in a steady stream rather than one burst of SYNs.
            if i % 50 == 49 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let until = tokio::time::Instant::now() + Duration::from_secs(30);
        while (connected.load(Ordering::SeqCst) as usize) < clients
            && tokio::time::Instant::now() < until
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let all = connected.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(2)).await;
        measuring.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        measuring.store(false, Ordering::SeqCst);
        let n = delivered.load(Ordering::SeqCst);
        let counts: Vec<u64> = hist.iter().map(|c| c.load(Ordering::SeqCst)).collect();
        let pct = |p: f64| -> usize {
            let want = (n as f64 * p).ceil() as u64;
            let mut seen = 0;
            for (ms, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= want.max(1) {
                    return ms;
                }
            }
            1000
        };
        let max = counts.iter().rposition(|c| *c > 0).unwrap_or(0);
        println!(
            "{}",
            json!({
                "connected": all,
                "events": n,
                "events_per_sec": n as f64 / seconds as f64,
                "p50_ms": pct(0.5),
                "p99_ms": pct(0.99),
                "max_ms": max,
            })
        );
        for t in tasks {
            t.abort();
        }
        if (all as usize) < clients {
            bail!("only {all} of {clients} clients connected");
        }
        Ok(())
    })
}
