//! `oxidizr-hook`: the command admins and pacman hooks run.
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;

use oxidizr_arch::cli::{Cli, Command, GlobalOpts};
use oxidizr_arch::config::Config;
use oxidizr_arch::error::{Error, ErrorId, Result};
use oxidizr_arch::inventory::PackageDb;
use oxidizr_arch::{journal, status};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(ErrorId::Usage.exit_code()) } else { ExitCode::SUCCESS };
        }
    };
    journal::init();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&cli.global, &e),
    }
}

fn run(cli: &Cli) -> Result<()> {
    match cli.command {
        Command::Status => cmd_status(&cli.global),
    }
}

fn cmd_status(g: &GlobalOpts) -> Result<()> {
    let config = Config::load(&g.root)?;
    let dbpath = g.dbpath();
    let db = PackageDb::open(&g.root, &dbpath)?;
    let inv = db.inventory(&config)?;
    let out = if g.json { status::to_json(&inv, &g.root, &dbpath) + "\n" } else { status::to_text(&inv) };
    std::io::stdout().write_all(out.as_bytes()).map_err(|e| Error::io(ErrorId::Io, "cannot write to stdout", e))
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
