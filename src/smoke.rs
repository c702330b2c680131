//! Smoke tests: run real commands and decide whether they work.
//!
//! [`run`] executes commands and judges them; [`crate::verdict`] decides
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

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
    /// [`crate::verdict::Identity`] key; empty when unknown. A later run may
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
// Applet probes

/// What an applet's probe must produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// This exit status, whatever the output.
    Status(i32),
    /// Exit 0 and some non-blank stdout.
    Version,
    /// Exit 0 and exactly this stdout.
    Stdout(&'static str),
}

/// How one applet is run and judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Probe {
    args: &'static [&'static str],
    expect: Expect,
}

/// The special-case table of the module doc; every other applet gets
/// `--version`.
fn probe_for(applet: &str) -> Probe {
    let (args, expect): (&'static [&'static str], Expect) = match applet {
        "false" => (&[], Expect::Status(1)),
        "true" | ":" => (&[], Expect::Status(0)),
        "[" => (&["1", "=", "1", "]"], Expect::Status(0)),
        "test" => (&["1", "=", "1"], Expect::Status(0)),
        "echo" => (&["ok"], Expect::Stdout("ok\n")),
        "printf" => (&["ok"], Expect::Stdout("ok")),
        _ => (&["--version"], Expect::Version),
    };
    Probe { args, expect }
}

/// Judges a finished probe: Ok, or a one-line reason.
fn judge(expect: Expect, out: &Outcome) -> Result<(), String> {
    let code = out.status.code();
    let ok = match expect {
        Expect::Status(want) => code == Some(want),
        Expect::Version => code == Some(0) && !out.stdout.trim_ascii().is_empty(),
        Expect::Stdout(want) => code == Some(0) && out.stdout == want.as_bytes(),
    };
    if ok {
        return Ok(());
    }
    let want = match expect {
        Expect::Status(n) => format!("exit status {n}"),
        Expect::Version => "exit status 0 and a version on stdout".to_string(),
        Expect::Stdout(s) => format!("exit status 0 and stdout {s:?}"),
    };
    Err(format!("expected {want}, got {}", out.describe()))
}

// ---------------------------------------------------------------------------
// Running one command

/// A command that finished within its timeout.
struct Outcome {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Outcome {
    /// "exit status N, stdout "...", stderr: first line" on one line.
    fn describe(&self) -> String {
        let mut s = status_text(self.status);
        s.push_str(&format!(", stdout {}", quoted(&self.stdout)));
        if let Some(line) = first_line(&self.stderr) {
            s.push_str(&format!(", stderr: {line}"));
        }
        s
    }
}

/// Runs commands the way the module doc describes.
struct Runner<'a> {
    cfg: &'a SmokeConfig,
    /// None: run directly. Some(Ok(chroot, root)): chrooted. Some(Err): cannot chroot.
    chroot: Option<Result<(PathBuf, PathBuf), String>>,
}

impl<'a> Runner<'a> {
    fn new(cfg: &'a SmokeConfig) -> Runner<'a> {
        let chroot = (!is_host_root(&cfg.root)).then(|| chroot_setup(&cfg.root));
        Runner { cfg, chroot }
    }

    /// The host path of a path inside the root.
    fn host_path(&self, inside: &str) -> PathBuf {
        host_path(&self.cfg.root, inside)
    }

    /// Runs one applet's probe and judges it.
    fn check_applet(&self, t: &SmokeTarget) -> CheckResult {
        let start = Instant::now();
        let probe = probe_for(&t.applet);
        let verdict = self.execute(&t.path, probe.args, None).and_then(|out| judge(probe.expect, &out));
        check_result(&t.applet, start, verdict)
    }

    /// Runs `path args...` with the clean environment, the timeout and
    /// `stdin` (a host file) or /dev/null; Err is a one-line reason.
    fn execute(&self, path: &str, args: &[&str], stdin: Option<&Path>) -> Result<Outcome, String> {
        if !path.starts_with('/') {
            return Err(format!("{path:?} is not an absolute path"));
        }
        let mut cmd = self.command(path, args)?;
        let timeout = self.cfg.timeout;
        match process::run(&mut cmd, open_stdin(stdin)?, timeout) {
            Ok(out) => Ok(Outcome { status: out.status, stdout: out.stdout, stderr: out.stderr }),
            Err(Failure::Spawn(e)) => Err(format!("cannot execute {path}: {e}")),
            Err(other) => Err(other.describe(timeout)),
        }
    }

    /// The command line: direct, or through the host's chroot.
    fn command(&self, path: &str, args: &[&str]) -> Result<Command, String> {
        let mut cmd = match &self.chroot {
            None => Command::new(path),
            Some(Err(e)) => return Err(e.clone()),
            Some(Ok((chroot, root))) => {
                let mut c = Command::new(chroot);
                c.arg("--").arg(root).arg(path);
                c
            }
        };
        cmd.args(args).env_clear().env("PATH", "/usr/bin:/bin").env("LC_ALL", "C").current_dir("/");
        Ok(cmd)
    }
}

/// The host path of `inside`, a path inside `root`.
fn host_path(root: &Path, inside: &str) -> PathBuf {
    if is_host_root(root) {
        PathBuf::from(inside)
    } else {
        root.join(inside.trim_start_matches('/'))
    }
}

/// The host chroot binary and the absolute root, or why chroot mode cannot work.
fn chroot_setup(root: &Path) -> Result<(PathBuf, PathBuf), String> {
    let chroot = host_chroot()
        .ok_or_else(|| format!("no chroot binary on the host (looked for {})", CHROOT_CANDIDATES.join(", ")))?;
    let root = std::path::absolute(root).map_err(|e| format!("cannot resolve root {}: {e}", root.display()))?;
    Ok((chroot.to_path_buf(), root))
}

/// stdin for a command: a host file, or /dev/null.
fn open_stdin(path: Option<&Path>) -> Result<Input, String> {
    match path {
        None => Ok(Input::Null),
        Some(p) => File::open(p).map(Input::File).map_err(|e| format!("cannot open {}: {e}", p.display())),
    }
}

// ---------------------------------------------------------------------------
// Behavioural suite

/// One behavioural check: the commands it needs from `bin_dir` (it is left
/// out when one is absent) and the job, Ok or a one-line reason.
struct Check {
    name: &'static str,
    needs: &'static [&'static str],
    job: fn(&Case) -> Result<(), String>,
}

/// The behavioural suite, in report order.
const CHECKS: &[Check] = &[
    Check { name: "ls", needs: &["ls"], job: check_ls },
    Check { name: "cp", needs: &["cp"], job: check_cp },
    Check { name: "mv", needs: &["mv"], job: check_mv },
    Check { name: "rm", needs: &["rm"], job: check_rm },
    Check { name: "cat", needs: &["cat"], job: check_cat },
    Check { name: "sort", needs: &["sort"], job: check_sort },
    Check { name: "date -r", needs: &["date"], job: check_date },
    Check { name: "stat -c %s", needs: &["stat"], job: check_stat },
    Check { name: "sha256sum", needs: &["sha256sum"], job: check_sha256sum },
    Check { name: "ln -s + readlink", needs: &["ln", "readlink"], job: check_ln_readlink },
    Check { name: "mkdir -p", needs: &["mkdir"], job: check_mkdir },
    Check { name: "touch", needs: &["touch"], job: check_touch },
    Check { name: "wc -l", needs: &["wc"], job: check_wc },
    Check { name: "head -n", needs: &["head"], job: check_head },
    Check { name: "tail -n", needs: &["tail"], job: check_tail },
    Check { name: "find -name", needs: &["find"], job: check_find },
    Check { name: "xargs -a", needs: &["xargs"], job: check_xargs },
    Check { name: "tr", needs: &["tr"], job: check_tr },
    Check { name: "cut", needs: &["cut"], job: check_cut },
    Check { name: "chmod", needs: &["chmod"], job: check_chmod },
    Check { name: "basename", needs: &["basename"], job: check_basename },
    Check { name: "dirname", needs: &["dirname"], job: check_dirname },
    Check { name: "seq", needs: &["seq"], job: check_seq },
    Check { name: "uniq", needs: &["uniq"], job: check_uniq },
    Check { name: "rmdir", needs: &["rmdir"], job: check_rmdir },
    Check { name: "printf format", needs: &["printf"], job: check_printf },
    Check { name: "expr", needs: &["expr"], job: check_expr },
];

/// sha256 of "hello\n".
const HELLO_SHA256: &str = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";

/// The behavioural suite in report order: each check's name and the
/// commands it runs from `bin_dir`.
pub fn behaviour_checks() -> impl Iterator<Item = (&'static str, &'static [&'static str])> {
    CHECKS.iter().map(|c| (c.name, c.needs))
}

/// Runs the checks whose commands are in `bin_dir` (and, given `only`,
/// whose name is in it), in parallel, in a private scratch directory
/// removed afterwards.
fn run_suite(runner: &Runner, bin_dir: &str, only: Option<&BTreeSet<&str>>) -> Vec<CheckResult> {
    let start = Instant::now();
    let bin_host = runner.host_path(bin_dir);
    if !bin_dir.starts_with('/') || !bin_host.is_dir() {
        let why = format!("bin_dir {bin_dir:?} is not an absolute path to a directory inside the root");
        return vec![check_result("bin_dir", start, Err(why))];
    }
    let scratch = match Scratch::create(&runner.cfg.root) {
        Ok(s) => s,
        Err(e) => return vec![check_result("setup", start, Err(e))],
    };
    let has = |name: &&str| bin_host.join(name).symlink_metadata().is_ok();
    let chosen = |c: &Check| only.is_none_or(|o| o.contains(c.name));
    let runnable: Vec<(usize, &Check)> =
        CHECKS.iter().enumerate().filter(|(_, c)| chosen(c) && c.needs.iter().all(has)).collect();
    if runnable.is_empty() {
        return Vec::new();
    }
    let suite = Suite { runner, bin_dir: bin_dir.trim_end_matches('/'), bin_host: &bin_host, scratch: &scratch };
    parallel_map(&runnable, runner.cfg.parallelism, |(i, check)| suite.check(*i, check))
}

/// A private directory on the host, removed (recursively) on drop.
struct Scratch {
    host: PathBuf,
    inside: String,
}

impl Scratch {
    /// A fresh mode-0700 directory: in `ROOT/tmp` for a chroot root, else in
    /// the host's temp dir.
    fn create(root: &Path) -> Result<Scratch, String> {
        let (host_parent, inside_parent) = if is_host_root(root) {
            let tmp = std::env::temp_dir();
            let tmp = if tmp.is_absolute() { tmp } else { PathBuf::from("/tmp") };
            let inside = tmp.to_str().ok_or("the temp dir is not UTF-8")?.to_string();
            (tmp, inside)
        } else {
            (root.join("tmp"), "/tmp".to_string())
        };
        let meta = host_parent.symlink_metadata().map_err(|e| format!("{}: {e}", host_parent.display()))?;
        if !meta.is_dir() {
            return Err(format!("{} is not a directory", host_parent.display()));
        }
        Scratch::create_in(&host_parent, inside_parent.trim_end_matches('/'))
    }

    fn create_in(host_parent: &Path, inside_parent: &str) -> Result<Scratch, String> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut last = String::new();
        for _ in 0..16 {
            let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let name = format!("oxidizr-smoke.{}.{n}.{nanos:09}", std::process::id());
            let host = host_parent.join(&name);
            match std::fs::DirBuilder::new().mode(0o700).create(&host) {
                Ok(()) => return Ok(Scratch { host, inside: format!("{inside_parent}/{name}") }),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => last = e.to_string(),
                Err(e) => return Err(format!("cannot create a scratch dir in {}: {e}", host_parent.display())),
            }
        }
        Err(format!("cannot create a scratch dir in {}: {last}", host_parent.display()))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Our own private directory; nothing useful to do if removal fails.
        let _ = std::fs::remove_dir_all(&self.host);
    }
}

/// What every check of one suite run shares.
struct Suite<'a> {
    runner: &'a Runner<'a>,
    bin_dir: &'a str,
    bin_host: &'a Path,
    scratch: &'a Scratch,
}

impl Suite<'_> {
    /// Runs one check in its own subdirectory `c<index>`.
    fn check(&self, index: usize, check: &Check) -> CheckResult {
        let start = Instant::now();
        let sub = format!("c{index}");
        let case =
            Case { suite: self, host: self.scratch.host.join(&sub), inside: format!("{}/{sub}", self.scratch.inside) };
        let verdict = std::fs::create_dir(&case.host)
            .map_err(|e| format!("cannot create {}: {e}", case.host.display()))
            .and_then(|()| (check.job)(&case));
        check_result(check.name, start, verdict)
    }
}

/// One check's working directory and its commands.
struct Case<'a> {
    suite: &'a Suite<'a>,
    host: PathBuf,
    inside: String,
}

impl Case<'_> {
    /// `rel` as seen by the commands (inside the root).
    fn path(&self, rel: &str) -> String {
        format!("{}/{rel}", self.inside)
    }

    /// `rel` on the host.
    fn host(&self, rel: &str) -> PathBuf {
        self.host.join(rel)
    }

    /// Writes a file; returns its path as the commands see it.
    fn write(&self, rel: &str, bytes: &[u8]) -> Result<String, String> {
        let host = self.host(rel);
        if let Some(parent) = host.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&host, bytes).map_err(|e| format!("cannot write {}: {e}", host.display()))?;
        Ok(self.path(rel))
    }

    /// The path (inside the root) of `name` in bin_dir, if present there.
    fn command(&self, name: &str) -> Option<String> {
        let present = self.suite.bin_host.join(name).symlink_metadata().is_ok();
        present.then(|| format!("{}/{name}", self.suite.bin_dir))
    }

    /// Runs bin_dir's `name` and returns its stdout; a non-zero exit is an error.
    fn stdout(&self, name: &str, args: &[&str], stdin: Option<&Path>) -> Result<Vec<u8>, String> {
        let path = self.command(name).ok_or_else(|| format!("{name} is not in {}", self.suite.bin_dir))?;
        let out = self.suite.runner.execute(&path, args, stdin).map_err(|e| format!("{name}: {e}"))?;
        if out.status.code() != Some(0) {
            return Err(format!("{name} {}: {}", args.join(" "), out.describe()));
        }
        Ok(out.stdout)
    }

    /// Runs bin_dir's `name` for its effect only.
    fn ok(&self, name: &str, args: &[&str]) -> Result<(), String> {
        self.stdout(name, args, None).map(drop)
    }

    /// Runs bin_dir's `name`; its stdout must be exactly `want`.
    fn expect(&self, name: &str, args: &[&str], want: &[u8]) -> Result<(), String> {
        let got = self.stdout(name, args, None)?;
        same(&format!("{name} {}", args.join(" ")), &got, want)
    }
}

/// Ok when `got == want`, else "WHAT: expected "...", got "..."".
fn same(what: &str, got: &[u8], want: &[u8]) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: expected {}, got {}", quoted(want), quoted(got)))
    }
}

/// Ok when `cond`, else `why`.
fn ensure(cond: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(why())
    }
}

/// Bytes that are not text, to prove copies are byte-exact.
const BLOB: &[u8] = b"line one\n\x00\x01\xfe\xff binary\ttail";

fn check_ls(c: &Case) -> Result<(), String> {
    c.write("d/b.txt", b"b")?;
    c.write("d/a.txt", b"a")?;
    c.write("d/.hidden", b"h")?;
    c.expect("ls", &[&c.path("d")], b"a.txt\nb.txt\n")
}

fn check_cp(c: &Case) -> Result<(), String> {
    let src = c.write("src", BLOB)?;
    c.ok("cp", &[&src, &c.path("dst")])?;
    same("cp: the copy", &read(&c.host("dst"))?, BLOB)?;
    same("cp: the source", &read(&c.host("src"))?, BLOB)
}

fn check_mv(c: &Case) -> Result<(), String> {
    let src = c.write("src", BLOB)?;
    c.ok("mv", &[&src, &c.path("dst")])?;
    ensure(!exists(&c.host("src")), || "mv: the source still exists".into())?;
    same("mv: the destination", &read(&c.host("dst"))?, BLOB)
}

fn check_rm(c: &Case) -> Result<(), String> {
    let f = c.write("f", b"x")?;
    c.ok("rm", &[&f])?;
    ensure(!exists(&c.host("f")), || "rm: the file still exists".into())
}

fn check_cat(c: &Case) -> Result<(), String> {
    let f = c.write("f", BLOB)?;
    c.expect("cat", &[&f], BLOB)
}

fn check_sort(c: &Case) -> Result<(), String> {
    let f = c.write("in", b"b\nB\na\n10\n9\n")?;
    c.expect("sort", &[&f], b"10\n9\nB\na\nb\n")
}

fn check_date(c: &Case) -> Result<(), String> {
    let f = c.write("f", b"x")?;
    let meta = c.host("f").metadata().map_err(|e| format!("cannot stat the file: {e}"))?;
    c.expect("date", &["-r", &f, "+%s"], format!("{}\n", meta.mtime()).as_bytes())
}

fn check_stat(c: &Case) -> Result<(), String> {
    let f = c.write("f", b"thirteen byte")?;
    c.expect("stat", &["-c", "%s", &f], b"13\n")
}

fn check_sha256sum(c: &Case) -> Result<(), String> {
    let f = c.write("hello", b"hello\n")?;
    c.expect("sha256sum", &[&f], format!("{HELLO_SHA256}  {f}\n").as_bytes())
}

fn check_ln_readlink(c: &Case) -> Result<(), String> {
    let link = c.path("link");
    c.ok("ln", &["-s", "some/target", &link])?;
    let target = std::fs::read_link(c.host("link")).map_err(|e| format!("ln -s made no symlink: {e}"))?;
    ensure(target == Path::new("some/target"), || format!("ln -s: the link points to {target:?}"))?;
    c.expect("readlink", &[&link], b"some/target\n")
}

fn check_mkdir(c: &Case) -> Result<(), String> {
    c.ok("mkdir", &["-p", &c.path("a/b/c")])?;
    ensure(c.host("a/b/c").is_dir(), || "mkdir -p: a/b/c is not a directory".into())
}

fn check_touch(c: &Case) -> Result<(), String> {
    c.ok("touch", &[&c.path("new")])?;
    let meta = c.host("new").symlink_metadata().map_err(|e| format!("touch made no file: {e}"))?;
    ensure(meta.is_file() && meta.len() == 0, || "touch: not an empty regular file".into())
}

fn check_wc(c: &Case) -> Result<(), String> {
    let f = c.write("f", b"one\ntwo\nthree\n")?;
    c.expect("wc", &["-l", &f], format!("3 {f}\n").as_bytes())
}

fn check_head(c: &Case) -> Result<(), String> {
    let f = c.write("f", b"one\ntwo\nthree\nfour\n")?;
    c.expect("head", &["-n", "2", &f], b"one\ntwo\n")
}

fn check_tail(c: &Case) -> Result<(), String> {
    let f = c.write("f", b"one\ntwo\nthree\nfour\n")?;
    c.expect("tail", &["-n", "2", &f], b"three\nfour\n")
}

fn check_find(c: &Case) -> Result<(), String> {
    c.write("d/x.txt", b"")?;
    c.write("d/sub/y.txt", b"")?;
    c.write("d/z.log", b"")?;
    let d = c.path("d");
    let out = c.stdout("find", &[&d, "-name", "*.txt"], None)?;
    let mut lines: Vec<&[u8]> = out.split_inclusive(|b| *b == b'\n').collect();
    lines.sort();
    same("find -name '*.txt' (sorted)", &lines.concat(), format!("{d}/sub/y.txt\n{d}/x.txt\n").as_bytes())
}

fn check_xargs(c: &Case) -> Result<(), String> {
    let f = c.write("args", b"a\nb\n")?;
    let echo = c.command("echo").unwrap_or_else(|| "echo".to_string());
    c.expect("xargs", &["-a", &f, &echo], b"a b\n")
}

fn check_tr(c: &Case) -> Result<(), String> {
    c.write("in", b"hello\n")?;
    let got = c.stdout("tr", &["a-z", "A-Z"], Some(&c.host("in")))?;
    same("tr a-z A-Z < in", &got, b"HELLO\n")
}

fn check_cut(c: &Case) -> Result<(), String> {
    let f = c.write("f", b"a:b:c\n")?;
    c.expect("cut", &["-d", ":", "-f", "2", &f], b"b\n")
}

fn check_chmod(c: &Case) -> Result<(), String> {
    let f = c.write("f", b"x")?;
    c.ok("chmod", &["640", &f])?;
    let mode = c.host("f").metadata().map_err(|e| format!("cannot stat the file: {e}"))?.permissions().mode();
    ensure(mode & 0o7777 == 0o640, || format!("chmod 640: the mode is {:o}", mode & 0o7777))
}

fn check_basename(c: &Case) -> Result<(), String> {
    c.expect("basename", &["/x/y/z.txt", ".txt"], b"z\n")
}

fn check_dirname(c: &Case) -> Result<(), String> {
    c.expect("dirname", &["/x/y/z.txt"], b"/x/y\n")
}

fn check_seq(c: &Case) -> Result<(), String> {
    c.expect("seq", &["3"], b"1\n2\n3\n")
}

fn check_uniq(c: &Case) -> Result<(), String> {
    let f = c.write("f", b"a\na\nb\na\n")?;
    c.expect("uniq", &[&f], b"a\nb\na\n")
}

fn check_rmdir(c: &Case) -> Result<(), String> {
    let d = c.path("empty");
    std::fs::create_dir(c.host("empty")).map_err(|e| format!("cannot create a directory: {e}"))?;
    c.ok("rmdir", &[&d])?;
    ensure(!exists(&c.host("empty")), || "rmdir: the directory still exists".into())
}

fn check_printf(c: &Case) -> Result<(), String> {
    c.expect("printf", &["%s-%03d\\n", "a", "5"], b"a-005\n")
}

fn check_expr(c: &Case) -> Result<(), String> {
    c.expect("expr", &["2", "+", "3"], b"5\n")
}

/// Reads a host file for comparison.
fn read(p: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
}

/// Whether something (even a dangling symlink) is at `p`.
fn exists(p: &Path) -> bool {
    p.symlink_metadata().is_ok()
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
