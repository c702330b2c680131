//! Locking: our own lock file (fd-lock, bounded wait), and pacman's
//! `db.lck` check for manual commands.
//!
//! pacman's `db.lck` is a file created with O_EXCL, not a flock: its mere
//! existence means a transaction is in flight (or crashed). Manual mutating
//! commands refuse then; the hook entry points run inside that transaction
//! and must not refuse for it.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};

use crate::error::{Error, ErrorId, Result};
use crate::kernel::Dir;

/// Our lock file's name in the state directory.
pub const LOCK_FILE: &str = "lock";
/// The default bounded wait for our lock.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(30);

/// An open lock file; [`Lock::acquire`] takes it exclusively.
pub struct Lock {
    lock: fd_lock::RwLock<File>,
    shown: String,
}

impl Lock {
    /// Opens (creating) the lock file in `dir`, never through a symlink.
    pub fn open(dir: &Dir) -> Result<Lock> {
        let fd = rustix::fs::openat(
            dir.fd(),
            LOCK_FILE,
            OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| Error::io(ErrorId::Locking, format!("cannot open {}", dir.show(LOCK_FILE)), e.into()))?;
        Ok(Lock { lock: fd_lock::RwLock::new(File::from(fd)), shown: dir.show(LOCK_FILE) })
    }

    /// Takes the lock exclusively, waiting at most `wait`; `E_LOCKING` then.
    /// The lock is held until the guard is dropped (or the process dies).
    pub fn acquire(&mut self, wait: Duration) -> Result<fd_lock::RwLockWriteGuard<'_, File>> {
        let deadline = Instant::now() + wait;
        let shown = self.shown.clone();
        loop {
            // Re-borrow each round: try_write's error does not keep the borrow.
            match self.lock.try_write() {
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(Error::io(ErrorId::Locking, format!("cannot lock {shown}"), e)),
            }
            if Instant::now() >= deadline {
                return Err(Error::new(
                    ErrorId::Locking,
                    format!("another oxidizr-hook holds {shown}; gave up after {} s", wait.as_secs()),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.lock.try_write().map_err(|e| Error::io(ErrorId::Locking, format!("cannot lock {shown}"), e))
    }
}

/// Refuses (`E_LOCKING`) when pacman's `db.lck` exists in `dbpath`.
pub fn refuse_if_pacman_running(dbpath: &Path) -> Result<()> {
    let lck = dbpath.join("db.lck");
    if std::fs::symlink_metadata(&lck).is_ok() {
        return Err(Error::new(
            ErrorId::Locking,
            format!(
                "pacman is mid-transaction ({} exists); run this after it finishes (if no pacman is running, remove the stale lock)",
                lck.display()
            ),
        ));
    }
    Ok(())
}
