//! Checks with real clients: ccxt's binance client against `/api/v3` of a running
//! candlecache, and the dashboard in headless Chromium.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::process::root;
use crate::process::{python_env, sh, Started};

/// Eight weeks of generated 1m candles (from Wednesday 2020-01-01).
const ROWS: u64 = 8 * 7 * 1440;
/// Monday 2020-01-06 and seven weeks later.
const SINCE: i64 = 1_578_268_800_000;
const UNTIL: i64 = SINCE + 7 * 7 * 86_400_000;

pub(crate) fn ccxt() -> Result<()> {
    let dir = root().join("target/clients");
    std::fs::create_dir_all(&dir)?;
    let python = python_env(&dir.join("venv"), "ccxt", &["ccxt"])?;
    let bin = crate::process::candlecache_binary(true)?;
    let data = dir.join("BTCUSDT-1m-ccxt.csv");
    if !data.exists() {
        crate::gen::binance_1m(&data, ROWS, 7)?;
    }
    let db = fresh_db(&dir.join("ccxt.db"))?;
    sh(Command::new(&bin)
        .arg("--db")
        .arg(&db)
        .arg("import")
        .arg(&data)
        .args(["--symbol", "BTCUSDT", "--timeframe", "1m"]))?;
    let (server, base) = serve(&bin, &db, &[])?;
    let base = base.as_str();
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

/// ccxt pro's `binance.watch_ohlcv` against candlecache's served streams, with the fake
/// exchange of the end-to-end tests as candlecache's upstream (REST and streams).
pub(crate) fn ccxt_pro() -> Result<()> {
    let dir = root().join("target/clients");
    std::fs::create_dir_all(&dir)?;
    let python = python_env(&dir.join("venv"), "ccxt.pro", &["ccxt"])?;
    let bin = crate::process::candlecache_binary(true)?;
    let ex = crate::fake_exchange::FakeExchange::start();
    let db = fresh_db(&dir.join("ccxt-pro.db"))?;
    let (server, base) = serve(
        &bin,
        &db,
        &["--upstream", &ex.url(), "--upstream-ws", &ex.ws_url()],
    )?;
    let ws_base = base.replacen("http://", "ws://", 1);
    eprintln!("xtask: ccxt pro watch_ohlcv against {ws_base}/ws, 1s candles for 15 s");
    let out = Command::new("timeout")
        .arg("120")
        .arg(&python)
        .arg(root().join("xtask/scripts/ccxt_pro_check.py"))
        .args([base.as_str(), &ws_base, &ex.url(), "BTCUSDT", "15"])
        .output()?;
    drop(server);
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        bail!(
            "the ccxt pro check failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    println!(
        "xtask: ccxt pro watched candles form and close through candlecache; upstream stream connections: {}",
        ex.ws_connections()
    );
    Ok(())
}

/// ccxt's `binanceusdm` with only `urls.api.fapiPublic` changed, against candlecache
/// whose upstream is the fake exchange: markets, paged klines, mark-price klines and
/// funding history equal to the same calls made against the exchange itself; then ccxt
/// pro's `watch_ohlcv` on the served futures streams (`/market/ws/<n>`).
pub(crate) fn ccxt_usdm() -> Result<()> {
    let dir = root().join("target/clients");
    std::fs::create_dir_all(&dir)?;
    let python = python_env(&dir.join("venv"), "ccxt", &["ccxt"])?;
    let bin = crate::process::candlecache_binary(true)?;
    let ex = crate::fake_exchange::FakeExchange::start();
    let db = fresh_db(&dir.join("ccxt-usdm.db"))?;
    let futures_ws = format!("ws://{}/market", ex.ws_addr);
    let (server, base) = serve(
        &bin,
        &db,
        &[
            "--upstream",
            &ex.url(),
            "--upstream-ws",
            "off",
            "--upstream-futures-ws",
            &futures_ws,
        ],
    )?;
    let ws_base = base.replacen("http://", "ws://", 1);
    let since = crate::fake_exchange::LISTED + 10 * 86_400_000;
    eprintln!("xtask: ccxt binanceusdm against {base}/fapi/v1");
    let out = Command::new("timeout")
        .arg("300")
        .arg(&python)
        .arg(root().join("xtask/scripts/ccxt_usdm_check.py"))
        .args([
            base.as_str(),
            &ex.url(),
            "BTCUSDT",
            &since.to_string(),
            &ws_base,
            "8",
        ])
        .output()?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        bail!(
            "the ccxt binanceusdm check failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let served = get_json(&base, "/api/performance/stats")
        .map(|v| v["data"]["served_streams"]["frames_sent"].clone())
        .unwrap_or_default();
    drop(server);
    println!(
        "xtask: ccxt binanceusdm read futures, mark-price and funding history and watched futures candles through candlecache ({served} frames served); upstream stream connections: {}",
        ex.ws_connections()
    );
    if ex.ws_connections() != 1 {
        bail!(
            "the exchange saw {} stream connections, not 1",
            ex.ws_connections()
        );
    }
    Ok(())
}

/// ccxt's `bybit` with only `urls.api` changed (markets restricted to spot and linear),
/// against candlecache whose Bybit upstream is the fake exchange: markets, three pages of
/// spot and linear 1h klines, mark-price klines and funding history equal to the same
/// calls made against the exchange itself; then ccxt pro's `watch_ohlcv` on the served
/// `/v5/public/spot` and `/v5/public/linear` streams.
pub(crate) fn ccxt_bybit() -> Result<()> {
    let dir = root().join("target/clients");
    std::fs::create_dir_all(&dir)?;
    let python = python_env(&dir.join("venv"), "ccxt", &["ccxt"])?;
    let bin = crate::process::candlecache_binary(true)?;
    let ex = crate::fake_exchange::FakeExchange::start();
    let db = fresh_db(&dir.join("ccxt-bybit.db"))?;
    let ws = format!("{}/v5/public", ex.ws_url());
    let (server, base) = serve(
        &bin,
        &db,
        &["--upstream-bybit", &ex.url(), "--upstream-bybit-ws", &ws],
    )?;
    let ws_base = base.replacen("http://", "ws://", 1);
    let since = crate::fake_exchange::LISTED + 10 * 86_400_000;
    eprintln!("xtask: ccxt bybit against {base}/v5/market");
    let out = Command::new("timeout")
        .arg("300")
        .arg(&python)
        .arg(root().join("xtask/scripts/ccxt_bybit_check.py"))
        .args([
            base.as_str(),
            &ex.url(),
            "BTCUSDT",
            &since.to_string(),
            &ws_base,
            "8",
        ])
        .output()?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        bail!(
            "the ccxt bybit check failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let stats = get_json(&base, "/api/performance/stats").unwrap_or_default();
    drop(server);
    let requests = ex.klines_seen().len();
    println!(
        "xtask: ccxt bybit read spot, linear, mark-price and funding history and watched spot and linear candles through candlecache ({} frames served); history requests to the exchange: {requests}; upstream stream connections: {}",
        stats["data"]["served_streams"]["frames_sent"],
        ex.ws_connections()
    );
    Ok(())
}

/// ccxt's `okx` with only `urls.api.rest` changed (markets restricted to spot and swap),
/// against candlecache whose OKX upstream is the fake exchange: markets, three pages of
/// spot and swap 1h candles from a range older than OKX's recent 1,440 and a recent one,
/// mark-price candles and funding history equal to the same calls made against the
/// exchange itself; then ccxt pro's `watch_ohlcv` on the served `/ws/v5/business`.
pub(crate) fn ccxt_okx() -> Result<()> {
    let dir = root().join("target/clients");
    std::fs::create_dir_all(&dir)?;
    let python = python_env(&dir.join("venv"), "ccxt", &["ccxt"])?;
    let bin = crate::process::candlecache_binary(true)?;
    let ex = crate::fake_exchange::FakeExchange::start();
    let db = fresh_db(&dir.join("ccxt-okx.db"))?;
    let ws = format!("{}/ws/v5", ex.ws_url());
    let (server, base) = serve(
        &bin,
        &db,
        &["--upstream-okx", &ex.url(), "--upstream-okx-ws", &ws],
    )?;
    let ws_base = base.replacen("http://", "ws://", 1);
    let since = crate::fake_exchange::LISTED + 10 * 86_400_000;
    eprintln!("xtask: ccxt okx against {base}/api/v5");
    let out = Command::new("timeout")
        .arg("300")
        .arg(&python)
        .arg(root().join("xtask/scripts/ccxt_okx_check.py"))
        .args([
            base.as_str(),
            &ex.url(),
            "BTC-USDT",
            &since.to_string(),
            &ws_base,
            "8",
        ])
        .output()?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        bail!(
            "the ccxt okx check failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let stats = get_json(&base, "/api/performance/stats").unwrap_or_default();
    drop(server);
    println!(
        "xtask: ccxt okx read spot, swap, mark-price and funding history and watched spot and swap candles through candlecache ({} frames served); history requests to the exchange: {}; refused for OKX's limits: {}; upstream stream connections: {}",
        stats["data"]["served_streams"]["frames_sent"],
        ex.klines_seen().len(),
        ex.okx_limited(),
        ex.ws_connections()
    );
    Ok(())
}

/// GETs `path` from a server at `base` (`http://host:port`) and parses the JSON body.
pub(crate) fn get_json(base: &str, path: &str) -> Result<serde_json::Value> {
    request_json(base, "GET", path)
}

/// POSTs an empty body to `path` and parses the JSON answer.
pub(crate) fn post_json(base: &str, path: &str) -> Result<serde_json::Value> {
    request_json(base, "POST", path)
}

fn request_json(base: &str, method: &str, path: &str) -> Result<serde_json::Value> {
    use std::io::{Read, Write};
    let host = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let at = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no HTTP head")?;
    Ok(serde_json::from_slice(&buf[at + 4..])?)
}

/// `path` with no database (nor WAL) left from an earlier run.
fn fresh_db(path: &Path) -> Result<std::path::PathBuf> {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok(path.to_owned())
}

/// Starts `candlecache serve` on a free loopback port; returns it (stopped when dropped)
/// and its base URL. Its stderr is dropped unless `XTASK_SERVER_STDERR` is set.
pub(crate) fn serve(bin: &Path, db: &Path, args: &[&str]) -> Result<(Started, String)> {
    listening(
        Command::new(bin)
            .arg("--db")
            .arg(db)
            .arg("serve")
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .stderr(if std::env::var_os("XTASK_SERVER_STDERR").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            }),
    )
}

/// Starts a server that prints `listening on URL` first; returns it (stopped when
/// dropped) and the URL.
pub(crate) fn listening(cmd: &mut Command) -> Result<(Started, String)> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let server = Started(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let Some(url) = line.trim().strip_prefix("listening on ") else {
        bail!("{cmd:?} did not say where it listens: {line:?}");
    };
    Ok((server, url.to_owned()))
}

/// The playwright-core release the dashboard check drives Chromium with.
const PLAYWRIGHT: &str = "playwright-core@1.65.1";

/// Loads the dashboard of a demo server in headless Chromium (Debian's, installed if
/// missing) driven by playwright-core (from npm, into target/clients/node) and checks it;
/// the screenshot goes to target/dashboard/dashboard.png.
pub(crate) fn dashboard() -> Result<()> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        eprintln!("xtask: installing chromium (apt-get)");
        if sh(Command::new("apt-get").args(["install", "-y", "chromium"])).is_err() {
            sh(Command::new("apt-get").arg("update"))?;
            sh(Command::new("apt-get").args(["install", "-y", "chromium"]))?;
        }
    }
    let node = root().join("target/clients/node");
    if !node
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        eprintln!(
            "xtask: installing {PLAYWRIGHT} (npm) into {}",
            node.display()
        );
        std::fs::create_dir_all(&node)?;
        sh(Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&node)
            .arg(PLAYWRIGHT))
        .context("npm could not install playwright-core (is Node.js installed?)")?;
    }
    let bin = crate::process::candlecache_binary(false)?;
    let dir = root().join("target/dashboard");
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("demo.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let (server, base) = serve(&bin, &db, &["--demo"])?;
    let shot = dir.join("dashboard.png");
    eprintln!("xtask: the dashboard of {base} in headless Chromium");
    let out = Command::new("timeout")
        .arg("180")
        .arg("node")
        .arg(root().join("xtask/scripts/dashboard_check.cjs"))
        .arg(&base)
        .arg(&shot)
        .env("NODE_PATH", node.join("node_modules"))
        .env("CHROMIUM", &chromium)
        .output()
        .context("cannot run node")?;
    drop(server);
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        bail!(
            "the dashboard check failed: {}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    println!(
        "xtask: the dashboard drew candles, switched timeframe, zoomed, showed its health panel, no console errors; screenshot {}",
        shot.display()
    );
    Ok(())
}

/// schemathesis (from PyPI) against `/openapi.json` of a demo server: every schema-valid
/// request must be accepted and every status declared; the few statuses that depend on
/// data or on relations between parameters are listed, with why, in
/// `xtask/scripts/schemathesis.toml`.
pub(crate) fn openapi(seconds: u32) -> Result<()> {
    let dir = root().join("target/clients");
    std::fs::create_dir_all(&dir)?;
    let python = python_env(
        &dir.join("venv-schemathesis"),
        "schemathesis",
        &["schemathesis==4.32.5"],
    )?;
    let bin = crate::process::candlecache_binary(false)?;
    let db = fresh_db(&dir.join("openapi.db"))?;
    let (server, base) = serve(&bin, &db, &["--demo", "--no-access-log"])?;
    eprintln!("xtask: schemathesis against {base}/openapi.json for {seconds} s");
    let status = Command::new("timeout")
        .arg((seconds + 300).to_string())
        .arg(python.with_file_name("st"))
        .arg("--no-color")
        .arg("--config-file")
        .arg(root().join("xtask/scripts/schemathesis.toml"))
        .arg("run")
        .arg(format!("{base}/openapi.json"))
        .args(["--max-time", &seconds.to_string(), "--workers", "2"])
        .args(["--checks", "all", "--exclude-checks"])
        // Authorization and resource life cycles: the API has no users or resources.
        .arg("ignored_auth,use_after_free,ensure_resource_availability,object_level_authorization")
        .status()?;
    drop(server);
    if !status.success() {
        bail!("schemathesis found problems (above)");
    }
    println!("xtask: schemathesis found no problem in {seconds} s");
    Ok(())
}
