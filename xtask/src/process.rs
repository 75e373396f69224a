//! Running things: the workspace root, cargo, shell commands with their output and time,
//! the candlecache binary, servers stopped on drop, Python virtualenvs, wrk. Every task
//! uses these.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Returns the workspace root (the parent of `xtask/`).
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Runs a cargo command in the workspace root and fails if it fails.
pub(crate) fn cargo(args: &[&str], envs: &[(&str, &str)]) -> Result<()> {
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = cargo_command()
        .args(args)
        .envs(envs.iter().copied())
        .status()
        .with_context(|| format!("could not run cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// `cargo` (the one running xtask) in the workspace root, to add arguments to.
pub(crate) fn cargo_command() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// Builds the candlecache binary (release for figures, the debug one the tests use
/// otherwise) and returns its path.
pub(crate) fn candlecache_binary(release: bool) -> Result<PathBuf> {
    if release {
        cargo(&["build", "--release", "--quiet", "-p", "candlecache"], &[])?;
        Ok(root().join("target/release/candlecache"))
    } else {
        cargo(&["build", "--quiet", "-p", "candlecache"], &[])?;
        Ok(root().join("target/debug/candlecache"))
    }
}

/// Runs a command, failing with its stderr if it fails; returns stdout.
pub(crate) fn sh(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Wall time of a command, in seconds.
pub(crate) fn timed(cmd: &mut Command) -> Result<f64> {
    let t = std::time::Instant::now();
    sh(cmd)?;
    Ok(t.elapsed().as_secs_f64())
}

/// What a run cost beside its time: the largest the WAL beside `db` grew and the peak
/// resident memory of the process (`VmHWM`), sampled every 20 ms.
pub(crate) struct Footprint {
    pub(crate) seconds: f64,
    pub(crate) wal_peak_bytes: u64,
    pub(crate) rss_peak_bytes: u64,
}

pub(crate) fn timed_footprint(cmd: &mut Command, db: &Path) -> Result<Footprint> {
    let wal = std::path::PathBuf::from(format!("{}-wal", db.display()));
    let t = std::time::Instant::now();
    let mut child = cmd.stdout(std::process::Stdio::null()).spawn()?;
    let status_file = format!("/proc/{}/status", child.id());
    let (mut wal_peak, mut rss_peak) = (0u64, 0u64);
    let status = loop {
        wal_peak = wal_peak.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        if let Ok(st) = std::fs::read_to_string(&status_file) {
            let hwm = st
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok());
            rss_peak = rss_peak.max(hwm.unwrap_or(0) * 1024);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(Footprint {
        seconds: t.elapsed().as_secs_f64(),
        wal_peak_bytes: wal_peak,
        rss_peak_bytes: rss_peak,
    })
}

/// A virtualenv at `venv` in which `import MODULES` works, installing `packages` from
/// PyPI if it does not; returns its python.
pub(crate) fn python_env(
    venv: &Path,
    modules: &str,
    packages: &[&str],
) -> Result<std::path::PathBuf> {
    let python = venv.join("bin/python");
    if !python.exists() {
        eprintln!("xtask: creating {}", venv.display());
        if sh(Command::new("python3").args(["-m", "venv"]).arg(venv)).is_err() {
            // Debian's python3 comes without venv.
            eprintln!("xtask: installing python3-venv (apt-get)");
            sh(Command::new("apt-get").arg("update"))?;
            sh(Command::new("apt-get").args(["install", "-y", "python3-venv"]))?;
            sh(Command::new("python3").args(["-m", "venv"]).arg(venv))?;
        }
    }
    // The pinned versions too: a venv made by an older xtask keeps its old pins.
    let pins: Vec<String> = packages
        .iter()
        .filter_map(|p| p.split_once("=="))
        .map(|(name, v)| {
            format!(
                "assert m.version({:?}) == {v:?}",
                name.split('[').next().unwrap_or(name)
            )
        })
        .collect();
    let have = Command::new(&python)
        .args([
            "-c",
            &format!(
                "import {modules}\nimport importlib.metadata as m\n{}",
                pins.join("\n")
            ),
        ])
        .output()?;
    if !have.status.success() {
        eprintln!(
            "xtask: installing {} into {}",
            packages.join(" "),
            venv.display()
        );
        sh(Command::new(&python)
            .args(["-m", "pip", "install", "--quiet"])
            .args(packages))?;
    }
    Ok(python)
}

/// A process this task started (a server); stopped (TERM, then KILL) when dropped.
pub(crate) struct Started(pub(crate) std::process::Child);

impl Drop for Started {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        for _ in 0..50 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits up to 30 s for `url` to answer 2xx.
pub(crate) fn wait_http(url: &str) -> Result<()> {
    for _ in 0..300 {
        if Command::new("curl")
            .args(["-sf", "-o", "/dev/null", url])
            .status()?
            .success()
        {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    bail!("{url} did not answer within 30 s")
}

/// One bounded wrk run (2 s warm-up, then `secs`), parsed.
pub(crate) fn wrk(url: &str, secs: u32) -> Result<(f64, String, String, u64)> {
    wrk_script(url, secs, None)
}

/// As [`wrk`], the requests made by a wrk Lua `script` (its `request()`) given `args`,
/// `url` giving the host.
pub(crate) fn wrk_script(
    url: &str,
    secs: u32,
    script: Option<(&Path, &[&str])>,
) -> Result<(f64, String, String, u64)> {
    let mut script_args: Vec<String> = Vec::new();
    let mut after: Vec<String> = Vec::new();
    if let Some((s, args)) = script {
        script_args = vec!["-s".into(), s.display().to_string()];
        if !args.is_empty() {
            after.push("--".into());
            after.extend(args.iter().map(|a| (*a).to_owned()));
        }
    }
    let _ = sh(Command::new("wrk")
        .args(["-t2", "-c32", "-d2s", "--timeout", "10s"])
        .args(&script_args)
        .arg(url)
        .args(&after));
    let out = sh(Command::new("timeout")
        .args([
            "120",
            "wrk",
            "-t2",
            "-c32",
            &format!("-d{secs}s"),
            "--timeout",
            "10s",
            "--latency",
        ])
        .args(&script_args)
        .arg(url)
        .args(&after))?;
    let field = |prefix: &str, idx: usize| {
        out.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(idx))
            .unwrap_or("?")
            .to_owned()
    };
    let rps: f64 = field("Requests/sec:", 1).parse().unwrap_or(0.0);
    let non2xx: u64 = out
        .lines()
        .find(|l| l.contains("Non-2xx"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok((rps, field("50%", 1), field("99%", 1), non2xx))
}
