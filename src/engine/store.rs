//! The GNU store: every GNU binary pacman wrote at a managed `/usr/bin`
//! path is hard-linked (same inode) into `store/gnu/<pkg>-<ver>/<applet>`
//! before anything points away from it. A GNU binary is never lost: its
//! bytes are at `/usr/bin/<applet>` or in the store, always.

use std::collections::{BTreeMap, BTreeSet};

use crate::engine::plan::{Plan, Source};
use crate::error::{Error, ErrorId, Result};
use crate::kernel::digest::sha256_fd;
use crate::kernel::harvest::{harvest_many, HarvestItem};
use crate::kernel::{Dir, Entry, FsyncLog};
use crate::model::layout::{managed_link, store_dir_name, Layout, LIB};
use crate::pacman::mtree::{Records, Verdict};

/// The result of harvesting.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Harvest {
    /// Applets newly linked into the store.
    pub harvested: usize,
    /// Applets whose file already was in the store.
    pub already: usize,
    /// Applets copied across filesystems (EXDEV, degraded).
    pub degraded: usize,
    /// sha256 of every GNU applet's stored file.
    pub sha256: BTreeMap<String, String>,
    /// Applets whose file was already only in the store (our link at
    /// `/usr/bin`): not checked against pacman at harvest (verify's job).
    pub in_store: BTreeSet<String>,
}

/// What [`check_against_pacman`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PacmanCheck {
    /// Files whose sha256 is the one pacman's local mtree records.
    pub matched: usize,
    /// Files of packages without a readable record (nothing concluded).
    pub unrecorded: usize,
}

/// Every GNU file harvested from `/usr/bin` now (a file pacman wrote) is
/// trusted only when it matches pacman's own record: the `sha256digest` of
/// `usr/bin/<applet>` in the package's local mtree (each package's mtree
/// read once). A file that differs is refused with `E_OWNERSHIP`, naming
/// the package, the file and both digests. Files already only in the store
/// are `verify`'s (`store-damaged`, `store-not-pacmans`, healed by
/// `verify --repair`), not a reason to refuse a rebuild.
pub fn check_against_pacman(
    dbpath: &std::path::Path,
    gnu: &BTreeMap<String, (String, String)>,
    harvest: &Harvest,
) -> Result<PacmanCheck> {
    let mut pacman = Records::new(dbpath);
    let mut out = PacmanCheck::default();
    for (applet, sha) in &harvest.sha256 {
        let Some((package, version)) = gnu.get(applet) else { continue };
        if harvest.in_store.contains(applet) {
            continue;
        }
        match pacman.judge(package, version, applet, &format!("/usr/bin/{applet}"), sha) {
            Verdict::Matches => out.matched += 1,
            Verdict::Unrecorded(_) => out.unrecorded += 1,
            Verdict::Differs(why) => {
                return Err(Error::new(
                    ErrorId::Ownership,
                    format!("{why}; it changed after pacman installed it: reinstall {package}"),
                ))
            }
        }
    }
    Ok(out)
}

/// The store directory of a GNU package version (created on demand).
pub fn package_dir(layout: &Layout, package: &str, version: &str) -> Result<Dir> {
    layout.dir(&format!("{LIB}/store/gnu/{}", store_dir_name(package, version)), true)
}

/// Harvests every applet of the plan's GNU packages (all applets, whatever
/// the profile: a uutils-backed applet still keeps its GNU binary).
///
/// `/usr/bin/<applet>` must be the GNU file (harvested now) or our link
/// (then the store must already hold the current version's file, else
/// `E_BACKUP_MISSING`). Anything else is refused before any change.
pub fn harvest_all(layout: &Layout, gnu: &BTreeMap<String, (String, String)>, log: &mut FsyncLog) -> Result<Harvest> {
    let bin = layout.bin()?;
    let mut out = Harvest::default();
    // One handle per store directory: the batch fsyncs each directory once.
    let mut stores: BTreeMap<(&str, &str), Dir> = BTreeMap::new();
    for (package, version) in gnu.values() {
        if !stores.contains_key(&(package.as_str(), version.as_str())) {
            stores.insert((package, version), package_dir(layout, package, version)?);
        }
    }
    let mut files: Vec<&str> = Vec::new();
    for (applet, (package, version)) in gnu {
        let store = &stores[&(package.as_str(), version.as_str())];
        match bin.entry(applet)? {
            Entry::File(_) => files.push(applet),
            // Our link, or our link deleted by hand: the store must hold it.
            Entry::Absent => stored_already(store, applet, package, version, &mut out)?,
            Entry::Symlink(_, dest) if dest == managed_link(applet) => {
                stored_already(store, applet, package, version, &mut out)?
            }
            other => {
                return Err(Error::new(
                    ErrorId::Ownership,
                    format!(
                        "/usr/bin/{applet} is a {} that {package} did not put there; refusing to manage it",
                        other.kind()
                    ),
                ))
            }
        }
    }
    let items: Vec<HarvestItem> = files
        .iter()
        .map(|applet| {
            let (package, version) = &gnu[*applet];
            let dst = &stores[&(package.as_str(), version.as_str())];
            HarvestItem { src: &bin, name: applet, dst, dst_name: applet, known_sha256: None }
        })
        .collect();
    for (applet, h) in files.iter().zip(harvest_many(&items, log)?) {
        if h.already {
            out.already += 1
        } else {
            out.harvested += 1
        }
        if h.degraded {
            out.degraded += 1;
        }
        out.sha256.insert(applet.to_string(), h.sha256);
    }
    Ok(out)
}

/// Counts an applet whose GNU file is already only in the store.
fn stored_already(store: &Dir, applet: &str, package: &str, version: &str, out: &mut Harvest) -> Result<()> {
    let fd = store.open_file(applet).map_err(|_| {
        Error::new(
            ErrorId::BackupMissing,
            format!("the GNU {applet} of {package} {version} is neither at /usr/bin/{applet} nor in the store; reinstall {package}"),
        )
    })?;
    out.already += 1;
    out.in_store.insert(applet.to_string());
    out.sha256.insert(applet.to_string(), sha256_fd(&fd, &store.show(applet))?);
    Ok(())
}

/// Every GNU applet of the inventory's installed GNU packages, with its
/// package and version, from a plan computed for any profile.
pub fn gnu_sources(plan_gnu: &Plan) -> BTreeMap<String, (String, String)> {
    plan_gnu
        .applets
        .iter()
        .filter_map(|(a, p)| match &p.source {
            Source::Gnu { package, version } => Some((a.clone(), (package.clone(), version.clone()))),
            Source::Uutils { .. } => None,
        })
        .collect()
}

/// The GNU package and version of a store directory recorded in a sidecar
/// (`usr/lib/oxidizr-arch/store/gnu/<pkg>-<pkgver>-<pkgrel>`); `None` for
/// anything else. pacman forbids `-` in pkgver and pkgrel, so the version
/// is the last two `-`-separated fields, whatever the package name holds.
pub fn store_package(backup_dir: &str) -> Option<(String, String)> {
    let dir = backup_dir.strip_prefix(&format!("{LIB}/store/gnu/"))?;
    if dir.is_empty() || dir.contains('/') {
        return None;
    }
    let mut fields = dir.rsplitn(3, '-');
    let (pkgrel, pkgver, name) = (fields.next()?, fields.next()?, fields.next()?);
    if name.is_empty() || pkgver.is_empty() || pkgrel.is_empty() {
        return None;
    }
    Some((name.to_string(), format!("{pkgver}-{pkgrel}")))
}

/// The xattr of a file capability (setcap).
pub const CAPABILITY_XATTR: &str = "security.capability";

/// Every kept GNU binary whose sidecar recorded a `security.capability`
/// at harvest still has one (the flip never copies the file: the store
/// holds the inode pacman wrote, so a loss is damage done to it since).
/// Checked after every flip and by `verify` (`capability-lost`). Returns
/// how many kept files had one recorded, and one sentence per file that
/// lost it.
pub fn capabilities(engine: &super::Engine) -> Result<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let names = engine.managed_names()?;
    if names.is_empty() {
        return Ok((0, out));
    }
    let sidecars = engine.layout.dir(&format!("{}/sidecars", crate::model::layout::STATE), false)?;
    let mut seen = BTreeSet::new();
    for name in names {
        // An unreadable sidecar is verify's `sidecar-damaged`.
        let Ok(Some(sc)) = crate::kernel::sidecar::read(&sidecars, &name) else { continue };
        let crate::kernel::sidecar::Prior::File { xattrs, backup, .. } = &sc.prior else { continue };
        if !xattrs.iter().any(|x| x == CAPABILITY_XATTR) {
            continue;
        }
        let shown = format!("/{}/{backup}", sc.backup_dir);
        if !seen.insert(shown.clone()) {
            continue;
        }
        let now = engine
            .layout
            .dir(&sc.backup_dir, false)
            .and_then(|d| d.open_file(backup))
            .and_then(|fd| crate::kernel::copy::xattr_names(&fd));
        let package = store_package(&sc.backup_dir).map(|(p, _)| p).unwrap_or_else(|| "its package".into());
        match now {
            Ok(n) if n.iter().any(|x| x == CAPABILITY_XATTR) => {}
            Ok(_) => out.push(format!(
                "{shown} (/usr/bin/{name}) had {CAPABILITY_XATTR} when harvested and has none now: reinstall {package}"
            )),
            // A missing file is verify's `store-damaged`.
            Err(_) => {}
        }
    }
    Ok((seen.len(), out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_directories_name_their_package_and_version() {
        let p = |d: &str| store_package(d).map(|(n, v)| format!("{n} {v}"));
        assert_eq!(p("usr/lib/oxidizr-arch/store/gnu/coreutils-9.10-1").as_deref(), Some("coreutils 9.10-1"));
        assert_eq!(
            p("usr/lib/oxidizr-arch/store/gnu/my-core-utils-1:2.0_rc1-3").as_deref(),
            Some("my-core-utils 1:2.0_rc1-3")
        );
        for not in [
            "usr/lib/oxidizr-arch/store/gnu/coreutils-9.10",
            "usr/lib/oxidizr-arch/store/gnu/-9.10-1",
            "usr/lib/oxidizr-arch/store/gnu/coreutils-9.10-1/x",
            "usr/lib/oxidizr-arch/store/gnu/",
            "usr/bin",
            "var/lib/oxidizr-arch/store/gnu/coreutils-9.10-1",
        ] {
            assert_eq!(p(not), None, "{not}");
        }
    }
}
