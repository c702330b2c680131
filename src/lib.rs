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
//! - [`layout`]: where everything lives under the root.
//! - [`plan`]: the desired generation, computed purely from ALPM + state.
//! - [`store`]: the harvested GNU binaries.
//! - [`generation`]: immutable generations, the `active` and profile pointers.
//! - [`engine`]: the shape of every mutating operation, rollback and recovery.
//! - [`verify`]: every invariant checked against the disk.
//! - [`state`], [`intent`], [`lock`], [`facts`], [`rescue`]: persistent state,
//!   the write-ahead intent, locking, audit facts, the rescue check.
//! - [`commands`]: the admin commands' rendering.
//! - [`hook`]: the pacman pre-/post-transaction entry points.
//! - [`process`]: the one way to run a child: bounded in time, own process
//!   group, pipes drained together, output capped.
//! - [`smoke`]: smoke tests of applets and a behavioural suite, bounded and leak-free.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod commands;
pub mod config;
pub mod engine;
pub mod error;
pub mod facts;
pub mod generation;
pub mod hook;
pub mod intent;
pub mod inventory;
pub mod journal;
pub mod kernel;
pub mod layout;
pub mod lock;
pub mod parallel;
pub mod pkgcache;
pub mod plan;
pub mod process;
pub mod rescue;
pub mod smoke;
pub mod state;
pub mod status;
pub mod store;
pub mod verdict;
pub mod verify;
