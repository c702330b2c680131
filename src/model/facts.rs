//! Audit facts: one JSON object per line in `var/log/oxidizr-arch/facts.jsonl`,
//! and the same fact to the journal. A fact says what an operation decided
//! at a stage, with ids that tie the lines of one operation together.

use std::collections::BTreeMap;
use std::io::Write as _;

use rustix::fs::{Mode, OFlags};
use serde::Serialize;

use crate::error::ErrorId;
use crate::kernel::Dir;

/// The facts schema version.
pub const FACTS_SCHEMA: u32 = 1;
/// The facts file name in the log directory.
pub const FACTS_FILE: &str = "facts.jsonl";

/// Journal MESSAGE_ID of a switch: a new generation became active.
/// Stable: `journalctl MESSAGE_ID=...` finds every switch, and the catalog
/// (systemd/oxidizr-arch.catalog) explains it under `journalctl -x`.
pub const MESSAGE_SWITCHED: &str = "5c1f0f2b8a9e4d6b9c2e7a41d3b6f801";
/// Journal MESSAGE_ID of a rollback: back on an earlier generation, or the
/// rollback chain landed after a failed live smoke.
pub const MESSAGE_ROLLED_BACK: &str = "5c1f0f2b8a9e4d6b9c2e7a41d3b6f802";
/// Journal MESSAGE_ID of a degradation: the boot gate fell back from a
/// generation that failed its live check (the state is marked degraded).
pub const MESSAGE_DEGRADED: &str = "5c1f0f2b8a9e4d6b9c2e7a41d3b6f803";
/// Journal MESSAGE_ID of a repair done by `verify --repair`.
pub const MESSAGE_REPAIRED: &str = "5c1f0f2b8a9e4d6b9c2e7a41d3b6f804";

/// The MESSAGE_ID a fact carries in the journal: one per kind of event
/// (switched, rolled back, degraded, repaired), none for the other stages.
pub fn message_id(fact: &Fact) -> Option<&'static str> {
    match fact.stage.as_str() {
        "degraded" => Some(MESSAGE_DEGRADED),
        "rollback" => Some(MESSAGE_ROLLED_BACK),
        "commit" if fact.operation == "rollback" || fact.decision.starts_with("rolled back") => {
            Some(MESSAGE_ROLLED_BACK)
        }
        "commit" if fact.to_generation.is_some() && fact.from_generation != fact.to_generation => {
            Some(MESSAGE_SWITCHED)
        }
        "repair" if fact.error_id.is_none() => Some(MESSAGE_REPAIRED),
        _ => None,
    }
}

/// One fact.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Fact {
    /// Always [`FACTS_SCHEMA`].
    pub schema: u32,
    /// When (RFC 3339).
    pub ts: String,
    /// The operation's id (shared by all its facts).
    pub op_id: String,
    /// The operation (`use`, `post-transaction`, ...).
    pub operation: String,
    /// The stage (`plan`, `build`, `smoke-candidate`, `flip`, `smoke-live`, `commit`, `rollback`, ...).
    pub stage: String,
    /// What was decided or happened.
    pub decision: String,
    /// The error id, when the stage failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_id: Option<ErrorId>,
    /// The generation before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_generation: Option<u64>,
    /// The generation after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_generation: Option<u64>,
    /// Time since the operation began.
    pub duration_ms: u64,
    /// Time spent in this stage: since the previous fact of the operation,
    /// microseconds (the phase split that benchmarks report).
    pub phase_us: u64,
    /// Whether something ran on a degraded path (EXDEV copy, rollback).
    pub degraded: bool,
    /// Whether an fsync of this operation took longer than 50 ms.
    pub slow_fsync: bool,
    /// How long the operation waited for our lock, milliseconds (absent
    /// for operations that take no lock).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_wait_ms: Option<u64>,
    /// How many times the lock was tried (1: it was free).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_attempts: Option<u32>,
    /// Flip facts: the profile of the generation flipped away from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_profile: Option<String>,
    /// Flip facts: the profile of the generation flipped to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_profile: Option<String>,
    /// The slowest fsync of the operation so far, milliseconds (rounded up).
    pub fsync_ms: u64,
    /// `warn` once an fsync of the operation took longer than 50 ms
    /// (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// Restore facts: the kind of node at the name before (`file`,
    /// `symlink`, `none`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before_kind: Option<String>,
    /// Restore facts: the kind of node at the name after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_kind: Option<String>,
    /// Restore facts: `restored`, or `idempotent_noop` when the prior
    /// state already was in place and nothing was done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Preflight facts: the rescue toolset that ran (`busybox`,
    /// `gnu-subset`), or `none` when the check refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rescue_profile: Option<String>,
    /// Preflight facts: the filesystem type of `/usr/bin` and of our tree
    /// (or its nearest existing parent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs_types: Option<BTreeMap<String, String>>,
    /// Harvest and link facts: every kept file and sidecar of the step was
    /// fsynced with its directory before the step went on (always true:
    /// a failed fsync fails the step; there is no policy to turn it off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_durable: Option<bool>,
    /// After a flip: what was done about SELinux labels on our tree (see
    /// [`crate::engine::mac`]); carried by the operation's later facts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relabel: Option<String>,
    /// Keep facts: the applet the policy keeps on GNU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applet: Option<String>,
    /// Keep facts: who or what keeps it (`admin`, `policy-list`,
    /// `divergence`, `unchecked`), or `override` when the admin's unpin
    /// switches it although the policy would keep it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_by: Option<String>,
}

/// The fsync fields of a fact from the operation's fsync log: the slowest
/// fsync in milliseconds, and `warn` when one took longer than 50 ms.
pub fn fsync_fields(log: &crate::kernel::FsyncLog) -> (u64, Option<String>) {
    // Rounded up: slow (over 50 ms) exactly when the field says over 50.
    (log.max_us.div_ceil(1000), log.has_slow().then(|| "warn".to_string()))
}

/// Appends facts to the facts file (O_APPEND, never through a symlink) and
/// to the journal. Writing facts never fails an operation: a fact that
/// cannot be written is reported on stderr once.
pub struct Facts {
    file: Option<std::fs::File>,
    warned: bool,
}

impl Facts {
    /// Opens the facts file in `dir` (the log directory).
    pub fn open(dir: Option<&Dir>) -> Facts {
        let file = dir.and_then(|d| {
            rustix::fs::openat(
                d.fd(),
                FACTS_FILE,
                OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o644),
            )
            .ok()
            .map(std::fs::File::from)
        });
        Facts { file, warned: false }
    }

    /// A sink that writes nowhere but the journal (dry runs, read-only commands).
    pub fn journal_only() -> Facts {
        Facts { file: None, warned: true }
    }

    /// Records one fact.
    pub fn emit(&mut self, fact: &Fact) {
        let line = serde_json::to_string(fact).expect("facts serialize");
        match (fact.error_id, message_id(fact)) {
            (Some(id), Some(m)) => tracing::error!(
                message_id = m,
                error_id = id.as_str(),
                op_id = %fact.op_id,
                stage = %fact.stage,
                "{}",
                fact.decision
            ),
            (Some(id), None) => {
                tracing::error!(error_id = id.as_str(), op_id = %fact.op_id, stage = %fact.stage, "{}", fact.decision)
            }
            (None, Some(m)) if m == MESSAGE_DEGRADED => {
                tracing::warn!(message_id = m, op_id = %fact.op_id, stage = %fact.stage, "{}", fact.decision)
            }
            (None, Some(m)) => {
                tracing::info!(message_id = m, op_id = %fact.op_id, stage = %fact.stage, "{}", fact.decision)
            }
            (None, None) => tracing::info!(op_id = %fact.op_id, stage = %fact.stage, "{}", fact.decision),
        }
        if let Some(f) = self.file.as_mut() {
            if f.write_all(format!("{line}\n").as_bytes()).is_err() && !self.warned {
                eprintln!("oxidizr-hook: warning: cannot append to the facts log");
                self.warned = true;
            }
        }
    }

    /// Makes the appended facts durable.
    pub fn sync(&mut self) {
        if let Some(f) = self.file.as_ref() {
            let _ = f.sync_data();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(operation: &str, stage: &str, decision: &str, from: Option<u64>, to: Option<u64>) -> Fact {
        Fact {
            operation: operation.into(),
            stage: stage.into(),
            decision: decision.into(),
            from_generation: from,
            to_generation: to,
            ..Fact::default()
        }
    }

    #[test]
    fn one_message_id_per_kind_of_event() {
        assert_eq!(message_id(&fact("use", "commit", "generation 2 active", Some(1), Some(2))), Some(MESSAGE_SWITCHED));
        assert_eq!(message_id(&fact("use", "commit", "generation 2 already realizes", Some(2), Some(2))), None);
        assert_eq!(message_id(&fact("disable", "commit", "disabled", None, None)), None);
        assert_eq!(
            message_id(&fact("rollback", "commit", "rolled back to generation 1 (held)", Some(2), Some(1))),
            Some(MESSAGE_ROLLED_BACK)
        );
        assert_eq!(
            message_id(&fact("use", "rollback", "back on generation 1", Some(2), Some(1))),
            Some(MESSAGE_ROLLED_BACK)
        );
        assert_eq!(message_id(&fact("boot-gate", "degraded", "boot gate: ...", Some(2), None)), Some(MESSAGE_DEGRADED));
        assert_eq!(
            message_id(&fact("verify --repair", "repair", "refetched sort", None, None)),
            Some(MESSAGE_REPAIRED)
        );
        let mut failed_repair = fact("verify --repair", "repair", "cannot refetch", None, None);
        failed_repair.error_id = Some(ErrorId::Smoke);
        assert_eq!(message_id(&failed_repair), None);
        assert_eq!(message_id(&fact("use", "plan", "planned", None, None)), None);
    }

    #[test]
    fn message_ids_are_distinct_128_bit_hex_and_in_the_catalog() {
        let ids = [MESSAGE_SWITCHED, MESSAGE_ROLLED_BACK, MESSAGE_DEGRADED, MESSAGE_REPAIRED];
        let catalog = include_str!("../../systemd/oxidizr-arch.catalog");
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(id.len(), 32);
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            assert!(ids[i + 1..].iter().all(|o| o != id));
            assert!(catalog.contains(&format!("-- {id}\n")), "{id} has no catalog entry");
        }
    }

    use std::time::Duration;

    #[test]
    fn a_slow_fsync_gives_its_duration_and_severity_warn() {
        let mut log = crate::kernel::FsyncLog::default();
        log.record("fast", Duration::from_millis(3));
        assert_eq!(fsync_fields(&log), (3, None));
        log.record("slow", Duration::from_millis(51));
        assert_eq!(fsync_fields(&log), (51, Some("warn".to_string())));
        let fact = Fact { fsync_ms: 51, severity: Some("warn".into()), ..Fact::default() };
        let json: serde_json::Value = serde_json::to_value(&fact).unwrap();
        assert_eq!(json["fsync_ms"], 51);
        assert_eq!(json["severity"], "warn");
        assert!(json.get("before_kind").is_none(), "absent fields stay absent (schema v1, additive)");
    }

    #[test]
    fn exactly_fifty_ms_is_not_slow() {
        let mut log = crate::kernel::FsyncLog::default();
        log.record("edge", Duration::from_millis(50));
        assert_eq!(fsync_fields(&log), (50, None));
        log.record("just over", Duration::from_micros(50_001));
        assert_eq!(fsync_fields(&log), (51, Some("warn".to_string())));
    }
}
