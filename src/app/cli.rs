//! The command-line interface definition (clap). The man page and shell
//! completions are generated from this one definition.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::model::policy::Policy;
use crate::model::state::Profile;

/// Keep uutils coreutils/findutils as the system's core commands, safely,
/// across every pacman transaction.
#[derive(Debug, Parser)]
#[command(name = "oxidizr-hook", version, about, long_about = None)]
pub struct Cli {
    /// Options every command accepts.
    #[command(flatten)]
    pub global: GlobalOpts,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command, named as pacman names them.
#[derive(Debug, Args, Clone)]
pub struct GlobalOpts {
    /// Operate on the installation rooted at DIR (like pacman --root).
    #[arg(long, short = 'r', global = true, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// The pacman database directory (default: ROOT/var/lib/pacman).
    #[arg(long, short = 'b', global = true, value_name = "DIR")]
    pub dbpath: Option<PathBuf>,
    /// pacman's configuration file, as a path inside ROOT (default /etc/pacman.conf), read through the
    /// root's pacman-conf (every Include followed); used to find the package cache.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Seconds to wait for another oxidizr-hook to finish (default: lock_timeout_secs, 30).
    #[arg(long, global = true, value_name = "SECONDS")]
    pub lock_timeout: Option<u64>,
    /// Per-command smoke-test timeout in seconds (default: smoke_timeout_secs, 5).
    #[arg(long, global = true, value_name = "SECONDS")]
    pub smoke_timeout: Option<u64>,
}

impl GlobalOpts {
    /// The database path: `--dbpath`, else `ROOT/var/lib/pacman` (pacman's rule).
    pub fn dbpath(&self) -> PathBuf {
        self.dbpath.clone().unwrap_or_else(|| self.root.join("var/lib/pacman"))
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the installed packages, the applets, the active generation and any degraded state.
    Status,
    /// Make a profile the system's commands: build, smoke, flip, smoke again, roll back on failure.
    Use {
        /// gnu or uutils.
        profile: Profile,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Which applets uutils backs: recommended (all but the concern list and the applets whose
        /// differential cases diverge here), all, or strict (only applets proven equal). Recorded until
        /// the next `use` without it (then config.toml's `policy`, default recommended).
        #[arg(long, value_enum, value_name = "POLICY")]
        policy: Option<Policy>,
    },
    /// Keep applets on GNU whatever the profile (rebuilds when a profile is active).
    Pin {
        /// Applet names, e.g. ls sort.
        #[arg(required = true)]
        applets: Vec<String>,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Let pinned applets follow the profile again.
    Unpin {
        /// Applet names.
        #[arg(required = true)]
        applets: Vec<String>,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Compare every applet's GNU and uutils commands on the shipped differential cases and show what
    /// the policy would switch or keep on GNU, and why, with a reproduction of every diverging case.
    /// Reads only; works before the first `use`.
    Compat {
        /// The policy to judge by (default: the one in force).
        #[arg(long, value_enum, value_name = "POLICY")]
        policy: Option<Policy>,
        /// Only these applets (default: every applet with a uutils counterpart).
        applets: Vec<String>,
    },
    /// Switch back to the previous good generation.
    Rollback,
    /// Check every invariant against the disk and the package database; exit 0 only when healthy.
    Verify {
        /// Converge: finish or undo interrupted work, refetch damaged stored GNU binaries from pacman's
        /// package cache (only the recorded bytes), rebuild, quarantine foreign entries.
        #[arg(long)]
        repair: bool,
    },
    /// Put the pristine GNU files back and remove our links.
    Disable,
    /// Start a shell (or a command) with the GNU profile first on PATH, to escape a broken uutils.
    Canary {
        /// Start an interactive shell ($SHELL, else /bin/sh).
        #[arg(long)]
        shell: bool,
        /// A command to run instead of a shell.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Early in boot (oxidizr-boot-gate.service): check the active generation live; when it fails,
    /// fall back to the newest generation that passes, else to GNU, and mark the state degraded
    /// (boot_fallback = false in config.toml: report only). Exit 0 unless the gate itself fails.
    BootGate,
    /// List the generations.
    Generations,
    /// Remove old generations and unreferenced store entries.
    Gc,
    /// pacman PreTransaction hook entry point (targets on stdin; see oxidizr-arch hooks).
    PreTransaction {
        /// The transaction the hook runs before.
        #[arg(long, value_enum)]
        operation: crate::pacman::hook::PreOperation,
    },
    /// pacman PostTransaction hook entry point (targets on stdin).
    PostTransaction,
}
