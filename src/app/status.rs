//! `status`: what is installed per family, as text or JSON.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::pacman::inventory::{FamilyInventory, Inventory};

/// The schema version of `status --json`. Bumped on any incompatible change.
pub const STATUS_SCHEMA: u32 = 1;

/// The JSON document printed by `status --json`.
#[derive(Debug, Serialize)]
pub struct StatusReport<'a> {
    /// Schema version of this document.
    pub schema: u32,
    /// The root operated on.
    pub root: String,
    /// The package database path read.
    pub dbpath: String,
    /// Per-family inventory.
    pub families: &'a [FamilyInventory],
}

/// Renders the status report as pretty JSON (stable key order).
pub fn to_json(inv: &Inventory, root: &Path, dbpath: &Path) -> String {
    let report = StatusReport {
        schema: STATUS_SCHEMA,
        root: root.display().to_string(),
        dbpath: dbpath.display().to_string(),
        families: &inv.families,
    };
    serde_json::to_string_pretty(&report).expect("status report serializes")
}

/// Renders the status report as pacman-style text.
pub fn to_text(inv: &Inventory) -> String {
    let mut out = String::new();
    for fam in &inv.families {
        render_family(&mut out, fam);
    }
    out
}

fn render_family(out: &mut String, fam: &FamilyInventory) {
    let gnu = match &fam.gnu {
        Some(p) => format!("{} {}", p.package, p.version),
        None => format!("{} not installed", fam.gnu_package),
    };
    let _ = writeln!(out, "==> {}: {}", fam.name, gnu);
    if fam.uutils.is_empty() {
        let _ = writeln!(out, "  -> uutils: none installed");
    }
    for u in &fam.uutils {
        let _ = writeln!(out, "  -> uutils: {} {} (prefix '{}')", u.package, u.version, u.prefix);
    }
    let with: Vec<&str> = fam.applets.iter().filter(|a| a.uutils.is_some()).map(|a| a.name.as_str()).collect();
    let without: Vec<&str> = fam.applets.iter().filter(|a| a.uutils.is_none()).map(|a| a.name.as_str()).collect();
    let _ = writeln!(out, "  -> applets: {} ({} with a uutils counterpart)", fam.applets.len(), with.len());
    if !with.is_empty() {
        let _ = writeln!(out, "     uutils:   {}", with.join(" "));
    }
    if !without.is_empty() {
        let _ = writeln!(out, "     GNU only: {}", without.join(" "));
    }
    for s in &fam.skipped {
        let _ = writeln!(out, "  -> skipped (name not UTF-8): {s}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::default_families;
    use crate::pacman::inventory::{family_inventory, PackageFacts};

    #[test]
    fn text_names_packages_and_splits_applets() {
        let fam = &default_families()[0];
        let gnu = PackageFacts {
            name: "coreutils".into(),
            version: "9.10-1".into(),
            files: vec![b"usr/bin/ls".to_vec(), b"usr/bin/stty".to_vec()],
        };
        let uu = PackageFacts {
            name: "uutils-coreutils".into(),
            version: "0.12.0-1".into(),
            files: vec![b"usr/bin/uu-ls".to_vec()],
        };
        let inv = Inventory { families: vec![family_inventory(fam, Some(&gnu), &[(&fam.uutils[0], uu)])] };
        let text = to_text(&inv);
        assert!(text.starts_with("==> coreutils: coreutils 9.10-1\n"), "{text}");
        assert!(text.contains("  -> uutils: uutils-coreutils 0.12.0-1 (prefix 'uu-')"), "{text}");
        assert!(text.contains("applets: 2 (1 with a uutils counterpart)"), "{text}");
        assert!(text.contains("GNU only: stty"), "{text}");
        let json: serde_json::Value =
            serde_json::from_str(&to_json(&inv, Path::new("/"), Path::new("/var/lib/pacman"))).unwrap();
        assert_eq!(json["schema"], 1);
        assert_eq!(json["families"][0]["applets"][0]["uutils"]["path"], "/usr/bin/uu-ls");
        assert!(json["families"][0]["applets"][1]["uutils"].is_null());
    }

    #[test]
    fn missing_gnu_package_is_said() {
        let fam = &default_families()[1];
        let inv = Inventory { families: vec![family_inventory(fam, None, &[])] };
        assert!(to_text(&inv).starts_with("==> findutils: findutils not installed\n"));
    }
}
