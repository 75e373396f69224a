//! Source checks that `cargo metadata` cannot make: no import cycle between the files of
//! a crate, no library file past the size limit, every crate on the workspace lints.
//! `cargo xtask tidy` prints them; `cargo xtask ci` fails on any.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Lines of code (tests left out) a library source file may have.
pub(crate) const MAX_LIBRARY_LINES: usize = 600;

/// Runs every check over the workspace at `root`; returns a one-line summary or an error
/// listing each problem.
pub(crate) fn check(root: &Path) -> Result<String> {
    let mut problems = Vec::new();
    let mut files = 0;
    let mut crates = 0;
    for krate in crate_dirs(root)? {
        crates += 1;
        let manifest = std::fs::read_to_string(krate.join("Cargo.toml"))
            .with_context(|| format!("cannot read {}", krate.join("Cargo.toml").display()))?;
        if !inherits_lints(&manifest) {
            problems.push(format!(
                "{}: does not inherit the workspace lints ([lints] workspace = true)",
                krate.display()
            ));
        }
        let src = krate.join("src");
        let sources = rust_files(&src)?;
        files += sources.len();
        let library = src.join("lib.rs").exists() && !src.join("main.rs").exists();
        let mut texts = BTreeMap::new();
        for path in &sources {
            let text = std::fs::read_to_string(path)?;
            let code = without_tests(&text);
            let is_test_file = path.file_name().is_some_and(|n| n == "tests.rs");
            let lines = code.lines().count();
            if library && !is_test_file && lines > MAX_LIBRARY_LINES {
                problems.push(format!(
                    "{}: {lines} lines of code, over the {MAX_LIBRARY_LINES} a library file may have",
                    path.display()
                ));
            }
            texts.insert(module_of(&src, path), code);
        }
        for cycle in cycles(&imports(&texts)) {
            problems.push(format!(
                "{}: import cycle {}",
                krate.display(),
                cycle
                    .iter()
                    .map(|m| if m.is_empty() {
                        "crate".into()
                    } else {
                        m.join("::")
                    })
                    .collect::<Vec<_>>()
                    .join(" -> ")
            ));
        }
    }
    if !problems.is_empty() {
        bail!("tidy:\n  {}", problems.join("\n  "));
    }
    Ok(format!(
        "tidy: {crates} crates, {files} source files, no import cycle, none over {MAX_LIBRARY_LINES} lines, every crate on the workspace lints"
    ))
}

/// The crates of the workspace: `crates/*`, `xtask` and `tests`.
fn crate_dirs(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("Cargo.toml").exists())
        .collect();
    out.sort();
    out.extend(
        ["xtask", "tests"]
            .iter()
            .map(|d| root.join(d))
            .filter(|p| p.join("Cargo.toml").exists()),
    );
    Ok(out)
}

fn inherits_lints(manifest: &str) -> bool {
    let mut in_lints = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_lints = line == "[lints]";
        } else if in_lints && line.replace(' ', "") == "workspace=true" {
            return true;
        }
    }
    false
}

fn rust_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in
            std::fs::read_dir(&d).with_context(|| format!("cannot list {}", d.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A file's code without its test module (by convention the file's end) and comments.
fn without_tests(text: &str) -> String {
    let end = text.find("#[cfg(test)]\nmod ").unwrap_or(text.len());
    text[..end]
        .lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module path of a source file: `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`.
fn module_of(src: &Path, path: &Path) -> Vec<String> {
    let rel = path.strip_prefix(src).unwrap_or(path);
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs");
        if !matches!(stem, "mod" | "lib" | "main") {
            parts.push(stem.to_owned());
        }
    }
    parts
}

type Module = Vec<String>;

/// Which modules (files) each file imports from, through `crate::`, `super::` and
/// `self::` paths, with re-exports (`pub use`) followed to where the item lives.
fn imports(texts: &BTreeMap<Module, String>) -> BTreeMap<Module, BTreeSet<Module>> {
    let reexports: BTreeMap<Module, BTreeMap<String, Module>> = texts
        .iter()
        .map(|(m, t)| (m.clone(), reexports_of(m, t, texts)))
        .collect();
    let mut graph = BTreeMap::new();
    for (module, text) in texts {
        let mut deps = BTreeSet::new();
        // A re-export is a facade, not a use: the paths through it are followed to where
        // the item lives instead.
        let used: String = text
            .split(';')
            .filter(|stmt| !is_reexport(stmt.trim()))
            .collect::<Vec<_>>()
            .join(";");
        for path in paths_in(&used) {
            let abs = match path.first().map(String::as_str) {
                Some("crate" | "super" | "self") => absolute(module, &path),
                // `use child::Item` in a file names its own child module (or an outside
                // crate, which resolves to nothing here).
                Some(first)
                    if texts.contains_key(&[module.clone(), vec![first.to_owned()]].concat()) =>
                {
                    Some([module.clone(), path.clone()].concat())
                }
                _ => None,
            };
            if let Some(target) = abs.and_then(|abs| resolve(&abs, texts, &reexports, 0)) {
                if &target != module {
                    deps.insert(target);
                }
            }
        }
        graph.insert(module.clone(), deps);
    }
    graph
}

fn is_reexport(stmt: &str) -> bool {
    ["pub use ", "pub(crate) use ", "pub(super) use "]
        .iter()
        .any(|p| stmt.starts_with(p))
}

/// `name -> module` for each `pub use`/`pub(crate) use` of a file.
fn reexports_of(
    module: &Module,
    text: &str,
    texts: &BTreeMap<Module, String>,
) -> BTreeMap<String, Module> {
    let mut out = BTreeMap::new();
    for stmt in text.split(';') {
        let s = stmt.trim();
        let Some(rest) = s
            .strip_prefix("pub use ")
            .or_else(|| s.strip_prefix("pub(crate) use "))
            .or_else(|| s.strip_prefix("pub(super) use "))
        else {
            continue;
        };
        for path in expand(rest.trim()) {
            let Some(name) = path.last().cloned() else {
                continue;
            };
            let name = name.split(" as ").last().unwrap_or(&name).trim().to_owned();
            let mut full = path.clone();
            if let Some(last) = full.last_mut() {
                *last = last
                    .split(" as ")
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
            }
            let abs = match full.first().map(String::as_str) {
                Some("crate" | "super" | "self") => absolute(module, &full),
                // A child module of this file.
                Some(_) => {
                    let mut m = module.clone();
                    m.extend(full.iter().cloned());
                    Some(m)
                }
                None => None,
            };
            if let Some(abs) = abs {
                let target = longest_module(&abs, texts);
                if let Some(t) = target {
                    if &t != module {
                        out.insert(name, t);
                    }
                }
            }
        }
    }
    out
}

/// Every `crate::`, `super::` and `self::` path in a text, brace groups expanded.
fn paths_in(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    for start in ["crate::", "super::", "self::"] {
        for (i, _) in text.match_indices(start) {
            let before = text[..i].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            // The path runs to the first character that cannot be part of it, braces
            // balanced.
            let mut depth = 0i32;
            let mut j = i;
            while j < bytes.len() {
                let c = bytes[j] as char;
                match c {
                    '{' => depth += 1,
                    '}' if depth > 0 => depth -= 1,
                    '}' => break,
                    c if depth == 0 && !(c.is_alphanumeric() || c == '_' || c == ':') => break,
                    _ => {}
                }
                j += 1;
            }
            out.extend(expand(&text[i..j]));
        }
    }
    for stmt in text.split(';') {
        let s = stmt.trim();
        let rest = s.strip_prefix("use ");
        let plain = |r: &&str| {
            !r.starts_with("crate::")
                && !r.starts_with("super::")
                && !r.starts_with("self::")
                && r.chars()
                    .all(|c| c.is_alphanumeric() || "_:{},* \n".contains(c))
        };
        if let Some(rest) = rest.filter(plain) {
            out.extend(expand(rest));
        }
    }
    out
}

/// `a::{b::C, d}` as `[a, b, C]`, `[a, d]`.
fn expand(path: &str) -> Vec<Vec<String>> {
    let path = path.trim();
    let Some(open) = path.find('{') else {
        return vec![path
            .split("::")
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()];
    };
    let prefix: Vec<String> = path[..open]
        .split("::")
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    let after = &path[open + 1..];
    let inner = &after[..after.rfind('}').unwrap_or(after.len())];
    let mut parts = Vec::new();
    let (mut depth, mut from) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[from..i]);
                from = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[from..]);
    let mut out = Vec::new();
    for part in parts.into_iter().filter(|p| !p.trim().is_empty()) {
        for rest in expand(part) {
            let mut p = prefix.clone();
            p.extend(rest);
            out.push(p);
        }
    }
    out
}

/// A path made absolute (without `crate`), from the module it is written in.
fn absolute(module: &Module, path: &[String]) -> Option<Module> {
    let mut out: Module = match path.first().map(String::as_str) {
        Some("crate") => Vec::new(),
        Some("self") => module.clone(),
        Some("super") => module.get(..module.len().checked_sub(1)?)?.to_vec(),
        _ => return None,
    };
    let mut rest = &path[1..];
    while rest.first().is_some_and(|s| s == "super") {
        out.pop();
        rest = &rest[1..];
    }
    out.extend(rest.iter().filter(|s| *s != "self").cloned());
    Some(out)
}

fn longest_module(path: &Module, texts: &BTreeMap<Module, String>) -> Option<Module> {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|m| texts.contains_key(m))
}

/// The file an absolute path's item lives in, following re-exports.
fn resolve(
    path: &Module,
    texts: &BTreeMap<Module, String>,
    reexports: &BTreeMap<Module, BTreeMap<String, Module>>,
    depth: u32,
) -> Option<Module> {
    let module = longest_module(path, texts)?;
    if depth < 8 {
        if let Some(item) = path.get(module.len()) {
            if let Some(target) = reexports.get(&module).and_then(|r| r.get(item)) {
                let mut next = target.clone();
                next.extend(path[module.len() + 1..].iter().cloned());
                // The re-export names the item's module; the item itself follows.
                next.push(item.clone());
                return resolve(&next, texts, reexports, depth + 1).or(Some(module));
            }
        }
    }
    Some(module)
}

/// Every cycle found (one per strongly connected component of more than one file).
fn cycles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    // Tarjan's strongly connected components.
    struct State<'a> {
        graph: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on_stack: BTreeSet<&'a Module>,
        next: usize,
        found: Vec<Vec<Module>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a Module) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let Some((w, _)) = s.graph.get_key_value(w) else {
                continue;
            };
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(lw));
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.clone());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.reverse();
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(files: &[(&str, &str)]) -> BTreeMap<Module, BTreeSet<Module>> {
        let texts = files
            .iter()
            .map(|(m, t)| {
                let module: Module = m
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                (module, (*t).to_owned())
            })
            .collect();
        imports(&texts)
    }

    #[test]
    fn a_cycle_through_re_exports_and_super_is_found() {
        let g = graph(&[
            ("", "mod a; mod b; pub use a::Thing;"),
            ("a", "use crate::b::other; pub struct Thing;"),
            ("b", "use crate::{Thing, x};"),
        ]);
        let found = cycles(&g);
        assert_eq!(found.len(), 1, "{g:?}");
        assert!(
            found[0].contains(&vec!["a".to_owned()]) && found[0].contains(&vec!["b".to_owned()])
        );
        // A parent that uses its child, and a child that uses a sibling: no cycle.
        let g = graph(&[
            ("", "mod p;"),
            ("p", "mod c; mod d; pub use c::C; fn f() { c::C::new(); }"),
            ("p::c", "use super::d::D; pub struct C;"),
            ("p::d", "pub struct D;"),
        ]);
        assert!(cycles(&g).is_empty(), "{g:?}");
        // A child naming its parent's own item while the parent uses the child: a cycle.
        let g = graph(&[
            ("p", "mod c; use self::c::C; pub struct P;"),
            ("p::c", "use super::P; pub struct C;"),
        ]);
        assert_eq!(cycles(&g).len(), 1, "{g:?}");
    }

    #[test]
    fn lints_inheritance_is_read_from_the_manifest() {
        assert!(inherits_lints(
            "[package]\nname = \"x\"\n\n[lints]\nworkspace = true\n"
        ));
        assert!(!inherits_lints("[lints.rust]\nmissing_docs = \"warn\"\n"));
    }

    #[test]
    fn the_workspace_is_tidy() {
        let report = check(&crate::process::root()).unwrap();
        assert!(report.starts_with("tidy:"), "{report}");
    }
}
