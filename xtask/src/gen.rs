//! Deterministic Binance kline CSV for benchmarks: a seeded random walk, valid candles.

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};

/// Writes `rows` 1m candles of a random walk from 2020-01-01 into `path` (Binance spot
/// layout, no header, ms times, 2-decimal prices, 5-decimal volumes).
pub(crate) fn binance_1m(path: &Path, rows: u64, seed: u64) -> Result<()> {
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
        let t = start + i * 60_000;
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
            t + 59_999,
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
