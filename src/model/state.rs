//! The persistent state: the admin's desired profile, pins, the history of
//! generations, and the degraded flag. Written atomically and durably with a
//! versioned schema; a corrupt or unknown-schema file is `E_STATE_CORRUPT`,
//! never silently replaced.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorId, Result};
use crate::kernel::durable::{read_json, write_json};
use crate::kernel::{Dir, FsyncLog};
use crate::model::policy::{Kept, Policy};

/// The state schema version.
pub const STATE_SCHEMA: u32 = 1;
/// The state file name in the state directory.
pub const STATE_FILE: &str = "state.json";

/// Which commands back the applets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// GNU everywhere.
    Gnu,
    /// uutils wherever an installed uutils package provides the applet and it is not pinned.
    Uutils,
}

impl Profile {
    /// `gnu` or `uutils`.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Gnu => "gnu",
            Profile::Uutils => "uutils",
        }
    }
}

/// Why the system is degraded, until repaired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Degraded {
    /// The error id of the failure.
    pub error_id: ErrorId,
    /// One line for humans.
    pub reason: String,
    /// When it was recorded (RFC 3339).
    pub since: String,
}

/// One committed generation switch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The generation made active.
    pub generation: u64,
    /// Its profile.
    pub profile: Profile,
    /// The operation that did it (`use`, `post-transaction`, `rollback`, ...).
    pub operation: String,
    /// When (RFC 3339).
    pub at: String,
    /// Whether its live smoke passed.
    pub smoke_passed: bool,
}

/// The whole state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Always [`STATE_SCHEMA`].
    pub schema: u32,
    /// The desired profile; `None` until the admin first runs `use`, and
    /// again after `disable`: then nothing is managed.
    pub profile: Option<Profile>,
    /// Applets kept on GNU whatever the profile.
    pub pins: BTreeSet<String>,
    /// The next generation number to allocate (never reused).
    pub next_generation: u64,
    /// Committed switches, oldest first (bounded).
    pub history: Vec<HistoryEntry>,
    /// Set while the system is not in its desired, verified state.
    pub degraded: Option<Degraded>,
    /// The generation the admin rolled back to, while it is held: an older
    /// generation is a deliberate state (`verify` reports it, not as
    /// damage) until the next operation that builds a generation (`use`,
    /// `pin`, `unpin`, `verify --repair`, a pacman transaction touching a
    /// managed package) releases it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<u64>,
    /// The policy `use uutils --policy` chose; None: the configuration's
    /// `policy` (default `recommended`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
    /// Applets the policy keeps on GNU, with why: decided by the last
    /// operation that planned the uutils profile. Together with `pins`
    /// (minus `overrides`) they are the applets every plan keeps on GNU.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kept: BTreeMap<String, Kept>,
    /// Applets the admin unpinned while the policy kept them: they follow
    /// the profile whatever the policy says, until pinned again.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub overrides: BTreeSet<String>,
}

impl Default for State {
    fn default() -> Self {
        State {
            schema: STATE_SCHEMA,
            profile: None,
            pins: BTreeSet::new(),
            next_generation: 1,
            history: Vec::new(),
            degraded: None,
            held: None,
            policy: None,
            kept: BTreeMap::new(),
            overrides: BTreeSet::new(),
        }
    }
}

/// How many history entries are kept.
pub const HISTORY_MAX: usize = 50;

impl State {
    /// Loads the state; the default when there is none.
    pub fn load(dir: &Dir) -> Result<State> {
        match read_json::<State>(dir, STATE_FILE)? {
            None => Ok(State::default()),
            Some(s) if s.schema == STATE_SCHEMA => Ok(s),
            Some(s) => Err(Error::new(
                ErrorId::StateCorrupt,
                format!(
                    "{}: unknown schema {} (this oxidizr-hook knows {STATE_SCHEMA})",
                    dir.show(STATE_FILE),
                    s.schema
                ),
            )),
        }
    }

    /// Writes the state atomically and durably.
    pub fn save(&self, dir: &Dir, log: &mut FsyncLog) -> Result<()> {
        write_json(dir, STATE_FILE, self, log)
    }

    /// Appends a history entry, keeping the newest [`HISTORY_MAX`].
    pub fn record(&mut self, entry: HistoryEntry) {
        self.history.push(entry);
        if self.history.len() > HISTORY_MAX {
            let drop = self.history.len() - HISTORY_MAX;
            self.history.drain(..drop);
        }
    }

    /// Every applet a plan keeps on GNU: the admin's pins and the
    /// policy's decisions, minus the admin's overrides of the policy.
    pub fn effective_pins(&self) -> BTreeSet<String> {
        let policy = self.kept.keys().filter(|a| !self.overrides.contains(*a));
        self.pins.iter().chain(policy).cloned().collect()
    }

    /// Marks the state degraded.
    pub fn degrade(&mut self, error_id: ErrorId, reason: impl Into<String>) {
        self.degraded = Some(Degraded { error_id, reason: reason.into(), since: now() });
    }
}

/// The generation `rollback` goes to from `active`: the newest generation
/// older than it (a smaller number: numbers are allocated in order) that
/// a committed switch made active with a passed live smoke and that still
/// exists. Pure.
pub fn older_good(history: &[HistoryEntry], active: u64, existing: &[u64]) -> Option<u64> {
    history
        .iter()
        .filter(|h| h.smoke_passed && h.generation < active && existing.contains(&h.generation))
        .map(|h| h.generation)
        .max()
}

/// The current time, RFC 3339, UTC, seconds.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(generation: u64, smoke_passed: bool) -> HistoryEntry {
        HistoryEntry { generation, profile: Profile::Uutils, operation: "use".into(), at: now(), smoke_passed }
    }

    #[test]
    fn rollback_walks_back_never_forward_and_ends() {
        // use (1), two upgrades (2, 3), then a rollback to 2 recorded last.
        let h = vec![entry(1, true), entry(2, true), entry(3, true), entry(2, true)];
        let all = [1, 2, 3];
        assert_eq!(older_good(&h, 3, &all), Some(2));
        assert_eq!(older_good(&h, 2, &all), Some(1), "from 2 it goes to 1, not forward to 3");
        assert_eq!(older_good(&h, 1, &all), None, "nothing older than the oldest");
    }

    #[test]
    fn rollback_skips_failed_and_collected_generations() {
        let h = vec![entry(1, true), entry(2, false), entry(4, true)];
        assert_eq!(older_good(&h, 4, &[1, 2, 4]), Some(1), "2 failed its live smoke");
        assert_eq!(older_good(&h, 4, &[2, 4]), None, "1 was collected");
    }

    #[test]
    fn effective_pins_are_the_admins_and_the_policys_minus_overrides() {
        use crate::model::policy::KeptBy;
        let mut s = State::default();
        s.pins.insert("ls".into());
        for a in ["cp", "date"] {
            let k = Kept { kept_by: KeptBy::Divergence, reason: "x".into(), case: None, source: None };
            s.kept.insert(a.into(), k);
        }
        s.overrides.insert("date".into());
        let got: Vec<String> = s.effective_pins().into_iter().collect();
        assert_eq!(got, ["cp", "ls"]);
        // A state written before the policies existed reads as none of them.
        let old = r#"{"schema":1,"profile":"uutils","pins":[],"next_generation":3,"history":[],"degraded":null}"#;
        let back: State = serde_json::from_str(old).unwrap();
        assert!(back.kept.is_empty() && back.overrides.is_empty() && back.policy.is_none());
    }

    #[test]
    fn a_state_without_a_hold_reads_and_writes_as_before() {
        let s = State::default();
        let text = serde_json::to_string(&s).unwrap();
        assert!(!text.contains("held"), "{text}");
        let back: State = serde_json::from_str(&text).unwrap();
        assert_eq!(back.held, None);
    }
}
