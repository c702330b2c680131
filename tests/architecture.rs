//! The layout's promises (docs/ARCHITECTURE.md, "The tree"), checked on the
//! source itself: no two modules import each other, directly or through
//! others, and the library has the folders the architecture names.
//!
//! A module's imports are its `crate::a::b` paths (and `super::` paths,
//! resolved), outside `#[cfg(test)]` blocks and comments. Edges between a
//! module and its own ancestors are left out: a folder's `mod.rs` declares
//! its children, which is not an import.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every module of the library: `a::b` -> its source file.
fn modules() -> BTreeMap<String, PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path != src.join("bin") {
                    stack.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            if parts == ["lib"] || parts == ["main"] {
                continue;
            }
            out.insert(parts.join("::"), path);
        }
    }
    out
}

/// The source without comments and without what follows `#[cfg(test)]`.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines().map(|l| l.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n")
}

/// The paths after each `prefix` in `text`: `crate::engine::plan::Plan` ->
/// `engine::plan::Plan`.
fn paths_after<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.match_indices(prefix)
        .map(|(i, _)| {
            let rest = &text[i + prefix.len()..];
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
            rest[..end].trim_end_matches(':')
        })
        .collect()
}

/// The longest module that `path` names.
fn resolve<'a>(mods: &'a BTreeMap<String, PathBuf>, path: &str) -> Option<&'a str> {
    let segs: Vec<&str> = path.split("::").collect();
    (1..=segs.len()).rev().find_map(|n| mods.get_key_value(&segs[..n].join("::")).map(|(k, _)| k.as_str()))
}

fn is_ancestor(a: &str, b: &str) -> bool {
    b.starts_with(&format!("{a}::"))
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules();
    let mut g: BTreeMap<String, BTreeSet<String>> = mods.keys().map(|m| (m.clone(), BTreeSet::new())).collect();
    for (m, path) in &mods {
        let text = code(&std::fs::read_to_string(path).unwrap());
        let parent = m.rsplit_once("::").map_or("", |(p, _)| p);
        let mut targets: Vec<String> = paths_after(&text, "crate::").into_iter().map(str::to_string).collect();
        targets.extend(paths_after(&text, "super::").into_iter().map(|p| {
            if parent.is_empty() {
                p.to_string()
            } else {
                format!("{parent}::{p}")
            }
        }));
        for t in targets {
            if let Some(t) = resolve(&mods, &t) {
                if t != m && !is_ancestor(t, m) && !is_ancestor(m, t) {
                    g.get_mut(m).unwrap().insert(t.to_string());
                }
            }
        }
    }
    g
}

/// A cycle through `start`, if any (depth-first search).
fn cycle_from(g: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in &g[&node] {
            if next == start {
                let mut cyc = path.clone();
                cyc.push(start.to_string());
                return Some(cyc);
            }
            if seen.insert(next.clone()) {
                let mut p = path.clone();
                p.push(next.clone());
                stack.push((next.clone(), p));
            }
        }
    }
    None
}

#[test]
fn no_two_modules_import_each_other() {
    let g = graph();
    assert!(g.len() >= 40, "only {} modules found: is this the repository's src/?", g.len());
    let edges: usize = g.values().map(BTreeSet::len).sum();
    assert!(edges >= 100, "only {edges} imports found: the parser lost them");
    let cycles: Vec<String> = g.keys().filter_map(|m| cycle_from(&g, m)).map(|c| c.join(" -> ")).collect();
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.insert("a".into(), ["b".to_string()].into());
    g.insert("b".into(), ["c".to_string()].into());
    g.insert("c".into(), ["a".to_string()].into());
    assert_eq!(cycle_from(&g, "a").unwrap(), ["a", "b", "c", "a"]);
    g.get_mut("c").unwrap().clear();
    assert!(cycle_from(&g, "a").is_none());
}

#[test]
fn the_library_has_the_folders_the_architecture_names() {
    let mods = modules();
    for m in [
        "app::cli",
        "app::commands",
        "pacman::hook",
        "pacman::dblock",
        "engine::apply",
        "engine::recover",
        "engine::gc",
        "engine::rollback",
        "verify::repair",
        "smoke::suite",
        "smoke::probes",
        "model::state",
        "model::output",
        "kernel::name",
        "process",
        "error",
    ] {
        assert!(mods.contains_key(m), "module {m} is missing: update docs/ARCHITECTURE.md with the tree");
    }
    let arch = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/ARCHITECTURE.md")).unwrap();
    for (m, path) in &mods {
        if m.starts_with("kernel::") {
            continue; // the kernel's files are described in their own section
        }
        let file = path.file_name().unwrap().to_string_lossy();
        assert!(arch.contains(file.as_ref()), "{} is not in docs/ARCHITECTURE.md's tree", path.display());
    }
}
