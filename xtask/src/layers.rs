//! The allowed dependency edges between workspace crates (shared/design.md), checked
//! against `cargo metadata`.

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// Each crate and the workspace crates it may depend on (normal and build dependencies).
/// Dev-dependencies are free: tests may use any crate.
const ALLOWED: &[(&str, &[&str])] = &[
    ("cache-core", &[]),
    ("conn-pool", &["cache-core"]),
    ("query-opt", &["cache-core", "conn-pool"]),
    ("mem-guard", &["cache-core"]),
    ("market-cache", &["cache-core", "conn-pool", "query-opt"]),
    // http-api reaches the database and the upstream client through market-cache only.
    ("http-api", &["cache-core", "mem-guard", "market-cache"]),
    // The binary reaches the database and the upstream client through market-cache's
    // own settings and `Service`, never query-opt's or conn-pool's types.
    (
        "candlecache",
        &["cache-core", "mem-guard", "market-cache", "http-api"],
    ),
];

/// Runs `cargo metadata` for the workspace, without dependencies.
pub(crate) fn metadata() -> Result<Value> {
    let out = crate::process::cargo_command()
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .context("could not run cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).context("cargo metadata printed invalid JSON")
}

/// Checks every internal edge; returns a one-line summary or an error listing the
/// forbidden edges and missing crates.
pub(crate) fn check(meta: &Value) -> Result<String> {
    let packages = meta["packages"]
        .as_array()
        .context("cargo metadata has no packages")?;
    let names: Vec<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    let mut problems = Vec::new();
    for (name, _) in ALLOWED {
        if !names.contains(name) {
            problems.push(format!("crate `{name}` is missing from the workspace"));
        }
    }
    let mut edges = 0;
    for pkg in packages {
        let name = pkg["name"].as_str().unwrap_or_default();
        let allowed = ALLOWED.iter().find(|(n, _)| *n == name).map(|(_, a)| *a);
        for dep in pkg["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            if !names.contains(&dep_name) || dep["kind"].as_str() == Some("dev") {
                continue;
            }
            edges += 1;
            // xtask and the end-to-end test crate may use anything.
            if let Some(allowed) = allowed {
                if !allowed.contains(&dep_name) {
                    problems.push(format!(
                        "edge not allowed by shared/design.md: {name} -> {dep_name}"
                    ));
                }
            }
        }
    }
    if !problems.is_empty() {
        bail!("dependency layering:\n  {}", problems.join("\n  "));
    }
    Ok(format!("layers: {edges} internal edges, 0 not allowed"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::root;
    use serde_json::json;

    fn pkg(name: &str, deps: &[(&str, Option<&str>)]) -> Value {
        json!({
            "name": name,
            "dependencies": deps.iter().map(|(d, kind)| json!({"name": d, "kind": kind})).collect::<Vec<_>>(),
        })
    }

    fn workspace(extra: &[(&str, Option<&str>)]) -> Value {
        let mut pkgs: Vec<Value> = ALLOWED
            .iter()
            .map(|(n, _)| {
                if *n == "cache-core" {
                    pkg(n, extra)
                } else {
                    pkg(n, &[])
                }
            })
            .collect();
        pkgs.push(pkg("xtask", &[("http-api", None)]));
        json!({ "packages": pkgs })
    }

    #[test]
    fn the_real_workspace_follows_the_allowed_edges() {
        let report = check(&metadata().unwrap()).unwrap();
        assert!(report.ends_with("0 not allowed"), "{report}");
    }

    #[test]
    fn an_inward_crate_may_not_depend_outward() {
        let err = check(&workspace(&[("http-api", None)])).unwrap_err();
        assert!(
            err.to_string().contains("cache-core -> http-api"),
            "{err:#}"
        );
    }

    #[test]
    fn the_binary_may_not_reach_below_the_front_door() {
        let mut meta = workspace(&[]);
        for p in meta["packages"].as_array_mut().unwrap() {
            if p["name"] == "candlecache" {
                *p = pkg("candlecache", &[("query-opt", None)]);
            }
        }
        let err = check(&meta).unwrap_err().to_string();
        assert!(err.contains("candlecache -> query-opt"), "{err}");
    }

    #[test]
    fn dev_dependencies_and_tools_are_free() {
        check(&workspace(&[("market-cache", Some("dev"))])).unwrap();
    }

    #[test]
    fn a_missing_crate_is_reported() {
        let meta = json!({ "packages": [pkg("cache-core", &[])] });
        let err = check(&meta).unwrap_err().to_string();
        assert!(err.contains("`http-api` is missing"), "{err}");
    }

    /// Source hygiene: no `dbg!` or `todo!` left in the crates.
    #[test]
    fn tidy_no_debug_leftovers() {
        let mut bad = Vec::new();
        let mut stack = vec![
            root().join("crates"),
            root().join("tests"),
            root().join("xtask/src"),
        ];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for (i, line) in text.lines().enumerate() {
                        let code = line.split("//").next().unwrap_or_default();
                        if code.contains(concat!("dbg", "!("))
                            || code.contains(concat!("todo", "!("))
                        {
                            bad.push(format!("{}:{}", path.display(), i + 1));
                        }
                    }
                }
            }
        }
        assert!(bad.is_empty(), "debug leftovers at {bad:?}");
    }

    /// Library crates re-export only their own modules (a third-party crate re-exported
    /// becomes part of the API and pins its version for every user) and never write to
    /// stdout (it belongs to the binary's output).
    #[test]
    fn tidy_libraries_keep_to_their_own_api_and_off_stdout() {
        let mut bad = Vec::new();
        for entry in std::fs::read_dir(root().join("crates")).unwrap() {
            let krate = entry.unwrap().path();
            if krate.ends_with("candlecache") {
                continue;
            }
            let src = krate.join("src");
            let mut stack = vec![src.clone()];
            while let Some(dir) = stack.pop() {
                for entry in std::fs::read_dir(&dir).unwrap() {
                    let path = entry.unwrap().path();
                    if path.is_dir() {
                        stack.push(path);
                        continue;
                    }
                    if path.extension().is_none_or(|e| e != "rs") {
                        continue;
                    }
                    let text = std::fs::read_to_string(&path).unwrap();
                    for (i, line) in text.lines().enumerate() {
                        let code = line.split("//").next().unwrap_or_default().trim();
                        let at = format!("{}:{}", path.display(), i + 1);
                        if writes_stdout(code) {
                            bad.push(format!("{at}: writes to stdout"));
                        }
                        let Some(used) = code.strip_prefix("pub use ") else {
                            continue;
                        };
                        let first = used
                            .split("::")
                            .next()
                            .unwrap_or_default()
                            .trim_end_matches(';');
                        // Our own lower crates may be passed up (market-cache gives
                        // http-api the figures of conn-pool and query-opt); third-party
                        // crates may not.
                        let ours = [
                            "cache_core",
                            "conn_pool",
                            "query_opt",
                            "mem_guard",
                            "market_cache",
                        ];
                        let local = ["crate", "self", "super"].contains(&first)
                            || ours.contains(&first)
                            || src.join(format!("{first}.rs")).exists()
                            || src.join(first).is_dir()
                            // A module of this file (`cache.rs` and `cache/builder.rs`, or
                            // `read/mod.rs` and `read/types.rs`).
                            || path.with_extension("").join(format!("{first}.rs")).exists()
                            || (path.file_name().is_some_and(|n| n == "mod.rs")
                                && path.with_file_name(format!("{first}.rs")).exists());
                        if !local {
                            bad.push(format!("{at}: re-exports `{first}`"));
                        }
                    }
                }
            }
        }
        assert!(bad.is_empty(), "{bad:#?}");
    }

    /// `println!(` or `print!(` as a macro of its own (not `eprintln!(`, `eprint!(`).
    fn writes_stdout(code: &str) -> bool {
        [concat!("print", "ln!("), concat!("print", "!(")]
            .iter()
            .any(|m| {
                code.match_indices(m).any(|(i, _)| {
                    !code[..i]
                        .chars()
                        .next_back()
                        .is_some_and(|c| c.is_alphanumeric() || c == '_')
                })
            })
    }
}
