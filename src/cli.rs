//! The command-line interface definition (clap). The man page and shell
//! completions are generated from this one definition.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
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
    /// Show the installed GNU and uutils packages and the applets per family.
    Status,
}
