//! The apply pipeline: `use`, `pin`/`unpin`, the post hook and the
//! pre-transaction transitions realize a plan through the same stages —
//! preflight (all-or-nothing checks before the first change), intent,
//! harvest, build and candidate smoke, flip, link, live smoke, the
//! rollback chain on a failed live smoke, commit.

use std::collections::{BTreeMap, BTreeSet};

use super::generation::{self, Manifest};
use super::plan::{Plan, Source};
use super::store;
use crate::error::{Error, ErrorId, Result};
use crate::kernel::takeover::Known;
use crate::kernel::{Dir, Entry};
use crate::model::intent::{Intent, INTENT_SCHEMA};
use crate::model::layout::{managed_link, store_dir_name, LIB};
use crate::model::state::{now, HistoryEntry, Profile, State};
use crate::smoke::verdict;
use crate::smoke::{SmokeReport, SmokeTarget};

use super::{Applied, Engine, Reuse};

impl Engine {
    /// Realizes `profile` (with the state's pins): the whole §4 shape.
    /// On failure the state is marked degraded before the error returns.
    /// With `force`, a new generation is built even when the active one
    /// claims to realize the plan (verify --repair after damage).
    pub fn apply(&mut self, state: &mut State, profile: Profile, force: bool) -> Result<Applied> {
        let (plan, gnu_plan) = self.plan(profile, &state.pins)?;
        // The same all-or-nothing checks whichever applets the policy keeps
        // (preflight looks at every managed name and the rescue toolset).
        self.preflight(&plan, &gnu_plan)?;
        let plan = match profile {
            Profile::Uutils => self.apply_policy(state, plan, &gnu_plan)?,
            Profile::Gnu => {
                state.kept.clear();
                plan
            }
        };
        self.fact(
            "plan",
            format!(
                "plan {} for profile {}: {} applets, {} uutils",
                plan.id,
                profile.as_str(),
                plan.applets.len(),
                plan.uutils_count()
            ),
            None,
            None,
            None,
        );
        if self.opts.dry_run {
            return Ok(Applied::Planned(plan));
        }
        self.realize(state, &plan, &gnu_plan, force)
    }

    /// Makes `plan` the active generation (the §4 shape after planning):
    /// reuses the active generation when it already realizes the plan
    /// (unless `force`), else harvests, builds, smokes, flips, links, smokes
    /// live, and commits. On failure the state is marked degraded.
    pub fn realize(&mut self, state: &mut State, plan: &Plan, gnu_plan: &Plan, force: bool) -> Result<Applied> {
        let (plan, gnu_plan, profile) = (plan.clone(), gnu_plan.clone(), plan.profile);
        let active = generation::active(&self.layout)?;
        // Read once: the up-to-date check, the tree and the verdicts to reuse.
        let active_manifest = active.and_then(|n| generation::read_manifest(&self.layout, n).ok());
        if let Some(n) = active.filter(|_| !force) {
            if active_manifest.as_ref().is_some_and(|m| m.plan_id == plan.id) {
                self.link_all(&plan, &gnu_plan)?;
                self.commit(state, profile, n, false)?;
                self.fact(
                    "commit",
                    format!("generation {n} already realizes plan {}", plan.id),
                    None,
                    Some(n),
                    Some(n),
                );
                return Ok(Applied::UpToDate { generation: n });
            }
        }
        let gnu_sources = store::gnu_sources(&gnu_plan);
        let harvest = store::harvest_all(&self.layout, &gnu_sources, &mut self.log)?;
        self.degraded |= harvest.degraded > 0;
        let pacman = store::check_against_pacman(&self.opts.dbpath, &gnu_sources, &harvest)?;
        for (applet, sha) in &harvest.sha256 {
            if let Some(k) = self.observed.get_mut(applet) {
                k.sha256 = Some(sha.clone());
            }
        }
        let mut fact = self.base_fact(
            "harvest",
            format!(
                "{} harvested, {} already stored, {} degraded; {} match pacman's mtree, {} without a record",
                harvest.harvested, harvest.already, harvest.degraded, pacman.matched, pacman.unrecorded
            ),
            None,
            active,
            None,
        );
        fact.backup_durable = Some(true);
        self.emit(fact);
        let n = self.allocate(state)?;
        self.record_intent(active, Some(n), Some(profile))?;
        crate::kernel::crash::point("engine:after-intent");
        let reuse = self.reuse_for(active_manifest.as_ref(), &plan, force)?;
        let store_sha256 = harvest.sha256.clone();
        match self.build_and_activate(&plan, &gnu_plan, n, reuse, harvest.sha256, active) {
            Ok(built) => {
                if profile == Profile::Uutils {
                    self.refresh_gnu_profile(state, &gnu_plan, store_sha256, &built, force);
                }
                self.commit(state, profile, n, false)?;
                self.fact(
                    "commit",
                    format!("generation {n} active ({} applets, {} uutils)", plan.applets.len(), plan.uutils_count()),
                    None,
                    active,
                    Some(n),
                );
                Ok(Applied::Switched { from: active, to: n, uutils: plan.uutils_count(), applets: plan.applets.len() })
            }
            Err(e) => {
                state.profile = Some(profile);
                state.degrade(e.id, e.to_string());
                self.save_state(state)?;
                self.clear_intent()?;
                self.fact("fail", e.to_string(), Some(e.id), active, Some(n));
                Err(e)
            }
        }
    }

    /// Refuses early, changing nothing: rescue toolset, and every managed
    /// name is the GNU file, our link, or absent.
    pub(super) fn preflight(&mut self, plan: &Plan, gnu_plan: &Plan) -> Result<()> {
        if plan.applets.is_empty() {
            return Err(Error::new(
                ErrorId::Policy,
                "no GNU package of any configured family is installed: nothing to manage",
            ));
        }
        let bin = self.layout.bin()?;
        // The mounts must allow what we do: links written in /usr/bin, and
        // our tree written and executed from (nearest existing directory).
        super::mounts::check(&bin, super::mounts::Need::Write, "/usr/bin")?;
        let (ours, ours_shown) = self.nearest_of_lib()?;
        super::mounts::check(&ours, super::mounts::Need::WriteExec, &ours_shown)?;
        self.fs_types = Some(BTreeMap::from([
            ("/usr/bin".to_string(), super::mounts::fs_type(&bin)?),
            (ours_shown, super::mounts::fs_type(&ours)?),
        ]));
        for applet in plan.applets.keys() {
            match bin.entry(applet)? {
                // An immutable or append-only file is refused before the
                // harvest could fail on it half-way.
                Entry::File(meta) => {
                    let fd = bin.open_file(applet)?;
                    let flags = crate::kernel::flags::inode_flags(&fd)?;
                    crate::kernel::flags::ensure_mutable(flags, &bin.show(applet))?;
                    let xattrs = crate::kernel::copy::xattr_names(&fd)?;
                    let known =
                        Known { dev: meta.dev, ino: meta.ino, flags: Some(flags), xattrs: Some(xattrs), sha256: None };
                    self.observed.insert(applet.clone(), known);
                }
                Entry::Absent => {}
                Entry::Symlink(_, d) if d == managed_link(applet) => {}
                other => {
                    return Err(Error::new(
                        ErrorId::Ownership,
                        format!("/usr/bin/{applet} is a {} we did not create: refusing to manage it", other.kind()),
                    ))
                }
            }
        }
        // Every sidecar the link step will read must be readable now, and
        // the pointers the flip will replace must be ours: refused here,
        // not after the flip.
        self.check_sidecars()?;
        generation::check_pointers(&self.layout)?;
        // The rescue check executes binaries: a dry run stays pure. It
        // guards a way back for the core tools; when none of them is
        // managed (GNU coreutils replaced by another package, the family
        // unmanaged) there is nothing of theirs to switch or rescue.
        let manages_rescue_tool = plan.applets.keys().any(|a| crate::smoke::rescue::GNU_RESCUE.contains(&a.as_str()));
        let fs_types = self.fs_types.take();
        if !self.opts.dry_run && manages_rescue_tool {
            let (decision, error, profile, result) =
                match crate::smoke::rescue::check(&self.smoke_config(), &self.rescue_store_dirs(gnu_plan)?) {
                    Ok(rescue) => (format!("rescue toolset: {rescue}"), None, rescue.to_string(), Ok(())),
                    Err(e) => (e.to_string(), Some(e.id), "none".to_string(), Err(e)),
                };
            let mut fact = self.base_fact("preflight", decision, error, None, None);
            fact.rescue_profile = Some(profile);
            fact.fs_types = fs_types;
            self.emit(fact);
            result?;
        } else if !self.opts.dry_run {
            let mut fact = self.base_fact(
                "preflight",
                "rescue toolset: not needed (no core tool is managed)".to_string(),
                None,
                None,
                None,
            );
            fact.fs_types = fs_types;
            self.emit(fact);
        }
        Ok(())
    }

    /// Our tree, or its nearest existing parent (`/usr/lib`, `/usr`) before
    /// the first run, opened without creating anything; with its path for
    /// messages.
    fn nearest_of_lib(&self) -> Result<(Dir, String)> {
        let mut path = LIB.to_string();
        loop {
            if self.opts.root.join(&path).is_dir() {
                return Ok((self.layout.dir(&path, false)?, format!("/{path}")));
            }
            match path.rfind('/') {
                Some(i) => path.truncate(i),
                // /usr exists: /usr/bin was opened before.
                None => return Ok((self.layout.dir("usr", false)?, "/usr".to_string())),
            }
        }
    }

    /// The store directories the rescue check may find GNU tools in (paths
    /// inside the root): the installed GNU coreutils' first, then every
    /// other stored version.
    pub(super) fn rescue_store_dirs(&self, gnu_plan: &Plan) -> Result<Vec<String>> {
        let store = format!("/{LIB}/store/gnu");
        let mut dirs: Vec<String> = gnu_plan
            .applets
            .get("ls")
            .and_then(|a| match &a.source {
                Source::Gnu { package, version } => Some(format!("{store}/{}", store_dir_name(package, version))),
                Source::Uutils { .. } => None,
            })
            .into_iter()
            .collect();
        if self.opts.root.join(LIB).join("store/gnu").is_dir() {
            let mut others = self.layout.dir(&format!("{LIB}/store/gnu"), false)?.list()?;
            others.sort_by(|a, b| b.cmp(a));
            let others: Vec<String> =
                others.into_iter().map(|d| format!("{store}/{d}")).filter(|d| !dirs.contains(d)).collect();
            dirs.extend(others);
        }
        Ok(dirs)
    }

    /// The next free generation number (never reused, even after a crash).
    pub(super) fn allocate(&mut self, state: &mut State) -> Result<u64> {
        let (existing, _) = generation::list(&self.layout)?;
        let n = state.next_generation.max(existing.last().map_or(1, |l| l + 1));
        state.next_generation = n + 1;
        self.save_state(state)?;
        Ok(n)
    }

    pub(super) fn record_intent(&mut self, from: Option<u64>, to: Option<u64>, profile: Option<Profile>) -> Result<()> {
        self.require_lock()?;
        let intent = Intent {
            schema: INTENT_SCHEMA,
            op_id: self.op_id.clone(),
            operation: self.operation.clone(),
            from_generation: from,
            to_generation: to,
            profile,
            started: now(),
        };
        let dir = self.state_dir()?;
        intent.record(&dir, &mut self.log)
    }

    pub(super) fn clear_intent(&mut self) -> Result<()> {
        let dir = self.state_dir()?;
        Intent::clear(&dir, &mut self.log)
    }

    /// Keeps `profiles/gnu` naming a generation of the installed GNU
    /// versions while the uutils profile is active, so `canary` and the
    /// rollback chain run the GNU that pacman installed, and GC can free
    /// the store of older versions. Runs before the commit, while the
    /// operation's intent is pending: a crash here is recovered like one
    /// in the build (the staging tree is swept). Best effort: a failure
    /// leaves the old pointer, is recorded as a fact and printed, and does
    /// not undo the switch that already passed its live smoke.
    pub(super) fn refresh_gnu_profile(
        &mut self,
        state: &mut State,
        gnu_plan: &Plan,
        store_sha256: BTreeMap<String, String>,
        built: &Manifest,
        force: bool,
    ) {
        let current = generation::profile_pointer(&self.layout, Profile::Gnu).ok().flatten();
        let old = current.and_then(|g| generation::read_manifest(&self.layout, g).ok());
        if !force && old.as_ref().is_some_and(|m| m.applets == gnu_plan.applets) {
            return;
        }
        match self.build_gnu_profile(state, gnu_plan, store_sha256, built, old.as_ref(), force) {
            Ok((g, executed)) => {
                let text = format!("profiles/gnu -> generation {g} ({executed} checks executed)");
                self.fact("profile-gnu", text, None, current, Some(g));
            }
            Err(e) => {
                let text = format!("profiles/gnu not refreshed (still {current:?}): {}", e.reason);
                eprintln!("oxidizr-hook: warning: {text}");
                self.fact("profile-gnu", text, Some(e.id), current, None);
            }
        }
    }

    /// Builds and candidate-smokes a GNU generation for `gnu_plan`, then
    /// points `profiles/gnu` at it. The verdicts of the generation this very
    /// run just built are carried over for the same binaries (they were
    /// executed moments ago); in the hooks, so are the old GNU profile's.
    /// Returns the generation and how many checks it executed.
    pub(super) fn build_gnu_profile(
        &mut self,
        state: &mut State,
        gnu_plan: &Plan,
        store_sha256: BTreeMap<String, String>,
        built: &Manifest,
        old: Option<&Manifest>,
        force: bool,
    ) -> Result<(u64, usize)> {
        let g = self.allocate(state)?;
        let mut earlier = vec![built.smoke.clone()];
        if self.opts.reuse_smoke {
            earlier.extend(old.map(|m| m.smoke.clone()));
        }
        let shared = self.shared_tree(old, gnu_plan, force)?;
        let cfg = self.smoke_config();
        let smoke_fn = |t: &[SmokeTarget], bin: &str| verdict::candidate(&cfg, t, bin, &earlier, true);
        let m = generation::build(&self.layout, gnu_plan, g, store_sha256, &smoke_fn, &mut self.log, shared)?;
        crate::kernel::crash::point("engine:after-gnu-profile-build");
        generation::point_profile(&self.layout, Profile::Gnu, g, &mut self.log)?;
        let executed = m.smoke.applets.iter().chain(&m.smoke.behaviour).filter(|c| !c.reused).count();
        Ok((g, executed))
    }

    /// Builds generation `n` (with what it may reuse of earlier ones),
    /// smokes it as a candidate, then activates it; a failed live smoke
    /// runs the rollback chain and returns `E_SMOKE`. Returns the manifest
    /// of the generation now active.
    pub(super) fn build_and_activate(
        &mut self,
        plan: &Plan,
        gnu_plan: &Plan,
        n: u64,
        reuse: Reuse,
        sha: BTreeMap<String, String>,
        from: Option<u64>,
    ) -> Result<Manifest> {
        let cfg = self.smoke_config();
        let (shared, earlier) = (reuse.tree, reuse.verdicts);
        let carry = self.opts.reuse_smoke;
        let smoke_fn = |t: &[SmokeTarget], bin: &str| verdict::candidate(&cfg, t, bin, &earlier, carry);
        let manifest = generation::build(&self.layout, plan, n, sha, &smoke_fn, &mut self.log, shared)?;
        crate::kernel::crash::point("engine:after-build");
        let checks = manifest.smoke.applets.iter().chain(&manifest.smoke.behaviour);
        let (total, reused) = checks.fold((0, 0), |(t, r), c| (t + 1, r + usize::from(c.reused)));
        let links = shared.map(|m| format!(" (the links of generation {m})")).unwrap_or_default();
        self.fact(
            "smoke-candidate",
            format!(
                "generation {n}{links}: {total} checks passed ({} executed, {reused} unchanged binaries)",
                total - reused
            ),
            None,
            from,
            Some(n),
        );
        let live = self.activate(&manifest, gnu_plan)?;
        if live.passed {
            let executed = live.applets.iter().filter(|c| !c.reused).count();
            let text = format!(
                "live smoke passed: {} links resolve to the tested binaries, {executed} executed through /usr/bin",
                live.applets.len()
            );
            self.fact("smoke-live", text, None, from, Some(n));
            return Ok(manifest);
        }
        let err = generation::smoke_error(&format!("generation {n} through /usr/bin"), &live);
        self.fact("smoke-live", err.reason.clone(), Some(ErrorId::Smoke), from, Some(n));
        let landed = self.rollback_chain(from, n, gnu_plan)?;
        Err(Error::new(ErrorId::Smoke, format!("{}; rolled back to {landed}", err.reason)))
    }

    /// Flips to the generation, links every applet, runs the live smoke.
    pub fn activate(&mut self, manifest: &Manifest, gnu_plan: &Plan) -> Result<SmokeReport> {
        let before = generation::flip(&self.layout, manifest.generation, manifest.profile, &mut self.log)?;
        crate::kernel::crash::point("engine:after-flip");
        let mut fact = self.base_fact(
            "flip",
            format!("active -> generations/{}", manifest.generation),
            None,
            before,
            Some(manifest.generation),
        );
        // The generation flipped away from is still there (GC runs after the
        // commit): its manifest names its profile.
        fact.from_profile = before
            .and_then(|b| generation::read_manifest(&self.layout, b).ok())
            .map(|m| m.profile.as_str().to_string());
        fact.to_profile = Some(manifest.profile.as_str().to_string());
        self.emit(fact);
        let plan = Plan {
            profile: manifest.profile,
            applets: manifest.applets.clone(),
            packages: manifest.packages.clone(),
            id: manifest.plan_id.clone(),
        };
        self.link_all(&plan, gnu_plan)?;
        crate::kernel::crash::point("engine:after-link");
        // Best effort, never a failure: the outcome rides on the later facts.
        self.relabel = Some(super::mac::relabel(&super::mac::decide_here(&self.opts.root)));
        // Post-flip validation: every file capability recorded at harvest
        // is still on its kept file. A loss is damage to the store, not to
        // the flip (rolling back cannot give it back): said loudly, and
        // `verify` reports `capability-lost` until the package is reinstalled.
        let (checked, lost) = store::capabilities(self)?;
        if !lost.is_empty() {
            let text = lost.join("; ");
            self.fact("capabilities", text, Some(ErrorId::BackupMissing), before, Some(manifest.generation));
        } else if checked > 0 {
            let text = format!("{checked} file capabilities recorded at harvest are present after the flip");
            self.fact("capabilities", text, None, before, Some(manifest.generation));
        }
        let mut live = verdict::live(&self.smoke_config(), &manifest.applets, &manifest.smoke);
        if crate::kernel::crash::fault("live-smoke") {
            injected_failure(&mut live);
        }
        Ok(live)
    }

    /// The generation owning `earlier`'s tree of links, when `earlier` links
    /// exactly the plan's applets to exactly the plan's targets (never under
    /// repair, `force`): a new generation for `plan` may share it.
    pub(super) fn shared_tree(&self, earlier: Option<&Manifest>, plan: &Plan, force: bool) -> Result<Option<u64>> {
        let same_links = |m: &Manifest| {
            m.applets.len() == plan.applets.len()
                && m.applets.iter().all(|(applet, p)| plan.applets.get(applet).is_some_and(|q| q.target == p.target))
        };
        match earlier.filter(|m| !force && same_links(m)) {
            Some(m) => generation::tree_owner(&self.layout, m.generation),
            None => Ok(None),
        }
    }

    /// What a new generation for `plan` may reuse: the active generation's
    /// tree of links when it links exactly the plan's applets to exactly the
    /// plan's targets (never under repair, `force`), and, in the hooks, the
    /// candidate verdicts of the active and the profile generations.
    pub(super) fn reuse_for(&self, active: Option<&Manifest>, plan: &Plan, force: bool) -> Result<Reuse> {
        let tree = self.shared_tree(active, plan, force)?;
        let mut verdicts = Vec::new();
        if self.opts.reuse_smoke {
            verdicts.extend(active.map(|m| m.smoke.clone()));
            let others: BTreeSet<u64> = [Profile::Gnu, Profile::Uutils]
                .iter()
                .filter_map(|p| generation::profile_pointer(&self.layout, *p).ok().flatten())
                .filter(|n| Some(*n) != active.map(|m| m.generation))
                .collect();
            verdicts.extend(
                others.into_iter().filter_map(|n| generation::read_manifest(&self.layout, n).ok()).map(|m| m.smoke),
            );
        }
        Ok(Reuse { tree, verdicts })
    }

    /// Realizes a transitional plan (hooks: some uutils package is leaving)
    /// and returns the generation now active.
    pub fn transition(&mut self, state: &mut State, plan: &Plan, gnu_plan: &Plan) -> Result<u64> {
        // The same all-or-nothing checks as `use`, before `active` moves.
        self.preflight(plan, gnu_plan)?;
        match self.realize(state, plan, gnu_plan, false)? {
            Applied::UpToDate { generation } | Applied::Switched { to: generation, .. } => Ok(generation),
            Applied::Planned(_) => Err(Error::new(ErrorId::Policy, "a transition cannot be a dry run")),
        }
    }

    /// Commits generation `n`, whose live smoke passed: desired profile,
    /// history, degraded cleared, the rollback hold set (`hold`: a rollback,
    /// or the recovery of an interrupted one) or released, intent cleared,
    /// GC.
    pub(super) fn commit(&mut self, state: &mut State, profile: Profile, n: u64, hold: bool) -> Result<()> {
        if let Some(h) = state.held.filter(|h| *h != n && !hold) {
            self.fact("release", format!("the rollback hold on generation {h} is released"), None, Some(h), Some(n));
            self.released = Some(h);
        }
        state.held = hold.then_some(n);
        state.profile = Some(profile);
        state.degraded = None;
        if state.history.last().map(|h| h.generation) != Some(n) {
            state.record(HistoryEntry {
                generation: n,
                profile,
                operation: self.operation.clone(),
                at: now(),
                smoke_passed: true,
            });
        }
        self.save_state(state)?;
        crate::kernel::crash::point("engine:after-state");
        self.clear_intent()?;
        crate::kernel::crash::point("engine:after-clear-intent");
        self.gc(state)?;
        Ok(())
    }
}

/// Test-only (`OXIDIZR_FAULT_AT=live-smoke`): the live smoke reports one
/// failed check, so the operation's failure path runs for real.
fn injected_failure(report: &mut SmokeReport) {
    report.passed = false;
    report.applets.push(crate::smoke::CheckResult {
        name: "fault-injection".into(),
        passed: false,
        detail: "a live-smoke failure injected by OXIDIZR_FAULT_AT".into(),
        duration_ms: 0,
        binaries: BTreeMap::new(),
        reused: false,
    });
}
