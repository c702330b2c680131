//! Dir: an open directory handle and the `*at` operations the kernel is
//! allowed to perform through it. Names are single components; nothing is
//! ever resolved through a symlink.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use super::fsync::FsyncLog;
use super::name::{check_component, open_child_dir};
use crate::error::{Error, ErrorId, Result};

/// What a name in a directory currently is (never followed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Nothing by that name.
    Absent,
    /// A regular file.
    File(Meta),
    /// A symlink and its destination (not followed).
    Symlink(Meta, String),
    /// A directory.
    Directory(Meta),
    /// A fifo, socket or device node.
    Special(Meta),
}

impl Entry {
    /// A short name of the kind, for messages and sidecars.
    pub fn kind(&self) -> &'static str {
        match self {
            Entry::Absent => "none",
            Entry::File(_) => "file",
            Entry::Symlink(..) => "symlink",
            Entry::Directory(_) => "directory",
            Entry::Special(_) => "special",
        }
    }
}

/// The metadata of an entry that restore must reproduce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Device of the inode.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Permission bits including setuid/setgid/sticky (no file type).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds.
    pub mtime_sec: i64,
    /// Modification time, nanoseconds.
    pub mtime_nsec: u32,
    /// Number of hard links.
    pub nlink: u64,
}

impl Meta {
    /// Metadata from a `stat` result.
    // The `st_*` field types differ between architectures: the casts are
    // no-ops on x86_64 only.
    #[allow(clippy::unnecessary_cast)]
    pub fn from_stat(st: &Stat) -> Meta {
        Meta {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            mode: st.st_mode as u32 & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            size: st.st_size as u64,
            mtime_sec: st.st_mtime as i64,
            mtime_nsec: st.st_mtime_nsec as u32,
            nlink: st.st_nlink as u64,
        }
    }

    /// Whether both name the same inode.
    pub fn same_inode(&self, other: &Meta) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

/// An open directory. Every method works on single names inside it.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The number in the next temporary name: the process-wide counter, or a
/// test's pinned sequence for this thread (crash-injection builds only).
fn next_tmp_number() -> u64 {
    #[cfg(any(test, feature = "crash-injection"))]
    if let Some(n) = tmp_testing::take_pinned() {
        return n;
    }
    TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// Test hooks for the temporary names (never in release builds): a test
/// pins the numbers its thread's temporary names take, plants entries at
/// exactly those names, and reads back which planted names the kernel met
/// and stepped over (`EEXIST`), so a test of "a planted name is never
/// followed" fails when no planted name was ever tried.
#[cfg(any(test, feature = "crash-injection"))]
pub mod tmp_testing {
    use std::cell::{Cell, RefCell};
    use std::path::PathBuf;

    thread_local! {
        static PINNED: Cell<Option<u64>> = const { Cell::new(None) };
        static STEPPED_OVER: RefCell<Vec<PathBuf>> = const { RefCell::new(Vec::new()) };
    }

    /// From now on, this thread's temporary names are numbered `start`,
    /// `start + 1`, ... (instead of the process-wide counter, which the
    /// other test threads advance); also forgets what was stepped over.
    pub fn pin_sequence(start: u64) {
        PINNED.with(|p| p.set(Some(start)));
        STEPPED_OVER.with(|s| s.borrow_mut().clear());
    }

    /// Back to the process-wide counter for this thread.
    pub fn unpin() {
        PINNED.with(|p| p.set(None));
    }

    /// The paths of the temporary names this thread found taken (`EEXIST`)
    /// and stepped over since [`pin_sequence`], in order.
    pub fn stepped_over() -> Vec<PathBuf> {
        STEPPED_OVER.with(|s| s.borrow().clone())
    }

    pub(super) fn take_pinned() -> Option<u64> {
        PINNED.with(|p| {
            let n = p.get()?;
            p.set(Some(n + 1));
            Some(n)
        })
    }

    pub(super) fn record(path: PathBuf) {
        STEPPED_OVER.with(|s| s.borrow_mut().push(path));
    }
}

impl Dir {
    /// Wraps an fd that was opened with `O_DIRECTORY | O_NOFOLLOW`.
    pub(crate) fn from_fd(fd: OwnedFd, path: PathBuf) -> Dir {
        Dir { fd, path }
    }

    /// The directory's path, for messages only (never used to resolve).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of a name in this directory, for messages only.
    pub fn show(&self, name: &str) -> String {
        self.path.join(name).display().to_string()
    }

    /// The raw handle.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Opens a child directory (no symlink followed), creating it if asked.
    pub fn subdir(&self, name: &str, create: bool) -> Result<Dir> {
        self.check_name(name)?;
        let path = self.path.join(name);
        let fd = match open_child_dir(&self.fd, name) {
            Ok(fd) => fd,
            Err(Errno::NOENT) if create => match mkdir_exact(&self.fd, name, DIR_MODE) {
                Ok(fd) => fd,
                Err(Errno::EXIST) => open_child_dir(&self.fd, name)
                    .map_err(|e| Error::io(ErrorId::Io, format!("cannot open {}", path.display()), e.into()))?,
                Err(e) => return Err(Error::io(ErrorId::Io, format!("cannot create {}", path.display()), e.into())),
            },
            Err(e @ (Errno::LOOP | Errno::NOTDIR)) => {
                return Err(Error::io(
                    ErrorId::Policy,
                    format!("{} is not a directory (symlinks are never followed)", path.display()),
                    e.into(),
                ))
            }
            Err(e) => return Err(Error::io(ErrorId::Io, format!("cannot open {}", path.display()), e.into())),
        };
        Ok(Dir { fd, path })
    }

    /// Refuses names that are not single normal components.
    pub fn check_name(&self, name: &str) -> Result<()> {
        check_component(name).map_err(|why| {
            Error::new(
                ErrorId::Policy,
                format!("refused name '{}' in {}: {why}", name.escape_debug(), self.path.display()),
            )
        })
    }

    /// What `name` is, without following it.
    pub fn entry(&self, name: &str) -> Result<Entry> {
        self.check_name(name)?;
        let st = match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(Entry::Absent),
            Err(e) => return Err(Error::io(ErrorId::Io, format!("cannot stat {}", self.show(name)), e.into())),
        };
        let meta = Meta::from_stat(&st);
        Ok(match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => Entry::File(meta),
            FileType::Directory => Entry::Directory(meta),
            FileType::Symlink => Entry::Symlink(meta, self.read_link(name)?),
            _ => Entry::Special(meta),
        })
    }

    /// The destination of the symlink `name` (not followed).
    pub fn read_link(&self, name: &str) -> Result<String> {
        let target = rustix::fs::readlinkat(&self.fd, name, Vec::new())
            .map_err(|e| Error::io(ErrorId::Io, format!("cannot read link {}", self.show(name)), e.into()))?;
        cstring_to_string(target, &self.show(name))
    }

    /// Opens the regular file `name` read-only without following a symlink
    /// and without blocking on a fifo.
    pub fn open_file(&self, name: &str) -> Result<OwnedFd> {
        self.check_name(name)?;
        rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
        )
        .map_err(|e| Error::io(ErrorId::Io, format!("cannot open {}", self.show(name)), e.into()))
    }

    /// A fresh temporary name for `purpose` in this directory. The caller
    /// creates it exclusively (`O_EXCL`, `symlinkat`, `linkat`) and picks the
    /// next name on `EEXIST`: something planted there is never followed or
    /// overwritten.
    pub fn tmp_name(&self, purpose: &str) -> String {
        let n = next_tmp_number();
        let short: String = purpose.chars().take(120).collect();
        format!(".oxidizr-tmp.{}.{}.{}", short, rustix::process::getpid().as_raw_nonzero(), n)
    }

    /// Notes that the temporary name `tmp` was found taken and is stepped
    /// over (test builds record it, see [`tmp_testing`]; else nothing).
    pub(crate) fn stepped_over(&self, tmp: &str) {
        #[cfg(any(test, feature = "crash-injection"))]
        tmp_testing::record(self.path.join(tmp));
        #[cfg(not(any(test, feature = "crash-injection")))]
        let _ = tmp;
    }

    /// Creates a symlink `target` under a fresh temporary name; returns it.
    pub fn symlink_tmp(&self, purpose: &str, target: &str) -> Result<String> {
        self.create_tmp(purpose, |tmp| rustix::fs::symlinkat(target, &self.fd, tmp))
    }

    /// Creates a regular file under a fresh temporary name, opened
    /// read-write (`O_EXCL | O_NOFOLLOW`: nothing planted there is ever
    /// followed or reused), with permission bits exactly `mode` whatever
    /// the process umask (set through the descriptor). Returns its name
    /// and descriptor; the caller removes it if it is not kept.
    pub fn tmp_file(&self, purpose: &str, mode: u32) -> Result<(String, OwnedFd)> {
        let mut out: Option<OwnedFd> = None;
        let tmp = self.create_tmp(purpose, |tmp| {
            out = Some(rustix::fs::openat(
                &self.fd,
                tmp,
                OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(mode),
            )?);
            Ok(())
        })?;
        let fd = out.expect("create_tmp succeeded");
        if let Err(e) = rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)) {
            let _ = self.remove_file(&tmp);
            return Err(Error::io(ErrorId::Io, format!("cannot set the mode of {}", self.show(&tmp)), e.into()));
        }
        Ok((tmp, fd))
    }

    /// The permission bits of this directory itself (through its handle).
    pub fn mode(&self) -> Result<u32> {
        let st = rustix::fs::fstat(&self.fd)
            .map_err(|e| Error::io(ErrorId::Io, format!("cannot stat {}", self.path.display()), e.into()))?;
        Ok(Meta::from_stat(&st).mode)
    }

    /// Sets the permission bits of this directory itself, through its
    /// handle (`fchmod`): the handle was reached from the root one
    /// component at a time with `O_NOFOLLOW`, so no symlink is followed and
    /// nothing but this very directory changes. For our own directories
    /// only (`verify --repair`); the caller decides what is ours.
    pub fn set_mode(&self, mode: u32) -> Result<()> {
        rustix::fs::fchmod(&self.fd, Mode::from_raw_mode(mode))
            .map_err(|e| Error::io(ErrorId::Io, format!("cannot set the mode of {}", self.path.display()), e.into()))
    }

    /// Runs `create` with fresh temporary names until one does not exist.
    pub fn create_tmp(&self, purpose: &str, mut create: impl FnMut(&str) -> rustix::io::Result<()>) -> Result<String> {
        for _ in 0..64 {
            let tmp = self.tmp_name(purpose);
            match create(&tmp) {
                Ok(()) => return Ok(tmp),
                Err(Errno::EXIST) => self.stepped_over(&tmp),
                Err(e) => return Err(Error::io(ErrorId::Io, format!("cannot create {}", self.show(&tmp)), e.into())),
            }
        }
        Err(Error::new(ErrorId::Policy, format!("no free temporary name in {}", self.path.display())))
    }

    /// Renames `from` over `to` in this directory (atomic replace).
    pub fn rename(&self, from: &str, to: &str) -> std::result::Result<(), Errno> {
        rustix::fs::renameat(&self.fd, from, &self.fd, to)
    }

    /// Renames `from` in this directory to `to` in `dest`, failing if `to` exists.
    pub fn rename_noreplace(&self, from: &str, dest: &Dir, to: &str) -> std::result::Result<(), Errno> {
        rustix::fs::renameat_with(&self.fd, from, &dest.fd, to, rustix::fs::RenameFlags::NOREPLACE)
    }

    /// Removes a non-directory `name`; absent is fine.
    pub fn remove_file(&self, name: &str) -> Result<()> {
        self.check_name(name)?;
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(Error::io(ErrorId::Io, format!("cannot remove {}", self.show(name)), e.into())),
        }
    }

    /// Removes an empty directory `name`; absent is fine.
    pub fn remove_dir(&self, name: &str) -> Result<()> {
        self.check_name(name)?;
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(Error::io(ErrorId::Io, format!("cannot remove {}", self.show(name)), e.into())),
        }
    }

    /// Names in this directory (not `.`/`..`), sorted; names that are not
    /// UTF-8 are returned lossily and marked by the caller as foreign.
    pub fn list(&self) -> Result<Vec<String>> {
        let fd = rustix::fs::openat(&self.fd, ".", OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| Error::io(ErrorId::Io, format!("cannot list {}", self.path.display()), e.into()))?;
        let dir = rustix::fs::Dir::read_from(&fd)
            .map_err(|e| Error::io(ErrorId::Io, format!("cannot list {}", self.path.display()), e.into()))?;
        let mut names = Vec::new();
        for ent in dir {
            let ent =
                ent.map_err(|e| Error::io(ErrorId::Io, format!("cannot list {}", self.path.display()), e.into()))?;
            let name = String::from_utf8_lossy(ent.file_name().to_bytes()).into_owned();
            if name != "." && name != ".." {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// fsyncs the directory itself, timed into `log`.
    pub fn sync(&self, log: &mut FsyncLog) -> Result<()> {
        log.fsync(&self.fd, &self.path.display().to_string())
    }
}

/// The mode of every directory oxidizr-arch creates: anyone may search and
/// list it (the managed commands are reached through it by every user,
/// DESIGN.md §6 invariant 7); only root writes.
pub const DIR_MODE: u32 = 0o755;

/// Creates the directory `name` in `parent` with permission bits exactly
/// `mode`, whatever the process umask: `mkdirat` (which applies the umask),
/// then the new directory opened with `O_DIRECTORY | O_NOFOLLOW` and
/// `fchmod`ed through that handle. `Err(EXIST)` when the name exists (it
/// is not ours to change). Returns the open directory.
pub(crate) fn mkdir_exact(parent: impl AsFd, name: &str, mode: u32) -> std::result::Result<OwnedFd, Errno> {
    let parent = parent.as_fd();
    rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(mode))?;
    let fd = rustix::fs::openat(
        parent,
        name,
        OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
    Ok(fd)
}

fn cstring_to_string(c: CString, shown: &str) -> Result<String> {
    c.into_string().map_err(|_| Error::new(ErrorId::Policy, format!("{shown}: link destination is not UTF-8")))
}
