//! Inode flags: a target marked immutable (`chattr +i`) or append-only
//! (`chattr +a`) is refused before anything changes. Read with the
//! FS_IOC_GETFLAGS ioctl, never by running lsattr.

use std::os::fd::AsFd;

use rustix::fs::IFlags;
use rustix::io::Errno;

use crate::error::{Error, ErrorId, Result};

/// The inode flags of an open file or directory; `0` where the filesystem
/// has no such flags (tmpfs answers `ENOTTY`/`EOPNOTSUPP`).
pub fn inode_flags(fd: impl AsFd) -> Result<u32> {
    match rustix::fs::ioctl_getflags(fd) {
        Ok(flags) => Ok(flags.bits()),
        Err(Errno::NOTTY | Errno::OPNOTSUPP | Errno::INVAL | Errno::NOSYS) => Ok(0),
        Err(e) => Err(Error::io(ErrorId::Io, "cannot read inode flags", e.into())),
    }
}

/// Refuses (E_POLICY) when the flags contain immutable or append-only.
pub fn ensure_mutable(flags: u32, shown: &str) -> Result<()> {
    let f = IFlags::from_bits_retain(flags);
    if f.contains(IFlags::IMMUTABLE) {
        return Err(Error::new(ErrorId::Policy, format!("{shown} is immutable (chattr +i): refusing to change it")));
    }
    if f.contains(IFlags::APPEND) {
        return Err(Error::new(ErrorId::Policy, format!("{shown} is append-only (chattr +a): refusing to change it")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immutable_and_append_are_refused() {
        assert!(ensure_mutable(0, "x").is_ok());
        assert_eq!(ensure_mutable(IFlags::IMMUTABLE.bits(), "x").unwrap_err().id, ErrorId::Policy);
        assert_eq!(ensure_mutable(IFlags::APPEND.bits(), "x").unwrap_err().id, ErrorId::Policy);
    }
}
