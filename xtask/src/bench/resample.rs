//! `cargo xtask bench resample`: resampling against polars and pandas.

use std::fmt::Write as _;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::*;
use crate::process::{root, sh};

pub(crate) fn resample(args: &[&str]) -> Result<()> {
    let rows = rows_arg(args, "resample")?;
    let bench = root().join("target/bench");
    let data = generated(rows)?;
    let python = install_peers(&bench)?;
    if !Command::new(&python)
        .args(["-c", "import polars, pandas, numpy"])
        .output()?
        .status
        .success()
    {
        eprintln!("xtask: installing polars, pandas and numpy");
        sh(Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "polars==1.33.1",
            "pandas",
            "numpy",
        ]))?;
    }
    let out = bench.join("resample");
    std::fs::create_dir_all(&out)?;
    let ours = sh(crate::process::cargo_command()
        .args([
            "bench",
            "--quiet",
            "-p",
            "market-cache",
            "--bench",
            "resample",
            "--",
            "--csv",
        ])
        .arg(&data)
        .arg("--out")
        .arg(&out))?;
    let ours: Value = serde_json::from_str(ours.trim()).context("resample bench output")?;
    let peers = sh(Command::new(&python)
        .arg(root().join("xtask/scripts/resample_peers.py"))
        .arg(&data)
        .arg(&out)
        .arg("5"))?;
    let peers: Value = serde_json::from_str(peers.trim()).context("peer output")?;
    let mut s = String::new();
    writeln!(s, "## Resampling 1m candles to 1h and to Monday weeks\n")?;
    s.push_str(&provenance("resample", args));
    writeln!(s, "Data: {rows} generated 1m candles, in memory for everyone (loading not timed); median of 5. polars {} `group_by_dynamic` (weeks `start_by=\"monday\"`), pandas {} `resample` (`W-MON`, closed and labelled left). Results checked equal (times exactly, values to 1e-12).\n", peers["polars"].as_str().unwrap_or("?"), peers["pandas"].as_str().unwrap_or("?"))?;
    writeln!(s, "| target | rows out | candlecache s | polars s | pandas s | vs polars | vs pandas | equal |")?;
    writeln!(s, "|---|---|---|---|---|---|---|---|")?;
    let mut differ = Vec::new();
    for tf in ["1h", "1w"] {
        let secs = median(
            ours[tf]["seconds"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_f64).collect())
                .unwrap_or_default(),
        );
        let p = peers[format!("polars_{tf}")].as_f64().unwrap_or(0.0);
        let q = peers[format!("pandas_{tf}")].as_f64().unwrap_or(0.0);
        let equal = peers[format!("equal_{tf}")].as_bool().unwrap_or(false);
        writeln!(
            s,
            "| {tf} | {} | {secs:.4} | {p:.4} | {q:.4} | {:.2}x | {:.2}x | {} |",
            ours[tf]["rows_out"],
            p / secs,
            q / secs,
            if equal { "yes" } else { "NO" }
        )?;
        if !equal {
            differ.push(tf);
        }
    }
    publish("resample", &s)?;
    if !differ.is_empty() {
        bail!(
            "the {} results differ between candlecache and the peers",
            differ.join(" and ")
        );
    }
    Ok(())
}
