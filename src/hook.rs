//! The pacman hook entry points (DESIGN.md §5). pacman runs them from
//! `/usr/share/libalpm/hooks/*.hook` with the matched package names on
//! stdin (NeedsTargets), no TTY, while it holds `db.lck`; with `--root` they
//! run chrooted into it.
//!
//! - `pre-transaction --operation remove`:
//!   * `oxidizr-arch` is a target: restore the pristine GNU files and remove
//!     our trees (nothing will maintain the links afterwards);
//!   * a uutils package backs active applets: flip those applets to GNU
//!     before pacman deletes the commands they point to;
//!   * a GNU package is a target: put its pristine files back, so pacman
//!     removes exactly the files it installed (the family is no longer
//!     managed afterwards; its store entries are collected).
//! - `pre-transaction --operation upgrade`: a uutils package backing active
//!   applets is upgraded: flip those applets to GNU for the duration of the
//!   extraction (pacman unlinks and rewrites `uu-*`), post-transaction flips
//!   back after smoke-testing the new files.
//! - `post-transaction`: harvest what pacman wrote, rebuild the desired
//!   generation, flip, link, smoke, roll back on failure.
//!
//! A pre-transaction failure exits non-zero: the hook has `AbortOnFail`, so
//! pacman aborts the transaction. A post-transaction failure cannot abort
//! anything: it prints one line per problem (pacman copies them into
//! pacman.log), marks the state degraded, and exits non-zero.

use std::collections::BTreeSet;
use std::io::Read as _;

use serde_json::json;

use crate::commands::Output;
use crate::engine::{Applied, Engine};
use crate::error::{Error, ErrorId, Result};
use crate::generation;
use crate::inventory::Inventory;
use crate::plan;
use crate::state::{Profile, State};

/// The package name of oxidizr-arch itself.
pub const SELF_PACKAGE: &str = "oxidizr-arch";

/// Which transaction a pre-transaction hook runs before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PreOperation {
    /// Packages are being removed.
    Remove,
    /// Packages are being upgraded.
    Upgrade,
}

/// Reads the targets pacman passes on stdin: one package name per line.
/// Names that are not package names are `E_USAGE` (garbage on stdin is
/// never acted on). At most 64 KiB is read.
pub fn read_targets(input: &mut dyn std::io::Read) -> Result<BTreeSet<String>> {
    let mut text = String::new();
    input
        .take(64 * 1024)
        .read_to_string(&mut text)
        .map_err(|e| Error::io(ErrorId::Usage, "cannot read the hook targets from stdin", e))?;
    let mut targets = BTreeSet::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let ok =
            !line.starts_with(['-', '.']) && line.chars().all(|c| c.is_ascii_alphanumeric() || "@._+-".contains(c));
        if !ok {
            return Err(Error::new(
                ErrorId::Usage,
                format!("hook target '{}' is not a package name", line.escape_debug()),
            ));
        }
        targets.insert(line.to_string());
    }
    Ok(targets)
}

/// The inventory with the given uutils packages treated as absent.
pub fn without_uutils(inv: &Inventory, gone: &BTreeSet<String>) -> Inventory {
    let mut inv = inv.clone();
    for fam in &mut inv.families {
        fam.uutils.retain(|u| !gone.contains(&u.package));
        for a in &mut fam.applets {
            if a.uutils.as_ref().is_some_and(|c| gone.contains(&c.package)) {
                a.uutils = None;
            }
        }
    }
    inv
}

/// The pre-transaction flow.
pub fn pre_transaction(e: &mut Engine, s: &mut State, op: PreOperation, targets: &BTreeSet<String>) -> Result<Output> {
    e.fact(
        "pre-transaction",
        format!("{op:?} of {}", targets.iter().cloned().collect::<Vec<_>>().join(" ")),
        None,
        None,
        None,
    );
    if op == PreOperation::Remove && targets.contains(SELF_PACKAGE) {
        let n = e.restore_pristine()?;
        e.purge()?;
        s.profile = None;
        s.degraded = None;
        e.save_state(s)?;
        e.fact("commit", format!("oxidizr-arch removed: {n} pristine GNU files restored"), None, None, None);
        return Ok(line(format!("==> oxidizr-arch: restored {n} pristine GNU files before its removal")));
    }
    let Some(profile) = s.profile else {
        return Ok(line("==> oxidizr-arch: not enabled, nothing to do".to_string()));
    };
    let db = crate::inventory::PackageDb::open(&e.opts.root, &e.opts.dbpath)?;
    let inv = db.inventory(&e.config)?;
    let gnu_targets: BTreeSet<String> =
        e.config.families.iter().map(|f| f.gnu_package.clone()).filter(|p| targets.contains(p)).collect();
    if op == PreOperation::Remove && !gnu_targets.is_empty() {
        let n = restore_families(e, &inv, &gnu_targets)?;
        e.fact(
            "pre-transaction",
            format!("restored {n} pristine files of {gnu_targets:?} before their removal"),
            None,
            None,
            None,
        );
    }
    let leaving: BTreeSet<String> = inv
        .families
        .iter()
        .flat_map(|f| f.uutils.iter())
        .map(|u| u.package.clone())
        .filter(|p| targets.contains(p))
        .collect();
    let backs_active = active_uses_any(e, &leaving)?;
    if leaving.is_empty() || !backs_active {
        return Ok(line("==> oxidizr-arch: no active command depends on the targets".to_string()));
    }
    let reduced = without_uutils(&inv, &leaving);
    let plan = plan::plan(&reduced, profile, &s.pins)?;
    let gnu_plan = plan::plan(&inv, Profile::Gnu, &BTreeSet::new())?;
    let to = e.transition(s, &plan, &gnu_plan)?;
    let what = if op == PreOperation::Remove { "removal" } else { "upgrade" };
    Ok(line(format!(
        "==> oxidizr-arch: generation {to}: the applets of {} moved to GNU for the {what}",
        leaving.iter().cloned().collect::<Vec<_>>().join(", ")
    )))
}

/// Whether the active generation backs any applet with one of `packages`.
fn active_uses_any(e: &Engine, packages: &BTreeSet<String>) -> Result<bool> {
    let Some(n) = generation::active(&e.layout)? else { return Ok(false) };
    let m = generation::read_manifest(&e.layout, n)?;
    Ok(m.applets
        .values()
        .any(|a| matches!(&a.source, crate::plan::Source::Uutils { package, .. } if packages.contains(package))))
}

/// Restores the managed names of the families whose GNU package is in `gnu`.
fn restore_families(e: &mut Engine, inv: &Inventory, gnu: &BTreeSet<String>) -> Result<usize> {
    let names: Vec<String> = inv
        .families
        .iter()
        .filter(|f| gnu.contains(&f.gnu_package))
        .flat_map(|f| f.applets.iter().map(|a| a.name.clone()))
        .collect();
    e.restore_names(&names)
}

/// The post-transaction flow.
pub fn post_transaction(e: &mut Engine, s: &mut State, targets: &BTreeSet<String>) -> Result<Output> {
    e.fact(
        "post-transaction",
        format!("after {}", targets.iter().cloned().collect::<Vec<_>>().join(" ")),
        None,
        None,
        None,
    );
    let Some(profile) = s.profile else {
        return Ok(line("==> oxidizr-arch: not enabled (run 'oxidizr-hook use uutils' to switch)".to_string()));
    };
    let applied = match e.apply(s, profile, false) {
        Ok(a) => a,
        Err(err) => {
            // After the transaction nothing can be aborted: every failure
            // leaves the system degraded until repaired, and says so.
            if s.degraded.is_none() {
                s.degrade(err.id, err.to_string());
                e.save_state(s)?;
                e.fact("fail", err.to_string(), Some(err.id), None, None);
            }
            return Err(err);
        }
    };
    match applied {
        Applied::UpToDate { generation } => {
            Ok(line(format!("==> oxidizr-arch: profile {} still active (generation {generation})", profile.as_str())))
        }
        Applied::Switched { to, uutils, applets, .. } => Ok(line(format!(
            "==> oxidizr-arch: profile {} active: generation {to} ({applets} applets, {uutils} from uutils), smoke tests passed",
            profile.as_str()
        ))),
        Applied::Planned(_) => unreachable!("hooks never dry-run"),
    }
}

fn line(text: String) -> Output {
    let json = json!({ "message": text.trim_start_matches("==> ") });
    Output { text: format!("{text}\n"), json, code: 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_package_names_one_per_line() {
        let t = read_targets(&mut "coreutils\n\nuutils-coreutils\n".as_bytes()).unwrap();
        assert_eq!(t.into_iter().collect::<Vec<_>>(), ["coreutils", "uutils-coreutils"]);
        assert!(read_targets(&mut "".as_bytes()).unwrap().is_empty());
        assert_eq!(read_targets(&mut "rm -rf /\n".as_bytes()).unwrap_err().id, ErrorId::Usage);
        assert_eq!(read_targets(&mut "\u{0}\u{1}".as_bytes()).unwrap_err().id, ErrorId::Usage);
    }
}
