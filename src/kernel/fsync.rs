//! Timed fsync: every durability point is measured, and one slower than
//! [`SLOW_FSYNC`] is flagged as a warning (journal + report), because a
//! hook that stalls inside `pacman -Syu` must be visible.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, ErrorId, Result};
use crate::parallel::parallel_map;

/// At most this many fsyncs of one batch run at the same time.
pub const FSYNC_WORKERS: usize = 16;

/// An fsync slower than this is flagged.
pub const SLOW_FSYNC: Duration = Duration::from_millis(50);

/// The fsyncs of one operation: count, total and slowest time, slow ones.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct FsyncLog {
    /// Number of fsync calls.
    pub count: u32,
    /// Total time spent in fsync, microseconds.
    pub total_us: u64,
    /// The slowest single fsync, microseconds.
    pub max_us: u64,
    /// Every fsync over the threshold: what, and how long (ms).
    pub slow: Vec<(String, u64)>,
}

impl FsyncLog {
    /// fsyncs `fd` (a file or a directory), recording the time. An fsync
    /// error is returned, never ignored: durability was claimed and lost.
    pub fn fsync(&mut self, fd: impl AsFd, what: &str) -> Result<()> {
        let t0 = Instant::now();
        let res = rustix::fs::fsync(fd);
        let took = t0.elapsed();
        self.record(what, took);
        res.map_err(|e| Error::io(ErrorId::Io, format!("fsync of {what} failed"), e.into()))
    }

    /// Records one fsync duration.
    pub fn record(&mut self, what: &str, took: Duration) {
        let us = took.as_micros() as u64;
        self.count += 1;
        self.total_us += us;
        self.max_us = self.max_us.max(us);
        if took > SLOW_FSYNC {
            let ms = took.as_millis() as u64;
            tracing::warn!(what, ms, "slow fsync");
            self.slow.push((what.to_string(), ms));
        }
    }

    /// fsyncs every file of a batch, up to [`FSYNC_WORKERS`] at a time:
    /// concurrent fsyncs share the filesystem's journal commits (ext4, xfs
    /// and btrfs group commit), so a batch costs a few commits instead of
    /// one per file. Returns after every fsync finished, Ok only when all
    /// succeeded (else the first failure in batch order); each is recorded.
    pub fn fsync_many(&mut self, files: &[(BorrowedFd<'_>, String)]) -> Result<()> {
        let results = parallel_map(files, FSYNC_WORKERS, |(fd, _)| {
            let t0 = Instant::now();
            let res = rustix::fs::fsync(fd);
            (t0.elapsed(), res)
        });
        let mut first_error = None;
        for ((_, what), (took, res)) in files.iter().zip(results) {
            self.record(what, took);
            if let (Err(e), None) = (res, &first_error) {
                first_error = Some(Error::io(ErrorId::Io, format!("fsync of {what} failed"), e.into()));
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Adds another log's figures to this one.
    pub fn absorb(&mut self, other: FsyncLog) {
        self.count += other.count;
        self.total_us += other.total_us;
        self.max_us = self.max_us.max(other.max_us);
        self.slow.extend(other.slow);
    }

    /// Whether any fsync was over the threshold.
    pub fn has_slow(&self) -> bool {
        !self.slow.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_fsyncs_are_flagged() {
        let mut log = FsyncLog::default();
        log.record("fast", Duration::from_millis(1));
        assert!(!log.has_slow());
        log.record("slow", Duration::from_millis(51));
        assert_eq!(log.slow, vec![("slow".to_string(), 51)]);
        assert_eq!(log.count, 2);
        assert_eq!(log.max_us, 51_000);
    }

    #[test]
    fn fsync_of_a_real_file_is_counted() {
        let f = tempfile::tempfile().unwrap();
        let mut log = FsyncLog::default();
        log.fsync(&f, "tmpfile").unwrap();
        assert_eq!(log.count, 1);
    }

    #[test]
    fn a_batch_fsyncs_every_file_and_reports_the_first_failure() {
        let files: Vec<std::fs::File> = (0..40).map(|_| tempfile::tempfile().unwrap()).collect();
        let batch: Vec<(BorrowedFd, String)> =
            files.iter().enumerate().map(|(i, f)| (f.as_fd(), format!("file {i}"))).collect();
        let mut log = FsyncLog::default();
        log.fsync_many(&batch).unwrap();
        assert_eq!(log.count, 40);
        // fsync of a socket fails (EINVAL): the batch still fsyncs the
        // rest, records all of them and names the first failure.
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut mixed: Vec<(BorrowedFd, String)> = batch[..3].to_vec();
        mixed.insert(1, (a.as_fd(), "socket a".into()));
        mixed.push((b.as_fd(), "socket b".into()));
        let mut log = FsyncLog::default();
        let e = log.fsync_many(&mixed).unwrap_err();
        assert!(e.reason.contains("socket a"), "{e}");
        assert_eq!(log.count, 5);
    }
}
