//! Benchmark driver for `test-orch/run bench` (issue 7). Built only with the
//! `bench` feature: the release build and the package do not ship it.
//!
//! Every measuring subcommand appends samples, one `KEY<TAB>VALUE` line each
//! (microseconds unless the key says otherwise), to a samples file; `report`
//! turns that file into the table. `test-orch/lib/bench.sh` drives it.
//!
//! Usage:
//!   oxidizr-bench time SAMPLES KEY CMD [ARGS...]   run CMD (stdio inherited), record its wall time, exit with its code
//!   oxidizr-bench record-hook SAMPLES             the phase split of the last post-transaction operation (facts + manifest)
//!   oxidizr-bench fs SAMPLES LABEL DIR            flip latency, rebuild cost and the per-target baseline in DIR (created, removed after)
//!   oxidizr-bench takeover SAMPLES LABEL DIR      the hook's per-applet primitives (harvest, take-over) on 100 files in DIR
//!   oxidizr-bench live SAMPLES                    on the live root: smoke variants, exec costs, ALPM load (evidence for the profile)
//!   oxidizr-bench report SAMPLES                  print the table
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use oxidizr_arch::engine::generation::{self, Manifest};
use oxidizr_arch::engine::plan::{self, Plan, PlannedApplet, Source};
use oxidizr_arch::kernel::swap::replace_with_symlink;
use oxidizr_arch::kernel::{Dir, FsyncLog};
use oxidizr_arch::model::config::Config;
use oxidizr_arch::model::layout::{Layout, BIN, LIB};
use oxidizr_arch::model::state::Profile;
use oxidizr_arch::pacman::inventory::PackageDb;
use oxidizr_arch::smoke::verdict;
use oxidizr_arch::smoke::{self, SmokeConfig, SmokeReport, SmokeTarget};

type Res<T> = std::result::Result<T, String>;

/// Synthetic applet counts for the flip and rebuild figures.
const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];
/// Pointer flips per size (p99 needs at least 100).
const FLIPS: usize = 200;
/// Engine flips (`generation::flip`: `active` + the profile pointer) per size.
const ENGINE_FLIPS: usize = 100;
/// Builds per size.
const BUILDS: usize = 20;
/// Applets of the baseline comparison.
const BASELINE_N: usize = 100;
/// Timed commits per approach in the baseline.
const BASELINE_RUNS: usize = 30;
/// Commits watched by the observer per approach.
const OBSERVED_RUNS: usize = 15;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let res = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["time", samples, key, cmd @ ..] if !cmd.is_empty() => return time_command(samples, key, cmd),
        ["record-hook", samples] => record_hook(Path::new(samples), "hook"),
        ["record-hook", samples, prefix] => record_hook(Path::new(samples), prefix),
        ["fs", samples, label, dir] => fs_bench(Path::new(samples), label, Path::new(dir)),
        ["live", samples] => live_bench(Path::new(samples)),
        ["takeover", samples, label, dir] => takeover_bench(Path::new(samples), label, Path::new(dir)),
        ["report", samples] => report(Path::new(samples)),
        _ => {
            Err("usage: oxidizr-bench time|record-hook|fs|takeover|live|report ... (see the source header)".to_string())
        }
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oxidizr-bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------
// Samples

/// Appends samples to the samples file (opened per batch: several processes
/// append to it, pacman's hook among them).
struct Samples {
    path: PathBuf,
    lines: String,
}

impl Samples {
    fn new(path: &Path) -> Samples {
        Samples { path: path.to_path_buf(), lines: String::new() }
    }

    fn add(&mut self, key: &str, value: f64) {
        let _ = writeln!(self.lines, "{key}\t{value}");
    }

    fn dur(&mut self, key: &str, d: Duration) {
        self.add(key, d.as_secs_f64() * 1e6);
    }

    fn flush(&mut self) -> Res<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| format!("cannot open {}: {e}", self.path.display()))?;
        f.write_all(self.lines.as_bytes()).map_err(|e| format!("cannot write {}: {e}", self.path.display()))?;
        self.lines.clear();
        Ok(())
    }
}

fn load_samples(path: &Path) -> Res<BTreeMap<String, Vec<f64>>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut map: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('\t') else { continue };
        if let Ok(v) = v.trim().parse::<f64>() {
            map.entry(k.to_string()).or_default().push(v);
        }
    }
    Ok(map)
}

/// Nearest-rank percentile (p in 0..=100) of unsorted values.
fn pct(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

fn median(values: &[f64]) -> f64 {
    pct(values, 50.0)
}

// ---------------------------------------------------------------------------
// time, record-hook

/// Runs a command with inherited stdio and records its wall time (used as
/// the hook's `Exec` wrapper and to time `pacman -U`).
fn time_command(samples: &str, key: &str, cmd: &[&str]) -> ExitCode {
    let t0 = Instant::now();
    let status = Command::new(cmd[0]).args(&cmd[1..]).status();
    let took = t0.elapsed();
    let mut s = Samples::new(Path::new(samples));
    s.dur(key, took);
    if let Err(e) = s.flush() {
        eprintln!("oxidizr-bench: error: {e}");
    }
    match status {
        Ok(st) => ExitCode::from(st.code().unwrap_or(128) as u8),
        Err(e) => {
            eprintln!("oxidizr-bench: error: cannot run {}: {e}", cmd[0]);
            ExitCode::from(127)
        }
    }
}

/// The engine stages of a post-transaction operation, in order.
const HOOK_STAGES: [&str; 10] = [
    "post-transaction",
    "preflight",
    "compat",
    "plan",
    "harvest",
    "smoke-candidate",
    "flip",
    "link",
    "smoke-live",
    "commit",
];

/// Reads the facts of the last post-transaction operation and records its
/// phase split under `prefix`; fails unless it built and activated a new
/// generation.
fn record_hook(samples: &Path, prefix: &str) -> Res<()> {
    let path = "/var/log/oxidizr-arch/facts.jsonl";
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let facts: Vec<serde_json::Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let last = facts
        .iter()
        .rev()
        .find(|f| f["operation"] == "post-transaction")
        .ok_or("no post-transaction fact in the facts log")?;
    let op = last["op_id"].clone();
    let ops: Vec<&serde_json::Value> = facts.iter().filter(|f| f["op_id"] == op).collect();
    // The GNU profile refresh (uutils active, GNU files changed) is the one
    // optional stage: between the live smoke and the commit; `keep` facts
    // (one per applet the policy keeps on GNU) follow the compat stage.
    let stages: Vec<&str> =
        ops.iter().filter_map(|f| f["stage"].as_str()).filter(|s| *s != "profile-gnu" && *s != "keep").collect();
    if stages != HOOK_STAGES {
        return Err(format!("the last post-transaction did not rebuild (stages: {})", stages.join(", ")));
    }
    let commit = ops.last().expect("ten or more stages");
    let to = commit["to_generation"].as_u64().ok_or("the commit fact names no generation")?;
    let layout = Layout::open(Path::new("/")).map_err(|e| e.to_string())?;
    let m = generation::read_manifest(&layout, to).map_err(|e| e.to_string())?;
    let mut s = Samples::new(samples);
    let mut total = 0.0;
    for f in &ops {
        let us = f["phase_us"].as_f64().unwrap_or(f64::NAN);
        total += us;
        // One keep fact per kept applet: their (tiny) phases count in the
        // total only, so every phase has one sample per run.
        if f["stage"] != "keep" {
            s.add(&format!("{prefix}/phase/{}", f["stage"].as_str().unwrap_or("?")), us);
        }
    }
    s.add(&format!("{prefix}/engine"), total);
    s.add(&format!("{prefix}/candidate-smoke"), m.smoke.duration_ms as f64 * 1000.0);
    s.add(&format!("{prefix}/applets"), m.applets.len() as f64);
    let uutils = m.applets.values().filter(|a| matches!(a.source, Source::Uutils { .. })).count();
    s.add(&format!("{prefix}/uutils"), uutils as f64);
    let checks: Vec<&smoke::CheckResult> = m.smoke.applets.iter().chain(&m.smoke.behaviour).collect();
    s.add(&format!("{prefix}/smoke-checks"), checks.len() as f64);
    s.add(&format!("{prefix}/smoke-executed"), checks.iter().filter(|c| !c.reused).count() as f64);
    // The differential runs the compat stage executed and reused, from its
    // fact ("... (N runs executed, M reused) ...").
    let compat = ops.iter().find(|f| f["stage"] == "compat").and_then(|f| f["decision"].as_str()).unwrap_or("");
    let number_before = |word: &str| -> f64 {
        compat
            .split(word)
            .next()
            .and_then(|head| head.split(|c: char| !c.is_ascii_digit()).rfind(|t| !t.is_empty()))
            .and_then(|n| n.parse().ok())
            .unwrap_or(f64::NAN)
    };
    s.add(&format!("{prefix}/compat-executed"), number_before(" runs executed"));
    s.add(&format!("{prefix}/compat-reused"), number_before(" reused)"));
    s.flush()
}

// ---------------------------------------------------------------------------
// fs: flip, rebuild, baseline

fn e2s(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn applet_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("a{i:05}")).collect()
}

/// A synthetic uutils plan of `names`, targets from `target(name)`.
fn synthetic_plan(names: &[String], target: impl Fn(&str) -> String, id: &str) -> Plan {
    let applets = names
        .iter()
        .map(|a| {
            let planned = PlannedApplet {
                family: "coreutils".into(),
                source: Source::Uutils { package: "uutils-coreutils".into(), version: "0.12.0-1".into() },
                target: target(a),
            };
            (a.clone(), planned)
        })
        .collect();
    let packages = BTreeMap::from([("uutils-coreutils".to_string(), "0.12.0-1".to_string())]);
    Plan { profile: Profile::Uutils, applets, packages, id: id.to_string() }
}

/// The smoke stand-in of a build without smoke: always passes.
fn no_smoke(_: &[SmokeTarget], _: &str) -> SmokeReport {
    SmokeReport { passed: true, ..SmokeReport::default() }
}

/// A root at `root` with generations 1 and 2 of `names` (targets by
/// `target(generation, name)`), `active` -> generations/1, and
/// `usr/bin/<name>` -> `<link_prefix>/<name>` (through `active`).
fn setup_root(
    root: &Path,
    names: &[String],
    target: &dyn Fn(u64, &str) -> String,
    link_prefix: &str,
    log: &mut FsyncLog,
) -> Res<Layout> {
    std::fs::create_dir_all(root).map_err(e2s)?;
    let layout = Layout::open(root).map_err(e2s)?;
    for g in [1u64, 2] {
        let plan = synthetic_plan(names, |a| target(g, a), &format!("bench-{g}"));
        generation::build(&layout, &plan, g, BTreeMap::new(), &no_smoke, log, None).map_err(e2s)?;
    }
    generation::flip(&layout, 1, Profile::Uutils, log).map_err(e2s)?;
    let bin = layout.dir(BIN, true).map_err(e2s)?;
    for a in names {
        rustix::fs::symlinkat(format!("{link_prefix}/{a}").as_str(), bin.fd(), a.as_str()).map_err(e2s)?;
    }
    bin.sync(log).map_err(e2s)?;
    Ok(layout)
}

fn fs_bench(samples: &Path, label: &str, dir: &Path) -> Res<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(e2s)?;
    }
    std::fs::create_dir_all(dir).map_err(e2s)?;
    let dir = std::fs::canonicalize(dir).map_err(e2s)?;
    let mut s = Samples::new(samples);
    let mut log = FsyncLog::default();
    // One root per size, all built first; every measurement then goes
    // round-robin over the sizes, so a change in the machine's load (a
    // shared machine) hits every size alike instead of one block of runs.
    let active_bin = format!("/{LIB}/active/bin");
    let mut roots = Vec::new();
    for n in SIZES {
        let names = applet_names(n);
        let root = dir.join(format!("n{n}"));
        let layout = setup_root(&root, &names, &|g, a| format!("/opt/bench-set-{g}/{a}"), &active_bin, &mut log)?;
        let lib = layout.lib(false).map_err(e2s)?;
        let plan = synthetic_plan(&names, |a| format!("/opt/bench-set-3/{a}"), "bench-3");
        roots.push((n, root, layout, lib, plan));
    }
    // The pointer flip alone: one symlinkat, one renameat, one fsync.
    for i in 0..FLIPS {
        let g = 2 - (i % 2);
        for (n, _, _, lib, _) in &roots {
            let t0 = Instant::now();
            replace_with_symlink(lib, "active", &format!("generations/{g}"), &mut log).map_err(e2s)?;
            s.dur(&format!("fs/{label}/flip/{n}"), t0.elapsed());
        }
    }
    // The engine's flip: `active` and the profile pointer.
    for i in 0..ENGINE_FLIPS {
        let g = 2 - (i % 2) as u64;
        for (n, _, layout, _, _) in &roots {
            let t0 = Instant::now();
            generation::flip(layout, g, Profile::Uutils, &mut log).map_err(e2s)?;
            s.dur(&format!("fs/{label}/engine-flip/{n}"), t0.elapsed());
        }
    }
    s.flush()?;
    // Rebuild: build + publish a generation of n links (manifest included, no smoke).
    for i in 0..BUILDS {
        let number = 100 + i as u64;
        for (n, root, layout, _, plan) in &roots {
            let t0 = Instant::now();
            generation::build(layout, plan, number, BTreeMap::new(), &no_smoke, &mut log, None).map_err(e2s)?;
            s.dur(&format!("fs/{label}/build/{n}"), t0.elapsed());
            std::fs::remove_dir_all(root.join(LIB).join("generations").join(number.to_string())).map_err(e2s)?;
        }
    }
    s.flush()?;
    for (_, root, ..) in &roots {
        std::fs::remove_dir_all(root).map_err(e2s)?;
    }
    baseline(&mut s, label, &dir, &mut log)?;
    s.flush()?;
    std::fs::remove_dir_all(&dir).map_err(e2s)
}

/// Writes `n` small regular files `dir/<name>` (distinct inodes), fsynced.
fn write_set(dir: &Path, names: &[String], tag: &str) -> Res<Vec<u64>> {
    std::fs::create_dir_all(dir).map_err(e2s)?;
    let mut inodes = Vec::new();
    for a in names {
        let p = dir.join(a);
        std::fs::write(&p, format!("#!/bin/sh\n# {tag} {a}\n")).map_err(e2s)?;
        let f = std::fs::File::open(&p).map_err(e2s)?;
        f.sync_all().map_err(e2s)?;
        inodes.push(f.metadata().map_err(e2s)?.ino());
    }
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(e2s)?;
    Ok(inodes)
}

/// What an observer saw while one commit ran.
#[derive(Default)]
struct Observed {
    /// Sweeps: two passes over every applet, in the same order.
    sweeps: usize,
    /// Sweeps that prove a mixed state (see [`proves_mixed`]).
    mixed: usize,
    /// Reads where an applet resolved to neither set (missing, dangling).
    broken: usize,
}

/// Whether two passes `a` then `b` over the applets (read in index order)
/// prove that some instant had applets on both sides. Each applet changes
/// at most once during a commit, so an applet `j` read the same in both
/// passes had that value for the whole time between its two reads; any
/// applet read in between (later in `a`, earlier in `b`) with the other
/// value proves the mixed state. Unresolvable reads (2) prove nothing here.
fn proves_mixed(a: &[u8], b: &[u8]) -> bool {
    (0..a.len()).any(|j| {
        let v = a[j];
        v != 2
            && b[j] == v
            && (a[j + 1..].iter().any(|&x| x != 2 && x != v) || b[..j].iter().any(|&x| x != 2 && x != v))
    })
}

/// Runs `commit` while another thread sweeps `paths` (following links),
/// classifying each applet by the inode it resolves to: 0 or 1 for the
/// two sets, 2 for anything else.
fn observe(paths: &[PathBuf], sets: &[[u64; 2]], commit: impl FnOnce() -> Res<()>) -> Res<Observed> {
    let stop = AtomicBool::new(false);
    let running = AtomicBool::new(false);
    let state = |k: usize| -> u8 {
        match std::fs::metadata(&paths[k]).map(|m| m.ino()) {
            Ok(ino) if ino == sets[k][0] => 0,
            Ok(ino) if ino == sets[k][1] => 1,
            _ => 2,
        }
    };
    std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let mut o = Observed::default();
            loop {
                let a: Vec<u8> = (0..paths.len()).map(state).collect();
                let b: Vec<u8> = (0..paths.len()).map(state).collect();
                o.broken += a.iter().chain(&b).filter(|&&x| x == 2).count();
                o.sweeps += 1;
                o.mixed += usize::from(proves_mixed(&a, &b));
                running.store(true, Ordering::Release);
                if stop.load(Ordering::Acquire) {
                    return o;
                }
            }
        });
        while !running.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        let res = commit();
        stop.store(true, Ordering::Release);
        let o = watcher.join().map_err(|_| "the observer panicked".to_string())?;
        res.map(|()| o)
    })
}

/// The per-target approach of earlier tools, made as safe as it can be per
/// target: for each applet, back up by hard link next to it
/// (`.<name>.oxidizr.bak`), swap in the symlink atomically (symlinkat to a
/// temporary name + renameat), fsync the directory. Returns (commit time,
/// mixed-state window: from the end of the first swap to the start of the last).
fn per_target_switch(bin: &Dir, names: &[String], targets: &[String], log: &mut FsyncLog) -> Res<(Duration, Duration)> {
    let t0 = Instant::now();
    let mut first_done = t0;
    let mut last_start = t0;
    for (i, a) in names.iter().enumerate() {
        let bak = format!(".{a}.oxidizr.bak");
        rustix::fs::linkat(bin.fd(), a.as_str(), bin.fd(), bak.as_str(), rustix::fs::AtFlags::empty())
            .map_err(|e| format!("backup of {a}: {e}"))?;
        let tmp = bin.symlink_tmp(a, &targets[i]).map_err(e2s)?;
        if i + 1 == names.len() {
            last_start = Instant::now();
        }
        bin.rename(&tmp, a).map_err(|e| format!("swap of {a}: {e}"))?;
        if i == 0 {
            first_done = Instant::now();
        }
        bin.sync(log).map_err(e2s)?;
    }
    let total = t0.elapsed();
    Ok((total, last_start.saturating_duration_since(first_done)))
}

/// Puts the per-target baseline back: every backup renamed over its name.
fn per_target_reset(bin: &Dir, names: &[String], log: &mut FsyncLog) -> Res<()> {
    for a in names {
        bin.rename(&format!(".{a}.oxidizr.bak"), a).map_err(|e| format!("reset of {a}: {e}"))?;
    }
    bin.sync(log).map_err(e2s)
}

fn baseline(s: &mut Samples, label: &str, dir: &Path, log: &mut FsyncLog) -> Res<()> {
    let names = applet_names(BASELINE_N);
    let base = dir.join("baseline");
    // Ours: usr/bin/<a> -> ROOT/usr/lib/oxidizr-arch/active/bin/<a>, two generations over two sets of files.
    let set1 = write_set(&base.join("set1"), &names, "old")?;
    let set2 = write_set(&base.join("set2"), &names, "new")?;
    let root = base.join("ours");
    let set_dir = base.clone();
    let target = move |g: u64, a: &str| set_dir.join(format!("set{g}")).join(a).display().to_string();
    let active_bin = root.join(LIB).join("active/bin").display().to_string();
    let layout = setup_root(&root, &names, &target, &active_bin, log)?;
    let lib = layout.lib(false).map_err(e2s)?;
    let ours_bin = root.join(BIN);
    let ours_paths: Vec<PathBuf> = names.iter().map(|a| ours_bin.join(a)).collect();
    let ours_sets: Vec<[u64; 2]> = set1.iter().zip(&set2).map(|(a, b)| [*a, *b]).collect();

    // Theirs: usr/bin/<a> regular files (the GNU set), switched one by one to links into the uutils set.
    let troot = base.join("theirs");
    let tbin_path = troot.join(BIN);
    let gnu = write_set(&tbin_path, &names, "gnu")?;
    let uu = write_set(&base.join("uu"), &names, "uutils")?;
    let tlayout = Layout::open(&troot).map_err(e2s)?;
    let tbin = tlayout.dir(BIN, false).map_err(e2s)?;
    let uu_targets: Vec<String> = names.iter().map(|a| base.join("uu").join(a).display().to_string()).collect();
    let their_paths: Vec<PathBuf> = names.iter().map(|a| tbin_path.join(a)).collect();
    let their_sets: Vec<[u64; 2]> = gnu.iter().zip(&uu).map(|(a, b)| [*a, *b]).collect();

    // Timed commits, the approaches interleaved run by run.
    let mut g = 1u64;
    for _ in 0..BASELINE_RUNS {
        g = 3 - g;
        // The window with the per-target instrument: from the end of the
        // first rename that switches an applet to the start of the last one.
        // Here both are the one rename of `active`, so it cannot be positive.
        let last_start = Instant::now();
        replace_with_symlink(&lib, "active", &format!("generations/{g}"), log).map_err(e2s)?;
        let first_done = Instant::now();
        s.dur(&format!("fs/{label}/baseline/ours"), first_done - last_start);
        s.dur(&format!("fs/{label}/baseline/ours-window"), last_start.saturating_duration_since(first_done));
        g = 3 - g;
        let t0 = Instant::now();
        generation::flip(&layout, g, Profile::Uutils, log).map_err(e2s)?;
        s.dur(&format!("fs/{label}/baseline/ours-engine"), t0.elapsed());
        let (total, window) = per_target_switch(&tbin, &names, &uu_targets, log)?;
        s.dur(&format!("fs/{label}/baseline/theirs"), total);
        s.dur(&format!("fs/{label}/baseline/theirs-window"), window);
        per_target_reset(&tbin, &names, log)?;
    }
    // Observed commits (not timed: the observer takes a CPU).
    for _ in 0..OBSERVED_RUNS {
        g = 3 - g;
        let o = observe(&ours_paths, &ours_sets, || {
            replace_with_symlink(&lib, "active", &format!("generations/{g}"), &mut FsyncLog::default())
                .map(|_| ())
                .map_err(e2s)
        })?;
        record_observed(s, &format!("fs/{label}/observer/ours"), &o);
        let o = observe(&their_paths, &their_sets, || {
            per_target_switch(&tbin, &names, &uu_targets, &mut FsyncLog::default()).map(|_| ())
        })?;
        record_observed(s, &format!("fs/{label}/observer/theirs"), &o);
        per_target_reset(&tbin, &names, log)?;
    }
    s.flush()
}

fn record_observed(s: &mut Samples, key: &str, o: &Observed) {
    s.add(&format!("{key}/sweeps"), o.sweeps as f64);
    s.add(&format!("{key}/mixed-sweeps"), o.mixed as f64);
    s.add(&format!("{key}/mixed-commit"), f64::from(u8::from(o.mixed > 0)));
    s.add(&format!("{key}/broken"), o.broken as f64);
}

// ---------------------------------------------------------------------------
// takeover: the per-applet primitives of the harvest and link phases

/// Runs of the take-over bench.
const TAKEOVER_RUNS: usize = 10;
/// Size of each synthetic binary (the GNU coreutils binaries average ~69 KiB).
const BINARY_BYTES: usize = 64 * 1024;

/// What the hook does per applet, on `n` files in a fresh root under
/// `dir`: harvest (sha256, hard link into the store, fsync file + store
/// directory) as in the harvest phase, then take-over (re-harvest, sidecar,
/// swap) as in the link phase. Records time and fsyncs (count, time) per applet.
fn takeover_bench(samples: &Path, label: &str, dir: &Path) -> Res<()> {
    let names = applet_names(BASELINE_N);
    let mut s = Samples::new(samples);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for run in 0..TAKEOVER_RUNS {
        // The engine's batches, then the one-at-a-time primitives, each on
        // fresh files as pacman leaves them (written, synced by no one).
        for batched in [true, false] {
            let root = dir.join(format!("takeover-{run}"));
            if root.exists() {
                std::fs::remove_dir_all(&root).map_err(e2s)?;
            }
            std::fs::create_dir_all(root.join(BIN)).map_err(e2s)?;
            for a in &names {
                let bytes: Vec<u8> = (0..BINARY_BYTES)
                    .map(|_| {
                        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                        (seed >> 56) as u8
                    })
                    .collect();
                std::fs::write(root.join(BIN).join(a), bytes).map_err(e2s)?;
            }
            let kind = if batched { "batch" } else { "single" };
            link_phases(&mut s, &format!("takeover/{label}/{kind}"), &root, &names, batched)?;
            std::fs::remove_dir_all(&root).map_err(e2s)?;
        }
    }
    s.flush()
}

/// Harvests then takes over every name of `root`'s bin directory, batched
/// (as the engine does) or one at a time; records µs and fsyncs per applet.
fn link_phases(s: &mut Samples, key: &str, root: &Path, names: &[String], batched: bool) -> Res<()> {
    use oxidizr_arch::kernel::harvest::{harvest, harvest_many, HarvestItem};
    use oxidizr_arch::kernel::takeover::{take_over, take_over_many, Managed, TakeOver};
    let n = names.len() as f64;
    let layout = Layout::open(root).map_err(e2s)?;
    let bin = layout.dir(BIN, false).map_err(e2s)?;
    let backup_path = format!("{LIB}/store/gnu/coreutils-9.9-1");
    let backup = layout.dir(&backup_path, true).map_err(e2s)?;
    let sidecars = layout.dir("var/lib/oxidizr-arch/sidecars", true).map_err(e2s)?;
    let mut record = |what: &str, t0: Instant, log: &FsyncLog| {
        s.add(&format!("{key}/{what}"), t0.elapsed().as_secs_f64() * 1e6 / n);
        s.add(&format!("{key}/{what}-fsync"), log.total_us as f64 / n);
        s.add(&format!("{key}/{what}-fsyncs"), f64::from(log.count) / n);
    };
    let mut log = FsyncLog::default();
    let t0 = Instant::now();
    if batched {
        let items: Vec<HarvestItem> = names
            .iter()
            .map(|a| HarvestItem { src: &bin, name: a, dst: &backup, dst_name: a, known_sha256: None })
            .collect();
        harvest_many(&items, &mut log).map_err(e2s)?;
    } else {
        for a in names {
            harvest(&bin, a, &backup, a, &mut log).map_err(e2s)?;
        }
    }
    record("harvest", t0, &log);
    let links: Vec<String> = names.iter().map(|a| format!("/{LIB}/active/bin/{a}")).collect();
    let mut log = FsyncLog::default();
    let t0 = Instant::now();
    if batched {
        let items: Vec<TakeOver> = names
            .iter()
            .zip(&links)
            .map(|(a, link)| TakeOver {
                name: a,
                link,
                backup: &backup,
                backup_path: &backup_path,
                backup_name: a,
                known: None,
            })
            .collect();
        take_over_many(&bin, &sidecars, &items, &mut log).map_err(e2s)?;
    } else {
        let m = Managed { bin: &bin, backup: &backup, backup_path: &backup_path, sidecars: &sidecars };
        for (a, link) in names.iter().zip(&links) {
            take_over(&m, a, link, a, &mut log).map_err(e2s)?;
        }
    }
    record("takeover", t0, &log);
    Ok(())
}

// ---------------------------------------------------------------------------
// live: where the hook's time goes (evidence for the proposals)

/// The smoke module's probe table (see src/smoke/probes.rs).
fn probe_args(applet: &str) -> &'static [&'static str] {
    match applet {
        "false" | "true" | ":" => &[],
        "[" => &["1", "=", "1", "]"],
        "test" => &["1", "=", "1"],
        "echo" | "printf" => &["ok"],
        _ => &["--version"],
    }
}

fn run_probe(path: &str, args: &[&str]) -> Res<std::process::Output> {
    Command::new(path)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C")
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {path}: {e}"))
}

/// Every target's probe with blocking waits (`Command::output`) on
/// `workers` threads: what the applet checks cost without polling.
fn blocking_probes(targets: &[SmokeTarget], workers: usize) -> Res<()> {
    let next = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(t) = targets.get(i) else { return };
                if run_probe(&t.path, probe_args(&t.applet)).is_err() {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    match failed.load(Ordering::Relaxed) {
        0 => Ok(()),
        n => Err(format!("{n} probes could not run")),
    }
}

fn live_bench(samples: &Path) -> Res<()> {
    let root = Path::new("/");
    let layout = Layout::open(root).map_err(e2s)?;
    let active = generation::active(&layout).map_err(e2s)?.ok_or("no active generation")?;
    let m: Manifest = generation::read_manifest(&layout, active).map_err(e2s)?;
    let targets: Vec<SmokeTarget> =
        m.applets.keys().map(|a| SmokeTarget { applet: a.clone(), path: format!("/usr/bin/{a}") }).collect();
    let mut s = Samples::new(samples);
    let cfg =
        |parallelism: usize| SmokeConfig { root: root.to_path_buf(), timeout: Duration::from_secs(5), parallelism };
    let smoke_case = |s: &mut Samples, key: &str, runs: usize, p: usize, t: &[SmokeTarget], bin: Option<&str>| {
        for _ in 0..runs {
            let t0 = Instant::now();
            let r = smoke::run(&cfg(p), t, bin);
            s.dur(key, t0.elapsed());
            if !r.passed {
                return Err(format!("{key}: the smoke run failed"));
            }
        }
        Ok(())
    };
    // The engine's smokes: live (resolution + one exec per binary), and the
    // candidate smoke on the active generation's tree with every check
    // executed (binaries changed, or an admin command) and with every
    // verdict carried over (no binary changed).
    let timed = |s: &mut Samples, key: &str, runs: usize, f: &dyn Fn() -> SmokeReport| {
        for _ in 0..runs {
            let t0 = Instant::now();
            let r = f();
            s.dur(key, t0.elapsed());
            if !r.passed {
                return Err(format!("{key}: the smoke run failed"));
            }
        }
        Ok(())
    };
    timed(&mut s, "live/smoke/engine-live", 20, &|| verdict::live(&cfg(4), &m.applets, &m.smoke))?;
    let gen_bin = format!("/{LIB}/generations/{active}/bin");
    let staged: Vec<SmokeTarget> =
        m.applets.keys().map(|a| SmokeTarget { applet: a.clone(), path: format!("{gen_bin}/{a}") }).collect();
    let earlier = std::slice::from_ref(&m.smoke);
    timed(&mut s, "live/smoke/candidate-all", 10, &|| verdict::candidate(&cfg(4), &staged, &gen_bin, &[], false))?;
    timed(&mut s, "live/smoke/candidate-carried", 20, &|| {
        verdict::candidate(&cfg(4), &staged, &gen_bin, earlier, true)
    })?;
    // Every applet and the suite through /usr/bin, and variants.
    smoke_case(&mut s, "live/smoke/full-p4", 20, 4, &targets, Some("/usr/bin"))?;
    smoke_case(&mut s, "live/smoke/full-p2", 10, 2, &targets, Some("/usr/bin"))?;
    smoke_case(&mut s, "live/smoke/full-p8", 10, 8, &targets, Some("/usr/bin"))?;
    smoke_case(&mut s, "live/smoke/applets-p4", 10, 4, &targets, None)?;
    smoke_case(&mut s, "live/smoke/behaviour-p4", 10, 4, &[], Some("/usr/bin"))?;
    for workers in [2, 4] {
        for _ in 0..10 {
            let t0 = Instant::now();
            blocking_probes(&targets, workers)?;
            s.dur(&format!("live/smoke/applets-blocking-p{workers}"), t0.elapsed());
        }
    }
    s.flush()?;
    // Resolve-only check: every /usr/bin/<applet> leads to the very inode the candidate smoke ran.
    for _ in 0..20 {
        let t0 = Instant::now();
        for (a, planned) in &m.applets {
            let live = std::fs::metadata(format!("/usr/bin/{a}")).map_err(e2s)?;
            let want = std::fs::metadata(&planned.target).map_err(e2s)?;
            if (live.dev(), live.ino()) != (want.dev(), want.ino()) {
                return Err(format!("/usr/bin/{a} does not lead to {}", planned.target));
            }
        }
        s.dur("live/resolve-check", t0.elapsed());
    }
    // One exec, serially: a uutils applet (the 13.8 MB multicall), its GNU
    // counterpart from the store, and the hook binary's own start-up.
    let config = Config::load(root).map_err(e2s)?;
    let db = PackageDb::open(root, Path::new("/var/lib/pacman")).map_err(e2s)?;
    let inv = db.inventory(&config).map_err(e2s)?;
    let gnu = plan::plan(&inv, Profile::Gnu, &BTreeSet::new()).map_err(e2s)?;
    let gnu_ls = gnu.applets.get("ls").ok_or("no GNU ls in the plan")?.target.clone();
    let gnu_true = gnu.applets.get("true").ok_or("no GNU true in the plan")?.target.clone();
    let execs: [(&str, &str, &[&str]); 4] = [
        ("live/exec/uutils-ls-version", "/usr/bin/ls", &["--version"]),
        ("live/exec/gnu-ls-version", &gnu_ls, &["--version"]),
        ("live/exec/gnu-true", &gnu_true, &[]),
        ("live/exec/oxidizr-hook-version", "/usr/bin/oxidizr-hook", &["--version"]),
    ];
    for (key, path, args) in execs {
        for _ in 0..30 {
            let t0 = Instant::now();
            let out = run_probe(path, args)?;
            s.dur(key, t0.elapsed());
            if !out.status.success() {
                return Err(format!("{path} failed"));
            }
        }
    }
    // One sha256 pass over every stored GNU binary (the hook hashes each
    // file twice: in harvest, and again when the link phase re-harvests it).
    let mut gnu_files = Vec::new();
    for planned in gnu.applets.values() {
        gnu_files.push(std::fs::File::open(&planned.target).map_err(e2s)?);
    }
    let gnu_bytes: u64 = gnu_files.iter().map(|f| f.metadata().map(|m| m.len()).unwrap_or(0)).sum();
    s.add("live/gnu-bytes", gnu_bytes as f64);
    s.add("live/uutils-ls-bytes", std::fs::metadata("/usr/bin/ls").map_err(e2s)?.len() as f64);
    for _ in 0..20 {
        let t0 = Instant::now();
        for f in &gnu_files {
            let fd = std::os::fd::OwnedFd::from(f.try_clone().map_err(e2s)?);
            oxidizr_arch::kernel::digest::sha256_fd(&fd, "bench").map_err(e2s)?;
        }
        s.dur("live/sha256-gnu", t0.elapsed());
    }
    // A durable small write on the root filesystem (what the hook pays per
    // sidecar, per harvested file): create, write, fsync the file, fsync the directory.
    let probe = Path::new("/var/lib/oxidizr-bench-probe");
    std::fs::create_dir_all(probe).map_err(e2s)?;
    let probe_dir = std::fs::File::open(probe).map_err(e2s)?;
    for i in 0..50 {
        let p = probe.join(format!("f{i}"));
        let t0 = Instant::now();
        let mut f = std::fs::File::create(&p).map_err(e2s)?;
        f.write_all(b"{\"bench\": true}\n").map_err(e2s)?;
        f.sync_all().map_err(e2s)?;
        probe_dir.sync_all().map_err(e2s)?;
        s.dur("live/durable-write", t0.elapsed());
    }
    std::fs::remove_dir_all(probe).map_err(e2s)?;
    floor_bench(&mut s, &gnu)?;
    // The plan phase split: opening the ALPM handle + reading the packages, and planning.
    for _ in 0..20 {
        let t0 = Instant::now();
        let db = PackageDb::open(root, Path::new("/var/lib/pacman")).map_err(e2s)?;
        let inv = db.inventory(&config).map_err(e2s)?;
        let t1 = Instant::now();
        plan::plan(&inv, Profile::Uutils, &BTreeSet::new()).map_err(e2s)?;
        plan::plan(&inv, Profile::Gnu, &BTreeSet::new()).map_err(e2s)?;
        s.dur("live/alpm-load", t1 - t0);
        s.dur("live/plan", t1.elapsed());
    }
    s.flush()
}

/// The work a coreutils upgrade's hook cannot avoid on this root, measured
/// alone, where the hook does it: making the N files pacman wrote durable
/// (pacman does not fsync them), one symlink renamed over each of N names in
/// `/usr/bin` (the links back), N symlinks in a new directory under
/// `/usr/lib/oxidizr-arch` (the generation tree) and N small durable files
/// under `/var/lib/oxidizr-arch` (the sidecars). FLOOR_RUNS times each.
fn floor_bench(s: &mut Samples, gnu: &Plan) -> Res<()> {
    const FLOOR_RUNS: usize = 10;
    let n = gnu.applets.len();
    let mut binaries = Vec::with_capacity(n);
    for planned in gnu.applets.values() {
        binaries.push(std::fs::read(&planned.target).map_err(e2s)?);
    }
    let layout = Layout::open(Path::new("/")).map_err(e2s)?;
    let (tree, docs_dir) = (format!("{LIB}/bench-floor"), "var/lib/oxidizr-arch/bench-floor");
    let names: Vec<String> = (0..n).map(|i| format!("oxidizr-bench-floor.{i}")).collect();
    for _ in 0..FLOOR_RUNS {
        let bin = layout.bin().map_err(e2s)?;
        // As pacman leaves them: written, closed, not synced.
        let mut files = Vec::with_capacity(n);
        for (name, bytes) in names.iter().zip(&binaries) {
            std::fs::write(format!("/{BIN}/{name}"), bytes).map_err(e2s)?;
            files.push(bin.open_file(name).map_err(e2s)?);
        }
        {
            let batch: Vec<_> = files.iter().zip(&names).map(|(f, name)| (f.as_fd(), name.clone())).collect();
            let t0 = Instant::now();
            FsyncLog::default().fsync_many(&batch).map_err(e2s)?;
            s.dur("floor/fsync-pacman-files", t0.elapsed());
        }
        drop(files);
        let t0 = Instant::now();
        for name in &names {
            let tmp = bin.symlink_tmp(name, &format!("/{LIB}/active/bin/{name}")).map_err(e2s)?;
            bin.rename(&tmp, name).map_err(e2s)?;
        }
        s.dur("floor/links-back", t0.elapsed());
        for name in &names {
            bin.remove_file(name).map_err(e2s)?;
        }
        let gen = layout.dir(&tree, true).map_err(e2s)?;
        let t0 = Instant::now();
        for name in &names {
            rustix::fs::symlinkat(format!("/{LIB}/store/{name}"), gen.fd(), name.as_str()).map_err(e2s)?;
        }
        s.dur("floor/generation-tree", t0.elapsed());
        let docs = layout.dir(docs_dir, true).map_err(e2s)?;
        let bodies: Vec<(String, Vec<u8>)> = names.iter().map(|n| (format!("{n}.json"), vec![b'x'; 600])).collect();
        let bodies: Vec<(&str, &[u8])> = bodies.iter().map(|(a, b)| (a.as_str(), b.as_slice())).collect();
        let t0 = Instant::now();
        oxidizr_arch::kernel::durable::write_many(&docs, &bodies, &mut FsyncLog::default()).map_err(e2s)?;
        s.dur("floor/sidecars", t0.elapsed());
        drop((gen, docs));
        std::fs::remove_dir_all(format!("/{tree}")).map_err(e2s)?;
        std::fs::remove_dir_all(format!("/{docs_dir}")).map_err(e2s)?;
    }
    s.add("floor/n", n as f64);
    s.flush()
}

// ---------------------------------------------------------------------------
// report

/// An aligned plain-text table.
struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(header: &[&str]) -> Table {
        Table { rows: vec![header.iter().map(|h| h.to_string()).collect()] }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn print(&self, out: &mut String) {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let width: Vec<usize> = (0..cols)
            .map(|c| self.rows.iter().filter_map(|r| r.get(c)).map(|x| x.chars().count()).max().unwrap_or(0))
            .collect();
        for (i, r) in self.rows.iter().enumerate() {
            let mut line = String::from("  ");
            for (c, cell) in r.iter().enumerate() {
                let pad = width[c] - cell.chars().count();
                if c == 0 {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad));
                } else {
                    line.push_str("  ");
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                }
            }
            let _ = writeln!(out, "{}", line.trim_end());
            if i == 0 {
                let total: usize = width.iter().sum::<usize>() + 2 * (cols.saturating_sub(1));
                let _ = writeln!(out, "  {}", "-".repeat(total));
            }
        }
    }
}

fn ms(us: f64) -> String {
    if us.is_nan() {
        "-".into()
    } else {
        format!("{:.1}", us / 1000.0)
    }
}

fn us(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "MET"
    } else {
        "MISSED"
    }
}

/// Prints the phase table of the hooks recorded under `prefix` (the
/// transactions of `package`); returns the median hook process wall, µs.
fn hook_table(out: &mut String, all: &BTreeMap<String, Vec<f64>>, prefix: &str, number: &str, package: &str) -> f64 {
    let get = |k: &str| -> Vec<f64> { all.get(&format!("{prefix}/{k}")).cloned().unwrap_or_default() };
    let runs = get("engine").len();
    let _ = writeln!(
        out,
        "{number} post-transaction hook inside `pacman -U {package}` ({:.0} applets, {:.0} from uutils; \
         {:.0} candidate smoke checks, {:.0} of them executed, the rest carried over; {:.0} differential \
         runs executed, {:.0} reused; {runs} runs), ms",
        median(&get("applets")),
        median(&get("uutils")),
        median(&get("smoke-checks")),
        median(&get("smoke-executed")),
        median(&get("compat-executed")),
        median(&get("compat-reused")),
    );
    let mut t = Table::new(&["phase", "median", "p95", "share"]);
    let engine = get("engine");
    let wall = get("wall");
    let wall_med = median(&wall);
    let cand = get("candidate-smoke");
    let build: Vec<f64> = get("phase/smoke-candidate").iter().zip(&cand).map(|(a, b)| a - b).collect();
    let outside: Vec<f64> = wall.iter().zip(&engine).map(|(w, e)| w - e).collect();
    let phase = |stage: &str| get(&format!("phase/{stage}"));
    let phases: Vec<(&str, Vec<f64>)> = vec![
        ("lock + state + recover", phase("post-transaction")),
        ("plan + preflight (ALPM load, ownership, rescue check)", phase("preflight")),
        ("differential checks (the changed binaries' runs)", phase("compat")),
        ("policy decisions + final plan", phase("plan")),
        ("harvest (sha256 + link; fsyncs batched)", phase("harvest")),
        ("build + publish (allocate, intent, tree, manifest)", build),
        ("candidate smoke", cand.clone()),
        ("flip (active + profile pointer)", phase("flip")),
        ("link (sidecars, swaps; fsyncs batched)", phase("link")),
        ("live smoke (resolve all, exec 1 per binary)", phase("smoke-live")),
        ("GNU profile (build + smoke of changed GNU files)", phase("profile-gnu")),
        ("commit (state, intent, GC)", phase("commit")),
        ("engine total (first to last fact)", engine.clone()),
        ("outside the engine (exec, libs, config, exit)", outside),
        ("hook process wall (exec to exit)", wall.clone()),
    ];
    for (name, v) in &phases {
        let share = if wall_med > 0.0 { format!("{:.0}%", 100.0 * median(v) / wall_med) } else { "-".into() };
        t.row(vec![name.to_string(), ms(median(v)), ms(pct(v, 95.0)), share]);
    }
    t.print(out);
    let _ = writeln!(
        out,
        "  (share: of the median process wall. The facts give ALPM load + plan as one phase: live split below.)\n"
    );
    wall_med
}

fn report(samples: &Path) -> Res<()> {
    let all = load_samples(samples)?;
    let empty = Vec::new();
    let get = |k: &str| all.get(k).unwrap_or(&empty);
    let mut out = String::new();

    // 1. The post-transaction hook, in both workloads.
    let wall_med = hook_table(&mut out, &all, "hook", "1.", "coreutils");
    if !get("hook-uu/engine").is_empty() {
        hook_table(&mut out, &all, "hook-uu", "1b.", "uutils-coreutils");
    }

    // 2. pacman with and without hooks.
    let with = get("pacman/with");
    let without = get("pacman/without");
    let _ = writeln!(
        out,
        "2. `pacman -U coreutils` transaction, ms ({} + {} runs, interleaved)",
        with.len(),
        without.len()
    );
    let mut t = Table::new(&["transaction", "median", "p95"]);
    t.row(vec!["with our hooks".into(), ms(median(with)), ms(pct(with, 95.0))]);
    t.row(vec!["without our hooks".into(), ms(median(without)), ms(pct(without, 95.0))]);
    t.print(&mut out);
    let ratio = median(with) / median(without);
    let added = median(with) - median(without);
    let share = wall_med / median(with);
    let _ = writeln!(out, "  ratio with/without (medians): {ratio:.1}x; the hooks add {} ms", ms(added));
    let _ = writeln!(out, "  hook process wall / transaction with hooks: {:.0}%\n", 100.0 * share);

    // 3-5. Per filesystem.
    let labels: Vec<String> = all
        .keys()
        .filter_map(|k| k.strip_prefix("fs/").and_then(|r| r.split('/').next()).map(str::to_string))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let _ = writeln!(
        out,
        "3. flip latency, synthetic applets, µs (pointer: {FLIPS} runs; engine flip: {ENGINE_FLIPS} runs)"
    );
    let mut t = Table::new(&["fs", "N", "pointer p50", "pointer p99", "engine flip p50", "engine flip p99"]);
    let mut flat: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for l in &labels {
        let p10 = median(get(&format!("fs/{l}/flip/10")));
        let mut dev: f64 = 0.0;
        let mut max_p50: f64 = 0.0;
        for n in SIZES {
            let f = get(&format!("fs/{l}/flip/{n}"));
            let e = get(&format!("fs/{l}/engine-flip/{n}"));
            dev = dev.max((median(f) - p10).abs() / p10);
            max_p50 = max_p50.max(median(f));
            t.row(vec![l.clone(), n.to_string(), us(median(f)), us(pct(f, 99.0)), us(median(e)), us(pct(e, 99.0))]);
        }
        flat.insert(l.clone(), (dev, max_p50));
    }
    t.print(&mut out);
    for (l, (dev, _)) in &flat {
        let _ = writeln!(out, "  {l}: pointer p50 deviates at most {:.0}% from N=10 across N=10..10,000", dev * 100.0);
    }
    let _ = writeln!(out);

    let _ = writeln!(
        out,
        "4. rebuild: build + publish one generation of N links (manifest included, no smoke), {BUILDS} runs"
    );
    let mut t = Table::new(&["fs", "N", "total p50 ms", "total p95 ms", "µs/applet p50", "µs/applet p95"]);
    for l in &labels {
        for n in SIZES {
            let b = get(&format!("fs/{l}/build/{n}"));
            let per: Vec<f64> = b.iter().map(|x| x / n as f64).collect();
            t.row(vec![
                l.clone(),
                n.to_string(),
                ms(median(b)),
                ms(pct(b, 95.0)),
                us(median(&per)),
                us(pct(&per, 95.0)),
            ]);
        }
    }
    t.print(&mut out);
    let _ = writeln!(out);

    let _ = writeln!(
        out,
        "5. commit of N={BASELINE_N} applets: ours (one rename + fsync) vs per-target (backup link + swap + fsync, \
         each applet), µs, {BASELINE_RUNS} runs"
    );
    let mut t = Table::new(&["fs", "approach", "commit p50", "commit p95", "mixed window p50", "mixed window p95"]);
    let mut speedups: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for l in &labels {
        let ours = get(&format!("fs/{l}/baseline/ours"));
        let ours_e = get(&format!("fs/{l}/baseline/ours-engine"));
        let ow = get(&format!("fs/{l}/baseline/ours-window"));
        let theirs = get(&format!("fs/{l}/baseline/theirs"));
        let tw = get(&format!("fs/{l}/baseline/theirs-window"));
        t.row(vec![
            l.clone(),
            "ours: active flip".into(),
            us(median(ours)),
            us(pct(ours, 95.0)),
            us(median(ow)),
            us(pct(ow, 95.0)),
        ]);
        t.row(vec![
            l.clone(),
            "ours: engine flip (+profile ptr)".into(),
            us(median(ours_e)),
            us(pct(ours_e, 95.0)),
            us(median(ow)),
            us(pct(ow, 95.0)),
        ]);
        t.row(vec![
            l.clone(),
            "per-target".into(),
            us(median(theirs)),
            us(pct(theirs, 95.0)),
            us(median(tw)),
            us(pct(tw, 95.0)),
        ]);
        speedups.insert(l.clone(), (median(theirs) / median(ours), median(theirs) / median(ours_e)));
    }
    t.print(&mut out);
    for (l, (a, b)) in &speedups {
        let _ = writeln!(
            out,
            "  {l}: ours/theirs commit time = 1/{a:.0} (active flip), 1/{b:.0} (engine flip with the profile pointer)"
        );
    }
    let mut t = Table::new(&[
        "fs",
        "approach",
        "observed commits",
        "with a mixed state",
        "mixed sweeps",
        "sweeps",
        "unresolvable reads",
    ]);
    for l in &labels {
        for who in ["ours", "theirs"] {
            let k = format!("fs/{l}/observer/{who}");
            let sum = |x: &str| get(&format!("{k}/{x}")).iter().sum::<f64>();
            t.row(vec![
                l.clone(),
                who.into(),
                get(&format!("{k}/sweeps")).len().to_string(),
                format!("{:.0}", sum("mixed-commit")),
                format!("{:.0}", sum("mixed-sweeps")),
                format!("{:.0}", sum("sweeps")),
                format!("{:.0}", sum("broken")),
            ]);
        }
    }
    let _ = writeln!(
        out,
        "  An observer thread sweeping all {BASELINE_N} applets (stat through the links) during each commit:"
    );
    t.print(&mut out);
    let _ = writeln!(out);

    // 6. Where the hook's time goes.
    let _ = writeln!(out, "6. where the hook's time goes: measured on the live root after the runs above, ms");
    let mut t = Table::new(&["measure", "runs", "median", "p95"]);
    let live: [(&str, &str); 24] = [
        ("live smoke as the engine runs it (resolve all, exec 1 per binary)", "live/smoke/engine-live"),
        ("candidate smoke, every check executed", "live/smoke/candidate-all"),
        ("candidate smoke, every verdict carried (no binary changed)", "live/smoke/candidate-carried"),
        ("full smoke through /usr/bin: every applet + suite (4 workers)", "live/smoke/full-p4"),
        ("  same, 2 workers", "live/smoke/full-p2"),
        ("  same, 8 workers", "live/smoke/full-p8"),
        ("  applet checks only (4 workers)", "live/smoke/applets-p4"),
        ("  behavioural suite only (4 workers)", "live/smoke/behaviour-p4"),
        ("applet probes, blocking waits, 2 threads", "live/smoke/applets-blocking-p2"),
        ("applet probes, blocking waits, 4 threads", "live/smoke/applets-blocking-p4"),
        ("resolve-only live check (stat every link)", "live/resolve-check"),
        ("one exec: uutils ls --version", "live/exec/uutils-ls-version"),
        ("one exec: GNU ls --version (store)", "live/exec/gnu-ls-version"),
        ("one exec: GNU true (store)", "live/exec/gnu-true"),
        ("one exec: oxidizr-hook --version", "live/exec/oxidizr-hook-version"),
        ("ALPM open + inventory", "live/alpm-load"),
        ("plan (uutils + GNU plans)", "live/plan"),
        ("durable small write on / (file + dir fsync)", "live/durable-write"),
        ("sha256 of every stored GNU binary, one pass", "live/sha256-gnu"),
        ("(hook) candidate smoke, for comparison", "hook/candidate-smoke"),
        ("floor: fsync the GNU files as pacman left them (/usr/bin)", "floor/fsync-pacman-files"),
        ("floor: links back (symlink + rename over N names in /usr/bin)", "floor/links-back"),
        ("floor: a generation tree (N symlinks, new directory)", "floor/generation-tree"),
        ("floor: N sidecar-sized durable files (write_many)", "floor/sidecars"),
    ];
    for (name, key) in live {
        let v = get(key);
        t.row(vec![
            name.into(),
            v.len().to_string(),
            format!("{:.2}", median(v) / 1000.0),
            format!("{:.2}", pct(v, 95.0) / 1000.0),
        ]);
    }
    t.print(&mut out);
    let _ = writeln!(
        out,
        "  (the stored GNU binaries: {:.1} MiB in all; /usr/bin/ls (uutils multicall): {:.1} MiB)",
        median(get("live/gnu-bytes")) / 1048576.0,
        median(get("live/uutils-ls-bytes")) / 1048576.0
    );
    let floor: f64 = ["fsync-pacman-files", "links-back", "generation-tree", "sidecars"]
        .iter()
        .map(|k| median(get(&format!("floor/{k}"))))
        .sum();
    let _ = writeln!(
        out,
        "  floor of a coreutils upgrade's hook on this root (N = {:.0}): the four floor rows = {} ms, \
         against pacman's own transaction {} ms (median, without our hooks)",
        median(get("floor/n")),
        ms(floor),
        ms(median(get("pacman/without")))
    );
    let _ = writeln!(out);

    // 7. The per-applet primitives.
    let _ = writeln!(
        out,
        "7. the hook's per-applet primitives on {BASELINE_N} files of {} KiB, µs per applet, {TAKEOVER_RUNS} runs",
        BINARY_BYTES / 1024
    );
    let mut t = Table::new(&["fs", "phase", "how", "time p50", "time p95", "in fsync p50", "fsyncs/applet"]);
    let tlabels: BTreeSet<String> = all
        .keys()
        .filter_map(|k| k.strip_prefix("takeover/").and_then(|r| r.split('/').next()).map(str::to_string))
        .collect();
    for l in &tlabels {
        for (what, key) in [("harvest", "harvest"), ("link (take-over)", "takeover")] {
            for (how, kind) in [("batched (engine)", "batch"), ("one at a time", "single")] {
                let v = get(&format!("takeover/{l}/{kind}/{key}"));
                let f = get(&format!("takeover/{l}/{kind}/{key}-fsync"));
                let c = get(&format!("takeover/{l}/{kind}/{key}-fsyncs"));
                t.row(vec![
                    l.clone(),
                    what.into(),
                    how.into(),
                    us(median(v)),
                    us(pct(v, 95.0)),
                    us(median(f)),
                    format!("{:.2}", median(c)),
                ]);
            }
        }
    }
    t.print(&mut out);
    let _ = writeln!(out);

    // Targets.
    let _ = writeln!(out, "targets (issue 7)");
    let mut t = Table::new(&["target", "measured", "verdict"]);
    t.row(vec![
        "post-transaction hook <= 250 ms (full real sets, both smokes)".into(),
        format!("{} ms (process wall, median)", ms(wall_med)),
        verdict(wall_med <= 250_000.0).into(),
    ]);
    t.row(vec![
        "hook adds < half of the `pacman -U coreutils` time".into(),
        format!("hook = {:.0}% of the transaction", 100.0 * share),
        verdict(share < 0.5).into(),
    ]);
    if let Some((dev, max_p50)) = flat.get("tmpfs") {
        t.row(vec![
            "flip p50 < 1 ms on tmpfs, flat within ±20% (N=10..10,000)".into(),
            format!("max p50 {} µs, max deviation {:.0}%", us(*max_p50), dev * 100.0),
            verdict(*max_p50 < 1000.0 && *dev <= 0.20).into(),
        ]);
    }
    if let Some((a, b)) = speedups.get("ext4") {
        t.row(vec![
            format!("commit >= 20x faster than per-target at N={BASELINE_N} on ext4"),
            format!("{a:.0}x (active flip), {b:.0}x (engine flip)"),
            verdict(a.min(*b) >= 20.0).into(),
        ]);
    }
    t.print(&mut out);
    print!("{out}");
    Ok(())
}
