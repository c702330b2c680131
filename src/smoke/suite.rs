//! The behavioural suite: a fixed set of everyday idioms (copy, sort,
//! find, ...) run in a private scratch directory through the commands in
//! `bin_dir`, each compared with the exact result GNU gives.

use super::runner::Runner;
use super::*;

/// One behavioural check: the commands it needs from `bin_dir` (it is left
/// out when one is absent) and the job, Ok or a one-line reason.
pub(super) struct Check {
    pub(super) name: &'static str,
    pub(super) needs: &'static [&'static str],
    pub(super) job: fn(&Case) -> Result<(), String>,
}

/// The behavioural suite, in report order.
pub(super) const CHECKS: &[Check] = &[
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
pub(super) const HELLO_SHA256: &str = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";

/// The behavioural suite in report order: each check's name and the
/// commands it runs from `bin_dir`.
pub fn behaviour_checks() -> impl Iterator<Item = (&'static str, &'static [&'static str])> {
    CHECKS.iter().map(|c| (c.name, c.needs))
}

/// Runs the checks whose commands are in `bin_dir` (and, given `only`,
/// whose name is in it), in parallel, in a private scratch directory
/// removed afterwards.
pub(super) fn run_suite(runner: &Runner, bin_dir: &str, only: Option<&BTreeSet<&str>>) -> Vec<CheckResult> {
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
pub(crate) struct Scratch {
    /// The directory on the host.
    pub(crate) host: PathBuf,
    /// The same directory as a command running in the root sees it.
    pub(crate) inside: String,
}

impl Scratch {
    /// A fresh mode-0700 directory: in `ROOT/tmp` for a chroot root, else in
    /// the host's temp dir.
    pub(crate) fn create(root: &Path) -> Result<Scratch, String> {
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

    pub(super) fn create_in(host_parent: &Path, inside_parent: &str) -> Result<Scratch, String> {
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
pub(super) struct Suite<'a> {
    pub(super) runner: &'a Runner<'a>,
    pub(super) bin_dir: &'a str,
    pub(super) bin_host: &'a Path,
    pub(super) scratch: &'a Scratch,
}

impl Suite<'_> {
    /// Runs one check in its own subdirectory `c<index>`.
    pub(super) fn check(&self, index: usize, check: &Check) -> CheckResult {
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
pub(super) struct Case<'a> {
    pub(super) suite: &'a Suite<'a>,
    pub(super) host: PathBuf,
    pub(super) inside: String,
}

impl Case<'_> {
    /// `rel` as seen by the commands (inside the root).
    pub(super) fn path(&self, rel: &str) -> String {
        format!("{}/{rel}", self.inside)
    }

    /// `rel` on the host.
    pub(super) fn host(&self, rel: &str) -> PathBuf {
        self.host.join(rel)
    }

    /// Writes a file; returns its path as the commands see it.
    pub(super) fn write(&self, rel: &str, bytes: &[u8]) -> Result<String, String> {
        let host = self.host(rel);
        if let Some(parent) = host.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&host, bytes).map_err(|e| format!("cannot write {}: {e}", host.display()))?;
        Ok(self.path(rel))
    }

    /// The path (inside the root) of `name` in bin_dir, if present there.
    pub(super) fn command(&self, name: &str) -> Option<String> {
        let present = self.suite.bin_host.join(name).symlink_metadata().is_ok();
        present.then(|| format!("{}/{name}", self.suite.bin_dir))
    }

    /// Runs bin_dir's `name` and returns its stdout; a non-zero exit is an error.
    pub(super) fn stdout(&self, name: &str, args: &[&str], stdin: Option<&Path>) -> Result<Vec<u8>, String> {
        let path = self.command(name).ok_or_else(|| format!("{name} is not in {}", self.suite.bin_dir))?;
        let out = self.suite.runner.execute(&path, args, stdin).map_err(|e| format!("{name}: {e}"))?;
        if out.status.code() != Some(0) {
            return Err(format!("{name} {}: {}", args.join(" "), out.describe()));
        }
        Ok(out.stdout)
    }

    /// Runs bin_dir's `name` for its effect only.
    pub(super) fn ok(&self, name: &str, args: &[&str]) -> Result<(), String> {
        self.stdout(name, args, None).map(drop)
    }

    /// Runs bin_dir's `name`; its stdout must be exactly `want`.
    pub(super) fn expect(&self, name: &str, args: &[&str], want: &[u8]) -> Result<(), String> {
        let got = self.stdout(name, args, None)?;
        same(&format!("{name} {}", args.join(" ")), &got, want)
    }
}

/// Ok when `got == want`, else "WHAT: expected "...", got "..."".
pub(super) fn same(what: &str, got: &[u8], want: &[u8]) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: expected {}, got {}", quoted(want), quoted(got)))
    }
}

/// Ok when `cond`, else `why`.
pub(super) fn ensure(cond: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(why())
    }
}

/// Bytes that are not text, to prove copies are byte-exact.
pub(super) const BLOB: &[u8] = b"line one\n\x00\x01\xfe\xff binary\ttail";

pub(super) fn check_ls(c: &Case) -> Result<(), String> {
    c.write("d/b.txt", b"b")?;
    c.write("d/a.txt", b"a")?;
    c.write("d/.hidden", b"h")?;
    c.expect("ls", &[&c.path("d")], b"a.txt\nb.txt\n")
}

pub(super) fn check_cp(c: &Case) -> Result<(), String> {
    let src = c.write("src", BLOB)?;
    c.ok("cp", &[&src, &c.path("dst")])?;
    same("cp: the copy", &read(&c.host("dst"))?, BLOB)?;
    same("cp: the source", &read(&c.host("src"))?, BLOB)
}

pub(super) fn check_mv(c: &Case) -> Result<(), String> {
    let src = c.write("src", BLOB)?;
    c.ok("mv", &[&src, &c.path("dst")])?;
    ensure(!exists(&c.host("src")), || "mv: the source still exists".into())?;
    same("mv: the destination", &read(&c.host("dst"))?, BLOB)
}

pub(super) fn check_rm(c: &Case) -> Result<(), String> {
    let f = c.write("f", b"x")?;
    c.ok("rm", &[&f])?;
    ensure(!exists(&c.host("f")), || "rm: the file still exists".into())
}

pub(super) fn check_cat(c: &Case) -> Result<(), String> {
    let f = c.write("f", BLOB)?;
    c.expect("cat", &[&f], BLOB)
}

pub(super) fn check_sort(c: &Case) -> Result<(), String> {
    let f = c.write("in", b"b\nB\na\n10\n9\n")?;
    c.expect("sort", &[&f], b"10\n9\nB\na\nb\n")
}

pub(super) fn check_date(c: &Case) -> Result<(), String> {
    let f = c.write("f", b"x")?;
    let meta = c.host("f").metadata().map_err(|e| format!("cannot stat the file: {e}"))?;
    c.expect("date", &["-r", &f, "+%s"], format!("{}\n", meta.mtime()).as_bytes())
}

pub(super) fn check_stat(c: &Case) -> Result<(), String> {
    let f = c.write("f", b"thirteen byte")?;
    c.expect("stat", &["-c", "%s", &f], b"13\n")
}

pub(super) fn check_sha256sum(c: &Case) -> Result<(), String> {
    let f = c.write("hello", b"hello\n")?;
    c.expect("sha256sum", &[&f], format!("{HELLO_SHA256}  {f}\n").as_bytes())
}

pub(super) fn check_ln_readlink(c: &Case) -> Result<(), String> {
    let link = c.path("link");
    c.ok("ln", &["-s", "some/target", &link])?;
    let target = std::fs::read_link(c.host("link")).map_err(|e| format!("ln -s made no symlink: {e}"))?;
    ensure(target == Path::new("some/target"), || format!("ln -s: the link points to {target:?}"))?;
    c.expect("readlink", &[&link], b"some/target\n")
}

pub(super) fn check_mkdir(c: &Case) -> Result<(), String> {
    c.ok("mkdir", &["-p", &c.path("a/b/c")])?;
    ensure(c.host("a/b/c").is_dir(), || "mkdir -p: a/b/c is not a directory".into())
}

pub(super) fn check_touch(c: &Case) -> Result<(), String> {
    c.ok("touch", &[&c.path("new")])?;
    let meta = c.host("new").symlink_metadata().map_err(|e| format!("touch made no file: {e}"))?;
    ensure(meta.is_file() && meta.len() == 0, || "touch: not an empty regular file".into())
}

pub(super) fn check_wc(c: &Case) -> Result<(), String> {
    let f = c.write("f", b"one\ntwo\nthree\n")?;
    c.expect("wc", &["-l", &f], format!("3 {f}\n").as_bytes())
}

pub(super) fn check_head(c: &Case) -> Result<(), String> {
    let f = c.write("f", b"one\ntwo\nthree\nfour\n")?;
    c.expect("head", &["-n", "2", &f], b"one\ntwo\n")
}

pub(super) fn check_tail(c: &Case) -> Result<(), String> {
    let f = c.write("f", b"one\ntwo\nthree\nfour\n")?;
    c.expect("tail", &["-n", "2", &f], b"three\nfour\n")
}

pub(super) fn check_find(c: &Case) -> Result<(), String> {
    c.write("d/x.txt", b"")?;
    c.write("d/sub/y.txt", b"")?;
    c.write("d/z.log", b"")?;
    let d = c.path("d");
    let out = c.stdout("find", &[&d, "-name", "*.txt"], None)?;
    let mut lines: Vec<&[u8]> = out.split_inclusive(|b| *b == b'\n').collect();
    lines.sort();
    same("find -name '*.txt' (sorted)", &lines.concat(), format!("{d}/sub/y.txt\n{d}/x.txt\n").as_bytes())
}

pub(super) fn check_xargs(c: &Case) -> Result<(), String> {
    let f = c.write("args", b"a\nb\n")?;
    let echo = c.command("echo").unwrap_or_else(|| "echo".to_string());
    c.expect("xargs", &["-a", &f, &echo], b"a b\n")
}

pub(super) fn check_tr(c: &Case) -> Result<(), String> {
    c.write("in", b"hello\n")?;
    let got = c.stdout("tr", &["a-z", "A-Z"], Some(&c.host("in")))?;
    same("tr a-z A-Z < in", &got, b"HELLO\n")
}

pub(super) fn check_cut(c: &Case) -> Result<(), String> {
    let f = c.write("f", b"a:b:c\n")?;
    c.expect("cut", &["-d", ":", "-f", "2", &f], b"b\n")
}

pub(super) fn check_chmod(c: &Case) -> Result<(), String> {
    let f = c.write("f", b"x")?;
    c.ok("chmod", &["640", &f])?;
    let mode = c.host("f").metadata().map_err(|e| format!("cannot stat the file: {e}"))?.permissions().mode();
    ensure(mode & 0o7777 == 0o640, || format!("chmod 640: the mode is {:o}", mode & 0o7777))
}

pub(super) fn check_basename(c: &Case) -> Result<(), String> {
    c.expect("basename", &["/x/y/z.txt", ".txt"], b"z\n")
}

pub(super) fn check_dirname(c: &Case) -> Result<(), String> {
    c.expect("dirname", &["/x/y/z.txt"], b"/x/y\n")
}

pub(super) fn check_seq(c: &Case) -> Result<(), String> {
    c.expect("seq", &["3"], b"1\n2\n3\n")
}

pub(super) fn check_uniq(c: &Case) -> Result<(), String> {
    let f = c.write("f", b"a\na\nb\na\n")?;
    c.expect("uniq", &[&f], b"a\nb\na\n")
}

pub(super) fn check_rmdir(c: &Case) -> Result<(), String> {
    let d = c.path("empty");
    std::fs::create_dir(c.host("empty")).map_err(|e| format!("cannot create a directory: {e}"))?;
    c.ok("rmdir", &[&d])?;
    ensure(!exists(&c.host("empty")), || "rmdir: the directory still exists".into())
}

pub(super) fn check_printf(c: &Case) -> Result<(), String> {
    c.expect("printf", &["%s-%03d\\n", "a", "5"], b"a-005\n")
}

pub(super) fn check_expr(c: &Case) -> Result<(), String> {
    c.expect("expr", &["2", "+", "3"], b"5\n")
}

/// Reads a host file for comparison.
pub(super) fn read(p: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
}

/// Whether something (even a dangling symlink) is at `p`.
pub(super) fn exists(p: &Path) -> bool {
    p.symlink_metadata().is_ok()
}
