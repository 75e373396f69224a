//! `candlecache demo`: the cache at work on real candles, with no database yet.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use cache_core::{ns, Cache, CacheConfig, Reclaim};

/// Options of `candlecache demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Candles per cached chunk.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    chunk: u32,
    /// Repeated reads to time.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
    reads: u32,
    /// Print only the final cache statistics, as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: &Args) -> Result<()> {
    let cache = Cache::new(CacheConfig::default())?;
    let history = cache.namespace(ns::HISTORICAL_DATA)?;
    let chunk = args.chunk as usize;

    let mut keys = Vec::new();
    let mut raw = 0usize;
    // The CSV samples: the cache demo works on their lines.
    for (name, bytes) in crate::samples::SAMPLES
        .iter()
        .filter(|(name, _)| name.ends_with(".csv"))
    {
        let text = std::str::from_utf8(bytes).context("the bundled samples are UTF-8")?;
        let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        for (i, part) in lines.chunks(chunk).enumerate() {
            let key = format!("{name}/{i}");
            let value = Bytes::from(part.join("\n"));
            raw += value.len();
            // Read-through: a miss loads the chunk and caches it.
            if history.get(key.as_bytes()).is_none() {
                history.insert(key.as_bytes(), value)?;
            }
            keys.push(key);
        }
        say(
            args,
            &format!(
                "{name}: {} candles in {} chunks",
                lines.len(),
                lines.len().div_ceil(chunk)
            ),
        );
    }

    let started = Instant::now();
    let mut bytes_read = 0usize;
    for i in 0..args.reads as usize {
        let key = &keys[i % keys.len()];
        let v = history
            .get(key.as_bytes())
            .context("a chunk that was just cached is missing")?;
        bytes_read += v.len();
    }
    let per_read = started.elapsed() / args.reads;
    say(
        args,
        &format!(
            "{} repeated reads from the hot tier: {} per read, {} MB of candles handed out without copying",
            args.reads,
            fmt_duration(per_read),
            bytes_read / 1_000_000
        ),
    );

    // To show the warm tier, put the same chunks into a namespace with room for half.
    let small = Cache::builder()
        .no_namespaces()
        .budget_bytes(raw as u64)
        .namespace("squeezed", Duration::from_secs(3600), raw as u64 / 2)
        .build()?;
    let squeezed = small.namespace("squeezed")?;
    for key in &keys {
        let value = history.get(key.as_bytes()).context("chunk vanished")?;
        squeezed.insert(key.as_bytes(), value)?;
        // Read once while hot, as a re-read chunk is: only those are compressed when
        // room is needed (a chunk nobody asked for again is simply evicted).
        squeezed.get(key.as_bytes());
    }
    for key in &keys {
        // Warm chunks decompress to exactly the bytes that went in.
        if let Some(got) = squeezed.get(key.as_bytes()) {
            ensure!(
                Some(&got) == history.get(key.as_bytes()).as_ref(),
                "chunk {key} changed in the warm tier"
            );
        }
    }
    let st = small.stats().total;
    say(
        args,
        &format!(
            "squeezed into half the room: {} chunks hot, {} compressed in the warm tier ({:.2}x smaller, {} bytes saved), {} evicted; warm hits {}",
            st.entries_hot, st.entries_warm, st.compression_ratio, st.bytes_saved, st.evictions, st.hits_warm
        ),
    );

    let freed = cache.free_at_least(cache.held_bytes() / 2);
    say(
        args,
        &format!("reclaim asked for half the bytes back and got {freed}"),
    );

    let stats = serde_json::json!({ "demo": cache.stats(), "squeezed": small.stats() });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
    } else {
        println!(
            "cache statistics:\n{}",
            serde_json::to_string_pretty(&stats["demo"]["total"])?
        );
    }
    Ok(())
}

fn say(args: &Args, line: &str) {
    if !args.json {
        println!("{line}");
    }
}

fn fmt_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 10_000 {
        format!("{ns} ns")
    } else {
        format!("{:.1} µs", ns as f64 / 1000.0)
    }
}
