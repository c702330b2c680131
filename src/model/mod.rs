//! Every on-disk and `--json` schema in one place: the configuration file,
//! where things live under the root, the persistent state, the write-ahead
//! intent, the audit facts and the commands' output. Types here are data
//! with their (de)serialisation and invariants; they do not touch the disk
//! except through the safety kernel's durable writes.

pub mod config;
pub mod facts;
pub mod intent;
pub mod layout;
pub mod output;
pub mod policy;
pub mod state;
