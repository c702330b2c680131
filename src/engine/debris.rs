//! Debris: the temporary entries (`.oxidizr-tmp.*`) a run killed mid-way
//! leaves in the directories we write. [`Engine::find_debris`] lists them
//! (read-only, for `verify`); [`Engine::sweep_debris`] removes them (every
//! mutating command before it starts, `verify --repair`, oxidizr-arch's own
//! removal).
//!
//! Our own trees (`/usr/lib/oxidizr-arch`, `/var/lib/oxidizr-arch`) have
//! no other writer: a temporary name there is ours. `/usr/bin` is pacman's:
//! a temporary name there is swept only when its content is provably ours —
//! a symlink into our tree (a link being swapped in), or a regular file
//! that is the very inode of a stored GNU binary (a restore being staged).
//! Anything else is left alone, and reported.

use std::collections::BTreeSet;

use crate::error::Result;
use crate::kernel::digest::sha256_fd;
use crate::kernel::publish::remove_tree;
use crate::kernel::{Dir, Entry};
use crate::model::layout::{LIB, STATE};

use super::Engine;

/// The prefix of every temporary name the safety kernel creates.
pub const TMP_PREFIX: &str = ".oxidizr-tmp.";

/// One leftover temporary entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Debris {
    /// The directory, inside the root (`usr/bin`, `var/lib/oxidizr-arch/sidecars`).
    pub dir: String,
    /// The entry's name.
    pub name: String,
    /// Whether it is provably ours (and so swept); `false` only in `usr/bin`.
    pub ours: bool,
}

impl Debris {
    /// `/dir/name`, for messages.
    pub fn path(&self) -> String {
        format!("/{}/{}", self.dir, self.name)
    }
}

/// The purpose in a temporary name `.oxidizr-tmp.<purpose>.<pid>.<n>`
/// (the applet a restore staged it for).
fn tmp_purpose(name: &str) -> Option<&str> {
    let rest = name.strip_prefix(TMP_PREFIX)?;
    let mut fields = rest.rsplitn(3, '.');
    let (_n, _pid, purpose) = (fields.next()?, fields.next()?, fields.next()?);
    Some(purpose)
}

/// Where a symlink into our trees points.
fn into_our_tree(destination: &str) -> bool {
    destination.starts_with(&format!("/{LIB}/"))
}

impl Engine {
    /// The directories of ours that exist, inside the root: the state
    /// directory and its sidecars, the lib directory, its profiles and
    /// generations (staging trees are swept as trees) and each store
    /// directory.
    fn own_dirs(&self) -> Result<Vec<String>> {
        let mut dirs = Vec::new();
        for d in [
            STATE.to_string(),
            format!("{STATE}/sidecars"),
            LIB.to_string(),
            format!("{LIB}/profiles"),
            format!("{LIB}/generations"),
        ] {
            if self.opts.root.join(&d).is_dir() {
                dirs.push(d);
            }
        }
        let store = format!("{LIB}/store/gnu");
        if self.opts.root.join(&store).is_dir() {
            let gnu = self.layout.dir(&store, false)?;
            for name in gnu.list()? {
                if matches!(gnu.entry(&name)?, Entry::Directory(_)) {
                    dirs.push(format!("{store}/{name}"));
                }
            }
        }
        Ok(dirs)
    }

    /// The (device, inode) of every stored GNU binary.
    fn stored_inodes(&self) -> Result<BTreeSet<(u64, u64)>> {
        let mut out = BTreeSet::new();
        let store = format!("{LIB}/store/gnu");
        if !self.opts.root.join(&store).is_dir() {
            return Ok(out);
        }
        let gnu = self.layout.dir(&store, false)?;
        for d in gnu.list()? {
            if !matches!(gnu.entry(&d)?, Entry::Directory(_)) {
                continue;
            }
            let dir = self.layout.dir(&format!("{store}/{d}"), false)?;
            for name in dir.list()? {
                if let Entry::File(m) = dir.entry(&name)? {
                    out.insert((m.dev, m.ino));
                }
            }
        }
        Ok(out)
    }

    /// Whether the regular file `bin/name` (a temporary of `purpose`, the
    /// applet it was staged for) holds exactly the bytes of a stored GNU
    /// copy of that applet: a restore staged as a copy (EXDEV), or a link
    /// whose inode number the filesystem reports differently (overlayfs).
    /// Removing it loses nothing: the store keeps the same bytes.
    fn same_bytes_as_stored(&self, bin: &Dir, name: &str, size: u64) -> Result<bool> {
        let Some(purpose) = tmp_purpose(name) else { return Ok(false) };
        let store = format!("{LIB}/store/gnu");
        if purpose.is_empty() || !self.opts.root.join(&store).is_dir() {
            return Ok(false);
        }
        let gnu = self.layout.dir(&store, false)?;
        let mut ours: Option<String> = None;
        for d in gnu.list()? {
            let Ok(dir) = self.layout.dir(&format!("{store}/{d}"), false) else { continue };
            let Entry::File(m) = dir.entry(purpose)? else { continue };
            if m.size != size {
                continue;
            }
            if ours.is_none() {
                ours = Some(sha256_fd(&bin.open_file(name)?, &bin.show(name))?);
            }
            if ours.as_deref() == Some(sha256_fd(&dir.open_file(purpose)?, &dir.show(purpose))?.as_str()) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Every leftover temporary entry in the directories we write.
    pub fn find_debris(&self) -> Result<Vec<Debris>> {
        let mut out = Vec::new();
        let bin = self.layout.bin()?;
        let temps: Vec<String> = bin.list()?.into_iter().filter(|n| n.starts_with(TMP_PREFIX)).collect();
        let mut stored: Option<BTreeSet<(u64, u64)>> = None;
        for name in temps {
            let ours = match bin.entry(&name)? {
                Entry::Symlink(_, dest) => into_our_tree(&dest),
                Entry::File(m) => {
                    if stored.is_none() {
                        stored = Some(self.stored_inodes()?);
                    }
                    stored.as_ref().is_some_and(|s| s.contains(&(m.dev, m.ino)))
                        || self.same_bytes_as_stored(&bin, &name, m.size)?
                }
                _ => false,
            };
            out.push(Debris { dir: "usr/bin".into(), name, ours });
        }
        for d in self.own_dirs()? {
            let dir = self.layout.dir(&d, false)?;
            for name in dir.list()?.into_iter().filter(|n| n.starts_with(TMP_PREFIX)) {
                out.push(Debris { dir: d.clone(), name, ours: true });
            }
        }
        Ok(out)
    }

    /// Removes every leftover temporary entry that is ours and makes each
    /// touched directory durable. Returns what was removed.
    pub fn sweep_debris(&mut self) -> Result<Vec<Debris>> {
        self.require_lock()?;
        let found: Vec<Debris> = self.find_debris()?.into_iter().filter(|d| d.ours).collect();
        let mut touched: Vec<(String, Dir)> = Vec::new();
        for d in &found {
            if !touched.iter().any(|(p, _)| *p == d.dir) {
                let dir = if d.dir == "usr/bin" { self.layout.bin()? } else { self.layout.dir(&d.dir, false)? };
                touched.push((d.dir.clone(), dir));
            }
            let (_, dir) = touched.iter().find(|(p, _)| *p == d.dir).expect("just added");
            match dir.entry(&d.name)? {
                Entry::Directory(_) => remove_tree(dir, &d.name)?,
                Entry::Absent => {}
                _ => dir.remove_file(&d.name)?,
            }
        }
        for (_, dir) in &touched {
            dir.sync(&mut self.log)?;
        }
        if !found.is_empty() {
            let names: Vec<String> = found.iter().map(Debris::path).collect();
            self.fact(
                "sweep",
                format!("removed {} leftover temporaries: {}", found.len(), names.join(" ")),
                None,
                None,
                None,
            );
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purpose_is_read_from_the_temporary_name() {
        assert_eq!(tmp_purpose(".oxidizr-tmp.[.65945.1"), Some("["));
        assert_eq!(tmp_purpose(".oxidizr-tmp.state.json.745.5"), Some("state.json"));
        assert_eq!(tmp_purpose(".oxidizr-tmp.x"), None);
        assert_eq!(tmp_purpose("ls"), None);
    }

    #[test]
    fn only_links_into_our_tree_count_as_ours() {
        assert!(into_our_tree("/usr/lib/oxidizr-arch/active/bin/ls"));
        assert!(!into_our_tree("/usr/lib/oxidizr-archive/x"));
        assert!(!into_our_tree("coreutils"));
        assert!(!into_our_tree("/usr/bin/ls"));
    }
}
