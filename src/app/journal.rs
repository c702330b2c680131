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
            // No field prefix: a `message_id` field is the journal's own
            // MESSAGE_ID (`journalctl -x` explains it from our catalog,
            // systemd/oxidizr-arch.catalog); the others read ERROR_ID,
            // OP_ID, STAGE.
            let layer = layer.with_syslog_identifier(SYSLOG_IDENTIFIER.to_string()).with_field_prefix(None);
            tracing_subscriber::registry().with(layer).try_init().is_ok()
        }
        Err(_) => false,
    }
}
