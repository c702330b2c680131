//! The rescue check: before a switch, prove that a way back exists by
//! running it. A stock Arch box has no busybox (an optdepend at most), so
//! the first rescue toolset is GNU's own core tools, executed where they
//! are now: pacman's regular file at `/usr/bin/<tool>` (before the first
//! switch, or right after a coreutils upgrade wrote it), else the stored
//! copy in the installed version's store directory, else any other stored
//! version. busybox, when installed, is the second toolset.
//!
//! Every execution goes through the smoke runner: bounded in time, in its
//! own process group, output drained (see [`crate::smoke`]).

use std::path::Path;

use crate::error::{Error, ErrorId, Result};
use crate::smoke::{self, SmokeConfig, SmokeTarget};

/// The GNU tools that make a usable rescue set: enough to list, copy, move,
/// remove, read and link files back into place by hand.
pub const GNU_RESCUE: [&str; 6] = ["ls", "cp", "mv", "rm", "cat", "ln"];

/// Where busybox is looked for, inside the root.
const BUSYBOX: [&str; 2] = ["/usr/bin/busybox", "/bin/busybox"];

/// The rescue toolset that ran (the `rescue_profile` of the facts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Toolset {
    /// The GNU core tools of [`GNU_RESCUE`].
    GnuSubset,
    /// busybox.
    Busybox,
}

impl std::fmt::Display for Toolset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Toolset::GnuSubset => "gnu-subset",
            Toolset::Busybox => "busybox",
        })
    }
}

/// Whether `inside` (an absolute path inside the root) is a regular file,
/// without following a symlink at its last component.
fn regular_file(root: &Path, inside: &str) -> bool {
    std::fs::symlink_metadata(root.join(inside.trim_start_matches('/'))).is_ok_and(|m| m.is_file())
}

/// Where each GNU rescue tool is now: pacman's regular file at
/// `/usr/bin/<tool>`, else the first of `store_dirs` (paths inside the
/// root, the installed version's first) holding it. `Err` names a tool
/// found nowhere.
pub fn locate(root: &Path, store_dirs: &[String]) -> std::result::Result<Vec<SmokeTarget>, String> {
    GNU_RESCUE
        .iter()
        .map(|tool| {
            std::iter::once(format!("/usr/bin/{tool}"))
                .chain(store_dirs.iter().map(|d| format!("{d}/{tool}")))
                .find(|p| regular_file(root, p))
                .map(|path| SmokeTarget { applet: tool.to_string(), path })
                .ok_or_else(|| format!("GNU {tool} is neither at /usr/bin/{tool} nor in the store"))
        })
        .collect()
}

/// Runs the rescue toolsets in order (the GNU core tools, then busybox)
/// and returns the first that works. `E_POLICY` naming the real cause of
/// each failure when none does: nothing is changed then.
pub fn check(cfg: &SmokeConfig, store_dirs: &[String]) -> Result<Toolset> {
    let gnu_problem = match locate(&cfg.root, store_dirs) {
        Ok(targets) => {
            let report = smoke::run(cfg, &targets, None);
            if report.passed {
                return Ok(Toolset::GnuSubset);
            }
            let failed: Vec<String> = report.failures().iter().map(|c| format!("{}: {}", c.name, c.detail)).collect();
            format!("the GNU core tools do not run ({})", failed.join("; "))
        }
        Err(e) => e,
    };
    let busybox_problem = match BUSYBOX.iter().find(|b| regular_file(&cfg.root, b)) {
        Some(path) => {
            // No arguments: busybox prints its usage and exits 0.
            let target = SmokeTarget { applet: "true".to_string(), path: path.to_string() };
            let report = smoke::run(cfg, &[target], None);
            if report.passed {
                return Ok(Toolset::Busybox);
            }
            format!("{path} does not run ({})", report.failures().first().map_or("", |c| c.detail.as_str()))
        }
        None => "busybox is not installed".to_string(),
    };
    let mut reason = format!("no rescue toolset: {gnu_problem}, and {busybox_problem}");
    if let Some(hint) = root_hint(&cfg.root) {
        reason.push_str(&format!(" ({hint})"));
    }
    reason.push_str("; refusing to switch");
    Err(Error::new(ErrorId::Policy, reason))
}

/// What is missing in a `--root` other than `/` for commands to run
/// chrooted in it, if anything is.
fn root_hint(root: &Path) -> Option<String> {
    if crate::process::is_host_root(root) {
        return None;
    }
    if !root.join("dev/null").exists() {
        return Some(format!("{} has no /dev/null: mount /dev in the root", root.display()));
    }
    if !root.join("usr/lib").is_dir() && !root.join("lib").is_dir() {
        return Some(format!("{} has no /usr/lib: its commands cannot load their libraries", root.display()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_prefers_pacmans_file_then_the_store_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        for d in ["usr/bin", "store/new", "store/old"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        for t in GNU_RESCUE {
            std::fs::write(r.join("store/old").join(t), b"x").unwrap();
        }
        std::fs::write(r.join("usr/bin/ls"), b"x").unwrap();
        std::fs::write(r.join("store/new/cp"), b"x").unwrap();
        // Our symlink at /usr/bin/cat is not pacman's file: the store's is used.
        std::os::unix::fs::symlink("/elsewhere", r.join("usr/bin/cat")).unwrap();
        let dirs = vec!["/store/new".to_string(), "/store/old".to_string()];
        let found = locate(r, &dirs).unwrap();
        let path = |t: &str| found.iter().find(|x| x.applet == t).unwrap().path.clone();
        assert_eq!(path("ls"), "/usr/bin/ls");
        assert_eq!(path("cp"), "/store/new/cp");
        assert_eq!(path("cat"), "/store/old/cat");
        assert_eq!(found.len(), GNU_RESCUE.len());
    }

    #[test]
    fn locate_names_a_tool_found_nowhere() {
        let tmp = tempfile::tempdir().unwrap();
        let e = locate(tmp.path(), &[]).unwrap_err();
        assert!(e.contains("GNU ls is neither at /usr/bin/ls nor in the store"), "{e}");
    }

    #[test]
    fn refusal_names_the_cause_not_install_busybox() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = SmokeConfig { root: tmp.path().to_path_buf(), ..SmokeConfig::default() };
        let e = check(&cfg, &[]).unwrap_err();
        assert_eq!(e.id, ErrorId::Policy);
        assert!(e.reason.contains("GNU ls is neither"), "{}", e.reason);
        assert!(e.reason.contains("busybox is not installed"), "{}", e.reason);
        assert!(e.reason.contains("has no /dev/null"), "{}", e.reason);
        assert!(!e.reason.contains("install busybox"), "{}", e.reason);
    }
}
