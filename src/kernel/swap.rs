//! Atomic replace of a name by a symlink: `symlinkat` to a fresh temporary
//! name, `renameat` over the name, fsync the directory. The name is never
//! absent: before the rename it is the old entry, after it the new link.
//! The same primitive flips the `active` pointer.

use rustix::io::Errno;

use super::crash;
use super::dir::{Dir, Entry};
use super::fsync::FsyncLog;
use crate::error::{Error, ErrorId, Result};

/// What a swap replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Swapped {
    /// The entry before the swap (the old destination for a symlink).
    pub previous: Entry,
    /// Whether anything changed (false: it already pointed there).
    pub changed: bool,
}

/// Makes `name` in `dir` a symlink to `target`, atomically and durably.
///
/// A directory at `name` is refused (`E_POLICY`): renaming over it would
/// fail anyway and it is never ours. If `name` already is a symlink to
/// `target`, nothing is written. Returns the previous entry.
pub fn replace_with_symlink(dir: &Dir, name: &str, target: &str, log: &mut FsyncLog) -> Result<Swapped> {
    let previous = dir.entry(name)?;
    match &previous {
        Entry::Symlink(_, dest) if dest == target => return Ok(Swapped { previous, changed: false }),
        Entry::Directory(_) => {
            return Err(Error::new(
                ErrorId::Policy,
                format!("{} is a directory: refusing to replace it", dir.show(name)),
            ))
        }
        _ => {}
    }
    rename_symlink_over(dir, name, target)?;
    dir.sync(log)?;
    crash::point("swap:after-fsync");
    Ok(Swapped { previous, changed: true })
}

/// The swap itself, for a caller that has just looked at `name`: a fresh
/// symlink to `target` renamed over it (a directory there is refused by
/// the rename: `E_POLICY`). Atomic; durable once the caller fsyncs `dir`,
/// so that a batch of swaps shares one fsync.
pub fn rename_symlink_over(dir: &Dir, name: &str, target: &str) -> Result<()> {
    let tmp = dir.symlink_tmp(name, target)?;
    crash::point("swap:after-symlink-tmp");
    if let Err(e) = dir.rename(&tmp, name) {
        let _ = dir.remove_file(&tmp);
        let id = if e == Errno::ISDIR { ErrorId::Policy } else { ErrorId::AtomicSwap };
        return Err(Error::io(id, format!("cannot swap {} to {target}", dir.show(name)), e.into()));
    }
    crash::point("swap:after-rename");
    Ok(())
}
