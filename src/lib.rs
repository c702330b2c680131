//! oxidizr-arch: run the uutils rewrites of the core commands as the
//! system's `/usr/bin/ls`, `/usr/bin/find`, ... on Arch Linux, and keep that
//! choice true, safe and reversible across every pacman transaction.
//!
//! Module map (see `docs/ARCHITECTURE.md`):
//! - [`config`]: the managed families (package names, command prefixes).
//! - [`inventory`]: what libalpm says is installed, per family: the applets.
//! - [`status`]: rendering of `oxidizr-hook status`.
//! - [`error`]: stable error ids and exit codes.
//! - [`journal`]: journald logging.
//! - [`cli`]: the command-line definition.
//! - [`kernel`]: the filesystem safety kernel (the only code that mutates).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod config;
pub mod error;
pub mod inventory;
pub mod journal;
pub mod kernel;
pub mod status;
