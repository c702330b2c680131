//! The admin-facing application: the command line, what each command does
//! with the engine, and how results are rendered (text, `--json`, journal).
//! Nothing here mutates the filesystem itself; mutations go through
//! [`crate::engine`].

pub mod cli;
pub mod commands;
pub mod compat;
pub mod journal;
pub mod status;
