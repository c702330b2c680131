//! The compatibility policy's schemas: which policy chooses the applets
//! `use uutils` switches ([`Policy`]), why an applet is kept on GNU
//! ([`Kept`], recorded in the state), and the differential results kept
//! between runs ([`CompatCache`], `var/lib/oxidizr-arch/compat.json`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorId, Result};
use crate::kernel::durable::{read_json, write_json};
use crate::kernel::{Dir, FsyncLog};

/// Which applets `use uutils` (and every later hook) switches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Every applet, except those on the shipped concern list and those
    /// whose differential cases diverge on this machine.
    #[default]
    Recommended,
    /// Every applet with a uutils counterpart; divergences are reported,
    /// not acted on (the behaviour before policies existed).
    All,
    /// Only applets with no divergence, no recorded concern, and at least
    /// one differential case that ran.
    Strict,
}

impl Policy {
    /// `recommended`, `all` or `strict`.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Recommended => "recommended",
            Policy::All => "all",
            Policy::Strict => "strict",
        }
    }
}

/// Who or what keeps an applet on GNU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeptBy {
    /// The admin pinned it (`pin`).
    Admin,
    /// The shipped concern list names it (with a source).
    PolicyList,
    /// A differential case gave another result under uutils than under GNU.
    Divergence,
    /// `strict` only: no differential case ran for it.
    Unchecked,
}

impl KeptBy {
    /// The stable name (`admin`, `policy-list`, `divergence`, `unchecked`),
    /// as in `--json` and the facts.
    pub fn as_str(self) -> &'static str {
        match self {
            KeptBy::Admin => "admin",
            KeptBy::PolicyList => "policy-list",
            KeptBy::Divergence => "divergence",
            KeptBy::Unchecked => "unchecked",
        }
    }

    /// The words output uses: `admin pin`, `policy list`, `divergence`, `unchecked`.
    pub fn words(self) -> &'static str {
        match self {
            KeptBy::Admin => "admin pin",
            KeptBy::PolicyList => "policy list",
            KeptBy::Divergence => "divergence",
            KeptBy::Unchecked => "unchecked",
        }
    }
}

/// Why one applet is kept on GNU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    /// Who or what keeps it.
    pub kept_by: KeptBy,
    /// One line for humans (the concern, or what the case showed).
    pub reason: String,
    /// Divergence: the id of the first case that diverged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<String>,
    /// Policy list: where the concern comes from (a URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl Kept {
    /// `divergence: <reason>` and the like, on one line.
    pub fn line(&self) -> String {
        let source = self.source.as_ref().map(|s| format!(" [{s}]")).unwrap_or_default();
        format!("{}: {}{source}", self.kept_by.words(), self.reason)
    }
}

/// The compat cache schema version.
pub const COMPAT_SCHEMA: u32 = 1;
/// The compat cache file name in the state directory.
pub const COMPAT_FILE: &str = "compat.json";

/// What the differential checks learned, tied to the binaries' contents:
/// a result is reused only for the very same case text, locale and
/// binaries (sha256), so an upgrade re-runs exactly the cases of the
/// applets whose binaries changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompatCache {
    /// Always [`COMPAT_SCHEMA`].
    pub schema: u32,
    /// A file's identity key (device, inode, size, times) -> its sha256:
    /// an unchanged file is not read again.
    pub digests: BTreeMap<String, String>,
    /// The run key (`run|case digest|locale|binary sha256`) -> that run's
    /// result (as the differential runner serializes it).
    pub results: BTreeMap<String, serde_json::Value>,
    /// The uutils binary's sha256 and applet -> whether its smoke probe passed.
    pub probes: BTreeMap<String, bool>,
}

impl CompatCache {
    /// Loads the cache from the state directory; empty when there is none
    /// or it is unreadable (it is only a cache: everything it holds can
    /// be computed again).
    pub fn load(dir: Option<&Dir>) -> CompatCache {
        let Some(dir) = dir else { return CompatCache::default() };
        match read_json::<CompatCache>(dir, COMPAT_FILE) {
            Ok(Some(c)) if c.schema == COMPAT_SCHEMA => c,
            _ => CompatCache::default(),
        }
    }

    /// Writes the cache atomically and durably.
    pub fn save(&self, dir: &Dir, log: &mut FsyncLog) -> Result<()> {
        write_json(dir, COMPAT_FILE, self, log)
            .map_err(|e| Error::new(e.id, format!("cannot save the compat cache: {}", e.reason)))
    }
}

/// Parses a policy name (`recommended`, `all`, `strict`); anything else is
/// `id` (E_CONFIG for the file, E_USAGE for a flag).
pub fn parse_policy(text: &str, id: ErrorId) -> Result<Policy> {
    match text {
        "recommended" => Ok(Policy::Recommended),
        "all" => Ok(Policy::All),
        "strict" => Ok(Policy::Strict),
        other => Err(Error::new(
            id,
            format!("unknown policy '{}' (expected recommended, all or strict)", other.escape_debug()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_and_reasons_have_stable_names() {
        assert_eq!(serde_json::to_string(&Policy::Recommended).unwrap(), "\"recommended\"");
        assert_eq!(serde_json::to_string(&KeptBy::PolicyList).unwrap(), "\"policy-list\"");
        assert_eq!(parse_policy("strict", ErrorId::Usage).unwrap(), Policy::Strict);
        assert_eq!(parse_policy("bogus", ErrorId::Config).unwrap_err().id, ErrorId::Config);
        let k =
            Kept { kept_by: KeptBy::PolicyList, reason: "audit".into(), case: None, source: Some("https://x".into()) };
        assert_eq!(k.line(), "policy list: audit [https://x]");
    }
}
