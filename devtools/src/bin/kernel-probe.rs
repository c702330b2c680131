//! Test-only driver of the safety kernel, built only with the
//! `crash-injection` feature: the crash tests run one kernel operation in
//! this process and SIGKILL it at each crash point.
//!
//! Layout inside ROOT: managed names in `usr/bin`, kept files in
//! `usr/lib/oxidizr-arch/store`, sidecars in `var/lib/oxidizr-arch/sidecars`,
//! the `active` pointer and generations in `usr/lib/oxidizr-arch`.
//!
//! Usage:
//!   kernel-probe takeover ROOT NAME LINK
//!   kernel-probe restore  ROOT NAME
//!   kernel-probe flip     ROOT TARGET
//!   kernel-probe publish  ROOT GENERATION LINK-NAME LINK-TARGET
#![forbid(unsafe_code)]

use std::path::Path;
use std::process::ExitCode;

use oxidizr_arch::error::Result;
use oxidizr_arch::kernel::publish::Staging;
use oxidizr_arch::kernel::swap::replace_with_symlink;
use oxidizr_arch::kernel::takeover::{restore, take_over, Managed, Restored};
use oxidizr_arch::kernel::{FsyncLog, SafePath, SafeRoot};

const ALLOWED: [&str; 3] = ["usr/bin", "usr/lib/oxidizr-arch", "var/lib/oxidizr-arch"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(msg) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kernel-probe: error[{}]: {e}", e.id);
            ExitCode::from(e.id.exit_code())
        }
    }
}

fn open(root: &SafeRoot, path: &str) -> Result<oxidizr_arch::kernel::Dir> {
    root.open_dir(&SafePath::parse(path)?, true)
}

fn run(args: &[String]) -> Result<String> {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let root = SafeRoot::open(Path::new(a.get(1).copied().unwrap_or("/")), &ALLOWED)?;
    let mut log = FsyncLog::default();
    match a.as_slice() {
        ["takeover", _, name, link] => {
            let (bin, store, side) = (
                open(&root, "usr/bin")?,
                open(&root, "usr/lib/oxidizr-arch/store")?,
                open(&root, "var/lib/oxidizr-arch/sidecars")?,
            );
            let m = Managed { bin: &bin, backup: &store, backup_path: "usr/lib/oxidizr-arch/store", sidecars: &side };
            let t = take_over(&m, name, link, name, &mut log)?;
            Ok(format!("takeover {name}: prior {} changed {} degraded {}", t.prior_kind, t.changed, t.degraded))
        }
        ["restore", _, name] => {
            let (bin, store, side) = (
                open(&root, "usr/bin")?,
                open(&root, "usr/lib/oxidizr-arch/store")?,
                open(&root, "var/lib/oxidizr-arch/sidecars")?,
            );
            let m = Managed { bin: &bin, backup: &store, backup_path: "usr/lib/oxidizr-arch/store", sidecars: &side };
            Ok(match restore(&m, name, &mut log)? {
                Restored::Restored { degraded } => format!("restored {name} degraded {degraded}"),
                Restored::AlreadyRestored => format!("{name} already restored"),
            })
        }
        ["flip", _, target] => {
            let lib = open(&root, "usr/lib/oxidizr-arch")?;
            let s = replace_with_symlink(&lib, "active", target, &mut log)?;
            Ok(format!("flipped active to {target} (was a {})", s.previous.kind()))
        }
        ["publish", _, generation, link_name, link_target] => {
            let gens = open(&root, "usr/lib/oxidizr-arch/generations")?;
            let mut st = Staging::create(&gens, generation)?;
            let bin = st.mkdir("bin")?;
            st.symlink_in(bin, link_name, link_target)?;
            st.write_in(0, "manifest.json", b"{}\n", &mut log)?;
            st.publish(generation, &mut log)?;
            Ok(format!("published {generation}"))
        }
        _ => Err(oxidizr_arch::error::Error::new(
            oxidizr_arch::error::ErrorId::Usage,
            "see the usage in devtools/src/bin/kernel-probe.rs",
        )),
    }
}
