//! The read path on a real store with the real fixtures.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_core::{Cache, CacheConfig};
use market_cache::DbSettings;
use market_cache::{
    parse_time, CandleStore, Error, Fill, ImportOptions, KlineRows, Request, RowFormat, Rows,
    Service, Source, SqliteStore, Symbol, Timeframe,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/market")
        .join(name)
}

/// A store holding only the 1m fixture, a cache, and a read path whose clock is fixed in
/// 2024 (so all of 2019 is closed history).
async fn setup(dir: &tempfile::TempDir, now: i64) -> (Service, Cache) {
    let cache = Cache::new(CacheConfig::default()).unwrap();
    let rp = Service::builder(DbSettings::new(dir.path().join("t.db")))
        .cache(&cache)
        .clock(Arc::new(move || now))
        .open()
        .await
        .unwrap();
    rp.import_path(
        &fixture("XRPETH-1m.csv"),
        &ImportOptions::default(),
        &|_| {},
    )
    .await
    .unwrap();
    (rp, cache)
}

/// A second handle on the service's database, to compare its answers with the stored rows.
async fn store(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(DbSettings::new(dir.path().join("t.db")))
        .await
        .unwrap()
}

fn req(tf: Timeframe, start: i64, end: i64, limit: usize) -> Request {
    Request {
        symbol: "XRPETH".parse().unwrap(),
        timeframe: tf,
        start: Some(start),
        end,
        limit,
        fill: Fill::None,
    }
}

const FIRST: i64 = 1_570_752_000_000; // 2019-10-11 00:00
const END: i64 = FIRST + 3_560 * 60_000; // after the last candle

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_and_overlapping_reads_come_from_cached_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let (rp, _cache) = setup(&dir, parse_time("2024-01-01").unwrap()).await;
    let a = rp
        .get(&req(Timeframe::M1, FIRST, END, 10_000))
        .await
        .unwrap();
    let stored = store(&dir)
        .await
        .read(&"XRPETH".parse().unwrap(), Timeframe::M1, 0, i64::MAX)
        .await
        .unwrap();
    assert_eq!(a.candles, stored);
    // The first chunk is a miss; the later ones may already have been prefetched.
    assert!(
        matches!(a.source, Source::Store | Source::Mixed),
        "{:?}",
        a.source
    );
    assert!(!a.partial_last);
    // Prefetches run in the background: let them finish before counting loads.
    let mut loads = rp.read_stats().chunk_loads;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let now = rp.read_stats().chunk_loads;
        if now == loads {
            break;
        }
        loads = now;
    }
    // A range inside the first: every chunk is in memory now.
    let b = rp
        .get(&req(
            Timeframe::M1,
            FIRST + 500 * 60_000,
            FIRST + 2_500 * 60_000,
            10_000,
        ))
        .await
        .unwrap();
    assert_eq!(b.source, Source::Cache);
    assert_eq!(rp.read_stats().chunk_loads, loads, "no chunk read twice");
    let (lo, hi) = (FIRST + 500 * 60_000, FIRST + 2_500 * 60_000);
    let expected: Vec<_> = a
        .candles
        .iter()
        .filter(|c| c.open_time >= lo && c.open_time < hi)
        .cloned()
        .collect();
    assert_eq!(b.candles, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weeks_and_months_are_aggregated_from_the_1m_candles() {
    let dir = tempfile::tempdir().unwrap();
    let (rp, _cache) = setup(&dir, parse_time("2024-01-01").unwrap()).await;
    // Computed here from the file's text, independently of the resampler.
    let text = std::fs::read_to_string(fixture("XRPETH-1m.csv")).unwrap();
    let rows: Vec<Vec<f64>> = text
        .lines()
        .map(|l| l.split(',').take(6).map(|v| v.parse().unwrap()).collect())
        .collect();
    let high = rows.iter().map(|r| r[2]).fold(f64::MIN, f64::max);
    let low = rows.iter().map(|r| r[3]).fold(f64::MAX, f64::min);
    let volume: f64 = rows.iter().map(|r| r[5]).sum();
    for (tf, open) in [
        (Timeframe::W1, "2019-10-07"),
        (Timeframe::Mo1, "2019-10-01"),
    ] {
        let a = rp
            .get(&req(
                tf,
                parse_time("2019-09-01").unwrap(),
                parse_time("2019-12-01").unwrap(),
                100,
            ))
            .await
            .unwrap();
        assert_eq!(a.resampled_from, Some(Timeframe::M1));
        assert_eq!(a.candles.len(), 1, "{tf}");
        let c = &a.candles[0];
        assert_eq!(
            c.open_time,
            parse_time(open).unwrap(),
            "{tf} opens on {open}"
        );
        assert_eq!(c.open.to_f64(), rows[0][1]);
        assert_eq!(c.close.to_f64(), rows.last().unwrap()[4]);
        assert_eq!((c.high.to_f64(), c.low.to_f64()), (high, low));
        assert!((c.volume.to_f64() - volume).abs() < 1e-6);
    }
    // 5m is not stored: it is resampled, and matches the exchange's own 5m file.
    let five = rp
        .get(&req(Timeframe::M5, FIRST, END, 10_000))
        .await
        .unwrap();
    assert_eq!(five.candles.len(), 706);
    let exchange = std::fs::read_to_string(fixture("XRPETH-5m.csv")).unwrap();
    for (c, line) in five.candles.iter().zip(exchange.lines()) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(
            vec![
                c.open_time.to_string(),
                c.open.to_string(),
                c.high.to_string(),
                c.low.to_string(),
                c.close.to_string(),
                c.volume.to_string()
            ],
            f[..6].to_vec()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gaps_fill_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    let (rp, _cache) = setup(&dir, parse_time("2024-01-01").unwrap()).await;
    let a = rp
        .get(&req(Timeframe::M1, FIRST, END, 10_000))
        .await
        .unwrap();
    assert_eq!(a.gaps.len(), 676);
    let mut filled = req(Timeframe::M1, FIRST, END, 10_000);
    filled.fill = Fill::Previous;
    assert_eq!(rp.get(&filled).await.unwrap().candles.len(), 3_560);

    // Pages of 1000 put together are the whole.
    let mut start = FIRST;
    let mut all = Vec::new();
    loop {
        let page = rp.get(&req(Timeframe::M1, start, END, 1000)).await.unwrap();
        assert!(page.candles.len() <= 1000);
        all.extend(page.candles);
        match page.next_start {
            Some(n) => start = n,
            None => break,
        }
    }
    assert_eq!(all, a.candles);
}

/// Filled slots count against `limit`: a far `end` over a sparse series answers at most
/// `limit` candles (pages from a start, the latest slots without one) and at once, where it
/// used to make a flat candle for every slot up to the end (a 10 s timeout found by
/// schemathesis: `fill=previous&end=3520-09-14`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filled_answers_hold_at_most_limit_slots_however_far_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let (rp, _cache) = setup(&dir, parse_time("2024-01-01").unwrap()).await;
    let far = parse_time("3520-09-14T13:52:02Z").unwrap();
    let t = Instant::now();
    let mut paged = req(Timeframe::M1, FIRST, far, 2000);
    paged.fill = Fill::Previous;
    let a = rp.get(&paged).await.unwrap();
    assert_eq!(a.candles.len(), 2000);
    let next = a.next_start.unwrap();
    assert_eq!(next, FIRST + 2000 * 60_000);
    // The next page goes on from there: the rest of the data, then flat candles at the
    // last close up to `limit` slots.
    paged.start = Some(next);
    let b = rp.get(&paged).await.unwrap();
    assert_eq!(b.candles.len(), 2000);
    assert_eq!(b.candles[0].open_time, next);
    assert_eq!(b.next_start, Some(next + 2000 * 60_000));
    assert_eq!(b.candles.last().unwrap().close, b.candles[1559].close);
    // The latest slots before a far end: all flat at the last close, `limit` of them.
    let mut latest = req(Timeframe::M30, FIRST, far, 300);
    latest.start = None;
    latest.fill = Fill::Previous;
    let l = rp.get(&latest).await.unwrap();
    assert_eq!(l.candles.len(), 300);
    assert_eq!(
        l.candles.last().unwrap().open_time,
        Timeframe::M30.floor(far - 1)
    );
    let unfilled = rp
        .get(&Request {
            fill: Fill::None,
            ..latest.clone()
        })
        .await
        .unwrap();
    let last_close = unfilled.candles.last().unwrap().close;
    assert!(l.candles.iter().all(|c| c.close == last_close));
    // Near the data nothing changes: the latest 100 filled slots end at the end asked.
    let mut near = req(Timeframe::M1, FIRST, END, 100);
    near.start = None;
    near.fill = Fill::Previous;
    let n = rp.get(&near).await.unwrap();
    assert_eq!(n.candles.len(), 100);
    assert_eq!(n.candles.last().unwrap().open_time, END - 60_000);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

/// Rows asked for in a format are that format applied to the candles of the same request,
/// whether they come from rows kept for closed chunks, from the chunk holding "now", from
/// resampled timeframes, pages, the latest candles or filled gaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_in_a_format_equal_the_format_applied_to_the_candles() {
    let dir = tempfile::tempdir().unwrap();
    let now = FIRST + 2_500 * 60_000 + 30_000;
    let (rp, cache) = setup(&dir, now).await;
    let (spot, futures) = (KlineRows::new(8), KlineRows::new(0));
    let formats: [&dyn RowFormat; 2] = [&spot, &futures];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rand = move |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    let hk_day = Timeframe::D1.with_offset(8 * 60).unwrap();
    for _ in 0..150 {
        let tf = [
            Timeframe::M1,
            Timeframe::M5,
            Timeframe::H1,
            Timeframe::D1,
            Timeframe::W1,
            hk_day,
        ][rand(6)];
        let start =
            FIRST - 100 * 60_000 + rand(4_000) as i64 * 60_000 + [0, 1, 59_999][rand(3)] as i64;
        let r = Request {
            symbol: "XRPETH".parse().unwrap(),
            timeframe: tf,
            start: (rand(5) > 0).then_some(start),
            end: start + 1 + rand(3_000) as i64 * 60_000,
            limit: [1, 7, 100, 1000, 10_000][rand(5)],
            fill: if rand(4) == 0 {
                Fill::Previous
            } else {
                Fill::None
            },
        };
        let want = rp.get(&r).await.unwrap();
        for f in formats {
            // The second time closed chunks come from the rows kept the first time.
            for _ in 0..2 {
                let got = rp.get_rows(&r, f, Vec::new()).await.unwrap();
                assert_eq!(got.candles, Rows::write(&want.candles, tf, f), "{r:?}");
                assert_eq!(got.candles.count, want.candles.len());
                assert_eq!(
                    (&got.gaps, got.next_start, got.partial_last, got.max_age),
                    (&want.gaps, want.next_start, want.partial_last, want.max_age),
                    "{r:?}"
                );
                assert_eq!(got.resampled_from, want.resampled_from);
            }
        }
    }

    // Rows of closed chunks are written once and then read: a request over closed
    // history, asked again, inserts nothing and finds its rows.
    let history = || cache.stats().namespaces[cache_core::ns::HISTORICAL_DATA].clone();
    let closed = req(Timeframe::M1, FIRST, FIRST + 1_500 * 60_000, 10_000);
    let kept = KlineRows::new(3);
    let first = rp.get_rows(&closed, &kept, Vec::new()).await.unwrap();
    let before = history();
    let again = rp.get_rows(&closed, &kept, Vec::new()).await.unwrap();
    let after = history();
    assert_eq!(again.candles, first.candles);
    assert_eq!(again.source, Source::Cache);
    assert_eq!(after.inserts, before.inserts);
    assert!(after.hits >= before.hits + 2, "{before:?} -> {after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forming_candle_is_marked_and_cached_briefly() {
    let dir = tempfile::tempdir().unwrap();
    // "Now" is 30 s into the last stored candle.
    let last = END - 60_000;
    let (rp, cache) = setup(&dir, last + 30_000).await;
    let a = rp
        .get(&req(Timeframe::M1, last - 600_000, END, 100))
        .await
        .unwrap();
    assert!(a.partial_last);
    let recent = &cache.stats().namespaces[cache_core::ns::MARKET_DATA_OHLCV];
    assert_eq!(
        recent.inserts, 1,
        "the chunk holding the forming candle lives in the short-lived namespace"
    );
    assert_eq!(recent.ttl_ms, 300_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_prefetches_the_next_chunk_and_unknown_symbols_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (rp, _cache) = setup(&dir, parse_time("2024-01-01").unwrap()).await;
    rp.get(&req(Timeframe::M1, FIRST, FIRST + 60_000, 10))
        .await
        .unwrap();
    let t = Instant::now();
    // Both neighbours (the chunk after and the one before) are prefetched; waiting for
    // the first to finish raced with the other.
    while rp.read_stats().prefetches < 2 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no prefetch happened"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let loads = rp.read_stats().chunk_loads;
    let b = rp
        .get(&req(
            Timeframe::M1,
            FIRST + 1000 * 60_000,
            FIRST + 1001 * 60_000,
            10,
        ))
        .await
        .unwrap();
    assert_eq!(b.source, Source::Cache, "the next chunk was loaded ahead");
    assert_eq!(rp.read_stats().chunk_loads, loads);

    let mut nope = req(Timeframe::M1, FIRST, END, 10);
    nope.symbol = "NOPE".parse::<Symbol>().unwrap();
    assert!(matches!(rp.get(&nope).await, Err(Error::UnknownSymbol(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_columnar_resampler_agrees_with_the_exact_one() {
    let dir = tempfile::tempdir().unwrap();
    let (_rp, _cache) = setup(&dir, parse_time("2024-01-01").unwrap()).await;
    let sym: Symbol = "XRPETH".parse().unwrap();
    let candles = store(&dir)
        .await
        .read(&sym, Timeframe::M1, 0, i64::MAX)
        .await
        .unwrap();
    let batch = store(&dir)
        .await
        .read_batch(&sym, Timeframe::M1, 0, i64::MAX)
        .await
        .unwrap();
    for tf in [
        Timeframe::M5,
        Timeframe::H1,
        Timeframe::D1,
        Timeframe::W1,
        Timeframe::Mo1,
    ] {
        let exact = market_cache::resample(&candles, tf);
        let cols = market_cache::resample_batch(&batch, tf).unwrap();
        assert_eq!(cols.num_rows(), exact.len(), "{tf}");
        let time = cols
            .column(0)
            .as_any()
            .downcast_ref::<arrow_array::Int64Array>()
            .unwrap();
        let f = |i: usize| {
            cols.column(i)
                .as_any()
                .downcast_ref::<arrow_array::Float64Array>()
                .unwrap()
                .clone()
        };
        for (r, c) in exact.iter().enumerate() {
            assert_eq!(time.value(r), c.open_time);
            for (k, d) in [c.open, c.high, c.low, c.close, c.volume]
                .iter()
                .enumerate()
            {
                let got = f(k + 1).value(r);
                assert!(
                    (got - d.to_f64()).abs() <= d.to_f64().abs() * 1e-12,
                    "{tf} row {r} col {k}"
                );
            }
        }
    }
}
