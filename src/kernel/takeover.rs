//! Take-over and restore of one managed name.
//!
//! Take-over: record the prior state (sidecar, fsynced; a regular file is
//! first harvested into the backup directory) and only then atomically
//! replace the name by our symlink. Restore: put back exactly the prior
//! state — the same inode (link to a temp name + rename), the same symlink,
//! or absence — and say so when it was already back (a no-op).
//!
//! The name is never absent in between: both directions end in one rename
//! over it (except restoring "absence", which is one unlink of our link).

use rustix::fs::AtFlags;

use super::copy::xattr_names;
use super::crash;
use super::digest::sha256_fd;
use super::dir::{Dir, Entry, Meta};
use super::flags::{ensure_mutable, inode_flags};
use super::fsync::FsyncLog;
use super::harvest::{harvest_many, stage_from_store, HarvestItem};
use super::sidecar::{self, Prior, Sidecar, SIDECAR_SCHEMA};
use super::swap::{rename_symlink_over, replace_with_symlink};
use crate::error::{Error, ErrorId, Result};

/// The three directories a take-over works in.
pub struct Managed<'a> {
    /// Where the managed names live (e.g. `usr/bin`).
    pub bin: &'a Dir,
    /// Where prior regular files are kept (hard links).
    pub backup: &'a Dir,
    /// The backup directory's path relative to the root, recorded in the
    /// sidecar so a later restore (or GC) knows where the kept file is.
    pub backup_path: &'a str,
    /// Where sidecars are written.
    pub sidecars: &'a Dir,
}

/// What a take-over did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TakenOver {
    /// The recorded prior state's kind (`file`, `symlink`, `none`).
    pub prior_kind: &'static str,
    /// False when the name already was our link (nothing was done).
    pub changed: bool,
    /// True when the prior file had to be copied across filesystems.
    pub degraded: bool,
}

/// How a restore ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restored {
    /// The prior state was put back.
    Restored {
        /// True when a copy (EXDEV) rather than the same inode was put back.
        degraded: bool,
    },
    /// The prior state already was in place: nothing was done.
    AlreadyRestored,
}

/// Replaces `name` by a symlink to `link`, recording its prior state first.
/// A regular prior file is kept as `backup_name` in the backup directory.
pub fn take_over(m: &Managed, name: &str, link: &str, backup_name: &str, log: &mut FsyncLog) -> Result<TakenOver> {
    let item = TakeOver { name, link, backup: m.backup, backup_path: m.backup_path, backup_name, known: None };
    Ok(take_over_many(m.bin, m.sidecars, &[item], log)?.remove(0))
}

/// One name for [`take_over_many`].
pub struct TakeOver<'a> {
    /// The managed name in the bin directory.
    pub name: &'a str,
    /// The symlink destination to install.
    pub link: &'a str,
    /// Where a regular prior file is kept (hard link).
    pub backup: &'a Dir,
    /// The backup directory's path relative to the root (for the sidecar).
    pub backup_path: &'a str,
    /// The kept file's name in the backup directory.
    pub backup_name: &'a str,
    /// What the caller already read of the regular file at `name` (saves
    /// reading it again); used only while `name` is that very inode.
    pub known: Option<&'a Known>,
}

/// What an operation already read of the regular file at a managed name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Known {
    /// Device of the file read.
    pub dev: u64,
    /// Inode of the file read.
    pub ino: u64,
    /// Its sha256, when hashed.
    pub sha256: Option<String>,
    /// Its inode flags (FS_IOC_GETFLAGS), when read.
    pub flags: Option<u32>,
    /// The names of its extended attributes, when read.
    pub xattrs: Option<Vec<String>>,
}

/// [`take_over`] for many names in `bin`, with the durability points
/// batched. Every prior state is recorded first (regular files harvested
/// together), all sidecars are written and made durable together, and only
/// then is each name swapped (one rename each) and `bin` fsynced once. So
/// every name's sidecar is durable before the name changes, and a crash
/// leaves each name its prior entry or our link. Results are in item order.
pub fn take_over_many(bin: &Dir, sidecars: &Dir, items: &[TakeOver], log: &mut FsyncLog) -> Result<Vec<TakenOver>> {
    let mut results: Vec<Option<TakenOver>> = vec![None; items.len()];
    let mut todo: Vec<(usize, Entry)> = Vec::new();
    // Names whose link was deleted: their sidecar already records the prior
    // state (absence now is not the prior state), so only the link returns.
    let mut relink: Vec<(usize, &'static str)> = Vec::new();
    for (i, it) in items.iter().enumerate() {
        let current = bin.entry(it.name)?;
        match &current {
            Entry::Symlink(_, dest) if dest == it.link => match sidecar::read(sidecars, it.name)? {
                Some(_) => results[i] = Some(TakenOver { prior_kind: "symlink", changed: false, degraded: false }),
                None => {
                    return Err(Error::new(
                        ErrorId::BackupMissing,
                        format!("{} is our link but its sidecar is missing", bin.show(it.name)),
                    ))
                }
            },
            Entry::Absent => match sidecar::read(sidecars, it.name)? {
                Some(sc) if sc.link == it.link => relink.push((i, sc.prior.kind())),
                _ => todo.push((i, current)),
            },
            _ => todo.push((i, current)),
        }
    }
    let priors = record_priors(bin, items, &todo, log)?;
    let records: Vec<Sidecar> = todo
        .iter()
        .zip(&priors)
        .map(|((i, _), (prior, _))| Sidecar {
            schema: SIDECAR_SCHEMA,
            name: items[*i].name.to_string(),
            link: items[*i].link.to_string(),
            backup_dir: items[*i].backup_path.to_string(),
            prior: prior.clone(),
        })
        .collect();
    if todo.is_empty() && relink.is_empty() {
        return Ok(results.into_iter().map(|r| r.expect("every item decided")).collect());
    }
    if !records.is_empty() {
        sidecar::write_all(sidecars, &records, log)?;
        crash::point("takeover:after-sidecar");
    }
    for ((i, _), (prior, degraded)) in todo.iter().zip(&priors) {
        // Phase one saw what is there: no directory, not our link yet.
        rename_symlink_over(bin, items[*i].name, items[*i].link)?;
        results[*i] = Some(TakenOver { prior_kind: prior.kind(), changed: true, degraded: *degraded });
    }
    for (i, kind) in relink {
        rename_symlink_over(bin, items[i].name, items[i].link)?;
        results[i] = Some(TakenOver { prior_kind: kind, changed: true, degraded: false });
    }
    bin.sync(log)?;
    crash::point("swap:after-fsync");
    Ok(results.into_iter().map(|r| r.expect("every item decided")).collect())
}

/// The prior state of every name in `todo` (with whether its kept copy is
/// degraded); regular files are harvested into their backup directories,
/// all in one batch.
fn record_priors(
    bin: &Dir,
    items: &[TakeOver],
    todo: &[(usize, Entry)],
    log: &mut FsyncLog,
) -> Result<Vec<(Prior, bool)>> {
    let mut files: Vec<(usize, u32, Vec<String>)> = Vec::new();
    for (k, (i, current)) in todo.iter().enumerate() {
        match current {
            Entry::Absent | Entry::Symlink(..) => {}
            Entry::File(meta) => {
                let read = known_here(items[*i].known, meta).and_then(|k| Some((k.flags?, k.xattrs.clone()?)));
                let (flags, xattrs) = match read {
                    Some(read) => read,
                    None => {
                        let fd = bin.open_file(items[*i].name)?;
                        (inode_flags(&fd)?, xattr_names(&fd)?)
                    }
                };
                ensure_mutable(flags, &bin.show(items[*i].name))?;
                files.push((k, flags, xattrs));
            }
            other => {
                return Err(Error::new(
                    ErrorId::Policy,
                    format!("{} is a {}: refusing to replace it", bin.show(items[*i].name), other.kind()),
                ))
            }
        }
    }
    let harvest_items: Vec<HarvestItem> = files
        .iter()
        .map(|(k, _, _)| {
            let (i, current) = &todo[*k];
            let it = &items[*i];
            let sha = match current {
                Entry::File(meta) => known_here(it.known, meta).and_then(|k| k.sha256.as_deref()),
                _ => None,
            };
            HarvestItem { src: bin, name: it.name, dst: it.backup, dst_name: it.backup_name, known_sha256: sha }
        })
        .collect();
    let harvested = harvest_many(&harvest_items, log)?;
    if !harvested.is_empty() {
        crash::point("takeover:after-harvest");
    }
    let mut kept: Vec<Option<(Prior, bool)>> = vec![None; todo.len()];
    for ((k, flags, xattrs), h) in files.into_iter().zip(harvested) {
        let prior = Prior::File {
            mode: h.stored.mode,
            uid: h.stored.uid,
            gid: h.stored.gid,
            mtime_sec: h.stored.mtime_sec,
            mtime_nsec: h.stored.mtime_nsec,
            size: h.stored.size,
            sha256: h.sha256,
            xattrs,
            flags,
            dev: h.stored.dev,
            ino: h.stored.ino,
            backup: items[todo[k].0].backup_name.to_string(),
            degraded: h.degraded,
        };
        kept[k] = Some((prior, h.degraded));
    }
    Ok(todo
        .iter()
        .zip(kept)
        .map(|((_, current), file)| match (current, file) {
            (_, Some(f)) => f,
            (Entry::Symlink(meta, dest), None) => {
                (Prior::Symlink { destination: dest.clone(), uid: meta.uid, gid: meta.gid }, false)
            }
            _ => (Prior::None, false),
        })
        .collect())
}

/// `known` when it describes the very inode `meta` is.
fn known_here<'k>(known: Option<&'k Known>, meta: &Meta) -> Option<&'k Known> {
    known.filter(|k| (k.dev, k.ino) == (meta.dev, meta.ino))
}

/// Checks, changing nothing, that `name` can be restored from `sc`: it is
/// our link, its prior state, or absent (for a file or symlink prior).
/// `E_OWNERSHIP` otherwise.
pub fn check_restorable(bin: &Dir, name: &str, sc: &Sidecar) -> Result<()> {
    let current = bin.entry(name)?;
    let ok = match (&current, &sc.prior) {
        (Entry::Symlink(_, dest), _) if *dest == sc.link => true,
        (Entry::Absent, _) => true,
        (Entry::Symlink(_, dest), Prior::Symlink { destination, .. }) => dest == destination,
        // A file: ours only if it is the very prior inode (or the degraded
        // copy); restore verifies the content itself.
        (Entry::File(meta), Prior::File { dev, ino, degraded, .. }) => {
            (meta.dev == *dev && meta.ino == *ino) || *degraded
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorId::Ownership,
            format!(
                "{} is a {} that is neither our link nor its prior state: refusing to touch it",
                bin.show(name),
                current.kind()
            ),
        ))
    }
}

/// Puts back the prior state of `name` recorded in its sidecar.
///
/// Refuses (`E_OWNERSHIP`) to overwrite anything that is neither our link
/// nor the prior state: a file pacman wrote since, someone else's symlink.
pub fn restore(m: &Managed, name: &str, log: &mut FsyncLog) -> Result<Restored> {
    let sc = sidecar::read(m.sidecars, name)?
        .ok_or_else(|| Error::new(ErrorId::BackupMissing, format!("no sidecar for {}", m.bin.show(name))))?;
    let current = m.bin.entry(name)?;
    if is_prior(m, name, &sc.prior, &current)? {
        // A crash between the rename and the chown of a restored symlink
        // leaves the right destination with the wrong owner: finish it.
        if let (Prior::Symlink { uid, gid, .. }, Entry::Symlink(meta, _)) = (&sc.prior, &current) {
            if (meta.uid, meta.gid) != (*uid, *gid) {
                chown_link(m.bin, name, *uid, *gid)?;
                return Ok(Restored::Restored { degraded: false });
            }
        }
        return Ok(Restored::AlreadyRestored);
    }
    match (&current, &sc.prior) {
        (Entry::Symlink(_, dest), _) if *dest == sc.link => {}
        (Entry::Absent, Prior::File { .. } | Prior::Symlink { .. }) => {}
        _ => {
            return Err(Error::new(
                ErrorId::Ownership,
                format!(
                    "{} is a {} that is neither our link nor its prior state: refusing to overwrite it",
                    m.bin.show(name),
                    current.kind()
                ),
            ))
        }
    }
    match &sc.prior {
        Prior::None => {
            m.bin.remove_file(name)?;
            crash::point("restore:after-unlink");
            m.bin.sync(log)?;
            Ok(Restored::Restored { degraded: false })
        }
        Prior::Symlink { destination, uid, gid } => {
            replace_with_symlink(m.bin, name, destination, log)?;
            chown_link(m.bin, name, *uid, *gid)?;
            Ok(Restored::Restored { degraded: false })
        }
        Prior::File { backup, sha256, .. } => restore_file(m, name, backup, sha256, log),
    }
}

fn restore_file(m: &Managed, name: &str, backup: &str, sha256: &str, log: &mut FsyncLog) -> Result<Restored> {
    let kept = m.backup.open_file(backup).map_err(|e| {
        Error::new(ErrorId::BackupMissing, format!("the kept copy {} is missing: {e}", m.backup.show(backup)))
    })?;
    let kept_sha = sha256_fd(&kept, &m.backup.show(backup))?;
    if kept_sha != sha256 {
        return Err(Error::new(
            ErrorId::BackupMissing,
            format!("the kept copy {} changed (sha256 {kept_sha}, expected {sha256})", m.backup.show(backup)),
        ));
    }
    let (tmp, degraded) = stage_from_store(m.backup, backup, m.bin, log)?;
    crash::point("restore:after-stage");
    if let Err(e) = m.bin.rename(&tmp, name) {
        let _ = m.bin.remove_file(&tmp);
        return Err(Error::io(ErrorId::RestoreFailed, format!("cannot put back {}", m.bin.show(name)), e.into()));
    }
    crash::point("restore:after-rename");
    m.bin.sync(log)?;
    Ok(Restored::Restored { degraded })
}

/// Whether `current` already is the recorded prior state.
fn is_prior(m: &Managed, name: &str, prior: &Prior, current: &Entry) -> Result<bool> {
    Ok(match (prior, current) {
        (Prior::None, Entry::Absent) => true,
        (Prior::Symlink { destination, .. }, Entry::Symlink(_, dest)) => dest == destination,
        (Prior::File { dev, ino, sha256, mode, uid, gid, degraded, .. }, Entry::File(meta)) => {
            if meta.dev == *dev && meta.ino == *ino {
                true
            } else if *degraded {
                let same_meta = meta.mode == *mode && meta.uid == *uid && meta.gid == *gid;
                same_meta && sha256_fd(&m.bin.open_file(name)?, &m.bin.show(name))? == *sha256
            } else {
                false
            }
        }
        _ => false,
    })
}

/// Restores the owner of a symlink we just created (never following it).
fn chown_link(dir: &Dir, name: &str, uid: u32, gid: u32) -> Result<()> {
    rustix::fs::chownat(
        dir.fd(),
        name,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| Error::io(ErrorId::RestoreFailed, format!("cannot restore the owner of {}", dir.show(name)), e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::safepath::{SafePath, SafeRoot};

    /// Set in the child this test re-runs itself as, to lower the fd limit
    /// of that process only.
    const UNDER_LIMIT: &str = "OXIDIZR_TEST_TAKEOVER_UNDER_FD_LIMIT";

    /// Names in one batch: far more than the child may have open.
    const NAMES: usize = 1500;

    fn batch_under_a_small_limit() {
        let tmp = tempfile::tempdir().unwrap();
        for sub in ["bin", "store", "sidecars"] {
            std::fs::create_dir(tmp.path().join(sub)).unwrap();
        }
        let names: Vec<String> = (0..NAMES).map(|i| format!("cmd{i}")).collect();
        for n in &names {
            std::fs::write(tmp.path().join("bin").join(n), n).unwrap();
        }
        let limit = 256 + 64;
        let small = rustix::process::Rlimit { current: Some(limit), maximum: Some(limit) };
        rustix::process::setrlimit(rustix::process::Resource::Nofile, small).expect("setrlimit");
        let root = SafeRoot::open(tmp.path(), &["bin", "store", "sidecars"]).unwrap();
        let dir = |p: &str| root.open_dir(&SafePath::parse(p).unwrap(), false).unwrap();
        let (bin, store, sidecars) = (dir("bin"), dir("store"), dir("sidecars"));
        let links: Vec<String> = names.iter().map(|n| format!("/active/bin/{n}")).collect();
        let items: Vec<TakeOver> = names
            .iter()
            .zip(&links)
            .map(|(n, l)| TakeOver {
                name: n,
                link: l,
                backup: &store,
                backup_path: "store",
                backup_name: n,
                known: None,
            })
            .collect();
        let mut log = FsyncLog::default();
        let done = take_over_many(&bin, &sidecars, &items, &mut log).unwrap();
        assert!(done.iter().all(|t| t.changed && t.prior_kind == "file"));
        for (n, l) in names.iter().zip(&links) {
            assert_eq!(&bin.read_link(n).unwrap(), l);
            assert!(sidecar::read(&sidecars, n).unwrap().is_some(), "the sidecar of {n}");
            assert!(matches!(store.entry(n).unwrap(), Entry::File(_)), "the kept {n}");
        }
    }

    #[test]
    fn a_take_over_batch_larger_than_the_fd_limit_succeeds() {
        if std::env::var_os(UNDER_LIMIT).is_some() {
            return batch_under_a_small_limit();
        }
        crate::kernel::rerun_in_child(
            "kernel::takeover::tests::a_take_over_batch_larger_than_the_fd_limit_succeeds",
            UNDER_LIMIT,
        );
    }
}
