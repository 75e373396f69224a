//! Checks with real clients: ccxt's binance client against `/api/v3` of a running
//! candlecache.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::bench::{python_env, sh, Started};
use crate::layers::root;

/// Eight weeks of generated 1m candles (from Wednesday 2020-01-01).
const ROWS: u64 = 8 * 7 * 1440;
/// Monday 2020-01-06 and seven weeks later.
const SINCE: i64 = 1_578_268_800_000;
const UNTIL: i64 = SINCE + 7 * 7 * 86_400_000;

pub(crate) fn ccxt() -> Result<()> {
    let dir = root().join("target/clients");
    std::fs::create_dir_all(&dir)?;
    let python = python_env(&dir.join("venv"), "ccxt", &["ccxt"])?;
    crate::cargo(&["build", "--release", "--quiet", "-p", "candlecache"], &[])?;
    let bin = root().join("target/release/candlecache");
    let data = dir.join("BTCUSDT-1m-ccxt.csv");
    if !data.exists() {
        crate::gen::binance_1m(&data, ROWS, 7)?;
    }
    let db = dir.join("ccxt.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    sh(Command::new(&bin)
        .arg("--db")
        .arg(&db)
        .arg("import")
        .arg(&data)
        .args(["--symbol", "BTCUSDT", "--timeframe", "1m"]))?;
    let mut child = Command::new(&bin)
        .arg("--db")
        .arg(&db)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start candlecache serve")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let server = Started(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let Some(base) = line.trim().strip_prefix("listening on ") else {
        bail!("candlecache did not say where it listens: {line:?}");
    };
    eprintln!("xtask: ccxt against {base}/api/v3, 1h candles from 1m, seven weeks");
    let out = Command::new("timeout")
        .arg("300")
        .arg(&python)
        .arg(root().join("xtask/scripts/ccxt_check.py"))
        .args([base, "BTCUSDT", &SINCE.to_string(), &UNTIL.to_string()])
        .output()?;
    drop(server);
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        bail!(
            "the ccxt check failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    println!("xtask: ccxt paged through seven weeks of 1h candles from candlecache");
    Ok(())
}
