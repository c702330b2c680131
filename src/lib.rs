//! oxidizr-arch: run the uutils rewrites of the core commands as the
//! system's `/usr/bin/ls`, `/usr/bin/find`, ... on Arch Linux, and keep that
//! choice true, safe and reversible across every pacman transaction.
//!
//! Module map (see `docs/ARCHITECTURE.md`), lower layers last:
//! - [`app`]: the command line, the admin commands, status rendering, journald.
//! - [`pacman`]: libalpm inventory, package cache, pacman's db lock, the hook
//!   entry points.
//! - [`engine`]: the one shape of every mutating operation (plan, store,
//!   generations, our lock, apply, rollback, recovery, GC).
//! - [`verify`]: every invariant checked against the disk; `--repair`.
//! - [`compat`]: the differential corpus, its runner and the per-applet
//!   policy verdicts (what uutils does differently here, before the flip).
//! - [`smoke`]: smoke tests of applets, the behaviour suite, verdicts, the
//!   rescue check.
//! - [`model`]: every on-disk and `--json` schema (config, layout, state,
//!   intent, facts, output).
//! - [`process`], [`parallel`]: the one way to run a child; bounded fan-out.
//! - [`kernel`]: the filesystem safety kernel (the only code that mutates).
//! - [`error`]: stable error ids and exit codes.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod compat;
pub mod engine;
pub mod error;
pub mod kernel;
pub mod model;
pub mod pacman;
pub mod parallel;
pub mod process;
pub mod smoke;
pub mod verify;
