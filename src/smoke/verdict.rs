//! Smoke verdicts tied to the identity of the binaries they judged.
//!
//! A smoke check proves something about one binary: the file a path
//! resolves to inside the root. [`Identity`] names that file by device,
//! inode, size, mtime and ctime — every write, truncate, chmod, chown or
//! link-count change moves its ctime, and userspace cannot set a ctime
//! back, so two equal identities are the same unchanged file.
//!
//! Two uses, both in the engine:
//!
//! - [`candidate`]: the candidate smoke of a new generation. With reuse on
//!   (the pacman hooks), an applet check or behavioural check that passed in
//!   an earlier generation's manifest for exactly the same binaries is
//!   carried over (`reused: true`) instead of executed again; everything
//!   else runs. A `coreutils` upgrade under the uutils profile changes no
//!   uutils binary, so nothing re-runs; a uutils upgrade re-runs it all.
//! - [`live`]: the smoke after the flip and the links. Every managed
//!   `/usr/bin/<applet>` must resolve to the very file (device and inode)
//!   its generation's candidate smoke judged, and one applet per distinct
//!   binary is executed through `/usr/bin`: the commands an admin types
//!   reach tested binaries, proven without executing each one twice.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rustix::fs::{fstat, open, openat2, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::engine::plan::PlannedApplet;
use crate::smoke::{self, CheckResult, SmokeConfig, SmokeReport, SmokeTarget};

/// Bumped whenever the smoke probes or the behavioural suite change what
/// they prove: verdicts recorded under another epoch are never carried over.
pub const SUITE_EPOCH: u32 = 1;

/// The identity of one file, as a path inside the root resolves to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Device.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Status-change time, nanoseconds since the epoch.
    pub ctime_ns: i128,
}

impl Identity {
    /// The string recorded in [`CheckResult::binaries`]; equal keys mean
    /// the same unchanged file judged by the same smoke suite
    /// ([`SUITE_EPOCH`]).
    pub fn key(&self) -> String {
        format!("{SUITE_EPOCH}:{}:{}:{}:{}:{}", self.dev, self.ino, self.size, self.mtime_ns, self.ctime_ns)
    }

    /// Whether both name the same file (device and inode), changed or not.
    pub fn same_file(&self, other: &Identity) -> bool {
        (self.dev, self.ino) == (other.dev, other.ino)
    }
}

/// Resolves paths inside a root the way a command running chrooted into it
/// would (absolute symlinks stay inside the root), without opening any file
/// for reading or writing.
pub struct Resolver {
    path: PathBuf,
    root: Option<OwnedFd>,
}

/// Symlinks followed while resolving one path, at most (the kernel's limit).
const MAX_HOPS: usize = 40;

impl Resolver {
    /// A resolver for `root`; when the root cannot be opened every
    /// [`Resolver::identify`] fails (and no verdict is ever reused).
    pub fn new(root: &Path) -> Resolver {
        let fd = open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).ok();
        Resolver { path: root.to_path_buf(), root: fd }
    }

    /// The identity of the file `inside` (an absolute path inside the root)
    /// resolves to, following symlinks within the root; Err is a reason.
    /// Uses `openat2(RESOLVE_IN_ROOT)`; where the kernel or a seccomp filter
    /// refuses that call, or a busy machine keeps it answering `EAGAIN`
    /// (see [`in_root`]), [`Resolver::identify_walking`] gives the answer:
    /// only a path that really does not resolve is an error.
    pub fn identify(&self, inside: &str) -> Result<Identity, String> {
        let root = self.root.as_ref().ok_or("the root cannot be opened")?;
        let relative = inside.trim_start_matches('/');
        let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        match in_root(|| openat2(root, relative, OFlags::PATH | OFlags::CLOEXEC, Mode::empty(), how)) {
            InRoot::Resolved(fd) => {
                let st = fstat(&fd).map_err(|e| format!("cannot stat what {inside} resolves to: {e}"))?;
                Ok(identity(&st))
            }
            InRoot::Walk => self.identify_walking(inside),
            InRoot::Failed(e) => Err(format!("{inside} does not resolve: {e}")),
        }
    }

    /// [`Resolver::identify`] without `openat2`: walks `inside` one
    /// component at a time from the root, reading each symlink and
    /// restarting at the root for an absolute one (`..` never leaves the
    /// root), at most 40 links. Reads only; the same answer.
    pub fn identify_walking(&self, inside: &str) -> Result<Identity, String> {
        let mut todo: Vec<String> = components(inside).into_iter().rev().collect();
        let mut done: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(c) = todo.pop() {
            if c == ".." {
                done.pop();
                continue;
            }
            let here = done.iter().fold(self.path.clone(), |p, d| p.join(d)).join(&c);
            let meta = std::fs::symlink_metadata(&here).map_err(|e| format!("{inside} does not resolve: {e}"))?;
            if !meta.file_type().is_symlink() {
                done.push(c);
                continue;
            }
            hops += 1;
            if hops > MAX_HOPS {
                return Err(format!("{inside} does not resolve: too many levels of symbolic links"));
            }
            let dest = std::fs::read_link(&here).map_err(|e| format!("{inside} does not resolve: {e}"))?;
            let dest = dest.to_str().ok_or_else(|| format!("{inside} leads through a link that is not UTF-8"))?;
            if dest.starts_with('/') {
                done.clear();
            }
            todo.extend(components(dest).into_iter().rev());
        }
        let target = done.iter().fold(self.path.clone(), |p, d| p.join(d));
        let st = rustix::fs::stat(&target).map_err(|e| format!("cannot stat what {inside} resolves to: {e}"))?;
        Ok(identity(&st))
    }
}

/// How many times [`in_root`] asks `openat2` again after `EAGAIN`.
pub const IN_ROOT_ATTEMPTS: usize = 8;

/// What one resolution with `openat2(RESOLVE_IN_ROOT)` came to.
#[derive(Debug)]
pub enum InRoot<T> {
    /// The kernel resolved the path.
    Resolved(T),
    /// Resolve it by walking the components instead: the kernel refuses
    /// the call here (no `openat2`, a seccomp filter), or it kept answering
    /// `EAGAIN`.
    Walk,
    /// The path really does not resolve (`ENOENT`, `ELOOP`, `EACCES`, ...).
    Failed(Errno),
}

/// Runs one `openat2(RESOLVE_IN_ROOT)` resolution, `attempt`, with the
/// kernel's transient answer handled. `EAGAIN` says a rename or mount
/// somewhere on the system (not necessarily in the root) raced the `..` of
/// the path (the kernel's `rename_lock`/`mount_lock` sequence moved while
/// the resolution was scoped): openat2(2) documents it as "retry". It is
/// asked again, up to [`IN_ROOT_ATTEMPTS`] times in all, then the caller
/// walks the components itself (which resolves `..` in userspace from real
/// directories and cannot get `EAGAIN`), so a busy machine never turns
/// into a failed smoke. Never sleeps.
pub fn in_root<T>(mut attempt: impl FnMut() -> rustix::io::Result<T>) -> InRoot<T> {
    for _ in 0..IN_ROOT_ATTEMPTS {
        match attempt() {
            Ok(fd) => return InRoot::Resolved(fd),
            Err(Errno::AGAIN | Errno::INTR) => continue,
            Err(Errno::NOSYS | Errno::PERM | Errno::INVAL | Errno::TOOBIG | Errno::OPNOTSUPP) => return InRoot::Walk,
            Err(e) => return InRoot::Failed(e),
        }
    }
    InRoot::Walk
}

/// The non-empty components of a path other than `.`.
fn components(path: &str) -> Vec<String> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".").map(str::to_string).collect()
}

// The `st_*` field types differ between architectures: the casts are
// no-ops on x86_64 only.
#[allow(clippy::unnecessary_cast)]
fn identity(st: &rustix::fs::Stat) -> Identity {
    let ns = |sec: i64, nsec: i64| i128::from(sec) * 1_000_000_000 + i128::from(nsec);
    Identity {
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
        size: u64::try_from(st.st_size).unwrap_or(0),
        mtime_ns: ns(st.st_mtime as i64, st.st_mtime_nsec as i64),
        ctime_ns: ns(st.st_ctime as i64, st.st_ctime_nsec as i64),
    }
}

/// The candidate smoke of the targets (paths through the staged `bin_dir`)
/// and the behavioural suite on `bin_dir`. With `reuse`, a check that
/// passed in one of the `earlier` reports for the same binaries (same
/// identity keys) is carried over instead of executed. Every check of the
/// result records the identities it judged.
pub fn candidate(
    cfg: &SmokeConfig,
    targets: &[SmokeTarget],
    bin_dir: &str,
    earlier: &[SmokeReport],
    reuse: bool,
) -> SmokeReport {
    let start = Instant::now();
    let resolver = Resolver::new(&cfg.root);
    let ids: BTreeMap<&str, String> = targets
        .iter()
        .filter_map(|t| resolver.identify(&t.path).ok().map(|id| (t.applet.as_str(), id.key())))
        .collect();
    let passed_before = |applets: bool, name: &str, binaries: &BTreeMap<String, String>| {
        reuse
            && !binaries.is_empty()
            && earlier
                .iter()
                .flat_map(|r| if applets { &r.applets } else { &r.behaviour })
                .any(|c| c.passed && c.name == name && c.binaries == *binaries)
    };
    // Applet checks: carried over, or run.
    let applet_binaries = |t: &SmokeTarget| -> BTreeMap<String, String> {
        ids.get(t.applet.as_str()).map(|k| BTreeMap::from([(t.applet.clone(), k.clone())])).unwrap_or_default()
    };
    let to_run: Vec<SmokeTarget> =
        targets.iter().filter(|t| !passed_before(true, &t.applet, &applet_binaries(t))).cloned().collect();
    // Behavioural checks: those whose commands are all in the generation.
    let present: BTreeSet<&str> = targets.iter().map(|t| t.applet.as_str()).collect();
    let mut check_binaries: BTreeMap<&str, BTreeMap<String, String>> = BTreeMap::new();
    for (name, needs) in smoke::behaviour_checks().filter(|(_, needs)| needs.iter().all(|n| present.contains(n))) {
        let keys: Option<BTreeMap<String, String>> =
            needs.iter().map(|n| ids.get(n).map(|k| (n.to_string(), k.clone()))).collect();
        check_binaries.insert(name, keys.unwrap_or_default());
    }
    let selected: BTreeSet<&str> =
        check_binaries.iter().filter(|(name, b)| !passed_before(false, name, b)).map(|(name, _)| *name).collect();
    let ran = smoke::run_selected(cfg, &to_run, (!selected.is_empty()).then_some(bin_dir), Some(&selected));
    let mut ran_applets = ran.applets.into_iter();
    let applets: Vec<CheckResult> = targets
        .iter()
        .map(|t| {
            let binaries = applet_binaries(t);
            if to_run.iter().any(|r| r.applet == t.applet) {
                let mut c = ran_applets.next().expect("one result per target run");
                c.binaries = binaries;
                c
            } else {
                carried(&t.applet, binaries)
            }
        })
        .collect();
    let mut ran_behaviour: BTreeMap<String, CheckResult> =
        ran.behaviour.into_iter().map(|c| (c.name.clone(), c)).collect();
    let mut behaviour = Vec::new();
    for (name, _) in smoke::behaviour_checks() {
        let binaries = check_binaries.remove(name);
        if let Some(mut c) = ran_behaviour.remove(name) {
            c.binaries = binaries.unwrap_or_default();
            behaviour.push(c);
        } else if let Some(b) = binaries.filter(|_| !selected.contains(name)) {
            behaviour.push(carried(name, b));
        }
    }
    // A suite-level failure (no scratch dir, bad bin_dir) is reported too.
    behaviour.extend(ran_behaviour.into_values());
    finish(applets, behaviour, start)
}

/// The live smoke of a generation's applets after the flip and the links:
/// `/usr/bin/<applet>` must resolve to the same file as the applet's target.
/// An applet is executed through `/usr/bin` when it is the first of its
/// binary, or when its target is no longer the very file the generation's
/// candidate smoke (`judged`) recorded (an older generation re-activated
/// after its binaries changed); the others carry the recorded verdict.
pub fn live(cfg: &SmokeConfig, applets: &BTreeMap<String, PlannedApplet>, judged: &SmokeReport) -> SmokeReport {
    let start = Instant::now();
    let resolver = Resolver::new(&cfg.root);
    let mut verdicts: Vec<(String, Result<Identity, String>)> = Vec::new();
    for (applet, planned) in applets {
        let through_bin = format!("/usr/bin/{applet}");
        let verdict = resolver.identify(&planned.target).and_then(|want| {
            let got = resolver.identify(&through_bin)?;
            if got.same_file(&want) {
                Ok(got)
            } else {
                Err(format!("{through_bin} resolves to another file than the tested {}", planned.target))
            }
        });
        verdicts.push((applet.clone(), verdict));
    }
    // One execution per distinct binary, and one for every applet whose
    // binary is not the one its candidate verdict was recorded for.
    let recorded = |applet: &str| {
        judged.applets.iter().find(|c| c.passed && c.name == applet).and_then(|c| c.binaries.get(applet))
    };
    let mut seen: BTreeSet<(u64, u64)> = BTreeSet::new();
    let exec: Vec<SmokeTarget> = verdicts
        .iter()
        .filter_map(|(applet, v)| v.as_ref().ok().map(|id| (applet, id)))
        .filter(|(applet, id)| {
            let first = seen.insert((id.dev, id.ino));
            first || recorded(applet) != Some(&id.key())
        })
        .map(|(applet, _)| SmokeTarget { applet: applet.clone(), path: format!("/usr/bin/{applet}") })
        .collect();
    let ran = smoke::run(cfg, &exec, None);
    let mut executed: BTreeMap<String, CheckResult> = ran.applets.into_iter().map(|c| (c.name.clone(), c)).collect();
    let results = verdicts
        .into_iter()
        .map(|(applet, v)| {
            let binaries = v.as_ref().map(|id| BTreeMap::from([(applet.clone(), id.key())])).unwrap_or_default();
            match (v, executed.remove(&applet)) {
                (Err(why), _) => failed(&applet, why),
                (Ok(_), Some(mut c)) => {
                    c.binaries = binaries;
                    c
                }
                (Ok(_), None) => carried(&applet, binaries),
            }
        })
        .collect();
    finish(results, Vec::new(), start)
}

/// A verdict carried over without executing anything.
fn carried(name: &str, binaries: BTreeMap<String, String>) -> CheckResult {
    CheckResult { name: name.to_string(), passed: true, detail: String::new(), duration_ms: 0, binaries, reused: true }
}

fn failed(name: &str, why: String) -> CheckResult {
    CheckResult {
        name: name.to_string(),
        passed: false,
        detail: why,
        duration_ms: 0,
        binaries: BTreeMap::new(),
        reused: false,
    }
}

fn finish(applets: Vec<CheckResult>, behaviour: Vec<CheckResult>, start: Instant) -> SmokeReport {
    let passed = applets.iter().chain(&behaviour).all(|c| c.passed);
    let duration_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    SmokeReport { passed, applets, behaviour, duration_ms }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eagain_is_asked_again_then_resolved() {
        let mut calls = 0;
        let got = in_root(|| {
            calls += 1;
            if calls < 3 {
                Err(Errno::AGAIN)
            } else {
                Ok(42)
            }
        });
        assert!(matches!(got, InRoot::Resolved(42)), "{got:?}");
        assert_eq!(calls, 3);
    }

    #[test]
    fn eagain_every_time_falls_back_to_the_walk_never_to_a_failure() {
        let mut calls = 0;
        let got: InRoot<()> = in_root(|| {
            calls += 1;
            Err(Errno::AGAIN)
        });
        assert!(matches!(got, InRoot::Walk), "{got:?}");
        assert_eq!(calls, IN_ROOT_ATTEMPTS);
    }

    #[test]
    fn a_refused_call_walks_and_a_real_error_fails_at_once() {
        for refused in [Errno::NOSYS, Errno::PERM, Errno::INVAL, Errno::TOOBIG, Errno::OPNOTSUPP] {
            assert!(matches!(in_root::<()>(|| Err(refused)), InRoot::Walk), "{refused:?}");
        }
        for real in [Errno::NOENT, Errno::LOOP, Errno::ACCESS, Errno::NOTDIR, Errno::XDEV] {
            let mut calls = 0;
            let got = in_root::<()>(|| {
                calls += 1;
                Err(real)
            });
            assert!(matches!(got, InRoot::Failed(e) if e == real), "{real:?}: {got:?}");
            assert_eq!(calls, 1, "{real:?} is not retried");
        }
    }
}
