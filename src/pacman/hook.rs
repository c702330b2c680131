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
//!     managed afterwards; its store entries are collected). This is also
//!     how a package that replaces GNU coreutils (provides and conflicts
//!     with `coreutils`) is handled: pacman removes `coreutils` in the same
//!     transaction and runs the Remove hooks for it.
//! - `pre-transaction --operation upgrade`: a uutils package backing active
//!   applets is upgraded: flip those applets to GNU for the duration of the
//!   extraction (pacman unlinks and rewrites `uu-*`), post-transaction flips
//!   back after smoke-testing the new files.
//! - `post-transaction`: harvest what pacman wrote, rebuild the desired
//!   generation, flip, link, smoke, roll back on failure.
//!
//! Targets are real package names (pacman matches the hook files' `Target`
//! globs, e.g. `uutils-coreutils*`, against names, never `provides`); they
//! are mapped to families through the inventory: `uutils-coreutils-bin` is
//! a target of the coreutils family because the inventory found it as a
//! provider of `uutils-coreutils`, not because it is configured.
//!
//! A pre-transaction failure exits non-zero: the hook has `AbortOnFail`, so
//! pacman aborts the transaction. A post-transaction failure cannot abort
//! anything: it prints one line per problem (pacman copies them into
//! pacman.log), marks the state degraded, and exits non-zero.

use std::collections::BTreeSet;
use std::io::Read as _;

use serde_json::json;

use crate::engine::generation;
use crate::engine::plan;
use crate::engine::{Applied, Engine};
use crate::error::{Error, ErrorId, Result};
use crate::model::output::Output;
use crate::model::state::{Profile, State};
use crate::pacman::inventory::Inventory;

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

/// The inventory with the families whose GNU package is in `gone` treated
/// as not installed: they manage no applet.
pub fn without_gnu(inv: &Inventory, gone: &BTreeSet<String>) -> Inventory {
    let mut inv = inv.clone();
    for fam in &mut inv.families {
        if fam.gnu.as_ref().is_some_and(|g| gone.contains(&g.package)) {
            fam.gnu = None;
            fam.applets.clear();
        }
    }
    inv
}

/// The installed GNU packages among the targets (exact names, through the
/// inventory: a package that provides `coreutils` is not GNU coreutils).
pub fn gnu_targets(inv: &Inventory, targets: &BTreeSet<String>) -> BTreeSet<String> {
    inv.families
        .iter()
        .filter_map(|f| f.gnu.as_ref())
        .map(|g| g.package.clone())
        .filter(|p| targets.contains(p))
        .collect()
}

/// The installed uutils packages among the targets, whatever their names
/// (the inventory found them by name or `provides`).
pub fn uutils_targets(inv: &Inventory, targets: &BTreeSet<String>) -> BTreeSet<String> {
    inv.families
        .iter()
        .flat_map(|f| f.uutils.iter())
        .map(|u| u.package.clone())
        .filter(|p| targets.contains(p))
        .collect()
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
        let n = e.disable(s)?;
        e.purge()?;
        e.fact("commit", format!("oxidizr-arch removed: {n} pristine GNU files restored"), None, None, None);
        return Ok(line(format!("==> oxidizr-arch: restored {n} pristine GNU files before its removal")));
    }
    let Some(profile) = s.profile else {
        return Ok(line("==> oxidizr-arch: not enabled, nothing to do".to_string()));
    };
    let db = crate::pacman::inventory::PackageDb::open(&e.opts.root, &e.opts.dbpath)?;
    let inv = db.inventory(&e.config)?;
    let mut lines = Vec::new();
    // A GNU package leaving (removed, or replaced by a package that
    // conflicts with it): its pristine files back now, so pacman removes
    // what it installed; the family manages nothing afterwards.
    let gnu_leaving = if op == PreOperation::Remove { gnu_targets(&inv, targets) } else { BTreeSet::new() };
    let kept = without_gnu(&inv, &gnu_leaving);
    for fam in inv.families.iter().filter(|f| f.gnu.as_ref().is_some_and(|g| gnu_leaving.contains(&g.package))) {
        let n = restore_family(e, fam)?;
        let gnu = fam.gnu.as_ref().map(|g| g.package.as_str()).unwrap_or_default();
        e.fact("pre-transaction", format!("restored {n} pristine files of {gnu} before its removal"), None, None, None);
        lines.push(format!(
            "==> oxidizr-arch: {gnu} is being removed: its {n} commands are its own files again, the {} family is no longer managed",
            fam.name
        ));
    }
    // A uutils package leaving or being rewritten that backs active applets
    // of a family that stays: those applets move to GNU first.
    let leaving = uutils_targets(&inv, targets);
    if !leaving.is_empty() && active_uses_any(e, &leaving, &gnu_leaving_families(&inv, &gnu_leaving))? {
        let reduced = without_uutils(&kept, &leaving);
        let plan = plan::plan(&reduced, profile, &s.effective_pins())?;
        let gnu_plan = plan::plan(&kept, Profile::Gnu, &BTreeSet::new())?;
        let to = e.transition(s, &plan, &gnu_plan)?;
        let what = if op == PreOperation::Remove { "removal" } else { "upgrade" };
        lines.push(format!(
            "==> oxidizr-arch: generation {to}: the applets of {} moved to GNU for the {what}",
            leaving.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    if lines.is_empty() {
        lines.push("==> oxidizr-arch: no active command depends on the targets".to_string());
    }
    Ok(line(lines.join("\n")))
}

/// The names of the families whose GNU package is in `gone`.
fn gnu_leaving_families(inv: &Inventory, gone: &BTreeSet<String>) -> BTreeSet<String> {
    inv.families
        .iter()
        .filter(|f| f.gnu.as_ref().is_some_and(|g| gone.contains(&g.package)))
        .map(|f| f.name.clone())
        .collect()
}

/// Whether the active generation backs an applet of a family not in
/// `dropped` with one of `packages`.
fn active_uses_any(e: &Engine, packages: &BTreeSet<String>, dropped: &BTreeSet<String>) -> Result<bool> {
    let Some(n) = generation::active(&e.layout)? else { return Ok(false) };
    let m = generation::read_manifest(&e.layout, n)?;
    Ok(m.applets.values().any(|a| {
        !dropped.contains(&a.family)
            && matches!(&a.source, crate::engine::plan::Source::Uutils { package, .. } if packages.contains(package))
    }))
}

/// Restores the managed names of a family (its pristine GNU files back).
fn restore_family(e: &mut Engine, fam: &crate::pacman::inventory::FamilyInventory) -> Result<usize> {
    let names: Vec<String> = fam.applets.iter().map(|a| a.name.clone()).collect();
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

/// The `Target` values of a pacman hook file, in order.
pub fn hook_file_targets(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Target"))
        .filter_map(|rest| rest.trim_start().strip_prefix('='))
        .map(str::trim)
        .collect()
}

/// Whether pacman fires a hook with these `Target` patterns for a package
/// named `name` (libalpm's `_alpm_fnmatch_patterns`): the patterns are
/// tried from the last to the first; the first that matches decides, and
/// one written `!PATTERN` excludes. A leading `\` escapes a literal `!`.
pub fn hook_targets_match(patterns: &[&str], name: &str) -> bool {
    for pattern in patterns.iter().rev() {
        let (inverted, pattern) = match pattern.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, pattern.strip_prefix('\\').unwrap_or(pattern)),
        };
        if fnmatch(pattern.as_bytes(), name.as_bytes()) {
            return !inverted;
        }
    }
    false
}

/// fnmatch(3) without flags, as libalpm calls it: `*` any run of bytes,
/// `?` one byte, `[...]` a set (`!` or `^` negates, `a-z` ranges, `]`
/// first is literal), `\` escapes the next byte.
fn fnmatch(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') => (0..=s.len()).any(|i| fnmatch(&p[1..], &s[i..])),
        Some(b'?') => !s.is_empty() && fnmatch(&p[1..], &s[1..]),
        Some(b'[') => match (s.first(), bracket(&p[1..])) {
            (Some(&c), Some((set, negated, rest))) => set_contains(set, c) != negated && fnmatch(rest, &s[1..]),
            // An unclosed '[' is an ordinary character.
            (Some(&c), None) => c == b'[' && fnmatch(&p[1..], &s[1..]),
            (None, _) => false,
        },
        Some(b'\\') if p.len() > 1 => s.first() == Some(&p[1]) && fnmatch(&p[2..], &s[1..]),
        Some(&c) => s.first() == Some(&c) && fnmatch(&p[1..], &s[1..]),
    }
}

/// Splits a bracket expression after its `[`: (set, negated, rest of the pattern).
fn bracket(p: &[u8]) -> Option<(&[u8], bool, &[u8])> {
    let negated = matches!(p.first(), Some(b'!' | b'^'));
    let body = if negated { &p[1..] } else { p };
    // A ']' right after the opening (or its negation) is a member.
    let end = body.iter().skip(1).position(|&c| c == b']')? + 1;
    Some((&body[..end], negated, &body[end + 1..]))
}

fn set_contains(set: &[u8], c: u8) -> bool {
    let mut i = 0;
    while i < set.len() {
        if i + 2 < set.len() && set[i + 1] == b'-' {
            if set[i] <= c && c <= set[i + 2] {
                return true;
            }
            i += 3;
        } else {
            if set[i] == c {
                return true;
            }
            i += 1;
        }
    }
    false
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

    const PRE_REMOVE: &str = include_str!("../../hooks/10-oxidizr-arch-pre-remove.hook");
    const PRE_UPGRADE: &str = include_str!("../../hooks/10-oxidizr-arch-pre-upgrade.hook");
    const POST: &str = include_str!("../../hooks/90-oxidizr-arch-post.hook");

    /// Provider packages users install instead of the configured names
    /// (AUR: -bin, -git builds), with the same uu-* layout.
    const KNOWN_PROVIDERS: [&str; 6] = [
        "uutils-coreutils-bin",
        "uutils-coreutils-git",
        "uutils-findutils-bin",
        "uutils-findutils-git",
        "uutils-coreutils-git-debug",
        "uutils-findutils-debug",
    ];

    fn fires(hook: &str, name: &str) -> bool {
        hook_targets_match(&hook_file_targets(hook), name)
    }

    #[test]
    fn hook_targets_cover_every_default_family_and_known_provider() {
        let families = crate::model::config::default_families();
        let uutils: Vec<&str> =
            families.iter().flat_map(|f| f.uutils.iter().map(|u| u.package.as_str())).chain(KNOWN_PROVIDERS).collect();
        for name in &uutils {
            assert!(fires(PRE_REMOVE, name), "pre-remove hook misses {name}");
            assert!(fires(PRE_UPGRADE, name), "pre-upgrade hook misses {name}");
            assert!(fires(POST, name), "post hook misses {name}");
        }
        for f in &families {
            assert!(fires(PRE_REMOVE, &f.gnu_package), "pre-remove hook misses {}", f.gnu_package);
            assert!(fires(POST, &f.gnu_package), "post hook misses {}", f.gnu_package);
            // A GNU upgrade needs no pre hook: pacman writes files, never
            // removes the targets our links point at.
            assert!(!fires(PRE_UPGRADE, &f.gnu_package), "pre-upgrade hook fires for {}", f.gnu_package);
        }
        assert!(fires(PRE_REMOVE, SELF_PACKAGE) && fires(POST, SELF_PACKAGE));
        for unrelated in ["bash", "coreutils-doc", "findutils-extra", "uutils", "xuutils-coreutils", "busybox"] {
            for hook in [PRE_REMOVE, PRE_UPGRADE, POST] {
                assert!(!fires(hook, unrelated), "a hook fires for {unrelated}");
            }
        }
    }

    #[test]
    fn hook_files_trigger_on_the_operations_they_handle() {
        let ops = |hook: &str| -> Vec<String> {
            hook.lines().filter_map(|l| l.strip_prefix("Operation = ")).map(str::to_string).collect()
        };
        assert_eq!(ops(PRE_REMOVE), ["Remove"]);
        assert_eq!(ops(PRE_UPGRADE), ["Upgrade"]);
        assert_eq!(ops(POST), ["Install", "Upgrade", "Remove"]);
        assert!(PRE_REMOVE.contains("When = PreTransaction") && PRE_REMOVE.contains("AbortOnFail"));
        assert!(PRE_UPGRADE.contains("When = PreTransaction") && PRE_UPGRADE.contains("AbortOnFail"));
        assert!(POST.contains("When = PostTransaction"));
        for hook in [PRE_REMOVE, PRE_UPGRADE, POST] {
            assert!(hook.contains("NeedsTargets"));
        }
    }

    #[test]
    fn target_matching_is_pacmans() {
        let m = |patterns: &[&str], name| hook_targets_match(patterns, name);
        assert!(m(&["coreutils"], "coreutils"));
        assert!(!m(&["coreutils"], "coreutils-bin"));
        assert!(m(&["uutils-coreutils*"], "uutils-coreutils"));
        assert!(m(&["uutils-coreutils*"], "uutils-coreutils-bin"));
        assert!(!m(&["uutils-coreutils*"], "xuutils-coreutils"));
        assert!(m(&["uutils-?indutils"], "uutils-findutils"));
        assert!(m(&["uutils-[cf]*utils"], "uutils-findutils"));
        assert!(!m(&["uutils-[!cf]*"], "uutils-findutils"));
        assert!(m(&["uutils-[a-d]*"], "uutils-coreutils"));
        assert!(m(&["a[]]b"], "a]b"));
        assert!(m(&["a\\*b"], "a*b") && !m(&["a\\*b"], "axb"));
        // The last matching pattern decides; '!' excludes.
        assert!(!m(&["uutils-*", "!uutils-findutils"], "uutils-findutils"));
        assert!(m(&["uutils-*", "!uutils-findutils"], "uutils-coreutils"));
        assert!(m(&["!uutils-findutils", "uutils-*"], "uutils-findutils"));
        assert!(m(&["\\!x"], "!x"));
        assert!(!m(&[], "coreutils"));
    }

    fn inv_with(names: &[(&str, &[&str])]) -> Inventory {
        use crate::pacman::inventory::{family_inventory, PackageFacts};
        let fams = crate::model::config::default_families();
        let families = fams
            .iter()
            .zip(names)
            .map(|(f, (gnu, uu))| {
                let files = |p: &str| vec![format!("usr/bin/{p}ls").into_bytes()];
                let gnu = PackageFacts { name: gnu.to_string(), version: "1-1".into(), files: files("") };
                let uutils: Vec<_> = uu
                    .iter()
                    .map(|n| {
                        (&f.uutils[0], PackageFacts { name: n.to_string(), version: "1-1".into(), files: files("uu-") })
                    })
                    .collect();
                family_inventory(f, Some(&gnu), &uutils)
            })
            .collect();
        Inventory { families }
    }

    #[test]
    fn targets_map_to_families_through_the_inventory() {
        let inv = inv_with(&[("coreutils", &["uutils-coreutils-bin"]), ("findutils", &[])]);
        let t = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<String>>();
        // pacman passes the real name; the inventory knows it as coreutils' provider.
        assert_eq!(uutils_targets(&inv, &t(&["uutils-coreutils-bin"])), t(&["uutils-coreutils-bin"]));
        assert!(uutils_targets(&inv, &t(&["uutils-coreutils"])).is_empty(), "not installed: not a target");
        assert_eq!(gnu_targets(&inv, &t(&["coreutils", "uutils-coreutils-bin"])), t(&["coreutils"]));
        let kept = without_gnu(&inv, &t(&["coreutils"]));
        assert!(kept.families[0].gnu.is_none() && kept.families[0].applets.is_empty());
        assert!(kept.families[1].gnu.is_some());
        let reduced = without_uutils(&inv, &t(&["uutils-coreutils-bin"]));
        assert_eq!(reduced.families[0].with_counterpart(), 0);
    }
}
