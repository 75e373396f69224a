//! `cargo xtask bench ...`: runs benchmarks and writes their tables into docs/BENCHMARKS.md.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::process::{python_env, root, sh, timed, timed_footprint, wait_http, wrk, Started};

/// The miss cost used for the derived "with a miss penalty" column: a conservative figure
/// for one chunk loaded from SQLite and encoded.
const MISS_PENALTY_US: f64 = 100.0;

pub(crate) fn cache(args: &[&str]) -> Result<()> {
    let seconds = match args {
        [] => "2".to_owned(),
        ["--seconds", s] => {
            let v: f64 = s
                .parse()
                .with_context(|| format!("--seconds `{s}` is not a number"))?;
            if !(0.05..=60.0).contains(&v) {
                bail!("--seconds must be between 0.05 and 60");
            }
            (*s).to_owned()
        }
        other => {
            bail!("unexpected arguments {other:?}; usage: cargo xtask bench cache [--seconds S]")
        }
    };
    let out = root().join("target/bench/cache.json");
    std::fs::create_dir_all(out.parent().expect("has a parent"))?;
    let out_str = out.to_str().context("target path is not UTF-8")?;
    crate::process::cargo(
        &[
            "bench",
            "-p",
            "cache-core",
            "--bench",
            "compare",
            "--",
            "--out",
            out_str,
            "--seconds",
            &seconds,
        ],
        &[],
    )?;
    let results: Value = serde_json::from_slice(&std::fs::read(&out)?)
        .context("the cache benchmark wrote invalid JSON")?;
    let section = render_cache(&results, &provenance("cache", args))?;
    publish("cache", &section)
}

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

fn render_cache(r: &Value, provenance: &str) -> Result<String> {
    let cases = r["cases"].as_array().context("no cases in results")?;
    let find = |w: &str, size: u64, threads: u64, cache: &str| {
        cases.iter().find(|c| {
            c["workload"] == w
                && c["value_bytes"] == size
                && c["threads"] == threads
                && c["cache"] == cache
        })
    };
    let mut s = String::new();
    writeln!(s, "## cache-core against moka and quick_cache\n")?;
    s.push_str(provenance);
    writeln!(
        s,
        "Each case runs {} s after an uncounted warm-up, in one process, every cache with the same byte capacity and the same per-entry charge (key + value + 128 B).\n",
        r["seconds_per_case"]
    )?;
    writeln!(
        s,
        "- `hit`: every key fits and is preloaded; Zipf(0.99) gets only. This is hit throughput."
    )?;
    writeln!(s, "- `zipf`: the cache holds a quarter of the key space; Zipf(0.99) read-through (a miss inserts the value).")?;
    writeln!(s, "  cache-core compresses entries others evict, so it trades operations per second for hit ratio.")?;
    writeln!(s, "  The last column adds a {MISS_PENALTY_US} µs load per miss (a conservative SQLite chunk read and encode) to show what that trade is worth to candlecache; it is derived, not measured.\n")?;
    writeln!(s, "| workload | value | threads | cache-core ops/s | moka ops/s | quick_cache ops/s | vs moka | vs quick_cache | hit ratio (ours / moka / qc) | vs moka with {MISS_PENALTY_US} µs per miss |")?;
    writeln!(s, "|---|---|---|---|---|---|---|---|---|---|")?;
    for workload in ["hit", "zipf"] {
        for size in [1024u64, 65536] {
            for threads in [1u64, 2] {
                let (Some(o), Some(m), Some(q)) = (
                    find(workload, size, threads, "cache-core"),
                    find(workload, size, threads, "moka"),
                    find(workload, size, threads, "quick_cache"),
                ) else {
                    continue;
                };
                let ops = |c: &Value| c["ops_per_s"].as_f64().unwrap_or(0.0);
                let hit = |c: &Value| c["hit_ratio"].as_f64().unwrap_or(0.0);
                // Time per operation plus the expected cost of its miss, in µs.
                let cost = |c: &Value| 1e6 / ops(c).max(1.0) + (1.0 - hit(c)) * MISS_PENALTY_US;
                writeln!(
                    s,
                    "| {workload} | {} KB | {threads} | {} | {} | {} | {:.2}x | {:.2}x | {:.3} / {:.3} / {:.3} | {:.2}x |",
                    size / 1024,
                    si(ops(o)),
                    si(ops(m)),
                    si(ops(q)),
                    ops(o) / ops(m),
                    ops(o) / ops(q),
                    hit(o),
                    hit(m),
                    hit(q),
                    cost(m) / cost(o),
                )?;
            }
        }
    }
    writeln!(s, "\n### Warm tier on real candle JSON\n")?;
    writeln!(s, "The files of tests/fixtures/market as the JSON candlecache caches, in chunks of {} candles, pushed into the warm tier by pressure; figures are the cache's own (`warm_raw_bytes`, `warm_stored_bytes`, `compression_ratio`), and every chunk is read back and compared.", r["candles_per_chunk"])?;
    writeln!(s, "`api` is `/api/crypto/ohlc`'s compact rows `[ms,o,h,l,c,v]`; `klines` is Binance's 12-field rows with 8-decimal strings, as `/api/v3/klines` serves them.\n")?;
    writeln!(
        s,
        "| shape | file | chunks | raw bytes | compressed bytes | smaller by |"
    )?;
    writeln!(s, "|---|---|---|---|---|---|")?;
    for c in r["compression"].as_array().context("no compression rows")? {
        writeln!(
            s,
            "| {} | {} | {} | {} | {} | {:.2}x |",
            c["shape"].as_str().unwrap_or_default(),
            c["file"].as_str().unwrap_or_default(),
            c["chunks"],
            c["raw_bytes"],
            c["compressed_bytes"],
            c["ratio"].as_f64().unwrap_or(0.0)
        )?;
    }
    Ok(s)
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

pub(crate) fn storage(args: &[&str]) -> Result<()> {
    let rows = rows_arg(args, "storage")?;
    let bench = root().join("target/bench");
    let data = generated(rows)?;
    let python = install_peers(&bench)?;
    let bin = crate::process::candlecache_binary(true)?;
    let fresh = |name: &str| -> Result<std::path::PathBuf> {
        let p = bench.join(name);
        for ext in ["", "-wal", "-shm"] {
            let f = std::path::PathBuf::from(format!("{}{ext}", p.display()));
            if f.exists() {
                std::fs::remove_file(&f)?;
            }
        }
        Ok(p)
    };

    // Import: ours in both modes, then sqlite3's .import of the same file into a plain table.
    let db = fresh("storage.db")?;
    let fail = timed_footprint(
        Command::new(&bin)
            .arg("--db")
            .arg(&db)
            .arg("import")
            .arg(&data),
        &db,
    )?;
    let ours_fail = fail.seconds;
    let db_skip = fresh("storage-skip.db")?;
    let skip = timed_footprint(
        Command::new(&bin)
            .arg("--db")
            .arg(&db_skip)
            .args(["import", "--on-invalid", "skip"])
            .arg(&data),
        &db_skip,
    )?;
    let ours_skip = skip.seconds;
    std::fs::remove_file(&db_skip).ok();
    let plain = fresh("sqlite3-import.db")?;
    let ddl = "CREATE TABLE kl(open_time INTEGER, open REAL, high REAL, low REAL, close REAL, volume REAL, close_time INTEGER, qav REAL, trades INTEGER, tbb REAL, tbq REAL, ign INTEGER);";
    let sqlite3_import = timed(Command::new("sqlite3").arg(&plain).args([
        ddl,
        ".mode csv",
        &format!(".import {} kl", data.display()),
    ]))?;
    let counted: u64 = sh(Command::new("sqlite3")
        .arg(&plain)
        .arg("SELECT count(*) FROM kl"))?
    .trim()
    .parse()?;
    std::fs::remove_file(&plain).ok();
    let sqlite3_version = sh(Command::new("sqlite3").arg("--version"))?;
    let sqlite3_version = sqlite3_version
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();

    // Range reads into Arrow: ours, and DuckDB's sqlite scanner on the same file.
    let mut reads = Vec::new();
    let mut parquet_first = None;
    for n in [100_000u64, 1_000_000] {
        if n > rows {
            continue;
        }
        let out = sh(
            Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .current_dir(root())
                .args([
                    "bench",
                    "--quiet",
                    "-p",
                    "market-cache",
                    "--bench",
                    "range",
                    "--",
                    "--db",
                ])
                .arg(&db)
                .args([
                    "--symbol",
                    "BTCUSDT",
                    "--timeframe",
                    "1m",
                    "--rows",
                    &n.to_string(),
                    "--repeat",
                    "5",
                ]),
        )?;
        let ours: Value = serde_json::from_str(out.trim()).context("range bench output")?;
        let (start, end) = (
            ours["start"].as_i64().unwrap_or(0),
            ours["end"].as_i64().unwrap_or(0),
        );
        let script = root().join("xtask/scripts/duckdb_range.py");
        let out = sh(Command::new(&python).arg(&script).arg(&db).args([
            "BTCUSDT",
            "1m",
            &start.to_string(),
            &end.to_string(),
            "5",
        ]))?;
        let duck: Value = serde_json::from_str(out.trim()).context("duckdb output")?;
        let secs = |v: &Value| {
            median(
                v["seconds"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_f64).collect())
                    .unwrap_or_default(),
            )
        };
        if ours["rows"] != duck["rows"] {
            bail!("ours read {} rows, DuckDB {}", ours["rows"], duck["rows"]);
        }
        reads.push((
            n,
            ours["rows"].as_u64().unwrap_or(0),
            secs(&ours),
            secs(&duck),
            duck["duckdb"].as_str().unwrap_or("?").to_owned(),
        ));
        if n == 100_000 {
            // The same range from a Parquet export of the same candles, first (uncached)
            // reads on both sides: the first sample of each run.
            // Named by the row count: a file from a run on other data must not be reused.
            let pq = bench.join(format!("storage-{rows}.parquet"));
            if !pq.exists() {
                sh(Command::new(&bin)
                    .arg("--db")
                    .arg(&db)
                    .args([
                        "export",
                        "--symbol",
                        "BTCUSDT",
                        "--timeframe",
                        "1m",
                        "--format",
                        "parquet",
                    ])
                    .arg(&pq))?;
            }
            let out = sh(Command::new(&python)
                .arg(&script)
                .arg(&db)
                .args(["BTCUSDT", "1m", &start.to_string(), &end.to_string(), "5"])
                .arg(&pq))?;
            let pduck: Value = serde_json::from_str(out.trim()).context("duckdb parquet output")?;
            if pduck["rows"] != ours["rows"] {
                bail!(
                    "ours read {} rows, DuckDB from Parquet {}",
                    ours["rows"],
                    pduck["rows"]
                );
            }
            let first = |v: &Value| v["seconds"][0].as_f64().unwrap_or(0.0);
            parquet_first = Some((
                first(&ours),
                first(&pduck),
                secs(&pduck),
                pduck["rows"].as_u64().unwrap_or(0),
            ));
        }
    }

    let per_s = |n: u64, s: f64| n as f64 / s;
    let mut s = String::new();
    writeln!(s, "## Storage: import and range reads\n")?;
    s.push_str(&provenance("storage", args));
    writeln!(s, "Data: {rows} generated BTCUSDT 1m candles as a Binance kline CSV ({:.0} MB, `cargo xtask gen-data`).\n", std::fs::metadata(&data)?.len() as f64 / 1e6)?;
    writeln!(
        s,
        "| import of the CSV into a fresh database | seconds | rows/s | vs sqlite3 .import |"
    )?;
    writeln!(s, "|---|---|---|---|")?;
    writeln!(s, "| sqlite3 {sqlite3_version} CLI `.import` into a plain table (no key, no validation; {counted} rows) | {sqlite3_import:.2} | {} | 1.00x |", si(per_s(rows, sqlite3_import)))?;
    writeln!(s, "| `candlecache import --on-invalid skip` (one pass: parse, validate, exact decimals, keyed upsert) | {ours_skip:.2} | {} | {:.2}x |", si(per_s(rows, ours_skip)), sqlite3_import / ours_skip)?;
    writeln!(s, "| `candlecache import` (default `fail`: one pass in one transaction, so a bad file changes nothing) | {ours_fail:.2} | {} | {:.2}x |", si(per_s(rows, ours_fail)), sqlite3_import / ours_fail)?;
    let mb = |b: u64| b as f64 / 1e6;
    writeln!(s, "\nWhat the guarantee costs: the default import's WAL grew to {:.0} MB (the whole import is one transaction until it commits; `--on-invalid skip` commits every 50,000 rows: {:.0} MB), peak resident memory {:.0} MB (skip: {:.0} MB).", mb(fail.wal_peak_bytes), mb(skip.wal_peak_bytes), mb(fail.rss_peak_bytes), mb(skip.rss_peak_bytes))?;
    writeln!(s, "\n| range read into Arrow (same file, a range in the middle, median of 5) | rows | candlecache s | DuckDB s | candlecache rows/s | DuckDB rows/s | vs DuckDB |")?;
    writeln!(s, "|---|---|---|---|---|---|---|")?;
    for (n, got, ours, duck, ver) in &reads {
        writeln!(s, "| {n} candles, DuckDB {ver} `sqlite_scan` | {got} | {ours:.4} | {duck:.4} | {} | {} | {:.2}x |", si(per_s(*got, *ours)), si(per_s(*got, *duck)), duck / ours)?;
    }
    if let Some((ours_first, duck_first, duck_median, duck_rows)) = parquet_first {
        writeln!(
            s,
            "\n| first (uncached) read of 100,000 1m candles into Arrow | seconds | vs DuckDB |"
        )?;
        writeln!(s, "|---|---|---|")?;
        writeln!(
            s,
            "| candlecache from its SQLite file (a fresh process) | {ours_first:.4} | {:.2}x |",
            duck_first / ours_first
        )?;
        writeln!(s, "| DuckDB `read_parquet` of a Parquet export of the same candles ({duck_rows} rows; median of 5: {duck_median:.4} s) | {duck_first:.4} | 1.00x |")?;
    }
    publish("storage", &s)
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
    {
        let prefix = bench.join("nginx");
        std::fs::create_dir_all(prefix.join("tmp"))?;
        let conf = std::fs::read_to_string(shared.join("nginx/nginx.conf.template"))?
            .replace("@PORT@", "18282")
            .replace("@PREFIX@", &prefix.display().to_string())
            .replace("@BODY@", &ours.display().to_string());
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
        rows.push((
            "nginx, the same bytes as a static file",
            r,
            std::fs::metadata(&ours)?.len(),
        ));
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
    let spread = |v: &[(f64, String, String, u64)]| {
        v.iter()
            .map(|r| format!("{:.0}", r.0))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let verdict = if cost_pct <= 0.0 {
        format!("no measurable cost: the counting build was {:.1} % faster, within the spread of the runs", -cost_pct)
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

pub(crate) fn resample(args: &[&str]) -> Result<()> {
    let rows = rows_arg(args, "resample")?;
    let bench = root().join("target/bench");
    let data = generated(rows)?;
    let python = install_peers(&bench)?;
    if !Command::new(&python)
        .args(["-c", "import polars, pandas, numpy"])
        .output()?
        .status
        .success()
    {
        eprintln!("xtask: installing polars, pandas and numpy");
        sh(Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "polars==1.33.1",
            "pandas",
            "numpy",
        ]))?;
    }
    let out = bench.join("resample");
    std::fs::create_dir_all(&out)?;
    let ours = sh(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root())
            .args([
                "bench",
                "--quiet",
                "-p",
                "market-cache",
                "--bench",
                "resample",
                "--",
                "--csv",
            ])
            .arg(&data)
            .arg("--out")
            .arg(&out),
    )?;
    let ours: Value = serde_json::from_str(ours.trim()).context("resample bench output")?;
    let peers = sh(Command::new(&python)
        .arg(root().join("xtask/scripts/resample_peers.py"))
        .arg(&data)
        .arg(&out)
        .arg("5"))?;
    let peers: Value = serde_json::from_str(peers.trim()).context("peer output")?;
    let mut s = String::new();
    writeln!(s, "## Resampling 1m candles to 1h and to Monday weeks\n")?;
    s.push_str(&provenance("resample", args));
    writeln!(s, "Data: {rows} generated 1m candles, in memory for everyone (loading not timed); median of 5. polars {} `group_by_dynamic` (weeks `start_by=\"monday\"`), pandas {} `resample` (`W-MON`, closed and labelled left). Results checked equal (times exactly, values to 1e-12).\n", peers["polars"].as_str().unwrap_or("?"), peers["pandas"].as_str().unwrap_or("?"))?;
    writeln!(s, "| target | rows out | candlecache s | polars s | pandas s | vs polars | vs pandas | equal |")?;
    writeln!(s, "|---|---|---|---|---|---|---|---|")?;
    let mut differ = Vec::new();
    for tf in ["1h", "1w"] {
        let secs = median(
            ours[tf]["seconds"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_f64).collect())
                .unwrap_or_default(),
        );
        let p = peers[format!("polars_{tf}")].as_f64().unwrap_or(0.0);
        let q = peers[format!("pandas_{tf}")].as_f64().unwrap_or(0.0);
        let equal = peers[format!("equal_{tf}")].as_bool().unwrap_or(false);
        writeln!(
            s,
            "| {tf} | {} | {secs:.4} | {p:.4} | {q:.4} | {:.2}x | {:.2}x | {} |",
            ours[tf]["rows_out"],
            p / secs,
            q / secs,
            if equal { "yes" } else { "NO" }
        )?;
        if !equal {
            differ.push(tf);
        }
    }
    publish("resample", &s)?;
    if !differ.is_empty() {
        bail!(
            "the {} results differ between candlecache and the peers",
            differ.join(" and ")
        );
    }
    Ok(())
}
