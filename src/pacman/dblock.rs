//! pacman's database lock, `DBPATH/db.lck`.
//!
//! It is a file created with `O_CREAT|O_EXCL`, not a flock: its existence
//! means a transaction is in flight (or crashed). The hook entry points run
//! inside pacman's transaction and leave it alone. An admin mutation creates
//! it itself, after taking our lock ([`crate::engine::lock`]), and removes it
//! at the end ([`PacmanLock`]): pacman refuses to start a transaction
//! meanwhile ("unable to lock database"), so oxidizr-arch and pacman never
//! change the same files at the same time (DESIGN.md §6.9). One that exists
//! already is refused the way pacman refuses it.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Error, ErrorId, Result};

/// pacman's lock file in its database directory.
pub const PACMAN_LOCK: &str = "db.lck";

/// What an oxidizr-hook writes into the `db.lck` it holds (pacman leaves
/// its own empty): a lock carrying it was made by an oxidizr-hook.
pub const OUR_MARK: &[u8] = b"oxidizr-hook\n";

/// pacman's lock, held by an admin mutation: `DBPATH/db.lck` created with
/// `O_CREAT|O_EXCL` (mode 0600; pacman's own is 0000: only its existence
/// counts, and only root writes the database directory), carrying
/// [`OUR_MARK`], removed when dropped. A crash leaves it behind, like a
/// crashed pacman; the next oxidizr-hook mutation reclaims it (see
/// [`PacmanLock::take`]).
#[derive(Debug)]
pub struct PacmanLock {
    dir: OwnedFd,
    path: PathBuf,
    /// True when a lock left by a crashed oxidizr-hook was reclaimed.
    pub reclaimed: bool,
}

impl PacmanLock {
    /// Creates `dbpath/db.lck`; `E_LOCKING` with pacman's advice when it
    /// exists (pacman is mid-transaction, or one crashed). Call it only
    /// while holding our exclusive lock: a `db.lck` that carries
    /// [`OUR_MARK`] then cannot belong to a running oxidizr-hook (that one
    /// would hold our lock) nor to pacman (which writes none), so it was
    /// left by a crashed oxidizr-hook and is reclaimed once.
    pub fn take(dbpath: &Path) -> Result<PacmanLock> {
        let path = dbpath.join(PACMAN_LOCK);
        let dir = rustix::fs::open(dbpath, OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| {
                // No database there: the same answer the inventory gives.
                let id = if matches!(e, Errno::NOENT | Errno::NOTDIR) { ErrorId::Alpm } else { ErrorId::Locking };
                Error::io(id, format!("cannot open the package database at {}", dbpath.display()), e.into())
            })?;
        let mut reclaimed = false;
        loop {
            match rustix::fs::openat(
                &dir,
                PACMAN_LOCK,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            ) {
                Ok(fd) => {
                    // Best effort: an unmarked lock of ours is only refused
                    // by the next command, never taken for someone else's.
                    let _ = rustix::io::write(&fd, OUR_MARK);
                    return Ok(PacmanLock { dir, path, reclaimed });
                }
                Err(Errno::EXIST) if !reclaimed && ours(&dir) => {
                    rustix::fs::unlinkat(&dir, PACMAN_LOCK, rustix::fs::AtFlags::empty()).map_err(|e| {
                        Error::io(ErrorId::Locking, format!("cannot remove the stale {}", path.display()), e.into())
                    })?;
                    reclaimed = true;
                }
                Err(Errno::EXIST) => return Err(pacman_running(&path)),
                Err(e) => {
                    return Err(Error::io(ErrorId::Locking, format!("cannot create {}", path.display()), e.into()))
                }
            }
        }
    }
}

/// Whether the `db.lck` in `dir` carries [`OUR_MARK`] (read without
/// following a symlink).
fn ours(dir: &OwnedFd) -> bool {
    let Ok(fd) =
        rustix::fs::openat(dir, PACMAN_LOCK, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
    else {
        return false;
    };
    let mut buf = [0u8; 32];
    matches!(rustix::io::read(&fd, &mut buf), Ok(n) if buf[..n] == *OUR_MARK)
}

/// Whether `dbpath/db.lck` was left by an oxidizr-hook (carries
/// [`OUR_MARK`]); meaningful to a caller that holds our lock, shared or
/// exclusive: then no oxidizr-hook is running and the lock is stale.
pub fn pacman_lock_is_ours(dbpath: &Path) -> bool {
    rustix::fs::open(dbpath, OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .is_ok_and(|dir| ours(&dir))
}

impl Drop for PacmanLock {
    fn drop(&mut self) {
        if let Err(e) = rustix::fs::unlinkat(&self.dir, PACMAN_LOCK, rustix::fs::AtFlags::empty()) {
            eprintln!("oxidizr-hook: warning: cannot remove {}: {e}", self.path.display());
        }
    }
}

fn pacman_running(lck: &Path) -> Error {
    Error::new(
        ErrorId::Locking,
        format!(
            "unable to lock database: pacman is mid-transaction ({} exists); run this after it finishes (if you're sure a package manager is not already running, you can remove {})",
            lck.display(),
            lck.display()
        ),
    )
}

/// Whether pacman's `db.lck` exists in `dbpath` (a transaction is in
/// flight, or one crashed).
pub fn pacman_running_in(dbpath: &Path) -> bool {
    std::fs::symlink_metadata(dbpath.join(PACMAN_LOCK)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_left_by_a_crashed_oxidizr_hook_is_reclaimed_and_pacmans_is_not() {
        let tmp = tempfile::tempdir().unwrap();
        let crashed = PacmanLock::take(tmp.path()).unwrap();
        std::mem::forget(crashed); // as if SIGKILLed: the file stays
        assert!(pacman_lock_is_ours(tmp.path()));
        let again = PacmanLock::take(tmp.path()).unwrap();
        assert!(again.reclaimed);
        drop(again);
        std::fs::write(tmp.path().join(PACMAN_LOCK), b"").unwrap(); // pacman's: empty
        assert!(!pacman_lock_is_ours(tmp.path()));
        assert_eq!(PacmanLock::take(tmp.path()).unwrap_err().id, ErrorId::Locking);
    }

    #[test]
    fn pacman_lock_is_exclusive_and_removed_on_drop() {
        let tmp = tempfile::tempdir().unwrap();
        let held = PacmanLock::take(tmp.path()).unwrap();
        assert!(pacman_running_in(tmp.path()));
        assert!(!held.reclaimed);
        drop(held);
        std::fs::write(tmp.path().join(PACMAN_LOCK), b"").unwrap();
        let e = PacmanLock::take(tmp.path()).unwrap_err();
        assert_eq!(e.id, ErrorId::Locking);
        assert!(e.reason.contains("unable to lock database"), "{}", e.reason);
        std::fs::remove_file(tmp.path().join(PACMAN_LOCK)).unwrap();
        assert!(!pacman_running_in(tmp.path()));
    }
}
