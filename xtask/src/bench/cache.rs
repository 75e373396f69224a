//! `cargo xtask bench cache`: cache-core against moka and quick_cache (`crates/cache-core/benches/compare.rs`).

use std::fmt::Write as _;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::*;
use crate::process::root;

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
    writeln!(s, "  cache-core compresses entries others evict (those read at least once since they were stored), so it trades operations per second for hit ratio: with 64 KB values a warm hit decompresses 64 KB.")?;
    writeln!(s, "- `scan`: as `zipf`, with every other request a key asked for once and never again (one-off answers, a scan over every window). `+adm` is cache-core with its admission filter on (a frequency sketch: an entry that would displace others is stored only if its key was asked for more than once lately), as the response cache has it.")?;
    writeln!(s, "  The last column adds a {MISS_PENALTY_US} µs load per miss (a conservative SQLite chunk read and encode) to show what that trade is worth to candlecache; it is derived, not measured.\n")?;
    writeln!(s, "| workload | value | threads | cache-core ops/s | +adm ops/s | moka ops/s | quick_cache ops/s | vs moka | vs quick_cache | hit ratio (ours / +adm / moka / qc) | vs moka with {MISS_PENALTY_US} µs per miss (ours / +adm) |")?;
    writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|")?;
    for workload in ["hit", "zipf", "scan"] {
        for size in [1024u64, 65536] {
            for threads in [1u64, 2] {
                let (Some(o), Some(a), Some(m), Some(q)) = (
                    find(workload, size, threads, "cache-core"),
                    find(workload, size, threads, "cache-core+admission"),
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
                    "| {workload} | {} KB | {threads} | {} | {} | {} | {} | {:.2}x | {:.2}x | {:.3} / {:.3} / {:.3} / {:.3} | {:.2}x / {:.2}x |",
                    size / 1024,
                    si(ops(o)),
                    si(ops(a)),
                    si(ops(m)),
                    si(ops(q)),
                    ops(o) / ops(m),
                    ops(o) / ops(q),
                    hit(o),
                    hit(a),
                    hit(m),
                    hit(q),
                    cost(m) / cost(o),
                    cost(m) / cost(a),
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
