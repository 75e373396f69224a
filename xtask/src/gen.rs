//! Deterministic Binance kline CSV for benchmarks: a seeded random walk, valid candles.

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};

/// Writes `rows` 1m candles of a random walk from 2020-01-01 into `path` (Binance spot
/// layout, no header, ms times, 2-decimal prices, 5-decimal volumes).
pub(crate) fn binance_1m(path: &Path, rows: u64, seed: u64) -> Result<()> {
    binance(path, rows, seed, 60_000)
}

/// As [`binance_1m`], candles `step_ms` apart.
pub(crate) fn binance(path: &Path, rows: u64, seed: u64, step_ms: i64) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("partial");
    let mut w = BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?,
    );
    let mut x = seed | 1;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut price: i64 = 700_000; // cents
    let start = 1_577_836_800_000i64;
    for i in 0..rows as i64 {
        let t = start + i * step_ms;
        let open = price;
        let close = (open + (rnd() % 2001) as i64 - 1000).max(100);
        let high = open.max(close) + (rnd() % 500) as i64;
        let low = (open.min(close) - (rnd() % 500) as i64).max(1);
        let vol = rnd() % 100_000_000;
        let trades = rnd() % 5000;
        price = close;
        let p = |v: i64| format!("{}.{:02}", v / 100, v % 100);
        writeln!(
            w,
            "{t},{},{},{},{},{}.{:05},{},{}.{:02},{trades},{}.{:05},0,0",
            p(open),
            p(high),
            p(low),
            p(close),
            vol / 100_000,
            vol % 100_000,
            t + step_ms - 1,
            vol / 1000,
            vol % 100,
            vol / 200_000,
            vol % 100_000
        )?;
    }
    w.flush()?;
    drop(w);
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Aggregates a generated 1m file (as written by [`binance_1m`]) into 1h candles in the
/// same layout, so every server in the HTTP benchmark holds the same 1h rows.
pub(crate) fn derive_1h(src: &Path, dst: &Path) -> Result<()> {
    use std::io::BufRead;
    let input = std::io::BufReader::new(
        std::fs::File::open(src).with_context(|| format!("cannot read {}", src.display()))?,
    );
    let mut w = BufWriter::new(std::fs::File::create(dst)?);
    struct Hour {
        t: i64,
        open: String,
        high: (f64, String),
        low: (f64, String),
        close: String,
        volume: f64,
        quote: f64,
        trades: u64,
        taker: f64,
    }
    let flush = |w: &mut BufWriter<std::fs::File>, h: &Hour| -> Result<()> {
        writeln!(
            w,
            "{},{},{},{},{},{:.5},{},{:.2},{},{:.5},0,0",
            h.t,
            h.open,
            h.high.1,
            h.low.1,
            h.close,
            h.volume,
            h.t + 3_599_999,
            h.quote,
            h.trades,
            h.taker
        )?;
        Ok(())
    };
    let mut cur: Option<Hour> = None;
    for line in input.lines() {
        let line = line?;
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 10 {
            continue;
        }
        let t: i64 = f[0].parse()?;
        let bucket = t - t.rem_euclid(3_600_000);
        let num = |i: usize| f[i].parse::<f64>().unwrap_or(0.0);
        match cur.as_mut() {
            Some(h) if h.t == bucket => {
                if num(2) > h.high.0 {
                    h.high = (num(2), f[2].to_owned());
                }
                if num(3) < h.low.0 {
                    h.low = (num(3), f[3].to_owned());
                }
                h.close = f[4].to_owned();
                h.volume += num(5);
                h.quote += num(7);
                h.trades += f[8].parse::<u64>().unwrap_or(0);
                h.taker += num(9);
            }
            _ => {
                if let Some(h) = cur.take() {
                    flush(&mut w, &h)?;
                }
                cur = Some(Hour {
                    t: bucket,
                    open: f[1].to_owned(),
                    high: (num(2), f[2].to_owned()),
                    low: (num(3), f[3].to_owned()),
                    close: f[4].to_owned(),
                    volume: num(5),
                    quote: num(7),
                    trades: f[8].parse().unwrap_or(0),
                    taker: num(9),
                });
            }
        }
    }
    if let Some(h) = cur {
        flush(&mut w, &h)?;
    }
    w.flush()?;
    Ok(())
}
