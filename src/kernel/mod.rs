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
pub mod name;
pub mod publish;
pub mod refill;
pub mod safepath;
pub mod sidecar;
pub mod swap;
pub mod takeover;

/// Test support: runs one unit test again in a child process of the test
/// binary (`--exact NAME`) with `env` set, and fails unless it passed there;
/// the child sees `env` and does the real work (under limits the parent
/// must not take on, such as a small RLIMIT_NOFILE).
#[cfg(test)]
pub(crate) fn rerun_in_child(name: &str, env: &str) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(env, "1")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("1 passed"), "{text}");
}

pub use dir::{Dir, Entry, Meta};
pub use fsync::FsyncLog;
pub use safepath::{SafePath, SafeRoot};
