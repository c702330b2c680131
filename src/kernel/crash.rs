//! Crash points: named places between mutation steps where a test can kill
//! the process with SIGKILL, to prove every intermediate state is safe.
//!
//! Only with the `crash-injection` cargo feature (never in release builds):
//! `OXIDIZR_CRASH_TRACE=FILE` appends each point reached to FILE, and
//! `OXIDIZR_CRASH_AT=NAME[#N]` kills the process at the Nth (default first)
//! time it reaches NAME. Without the feature, [`point`] compiles to nothing.

/// Marks a crash point. A no-op unless built with `crash-injection`.
#[inline(always)]
pub fn point(name: &'static str) {
    #[cfg(feature = "crash-injection")]
    injection::at(name);
    #[cfg(not(feature = "crash-injection"))]
    let _ = name;
}

#[cfg(feature = "crash-injection")]
mod injection {
    use std::io::Write as _;
    use std::sync::atomic::{AtomicU32, Ordering};

    static HITS: AtomicU32 = AtomicU32::new(0);

    pub(super) fn at(name: &'static str) {
        if let Ok(trace) = std::env::var("OXIDIZR_CRASH_TRACE") {
            if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(trace) {
                let _ = writeln!(f, "{name}");
            }
        }
        let Ok(want) = std::env::var("OXIDIZR_CRASH_AT") else { return };
        let (want_name, nth) = match want.split_once('#') {
            Some((n, k)) => (n.to_string(), k.parse::<u32>().unwrap_or(1)),
            None => (want, 1),
        };
        if want_name == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == nth {
            let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
            // SIGKILL cannot be caught; never continue past a crash point.
            std::process::abort();
        }
    }
}
