//! `cargo xtask crash`: SIGKILL during import and during backfill, repeated, checking
//! after every kill that the database is whole and honest, and that resuming completes
//! exactly.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::process::root;
use crate::process::sh;

const ROWS: u64 = 300_000;
const BATCH: u64 = 5_000;
/// The generator's first candle: 2020-01-01.
const FIRST: i64 = 1_577_836_800_000;
const MINUTE: i64 = 60_000;

fn sql(db: &Path, query: &str) -> Result<String> {
    Ok(sh(Command::new("sqlite3").arg(db).arg(query))?
        .trim()
        .to_owned())
}

fn num(db: &Path, query: &str) -> Result<i64> {
    let v = sql(db, query)?;
    v.parse()
        .with_context(|| format!("`{query}` gave `{v}`, not a number"))
}

/// A deterministic pseudo-random delay in `lo..hi` ms for round `i`.
/// A kill moment for round `i`: between 10 % and 80 % of `full` (how long the whole
/// work took uninterrupted on this machine), spread over the rounds.
fn delay(i: u64, full: Duration) -> Duration {
    let x = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17);
    let share = 0.1 + 0.7 * (x % 1000) as f64 / 1000.0;
    full.mul_f64(share).max(Duration::from_millis(5))
}

/// How long `cmd` takes uninterrupted (it must succeed).
fn timed(cmd: &mut Command) -> Result<Duration> {
    Ok(Duration::from_secs_f64(crate::process::timed(cmd)?))
}

/// Runs `cmd`, SIGKILLs it after `after` (if still running); says whether it was killed.
fn kill_after(cmd: &mut Command, after: Duration) -> Result<bool> {
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    let t = Instant::now();
    while t.elapsed() < after {
        if child.try_wait()?.is_some() {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill()?; // SIGKILL
    child.wait()?;
    Ok(true)
}

fn integrity(db: &Path) -> Result<()> {
    let ok = sql(db, "PRAGMA integrity_check")?;
    if ok != "ok" {
        bail!("integrity_check of {}: {ok}", db.display());
    }
    Ok(())
}

pub(crate) fn crash(args: &[&str]) -> Result<()> {
    let rounds: u64 = match args {
        [] => 20,
        ["--rounds", n] => n
            .parse()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .context("--rounds takes 1 to 1000")?,
        other => bail!("unexpected arguments {other:?}; usage: cargo xtask crash [--rounds N]"),
    };
    if Command::new("sqlite3").arg("--version").output().is_err() {
        eprintln!("xtask: installing sqlite3 (apt-get)");
        sh(Command::new("apt-get").arg("update"))?;
        sh(Command::new("apt-get").args(["install", "-y", "sqlite3"]))?;
    }
    let bin = crate::process::candlecache_binary(true)?;
    let dir = root().join("target/crash");
    std::fs::create_dir_all(&dir)?;
    let data = dir.join(format!("BTCUSDT-1m-{ROWS}.csv"));
    if !data.exists() {
        crate::gen::binance_1m(&data, ROWS, 11)?;
    }
    let fresh = |name: &str| {
        let db = dir.join(name);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        db
    };

    // Import: killed at a varying moment into a fresh database, checked, resumed to the
    // end and checked again, `rounds` times.
    let import = |db: &Path| {
        let mut c = Command::new(&bin);
        c.arg("--db")
            .arg(db)
            .args(["import", "--batch-rows", &BATCH.to_string()])
            .arg(&data)
            .args(["--symbol", "BTCUSDT", "--timeframe", "1m"]);
        c
    };
    let full_import = timed(&mut import(&fresh("import.db")))?;
    eprintln!("xtask: an uninterrupted import takes {full_import:?}; kills land at 10-80 % of it");
    let mut import_kills = 0;
    let mut import_partial = 0;
    let mut src = dir.join("import.db");
    for i in 0..rounds {
        src = fresh("import.db");
        let killed = kill_after(&mut import(&src), delay(i, full_import))?;
        if !killed {
            bail!("import round {i}: the import finished before the kill; nothing was tested (a faster machine needs shorter delays)");
        }
        import_kills += 1;
        let mut n = 0;
        if src.exists() {
            integrity(&src)?;
            n = num(&src, "SELECT count(*) FROM candles")?;
            if !(n as u64).is_multiple_of(BATCH) {
                bail!("import round {i}: {n} candles stored, not whole batches of {BATCH}");
            }
        }
        import_partial += u64::from(n > 0 && (n as u64) < ROWS);
        let out = sh(&mut import(&src))?;
        integrity(&src)?;
        let total = num(&src, "SELECT count(*) FROM candles")?;
        let span = num(&src, "SELECT max(open_time) - min(open_time) FROM candles")?;
        if total as u64 != ROWS || span != (ROWS as i64 - 1) * MINUTE {
            bail!("import round {i}: after resuming {total} candles over {span} ms; {out}");
        }
        eprintln!("xtask: import round {i}: killed={killed} with {n} candles stored, integrity ok, resumed to {total}");
    }

    // Backfill from a candlecache serving the imported file (an upstream, as instances
    // chain): killed `rounds` times, then resumed.
    let (_upstream, url) = crate::clients::serve(&bin, &src, &[])?;
    let (start, end) = (FIRST, FIRST + ROWS as i64 * MINUTE);
    let fetch = |db: &Path| {
        let mut c = Command::new(&bin);
        c.arg("--db")
            .arg(db)
            .args(["fetch", "--symbol", "BTCUSDT", "--timeframe", "1m"])
            .args(["--start", &start.to_string(), "--end", &end.to_string()])
            .args(["--upstream", &url]);
        c
    };
    let fingerprint = |db: &Path| -> Result<(i64, i64, i128)> {
        // Values compared as decimals: the copy keeps the upstream's 8 places.
        let scale = num(
            db,
            "SELECT price_scale FROM symbols WHERE symbol = 'BTCUSDT'",
        )?;
        let close: i128 = sql(db, "SELECT sum(close) FROM candles")?.parse()?;
        Ok((
            num(db, "SELECT count(*) FROM candles")?,
            num(db, "SELECT sum(open_time) FROM candles")?,
            close * 10i128.pow(18 - scale as u32),
        ))
    };
    let want = fingerprint(&src)?;
    // Twice: the upstream caches its answers, so later backfills are faster than the first.
    timed(&mut fetch(&fresh("backfill.db")))?;
    let full_fetch = timed(&mut fetch(&fresh("backfill.db")))?;
    eprintln!("xtask: an uninterrupted backfill takes {full_fetch:?}; kills land at 10-80 % of it");
    let mut kills = 0;
    let mut backfill_partial = 0;
    for i in 0..rounds {
        let dst = fresh("backfill.db");
        let killed = kill_after(&mut fetch(&dst), delay(i + 1000, full_fetch))?;
        if !killed {
            bail!("backfill round {i}: the backfill finished before the kill; nothing was tested");
        }
        kills += 1;
        let mut covered = 0;
        if dst.exists() {
            integrity(&dst)?;
            // Coverage never claims what is not stored: every covered minute of the
            // source is in the copy.
            let spans = sql(
                &dst,
                "SELECT start_time || ' ' || end_time FROM coverage ORDER BY start_time",
            )?;
            for line in spans.lines() {
                let mut it = line.split(' ').map(str::parse::<i64>);
                let (Some(Ok(a)), Some(Ok(b))) = (it.next(), it.next()) else {
                    bail!("coverage row `{line}`");
                };
                let q = format!(
                    "SELECT count(*) FROM candles WHERE open_time >= {a} AND open_time < {b}"
                );
                let (have, want) = (num(&dst, &q)?, num(&src, &q)?);
                if have != want {
                    bail!("backfill round {i}: coverage [{a}, {b}) claims {want} candles, {have} stored");
                }
                covered += want;
            }
        }
        backfill_partial += u64::from(covered > 0 && (covered as u64) < ROWS);
        sh(&mut fetch(&dst))?;
        integrity(&dst)?;
        let got = fingerprint(&dst)?;
        if got != want {
            bail!("backfill round {i}: after resuming the copy differs: source {want:?}, copy {got:?}");
        }
        eprintln!("xtask: backfill round {i}: killed={killed} with {covered} candles covered (all stored), integrity ok, resumed to exactly the source");
    }
    // A backfill commits page by page: most kills must land between pages, or the rounds
    // tested little. (An import may be all-or-nothing, so a kill leaving nothing is a
    // valid outcome there; it was still killed while working.)
    if backfill_partial * 2 < rounds {
        bail!("too few backfill kills landed mid-work: {backfill_partial} of {rounds}");
    }
    println!("xtask: crash: import killed {import_kills} of {rounds} times ({import_partial} mid-work), backfill killed {kills} of {rounds} times ({backfill_partial} mid-work); after every kill integrity_check ok, whole batches only, coverage never beyond what is stored; each resumed to exactly the source ({ROWS} candles)");
    Ok(())
}
