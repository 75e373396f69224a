//! End-to-end tests: they run the real `candlecache` binary.
#![allow(clippy::unwrap_used)]

mod demo;
mod fake_exchange;
mod http;
mod memory;
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
