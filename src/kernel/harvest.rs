//! Harvest: keep the very inode pacman wrote by hard-linking it into the
//! store. Owner, mode, times, xattrs, security.capability and ACLs are kept
//! by construction. Across filesystems (EXDEV) the file is copied with all
//! its metadata and the result is reported `degraded`.

use rustix::fs::AtFlags;
use rustix::io::Errno;

use super::copy::copy_to_tmp;
use super::crash;
use super::digest::sha256_fd;
use super::dir::{Dir, Entry, Meta};
use super::fsync::FsyncLog;
use crate::error::{Error, ErrorId, Result};

/// The result of a harvest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Harvested {
    /// The stored entry's metadata.
    pub stored: Meta,
    /// sha256 of the content.
    pub sha256: String,
    /// True when it had to be copied (EXDEV) instead of hard-linked.
    pub degraded: bool,
    /// True when the store already held this very file (nothing was done).
    pub already: bool,
}

/// Hard-links the regular file `name` in `src` to `dst_name` in `dst`
/// (copying with all metadata on EXDEV), fsyncs the stored file and `dst`.
///
/// Idempotent: if `dst_name` already holds the same inode, or the same
/// content with the same owner and mode (a reinstall of the same version,
/// or the EXDEV copy), nothing is done. A regular file with other content
/// at `dst_name` is replaced atomically (rename over it): `src` is what
/// pacman installed for that version now, the old bytes are no longer any
/// package's. Anything but a regular file there is `E_OWNERSHIP`.
pub fn harvest(src: &Dir, name: &str, dst: &Dir, dst_name: &str, log: &mut FsyncLog) -> Result<Harvested> {
    let meta = match src.entry(name)? {
        Entry::File(m) => m,
        other => {
            return Err(Error::new(
                ErrorId::Ownership,
                format!("cannot harvest {}: it is a {}, not a regular file", src.show(name), other.kind()),
            ))
        }
    };
    let fd = src.open_file(name)?;
    let sha256 = sha256_fd(&fd, &src.show(name))?;
    let replace = match already_stored(dst, dst_name, &meta, &sha256)? {
        Stored::Same(done) => return Ok(done),
        Stored::Absent => false,
        Stored::Different => true,
    };
    let (tmp, degraded) = match link_tmp(src, name, dst) {
        Ok(tmp) => (tmp, false),
        Err(Errno::XDEV) => (copy_to_tmp(&fd, &meta, dst, dst_name, log)?, true),
        Err(e) => {
            return Err(Error::io(ErrorId::Io, format!("cannot link {} into the store", src.show(name)), e.into()))
        }
    };
    crash::point("harvest:after-tmp");
    // The data pacman wrote may still be only in the page cache: make the
    // inode durable before the store claims to hold it.
    let stored_fd = dst.open_file(&tmp)?;
    log.fsync(&stored_fd, &dst.show(&tmp))?;
    let renamed = if replace {
        tracing::warn!(path = %dst.show(dst_name), "stored binary replaced by the file pacman reinstalled");
        dst.rename(&tmp, dst_name)
    } else {
        dst.rename_noreplace(&tmp, dst, dst_name)
    };
    if let Err(e) = renamed {
        let _ = dst.remove_file(&tmp);
        return Err(Error::io(ErrorId::AtomicSwap, format!("cannot publish {}", dst.show(dst_name)), e.into()));
    }
    crash::point("harvest:after-rename");
    dst.sync(log)?;
    let stored = match dst.entry(dst_name)? {
        Entry::File(m) => m,
        other => {
            return Err(Error::new(ErrorId::AtomicSwap, format!("{} became a {}", dst.show(dst_name), other.kind())))
        }
    };
    if degraded {
        tracing::warn!(path = %src.show(name), "harvested by copy across filesystems (degraded)");
    }
    Ok(Harvested { stored, sha256, degraded, already: false })
}

/// What the store holds at a name, compared with the file to harvest.
enum Stored {
    /// Nothing.
    Absent,
    /// This file already (same inode, or same content, owner and mode).
    Same(Harvested),
    /// Another regular file.
    Different,
}

fn already_stored(dst: &Dir, dst_name: &str, meta: &Meta, sha256: &str) -> Result<Stored> {
    let stored = match dst.entry(dst_name)? {
        Entry::Absent => return Ok(Stored::Absent),
        Entry::File(m) => m,
        other => {
            return Err(Error::new(
                ErrorId::Ownership,
                format!("{} is a {}, not a stored binary", dst.show(dst_name), other.kind()),
            ))
        }
    };
    if stored.same_inode(meta) {
        return Ok(Stored::Same(Harvested { stored, sha256: sha256.to_string(), degraded: false, already: true }));
    }
    let stored_sha = sha256_fd(&dst.open_file(dst_name)?, &dst.show(dst_name))?;
    // The mtime too: pacman -Qkk compares it, and restore must give it back.
    let same_meta = stored.mode == meta.mode
        && stored.uid == meta.uid
        && stored.gid == meta.gid
        && (stored.mtime_sec, stored.mtime_nsec) == (meta.mtime_sec, meta.mtime_nsec);
    if stored_sha == sha256 && same_meta {
        let degraded = stored.dev != meta.dev;
        return Ok(Stored::Same(Harvested { stored, sha256: stored_sha, degraded, already: true }));
    }
    Ok(Stored::Different)
}

/// Hard-links `name` to a fresh temporary name in `dst` (no symlink followed).
fn link_tmp(src: &Dir, name: &str, dst: &Dir) -> std::result::Result<String, Errno> {
    for _ in 0..64 {
        let tmp = dst.tmp_name(name);
        match rustix::fs::linkat(src.fd(), name, dst.fd(), tmp.as_str(), AtFlags::empty()) {
            Ok(()) => return Ok(tmp),
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Errno::EXIST)
}

/// Puts a copy of the stored file `backup_name` of `backup` at a fresh
/// temporary name in `dst`: the same inode by hard link, or (EXDEV) a copy
/// with all metadata. Returns the temporary name and whether it was copied.
pub fn stage_from_store(backup: &Dir, backup_name: &str, dst: &Dir, log: &mut FsyncLog) -> Result<(String, bool)> {
    match link_tmp(backup, backup_name, dst) {
        Ok(tmp) => Ok((tmp, false)),
        Err(Errno::XDEV) => {
            let meta = match backup.entry(backup_name)? {
                Entry::File(m) => m,
                other => {
                    return Err(Error::new(
                        ErrorId::BackupMissing,
                        format!("{} is a {}, not a stored binary", backup.show(backup_name), other.kind()),
                    ))
                }
            };
            let fd = backup.open_file(backup_name)?;
            Ok((copy_to_tmp(&fd, &meta, dst, backup_name, log)?, true))
        }
        Err(Errno::NOENT) => {
            Err(Error::new(ErrorId::BackupMissing, format!("{} is missing", backup.show(backup_name))))
        }
        Err(e) => Err(Error::io(ErrorId::RestoreFailed, format!("cannot link {}", backup.show(backup_name)), e.into())),
    }
}
