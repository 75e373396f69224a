//! `cargo xtask soak`: a bounded mixed workload at many connections against the release
//! server, repeated, then SIGTERM in the middle of one; figures into docs/BENCHMARKS.md.

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::bench::{generated, machine, publish};
use crate::process::root;
use crate::process::sh;

/// What the process may hold privately beyond the cache budget: the runtime, 256
/// connections' buffers, SQLite's page caches, answers being encoded.
const OVERHEAD_MB: u64 = 160;

struct Args {
    seconds: u32,
    connections: u32,
    runs: u32,
    cache_mb: u64,
}

fn parse(args: &[&str]) -> Result<Args> {
    let mut a = Args {
        seconds: 60,
        connections: 256,
        runs: 3,
        cache_mb: 256,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        let n: u64 = value
            .parse()
            .with_context(|| format!("{flag} `{value}` is not a whole number"))?;
        match *flag {
            "--seconds" if (1..=3600).contains(&n) => a.seconds = n as u32,
            "--connections" if (1..=4096).contains(&n) => a.connections = n as u32,
            "--runs" if (1..=20).contains(&n) => a.runs = n as u32,
            "--cache-mb" if (1..=100_000).contains(&n) => a.cache_mb = n,
            other => bail!("unexpected `{other} {value}`; usage: cargo xtask soak [--seconds 1..3600] [--connections 1..4096] [--runs 1..20] [--cache-mb N]"),
        }
    }
    Ok(a)
}

/// `VmRSS`, `VmHWM` (peak) and `RssAnon` + `RssShmem` (private) of a process, in bytes.
fn rss(pid: u32) -> Result<(u64, u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    Ok((
        field("VmRSS:"),
        field("VmHWM:"),
        field("RssAnon:") + field("RssShmem:"),
    ))
}

/// Runs `cmd` while sampling the private memory of `pid` every 100 ms; returns its output
/// and the highest private memory seen.
fn sampled(cmd: &mut Command, pid: u32) -> Result<(String, u64)> {
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    let sampler = std::thread::spawn(move || {
        let mut peak = 0;
        while !flag.load(std::sync::atomic::Ordering::SeqCst) {
            if let Ok((_, _, private)) = rss(pid) {
                peak = peak.max(private);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        peak
    });
    let out = sh(cmd);
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let peak = sampler.join().unwrap_or(0);
    Ok((out?, peak))
}

fn wrk(url: &str, connections: u32, seconds: u32) -> Command {
    let mut c = Command::new("timeout");
    c.arg((seconds + 60).to_string())
        .arg("wrk")
        .args(["-t2", &format!("-c{connections}"), &format!("-d{seconds}s")])
        .args(["--timeout", "10s", "-s"])
        .arg(root().join("xtask/scripts/soak.lua"))
        .arg(url);
    c
}

fn soak_line(out: &str) -> Result<Value> {
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("SOAK "))
        .with_context(|| format!("wrk printed no SOAK line:\n{out}"))?;
    Ok(serde_json::from_str(line)?)
}

fn n(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or(0)
}

pub(crate) fn soak(args: &[&str]) -> Result<()> {
    let a = parse(args)?;
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("xtask: installing wrk and curl (apt-get)");
        sh(Command::new("apt-get").arg("update"))?;
        sh(Command::new("apt-get").args(["install", "-y", "wrk", "curl"]))?;
    }
    let dir = root().join("target/bench/soak");
    std::fs::create_dir_all(&dir)?;
    let data = generated(1_000_000)?;
    let bin = crate::process::candlecache_binary(true)?;
    let db = dir.join("soak.db");
    if !db.exists() {
        sh(Command::new(&bin)
            .arg("--db")
            .arg(&db)
            .arg("import")
            .arg(&data)
            .args(["--symbol", "BTCUSDT", "--timeframe", "1m"]))?;
    }
    let db_bytes = std::fs::metadata(&db)?.len();
    let bound = a.cache_mb * 1_000_000 + OVERHEAD_MB * 1_000_000;
    let (mut server, url) =
        crate::clients::serve(&bin, &db, &["--cache-mb", &a.cache_mb.to_string()])?;
    let pid = server.0.id();
    let (rss0, _, private0) = rss(pid)?;

    let mut runs = Vec::new();
    for run in 1..=a.runs {
        eprintln!(
            "xtask: soak run {run}/{}: {} connections for {} s",
            a.runs, a.connections, a.seconds
        );
        let (out, peak_private) = sampled(&mut wrk(&url, a.connections, a.seconds), pid)?;
        let v = soak_line(&out)?;
        let (_, peak_rss, private) = rss(pid)?;
        runs.push((v, private, peak_private.max(private), peak_rss));
    }

    // SIGTERM in the middle of a run: requests in flight finish, the WAL is checkpointed,
    // the process exits 0.
    let secs = 8.min(a.seconds.max(4));
    let load = wrk(&url, a.connections, secs)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    std::thread::sleep(Duration::from_secs(u64::from(secs) / 2));
    let term_at = Instant::now();
    sh(Command::new("kill").args(["-TERM", &pid.to_string()]))?;
    let code = loop {
        if let Some(code) = server.0.try_wait()? {
            break code;
        }
        if term_at.elapsed() > Duration::from_secs(30) {
            bail!("the server did not stop within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stop_ms = term_at.elapsed().as_secs_f64() * 1000.0;
    let load = load.wait_with_output()?;
    let term = soak_line(&String::from_utf8_lossy(&load.stdout))?;
    let wal = std::fs::metadata(dir.join("soak.db-wal")).map_or(0, |m| m.len());
    drop(server);

    let mut problems = Vec::new();
    let mut s = String::new();
    writeln!(s, "## Soak: mixed load at {} connections\n", a.connections)?;
    let mut command = "cargo xtask soak".to_owned();
    for x in args {
        command.push(' ');
        command.push_str(x);
    }
    writeln!(s, "Command: `{command}`  \nRun: {}  ", machine())?;
    writeln!(s, "Load: `wrk -t2 -c{} -d{}s --timeout 10s -s xtask/scripts/soak.lua`, {} runs against one release server (`--cache-mb {}`) over 1M generated 1m candles ({:.0} MB database): 40 % cached hits (JSON, CSV, Binance klines, markets), 25 % uncached 1m ranges, 15 % resamples (5m to 1w), 10 % Arrow and CSV ranges, 10 % bad requests (bad parameters, injection, traversal, unknown paths). Memory from /proc: private = RssAnon + RssShmem (what the process itself holds; sampled every 100 ms for the peak), RSS = VmHWM, which also counts the database's file pages once per SQLite connection that maps them (the OS's page cache, shared). Bound on private memory = cache budget + {OVERHEAD_MB} MB.\n", a.connections, a.seconds, a.runs, a.cache_mb, db_bytes as f64 / 1e6)?;
    writeln!(s, "| run | requests | requests/s | p50 ms | p99 ms | max ms | 2xx | 4xx | 5xx | socket errors | private after MB | private peak MB | RSS peak MB |")?;
    writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")?;
    for (i, (v, now, peak, peak_rss)) in runs.iter().enumerate() {
        let sock =
            n(v, "connect_errors") + n(v, "read_errors") + n(v, "write_errors") + n(v, "timeouts");
        let secs = v["duration_s"].as_f64().unwrap_or(1.0);
        writeln!(
            s,
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.1} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} |",
            i + 1,
            n(v, "requests"),
            n(v, "requests") as f64 / secs,
            v["p50_ms"].as_f64().unwrap_or(0.0),
            v["p99_ms"].as_f64().unwrap_or(0.0),
            v["max_ms"].as_f64().unwrap_or(0.0),
            n(v, "ok"),
            n(v, "client_error"),
            n(v, "server_error"),
            sock,
            *now as f64 / 1e6,
            *peak as f64 / 1e6,
            *peak_rss as f64 / 1e6
        )?;
        if n(v, "server_error") > 0 {
            problems.push(format!("run {}: {} 5xx", i + 1, n(v, "server_error")));
        }
        if sock > 0 {
            problems.push(format!("run {}: {sock} socket errors", i + 1));
        }
        if *peak > bound {
            problems.push(format!(
                "run {}: peak private memory {:.1} MB over the bound {:.1} MB",
                i + 1,
                *peak as f64 / 1e6,
                bound as f64 / 1e6
            ));
        }
    }
    let first = runs.first().map_or(0, |r| r.1);
    let last = runs.last().map_or(0, |r| r.1);
    let growth = last as f64 / first.max(1) as f64 - 1.0;
    writeln!(s, "\nPrivate memory at start {:.1} MB (RSS {:.1} MB); after run 1 {:.1} MB, after run {} {:.1} MB ({:+.1} %); bound {:.1} MB.", private0 as f64 / 1e6, rss0 as f64 / 1e6, first as f64 / 1e6, runs.len(), last as f64 / 1e6, growth * 100.0, bound as f64 / 1e6)?;
    if runs.len() > 1 && growth > 0.10 {
        problems.push(format!(
            "private memory grew {:.1} % from run 1 to the last",
            growth * 100.0
        ));
    }
    writeln!(s, "SIGTERM {:.0} s into a {secs} s run at {} connections: exit {}, stopped {stop_ms:.0} ms after the signal, WAL left {wal} bytes; during that run {} answers 2xx, {} 5xx, {} read errors (connections cut at exit or refused after it: {} connect errors).", secs / 2, a.connections, code.code().unwrap_or(-1), n(&term, "ok"), n(&term, "server_error"), n(&term, "read_errors"), n(&term, "connect_errors"))?;
    if !code.success() {
        problems.push(format!("exit after SIGTERM: {code}"));
    }
    if wal != 0 {
        problems.push(format!("{wal} bytes left in the WAL after SIGTERM"));
    }
    if n(&term, "server_error") > 0 {
        problems.push("5xx during shutdown".into());
    }
    if problems.is_empty() {
        writeln!(s, "\nAll checks held: no 5xx, no socket errors, peak private memory under the bound, no growth over 10 % between runs, clean exit on SIGTERM.")?;
    } else {
        writeln!(s, "\nProblems: {}.", problems.join("; "))?;
    }
    publish("soak", &s)?;
    if !problems.is_empty() {
        bail!("soak: {}", problems.join("; "));
    }
    Ok(())
}
