//! The safety kernel on a real filesystem: loop-mounted filesystems of
//! every kind the matrix covers, a throwaway kernel root, snapshots of
//! everything restore must reproduce, and the kernel checks shared by
//! `tests/kernel.rs` (on the testbed's `/tmp`) and `tests/fs_matrix.rs`
//! (on ext4, btrfs, xfs and tmpfs).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use oxidizr_arch::error::ErrorId;
use oxidizr_arch::kernel::dir::tmp_testing;
use oxidizr_arch::kernel::takeover::{restore, take_over, Managed, Restored};
use oxidizr_arch::kernel::{Dir, FsyncLog, SafePath, SafeRoot};

use super::run_ok;

/// The subtrees a kernel root may touch.
pub const ALLOWED: [&str; 3] = ["usr/bin", "usr/lib/oxidizr-arch", "var/lib/oxidizr-arch"];
/// The link a managed `usr/bin/ls` gets.
pub const LINK: &str = "../lib/oxidizr-arch/active/bin/ls";

/// A filesystem the matrix runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsKind {
    /// ext4 on a loop device.
    Ext4,
    /// btrfs on a loop device.
    Btrfs,
    /// xfs on a loop device (xfs needs at least 300 MB).
    Xfs,
    /// tmpfs (no device).
    Tmpfs,
}

impl FsKind {
    /// Every kind, in matrix order.
    pub const ALL: [FsKind; 4] = [FsKind::Ext4, FsKind::Btrfs, FsKind::Xfs, FsKind::Tmpfs];

    /// The type name `mount` and `/proc/mounts` use.
    pub fn name(self) -> &'static str {
        match self {
            FsKind::Ext4 => "ext4",
            FsKind::Btrfs => "btrfs",
            FsKind::Xfs => "xfs",
            FsKind::Tmpfs => "tmpfs",
        }
    }

    /// A different kind (for EXDEV pairs): tmpfs for disk filesystems,
    /// ext4 for tmpfs.
    pub fn other(self) -> FsKind {
        if self == FsKind::Tmpfs {
            FsKind::Ext4
        } else {
            FsKind::Tmpfs
        }
    }
}

/// A fresh filesystem of `kind` mounted at `dir` (sparse image under
/// /var/tmp for the loop-mounted kinds). The tests run in the testbed's
/// private mount namespace: the mount disappears with it; it is unmounted
/// (recursively, with anything mounted below it) on drop.
pub struct LoopFs {
    /// The mount point.
    pub dir: PathBuf,
    /// What is mounted there.
    pub kind: FsKind,
    _img: Option<tempfile::TempDir>,
}

impl LoopFs {
    /// Makes and mounts a fresh filesystem of `kind` at `dir` (created).
    pub fn mount(kind: FsKind, dir: &Path) -> LoopFs {
        fs::create_dir_all(dir).unwrap();
        if kind == FsKind::Tmpfs {
            run_ok(Command::new("mount").args(["-t", "tmpfs", "-o", "size=256m,mode=0755", "tmpfs"]).arg(dir));
            return LoopFs { dir: dir.to_path_buf(), kind, _img: None };
        }
        let img_dir = tempfile::Builder::new().prefix("loopfs.").tempdir_in("/var/tmp").unwrap();
        let img = img_dir.path().join("fs.img");
        let (size, mkfs, args): (u64, &str, &[&str]) = match kind {
            FsKind::Ext4 => (256 << 20, "mkfs.ext4", &["-q", "-F"]),
            FsKind::Btrfs => (256 << 20, "mkfs.btrfs", &["-q", "-f"]),
            FsKind::Xfs => (320 << 20, "mkfs.xfs", &["-q", "-f"]),
            FsKind::Tmpfs => unreachable!(),
        };
        fs::File::create(&img).unwrap().set_len(size).unwrap();
        run_ok(Command::new(mkfs).args(args).arg(&img));
        run_ok(Command::new("mount").args(["-t", kind.name(), "-o", "loop"]).arg(&img).arg(dir));
        let fs = LoopFs { dir: dir.to_path_buf(), kind, _img: Some(img_dir) };
        assert_eq!(fs_type(dir), kind.name(), "{} is mounted", dir.display());
        fs
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let _ = Command::new("chattr").args(["-R", "-f", "-i", "-a"]).arg(&self.dir).output();
        // A child forked by a parallel test may hold an fd on it for an
        // instant (between fork and exec): then detach it lazily.
        let ok = Command::new("umount").arg("-R").arg(&self.dir).output().is_ok_and(|o| o.status.success());
        if !ok {
            let _ = Command::new("umount").arg("-R").arg("-l").arg(&self.dir).output();
        }
    }
}

/// The filesystem type of the mount holding `path` (from /proc/self/mountinfo:
/// the longest mount point that is a prefix of the canonical path).
pub fn fs_type(path: &Path) -> String {
    let path = fs::canonicalize(path).unwrap();
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut best: Option<(usize, String)> = None;
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else { continue };
        let mount_point = fields[4].replace("\\040", " ");
        if path.starts_with(&mount_point) && best.as_ref().is_none_or(|(len, _)| mount_point.len() >= *len) {
            best = Some((mount_point.len(), fields[sep + 1].to_string()));
        }
    }
    best.map(|(_, t)| t).unwrap_or_default()
}

/// A root with the three kernel directories and a fake `active/bin/ls`.
pub struct KRoot {
    _tmp: Option<tempfile::TempDir>,
    /// The root directory.
    pub path: PathBuf,
    /// The root opened for the kernel.
    pub root: SafeRoot,
}

impl KRoot {
    /// A kernel root in a fresh temporary directory (the testbed's /tmp).
    pub fn new() -> KRoot {
        KRoot::new_in(&std::env::temp_dir())
    }

    /// A kernel root in a fresh temporary directory below `parent`
    /// (removed on drop).
    pub fn new_in(parent: &Path) -> KRoot {
        let tmp = tempfile::Builder::new().prefix("kroot.").tempdir_in(parent).unwrap();
        let path = tmp.path().to_path_buf();
        let mut k = KRoot::at(&path);
        k._tmp = Some(tmp);
        k
    }

    /// A kernel root at `path` (kept on drop).
    pub fn at(path: &Path) -> KRoot {
        fs::create_dir_all(path.join("usr/bin")).unwrap();
        fs::create_dir_all(path.join("usr/lib/oxidizr-arch/active/bin")).unwrap();
        fs::write(path.join("usr/lib/oxidizr-arch/active/bin/ls"), "#!/bin/sh\necho new\n").unwrap();
        let root = SafeRoot::open(path, &ALLOWED).unwrap();
        KRoot { _tmp: None, path: path.to_path_buf(), root }
    }

    /// Opens (creating) a directory of the root through the kernel.
    pub fn dir(&self, p: &str) -> Dir {
        self.root.open_dir(&SafePath::parse(p).unwrap(), true).unwrap()
    }

    /// The root's usr/bin.
    pub fn bin(&self) -> PathBuf {
        self.path.join("usr/bin")
    }
}

/// Runs take-over or restore with the standard directories.
pub fn with_managed<T>(k: &KRoot, f: impl FnOnce(&Managed, &mut FsyncLog) -> T) -> T {
    with_managed_store(k, "usr/lib/oxidizr-arch/store", f)
}

/// The same with the kept files in `store` (a directory of the root).
pub fn with_managed_store<T>(k: &KRoot, store: &str, f: impl FnOnce(&Managed, &mut FsyncLog) -> T) -> T {
    let (bin, backup, sidecars) = (k.dir("usr/bin"), k.dir(store), k.dir("var/lib/oxidizr-arch/sidecars"));
    let m = Managed { bin: &bin, backup: &backup, backup_path: store, sidecars: &sidecars };
    let mut log = FsyncLog::default();
    f(&m, &mut log)
}

/// Everything restore must reproduce about a path.
#[derive(Clone, Debug, PartialEq)]
pub enum Snapshot {
    /// Nothing there.
    Absent,
    /// A symlink: destination, owner, group.
    Link(String, u32, u32),
    /// A regular file and all its metadata.
    File {
        /// Inode.
        ino: u64,
        /// Device.
        dev: u64,
        /// Content.
        bytes: Vec<u8>,
        /// Mode, file type included.
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
        /// mtime (s, ns).
        mtime: (i64, i64),
        /// `getfattr -d -m -` output.
        xattrs: String,
        /// `getcap` output.
        cap: String,
        /// `getfacl` output.
        acl: String,
    },
}

/// stdout + stderr of a command.
pub fn sh(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// A snapshot of `p` (never following it).
pub fn snapshot(p: &Path) -> Snapshot {
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
pub fn without_inode(s: Snapshot) -> Snapshot {
    match s {
        Snapshot::File { bytes, mode, uid, gid, mtime, xattrs, cap, acl, .. } => {
            Snapshot::File { ino: 0, dev: 0, bytes, mode, uid, gid, mtime, xattrs, cap, acl }
        }
        other => other,
    }
}

/// What `usr/bin/ls` is before a take-over.
#[derive(Clone, Copy, Debug)]
pub enum PriorKind {
    /// A regular file.
    File,
    /// Someone's symlink.
    Symlink,
    /// Nothing.
    None,
}

/// Puts a prior of `prior` kind at `bin/ls`.
pub fn make_prior(bin: &Path, prior: PriorKind) {
    let ls = bin.join("ls");
    match prior {
        PriorKind::File => {
            fs::write(&ls, b"\x7fELF pretend GNU ls").unwrap();
            fs::set_permissions(&ls, fs::Permissions::from_mode(0o755)).unwrap();
        }
        PriorKind::Symlink => std::os::unix::fs::symlink("/opt/other/ls", &ls).unwrap(),
        PriorKind::None => {}
    }
}

/// A file with every kind of metadata: owner, setuid mode, mtime, a user
/// xattr, a file capability and a POSIX ACL.
pub fn rich_file(p: &Path) {
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

// ---------------------------------------------------------------------------
// Kernel checks, each on fresh kernel roots made by `fresh`.

/// Take-over then restore of every prior kind (file, symlink, none), twice
/// each: the exact prior state comes back, and repeats are no-ops.
/// Returns the number of permutations checked.
pub fn check_every_prior_kind_twice(fresh: &dyn Fn() -> KRoot) -> usize {
    let mut n = 0;
    for prior in [PriorKind::File, PriorKind::Symlink, PriorKind::None] {
        let k = fresh();
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
            n += 1;
        }
    }
    n
}

/// The same-inode path keeps owner, setuid mode, mtime, xattrs, the file
/// capability and the ACL, in the store and after restore.
pub fn check_metadata_same_inode(k: &KRoot) {
    rich_file(&k.bin().join("ls"));
    let before = snapshot(&k.bin().join("ls"));
    let t = with_managed(k, |m, log| take_over(m, "ls", LINK, "ls", log)).unwrap();
    assert!(!t.degraded, "one filesystem: harvested by hard link");
    // The store holds the very inode pacman wrote.
    let stored = snapshot(&k.path.join("usr/lib/oxidizr-arch/store/ls"));
    assert_eq!(stored, before, "same inode, same metadata in the store");
    with_managed(k, |m, log| restore(m, "ls", log)).unwrap();
    assert_eq!(snapshot(&k.bin().join("ls")), before);
}

/// With the store on a filesystem of kind `other` mounted inside the root,
/// the copy path keeps every piece of metadata, says it is degraded, and
/// restore is exact (but for the inode) and idempotent.
pub fn check_metadata_exdev(k: &KRoot, other: FsKind) {
    let store = k.path.join("usr/lib/oxidizr-arch/xstore");
    let _other = LoopFs::mount(other, &store);
    assert_ne!(fs::metadata(&store).unwrap().dev(), fs::metadata(k.bin()).unwrap().dev(), "two filesystems");
    rich_file(&k.bin().join("ls"));
    let before = snapshot(&k.bin().join("ls"));

    let t = with_managed_store(k, "usr/lib/oxidizr-arch/xstore", |m, log| take_over(m, "ls", LINK, "ls", log)).unwrap();
    assert!(t.degraded, "EXDEV is reported as degraded");
    assert_eq!(without_inode(snapshot(&store.join("ls"))), without_inode(before.clone()), "copy keeps all metadata");

    let r = with_managed_store(k, "usr/lib/oxidizr-arch/xstore", |m, log| restore(m, "ls", log)).unwrap();
    assert_eq!(r, Restored::Restored { degraded: true });
    assert_eq!(without_inode(snapshot(&k.bin().join("ls"))), without_inode(before));
    let r2 = with_managed_store(k, "usr/lib/oxidizr-arch/xstore", |m, log| restore(m, "ls", log)).unwrap();
    assert_eq!(r2, Restored::AlreadyRestored);
}

/// `chattr +i` and `chattr +a` targets are refused (E_POLICY) before
/// anything changes. `k` must be on a filesystem with inode flags.
pub fn check_immutable_refused(k: &KRoot) {
    for flag in ["+i", "+a"] {
        make_prior(&k.bin(), PriorKind::File);
        let ls = k.bin().join("ls");
        run_ok(Command::new("chattr").arg(flag).arg(&ls));
        let before = snapshot(&ls);
        let e = with_managed(k, |m, log| take_over(m, "ls", LINK, "ls", log)).unwrap_err();
        assert_eq!(e.id, ErrorId::Policy, "{flag}: {e}");
        assert!(e.reason.contains(if flag == "+i" { "immutable" } else { "append-only" }), "{e}");
        assert_eq!(snapshot(&ls), before, "{flag}: untouched");
        assert!(!k.path.join("usr/lib/oxidizr-arch/store/ls").exists(), "{flag}: nothing harvested");
        assert!(!k.path.join("var/lib/oxidizr-arch/sidecars/ls.json").exists(), "{flag}: no sidecar");
        run_ok(Command::new("chattr").arg(flag.replace('+', "-")).arg(&ls));
        fs::remove_file(&ls).unwrap();
    }
}

/// Symlinks planted at the very temporary names the kernel tries next, in
/// every directory it writes, are never followed nor overwritten, and the
/// kernel did meet them: this thread's temporary names are pinned to a known
/// sequence (`tmp_testing`, crash-injection builds), three of every four
/// numbers are planted for each purpose in each directory, and the test
/// fails unless each directory's writer stepped over at least one planted
/// name (a planted name the kernel never tries proves nothing).
pub fn check_planted_tmp_names(k: &KRoot) {
    check_planted_tmp_names_at(k, 0);
}

/// The same, planting `offset` numbers past the ones the kernel will try
/// (0 for the real test; a large offset is the self-test that the check
/// fails when nothing collides).
pub fn check_planted_tmp_names_at(k: &KRoot, offset: u64) {
    const START: u64 = 1 << 40;
    const SPAN: u64 = 120;
    const DIRS: [&str; 3] = ["usr/bin", "usr/lib/oxidizr-arch/store", "var/lib/oxidizr-arch/sidecars"];
    make_prior(&k.bin(), PriorKind::File);
    let victim = tempfile::tempdir().unwrap();
    let target = victim.path().join("precious");
    fs::write(&target, "precious").unwrap();
    // Learn the temp-name pattern from the kernel itself, then pin the
    // sequence so the planted names are exactly the ones it will try.
    let bin = k.dir("usr/bin");
    tmp_testing::pin_sequence(START);
    let probe = bin.tmp_name("ls");
    assert!(probe.ends_with(&format!(".{START}")), "the pinned sequence names the temp file: {probe}");
    let stem = probe.strip_suffix(&format!(".{START}")).unwrap();
    let mut planted = std::collections::BTreeSet::new();
    for i in START + offset..START + offset + SPAN {
        if (i - START) % 4 == 3 {
            continue; // one free number in four: every writer finds a name within 64 tries
        }
        for dir in DIRS {
            fs::create_dir_all(k.path.join(dir)).unwrap();
            for purpose in ["ls", "ls.json"] {
                let name = stem.replace(".ls.", &format!(".{purpose}.")) + &format!(".{i}");
                let p = k.path.join(dir).join(name);
                std::os::unix::fs::symlink(&target, &p).unwrap();
                planted.insert(p);
            }
        }
    }
    tmp_testing::pin_sequence(START);
    let t = with_managed(k, |m, log| take_over(m, "ls", LINK, "ls", log));
    let r = with_managed(k, |m, log| restore(m, "ls", log));
    let met = tmp_testing::stepped_over();
    tmp_testing::unpin();
    assert!(t.unwrap().changed);
    r.unwrap();
    assert_eq!(fs::read_to_string(&target).unwrap(), "precious", "the victim is untouched");
    for p in &planted {
        assert_eq!(fs::read_link(p).unwrap(), target, "planted link left as it was: {}", p.display());
    }
    // The premise: the kernel met planted names, in every directory it wrote.
    assert!(
        !met.is_empty(),
        "the kernel met none of the {} planted temporary names: the test proved nothing",
        planted.len()
    );
    for p in &met {
        assert!(planted.contains(p), "stepped over a name the test did not plant: {}", p.display());
    }
    eprintln!("the kernel met and stepped over {} of {} planted temporary names", met.len(), planted.len());
    for dir in DIRS {
        let d = k.path.join(dir);
        assert!(
            met.iter().any(|p| p.parent() == Some(d.as_path())),
            "the kernel met no planted temporary name in {dir} (met: {met:?})"
        );
    }
}

/// Foreign entries: someone's file where our link was is not overwritten by
/// restore (E_OWNERSHIP); a directory or a fifo is not taken over
/// (E_POLICY); a corrupt sidecar is E_STATE_CORRUPT.
pub fn check_foreign_entries(k: &KRoot) {
    make_prior(&k.bin(), PriorKind::File);
    with_managed(k, |m, log| take_over(m, "ls", LINK, "ls", log)).unwrap();
    // Someone replaced our link by a file: restore must not overwrite it.
    fs::remove_file(k.bin().join("ls")).unwrap();
    fs::write(k.bin().join("ls"), "someone else's").unwrap();
    let e = with_managed(k, |m, log| restore(m, "ls", log)).unwrap_err();
    assert_eq!(e.id, ErrorId::Ownership, "{e}");
    assert_eq!(fs::read_to_string(k.bin().join("ls")).unwrap(), "someone else's");
    // A directory or a fifo at a managed name is refused.
    fs::create_dir(k.bin().join("dir")).unwrap();
    let e = with_managed(k, |m, log| take_over(m, "dir", LINK, "dir", log)).unwrap_err();
    assert_eq!(e.id, ErrorId::Policy);
    run_ok(Command::new("mkfifo").arg(k.bin().join("fifo")));
    let e = with_managed(k, |m, log| take_over(m, "fifo", LINK, "fifo", log)).unwrap_err();
    assert_eq!(e.id, ErrorId::Policy);
    // A corrupt sidecar is a clear error, never replaced silently.
    fs::write(k.path.join("var/lib/oxidizr-arch/sidecars/ls.json"), "{ truncated").unwrap();
    let e = with_managed(k, |m, log| restore(m, "ls", log)).unwrap_err();
    assert_eq!(e.id, ErrorId::StateCorrupt);
}
