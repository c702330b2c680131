//! Our lock: the right to mutate oxidizr-arch's trees.
//!
//! Our lock is a `flock(2)` on `/var/lib/oxidizr-arch/lock`, taken with a
//! bounded wait: exclusive for every mutation, shared for `verify`. The
//! guard that wins the lock is the one that holds it (the open file
//! description carries the lock): there is no window between winning and
//! holding, and the kernel releases it when the process dies.
//!
//! pacman's own `db.lck` is [`crate::pacman::dblock`].

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::fs::{flock, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Error, ErrorId, Result};
use crate::kernel::Dir;
use crate::model::layout::{Layout, STATE};

/// Our lock file's name in the state directory.
pub const LOCK_FILE: &str = "lock";
/// The longest wait accepted from the configuration or the command line.
pub const MAX_LOCK_WAIT_SECS: u64 = 24 * 3600;

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
    /// Exclusive (the right to mutate) or shared.
    pub mode: LockMode,
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
                Ok(()) => {
                    return Ok(LockGuard { _file: file, waited: start.elapsed(), attempts: backoff.attempts, mode })
                }
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
}
