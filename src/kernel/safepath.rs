//! SafePath and SafeRoot: paths proven to lie under an allowed subtree of
//! the root, and directories opened from the root one component at a time
//! with `O_DIRECTORY | O_NOFOLLOW`.
//!
//! A symlink anywhere on the way (someone swapped `usr/lib/oxidizr-arch`
//! for a link to `/etc`) makes the open fail with `ELOOP`/`ENOTDIR` instead
//! of escaping: the kernel never follows a symlink it did not create.

use std::fmt;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use super::dir::Dir;
use super::name::check_component;
use super::name::open_child_dir;
use crate::error::{Error, ErrorId, Result};

/// A validated relative path: non-empty, normal components only (no `.`,
/// `..`, empty components, NUL), each at most 255 bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SafePath {
    comps: Vec<String>,
}

impl SafePath {
    /// Parses `path` (leading `/` allowed: it means the root) into components.
    /// Refuses `..`, `.`, empty components, NUL and over-long names.
    pub fn parse(path: &str) -> Result<SafePath> {
        let trimmed = path.strip_prefix('/').unwrap_or(path);
        let mut comps = Vec::new();
        for c in trimmed.split('/') {
            check_component(c)
                .map_err(|why| Error::new(ErrorId::Policy, format!("refused path '{}': {why}", path.escape_debug())))?;
            comps.push(c.to_string());
        }
        Ok(SafePath { comps })
    }

    /// The components, outermost first.
    pub fn components(&self) -> &[String] {
        &self.comps
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.comps.last().expect("a SafePath is never empty")
    }

    /// The path without its last component (`None` for a single component).
    pub fn parent(&self) -> Option<SafePath> {
        (self.comps.len() > 1).then(|| SafePath { comps: self.comps[..self.comps.len() - 1].to_vec() })
    }

    /// This path with one more validated component.
    pub fn join(&self, name: &str) -> Result<SafePath> {
        check_component(name)
            .map_err(|why| Error::new(ErrorId::Policy, format!("refused name '{}': {why}", name.escape_debug())))?;
        let mut comps = self.comps.clone();
        comps.push(name.to_string());
        Ok(SafePath { comps })
    }

    /// Whether `self` equals `prefix` or lies below it.
    pub fn starts_with(&self, prefix: &SafePath) -> bool {
        self.comps.len() >= prefix.comps.len() && self.comps[..prefix.comps.len()] == prefix.comps[..]
    }
}

impl fmt::Display for SafePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.comps.join("/"))
    }
}

impl fmt::Debug for SafePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SafePath({self})")
    }
}

/// The installation root and the subtrees we may touch inside it.
///
/// Every directory handle the kernel mutates through comes from
/// [`SafeRoot::open_dir`], so every mutation is proven to be under an
/// allowed subtree, reached without following any symlink.
pub struct SafeRoot {
    root: PathBuf,
    fd: OwnedFd,
    allowed: Vec<SafePath>,
}

impl SafeRoot {
    /// Opens `root` (trusted, like pacman's `--root`) and records the allowed
    /// subtrees (e.g. `usr/bin`, `usr/lib/oxidizr-arch`).
    pub fn open(root: &Path, allowed: &[&str]) -> Result<SafeRoot> {
        let fd = rustix::fs::open(root, OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| Error::io(ErrorId::Io, format!("cannot open root {}", root.display()), e.into()))?;
        let allowed = allowed.iter().map(|a| SafePath::parse(a)).collect::<Result<Vec<_>>>()?;
        Ok(SafeRoot { root: root.to_path_buf(), fd, allowed })
    }

    /// The root as given.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Proves `path` lies under an allowed subtree; `E_POLICY` otherwise.
    pub fn check(&self, path: &str) -> Result<SafePath> {
        let p = SafePath::parse(path)?;
        if self.allowed.iter().any(|a| p.starts_with(a)) {
            Ok(p)
        } else {
            Err(Error::new(ErrorId::Policy, format!("refused path {p}: outside the managed set")))
        }
    }

    /// Opens the directory at `path` (which must be allowed), walking from
    /// the root with `O_DIRECTORY | O_NOFOLLOW`. With `create`, missing
    /// components below the allowed prefix's parent are created (mode
    /// exactly 0755, whatever the process umask).
    pub fn open_dir(&self, path: &SafePath, create: bool) -> Result<Dir> {
        if !self.allowed.iter().any(|a| path.starts_with(a) || a.starts_with(path)) {
            return Err(Error::new(ErrorId::Policy, format!("refused directory {path}: outside the managed set")));
        }
        let mut cur = rustix::io::dup(&self.fd).map_err(|e| Error::io(ErrorId::Io, "dup of the root", e.into()))?;
        let mut shown = self.root.clone();
        for comp in path.components() {
            shown.push(comp);
            cur = match open_child_dir(&cur, comp) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if create => {
                    // Mode 0755 whatever the umask (invariant 7).
                    let fd = match super::dir::mkdir_exact(&cur, comp, super::dir::DIR_MODE) {
                        Ok(fd) => fd,
                        Err(Errno::EXIST) => open_child_dir(&cur, comp).map_err(|e| dir_error(&shown, e))?,
                        Err(e) => return Err(dir_error(&shown, e)),
                    };
                    // A new directory must survive a crash before anything is put in it.
                    rustix::fs::fsync(&cur).map_err(|e| dir_error(&shown, e))?;
                    fd
                }
                Err(e) => return Err(dir_error(&shown, e)),
            };
        }
        Ok(Dir::from_fd(cur, shown))
    }

    /// Removes the allowed subtree `tree` itself (e.g. `usr/lib/oxidizr-arch`,
    /// exactly one of the allowed paths, never an ancestor or a descendant)
    /// when it is an empty directory, and fsyncs its parent. Anything else
    /// there (entries inside it, a symlink, a file, nothing) is left
    /// untouched and reported as `false`: rmdir cannot remove more than the
    /// empty directory, and never follows a symlink.
    pub fn remove_empty_subtree(&self, tree: &SafePath) -> Result<bool> {
        if !self.allowed.iter().any(|a| a == tree) {
            return Err(Error::new(ErrorId::Policy, format!("refused to remove {tree}: not a managed subtree")));
        }
        let Some(parent) = tree.parent() else {
            return Err(Error::new(ErrorId::Policy, format!("refused to remove {tree}: it has no parent")));
        };
        // The parent is an ancestor of an allowed subtree: open_dir reaches
        // it without following a symlink.
        let dir = match self.open_dir(&parent, false) {
            Ok(dir) => dir,
            Err(_) if self.root.join(parent.to_string().trim_start_matches('/')).symlink_metadata().is_err() => {
                return Ok(false)
            }
            Err(e) => return Err(e),
        };
        match rustix::fs::unlinkat(dir.fd(), tree.file_name(), AtFlags::REMOVEDIR) {
            Ok(()) => {
                rustix::fs::fsync(dir.fd()).map_err(|e| {
                    Error::io(ErrorId::Io, format!("fsync of {} failed", dir.path().display()), e.into())
                })?;
                Ok(true)
            }
            Err(Errno::NOENT | Errno::NOTEMPTY | Errno::EXIST | Errno::NOTDIR) => Ok(false),
            Err(e) => Err(Error::io(ErrorId::Io, format!("cannot remove {}", dir.show(tree.file_name())), e.into())),
        }
    }
}

fn dir_error(shown: &Path, e: Errno) -> Error {
    let id = match e {
        // A symlink or a non-directory where a directory must be: hostile or foreign.
        Errno::LOOP | Errno::NOTDIR => ErrorId::Policy,
        _ => ErrorId::Io,
    };
    let why = match e {
        Errno::LOOP | Errno::NOTDIR => "not a directory (symlinks are never followed)".to_string(),
        e => std::io::Error::from(e).to_string(),
    };
    Error::new(id, format!("cannot open directory {}: {why}", shown.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_refuses_dot_dot_and_empty() {
        for bad in ["", "usr/../etc", "usr//bin", "./usr", "usr/bin/", "a\0b"] {
            let e = SafePath::parse(bad).unwrap_err();
            assert_eq!(e.id, ErrorId::Policy, "{bad:?}");
        }
        let p = SafePath::parse("/usr/bin/ls").unwrap();
        assert_eq!(p.to_string(), "/usr/bin/ls");
        assert_eq!(p.file_name(), "ls");
        assert_eq!(p.parent().unwrap().to_string(), "/usr/bin");
    }

    #[test]
    fn starts_with_is_component_wise() {
        let bin = SafePath::parse("usr/bin").unwrap();
        assert!(SafePath::parse("usr/bin/ls").unwrap().starts_with(&bin));
        assert!(!SafePath::parse("usr/binx/ls").unwrap().starts_with(&bin));
    }

    #[test]
    fn check_refuses_outside_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let root = SafeRoot::open(dir.path(), &["usr/bin"]).unwrap();
        assert!(root.check("usr/bin/ls").is_ok());
        assert_eq!(root.check("etc/passwd").unwrap_err().id, ErrorId::Policy);
        assert_eq!(root.check("usr/bin/../../etc/passwd").unwrap_err().id, ErrorId::Policy);
    }

    #[test]
    fn open_dir_refuses_a_symlinked_component() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("elsewhere")).unwrap();
        std::fs::create_dir_all(dir.path().join("usr")).unwrap();
        std::os::unix::fs::symlink("../elsewhere", dir.path().join("usr/bin")).unwrap();
        let root = SafeRoot::open(dir.path(), &["usr/bin"]).unwrap();
        let e = root.open_dir(&SafePath::parse("usr/bin").unwrap(), true).unwrap_err();
        assert_eq!(e.id, ErrorId::Policy, "{e}");
    }

    #[test]
    fn only_an_empty_managed_subtree_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let root = SafeRoot::open(dir.path(), &["usr/lib/oxidizr-arch"]).unwrap();
        let tree = SafePath::parse("usr/lib/oxidizr-arch").unwrap();
        assert!(!root.remove_empty_subtree(&tree).unwrap(), "absent: nothing to do");
        std::fs::create_dir_all(dir.path().join("usr/lib/oxidizr-arch/quarantine")).unwrap();
        assert!(!root.remove_empty_subtree(&tree).unwrap(), "not empty: kept");
        assert!(dir.path().join("usr/lib/oxidizr-arch/quarantine").is_dir());
        std::fs::remove_dir(dir.path().join("usr/lib/oxidizr-arch/quarantine")).unwrap();
        assert!(root.remove_empty_subtree(&tree).unwrap());
        assert!(!dir.path().join("usr/lib/oxidizr-arch").exists());
        assert!(dir.path().join("usr/lib").is_dir(), "the parent stays");
        // A symlink in its place (to an empty directory) is neither followed nor removed.
        std::fs::create_dir_all(dir.path().join("empty")).unwrap();
        std::os::unix::fs::symlink("../../empty", dir.path().join("usr/lib/oxidizr-arch")).unwrap();
        assert!(!root.remove_empty_subtree(&tree).unwrap());
        assert!(dir.path().join("usr/lib/oxidizr-arch").symlink_metadata().unwrap().file_type().is_symlink());
        assert!(dir.path().join("empty").is_dir());
        // Only an allowed subtree itself: not its parent, not a path inside it.
        for other in ["usr/lib", "usr/lib/oxidizr-arch/store", "usr"] {
            let e = root.remove_empty_subtree(&SafePath::parse(other).unwrap()).unwrap_err();
            assert_eq!(e.id, ErrorId::Policy, "{other}");
        }
    }

    #[test]
    fn open_dir_creates_missing_components() {
        let dir = tempfile::tempdir().unwrap();
        let root = SafeRoot::open(dir.path(), &["usr/lib/oxidizr-arch"]).unwrap();
        root.open_dir(&SafePath::parse("usr/lib/oxidizr-arch/store").unwrap(), true).unwrap();
        assert!(dir.path().join("usr/lib/oxidizr-arch/store").is_dir());
    }
}
