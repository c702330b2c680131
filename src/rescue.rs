//! The rescue check: before committing a switch, prove that a way back
//! exists — busybox, or the GNU core tools in the store — by running it.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::{Error, ErrorId, Result};

/// The GNU tools that make a usable rescue set when busybox is absent.
pub const GNU_RESCUE: [&str; 6] = ["ls", "cp", "mv", "rm", "cat", "ln"];

/// A command run inside `root` (chrooted by the host's `chroot` when the
/// root is not `/`), clean environment, no stdin.
pub fn command_in_root(root: &Path, path: &str) -> Command {
    let mut cmd = if root == Path::new("/") {
        Command::new(path)
    } else {
        // The host's chroot, wherever the distribution keeps it (Arch:
        // /usr/bin, Debian: /usr/sbin); never looked up through PATH.
        let chroot = ["/usr/bin/chroot", "/usr/sbin/chroot", "/bin/chroot", "/sbin/chroot"]
            .into_iter()
            .find(|c| Path::new(c).exists())
            .unwrap_or("/usr/bin/chroot");
        let mut c = Command::new(chroot);
        c.arg("--").arg(root).arg(path);
        c
    };
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

fn runs(root: &Path, path: &str, args: &[&str]) -> bool {
    root.join(path.trim_start_matches('/')).exists()
        && command_in_root(root, path).args(args).status().map(|s| s.success()).unwrap_or(false)
}

/// Which rescue toolset works: `busybox`, or `gnu-store` when every tool of
/// [`GNU_RESCUE`] runs from `store_dir` (a path inside the root).
/// `E_POLICY` when neither does: nothing is changed then.
pub fn check(root: &Path, store_dir: Option<&str>) -> Result<&'static str> {
    for busybox in ["/usr/bin/busybox", "/bin/busybox"] {
        if runs(root, busybox, &["true"]) {
            return Ok("busybox");
        }
    }
    if let Some(dir) = store_dir {
        if GNU_RESCUE.iter().all(|t| runs(root, &format!("{dir}/{t}"), &["--version"])) {
            return Ok("gnu-store");
        }
    }
    Err(Error::new(
        ErrorId::Policy,
        "no rescue toolset: neither busybox nor the GNU core tools in the store run; refusing to switch (install busybox)",
    ))
}
