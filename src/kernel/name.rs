//! Names and single steps: the lowest layer of the kernel. What a path
//! component may be, and how one directory is opened from its parent
//! without following a symlink. [`super::dir`] and [`super::safepath`]
//! both build on this; it builds on nothing of ours.

use std::os::fd::OwnedFd;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

/// Checks one path component; the error says why it is refused.
pub fn check_component(c: &str) -> std::result::Result<(), &'static str> {
    match c {
        "" => Err("empty component"),
        "." | ".." => Err("'.' and '..' are not allowed"),
        _ if c.contains('\0') => Err("NUL byte"),
        _ if c.contains('/') => Err("'/' in a name"),
        _ if c.len() > 255 => Err("component longer than 255 bytes"),
        _ => Ok(()),
    }
}

/// Opens a child directory without following a symlink.
pub(crate) fn open_child_dir(parent: &OwnedFd, name: &str) -> std::result::Result<OwnedFd, Errno> {
    rustix::fs::openat(
        parent,
        name,
        OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}
