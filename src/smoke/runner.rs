//! Running one smoke command: inside the root (chroot when it is not the
//! host's), bounded in time through [`crate::process`], stdin from a file.

use super::probes::{judge, probe_for, Outcome};
use super::*;

/// Runs commands the way the module doc describes.
pub(super) struct Runner<'a> {
    pub(super) cfg: &'a SmokeConfig,
    /// None: run directly. Some(Ok(chroot, root)): chrooted. Some(Err): cannot chroot.
    pub(super) chroot: Option<Result<(PathBuf, PathBuf), String>>,
}

impl<'a> Runner<'a> {
    pub(super) fn new(cfg: &'a SmokeConfig) -> Runner<'a> {
        let chroot = (!is_host_root(&cfg.root)).then(|| chroot_setup(&cfg.root));
        Runner { cfg, chroot }
    }

    /// The host path of a path inside the root.
    pub(super) fn host_path(&self, inside: &str) -> PathBuf {
        host_path(&self.cfg.root, inside)
    }

    /// Runs one applet's probe and judges it.
    pub(super) fn check_applet(&self, t: &SmokeTarget) -> CheckResult {
        let start = Instant::now();
        let probe = probe_for(&t.applet);
        let verdict = self.execute(&t.path, probe.args, None).and_then(|out| judge(probe.expect, &out));
        check_result(&t.applet, start, verdict)
    }

    /// Runs `path args...` with the clean environment, the timeout and
    /// `stdin` (a host file) or /dev/null; Err is a one-line reason.
    pub(super) fn execute(&self, path: &str, args: &[&str], stdin: Option<&Path>) -> Result<Outcome, String> {
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
    pub(super) fn command(&self, path: &str, args: &[&str]) -> Result<Command, String> {
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
pub(super) fn host_path(root: &Path, inside: &str) -> PathBuf {
    if is_host_root(root) {
        PathBuf::from(inside)
    } else {
        root.join(inside.trim_start_matches('/'))
    }
}

/// The host chroot binary and the absolute root, or why chroot mode cannot work.
pub(super) fn chroot_setup(root: &Path) -> Result<(PathBuf, PathBuf), String> {
    let chroot = host_chroot()
        .ok_or_else(|| format!("no chroot binary on the host (looked for {})", CHROOT_CANDIDATES.join(", ")))?;
    let root = std::path::absolute(root).map_err(|e| format!("cannot resolve root {}: {e}", root.display()))?;
    Ok((chroot.to_path_buf(), root))
}

/// stdin for a command: a host file, or /dev/null.
pub(super) fn open_stdin(path: Option<&Path>) -> Result<Input, String> {
    match path {
        None => Ok(Input::Null),
        Some(p) => File::open(p).map(Input::File).map_err(|e| format!("cannot open {}: {e}", p.display())),
    }
}
