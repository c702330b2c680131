//! The safety kernel on real filesystems, as root: take-over and restore of
//! every prior kind, metadata on both the same-inode and the EXDEV path,
//! immutable targets, hostile layouts. The checks live in
//! `tests/common/kfs.rs`; `tests/fs_matrix.rs` runs them on ext4, btrfs,
//! xfs and tmpfs, this file on the testbed's `/tmp`.
#![cfg(feature = "testbed")]

mod common;

use std::fs;

use common::kfs::*;
use common::*;
use oxidizr_arch::error::ErrorId;
use oxidizr_arch::kernel::takeover::take_over;
use oxidizr_arch::kernel::SafePath;

#[test]
fn every_prior_kind_is_replaced_then_restored_exactly_twice() {
    require_testbed();
    assert_eq!(check_every_prior_kind_twice(&KRoot::new), 6);
}

#[test]
fn metadata_survives_the_same_inode_path() {
    require_testbed();
    check_metadata_same_inode(&KRoot::new());
}

#[test]
fn metadata_survives_the_exdev_copy_path() {
    require_testbed();
    // usr/bin on the tmpfs /tmp, the store on a loop-mounted ext4.
    check_metadata_exdev(&KRoot::new(), FsKind::Ext4);
}

#[test]
fn immutable_and_append_only_targets_are_refused_untouched() {
    require_testbed();
    let tmp = tempfile::tempdir().unwrap();
    // chattr needs a filesystem with inode flags: the whole root on ext4.
    let ext4 = LoopFs::mount(FsKind::Ext4, &tmp.path().join("root"));
    check_immutable_refused(&KRoot::at(&ext4.dir));
}

#[test]
fn a_symlinked_directory_component_does_not_escape() {
    require_testbed();
    let k = KRoot::new();
    let victim = tempfile::tempdir().unwrap();
    fs::write(victim.path().join("ls"), "victim").unwrap();
    // Swap usr/bin for a symlink to the victim directory.
    fs::remove_dir(k.bin()).unwrap();
    std::os::unix::fs::symlink(victim.path(), k.bin()).unwrap();
    let e = k.root.open_dir(&SafePath::parse("usr/bin").unwrap(), true).unwrap_err();
    assert_eq!(e.id, ErrorId::Policy, "{e}");
    // And the store directory swapped for a symlink: the sidecar dir is refused too.
    fs::create_dir_all(k.path.join("var/lib")).unwrap();
    std::os::unix::fs::symlink(victim.path(), k.path.join("var/lib/oxidizr-arch")).unwrap();
    let e = k.root.open_dir(&SafePath::parse("var/lib/oxidizr-arch/sidecars").unwrap(), true).unwrap_err();
    assert_eq!(e.id, ErrorId::Policy);
    assert_eq!(fs::read_dir(victim.path()).unwrap().count(), 1, "nothing created in the victim");
    assert_eq!(fs::read_to_string(victim.path().join("ls")).unwrap(), "victim");
}

#[test]
fn planted_symlinks_at_temp_names_are_never_followed() {
    require_testbed();
    check_planted_tmp_names(&KRoot::new());
}

/// The check above can fail: planted names the kernel never tries (the
/// same planting, far past the numbers it uses) make it panic on its
/// premise, "the kernel met none of the planted temporary names".
#[test]
#[should_panic(expected = "the kernel met none of the")]
fn planted_names_the_kernel_never_tries_fail_the_check() {
    require_testbed();
    check_planted_tmp_names_at(&KRoot::new(), 1_000_000);
}

#[test]
fn dot_dot_and_foreign_paths_are_refused() {
    require_testbed();
    let k = KRoot::new();
    for bad in ["usr/bin/../../etc/passwd", "etc/passwd", "/usr/bin/./ls", "usr/lib/oxidizr-arch/../../../x"] {
        assert_eq!(k.root.check(bad).unwrap_err().id, ErrorId::Policy, "{bad}");
    }
    for bad_name in ["..", ".", "a/b", ""] {
        let e = with_managed(&k, |m, log| take_over(m, bad_name, LINK, "ls", log)).unwrap_err();
        assert_eq!(e.id, ErrorId::Policy, "{bad_name:?}");
    }
}

#[test]
fn foreign_entries_are_refused_on_restore_and_take_over() {
    require_testbed();
    check_foreign_entries(&KRoot::new());
}

#[test]
fn a_batch_take_over_records_every_prior_before_any_name_changes() {
    use oxidizr_arch::kernel::sidecar;
    use oxidizr_arch::kernel::takeover::{restore, take_over_many, Managed, TakeOver};
    use oxidizr_arch::kernel::FsyncLog;
    use std::process::Command;

    require_testbed();
    // chattr needs inode flags: the whole root on ext4.
    let tmp = tempfile::tempdir().unwrap();
    let ext4 = LoopFs::mount(FsKind::Ext4, &tmp.path().join("root"));
    let k = KRoot::at(&ext4.dir);
    let bin = k.bin();
    fs::write(bin.join("a"), "GNU a").unwrap();
    std::os::unix::fs::symlink("/opt/other/b", bin.join("b")).unwrap();
    fs::write(bin.join("d"), "GNU d").unwrap();
    run_ok(Command::new("chattr").arg("+i").arg(bin.join("d")));
    let names = ["a", "b", "c", "d"];
    let before: Vec<Snapshot> = names.iter().map(|n| snapshot(&bin.join(n))).collect();
    let links: Vec<String> = names.iter().map(|n| format!("../lib/oxidizr-arch/active/bin/{n}")).collect();
    let (bin_dir, store, sidecars) =
        (k.dir("usr/bin"), k.dir("usr/lib/oxidizr-arch/store"), k.dir("var/lib/oxidizr-arch/sidecars"));
    let batch = |log: &mut FsyncLog| {
        let items: Vec<TakeOver> = names
            .iter()
            .zip(&links)
            .map(|(n, l)| TakeOver {
                name: n,
                link: l,
                backup: &store,
                backup_path: "usr/lib/oxidizr-arch/store",
                backup_name: n,
                known: None,
            })
            .collect();
        take_over_many(&bin_dir, &sidecars, &items, log)
    };

    // One immutable name refuses the whole batch before any name changed.
    let e = batch(&mut FsyncLog::default()).unwrap_err();
    assert_eq!(e.id, ErrorId::Policy, "{e}");
    let now: Vec<Snapshot> = names.iter().map(|n| snapshot(&bin.join(n))).collect();
    assert_eq!(now, before, "a refused batch changes no name");
    assert_eq!(fs::read_dir(k.path.join("var/lib/oxidizr-arch/sidecars")).unwrap().count(), 0, "no sidecar");

    // Mutable again: every name is taken over, every sidecar durable, and
    // the batch shares its fsyncs (not three per name).
    run_ok(Command::new("chattr").arg("-i").arg(bin.join("d")));
    let mut log = FsyncLog::default();
    let done = batch(&mut log).unwrap();
    let kinds: Vec<(&str, bool)> = done.iter().map(|t| (t.prior_kind, t.changed)).collect();
    assert_eq!(kinds, [("file", true), ("symlink", true), ("none", true), ("file", true)]);
    for (n, l) in names.iter().zip(&links) {
        assert_eq!(fs::read_link(bin.join(n)).unwrap().to_str().unwrap(), l);
        assert!(sidecar::read(&sidecars, n).unwrap().is_some(), "sidecar of {n}");
    }
    assert_eq!(log.count, 9, "2 kept files + store dir, 4 sidecars + their dir, usr/bin once");
    assert!(batch(&mut FsyncLog::default()).unwrap().iter().all(|t| !t.changed), "a second batch changes nothing");

    // Our link deleted by hand: the link comes back and the sidecar keeps
    // the prior it recorded (absence now is not what was there before).
    let recorded = sidecar::read(&sidecars, "a").unwrap().unwrap();
    fs::remove_file(bin.join("a")).unwrap();
    let again = batch(&mut FsyncLog::default()).unwrap();
    assert_eq!((again[0].prior_kind, again[0].changed), ("file", true));
    assert_eq!(sidecar::read(&sidecars, "a").unwrap().unwrap(), recorded);
    assert_eq!(fs::read_link(bin.join("a")).unwrap().to_str().unwrap(), links[0]);

    // And every prior comes back exactly.
    let m = Managed { bin: &bin_dir, backup: &store, backup_path: "usr/lib/oxidizr-arch/store", sidecars: &sidecars };
    for n in names {
        restore(&m, n, &mut FsyncLog::default()).unwrap();
    }
    let restored: Vec<Snapshot> = names.iter().map(|n| snapshot(&bin.join(n))).collect();
    assert_eq!(restored, before);
}

/// Temporary names (`.oxidizr-tmp.*`) left in a directory.
fn leftover_tmps(dir: &std::path::Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".oxidizr-tmp."))
        .collect()
}

#[test]
fn a_failed_batch_leaves_no_temporary_name_and_no_half_store() {
    use oxidizr_arch::kernel::durable::{read_bytes, write_many};
    use oxidizr_arch::kernel::harvest::{harvest_many, HarvestItem};
    use oxidizr_arch::kernel::FsyncLog;
    use std::os::unix::fs::MetadataExt;

    require_testbed();
    let k = KRoot::new();
    for n in ["a", "b", "c"] {
        fs::write(k.bin().join(n), format!("GNU {n}")).unwrap();
    }
    let store_path = k.path.join("usr/lib/oxidizr-arch/store");
    // "b" cannot be stored: a directory holds its name in the store.
    fs::create_dir_all(store_path.join("b")).unwrap();
    let (bin, store) = (k.dir("usr/bin"), k.dir("usr/lib/oxidizr-arch/store"));
    let items: Vec<HarvestItem> = ["a", "b", "c"]
        .iter()
        .map(|n| HarvestItem { src: &bin, name: n, dst: &store, dst_name: n, known_sha256: None })
        .collect();
    let e = harvest_many(&items, &mut FsyncLog::default()).unwrap_err();
    assert_eq!(e.id, ErrorId::Ownership, "{e}");
    assert!(leftover_tmps(&store_path).is_empty(), "{:?}", leftover_tmps(&store_path));
    assert!(!store_path.join("a").exists() && !store_path.join("c").exists(), "nothing stored before the refusal");

    // The batch is all or nothing at the refusal; fixed, it stores all three
    // as the very inodes pacman wrote.
    fs::remove_dir(store_path.join("b")).unwrap();
    let done = harvest_many(&items, &mut FsyncLog::default()).unwrap();
    assert!(done.iter().all(|h| !h.already && !h.degraded));
    for n in ["a", "b", "c"] {
        let (s, b) = (fs::metadata(store_path.join(n)).unwrap(), fs::metadata(k.bin().join(n)).unwrap());
        assert_eq!((s.dev(), s.ino()), (b.dev(), b.ino()), "{n} is the same inode");
    }
    assert!(harvest_many(&items, &mut FsyncLog::default()).unwrap().iter().all(|h| h.already));

    // Documents: a name that cannot be replaced fails the batch, no
    // temporary file stays, and every name holds whole old or new content.
    let docs = k.dir("var/lib/oxidizr-arch/sidecars");
    let docs_path = k.path.join("var/lib/oxidizr-arch/sidecars");
    fs::write(docs_path.join("x.json"), "old x").unwrap();
    fs::create_dir(docs_path.join("y.json")).unwrap();
    let files: [(&str, &[u8]); 3] = [("x.json", b"new x"), ("y.json", b"new y"), ("z.json", b"new z")];
    assert!(write_many(&docs, &files, &mut FsyncLog::default()).is_err());
    assert!(leftover_tmps(&docs_path).is_empty(), "{:?}", leftover_tmps(&docs_path));
    assert_eq!(read_bytes(&docs, "x.json").unwrap().unwrap(), b"new x", "renamed before the failure");
    assert!(!docs_path.join("z.json").exists(), "not renamed after the failure");
}
