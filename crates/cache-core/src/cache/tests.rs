use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;

use crate::{Cache, CacheBuilder, Error, ManualClock, Reclaim, Scope, ENTRY_OVERHEAD_BYTES};

const NS: &str = "t";

/// Bytes that lz4 cannot shrink: a xorshift stream.
fn noise(len: usize, seed: u64) -> Bytes {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

/// Bytes that compress well: candle-like JSON rows.
fn rows(len: usize, seed: u64) -> Bytes {
    let mut s = String::new();
    let mut i = 0u64;
    while s.len() < len {
        s.push_str(&format!(
            "[{},0.0014{},0.00141557,0.00141266,0.00141418,{}.0],",
            1_570_752_000_000 + (seed * 1000 + i) * 60_000,
            i % 97,
            1000 + i % 13
        ));
        i += 1;
    }
    s.truncate(len);
    s.into()
}

fn charge(key: &[u8], value_len: usize) -> u64 {
    key.len() as u64 + value_len as u64 + ENTRY_OVERHEAD_BYTES
}

/// One shard, one namespace with room for `entries` entries of `value_len` under 2-byte keys.
fn small(entries: u64, value_len: usize, clock: &Arc<ManualClock>) -> CacheBuilder {
    let limit = entries * charge(b"k0", value_len);
    Cache::builder()
        .no_namespaces()
        .shards(1)
        .budget_bytes(1 << 30)
        .namespace(NS, Duration::from_secs(60), limit)
        .clock(clock.clone())
}

fn key(i: usize) -> Vec<u8> {
    format!("k{i}").into_bytes()
}

#[test]
fn hot_hits_share_the_stored_bytes() {
    let cache = Cache::builder().build().unwrap();
    let ns = cache.namespace(crate::ns::HISTORICAL_DATA).unwrap();
    let value = Bytes::from(vec![7u8; 4096]);
    ns.insert(b"a", value.clone()).unwrap();
    let got = ns.get(b"a").unwrap();
    assert_eq!(got.as_ptr(), value.as_ptr(), "a hot hit must not copy");
    assert_eq!(ns.get(b"b"), None);
    let st = &cache.stats().namespaces[crate::ns::HISTORICAL_DATA];
    assert_eq!(
        (st.hits_hot, st.misses, st.inserts, st.entries),
        (1, 1, 1, 1)
    );
    assert_eq!(st.bytes_hot, charge(b"a", 4096));
    cache.audit().unwrap();
}

#[test]
fn unknown_namespace_and_oversized_entries_are_refused() {
    let clock = Arc::new(ManualClock::new());
    let cache = small(2, 100, &clock).build().unwrap();
    assert!(matches!(cache.namespace("nope"), Err(Error::UnknownNamespace(n)) if n == "nope"));
    let ns = cache.namespace(NS).unwrap();
    let err = ns.insert(b"k", noise(1000, 1)).unwrap_err();
    assert!(
        matches!(err, Error::EntryTooLarge { size, .. } if size == charge(b"k", 1000)),
        "{err}"
    );
    assert_eq!(cache.used_bytes(), 0);
}

#[test]
fn entries_expire_with_the_namespace_ttl_or_their_own() {
    let clock = Arc::new(ManualClock::new());
    let cache = small(10, 10, &clock).build().unwrap();
    let ns = cache.namespace(NS).unwrap();
    ns.insert(b"k1", noise(10, 1)).unwrap();
    ns.insert_with_ttl(b"k2", noise(10, 2), Duration::from_secs(5))
        .unwrap();
    ns.insert_with_ttl(b"k3", noise(10, 3), Duration::from_secs(600))
        .unwrap();
    clock.advance(Duration::from_secs(4));
    assert!(ns.get(b"k2").is_some());
    clock.advance(Duration::from_secs(1));
    assert_eq!(ns.get(b"k2"), None, "5 s TTL is over");
    assert!(ns.get(b"k1").is_some(), "60 s namespace TTL still runs");
    clock.advance(Duration::from_secs(55));
    assert_eq!(ns.get(b"k1"), None);
    assert!(ns.get(b"k3").is_some());
    let st = &cache.stats().namespaces[NS];
    assert_eq!(st.expirations, 2);
    assert_eq!(st.entries, 1);
    assert_eq!(st.bytes_freed, 2 * charge(b"k1", 10));
    cache.audit().unwrap();
}

#[test]
fn zero_ttl_never_inserts_and_drops_the_old_value() {
    let clock = Arc::new(ManualClock::new());
    let cache = small(10, 10, &clock).build().unwrap();
    let ns = cache.namespace(NS).unwrap();
    ns.insert(b"k1", noise(10, 1)).unwrap();
    ns.insert_with_ttl(b"k1", noise(10, 2), Duration::ZERO)
        .unwrap();
    assert_eq!(ns.get(b"k1"), None);
    assert_eq!(cache.used_bytes(), 0);
}

#[test]
fn purge_expired_reclaims_entries_nobody_reads() {
    let clock = Arc::new(ManualClock::new());
    let cache = small(10, 10, &clock).build().unwrap();
    let ns = cache.namespace(NS).unwrap();
    for i in 0..5 {
        ns.insert(&key(i), noise(10, i as u64)).unwrap();
    }
    ns.insert_with_ttl(&key(9), noise(10, 9), Duration::from_secs(3600))
        .unwrap();
    clock.advance(Duration::from_secs(61));
    assert_eq!(cache.purge_expired(), 5);
    assert_eq!(cache.used_bytes(), charge(&key(9), 10));
    cache.audit().unwrap();
}

#[test]
fn eviction_follows_lru_order() {
    let clock = Arc::new(ManualClock::new());
    // Incompressible values: demotion is refused, so pressure evicts.
    let cache = small(4, 200, &clock).build().unwrap();
    let ns = cache.namespace(NS).unwrap();
    for i in 0..4 {
        ns.insert(&key(i), noise(200, i as u64)).unwrap();
    }
    ns.get(&key(0)).unwrap();
    ns.get(&key(2)).unwrap();
    // Order now, oldest first: 1, 3, 0, 2.
    ns.insert(&key(4), noise(200, 4)).unwrap();
    assert_eq!(ns.get(&key(1)), None);
    ns.insert(&key(5), noise(200, 5)).unwrap();
    assert_eq!(ns.get(&key(3)), None);
    for i in [0, 2, 4, 5] {
        assert!(ns.get(&key(i)).is_some(), "k{i} should have stayed");
    }
    let st = &cache.stats().namespaces[NS];
    assert_eq!(st.evictions, 2);
    // Never read while hot: evicted without an attempt to compress them.
    assert_eq!(st.rejected_compression, 0);
    assert_eq!(st.demotions, 0);
    cache.audit().unwrap();
}

#[test]
fn lru_order_holds_across_shards() {
    let clock = Arc::new(ManualClock::new());
    let cache = small(8, 200, &clock).shards(8).build().unwrap();
    let ns = cache.namespace(NS).unwrap();
    for i in 0..8 {
        ns.insert(&key(i), noise(200, i as u64)).unwrap();
    }
    for i in (0..8).rev() {
        ns.get(&key(i)).unwrap();
    }
    // Recency now runs 7 (oldest) .. 0 (newest); each insert must evict the oldest.
    for (n, victim) in [7, 6, 5, 4, 3].into_iter().enumerate() {
        ns.insert(&key(100 + n), noise(200, 100 + n as u64))
            .unwrap();
        assert_eq!(ns.get(&key(victim)), None, "k{victim} was the oldest");
    }
    cache.audit().unwrap();
}

#[test]
fn pressure_demotes_the_oldest_hot_entry_to_the_warm_tier() {
    let clock = Arc::new(ManualClock::new());
    let cache = small(3, 4000, &clock).build().unwrap();
    let ns = cache.namespace(NS).unwrap();
    for i in 0..4 {
        ns.insert(&key(i), rows(4000, i as u64)).unwrap();
        // Read while hot: only entries read are worth compressing when they leave it.
        ns.get(&key(i)).unwrap();
    }
    let st = cache.stats().namespaces[NS].clone();
    // One demotion frees about two thirds of an entry, so two make room for the fourth.
    assert_eq!(st.demotions, 2);
    assert_eq!(
        st.evictions, 0,
        "nothing is evicted while hot entries can be demoted"
    );
    assert_eq!((st.entries_hot, st.entries_warm), (2, 2));
    assert_eq!(st.warm_raw_bytes, 8000);
    assert!(st.compression_ratio > 2.0, "ratio {}", st.compression_ratio);
    assert_eq!(
        st.bytes_saved,
        8000 - (st.bytes_warm - charge(b"k0", 0) - charge(b"k1", 0))
    );
    // The two oldest went warm; the newest stayed hot.
    assert!(ns.get(&key(3)).is_some());
    assert_eq!(cache.stats().namespaces[NS].hits_hot, 4 + 1);
    // A warm hit decompresses to the same bytes.
    assert_eq!(ns.get(&key(0)).unwrap(), rows(4000, 0));
    assert_eq!(cache.stats().namespaces[NS].hits_warm, 1);
    cache.audit().unwrap();
}

#[test]
fn entries_never_read_leave_without_being_compressed() {
    let clock = Arc::new(ManualClock::new());
    let cache = small(3, 4000, &clock).build().unwrap();
    let ns = cache.namespace(NS).unwrap();
    // k0 read once while hot, k1 never: under pressure k0 is compressed, k1 evicted.
    ns.insert(&key(0), rows(4000, 0)).unwrap();
    ns.get(&key(0)).unwrap();
    ns.insert(&key(1), rows(4000, 1)).unwrap();
    for i in 2..5 {
        ns.insert(&key(i), rows(4000, i as u64)).unwrap();
        ns.get(&key(i)).unwrap();
    }
    let st = cache.stats().namespaces[NS].clone();
    assert_eq!(ns.get(&key(1)), None, "{st:?}");
    assert_eq!(ns.get(&key(0)).unwrap(), rows(4000, 0), "{st:?}");
    assert!(st.demotions >= 1 && st.evictions >= 1, "{st:?}");
    assert_eq!(st.rejected_compression, 0);
    cache.audit().unwrap();
}

#[test]
fn compression_threshold_decides_between_warm_and_evicted() {
    // These rows compress to about a fifth; a 95 % saving requirement refuses them.
    for (saving, kept) in [(0.2, true), (0.5, true), (0.95, false)] {
        let clock = Arc::new(ManualClock::new());
        let cache = small(2, 4000, &clock)
            .min_compression_saving(saving)
            .build()
            .unwrap();
        let ns = cache.namespace(NS).unwrap();
        for i in 0..3 {
            ns.insert(&key(i), rows(4000, i as u64)).unwrap();
            // Read while hot: only entries read are worth compressing when they leave it.
            ns.get(&key(i)).unwrap();
        }
        let st = &cache.stats().namespaces[NS];
        assert_eq!(st.entries_warm > 0, kept, "saving {saving}");
        assert_eq!(st.demotions, st.entries_warm);
        assert_eq!(st.rejected_compression > 0, !kept, "saving {saving}");
        assert_eq!(ns.get(&key(0)).is_some(), kept);
        cache.audit().unwrap();
    }
}

#[test]
fn warm_entries_are_evicted_lru_once_the_warm_share_is_used() {
    let clock = Arc::new(ManualClock::new());
    let cache = small(6, 4000, &clock)
        .warm_max_share(0.1)
        .promote_after_warm_hits(0)
        .build()
        .unwrap();
    let ns = cache.namespace(NS).unwrap();
    for i in 0..12 {
        ns.insert(&key(i), rows(4000, i as u64)).unwrap();
        // Read while hot: only entries read are worth compressing when they leave it.
        ns.get(&key(i)).unwrap();
    }
    let st = cache.stats().namespaces[NS].clone();
    assert!(st.demotions > 0 && st.evictions > 0, "{st:?}");
    assert!(st.bytes_warm as f64 <= st.limit_bytes as f64 * 0.1 + 4000.0);
    // The oldest were demoted first and so evicted first; the newest are still hot.
    assert_eq!(ns.get(&key(0)), None);
    assert!(ns.get(&key(11)).is_some());
    assert_eq!(cache.stats().namespaces[NS].hits_hot, 12 + 1);
    cache.audit().unwrap();
}

#[test]
fn repeated_warm_hits_promote_an_entry() {
    let clock = Arc::new(ManualClock::new());
    let cache = small(3, 4000, &clock)
        .promote_after_warm_hits(2)
        .build()
        .unwrap();
    let ns = cache.namespace(NS).unwrap();
    for i in 0..4 {
        ns.insert(&key(i), rows(4000, i as u64)).unwrap();
        // Read while hot: only entries read are worth compressing when they leave it.
        ns.get(&key(i)).unwrap();
    }
    ns.get(&key(0)).unwrap();
    assert_eq!(cache.stats().namespaces[NS].promotions, 0);
    let before = cache.stats().namespaces[NS].demotions;
    ns.get(&key(0)).unwrap();
    let st = cache.stats().namespaces[NS].clone();
    assert_eq!(st.promotions, 1);
    assert_eq!(st.hits_warm, 2);
    // Promotion made room by demoting the least recently used hot entries.
    assert!(st.demotions > before);
    let hot = ns.get(&key(0)).unwrap();
    assert_eq!(hot, rows(4000, 0));
    assert_eq!(cache.stats().namespaces[NS].hits_hot, 4 + 1);
    cache.audit().unwrap();
}

#[test]
fn the_global_budget_binds_across_namespaces() {
    let clock = Arc::new(ManualClock::new());
    let entry = charge(b"k0", 500);
    let cache = Cache::builder()
        .no_namespaces()
        .shards(2)
        .budget_bytes(4 * entry)
        .namespace("a", Duration::from_secs(60), 3 * entry)
        .namespace("b", Duration::from_secs(60), 3 * entry)
        .clock(clock.clone())
        .build()
        .unwrap();
    let a = cache.namespace("a").unwrap();
    let b = cache.namespace("b").unwrap();
    for i in 0..3 {
        a.insert(&key(i), noise(500, i as u64)).unwrap();
    }
    for i in 0..3 {
        b.insert(&key(i), noise(500, 10 + i as u64)).unwrap();
    }
    assert_eq!(cache.used_bytes(), 4 * entry);
    let st = cache.stats();
    // The globally oldest entries, all of namespace a, made way.
    assert_eq!(st.namespaces["a"].entries, 1);
    assert_eq!(st.namespaces["b"].entries, 3);
    assert_eq!(st.total.evictions, 2);
    assert!(a.get(&key(2)).is_some());
    cache.audit().unwrap();
}

#[test]
fn replacing_a_value_charges_only_the_new_one() {
    let clock = Arc::new(ManualClock::new());
    let cache = small(2, 100, &clock).build().unwrap();
    let ns = cache.namespace(NS).unwrap();
    ns.insert(b"k0", noise(100, 1)).unwrap();
    ns.insert(b"k1", noise(100, 2)).unwrap();
    ns.insert(b"k0", noise(50, 3)).unwrap();
    assert_eq!(cache.used_bytes(), charge(b"k0", 100) + charge(b"k0", 50));
    assert_eq!(ns.get(b"k0").unwrap(), noise(50, 3));
    assert!(
        ns.get(b"k1").is_some(),
        "replacing must not evict another entry"
    );
    assert!(ns.remove(b"k1"));
    assert!(!ns.remove(b"k1"));
    let st = &cache.stats().namespaces[NS];
    assert_eq!((st.inserts, st.removals, st.evictions), (3, 1, 0));
    cache.audit().unwrap();
}

#[test]
fn stats_count_what_happened() {
    let clock = Arc::new(ManualClock::new());
    let cache = small(3, 4000, &clock).build().unwrap();
    let ns = cache.namespace(NS).unwrap();
    for i in 0..5 {
        ns.insert(&key(i), rows(4000, i as u64)).unwrap();
        // Read while hot: only entries read are worth compressing when they leave it.
        ns.get(&key(i)).unwrap();
    }
    ns.get(&key(4)).unwrap();
    ns.get(&key(0)).unwrap();
    ns.get(&key(99));
    let st = cache.stats();
    let s = &st.namespaces[NS];
    assert_eq!(s.inserts, 5);
    // The five reads while hot, then one hot and one warm hit.
    assert_eq!(s.hits, 5 + 2);
    assert_eq!((s.hits_hot, s.hits_warm), (5 + 1, 1));
    assert_eq!(s.misses, 1);
    assert!((s.hit_rate - 7.0 / 8.0).abs() < 1e-9);
    assert_eq!(s.entries, s.entries_hot + s.entries_warm);
    assert_eq!(s.entries, 5);
    assert_eq!(s.used_bytes, s.bytes_hot + s.bytes_warm);
    assert_eq!(s.demotions, s.entries_warm);
    assert_eq!(s.warm_raw_bytes, 4000 * s.entries_warm);
    assert_eq!(st.used_bytes, s.used_bytes);
    assert_eq!(st.total.hits, 5 + 2);
    let json = serde_json::to_value(&st).unwrap();
    assert_eq!(json["namespaces"][NS]["bytes_warm"], s.bytes_warm);
    assert_eq!(json["total"]["compression_ratio"], s.compression_ratio);
    cache.audit().unwrap();
}

#[test]
fn reclaim_frees_what_it_says() {
    let clock = Arc::new(ManualClock::new());
    let cache = small(8, 4000, &clock).build().unwrap();
    let ns = cache.namespace(NS).unwrap();
    for i in 0..10 {
        ns.insert(&key(i), rows(4000, i as u64)).unwrap();
        // Read while hot: only entries read are worth compressing when they leave it.
        ns.get(&key(i)).unwrap();
    }
    let before = cache.held_bytes();
    let freed = cache.free_at_least(5000);
    assert!(freed >= 5000, "freed {freed}");
    assert_eq!(cache.held_bytes(), before - freed);
    let st = &cache.stats().namespaces[NS];
    assert!(st.evictions >= 1);
    cache.audit().unwrap();

    let warm = cache.stats().total.bytes_warm;
    assert_eq!(cache.drop_compressed(), warm);
    assert_eq!(cache.stats().total.entries_warm, 0);

    let held = cache.held_bytes();
    assert!(held > 0);
    assert_eq!(cache.clear(Scope::Namespace(NS)).unwrap(), held);
    assert_eq!(cache.held_bytes(), 0);
    assert!(matches!(
        cache.clear(Scope::Namespace("x")),
        Err(Error::UnknownNamespace(_))
    ));
    // Asking for more than is held frees everything and says so.
    ns.insert(b"z", noise(10, 1)).unwrap();
    assert_eq!(cache.free_at_least(u64::MAX), charge(b"z", 10));
    cache.audit().unwrap();
}

#[test]
fn clear_of_one_namespace_leaves_the_others() {
    let cache = Cache::builder().build().unwrap();
    let a = cache.namespace(crate::ns::API_RESPONSES).unwrap();
    let b = cache.namespace(crate::ns::HISTORICAL_DATA).unwrap();
    a.insert(b"x", noise(10, 1)).unwrap();
    b.insert(b"x", noise(10, 2)).unwrap();
    cache
        .clear(Scope::Namespace(crate::ns::API_RESPONSES))
        .unwrap();
    assert_eq!(a.get(b"x"), None);
    assert_eq!(b.get(b"x"), Some(noise(10, 2)));
}

#[test]
fn typed_values_round_trip() {
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Summary {
        symbol: String,
        closes: Vec<f64>,
        trades: u64,
    }
    let cache = Cache::builder().build().unwrap();
    let ns = cache.namespace(crate::ns::STRATEGY_RESULTS).unwrap();
    let v = Summary {
        symbol: "BTCUSDT".into(),
        closes: vec![42000.5, 42001.25],
        trades: 17,
    };
    ns.insert_typed(b"s", &v).unwrap();
    assert_eq!(ns.get_typed::<Summary>(b"s").unwrap(), Some(v));
    // Compact: no field names, varint integers.
    assert!(ns.get(b"s").unwrap().len() < 32);
    assert!(matches!(
        ns.get_typed::<Vec<String>>(b"s"),
        Err(Error::Codec(_))
    ));
}

/// Waits (bounded) until `n` callers are waiting on a flight in `ns`.
async fn until_waiting(cache: &Cache, ns: &str, n: u64) {
    for _ in 0..100_000 {
        if cache.stats().namespaces[ns].coalesced_waits >= n {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("waiters never arrived");
}

type Outcome = std::result::Result<Bytes, std::io::Error>;

/// Starts 32 concurrent `get_or_load` calls of one key whose loader blocks until released,
/// waits until 31 of them wait on the first, releases the loader, and returns the 32
/// results and how often the loader ran.
async fn thirty_two_callers(
    cache: &Cache,
    outcome: fn() -> Outcome,
) -> (Vec<crate::Result<Bytes>>, usize) {
    let ns = cache.namespace(crate::ns::HISTORICAL_DATA).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (ns, calls, gate) = (ns.clone(), calls.clone(), gate.clone());
            tokio::spawn(async move {
                ns.get_or_load(b"chunk", || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    let _permit = gate.acquire().await.unwrap();
                    outcome()
                })
                .await
            })
        })
        .collect();
    until_waiting(cache, crate::ns::HISTORICAL_DATA, 31).await;
    gate.add_permits(1);
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    (results, calls.load(Ordering::SeqCst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_misses_run_the_loader_once() {
    let cache = Cache::builder().build().unwrap();
    let (results, calls) = thirty_two_callers(&cache, || Ok(Bytes::from_static(b"candles"))).await;
    for r in results {
        assert_eq!(r.unwrap(), Bytes::from_static(b"candles"));
    }
    assert_eq!(calls, 1);
    let st = &cache.stats().namespaces[crate::ns::HISTORICAL_DATA];
    assert_eq!((st.loads, st.load_errors, st.coalesced_waits), (1, 0, 31));
    let ns = cache.namespace(crate::ns::HISTORICAL_DATA).unwrap();
    assert_eq!(ns.get(b"chunk").unwrap(), Bytes::from_static(b"candles"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_loader_error_reaches_every_waiter_and_is_not_cached() {
    let cache = Cache::builder().build().unwrap();
    let (results, calls) =
        thirty_two_callers(&cache, || Err(std::io::Error::other("upstream said 503"))).await;
    for r in results {
        let err = r.unwrap_err();
        let source = std::error::Error::source(&err).unwrap().to_string();
        assert_eq!(source, "upstream said 503");
    }
    assert_eq!(calls, 1);
    let ns = cache.namespace(crate::ns::HISTORICAL_DATA).unwrap();
    assert_eq!(ns.get(b"chunk"), None, "errors are not cached");
    let v = ns
        .get_or_load(b"chunk", || async {
            Ok::<_, std::io::Error>(Bytes::from_static(b"ok"))
        })
        .await
        .unwrap();
    assert_eq!(v, Bytes::from_static(b"ok"));
    let st = &cache.stats().namespaces[crate::ns::HISTORICAL_DATA];
    assert_eq!((st.loads, st.load_errors), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_take_over_when_the_loader_is_cancelled_or_panics() {
    for panics in [false, true] {
        let cache = Cache::builder().build().unwrap();
        let ns = cache.namespace(crate::ns::HISTORICAL_DATA).unwrap();
        let started = Arc::new(tokio::sync::Notify::new());
        let leader = {
            let (ns, started) = (ns.clone(), started.clone());
            tokio::spawn(async move {
                ns.get_or_load(b"k", || async move {
                    started.notify_one();
                    if panics {
                        // Wait for the waiter to queue up, then die.
                        tokio::task::yield_now().await;
                        panic!("loader blew up");
                    }
                    std::future::pending::<()>().await;
                    Ok::<_, std::io::Error>(Bytes::new())
                })
                .await
            })
        };
        started.notified().await;
        let waiter = {
            let ns = ns.clone();
            tokio::spawn(async move {
                ns.get_or_load(b"k", || async {
                    Ok::<_, std::io::Error>(Bytes::from_static(b"v"))
                })
                .await
            })
        };
        if !panics {
            until_waiting(&cache, crate::ns::HISTORICAL_DATA, 1).await;
            leader.abort();
        }
        assert!(leader.await.is_err(), "the leader died");
        assert_eq!(waiter.await.unwrap().unwrap(), Bytes::from_static(b"v"));
        assert_eq!(ns.get(b"k").unwrap(), Bytes::from_static(b"v"));
    }
}

#[test]
fn many_threads_keep_the_accounting_exact() {
    let cache = Cache::builder()
        .no_namespaces()
        .shards(8)
        .budget_bytes(200_000)
        .namespace("a", Duration::from_secs(60), 120_000)
        .namespace("b", Duration::from_secs(60), 120_000)
        .build()
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let cache = cache.clone();
            s.spawn(move || {
                let ns = [cache.namespace("a").unwrap(), cache.namespace("b").unwrap()];
                let mut x = t + 1;
                for _ in 0..20_000 {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let k = key((x >> 33) as usize % 300);
                    let n = &ns[(x >> 20) as usize % 2];
                    match (x >> 40) % 10 {
                        0..=5 => {
                            n.get(&k);
                        }
                        6..=8 => {
                            let len = 100 + (x >> 50) as usize % 3000;
                            let v = if x % 2 == 0 {
                                rows(len, x % 1000)
                            } else {
                                noise(len, x)
                            };
                            n.insert(&k, v).unwrap();
                        }
                        _ => {
                            n.remove(&k);
                        }
                    }
                }
            });
        }
    });
    cache.audit().unwrap();
    let st = cache.stats();
    assert!(st.total.hits > 0 && st.total.demotions > 0 && st.total.evictions > 0);
}

#[derive(Debug, Clone)]
enum Op {
    Insert {
        ns: bool,
        key: u8,
        len: u16,
        compressible: bool,
    },
    InsertTtl {
        ns: bool,
        key: u8,
        len: u16,
        ttl_s: u8,
    },
    Get {
        ns: bool,
        key: u8,
    },
    Remove {
        ns: bool,
        key: u8,
    },
    Advance {
        s: u8,
    },
    Reclaim {
        bytes: u16,
    },
    DropWarm,
    Clear {
        ns: bool,
    },
    Purge,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<bool>(), 0u8..24, 0u16..3000, any::<bool>())
            .prop_map(|(ns, key, len, compressible)| Op::Insert { ns, key, len, compressible }),
        1 => (any::<bool>(), 0u8..24, 0u16..3000, 0u8..10)
            .prop_map(|(ns, key, len, ttl_s)| Op::InsertTtl { ns, key, len, ttl_s }),
        4 => (any::<bool>(), 0u8..24).prop_map(|(ns, key)| Op::Get { ns, key }),
        1 => (any::<bool>(), 0u8..24).prop_map(|(ns, key)| Op::Remove { ns, key }),
        1 => (0u8..90).prop_map(|s| Op::Advance { s }),
        1 => any::<u16>().prop_map(|bytes| Op::Reclaim { bytes }),
        1 => Just(Op::DropWarm),
        1 => any::<bool>().prop_map(|ns| Op::Clear { ns }),
        1 => Just(Op::Purge),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// After every operation, no namespace exceeds its limit, the total stays within the
    /// budget, and the counters equal what a walk over the entries adds up to.
    #[test]
    fn budget_invariant_holds_over_random_operations(
        ops in proptest::collection::vec(op(), 1..120),
        shards in prop_oneof![Just(1usize), Just(2), Just(4)],
        budget in 4_000u64..30_000,
        promote in 0u32..3,
    ) {
        let clock = Arc::new(ManualClock::new());
        let cache = Cache::builder()
            .no_namespaces()
            .shards(shards)
            .budget_bytes(budget)
            .namespace("a", Duration::from_secs(60), 12_000)
            .namespace("b", Duration::from_secs(30), 8_000)
            .promote_after_warm_hits(promote)
            .clock(clock.clone())
            .build()
            .unwrap();
        let names = ["a", "b"];
        let ns = |b: bool| cache.namespace(names[usize::from(b)]).unwrap();
        let value = |len: u16, key: u8, compressible: bool| {
            if compressible { rows(len.into(), key.into()) } else { noise(len.into(), key.into()) }
        };
        for op in ops {
            match op {
                Op::Insert { ns: n, key, len, compressible } => {
                    let v = value(len, key, compressible);
                    let r = ns(n).insert(&[key], v.clone());
                    match r {
                        Ok(()) => prop_assert_eq!(ns(n).get(&[key]), Some(v)),
                        Err(Error::EntryTooLarge { .. }) => {}
                        Err(e) => prop_assert!(false, "unexpected {}", e),
                    }
                }
                Op::InsertTtl { ns: n, key, len, ttl_s } => {
                    let r = ns(n).insert_with_ttl(
                        &[key], value(len, key, true), Duration::from_secs(ttl_s.into()));
                    let fine = matches!(r, Ok(()) | Err(Error::EntryTooLarge { .. }));
                    prop_assert!(fine, "unexpected {:?}", r);
                }
                Op::Get { ns: n, key } => { ns(n).get(&[key]); }
                Op::Remove { ns: n, key } => { ns(n).remove(&[key]); }
                Op::Advance { s } => clock.advance(Duration::from_secs(s.into())),
                Op::Reclaim { bytes } => {
                    let before = cache.held_bytes();
                    let freed = cache.free_at_least(bytes.into());
                    prop_assert!(freed >= u64::from(bytes).min(before), "freed {} of {} asked, {} held", freed, bytes, before);
                    prop_assert_eq!(cache.held_bytes(), before - freed);
                }
                Op::DropWarm => { cache.drop_compressed(); }
                Op::Clear { ns: n } => { cache.clear(Scope::Namespace(names[usize::from(n)])).unwrap(); }
                Op::Purge => { cache.purge_expired(); }
            }
            if let Err(e) = cache.audit() {
                prop_assert!(false, "{}", e);
            }
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_loaded_value_can_carry_its_own_ttl() {
    let clock = Arc::new(ManualClock::new());
    let cache = small(4, 100, &clock).build().unwrap();
    let ns = cache.namespace(NS).unwrap();
    let v = ns
        .get_or_load_with_ttl(b"k", Duration::from_secs(5), || async {
            Ok::<_, std::io::Error>(Bytes::from_static(b"forming"))
        })
        .await
        .unwrap();
    assert_eq!(v, Bytes::from_static(b"forming"));
    clock.advance(Duration::from_secs(4));
    assert!(ns.get(b"k").is_some());
    clock.advance(Duration::from_secs(1));
    assert_eq!(ns.get(b"k"), None, "5 s, not the namespace's 60 s");
}

#[test]
fn admission_keeps_what_is_read_through_a_scan_of_one_off_keys() {
    let clock = Arc::new(ManualClock::new());
    for admission in [true, false] {
        let cache = small(10, 1000, &clock)
            .admission(NS, admission)
            .build()
            .unwrap();
        let ns = cache.namespace(NS).unwrap();
        // The hot set: ten entries read a few times each.
        for i in 0..10 {
            let k = key(i);
            assert!(ns.get(&k).is_none());
            ns.insert(&k, rows(1000, i as u64)).unwrap();
            for _ in 0..3 {
                assert!(ns.get(&k).is_some());
            }
        }
        // A scan: a hundred keys, each asked once and stored.
        for i in 100..200 {
            let k = key(i);
            assert!(ns.get(&k).is_none());
            ns.insert(&k, rows(1000, i as u64)).unwrap();
        }
        let kept = (0..10).filter(|i| ns.get(&key(*i)).is_some()).count();
        let st = cache.stats().namespaces[NS].clone();
        if admission {
            assert_eq!(kept, 10, "the scan displaced nothing that is read");
            assert_eq!(st.rejected_by_admission, 100);
            assert_eq!(st.evictions + st.demotions, 0);
        } else {
            // Without admission the scan pushes the hot set down a tier (paying a
            // compression each) or out.
            assert!(st.demotions + st.evictions >= 10, "{st:?} kept {kept}");
            assert_eq!(st.rejected_by_admission, 0);
        }
        // A key asked for again is admitted and displaces the least recently used.
        let k = key(150);
        assert!(ns.get(&k).is_none());
        ns.insert(&k, rows(1000, 150)).unwrap();
        assert!(ns.get(&k).is_some());
        if admission {
            assert_eq!(cache.stats().namespaces[NS].admitted, 1);
        }
        cache.audit().unwrap();
    }
}
