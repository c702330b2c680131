//! Logging to the systemd journal through tracing-journald.
//!
//! When there is no journal socket (a chroot, a container, the testbed) the
//! journal layer is silently absent: logging never fails a command.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The syslog identifier our journal entries carry.
pub const SYSLOG_IDENTIFIER: &str = "oxidizr-hook";

/// Installs the journald subscriber if a journal is reachable. Idempotent:
/// a second call does nothing. Returns whether the journal is connected.
pub fn init() -> bool {
    match tracing_journald::layer() {
        Ok(layer) => {
            let layer = layer.with_syslog_identifier(SYSLOG_IDENTIFIER.to_string());
            tracing_subscriber::registry().with(layer).try_init().is_ok()
        }
        Err(_) => false,
    }
}
