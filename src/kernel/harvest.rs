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
use super::fsync::{FsyncLog, FSYNC_WORKERS};
use crate::error::{Error, ErrorId, Result};
use crate::parallel::parallel_map;

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
    let item = HarvestItem { src, name, dst, dst_name, known_sha256: None };
    Ok(harvest_many(&[item], log)?.remove(0))
}

/// One file for [`harvest_many`].
pub struct HarvestItem<'a> {
    /// The directory holding the file.
    pub src: &'a Dir,
    /// The file's name there.
    pub name: &'a str,
    /// The store directory.
    pub dst: &'a Dir,
    /// The name to keep it under.
    pub dst_name: &'a str,
    /// The sha256 a caller computed moments ago for this very inode: used
    /// only when `dst_name` already is the same inode (nothing to store).
    pub known_sha256: Option<&'a str>,
}

/// A file linked (or copied) to a temporary name, waiting to be published.
struct Pending {
    index: usize,
    tmp: String,
    replace: bool,
    degraded: bool,
    sha256: String,
}

/// [`harvest`] for many files with the durability points batched: every
/// file is linked to a temporary name and fsynced (concurrently, see
/// `stage_all`), then all are renamed into place, and each store directory
/// is fsynced once. Each stored name appears by one rename of a durable
/// inode, so a crash leaves every name absent, the old file or the new one.
/// Results are in item order; on an error no temporary name is left behind.
pub fn harvest_many(items: &[HarvestItem], log: &mut FsyncLog) -> Result<Vec<Harvested>> {
    let mut done: Vec<Option<Harvested>> = vec![None; items.len()];
    let mut pending: Vec<Pending> = Vec::new();
    let published = stage_all(items, &mut done, &mut pending, log)
        .and_then(|()| publish_all(items, &mut pending))
        .and_then(|published| sync_dirs(items, &published, log).map(|()| published));
    let published = match published {
        Ok(p) => p,
        Err(e) => {
            for p in &pending {
                let _ = items[p.index].dst.remove_file(&p.tmp);
            }
            return Err(e);
        }
    };
    for p in published {
        let it = &items[p.index];
        let stored = match it.dst.entry(it.dst_name)? {
            Entry::File(m) => m,
            other => {
                return Err(Error::new(
                    ErrorId::AtomicSwap,
                    format!("{} became a {}", it.dst.show(it.dst_name), other.kind()),
                ))
            }
        };
        if p.degraded {
            tracing::warn!(path = %it.src.show(it.name), "harvested by copy across filesystems (degraded)");
        }
        done[p.index] = Some(Harvested { stored, sha256: p.sha256, degraded: p.degraded, already: false });
    }
    Ok(done.into_iter().map(|h| h.expect("every item harvested")).collect())
}

/// How one file of a batch was staged.
enum Staged {
    /// Already stored: nothing to do.
    Done(Harvested),
    /// Linked (or copied) to a temporary name and made durable.
    Pending(Pending),
}

/// Hashes every file, links the ones not yet stored to temporary names and
/// fsyncs them, the files on up to [`FSYNC_WORKERS`] threads: one file's
/// hash overlaps another's fsync, and the concurrent fsyncs share journal
/// commits. Every temporary name made is in `pending`, also on an error.
fn stage_all(
    items: &[HarvestItem],
    done: &mut [Option<Harvested>],
    pending: &mut Vec<Pending>,
    log: &mut FsyncLog,
) -> Result<()> {
    let indexed: Vec<(usize, &HarvestItem)> = items.iter().enumerate().collect();
    let staged = parallel_map(&indexed, FSYNC_WORKERS, |(index, it)| {
        let mut own = FsyncLog::default();
        let staged = stage_one(*index, it, &mut own);
        (own, staged)
    });
    let mut first_error = None;
    for (index, (own, staged)) in staged.into_iter().enumerate() {
        log.absorb(own);
        match staged {
            Ok(Staged::Done(h)) => done[index] = Some(h),
            Ok(Staged::Pending(p)) => pending.push(p),
            Err((tmp, e)) => {
                if let Some(tmp) = tmp {
                    pending.push(Pending { index, tmp, replace: false, degraded: false, sha256: String::new() });
                }
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Stages one file: its hash, whether the store holds it already, and if
/// not a durable inode at a temporary name in the store. The data pacman
/// wrote may still be only in the page cache: the inode is fsynced before
/// the store claims to hold it. An error names the temporary name made.
fn stage_one(
    index: usize,
    it: &HarvestItem,
    log: &mut FsyncLog,
) -> std::result::Result<Staged, (Option<String>, Error)> {
    let meta = match it.src.entry(it.name).map_err(|e| (None, e))? {
        Entry::File(m) => m,
        other => {
            let why = format!("cannot harvest {}: it is a {}, not a regular file", it.src.show(it.name), other.kind());
            return Err((None, Error::new(ErrorId::Ownership, why)));
        }
    };
    if let (Some(sha), Entry::File(stored)) = (it.known_sha256, it.dst.entry(it.dst_name).map_err(|e| (None, e))?) {
        if stored.same_inode(&meta) {
            return Ok(Staged::Done(Harvested { stored, sha256: sha.to_string(), degraded: false, already: true }));
        }
    }
    let fd = it.src.open_file(it.name).map_err(|e| (None, e))?;
    let sha256 = sha256_fd(&fd, &it.src.show(it.name)).map_err(|e| (None, e))?;
    let replace = match already_stored(it.dst, it.dst_name, &meta, &sha256).map_err(|e| (None, e))? {
        Stored::Same(h) => return Ok(Staged::Done(h)),
        Stored::Absent => false,
        Stored::Different => true,
    };
    let (tmp, degraded) = match link_tmp(it.src, it.name, it.dst) {
        Ok(tmp) => (tmp, false),
        Err(Errno::XDEV) => (copy_to_tmp(&fd, &meta, it.dst, it.dst_name, log).map_err(|e| (None, e))?, true),
        Err(e) => {
            let why = format!("cannot link {} into the store", it.src.show(it.name));
            return Err((None, Error::io(ErrorId::Io, why, e.into())));
        }
    };
    crash::point("harvest:after-tmp");
    if !degraded {
        // The temporary name is this very inode: fsync it through `fd`.
        if let Err(e) = log.fsync(&fd, &it.dst.show(&tmp)) {
            return Err((Some(tmp), e));
        }
    }
    Ok(Staged::Pending(Pending { index, tmp, replace, degraded, sha256 }))
}

/// Renames every staged file into place and returns them; on an error
/// `pending` is left holding those not renamed (their temporary names).
fn publish_all(items: &[HarvestItem], pending: &mut Vec<Pending>) -> Result<Vec<Pending>> {
    let mut published = Vec::with_capacity(pending.len());
    let mut rest = std::mem::take(pending).into_iter();
    while let Some(p) = rest.next() {
        let it = &items[p.index];
        let renamed = if p.replace {
            tracing::warn!(path = %it.dst.show(it.dst_name), "stored binary replaced by the file pacman reinstalled");
            it.dst.rename(&p.tmp, it.dst_name)
        } else {
            it.dst.rename_noreplace(&p.tmp, it.dst, it.dst_name)
        };
        if let Err(e) = renamed {
            let shown = it.dst.show(it.dst_name);
            pending.push(p);
            pending.extend(rest);
            return Err(Error::io(ErrorId::AtomicSwap, format!("cannot publish {shown}"), e.into()));
        }
        published.push(p);
        crash::point("harvest:after-rename");
    }
    Ok(published)
}

/// fsyncs each distinct store directory of the published files once.
fn sync_dirs(items: &[HarvestItem], published: &[Pending], log: &mut FsyncLog) -> Result<()> {
    let mut synced: Vec<&Dir> = Vec::new();
    for p in published {
        let dst = items[p.index].dst;
        if !synced.iter().any(|d| std::ptr::eq(*d, dst) || d.path() == dst.path()) {
            dst.sync(log)?;
            synced.push(dst);
        }
    }
    Ok(())
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
            Err(Errno::EXIST) => dst.stepped_over(&tmp),
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
