//! `cargo xtask bench storage`: import and range reads against the sqlite3 CLI and DuckDB.

use std::fmt::Write as _;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::*;
use crate::process::{root, sh, timed, timed_footprint};

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
        let out = sh(crate::process::cargo_command()
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
            ]))?;
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
