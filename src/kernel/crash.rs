//! Crash points: named places between mutation steps where a test can kill
//! the process with SIGKILL, to prove every intermediate state is safe.
//!
//! Only with the `crash-injection` cargo feature (never in release builds):
//! `OXIDIZR_CRASH_TRACE=FILE` appends `SUBCOMMAND NAME` for each point
//! reached to FILE, and `OXIDIZR_CRASH_AT=NAME[#N]` kills the process at
//! the Nth (default first) time it reaches NAME — only in a process whose
//! subcommand is `OXIDIZR_CRASH_ONLY`, when that is set (pacman runs the
//! pre- and post-transaction hooks as two processes). `OXIDIZR_PAUSE_AT=
//! NAME:MS` instead sleeps MS milliseconds there (the first time), after
//! creating the file `OXIDIZR_PAUSE_MARK` if set: a test holds an operation
//! mid-way and acts against it (pacman started during `use`).
//! `OXIDIZR_FAULT_AT=NAME[#N]` makes the [`fault`] point NAME report a
//! failure instead of killing (the live smoke of an operation). Without the
//! feature, [`point`] and [`fault`] compile to nothing.

/// A fault point: true exactly when a test asked for a fault here, with
/// `OXIDIZR_FAULT_AT=NAME[#N]` (the Nth arrival at NAME, default the first;
/// `OXIDIZR_CRASH_ONLY` filters by subcommand as for crash points). The
/// caller then behaves as if the step failed (e.g. a live smoke that did
/// not pass), so the failure path after it runs for real. Always false
/// without the `crash-injection` feature.
#[inline(always)]
pub fn fault(name: &'static str) -> bool {
    #[cfg(feature = "crash-injection")]
    return injection::fault(name);
    #[cfg(not(feature = "crash-injection"))]
    {
        let _ = name;
        false
    }
}

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
    static TRACE: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// The first argument that is not an option: the subcommand.
    fn subcommand() -> String {
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--root" | "-r" | "--dbpath" | "-b" | "--config" | "--lock-timeout" | "--smoke-timeout" => {
                    args.next();
                }
                _ if a.starts_with('-') => {}
                _ => return a,
            }
        }
        String::from("-")
    }

    static PAUSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    /// `OXIDIZR_PAUSE_AT=NAME:MS`: sleeps at the first arrival at NAME.
    fn pause(name: &'static str) {
        let Ok(want) = std::env::var("OXIDIZR_PAUSE_AT") else { return };
        let Some((want_name, ms)) = want.rsplit_once(':') else { return };
        if want_name != name || PAUSED.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Ok(mark) = std::env::var("OXIDIZR_PAUSE_MARK") {
            let _ = std::fs::write(mark, name);
        }
        std::thread::sleep(std::time::Duration::from_millis(ms.parse().unwrap_or(0)));
    }

    static FAULTS: AtomicU32 = AtomicU32::new(0);

    pub(super) fn fault(name: &'static str) -> bool {
        let Ok(want) = std::env::var("OXIDIZR_FAULT_AT") else { return false };
        if std::env::var("OXIDIZR_CRASH_ONLY").is_ok_and(|only| only != subcommand()) {
            return false;
        }
        let (want_name, nth) = match want.split_once('#') {
            Some((n, k)) => (n.to_string(), k.parse::<u32>().unwrap_or(1)),
            None => (want, 1),
        };
        want_name == name && FAULTS.fetch_add(1, Ordering::SeqCst) + 1 == nth
    }

    pub(super) fn at(name: &'static str) {
        let sub = subcommand();
        if let Ok(trace) = std::env::var("OXIDIZR_CRASH_TRACE") {
            // One write(2) per line, under a lock: points reached on the
            // batch worker threads must not interleave their lines.
            let _one_at_a_time = TRACE.lock();
            if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(trace) {
                let _ = f.write_all(format!("{sub} {name}\n").as_bytes());
            }
        }
        if std::env::var("OXIDIZR_CRASH_ONLY").is_ok_and(|only| only != sub) {
            return;
        }
        pause(name);
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
