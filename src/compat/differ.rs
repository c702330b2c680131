//! The differential runner: one case, run once with the GNU binary and once
//! with the uutils binary, each in a fresh scratch directory built from the
//! case's setup, then compared on what scripts depend on — the exit status,
//! stdout, and the files left behind (never stderr wording).
//!
//! Every run goes through [`crate::process::run`]: bounded in time, in its
//! own process group, pipes drained. The environment is cleared to
//! `PATH=/usr/bin:/bin`, `LC_ALL=<locale>`, `TZ=UTC`, and `HOME` and
//! `TMPDIR` set to the case directory, which is also the working
//! directory. In a root other than `/` the run is
//! `chroot -- ROOT /bin/sh -c 'cd -- "$0" && exec "$@"' DIR BINARY ARGS...`
//! (the host's chroot always changes into the new `/`; the root's shell
//! enters the case directory and replaces itself with the binary).

use std::io::Read as _;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::corpus::{Aspect, Case, Kind};
use crate::process::{self, host_chroot, is_host_root, Failure, Input};
use crate::smoke::Scratch;

/// The result of one run, in the form it is compared and shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunResult {
    /// `exit status N`, `killed by signal N`, `timed out`, `cannot execute: ...`.
    pub status: String,
    /// stdout (lossy UTF-8), the case directory written `{dir}`, at most
    /// 2000 characters (what a report shows).
    pub stdout: String,
    /// sha256 of the whole stdout (after `{dir}`): what is compared.
    pub stdout_digest: String,
    /// One line per entry of the case directory after the run, sorted.
    pub files: Vec<String>,
}

impl RunResult {
    /// Whether the binary ran to an exit status (not a timeout, not a
    /// failure to start).
    pub fn finished(&self) -> bool {
        self.status.starts_with("exit status") || self.status.starts_with("killed by signal")
    }

    /// Whether the run hit its deadline.
    pub fn timed_out(&self) -> bool {
        self.status.starts_with("timed out")
    }
}

/// How one case came out under one locale.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum CaseOutcome {
    /// Both runs gave the same result on every compared aspect.
    Equal,
    /// The runs differ on these aspects.
    Diverged {
        /// What differs.
        differs: Vec<Aspect>,
        /// The GNU run.
        gnu: RunResult,
        /// The uutils run.
        uutils: RunResult,
    },
    /// The case proves nothing here (GNU itself did not finish, the
    /// inputs could not be built): neither equal nor diverged.
    Unusable {
        /// One line: why.
        why: String,
    },
}

/// Runs cases in one root, under one timeout.
pub struct Differ {
    root: PathBuf,
    /// The host chroot and the absolute root, when the root is not `/`.
    chroot: Option<(PathBuf, PathBuf)>,
    /// Why no case can run at all (no chroot, no shell in the root).
    broken: Option<String>,
    timeout: Duration,
}

impl Differ {
    /// A runner for `root`, each run bounded by `timeout`.
    pub fn new(root: &Path, timeout: Duration) -> Differ {
        let mut broken = None;
        let chroot = if is_host_root(root) {
            None
        } else {
            let absolute = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
            match host_chroot() {
                Some(c) => Some((c.to_path_buf(), absolute)),
                None => {
                    broken = Some("no chroot binary on the host".to_string());
                    None
                }
            }
        };
        if chroot.is_some() && std::fs::metadata(root.join("bin/sh")).is_err() {
            broken = Some("the root has no /bin/sh to enter a case's directory".to_string());
        }
        Differ { root: root.to_path_buf(), chroot, broken, timeout }
    }

    /// Runs `case` under `locale` with both binaries (paths inside the
    /// root) and compares the runs.
    pub fn compare(&self, case: &Case, locale: &str, gnu: &str, uutils: &str) -> CaseOutcome {
        let g = self.run(case, locale, gnu);
        let u = self.run(case, locale, uutils);
        outcome(case, &g, &u)
    }

    /// One run of `binary` in a fresh scratch directory; Err when the
    /// scratch directory or the inputs cannot be made, or no case can run
    /// in this root.
    pub fn run(&self, case: &Case, locale: &str, binary: &str) -> Result<RunResult, String> {
        if let Some(why) = &self.broken {
            return Err(why.clone());
        }
        let scratch = Scratch::create(&self.root)?;
        let host_dir = scratch.host.join("d");
        let inside_dir = format!("{}/d", scratch.inside);
        std::fs::create_dir(&host_dir).map_err(|e| format!("cannot create {}: {e}", host_dir.display()))?;
        let start = now_secs();
        build(&host_dir, case).map_err(|e| format!("cannot build the inputs of {}: {e}", case.id))?;
        let stdin = match &case.stdin {
            Some(text) => {
                let path = scratch.host.join("stdin");
                std::fs::write(&path, text.replace("{dir}", &inside_dir))
                    .map_err(|e| format!("cannot write the stdin of {}: {e}", case.id))?;
                Input::File(std::fs::File::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?)
            }
            None => Input::Null,
        };
        let args: Vec<String> = case.args.iter().map(|a| a.replace("{dir}", &inside_dir)).collect();
        let mut cmd = self.command(binary, &args, &host_dir, &inside_dir, locale);
        let (status, stdout) = match process::run(&mut cmd, stdin, self.timeout) {
            Ok(out) => (process::status_text(out.status), out.stdout),
            Err(Failure::TimedOut) | Err(Failure::OutputHeldOpen(_)) => ("timed out".to_string(), Vec::new()),
            Err(Failure::Spawn(e)) => (format!("cannot execute: {e}"), Vec::new()),
            Err(Failure::Wait(why)) => (format!("cannot execute: {why}"), Vec::new()),
        };
        let end = now_secs();
        let stdout = String::from_utf8_lossy(&stdout).replace(&inside_dir, "{dir}");
        let stdout_digest: String =
            Sha256::digest(stdout.as_bytes()).iter().take(16).map(|b| format!("{b:02x}")).collect();
        let stdout =
            if stdout.chars().count() > 2000 { stdout.chars().take(2000).collect::<String>() + "…" } else { stdout };
        let files = if case.compare.contains(&Aspect::Files) { snapshot(&host_dir, (start, end)) } else { Vec::new() };
        loosen(&scratch.host);
        Ok(RunResult { status, stdout, stdout_digest, files })
    }

    fn command(&self, binary: &str, args: &[String], host_dir: &Path, inside_dir: &str, locale: &str) -> Command {
        let mut cmd = match &self.chroot {
            None => {
                let mut c = Command::new(binary);
                c.args(args).current_dir(host_dir);
                c
            }
            Some((chroot, root)) => {
                let mut c = Command::new(chroot);
                c.arg("--").arg(root).arg("/bin/sh").arg("-c").arg(r#"cd -- "$0" && exec "$@""#);
                c.arg(inside_dir).arg(binary).args(args).current_dir("/");
                c
            }
        };
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("LC_ALL", locale)
            .env("TZ", "UTC")
            .env("HOME", inside_dir)
            .env("TMPDIR", inside_dir);
        cmd
    }
}

/// How a case came out from its GNU and its uutils run (each Err when
/// it could not be run): unusable unless GNU finished, else equal or
/// diverged on the compared aspects.
pub fn outcome(case: &Case, g: &Result<RunResult, String>, u: &Result<RunResult, String>) -> CaseOutcome {
    let (g, u) = match (g, u) {
        (Err(why), _) | (_, Err(why)) => return CaseOutcome::Unusable { why: why.clone() },
        (Ok(g), Ok(u)) => (g, u),
    };
    if !g.finished() {
        return CaseOutcome::Unusable { why: format!("GNU {}: {}", case.applet, g.status) };
    }
    let differs = differing(case, g, u);
    if differs.is_empty() {
        CaseOutcome::Equal
    } else {
        CaseOutcome::Diverged { differs, gnu: g.clone(), uutils: u.clone() }
    }
}

/// The compared aspects on which two runs differ.
fn differing(case: &Case, g: &RunResult, u: &RunResult) -> Vec<Aspect> {
    case.compare
        .iter()
        .copied()
        .filter(|a| match a {
            Aspect::Status => g.status != u.status,
            Aspect::Stdout => g.stdout_digest != u.stdout_digest,
            Aspect::Files => g.files != u.files,
        })
        .collect()
}

/// Builds the case's inputs in `dir` (our private, fresh directory): the
/// entries in order, then modes deepest first (a read-only directory is
/// made read-only after its contents), then times.
fn build(dir: &Path, case: &Case) -> std::io::Result<()> {
    for e in &case.setup {
        let path = dir.join(&e.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        match e.kind {
            Kind::File => std::fs::write(&path, e.content.as_deref().unwrap_or(""))?,
            Kind::Dir => std::fs::create_dir_all(&path)?,
            Kind::Symlink => std::os::unix::fs::symlink(e.target.as_deref().unwrap_or(""), &path)?,
        }
    }
    let mut by_depth: Vec<_> = case.setup.iter().filter(|e| e.kind != Kind::Symlink).collect();
    by_depth.sort_by_key(|e| std::cmp::Reverse(e.path.matches('/').count()));
    for e in &by_depth {
        std::fs::set_permissions(dir.join(&e.path), std::fs::Permissions::from_mode(e.mode_bits()))?;
    }
    for e in by_depth.iter().filter(|e| e.mtime.is_some()) {
        let t = rustix::fs::Timespec { tv_sec: e.mtime.unwrap_or(0), tv_nsec: 0 };
        let times = rustix::fs::Timestamps { last_access: t, last_modification: t };
        rustix::fs::utimensat(rustix::fs::CWD, dir.join(&e.path), &times, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)?;
    }
    Ok(())
}

/// Makes every directory under `dir` writable and searchable again (a case
/// may have made one read-only), so the scratch directory can be removed.
fn loosen(dir: &Path) {
    let Ok(meta) = std::fs::symlink_metadata(dir) else { return };
    if !meta.is_dir() {
        return;
    }
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            loosen(&entry.path());
        }
    }
}

/// The largest file whose content is digested; a larger one is compared by size.
const DIGEST_MAX: u64 = 16 << 20;

/// One line per entry under `dir` (itself included as `.`), sorted by path,
/// never following a symlink and never opening anything but a regular file:
/// `path kind mode links size digest mtime` or `path symlink -> target`.
/// An mtime inside `window` (the run's own seconds) is written `now`.
fn snapshot(dir: &Path, window: (i64, i64)) -> Vec<String> {
    let mut lines = Vec::new();
    walk(dir, ".", window, &mut lines);
    lines.sort();
    lines
}

fn walk(path: &Path, rel: &str, window: (i64, i64), lines: &mut Vec<String>) {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => return lines.push(format!("{rel} unreadable: {}", e.kind())),
    };
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = std::fs::read_link(path).map(|t| t.display().to_string()).unwrap_or_default();
        return lines.push(format!("{rel} symlink -> {target}"));
    }
    let mtime = if (window.0 - 1..=window.1 + 1).contains(&meta.mtime()) {
        "now".to_string()
    } else {
        meta.mtime().to_string()
    };
    let mode = meta.mode() & 0o7777;
    let kind = if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else {
        "special"
    };
    let content = if ft.is_file() { digest(path, meta.len()) } else { String::new() };
    let size = if ft.is_dir() { String::new() } else { format!(" size {}", meta.len()) };
    lines.push(format!("{rel} {kind} mode {mode:04o} links {}{size}{content} mtime {mtime}", meta.nlink()));
    if ft.is_dir() {
        let mut names: Vec<String> = std::fs::read_dir(path)
            .map(|it| it.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        names.sort();
        for name in names {
            let child = if rel == "." { name.clone() } else { format!("{rel}/{name}") };
            walk(&path.join(&name), &child, window, lines);
        }
    }
}

/// ` sha256 XXXXXXXXXXXXXXXX` of a regular file's content (first 16 hex
/// digits), or nothing past [`DIGEST_MAX`]. Opened without following a
/// symlink (the file was just seen to be a regular file).
fn digest(path: &Path, len: u64) -> String {
    if len > DIGEST_MAX {
        return String::new();
    }
    let file = rustix::fs::open(
        path,
        rustix::fs::OFlags::RDONLY
            | rustix::fs::OFlags::NOFOLLOW
            | rustix::fs::OFlags::NONBLOCK
            | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    );
    let Ok(fd) = file else { return " unreadable".to_string() };
    let mut bytes = Vec::new();
    if std::fs::File::from(fd).take(DIGEST_MAX).read_to_end(&mut bytes).is_err() {
        return " unreadable".to_string();
    }
    let hex: String = Sha256::digest(&bytes).iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!(" sha256 {hex}")
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// The locales cases run under: `C`, and the admin's (`LANG` of the root's
/// `/etc/locale.conf`, else `C.UTF-8`) when it is another one.
pub fn locales(root: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(root.join("etc/locale.conf")).unwrap_or_default();
    let admin = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("LANG="))
        .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
        .find(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c)))
        .unwrap_or_else(|| "C.UTF-8".to_string());
    let mut all = vec!["C".to_string()];
    if admin != "C" && admin != "POSIX" {
        all.push(admin);
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compat::corpus::SetupEntry;

    fn case(args: &[&str], setup: Vec<SetupEntry>) -> Case {
        Case {
            id: "t".into(),
            applet: "x".into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            stdin: None,
            compare: vec![Aspect::Status, Aspect::Stdout, Aspect::Files],
            why: None,
            setup,
        }
    }

    fn file(path: &str, mode: &str, mtime: Option<i64>) -> SetupEntry {
        SetupEntry {
            path: path.into(),
            kind: Kind::File,
            content: Some("x".into()),
            mode: Some(mode.into()),
            mtime,
            target: None,
        }
    }

    #[test]
    fn inputs_are_built_with_modes_and_times_and_snapshotted() {
        let tmp = tempfile::tempdir().unwrap();
        let c = case(&[], vec![file("a/b", "0640", Some(1_000_000_000)), file("c", "0600", None)]);
        build(tmp.path(), &c).unwrap();
        let lines = snapshot(tmp.path(), (now_secs(), now_secs()));
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("a/b file mode 0640 links 1 size 1 sha256 ") && l.ends_with("mtime 1000000000")),
            "{lines:?}"
        );
        assert!(lines.iter().any(|l| l.starts_with("c file mode 0600") && l.ends_with("mtime now")), "{lines:?}");
        assert!(lines.iter().any(|l| l.starts_with("a dir mode 0755")), "{lines:?}");
    }

    #[test]
    fn two_runs_of_one_binary_are_equal_and_a_changed_file_is_seen() {
        let d = Differ::new(Path::new("/"), Duration::from_secs(5));
        let Some(touch) = ["/usr/bin/touch", "/bin/touch"].into_iter().find(|p| Path::new(p).exists()) else {
            panic!("no touch binary on this machine");
        };
        let c = case(&["{dir}/new"], vec![file("old", "0644", Some(1_000_000_000))]);
        assert_eq!(d.compare(&c, "C", touch, touch), CaseOutcome::Equal);
        let t = case(&["-d", "@5", "{dir}/old"], vec![file("old", "0644", Some(1_000_000_000))]);
        let ran = d.run(&t, "C", touch).unwrap();
        assert!(ran.files.iter().any(|l| l.starts_with("old file") && l.ends_with("mtime 5")), "{:?}", ran.files);
        let g = d.run(&c, "C", touch).unwrap();
        assert!(!differing(&t, &g, &ran).is_empty());
    }

    #[test]
    fn stdout_names_the_case_directory_the_same_way_in_both_runs() {
        let d = Differ::new(Path::new("/"), Duration::from_secs(5));
        let Some(echo) = ["/usr/bin/echo", "/bin/echo"].into_iter().find(|p| Path::new(p).exists()) else {
            panic!("no echo binary on this machine");
        };
        let c = case(&["{dir}/f"], vec![]);
        let r = d.run(&c, "C", echo).unwrap();
        assert_eq!(r.stdout, "{dir}/f\n");
        assert_eq!(r.status, "exit status 0");
        let missing = d.run(&c, "C", "/nonexistent/binary").unwrap();
        assert!(missing.status.starts_with("cannot execute"), "{}", missing.status);
        assert!(matches!(d.compare(&c, "C", "/nonexistent/binary", echo), CaseOutcome::Unusable { .. }));
    }

    #[test]
    fn locales_come_from_locale_conf() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(locales(tmp.path()), ["C", "C.UTF-8"]);
        std::fs::create_dir(tmp.path().join("etc")).unwrap();
        std::fs::write(tmp.path().join("etc/locale.conf"), "# x\nLANG=\"de_DE.UTF-8\"\n").unwrap();
        assert_eq!(locales(tmp.path()), ["C", "de_DE.UTF-8"]);
        std::fs::write(tmp.path().join("etc/locale.conf"), "LANG=C\n").unwrap();
        assert_eq!(locales(tmp.path()), ["C"]);
        std::fs::write(tmp.path().join("etc/locale.conf"), "LANG=$(evil)\n").unwrap();
        assert_eq!(locales(tmp.path()), ["C", "C.UTF-8"]);
    }
}
