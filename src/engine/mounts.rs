//! What the filesystems under our paths are and allow: the filesystem type
//! (for the facts: a problem seen on one machine is read with it) and the
//! mount flags preflight refuses on. `/usr/bin` must be writable; our tree
//! `/usr/lib/oxidizr-arch` must be writable and allow execution (every
//! managed command executes a file in it: the GNU store, or resolves
//! through it), checked on the nearest existing directory when it does not
//! exist yet. Read through `fstatfs`/`fstatvfs` on our directory handles.

use rustix::fs::StatVfsMountFlags;

use crate::error::{Error, ErrorId, Result};
use crate::kernel::Dir;

/// The name of a filesystem type from its `statfs` magic (`f_type`).
pub fn fs_name(magic: u64) -> String {
    match magic {
        0xEF53 => "ext2/3/4".into(),
        0x9123_683E => "btrfs".into(),
        0x5846_5342 => "xfs".into(),
        0x0102_1994 => "tmpfs".into(),
        0x794C_7630 => "overlayfs".into(),
        0x2FC1_2FC1 => "zfs".into(),
        0xF2F5_2010 => "f2fs".into(),
        0x5346_544E => "ntfs".into(),
        0x4D44 => "vfat".into(),
        0x6969 => "nfs".into(),
        0xCA45_1A4E => "bcachefs".into(),
        0x6573_5546 => "fuse".into(),
        0x3153_464A => "jfs".into(),
        0x5265_4973 => "reiserfs".into(),
        0x7346_4673 => "squashfs-or-unknown".into(),
        other => format!("0x{other:x}"),
    }
}

/// The filesystem type of the directory `dir` (see [`fs_name`]).
pub fn fs_type(dir: &Dir) -> Result<String> {
    let st = rustix::fs::fstatfs(dir.fd())
        .map_err(|e| Error::io(ErrorId::Io, format!("cannot statfs {}", dir.path().display()), e.into()))?;
    #[allow(clippy::unnecessary_cast)]
    Ok(fs_name(st.f_type as u64))
}

/// What a mount must allow for one of our paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Writable (`/usr/bin`: our links are written there).
    Write,
    /// Writable and executable (our tree: the store's binaries run from it).
    WriteExec,
}

/// Why a mount with `flags` does not allow `need` at `shown`, or None.
pub fn refusal(flags: StatVfsMountFlags, need: Need, shown: &str) -> Option<String> {
    if flags.contains(StatVfsMountFlags::RDONLY) {
        return Some(format!(
            "{shown} is on a read-only mount: remount it read-write (mount -o remount,rw) and run again; nothing was changed"
        ));
    }
    if need == Need::WriteExec && flags.contains(StatVfsMountFlags::NOEXEC) {
        return Some(format!(
            "{shown} is on a noexec mount, but the managed commands execute files in it: remount it with exec and run again; nothing was changed"
        ));
    }
    None
}

/// Refuses (`E_POLICY`) when the mount of `dir` (shown as `shown`) does
/// not allow `need`.
pub fn check(dir: &Dir, need: Need, shown: &str) -> Result<()> {
    let st = rustix::fs::fstatvfs(dir.fd())
        .map_err(|e| Error::io(ErrorId::Io, format!("cannot statvfs {shown}"), e.into()))?;
    match refusal(st.f_flag, need, shown) {
        Some(why) => Err(Error::new(ErrorId::Policy, why)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_and_noexec_mounts_are_refused_by_need() {
        let ro = StatVfsMountFlags::RDONLY;
        let noexec = StatVfsMountFlags::NOEXEC | StatVfsMountFlags::NOSUID;
        assert!(refusal(StatVfsMountFlags::empty(), Need::WriteExec, "/x").is_none());
        assert!(refusal(StatVfsMountFlags::NOSUID, Need::WriteExec, "/x").is_none());
        assert!(refusal(ro, Need::Write, "/usr/bin").unwrap().contains("/usr/bin is on a read-only mount"));
        assert!(refusal(ro | noexec, Need::WriteExec, "/l").unwrap().contains("read-only"));
        assert!(refusal(noexec, Need::Write, "/usr/bin").is_none(), "/usr/bin holds only links");
        assert!(refusal(noexec, Need::WriteExec, "/l").unwrap().contains("/l is on a noexec mount"));
    }

    #[test]
    fn known_magics_have_names() {
        assert_eq!(fs_name(0xEF53), "ext2/3/4");
        assert_eq!(fs_name(0x9123683E), "btrfs");
        assert_eq!(fs_name(0x58465342), "xfs");
        assert_eq!(fs_name(0x01021994), "tmpfs");
        assert_eq!(fs_name(0x794c7630), "overlayfs");
        assert_eq!(fs_name(0x1234), "0x1234");
    }

    #[test]
    fn the_type_of_a_real_directory_is_read() {
        let t = tempfile::tempdir().unwrap();
        let fd = rustix::fs::open(
            t.path(),
            rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        let d = Dir::from_fd(fd, t.path().to_path_buf());
        let name = fs_type(&d).unwrap();
        assert!(!name.is_empty());
        // Write only: a build machine's /tmp may well be noexec.
        check(&d, Need::Write, "tmp").unwrap_or_else(|e| panic!("a temp dir is writable: {e}"));
    }
}
