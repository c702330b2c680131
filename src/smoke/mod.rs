//! Smoke tests: run real commands and decide whether they work.
//!
//! [`run`] executes commands and judges them; [`crate::smoke::verdict`] decides
//! which to run (the candidate generation through its `bin/` directory,
//! verdicts carried over for unchanged binaries, one applet per binary
//! through `/usr/bin` after the flip). It runs two suites:
//!
//! - **applet checks**: every [`SmokeTarget`] is executed once, in parallel;
//! - **behavioural checks**: a fixed suite of small jobs (list, copy, hash,
//!   find, ...) whose outputs are compared byte for byte with known values,
//!   using the commands found in a `bin_dir`.
//!
//! # How every command runs
//!
//! - environment cleared, then only `PATH=/usr/bin:/bin` and `LC_ALL=C`;
//! - stdin is `/dev/null` (or a known file for checks that read stdin),
//!   stdout and stderr are captured (at most 1 MiB each is kept);
//! - `argv[0]` is the path executed, so multicall binaries (uutils'
//!   `coreutils`) dispatch on the applet's name;
//! - working directory `/`; when [`SmokeConfig::root`] is not `/` the command
//!   is run as `chroot -- ROOT PATH ARGS...` with the host's `chroot` binary
//!   (no `pre_exec`: the crate forbids unsafe code), and chroot changes into
//!   the new `/` itself;
//! - the command is the leader of a new process group. When it exits, the
//!   whole group is killed before the command is reaped, so nothing it forked
//!   outlives the check; when it outlives [`SmokeConfig::timeout`], the group is
//!   killed with `SIGKILL` and the command reaped. No zombie, no orphan in
//!   its group; a descendant that escaped into its own session and keeps the
//!   output open fails the check at the deadline instead of hanging it.
//!   (All of this is [`crate::process::run`].)
//!
//! # Applet checks
//!
//! | applet | arguments | passes when |
//! |---|---|---|
//! | any other (`ls`, `yes`, `cat`, `tee`, `find`, `xargs`, ...) | `--version` | exit 0 and non-empty stdout |
//! | `false` | none | exit status 1 |
//! | `true`, `:` | none | exit status 0 |
//! | `[` | `1 = 1 ]` | exit status 0 |
//! | `test` | `1 = 1` | exit status 0 (both GNU and uutils print nothing for `--version`) |
//! | `echo` | `ok` | exit 0 and stdout exactly `ok\n` (`--version` may be echoed literally) |
//! | `printf` | `ok` | exit 0 and stdout exactly `ok` |
//!
//! `yes` and `cat`/`tee` are never run unbounded: they only get `--version`
//! (and stdin is `/dev/null` anyway).
//!
//! # Behavioural checks
//!
//! Each run creates one private directory (mode 0700) on the host: under
//! `ROOT/tmp` when the root is not `/` (so the commands see it as `/tmp/...`),
//! else under [`std::env::temp_dir`]. Each check works in its own
//! subdirectory; the whole directory is removed at the end. A check whose
//! commands are not all present in `bin_dir` is left out of the report (it
//! is neither passed nor failed). The suite: `ls`, `cp`, `mv`, `rm`, `cat`,
//! `sort`, `date -r`, `stat -c %s`, `sha256sum`, `ln -s + readlink`,
//! `mkdir -p`, `touch`, `wc -l`, `head -n`, `tail -n`, `find -name`,
//! `xargs -a`, `tr`, `cut`, `chmod`, `basename`, `dirname`, `seq`, `uniq`,
//! `rmdir`, `printf format`, `expr`.

mod probes;
pub mod rescue;
mod runner;
mod suite;
pub mod verdict;

use runner::Runner;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
pub use suite::behaviour_checks;
use suite::run_suite;
pub(crate) use suite::Scratch;

use serde::{Deserialize, Serialize};

use crate::parallel::parallel_map;
use crate::process::{self, host_chroot, is_host_root, status_text, Failure, Input, CHROOT_CANDIDATES};

/// How to run smoke tests.
#[derive(Clone, Debug)]
pub struct SmokeConfig {
    /// The installation root. When it is not "/", every command runs chrooted
    /// into it by executing the host's `chroot` binary:
    /// `chroot -- ROOT PATH ARGS...`. Paths in [`SmokeTarget`] and `bin_dir`
    /// are paths as seen inside the root. A relative root is taken relative
    /// to the current directory.
    pub root: PathBuf,
    /// Per-command timeout (default 5 s): a command still running after it is
    /// killed, with everything in its process group, and its check fails.
    pub timeout: Duration,
    /// Worker threads running checks in parallel (default 4; 0 counts as 1).
    pub parallelism: usize,
}

impl Default for SmokeConfig {
    /// Root `/`, 5 s per command, 4 workers.
    fn default() -> Self {
        SmokeConfig { root: PathBuf::from("/"), timeout: Duration::from_secs(5), parallelism: 4 }
    }
}

/// One applet to run: its name (e.g. "ls", "[", "true") and the absolute
/// path (inside the root) to execute, e.g.
/// "/usr/lib/oxidizr-arch/generations/3/bin/ls" or "/usr/bin/ls".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmokeTarget {
    /// The applet's name: selects how it is probed (see the module table).
    pub applet: String,
    /// The absolute path executed (and passed as `argv[0]`).
    pub path: String,
}

/// The outcome of one check.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CheckResult {
    /// The applet name, or the behavioural check's name (e.g. "sha256sum").
    pub name: String,
    /// Whether the check passed.
    pub passed: bool,
    /// Empty when passed; else one line: what was expected and what was got,
    /// the exit status, or "timed out after 5s".
    pub detail: String,
    /// Wall-clock time the check took.
    pub duration_ms: u64,
    /// The identities of the binaries the check depends on, command name ->
    /// [`crate::smoke::verdict::Identity`] key; empty when unknown. A later run may
    /// carry a passed verdict over only for exactly these binaries.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub binaries: BTreeMap<String, String>,
    /// True when nothing was executed for this verdict in this run: it was
    /// carried over from an earlier run on the same binaries (`binaries`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reused: bool,
}

/// Everything one [`run`] found.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SmokeReport {
    /// True exactly when every check in `applets` and `behaviour` passed
    /// (so an empty report passes: callers decide what must be checked).
    pub passed: bool,
    /// One result per target, in the order of the targets.
    pub applets: Vec<CheckResult>,
    /// One result per behavioural check that could run, in suite order.
    pub behaviour: Vec<CheckResult>,
    /// Wall-clock time of the whole run.
    pub duration_ms: u64,
}

impl SmokeReport {
    /// The failed checks, applets first, each list in its report order.
    pub fn failures(&self) -> Vec<&CheckResult> {
        self.applets.iter().chain(&self.behaviour).filter(|c| !c.passed).collect()
    }
}

/// Runs every target (in parallel) and, when `bin_dir` is Some, the
/// behavioural suite using the commands found in that directory (a path
/// inside the root, e.g. "/usr/lib/oxidizr-arch/generations/3/bin" or
/// "/usr/bin"; on the host it is looked up as ROOT + `bin_dir`, so it must
/// not go through an absolute symlink inside the root). Never panics on I/O
/// errors and never leaves a child process behind; any problem is a failed
/// [`CheckResult`]. `passed` = every check passed.
pub fn run(cfg: &SmokeConfig, targets: &[SmokeTarget], bin_dir: Option<&str>) -> SmokeReport {
    run_selected(cfg, targets, bin_dir, None)
}

/// [`run`], with the behavioural suite limited to the checks named in
/// `only` (all of them when None). Checks outside `only` are left out of
/// the report, like checks whose commands are absent.
pub fn run_selected(
    cfg: &SmokeConfig,
    targets: &[SmokeTarget],
    bin_dir: Option<&str>,
    only: Option<&BTreeSet<&str>>,
) -> SmokeReport {
    let start = Instant::now();
    let runner = Runner::new(cfg);
    let applets = parallel_map(targets, cfg.parallelism, |t| runner.check_applet(t));
    let behaviour = bin_dir.map(|dir| run_suite(&runner, dir, only)).unwrap_or_default();
    let passed = applets.iter().chain(&behaviour).all(|c| c.passed);
    SmokeReport { passed, applets, behaviour, duration_ms: millis(start.elapsed()) }
}

// ---------------------------------------------------------------------------
// Small helpers

/// A CheckResult from a verdict.
fn check_result(name: &str, start: Instant, verdict: Result<(), String>) -> CheckResult {
    let (passed, detail) = match verdict {
        Ok(()) => (true, String::new()),
        Err(why) => (false, one_line(&why, 400)),
    };
    CheckResult {
        name: name.to_string(),
        passed,
        detail,
        duration_ms: millis(start.elapsed()),
        binaries: BTreeMap::new(),
        reused: false,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Output as a short quoted, escaped string.
fn quoted(bytes: &[u8]) -> String {
    let text = format!("{:?}", String::from_utf8_lossy(bytes));
    one_line(&text, 120)
}

/// The first non-blank line of some output, trimmed.
fn first_line(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    text.lines().map(str::trim).find(|l| !l.is_empty()).map(|l| one_line(l, 160))
}

/// `s` on one line (newlines become " | ") and at most `max` characters.
fn one_line(s: &str, max: usize) -> String {
    let flat = s.trim().replace(['\r', '\n'], " | ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::probes::*;
    use super::runner::*;
    use super::suite::*;
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn outcome(code: i32, stdout: &[u8]) -> Outcome {
        Outcome { status: ExitStatus::from_raw(code << 8), stdout: stdout.to_vec(), stderr: b"oops\nmore".to_vec() }
    }

    #[test]
    fn special_cases_follow_the_table() {
        let p = |a| probe_for(a);
        assert_eq!(p("false"), Probe { args: &[], expect: Expect::Status(1) });
        assert_eq!(p("true"), Probe { args: &[], expect: Expect::Status(0) });
        assert_eq!(p(":"), Probe { args: &[], expect: Expect::Status(0) });
        assert_eq!(p("["), Probe { args: &["1", "=", "1", "]"], expect: Expect::Status(0) });
        assert_eq!(p("test"), Probe { args: &["1", "=", "1"], expect: Expect::Status(0) });
        assert_eq!(p("echo"), Probe { args: &["ok"], expect: Expect::Stdout("ok\n") });
        assert_eq!(p("printf"), Probe { args: &["ok"], expect: Expect::Stdout("ok") });
        for other in ["ls", "yes", "cat", "tee", "find", "xargs", "kill", "uu-ls", ""] {
            assert_eq!(p(other), Probe { args: &["--version"], expect: Expect::Version }, "{other}");
        }
    }

    #[test]
    fn judging() {
        assert!(judge(Expect::Version, &outcome(0, b"ls 9.10\n")).is_ok());
        let e = judge(Expect::Version, &outcome(0, b" \n")).unwrap_err();
        assert!(e.contains("exit status 0") && e.contains("stderr: oops"), "{e}");
        let e = judge(Expect::Version, &outcome(1, b"x")).unwrap_err();
        assert!(e.contains("got exit status 1"), "{e}");
        assert!(judge(Expect::Status(1), &outcome(1, b"")).is_ok());
        assert!(judge(Expect::Status(0), &outcome(1, b"")).is_err());
        assert!(judge(Expect::Stdout("ok\n"), &outcome(0, b"ok\n")).is_ok());
        assert!(judge(Expect::Stdout("ok"), &outcome(0, b"ok\n")).is_err());
        let killed = Outcome { status: ExitStatus::from_raw(9), stdout: vec![], stderr: vec![] };
        assert!(judge(Expect::Version, &killed).unwrap_err().contains("killed by signal 9"));
    }

    #[test]
    fn failures_list_failed_checks_in_order() {
        let r = |name: &str, passed| CheckResult {
            name: name.into(),
            passed,
            detail: String::new(),
            duration_ms: 0,
            binaries: BTreeMap::new(),
            reused: false,
        };
        let report = SmokeReport {
            passed: false,
            applets: vec![r("ls", true), r("cp", false)],
            behaviour: vec![r("sort", false), r("cat", true)],
            duration_ms: 0,
        };
        let names: Vec<&str> = report.failures().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["cp", "sort"]);
        assert!(SmokeReport::default().failures().is_empty());
    }

    #[test]
    fn roots_and_paths() {
        assert!(is_host_root(Path::new("/")));
        assert!(is_host_root(Path::new("//")));
        assert!(is_host_root(Path::new("/.")));
        assert!(!is_host_root(Path::new("/mnt")));
        assert!(!is_host_root(Path::new("")));
        assert!(!is_host_root(Path::new(".")));
        assert_eq!(host_path(Path::new("/"), "/usr/bin/ls"), Path::new("/usr/bin/ls"));
        assert_eq!(host_path(Path::new("/mnt/r"), "/usr/bin/ls"), Path::new("/mnt/r/usr/bin/ls"));
    }

    #[test]
    fn text_helpers() {
        assert_eq!(one_line("a\nb\r\nc", 100), "a | b |  | c");
        assert_eq!(one_line("abcdef", 3), "abc…");
        assert_eq!(first_line(b"\n  \n  first \nsecond"), Some("first".into()));
        assert_eq!(first_line(b""), None);
        assert_eq!(quoted(b"a\nb"), "\"a\\nb\"");
    }

    #[test]
    fn the_suite_is_large_enough_and_named_uniquely() {
        assert!(CHECKS.len() >= 15);
        let mut names: Vec<&str> = CHECKS.iter().map(|c| c.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), CHECKS.len());
        assert!(CHECKS.iter().all(|c| !c.needs.is_empty()));
    }
}
