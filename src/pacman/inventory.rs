//! Inventory: what the package database says is installed, per family.
//!
//! The applets of a family are exactly the GNU package's files directly
//! under `usr/bin`, read through libalpm: nothing is guessed from the disk,
//! and no applet the GNU package does not ship is ever invented. An applet
//! has a uutils counterpart when an installed uutils package of the family
//! ships `usr/bin/<prefix><applet>`.
//!
//! Providers: a configured uutils name is a capability. The installed
//! package of that name and every installed package that `provides` it
//! (the AUR's `uutils-coreutils-bin`, `uutils-findutils-git`, ...) are the
//! family's uutils packages, in configuration order, the package named so
//! first, then providers by name. Which of the configured prefixes a
//! package uses is read from its own file list: the first prefix under which
//! it ships a command of the GNU package. The GNU side is the package of
//! exactly the configured name: a package that merely provides `coreutils`
//! is never taken for GNU coreutils.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, ErrorId, Result};
use crate::model::config::{Config, Family, UutilsProvider};

/// The directory (relative to the root, as ALPM lists it) holding applets.
pub const BIN_DIR: &str = "usr/bin/";

/// An installed package: its name, version and file list (paths relative to
/// the root, as libalpm stores them; directories end with `/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageFacts {
    /// Package name.
    pub name: String,
    /// Full version, `[epoch:]pkgver-pkgrel`.
    pub version: String,
    /// Every file the package owns, relative to the root.
    pub files: Vec<Vec<u8>>,
}

/// A package name and version, as shown to the admin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InstalledPackage {
    /// Package name.
    pub package: String,
    /// Installed version.
    pub version: String,
}

/// An installed uutils package of a family.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InstalledUutils {
    /// Package name.
    pub package: String,
    /// Installed version.
    pub version: String,
    /// The command prefix it uses: the first configured prefix under which
    /// its file list has a command of the GNU package (the first configured
    /// one when it has none).
    pub prefix: String,
    /// The configured name it stands in for, when its own name differs:
    /// `uutils-coreutils` for `uutils-coreutils-bin` (found by `provides`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provides: Option<String>,
}

/// Where an applet's uutils counterpart comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Counterpart {
    /// The uutils package shipping it.
    pub package: String,
    /// Its absolute path inside the root, e.g. `/usr/bin/uu-ls`.
    pub path: String,
}

/// One command of a GNU package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Applet {
    /// The command name, e.g. `ls` or `[`.
    pub name: String,
    /// Its absolute path inside the root, e.g. `/usr/bin/ls`.
    pub gnu_path: String,
    /// The uutils command that can stand in for it, if one is installed.
    pub uutils: Option<Counterpart>,
}

/// What is installed for one family.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FamilyInventory {
    /// The family's name from the configuration.
    pub name: String,
    /// The GNU package's configured name.
    pub gnu_package: String,
    /// The installed GNU package, if any.
    pub gnu: Option<InstalledPackage>,
    /// Installed uutils packages, in configuration order.
    pub uutils: Vec<InstalledUutils>,
    /// The applets, sorted by name (byte order).
    pub applets: Vec<Applet>,
    /// Files under usr/bin of the GNU package that were skipped because their
    /// names are not UTF-8 (left unmanaged, never guessed at).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

impl FamilyInventory {
    /// The number of applets with a uutils counterpart.
    pub fn with_counterpart(&self) -> usize {
        self.applets.iter().filter(|a| a.uutils.is_some()).count()
    }
}

/// The inventory of every configured family.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Inventory {
    /// One entry per configured family, in configuration order.
    pub families: Vec<FamilyInventory>,
}

/// The names of the files directly under `usr/bin/` in a file list.
/// Directories and deeper paths are not commands.
fn bin_names(files: &[Vec<u8>]) -> impl Iterator<Item = &[u8]> {
    files.iter().filter_map(|f| {
        let rest = f.strip_prefix(BIN_DIR.as_bytes())?;
        (!rest.is_empty() && !rest.contains(&b'/')).then_some(rest)
    })
}

/// Builds a family's inventory from package facts. Pure: no I/O.
///
/// `uutils` pairs each installed uutils package with the configuration
/// entry it was found by (its own name or a `provides`), in the order of
/// [`select_providers`].
pub fn family_inventory(
    family: &Family,
    gnu: Option<&PackageFacts>,
    uutils: &[(&UutilsProvider, PackageFacts)],
) -> FamilyInventory {
    let mut names = Vec::new();
    let mut skipped = Vec::new();
    if let Some(gnu) = gnu {
        for raw in bin_names(&gnu.files) {
            match std::str::from_utf8(raw) {
                Ok(name) => names.push(name.to_string()),
                Err(_) => skipped.push(String::from_utf8_lossy(raw).into_owned()),
            }
        }
    }
    // Each package's prefix, read from its own file list.
    let providers: Vec<Provider> = uutils
        .iter()
        .map(|(prov, facts)| {
            let bins: HashSet<&[u8]> = bin_names(&facts.files).collect();
            Provider { facts, prefix: detect_prefix(&prov.prefixes, &names, &bins), bins }
        })
        .collect();
    let mut applets: Vec<Applet> = names
        .into_iter()
        .map(|name| {
            // The first package (in order) that ships `<its prefix><name>`.
            let uutils = providers.iter().find_map(|p| {
                let wanted = format!("{}{name}", p.prefix?);
                p.bins
                    .contains(wanted.as_bytes())
                    .then(|| Counterpart { package: p.facts.name.clone(), path: format!("/{BIN_DIR}{wanted}") })
            });
            Applet { gnu_path: format!("/{BIN_DIR}{name}"), name, uutils }
        })
        .collect();
    applets.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    FamilyInventory {
        name: family.name.clone(),
        gnu_package: family.gnu_package.clone(),
        gnu: gnu.map(|p| InstalledPackage { package: p.name.clone(), version: p.version.clone() }),
        uutils: uutils
            .iter()
            .zip(&providers)
            .map(|((prov, facts), p)| InstalledUutils {
                package: facts.name.clone(),
                version: facts.version.clone(),
                prefix: p.prefix.or(prov.prefixes.first().map(String::as_str)).unwrap_or_default().to_string(),
                provides: (facts.name != prov.package).then(|| prov.package.clone()),
            })
            .collect(),
        applets,
        skipped,
    }
}

/// An installed uutils package as `family_inventory` reads it: its facts,
/// the prefix it uses, and the names it ships under `usr/bin`.
struct Provider<'a> {
    facts: &'a PackageFacts,
    prefix: Option<&'a str>,
    bins: HashSet<&'a [u8]>,
}

/// The prefix a package uses, among the configured ones (in order): the
/// first under which it ships a command of the GNU package. With no GNU
/// applets to compare against, the first non-empty prefix some command of
/// the package starts with. `None`: the package names no command the
/// configuration expects (no counterpart comes from it).
pub fn detect_prefix<'p>(prefixes: &'p [String], applets: &[String], bins: &HashSet<&[u8]>) -> Option<&'p str> {
    if applets.is_empty() {
        return prefixes
            .iter()
            .find(|p| !p.is_empty() && bins.iter().any(|b| b.starts_with(p.as_bytes())))
            .map(String::as_str);
    }
    prefixes.iter().find(|p| applets.iter().any(|a| bins.contains(format!("{p}{a}").as_bytes()))).map(String::as_str)
}

/// An installed package that is, or provides, a configured uutils name:
/// its name and the configured names it provides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The installed package's name.
    pub name: String,
    /// The configured uutils names among its `provides` (versions dropped).
    pub provides: BTreeSet<String>,
}

/// A family's uutils packages among `installed`, with the index of the
/// configuration entry each was found by. Pure. For each entry in order:
/// the package of exactly that name, then the packages providing it by
/// name; a package found once is not listed again, and the family's GNU
/// package is never a uutils package.
pub fn select_providers(family: &Family, installed: &[Candidate]) -> Vec<(usize, String)> {
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::new();
    for (i, prov) in family.uutils.iter().enumerate() {
        let named = installed.iter().filter(|c| c.name == prov.package);
        let mut providing: Vec<&Candidate> =
            installed.iter().filter(|c| c.name != prov.package && c.provides.contains(&prov.package)).collect();
        providing.sort_by(|a, b| a.name.cmp(&b.name));
        for c in named.chain(providing) {
            if c.name != family.gnu_package && seen.insert(c.name.as_str()) {
                out.push((i, c.name.clone()));
            }
        }
    }
    out
}

/// A read-only view of the local package database.
pub struct PackageDb {
    handle: alpm::Alpm,
}

impl PackageDb {
    /// Opens the local database of `root` at `dbpath` read-only. Never takes
    /// pacman's lock, so it works from inside a pacman hook.
    pub fn open(root: &Path, dbpath: &Path) -> Result<PackageDb> {
        let handle = alpm::Alpm::new(root.as_os_str().as_bytes(), dbpath.as_os_str().as_bytes()).map_err(|e| {
            Error::new(
                ErrorId::Alpm,
                format!("cannot open the package database at {} (root {}): {e}", dbpath.display(), root.display()),
            )
        })?;
        // A missing or unreadable local DB must be an error, not "nothing installed".
        handle.localdb().is_valid().map_err(|e| {
            Error::new(ErrorId::Alpm, format!("the local package database at {} is not valid: {e}", dbpath.display()))
        })?;
        Ok(PackageDb { handle })
    }

    /// The facts of an installed package, or `None` when it is not installed.
    pub fn package(&self, name: &str) -> Result<Option<PackageFacts>> {
        match self.handle.localdb().pkg(name) {
            Ok(pkg) => Ok(Some(PackageFacts {
                name: pkg.name().to_string(),
                version: pkg.version().to_string(),
                files: pkg.files().files().iter().map(|f| f.name().to_vec()).collect(),
            })),
            Err(alpm::Error::PkgNotFound) => Ok(None),
            Err(e) => Err(Error::new(ErrorId::Alpm, format!("cannot read package '{name}': {e}"))),
        }
    }

    /// The installed packages that are named like, or provide, one of
    /// `names`. One pass over the local database.
    pub fn candidates(&self, names: &BTreeSet<&str>) -> Vec<Candidate> {
        let mut out = Vec::new();
        for pkg in self.handle.localdb().pkgs() {
            let provides: BTreeSet<String> =
                pkg.provides().iter().map(|d| d.name()).filter(|n| names.contains(n)).map(str::to_string).collect();
            if names.contains(pkg.name()) || !provides.is_empty() {
                out.push(Candidate { name: pkg.name().to_string(), provides });
            }
        }
        out
    }

    /// The inventory of every configured family: the GNU package by its
    /// exact name, the uutils packages by name or `provides`
    /// ([`select_providers`]).
    pub fn inventory(&self, config: &Config) -> Result<Inventory> {
        let names: BTreeSet<&str> =
            config.families.iter().flat_map(|f| f.uutils.iter().map(|u| u.package.as_str())).collect();
        let candidates = self.candidates(&names);
        let mut facts: BTreeMap<String, PackageFacts> = BTreeMap::new();
        let mut families = Vec::with_capacity(config.families.len());
        for family in &config.families {
            let gnu = self.package(&family.gnu_package)?;
            let mut uutils = Vec::new();
            for (i, name) in select_providers(family, &candidates) {
                if !facts.contains_key(&name) {
                    match self.package(&name)? {
                        Some(f) => facts.insert(name.clone(), f),
                        None => continue,
                    };
                }
                uutils.push((&family.uutils[i], facts[&name].clone()));
            }
            families.push(family_inventory(family, gnu.as_ref(), &uutils));
        }
        Ok(Inventory { families })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::default_families;

    fn facts(name: &str, files: &[&str]) -> PackageFacts {
        PackageFacts {
            name: name.into(),
            version: "1.0-1".into(),
            files: files.iter().map(|f| f.as_bytes().to_vec()).collect(),
        }
    }

    #[test]
    fn applets_are_gnu_bin_files_only() {
        let fam = &default_families()[0];
        let gnu =
            facts("coreutils", &["usr/", "usr/bin/", "usr/bin/ls", "usr/bin/[", "usr/bin/sub/x", "usr/share/man/ls.1"]);
        let inv = family_inventory(fam, Some(&gnu), &[]);
        let names: Vec<_> = inv.applets.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["[", "ls"]);
        assert_eq!(inv.applets[1].gnu_path, "/usr/bin/ls");
        assert_eq!(inv.with_counterpart(), 0);
    }

    #[test]
    fn counterparts_follow_prefix_and_never_invent_applets() {
        let fam = &default_families()[0];
        let gnu = facts("coreutils", &["usr/bin/ls", "usr/bin/stty"]);
        let uu = facts("uutils-coreutils", &["usr/bin/uu-ls", "usr/bin/uu-coreutils", "usr/bin/uu-more"]);
        let inv = family_inventory(fam, Some(&gnu), &[(&fam.uutils[0], uu)]);
        assert_eq!(inv.applets.len(), 2, "uu-coreutils and uu-more are not applets");
        let ls = &inv.applets[0];
        assert_eq!(ls.uutils.as_ref().unwrap().path, "/usr/bin/uu-ls");
        assert!(inv.applets[1].uutils.is_none(), "stty has no counterpart");
        assert_eq!(inv.uutils[0].prefix, "uu-");
        assert_eq!(inv.uutils[0].provides, None, "found by its own name");
    }

    fn candidate(name: &str, provides: &[&str]) -> Candidate {
        Candidate { name: name.into(), provides: provides.iter().map(|p| p.to_string()).collect() }
    }

    #[test]
    fn providers_of_the_capability_are_uutils_packages() {
        let fam = &default_families()[0];
        // The AUR's -bin package: provides=("uutils-coreutils=$pkgver").
        let installed = [candidate("uutils-coreutils-bin", &["uutils-coreutils"])];
        assert_eq!(select_providers(fam, &installed), [(0, "uutils-coreutils-bin".to_string())]);
        let gnu = facts("coreutils", &["usr/bin/ls", "usr/bin/cat"]);
        let bin = facts("uutils-coreutils-bin", &["usr/bin/uu-coreutils", "usr/bin/uu-ls", "usr/bin/uu-cat"]);
        let inv = family_inventory(fam, Some(&gnu), &[(&fam.uutils[0], bin)]);
        assert_eq!(inv.with_counterpart(), 2);
        assert_eq!(inv.applets[1].uutils.as_ref().unwrap().package, "uutils-coreutils-bin");
        assert_eq!(inv.uutils[0].provides.as_deref(), Some("uutils-coreutils"));
    }

    #[test]
    fn the_named_package_comes_first_then_providers_by_name_each_once() {
        let fam = &default_families()[1];
        let installed = [
            candidate("uutils-findutils-git", &["uutils-findutils"]),
            candidate("uutils-findutils-bin", &["uutils-findutils"]),
            candidate("uutils-findutils", &[]),
        ];
        let names: Vec<String> = select_providers(fam, &installed).into_iter().map(|(_, n)| n).collect();
        // uutils-findutils-bin is found through entry 0's provides before
        // its own entry 1: listed once.
        assert_eq!(names, ["uutils-findutils", "uutils-findutils-bin", "uutils-findutils-git"]);
    }

    #[test]
    fn a_provider_of_gnu_coreutils_is_never_gnu() {
        let fam = &default_families()[0];
        // A -git build that replaces coreutils: provides coreutils and uutils-coreutils.
        let installed = [candidate("uutils-coreutils-git", &["uutils-coreutils"])];
        assert_eq!(select_providers(fam, &installed), [(0, "uutils-coreutils-git".to_string())]);
        // The GNU package is never a uutils package, whatever it provides.
        assert!(select_providers(fam, &[candidate("coreutils", &["uutils-coreutils"])]).is_empty());
        // With GNU absent the family has no applets: nothing is managed.
        let git = facts("uutils-coreutils-git", &["usr/bin/coreutils", "usr/bin/ls"]);
        let inv = family_inventory(fam, None, &[(&fam.uutils[0], git)]);
        assert!(inv.gnu.is_none());
        assert!(inv.applets.is_empty());
    }

    #[test]
    fn the_prefix_is_read_from_the_package_files() {
        let mut fam = default_families()[1].clone();
        assert_eq!(fam.uutils[0].prefixes, ["uu-", "uutils-"]);
        let gnu = facts("findutils", &["usr/bin/find", "usr/bin/xargs"]);
        // uutils-findutils 0.7 named its commands uutils-find, uutils-xargs.
        let old = facts("uutils-findutils", &["usr/bin/uutils-find", "usr/bin/uutils-xargs"]);
        let inv = family_inventory(&fam, Some(&gnu), &[(&fam.uutils[0], old)]);
        assert_eq!(inv.uutils[0].prefix, "uutils-");
        assert_eq!(inv.applets[0].uutils.as_ref().unwrap().path, "/usr/bin/uutils-find");
        // 0.8+: uu-find. A package shipping both is read with the first prefix only.
        let both = facts("uutils-findutils", &["usr/bin/uu-find", "usr/bin/uutils-find", "usr/bin/uutils-xargs"]);
        let inv = family_inventory(&fam, Some(&gnu), &[(&fam.uutils[0], both)]);
        assert_eq!(inv.uutils[0].prefix, "uu-");
        assert_eq!(inv.applets[0].uutils.as_ref().unwrap().path, "/usr/bin/uu-find");
        assert!(inv.applets[1].uutils.is_none(), "xargs: no uu-xargs, and uutils-xargs is not mixed in");
        // A single configured prefix the package does not use: no counterpart.
        fam.uutils[0].prefixes = vec!["uu-".into()];
        let old = facts("uutils-findutils", &["usr/bin/uutils-find"]);
        let inv = family_inventory(&fam, Some(&gnu), &[(&fam.uutils[0], old)]);
        assert_eq!(inv.with_counterpart(), 0);
        assert_eq!(inv.uutils[0].prefix, "uu-");
    }

    #[test]
    fn first_provider_in_configuration_order_wins() {
        let fam = &default_families()[1];
        let gnu = facts("findutils", &["usr/bin/find", "usr/bin/xargs"]);
        let a = facts("uutils-findutils", &["usr/bin/uu-find"]);
        let b = facts("uutils-findutils-bin", &["usr/bin/uu-find", "usr/bin/uu-xargs"]);
        let inv = family_inventory(fam, Some(&gnu), &[(&fam.uutils[0], a), (&fam.uutils[1], b)]);
        assert_eq!(inv.applets[0].uutils.as_ref().unwrap().package, "uutils-findutils");
        assert_eq!(inv.applets[1].uutils.as_ref().unwrap().package, "uutils-findutils-bin");
    }

    #[test]
    fn non_utf8_names_are_skipped_and_reported() {
        let fam = &default_families()[0];
        let mut gnu = facts("coreutils", &["usr/bin/ls"]);
        gnu.files.push(b"usr/bin/\xff".to_vec());
        let inv = family_inventory(fam, Some(&gnu), &[]);
        assert_eq!(inv.applets.len(), 1);
        assert_eq!(inv.skipped.len(), 1);
    }

    #[test]
    fn absent_gnu_package_has_no_applets() {
        let fam = &default_families()[0];
        let inv = family_inventory(fam, None, &[]);
        assert!(inv.gnu.is_none());
        assert!(inv.applets.is_empty());
    }
}
