//! End-to-end tests: they run the real `candlecache` binary.
#![allow(clippy::unwrap_used)]

mod bybit;
mod demo;
mod fake_exchange;
mod futures;
mod hostile;
mod http;
mod live;
mod memory;
mod objects;
mod okx;
mod reliability;
mod served;
mod storage;
mod upstream;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Returns the path of the `candlecache` binary of this build profile, building it once
/// per test run so a test never runs a stale binary.
pub(crate) fn binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test binary knows its path");
        // target/<profile>/deps/it-<hash> -> target/<profile>/candlecache
        let dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("test binaries live in target/<profile>/deps");
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "--quiet", "-p", "candlecache"]);
        if dir.ends_with("release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("cargo runs");
        assert!(status.success(), "building candlecache failed");
        dir.join(format!("candlecache{}", std::env::consts::EXE_SUFFIX))
    })
    .clone()
}

/// Runs the binary with `args` against the database `db`; returns (status, stdout, stderr).
pub(crate) fn run(
    db: &std::path::Path,
    args: &[&str],
) -> (std::process::ExitStatus, String, String) {
    let out = Command::new(binary())
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .expect("the binary runs");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The path of a market fixture.
pub(crate) fn fixture(name: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/market")
        .join(name)
}

/// One minute, in ms.
pub(crate) const MINUTE: i64 = 60_000;
/// 2024-01-01T00:00:00Z, where [`write_candles`] starts.
pub(crate) const FIRST: i64 = 1_704_067_200_000;

/// Writes `rows` 1m candles of BTCUSDT from [`FIRST`] as a Binance CSV, prices wandering
/// deterministically.
pub(crate) fn write_candles(path: &std::path::Path, rows: i64) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..rows {
        let t = FIRST + i * MINUTE;
        let base = 40_000.0 + (i as f64 / 500.0).sin() * 2_000.0 + (i % 97) as f64;
        writeln!(
            f,
            "{t},{:.2},{:.2},{:.2},{:.2},{:.5},{},{:.4},{},{:.5},{:.4},0",
            base,
            base + 12.5,
            base - 11.25,
            base + 3.0,
            1.5 + (i % 13) as f64 / 7.0,
            t + MINUTE - 1,
            61_000.0 + (i % 31) as f64,
            100 + i % 50,
            0.7,
            28_000.0,
        )
        .unwrap();
    }
}

/// A database in `dir` holding `rows` 1m candles of BTCUSDT from [`FIRST`], imported
/// through the binary.
pub(crate) fn imported_candles(dir: &std::path::Path, rows: i64) -> PathBuf {
    let db = dir.join("c.db");
    let csv = dir.join("BTCUSDT-1m.csv");
    write_candles(&csv, rows);
    let (st, _, err) = run(
        &db,
        &[
            "import",
            csv.to_str().unwrap(),
            "--symbol",
            "BTCUSDT",
            "--timeframe",
            "1m",
        ],
    );
    assert!(st.success(), "{err}");
    db
}
