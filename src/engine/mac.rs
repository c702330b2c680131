//! Mandatory access control labels on our trees, after a flip.
//!
//! The binaries themselves keep their labels by construction: the harvest
//! hard-links the very inode pacman wrote, and an SELinux label is the
//! `security.selinux` xattr of that inode (the EXDEV copy copies every
//! xattr; `tests/kernel.rs` proves xattrs survive both paths). What a flip
//! creates anew is ours: generation directories and their links, the
//! `active` and profile pointers. With SELinux enabled they get the
//! default context of where they were created, which the policy's file
//! contexts may name otherwise, so after a flip the system's own tool
//! (`restorecon -R`) relabels `/usr/lib/oxidizr-arch`, best effort: its
//! outcome is a fact, never a failure of the operation.
//!
//! AppArmor confines by path, not by a label on the file: there is nothing
//! to relabel, and the decision says so only for SELinux.
//!
//! Only at `--root /`: the host's policy and file contexts describe the
//! host, not another root.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::model::layout::LIB;

/// Where SELinux says it is enabled (selinuxfs mounted by the kernel).
const SELINUX_ENFORCE: &str = "/sys/fs/selinux/enforce";
/// Where the system's relabel tool may be (policycoreutils); never PATH.
const RESTORECON: [&str; 4] = ["/usr/bin/restorecon", "/usr/sbin/restorecon", "/sbin/restorecon", "/bin/restorecon"];
/// How long the relabel may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// What to do about labels after a flip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Relabel {
    /// SELinux is not enabled: nothing to relabel.
    NotEnabled,
    /// The root is not the host's `/`: the host's contexts do not apply.
    OtherRoot,
    /// SELinux is enabled but no `restorecon` is installed.
    NoTool,
    /// Run this `restorecon`.
    Run(PathBuf),
}

/// The decision, from what was found (pure: unit-tested).
pub fn decide(selinux_enabled: bool, host_root: bool, tool: Option<PathBuf>) -> Relabel {
    match (selinux_enabled, host_root, tool) {
        (false, _, _) => Relabel::NotEnabled,
        (true, false, _) => Relabel::OtherRoot,
        (true, true, None) => Relabel::NoTool,
        (true, true, Some(t)) => Relabel::Run(t),
    }
}

/// The decision on this machine for `root`.
pub fn decide_here(root: &Path) -> Relabel {
    let enabled = Path::new(SELINUX_ENFORCE).exists();
    let tool = RESTORECON.iter().map(PathBuf::from).find(|p| p.metadata().is_ok_and(|m| m.is_file()));
    decide(enabled, crate::process::is_host_root(root), tool)
}

/// Carries out `decision` (best effort) and says what happened, in one
/// line for the facts' `relabel` field.
pub fn relabel(decision: &Relabel) -> String {
    match decision {
        Relabel::NotEnabled => "selinux not enabled: nothing to relabel".into(),
        Relabel::OtherRoot => "selinux enabled, but the root is not /: not relabeled".into(),
        Relabel::NoTool => "selinux enabled, no restorecon installed: not relabeled".into(),
        Relabel::Run(tool) => {
            let target = format!("/{LIB}");
            let mut cmd = Command::new(tool);
            cmd.arg("-R").arg(&target).env_clear().env("LC_ALL", "C").env("PATH", "/usr/bin:/usr/sbin");
            match crate::process::run(&mut cmd, crate::process::Input::Null, TIMEOUT) {
                Ok(o) if o.status.success() => format!("relabeled {target} with {}", tool.display()),
                Ok(o) => format!(
                    "{} -R {target}: {}: {}",
                    tool.display(),
                    crate::process::status_text(o.status),
                    String::from_utf8_lossy(&o.stderr).lines().next().unwrap_or("")
                ),
                Err(f) => format!("{} -R {target}: {}", tool.display(), f.describe(TIMEOUT)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decision_follows_selinux_the_root_and_the_tool() {
        let tool = || Some(PathBuf::from("/usr/bin/restorecon"));
        assert_eq!(decide(false, true, tool()), Relabel::NotEnabled);
        assert_eq!(decide(false, false, None), Relabel::NotEnabled);
        assert_eq!(decide(true, false, tool()), Relabel::OtherRoot);
        assert_eq!(decide(true, true, None), Relabel::NoTool);
        assert_eq!(decide(true, true, tool()), Relabel::Run(PathBuf::from("/usr/bin/restorecon")));
    }

    #[test]
    fn every_outcome_is_one_line() {
        for d in [Relabel::NotEnabled, Relabel::OtherRoot, Relabel::NoTool] {
            let line = relabel(&d);
            assert!(!line.is_empty() && !line.contains('\n'), "{line}");
        }
        assert_eq!(relabel(&Relabel::NotEnabled), "selinux not enabled: nothing to relabel");
    }

    #[test]
    fn a_failing_or_missing_tool_is_reported_not_raised() {
        // /bin/false stands in for a restorecon that fails.
        let line = relabel(&Relabel::Run(PathBuf::from("/bin/false")));
        assert!(line.starts_with("/bin/false -R /usr/lib/oxidizr-arch: "), "{line}");
        let line = relabel(&Relabel::Run(PathBuf::from("/nonexistent/restorecon")));
        assert!(line.contains("cannot execute"), "{line}");
    }
}
