//! Publishing a directory tree: build it under a fresh staging name, fsync
//! every file and every directory, rename it to its final name (never over
//! an existing one), fsync the parent. Readers see no tree or the whole
//! tree; after the parent fsync it survives power loss. Once published it
//! is never modified.

use std::io::Write as _;
use std::os::fd::OwnedFd;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use super::crash;
use super::dir::Dir;
use super::fsync::FsyncLog;
use crate::error::{Error, ErrorId, Result};

/// A tree under construction in a staging directory.
pub struct Staging<'p> {
    parent: &'p Dir,
    name: String,
    /// Every directory of the tree, root first (fsynced in reverse).
    dirs: Vec<Dir>,
}

impl<'p> Staging<'p> {
    /// Creates an empty staging directory with a fresh name in `parent`.
    pub fn create(parent: &'p Dir, purpose: &str) -> Result<Staging<'p>> {
        let name =
            parent.create_tmp(purpose, |tmp| rustix::fs::mkdirat(parent.fd(), tmp, Mode::from_raw_mode(0o755)))?;
        let root = parent.subdir(&name, false)?;
        // mkdirat applied the umask: the tree's modes never depend on it.
        root.set_mode(super::dir::DIR_MODE)?;
        Ok(Staging { parent, name, dirs: vec![root] })
    }

    /// The staging name (for cleanup after a crash: it starts with `.oxidizr-tmp.`).
    pub fn staging_name(&self) -> &str {
        &self.name
    }

    /// Creates a subdirectory of the tree's root; returns its index for the
    /// `*_in` methods (the root is index 0).
    pub fn mkdir(&mut self, name: &str) -> Result<usize> {
        let root = &self.dirs[0];
        root.check_name(name)?;
        rustix::fs::mkdirat(root.fd(), name, Mode::from_raw_mode(0o755))
            .map_err(|e| Error::io(ErrorId::Io, format!("cannot create {}", root.show(name)), e.into()))?;
        let sub = root.subdir(name, false)?;
        sub.set_mode(super::dir::DIR_MODE)?;
        self.dirs.push(sub);
        Ok(self.dirs.len() - 1)
    }

    /// Creates the symlink `name -> target` in directory `dir` of the tree.
    pub fn symlink_in(&self, dir: usize, name: &str, target: &str) -> Result<()> {
        let d = &self.dirs[dir];
        d.check_name(name)?;
        rustix::fs::symlinkat(target, d.fd(), name)
            .map_err(|e| Error::io(ErrorId::Io, format!("cannot create link {}", d.show(name)), e.into()))
    }

    /// Writes the regular file `name` in directory `dir` of the tree and fsyncs it.
    pub fn write_in(&self, dir: usize, name: &str, bytes: &[u8], log: &mut FsyncLog) -> Result<()> {
        let d = &self.dirs[dir];
        d.check_name(name)?;
        let fd: OwnedFd = rustix::fs::openat(
            d.fd(),
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map_err(|e| Error::io(ErrorId::Io, format!("cannot create {}", d.show(name)), e.into()))?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o644))
            .map_err(|e| Error::io(ErrorId::Io, format!("cannot set the mode of {}", d.show(name)), e.into()))?;
        let mut f = std::fs::File::from(fd.try_clone().map_err(|e| Error::io(ErrorId::Io, "dup", e))?);
        f.write_all(bytes).map_err(|e| Error::io(ErrorId::Io, format!("cannot write {}", d.show(name)), e))?;
        log.fsync(&fd, &d.show(name))
    }

    /// fsyncs every directory (deepest first), renames the tree to
    /// `final_name` in the parent (refusing to replace anything), fsyncs
    /// the parent. On failure the staging tree is left for cleanup.
    pub fn publish(self, final_name: &str, log: &mut FsyncLog) -> Result<()> {
        self.parent.check_name(final_name)?;
        for d in self.dirs.iter().rev() {
            d.sync(log)?;
        }
        crash::point("publish:after-fsync-tree");
        self.parent.rename_noreplace(&self.name, self.parent, final_name).map_err(|e| {
            let id = if e == Errno::EXIST { ErrorId::Policy } else { ErrorId::AtomicSwap };
            Error::io(id, format!("cannot publish {}", self.parent.show(final_name)), e.into())
        })?;
        crash::point("publish:after-rename");
        self.parent.sync(log)
    }
}

/// Removes a tree we staged (only regular files, symlinks and directories,
/// never following a symlink). Used to clean up after a failed or crashed build.
pub fn remove_tree(parent: &Dir, name: &str) -> Result<()> {
    let dir = match parent.subdir(name, false) {
        Ok(d) => d,
        Err(_) => return parent.remove_file(name),
    };
    for entry in dir.list()? {
        match dir.entry(&entry)? {
            super::dir::Entry::Directory(_) => remove_tree(&dir, &entry)?,
            super::dir::Entry::Absent => {}
            _ => dir.remove_file(&entry)?,
        }
    }
    parent.remove_dir(name)
}
