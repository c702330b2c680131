//! `--dry-run` prints the plan and changes nothing; its output is
//! deterministic and equal to the golden files in tests/golden.
#![cfg(feature = "testbed")]

mod common;

use std::path::Path;

use common::*;

/// A root with small, fixed package contents (independent of Debian's lists).
fn fixed_root(pkgs: &Path) -> PkgRoot {
    let root = PkgRoot::new();
    root.install(&[
        mkpkg_only(pkgs, "coreutils", "9.10-1", "[ cat ls sort stty"),
        mkpkg_only(pkgs, "findutils", "4.11.0-1", "find xargs"),
        mkpkg_only(pkgs, "uutils-coreutils", "0.12.0-1", "[ cat ls sort"),
        mkpkg(pkgs, "uutils-findutils", "0.10.0-1", None),
    ]);
    root
}

/// Every path under the root, to prove a dry run creates nothing.
fn tree(root: &Path) -> Vec<String> {
    let out = run_ok(std::process::Command::new("find").arg(root).arg("-printf").arg("%P %y %i\n"));
    let mut lines: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect();
    lines.sort();
    lines
}

fn dry_run(root: &PkgRoot, args: &[&str]) -> String {
    let out = run_ok(oxidizr_hook().arg("--root").arg(root.path()).args(args));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn dry_runs_match_golden_files_and_change_nothing() {
    require_testbed();
    let pkgs = tempfile::tempdir().unwrap();
    let root = fixed_root(pkgs.path());
    let before = tree(root.path());
    let cases: [(&str, &[&str]); 4] = [
        ("dry-run-use-uutils.txt", &["use", "uutils", "--dry-run"]),
        ("dry-run-use-gnu.txt", &["use", "gnu", "--dry-run"]),
        ("dry-run-use-uutils.json", &["use", "uutils", "--dry-run", "--json"]),
        ("dry-run-pin-ls.txt", &["pin", "ls", "sort", "--dry-run"]),
    ];
    for (golden_name, args) in cases {
        let first = dry_run(&root, args);
        let second = dry_run(&root, args);
        assert_eq!(first, second, "{args:?} is not deterministic");
        golden(golden_name, &first);
    }
    assert_eq!(tree(root.path()), before, "a dry run changed the root");
}

#[test]
fn the_same_inputs_give_the_same_plan_id_in_another_root() {
    require_testbed();
    let pkgs = tempfile::tempdir().unwrap();
    let a = fixed_root(pkgs.path());
    let b = fixed_root(pkgs.path());
    assert_eq!(dry_run(&a, &["use", "uutils", "--dry-run"]), dry_run(&b, &["use", "uutils", "--dry-run"]));
}
