//! Sidecars: the durable record of what a managed name was before we
//! replaced it, written and fsynced before the replacement. Restore reads
//! only the sidecar and the store, so it works after a crash at any point.

use serde::{Deserialize, Serialize};

use super::dir::Dir;
use super::durable::{read_json, to_json, write_json, write_many};
use super::fsync::FsyncLog;
use crate::error::{Error, ErrorId, Result};

/// The sidecar schema version. A sidecar of another version is refused
/// (`E_STATE_CORRUPT`), never guessed at.
pub const SIDECAR_SCHEMA: u32 = 1;

/// What a managed name was before we replaced it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Prior {
    /// Nothing was there.
    None,
    /// A symlink, with its destination and owner.
    Symlink {
        /// The link's destination, verbatim.
        destination: String,
        /// Owner of the link.
        uid: u32,
        /// Group of the link.
        gid: u32,
    },
    /// A regular file, kept in the store under `backup`.
    File {
        /// Permission bits (setuid/setgid included).
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
        /// Modification time, seconds.
        mtime_sec: i64,
        /// Modification time, nanoseconds.
        mtime_nsec: u32,
        /// Size in bytes.
        size: u64,
        /// sha256 of the content.
        sha256: String,
        /// Names of its extended attributes.
        xattrs: Vec<String>,
        /// Inode flags (FS_IOC_GETFLAGS) at harvest time.
        flags: u32,
        /// Device and inode of the kept file (same-inode restore check).
        dev: u64,
        /// Inode number of the kept file.
        ino: u64,
        /// The name of the kept copy in the backup directory.
        backup: String,
        /// True when the kept copy is a copy (EXDEV), not the same inode.
        degraded: bool,
    },
}

impl Prior {
    /// `file`, `symlink` or `none`.
    pub fn kind(&self) -> &'static str {
        match self {
            Prior::None => "none",
            Prior::Symlink { .. } => "symlink",
            Prior::File { .. } => "file",
        }
    }
}

/// The sidecar of one managed name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sidecar {
    /// Always [`SIDECAR_SCHEMA`].
    pub schema: u32,
    /// The managed name (e.g. `ls`).
    pub name: String,
    /// The symlink destination we installed at the name.
    pub link: String,
    /// The directory (relative to the root) holding the kept file of a
    /// `file` prior.
    pub backup_dir: String,
    /// What was there before.
    pub prior: Prior,
}

/// The sidecar file name of a managed name.
pub fn sidecar_name(name: &str) -> String {
    format!("{name}.json")
}

/// Writes the sidecar durably (before any mutation of the name).
pub fn write(dir: &Dir, sidecar: &Sidecar, log: &mut FsyncLog) -> Result<()> {
    write_json(dir, &sidecar_name(&sidecar.name), sidecar, log)
}

/// Writes many sidecars durably, their fsyncs batched
/// ([`super::durable::write_many`]): when this returns Ok every one is durable.
pub fn write_all(dir: &Dir, sidecars: &[Sidecar], log: &mut FsyncLog) -> Result<()> {
    let docs: Vec<(String, Vec<u8>)> = sidecars.iter().map(|sc| (sidecar_name(&sc.name), to_json(sc))).collect();
    let files: Vec<(&str, &[u8])> = docs.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
    write_many(dir, &files, log)
}

/// Reads the sidecar of `name`; `None` if there is none.
pub fn read(dir: &Dir, name: &str) -> Result<Option<Sidecar>> {
    let file = sidecar_name(name);
    let Some(sc) = read_json::<Sidecar>(dir, &file)? else { return Ok(None) };
    if sc.schema != SIDECAR_SCHEMA || sc.name != name {
        return Err(Error::new(
            ErrorId::StateCorrupt,
            format!(
                "{}: schema {} for '{}', expected schema {SIDECAR_SCHEMA} for '{name}'",
                dir.show(&file),
                sc.schema,
                sc.name
            ),
        ));
    }
    Ok(Some(sc))
}
