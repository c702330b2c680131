//! `verify --repair`: the mutating half of verify. Each repair converges
//! one kind of problem [`super::check`] reports, through the safety kernel:
//! directory modes, stored GNU binaries refetched from pacman's package
//! cache, foreign entries and stray profile pointers moved to quarantine.
//! The caller holds the lock; the repaired state is checked again after.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{inside_root, own_directories};
use crate::engine::generation;
use crate::engine::store::store_package;
use crate::engine::Engine;
use crate::error::{Error, ErrorId, Result};
use crate::kernel::digest::sha256_fd;
use crate::kernel::dir::DIR_MODE;
use crate::kernel::refill::{self, Expected};
use crate::kernel::sidecar::{self, Prior, Sidecar};
use crate::kernel::Entry;
use crate::model::layout::LIB;
use crate::pacman::mtree::{Lookup, Records};
use crate::pacman::pkgcache;

/// Restores mode 0755 on every directory of ours ([`own_directories`])
/// that has another one, through its handle (`fchmod`: no path is resolved
/// again, no symlink followed, nothing that is not ours touched), and makes
/// the change durable (fsync of the directory). Returns one line per
/// directory changed.
pub fn repair_modes(engine: &mut Engine) -> Result<Vec<String>> {
    engine.require_lock()?;
    let mut out = Vec::new();
    for d in own_directories(engine)? {
        let mode = d.mode()?;
        if mode == DIR_MODE {
            continue;
        }
        d.set_mode(DIR_MODE)?;
        d.sync(&mut engine.log)?;
        let line = format!("restored mode {DIR_MODE:04o} of {} (was {mode:04o})", inside_root(engine, &d));
        engine.fact("repair", line.clone(), None, None, None);
        out.push(line);
    }
    Ok(out)
}

/// What `verify --repair` did about one damaged stored GNU binary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Refetch {
    /// The stored file, e.g. `/usr/lib/oxidizr-arch/store/gnu/coreutils-9.10-1/stty`.
    pub path: String,
    /// True when it holds the recorded bytes and metadata again.
    pub healed: bool,
    /// The package file it was refetched from, or why it was not (with
    /// what the admin can do).
    pub detail: String,
    /// The error id of the reason, when not healed.
    pub error_id: Option<ErrorId>,
}

impl Refetch {
    /// One line for the repair report.
    pub fn line(&self) -> String {
        if self.healed {
            format!("refetched {} from {}", self.path, self.detail)
        } else {
            format!("cannot refetch {}: {}", self.path, self.detail)
        }
    }
}

/// The temporary-name purpose of refetched files (`.oxidizr-tmp.refetch.<applet>...`).
const REFETCH: &str = "refetch";

/// Heals every kept GNU binary that no longer has its recorded sha256 (or
/// is missing) from pacman's package cache: the exact package version's
/// file (see [`pkgcache`]) is asked for `usr/bin/<applet>`, and the bytes
/// are published over the damaged file only when they hash to the sha256
/// recorded in its sidecar, with the recorded owner, mode and mtime. Every
/// sidecar naming that file is rewritten with the new inode *before* the
/// rename, so a crash in between leaves the damage reported and a second
/// repair converges. When no cached package, no bsdtar or no matching
/// member exists, the file is left as it is and the reason is returned
/// (verify keeps reporting `store-damaged`). Intact files are not touched.
/// A failure to write the store or a sidecar is returned as an error.
pub fn refetch_store(engine: &mut Engine) -> Result<Vec<Refetch>> {
    engine.require_lock()?;
    let mut out = Vec::new();
    let names = engine.managed_names()?;
    if names.is_empty() {
        return Ok(out);
    }
    let sidecars = engine.layout.dir(&format!("{}/sidecars", crate::model::layout::STATE), false)?;
    // Every kept file and the sidecars that name it (unreadable sidecars
    // are verify's `sidecar-damaged`, not ours to guess at).
    let mut kept: BTreeMap<(String, String), Vec<Sidecar>> = BTreeMap::new();
    for name in names {
        if let Ok(Some(sc)) = sidecar::read(&sidecars, &name) {
            if let Prior::File { backup, .. } = &sc.prior {
                kept.entry((sc.backup_dir.clone(), backup.clone())).or_default().push(sc);
            }
        }
    }
    // pacman's record is the authority where it exists (each package's
    // mtree read once): a sidecar rewritten to match damaged bytes does
    // not make them the ones to keep.
    let mut pacman = Records::new(&engine.opts.dbpath);
    for ((backup_dir, backup), scs) in kept {
        let path = format!("/{backup_dir}/{backup}");
        let r = match refetch_one(engine, &mut pacman, &sidecars, &backup_dir, &backup, &scs)? {
            Outcome::Intact => continue,
            Outcome::Healed(from) => Refetch { path, healed: true, detail: from, error_id: None },
            Outcome::Unhealed(e) => Refetch { path, healed: false, detail: e.to_string(), error_id: Some(e.id) },
        };
        engine.fact("repair", r.line(), r.error_id, None, None);
        out.push(r);
    }
    Ok(out)
}

/// What a `file` prior records about its kept file's content and metadata.
fn expected(prior: &Prior) -> Option<Expected> {
    match prior {
        Prior::File { sha256, size, mode, uid, gid, mtime_sec, mtime_nsec, .. } => Some(Expected {
            sha256: sha256.clone(),
            size: *size,
            mode: *mode,
            uid: *uid,
            gid: *gid,
            mtime_sec: *mtime_sec,
            mtime_nsec: *mtime_nsec,
        }),
        _ => None,
    }
}

/// How the refetch of one kept file ended.
enum Outcome {
    /// It has its recorded sha256: nothing was done.
    Intact,
    /// Refetched from this package file.
    Healed(String),
    /// Left as it is, for this reason (the admin's way out included).
    Unhealed(Error),
}

/// Refetches one kept file. What the cache cannot give is an
/// [`Outcome::Unhealed`] reason; a failure to write the store or the
/// sidecars is an error (its own id and exit code).
fn refetch_one(
    engine: &mut Engine,
    pacman: &mut Records,
    sidecars: &crate::kernel::Dir,
    backup_dir: &str,
    backup: &str,
    scs: &[Sidecar],
) -> Result<Outcome> {
    let unhealed = |id, why: String| Ok(Outcome::Unhealed(Error::new(id, why)));
    let (Some(recorded), Prior::File { xattrs, .. }) = (expected(&scs[0].prior), &scs[0].prior) else {
        return Ok(Outcome::Intact);
    };
    // What to put back: pacman's sha256 (and size) where its local mtree
    // records this file, else what our sidecar recorded.
    let mut want = recorded.clone();
    if let Some((package, version)) = store_package(backup_dir) {
        if let Lookup::Recorded(r) = pacman.lookup(&package, &version, &format!("usr/bin/{backup}")) {
            want.size = r.size.unwrap_or(want.size);
            want.sha256 = r.sha256;
        }
    }
    let shown = format!("/{backup_dir}/{backup}");
    let existing = engine.layout.dir(backup_dir, false).ok();
    if let Some(dir) = &existing {
        match dir.entry(backup)? {
            Entry::Absent => {}
            Entry::File(_) => {
                if sha256_fd(&dir.open_file(backup)?, &shown)? == want.sha256 {
                    if scs.iter().all(|sc| expected(&sc.prior).as_ref() == Some(&want)) {
                        return Ok(Outcome::Intact);
                    }
                    // pacman's bytes, but a sidecar that says otherwise:
                    // the sidecars are ours to correct.
                    for sc in scs {
                        let mut sc = sc.clone();
                        if let Prior::File { sha256, size, .. } = &mut sc.prior {
                            (*sha256, *size) = (want.sha256.clone(), want.size);
                        }
                        sidecar::write(sidecars, &sc, &mut engine.log)?;
                    }
                    return Ok(Outcome::Healed(
                        "pacman's record (the bytes were right; the sidecars now say so)".to_string(),
                    ));
                }
            }
            other => {
                let why = format!("it is a {}, not a stored binary: move it away, then repair again", other.kind());
                return unhealed(ErrorId::Ownership, why);
            }
        }
    }
    let Some((package, version)) = store_package(backup_dir) else {
        return unhealed(ErrorId::Policy, format!("{backup_dir} is not a directory of the GNU store"));
    };
    if let Some(sc) = scs.iter().find(|sc| expected(&sc.prior).as_ref() != Some(&recorded)) {
        let why = format!("the sidecars of {} and {} disagree about it; reinstall {package}", scs[0].name, sc.name);
        return unhealed(ErrorId::StateCorrupt, why);
    }
    if !xattrs.is_empty() {
        let why = format!(
            "it had extended attributes ({}) that a package member cannot carry back; reinstall {package}",
            xattrs.join(", ")
        );
        return unhealed(ErrorId::BackupMissing, why);
    }
    let dirs = match pkgcache::cache_dirs_of(&engine.opts.root, engine.opts.pacman_config.as_deref()) {
        Ok(dirs) => dirs,
        Err(e) => return unhealed(e.id, format!("{e}; reinstall {package}")),
    };
    let candidates = pkgcache::find(&dirs, &package, &version);
    if candidates.is_empty() {
        let shown_dirs = dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ");
        return unhealed(
            ErrorId::BackupMissing,
            format!("no cached package {package}-{version} in {shown_dirs}: reinstall {package}"),
        );
    }
    let bsdtar = match pkgcache::bsdtar() {
        Ok(path) => path,
        Err(e) => return unhealed(e.id, format!("{}; reinstall {package}", e.reason)),
    };
    let dir = match existing {
        Some(dir) => dir,
        None => engine.layout.dir(backup_dir, true)?,
    };
    // Temporaries of a refetch killed before its rename: garbage now (we
    // hold the lock, no other refetch runs).
    for name in dir.list()?.iter().filter(|n| n.starts_with(&format!(".oxidizr-tmp.{REFETCH}."))) {
        dir.remove_file(name)?;
    }
    let member = format!("usr/bin/{backup}");
    let mut why = Vec::new();
    for pkg in candidates {
        let what = format!("{member} of {}", pkg.display());
        let log = &mut engine.log;
        // Other bytes (E_BACKUP_MISSING) send us to the next candidate; a
        // failure to write the store is the repair's failure.
        let mut store_failed = false;
        let staged = pkgcache::extract_member(&bsdtar, &pkg, &member, |r| {
            let staged = refill::stage(&dir, &format!("{REFETCH}.{backup}"), r, &want, &what, log);
            store_failed = matches!(&staged, Err(e) if e.id != ErrorId::BackupMissing);
            staged
        });
        let staged = match staged {
            Ok(staged) => staged,
            Err(e) if store_failed => return Err(e),
            Err(e) => {
                why.push(e.to_string());
                continue;
            }
        };
        // The sidecars first: a crash before the rename leaves the damage
        // visible (and a new inode recorded that nothing has): a second
        // repair stages and records again. The other way round, a crash
        // would leave intact bytes under a stale inode that no check sees.
        let new = *staged.meta();
        for sc in scs {
            let mut sc = sc.clone();
            if let Prior::File { dev, ino, sha256, size, .. } = &mut sc.prior {
                (*dev, *ino) = (new.dev, new.ino);
                (*sha256, *size) = (want.sha256.clone(), want.size);
            }
            sidecar::write(sidecars, &sc, &mut engine.log)?;
        }
        crate::kernel::crash::point("refetch:after-sidecars");
        staged.publish(backup, &mut engine.log)?;
        return Ok(Outcome::Healed(pkg.display().to_string()));
    }
    unhealed(ErrorId::BackupMissing, format!("{}; reinstall {package}", why.join("; ")))
}

/// How many quarantine names are tried for one entry.
const QUARANTINE_TRIES: usize = 10_000;

/// Moves foreign entries out of the generations into a quarantine
/// directory (nothing is deleted). Returns how many were moved.
pub fn quarantine_foreign(engine: &mut Engine) -> Result<usize> {
    engine.require_lock()?;
    let (numbers, other) = generation::list(&engine.layout)?;
    let gens = generation::generations_dir(&engine.layout)?;
    let quarantine = engine.layout.dir(&format!("{LIB}/quarantine"), true)?;
    let stamp = engine.op_id.clone();
    let mut moved = 0;
    // Two foreign entries of the same name (in two generations) each get
    // their own quarantine name: the first free of NAME, NAME.1, NAME.2, ...
    let park = |dir: &crate::kernel::Dir, name: &str, moved: &mut usize| -> Result<()> {
        let base = format!("{stamp}.{}", name.replace('/', "_"));
        for k in 0..QUARANTINE_TRIES {
            let to = if k == 0 { base.clone() } else { format!("{base}.{k}") };
            match dir.rename_noreplace(name, &quarantine, &to) {
                Ok(()) => {
                    *moved += 1;
                    return Ok(());
                }
                Err(rustix::io::Errno::EXIST) => continue,
                Err(e) => {
                    return Err(crate::error::Error::io(
                        crate::error::ErrorId::Io,
                        format!("cannot quarantine {}", dir.show(name)),
                        e.into(),
                    ))
                }
            }
        }
        Err(crate::error::Error::new(
            crate::error::ErrorId::Io,
            format!("cannot quarantine {}: {QUARANTINE_TRIES} names taken in the quarantine", dir.show(name)),
        ))
    };
    for name in other {
        park(&gens, &name, &mut moved)?;
    }
    let active = generation::active(&engine.layout).ok().flatten();
    for n in numbers {
        let Ok(m) = generation::read_manifest(&engine.layout, n) else {
            // A generation whose manifest is damaged cannot be trusted or
            // verified: out of the way, with any profile pointer naming it
            // (repair has already flipped `active` to a fresh generation).
            if Some(n) != active {
                let gdir = gens.subdir(&n.to_string(), false)?;
                dismantle(&gdir, &mut |d, name| park(d, name, &mut moved))?;
                gens.remove_dir(&n.to_string())?;
                drop_profile_pointers(engine, n)?;
            }
            continue;
        };
        let gdir = gens.subdir(&n.to_string(), false)?;
        for name in gdir.list()? {
            if name != "bin" && name != generation::MANIFEST {
                park(&gdir, &name, &mut moved)?;
            }
        }
        match generation::tree_owner(&engine.layout, n)? {
            // Sharing another generation's links: that tree is checked as
            // its owner's (the same links by construction).
            Some(owner) if owner != n => continue,
            Some(_) => {}
            // No tree of ours: the generation cannot be trusted.
            None => {
                if Some(n) != active {
                    dismantle(&gdir, &mut |d, name| park(d, name, &mut moved))?;
                    gens.remove_dir(&n.to_string())?;
                    drop_profile_pointers(engine, n)?;
                }
                continue;
            }
        }
        let bin = gdir.subdir("bin", false)?;
        for name in bin.list()? {
            let ok =
                matches!((m.applets.get(&name), bin.entry(&name)?), (Some(p), Entry::Symlink(_, d)) if d == p.target);
            if !ok {
                park(&bin, &name, &mut moved)?;
            }
        }
        bin.sync(&mut engine.log)?;
        gdir.sync(&mut engine.log)?;
    }
    quarantine.sync(&mut engine.log)?;
    gens.sync(&mut engine.log)?;
    Ok(moved)
}

/// Removes the profile pointers that name generation `n`.
fn drop_profile_pointers(engine: &mut Engine, n: u64) -> Result<()> {
    let profiles = engine.layout.dir(&format!("{LIB}/profiles"), true)?;
    for p in [crate::model::state::Profile::Gnu, crate::model::state::Profile::Uutils] {
        if generation::profile_pointer(&engine.layout, p).ok().flatten() == Some(n) {
            profiles.remove_file(p.as_str())?;
        }
    }
    profiles.sync(&mut engine.log)
}

/// Empties a damaged generation: our symlinks and its manifest are removed,
/// anything else is handed to `park` (quarantine). Entry by entry, because
/// renaming a whole directory is not possible everywhere (overlayfs
/// without redirect_dir answers EXDEV).
fn dismantle(gdir: &crate::kernel::Dir, park: &mut dyn FnMut(&crate::kernel::Dir, &str) -> Result<()>) -> Result<()> {
    for name in gdir.list()? {
        match (name.as_str(), gdir.entry(&name)?) {
            ("bin", Entry::Directory(_)) => {
                let bin = gdir.subdir("bin", false)?;
                for entry in bin.list()? {
                    match bin.entry(&entry)? {
                        Entry::Symlink(..) => bin.remove_file(&entry)?,
                        _ => park(&bin, &entry)?,
                    }
                }
                gdir.remove_dir("bin")?;
            }
            ("bin", Entry::Symlink(_, dest)) if dest.starts_with("../") && dest.ends_with("/bin") => {
                gdir.remove_file(&name)?
            }
            (generation::MANIFEST, Entry::File(_)) => gdir.remove_file(&name)?,
            _ => park(gdir, &name)?,
        }
    }
    Ok(())
}

/// Moves pointers that are not ours (a file or directory where `active`,
/// `profiles` or `profiles/<p>` must be a symlink or a directory) into the
/// quarantine, so a rebuild can flip again. Returns how many were moved.
pub fn quarantine_pointers(engine: &mut Engine) -> Result<usize> {
    engine.require_lock()?;
    if generation::check_pointers(&engine.layout).is_ok() {
        return Ok(0);
    }
    let lib = engine.layout.lib(false)?;
    let quarantine = engine.layout.dir(&format!("{LIB}/quarantine"), true)?;
    let stamp = engine.op_id.clone();
    let mut moved = 0;
    let mut park = |dir: &crate::kernel::Dir, name: &str| -> Result<()> {
        dir.rename_noreplace(name, &quarantine, &format!("{stamp}.{name}")).map_err(|e| {
            crate::error::Error::io(
                crate::error::ErrorId::Io,
                format!("cannot quarantine {}", dir.show(name)),
                e.into(),
            )
        })?;
        moved += 1;
        Ok(())
    };
    if !matches!(lib.entry("active")?, Entry::Absent | Entry::Symlink(..)) {
        park(&lib, "active")?;
    }
    match lib.entry("profiles")? {
        Entry::Absent => {}
        Entry::Directory(_) => {
            let profiles = lib.subdir("profiles", false)?;
            for p in [crate::model::state::Profile::Gnu, crate::model::state::Profile::Uutils] {
                if !matches!(profiles.entry(p.as_str())?, Entry::Absent | Entry::Symlink(..)) {
                    park(&profiles, p.as_str())?;
                }
            }
            profiles.sync(&mut engine.log)?;
        }
        _ => park(&lib, "profiles")?,
    }
    lib.sync(&mut engine.log)?;
    quarantine.sync(&mut engine.log)?;
    Ok(moved)
}
