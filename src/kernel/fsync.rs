//! Timed fsync: every durability point is measured, and one slower than
//! [`SLOW_FSYNC`] is flagged as a warning (journal + report), because a
//! hook that stalls inside `pacman -Syu` must be visible.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, ErrorId, Result};

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
}
