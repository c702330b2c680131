//! Helpers for tests that run in the testbed: Arch-like packages built by
//! test-orch/mkpkg from the root's real binaries, and throwaway package roots
//! driven by the real pacman.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod kfs;

/// The repository (mounted at /src in the testbed); the tests of the
/// `devtools` member share this file and live one level down.
pub fn repo() -> &'static Path {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    match here.parent() {
        Some(up) if here.ends_with("devtools") => up,
        _ => here,
    }
}

/// The oxidizr-hook binary under test (the root package's tests only: cargo
/// names a binary to the tests of its own package).
pub fn oxidizr_hook() -> Command {
    match option_env!("CARGO_BIN_EXE_oxidizr-hook") {
        Some(bin) => Command::new(bin),
        None => panic!("oxidizr-hook is known to the root package's tests only"),
    }
}

/// Fails loudly (never skips) when a testbed prerequisite is missing.
pub fn require_testbed() {
    assert_eq!(rustix::process::geteuid().as_raw(), 0, "testbed tests need root: run them through test-orch/run test");
    let pacman = Command::new("pacman").arg("--version").output().expect("pacman must be installed in the testbed");
    assert!(pacman.status.success(), "pacman --version failed");
}

/// Runs a command, panicking with its output when it fails.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Builds an Arch-like package (see test-orch/mkpkg) and returns its path.
pub fn mkpkg(outdir: &Path, kind: &str, version: &str, variant: Option<&str>) -> PathBuf {
    let mut cmd = Command::new(repo().join("test-orch/mkpkg"));
    cmd.args([kind, version]).arg(outdir);
    if let Some(v) = variant {
        cmd.arg(v);
    }
    let out = run_ok(&mut cmd);
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Builds a package holding only the given commands (deterministic file
/// lists for golden files; see MKPKG_ONLY in test-orch/mkpkg).
pub fn mkpkg_only(outdir: &Path, kind: &str, version: &str, only: &str) -> PathBuf {
    let mut cmd = Command::new(repo().join("test-orch/mkpkg"));
    cmd.args([kind, version]).arg(outdir).env("MKPKG_ONLY", only);
    let out = run_ok(&mut cmd);
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Compares `actual` with the golden file `tests/golden/NAME`; with
/// OXIDIZR_UPDATE_GOLDEN=1 rewrites it instead (never silently).
pub fn golden(name: &str, actual: &str) {
    let path = repo().join("tests/golden").join(name);
    if std::env::var("OXIDIZR_UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        eprintln!("updated golden file {}", path.display());
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("golden file {} is missing ({e}); regenerate with OXIDIZR_UPDATE_GOLDEN=1", path.display())
    });
    assert!(
        expected == actual,
        "output differs from {}:\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

/// An empty package root driven by the real pacman with `--root`.
pub struct PkgRoot {
    dir: tempfile::TempDir,
}

impl PkgRoot {
    /// A fresh root with an empty local database.
    pub fn new() -> PkgRoot {
        let dir = tempfile::Builder::new().prefix("pkgroot.").tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("var/lib/pacman")).unwrap();
        std::fs::create_dir_all(dir.path().join("var/cache/pacman/pkg")).unwrap();
        std::fs::create_dir_all(dir.path().join("var/log")).unwrap();
        PkgRoot { dir }
    }

    /// The root directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The local database directory.
    pub fn dbpath(&self) -> PathBuf {
        self.path().join("var/lib/pacman")
    }

    /// `pacman --root R --dbpath R/var/lib/pacman --noconfirm ARGS`.
    pub fn pacman(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("pacman");
        cmd.arg("--root").arg(self.path()).arg("--dbpath").arg(self.dbpath()).arg("--noconfirm").args(args);
        run_ok(&mut cmd)
    }

    /// Installs package files with `pacman -U`.
    pub fn install(&self, pkgs: &[PathBuf]) {
        let mut args = vec!["-U"];
        args.extend(pkgs.iter().map(|p| p.to_str().unwrap()));
        self.pacman(&args);
    }
}

/// An overlay of the testbed's `/` (upper layer on /tmp) with /proc and /dev:
/// a real root to chroot into. Unmounted (lazily) on drop.
pub struct OverlayRoot {
    _dir: tempfile::TempDir,
    /// The merged root.
    pub merged: PathBuf,
    /// The overlay's upper directory.
    pub upper: PathBuf,
}

impl OverlayRoot {
    /// Mounts a fresh overlay (the caller must be root: see [`require_testbed`]).
    pub fn new() -> OverlayRoot {
        let dir = tempfile::Builder::new().prefix("smoke-root.").tempdir_in("/tmp").unwrap();
        let (upper, work, merged) = (dir.path().join("u"), dir.path().join("w"), dir.path().join("m"));
        for d in [&upper, &work, &merged] {
            std::fs::create_dir(d).unwrap();
        }
        let opts = format!("lowerdir=/,upperdir={},workdir={}", upper.display(), work.display());
        run_ok(Command::new("mount").args(["-t", "overlay", "overlay", "-o", &opts]).arg(&merged));
        let root = OverlayRoot { _dir: dir, merged, upper };
        run_ok(Command::new("mount").args(["-t", "proc", "proc"]).arg(root.merged.join("proc")));
        run_ok(Command::new("mount").arg("--rbind").arg("/dev").arg(root.merged.join("dev")));
        root
    }
}

impl Drop for OverlayRoot {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-R").arg("-l").arg(&self.merged).status();
    }
}
