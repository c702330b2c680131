//! Refill: replace a damaged (or missing) stored file by bytes read from a
//! stream — in practice a member extracted from a cached package — only
//! when they are exactly the bytes recorded when the file was harvested.
//!
//! The bytes go to a fresh temporary file created `O_EXCL | O_NOFOLLOW`
//! in the store directory; their sha256 and size are checked against the
//! record before anything else; then owner, mode and mtime are set to the
//! recorded ones and the file is fsynced ([`stage`]). Only the caller's
//! [`Staged::publish`] renames it over the damaged name and fsyncs the
//! directory, so the name always holds either the old file or the verified
//! new one. A staged file that is never published is removed on drop.

use std::io::{Read, Write as _};

use rustix::fs::{Mode, Timespec, Timestamps, UTIME_OMIT};

use super::crash;
use super::digest::sha256_fd;
use super::dir::{Dir, Entry, Meta};
use super::fsync::FsyncLog;
use crate::error::{Error, ErrorId, Result};

/// What the refilled file must be: the record made when it was harvested.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    /// Lowercase hex sha256 of the content (the authority).
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits (setuid/setgid included).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds.
    pub mtime_sec: i64,
    /// Modification time, nanoseconds.
    pub mtime_nsec: u32,
}

/// A verified file under a temporary name in its directory, not yet
/// published. Dropping it without [`Staged::publish`] removes it.
#[derive(Debug)]
pub struct Staged<'d> {
    dir: &'d Dir,
    tmp: Option<String>,
    meta: Meta,
}

impl Staged<'_> {
    /// The staged file's metadata (its device and inode are the ones the
    /// name will have once published).
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// Renames the staged file over `name` (a regular file or absent;
    /// anything else is `E_OWNERSHIP` and nothing changes) and fsyncs the
    /// directory. Returns the published file's metadata.
    pub fn publish(mut self, name: &str, log: &mut FsyncLog) -> Result<Meta> {
        let tmp = self.tmp.take().expect("a staged file is published once");
        let dir = self.dir;
        let fail = |e: Error| {
            let _ = dir.remove_file(&tmp);
            Err(e)
        };
        match dir.entry(name) {
            Ok(Entry::File(_) | Entry::Absent) => {}
            Ok(other) => {
                return fail(Error::new(
                    ErrorId::Ownership,
                    format!("{} is a {}, not a stored binary: refusing to replace it", dir.show(name), other.kind()),
                ))
            }
            Err(e) => return fail(e),
        }
        if let Err(e) = dir.rename(&tmp, name) {
            return fail(Error::io(ErrorId::AtomicSwap, format!("cannot replace {}", dir.show(name)), e.into()));
        }
        crash::point("refill:after-rename");
        dir.sync(log)?;
        Ok(self.meta)
    }
}

impl Drop for Staged<'_> {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = self.dir.remove_file(&tmp);
        }
    }
}

/// Writes what `src` yields (at most `want.size + 1` bytes are read) to a
/// fresh temporary file in `dir`, and keeps it only if its size and sha256
/// are `want`'s: then sets owner, mode and mtime to `want`'s (owner first:
/// chown clears setuid bits) and fsyncs it. A mismatch is
/// `E_BACKUP_MISSING` naming both digests; the temporary file is removed on
/// every failure. `purpose` names the temporary file (e.g. the applet).
pub fn stage<'d>(
    dir: &'d Dir,
    purpose: &str,
    src: &mut dyn Read,
    want: &Expected,
    what: &str,
    log: &mut FsyncLog,
) -> Result<Staged<'d>> {
    let (tmp, fd) = dir.tmp_file(purpose, 0o600)?;
    // From here on the guard removes the temporary file on any error.
    let mut staged = Staged { dir, tmp: Some(tmp.clone()), meta: placeholder() };
    let shown = dir.show(&tmp);
    let io = |what: &str, e: std::io::Error| Error::io(ErrorId::Io, format!("{what} {shown}"), e);
    let mut file = std::fs::File::from(fd.try_clone().map_err(|e| io("cannot dup", e))?);
    let n = std::io::copy(&mut src.take(want.size.saturating_add(1)), &mut file).map_err(|e| io("cannot fill", e))?;
    file.flush().map_err(|e| io("cannot write", e))?;
    crash::point("refill:after-write");
    if n != want.size {
        let is = if n > want.size { "larger than".to_string() } else { format!("{n} bytes, not") };
        return Err(Error::new(ErrorId::BackupMissing, format!("{what} is {is} the recorded {} bytes", want.size)));
    }
    let got = sha256_fd(&fd, &shown)?;
    if got != want.sha256 {
        return Err(Error::new(
            ErrorId::BackupMissing,
            format!("{what} has sha256 {got}, expected the recorded {}", want.sha256),
        ));
    }
    rustix::fs::fchown(&fd, Some(rustix::fs::Uid::from_raw(want.uid)), Some(rustix::fs::Gid::from_raw(want.gid)))
        .map_err(|e| io("cannot set the owner of", e.into()))?;
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(want.mode)).map_err(|e| io("cannot set the mode of", e.into()))?;
    let times = Timestamps {
        last_access: Timespec { tv_sec: 0, tv_nsec: UTIME_OMIT },
        last_modification: Timespec { tv_sec: want.mtime_sec, tv_nsec: want.mtime_nsec as _ },
    };
    rustix::fs::futimens(&fd, &times).map_err(|e| io("cannot set the times of", e.into()))?;
    log.fsync(&fd, &shown)?;
    crash::point("refill:after-stage");
    let st = rustix::fs::fstat(&fd).map_err(|e| io("cannot stat", e.into()))?;
    staged.meta = Meta::from_stat(&st);
    Ok(staged)
}

fn placeholder() -> Meta {
    Meta { dev: 0, ino: 0, mode: 0, uid: 0, gid: 0, size: 0, mtime_sec: 0, mtime_nsec: 0, nlink: 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layout::Layout;
    use sha2::{Digest, Sha256};

    fn want(bytes: &[u8]) -> Expected {
        Expected {
            sha256: Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect(),
            size: bytes.len() as u64,
            mode: 0o751,
            uid: rustix::process::geteuid().as_raw(),
            gid: rustix::process::getegid().as_raw(),
            mtime_sec: 1_700_000_000,
            mtime_nsec: 123_456_789,
        }
    }

    fn names(dir: &Dir) -> Vec<String> {
        dir.list().unwrap()
    }

    fn store(root: &std::path::Path) -> (Layout, Dir) {
        let layout = Layout::open(root).unwrap();
        let dir = layout.dir("usr/lib/oxidizr-arch/store/gnu/coreutils-9.10-1", true).unwrap();
        (layout, dir)
    }

    #[test]
    fn verified_bytes_replace_the_damaged_file_with_the_recorded_metadata() {
        let root = tempfile::tempdir().unwrap();
        let (_layout, dir) = store(root.path());
        let host = root.path().join("usr/lib/oxidizr-arch/store/gnu/coreutils-9.10-1/ls");
        std::fs::write(&host, b"damaged").unwrap();
        let mut log = FsyncLog::default();
        let w = want(b"the real ls");
        let staged = stage(&dir, "refetch.ls", &mut &b"the real ls"[..], &w, "ls", &mut log).unwrap();
        assert_eq!(std::fs::read(&host).unwrap(), b"damaged", "nothing changes before publish");
        let staged_ino = staged.meta().ino;
        let meta = staged.publish("ls", &mut log).unwrap();
        assert_eq!(std::fs::read(&host).unwrap(), b"the real ls");
        assert_eq!(names(&dir), ["ls"]);
        assert_eq!(meta.ino, staged_ino);
        let Entry::File(now) = dir.entry("ls").unwrap() else { panic!("not a file") };
        assert_eq!((now.ino, now.mode, now.uid, now.gid), (staged_ino, 0o751, w.uid, w.gid));
        assert_eq!((now.mtime_sec, now.mtime_nsec), (1_700_000_000, 123_456_789));
    }

    #[test]
    fn other_bytes_are_refused_and_leave_nothing_behind() {
        let root = tempfile::tempdir().unwrap();
        let (_layout, dir) = store(root.path());
        let mut log = FsyncLog::default();
        let w = want(b"the real ls");
        for (bytes, why) in [
            (&b"the fake ls"[..], "has sha256"),
            (&b"short"[..], "5 bytes, not the recorded 11 bytes"),
            (&b"the real ls and more"[..], "larger than the recorded 11 bytes"),
        ] {
            let e = stage(&dir, "refetch.ls", &mut &bytes[..], &w, "usr/bin/ls of pkg", &mut log).unwrap_err();
            assert_eq!(e.id, ErrorId::BackupMissing);
            assert!(e.reason.contains(why), "{}", e.reason);
            assert!(names(&dir).is_empty(), "{:?}", names(&dir));
        }
    }

    #[test]
    fn an_unpublished_or_refused_stage_is_removed() {
        let root = tempfile::tempdir().unwrap();
        let (_layout, dir) = store(root.path());
        let mut log = FsyncLog::default();
        let w = want(b"x");
        drop(stage(&dir, "refetch.ls", &mut &b"x"[..], &w, "ls", &mut log).unwrap());
        assert!(names(&dir).is_empty());
        dir.subdir("ls", true).unwrap();
        let staged = stage(&dir, "refetch.ls", &mut &b"x"[..], &w, "ls", &mut log).unwrap();
        let e = staged.publish("ls", &mut log).unwrap_err();
        assert_eq!(e.id, ErrorId::Ownership);
        assert_eq!(names(&dir), ["ls"]);
        assert!(matches!(dir.entry("ls").unwrap(), Entry::Directory(_)));
    }
}
