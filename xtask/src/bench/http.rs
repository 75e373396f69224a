//! `cargo xtask bench http`: the release server under wrk against nginx serving the same
//! bytes and the Flask system it replaces.

use std::fmt::Write as _;
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::*;
use crate::process::{python_env, root, sh, wait_http, wrk, wrk_script, Started};

/// 1h candles in the 1h aggregation of the 1M generated 1m candles.
const NARROW_HOURS: u64 = 16_666;
/// 1h candles of the wide symbol: the span issue 30's users measured.
const WIDE_HOURS: u64 = 60_000;

/// `api_responses` entries demoted to the compressed tier so far.
fn responses_demoted(host: &str) -> Result<u64> {
    let body = sh(Command::new("curl").args(["-s", &format!("{host}/api/performance/cache")]))?;
    let v: serde_json::Value = serde_json::from_str(&body).context("/api/performance/cache")?;
    Ok(v["data"]["namespaces"]["api_responses"]["demotions"]
        .as_u64()
        .unwrap_or(0))
}

pub(crate) fn http(args: &[&str]) -> Result<()> {
    let secs: u32 = match args {
        [] => 10,
        ["--seconds", s] => s.parse().context("--seconds takes a whole number")?,
        other => {
            bail!("unexpected arguments {other:?}; usage: cargo xtask bench http [--seconds S]")
        }
    };
    let shared = root().join("../shared/baselines");
    if !shared.join("flask_seed/app.py").exists() {
        bail!(
            "the Flask baseline is expected in {} (the project's shared/baselines)",
            shared.display()
        );
    }
    let bench = root().join("target/bench/http");
    std::fs::create_dir_all(&bench)?;
    // Peers: wrk and nginx from Debian, Flask/gunicorn/pandas from PyPI.
    if Command::new("wrk").arg("--version").output().is_err()
        || Command::new("nginx").arg("-v").output().is_err()
    {
        eprintln!("xtask: installing wrk and nginx (apt-get)");
        sh(Command::new("apt-get").arg("update"))?;
        sh(Command::new("apt-get").args(["install", "-y", "wrk", "nginx", "curl"]))?;
    }
    let python = python_env(
        &bench.join("venv"),
        "flask, gunicorn, pandas",
        &["flask", "gunicorn", "pandas"],
    )?;
    // The same rows for everyone: 1M generated 1m candles and their 1h aggregation.
    let m1 = generated(1_000_000)?;
    let h1 = bench.join("BTCUSDT-1h.csv");
    if !h1.exists() {
        crate::gen::derive_1h(&m1, &h1)?;
    }
    let flask_db = bench.join("flask.db");
    if !flask_db.exists() {
        sh(Command::new(&python)
            .arg(shared.join("flask_seed/load_sqlite.py"))
            .arg(&flask_db)
            .arg(format!("{}:BTCUSDT:1m", m1.display()))
            .arg(format!("{}:BTCUSDT:1h", h1.display())))?;
    }
    // The same server without the counting allocator, to measure what counting costs.
    crate::process::cargo(
        &[
            "build",
            "--release",
            "-p",
            "candlecache",
            "--no-default-features",
        ],
        &[],
    )?;
    let plain = bench.join("candlecache-plain");
    std::fs::copy(root().join("target/release/candlecache"), &plain)?;
    let bin = crate::process::candlecache_binary(true)?;
    let ours_db = bench.join("candlecache.db");
    if !ours_db.exists() {
        sh(Command::new(&bin)
            .arg("--db")
            .arg(&ours_db)
            .arg("import")
            .arg(&m1)
            .arg(&h1))?;
    }
    // 1000 hourly candles, 100 days in; the Flask app's end is inclusive, ours is not.
    let first_1h = 1_577_836_800_000i64;
    let start = first_1h + 2400 * 3_600_000;
    let end = start + 1000 * 3_600_000;
    let ours_q = format!("/api/crypto/ohlc?symbol=BTCUSDT&timeframe=1h&start={start}&end={end}");
    let flask_q = format!(
        "/api/crypto/ohlc?symbol=BTCUSDT&timeframe=1h&start={start}&end={}",
        end - 3_600_000
    );

    let mut rows = Vec::new();
    let body = bench.join("ours.json");
    // Counting and plain allocator, alternated three times each so drift on the shared
    // cores falls on both; the medians are compared.
    let mut runs: [Vec<(f64, String, String, u64)>; 2] = [Vec::new(), Vec::new()];
    for round in 0..6 {
        let which = round % 2;
        let exe = if which == 0 { &bin } else { &plain };
        let child = Command::new(exe)
            .arg("--db")
            .arg(&ours_db)
            .args(["serve", "--listen", "127.0.0.1:18281"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let _guard = Started(child);
        let url = format!("http://127.0.0.1:18281{ours_q}");
        wait_http(&url)?;
        sh(Command::new("curl").args(["-s", "-o"]).arg(&body).arg(&url))?;
        runs[which].push(wrk(&url, secs)?);
    }
    let median_run = |v: &mut Vec<(f64, String, String, u64)>| {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v[v.len() / 2].clone()
    };
    let counting = median_run(&mut runs[0]);
    let uncounted = median_run(&mut runs[1]);
    let cost_pct = (1.0 - counting.0 / uncounted.0.max(1.0)) * 100.0;
    let body_len = std::fs::metadata(&body)?.len();
    rows.push(("candlecache (cached hit)", counting, body_len));
    rows.push((
        "candlecache without the counting allocator",
        uncounted,
        body_len,
    ));
    let ours = body;
    let mut klines_body: Option<std::path::PathBuf> = None;
    let mut demotions = Vec::new();
    // Answers assembled from cached chunks: every chunk in memory, the response cache
    // missing (each window is new). The narrow span is the 1h aggregation of the 1M 1m
    // candles; the wide one 60,000 generated 1h candles of a symbol of its own, the size
    // a user's history of a pair reaches.
    let wide = bench.join("WIDEUSDT-1h.csv");
    if !wide.exists() {
        crate::gen::binance(&wide, WIDE_HOURS, 9, 3_600_000)?;
        sh(Command::new(&bin)
            .arg("--db")
            .arg(&ours_db)
            .arg("import")
            .arg(&wide))?;
    }
    {
        let child = Command::new(&bin)
            .arg("--db")
            .arg(&ours_db)
            .args(["serve", "--listen", "127.0.0.1:18284", "--no-access-log"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let _guard = Started(child);
        let host = "http://127.0.0.1:18284";
        for (symbol, hours) in [("BTCUSDT", NARROW_HOURS), ("WIDEUSDT", WIDE_HOURS)] {
            let all = format!(
                "{host}/api/crypto/ohlc?symbol={symbol}&timeframe=1h&start={first_1h}&end={}&format=csv",
                first_1h + hours as i64 * 3_600_000
            );
            wait_http(&all)?;
        }
        let sample = first_1h + 5_000 * 3_600_000 + 1_234;
        let hours = WIDE_HOURS.to_string();
        for (kind, symbol, span) in [
            ("json", "BTCUSDT", NARROW_HOURS.to_string()),
            ("json", "WIDEUSDT", hours.clone()),
            ("csv", "WIDEUSDT", hours.clone()),
            ("klines", "WIDEUSDT", hours.clone()),
        ] {
            let example = match kind {
                "klines" => format!(
                    "/api/v3/klines?symbol={symbol}&interval=1h&startTime={sample}&limit=1000"
                ),
                _ => format!(
                    "/api/crypto/ohlc?symbol={symbol}&timeframe=1h&start={sample}&end={}{}",
                    sample + 1000 * 3_600_000,
                    if kind == "csv" { "&format=csv" } else { "" }
                ),
            };
            let example_body = bench.join(format!("window-{kind}.body"));
            sh(Command::new("curl")
                .args(["-s", "-o"])
                .arg(&example_body)
                .arg(format!("{host}{example}")))?;
            let len = std::fs::metadata(&example_body)?.len();
            if kind == "klines" {
                klines_body = Some(example_body);
            }
            let before = responses_demoted(host)?;
            let r = wrk_script(
                host,
                secs,
                Some((
                    &root().join("xtask/scripts/windows.lua"),
                    &[kind, symbol, span.as_str()],
                )),
            )?;
            let requests = r.0 * f64::from(secs + 2);
            demotions.push((
                format!("{kind} over {span} hours"),
                (responses_demoted(host)? - before) as f64 / requests.max(1.0),
            ));
            rows.push((
                match (kind, symbol) {
                    ("json", "BTCUSDT") => "candlecache, random 1,000-candle windows over 16,666 hours, JSON (chunks cached, response not)",
                    ("json", _) => "candlecache, random 1,000-candle windows over 60,000 hours, JSON",
                    ("csv", _) => "candlecache, random 1,000-candle windows over 60,000 hours, CSV",
                    _ => "candlecache, random 1,000-candle windows over 60,000 hours, /api/v3/klines",
                },
                r,
                len,
            ));
        }
    }
    // nginx serving the same bytes as a static file: the cached JSON answer, and a body
    // of a klines window's size.
    let statics = [
        ("nginx, the same bytes as a static file", ours.clone()),
        (
            "nginx, a klines window's bytes as a static file",
            klines_body.clone().unwrap_or(ours.clone()),
        ),
    ];
    for (i, (name, file)) in statics.into_iter().enumerate() {
        let prefix = bench.join(format!("nginx{i}"));
        std::fs::create_dir_all(prefix.join("tmp"))?;
        let conf = std::fs::read_to_string(shared.join("nginx/nginx.conf.template"))?
            .replace("@PORT@", "18282")
            .replace("@PREFIX@", &prefix.display().to_string())
            .replace("@BODY@", &file.display().to_string());
        std::fs::write(prefix.join("nginx.conf"), conf)?;
        let child = Command::new("nginx")
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(prefix.join("nginx.conf"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let _guard = Started(child);
        let url = format!("http://127.0.0.1:18282{ours_q}");
        wait_http(&url)?;
        let r = wrk(&url, secs)?;
        rows.push((name, r, std::fs::metadata(&file)?.len()));
    }
    {
        let child = Command::new(&python)
            .args([
                "-m",
                "gunicorn",
                "-w",
                "2",
                "-k",
                "gthread",
                "--threads",
                "4",
                "-b",
                "127.0.0.1:18283",
                "app:app",
            ])
            .current_dir(shared.join("flask_seed"))
            .env("OHLCV_DB", &flask_db)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let _guard = Started(child);
        wait_http("http://127.0.0.1:18283/health")?;
        let url = format!("http://127.0.0.1:18283{flask_q}");
        let body = sh(Command::new("curl").args(["-s", &url]))?;
        let r = wrk(&url, secs)?;
        rows.push((
            "Flask baseline on gunicorn (its cache hit)",
            r,
            body.len() as u64,
        ));
    }

    let ours_rps = rows[0].1 .0;
    let mut s = String::new();
    writeln!(s, "## HTTP: a cached hit of 1,000 1h candles as JSON\n")?;
    s.push_str(&provenance("http", args));
    writeln!(s, "Load: `wrk -t2 -c32 -d{secs}s --latency` after a 2 s warm-up, on loopback; wrk and the servers share the same 2 cores. Same rows everywhere: 1M generated 1m candles and their 1h aggregation. candlecache runs six times, alternating the shipped binary (counting allocator for the per-route allocation profiles) and one built with `--no-default-features` (plain system allocator); each row is the median of its three runs. candlecache writes its access log (one line per request, by a thread of its own); nginx's is off in the baseline's configuration.\n")?;
    writeln!(
        s,
        "| server | requests/s | p50 | p99 | body bytes | non-2xx | candlecache is |"
    )?;
    writeln!(s, "|---|---|---|---|---|---|---|")?;
    for (name, (rps, p50, p99, non2xx), bytes) in &rows {
        writeln!(
            s,
            "| {name} | {rps:.0} | {p50} | {p99} | {bytes} | {non2xx} | {:.2}x |",
            ours_rps / rps.max(1.0)
        )?;
    }
    let rate = |name: &str| {
        rows.iter()
            .find(|r| r.0.starts_with(name))
            .map_or(0.0, |r| r.1 .0)
    };
    let nginx_json = rate("nginx, the same bytes");
    let nginx_klines = rate("nginx, a klines window");
    let wide_rate = |what: &str| {
        rate(&format!(
            "candlecache, random 1,000-candle windows over 60,000 hours, {what}"
        ))
    };
    writeln!(
        s,
        "\nAnswers from cached chunks (random windows over the whole stored span, response cache missing, access log off), against nginx serving a body of the same size. Over 60,000 stored 1h candles: JSON {:.0} requests/s = {:.2}x, CSV {:.0} = {:.2}x (both against the JSON body), `/api/v3/klines` {:.0} = {:.2}x (against a klines window's body); over 16,666: JSON {:.0} = {:.2}x; goal 0.5x. The cached hit is {:.2}x nginx (goal: 0.8x). Demotions of `api_responses` entries to the compressed tier per request (from `/api/performance/cache` before and after each run, warm-up included; admission keeps one-off windows out): {}.",
        wide_rate("JSON"),
        wide_rate("JSON") / nginx_json.max(1.0),
        wide_rate("CSV"),
        wide_rate("CSV") / nginx_json.max(1.0),
        wide_rate("/api/v3/klines"),
        wide_rate("/api/v3/klines") / nginx_klines.max(1.0),
        rate("candlecache, random 1,000-candle windows over 16,666 hours"),
        rate("candlecache, random 1,000-candle windows over 16,666 hours") / nginx_json.max(1.0),
        ours_rps / nginx_json.max(1.0),
        demotions
            .iter()
            .map(|(what, d)| format!("{what} {d:.3}"))
            .collect::<Vec<_>>()
            .join(", "),
    )?;
    let spread = |v: &[(f64, String, String, u64)]| {
        v.iter()
            .map(|r| format!("{:.0}", r.0))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let verdict = if cost_pct <= 0.0 {
        format!("has no measurable cost: the counting build was {:.1} % faster, within the spread of the runs", -cost_pct)
    } else {
        format!("costs {cost_pct:.1} % of cached-hit throughput")
    };
    writeln!(
        s,
        "\nThe counting allocator {verdict} (goal: under 3 %; requests/s of the runs, counting: {}; plain: {}).",
        spread(&runs[0]),
        spread(&runs[1]),
    )?;
    publish("http", &s)
}
