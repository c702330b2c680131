//! Test-only: flips the `active` pointer of a root between two published
//! generations with the kernel's atomic swap, for the concurrent-observer
//! test (`tests/observer.rs`). Built only with the `crash-injection` feature.
//!
//! Usage: `oxidizr-flipper ROOT COUNT PAUSE_US TARGET_A TARGET_B [--tokens]`
//!
//! Flips COUNT times, alternating, starting with whichever target `active`
//! does not name now, sleeping PAUSE_US microseconds between flips. With
//! `--tokens`, each flip first reads one byte from stdin (the observer
//! writes one per command it completed): the flips are paced by the
//! observer's progress, never outrun it, whatever the machine's load.
//! Prints one JSON line:
//! `{"flips":N,"changed":N,"elapsed_ms":N,"max_flip_us":N,"fsyncs":N}`.
#![forbid(unsafe_code)]

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use oxidizr_arch::error::{Error, ErrorId, Result};
use oxidizr_arch::kernel::swap::replace_with_symlink;
use oxidizr_arch::kernel::{Entry, FsyncLog};
use oxidizr_arch::model::layout::Layout;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("oxidizr-flipper: error[{}]: {e}", e.id);
            ExitCode::from(e.id.exit_code())
        }
    }
}

fn run(args: &[String]) -> Result<String> {
    let (fixed, tokens) = match args {
        [fixed @ .., last] if last == "--tokens" => (fixed, true),
        _ => (args, false),
    };
    let [root, count, pause_us, a, b] = fixed else {
        return Err(Error::new(
            ErrorId::Usage,
            "usage: oxidizr-flipper ROOT COUNT PAUSE_US TARGET_A TARGET_B [--tokens]",
        ));
    };
    let mut stdin = std::io::stdin().lock();
    let number = |s: &str| s.parse::<u64>().map_err(|_| Error::new(ErrorId::Usage, format!("not a number: {s}")));
    let (count, pause) = (number(count)?, Duration::from_micros(number(pause_us)?));
    let lib = Layout::open(Path::new(root))?.lib(false)?;
    let mut next = match lib.entry("active")? {
        Entry::Symlink(_, dest) if dest == *a => b,
        _ => a,
    };
    let mut log = FsyncLog::default();
    let (mut changed, mut max_us) = (0u64, 0u64);
    let start = Instant::now();
    for i in 0..count {
        if tokens {
            let mut token = [0u8; 1];
            std::io::Read::read_exact(&mut stdin, &mut token)
                .map_err(|e| Error::io(ErrorId::Io, format!("no token for flip {}", i + 1), e))?;
        }
        let t0 = Instant::now();
        if replace_with_symlink(&lib, "active", next, &mut log)?.changed {
            changed += 1;
        }
        max_us = max_us.max(t0.elapsed().as_micros() as u64);
        next = if next == a { b } else { a };
        if i + 1 < count && !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
    Ok(serde_json::json!({
        "flips": count,
        "changed": changed,
        "elapsed_ms": start.elapsed().as_millis() as u64,
        "max_flip_us": max_us,
        "fsyncs": log.count,
    })
    .to_string())
}
