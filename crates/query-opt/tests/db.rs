//! query-opt against real SQLite files in temporary directories.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use query_opt::{Db, DbConfig, Error, Schema};

/// A schema of two versions, shaped like the candle store's where the tests need it (a
/// unique name, a clustered key, an unindexed column).
static SCHEMA: Schema = Schema::new(&[
    "CREATE TABLE symbols (id INTEGER PRIMARY KEY, symbol TEXT NOT NULL UNIQUE);
     CREATE TABLE candles (
         symbol_id INTEGER NOT NULL, timeframe TEXT NOT NULL, open_time INTEGER NOT NULL,
         close INTEGER NOT NULL, volume INTEGER NOT NULL,
         PRIMARY KEY (symbol_id, timeframe, open_time)
     ) WITHOUT ROWID;",
    "ALTER TABLE symbols ADD COLUMN kind TEXT NOT NULL DEFAULT 'spot';",
]);

async fn open(dir: &tempfile::TempDir, slow_ms: u64) -> Db {
    let mut cfg = DbConfig::new(dir.path().join("t.db"));
    cfg.slow_query_ms = slow_ms;
    Db::open(cfg, &SCHEMA, None).await.unwrap()
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
    assert_eq!(version, SCHEMA.version());
    assert_eq!(tables, "candles,symbols");
    drop(db);
    // Reopening migrates nothing and keeps the data.
    let db = open(&dir, 1000).await;
    db.run(|s| {
        s.time("insert", 1, |c| {
            c.execute("INSERT INTO symbols (symbol) VALUES ('BTCUSDT')", [])
        })
    })
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
    let err = Db::open(DbConfig::new(dir.path().join("t.db")), &SCHEMA, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::SchemaTooNew { found: 99, .. }),
        "{err}"
    );

    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![b'x'; 8192]).unwrap();
    let err = Db::open(DbConfig::new(&junk), &SCHEMA, None)
        .await
        .unwrap_err();
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
                s.time("INSERT INTO symbols", 1, |c| {
                    c.execute("INSERT INTO symbols (symbol) VALUES ('A')", [])
                })?;
                s.time("INSERT INTO symbols", 1, |c| {
                    c.execute("INSERT INTO symbols (symbol) VALUES ('A')", [])
                })
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
    let db = Db::open(DbConfig::new(dir.path().join("t.db")), &SCHEMA, Some(ns))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connection_gets_the_database_settings() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = DbConfig::new(dir.path().join("t.db"));
    cfg.max_db_bytes = 10_000_000;
    let db = Db::open(cfg, &SCHEMA, None).await.unwrap();
    let got = db
        .run(|s| {
            s.time("settings", 1, |c| {
                let q = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0));
                let mode: String = c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
                let limit = q("PRAGMA max_page_count")? * q("PRAGMA page_size")?;
                Ok((
                    mode,
                    q("PRAGMA synchronous")?,
                    q("PRAGMA cache_size")?,
                    q("PRAGMA temp_store")?,
                    q("PRAGMA mmap_size")?,
                    q("PRAGMA busy_timeout")?,
                    limit,
                ))
            })
        })
        .await
        .unwrap();
    assert_eq!(got.0, "wal");
    assert_eq!(
        (got.1, got.2, got.3, got.4, got.5),
        (1, 10_000, 2, 268_435_456, 5_000)
    );
    assert!((10_000_000..10_010_000).contains(&got.6), "{}", got.6);
}
