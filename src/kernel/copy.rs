//! The degraded path across filesystems (EXDEV): copy the bytes and every
//! piece of metadata — owner, mode (setuid bits included), every xattr
//! (security.capability, POSIX ACLs, user.*), atime/mtime — into an
//! exclusively created temporary file, and fsync it. The caller renames it
//! into place. Metadata that cannot be reproduced is an error (`E_EXDEV`),
//! never silently dropped.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{Mode, Timespec, Timestamps};

use super::dir::{Dir, Meta};
use super::fsync::FsyncLog;
use crate::error::{Error, ErrorId, Result};

/// The largest xattr list or value Linux allows (XATTR_LIST_MAX / XATTR_SIZE_MAX).
const XATTR_MAX: usize = 65536;

/// The names of every extended attribute of an open file.
pub fn xattr_names(fd: impl AsFd) -> Result<Vec<String>> {
    let mut buf = vec![0u8; XATTR_MAX];
    let n = match rustix::fs::flistxattr(fd, &mut buf[..]) {
        Ok(n) => n,
        Err(rustix::io::Errno::OPNOTSUPP) => 0,
        Err(e) => return Err(Error::io(ErrorId::Io, "cannot list xattrs", e.into())),
    };
    let mut names: Vec<String> = buf[..n]
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    names.sort();
    Ok(names)
}

fn xattr_value(fd: impl AsFd, name: &str) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; XATTR_MAX];
    let n = rustix::fs::fgetxattr(fd, name, &mut buf[..])
        .map_err(|e| Error::io(ErrorId::Io, format!("cannot read xattr {name}"), e.into()))?;
    buf.truncate(n);
    Ok(buf)
}

/// Copies the regular file `src` into a fresh temporary name in `dst`, with
/// all metadata, fsynced. Returns the temporary name. On any failure the
/// temporary file is removed.
pub fn copy_to_tmp(src: &OwnedFd, src_meta: &Meta, dst: &Dir, purpose: &str, log: &mut FsyncLog) -> Result<String> {
    let (tmp, out) = dst.tmp_file(purpose, 0o600)?;
    match fill(src, src_meta, &out, &dst.show(&tmp), log) {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = dst.remove_file(&tmp);
            Err(e)
        }
    }
}

fn fill(src: &OwnedFd, meta: &Meta, out: &OwnedFd, shown: &str, log: &mut FsyncLog) -> Result<()> {
    let exdev = |what: &str, e: std::io::Error| Error::io(ErrorId::Exdev, format!("{what} {shown}"), e);
    let mut reader = File::from(src.try_clone().map_err(|e| exdev("cannot dup the source for", e))?);
    let mut writer = File::from(out.try_clone().map_err(|e| exdev("cannot dup", e))?);
    std::io::copy(&mut reader, &mut writer).map_err(|e| exdev("cannot copy bytes to", e))?;
    // Owner first: chown clears setuid/setgid and file capabilities, so the
    // mode and the xattrs are applied after it.
    rustix::fs::fchown(out, Some(rustix::fs::Uid::from_raw(meta.uid)), Some(rustix::fs::Gid::from_raw(meta.gid)))
        .map_err(|e| exdev("cannot set the owner of", e.into()))?;
    rustix::fs::fchmod(out, Mode::from_raw_mode(meta.mode)).map_err(|e| exdev("cannot set the mode of", e.into()))?;
    for name in xattr_names(src)? {
        let value = xattr_value(src, &name)?;
        rustix::fs::fsetxattr(out, name.as_str(), &value, rustix::fs::XattrFlags::empty())
            .map_err(|e| exdev(&format!("cannot set xattr {name} on"), e.into()))?;
    }
    let st = rustix::fs::fstat(src).map_err(|e| exdev("cannot stat the source of", e.into()))?;
    let times = Timestamps {
        last_access: Timespec { tv_sec: st.st_atime as i64, tv_nsec: st.st_atime_nsec as _ },
        last_modification: Timespec { tv_sec: meta.mtime_sec, tv_nsec: meta.mtime_nsec as _ },
    };
    rustix::fs::futimens(out, &times).map_err(|e| exdev("cannot set the times of", e.into()))?;
    log.fsync(out, shown)
}
