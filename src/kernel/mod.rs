//! The filesystem safety kernel: the only code that mutates the filesystem.
//!
//! Rules every function here keeps:
//! - every directory is opened from the root one component at a time with
//!   `O_DIRECTORY | O_NOFOLLOW` ([`SafeRoot`]); every mutation is an `*at`
//!   call on such a handle with a single-component name ([`Dir`]);
//! - a symlink we did not create is never followed;
//! - a name is replaced only by `rename` over it (never unlink-then-create),
//!   so it is never absent in between;
//! - new entries are created under exclusive temporary names (`O_EXCL`,
//!   `symlinkat`, `linkat`): something planted there is never overwritten;
//! - durability is claimed only after the file and its directory were
//!   fsynced, and fsync errors are returned, never dropped ([`FsyncLog`]).

pub mod copy;
pub mod crash;
pub mod digest;
pub mod dir;
pub mod durable;
pub mod flags;
pub mod fsync;
pub mod harvest;
pub mod publish;
pub mod refill;
pub mod safepath;
pub mod sidecar;
pub mod swap;
pub mod takeover;

pub use dir::{Dir, Entry, Meta};
pub use fsync::FsyncLog;
pub use safepath::{SafePath, SafeRoot};
