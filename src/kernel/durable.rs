//! Durable small files (sidecars, state, manifests): written to an
//! exclusive temporary name, fsynced, renamed over the final name, and the
//! directory fsynced. A reader sees the old content or the new, never a
//! torn write; after the directory fsync the new content survives power loss.

use std::io::Write as _;
use std::os::fd::{AsFd, OwnedFd};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::crash;
use super::dir::{Dir, Entry};
use super::fsync::FsyncLog;
use crate::error::{Error, ErrorId, Result};

/// Files we read back are small; anything bigger is corrupt, not data.
pub const MAX_DURABLE_SIZE: u64 = 16 << 20;

/// Writes `bytes` to `name` in `dir` atomically and durably (mode 0644).
pub fn write_durable(dir: &Dir, name: &str, bytes: &[u8], log: &mut FsyncLog) -> Result<()> {
    write_many(dir, &[(name, bytes)], log)
}

/// At most this many temporary files of one batch are open at a time: a
/// batch of any size stays far below the default soft `RLIMIT_NOFILE`
/// (1024), whatever else the process holds open.
pub const MAX_OPEN_FILES: usize = 256;

/// Writes several files of `dir` atomically and durably, with the
/// durability points batched: every file is written to a temporary name,
/// the temporary files are fsynced back to back (in chunks of at most
/// [`MAX_OPEN_FILES`] open files), renamed over their names once all are
/// durable, and `dir` is fsynced once. Each name holds its old content or
/// its new content, never a torn write; when this returns Ok all of them
/// are durable. On an error no temporary name is left behind.
pub fn write_many(dir: &Dir, files: &[(&str, &[u8])], log: &mut FsyncLog) -> Result<()> {
    let mut tmps: Vec<String> = Vec::with_capacity(files.len());
    let written =
        files.chunks(MAX_OPEN_FILES).try_for_each(|chunk| write_tmps(dir, chunk, &mut tmps, log)).and_then(|()| {
            crash::point("durable:after-tmp");
            rename_all(dir, files, &mut tmps)
        });
    if let Err(e) = written {
        for tmp in &tmps {
            let _ = dir.remove_file(tmp);
        }
        return Err(e);
    }
    dir.sync(log)
}

/// Writes every file of a chunk to a fresh temporary name (pushed to
/// `tmps`), then fsyncs them all and closes them.
fn write_tmps(dir: &Dir, files: &[(&str, &[u8])], tmps: &mut Vec<String>, log: &mut FsyncLog) -> Result<()> {
    let first = tmps.len();
    let mut fds: Vec<OwnedFd> = Vec::with_capacity(files.len());
    for (name, bytes) in files {
        dir.check_name(name)?;
        let (tmp, fd) = dir.tmp_file(name, 0o644)?;
        tmps.push(tmp);
        let tmp = tmps.last().expect("just pushed");
        let mut f = std::fs::File::from(fd.try_clone().map_err(|e| Error::io(ErrorId::Io, "dup", e))?);
        f.write_all(bytes).map_err(|e| Error::io(ErrorId::Io, format!("cannot write {}", dir.show(tmp)), e))?;
        fds.push(fd);
    }
    let batch: Vec<_> = fds.iter().zip(&tmps[first..]).map(|(fd, tmp)| (fd.as_fd(), dir.show(tmp))).collect();
    log.fsync_many(&batch)
}

/// Renames every temporary file over its name; on an error `tmps` keeps
/// the ones not renamed.
fn rename_all(dir: &Dir, files: &[(&str, &[u8])], tmps: &mut Vec<String>) -> Result<()> {
    let all = std::mem::take(tmps);
    let mut rest = all.into_iter().zip(files.iter());
    while let Some((tmp, (name, _))) = rest.next() {
        if let Err(e) = dir.rename(&tmp, name) {
            tmps.push(tmp);
            tmps.extend(rest.map(|(t, _)| t));
            return Err(Error::io(ErrorId::AtomicSwap, format!("cannot replace {}", dir.show(name)), e.into()));
        }
        crash::point("durable:after-rename");
    }
    Ok(())
}

/// Serializes `value` as pretty JSON (with a final newline) and writes it durably.
pub fn write_json<T: Serialize>(dir: &Dir, name: &str, value: &T, log: &mut FsyncLog) -> Result<()> {
    write_durable(dir, name, &to_json(value), log)
}

/// `value` as pretty JSON with a final newline: the form of every document
/// we write.
pub fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("our documents serialize");
    bytes.push(b'\n');
    bytes
}

/// Reads `name` (a regular file, never through a symlink); `None` if absent.
pub fn read_bytes(dir: &Dir, name: &str) -> Result<Option<Vec<u8>>> {
    match dir.entry(name)? {
        Entry::Absent => return Ok(None),
        Entry::File(m) if m.size <= MAX_DURABLE_SIZE => {}
        Entry::File(m) => {
            return Err(Error::new(ErrorId::StateCorrupt, format!("{} is {} bytes: too big", dir.show(name), m.size)))
        }
        other => {
            return Err(Error::new(
                ErrorId::StateCorrupt,
                format!("{} is a {}, not a regular file", dir.show(name), other.kind()),
            ))
        }
    }
    let fd = dir.open_file(name)?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::fs::File::from(fd), &mut bytes)
        .map_err(|e| Error::io(ErrorId::Io, format!("cannot read {}", dir.show(name)), e))?;
    Ok(Some(bytes))
}

/// Reads and parses a JSON document; a parse failure is `E_STATE_CORRUPT`
/// naming the file, never silently replaced.
pub fn read_json<T: DeserializeOwned>(dir: &Dir, name: &str) -> Result<Option<T>> {
    let Some(bytes) = read_bytes(dir, name)? else { return Ok(None) };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::new(ErrorId::StateCorrupt, format!("{} is corrupt: {e}", dir.show(name))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::safepath::{SafePath, SafeRoot};

    /// The test process re-runs itself with this variable set to run the
    /// batch under a small fd limit, without lowering the limit of the
    /// other tests running meanwhile.
    const UNDER_LIMIT: &str = "OXIDIZR_TEST_UNDER_FD_LIMIT";

    /// More files than the fd limit allows open at once.
    const FILES: usize = 2000;

    fn batch_under_a_small_limit() {
        let limit = (MAX_OPEN_FILES + 64) as u64;
        let small = rustix::process::Rlimit { current: Some(limit), maximum: Some(limit) };
        rustix::process::setrlimit(rustix::process::Resource::Nofile, small).expect("setrlimit");
        let tmp = tempfile::tempdir().unwrap();
        let root = SafeRoot::open(tmp.path(), &["d"]).unwrap();
        let dir = root.open_dir(&SafePath::parse("d").unwrap(), true).unwrap();
        let names: Vec<String> = (0..FILES).map(|i| format!("f{i}.json")).collect();
        let files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), n.as_bytes())).collect();
        let mut log = FsyncLog::default();
        write_many(&dir, &files, &mut log).unwrap();
        assert_eq!(dir.list().unwrap().len(), FILES);
        assert!(dir.list().unwrap().iter().all(|n| !n.starts_with(".oxidizr-tmp")));
        assert_eq!(read_bytes(&dir, "f1999.json").unwrap().unwrap(), b"f1999.json");
        // Every file and the directory, once each.
        assert_eq!(log.count as usize, FILES + 1);
    }

    #[test]
    fn a_batch_larger_than_the_fd_limit_is_written() {
        if std::env::var_os(UNDER_LIMIT).is_some() {
            return batch_under_a_small_limit();
        }
        crate::kernel::rerun_in_child(
            "kernel::durable::tests::a_batch_larger_than_the_fd_limit_is_written",
            UNDER_LIMIT,
        );
    }
}
