//! Generations: immutable trees `generations/<N>/{bin/<applet>, manifest.json}`
//! built in a staging directory, smoke-tested there (the candidate smoke),
//! then published by one rename. Once published a generation never changes.
//! The `active` pointer and the `profiles/<p>` pointers name generations.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::engine::plan::{Plan, PlannedApplet};
use crate::error::{Error, ErrorId, Result};
use crate::kernel::durable::read_json;
use crate::kernel::publish::{remove_tree, Staging};
use crate::kernel::swap::replace_with_symlink;
use crate::kernel::{Dir, Entry, FsyncLog};
use crate::model::layout::{Layout, LIB};
use crate::model::state::Profile;
use crate::smoke::{SmokeReport, SmokeTarget};

/// The manifest schema version.
pub const MANIFEST_SCHEMA: u32 = 1;
/// The manifest's file name inside a generation.
pub const MANIFEST: &str = "manifest.json";

/// What a generation holds and how its candidate smoke went.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`MANIFEST_SCHEMA`].
    pub schema: u32,
    /// The generation number.
    pub generation: u64,
    /// The profile it realizes.
    pub profile: Profile,
    /// The plan id it was built from.
    pub plan_id: String,
    /// Applet -> target and source.
    pub applets: BTreeMap<String, PlannedApplet>,
    /// The installed package versions it was built from.
    pub packages: BTreeMap<String, String>,
    /// sha256 of every stored GNU target, by applet (to detect store damage).
    pub store_sha256: BTreeMap<String, String>,
    /// When it was built (RFC 3339).
    pub created: String,
    /// The candidate smoke, run before publishing.
    pub smoke: SmokeReport,
}

/// The generations directory (created on demand).
pub fn generations_dir(layout: &Layout) -> Result<Dir> {
    layout.dir(&format!("{LIB}/generations"), true)
}

/// Builds generation `number` from `plan`, smoke-tests the staged tree with
/// `smoke` (given the targets as seen inside the root and the staged bin
/// dir), and publishes it only if the smoke passed. On failure the staging
/// tree is removed and `E_SMOKE` carries the report's first failures.
///
/// With `shared`, a published generation whose own `bin` directory holds
/// exactly the plan's links (see [`tree_owner`]), no new tree is made:
/// `bin` is the symlink `../<shared>/bin`. A coreutils upgrade under the
/// uutils profile changes no link, only the manifest.
pub fn build(
    layout: &Layout,
    plan: &Plan,
    number: u64,
    store_sha256: BTreeMap<String, String>,
    smoke: &dyn Fn(&[SmokeTarget], &str) -> SmokeReport,
    log: &mut FsyncLog,
    shared: Option<u64>,
) -> Result<Manifest> {
    let gens = generations_dir(layout)?;
    let staging = Staging::create(&gens, &number.to_string())?;
    let name = staging.staging_name().to_string();
    let built = stage_and_publish(staging, plan, number, store_sha256, smoke, log, shared);
    if built.is_err() && matches!(gens.entry(&name), Ok(Entry::Directory(_))) {
        // A failed build (smoke, ENOSPC, ...) leaves no staging tree behind.
        let _ = remove_tree(&gens, &name);
    }
    built
}

fn stage_and_publish(
    mut staging: Staging<'_>,
    plan: &Plan,
    number: u64,
    store_sha256: BTreeMap<String, String>,
    smoke: &dyn Fn(&[SmokeTarget], &str) -> SmokeReport,
    log: &mut FsyncLog,
    shared: Option<u64>,
) -> Result<Manifest> {
    match shared {
        Some(owner) => staging.symlink_in(0, "bin", &shared_bin(owner))?,
        None => {
            let bin = staging.mkdir("bin")?;
            for (applet, planned) in &plan.applets {
                staging.symlink_in(bin, applet, &planned.target)?;
            }
        }
    }
    let staged_bin = format!("/{LIB}/generations/{}/bin", staging.staging_name());
    let targets: Vec<SmokeTarget> =
        plan.applets.keys().map(|a| SmokeTarget { applet: a.clone(), path: format!("{staged_bin}/{a}") }).collect();
    let report = smoke(&targets, &staged_bin);
    if !report.passed {
        return Err(smoke_error(&format!("candidate generation {number}"), &report));
    }
    let manifest = Manifest {
        schema: MANIFEST_SCHEMA,
        generation: number,
        profile: plan.profile,
        plan_id: plan.id.clone(),
        applets: plan.applets.clone(),
        packages: plan.packages.clone(),
        store_sha256,
        created: crate::model::state::now(),
        smoke: report,
    };
    let mut bytes = serde_json::to_vec_pretty(&manifest).expect("manifests serialize");
    bytes.push(b'\n');
    staging.write_in(0, MANIFEST, &bytes, log)?;
    staging.publish(&number.to_string(), log)?;
    Ok(manifest)
}

/// `E_SMOKE` naming the first failed checks (applet checks, then behaviour).
pub fn smoke_error(what: &str, report: &SmokeReport) -> Error {
    let failed: Vec<String> = report
        .applets
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("{} ({})", c.name, c.detail))
        .chain(
            report
                .behaviour
                .iter()
                .filter(|c| !c.passed)
                .map(|c| format!("behaviour check '{}' ({})", c.name, c.detail)),
        )
        .collect();
    let shown = failed.iter().take(5).cloned().collect::<Vec<_>>().join("; ");
    let more = failed.len().saturating_sub(5);
    let tail = if more > 0 { format!(" and {more} more") } else { String::new() };
    Error::new(ErrorId::Smoke, format!("smoke test of {what} failed: {shown}{tail}"))
}

/// A subdirectory that may be absent, opened without creating anything
/// (read-only commands such as `verify` run under ProtectSystem=strict).
pub fn existing_subdir(parent: &Dir, name: &str) -> Result<Option<Dir>> {
    match parent.entry(name)? {
        Entry::Absent => Ok(None),
        _ => parent.subdir(name, false).map(Some),
    }
}

/// The generations directory if it exists (never created).
pub fn generations_dir_ro(layout: &Layout) -> Result<Option<Dir>> {
    if !layout.lib_exists() {
        return Ok(None);
    }
    existing_subdir(&layout.lib(false)?, "generations")
}

/// The `bin` symlink of a generation that shares generation `owner`'s links.
pub fn shared_bin(owner: u64) -> String {
    format!("../{owner}/bin")
}

/// The generation whose `bin` directory holds generation `n`'s links: `n`
/// itself (its `bin` is a directory), or the generation its `bin` symlink
/// names (`../<M>/bin`, M another published generation whose `bin` is a
/// directory). None when `bin` is anything else: not a tree of ours.
pub fn tree_owner(layout: &Layout, n: u64) -> Result<Option<u64>> {
    let Some(gens) = generations_dir_ro(layout)? else { return Ok(None) };
    let gdir = match gens.entry(&n.to_string())? {
        Entry::Directory(_) => gens.subdir(&n.to_string(), false)?,
        _ => return Ok(None),
    };
    match gdir.entry("bin")? {
        Entry::Directory(_) => Ok(Some(n)),
        Entry::Symlink(_, dest) => {
            let owner = dest
                .strip_prefix("../")
                .and_then(|r| r.strip_suffix("/bin"))
                .and_then(|m| m.parse::<u64>().ok())
                .filter(|m| *m != n && shared_bin(*m) == dest);
            let own_tree = |m: u64| -> Result<bool> {
                Ok(match gens.entry(&m.to_string())? {
                    Entry::Directory(_) => {
                        matches!(gens.subdir(&m.to_string(), false)?.entry("bin")?, Entry::Directory(_))
                    }
                    _ => false,
                })
            };
            match owner {
                Some(m) if own_tree(m)? => Ok(Some(m)),
                _ => Ok(None),
            }
        }
        _ => Ok(None),
    }
}

/// Reads generation `n`'s manifest; `E_STATE_CORRUPT` if it is damaged.
pub fn read_manifest(layout: &Layout, n: u64) -> Result<Manifest> {
    let gens = generations_dir_ro(layout)?
        .ok_or_else(|| Error::new(ErrorId::StateCorrupt, format!("generation {n} does not exist")))?;
    let dir = gens.subdir(&n.to_string(), false)?;
    let m: Manifest = read_json(&dir, MANIFEST)?
        .ok_or_else(|| Error::new(ErrorId::StateCorrupt, format!("generation {n} has no manifest")))?;
    if m.schema != MANIFEST_SCHEMA || m.generation != n {
        return Err(Error::new(
            ErrorId::StateCorrupt,
            format!("generation {n}: manifest does not match (schema {}, generation {})", m.schema, m.generation),
        ));
    }
    Ok(m)
}

/// The published generation numbers, ascending; other names are returned
/// separately (foreign entries or leftovers of a crashed build).
pub fn list(layout: &Layout) -> Result<(Vec<u64>, Vec<String>)> {
    let Some(gens) = generations_dir_ro(layout)? else { return Ok((Vec::new(), Vec::new())) };
    let mut numbers = Vec::new();
    let mut other = Vec::new();
    for name in gens.list()? {
        match (name.parse::<u64>(), gens.entry(&name)?) {
            (Ok(n), Entry::Directory(_)) if n.to_string() == name => numbers.push(n),
            _ => other.push(name),
        }
    }
    numbers.sort_unstable();
    Ok((numbers, other))
}

/// The generation `active` points to (None: no pointer). A pointer that is
/// not `generations/<N>` is `E_STATE_CORRUPT`.
pub fn active(layout: &Layout) -> Result<Option<u64>> {
    if !layout.lib_exists() {
        return Ok(None);
    }
    pointer(&layout.lib(false)?, "active", "generations/")
}

fn pointer(dir: &Dir, name: &str, prefix: &str) -> Result<Option<u64>> {
    match dir.entry(name)? {
        Entry::Absent => Ok(None),
        Entry::Symlink(_, dest) => {
            dest.strip_prefix(prefix).and_then(|n| n.parse::<u64>().ok()).map(Some).ok_or_else(|| {
                Error::new(ErrorId::StateCorrupt, format!("{} points to '{dest}', not a generation", dir.show(name)))
            })
        }
        other => {
            Err(Error::new(ErrorId::StateCorrupt, format!("{} is a {}, not our pointer", dir.show(name), other.kind())))
        }
    }
}

/// Flips `active` to generation `n` (one atomic rename) and the profile
/// pointer with it. Returns the previous active generation.
pub fn flip(layout: &Layout, n: u64, profile: Profile, log: &mut FsyncLog) -> Result<Option<u64>> {
    let lib = layout.lib(true)?;
    let before = pointer(&lib, "active", "generations/").ok().flatten();
    // Everything that can be refused is refused before `active` moves.
    let profiles = lib.subdir("profiles", true)?;
    if let Entry::Directory(_) = profiles.entry(profile.as_str())? {
        return Err(Error::new(
            ErrorId::Policy,
            format!("{} is a directory, not our pointer", profiles.show(profile.as_str())),
        ));
    }
    replace_with_symlink(&lib, "active", &format!("generations/{n}"), log)?;
    replace_with_symlink(&profiles, profile.as_str(), &format!("../generations/{n}"), log)?;
    Ok(before)
}

/// Points `profiles/<profile>` at generation `n` without touching
/// `active` (one atomic rename, directory fsynced): a profile kept current
/// for `canary` and the rollback chain while another profile is active.
pub fn point_profile(layout: &Layout, profile: Profile, n: u64, log: &mut FsyncLog) -> Result<()> {
    let profiles = layout.lib(true)?.subdir("profiles", true)?;
    if let Entry::Directory(_) = profiles.entry(profile.as_str())? {
        return Err(Error::new(
            ErrorId::Policy,
            format!("{} is a directory, not our pointer", profiles.show(profile.as_str())),
        ));
    }
    replace_with_symlink(&profiles, profile.as_str(), &format!("../generations/{n}"), log)?;
    Ok(())
}

/// Refuses (`E_POLICY`) pointers that are not ours: `active` and the
/// profile pointers must be symlinks (or absent), `profiles` a directory
/// (or absent). Checked in preflight, before anything is built or flipped.
pub fn check_pointers(layout: &Layout) -> Result<()> {
    if !layout.lib_exists() {
        return Ok(());
    }
    let lib = layout.lib(false)?;
    let refuse = |what: String, kind: &str| {
        Err(Error::new(ErrorId::Policy, format!("{what} is a {kind}, not ours: refusing to flip")))
    };
    match lib.entry("active")? {
        Entry::Absent | Entry::Symlink(..) => {}
        other => return refuse(lib.show("active"), other.kind()),
    }
    match lib.entry("profiles")? {
        Entry::Absent => Ok(()),
        Entry::Directory(_) => {
            let profiles = lib.subdir("profiles", false)?;
            for p in [Profile::Gnu, Profile::Uutils] {
                match profiles.entry(p.as_str())? {
                    Entry::Absent | Entry::Symlink(..) => {}
                    other => return refuse(profiles.show(p.as_str()), other.kind()),
                }
            }
            Ok(())
        }
        other => refuse(lib.show("profiles"), other.kind()),
    }
}

/// The generation a profile pointer names.
pub fn profile_pointer(layout: &Layout, profile: Profile) -> Result<Option<u64>> {
    if !layout.lib_exists() {
        return Ok(None);
    }
    let Some(profiles) = existing_subdir(&layout.lib(false)?, "profiles")? else { return Ok(None) };
    pointer(&profiles, profile.as_str(), "../generations/")
}
