//! Invariant 7 (DESIGN.md §6): the modes of everything the safety kernel
//! creates never depend on the process umask. One test in its own process
//! (the umask is per process): under umask 077 every directory the kernel
//! creates is 0755 and every file it writes has the mode it asks for; and
//! `verify`'s walk finds the directory that stops an unprivileged user on
//! the way to a command.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use oxidizr_arch::kernel::durable::write_durable;
use oxidizr_arch::kernel::publish::Staging;
use oxidizr_arch::kernel::{FsyncLog, SafePath, SafeRoot};
use oxidizr_arch::verify::{blocked_for_others, Blocked};

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn under_umask_077_the_kernel_creates_exactly_the_intended_modes() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let tmp = tempfile::tempdir().unwrap();
    let root_path = tmp.path();
    fs::create_dir_all(root_path.join("usr/lib")).unwrap();
    fs::set_permissions(root_path.join("usr"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(root_path.join("usr/lib"), fs::Permissions::from_mode(0o755)).unwrap();
    // Precondition: the umask is in force (std creates 0777 & ~077).
    fs::create_dir(root_path.join("probe")).unwrap();
    assert_eq!(mode(&root_path.join("probe")), 0o700, "umask 077 is not in force");

    let root = SafeRoot::open(root_path, &["usr/lib/oxidizr-arch", "var/lib/oxidizr-arch"]).unwrap();
    let mut log = FsyncLog::default();
    // SafeRoot::open_dir creates every missing component below the root.
    let gnu = root.open_dir(&SafePath::parse("usr/lib/oxidizr-arch/store/gnu").unwrap(), true).unwrap();
    let state = root.open_dir(&SafePath::parse("var/lib/oxidizr-arch").unwrap(), true).unwrap();
    for d in [
        "usr/lib/oxidizr-arch",
        "usr/lib/oxidizr-arch/store",
        "usr/lib/oxidizr-arch/store/gnu",
        "var",
        "var/lib",
        "var/lib/oxidizr-arch",
    ] {
        assert_eq!(mode(&root_path.join(d)), 0o755, "{d}");
    }
    // Dir::subdir(create).
    gnu.subdir("coreutils-9.10-1", true).unwrap();
    assert_eq!(mode(&root_path.join("usr/lib/oxidizr-arch/store/gnu/coreutils-9.10-1")), 0o755);
    // Dir::tmp_file and the durable writes built on it.
    let (tmp_name, _fd) = state.tmp_file("probe", 0o644).unwrap();
    assert_eq!(mode(&root_path.join("var/lib/oxidizr-arch").join(&tmp_name)), 0o644);
    state.remove_file(&tmp_name).unwrap();
    write_durable(&state, "state.json", b"{}", &mut log).unwrap();
    assert_eq!(mode(&root_path.join("var/lib/oxidizr-arch/state.json")), 0o644);
    // A published tree (a generation): its directories and its manifest.
    let lib = root.open_dir(&SafePath::parse("usr/lib/oxidizr-arch").unwrap(), false).unwrap();
    let gens = lib.subdir("generations", true).unwrap();
    let mut staging = Staging::create(&gens, "1").unwrap();
    let bin = staging.mkdir("bin").unwrap();
    staging.symlink_in(bin, "ls", "/usr/bin/uu-ls").unwrap();
    staging.write_in(0, "manifest.json", b"{}", &mut log).unwrap();
    staging.publish("1", &mut log).unwrap();
    let g = root_path.join("usr/lib/oxidizr-arch/generations");
    assert_eq!(mode(&g), 0o755);
    assert_eq!(mode(&g.join("1")), 0o755);
    assert_eq!(mode(&g.join("1/bin")), 0o755);
    assert_eq!(mode(&g.join("1/manifest.json")), 0o644);
}

#[test]
fn the_walk_names_the_first_place_that_stops_other_users() {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path();
    fs::set_permissions(r, fs::Permissions::from_mode(0o755)).unwrap();
    for d in ["usr/bin", "usr/lib/x/generations/1/bin", "usr/lib/x/generations/2", "usr/lib/x/store"] {
        fs::create_dir_all(r.join(d)).unwrap();
    }
    fs::write(r.join("usr/lib/x/store/ls"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(r.join("usr/lib/x/store/ls"), fs::Permissions::from_mode(0o755)).unwrap();
    // The shape of a managed command: absolute link, relative `..` link, absolute link.
    symlink("/usr/lib/x/active/bin/ls", r.join("usr/bin/ls")).unwrap();
    symlink("generations/2", r.join("usr/lib/x/active")).unwrap();
    symlink("../1/bin", r.join("usr/lib/x/generations/2/bin")).unwrap();
    symlink("/usr/lib/x/store/ls", r.join("usr/lib/x/generations/1/bin/ls")).unwrap();
    let chmod = |p: &str, m: u32| {
        fs::set_permissions(r.join(p.trim_start_matches('/')), fs::Permissions::from_mode(m)).unwrap()
    };
    for d in [
        "usr",
        "usr/bin",
        "usr/lib",
        "usr/lib/x",
        "usr/lib/x/generations",
        "usr/lib/x/generations/1",
        "usr/lib/x/generations/1/bin",
        "usr/lib/x/generations/2",
        "usr/lib/x/store",
    ] {
        chmod(d, 0o755);
    }
    let walk = |abs: &str| blocked_for_others(r, abs, &mut BTreeMap::new());
    assert_eq!(walk("/usr/bin/ls"), None, "every directory 0755, the file 0755: open");
    // Each directory on the way, one at a time (the one only `..` crosses included).
    for (d, m) in [
        ("/usr/lib/x/generations", 0o700),
        ("/usr/lib/x/generations/2", 0o750),
        ("/usr/lib/x/generations/1", 0o754),
        ("/usr/lib/x/store", 0o700),
        ("/usr/lib", 0o711 & !0o001),
    ] {
        chmod(d, m);
        assert_eq!(walk("/usr/bin/ls"), Some(Blocked { path: d.to_string(), mode: m, directory: true }), "{d}");
        chmod(d, 0o755);
    }
    // Search without read is enough.
    chmod("/usr/lib/x", 0o711);
    assert_eq!(walk("/usr/bin/ls"), None, "o+x without o+r is traversable");
    chmod("/usr/lib/x", 0o755);
    // The root itself.
    chmod("/", 0o700);
    assert_eq!(walk("/usr/bin/ls").map(|b| b.path), Some("/".to_string()));
    chmod("/", 0o755);
    // The file at the end.
    chmod("/usr/lib/x/store/ls", 0o750);
    assert_eq!(
        walk("/usr/bin/ls"),
        Some(Blocked { path: "/usr/lib/x/store/ls".into(), mode: 0o750, directory: false })
    );
    chmod("/usr/lib/x/store/ls", 0o755);
    // What does not resolve is not this check's finding.
    assert_eq!(walk("/usr/bin/missing"), None);
}
