//! The columnar resampler on a generated Binance 1m CSV: 1m to 1h and to Monday weeks.
//!
//! Run through `cargo xtask bench resample`, which times polars and pandas on the same
//! file and checks the results equal. Directly:
//! `cargo bench -p market-cache --bench resample -- --csv FILE --out DIR [--repeat K]`
//! writes `DIR/ours-1h.csv` and `DIR/ours-1w.csv` and prints the seconds as JSON.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, UInt64Array};
use market_cache::{candle_schema, resample_batch, Timeframe};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let csv = arg("--csv").expect("--csv FILE");
    let out = std::path::PathBuf::from(arg("--out").expect("--out DIR"));
    let repeat: usize = arg("--repeat").map_or(5, |r| r.parse().unwrap());
    // Loading is not timed: polars and pandas are timed from data in memory too.
    let mut cols: Vec<Vec<f64>> = vec![Vec::new(); 9];
    let mut time = Vec::new();
    let mut trades = Vec::new();
    for line in std::io::BufReader::new(std::fs::File::open(&csv).unwrap()).lines() {
        let line = line.unwrap();
        let f: Vec<&str> = line.split(',').collect();
        time.push(f[0].parse::<i64>().unwrap());
        for (k, i) in [1, 2, 3, 4, 5, 7, 9, 10].iter().enumerate() {
            cols[k].push(f[*i].parse().unwrap());
        }
        trades.push(f[8].parse::<u64>().unwrap());
    }
    let fcol = |k: usize| Arc::new(Float64Array::from(cols[k].clone())) as ArrayRef;
    let batch = RecordBatch::try_new(
        candle_schema(),
        vec![
            Arc::new(Int64Array::from(time)),
            fcol(0),
            fcol(1),
            fcol(2),
            fcol(3),
            fcol(4),
            fcol(5),
            Arc::new(UInt64Array::from(trades)),
            fcol(6),
            fcol(7),
        ],
    )
    .unwrap();
    let mut result = serde_json::Map::new();
    for (name, tf) in [("1h", Timeframe::H1), ("1w", Timeframe::W1)] {
        let mut secs = Vec::new();
        let mut last = None;
        for _ in 0..repeat {
            let t = Instant::now();
            let r = resample_batch(&batch, tf).unwrap();
            secs.push(t.elapsed().as_secs_f64());
            last = Some(r);
        }
        let r = last.unwrap();
        let mut w = std::io::BufWriter::new(
            std::fs::File::create(out.join(format!("ours-{name}.csv"))).unwrap(),
        );
        writeln!(w, "time,open,high,low,close,volume").unwrap();
        let t = r.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let f = |i: usize| r.column(i).as_any().downcast_ref::<Float64Array>().unwrap();
        for i in 0..r.num_rows() {
            writeln!(
                w,
                "{},{},{},{},{},{}",
                t.value(i),
                f(1).value(i),
                f(2).value(i),
                f(3).value(i),
                f(4).value(i),
                f(5).value(i)
            )
            .unwrap();
        }
        result.insert(name.into(), serde_json::json!({"rows_in": batch.num_rows(), "rows_out": r.num_rows(), "seconds": secs}));
    }
    println!("{}", serde_json::Value::Object(result));
}
