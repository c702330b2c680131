//! Configuration: which package families are managed and how their uutils
//! counterparts are named.
//!
//! Package names and command prefixes are data, not code paths: Arch renames
//! packages and uutils changes prefixes, and an admin can follow without a
//! new release. The defaults are Arch's as of pacman 7.x: `coreutils` with
//! `uutils-coreutils`, `findutils` with the AUR's `uutils-findutils` /
//! `uutils-findutils-bin`, commands prefixed `uu-` (or `uutils-`, as
//! uutils-findutils 0.7 named them).
//!
//! A uutils entry names a *capability*: the package of that name and every
//! installed package that `provides` it (the AUR's `uutils-coreutils-bin`
//! provides `uutils-coreutils`) are its providers. The GNU side is always
//! the package of exactly the configured name, never a provider of it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorId, Result};
use crate::model::policy::Policy;

/// Where the configuration file lives, relative to `--root`.
pub const CONFIG_PATH: &str = "etc/oxidizr-arch/config.toml";

/// The uutils commands of a family: a package name that is also a
/// capability (see the module documentation), and how its commands are named.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UutilsProvider {
    /// The package name, e.g. `uutils-coreutils`; installed packages that
    /// provide it (`provides=(uutils-coreutils=...)`) count as well.
    pub package: String,
    /// The accepted prefixes of its commands in the bin dir, in order of
    /// preference, e.g. `uu-` for `/usr/bin/uu-ls`. Written `prefix = "uu-"`
    /// or `prefix = ["uu-", "uutils-"]`; which one a package uses is read
    /// from its own file list (see `inventory`).
    #[serde(default = "default_prefixes", rename = "prefix", deserialize_with = "one_or_many")]
    pub prefixes: Vec<String>,
}

fn default_prefixes() -> Vec<String> {
    vec!["uu-".to_string(), "uutils-".to_string()]
}

/// `"uu-"` or `["uu-", "uutils-"]`.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    match OneOrMany::deserialize(d) {
        Ok(OneOrMany::One(p)) => Ok(vec![p]),
        Ok(OneOrMany::Many(ps)) => Ok(ps),
        Err(_) => Err(serde::de::Error::custom("prefix must be a string or an array of strings")),
    }
}

/// One family: a GNU package whose commands may be replaced by uutils ones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Family {
    /// A short name for output, e.g. `coreutils`.
    pub name: String,
    /// The GNU package whose files under `usr/bin` are the applets.
    pub gnu_package: String,
    /// Packages that provide uutils counterparts, in order of preference.
    pub uutils: Vec<UutilsProvider>,
}

/// The whole configuration. Only `families` exists at this stage; unknown
/// keys are refused so a typo never silently does nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The managed families, in display order.
    #[serde(default = "default_families", rename = "family")]
    pub families: Vec<Family>,
    /// Generations kept by GC besides the active one and the profile pointers.
    #[serde(default = "default_keep")]
    pub keep_generations: usize,
    /// Seconds a command waits for another oxidizr-hook's lock.
    #[serde(default = "default_lock_timeout")]
    pub lock_timeout_secs: u64,
    /// Seconds each smoke-test command may run.
    #[serde(default = "default_smoke_timeout")]
    pub smoke_timeout_secs: u64,
    /// Whether the pacman hooks carry a passed smoke verdict over to a new
    /// generation whose binary is the very same unchanged file (see
    /// `verdict`); false: the hooks execute every check every time.
    #[serde(default = "default_reuse")]
    pub reuse_smoke_verdicts: bool,
    /// Whether the boot gate (`oxidizr-hook boot-gate`, run early in every
    /// boot by oxidizr-boot-gate.service) falls back from an active
    /// generation that fails its live check; false: it only reports.
    #[serde(default = "default_boot_fallback")]
    pub boot_fallback: bool,
    /// Which applets `use uutils` switches (`recommended`, `all`,
    /// `strict`; see [`Policy`]); `use uutils --policy` overrides it.
    #[serde(default)]
    pub policy: Policy,
    /// Whether `use uutils` and the hooks run the differential cases
    /// before they switch; false: the policy decides from the concern list
    /// alone (`compat` still runs the cases when asked).
    #[serde(default = "default_compat_checks")]
    pub compat_checks: bool,
}

fn default_compat_checks() -> bool {
    true
}

fn default_boot_fallback() -> bool {
    true
}

fn default_reuse() -> bool {
    true
}

fn default_keep() -> usize {
    3
}

fn default_lock_timeout() -> u64 {
    30
}

fn default_smoke_timeout() -> u64 {
    5
}

impl Default for Config {
    fn default() -> Self {
        Config {
            families: default_families(),
            keep_generations: default_keep(),
            lock_timeout_secs: default_lock_timeout(),
            smoke_timeout_secs: default_smoke_timeout(),
            reuse_smoke_verdicts: default_reuse(),
            boot_fallback: default_boot_fallback(),
            policy: Policy::default(),
            compat_checks: default_compat_checks(),
        }
    }
}

fn provider(package: &str) -> UutilsProvider {
    UutilsProvider { package: package.to_string(), prefixes: default_prefixes() }
}

/// Arch's families: coreutils and findutils with their uutils packages
/// (and, through `provides`, every package standing in for them).
pub fn default_families() -> Vec<Family> {
    vec![
        Family {
            name: "coreutils".into(),
            gnu_package: "coreutils".into(),
            uutils: vec![provider("uutils-coreutils")],
        },
        Family {
            name: "findutils".into(),
            gnu_package: "findutils".into(),
            uutils: vec![provider("uutils-findutils"), provider("uutils-findutils-bin")],
        },
    ]
}

impl Config {
    /// Parses a configuration from TOML text and validates it.
    pub fn from_toml(text: &str) -> Result<Config> {
        let config: Config = toml::from_str(text)
            .map_err(|e| Error::new(ErrorId::Config, format!("invalid configuration: {}", e.message())))?;
        config.validate()?;
        Ok(config)
    }

    /// Loads `<root>/etc/oxidizr-arch/config.toml`; Arch's defaults when the
    /// file does not exist. Any other read or parse failure is `E_CONFIG`.
    pub fn load(root: &Path) -> Result<Config> {
        let path = root.join(CONFIG_PATH);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                Config::from_toml(&text).map_err(|e| Error::new(e.id, format!("{}: {}", path.display(), e.reason)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(Error::io(ErrorId::Config, format!("cannot read {}", path.display()), e)),
        }
    }

    /// Refuses names that cannot be package names or safe command prefixes.
    pub fn validate(&self) -> Result<()> {
        if self.keep_generations == 0 || self.lock_timeout_secs == 0 || self.smoke_timeout_secs == 0 {
            return Err(Error::new(
                ErrorId::Config,
                "keep_generations, lock_timeout_secs and smoke_timeout_secs must be at least 1",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for family in &self.families {
            check_name("family name", &family.name)?;
            check_name("package name", &family.gnu_package)?;
            if !seen.insert(family.name.as_str()) {
                return Err(Error::new(ErrorId::Config, format!("family '{}' is defined twice", family.name)));
            }
            for p in &family.uutils {
                check_name("package name", &p.package)?;
                if p.package == family.gnu_package {
                    return Err(Error::new(
                        ErrorId::Config,
                        format!(
                            "family '{}': '{}' cannot be both the GNU and a uutils package",
                            family.name, p.package
                        ),
                    ));
                }
                if p.prefixes.is_empty() {
                    return Err(Error::new(ErrorId::Config, format!("'{}' needs at least one prefix", p.package)));
                }
                let mut prefixes = std::collections::HashSet::new();
                for prefix in &p.prefixes {
                    if prefix.contains('/') || prefix.contains('\0') {
                        return Err(Error::new(ErrorId::Config, format!("prefix '{prefix}' must not contain '/'")));
                    }
                    if !prefixes.insert(prefix) {
                        return Err(Error::new(ErrorId::Config, format!("prefix '{prefix}' is listed twice")));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Package names per makepkg's rules: alphanumerics and `@._+-`, not
/// starting with `-` or `.`.
fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with(['-', '.'])
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "@._+-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::new(ErrorId::Config, format!("invalid {what} '{name}'")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_fallback_defaults_on_and_can_be_turned_off() {
        assert!(Config::default().boot_fallback);
        assert!(Config::from_toml("").unwrap().boot_fallback);
        assert!(!Config::from_toml("boot_fallback = false\n").unwrap().boot_fallback);
        assert_eq!(Config::from_toml("boot_fallback = 1\n").unwrap_err().id, ErrorId::Config);
    }

    #[test]
    fn defaults_are_arch_names() {
        let c = Config::default();
        assert_eq!(c.families[0].gnu_package, "coreutils");
        assert_eq!(c.families[0].uutils[0].package, "uutils-coreutils");
        assert_eq!(c.families[1].uutils.len(), 2);
        c.validate().unwrap();
    }

    #[test]
    fn toml_overrides_names_and_prefix() {
        let c = Config::from_toml(
            r#"
            [[family]]
            name = "coreutils"
            gnu_package = "coreutils"
            uutils = [{ package = "rust-coreutils", prefix = "" }]
            "#,
        )
        .unwrap();
        assert_eq!(c.families.len(), 1);
        assert_eq!(c.families[0].uutils[0].prefixes, [""]);
    }

    #[test]
    fn prefix_is_one_string_or_several_in_order() {
        // Today's files (`prefix = "uu-"`) stay valid.
        let one = Config::from_toml(
            "[[family]]\nname='coreutils'\ngnu_package='coreutils'\nuutils=[{package='uutils-coreutils',prefix='uu-'}]",
        )
        .unwrap();
        assert_eq!(one.families[0].uutils[0].prefixes, ["uu-"]);
        let many = Config::from_toml(
            "[[family]]\nname='findutils'\ngnu_package='findutils'\nuutils=[{package='uutils-findutils',prefix=['uu-','uutils-']}]",
        )
        .unwrap();
        assert_eq!(many.families[0].uutils[0].prefixes, ["uu-", "uutils-"]);
        let default = Config::from_toml(
            "[[family]]\nname='findutils'\ngnu_package='findutils'\nuutils=[{package='uutils-findutils'}]",
        )
        .unwrap();
        assert_eq!(default.families[0].uutils[0].prefixes, ["uu-", "uutils-"]);
        for bad in ["prefix=[]", "prefix=['uu-','uu-']", "prefix=['uu-','a/b']", "prefix=1", "prefix=[1]"] {
            let text =
                format!("[[family]]\nname='c'\ngnu_package='coreutils'\nuutils=[{{package='uutils-coreutils',{bad}}}]");
            assert_eq!(Config::from_toml(&text).unwrap_err().id, ErrorId::Config, "{bad}");
        }
    }

    #[test]
    fn a_package_cannot_be_both_gnu_and_uutils() {
        let e = Config::from_toml("[[family]]\nname='c'\ngnu_package='coreutils'\nuutils=[{package='coreutils'}]")
            .unwrap_err();
        assert_eq!(e.id, ErrorId::Config);
    }

    #[test]
    fn empty_file_means_defaults() {
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
    }

    #[test]
    fn unknown_keys_and_bad_names_are_config_errors() {
        let e = Config::from_toml("famly = 1").unwrap_err();
        assert_eq!(e.id, ErrorId::Config);
        let e = Config::from_toml("[[family]]\nname='x'\ngnu_package='../etc'\nuutils=[]").unwrap_err();
        assert_eq!(e.id, ErrorId::Config);
        let e = Config::from_toml("[[family]]\nname='x'\ngnu_package='x'\nuutils=[{package='y',prefix='a/b'}]")
            .unwrap_err();
        assert_eq!(e.id, ErrorId::Config);
    }
}
