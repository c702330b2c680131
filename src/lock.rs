//! Locking: our own lock file, and pacman's `db.lck`.
//!
//! Our lock is a `flock(2)` on `/var/lib/oxidizr-arch/lock`, taken with a
//! bounded wait: exclusive for every mutation, shared for `verify`. The
//! guard that wins the lock is the one that holds it (the open file
//! description carries the lock): there is no window between winning and
//! holding, and the kernel releases it when the process dies.
//!
//! pacman's `db.lck` is a file created with `O_CREAT|O_EXCL`, not a flock:
//! its existence means a transaction is in flight (or crashed). The hook
//! entry points run inside pacman's transaction and leave it alone. An
//! admin mutation creates it itself, after taking our lock, and removes it
//! at the end ([`PacmanLock`]): pacman refuses to start a transaction
//! meanwhile ("unable to lock database"), so oxidizr-arch and pacman never
//! change the same files at the same time (DESIGN.md §6.9). One that exists
//! already is refused the way pacman refuses it.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{flock, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Error, ErrorId, Result};
use crate::kernel::Dir;
use crate::layout::{Layout, STATE};

/// Our lock file's name in the state directory.
pub const LOCK_FILE: &str = "lock";
/// The longest wait accepted from the configuration or the command line.
pub const MAX_LOCK_WAIT_SECS: u64 = 24 * 3600;
/// pacman's lock file in its database directory.
pub const PACMAN_LOCK: &str = "db.lck";

/// The first pause between two attempts; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(2);
/// The longest pause between two attempts (before jitter).
const MAX_PAUSE: Duration = Duration::from_millis(250);

/// How the lock is wanted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    /// Every mutation: no other holder at all.
    Exclusive,
    /// Readers (`verify`): no mutation runs meanwhile, other readers may.
    Shared,
}

/// The held lock: released when dropped (or when the process dies).
#[derive(Debug)]
pub struct LockGuard {
    _file: OwnedFd,
    /// How long the wait took.
    pub waited: Duration,
    /// How many times the lock was tried (1: free at once).
    pub attempts: u32,
}

/// An open lock file; [`Lock::acquire`] takes it.
pub struct Lock {
    file: OwnedFd,
    shown: String,
}

impl Lock {
    /// Opens (creating, mode 0600) the lock file in `dir`, never through a
    /// symlink.
    pub fn open(dir: &Dir) -> Result<Lock> {
        let fd = rustix::fs::openat(
            dir.fd(),
            LOCK_FILE,
            OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| Error::io(ErrorId::Locking, format!("cannot open {}", dir.show(LOCK_FILE)), e.into()))?;
        Ok(Lock { file: fd, shown: dir.show(LOCK_FILE) })
    }

    /// Opens the lock file read-only for a shared lock (`verify`, which may
    /// run unprivileged): None when there is none yet (nothing was ever
    /// switched) or the caller may not open it (an unprivileged reader
    /// cannot race a mutation it could not start; it then checks unlocked).
    pub fn open_existing(root: &Path, layout: &Layout) -> Result<Option<Lock>> {
        if !root.join(STATE).is_dir() {
            return Ok(None);
        }
        let dir = layout.state(false)?;
        match rustix::fs::openat(
            dir.fd(),
            LOCK_FILE,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => Ok(Some(Lock { file: fd, shown: dir.show(LOCK_FILE) })),
            Err(Errno::NOENT | Errno::ACCESS) => Ok(None),
            Err(e) => Err(Error::io(ErrorId::Locking, format!("cannot open {}", dir.show(LOCK_FILE)), e.into())),
        }
    }

    /// Takes the lock in `mode`, waiting at most `wait` with exponential
    /// backoff and jitter; `E_LOCKING` after that. The returned guard holds
    /// the very lock that was won.
    pub fn acquire(self, mode: LockMode, wait: Duration) -> Result<LockGuard> {
        let file = self.file;
        let op = match mode {
            LockMode::Exclusive => FlockOperation::NonBlockingLockExclusive,
            LockMode::Shared => FlockOperation::NonBlockingLockShared,
        };
        let start = Instant::now();
        let mut backoff = Backoff::new(start, wait);
        loop {
            match flock(file.as_fd(), op) {
                Ok(()) => return Ok(LockGuard { _file: file, waited: start.elapsed(), attempts: backoff.attempts }),
                Err(Errno::WOULDBLOCK | Errno::INTR) => {}
                Err(e) => return Err(Error::io(ErrorId::Locking, format!("cannot lock {}", self.shown), e.into())),
            }
            if !backoff.pause() {
                return Err(Error::new(
                    ErrorId::Locking,
                    format!(
                        "another oxidizr-hook holds {}; gave up after {} s ({} attempts)",
                        self.shown,
                        wait.as_secs(),
                        backoff.attempts
                    ),
                ));
            }
        }
    }
}

/// Bounded exponential backoff with jitter: pauses of 2, 4, 8, ... ms up
/// to 250 ms, each between half and all of its nominal length, never past
/// the deadline.
struct Backoff {
    deadline: Option<Instant>,
    next: Duration,
    attempts: u32,
    seed: u64,
}

impl Backoff {
    fn new(start: Instant, wait: Duration) -> Backoff {
        // Any timeout is accepted: one too far to represent has no deadline.
        let seed = u64::from(std::process::id()).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ u64::from(
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos(),
            );
        Backoff { deadline: start.checked_add(wait), next: FIRST_PAUSE, attempts: 1, seed }
    }

    /// Sleeps before the next attempt; false when the deadline has passed.
    fn pause(&mut self) -> bool {
        let now = Instant::now();
        let left = match self.deadline {
            Some(d) if now >= d => return false,
            Some(d) => d - now,
            None => Duration::MAX,
        };
        // xorshift: jitter so that waiters started together spread out.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let nominal = self.next.as_micros() as u64;
        let jittered = Duration::from_micros(nominal / 2 + self.seed % (nominal / 2 + 1));
        std::thread::sleep(jittered.min(left));
        self.next = (self.next * 2).min(MAX_PAUSE);
        self.attempts += 1;
        true
    }
}

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

/// Checks a lock timeout from the configuration or the command line.
pub fn check_wait(secs: u64, id: ErrorId, what: &str) -> Result<Duration> {
    if secs == 0 || secs > MAX_LOCK_WAIT_SECS {
        return Err(Error::new(id, format!("{what} must be between 1 and {MAX_LOCK_WAIT_SECS} seconds, not {secs}")));
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stops_at_the_deadline_and_counts_attempts() {
        let start = Instant::now();
        let mut b = Backoff::new(start, Duration::from_millis(30));
        while b.pause() {}
        assert!(start.elapsed() >= Duration::from_millis(30));
        assert!(b.attempts >= 3, "{} attempts", b.attempts);
        assert!(b.next <= MAX_PAUSE);
    }

    #[test]
    fn an_unrepresentable_wait_has_no_deadline_instead_of_a_panic() {
        let b = Backoff::new(Instant::now(), Duration::MAX);
        assert!(b.deadline.is_none());
    }

    #[test]
    fn wait_bounds_are_errors_not_panics() {
        assert_eq!(check_wait(0, ErrorId::Usage, "--lock-timeout").unwrap_err().id, ErrorId::Usage);
        assert_eq!(check_wait(u64::MAX, ErrorId::Config, "x").unwrap_err().id, ErrorId::Config);
        assert_eq!(check_wait(30, ErrorId::Config, "x").unwrap(), Duration::from_secs(30));
    }

    #[test]
    fn the_winner_holds_the_lock_exclusive_against_shared_and_shared_together() {
        let tmp = tempfile::tempdir().unwrap();
        let fd = rustix::fs::open(tmp.path(), OFlags::DIRECTORY | OFlags::NOFOLLOW, Mode::empty()).unwrap();
        let dir = Dir::from_fd(fd, tmp.path().to_path_buf());
        let short = Duration::from_millis(20);
        let held = Lock::open(&dir).unwrap().acquire(LockMode::Exclusive, short).unwrap();
        assert_eq!(held.attempts, 1);
        let e = Lock::open(&dir).unwrap().acquire(LockMode::Shared, short).unwrap_err();
        assert_eq!(e.id, ErrorId::Locking);
        assert!(e.reason.contains("attempts"), "{}", e.reason);
        drop(held);
        let r1 = Lock::open(&dir).unwrap().acquire(LockMode::Shared, short).unwrap();
        let r2 = Lock::open(&dir).unwrap().acquire(LockMode::Shared, short).unwrap();
        assert!(Lock::open(&dir).unwrap().acquire(LockMode::Exclusive, short).is_err());
        drop((r1, r2));
        Lock::open(&dir).unwrap().acquire(LockMode::Exclusive, short).unwrap();
    }

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
