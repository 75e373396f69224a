//! query-opt against real SQLite files in temporary directories.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use query_opt::{Db, DbConfig, Error, SCHEMA_VERSION};

async fn open(dir: &tempfile::TempDir, slow_ms: u64) -> Db {
    let mut cfg = DbConfig::new(dir.path().join("t.db"));
    cfg.slow_query_ms = slow_ms;
    Db::open(cfg, None).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_is_created_once_and_versioned() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir, 1000).await;
    let (version, tables): (i64, String) = db
        .run(|s| {
            s.time("schema", 1, |c| {
                let v = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
                let t = c.query_row(
                    "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name)",
                    [],
                    |r| r.get(0),
                )?;
                Ok((v, t))
            })
        })
        .await
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(tables, "candles,coverage,funding,series,symbols");
    drop(db);
    // Reopening migrates nothing and keeps the data.
    let db = open(&dir, 1000).await;
    db.run(|s| s.time("insert", 1, |c| c.execute("INSERT INTO symbols (symbol, exchange, price_scale, volume_scale, quote_volume_scale, taker_base_scale, taker_quote_scale) VALUES ('BTCUSDT', 'binance', 2, 5, 8, 5, 8)", [])))
        .await
        .unwrap();
    drop(db);
    let db = open(&dir, 1000).await;
    let n: i64 = db
        .run(|s| {
            s.time("count", 1, |c| {
                c.query_row("SELECT count(*) FROM symbols", [], |r| r.get(0))
            })
        })
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_or_foreign_file_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir, 1000).await;
    db.run(|s| {
        s.time("PRAGMA user_version = 99", 1, |c| {
            c.execute_batch("PRAGMA user_version = 99")
        })
    })
    .await
    .unwrap();
    drop(db);
    let err = Db::open(DbConfig::new(dir.path().join("t.db")), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::SchemaTooNew { found: 99, .. }),
        "{err}"
    );

    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![b'x'; 8192]).unwrap();
    let err = Db::open(DbConfig::new(&junk), None).await.unwrap_err();
    assert!(
        err.to_string().contains("not a database") || err.to_string().contains("junk.db"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_flag_full_scans_and_temp_btrees() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir, 1000).await;
    let plan = db
        .analyze("SELECT open_time FROM candles WHERE symbol_id = ? AND timeframe = ? AND open_time >= ? AND open_time < ? ORDER BY open_time")
        .await
        .unwrap();
    assert!(plan.uses_index(), "{plan:?}");
    assert!(plan.full_scans.is_empty() && !plan.temp_btree, "{plan:?}");
    let plan = db
        .analyze("SELECT * FROM candles WHERE volume > ? ORDER BY close")
        .await
        .unwrap();
    assert_eq!(plan.full_scans, vec!["candles".to_owned()], "{plan:?}");
    assert!(plan.temp_btree, "{plan:?}");
    assert!(matches!(
        db.analyze("SELEKT nonsense").await,
        Err(Error::Query { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_zero_threshold_the_slow_log_sees_every_query_and_advice_follows() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir, 0).await;
    for v in [1, 2, 3] {
        db.run(move |s| {
            s.time("SELECT count(*) FROM candles WHERE volume > ?1", 1, |c| {
                c.query_row("SELECT count(*) FROM candles WHERE volume > ?1", [v], |r| {
                    r.get::<_, i64>(0)
                })
            })
        })
        .await
        .unwrap();
    }
    let slow = db.log().slow();
    assert_eq!(slow.len(), 3);
    assert_eq!(
        slow[0].pattern,
        "SELECT count(*) FROM candles WHERE volume > ?"
    );
    let p = &db.log().patterns()[0];
    assert_eq!(
        (p.pattern.as_str(), p.count),
        ("SELECT count(*) FROM candles WHERE volume > ?", 3)
    );
    let advice = db.recommendations().await.unwrap();
    assert!(
        advice
            .iter()
            .any(|r| r.message.contains("reads table `candles` in full")),
        "{advice:?}"
    );
    assert!(
        advice.iter().any(|r| r.message.starts_with("slow:")),
        "{advice:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimize_reports_what_it_did_and_a_failed_transaction_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir, 1000).await;
    let err = db
        .run(|s| {
            s.transaction(|s| {
                s.time("INSERT INTO symbols", 1, |c| c.execute("INSERT INTO symbols (symbol, exchange, price_scale, volume_scale, quote_volume_scale, taker_base_scale, taker_quote_scale) VALUES ('A', 'x', 1, 1, 1, 1, 1)", []))?;
                s.time("INSERT INTO symbols", 1, |c| c.execute("INSERT INTO symbols (symbol, exchange, price_scale, volume_scale, quote_volume_scale, taker_base_scale, taker_quote_scale) VALUES ('A', 'x', 1, 1, 1, 1, 1)", []))
            })
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("INSERT INTO symbols"), "{err}");
    let n: i64 = db
        .run(|s| {
            s.time("count", 1, |c| {
                c.query_row("SELECT count(*) FROM symbols", [], |r| r.get(0))
            })
        })
        .await
        .unwrap();
    assert_eq!(n, 0, "the first insert was rolled back with the second");

    let report = db.optimize().await.unwrap();
    assert_eq!(report.ran.len(), 3);
    assert!(!report.checkpoint_busy);
    assert!(report.page_count > 0);
    assert!(db.log().patterns().iter().any(|p| p.pattern == "ANALYZE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_results_are_cached_until_invalidated() {
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_core::Cache::new(cache_core::CacheConfig::default()).unwrap();
    let ns = cache.namespace(cache_core::ns::STRATEGY_RESULTS).unwrap();
    let db = Db::open(DbConfig::new(dir.path().join("t.db")), Some(ns))
        .await
        .unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let count = |db: Db, runs: Arc<AtomicUsize>| async move {
        db.cached("symbols:count", || {
            let db = db.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                db.run(|s| {
                    s.time("count", 1, |c| {
                        c.query_row("SELECT count(*) FROM symbols", [], |r| r.get::<_, i64>(0))
                    })
                })
                .await
            }
        })
        .await
        .unwrap()
    };
    assert_eq!(count(db.clone(), runs.clone()).await, 0);
    assert_eq!(count(db.clone(), runs.clone()).await, 0);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the second read came from the cache"
    );
    db.invalidate_cached();
    count(db.clone(), runs.clone()).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}
