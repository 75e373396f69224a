//! `check-object-store`: candlecache instances sharing closed history on a real
//! S3-compatible server on loopback (moto's server mode from PyPI), with the tests' fake
//! exchange upstream; DuckDB (httpfs from PyPI) reads what they wrote, in place.
//!
//! Shows: the exchange requests of the same backfill asked of one instance and of three;
//! a fresh instance's cold read of a month of 1m from the object store against DuckDB and
//! polars reading the same object from the same server; all give the same candles; an
//! instance bounded to 1 MB locally (`--local-max-mb 1`) drops months and reads them back
//! from the object store, equal, without the exchange.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::fake_exchange::FakeExchange;
use crate::process::root;
use crate::process::{python_env, Started};

const BUCKET: &str = "candles";

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A raw HTTP request to the S3 server; returns the status.
fn s3(port: u16, method: &str, path: &str) -> Result<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("the S3 server gave no status")
}

/// Runs the binary (stdout returned); fails with its stderr.
fn candlecache(bin: &Path, db: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(bin).arg("--db").arg(db).args(args).output()?;
    if !out.status.success() {
        bail!(
            "candlecache {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs the check with the release binary (`release`, for the figures) or the debug one
/// the tests built (for `ci`).
pub(crate) fn check(release: bool) -> Result<()> {
    let dir = root().join("target/clients");
    std::fs::create_dir_all(&dir)?;
    let python = python_env(
        &dir.join("venv-objects"),
        "moto, duckdb, duckdb_ext, polars",
        &[
            "moto[server]",
            "duckdb==1.4.4",
            "duckdb-ext-httpfs==1.4.4.20260205",
            // polars before 1.43 cannot parse the IEEE 754 total-order column order
            // (parquet-format 2.11) that the parquet crate writes for float columns.
            "polars==1.44.2",
        ],
    )?;
    let bin = crate::process::candlecache_binary(release)?;
    let work = dir.join("object-store");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;

    let port = free_port()?;
    let _moto = Started(
        Command::new(dir.join("venv-objects/bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start moto_server")?,
    );
    let until = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > until {
            bail!("moto_server did not listen on {port} within 30 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let made = s3(port, "PUT", &format!("/{BUCKET}"))?;
    if made != 200 {
        bail!("creating the bucket answered {made}");
    }
    let endpoint = format!("http://127.0.0.1:{port}");
    let config = work.join("candlecache.toml");
    std::fs::write(
        &config,
        format!(
            "[object_store]\nurl = \"s3://{BUCKET}/shared\"\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\nallow_http = true\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\n"
        ),
    )?;
    let config = config.display().to_string();
    eprintln!("xtask: moto S3 on {endpoint}, bucket {BUCKET}; three instances and a fake exchange");

    let ex = FakeExchange::start();
    let url = ex.url();
    let t = |d: &str| crate::fake_exchange::LISTED + day_of(d) * 86_400_000;
    let (feb, mar, apr, may) = (
        t("2024-02-01"),
        t("2024-03-01"),
        t("2024-04-01"),
        t("2024-05-01"),
    );
    let backfills = [
        ("1h", feb, may),
        // A month of 1m either side of March too: a read path chunk that touches a month
        // nobody published would take it from the exchange.
        ("1m", feb, may),
    ];
    let plain = work.join("plain.toml");
    std::fs::write(&plain, "")?;
    let plain = plain.display().to_string();
    // The backfills of one instance, with a configuration (`config`: the object store,
    // `plain`: none); returns the exchange requests they cost.
    let fetch_all = |db: &Path, config: &str| -> Result<usize> {
        let before = ex.klines_seen().len();
        for (tf, a, b) in backfills {
            let (a, b) = (a.to_string(), b.to_string());
            let args = [
                "--config",
                config,
                "fetch",
                "--symbol",
                "BTCUSDT",
                "--timeframe",
                tf,
                "--start",
                &a,
                "--end",
                &b,
                "--upstream",
                &url,
            ];
            eprint!("{}", candlecache(&bin, db, &args)?);
        }
        Ok(ex.klines_seen().len() - before)
    };
    let alone = fetch_all(&work.join("alone.db"), &plain)?;
    let mut fleet = Vec::new();
    for i in 0..3 {
        fleet.push(fetch_all(&work.join(format!("i{i}.db")), &config)?);
    }
    let fleet_total: usize = fleet.iter().sum();

    // A fresh instance serves March of 1m cold from the object store.
    // A fresh instance on the object store, the exchange behind it, no streams.
    let fresh = |name: &str| {
        crate::clients::serve(
            &bin,
            &work.join(name),
            &[
                "--config",
                &config,
                "--upstream",
                &url,
                "--upstream-ws",
                "off",
            ],
        )
    };
    let (server, base) = fresh("fresh.db")?;
    let before = ex.klines_seen().len();
    let path =
        format!("/api/crypto/ohlc?symbol=BTCUSDT&timeframe=1m&start={mar}&end={apr}&limit=50000");
    let started = Instant::now();
    let answer = crate::clients::get_json(&base, &path)?;
    let cold = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let _ = crate::clients::get_json(&base, &path)?;
    let warm = started.elapsed().as_secs_f64();
    let objects = crate::clients::get_json(&base, "/api/performance/stats")
        .map(|v| v["data"]["upstream"]["objects"].clone())
        .unwrap_or(Value::Null);
    drop(server);
    let ours = float_rows(&answer["data"]["rows"]).context("no rows in the answer")?;

    // Another fresh instance answers 1,000 candles inside March cold: the row groups the
    // window needs, fetched alone, before the months are kept locally.
    let (w0, w1) = (
        mar + 9 * 86_400_000 + 17 * 60_000,
        mar + 9 * 86_400_000 + 1017 * 60_000,
    );
    let (server, base) = fresh("fresh-window.db")?;
    let path = format!("/api/crypto/ohlc?symbol=BTCUSDT&timeframe=1m&start={w0}&end={w1}");
    let started = Instant::now();
    let window_answer = crate::clients::get_json(&base, &path)?;
    let window_cold = started.elapsed().as_secs_f64();
    // The months are kept locally afterwards, off the answer's path.
    let until = Instant::now() + Duration::from_secs(30);
    let window_objects = loop {
        let o = crate::clients::get_json(&base, "/api/performance/stats")
            .map(|v| v["data"]["upstream"]["objects"].clone())
            .unwrap_or(Value::Null);
        if o["months_read"].as_u64() >= Some(1) || Instant::now() > until {
            break o;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let window_kept_s = started.elapsed().as_secs_f64();
    drop(server);
    let fresh_requests = ex.klines_seen().len() - before;
    let ours_window =
        float_rows(&window_answer["data"]["rows"]).context("no rows in the window's answer")?;

    // Another instance keeps at most 1 MB locally (less than a month of 1m): it reads
    // three months, drops them, and reads them back from the object store.
    // Mid-February to mid-April: the read path's 1m chunks then touch only the published
    // months (a chunk reaching into January or May would fetch that month).
    let half = 14 * 86_400_000;
    let bounded = bounded_instance(
        &bin,
        &work,
        &config,
        &url,
        [feb + half, mar, apr, apr + half],
    )?;
    let bounded_requests = ex.klines_seen().len() - before;

    let read = |engine: &str, (start, end): (i64, i64)| -> Result<(Vec<Vec<f64>>, f64)> {
        let out = Command::new(&python)
            .arg(root().join("xtask/scripts/read_objects.py"))
            .args([
                engine,
                endpoint.as_str(),
                &format!("{BUCKET}/shared"),
                "BTCUSDT",
                "1m",
                &start.to_string(),
                &end.to_string(),
            ])
            .output()?;
        if !out.status.success() {
            bail!("{engine} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let v: Value = serde_json::from_slice(&out.stdout)?;
        let rows = float_rows(&v["rows"]).with_context(|| format!("{engine} gave no rows"))?;
        Ok((rows, v["seconds"].as_f64().unwrap_or(f64::NAN)))
    };
    let (theirs, duck_s) = read("duckdb", (mar, apr))?;
    let (polars_rows, polars_s) = read("polars", (mar, apr))?;
    let (duck_window, duck_window_s) = read("duckdb", (w0, w1))?;
    let (polars_window, polars_window_s) = read("polars", (w0, w1))?;

    let mut problems = Vec::new();
    if ours.is_empty() || ours != theirs {
        problems.push(format!(
            "candlecache answered {} rows, DuckDB read {}; equal: {}",
            ours.len(),
            theirs.len(),
            ours == theirs
        ));
    }
    if window_objects["windows_read"].as_u64() < Some(1)
        || window_objects["months_read"].as_u64() < Some(1)
    {
        problems.push(format!(
            "the cold window was not read from its row groups, or its month not kept locally: {window_objects}"
        ));
    }
    if ours_window.is_empty() || ours_window != duck_window || ours_window != polars_window {
        problems.push(format!(
            "the cold window: candlecache answered {} rows, DuckDB read {}, polars {}; equal: {}",
            ours_window.len(),
            duck_window.len(),
            polars_window.len(),
            ours_window == duck_window && ours_window == polars_window
        ));
    }
    if polars_rows != ours {
        problems.push(format!(
            "polars read {} rows, not equal to candlecache's {}",
            polars_rows.len(),
            ours.len()
        ));
    }
    if !bounded.problems.is_empty() {
        problems.extend(bounded.problems.iter().cloned());
    }
    if bounded_requests != 0 {
        problems.push(format!(
            "the fresh and bounded instances asked the exchange {bounded_requests} times"
        ));
    }
    if fleet[1..].iter().any(|n| *n != 0) {
        problems.push(format!("instances 2 and 3 asked the exchange: {fleet:?}"));
    }
    if fresh_requests != 0 {
        problems.push(format!(
            "the fresh instance asked the exchange {fresh_requests} times"
        ));
    }
    let summary = json!({
        "exchange_requests": {
            "one_instance_without_object_store": alone,
            "three_instances_with_object_store": fleet,
            "three_instances_total": fleet_total,
        },
        "cold_month_1m": {
            "rows": ours.len(),
            "candlecache_fresh_instance_s": (cold * 1000.0).round() / 1000.0,
            "candlecache_again_s": (warm * 1000.0).round() / 1000.0,
            "duckdb_read_parquet_s3_s": (duck_s * 1000.0).round() / 1000.0,
            "polars_scan_parquet_s3_s": (polars_s * 1000.0).round() / 1000.0,
            "equal": ours == theirs && ours == polars_rows,
        },
        "cold_window_1m": {
            "rows": ours_window.len(),
            "candlecache_fresh_instance_s": (window_cold * 1000.0).round() / 1000.0,
            "duckdb_read_parquet_s3_s": (duck_window_s * 1000.0).round() / 1000.0,
            "polars_scan_parquet_s3_s": (polars_window_s * 1000.0).round() / 1000.0,
            "month_kept_locally_after_s": (window_kept_s * 1000.0).round() / 1000.0,
            "objects": window_objects,
        },
        "bounded_instance": {
            "local_max_mb": 1,
            "months_read_back": bounded.months_read,
            "months_dropped": bounded.months_dropped,
            "local_candles_at_end": bounded.local_candles,
            "equal": bounded.problems.is_empty(),
        },
        "fresh_instance_exchange_requests": fresh_requests,
        "objects": objects,
        "problems": problems,
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    if !problems.is_empty() {
        bail!("the object-store check failed: {} problems", problems.len());
    }
    println!(
        "xtask: exchange requests for the same backfill: {alone} for one instance alone, {fleet_total} for three sharing the object store; a fresh instance read a month of 1m cold in {cold:.3} s, DuckDB the same object in {duck_s:.3} s ({:.2}x), polars in {polars_s:.3} s; 1,000 candles of it cold in {window_cold:.3} s, DuckDB in {duck_window_s:.3} s ({:.2}x), polars in {polars_window_s:.3} s; bounded to 1 MB, an instance dropped {} months and read {} back, equal",
        duck_s / cold,
        duck_window_s / window_cold,
        bounded.months_dropped,
        bounded.months_read
    );
    Ok(())
}

/// What the bounded instance did.
struct Bounded {
    months_read: u64,
    months_dropped: u64,
    local_candles: u64,
    problems: Vec<String>,
}

/// Serves with `--local-max-mb 1`, reads the 1m months between the bounds, waits until
/// they are dropped locally, reads them again and compares.
fn bounded_instance(
    bin: &Path,
    work: &Path,
    config: &str,
    url: &str,
    bounds: [i64; 4],
) -> Result<Bounded> {
    let (server, base) = crate::clients::serve(
        bin,
        &work.join("bounded.db"),
        &[
            "--config",
            config,
            "--upstream",
            url,
            "--upstream-ws",
            "off",
            "--local-max-mb",
            "1",
        ],
    )?;
    let month = |a: i64, b: i64| -> Result<Value> {
        let path =
            format!("/api/crypto/ohlc?symbol=BTCUSDT&timeframe=1m&start={a}&end={b}&limit=50000");
        Ok(crate::clients::get_json(&base, &path)?["data"]["rows"].clone())
    };
    let stats = || -> Value {
        crate::clients::get_json(&base, "/api/performance/stats")
            .map(|v| v["data"]["upstream"]["objects"].clone())
            .unwrap_or(Value::Null)
    };
    let months: Vec<(i64, i64)> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
    let first: Vec<Value> = months
        .iter()
        .map(|(a, b)| month(*a, *b))
        .collect::<Result<_>>()?;
    let until = Instant::now() + Duration::from_secs(60);
    while stats()["months_dropped"].as_u64().unwrap_or(0) < 2 {
        if Instant::now() > until {
            bail!(
                "the bounded instance dropped no months in 60 s: {}",
                stats()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    // Nothing from memory: the second answers must come from the store, read back.
    crate::clients::post_json(&base, "/api/performance/cache/clear")?;
    let mut problems = Vec::new();
    for ((a, b), want) in months.iter().zip(&first) {
        let again = month(*a, *b)?;
        if again != *want || want.as_array().is_none_or(Vec::is_empty) {
            problems.push(format!(
                "the bounded instance answered {a}..{b} differently the second time"
            ));
        }
    }
    let local = || {
        crate::clients::get_json(&base, "/api/crypto/markets")
            .ok()
            .and_then(|m| {
                m["data"]
                    .as_array()?
                    .iter()
                    .find(|s| s["timeframe"] == "1m")
                    .and_then(|s| s["count"].as_u64())
            })
            .unwrap_or(0)
    };
    // The trim runs every 2 s: give it a few rounds to bring the store back under 1 MB
    // (less than a month of 1m, about 44,000 candles).
    let until = Instant::now() + Duration::from_secs(20);
    while local() >= 40_000 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(250));
    }
    let local = local();
    if local >= 40_000 {
        problems.push(format!(
            "the bounded instance still holds {local} 1m candles locally"
        ));
    }
    let o = stats();
    drop(server);
    Ok(Bounded {
        months_read: o["months_read"].as_u64().unwrap_or(0),
        months_dropped: o["months_dropped"].as_u64().unwrap_or(0),
        local_candles: local,
        problems,
    })
}

/// JSON rows of numbers as floats; `None` if `v` is not an array.
fn float_rows(v: &Value) -> Option<Vec<Vec<f64>>> {
    Some(
        v.as_array()?
            .iter()
            .map(|r| {
                r.as_array()
                    .map(|a| a.iter().filter_map(Value::as_f64).collect())
                    .unwrap_or_default()
            })
            .collect(),
    )
}

/// Days from the listing (2024-01-01) to a 2024 date `YYYY-MM-DD`.
fn day_of(date: &str) -> i64 {
    const BEFORE: [i64; 12] = [0, 31, 60, 91, 121, 152, 182, 213, 244, 274, 305, 335];
    let m: usize = date[5..7].parse().unwrap_or(1);
    let d: i64 = date[8..10].parse().unwrap_or(1);
    BEFORE[m - 1] + d - 1
}
