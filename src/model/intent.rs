//! The intent journal: a write-ahead record of a mutating operation,
//! written and fsynced before its first mutation and removed after its
//! commit. Every command first recovers a pending intent, so a crash at any
//! point converges (see `engine::recover`).

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorId, Result};
use crate::kernel::durable::{read_json, write_json};
use crate::kernel::{Dir, FsyncLog};
use crate::model::state::Profile;

/// The intent schema version.
pub const INTENT_SCHEMA: u32 = 1;
/// The intent file name in the state directory.
pub const INTENT_FILE: &str = "intent.json";

/// What an operation in flight intends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intent {
    /// Always [`INTENT_SCHEMA`].
    pub schema: u32,
    /// The operation id.
    pub op_id: String,
    /// The operation (`use`, `rollback`, `disable`, `post-transaction`, ...).
    pub operation: String,
    /// The active generation before (None: nothing was active).
    pub from_generation: Option<u64>,
    /// The generation being made active (None: disabling).
    pub to_generation: Option<u64>,
    /// The profile being made active.
    pub profile: Option<Profile>,
    /// When it started (RFC 3339).
    pub started: String,
}

impl Intent {
    /// Writes the intent durably (before any mutation).
    pub fn record(&self, dir: &Dir, log: &mut FsyncLog) -> Result<()> {
        write_json(dir, INTENT_FILE, self, log)
    }

    /// Reads a pending intent, if any.
    pub fn pending(dir: &Dir) -> Result<Option<Intent>> {
        match read_json::<Intent>(dir, INTENT_FILE)? {
            Some(i) if i.schema != INTENT_SCHEMA => Err(Error::new(
                ErrorId::StateCorrupt,
                format!("{}: unknown schema {}", dir.show(INTENT_FILE), i.schema),
            )),
            other => Ok(other),
        }
    }

    /// Removes the intent (after commit or recovery) durably.
    pub fn clear(dir: &Dir, log: &mut FsyncLog) -> Result<()> {
        dir.remove_file(INTENT_FILE)?;
        dir.sync(log)
    }
}
