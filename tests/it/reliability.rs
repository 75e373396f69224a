//! Faults around the server: a full disk, an exhausted pool, SIGTERM under load, SIGKILL
//! during a backfill.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use crate::fake_exchange::{self as fake, FakeExchange, Fault, SYMBOL};
use crate::http::{get, spawn};
use crate::upstream::{aligned_start, expected_csv, exported};
use crate::{binary, imported_candles, run, write_candles, FIRST, MINUTE};

fn query(db: &Path, sql: &str) -> i64 {
    let c = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn integrity(db: &Path) -> String {
    let c = Connection::open(db).unwrap();
    c.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

fn config(dir: &Path, toml: &str) -> String {
    let p = dir.join("c.toml");
    std::fs::write(&p, toml).unwrap();
    p.display().to_string()
}

#[test]
fn a_full_database_refuses_writes_clearly_keeps_whole_batches_and_recovers() {
    const ROWS: i64 = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let csv = dir.path().join("BTCUSDT-1m.csv");
    write_candles(&csv, ROWS);
    let small = config(dir.path(), "[database]\nmax_db_mb = 2\n");
    let import = |cfg: Option<&str>, on_invalid: &str| {
        let mut args = vec![];
        if let Some(c) = cfg {
            args.extend(["--config", c]);
        }
        args.extend(["import", "--batch-rows", "5000", "--on-invalid", on_invalid]);
        args.push(csv.to_str().unwrap());
        run(&db, &args)
    };
    // The default import is one transaction: a full database keeps none of it.
    let (st, _, err) = import(Some(&small), "fail");
    assert!(!st.success(), "the import cannot fit in 2 MB");
    assert!(err.contains("the database is full"), "{err}");
    assert_eq!(integrity(&db), "ok");
    assert_eq!(
        query(&db, "SELECT count(*) FROM candles"),
        0,
        "all or nothing"
    );
    // `--on-invalid skip` commits batch by batch: whole batches are kept.
    let (st, _, err) = import(Some(&small), "skip");
    assert!(!st.success(), "the import cannot fit in 2 MB");
    assert!(err.contains("the database is full"), "{err}");
    assert_eq!(integrity(&db), "ok");
    let kept = query(&db, "SELECT count(*) FROM candles");
    assert!(kept > 0 && kept < ROWS, "{kept}");
    assert_eq!(kept % 5000, 0, "whole batches only: {kept}");
    assert!(std::fs::metadata(&db).unwrap().len() <= 2_000_000 + 64 * 1024);

    // The server on the full file still reads what it has ...
    let srv = spawn(&db, &["--config", &small, "serve"]);
    let r = get(
        srv.addr,
        &format!("/api/crypto/ohlc?symbol=BTCUSDT&timeframe=1m&start={FIRST}&limit=10"),
    );
    assert_eq!(r.status, 200);
    drop(srv);
    // ... and a backfill that cannot be stored is a 507, not a crash.
    let ex = FakeExchange::start();
    let url = ex.url();
    let srv = spawn(&db, &["--config", &small, "serve", "--upstream", &url]);
    let start = aligned_start();
    let r = get(
        srv.addr,
        &format!(
            "/api/crypto/ohlc?symbol={SYMBOL}&timeframe=1m&start={start}&end={}&limit=100000",
            start + 90_000 * MINUTE
        ),
    );
    assert_eq!(r.status, 507, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"]["code"], "storage_full");
    assert_eq!(get(srv.addr, "/healthz").status, 200);
    drop(srv);
    assert_eq!(integrity(&db), "ok");

    // With room again, the same import completes exactly.
    let (st, out, err) = import(None, "fail");
    assert!(st.success(), "{err}");
    assert!(out.contains(&format!("inserted {}", ROWS - kept)), "{out}");
    assert_eq!(query(&db, "SELECT count(*) FROM candles"), ROWS);
}

#[test]
fn an_exhausted_pool_answers_503_with_retry_after_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let db = imported_candles(dir.path(), 60_000);
    let cfg = config(
        dir.path(),
        "[database.pool]\nmax_size = 1\nwait_timeout_ms = 1\n",
    );
    let srv = spawn(&db, &["--config", &cfg, "serve"]);
    let addr = srv.addr;
    // 48 distinct uncached ranges at once through one connection that may wait 1 ms.
    let threads: Vec<_> = (0..48)
        .map(|k| {
            std::thread::spawn(move || {
                let start = FIRST + k * 1200 * MINUTE;
                let r = get(
                    addr,
                    &format!("/api/crypto/ohlc?symbol=BTCUSDT&timeframe=1m&start={start}&limit=1200&format=csv"),
                );
                let retry = r.header("retry-after").map(str::to_owned);
                let code = (r.status != 200).then(|| r.json()["error"]["code"].clone());
                (r.status, retry, code)
            })
        })
        .collect();
    let mut busy = 0;
    for t in threads {
        let (status, retry, code) = t.join().unwrap();
        match status {
            200 => {}
            503 => {
                busy += 1;
                assert_eq!(retry.as_deref(), Some("1"));
                assert_eq!(code.unwrap(), "busy");
            }
            other => panic!("status {other}, code {code:?}"),
        }
    }
    assert!(busy > 0, "one connection with a 1 ms wait never ran out");
    // Once the crowd is gone every request is answered.
    for k in 0..5 {
        let start = FIRST + k * 1200 * MINUTE;
        let r = get(
            addr,
            &format!(
                "/api/crypto/ohlc?symbol=BTCUSDT&timeframe=1m&start={start}&limit=1200&format=csv"
            ),
        );
        assert_eq!(r.status, 200);
        assert_eq!(String::from_utf8(r.body).unwrap().lines().count(), 1201);
    }
}

/// One request on a fresh connection: `Some((status, complete))`, or `None` if the server
/// took no request (refused or closed before answering).
fn try_get(addr: SocketAddr, target: &str) -> Option<(u16, bool)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    s.write_all(
        format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .ok()?;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    if buf.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    Some((status, body.len() == len))
}

#[test]
fn sigterm_under_load_finishes_requests_checkpoints_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let db = imported_candles(dir.path(), 50_000);
    let mut srv = spawn(&db, &["serve"]);
    let addr = srv.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let (stop, ok) = (stop.clone(), ok.clone());
            std::thread::spawn(move || {
                let mut bad = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(20);
                let mut k = 0i64;
                while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                    k += 1;
                    let start = FIRST + ((c * 1000 + k) % 45) * 1000 * MINUTE;
                    match try_get(addr, &format!("/api/crypto/ohlc?symbol=BTCUSDT&timeframe=1m&start={start}&limit=1000&format=csv")) {
                        Some((200, true)) => {
                            ok.fetch_add(1, Ordering::SeqCst);
                        }
                        Some(other) => bad.push(other),
                        // Refused: the server has stopped accepting.
                        None => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
                bad
            })
        })
        .collect();
    while ok.load(Ordering::SeqCst) < 50 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = Command::new("kill")
        .args(["-TERM", &srv.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(code) = srv.child.try_wait().unwrap() {
            break code;
        }
        assert!(Instant::now() < deadline, "the server did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        let bad = c.join().unwrap();
        assert!(bad.is_empty(), "failed or cut answers: {bad:?}");
    }
    assert!(code.success(), "{code}");
    // Everything is in the file: the write-ahead log was checkpointed and truncated.
    let wal = dir.path().join("c.db-wal");
    assert!(
        !wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0,
        "{} bytes left in the WAL",
        std::fs::metadata(&wal).unwrap().len()
    );
    assert_eq!(integrity(&db), "ok");
}

#[test]
fn a_killed_backfill_leaves_whole_pages_true_coverage_and_resumes_exactly() {
    let ex = FakeExchange::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let start = aligned_start();
    let end = start + 30_000 * MINUTE;
    // Slow pages, so the kill lands in the middle.
    ex.inject(&[Fault::Delay(150); 40]);
    let url = ex.url();
    let (s, e) = (start.to_string(), end.to_string());
    let args = [
        "fetch",
        "--symbol",
        SYMBOL,
        "--timeframe",
        "1m",
        "--start",
        &s,
        "--end",
        &e,
        "--upstream",
        &url,
    ];
    for round in 0..3 {
        let mut child = Command::new(binary())
            .arg("--db")
            .arg(&db)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t = Instant::now();
        let want = 2000 * (round + 1);
        loop {
            assert!(t.elapsed() < Duration::from_secs(60), "no page stored");
            if db.exists()
                && Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY)
                    .and_then(|c| {
                        c.query_row("SELECT count(*) FROM candles", [], |r| r.get::<_, i64>(0))
                    })
                    .unwrap_or(0)
                    >= want
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        assert_eq!(integrity(&db), "ok");
        // Coverage never claims a candle that is not stored: every covered slot the
        // exchange has is in the table.
        let c = Connection::open(&db).unwrap();
        let spans: Vec<(i64, i64)> = c
            .prepare("SELECT start_time, end_time FROM coverage")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(!spans.is_empty());
        let now = fake::now_ms();
        for (a, b) in spans {
            let claimed = (a..b)
                .step_by(MINUTE as usize)
                .filter(|t| fake::exists(MINUTE, *t, now))
                .count() as i64;
            let stored: i64 = c
                .query_row(
                    "SELECT count(*) FROM candles WHERE open_time >= ?1 AND open_time < ?2",
                    [a, b],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(stored, claimed, "coverage [{a}, {b}) in round {round}");
        }
    }
    // Resuming completes exactly: the exchange's candles, each once.
    let (st, out, err) = run(&db, &args);
    assert!(st.success(), "{out}{err}");
    assert_eq!(
        exported(&db, "1m", start, end),
        expected_csv(MINUTE, start, end)
    );
}
