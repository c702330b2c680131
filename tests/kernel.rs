//! The safety kernel on real filesystems, as root: take-over and restore of
//! every prior kind, metadata on both the same-inode and the EXDEV path,
//! immutable targets, hostile layouts.
#![cfg(feature = "testbed")]

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use oxidizr_arch::error::ErrorId;
use oxidizr_arch::kernel::takeover::{restore, take_over, Managed, Restored};
use oxidizr_arch::kernel::{Dir, FsyncLog, SafePath, SafeRoot};

const ALLOWED: [&str; 3] = ["usr/bin", "usr/lib/oxidizr-arch", "var/lib/oxidizr-arch"];
const LINK: &str = "../lib/oxidizr-arch/active/bin/ls";

/// A root with the three kernel directories and a fake `active/bin/ls`.
struct KRoot {
    _tmp: Option<tempfile::TempDir>,
    path: PathBuf,
    root: SafeRoot,
}

impl KRoot {
    fn new() -> KRoot {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().to_path_buf();
        let mut k = KRoot::at(&path);
        k._tmp = Some(tmp);
        k
    }

    fn at(path: &Path) -> KRoot {
        fs::create_dir_all(path.join("usr/bin")).unwrap();
        fs::create_dir_all(path.join("usr/lib/oxidizr-arch/active/bin")).unwrap();
        fs::write(path.join("usr/lib/oxidizr-arch/active/bin/ls"), "#!/bin/sh\necho new\n").unwrap();
        let root = SafeRoot::open(path, &ALLOWED).unwrap();
        KRoot { _tmp: None, path: path.to_path_buf(), root }
    }

    fn dir(&self, p: &str) -> Dir {
        self.root.open_dir(&SafePath::parse(p).unwrap(), true).unwrap()
    }

    fn bin(&self) -> PathBuf {
        self.path.join("usr/bin")
    }
}

/// Runs take-over or restore with the standard directories.
fn with_managed<T>(k: &KRoot, f: impl FnOnce(&Managed, &mut FsyncLog) -> T) -> T {
    with_managed_store(k, "usr/lib/oxidizr-arch/store", f)
}

fn with_managed_store<T>(k: &KRoot, store: &str, f: impl FnOnce(&Managed, &mut FsyncLog) -> T) -> T {
    let (bin, backup, sidecars) = (k.dir("usr/bin"), k.dir(store), k.dir("var/lib/oxidizr-arch/sidecars"));
    let m = Managed { bin: &bin, backup: &backup, backup_path: store, sidecars: &sidecars };
    let mut log = FsyncLog::default();
    f(&m, &mut log)
}

/// Everything restore must reproduce about a path.
#[derive(Debug, PartialEq)]
enum Snapshot {
    Absent,
    Link(String, u32, u32),
    File {
        ino: u64,
        dev: u64,
        bytes: Vec<u8>,
        mode: u32,
        uid: u32,
        gid: u32,
        mtime: (i64, i64),
        xattrs: String,
        cap: String,
        acl: String,
    },
}

fn sh(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn snapshot(p: &Path) -> Snapshot {
    let Ok(md) = fs::symlink_metadata(p) else { return Snapshot::Absent };
    if md.file_type().is_symlink() {
        return Snapshot::Link(fs::read_link(p).unwrap().display().to_string(), md.uid(), md.gid());
    }
    let s = p.to_str().unwrap();
    Snapshot::File {
        ino: md.ino(),
        dev: md.dev(),
        bytes: fs::read(p).unwrap(),
        mode: md.permissions().mode(),
        uid: md.uid(),
        gid: md.gid(),
        mtime: (md.mtime(), md.mtime_nsec()),
        // getfattr prints the file name: strip it so two paths compare.
        xattrs: sh("getfattr", &["-d", "-m", "-", "--absolute-names", s]).replace(s, "F"),
        cap: sh("getcap", &[s]).replace(s, "F"),
        acl: sh("getfacl", &["-p", s]).replace(s, "F"),
    }
}

/// The same, ignoring the inode (for the degraded EXDEV path).
fn without_inode(s: Snapshot) -> Snapshot {
    match s {
        Snapshot::File { bytes, mode, uid, gid, mtime, xattrs, cap, acl, .. } => {
            Snapshot::File { ino: 0, dev: 0, bytes, mode, uid, gid, mtime, xattrs, cap, acl }
        }
        other => other,
    }
}

#[derive(Clone, Copy, Debug)]
enum Prior {
    File,
    Symlink,
    None,
}

fn make_prior(bin: &Path, prior: Prior) {
    let ls = bin.join("ls");
    match prior {
        Prior::File => {
            fs::write(&ls, b"\x7fELF pretend GNU ls").unwrap();
            fs::set_permissions(&ls, fs::Permissions::from_mode(0o755)).unwrap();
        }
        Prior::Symlink => std::os::unix::fs::symlink("/opt/other/ls", &ls).unwrap(),
        Prior::None => {}
    }
}

#[test]
fn every_prior_kind_is_replaced_then_restored_exactly_twice() {
    require_testbed();
    for prior in [Prior::File, Prior::Symlink, Prior::None] {
        let k = KRoot::new();
        make_prior(&k.bin(), prior);
        let before = snapshot(&k.bin().join("ls"));
        for round in 0..2 {
            let t = with_managed(&k, |m, log| take_over(m, "ls", LINK, "ls", log)).unwrap();
            assert!(t.changed, "{prior:?} round {round}: take-over changes the name");
            assert_eq!(fs::read_link(k.bin().join("ls")).unwrap().to_str().unwrap(), LINK);
            assert_eq!(fs::read(k.bin().join("ls")).unwrap(), b"#!/bin/sh\necho new\n", "the link resolves");
            let again = with_managed(&k, |m, log| take_over(m, "ls", LINK, "ls", log)).unwrap();
            assert!(!again.changed, "a second take-over is a no-op");

            let r = with_managed(&k, |m, log| restore(m, "ls", log)).unwrap();
            assert_eq!(r, Restored::Restored { degraded: false }, "{prior:?} round {round}");
            assert_eq!(snapshot(&k.bin().join("ls")), before, "{prior:?} round {round}: exact prior state");
            let r2 = with_managed(&k, |m, log| restore(m, "ls", log)).unwrap();
            assert_eq!(r2, Restored::AlreadyRestored, "the second restore says it is a no-op");
            assert_eq!(snapshot(&k.bin().join("ls")), before);
        }
    }
}

/// A file with every kind of metadata: owner, setuid mode, mtime, a user
/// xattr, a file capability and a POSIX ACL.
fn rich_file(p: &Path) {
    fs::write(p, b"\x7fELF rich binary").unwrap();
    let s = p.to_str().unwrap();
    run_ok(Command::new("chown").args(["1234:5678", s]));
    run_ok(Command::new("chmod").args(["4750", s]));
    run_ok(Command::new("setfattr").args(["-n", "user.oxidizr", "-v", "kept", s]));
    run_ok(Command::new("setfacl").args(["-m", "u:4321:rx", s]));
    run_ok(Command::new("setcap").args(["cap_net_raw+ep", s]));
    run_ok(Command::new("touch").args(["-h", "-d", "2001-02-03 04:05:06.789", s]));
    let snap = snapshot(p);
    let Snapshot::File { cap, acl, xattrs, .. } = &snap else { panic!() };
    assert!(cap.contains("cap_net_raw"), "setcap took: {cap}");
    assert!(acl.contains("user:4321:r-x"), "setfacl took: {acl}");
    assert!(xattrs.contains("user.oxidizr=\"kept\""), "setfattr took: {xattrs}");
}

#[test]
fn metadata_survives_the_same_inode_path() {
    require_testbed();
    let k = KRoot::new();
    rich_file(&k.bin().join("ls"));
    let before = snapshot(&k.bin().join("ls"));
    let t = with_managed(&k, |m, log| take_over(m, "ls", LINK, "ls", log)).unwrap();
    assert!(!t.degraded);
    // The store holds the very inode pacman wrote.
    let stored = snapshot(&k.path.join("usr/lib/oxidizr-arch/store/ls"));
    assert_eq!(stored, before, "same inode, same metadata in the store");
    with_managed(&k, |m, log| restore(m, "ls", log)).unwrap();
    assert_eq!(snapshot(&k.bin().join("ls")), before);
}

/// A loop-mounted ext4 at `dir` (the test runs in the testbed's private
/// mount namespace: the mount disappears with it; it is unmounted on drop).
struct Ext4 {
    dir: PathBuf,
    _img: tempfile::TempDir,
}

impl Ext4 {
    fn mount(dir: &Path) -> Ext4 {
        let img_dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let img = img_dir.path().join("fs.img");
        let f = fs::File::create(&img).unwrap();
        f.set_len(64 << 20).unwrap();
        run_ok(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img));
        fs::create_dir_all(dir).unwrap();
        run_ok(Command::new("mount").args(["-o", "loop"]).arg(&img).arg(dir));
        Ext4 { dir: dir.to_path_buf(), _img: img_dir }
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let _ = Command::new("chattr").args(["-R", "-i", "-a"]).arg(&self.dir).output();
        let _ = Command::new("umount").arg(&self.dir).output();
    }
}

#[test]
fn metadata_survives_the_exdev_copy_path() {
    require_testbed();
    // usr/bin on the tmpfs /tmp, the store on a loop-mounted ext4.
    let k = KRoot::new();
    let store = k.path.join("usr/lib/oxidizr-arch/xstore");
    let _ext4 = Ext4::mount(&store);
    assert_ne!(fs::metadata(&store).unwrap().dev(), fs::metadata(k.bin()).unwrap().dev(), "two filesystems");
    rich_file(&k.bin().join("ls"));
    let before = snapshot(&k.bin().join("ls"));

    let t =
        with_managed_store(&k, "usr/lib/oxidizr-arch/xstore", |m, log| take_over(m, "ls", LINK, "ls", log)).unwrap();
    assert!(t.degraded, "EXDEV is reported as degraded");
    assert_eq!(
        without_inode(snapshot(&store.join("ls"))),
        without_inode(before_clone(&before)),
        "copy keeps all metadata"
    );

    let r = with_managed_store(&k, "usr/lib/oxidizr-arch/xstore", |m, log| restore(m, "ls", log)).unwrap();
    assert_eq!(r, Restored::Restored { degraded: true });
    assert_eq!(without_inode(snapshot(&k.bin().join("ls"))), without_inode(before));
    let r2 = with_managed_store(&k, "usr/lib/oxidizr-arch/xstore", |m, log| restore(m, "ls", log)).unwrap();
    assert_eq!(r2, Restored::AlreadyRestored);
}

fn before_clone(s: &Snapshot) -> Snapshot {
    match s {
        Snapshot::File { ino, dev, bytes, mode, uid, gid, mtime, xattrs, cap, acl } => Snapshot::File {
            ino: *ino,
            dev: *dev,
            bytes: bytes.clone(),
            mode: *mode,
            uid: *uid,
            gid: *gid,
            mtime: *mtime,
            xattrs: xattrs.clone(),
            cap: cap.clone(),
            acl: acl.clone(),
        },
        Snapshot::Link(a, u, g) => Snapshot::Link(a.clone(), *u, *g),
        Snapshot::Absent => Snapshot::Absent,
    }
}

#[test]
fn immutable_and_append_only_targets_are_refused_untouched() {
    require_testbed();
    let tmp = tempfile::tempdir().unwrap();
    // chattr needs a filesystem with inode flags: the whole root on ext4.
    let ext4 = Ext4::mount(&tmp.path().join("root"));
    let k = KRoot::at(&ext4.dir);
    for flag in ["+i", "+a"] {
        make_prior(&k.bin(), Prior::File);
        let ls = k.bin().join("ls");
        run_ok(Command::new("chattr").arg(flag).arg(&ls));
        let before = snapshot(&ls);
        let e = with_managed(&k, |m, log| take_over(m, "ls", LINK, "ls", log)).unwrap_err();
        assert_eq!(e.id, ErrorId::Policy, "{flag}: {e}");
        assert!(e.reason.contains(if flag == "+i" { "immutable" } else { "append-only" }), "{e}");
        assert_eq!(snapshot(&ls), before, "{flag}: untouched");
        assert!(!k.path.join("usr/lib/oxidizr-arch/store/ls").exists(), "{flag}: nothing harvested");
        assert!(!k.path.join("var/lib/oxidizr-arch/sidecars/ls.json").exists(), "{flag}: no sidecar");
        run_ok(Command::new("chattr").arg(flag.replace('+', "-")).arg(&ls));
        fs::remove_file(&ls).unwrap();
    }
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
    let k = KRoot::new();
    make_prior(&k.bin(), Prior::File);
    let victim = tempfile::tempdir().unwrap();
    let target = victim.path().join("precious");
    fs::write(&target, "precious").unwrap();
    // Learn the temp-name pattern and plant links at the next names.
    let bin = k.dir("usr/bin");
    let probe = bin.tmp_name("ls");
    let (stem, n) = probe.rsplit_once('.').unwrap();
    let n: u64 = n.parse().unwrap();
    let mut planted = Vec::new();
    for i in n + 1..n + 40 {
        for dir in ["usr/bin", "usr/lib/oxidizr-arch/store", "var/lib/oxidizr-arch/sidecars"] {
            fs::create_dir_all(k.path.join(dir)).unwrap();
            for purpose in ["ls", "ls.json"] {
                let name = stem.replace(".ls.", &format!(".{purpose}.")) + &format!(".{i}");
                let p = k.path.join(dir).join(name);
                std::os::unix::fs::symlink(&target, &p).unwrap();
                planted.push(p);
            }
        }
    }
    let t = with_managed(&k, |m, log| take_over(m, "ls", LINK, "ls", log)).unwrap();
    assert!(t.changed);
    with_managed(&k, |m, log| restore(m, "ls", log)).unwrap();
    assert_eq!(fs::read_to_string(&target).unwrap(), "precious", "the victim is untouched");
    for p in planted {
        assert_eq!(fs::read_link(&p).unwrap(), target, "planted link left as it was: {}", p.display());
    }
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
    let k = KRoot::new();
    make_prior(&k.bin(), Prior::File);
    with_managed(&k, |m, log| take_over(m, "ls", LINK, "ls", log)).unwrap();
    // Someone replaced our link by a file: restore must not overwrite it.
    fs::remove_file(k.bin().join("ls")).unwrap();
    fs::write(k.bin().join("ls"), "someone else's").unwrap();
    let e = with_managed(&k, |m, log| restore(m, "ls", log)).unwrap_err();
    assert_eq!(e.id, ErrorId::Ownership, "{e}");
    assert_eq!(fs::read_to_string(k.bin().join("ls")).unwrap(), "someone else's");
    // A directory or a fifo at a managed name is refused.
    fs::create_dir(k.bin().join("dir")).unwrap();
    let e = with_managed(&k, |m, log| take_over(m, "dir", LINK, "dir", log)).unwrap_err();
    assert_eq!(e.id, ErrorId::Policy);
    run_ok(Command::new("mkfifo").arg(k.bin().join("fifo")));
    let e = with_managed(&k, |m, log| take_over(m, "fifo", LINK, "fifo", log)).unwrap_err();
    assert_eq!(e.id, ErrorId::Policy);
    // A corrupt sidecar is a clear error, never replaced silently.
    fs::write(k.path.join("var/lib/oxidizr-arch/sidecars/ls.json"), "{ truncated").unwrap();
    let e = with_managed(&k, |m, log| restore(m, "ls", log)).unwrap_err();
    assert_eq!(e.id, ErrorId::StateCorrupt);
}
