//! Project tasks: `cargo xtask ci | layers | bench ... | gen-data | check-ccxt |
//! check-ccxt-pro | check-dashboard`.
//!
//! Kept dependency-light on purpose: it shells out to cargo and reads `cargo metadata`.

mod bench;
mod clients;
mod crash;
// The fake exchange of the end-to-end tests, shared so the client checks run against the
// same exchange the tests do.
#[allow(dead_code, clippy::unwrap_used, unreachable_pub)]
#[path = "../../tests/it/fake_exchange.rs"]
mod fake_exchange;
mod freqtrade;
mod gen;
mod layers;
mod objects;
mod process;
mod soak;
mod tidy;

use process::cargo;

use anyhow::{bail, Context, Result};

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  check-openapi [--seconds N]
                          schemathesis (PyPI) fuzzing /openapi.json of a demo server
                          (180 s); allowed statuses and why: xtask/scripts/schemathesis.toml
  ci                      fmt check, clippy (warnings denied), tests, docs, the dashboard
                          check in headless Chromium, the object-store check on moto S3,
                          layering check
  layers                  check that crates depend on each other only along the allowed edges
  bench cache [--seconds S]
                          cache-core against moka and quick_cache; writes docs/BENCHMARKS.md
  bench storage [--rows N]
                          import and range reads against sqlite3 .import and DuckDB (installs
                          the peers: sqlite3 from Debian, duckdb from PyPI into target/bench)
  bench http [--seconds S]
                          a cached hit of 1,000 1h candles against nginx (same bytes) and the
                          Flask baseline of ../shared/baselines (installs wrk, nginx, Flask)
  bench resample [--rows N]
                          1m to 1h and 1w against polars and pandas, results checked equal
  soak [--seconds 60] [--connections 256] [--runs 3] [--cache-mb 256]
                          a mixed workload (hits, misses, resamples, Arrow/CSV, bad
                          requests) with wrk against the release server, repeated, then
                          SIGTERM under load: no 5xx, no socket errors, bounded and stable
                          memory, clean exit; writes docs/BENCHMARKS.md
  crash [--rounds 20]     SIGKILL during import and during backfill (from a second
                          candlecache as upstream), N times each: integrity_check, whole
                          batches, coverage only of what is stored, exact resume
  bench ws [--clients 1000] [--streams 50] [--seconds 20] [--period-ms 20]
                          served streams: events/s, event-to-client latency and memory per
                          client, against a bare tokio-tungstenite fan-out in the same run
  bench fleet [--seconds 90]
                          series 10/100/1,000, bots 1/10/100, 1,000 WebSocket clients
                          against one server on the fake exchange: exchange connections
                          and requests, freshness, CPU, memory a series
  gen-data --rows N OUT   writes a deterministic Binance 1m kline CSV
  check-ccxt              ccxt's binance client (from PyPI, into target/clients) pointed at
                          candlecache's /api/v3: load_markets, then fetch_ohlcv through seven
                          weeks of 1h candles, checked against /api/crypto/ohlc
  check-ccxt-pro          ccxt pro's binance.watch_ohlcv (only URLs changed) on candlecache's
                          served streams, with the tests' fake exchange upstream: updates
                          arrive, every closed candle equals candlecache's REST answer and
                          the exchange's
  check-ccxt-usdm         ccxt's binanceusdm (only urls.api.fapiPublic changed) against
                          candlecache's /fapi/v1 with the fake exchange upstream: markets,
                          paged 1h klines, mark-price klines and funding history equal to
                          the same calls against the exchange
  check-ccxt-bybit        ccxt's bybit (only urls.api changed, spot and linear markets)
                          against candlecache's /v5/market with the fake exchange speaking
                          Bybit: markets, three pages of spot and linear 1h klines, mark
                          price, funding history equal to the exchange's; ccxt pro's
                          watch_ohlcv on /v5/public/spot and /v5/public/linear
  check-ccxt-okx          ccxt's okx (only urls.api changed, spot and swap markets) against
                          /api/v5 with the fake exchange speaking OKX: three pages of 1h
                          candles older than OKX's recent 1,440 and recent ones, mark,
                          funding; ccxt pro's watch_ohlcv on /ws/v5/business
  check-object-store      three instances, a bounded one, DuckDB (httpfs) and polars on a moto S3
                          server on loopback (part of `ci`, there with the debug binary)
                          (from PyPI, into target/clients): exchange requests of one vs
                          three instances, a fresh instance's cold month vs DuckDB's read
  check-freqtrade-live [--ws] [--bots 3] [--pairs 8] [--minutes 4]
                          freqtrade dry-run bots (from PyPI) through candlecache with the fake
                          exchange upstream, one bot then the fleet: every candle the
                          strategy gets equals the exchange's final one, new candles arrive
                          within freqtrade's polling, no ERROR, no \"Outdated history\", the
                          upstream's cost independent of the bots; --ws: websockets on, one
                          stream connection to the exchange (about 7 minutes)
  check-freqtrade [--futures | --exchange bybit|okx]
                          freqtrade download-data through candlecache, twice (every row the
                          exchange's; the second download asks the exchange nothing but the
                          forming candle), then a dry-run fleet; --exchange okx downloads
                          futures, mark and funding for all 45 pairs the fake lists while it
                          enforces OKX's limits (none may be refused)
  check-dashboard         the dashboard page of a demo server in headless Chromium (Debian's
                          chromium and playwright-core from npm, installed if missing):
                          candles drawn, timeframe switch, zoom, health panel, no console
                          errors; screenshot in target/dashboard/dashboard.png
";

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["ci"] => ci(),
        ["layers"] => {
            let report = layers::check(&layers::metadata()?)?;
            println!("{report}");
            Ok(())
        }
        ["tidy"] => {
            println!("{}", tidy::check(&process::root())?);
            Ok(())
        }
        ["bench", "cache", rest @ ..] => bench::cache(rest),
        ["bench", "storage", rest @ ..] => bench::storage(rest),
        ["bench", "http", rest @ ..] => bench::http(rest),
        ["bench", "resample", rest @ ..] => bench::resample(rest),
        ["bench", "ws", rest @ ..] => bench::ws::bench(rest),
        ["bench", "fleet", rest @ ..] => bench::fleet(rest),
        ["ws-baseline", rest @ ..] => bench::ws::baseline(rest),
        ["ws-load", rest @ ..] => bench::ws::load(rest),
        ["bench", ..] => {
            bail!("unknown benchmark; available: cache, storage, http, resample, ws\n\n{USAGE}")
        }
        ["gen-data", "--rows", n, out] => {
            let rows: u64 = n
                .parse()
                .with_context(|| format!("--rows `{n}` is not a count"))?;
            gen::binance_1m(std::path::Path::new(out), rows, 42)
        }
        ["soak", rest @ ..] => soak::soak(rest),
        ["crash", rest @ ..] => crash::crash(rest),
        ["check-ccxt"] => clients::ccxt(),
        ["check-ccxt-pro"] => clients::ccxt_pro(),
        ["check-ccxt-usdm"] => clients::ccxt_usdm(),
        ["check-ccxt-bybit"] => clients::ccxt_bybit(),
        ["check-ccxt-okx"] => clients::ccxt_okx(),
        ["check-object-store"] => objects::check(true),
        ["check-freqtrade-live", rest @ ..] => freqtrade::live(rest),
        ["check-freqtrade", rest @ ..] => freqtrade::check(rest),
        ["check-dashboard"] => clients::dashboard(),
        ["check-openapi"] => clients::openapi(180),
        ["check-openapi", "--seconds", n] => clients::openapi(
            n.parse()
                .with_context(|| format!("--seconds `{n}` is not a count"))?,
        ),
        ["help" | "--help" | "-h"] | [] => {
            print!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown task `{}`\n\n{USAGE}", other.join(" ")),
    }
}

fn ci() -> Result<()> {
    cargo(&["fmt", "--all", "--check"], &[])?;
    cargo(
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )?;
    let (passed, failed) = cargo_test(&["test", "--workspace", "--locked"])?;
    cargo(
        &["doc", "--workspace", "--no-deps", "--locked"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    clients::dashboard()?;
    // A real S3 server: the file:// tests cannot see what only S3 does (HTTP options,
    // conditional puts, listing).
    objects::check(false)?;
    let report = layers::check(&layers::metadata()?)?;
    println!("{report}");
    println!("{}", tidy::check(&process::root())?);
    println!("xtask ci: all checks passed");
    // The last line is the overall count, for whoever reads only the end of the log.
    println!("tests: {passed} passed, {failed} failed");
    Ok(())
}

/// Runs `cargo test`, echoing its output, and returns the passed and failed counts summed
/// over all test binaries.
fn cargo_test(args: &[&str]) -> Result<(u64, u64)> {
    use std::io::{BufRead, BufReader};
    eprintln!("xtask: cargo {}", args.join(" "));
    let mut child = crate::process::cargo_command()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("could not run cargo test")?;
    let (mut passed, mut failed) = (0, 0);
    let stdout = child.stdout.take().context("cargo test has no stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        // "test result: ok. 25 passed; 0 failed; 0 ignored; ..."
        if let Some(rest) = line.strip_prefix("test result: ") {
            for part in rest.split(['.', ';']) {
                let mut words = part.split_whitespace();
                match (words.next().map(str::parse::<u64>), words.next()) {
                    (Some(Ok(n)), Some("passed")) => passed += n,
                    (Some(Ok(n)), Some("failed")) => failed += n,
                    _ => {}
                }
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        println!("tests: {passed} passed, {failed} failed");
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok((passed, failed))
}
