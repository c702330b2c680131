//! Garbage collection: which generations and store directories are kept
//! ([`generations_to_keep`], pure) and removing the rest.

use std::collections::BTreeSet;

use super::generation::{self};
use crate::error::Result;
use crate::kernel::publish::remove_tree;
use crate::kernel::sidecar::{self};
use crate::kernel::Entry;
use crate::model::layout::{LIB, STATE};
use crate::model::state::{Profile, State};

use super::Engine;

/// The generations GC keeps: the newest `keep_n` of `numbers` that were
/// ever active (what `rollback` can go back to; a generation built only for
/// `profiles/gnu` does not take a rollback's place), plus every `pinned`
/// one (the active generation and the profile pointers' targets). Pure.
pub fn generations_to_keep(
    numbers: &[u64],
    was_active: &BTreeSet<u64>,
    keep_n: usize,
    pinned: impl IntoIterator<Item = u64>,
) -> BTreeSet<u64> {
    let mut sorted = numbers.to_vec();
    sorted.sort_unstable();
    let mut keep: BTreeSet<u64> =
        sorted.iter().rev().filter(|n| was_active.contains(n)).take(keep_n).copied().collect();
    keep.extend(pinned);
    keep
}

impl Engine {
    /// Keeps the active generation, the profile pointers' and the newest
    /// `keep_generations`; removes the rest, then store directories that no
    /// kept generation and no sidecar references. Returns what was removed.
    pub fn gc(&mut self, state: &State) -> Result<Vec<String>> {
        self.require_lock()?;
        let (numbers, _) = generation::list(&self.layout)?;
        // The newest `keep_generations` that were active (what `rollback`
        // can go back to): a generation built only for `profiles/gnu` does
        // not take a rollback's place.
        let was_active: BTreeSet<u64> = state.history.iter().map(|h| h.generation).collect();
        let mut pinned: Vec<u64> = generation::active(&self.layout)?.into_iter().collect();
        for p in [Profile::Gnu, Profile::Uutils] {
            pinned.extend(generation::profile_pointer(&self.layout, p).ok().flatten());
        }
        let mut keep = generations_to_keep(&numbers, &was_active, self.opts.keep_generations, pinned);
        // A kept generation that shares another's links keeps that one too.
        let owners: Vec<u64> =
            keep.iter().filter_map(|n| generation::tree_owner(&self.layout, *n).ok().flatten()).collect();
        keep.extend(owners);
        let gens = generation::generations_dir(&self.layout)?;
        let mut removed = Vec::new();
        for n in numbers.iter().filter(|n| !keep.contains(n)) {
            remove_tree(&gens, &n.to_string())?;
            removed.push(format!("generation {n}"));
        }
        gens.sync(&mut self.log)?;
        removed.extend(self.gc_store(&keep)?);
        Ok(removed)
    }

    pub(super) fn gc_store(&mut self, keep: &BTreeSet<u64>) -> Result<Vec<String>> {
        let mut referenced: BTreeSet<String> = BTreeSet::new();
        for n in keep {
            if let Ok(m) = generation::read_manifest(&self.layout, *n) {
                for a in m.applets.values() {
                    if let Some(dir) =
                        a.target.strip_prefix(&format!("/{LIB}/store/gnu/")).and_then(|r| r.split('/').next())
                    {
                        referenced.insert(dir.to_string());
                    }
                }
            }
        }
        let sidecars_dir = self.layout.dir(&format!("{STATE}/sidecars"), true)?;
        for name in self.managed_names()? {
            if let Some(sc) = sidecar::read(&sidecars_dir, &name)? {
                if let Some(dir) = sc.backup_dir.strip_prefix(&format!("{LIB}/store/gnu/")) {
                    referenced.insert(dir.to_string());
                }
            }
        }
        let gnu = self.layout.dir(&format!("{LIB}/store/gnu"), true)?;
        // Only directories named like ours (<gnu package>-<version>) are
        // ours to collect; anything else is left for verify to report.
        let ours = |d: &str| self.config.families.iter().any(|f| d.starts_with(&format!("{}-", f.gnu_package)));
        let mut removed = Vec::new();
        for dir in gnu.list()? {
            if ours(&dir) && !referenced.contains(&dir) && matches!(gnu.entry(&dir)?, Entry::Directory(_)) {
                remove_tree(&gnu, &dir)?;
                removed.push(format!("store {dir}"));
            }
        }
        gnu.sync(&mut self.log)?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_that_were_active_and_every_pinned_one() {
        let was: BTreeSet<u64> = [1, 2, 4, 6].into();
        let keep = generations_to_keep(&[6, 1, 2, 3, 4, 5], &was, 2, [3]);
        assert_eq!(keep, [3, 4, 6].into(), "3 pinned (e.g. profiles/gnu), 4 and 6 the newest active ones");
    }

    #[test]
    fn a_generation_never_active_does_not_take_a_rollbacks_place() {
        let was: BTreeSet<u64> = [1, 2].into();
        assert_eq!(generations_to_keep(&[1, 2, 3, 4], &was, 2, []), [1, 2].into());
    }

    #[test]
    fn keep_zero_keeps_only_the_pinned() {
        let was: BTreeSet<u64> = [1, 2].into();
        assert_eq!(generations_to_keep(&[1, 2], &was, 0, [2]), [2].into());
    }
}
