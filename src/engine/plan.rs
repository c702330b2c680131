//! Plan: from the inventory (what libalpm says is installed), the desired
//! profile and the pins, compute the desired generation: applet -> target.
//! Pure and deterministic: the same inputs give the same plan and plan id.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorId, Result};
use crate::model::layout::store_path;
use crate::model::state::Profile;
use crate::pacman::inventory::Inventory;

/// Where an applet's command comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "lowercase")]
pub enum Source {
    /// The GNU binary, kept in the store.
    Gnu {
        /// GNU package name.
        package: String,
        /// Its version.
        version: String,
    },
    /// The uutils command shipped by an installed uutils package.
    Uutils {
        /// uutils package name.
        package: String,
        /// Its version.
        version: String,
    },
}

/// One applet of the plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedApplet {
    /// The family it belongs to.
    pub family: String,
    /// Where its command comes from.
    #[serde(flatten)]
    pub source: Source,
    /// The absolute path (inside the root) the generation's link points to.
    pub target: String,
}

/// The desired generation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The profile.
    pub profile: Profile,
    /// Applet name -> what backs it (sorted by name).
    pub applets: BTreeMap<String, PlannedApplet>,
    /// Every installed package of the families, name -> version: any
    /// upgrade changes the plan, so new files are always smoke-tested.
    pub packages: BTreeMap<String, String>,
    /// A stable id: sha256 of the canonical plan (first 16 hex digits).
    pub id: String,
}

impl Plan {
    /// The applets whose source is GNU.
    pub fn gnu_applets(&self) -> impl Iterator<Item = (&String, &PlannedApplet)> {
        self.applets.iter().filter(|(_, a)| matches!(a.source, Source::Gnu { .. }))
    }

    /// This plan with `applets` backed by GNU as in `gnu_plan` (the policy's
    /// pins): the same plan, and plan id, as planning with them pinned.
    pub fn keeping_on_gnu(&self, gnu_plan: &Plan, applets: &BTreeSet<String>) -> Plan {
        let mut kept = self.clone();
        for applet in applets {
            if let (Some(slot), Some(gnu)) = (kept.applets.get_mut(applet), gnu_plan.applets.get(applet)) {
                *slot = gnu.clone();
            }
        }
        kept.id = plan_id(kept.profile, &kept.applets, &kept.packages);
        kept
    }

    /// How many applets are backed by uutils.
    pub fn uutils_count(&self) -> usize {
        self.applets.values().filter(|a| matches!(a.source, Source::Uutils { .. })).count()
    }
}

/// Computes the plan. Families whose GNU package is not installed manage no
/// applet; an applet claimed by two families is `E_CONFIG`.
pub fn plan(inv: &Inventory, profile: Profile, pins: &BTreeSet<String>) -> Result<Plan> {
    let mut applets = BTreeMap::new();
    for fam in &inv.families {
        let Some(gnu) = &fam.gnu else { continue };
        for a in &fam.applets {
            let uutils = a.uutils.as_ref().filter(|_| profile == Profile::Uutils && !pins.contains(&a.name));
            let planned = match uutils {
                Some(c) => {
                    let version = fam
                        .uutils
                        .iter()
                        .find(|u| u.package == c.package)
                        .map(|u| u.version.clone())
                        .unwrap_or_default();
                    PlannedApplet {
                        family: fam.name.clone(),
                        source: Source::Uutils { package: c.package.clone(), version },
                        target: c.path.clone(),
                    }
                }
                None => PlannedApplet {
                    family: fam.name.clone(),
                    source: Source::Gnu { package: gnu.package.clone(), version: gnu.version.clone() },
                    target: store_path(&gnu.package, &gnu.version, &a.name),
                },
            };
            if applets.insert(a.name.clone(), planned).is_some() {
                return Err(Error::new(ErrorId::Config, format!("applet '{}' is claimed by two families", a.name)));
            }
        }
    }
    let packages = inv
        .families
        .iter()
        .flat_map(|f| {
            let gnu = f.gnu.iter().map(|g| (g.package.clone(), g.version.clone()));
            gnu.chain(f.uutils.iter().map(|u| (u.package.clone(), u.version.clone())))
        })
        .collect();
    let id = plan_id(profile, &applets, &packages);
    Ok(Plan { profile, applets, packages, id })
}

fn plan_id(profile: Profile, applets: &BTreeMap<String, PlannedApplet>, packages: &BTreeMap<String, String>) -> String {
    let canonical = serde_json::to_vec(&(profile, applets, packages)).expect("plans serialize");
    let digest = Sha256::digest(&canonical);
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::default_families;
    use crate::pacman::inventory::{family_inventory, PackageFacts};

    fn inv(with_uutils: bool) -> Inventory {
        let fams = default_families();
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
        let uutils = if with_uutils { vec![(&fams[0].uutils[0], uu)] } else { vec![] };
        Inventory {
            families: vec![family_inventory(&fams[0], Some(&gnu), &uutils), family_inventory(&fams[1], None, &[])],
        }
    }

    #[test]
    fn uutils_where_provided_gnu_elsewhere() {
        let p = plan(&inv(true), Profile::Uutils, &BTreeSet::new()).unwrap();
        assert_eq!(p.applets["ls"].target, "/usr/bin/uu-ls");
        assert_eq!(p.applets["stty"].target, "/usr/lib/oxidizr-arch/store/gnu/coreutils-9.10-1/stty");
        assert_eq!(p.uutils_count(), 1);
    }

    #[test]
    fn pins_and_gnu_profile_keep_gnu() {
        let pins: BTreeSet<String> = ["ls".to_string()].into();
        let p = plan(&inv(true), Profile::Uutils, &pins).unwrap();
        assert_eq!(p.uutils_count(), 0);
        let g = plan(&inv(true), Profile::Gnu, &BTreeSet::new()).unwrap();
        assert_eq!(g.uutils_count(), 0);
    }

    #[test]
    fn plan_id_is_deterministic_and_input_sensitive() {
        let a = plan(&inv(true), Profile::Uutils, &BTreeSet::new()).unwrap();
        let b = plan(&inv(true), Profile::Uutils, &BTreeSet::new()).unwrap();
        let c = plan(&inv(false), Profile::Uutils, &BTreeSet::new()).unwrap();
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, c.id);
        let mut newer = inv(true);
        newer.families[0].gnu.as_mut().unwrap().version = "9.11-1".into();
        let d = plan(&newer, Profile::Uutils, &BTreeSet::new()).unwrap();
        assert_ne!(a.id, d.id, "a GNU upgrade changes the plan even when every applet is uutils");
        assert_eq!(a.id.len(), 16);
    }

    #[test]
    fn keeping_on_gnu_is_planning_with_those_pins() {
        let all = plan(&inv(true), Profile::Uutils, &BTreeSet::new()).unwrap();
        let gnu = plan(&inv(true), Profile::Gnu, &BTreeSet::new()).unwrap();
        let pins: BTreeSet<String> = ["ls".to_string()].into();
        assert_eq!(all.keeping_on_gnu(&gnu, &pins), plan(&inv(true), Profile::Uutils, &pins).unwrap());
    }
}
