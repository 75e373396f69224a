//! Range reads from a candlecache SQLite file into Arrow, timed.
//!
//! Run through `cargo xtask bench storage`, which builds the file and compares DuckDB
//! reading the same file. Directly:
//! `cargo bench -p market-cache --bench range -- --db FILE --symbol S --timeframe TF --rows N [--repeat K]`
//! prints one JSON object: rows per read and the seconds of each read.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use market_cache::DbSettings;
use market_cache::{CandleStore, SqliteStore, Symbol, Timeframe};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
            .unwrap_or_else(|| panic!("{name} is required"))
    };
    let symbol: Symbol = arg("--symbol").parse().unwrap();
    let tf: Timeframe = arg("--timeframe").parse().unwrap();
    let rows: i64 = arg("--rows").parse().unwrap();
    let repeat: usize = args
        .iter()
        .position(|a| a == "--repeat")
        .map_or(5, |i| args[i + 1].parse().unwrap());
    let store = SqliteStore::open(DbSettings::new(arg("--db")))
        .await
        .unwrap();
    let m = store.markets().await.unwrap();
    let series = m
        .iter()
        .find(|x| x.symbol == symbol.as_str() && x.timeframe == tf.name())
        .expect("the series is in the file");
    let len = tf.fixed_ms().unwrap();
    // A range in the middle of the series.
    let start = series.first_time.unwrap() + (series.count as i64 / 2 - rows / 2).max(0) * len;
    let end = start + rows * len;
    let mut secs = Vec::new();
    let mut got = 0;
    for _ in 0..repeat {
        let t = Instant::now();
        let b = store.read_batch(&symbol, tf, start, end).await.unwrap();
        secs.push(t.elapsed().as_secs_f64());
        got = b.num_rows();
    }
    println!(
        "{}",
        serde_json::json!({ "rows": got, "start": start, "end": end, "seconds": secs })
    );
}
