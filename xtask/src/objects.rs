//! `check-object-store`: candlecache instances sharing closed history on a real
//! S3-compatible server on loopback (moto's server mode from PyPI), with the tests' fake
//! exchange upstream; DuckDB (httpfs from PyPI) reads what they wrote, in place.
//!
//! Shows: the exchange requests of the same backfill asked of one instance and of three;
//! a fresh instance's cold read of a month of 1m from the object store against DuckDB
//! reading the same object from the same server; both give the same candles.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::bench::{python_env, Started};
use crate::fake_exchange::FakeExchange;
use crate::layers::root;

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

pub(crate) fn check() -> Result<()> {
    let dir = root().join("target/clients");
    std::fs::create_dir_all(&dir)?;
    let python = python_env(
        &dir.join("venv-objects"),
        "moto, duckdb, duckdb_ext",
        &[
            "moto[server]",
            "duckdb==1.4.4",
            "duckdb-ext-httpfs==1.4.4.20260205",
        ],
    )?;
    crate::cargo(&["build", "--release", "--quiet", "-p", "candlecache"], &[])?;
    let bin = root().join("target/release/candlecache");
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
    let db = work.join("fresh.db");
    let (server, base) = crate::clients::serve(
        &bin,
        &db,
        &[
            "--config",
            &config,
            "--upstream",
            &url,
            "--upstream-ws",
            "off",
        ],
    )?;
    let before = ex.klines_seen().len();
    let path =
        format!("/api/crypto/ohlc?symbol=BTCUSDT&timeframe=1m&start={mar}&end={apr}&limit=50000");
    let started = Instant::now();
    let answer = crate::clients::get_json(&base, &path)?;
    let cold = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let _ = crate::clients::get_json(&base, &path)?;
    let warm = started.elapsed().as_secs_f64();
    let fresh_requests = ex.klines_seen().len() - before;
    let objects = crate::clients::get_json(&base, "/api/performance/stats")
        .map(|v| v["data"]["upstream"]["objects"].clone())
        .unwrap_or(Value::Null);
    drop(server);
    let ours = float_rows(&answer["data"]["rows"]).context("no rows in the answer")?;

    let out = Command::new(&python)
        .arg(root().join("xtask/scripts/duckdb_objects.py"))
        .args([
            endpoint.as_str(),
            &format!("{BUCKET}/shared"),
            "BTCUSDT",
            "1m",
            &mar.to_string(),
            &apr.to_string(),
        ])
        .output()?;
    if !out.status.success() {
        bail!("DuckDB failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let duck: Value = serde_json::from_slice(&out.stdout)?;
    let theirs = float_rows(&duck["rows"]).context("DuckDB gave no rows")?;
    let duck_s = duck["seconds"].as_f64().unwrap_or(f64::NAN);

    let mut problems = Vec::new();
    if ours.is_empty() || ours != theirs {
        problems.push(format!(
            "candlecache answered {} rows, DuckDB read {}; equal: {}",
            ours.len(),
            theirs.len(),
            ours == theirs
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
            "equal": ours == theirs,
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
        "xtask: exchange requests for the same backfill: {alone} for one instance alone, {fleet_total} for three sharing the object store; a fresh instance read a month of 1m cold in {cold:.3} s, DuckDB the same object in {duck_s:.3} s ({:.2}x)",
        duck_s / cold
    );
    Ok(())
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
