//! Inventory: what the package database says is installed, per family.
//!
//! The applets of a family are exactly the GNU package's files directly
//! under `usr/bin`, read through libalpm: nothing is guessed from the disk,
//! and no applet the GNU package does not ship is ever invented. An applet
//! has a uutils counterpart when an installed uutils package of the family
//! ships `usr/bin/<prefix><applet>`.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use serde::Serialize;

use crate::config::{Config, Family, UutilsProvider};
use crate::error::{Error, ErrorId, Result};

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
    /// Command prefix from the configuration.
    pub prefix: String,
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
/// `uutils` pairs each installed provider with its facts, in configuration order.
pub fn family_inventory(
    family: &Family,
    gnu: Option<&PackageFacts>,
    uutils: &[(&UutilsProvider, PackageFacts)],
) -> FamilyInventory {
    let mut applets = Vec::new();
    let mut skipped = Vec::new();
    if let Some(gnu) = gnu {
        for raw in bin_names(&gnu.files) {
            match std::str::from_utf8(raw) {
                Ok(name) => applets.push(Applet {
                    name: name.to_string(),
                    gnu_path: format!("/{BIN_DIR}{name}"),
                    uutils: counterpart(name, uutils),
                }),
                Err(_) => skipped.push(String::from_utf8_lossy(raw).into_owned()),
            }
        }
    }
    applets.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    FamilyInventory {
        name: family.name.clone(),
        gnu_package: family.gnu_package.clone(),
        gnu: gnu.map(|p| InstalledPackage { package: p.name.clone(), version: p.version.clone() }),
        uutils: uutils
            .iter()
            .map(|(prov, facts)| InstalledUutils {
                package: facts.name.clone(),
                version: facts.version.clone(),
                prefix: prov.prefix.clone(),
            })
            .collect(),
        applets,
        skipped,
    }
}

/// The first installed provider (configuration order) shipping `<prefix><name>`.
fn counterpart(name: &str, uutils: &[(&UutilsProvider, PackageFacts)]) -> Option<Counterpart> {
    uutils.iter().find_map(|(prov, facts)| {
        let wanted = format!("{}{}", prov.prefix, name);
        bin_names(&facts.files)
            .any(|n| n == wanted.as_bytes())
            .then(|| Counterpart { package: facts.name.clone(), path: format!("/{BIN_DIR}{wanted}") })
    })
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

    /// The inventory of every configured family.
    pub fn inventory(&self, config: &Config) -> Result<Inventory> {
        let mut families = Vec::with_capacity(config.families.len());
        for family in &config.families {
            let gnu = self.package(&family.gnu_package)?;
            let mut uutils = Vec::new();
            for prov in &family.uutils {
                if let Some(facts) = self.package(&prov.package)? {
                    uutils.push((prov, facts));
                }
            }
            families.push(family_inventory(family, gnu.as_ref(), &uutils));
        }
        Ok(Inventory { families })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::default_families;

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
