//! `oxidizr-hook`: the command admins and pacman hooks run.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

use oxidizr_arch::app::cli::{Cli, Command, GlobalOpts};
use oxidizr_arch::app::{commands, journal};
use oxidizr_arch::error::{Error, ErrorId};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(ErrorId::Usage.exit_code()) } else { ExitCode::SUCCESS };
        }
    };
    // Invariant 7 (DESIGN.md §6): modes never depend on the caller's umask.
    // pacman runs its hooks under umask 022 (it sets it at start); an admin
    // with a hardened umask (027, 077) runs the same operations through
    // sudo. Every create call of the safety kernel sets its mode
    // explicitly through the new handle; the umask is also reset here so
    // that nothing else this process creates (the facts log, the smoke's
    // scratch files, the children it runs) depends on it, and new
    // directories are never briefly more restrictive than intended.
    // `canary` runs the admin's own command: it keeps the admin's umask.
    if !matches!(cli.command, Command::Canary { .. }) {
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    }
    journal::init();
    match commands::run(&cli.global, &cli.command).and_then(|out| out.print(cli.global.json).map(|()| out.code)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => report(&cli.global, &e),
    }
}

/// One line on stderr (pacman copies it into pacman.log), a journal entry,
/// and with --json an error object on stdout; the exit code of the id.
fn report(g: &GlobalOpts, e: &Error) -> ExitCode {
    eprintln!("oxidizr-hook: error[{}]: {}", e.id, e);
    tracing::error!(error_id = e.id.as_str(), "{}", e);
    if g.json {
        let doc =
            serde_json::json!({ "error": { "id": e.id, "reason": e.to_string(), "exit_code": e.id.exit_code() } });
        println!("{doc}");
    }
    ExitCode::from(e.id.exit_code())
}
