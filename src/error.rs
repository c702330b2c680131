//! Typed failures: every error carries a stable id and exit code.
//!
//! The id and the exit code are chosen where the failure is detected, never
//! inferred from a message. They are part of the command-line interface and
//! documented in the man page (`EXIT STATUS`): do not renumber them.

use std::fmt;
use std::io;

/// A stable error id. Its string form (`E_LOCKING`, ...) and its exit code
/// never change once released.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ErrorId {
    /// The command line was malformed (clap reports these itself).
    #[serde(rename = "E_USAGE")]
    Usage,
    /// The request is refused by policy (for example a path outside the
    /// managed set, an immutable target, a missing rescue toolset).
    #[serde(rename = "E_POLICY")]
    Policy,
    /// The configuration file is unreadable or invalid.
    #[serde(rename = "E_CONFIG")]
    Config,
    /// A path is not owned the way we expect (by the package DB or by us).
    #[serde(rename = "E_OWNERSHIP")]
    Ownership,
    /// The package database could not be opened or read through libalpm.
    #[serde(rename = "E_ALPM")]
    Alpm,
    /// Our lock could not be taken in time, or pacman is mid-transaction.
    #[serde(rename = "E_LOCKING")]
    Locking,
    /// An atomic replace (symlink swap, pointer flip, publish) failed.
    #[serde(rename = "E_ATOMIC_SWAP")]
    AtomicSwap,
    /// A cross-device operation could not be completed even by copying.
    #[serde(rename = "E_EXDEV")]
    Exdev,
    /// A backup (store entry, sidecar) that must exist is missing.
    #[serde(rename = "E_BACKUP_MISSING")]
    BackupMissing,
    /// Putting back the prior state of a path failed.
    #[serde(rename = "E_RESTORE_FAILED")]
    RestoreFailed,
    /// An I/O error outside the categories above.
    #[serde(rename = "E_IO")]
    Io,
    /// A smoke test failed.
    #[serde(rename = "E_SMOKE")]
    Smoke,
    /// A state, sidecar, manifest or intent file is corrupt or of an unknown schema.
    #[serde(rename = "E_STATE_CORRUPT")]
    StateCorrupt,
}

impl ErrorId {
    /// Every id, in exit-code order (for documentation and tests).
    pub const ALL: [ErrorId; 13] = [
        ErrorId::Usage,
        ErrorId::Policy,
        ErrorId::Config,
        ErrorId::Ownership,
        ErrorId::Alpm,
        ErrorId::Locking,
        ErrorId::AtomicSwap,
        ErrorId::Exdev,
        ErrorId::BackupMissing,
        ErrorId::RestoreFailed,
        ErrorId::Io,
        ErrorId::Smoke,
        ErrorId::StateCorrupt,
    ];

    /// The process exit code for this id. Distinct for every id.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorId::Usage => 2,
            ErrorId::Policy => 10,
            ErrorId::Config => 11,
            ErrorId::Ownership => 20,
            ErrorId::Alpm => 21,
            ErrorId::Locking => 30,
            ErrorId::AtomicSwap => 40,
            ErrorId::Exdev => 50,
            ErrorId::BackupMissing => 60,
            ErrorId::RestoreFailed => 70,
            ErrorId::Io => 74,
            ErrorId::Smoke => 80,
            ErrorId::StateCorrupt => 90,
        }
    }

    /// The stable string form, e.g. `E_LOCKING`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorId::Usage => "E_USAGE",
            ErrorId::Policy => "E_POLICY",
            ErrorId::Config => "E_CONFIG",
            ErrorId::Ownership => "E_OWNERSHIP",
            ErrorId::Alpm => "E_ALPM",
            ErrorId::Locking => "E_LOCKING",
            ErrorId::AtomicSwap => "E_ATOMIC_SWAP",
            ErrorId::Exdev => "E_EXDEV",
            ErrorId::BackupMissing => "E_BACKUP_MISSING",
            ErrorId::RestoreFailed => "E_RESTORE_FAILED",
            ErrorId::Io => "E_IO",
            ErrorId::Smoke => "E_SMOKE",
            ErrorId::StateCorrupt => "E_STATE_CORRUPT",
        }
    }

    /// One line saying what the id means (for the man page).
    pub fn meaning(self) -> &'static str {
        match self {
            ErrorId::Usage => "the command line was malformed",
            ErrorId::Policy => "refused by policy; nothing was changed",
            ErrorId::Config => "the configuration file is unreadable or invalid",
            ErrorId::Ownership => "a path is not owned the way oxidizr-arch expects",
            ErrorId::Alpm => "the pacman database could not be read through libalpm",
            ErrorId::Locking => "the lock was not obtained in time, or pacman is mid-transaction",
            ErrorId::AtomicSwap => "an atomic replace or pointer flip failed",
            ErrorId::Exdev => "a cross-filesystem copy could not be completed",
            ErrorId::BackupMissing => "a stored GNU binary or sidecar that must exist is missing",
            ErrorId::RestoreFailed => "restoring the prior state of a path failed",
            ErrorId::Io => "an input/output error",
            ErrorId::Smoke => "a smoke test failed",
            ErrorId::StateCorrupt => "a state, sidecar, manifest or intent file is corrupt",
        }
    }
}

impl fmt::Display for ErrorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure with its stable id and a one-line human reason.
#[derive(Debug)]
pub struct Error {
    /// The stable id; decides the exit code.
    pub id: ErrorId,
    /// One line for a human (and for pacman.log): what failed and where.
    pub reason: String,
    /// The underlying I/O error, when there is one.
    pub source: Option<io::Error>,
}

impl Error {
    /// An error with an id and a reason.
    pub fn new(id: ErrorId, reason: impl Into<String>) -> Self {
        Error { id, reason: reason.into(), source: None }
    }

    /// An error caused by an I/O failure; `what` says what was being done.
    pub fn io(id: ErrorId, what: impl Into<String>, source: io::Error) -> Self {
        Error { id, reason: what.into(), source: Some(source) }
    }

    /// The errno of the underlying I/O error, if any.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.source.as_ref().and_then(io::Error::raw_os_error)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(e) => write!(f, "{}: {}", self.reason, e),
            None => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn exit_codes_are_distinct_and_nonzero() {
        let codes: HashSet<u8> = ErrorId::ALL.iter().map(|id| id.exit_code()).collect();
        assert_eq!(codes.len(), ErrorId::ALL.len());
        assert!(!codes.contains(&0));
    }

    #[test]
    fn issue_fixed_codes_hold() {
        assert_eq!(ErrorId::Policy.exit_code(), 10);
        assert_eq!(ErrorId::Ownership.exit_code(), 20);
        assert_eq!(ErrorId::Locking.exit_code(), 30);
        assert_eq!(ErrorId::AtomicSwap.exit_code(), 40);
        assert_eq!(ErrorId::Exdev.exit_code(), 50);
        assert_eq!(ErrorId::BackupMissing.exit_code(), 60);
        assert_eq!(ErrorId::RestoreFailed.exit_code(), 70);
        assert_eq!(ErrorId::Smoke.exit_code(), 80);
    }

    #[test]
    fn serde_form_equals_display_form() {
        for id in ErrorId::ALL {
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(json, format!("\"{}\"", id.as_str()));
        }
    }
}
