//! `cargo xtask bench ...`: runs benchmarks and writes their tables into docs/BENCHMARKS.md.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::process::{python_env, root, sh};

mod cache;
mod fleet;
mod http;
mod resample;
mod storage;
pub(crate) mod ws;

pub(crate) use cache::cache;
pub(crate) use fleet::bench as fleet;
pub(crate) use http::http;
pub(crate) use resample::resample;
pub(crate) use storage::storage;

pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(root())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let mut commit = git(&["rev-parse", "--short", "HEAD"]);
    if !git(&["status", "--porcelain", "--untracked-files=no"]).is_empty() {
        commit.push_str(" with uncommitted changes");
    }
    format!("{date}, {cores} cores ({cpu}), {rustc}, commit {commit}")
}

pub(crate) fn si(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// The two lines every table starts with: the command that produced it, and where and
/// when it ran.
pub(crate) fn provenance(bench: &str, args: &[&str]) -> String {
    let mut command = format!("cargo xtask bench {bench}");
    for a in args {
        command.push(' ');
        command.push_str(a);
    }
    format!("Command: `{command}`  \nRun: {}  \n", machine())
}

/// Writes a table into docs/BENCHMARKS.md and prints it.
pub(crate) fn publish(name: &str, body: &str) -> Result<()> {
    write_section(name, body)?;
    println!("{body}");
    println!("written to docs/BENCHMARKS.md");
    Ok(())
}

/// Parses `[--rows N]` (default 10M).
fn rows_arg(args: &[&str], bench: &str) -> Result<u64> {
    match args {
        [] => Ok(10_000_000),
        ["--rows", n] => n
            .parse()
            .with_context(|| format!("--rows `{n}` is not a count")),
        other => {
            bail!("unexpected arguments {other:?}; usage: cargo xtask bench {bench} [--rows N]")
        }
    }
}

/// The generated 1m candle file of `rows` rows, made once and reused by every bench.
pub(crate) fn generated(rows: u64) -> Result<std::path::PathBuf> {
    let data = root().join(format!("target/bench/data/BTCUSDT-1m-{rows}.csv"));
    if !data.exists() {
        eprintln!(
            "xtask: generating {rows} 1m candles into {}",
            data.display()
        );
        crate::gen::binance_1m(&data, rows, 42)?;
    }
    Ok(data)
}

/// Replaces (or appends) the section between `<!-- bench:NAME:start -->` and
/// `<!-- bench:NAME:end -->` in docs/BENCHMARKS.md, leaving the others alone.
fn write_section(name: &str, body: &str) -> Result<()> {
    let path = root().join("docs/BENCHMARKS.md");
    let text = if Path::new(&path).exists() {
        std::fs::read_to_string(&path)?
    } else {
        "# Benchmarks\n\nEvery table here is written by the command it names; rerun it to refresh.\n".to_owned()
    };
    let start = format!("<!-- bench:{name}:start -->");
    let end = format!("<!-- bench:{name}:end -->");
    let block = format!("{start}\n{body}{end}");
    let new = match (text.find(&start), text.find(&end)) {
        (Some(a), Some(b)) if a < b => format!("{}{}{}", &text[..a], block, &text[b + end.len()..]),
        _ => format!("{}\n{block}\n", text.trim_end()),
    };
    std::fs::write(&path, new)?;
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Makes sure the peers are here: the sqlite3 CLI from Debian, duckdb from PyPI in a
/// virtualenv under target/bench. Returns the virtualenv's python.
fn install_peers(bench: &Path) -> Result<std::path::PathBuf> {
    if Command::new("sqlite3").arg("--version").output().is_err() {
        eprintln!("xtask: installing sqlite3 (apt-get)");
        sh(Command::new("apt-get").arg("update"))?;
        sh(Command::new("apt-get").args(["install", "-y", "sqlite3"]))?;
    }
    python_env(
        &bench.join("venv"),
        "duckdb, duckdb_ext",
        &[
            "duckdb==1.4.4",
            "duckdb-ext-sqlite==1.4.4.20260205",
            "pyarrow",
        ],
    )
}

/// Resident memory of a process (`VmRSS`), in bytes.
pub(crate) fn rss_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .context("no VmRSS")
}

/// Runs `cargo xtask bench <name> <args>` again from the release build of xtask (with
/// candlecache built too) unless this is that run: benches whose load and fake exchange
/// run in xtask's process measure optimised code on every side. `Ok(true)`: it ran there.
pub(crate) fn in_release(name: &str, args: &[&str]) -> Result<bool> {
    const IN_RELEASE: &str = "CANDLECACHE_BENCH_IN_RELEASE";
    if std::env::var_os(IN_RELEASE).is_some() {
        return Ok(false);
    }
    crate::process::cargo(
        &[
            "build",
            "--release",
            "--quiet",
            "-p",
            "candlecache",
            "-p",
            "xtask",
        ],
        &[],
    )?;
    let status = std::process::Command::new(root().join("target/release/xtask"))
        .args(["bench", name])
        .args(args)
        .env(IN_RELEASE, "1")
        .status()?;
    if !status.success() {
        anyhow::bail!("bench {name} failed");
    }
    Ok(true)
}

/// A release candlecache on a fresh database `db` with `ex` as its upstream, REST and
/// streams, access log off; returns it (stopped when dropped) and its base URL.
pub(crate) fn serve_on_fake(
    db: &Path,
    ex: &crate::fake_exchange::FakeExchange,
) -> Result<(crate::process::Started, String)> {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    crate::clients::serve(
        &root().join("target/release/candlecache"),
        db,
        &[
            "--upstream",
            &ex.url(),
            "--upstream-ws",
            &ex.ws_url(),
            "--no-access-log",
        ],
    )
}
