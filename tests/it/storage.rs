//! Import, export and markets through the real binary, and a crash in the middle of an
//! import.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use crate::{binary, fixture, run};

fn query(db: &Path, sql: &str) -> i64 {
    let c = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn import_markets_export_round_trip_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let one = fixture("XRPETH-1m.csv");
    let json = fixture("XRP_USDT_USDT-1h-futures.json");
    let (st, out, err) = run(
        &db,
        &["import", one.to_str().unwrap(), json.to_str().unwrap()],
    );
    assert!(st.success(), "{err}");
    assert!(out.contains("XRPETH 1m: read 2469, inserted 2469"), "{out}");
    assert!(out.contains("XRPUSDT 1h: read 100, inserted 100"), "{out}");
    // A freqtrade funding-rate file holds no candles: refused by name, nothing written.
    let funding = dir.path().join("XRP_USDT_USDT-8h-funding_rate.json");
    std::fs::copy(&json, &funding).unwrap();
    let (st, _, err) = run(&db, &["import", funding.to_str().unwrap()]);
    assert!(!st.success());
    assert!(err.contains("funding rates, not candles"), "{err}");
    let (st, out, _) = run(&db, &["import", one.to_str().unwrap()]);
    assert!(st.success());
    assert!(
        out.contains("inserted 0, updated 0, duplicates 2469"),
        "{out}"
    );

    let (st, out, _) = run(&db, &["markets", "--json"]);
    assert!(st.success());
    let markets: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(markets.as_array().unwrap().len(), 2);
    assert_eq!(markets[0]["symbol"], "XRPETH");
    assert_eq!(markets[0]["count"], 2469);
    // freqtrade's `-futures` file is futures candles.
    assert_eq!(
        (&markets[1]["symbol"], &markets[1]["kind"]),
        (&"XRPUSDT".into(), &"futures".into())
    );

    let out_csv = dir.path().join("x.csv");
    let (st, _, err) = run(
        &db,
        &[
            "export",
            "--symbol",
            "xrpeth",
            "--timeframe",
            "1m",
            "--format",
            "binance",
            out_csv.to_str().unwrap(),
        ],
    );
    assert!(st.success(), "{err}");
    assert_eq!(
        std::fs::read(&out_csv).unwrap(),
        std::fs::read(&one).unwrap(),
        "byte-identical round trip"
    );

    let (st, out, _) = run(
        &db,
        &[
            "export",
            "--symbol",
            "XRPETH",
            "--timeframe",
            "1m",
            "--start",
            "2019-10-11T00:01:00Z",
            "--end",
            "1570752180000",
            "--format",
            "csv",
            "-",
        ],
    );
    assert!(st.success());
    assert_eq!(out.lines().count(), 3, "a header and two candles: {out}");
}

#[test]
fn bad_input_is_refused_with_a_reason_and_a_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let bad = dir.path().join("XRPETH-1m.csv");
    std::fs::write(&bad, "1570752000000,0.1,0.2,0.1,0.1,5,0,0,0,0,0,0\n1570752060000,0.3,0.2,0.1,0.1,5,0,0,0,0,0,0\n").unwrap();
    let (st, _, err) = run(&db, &["import", bad.to_str().unwrap()]);
    assert!(!st.success());
    assert!(
        err.contains("line 2") && err.contains("open 0.3 is outside"),
        "{err}"
    );
    assert_eq!(query(&db, "SELECT count(*) FROM candles"), 0);
    let (st, _, err) = run(
        &db,
        &["import", "--on-invalid", "skip", bad.to_str().unwrap()],
    );
    assert!(st.success());
    assert!(err.contains("skipped line 2"), "{err}");
    assert_eq!(query(&db, "SELECT count(*) FROM candles"), 1);

    for (args, needle) in [
        (
            vec![
                "export",
                "--symbol",
                "BTC/USDT",
                "--timeframe",
                "1m",
                "--format",
                "csv",
                "-",
            ],
            "invalid symbol",
        ),
        (
            vec![
                "export",
                "--symbol",
                "XRPETH",
                "--timeframe",
                "7m",
                "--format",
                "csv",
                "-",
            ],
            "invalid timeframe",
        ),
        (
            vec![
                "export",
                "--symbol",
                "XRPETH",
                "--timeframe",
                "1m",
                "--format",
                "xls",
                "-",
            ],
            "unknown format",
        ),
        (
            vec![
                "export",
                "--symbol",
                "XRPETH",
                "--timeframe",
                "1m",
                "--start",
                "yesterday",
                "--format",
                "csv",
                "-",
            ],
            "invalid time",
        ),
        (
            vec!["import", "--timeframe", "1m", "/nonexistent/x.csv"],
            "/nonexistent/x.csv",
        ),
    ] {
        let (st, _, err) = run(&db, &args);
        assert!(!st.success(), "{args:?}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let missing = dir.path().join("none.db");
    let (st, _, err) = run(&missing, &["markets"]);
    assert!(!st.success() && err.contains("does not exist"), "{err}");
}

/// Issue 4: SIGKILL in the middle of an import leaves a sound database holding only whole
/// batches, and importing again completes to the exact count.
#[test]
fn a_killed_import_leaves_whole_batches_or_nothing_and_resumes_exactly() {
    const ROWS: i64 = 600_000;
    const BATCH: i64 = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let file = dir.path().join("BTCUSDT-1m-gen.csv");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        let mut price = 4_000_000_i64; // cents
        for i in 0..ROWS {
            let t = 1_704_067_200_000 + i * 60_000;
            price += (i * 7919 % 41) - 20;
            let (o, c) = (price, price + (i % 13) - 6);
            let (h, l) = (o.max(c) + 5, o.min(c) - 5);
            writeln!(
                w,
                "{t},{}.{:02},{}.{:02},{}.{:02},{}.{:02},1.{:05},{},0,0,0,0,0",
                o / 100,
                o % 100,
                h / 100,
                h % 100,
                l / 100,
                l % 100,
                c / 100,
                c % 100,
                i % 99_999,
                t + 59_999
            )
            .unwrap();
        }
    }
    // `--on-invalid skip` commits batch by batch: a kill leaves whole batches.
    let n = kill_import(&db, &file, BATCH, "skip", &|db| {
        let c = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
        let n: i64 = c
            .query_row("SELECT count(*) FROM candles", [], |r| r.get(0))
            .unwrap_or(0);
        (n >= BATCH).then_some(())
    });
    assert!(
        n < ROWS,
        "the import finished before the kill; make the file larger"
    );
    assert_eq!(n % BATCH, 0, "only whole batches: {n}");
    // The default import is one transaction: killed while its WAL grows, it leaves
    // nothing new.
    let wal = std::path::PathBuf::from(format!("{}-wal", db.display()));
    let before = n;
    assert!(
        !wal.exists(),
        "the checks closed the database, so the WAL is new"
    );
    let n = kill_import(&db, &file, BATCH, "fail", &|_| {
        (std::fs::metadata(&wal).map_or(0, |m| m.len()) > 4_000_000).then_some(())
    });
    assert_eq!(n, before, "all or nothing");
    let (st, out, err) = run(
        &db,
        &[
            "import",
            "--batch-rows",
            &BATCH.to_string(),
            file.to_str().unwrap(),
        ],
    );
    assert!(st.success(), "{err}");
    assert!(out.contains(&format!("inserted {}", ROWS - n)), "{out}");
    assert_eq!(query(&db, "SELECT count(*) FROM candles"), ROWS);
    assert_eq!(query(&db, "SELECT sum(count) FROM series"), ROWS);
}

/// Starts `import --on-invalid <mode>`, SIGKILLs it once `ready` says so (within 60 s),
/// checks the file's integrity and that the series metadata agrees with the rows, and
/// returns the candles stored.
fn kill_import(
    db: &std::path::Path,
    file: &std::path::Path,
    batch: i64,
    mode: &str,
    ready: &dyn Fn(&std::path::Path) -> Option<()>,
) -> i64 {
    let mut child = Command::new(binary())
        .arg("--db")
        .arg(db)
        .args([
            "import",
            "--batch-rows",
            &batch.to_string(),
            "--on-invalid",
            mode,
            file.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !(db.exists() && ready(db).is_some()) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the {mode} import never got going"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the {mode} import finished before the kill; make the file larger"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let c = Connection::open(db).unwrap();
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let n: i64 = c
        .query_row("SELECT count(*) FROM candles", [], |r| r.get(0))
        .unwrap();
    let series: i64 = c
        .query_row("SELECT coalesce(sum(count), 0) FROM series", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(series, n, "the metadata agrees with the rows");
    n
}
