//! Single-flight loads under contention: tasks on a multi-threaded runtime call
//! `get_or_load` on keys that are mostly missing (the namespace holds a tenth of them), so
//! most calls join or lead a flight. Prints operations a second, best of three.
//!
//! `cargo bench -p cache-core --bench flight [-- --tasks N --ops N]`

use std::time::Instant;

use bytes::Bytes;
use std::time::Duration;

use cache_core::Cache;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map_or(default, |v| v.parse().expect("a count"))
    };
    let tasks = arg("--tasks", 64);
    let ops = arg("--ops", 20_000);
    let keys: u64 = 10_000;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("a runtime");
    let mut best = 0.0f64;
    for _ in 0..3 {
        let cache = Cache::builder()
            .budget_bytes(64 << 20)
            .namespace(
                "loads",
                Duration::from_secs(3600),
                keys / 10 * (16 + 256 + 128),
            )
            .build()
            .expect("a cache");
        let ns = cache.namespace("loads").expect("the namespace");
        let value = Bytes::from(vec![7u8; 256]);
        let t = Instant::now();
        rt.block_on(async {
            let mut handles = Vec::new();
            for task in 0..tasks as u64 {
                let ns = ns.clone();
                let value = value.clone();
                handles.push(tokio::spawn(async move {
                    // Tasks walk the same keys a few apart, so flights overlap.
                    let mut k = task.wrapping_mul(7) % keys;
                    for _ in 0..ops {
                        k = (k + 1) % keys;
                        let v = value.clone();
                        let got = ns
                            .get_or_load(&k.to_le_bytes(), || async move {
                                tokio::task::yield_now().await;
                                Ok::<_, std::io::Error>(v)
                            })
                            .await
                            .expect("a load");
                        assert_eq!(got.len(), 256);
                    }
                }));
            }
            for h in handles {
                h.await.expect("a task");
            }
        });
        let rate = (tasks * ops) as f64 / t.elapsed().as_secs_f64();
        best = best.max(rate);
    }
    println!("single-flight get_or_load, {tasks} tasks x {ops} ops, 2 threads: {best:.0} ops/s");
}
