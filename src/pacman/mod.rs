//! Everything that talks to pacman: what libalpm says is installed
//! ([`inventory`]), the package cache ([`pkgcache`]), pacman's database lock
//! ([`dblock`]), pacman's own sha256 of every installed file ([`mtree`]) and
//! the pre-/post-transaction hook entry points ([`hook`]).

pub mod dblock;
pub mod hook;
pub mod inventory;
pub mod mtree;
pub mod pkgcache;
