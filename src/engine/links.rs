//! `/usr/bin`: taking managed names over with our links, restoring the
//! pristine GNU files (`disable`, the pre-remove hooks), dropping names
//! GNU no longer ships, and purging our trees.

use std::collections::{BTreeMap, BTreeSet};

use super::generation;
use super::plan::{Plan, Source};
use crate::error::{Error, ErrorId, Result};
use crate::kernel::publish::remove_tree;
use crate::kernel::sidecar::{self, Prior};
use crate::kernel::takeover::{restore, take_over_many, Managed, Restored, TakeOver};
use crate::kernel::{Dir, Entry, SafePath};
use crate::model::layout::{managed_link, store_dir_name, Layout, LIB, STATE};
use crate::model::state::State;

use super::Engine;

impl Engine {
    /// Links every applet of `plan` to `active/bin/<applet>` (recording its
    /// prior state; the batch makes every sidecar durable before the first
    /// name changes), and restores managed names the plan no longer has.
    pub(super) fn link_all(&mut self, plan: &Plan, gnu_plan: &Plan) -> Result<()> {
        let bin = self.layout.bin()?;
        let sidecars = self.layout.dir(&format!("{STATE}/sidecars"), true)?;
        let mut backups: BTreeMap<String, Dir> = BTreeMap::new();
        let mut names: Vec<(&str, String, String)> = Vec::new();
        for applet in plan.applets.keys() {
            let Some(Source::Gnu { package, version }) = gnu_plan.applets.get(applet).map(|a| &a.source) else {
                return Err(Error::new(ErrorId::Ownership, format!("applet {applet} has no GNU package")));
            };
            let backup_path = format!("{LIB}/store/gnu/{}", store_dir_name(package, version));
            if !backups.contains_key(&backup_path) {
                let dir = self.layout.dir(&backup_path, true)?;
                backups.insert(backup_path.clone(), dir);
            }
            names.push((applet.as_str(), managed_link(applet), backup_path));
        }
        let items: Vec<TakeOver> = names
            .iter()
            .map(|(applet, link, backup_path)| TakeOver {
                name: applet,
                link,
                backup: &backups[backup_path],
                backup_path,
                backup_name: applet,
                known: self.observed.get(*applet),
            })
            .collect();
        let linked = take_over_many(&bin, &sidecars, &items, &mut self.log)?.iter().filter(|t| t.changed).count();
        let gone: Vec<String> = self.managed_names()?.into_iter().filter(|n| !plan.applets.contains_key(n)).collect();
        let (mut restored, mut dropped) = (0, Vec::new());
        for name in &gone {
            match self.shipped_no_more(&sidecars, name, gnu_plan)? {
                Some(package) => {
                    self.drop_managed(&bin, &sidecars, name)?;
                    dropped.push(format!("/usr/bin/{name} ({package})"));
                }
                None => {
                    self.restore_one(&bin, &sidecars, name)?;
                    restored += 1;
                }
            }
        }
        if !dropped.is_empty() {
            bin.sync(&mut self.log)?;
            sidecars.sync(&mut self.log)?;
            let text = format!("no longer shipped, left absent as pacman removed it: {}", dropped.join(", "));
            self.fact("drop", text, None, None, None);
        }
        let mut fact = self.base_fact(
            "link",
            format!("{linked} linked, {restored} restored (no longer managed), {} dropped", dropped.len()),
            None,
            None,
            None,
        );
        // take_over_many made every sidecar durable before the first name
        // changed, and every renamed name's directory after.
        fact.backup_durable = Some(true);
        self.emit(fact);
        Ok(())
    }

    /// The GNU package (`name-version` installed now) that used to ship
    /// the managed `name` and no longer does: the name was harvested from a
    /// configured family's GNU package, that package is still installed,
    /// and its file list no longer has it. pacman removed the name with the
    /// old file list; absence is pacman's intent. None for names we stop
    /// managing for other reasons (configuration, the package removed).
    pub(super) fn shipped_no_more(&self, sidecars: &Dir, name: &str, gnu_plan: &Plan) -> Result<Option<String>> {
        if gnu_plan.applets.contains_key(name) {
            return Ok(None);
        }
        let Some(sc) = sidecar::read(sidecars, name)? else { return Ok(None) };
        let Some((package, _)) = crate::engine::store::store_package(&sc.backup_dir) else { return Ok(None) };
        let configured = self.config.families.iter().any(|f| f.gnu_package == package);
        Ok(gnu_plan
            .packages
            .get(&package)
            .filter(|_| configured)
            .map(|version| format!("{package} {version} does not ship it")))
    }

    /// Stops managing a name its package no longer ships: our link goes
    /// (what pacman or another package put there stays), then its sidecar.
    /// A crash in between leaves the sidecar of an absent name, which the
    /// next run drops the same way.
    pub(super) fn drop_managed(&mut self, bin: &Dir, sidecars: &Dir, name: &str) -> Result<()> {
        if let Entry::Symlink(_, d) = bin.entry(name)? {
            if d == managed_link(name) {
                bin.remove_file(name)?;
            }
        }
        sidecars.remove_file(&sidecar::sidecar_name(name))
    }

    /// Reads every sidecar and checks that its name can be restored (our
    /// link, the prior state, or absent): a corrupt sidecar or a foreign
    /// entry is found before anything changes.
    pub fn check_sidecars(&self) -> Result<()> {
        let names = self.managed_names()?;
        if names.is_empty() {
            return Ok(());
        }
        let bin = self.layout.bin()?;
        let sidecars = self.layout.dir(&format!("{STATE}/sidecars"), false)?;
        for name in &names {
            let sc = sidecar::read(&sidecars, name)?
                .ok_or_else(|| Error::new(ErrorId::BackupMissing, format!("no sidecar for /usr/bin/{name}")))?;
            if !pacman_wrote(&bin, name)? {
                crate::kernel::takeover::check_restorable(&bin, name, &sc)?;
            }
        }
        Ok(())
    }

    /// The names that have a sidecar (the managed set).
    pub fn managed_names(&self) -> Result<Vec<String>> {
        if !self.opts.root.join(STATE).join("sidecars").is_dir() {
            return Ok(Vec::new());
        }
        let dir = self.layout.dir(&format!("{STATE}/sidecars"), false)?;
        Ok(dir.list()?.into_iter().filter_map(|n| n.strip_suffix(".json").map(str::to_string)).collect())
    }

    /// Restores one managed name from its sidecar, then drops the sidecar.
    /// A regular file already at the name is what pacman wrote over our
    /// link (an upgrade whose post hook did not finish): it is the pristine
    /// file now and is left alone.
    pub(super) fn restore_one(&mut self, bin: &Dir, sidecars: &Dir, name: &str) -> Result<Restored> {
        let sc = sidecar::read(sidecars, name)?
            .ok_or_else(|| Error::new(ErrorId::BackupMissing, format!("no sidecar for /usr/bin/{name}")))?;
        let before = bin.entry(name)?.kind();
        let r = self.restore_from(bin, sidecars, name, &sc)?;
        let after = bin.entry(name)?.kind();
        let reason = match r {
            Restored::Restored { .. } => "restored",
            Restored::AlreadyRestored => "idempotent_noop",
        };
        let mut fact =
            self.base_fact("restore", format!("/usr/bin/{name}: {before} -> {after} ({reason})"), None, None, None);
        (fact.before_kind, fact.after_kind, fact.reason) =
            (Some(before.to_string()), Some(after.to_string()), Some(reason.to_string()));
        self.emit(fact);
        Ok(r)
    }

    /// [`Engine::restore_one`]'s work, without its fact.
    fn restore_from(&mut self, bin: &Dir, sidecars: &Dir, name: &str, sc: &sidecar::Sidecar) -> Result<Restored> {
        if pacman_wrote(bin, name)? {
            sidecars.remove_file(&sidecar::sidecar_name(name))?;
            return Ok(Restored::AlreadyRestored);
        }
        let backup = match &sc.prior {
            Prior::File { .. } => self.layout.dir(&sc.backup_dir, false).map_err(|e| {
                Error::new(ErrorId::BackupMissing, format!("the store of /usr/bin/{name} is missing: {e}"))
            })?,
            _ => self.layout.dir(&format!("{LIB}/store"), true)?,
        };
        let m = Managed { bin, backup: &backup, backup_path: &sc.backup_dir, sidecars };
        let r = restore(&m, name, &mut self.log)?;
        sidecars.remove_file(&sidecar::sidecar_name(name))?;
        Ok(r)
    }

    /// The all-or-nothing check before any restore (`disable`, the
    /// pre-remove hooks, a GNU package leaving): for each of `names` (all
    /// managed names when `None`), the sidecar is readable, the name holds
    /// our link, its prior state or pacman's file, and a kept GNU copy is
    /// there with the sha256 its sidecar recorded. Every problem is named
    /// in one `E_BACKUP_MISSING` (or `E_OWNERSHIP`) error; nothing changed.
    pub fn restore_preflight(&self, names: Option<&[String]>) -> Result<()> {
        let managed = self.managed_names()?;
        let names: Vec<&String> = match names {
            Some(wanted) => wanted.iter().filter(|n| managed.contains(n)).collect(),
            None => managed.iter().collect(),
        };
        if names.is_empty() {
            return Ok(());
        }
        let bin = self.layout.bin()?;
        let sidecars = self.layout.dir(&format!("{STATE}/sidecars"), false)?;
        let mut kept = Vec::new();
        for name in names {
            let sc = sidecar::read(&sidecars, name)?
                .ok_or_else(|| Error::new(ErrorId::BackupMissing, format!("no sidecar for /usr/bin/{name}")))?;
            if pacman_wrote(&bin, name)? {
                continue;
            }
            crate::kernel::takeover::check_restorable(&bin, name, &sc)?;
            if let Prior::File { backup, sha256, .. } = &sc.prior {
                kept.push((name.clone(), sc.backup_dir.clone(), backup.clone(), sha256.clone()));
            }
        }
        // Hashing is the cost here: a few threads share it.
        let layout = &self.layout;
        let damaged: Vec<String> =
            crate::parallel::parallel_map(&kept, PREFLIGHT_THREADS, |(name, dir, backup, want)| {
                kept_copy_problem(layout, dir, backup, want).map(|why| format!("/usr/bin/{name}: {why}"))
            })
            .into_iter()
            .flatten()
            .collect();
        if damaged.is_empty() {
            return Ok(());
        }
        Err(Error::new(
            ErrorId::BackupMissing,
            format!(
                "{} kept GNU cop{} cannot be restored, nothing was changed: {} (run `oxidizr-hook verify --repair` to refetch them from the package cache)",
                damaged.len(),
                if damaged.len() == 1 { "y" } else { "ies" },
                damaged.join("; ")
            ),
        ))
    }

    /// `disable`, and the first half of oxidizr-arch's own removal: every
    /// managed name back to its pristine prior state with the operation's
    /// full shape — restore preflight (all or nothing), intent (a crash is
    /// finished by recovery: restoring is idempotent), restore, `active`
    /// removed, state committed (no profile, not degraded, no hold), intent
    /// cleared. Returns how many names were restored.
    pub fn disable(&mut self, state: &mut State) -> Result<usize> {
        self.restore_preflight(None)?;
        if self.opts.dry_run {
            return Ok(self.managed_names()?.len());
        }
        let active = generation::active(&self.layout).ok().flatten();
        self.record_intent(active, None, None)?;
        crate::kernel::crash::point("disable:after-intent");
        let n = self.restore_pristine()?;
        crate::kernel::crash::point("disable:after-restore");
        state.profile = None;
        state.degraded = None;
        state.held = None;
        self.save_state(state)?;
        self.clear_intent()?;
        Ok(n)
    }

    /// Restores every managed name to its pristine prior state and removes
    /// our pointers: afterwards `/usr/bin` holds pacman's files.
    pub fn restore_pristine(&mut self) -> Result<usize> {
        self.require_lock()?;
        // All or nothing: refuse before the first restore, not half-way.
        self.restore_preflight(None)?;
        let names = self.managed_names()?;
        let bin = self.layout.bin()?;
        let sidecars = self.layout.dir(&format!("{STATE}/sidecars"), true)?;
        for name in &names {
            self.restore_one(&bin, &sidecars, name)?;
        }
        sidecars.sync(&mut self.log)?;
        if self.layout.lib_exists() {
            let lib = self.layout.lib(false)?;
            lib.remove_file("active")?;
            lib.sync(&mut self.log)?;
        }
        Ok(names.len())
    }

    /// Restores the given managed names (those with a sidecar) to their
    /// pristine prior state. Returns how many were restored.
    pub fn restore_names(&mut self, names: &[String]) -> Result<usize> {
        self.require_lock()?;
        self.restore_preflight(Some(names))?;
        let managed: BTreeSet<String> = self.managed_names()?.into_iter().collect();
        let bin = self.layout.bin()?;
        let sidecars = self.layout.dir(&format!("{STATE}/sidecars"), true)?;
        let mut n = 0;
        for name in names.iter().filter(|n| managed.contains(*n)) {
            self.restore_one(&bin, &sidecars, name)?;
            n += 1;
        }
        sidecars.sync(&mut self.log)?;
        Ok(n)
    }

    /// Removes our trees (generations, profile pointers, store) after
    /// [`Engine::restore_pristine`]: every stored file is then a second link
    /// of a file back in `/usr/bin` or of a version pacman replaced.
    /// Refuses (`E_POLICY`) while any managed name remains.
    pub fn purge(&mut self) -> Result<()> {
        self.require_lock()?;
        if !self.managed_names()?.is_empty() {
            return Err(Error::new(ErrorId::Policy, "managed names remain: restore them before purging"));
        }
        if !self.layout.lib_exists() {
            return Ok(());
        }
        let lib = self.layout.lib(false)?;
        lib.remove_file("active")?;
        for tree in ["generations", "profiles", "store"] {
            if matches!(lib.entry(tree)?, Entry::Directory(_)) {
                remove_tree(&lib, tree)?;
            }
        }
        // An empty quarantine goes too; what repair quarantined is not ours
        // to delete and stays for the admin (pacman then keeps the directory).
        if matches!(lib.entry("quarantine")?, Entry::Directory(_))
            && lib.subdir("quarantine", false)?.list()?.is_empty()
        {
            lib.remove_dir("quarantine")?;
        }
        lib.sync(&mut self.log)?;
        drop(lib);
        // Our directory itself, when nothing is left in it (a quarantine
        // with content keeps it, for the admin).
        // Best effort: everything that matters is done, and a failure here
        // must not fail the removal of the package.
        let gone = self.layout.root.remove_empty_subtree(&SafePath::parse(LIB)?).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot remove our empty directory");
            false
        });
        let what = if gone { format!("removed /{LIB}") } else { "removed generations, profiles and store".to_string() };
        self.fact("purge", what, None, None, None);
        Ok(())
    }
}

/// Whether `/usr/bin/<name>` is a regular file: never ours (we only ever put
/// symlinks there), so pacman wrote it (or restore already put it back).
fn pacman_wrote(bin: &Dir, name: &str) -> Result<bool> {
    Ok(matches!(bin.entry(name)?, Entry::File(_)))
}

/// Threads that hash kept copies in the restore preflight.
const PREFLIGHT_THREADS: usize = 4;

/// Why the kept copy `dir/backup` cannot be restored (missing,
/// unreadable, other bytes than `sha256`), or `None` when it can.
fn kept_copy_problem(layout: &Layout, dir: &str, backup: &str, sha256: &str) -> Option<String> {
    let store = match layout.dir(dir, false) {
        Ok(d) => d,
        Err(e) => return Some(format!("its store directory is missing ({e})")),
    };
    let fd = match store.open_file(backup) {
        Ok(fd) => fd,
        Err(e) => return Some(format!("the kept copy {} is missing ({e})", store.show(backup))),
    };
    match crate::kernel::digest::sha256_fd(&fd, &store.show(backup)) {
        Ok(got) if got == sha256 => None,
        Ok(got) => Some(format!("the kept copy {} changed (sha256 {got}, expected {sha256})", store.show(backup))),
        Err(e) => Some(format!("the kept copy {} cannot be read ({e})", store.show(backup))),
    }
}
