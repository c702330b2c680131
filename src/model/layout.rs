//! Where everything lives, relative to `--root` (DESIGN.md §3).
//!
//! ```text
//! usr/bin/<applet>                   -> /usr/lib/oxidizr-arch/active/bin/<applet>  (managed link)
//! usr/lib/oxidizr-arch/active        -> generations/<N>       (the one pointer that flips)
//! usr/lib/oxidizr-arch/profiles/<p>  -> ../generations/<N>    (latest generation of profile p)
//! usr/lib/oxidizr-arch/generations/<N>/bin/<applet> -> store or uutils path
//! usr/lib/oxidizr-arch/generations/<N>/manifest.json
//! usr/lib/oxidizr-arch/store/gnu/<pkg>-<ver>/<applet>   (harvested GNU binaries, same inode)
//! var/lib/oxidizr-arch/state.json    (desired profile, pins, history, degraded flag)
//! var/lib/oxidizr-arch/intent.json   (write-ahead record of an operation in flight)
//! var/lib/oxidizr-arch/sidecars/<applet>.json  (prior state of each managed name)
//! var/lib/oxidizr-arch/lock          (our lock file)
//! var/log/oxidizr-arch/facts.jsonl   (audit facts)
//! ```

use std::path::Path;

use crate::error::Result;
use crate::kernel::{Dir, SafePath, SafeRoot};

/// The managed bin directory.
pub const BIN: &str = "usr/bin";
/// Our library directory (generations, store, pointers).
pub const LIB: &str = "usr/lib/oxidizr-arch";
/// Our state directory.
pub const STATE: &str = "var/lib/oxidizr-arch";
/// Our log directory.
pub const LOG: &str = "var/log/oxidizr-arch";
/// The absolute path (inside the root) of the active pointer.
pub const ACTIVE_ABS: &str = "/usr/lib/oxidizr-arch/active";

/// The subtrees the kernel may touch.
pub const ALLOWED: [&str; 4] = [BIN, LIB, STATE, LOG];

/// The link a managed `/usr/bin/<applet>` holds.
pub fn managed_link(applet: &str) -> String {
    format!("{ACTIVE_ABS}/bin/{applet}")
}

/// The store directory name of a GNU package version.
pub fn store_dir_name(package: &str, version: &str) -> String {
    format!("{package}-{version}")
}

/// The absolute path (inside the root) of a stored GNU applet.
pub fn store_path(package: &str, version: &str, applet: &str) -> String {
    format!("/{LIB}/store/gnu/{}/{applet}", store_dir_name(package, version))
}

/// The open directories of one installation.
pub struct Layout {
    /// The root, with the allowed subtrees.
    pub root: SafeRoot,
}

impl Layout {
    /// Opens the root (nothing is created yet).
    pub fn open(root: &Path) -> Result<Layout> {
        Ok(Layout { root: SafeRoot::open(root, &ALLOWED)? })
    }

    /// Opens (creating with `create`) a directory below the root.
    pub fn dir(&self, path: &str, create: bool) -> Result<Dir> {
        self.root.open_dir(&SafePath::parse(path)?, create)
    }

    /// usr/bin (never created).
    pub fn bin(&self) -> Result<Dir> {
        self.dir(BIN, false)
    }

    /// usr/lib/oxidizr-arch.
    pub fn lib(&self, create: bool) -> Result<Dir> {
        self.dir(LIB, create)
    }

    /// var/lib/oxidizr-arch.
    pub fn state(&self, create: bool) -> Result<Dir> {
        self.dir(STATE, create)
    }

    /// Whether our lib directory exists at all (false: never used).
    pub fn lib_exists(&self) -> bool {
        self.root.path().join(LIB).is_dir()
    }
}
