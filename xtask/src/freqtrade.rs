//! `check-freqtrade-live [--ws]`: a fleet of freqtrade bots in dry-run through one
//! candlecache whose upstream is the tests' fake exchange (candles that form and close
//! with the clock). Every candle the strategy is given must equal the exchange's final
//! candle (or freqtrade's fill of a minute the exchange has no candle for); a new candle
//! must reach the strategy within freqtrade's own polling period; no ERROR and no
//! "Outdated history" after the first minute; the upstream's cost must not grow with
//! the number of bots. With `--ws` the bots keep websockets on (ccxt pro against the
//! served streams) and the exchange must see one stream connection.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::fake_exchange::{self as fake, FakeExchange};
use crate::process::root;
use crate::process::{python_env, sh, Started};

const MINUTE: i64 = 60_000;
/// A new candle must reach the strategy within freqtrade's loop (5 s here) and a margin.
const MAX_DELAY_MS: i64 = 15_000;

struct Options {
    /// `binance`, `bybit` or `okx`: whose API the bots and candlecache speak.
    exchange: &'static str,
    ws: bool,
    /// USD-M futures (`/fapi/v1`, pairs `BASE/USDT:USDT`) instead of spot.
    futures: bool,
    bots: usize,
    minutes: u64,
    pairs: usize,
}

fn options(args: &[&str]) -> Result<Options> {
    let mut o = Options {
        exchange: "binance",
        ws: false,
        futures: false,
        bots: 3,
        minutes: 4,
        pairs: 8,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut num = |name: &str| -> Result<u64> {
            let v = it
                .next()
                .with_context(|| format!("{name} needs a number"))?;
            v.parse()
                .ok()
                .filter(|n| *n > 0)
                .with_context(|| format!("{name} `{v}` is not a positive number"))
        };
        match *a {
            "--ws" => o.ws = true,
            "--exchange" => {
                o.exchange = match it.next().copied() {
                    Some("binance") => "binance",
                    Some("bybit") => "bybit",
                    Some("okx") => "okx",
                    other => bail!("--exchange `{}`: binance, bybit or okx", other.unwrap_or("")),
                }
            }
            "--futures" => o.futures = true,
            "--bots" => o.bots = num("--bots")? as usize,
            "--minutes" => o.minutes = num("--minutes")?,
            "--pairs" => o.pairs = num("--pairs")? as usize,
            other => bail!("check-freqtrade-live: unknown argument `{other}` (--exchange binance|bybit|okx, --ws, --futures, --bots N, --minutes N, --pairs N)"),
        }
    }
    o.pairs = o.pairs.min(listed(o.exchange));
    Ok(o)
}

/// `check-freqtrade --futures`: `download-data --trading-mode futures` through candlecache
/// (every row equal to the exchange's), then the futures fleet of [`live`].
pub(crate) fn check(args: &[&str]) -> Result<()> {
    let mut o = options(args)?;
    if o.exchange == "okx" {
        // OKX: spot 1h from a range older than its recent 1,440 candles, futures with
        // mark and funding for every listed pair (45, a fleet's whitelist) over recent
        // weeks (OKX keeps three months of funding), each twice: the second download
        // must cost the exchange nothing. Then a spot fleet with websockets on.
        for futures in [false, true] {
            o.futures = futures;
            download(&o)?;
        }
        o.futures = false;
        o.ws = true;
        return run_live(&o);
    }
    if o.exchange == "bybit" {
        // Bybit: spot 1h and futures with mark and funding downloaded, then a spot fleet
        // with websockets on (freqtrade's Bybit support has `ws_enabled`).
        for futures in [false, true] {
            o.futures = futures;
            download(&o)?;
        }
        o.futures = false;
        o.ws = true;
        return run_live(&o);
    }
    if !o.futures || o.ws {
        bail!(
            "check-freqtrade: only --futures is checked here (spot: check-freqtrade-live [--ws])"
        );
    }
    download(&o)?;
    run_live(&o)
}

/// Two pairs, two weeks of 1h futures, mark-price and funding through candlecache with
/// `freqtrade download-data --trading-mode futures`; every row freqtrade stored must equal
/// the exchange's.
fn download(o: &Options) -> Result<()> {
    let (dir, python, freqtrade, bin) = tools()?;
    let ex = FakeExchange::start();
    let mode = if o.futures { "futures" } else { "spot" };
    let work = dir.join(format!("freqtrade-download-{}-{mode}", o.exchange));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let args = upstream_args(o, &ex, false);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (server, base) = crate::clients::serve(&bin, &work.join("candlecache.db"), &args)?;
    let okx = o.exchange == "okx";
    let pairs = pairs(
        o.exchange,
        if okx && o.futures { listed("okx") } else { 2 },
        o.futures,
    );
    let timerange = if okx && o.futures {
        // The last three weeks, whole days, ending yesterday.
        let day = |t: i64| {
            let out = Command::new("date")
                .args(["-u", "-d", &format!("@{}", t / 1000), "+%Y%m%d"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
            out.unwrap_or_default()
        };
        let now = fake::now_ms();
        format!("{}-{}", day(now - 22 * 86_400_000), day(now - 86_400_000))
    } else {
        "20240301-20240315".to_owned()
    };
    let first = download_once(
        o,
        &freqtrade,
        &python,
        &work.join("first"),
        &base,
        &pairs,
        &timerange,
    )?;
    let asked = ex.klines_seen().len();
    let again_started = fake::now_ms();
    let again = download_once(
        o,
        &freqtrade,
        &python,
        &work.join("again"),
        &base,
        &pairs,
        &timerange,
    )?;
    let seen = ex.klines_seen();
    // A window reaching the present asks for the forming candle, which the live edge
    // refreshes by contract (ccxt's last page of a range ending yesterday reaches now).
    let edge_from = again_started - 2 * 3_600_000;
    let reaches_present = |s: &fake::Seen| {
        ["after", "endTime", "end"].iter().any(|k| {
            s.query
                .get(*k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|t| t > edge_from)
        }) && !s.path.contains("funding")
    };
    let edge = seen[asked..].iter().filter(|s| reaches_present(s)).count();
    let asked_again = seen.len() - asked - edge;
    let mut again_by_path: BTreeMap<String, usize> = BTreeMap::new();
    for s in seen[asked..].iter().filter(|s| !reaches_present(s)) {
        *again_by_path.entry(s.path.clone()).or_default() += 1;
    }
    drop(server);
    let mut problems = first;
    problems.extend(again);
    if asked_again > 0 {
        problems.push(format!(
            "the second identical download asked the exchange {asked_again} more times: {again_by_path:?}"
        ));
    }
    if okx && ex.okx_limited() > 0 {
        problems.push(format!(
            "the exchange refused {} requests for its limits (50011)",
            ex.okx_limited()
        ));
    }
    println!(
        "xtask: freqtrade download-data {} {mode}, {} pairs, {timerange}: {asked} history requests to the exchange, {asked_again} for the second download besides {edge} refreshing the forming candle{}",
        o.exchange,
        pairs.len(),
        if okx { format!(", {} refused for its limits", ex.okx_limited()) } else { String::new() }
    );
    if !problems.is_empty() {
        bail!(
            "freqtrade download-data through candlecache: {} problems: {:?}",
            problems.len(),
            problems.iter().take(5).collect::<Vec<_>>()
        );
    }
    Ok(())
}

/// One `freqtrade download-data` of `pairs` into `work` through candlecache at `base`;
/// returns what differs from the exchange.
fn download_once(
    o: &Options,
    freqtrade: &Path,
    python: &Path,
    work: &Path,
    base: &str,
    pairs: &[String],
    timerange: &str,
) -> Result<Vec<String>> {
    std::fs::create_dir_all(work)?;
    let mode = if o.futures { "futures" } else { "spot" };
    let user = work.join("user_data");
    sh(Command::new(freqtrade)
        .args(["create-userdir", "--userdir"])
        .arg(&user))?;
    let config = work.join("config.json");
    std::fs::write(
        &config,
        serde_json::to_string_pretty(&config_json(base, o, pairs, work))?,
    )?;
    eprintln!(
        "xtask: freqtrade {} download-data --exchange {} --trading-mode {mode} through candlecache ({base})",
        freqtrade_version(python),
        o.exchange
    );
    let out = Command::new(freqtrade)
        .args(["download-data", "-c"])
        .arg(&config)
        .arg("--userdir")
        .arg(&user)
        .args(["--trading-mode", mode, "--timeframes", "1h"])
        .args(["--timerange", timerange, "--data-format-ohlcv", "json"])
        .arg("--pairs")
        .args(pairs)
        .output()?;
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        bail!("freqtrade download-data failed: {log}");
    }
    let mut problems: Vec<String> = log
        .lines()
        .filter(|l| l.contains(" - ERROR - "))
        .map(str::to_owned)
        .collect();
    let data = if o.futures {
        user.join(format!("data/{}/futures", o.exchange))
    } else {
        user.join(format!("data/{}", o.exchange))
    };
    let mut checked = serde_json::Map::new();
    for pair in pairs {
        let id = market_id(o.exchange, pair);
        let stem = pair.replace(['/', ':'], "_");
        for entry in std::fs::read_dir(&data)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(&format!("{stem}-")) else {
                continue;
            };
            let rest = rest.trim_end_matches(".json");
            let (tf, kind) = rest.split_once('-').unwrap_or((rest, "spot"));
            let rows: Vec<Vec<Value>> =
                serde_json::from_str(&std::fs::read_to_string(data.join(&name))?)?;
            let wrong = rows
                .iter()
                .filter(|r| !downloaded_row_is_right(o.exchange, &id, tf, kind, r))
                .count();
            if rows.is_empty() || wrong > 0 {
                problems.push(format!(
                    "{name}: {} rows, {wrong} differ from the exchange's",
                    rows.len()
                ));
            }
            checked.insert(name, json!(rows.len()));
        }
    }
    let kinds: &[&str] = if o.futures {
        &["futures", "mark", "funding_rate"]
    } else {
        &["1h"]
    };
    for kind in kinds {
        if !checked
            .keys()
            .any(|k| k.ends_with(&format!("-{kind}.json")))
        {
            problems.push(format!("no {kind} file was written"));
        }
    }
    println!(
        "{}",
        serde_json::to_string(
            &json!({"files": checked.len(), "rows": checked.values().filter_map(Value::as_u64).sum::<u64>(), "problems": problems})
        )?
    );
    Ok(problems)
}

/// Whether a row freqtrade stored (`[ms, open, high, low, close, volume]`) equals the
/// fake exchange's: candles value for value, funding rates as freqtrade keeps them (the
/// rate in `open`, at the hour of the event).
fn downloaded_row_is_right(exchange: &str, id: &str, tf: &str, kind: &str, r: &[Value]) -> bool {
    let num = |v: &Value| {
        v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    };
    let Some(t) = r.first().and_then(Value::as_i64) else {
        return false;
    };
    let got: Vec<Option<f64>> = r.iter().skip(1).take(5).map(num).collect();
    if exchange == "okx" {
        let swap = id.ends_with("-SWAP");
        let want: Vec<Option<f64>> = match kind {
            "spot" | "futures" | "mark" => {
                let Some(row) = fake::okx::row(id, "1H", kind == "mark", t, i64::MAX) else {
                    return false;
                };
                // ccxt reads `vol` as a spot candle's volume and `volCcy` (base) as a
                // swap's; mark candles have none.
                let mut v: Vec<Option<f64>> =
                    row.iter().skip(1).take(4).map(|s| s.parse().ok()).collect();
                v.push(match kind {
                    "mark" => None,
                    _ => row[if swap { 6 } else { 5 }].parse().ok(),
                });
                v
            }
            "funding_rate" => {
                let k = (t - fake::LISTED) / fake::okx::FUNDING_EVERY;
                let (time, _, realized) = fake::okx::funding_event(id, k);
                return time == t && got.first() == Some(&realized.parse().ok());
            }
            _ => return false,
        };
        return got == want;
    }
    if exchange == "bybit" {
        let want: Vec<Option<f64>> = match kind {
            "spot" | "futures" | "mark" => {
                let row = fake::bybit::row(id, kind != "spot", kind == "mark", "60", t, i64::MAX);
                let mut v: Vec<Option<f64>> =
                    row.iter().skip(1).take(5).map(|s| s.parse().ok()).collect();
                // Mark candles have no volume: ccxt reads none and freqtrade keeps null.
                v.resize(5, None);
                v
            }
            "funding_rate" => {
                let k = (t - fake::LISTED) / fake::bybit::FUNDING_EVERY;
                let (time, rate) = fake::bybit::funding_event(id, k);
                return time == t && got.first() == Some(&rate.parse().ok());
            }
            _ => return false,
        };
        return got == want;
    }
    let want: Vec<Option<f64>> = match kind {
        "futures" | "mark" => {
            let Ok(iv) = tf
                .trim_end_matches('h')
                .parse::<i64>()
                .map(|h| h * 3_600_000)
            else {
                return false;
            };
            let row = fake::futures::row(id, kind == "mark", iv, t, i64::MAX);
            let Ok(row) = serde_json::from_str::<Vec<Value>>(&row) else {
                return false;
            };
            row.iter().skip(1).take(5).map(num).collect()
        }
        "funding_rate" => {
            let k = (t - fake::LISTED) / fake::futures::FUNDING_EVERY;
            let (time, rate, _) = fake::futures::funding_event(id, k);
            if time / 3_600_000 * 3_600_000 != t {
                return false;
            }
            let rate: f64 = rate.parse().unwrap_or(f64::NAN);
            return got.first() == Some(&Some(rate));
        }
        _ => return false,
    };
    got == want
}

pub(crate) fn live(args: &[&str]) -> Result<()> {
    let o = options(args)?;
    if o.futures && o.ws {
        bail!("check-freqtrade-live: freqtrade keeps websockets off for Binance futures; --ws and --futures do not go together");
    }
    run_live(&o)
}

fn run_live(o: &Options) -> Result<()> {
    let (dir, python, freqtrade, bin) = tools()?;
    let ex = FakeExchange::start();
    let work = dir.join(match (o.ws, o.futures) {
        (true, _) => format!("freqtrade-live-{}-ws", o.exchange),
        (false, true) => format!("freqtrade-live-{}-futures", o.exchange),
        (false, false) => format!("freqtrade-live-{}", o.exchange),
    });
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let db = work.join("candlecache.db");
    let args = upstream_args(o, &ex, o.ws);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (server, base) = crate::clients::serve(&bin, &db, &args)?;
    let pairs = pairs(o.exchange, o.pairs, o.futures);
    eprintln!(
        "xtask: freqtrade {} {} {} dry-run through candlecache ({base}), {} pairs, websockets {}; candlecache's upstream {}",
        freqtrade_version(&python),
        o.exchange,
        if o.futures { "futures" } else { "spot" },
        pairs.len(),
        if o.ws { "on" } else { "off" },
        if o.ws { "streams" } else { "REST only" },
    );
    // One bot for half the time, then the fleet: the upstream's cost a minute of each.
    let solo_minutes = (o.minutes / 2).max(2);
    let solo = fleet(
        &freqtrade,
        &work.join("solo"),
        &base,
        o,
        &pairs,
        (1, solo_minutes),
        &ex,
    )?;
    let many = fleet(
        &freqtrade,
        &work.join("fleet"),
        &base,
        o,
        &pairs,
        (o.bots, o.minutes),
        &ex,
    )?;
    let served = crate::clients::get_json(&base, "/api/performance/stats")
        .map(|v| v["data"]["served_streams"].clone())
        .unwrap_or(Value::Null);
    drop(server);

    let mut problems = Vec::new();
    for run in [&solo, &many] {
        problems.extend(run.problems.iter().cloned());
    }
    let ws_connections = ex.ws_connections();
    if o.ws && ws_connections != 1 {
        problems.push(format!(
            "the exchange saw {ws_connections} stream connections, not 1"
        ));
    }
    let summary = json!({
        "exchange": o.exchange,
        "market": if o.futures { "futures" } else { "spot" },
        "websockets": o.ws,
        "pairs": pairs.len(),
        "one_bot": solo.summary(),
        "fleet": many.summary(),
        "exchange_stream_connections": ws_connections,
        "served_streams_at_end": served,
        "problems": problems.iter().take(10).collect::<Vec<_>>(),
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    if !problems.is_empty() {
        bail!(
            "the freqtrade live check failed: {} problems",
            problems.len()
        );
    }
    println!(
        "xtask: {} freqtrade bots took {} candles, all equal to the exchange's; upstream klines requests a minute: {:.1} with one bot, {:.1} with {}",
        o.bots,
        many.candles,
        solo.klines_per_min,
        many.klines_per_min,
        o.bots
    );
    Ok(())
}

fn freqtrade_version(python: &Path) -> String {
    Command::new(python)
        .args(["-c", "import freqtrade; print(freqtrade.__version__)"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// What one run showed.
struct Run {
    bots: usize,
    candles: usize,
    delays_ms: Vec<i64>,
    klines_per_min: f64,
    errors: usize,
    outdated: usize,
    problems: Vec<String>,
}

impl Run {
    fn summary(&self) -> Value {
        let mut d = self.delays_ms.clone();
        d.sort_unstable();
        let pct = |p: f64| {
            d.get(((d.len().max(1) - 1) as f64 * p).round() as usize)
                .copied()
        };
        json!({
            "bots": self.bots,
            "candles_checked": self.candles,
            "new_candle_delay_ms": {"p50": pct(0.5), "p99": pct(0.99), "max": pct(1.0), "n": d.len()},
            "upstream_klines_per_min": (self.klines_per_min * 10.0).round() / 10.0,
            "error_lines": self.errors,
            "outdated_history_after_first_minute": self.outdated,
        })
    }
}

/// The clients' directory, Python and freqtrade (installed from PyPI on first use) and the
/// release binary, built.
fn tools() -> Result<(PathBuf, PathBuf, PathBuf, PathBuf)> {
    let dir = root().join("target/clients");
    std::fs::create_dir_all(&dir)?;
    let python = python_env(
        &dir.join("venv"),
        "freqtrade, ccxt.pro",
        &["freqtrade", "ccxt"],
    )?;
    let freqtrade = dir.join("venv/bin/freqtrade");
    let bin = crate::process::candlecache_binary(true)?;
    Ok((dir, python, freqtrade, bin))
}

/// How many pairs the fake exchange lists on `exchange`.
fn listed(exchange: &str) -> usize {
    if exchange == "okx" {
        fake::okx::SPOT.len()
    } else {
        fake::SYMBOLS.len()
    }
}

/// freqtrade's names of the first `n` pairs the fake exchange lists on `exchange`.
fn pairs(exchange: &str, n: usize, futures: bool) -> Vec<String> {
    let names: Vec<&str> = if exchange == "okx" {
        fake::okx::SPOT[..n]
            .iter()
            .map(|s| s.trim_end_matches("-USDT"))
            .collect()
    } else {
        fake::SYMBOLS[..n]
            .iter()
            .map(|s| s.trim_end_matches("USDT"))
            .collect()
    };
    names
        .into_iter()
        .map(|base| {
            if futures {
                format!("{base}/USDT:USDT")
            } else {
                format!("{base}/USDT")
            }
        })
        .collect()
}

/// The exchange's market id of a freqtrade pair (`BTC/USDT:USDT` -> `BTCUSDT`; on OKX
/// `BTC-USDT-SWAP`).
fn market_id(exchange: &str, pair: &str) -> String {
    let (spot, settle) = pair.split_once(':').unwrap_or((pair, ""));
    if exchange == "okx" {
        let id = spot.replace('/', "-");
        return if settle.is_empty() {
            id
        } else {
            format!("{id}-SWAP")
        };
    }
    spot.replace('/', "")
}

/// Runs `bots` freqtrade bots for `minutes` and judges what they saw.
fn fleet(
    freqtrade: &Path,
    dir: &Path,
    base: &str,
    o: &Options,
    pairs: &[String],
    (bots, minutes): (usize, u64),
    ex: &FakeExchange,
) -> Result<Run> {
    std::fs::create_dir_all(dir)?;
    let started_ms = fake::now_ms();
    let mut running = Vec::new();
    let mut logs = Vec::new();
    for i in 0..bots {
        let bot = dir.join(format!("bot{i}"));
        let user = bot.join("user_data");
        sh(Command::new(freqtrade)
            .args(["create-userdir", "--userdir"])
            .arg(&user))?;
        let config = bot.join("config.json");
        std::fs::write(
            &config,
            serde_json::to_string_pretty(&config_json(base, o, pairs, &bot))?,
        )?;
        let log = bot.join("freqtrade.log");
        let candles = bot.join("candles.jsonl");
        let child = Command::new(freqtrade)
            .args(["trade", "--dry-run", "-c"])
            .arg(&config)
            .arg("--logfile")
            .arg(&log)
            .arg("--userdir")
            .arg(&user)
            .args(["--strategy", "LogCandles", "--strategy-path"])
            .arg(root().join("xtask/scripts/freqtrade"))
            .env("CANDLE_LOG", &candles)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start freqtrade")?;
        running.push(Started(child));
        logs.push((log, candles));
    }
    eprintln!(
        "xtask: {bots} bot(s) running for {minutes} min in {}",
        dir.display()
    );
    let until = Instant::now() + Duration::from_secs(minutes * 60);
    while Instant::now() < until {
        std::thread::sleep(Duration::from_secs(5));
    }
    let ended_ms = fake::now_ms();
    // SIGTERM, then a wait: freqtrade shuts down cleanly.
    drop(running);
    let steady = started_ms + MINUTE;
    let klines_path = match (o.exchange, o.futures) {
        ("bybit", _) => "/v5/market/kline",
        ("okx", _) => "/api/v5/market/candles",
        (_, true) => "/fapi/v1/klines",
        _ => "/api/v3/klines",
    };
    let klines = ex
        .klines_seen()
        .iter()
        .filter(|s| s.path == klines_path && s.at >= steady && s.at < ended_ms)
        .count();
    let mut run = Run {
        bots,
        candles: 0,
        delays_ms: Vec::new(),
        klines_per_min: klines as f64 * MINUTE as f64 / (ended_ms - steady).max(1) as f64,
        errors: 0,
        outdated: 0,
        problems: Vec::new(),
    };
    for (i, (log, candles)) in logs.iter().enumerate() {
        judge_log(&mut run, i, log, steady)?;
        judge_candles(&mut run, i, candles, o)?;
    }
    Ok(run)
}

fn config_json(base: &str, o: &Options, pairs: &[String], bot: &Path) -> Value {
    let ws_base = base.replacen("http://", "ws://", 1);
    // ccxt's own rate limiting stays on, as in any freqtrade config: it paces
    // SUBSCRIBE messages under the 5 a second candlecache (like Binance) allows.
    let ccxt = if o.futures {
        // The only change a futures user makes: where the public futures API lives.
        json!({
            "urls": {"api": {"fapiPublic": format!("{base}/fapi/v1")}},
            "options": {"fetchMarkets": {"types": ["linear"]}, "fetchCurrencies": false},
        })
    } else {
        json!({
            "urls": {"api": {"public": format!("{base}/api/v3"), "ws": {"spot": format!("{ws_base}/ws")}}},
            "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": false},
        })
    };
    let ccxt = if o.exchange == "okx" {
        // The only change an OKX user makes: where the REST API and the streams live.
        json!({
            "urls": {"api": {"rest": base, "ws": format!("{ws_base}/ws/v5")}},
            "options": {"fetchMarkets": {"types": ["spot", "swap"]}, "fetchCurrencies": false},
        })
    } else if o.exchange == "bybit" {
        // The only change a Bybit user makes: where the public API and streams live.
        json!({
            "urls": {"api": {
                "public": base, "spot": base, "futures": base, "v2": base,
                "ws": {"public": {
                    "spot": format!("{ws_base}/v5/public/spot"),
                    "linear": format!("{ws_base}/v5/public/linear"),
                }},
            }},
            "options": {"fetchMarkets": {"types": ["spot", "linear"]}, "fetchCurrencies": false},
        })
    } else {
        ccxt
    };
    let ws = o.ws;
    let mut config = json!({
        "max_open_trades": 1,
        "stake_currency": "USDT",
        "stake_amount": 10,
        "dry_run": true,
        "dry_run_wallet": 1000,
        "timeframe": "1m",
        "trading_mode": "spot",
        "exchange": {
            "name": o.exchange,
            "key": "",
            "secret": "",
            "enable_ws": ws,
            "ccxt_config": ccxt,
            "ccxt_async_config": {},
            "pair_whitelist": pairs,
            "pair_blacklist": [],
        },
        "pairlists": [{"method": "StaticPairList"}],
        "entry_pricing": {"price_side": "same", "use_order_book": false},
        "exit_pricing": {"price_side": "same", "use_order_book": false},
        "initial_state": "running",
        "internals": {"process_throttle_secs": 5},
        "db_url": format!("sqlite:///{}", bot.join("trades.sqlite").display()),
        "bot_name": bot.file_name().map(|n| n.to_string_lossy().into_owned()),
    });
    if o.futures {
        // Futures tickers carry no price: freqtrade prices from the order book (depth).
        config["trading_mode"] = json!("futures");
        config["margin_mode"] = json!("isolated");
        config["exchange"]["only_from_ccxt"] = json!(true);
        config["entry_pricing"] =
            json!({"price_side": "same", "use_order_book": true, "order_book_top": 1});
        config["exit_pricing"] =
            json!({"price_side": "same", "use_order_book": true, "order_book_top": 1});
    }
    config
}

/// candlecache's upstream flags for `o`'s exchange, streams on with `ws`.
fn upstream_args(o: &Options, ex: &FakeExchange, ws: bool) -> Vec<String> {
    let url = ex.url();
    if o.exchange == "okx" {
        let ws = if ws {
            format!("{}/ws/v5", ex.ws_url())
        } else {
            "off".to_owned()
        };
        return vec!["--upstream-okx".into(), url, "--upstream-okx-ws".into(), ws];
    }
    if o.exchange == "bybit" {
        let ws = if ws {
            format!("{}/v5/public", ex.ws_url())
        } else {
            "off".to_owned()
        };
        return vec![
            "--upstream-bybit".into(),
            url,
            "--upstream-bybit-ws".into(),
            ws,
        ];
    }
    let ws = if ws { ex.ws_url() } else { "off".to_owned() };
    vec!["--upstream".into(), url, "--upstream-ws".into(), ws]
}

/// Counts ERROR lines, and "Outdated history" warnings logged after `steady`.
fn judge_log(run: &mut Run, bot: usize, log: &Path, steady: i64) -> Result<()> {
    let text = std::fs::read_to_string(log)
        .with_context(|| format!("bot {bot} wrote no log at {}", log.display()))?;
    for line in text.lines() {
        if line.contains(" - ERROR - ") {
            run.errors += 1;
            run.problems.push(format!("bot {bot}: {line}"));
        }
        if line.contains("Outdated history") && log_time(line).is_none_or(|t| t >= steady) {
            run.outdated += 1;
            run.problems.push(format!("bot {bot}: {line}"));
        }
    }
    Ok(())
}

/// The epoch ms of a freqtrade log line (`2026-11-30 20:30:01,123 - ...`, local time,
/// which is UTC on the machines this runs on).
fn log_time(line: &str) -> Option<i64> {
    let stamp = line.get(..23)?;
    let out = Command::new("date")
        .args(["-u", "-d", &stamp.replace(',', "."), "+%s%3N"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Every candle the strategy was given against the exchange's final candle; the delay
/// from a candle's close until the strategy first had it as its newest.
fn judge_candles(run: &mut Run, bot: usize, path: &Path, o: &Options) -> Result<()> {
    let futures = o.futures;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("bot {bot}'s strategy logged no candle ({})", path.display()))?;
    let mut by_pair: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line)?;
        by_pair
            .entry(v["pair"].as_str().unwrap_or_default().to_owned())
            .or_default()
            .push(v);
    }
    for (pair, rows) in by_pair {
        let symbol = market_id(o.exchange, &pair);
        let mut newest_seen: HashMap<i64, i64> = HashMap::new();
        let mut prev_close: HashMap<i64, f64> = HashMap::new();
        for r in &rows {
            let t = r["t"].as_i64().unwrap_or_default();
            let got: Vec<f64> = ["o", "h", "l", "c", "v"]
                .iter()
                .map(|k| r[*k].as_f64().unwrap_or(f64::NAN))
                .collect();
            let want = if fake::exists(MINUTE, t, i64::MAX) && o.exchange == "okx" {
                let row = fake::okx::row(&symbol, "1m", false, t, i64::MAX).unwrap_or_default();
                let volume = if futures { 6 } else { 5 };
                [1, 2, 3, 4, volume]
                    .iter()
                    .map(|i| row.get(*i).and_then(|s| s.parse().ok()).unwrap_or(f64::NAN))
                    .collect::<Vec<f64>>()
            } else if fake::exists(MINUTE, t, i64::MAX) && o.exchange == "bybit" {
                fake::bybit::row(&symbol, futures, false, "1", t, i64::MAX)
                    .iter()
                    .skip(1)
                    .take(5)
                    .map(|s| s.parse().unwrap_or(f64::NAN))
                    .collect::<Vec<f64>>()
            } else if fake::exists(MINUTE, t, i64::MAX) {
                let row = if futures {
                    fake::futures::row(&symbol, false, MINUTE, t, i64::MAX)
                } else {
                    fake::row_of(&symbol, MINUTE, t, i64::MAX)
                };
                let row: Vec<Value> = serde_json::from_str(&row)?;
                (1..=5)
                    .map(|i| {
                        row[i]
                            .as_str()
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(f64::NAN)
                    })
                    .collect::<Vec<f64>>()
            } else {
                // No candle at the exchange: freqtrade fills the minute from the previous
                // close with no volume.
                let c = prev_close.get(&(t - MINUTE)).copied().unwrap_or(got[3]);
                vec![c, c, c, c, 0.0]
            };
            prev_close.insert(t, got[3]);
            run.candles += 1;
            if got != want {
                run.problems.push(format!(
                    "bot {bot} {pair} {t}: the strategy got {got:?}, the exchange's final candle is {want:?}"
                ));
            }
        }
        // The last row of each call is the newest closed candle the strategy had; the
        // first call is the start-up, not a new candle.
        for chunk in rows.chunks(3).skip(1) {
            if let Some(last) = chunk.last() {
                let t = last["t"].as_i64().unwrap_or_default();
                let at = last["at"].as_i64().unwrap_or_default();
                newest_seen.entry(t).or_insert(at);
            }
        }
        for (t, at) in newest_seen {
            let delay = at - (t + MINUTE);
            if delay > MAX_DELAY_MS {
                run.problems.push(format!(
                    "bot {bot} {pair}: the candle of {t} reached the strategy {delay} ms after its close"
                ));
            }
            run.delays_ms.push(delay);
        }
    }
    Ok(())
}
