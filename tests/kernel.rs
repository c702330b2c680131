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
