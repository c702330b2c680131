//! SIGKILL at every crash point of every kernel operation: the managed name
//! is old or new and readable after every kill, never absent, and running
//! the operation again converges.
#![cfg(feature = "testbed")]

#[path = "../../tests/common/mod.rs"]
mod common;

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;

use common::*;

const LINK: &str = "../lib/oxidizr-arch/active/bin/ls";
const OLD: &[u8] = b"old GNU ls";
const NEW: &[u8] = b"new uutils ls";

fn probe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kernel-probe"))
}

/// A root where usr/bin/ls is `prior` and the link destination exists.
fn setup(prior: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path();
    fs::create_dir_all(r.join("usr/bin")).unwrap();
    fs::create_dir_all(r.join("usr/lib/oxidizr-arch/generations/1/bin")).unwrap();
    fs::write(r.join("usr/lib/oxidizr-arch/generations/1/bin/ls"), NEW).unwrap();
    std::os::unix::fs::symlink("generations/1", r.join("usr/lib/oxidizr-arch/active")).unwrap();
    fs::create_dir_all(r.join("opt")).unwrap();
    fs::write(r.join("opt/ls"), OLD).unwrap();
    match prior {
        "file" => fs::write(r.join("usr/bin/ls"), OLD).unwrap(),
        "symlink" => std::os::unix::fs::symlink("../../opt/ls", r.join("usr/bin/ls")).unwrap(),
        "none" => {}
        _ => unreachable!(),
    }
    tmp
}

/// The content `usr/bin/ls` resolves to, or None when absent.
fn resolved(root: &Path) -> Option<Vec<u8>> {
    match fs::symlink_metadata(root.join("usr/bin/ls")) {
        Err(_) => None,
        Ok(_) => Some(fs::read(root.join("usr/bin/ls")).expect("usr/bin/ls exists but does not resolve")),
    }
}

/// Runs the probe; with `crash_at`, asserts it died by SIGKILL there.
fn run_probe(root: &Path, args: &[&str], crash_at: Option<&str>, trace: Option<&Path>) {
    let mut cmd = probe();
    cmd.arg(args[0]).arg(root).args(&args[1..]);
    if let Some(p) = crash_at {
        cmd.env("OXIDIZR_CRASH_AT", p);
    }
    if let Some(t) = trace {
        cmd.env("OXIDIZR_CRASH_TRACE", t);
    }
    let out = cmd.output().unwrap();
    match crash_at {
        Some(p) => assert_eq!(out.status.signal(), Some(9), "{args:?} must be killed at {p}: {out:?}"),
        None => assert!(out.status.success(), "{args:?}: {out:?}"),
    }
}

/// The crash points an uninterrupted run passes, as NAME#N occurrences.
fn points_of(prior: &str, setup_steps: &[&[&str]], op: &[&str]) -> Vec<String> {
    let root = setup(prior);
    for s in setup_steps {
        run_probe(root.path(), s, None, None);
    }
    let trace = root.path().join("trace");
    run_probe(root.path(), op, None, Some(&trace));
    let mut seen = std::collections::HashMap::<String, u32>::new();
    fs::read_to_string(trace)
        .unwrap_or_default()
        .lines()
        // Trace lines are "SUBCOMMAND POINT".
        .map(|l| l.split_once(' ').map_or(l, |(_, point)| point))
        .map(|l| {
            let n = seen.entry(l.to_string()).or_default();
            *n += 1;
            format!("{l}#{n}")
        })
        .collect()
}

/// Kills `op` at each of its points; checks the name after each kill, then
/// that re-running converges to `expect` (None: absent).
fn kill_everywhere(
    prior: &str,
    setup_steps: &[&[&str]],
    op: &[&str],
    before: Option<&[u8]>,
    expect: Option<&[u8]>,
) -> usize {
    let points = points_of(prior, setup_steps, op);
    assert!(!points.is_empty(), "{op:?} passes no crash point");
    for p in &points {
        let root = setup(prior);
        for s in setup_steps {
            run_probe(root.path(), s, None, None);
        }
        run_probe(root.path(), op, Some(p), None);
        let now = resolved(root.path());
        let ok = now.as_deref() == before || now.as_deref() == expect;
        assert!(ok, "{prior} {op:?} killed at {p}: usr/bin/ls is {now:?}, expected old {before:?} or new {expect:?}");
        if before.is_some() && expect.is_some() {
            assert!(now.is_some(), "{prior} {op:?} killed at {p}: usr/bin/ls is absent");
        }
        run_probe(root.path(), op, None, None);
        assert_eq!(resolved(root.path()).as_deref(), expect, "{prior} {op:?} after {p}: converges");
    }
    points.len()
}

#[test]
fn take_over_survives_sigkill_at_every_point() {
    require_testbed();
    let mut total = 0;
    for (prior, before) in [("file", Some(OLD)), ("symlink", Some(OLD)), ("none", None)] {
        total += kill_everywhere(prior, &[], &["takeover", "ls", LINK], before, Some(NEW));
    }
    eprintln!("take-over: {total} kill points");
    assert!(total >= 10);
}

#[test]
fn restore_survives_sigkill_at_every_point() {
    require_testbed();
    let mut total = 0;
    for (prior, after) in [("file", Some(OLD)), ("symlink", Some(OLD)), ("none", None)] {
        let take: &[&str] = &["takeover", "ls", LINK];
        total += kill_everywhere(prior, &[take], &["restore", "ls"], Some(NEW), after);
    }
    eprintln!("restore: {total} kill points");
    assert!(total >= 5);
}

#[test]
fn flip_survives_sigkill_at_every_point() {
    require_testbed();
    let publish: &[&str] = &["publish", "2", "ls", "/nonexistent-is-fine"];
    // Generation 2 holds a different ls; flipping active must show 1's or 2's.
    let points = points_of("file", &[publish], &["flip", "generations/2"]);
    for p in &points {
        let root = setup("file");
        run_probe(root.path(), &["takeover", "ls", LINK], None, None);
        let g2 = root.path().join("usr/lib/oxidizr-arch/generations/2/bin");
        fs::create_dir_all(&g2).unwrap();
        fs::write(g2.join("ls"), b"generation 2").unwrap();
        run_probe(root.path(), &["flip", "generations/2"], Some(p), None);
        let now = resolved(root.path()).expect("never absent");
        assert!(now == NEW || now == b"generation 2", "killed at {p}: {now:?}");
        run_probe(root.path(), &["flip", "generations/2"], None, None);
        assert_eq!(resolved(root.path()).unwrap(), b"generation 2");
    }
    assert!(points.len() >= 3, "{points:?}");
}

#[test]
fn publish_survives_sigkill_at_every_point() {
    require_testbed();
    let op: &[&str] = &["publish", "7", "ls", "/usr/bin/uu-ls"];
    let points = points_of("none", &[], op);
    for p in &points {
        let root = setup("none");
        run_probe(root.path(), op, Some(p), None);
        let gen = root.path().join("usr/lib/oxidizr-arch/generations/7");
        // Either no generation 7, or all of it.
        if gen.exists() {
            assert_eq!(fs::read_link(gen.join("bin/ls")).unwrap().to_str().unwrap(), "/usr/bin/uu-ls", "at {p}");
            assert_eq!(fs::read(gen.join("manifest.json")).unwrap(), b"{}\n", "at {p}");
        } else {
            run_probe(root.path(), op, None, None);
            assert!(gen.join("bin").is_dir());
        }
    }
    assert!(points.len() >= 2, "{points:?}");
}
