//! verify: check every invariant of DESIGN.md §6 against the disk and the
//! package database; `--repair` converges. Healthy means: no interrupted
//! operation, not degraded, the active generation realizes the current plan,
//! every managed name is our link and resolves to an executable, every kept
//! GNU binary is intact, nothing foreign in our trees, the live smoke passes.

pub mod repair;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::engine::generation::{self, Manifest};
use crate::engine::store::store_package;
use crate::engine::Engine;
use crate::error::Result;
use crate::kernel::digest::sha256_fd;
use crate::kernel::dir::DIR_MODE;
use crate::kernel::sidecar::{self, Prior};
use crate::kernel::{Dir, Entry};
use crate::model::intent::Intent;
use crate::model::layout::{managed_link, LIB, LOG, STATE};
use crate::model::state::State;
use crate::pacman::mtree::{Records, Verdict};
use crate::smoke::SmokeTarget;

/// One thing that is wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// A stable code: `intent-pending`, `degraded`, `no-active`, `active-dangling`,
    /// `stale-plan`, `link-missing`, `link-foreign`, `unresolvable`, `unreachable`,
    /// `dir-mode`, `store-damaged`, `store-not-pacmans` (a kept file that its sidecar
    /// vouches for but pacman's local mtree does not), `capability-lost`,
    /// `foreign-entry`, `smoke-failed`, `leftover-links`,
    /// `sidecar-damaged`, `stale-lock` (added by the `verify` command: a `db.lck`
    /// left by a crashed oxidizr-hook).
    pub code: &'static str,
    /// One line for humans.
    pub detail: String,
}

fn problem(code: &'static str, detail: impl Into<String>) -> Problem {
    Problem { code, detail: detail.into() }
}

/// Every problem found (empty: healthy).
pub fn check(engine: &Engine, state: &State) -> Result<Vec<Problem>> {
    let mut out = Vec::new();
    if engine.opts.root.join(crate::model::layout::STATE).is_dir() {
        if let Some(i) = Intent::pending(&engine.layout.state(false)?)? {
            out.push(problem("intent-pending", format!("the '{}' started {} was interrupted", i.operation, i.started)));
        }
    }
    if let Some(d) = &state.degraded {
        out.push(problem("degraded", format!("{} since {}: {}", d.error_id, d.since, d.reason)));
    }
    out.extend(dir_modes(engine)?);
    for d in engine.find_debris()? {
        let what = if d.ours {
            "a temporary a killed run left (verify --repair removes it)"
        } else {
            "a temporary name of ours whose content is not ours: left alone, remove it by hand if it is stale"
        };
        out.push(problem("debris", format!("{}: {what}", d.path())));
    }
    out.extend(foreign_entries(engine)?);
    if let Err(e) = generation::check_pointers(&engine.layout) {
        out.push(problem("foreign-entry", e.reason));
    }
    let (realized, manifest) = realization(engine, state)?;
    out.extend(realized);
    let Some(manifest) = manifest else { return Ok(out) };
    let unreachable = reachability(&engine.opts.root, manifest.applets.keys().map(String::as_str));
    // A directory of ours that locks the commands out is named once, with
    // what it breaks.
    out.retain(|p| {
        !(p.code == "dir-mode" && unreachable.iter().any(|(path, _)| p.detail.starts_with(&format!("{path} "))))
    });
    out.extend(unreachable.into_iter().map(|(_, p)| p));
    out.extend(store(engine, &manifest)?);
    let (_, lost) = crate::engine::store::capabilities(engine)?;
    out.extend(lost.into_iter().map(|why| problem("capability-lost", why)));
    if out.is_empty() {
        let targets: Vec<SmokeTarget> =
            manifest.applets.keys().map(|a| SmokeTarget { applet: a.clone(), path: format!("/usr/bin/{a}") }).collect();
        let report = engine.smoke(&targets, "/usr/bin");
        for f in report.failures() {
            out.push(problem("smoke-failed", format!("{}: {}", f.name, f.detail)));
        }
    }
    Ok(out)
}

/// The non-executing half of [`check`]: the desired profile is realized —
/// a generation is active and readable, built for the installed packages
/// and pins (or held by a rollback), every managed name is our link and
/// resolves; disabled means no link or pointer of ours remains. Returns the
/// problems and the active manifest when there is one to check further.
fn realization(engine: &Engine, state: &State) -> Result<(Vec<Problem>, Option<Manifest>)> {
    let mut out = Vec::new();
    let Some(profile) = state.profile else {
        if generation::active(&engine.layout).ok().flatten().is_some() || !engine.managed_names()?.is_empty() {
            out.push(problem("leftover-links", "disabled, but managed links or the active pointer remain"));
        }
        return Ok((out, None));
    };
    let active = match generation::active(&engine.layout) {
        Ok(Some(n)) => n,
        Ok(None) => {
            out.push(problem(
                "no-active",
                format!("profile {} is desired but no generation is active", profile.as_str()),
            ));
            return Ok((out, None));
        }
        Err(e) => {
            out.push(problem("active-dangling", e.reason));
            return Ok((out, None));
        }
    };
    let manifest = match generation::read_manifest(&engine.layout, active) {
        Ok(m) => m,
        Err(e) => {
            out.push(problem("active-dangling", format!("active points to generation {active}: {}", e.reason)));
            return Ok((out, None));
        }
    };
    let (plan, _) = engine.plan(profile, &state.effective_pins())?;
    // A generation the admin rolled back to is built for other packages or
    // pins by design: held, not stale (the caller reports the hold).
    if plan.id != manifest.plan_id && state.held != Some(active) {
        out.push(problem(
            "stale-plan",
            format!(
                "generation {active} (plan {}) does not match the installed packages and pins (plan {})",
                manifest.plan_id, plan.id
            ),
        ));
    }
    out.extend(links(engine, &manifest)?);
    Ok((out, Some(manifest)))
}

/// Drift, cheaply (no command is executed; what `status` shows): whether
/// the disk still realizes the desired profile. pacman undoes a switch
/// silently when the post hook does not run (masked, `--nohooks`,
/// `--dbonly`, pacman killed before PostTransaction).
pub fn drift(engine: &Engine, state: &State) -> Result<Vec<Problem>> {
    Ok(realization(engine, state)?.0)
}

/// Every applet of the manifest is our link and resolves to an executable.
fn links(engine: &Engine, manifest: &Manifest) -> Result<Vec<Problem>> {
    let bin = engine.layout.bin()?;
    let mut out = Vec::new();
    for applet in manifest.applets.keys() {
        match bin.entry(applet)? {
            Entry::Symlink(_, d) if d == managed_link(applet) => {
                if let Err(why) = resolves_to_executable(&engine.opts.root, &format!("/usr/bin/{applet}")) {
                    out.push(problem("unresolvable", format!("/usr/bin/{applet}: {why}")));
                }
            }
            Entry::Absent => out.push(problem("link-missing", format!("/usr/bin/{applet} is missing"))),
            other => {
                out.push(problem("link-foreign", format!("/usr/bin/{applet} is a {}, not our link", other.kind())))
            }
        }
    }
    Ok(out)
}

/// Follows symlinks inside `root` (absolute targets are root-relative), at
/// most 40 hops; the end must be an executable regular file.
pub fn resolves_to_executable(root: &Path, abs: &str) -> std::result::Result<(), String> {
    let mut cur = PathBuf::from(abs);
    for _ in 0..40 {
        let host = root.join(cur.strip_prefix("/").unwrap_or(&cur));
        let md = std::fs::symlink_metadata(&host).map_err(|e| format!("{} does not exist ({e})", cur.display()))?;
        if md.file_type().is_symlink() {
            let dest = std::fs::read_link(&host).map_err(|e| e.to_string())?;
            cur = if dest.is_absolute() { dest } else { cur.parent().unwrap_or(Path::new("/")).join(dest) };
            continue;
        }
        if !md.is_file() {
            return Err(format!("{} is not a regular file", cur.display()));
        }
        if md.permissions().mode() & 0o111 == 0 {
            return Err(format!("{} is not executable", cur.display()));
        }
        return Ok(());
    }
    Err("too many levels of symlinks".to_string())
}

/// Where the way to a command is closed for every user but root: the first
/// directory on its resolution path that "other" cannot search, or the
/// file at its end that "other" cannot execute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    /// The path inside the root (`/usr/lib/oxidizr-arch/generations`).
    pub path: String,
    /// Its permission bits.
    pub mode: u32,
    /// A directory (search permission missing), else the final file
    /// (execute permission missing).
    pub directory: bool,
}

/// Walks the resolution of `abs` inside `root` the way the kernel does for
/// an unprivileged user (uid and gids other than the owner's: the "other"
/// permission bits): every directory in which a name is looked up (`..`
/// included, the root itself first) needs search permission, symlinks are
/// followed (absolute ones from the root, at most 40), and the file at the
/// end needs execute permission. Returns where that user is stopped; None
/// when the way is open, or when the path does not resolve at all (that is
/// the `unresolvable` check's finding). `modes` caches directory modes
/// across calls. Reads only (lstat, readlink).
pub fn blocked_for_others(root: &Path, abs: &str, modes: &mut BTreeMap<String, u32>) -> Option<Blocked> {
    let comps = |p: &str| p.split('/').filter(|c| !c.is_empty() && *c != ".").map(str::to_string).collect::<Vec<_>>();
    let inside = |done: &[String]| format!("/{}", done.join("/"));
    let host = |done: &[String]| done.iter().fold(root.to_path_buf(), |p, d| p.join(d));
    let mut todo: Vec<String> = comps(abs).into_iter().rev().collect();
    let mut done: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        // Looking a name up in a directory needs its search permission.
        let dir = inside(&done);
        let mode = match modes.get(&dir) {
            Some(m) => *m,
            None => {
                let m = std::fs::metadata(host(&done)).ok()?.permissions().mode() & 0o7777;
                modes.insert(dir.clone(), m);
                m
            }
        };
        if mode & 0o001 == 0 {
            return Some(Blocked { path: dir, mode, directory: true });
        }
        if c == ".." {
            done.pop();
            continue;
        }
        let here = host(&done).join(&c);
        let md = std::fs::symlink_metadata(&here).ok()?;
        if !md.file_type().is_symlink() {
            done.push(c);
            continue;
        }
        hops += 1;
        if hops > 40 {
            return None;
        }
        let dest = std::fs::read_link(&here).ok()?;
        let dest = dest.to_str()?;
        if dest.starts_with('/') {
            done.clear();
        }
        todo.extend(comps(dest).into_iter().rev());
    }
    let md = std::fs::symlink_metadata(host(&done)).ok()?;
    let mode = md.permissions().mode() & 0o7777;
    (md.is_file() && mode & 0o001 == 0).then(|| Blocked { path: inside(&done), mode, directory: false })
}

/// Whether `path` (inside the root) lies in one of our trees.
fn in_our_trees(path: &str) -> bool {
    [LIB, STATE, LOG].iter().any(|t| path == format!("/{t}") || path.starts_with(&format!("/{t}/")))
}

/// One `unreachable` problem per place that stops unprivileged users on the
/// way to the managed commands `applets` (`/usr/bin/<applet>`), with the
/// commands it stops; paired with that place's path.
fn reachability<'a>(root: &Path, applets: impl Iterator<Item = &'a str>) -> Vec<(String, Problem)> {
    let mut modes = BTreeMap::new();
    let mut stopped: BTreeMap<String, (Blocked, Vec<&str>)> = BTreeMap::new();
    for applet in applets {
        if let Some(b) = blocked_for_others(root, &format!("/usr/bin/{applet}"), &mut modes) {
            stopped.entry(b.path.clone()).or_insert_with(|| (b, Vec::new())).1.push(applet);
        }
    }
    stopped
        .into_iter()
        .map(|(path, (b, applets))| {
            let what = if b.directory { "cannot be searched" } else { "cannot be executed" };
            let shown = applets.iter().take(8).copied().collect::<Vec<_>>().join(" ");
            let more = if applets.len() > 8 { format!(" and {} more", applets.len() - 8) } else { String::new() };
            let cure = if b.directory && in_our_trees(&path) {
                format!("'verify --repair' restores its mode {:04o}", DIR_MODE)
            } else if b.directory {
                format!("not a directory of oxidizr-arch: fix it by hand (chmod o+x {path})")
            } else {
                "not a file of oxidizr-arch: reinstall its package".to_string()
            };
            let detail = format!(
                "{path} (mode {:04o}) {what} by users other than its owner: {} managed command(s) fail with \
                 'Permission denied' for every user but root ({shown}{more}); {cure}",
                b.mode,
                applets.len()
            );
            (path, problem("unreachable", detail))
        })
        .collect()
}

/// Our own directories that exist, opened through the safety kernel (from
/// the root, one component at a time, no symlink followed), with their
/// paths inside the root: `/usr/lib/oxidizr-arch` and in it `generations`,
/// every published generation and its own `bin`, `profiles`, `store`,
/// `store/gnu` and its package directories (named `<gnu package>-...` of a
/// configured family), `quarantine` (not what it holds: that is foreign);
/// `/var/lib/oxidizr-arch` and its `sidecars`; `/var/log/oxidizr-arch`.
/// Each must have mode 0755 ([`DIR_MODE`]). Creates nothing.
pub fn own_directories(engine: &Engine) -> Result<Vec<Dir>> {
    fn only_dir(parent: &Dir, name: &str) -> Result<Option<Dir>> {
        match parent.entry(name)? {
            Entry::Directory(_) => parent.subdir(name, false).map(Some),
            _ => Ok(None),
        }
    }
    let top = |tree: &str| -> Result<Option<Dir>> {
        let is_dir = std::fs::symlink_metadata(engine.opts.root.join(tree)).is_ok_and(|m| m.file_type().is_dir());
        if is_dir {
            engine.layout.dir(tree, false).map(Some)
        } else {
            Ok(None)
        }
    };
    let mut out = Vec::new();
    if let Some(lib) = top(LIB)? {
        if let Some(gens) = only_dir(&lib, "generations")? {
            let (numbers, _) = generation::list(&engine.layout)?;
            for n in numbers {
                if let Some(g) = only_dir(&gens, &n.to_string())? {
                    out.extend(only_dir(&g, "bin")?);
                    out.push(g);
                }
            }
            out.push(gens);
        }
        out.extend(only_dir(&lib, "profiles")?);
        if let Some(store) = only_dir(&lib, "store")? {
            if let Some(gnu) = only_dir(&store, "gnu")? {
                let ours =
                    |d: &str| engine.config.families.iter().any(|f| d.starts_with(&format!("{}-", f.gnu_package)));
                for name in gnu.list()?.into_iter().filter(|n| ours(n)) {
                    out.extend(only_dir(&gnu, &name)?);
                }
                out.push(gnu);
            }
            out.push(store);
        }
        out.extend(only_dir(&lib, "quarantine")?);
        out.push(lib);
    }
    if let Some(state) = top(STATE)? {
        out.extend(only_dir(&state, "sidecars")?);
        out.push(state);
    }
    out.extend(top(LOG)?);
    Ok(out)
}

/// The path inside the root of one of our directories (for messages).
fn inside_root(engine: &Engine, dir: &Dir) -> String {
    let rel = dir.path().strip_prefix(&engine.opts.root).unwrap_or(dir.path());
    format!("/{}", rel.display()).replace("//", "/")
}

/// `dir-mode`: our directories whose mode is not 0755.
fn dir_modes(engine: &Engine) -> Result<Vec<Problem>> {
    let mut out = Vec::new();
    for d in own_directories(engine)? {
        let mode = d.mode()?;
        if mode != DIR_MODE {
            out.push(problem(
                "dir-mode",
                format!(
                    "{} has mode {mode:04o}, expected {DIR_MODE:04o}; 'verify --repair' restores it",
                    inside_root(engine, &d)
                ),
            ));
        }
    }
    Ok(out)
}

/// Every kept GNU binary (the prior file of each managed name, recorded in
/// its sidecar) is still in the store with its recorded sha256: for an
/// applet backed by uutils the store holds the only copy.
fn store(engine: &Engine, _manifest: &Manifest) -> Result<Vec<Problem>> {
    let mut out = Vec::new();
    let names = engine.managed_names()?;
    if names.is_empty() {
        return Ok(out);
    }
    let sidecars = engine.layout.dir(&format!("{}/sidecars", crate::model::layout::STATE), false)?;
    // pacman's record, each package's mtree read once, only for the
    // packages whose stored files are checked.
    let mut pacman = Records::new(&engine.opts.dbpath);
    // A kept file named by several sidecars is judged against pacman once.
    let mut judged = BTreeSet::new();
    for name in names {
        let sc = match sidecar::read(&sidecars, &name) {
            Ok(Some(sc)) => sc,
            Ok(None) => continue,
            Err(e) => {
                out.push(problem("sidecar-damaged", e.reason));
                continue;
            }
        };
        let Prior::File { sha256, backup, .. } = &sc.prior else { continue };
        let shown = format!("/{}/{backup}", sc.backup_dir);
        let now = engine
            .layout
            .dir(&sc.backup_dir, false)
            .and_then(|d| d.open_file(backup))
            .and_then(|fd| sha256_fd(&fd, &shown));
        let cure = match store_package(&sc.backup_dir) {
            Some((package, _)) => {
                format!("'verify --repair' refetches it from the package cache, else reinstall {package}")
            }
            None => "reinstall its package".to_string(),
        };
        match now {
            Ok(s) if s == *sha256 => {
                // The sidecar is our own record: a file changed together
                // with its sidecar is caught only by pacman's.
                let Some((package, version)) = store_package(&sc.backup_dir) else { continue };
                if !judged.insert(shown.clone()) {
                    continue;
                }
                if let Verdict::Differs(why) = pacman.judge(&package, &version, backup, &shown, &s) {
                    out.push(problem(
                        "store-not-pacmans",
                        format!(
                            "{why}; 'verify --repair' refetches pacman's bytes from the package cache, else reinstall {package}"
                        ),
                    ))
                }
            }
            Ok(s) => {
                out.push(problem("store-damaged", format!("{shown} changed (sha256 {s}, expected {sha256}); {cure}")))
            }
            Err(e) => out.push(problem("store-damaged", format!("{shown}: {}; {cure}", e.reason))),
        }
    }
    Ok(out)
}

/// Entries in our trees that we did not put there.
fn foreign_entries(engine: &Engine) -> Result<Vec<Problem>> {
    let mut out = Vec::new();
    let (numbers, other) = generation::list(&engine.layout)?;
    // A staging tree a killed build left is debris (reported as such).
    for name in other.into_iter().filter(|n| !n.starts_with(crate::engine::debris::TMP_PREFIX)) {
        out.push(problem("foreign-entry", format!("/{LIB}/generations/{name} is not a generation")));
    }
    for n in numbers {
        let Ok(m) = generation::read_manifest(&engine.layout, n) else {
            out.push(problem("foreign-entry", format!("/{LIB}/generations/{n} has no valid manifest")));
            continue;
        };
        let Some(gens) = generation::generations_dir_ro(&engine.layout)? else { break };
        let gdir = gens.subdir(&n.to_string(), false)?;
        for name in gdir.list()? {
            if name != "bin" && name != generation::MANIFEST {
                out.push(problem(
                    "foreign-entry",
                    format!("/{LIB}/generations/{n}/{name} is not part of the generation"),
                ));
            }
        }
        // Its links: its own tree, or the tree of the generation it shares.
        let Some(owner) = generation::tree_owner(&engine.layout, n)? else {
            out.push(problem("foreign-entry", format!("/{LIB}/generations/{n}/bin is not a tree of links of ours")));
            continue;
        };
        let bin = gens.subdir(&owner.to_string(), false)?.subdir("bin", false)?;
        for name in bin.list()? {
            let ok = match (m.applets.get(&name), bin.entry(&name)?) {
                (Some(p), Entry::Symlink(_, d)) => d == p.target,
                _ => false,
            };
            if !ok {
                out.push(problem(
                    "foreign-entry",
                    format!("/{LIB}/generations/{n}/bin/{name} differs from the manifest"),
                ));
            }
        }
    }
    Ok(out)
}
