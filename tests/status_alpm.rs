//! `status` reads the real package database through libalpm: its applet
//! lists must equal what `pacman -Ql` reports for the installed packages.
#![cfg(feature = "testbed")]

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::Value;

/// `pacman -Ql PKG` entries directly under /usr/bin, as command names.
/// With `--root`, pacman prints paths with the root prepended.
fn ql_bin_names(root: &PkgRoot, pkg: &str) -> BTreeSet<String> {
    let out = root.pacman(&["-Ql", pkg]);
    let bin = format!("{}/usr/bin/", root.path().display());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(_, path)| path.to_string()))
        .filter_map(|path| path.strip_prefix(bin.as_str()).map(str::to_string))
        .filter(|rest| !rest.is_empty() && !rest.contains('/'))
        .collect()
}

fn status_json(root: &PkgRoot) -> Value {
    let out = run_ok(oxidizr_hook().arg("status").arg("--root").arg(root.path()).arg("--json"));
    serde_json::from_slice(&out.stdout).expect("status --json prints JSON")
}

fn family<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["families"].as_array().unwrap().iter().find(|f| f["name"] == name).unwrap()
}

fn applet_names(fam: &Value) -> BTreeSet<String> {
    fam["applets"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn status_applets_equal_pacman_ql() {
    require_testbed();
    let pkgs = tempfile::tempdir().unwrap();
    let root = PkgRoot::new();
    root.install(&[
        mkpkg(pkgs.path(), "coreutils", "9.10-1", None),
        mkpkg(pkgs.path(), "findutils", "4.11.0-1", None),
        mkpkg(pkgs.path(), "uutils-coreutils", "0.12.0-1", None),
        mkpkg(pkgs.path(), "uutils-findutils", "0.10.0-1", None),
    ]);
    let doc = status_json(&root);
    assert_eq!(doc["schema"], 1);

    let core = family(&doc, "coreutils");
    assert_eq!(core["gnu"]["package"], "coreutils");
    assert_eq!(core["gnu"]["version"], "9.10-1");
    assert_eq!(core["uutils"][0]["package"], "uutils-coreutils");
    assert_eq!(core["uutils"][0]["version"], "0.12.0-1");
    let gnu_core = ql_bin_names(&root, "coreutils");
    assert!(gnu_core.len() > 90, "GNU coreutils ships ~100 commands, got {}", gnu_core.len());
    assert_eq!(applet_names(core), gnu_core);

    // An applet has a counterpart exactly when uutils-coreutils ships uu-<applet>.
    let uu_core = ql_bin_names(&root, "uutils-coreutils");
    for applet in core["applets"].as_array().unwrap() {
        let name = applet["name"].as_str().unwrap();
        let expected = uu_core.contains(&format!("uu-{name}"));
        assert_eq!(applet["uutils"].is_object(), expected, "counterpart of {name}");
        if expected {
            assert_eq!(applet["uutils"]["path"], format!("/usr/bin/uu-{name}"));
        }
    }
    assert!(core["applets"].as_array().unwrap().iter().any(|a| a["name"] == "ls" && a["uutils"].is_object()));

    let find = family(&doc, "findutils");
    assert_eq!(applet_names(find), ql_bin_names(&root, "findutils"));
    let find_applet = find["applets"].as_array().unwrap().iter().find(|a| a["name"] == "find").unwrap();
    assert_eq!(find_applet["uutils"]["package"], "uutils-findutils");
}

#[test]
fn status_without_uutils_lists_gnu_only() {
    require_testbed();
    let pkgs = tempfile::tempdir().unwrap();
    let root = PkgRoot::new();
    root.install(&[mkpkg(pkgs.path(), "coreutils", "9.10-1", None)]);
    let doc = status_json(&root);
    let core = family(&doc, "coreutils");
    assert!(core["uutils"].as_array().unwrap().is_empty());
    assert!(core["applets"].as_array().unwrap().iter().all(|a| a["uutils"].is_null()));
    assert!(family(&doc, "findutils")["gnu"].is_null());

    let text = run_ok(oxidizr_hook().arg("status").arg("--root").arg(root.path()));
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.starts_with("==> coreutils: coreutils 9.10-1\n"), "{text}");
    assert!(text.contains("==> findutils: findutils not installed"), "{text}");
}

#[test]
fn status_follows_an_upgrade_and_a_removal() {
    require_testbed();
    let pkgs = tempfile::tempdir().unwrap();
    let root = PkgRoot::new();
    root.install(&[
        mkpkg(pkgs.path(), "coreutils", "9.10-1", None),
        mkpkg(pkgs.path(), "uutils-coreutils", "0.12.0-1", None),
    ]);
    root.install(&[mkpkg(pkgs.path(), "coreutils", "9.11-1", None)]);
    root.pacman(&["-R", "uutils-coreutils"]);
    let doc = status_json(&root);
    let core = family(&doc, "coreutils");
    assert_eq!(core["gnu"]["version"], "9.11-1");
    assert!(core["uutils"].as_array().unwrap().is_empty());
}

#[test]
fn a_broken_uutils_variant_lacks_only_uu_ls() {
    require_testbed();
    let pkgs = tempfile::tempdir().unwrap();
    let root = PkgRoot::new();
    root.install(&[
        mkpkg(pkgs.path(), "coreutils", "9.10-1", None),
        mkpkg(pkgs.path(), "uutils-coreutils", "0.12.0-2", Some("ls-missing")),
    ]);
    let doc = status_json(&root);
    let core = family(&doc, "coreutils");
    let applets = core["applets"].as_array().unwrap();
    let ls = applets.iter().find(|a| a["name"] == "ls").unwrap();
    assert!(ls["uutils"].is_null(), "no uu-ls in the ls-missing variant");
    assert!(applets.iter().any(|a| a["name"] == "cat" && a["uutils"].is_object()));
}
