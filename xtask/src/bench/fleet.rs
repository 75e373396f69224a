//! `cargo xtask bench fleet`: what one candlecache costs as its fleet grows. The tests'
//! fake exchange (500 spot symbols, candles forming and closing on the wall clock, its
//! streams on a `/stream` connection), one release candlecache on its REST and stream
//! APIs, and a load that behaves like a fleet of freqtrade bots: each polls the latest
//! candles of its series over `/api/v3/klines` every 5 s (freqtrade's default
//! `process_throttle_secs`), or, in the last row, ccxt pro clients holding one WebSocket
//! subscription each.
//!
//! Rows, each with a fresh exchange, server and database: series 10 / 100 / 1,000 (1m
//! and 5m of 5 / 50 / 500 symbols) with one bot polling them all; bots 10 / 100 over
//! 100 series (10 series a bot); 1,000 WebSocket clients over 1,000 streams. Measured
//! after a warm-up (every series live on the stream): exchange connections opened and
//! exchange REST requests a minute; closed-candle visibility and forming age from a
//! probe polling 10 of the series every ~100 ms, judged as the live tests judge them
//! (a closed candle's values against the exchange's final ones; the fake's forming
//! close grows with time, so a forming candle tells how old it is); the server's CPU
//! (share of one core, from /proc) and resident memory, and memory per live series
//! (resident memory under load minus before any series, divided by the series).
//!
//! Like `bench ws`, the bench runs in the release build of xtask, so the fake exchange
//! and the load are optimised too.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::{provenance, publish, rss_bytes};
use crate::fake_exchange::{self as fake, FakeExchange};
use crate::process::root;

/// A bot's pause between two rounds over its series.
const BOT_PERIOD: Duration = Duration::from_secs(5);
/// Series the probe polls for freshness.
const PROBED: usize = 10;

struct Row {
    series: usize,
    bots: usize,
    ws_clients: usize,
}

const ROWS: [Row; 6] = [
    Row {
        series: 10,
        bots: 1,
        ws_clients: 0,
    },
    Row {
        series: 100,
        bots: 1,
        ws_clients: 0,
    },
    Row {
        series: 1000,
        bots: 1,
        ws_clients: 0,
    },
    Row {
        series: 100,
        bots: 10,
        ws_clients: 0,
    },
    Row {
        series: 100,
        bots: 100,
        ws_clients: 0,
    },
    Row {
        series: 1000,
        bots: 0,
        ws_clients: 1000,
    },
];

pub(crate) fn bench(args: &[&str]) -> Result<()> {
    let usage = "usage: cargo xtask bench fleet [--seconds 90] [--only ROW,ROW] (rows 1-6 as in docs/BENCHMARKS.md)";
    let (mut seconds, mut only): (u64, Vec<usize>) = (90, Vec::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it
            .next()
            .with_context(|| format!("{a} needs a value; {usage}"))?;
        match *a {
            "--seconds" => {
                seconds = v
                    .parse()
                    .ok()
                    .filter(|s| *s >= 30)
                    .context("--seconds takes a whole number of at least 30")?;
            }
            "--only" => {
                only = v
                    .split(',')
                    .map(|r| r.parse().ok().filter(|r| (1..=ROWS.len()).contains(r)))
                    .collect::<Option<_>>()
                    .with_context(|| format!("--only takes row numbers 1-{}", ROWS.len()))?;
            }
            other => bail!("unexpected argument {other}; {usage}"),
        }
    }
    if super::in_release("fleet", args)? {
        return Ok(());
    }
    let dir = root().join("target/bench/fleet");
    std::fs::create_dir_all(&dir)?;
    let mut body = format!(
        "{}\nOne release candlecache on the tests' fake exchange (500 symbols forming candles on the wall clock, a stream event every 250 ms a series), {seconds} s measured per row after every series is live on the stream. Bots poll `/api/v3/klines?limit=3` for each of their series every 5 s; the WebSocket row holds one client a stream on `/ws/<symbol>@kline_<tf>`. Visibility and forming age from a probe polling {PROBED} of the series every ~100 ms (closed visible: from the candle's close to the first answer with the exchange's final values). CPU is the server's share of one core; memory per series is resident memory under load minus before any series, over the series (in brackets, less the bytes the cache holds for the bots' reads, which its budget bounds); heap in use is the counting allocator's live bytes (`/api/performance/memory`), so the difference to memory is what the allocator keeps of freed memory.\n\n| series | bots | WS clients | exchange stream connections open | exchange REST requests/min | closed visible p50 / p99 / max (ms, n) | forming age p50 / p99 / max (ms) | closed wrong past 3 s | requests/s (WS events/s) | server CPU | RSS | memory per series (less the cache) | heap in use per series, less the cache |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        provenance("fleet", args)
    );
    let mut goals = Vec::new();
    for (i, row) in ROWS.iter().enumerate() {
        if !only.is_empty() && !only.contains(&(i + 1)) {
            continue;
        }
        let r = measure(row, seconds, &dir)?;
        body.push_str(&r.line(row));
        if row.series == 1000 || row.bots == 100 {
            goals.push(r.verdict(row));
        }
    }
    body.push_str(&format!(
        "\nGoals (1,000 series, 100 bots; one exchange connection per 1,024 streams, no REST after warm-up, closed visible p99 <= 1 s, forming age p99 <= 1 s, under half a core, under 64 KB a series): {}.\n",
        goals.join("; ")
    ));
    publish("fleet", &body)?;
    Ok(())
}

/// What one row measured.
struct Measured {
    /// Stream connections open to the exchange at the end.
    connections: u64,
    /// Stream connections opened while measured (reconnects, rotations).
    opened: u64,
    rest_per_min: f64,
    visible: Vec<i64>,
    forming: Vec<i64>,
    wrong: usize,
    rate: f64,
    cpu: f64,
    rss: u64,
    per_series: f64,
    /// As `per_series`, less what the cache holds (the chunks and answers the bots read,
    /// bounded by the cache's budget, not by the series).
    per_series_uncached: f64,
    /// Heap bytes in use a series (the counting allocator's), less the cache: what the
    /// series hold, without what the allocator keeps of freed memory.
    heap_per_series: f64,
}

impl Measured {
    fn line(&self, row: &Row) -> String {
        let p = |v: &[i64]| format!("{} / {} / {}", pct(v, 0.5), pct(v, 0.99), pct(v, 1.0));
        format!(
            "| {} | {} | {} | {} ({} opened) | {:.1} | {} ({}) | {} | {} | {:.0} | {:.2} | {:.0} MB | {:.1} KB ({:.1} KB) | {:.1} KB |\n",
            row.series,
            row.bots,
            row.ws_clients,
            self.connections,
            self.opened,
            self.rest_per_min,
            p(&self.visible),
            self.visible.len(),
            p(&self.forming),
            self.wrong,
            self.rate,
            self.cpu,
            self.rss as f64 / 1e6,
            self.per_series / 1024.0,
            self.per_series_uncached / 1024.0,
            self.heap_per_series / 1024.0
        )
    }

    fn verdict(&self, row: &Row) -> String {
        let ok = |b: bool| if b { "met" } else { "NOT met" };
        format!(
            "{} series / {} bots / {} WS clients: connections {} ({}), REST {:.1}/min ({}), visible p99 {} ms ({}), forming p99 {} ms ({}), CPU {:.2} ({}), {:.1} KB a series less the cache ({})",
            row.series,
            row.bots,
            row.ws_clients,
            self.connections,
            ok(self.connections as usize <= row.series.div_ceil(1024)),
            self.rest_per_min,
            ok(self.rest_per_min == 0.0),
            pct(&self.visible, 0.99),
            ok(pct(&self.visible, 0.99) <= 1000),
            pct(&self.forming, 0.99),
            ok(pct(&self.forming, 0.99) <= 1000),
            self.cpu,
            ok(self.cpu < 0.5),
            self.per_series_uncached / 1024.0,
            ok(self.per_series_uncached < 64.0 * 1024.0)
        )
    }
}

/// The series of a row: 1m and 5m of the first `n / 2` symbols.
fn series(n: usize) -> Vec<(String, &'static str, i64)> {
    (0..n / 2)
        .flat_map(|i| {
            let s = fake::symbol_n(i);
            [(s.clone(), "1m", 60_000), (s, "5m", 300_000)]
        })
        .collect()
}

fn measure(row: &Row, seconds: u64, dir: &std::path::Path) -> Result<Measured> {
    let ex = FakeExchange::start();
    let db = dir.join("fleet.db");
    let (server, base) = super::serve_on_fake(&db, &ex)?;
    let pid = server.0.id();
    let idle = rss_bytes(pid)?;
    let heap_idle = live_heap(&base)?;
    let all = series(row.series);
    eprintln!(
        "xtask: fleet: {} series, {} bots, {} WebSocket clients",
        row.series, row.bots, row.ws_clients
    );
    // Warm-up: every series asked for once, then live on the stream.
    for (s, tf, _) in &all {
        crate::clients::get_json(&base, &klines(s, tf))?;
    }
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let st = crate::clients::get_json(&base, "/api/performance/stats")?;
        let live = st["data"]["upstream"]["streams"]["live_streams"]
            .as_u64()
            .unwrap_or(0);
        if live as usize >= all.len() {
            break;
        }
        if Instant::now() > until {
            bail!("only {live} of {} series became live", all.len());
        }
        // Keeps the series asked for, as the bots will.
        for (s, tf, _) in all.iter().take(PROBED) {
            let _ = crate::clients::get_json(&base, &klines(s, tf));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let polls = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    let per_bot = if row.bots > 1 { 10 } else { all.len() };
    for b in 0..row.bots {
        let mine: Vec<(String, &'static str)> = (0..per_bot)
            .map(|k| {
                let (s, tf, _) = &all[(b * per_bot + k) % all.len()];
                (s.clone(), *tf)
            })
            .collect();
        let (stop, polls, base) = (stop.clone(), polls.clone(), base.clone());
        threads.push(std::thread::spawn(move || {
            // Bots start spread over their period, as a fleet started by hand does.
            std::thread::sleep(BOT_PERIOD * (b as u32 % 50) / 50);
            while !stop.load(Ordering::Relaxed) {
                let round = Instant::now();
                for (s, tf) in &mine {
                    if crate::clients::get_json(&base, &klines(s, tf)).is_ok() {
                        polls.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let rest = BOT_PERIOD.saturating_sub(round.elapsed());
                let wake = Instant::now() + rest;
                while Instant::now() < wake && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }));
    }
    let ws = if row.ws_clients > 0 {
        let names: Vec<String> = all
            .iter()
            .map(|(s, tf, _)| format!("{}@kline_{tf}", s.to_ascii_lowercase()))
            .collect();
        Some(
            Command::new(root().join("target/release/xtask"))
                .args([
                    "ws-load",
                    &base.replacen("http://", "ws://", 1),
                    &row.ws_clients.to_string(),
                    &seconds.to_string(),
                ])
                .args(&names)
                .stdout(Stdio::piped())
                .spawn()
                .context("cannot start the WebSocket load")?,
        )
    } else {
        None
    };
    let rest_before = ex.klines_seen().len();
    let conns_before = ex.ws_connections();
    let cpu_before = cpu_ticks(pid)?;
    let started = Instant::now();
    let probed: Vec<(String, &'static str, i64)> = all.iter().take(PROBED).cloned().collect();
    let mut seen: Vec<Vec<Poll>> = vec![Vec::new(); probed.len()];
    let (mut rss, mut cached, mut heap) = (0, 0, 0);
    while started.elapsed() < Duration::from_secs(seconds) {
        for (i, (s, tf, _)) in probed.iter().enumerate() {
            let asked = fake::now_ms();
            let rows = crate::clients::get_json(&base, &klines(s, tf))?;
            let answered = fake::now_ms();
            seen[i].push(Poll {
                asked,
                answered,
                rows,
            });
            std::thread::sleep(Duration::from_millis(100 / PROBED as u64));
        }
        if rss == 0 && started.elapsed() > Duration::from_secs(seconds / 2) {
            rss = rss_bytes(pid)?;
            cached = crate::clients::get_json(&base, "/api/performance/cache")?["data"]
                ["used_bytes"]
                .as_u64()
                .unwrap_or(0);
            heap = live_heap(&base)?;
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = (cpu_ticks(pid)? - cpu_before) as f64 / ticks_per_sec() / wall;
    let rest = ex.klines_seen().len() - rest_before;
    let connections = ex.ws_open();
    let opened = ex.ws_connections() - conns_before;
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let mut rate = polls.load(Ordering::Relaxed) as f64 / wall;
    if let Some(load) = ws {
        let out = load.wait_with_output()?;
        let v: Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("ws-load printed {}", String::from_utf8_lossy(&out.stdout)))?;
        rate = v["events_per_sec"].as_f64().unwrap_or(0.0);
    }
    drop(server);
    let mut m = Measured {
        connections,
        opened,
        rest_per_min: rest as f64 / (wall / 60.0),
        visible: Vec::new(),
        forming: Vec::new(),
        wrong: 0,
        rate,
        cpu,
        rss,
        per_series: rss.saturating_sub(idle) as f64 / all.len() as f64,
        per_series_uncached: rss.saturating_sub(idle + cached) as f64 / all.len() as f64,
        heap_per_series: heap.saturating_sub(heap_idle + cached) as f64 / all.len() as f64,
    };
    for ((s, _, iv), polls) in probed.iter().zip(&seen) {
        judge(s, *iv, polls, &mut m);
    }
    Ok(m)
}

fn klines(symbol: &str, tf: &str) -> String {
    format!("/api/v3/klines?symbol={symbol}&interval={tf}&limit=3")
}

#[derive(Clone)]
struct Poll {
    asked: i64,
    answered: i64,
    rows: Value,
}

/// As the live tests judge a run of polls: per closed candle, when it was first served
/// with the exchange's final values; per forming candle, how old its values were; closed
/// candles served otherwise more than 3 s after their close.
fn judge(symbol: &str, iv: i64, polls: &[Poll], m: &mut Measured) {
    let units = |v: &Value| -> i64 {
        v.as_str()
            .and_then(|s| s.replace('.', "").parse().ok())
            .unwrap_or(0)
    };
    let mut first_final = std::collections::BTreeMap::new();
    for p in polls {
        for r in p.rows.as_array().into_iter().flatten() {
            let Some(t) = r[0].as_i64() else { continue };
            let close = t + iv;
            if close <= p.asked {
                // Compared as the row's JSON text: `Value == String` compares a JSON string.
                let served = r.to_string();
                if served == fake::row_of(symbol, iv, t, close + 10_000) {
                    first_final.entry(t).or_insert(p.answered);
                } else if p.asked - close > 3_000 {
                    m.wrong += 1;
                }
            } else {
                // The fake's forming close grows 1000 units a ms since the open.
                let as_of = t + (units(&r[4]) - units(&r[1])) / 1000;
                m.forming.push(p.asked - as_of);
            }
        }
    }
    let start = polls.first().map_or(0, |p| p.asked);
    for (t, at) in first_final {
        if t + iv > start {
            m.visible.push(at - (t + iv));
        }
    }
}

fn pct(v: &[i64], p: f64) -> i64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    if v.is_empty() {
        return 0;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Heap bytes in use, from the server's counting allocator.
fn live_heap(base: &str) -> Result<u64> {
    crate::clients::get_json(base, "/api/performance/memory")?["data"]["heap"]["live_bytes"]
        .as_u64()
        .context("no heap figures (a build without count-allocations?)")
}

/// User and system CPU time of a process, in clock ticks (`/proc/PID/stat` fields 14, 15).
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces; the fields after its closing parenthesis don't.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("no stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // After the name: state is field 3, so utime (14) and stime (15) are 11 and 12 here.
    Ok(n(11) + n(12))
}

fn ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}
