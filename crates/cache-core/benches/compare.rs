//! cache-core against moka and quick_cache, in one run, on the same workload.
//!
//! Run through `cargo xtask bench cache`, which writes the table into docs/BENCHMARKS.md.
//! Directly: `cargo bench -p cache-core --bench compare -- --out results.json [--seconds S]`
//! (`--only "zipf  65536 B  1 thr  cache-core"` runs the cases whose printed line holds it).
//!
//! Workloads (keys drawn from a Zipf(0.99) distribution, traces generated before timing):
//! - `hit`: every key fits and is preloaded; pure gets. This is hit throughput.
//! - `zipf`: the cache holds a quarter of the key space; read-through (a miss inserts).
//! - `scan`: as `zipf`, with every other request a key asked for once (one-off answers,
//!   a scan); `cache-core+admission` is cache-core with the admission filter on.
//!   ops/s and hit ratio are both reported, since cache-core keeps compressed entries
//!   that the others evict.
//!
//! Values are real candle JSON from tests/fixtures/market, so compression is realistic.
//! Every cache charges key + value + 128 bytes per entry against the same byte capacity.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cache_core::Cache;
use serde_json::json;

const OVERHEAD: u64 = cache_core::ENTRY_OVERHEAD_BYTES;
const TRACE_LEN: usize = 1 << 20;

trait Subject: Sync {
    fn get(&self, k: u64) -> Option<Bytes>;
    fn insert(&self, k: u64, v: Bytes);
}

struct Ours(cache_core::NamespaceCache);
impl Subject for Ours {
    fn get(&self, k: u64) -> Option<Bytes> {
        self.0.get(&k.to_le_bytes())
    }
    fn insert(&self, k: u64, v: Bytes) {
        // Too large or no room are both "not cached" here, as for the others.
        let _ = self.0.insert(&k.to_le_bytes(), v);
    }
}

struct Moka(moka::sync::Cache<u64, Bytes>);
impl Subject for Moka {
    fn get(&self, k: u64) -> Option<Bytes> {
        self.0.get(&k)
    }
    fn insert(&self, k: u64, v: Bytes) {
        self.0.insert(k, v);
    }
}

#[derive(Clone)]
struct QcWeight;
impl quick_cache::Weighter<u64, Bytes> for QcWeight {
    fn weight(&self, _k: &u64, v: &Bytes) -> u64 {
        8 + v.len() as u64 + OVERHEAD
    }
}
struct Quick(quick_cache::sync::Cache<u64, Bytes, QcWeight>);
impl Subject for Quick {
    fn get(&self, k: u64) -> Option<Bytes> {
        self.0.get(&k)
    }
    fn insert(&self, k: u64, v: Bytes) {
        self.0.insert(k, v);
    }
}

fn build(name: &str, capacity: u64, keys: usize) -> Box<dyn Subject> {
    match name {
        "cache-core" | "cache-core+admission" => {
            let cache = Cache::builder()
                .no_namespaces()
                .budget_bytes(capacity)
                .namespace("bench", Duration::from_secs(3600), capacity)
                .admission("bench", name.ends_with("admission"))
                .build()
                .unwrap();
            Box::new(Ours(cache.namespace("bench").unwrap()))
        }
        "moka" => Box::new(Moka(
            moka::sync::Cache::builder()
                .max_capacity(capacity)
                .weigher(|_k: &u64, v: &Bytes| (8 + v.len() as u64 + OVERHEAD) as u32)
                .build(),
        )),
        "quick_cache" => Box::new(Quick(quick_cache::sync::Cache::with_weighter(
            keys, capacity, QcWeight,
        ))),
        other => panic!("unknown cache {other}"),
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A trace of Zipf(s)-distributed keys in 0..n, hottest keys scattered over the key space.
fn zipf_trace(n: usize, s: f64, len: usize, seed: u64) -> Vec<u64> {
    let mut cdf = Vec::with_capacity(n);
    let mut acc = 0.0;
    for i in 1..=n {
        acc += 1.0 / (i as f64).powf(s);
        cdf.push(acc);
    }
    let mut rng = Rng(seed | 1);
    (0..len)
        .map(|_| {
            let u = rng.unit() * acc;
            let rank = cdf.partition_point(|&c| c < u) as u64;
            rank.wrapping_mul(0x9e37_79b9_7f4a_7c15) % n as u64
        })
        .collect()
}

/// The two JSON shapes candlecache caches.
#[derive(Clone, Copy)]
enum Shape {
    /// `/api/crypto/ohlc`: `[ms,o,h,l,c,v]`, numbers in shortest round-trip form.
    Api,
    /// `/api/v3/klines`: Binance's 12 fields, prices and volumes as 8-decimal strings.
    Klines,
}

/// Candle rows of a Binance CSV or a freqtrade JSON file, as JSON arrays of one shape.
fn candle_rows(path: &Path, shape: Shape) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // (open time, interval ms, the five values as the file writes them, the rest of a
    // Binance row when there is one)
    let rows: Vec<(i64, Vec<String>, Vec<String>)> =
        if path.extension().is_some_and(|e| e == "json") {
            let rows: Vec<Vec<f64>> = serde_json::from_str(&text).unwrap();
            rows.iter()
                .map(|r| {
                    (
                        r[0] as i64,
                        r[1..6].iter().map(|v| v.to_string()).collect(),
                        Vec::new(),
                    )
                })
                .collect()
        } else {
            text.lines()
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let f: Vec<String> = l.split(',').map(str::to_owned).collect();
                    (f[0].parse().unwrap(), f[1..6].to_vec(), f[6..].to_vec())
                })
                .collect()
        };
    let interval = rows
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .min()
        .unwrap_or(60_000);
    rows.iter()
        .map(|(t, v, rest)| {
            let num = |s: &String| s.parse::<f64>().unwrap();
            match shape {
                Shape::Api => format!(
                    "[{t},{},{},{},{},{}]",
                    num(&v[0]),
                    num(&v[1]),
                    num(&v[2]),
                    num(&v[3]),
                    num(&v[4])
                ),
                Shape::Klines => {
                    let d = |s: &String| format!("\"{:.8}\"", num(s));
                    let zero = "0".to_owned();
                    let r = |i: usize| rest.get(i).unwrap_or(&zero);
                    format!(
                        "[{t},{},{},{},{},{},{},{},{},{},{},\"0\"]",
                        d(&v[0]),
                        d(&v[1]),
                        d(&v[2]),
                        d(&v[3]),
                        d(&v[4]),
                        t + interval - 1,
                        d(r(1)),
                        r(2),
                        d(r(3)),
                        d(r(4))
                    )
                }
            }
        })
        .collect()
}

/// JSON chunks of up to `per_chunk` candles of one file, as the read path caches them.
fn chunks(file: &Path, shape: Shape, per_chunk: usize) -> Vec<Bytes> {
    candle_rows(file, shape)
        .chunks(per_chunk)
        .map(|part| Bytes::from(format!("[{}]", part.join(","))))
        .collect()
}

/// Puts the chunks in a namespace, then pushes incompressible filler after them until
/// pressure has demoted every chunk into the warm tier (fillers are refused by the
/// compression threshold and evicted), checks the chunks read back intact, and returns
/// the warm tier's own figures.
fn warm_tier(chunk_list: &[Bytes]) -> cache_core::NamespaceStats {
    let biggest = chunk_list.iter().map(Bytes::len).max().unwrap_or(0);
    let raw: u64 = chunk_list
        .iter()
        .map(|c| c.len() as u64 + 64 + OVERHEAD)
        .sum();
    let limit = raw + 2 * (biggest as u64 + 64 + OVERHEAD);
    let cache = Cache::builder()
        .no_namespaces()
        .budget_bytes(limit)
        .namespace("warm", Duration::from_secs(3600), limit)
        .warm_max_share(1.0)
        .build()
        .unwrap();
    let ns = cache.namespace("warm").unwrap();
    for (i, c) in chunk_list.iter().enumerate() {
        ns.insert(format!("chunk/{i}").as_bytes(), c.clone())
            .unwrap();
        // Read once while hot, as a re-read chunk is: only such entries are compressed.
        ns.get(format!("chunk/{i}").as_bytes());
    }
    let mut rng = Rng(7);
    let filler: Bytes = (0..biggest)
        .map(|_| rng.next() as u8)
        .collect::<Vec<u8>>()
        .into();
    for i in 0..10_000 {
        if cache.stats().namespaces["warm"].entries_warm == chunk_list.len() as u64 {
            break;
        }
        ns.insert(format!("filler/{i}").as_bytes(), filler.clone())
            .unwrap();
    }
    let st = cache.stats().namespaces["warm"].clone();
    assert_eq!(
        st.entries_warm,
        chunk_list.len() as u64,
        "every chunk went warm"
    );
    for (i, c) in chunk_list.iter().enumerate() {
        let got = ns
            .get(format!("chunk/{i}").as_bytes())
            .expect("warm chunks stay");
        assert_eq!(&got, c, "a warm chunk must decompress to its bytes");
    }
    st
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/market")
}

fn fixture_files() -> Vec<PathBuf> {
    [
        "XRPETH-1m.csv",
        "XRPETH-5m.csv",
        "XRP_USDT_USDT-1h-futures.json",
    ]
    .iter()
    .map(|f| fixtures().join(f))
    .collect()
}

struct Run {
    ops: u64,
    hits: u64,
    secs: f64,
}

fn run(subject: &dyn Subject, traces: &[Vec<u64>], values: &[Bytes], secs: f64) -> Run {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let ops = AtomicU64::new(0);
    let hits = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for trace in traces {
            let (ops, hits) = (&ops, &hits);
            s.spawn(move || {
                let (mut n, mut h) = (0u64, 0u64);
                'outer: loop {
                    for block in trace.chunks(1024) {
                        for &k in block {
                            match subject.get(k) {
                                Some(v) => {
                                    h += 1;
                                    std::hint::black_box(v);
                                }
                                None => {
                                    subject.insert(k, values[k as usize % values.len()].clone())
                                }
                            }
                        }
                        n += block.len() as u64;
                        if Instant::now() >= deadline {
                            break 'outer;
                        }
                    }
                }
                ops.fetch_add(n, Ordering::Relaxed);
                hits.fetch_add(h, Ordering::Relaxed);
            });
        }
    });
    Run {
        ops: ops.into_inner(),
        hits: hits.into_inner(),
        secs: start.elapsed().as_secs_f64(),
    }
}

fn ratio_row(
    shape: &str,
    file: &str,
    list: &[Bytes],
    st: &cache_core::NamespaceStats,
) -> serde_json::Value {
    eprintln!(
        "warm tier {shape:<6} {file:<30} {} chunks, {} warm: {} -> {} bytes, ratio {:.2}",
        list.len(),
        st.entries_warm,
        st.warm_raw_bytes,
        st.warm_stored_bytes,
        st.compression_ratio
    );
    json!({
        "shape": shape, "file": file, "chunks": list.len(), "warm_entries": st.entries_warm,
        "raw_bytes": st.warm_raw_bytes, "compressed_bytes": st.warm_stored_bytes,
        "ratio": st.compression_ratio,
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let secs: f64 = arg("--seconds").map_or(2.0, |s| s.parse().expect("--seconds takes a number"));
    let out = arg("--out");
    // For profiling one case: runs only the cases whose line (as printed) contains this.
    let only = arg("--only");

    // One long JSON text of real candles; values are windows of it, different per key.
    let text = Bytes::from(
        fixture_files()
            .iter()
            .flat_map(|f| candle_rows(f, Shape::Api))
            .collect::<Vec<_>>()
            .join(","),
    );

    let mut cases = Vec::new();
    for (value_len, keys) in [(1024usize, 50_000usize), (64 * 1024, 2_000)] {
        let values: Vec<Bytes> = (0..keys)
            .map(|k| {
                let off = (k * 7919) % (text.len() - value_len);
                // Its own allocation, as a cached chunk would have: slices of one buffer
                // would share one reference count and make every clone contend on it.
                Bytes::copy_from_slice(&text[off..off + value_len])
            })
            .collect();
        let universe = keys as u64 * (8 + value_len as u64 + OVERHEAD);
        for (workload, capacity) in [
            ("hit", universe * 2),
            ("zipf", universe / 4),
            ("scan", universe / 4),
        ] {
            for threads in [1usize, 2] {
                let traces: Vec<Vec<u64>> = (0..threads)
                    .map(|t| {
                        let z = zipf_trace(keys, 0.99, TRACE_LEN, 42 + t as u64);
                        if workload != "scan" {
                            return z;
                        }
                        // Every other request a key asked for once and never again (a
                        // scan, one-off answers), the rest the Zipf trace.
                        z.iter()
                            .enumerate()
                            .map(|(i, k)| {
                                if i % 2 == 1 {
                                    (keys * (2 + t) * TRACE_LEN + i) as u64
                                } else {
                                    *k
                                }
                            })
                            .collect()
                    })
                    .collect();
                for name in ["cache-core", "cache-core+admission", "moka", "quick_cache"] {
                    let line = format!("{workload:>4} {value_len:>6} B  {threads} thr  {name}");
                    if only.as_ref().is_some_and(|o| !line.contains(o.as_str())) {
                        continue;
                    }
                    let subject = build(name, capacity, keys);
                    if workload == "hit" {
                        for (k, v) in values.iter().enumerate() {
                            subject.insert(k as u64, v.clone());
                        }
                    }
                    // Warm-up, not counted: fills the zipf case to its steady state.
                    run(subject.as_ref(), &traces, &values, secs / 4.0);
                    let r = run(subject.as_ref(), &traces, &values, secs);
                    let ops_per_s = r.ops as f64 / r.secs;
                    let hit_ratio = r.hits as f64 / r.ops.max(1) as f64;
                    eprintln!(
                        "{workload:>4} {value_len:>6} B  {threads} thr  {name:<12} {:>12.0} ops/s  hit {:.3}",
                        ops_per_s, hit_ratio
                    );
                    cases.push(json!({
                        "workload": workload, "value_bytes": value_len, "threads": threads,
                        "keys": keys, "capacity_bytes": capacity, "cache": name,
                        "ops_per_s": ops_per_s, "hit_ratio": hit_ratio,
                    }));
                }
            }
        }
    }

    // The warm tier on real candle JSON, per file and shape, 1000 candles a chunk (the
    // read path's chunk size).
    let mut compression = Vec::new();
    for (shape, shape_name) in [(Shape::Api, "api"), (Shape::Klines, "klines")] {
        let mut all = Vec::new();
        for file in fixture_files() {
            let list = chunks(&file, shape, 1000);
            all.extend(list.iter().cloned());
            let st = warm_tier(&list);
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            compression.push(ratio_row(shape_name, &name, &list, &st));
        }
        let st = warm_tier(&all);
        compression.push(ratio_row(shape_name, "all three files", &all, &st));
    }

    let doc = json!({
        "seconds_per_case": secs, "candles_per_chunk": 1000,
        "cases": cases, "compression": compression,
    });
    match out {
        Some(path) => std::fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap(),
        None => eprintln!("{}", serde_json::to_string_pretty(&doc).unwrap()),
    }
}
