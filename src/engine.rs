//! The engine: every mutating operation has the same shape (DESIGN.md §4):
//!
//! lock -> recover a pending intent -> plan -> preflight -> record intent ->
//! harvest -> build + smoke the candidate -> flip `active` -> link
//! `/usr/bin` -> smoke live -> commit state, clear intent, GC -> facts.
//!
//! The flip comes before the linking (DESIGN.md says link, then flip): a
//! link to `active/bin/<applet>` made before `active` names a generation
//! holding that applet would dangle (first `use`, or an applet new in this
//! package version). Flipping first keeps invariant 1 at every instant;
//! applets already linked still switch together at the flip (invariant 2).
//!
//! A failure after the flip rolls back: the previous generation if it
//! still passes smoke, else a fresh GNU generation, else the pristine GNU
//! files. Every step is idempotent, so `recover` can redo or undo it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::{Error, ErrorId, Result};
use crate::facts::{Fact, Facts, FACTS_SCHEMA};
use crate::generation::{self, Manifest};
use crate::intent::{Intent, INTENT_SCHEMA};
use crate::inventory::PackageDb;
use crate::kernel::publish::remove_tree;
use crate::kernel::sidecar::{self, Prior};
use crate::kernel::takeover::{restore, take_over_many, Known, Managed, Restored, TakeOver};
use crate::kernel::{Dir, Entry, FsyncLog, SafePath};
use crate::layout::{managed_link, store_dir_name, Layout, LIB, LOG, STATE};
use crate::plan::{self, Plan, Source};
use crate::smoke::{self, SmokeConfig, SmokeReport, SmokeTarget};
use crate::state::{now, HistoryEntry, Profile, State};
use crate::store;
use crate::verdict;

/// How an engine run is set up.
#[derive(Clone, Debug)]
pub struct Options {
    /// The installation root (pacman's `--root`).
    pub root: PathBuf,
    /// The package database (pacman's `--dbpath`).
    pub dbpath: PathBuf,
    /// pacman's configuration file, a path inside the root (pacman's
    /// `--config`); None: `/etc/pacman.conf`.
    pub pacman_config: Option<PathBuf>,
    /// Plan and preflight only; change nothing.
    pub dry_run: bool,
    /// Per-command smoke timeout.
    pub smoke_timeout: Duration,
    /// Generations kept by GC (besides the active one and profile pointers).
    pub keep_generations: usize,
    /// Carry passed smoke verdicts over to a candidate whose binaries are
    /// unchanged (same identity) instead of executing them again: on in the
    /// pacman hooks, off for the admin's own commands.
    pub reuse_smoke: bool,
}

/// What an apply did.
#[derive(Clone, Debug, PartialEq)]
pub enum Applied {
    /// The active generation already realizes the plan; links were checked.
    UpToDate {
        /// The active generation.
        generation: u64,
    },
    /// A new generation was built, flipped to and passed the live smoke.
    Switched {
        /// The generation active before.
        from: Option<u64>,
        /// The generation active now.
        to: u64,
        /// Applets backed by uutils.
        uutils: usize,
        /// All managed applets.
        applets: usize,
    },
    /// Dry run: the plan that would be realized.
    Planned(Plan),
}

/// What a new generation may take over from existing ones.
struct Reuse {
    /// The generation whose tree of links it shares (see `generation::build`).
    tree: Option<u64>,
    /// Candidate smoke reports whose verdicts it may carry over.
    verdicts: Vec<SmokeReport>,
}

/// One engine run: the operation's id, facts and fsync log.
pub struct Engine {
    /// The open installation.
    pub layout: Layout,
    /// The configuration.
    pub config: Config,
    /// The options.
    pub opts: Options,
    /// The operation's name (`use`, `post-transaction`, ...).
    pub operation: String,
    /// The operation id, shared by its facts.
    pub op_id: String,
    started: Instant,
    last_fact: Instant,
    /// Set once something ran on a degraded path (EXDEV copy, rollback).
    degraded: bool,
    /// What this run read of the regular files at managed names (preflight:
    /// inode flags and xattr names; harvest: sha256), so the link phase
    /// does not read them again; used only while a name is that very inode.
    observed: BTreeMap<String, Known>,
    facts: Facts,
    /// How long the operation waited for our lock and how many attempts it
    /// took, once it holds it (carried by every fact).
    lock: Option<(u64, u32)>,
    /// The rollback hold this run released, if any (said in one line).
    released: Option<u64>,
    /// Every fsync of this run.
    pub log: FsyncLog,
}

impl Engine {
    /// Opens the installation for `operation`. With `dry_run`, facts go to
    /// the journal only and nothing is created.
    pub fn new(opts: Options, config: Config, operation: &str) -> Result<Engine> {
        let layout = Layout::open(&opts.root)?;
        let facts = if opts.dry_run { Facts::journal_only() } else { Facts::open(layout.dir(LOG, true).ok().as_ref()) };
        let op_id = format!("{}-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"), std::process::id());
        Ok(Engine {
            layout,
            config,
            opts,
            operation: operation.to_string(),
            op_id,
            started: Instant::now(),
            last_fact: Instant::now(),
            degraded: false,
            observed: BTreeMap::new(),
            facts,
            lock: None,
            released: None,
            log: FsyncLog::default(),
        })
    }

    /// Records a fact (file + journal).
    pub fn fact(
        &mut self,
        stage: &str,
        decision: impl Into<String>,
        error: Option<ErrorId>,
        from: Option<u64>,
        to: Option<u64>,
    ) {
        let fact = Fact {
            schema: FACTS_SCHEMA,
            ts: now(),
            op_id: self.op_id.clone(),
            operation: self.operation.clone(),
            stage: stage.to_string(),
            decision: decision.into(),
            error_id: error,
            from_generation: from,
            to_generation: to,
            duration_ms: self.started.elapsed().as_millis() as u64,
            phase_us: self.last_fact.elapsed().as_micros() as u64,
            degraded: self.degraded,
            slow_fsync: self.log.has_slow(),
            lock_wait_ms: self.lock.map(|(ms, _)| ms),
            lock_attempts: self.lock.map(|(_, n)| n),
        };
        self.facts.emit(&fact);
        self.last_fact = Instant::now();
    }

    /// The generation whose rollback hold this run released (a new
    /// generation was committed over it), if any.
    pub fn released_hold(&self) -> Option<u64> {
        self.released
    }

    /// Records the wait for our lock, carried by every later fact.
    pub fn lock_waited(&mut self, waited: Duration, attempts: u32) {
        self.lock = Some((u64::try_from(waited.as_millis()).unwrap_or(u64::MAX), attempts));
    }

    /// Makes the facts durable (end of the operation).
    pub fn finish(&mut self) {
        self.facts.sync();
    }

    /// The state directory (created).
    pub fn state_dir(&self) -> Result<Dir> {
        self.layout.state(true)
    }

    /// Loads the state.
    pub fn load_state(&self) -> Result<State> {
        if !self.opts.root.join(STATE).is_dir() {
            return Ok(State::default());
        }
        State::load(&self.layout.state(false)?)
    }

    /// Saves the state durably.
    pub fn save_state(&mut self, state: &State) -> Result<()> {
        let dir = self.state_dir()?;
        state.save(&dir, &mut self.log)
    }

    fn smoke_config(&self) -> SmokeConfig {
        SmokeConfig { root: self.opts.root.clone(), timeout: self.opts.smoke_timeout, ..SmokeConfig::default() }
    }

    /// Runs the smoke suite on `targets` (paths inside the root).
    pub fn smoke(&self, targets: &[SmokeTarget], bin_dir: &str) -> SmokeReport {
        smoke::run(&self.smoke_config(), targets, Some(bin_dir))
    }

    /// Plans from the package database: (desired plan, all-GNU plan).
    pub fn plan(&self, profile: Profile, pins: &BTreeSet<String>) -> Result<(Plan, Plan)> {
        let db = PackageDb::open(&self.opts.root, &self.opts.dbpath)?;
        let inv = db.inventory(&self.config)?;
        Ok((plan::plan(&inv, profile, pins)?, plan::plan(&inv, Profile::Gnu, &BTreeSet::new())?))
    }

    /// Realizes `profile` (with the state's pins): the whole §4 shape.
    /// On failure the state is marked degraded before the error returns.
    /// With `force`, a new generation is built even when the active one
    /// claims to realize the plan (verify --repair after damage).
    pub fn apply(&mut self, state: &mut State, profile: Profile, force: bool) -> Result<Applied> {
        let (plan, gnu_plan) = self.plan(profile, &state.pins)?;
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
        self.preflight(&plan, &gnu_plan)?;
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
        let harvest = store::harvest_all(&self.layout, &store::gnu_sources(&gnu_plan), &mut self.log)?;
        self.degraded |= harvest.degraded > 0;
        for (applet, sha) in &harvest.sha256 {
            if let Some(k) = self.observed.get_mut(applet) {
                k.sha256 = Some(sha.clone());
            }
        }
        self.fact(
            "harvest",
            format!(
                "{} harvested, {} already stored, {} degraded",
                harvest.harvested, harvest.already, harvest.degraded
            ),
            None,
            active,
            None,
        );
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
    fn preflight(&mut self, plan: &Plan, gnu_plan: &Plan) -> Result<()> {
        if plan.applets.is_empty() {
            return Err(Error::new(
                ErrorId::Policy,
                "no GNU package of any configured family is installed: nothing to manage",
            ));
        }
        let bin = self.layout.bin()?;
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
        let manages_rescue_tool = plan.applets.keys().any(|a| crate::rescue::GNU_RESCUE.contains(&a.as_str()));
        if !self.opts.dry_run && manages_rescue_tool {
            let rescue = crate::rescue::check(&self.smoke_config(), &self.rescue_store_dirs(gnu_plan)?)?;
            self.fact("preflight", format!("rescue toolset: {rescue}"), None, None, None);
        } else if !self.opts.dry_run {
            self.fact(
                "preflight",
                "rescue toolset: not needed (no core tool is managed)".to_string(),
                None,
                None,
                None,
            );
        }
        Ok(())
    }

    /// The store directories the rescue check may find GNU tools in (paths
    /// inside the root): the installed GNU coreutils' first, then every
    /// other stored version.
    fn rescue_store_dirs(&self, gnu_plan: &Plan) -> Result<Vec<String>> {
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
    fn allocate(&mut self, state: &mut State) -> Result<u64> {
        let (existing, _) = generation::list(&self.layout)?;
        let n = state.next_generation.max(existing.last().map_or(1, |l| l + 1));
        state.next_generation = n + 1;
        self.save_state(state)?;
        Ok(n)
    }

    fn record_intent(&mut self, from: Option<u64>, to: Option<u64>, profile: Option<Profile>) -> Result<()> {
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

    fn clear_intent(&mut self) -> Result<()> {
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
    fn refresh_gnu_profile(
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
    fn build_gnu_profile(
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
    fn build_and_activate(
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
        self.fact(
            "flip",
            format!("active -> generations/{}", manifest.generation),
            None,
            before,
            Some(manifest.generation),
        );
        let plan = Plan {
            profile: manifest.profile,
            applets: manifest.applets.clone(),
            packages: manifest.packages.clone(),
            id: manifest.plan_id.clone(),
        };
        self.link_all(&plan, gnu_plan)?;
        crate::kernel::crash::point("engine:after-link");
        Ok(verdict::live(&self.smoke_config(), &manifest.applets, &manifest.smoke))
    }

    /// The generation owning `earlier`'s tree of links, when `earlier` links
    /// exactly the plan's applets to exactly the plan's targets (never under
    /// repair, `force`): a new generation for `plan` may share it.
    fn shared_tree(&self, earlier: Option<&Manifest>, plan: &Plan, force: bool) -> Result<Option<u64>> {
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
    fn reuse_for(&self, active: Option<&Manifest>, plan: &Plan, force: bool) -> Result<Reuse> {
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

    /// Links every applet of `plan` to `active/bin/<applet>` (recording its
    /// prior state; the batch makes every sidecar durable before the first
    /// name changes), and restores managed names the plan no longer has.
    fn link_all(&mut self, plan: &Plan, gnu_plan: &Plan) -> Result<()> {
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
        self.fact(
            "link",
            format!("{linked} linked, {restored} restored (no longer managed), {} dropped", dropped.len()),
            None,
            None,
            None,
        );
        Ok(())
    }

    /// The GNU package (`name-version` installed now) that used to ship
    /// the managed `name` and no longer does: the name was harvested from a
    /// configured family's GNU package, that package is still installed,
    /// and its file list no longer has it. pacman removed the name with the
    /// old file list; absence is pacman's intent. None for names we stop
    /// managing for other reasons (configuration, the package removed).
    fn shipped_no_more(&self, sidecars: &Dir, name: &str, gnu_plan: &Plan) -> Result<Option<String>> {
        if gnu_plan.applets.contains_key(name) {
            return Ok(None);
        }
        let Some(sc) = sidecar::read(sidecars, name)? else { return Ok(None) };
        let Some((package, _)) = crate::verify::store_package(&sc.backup_dir) else { return Ok(None) };
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
    fn drop_managed(&mut self, bin: &Dir, sidecars: &Dir, name: &str) -> Result<()> {
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
    fn restore_one(&mut self, bin: &Dir, sidecars: &Dir, name: &str) -> Result<Restored> {
        let sc = sidecar::read(sidecars, name)?
            .ok_or_else(|| Error::new(ErrorId::BackupMissing, format!("no sidecar for /usr/bin/{name}")))?;
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

    /// Restores every managed name to its pristine prior state and removes
    /// our pointers: afterwards `/usr/bin` holds pacman's files.
    pub fn restore_pristine(&mut self) -> Result<usize> {
        // All or nothing: refuse before the first restore, not half-way.
        self.check_sidecars()?;
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
        self.check_sidecars()?;
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

    /// `rollback`: the newest good generation older than the active one
    /// (see [`crate::state::older_good`]), with the whole shape: intent,
    /// flip + link, live smoke, the rollback chain when it fails, commit.
    /// The state then holds that generation (`held`). `E_POLICY` when
    /// there is nothing older. Returns (from, to, its profile).
    pub fn roll_back(&mut self, state: &mut State) -> Result<(u64, u64, Profile)> {
        let active = generation::active(&self.layout)?
            .ok_or_else(|| Error::new(ErrorId::Policy, "nothing is active: there is nothing to roll back"))?;
        let (existing, _) = generation::list(&self.layout)?;
        let target = crate::state::older_good(&state.history, active, &existing).ok_or_else(|| {
            Error::new(
                ErrorId::Policy,
                format!("nothing older to roll back to: generation {active} is the oldest good generation kept"),
            )
        })?;
        let manifest = generation::read_manifest(&self.layout, target)?;
        let (_, gnu_plan) = self.plan(manifest.profile, &state.pins)?;
        self.record_intent(Some(active), Some(target), Some(manifest.profile))?;
        crate::kernel::crash::point("rollback:after-intent");
        let live = self.activate(&manifest, &gnu_plan)?;
        if !live.passed {
            let err = generation::smoke_error(&format!("generation {target} through /usr/bin"), &live);
            self.fact("smoke-live", err.reason.clone(), Some(ErrorId::Smoke), Some(active), Some(target));
            let landed = self.rollback_chain(Some(active), target, &gnu_plan)?;
            let err = Error::new(ErrorId::Smoke, format!("{}; rolled back to {landed}", err.reason));
            state.degrade(err.id, err.reason.clone());
            self.save_state(state)?;
            self.clear_intent()?;
            self.fact("fail", err.reason.clone(), Some(err.id), Some(active), Some(target));
            return Err(err);
        }
        self.fact("smoke-live", "live smoke passed", None, Some(active), Some(target));
        self.commit(state, manifest.profile, target, true)?;
        self.fact("commit", format!("rolled back to generation {target} (held)"), None, Some(active), Some(target));
        Ok((active, target, manifest.profile))
    }

    /// Realizes a transitional plan (hooks: some uutils package is leaving)
    /// and returns the generation now active.
    pub fn transition(&mut self, state: &mut State, plan: &Plan, gnu_plan: &Plan) -> Result<u64> {
        match self.realize(state, plan, gnu_plan, false)? {
            Applied::UpToDate { generation } | Applied::Switched { to: generation, .. } => Ok(generation),
            Applied::Planned(_) => Err(Error::new(ErrorId::Policy, "a transition cannot be a dry run")),
        }
    }

    /// The rollback chain after a failed live smoke of generation `failed`:
    /// the previous generation if it still passes smoke, else a fresh GNU
    /// generation, else the pristine GNU files. Returns where it landed.
    fn rollback_chain(&mut self, from: Option<u64>, failed: u64, gnu_plan: &Plan) -> Result<String> {
        self.degraded = true;
        if let Some(p) = from.filter(|p| *p != failed) {
            if let Ok(m) = generation::read_manifest(&self.layout, p) {
                let report = self.activate(&m, gnu_plan)?;
                if report.passed {
                    self.fact("rollback", format!("back on generation {p}"), None, Some(failed), Some(p));
                    return Ok(format!("generation {p}"));
                }
            }
        }
        let (existing, _) = generation::list(&self.layout)?;
        let g = existing.last().copied().unwrap_or(failed).max(failed) + 1;
        let cfg = self.smoke_config();
        let smoke_fn = |t: &[SmokeTarget], bin: &str| smoke::run(&cfg, t, Some(bin));
        if let Ok(m) = generation::build(&self.layout, gnu_plan, g, BTreeMap::new(), &smoke_fn, &mut self.log, None) {
            if self.activate(&m, gnu_plan)?.passed {
                self.fact("rollback", format!("on a fresh GNU generation {g}"), None, Some(failed), Some(g));
                return Ok(format!("a fresh GNU generation {g}"));
            }
        }
        let n = self.restore_pristine()?;
        self.fact("rollback", format!("restored {n} pristine GNU files"), None, Some(failed), None);
        Ok("the pristine GNU files".to_string())
    }

    /// Commits generation `n`, whose live smoke passed: desired profile,
    /// history, degraded cleared, the rollback hold set (`hold`: a rollback,
    /// or the recovery of an interrupted one) or released, intent cleared,
    /// GC.
    fn commit(&mut self, state: &mut State, profile: Profile, n: u64, hold: bool) -> Result<()> {
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

    /// Recovers a pending intent (left by a crash): forward when its target
    /// generation is active and published, back to where it started
    /// otherwise. Leftover staging trees are removed. Idempotent.
    pub fn recover(&mut self, state: &mut State) -> Result<Option<String>> {
        let dir = self.state_dir()?;
        let Some(intent) = Intent::pending(&dir)? else { return Ok(None) };
        let active = generation::active(&self.layout).ok().flatten();
        self.sweep_staging()?;
        let outcome = match (intent.to_generation, intent.profile) {
            (Some(to), Some(profile)) if active == Some(to) && generation::read_manifest(&self.layout, to).is_ok() => {
                let (_, gnu_plan) = self.plan(profile, &state.pins)?;
                let m = generation::read_manifest(&self.layout, to)?;
                let live = self.activate(&m, &gnu_plan)?;
                if live.passed {
                    self.commit(state, profile, to, intent.operation == "rollback")?;
                    format!("finished the interrupted '{}' (generation {to})", intent.operation)
                } else {
                    let landed = self.rollback_chain(intent.from_generation, to, &gnu_plan)?;
                    state.degrade(
                        ErrorId::Smoke,
                        format!("generation {to} failed its live smoke; rolled back to {landed}"),
                    );
                    self.save_state(state)?;
                    format!("rolled the interrupted '{}' back to {landed}", intent.operation)
                }
            }
            (None, _) => {
                let n = self.restore_pristine()?;
                state.profile = None;
                self.save_state(state)?;
                format!("finished the interrupted '{}' ({n} pristine files)", intent.operation)
            }
            _ => self.recover_back(state, &intent)?,
        };
        self.clear_intent()?;
        self.fact("recover", outcome.clone(), None, intent.from_generation, intent.to_generation);
        Ok(Some(outcome))
    }

    /// Undoes an intent whose target never became active.
    fn recover_back(&mut self, state: &mut State, intent: &Intent) -> Result<String> {
        let profile = intent.profile.or(state.profile).unwrap_or(Profile::Gnu);
        let (_, gnu_plan) = self.plan(profile, &state.pins)?;
        match intent.from_generation.and_then(|f| generation::read_manifest(&self.layout, f).ok()) {
            Some(m) => {
                if self.activate(&m, &gnu_plan)?.passed {
                    return Ok(format!(
                        "rolled the interrupted '{}' back to generation {}",
                        intent.operation, m.generation
                    ));
                }
                // The generation it started from no longer passes (a binary
                // lost meanwhile): the rollback chain, and say so.
                let landed = self.rollback_chain(None, m.generation, &gnu_plan)?;
                let why = format!(
                    "generation {} failed its live smoke when the interrupted '{}' was undone; now on {landed}",
                    m.generation, intent.operation
                );
                state.degrade(ErrorId::Smoke, why.clone());
                self.save_state(state)?;
                Ok(why)
            }
            None => {
                let n = self.restore_pristine()?;
                Ok(format!("rolled the interrupted '{}' back to the pristine files ({n})", intent.operation))
            }
        }
    }

    /// Removes staging trees left by a crashed build.
    fn sweep_staging(&mut self) -> Result<()> {
        let (_, other) = generation::list(&self.layout)?;
        if other.is_empty() {
            return Ok(());
        }
        let gens = generation::generations_dir(&self.layout)?;
        for name in other.iter().filter(|n| n.starts_with(".oxidizr-tmp.")) {
            remove_tree(&gens, name)?;
        }
        gens.sync(&mut self.log)
    }

    /// Keeps the active generation, the profile pointers' and the newest
    /// `keep_generations`; removes the rest, then store directories that no
    /// kept generation and no sidecar references. Returns what was removed.
    pub fn gc(&mut self, state: &State) -> Result<Vec<String>> {
        let (numbers, _) = generation::list(&self.layout)?;
        // The newest `keep_generations` that were active (what `rollback`
        // can go back to): a generation built only for `profiles/gnu` does
        // not take a rollback's place.
        let was_active: BTreeSet<u64> = state.history.iter().map(|h| h.generation).collect();
        let mut keep: BTreeSet<u64> =
            numbers.iter().rev().filter(|n| was_active.contains(n)).take(self.opts.keep_generations).copied().collect();
        keep.extend(generation::active(&self.layout)?);
        for p in [Profile::Gnu, Profile::Uutils] {
            keep.extend(generation::profile_pointer(&self.layout, p).ok().flatten());
        }
        // A kept generation that shares another's links keeps that one too.
        let owners: Vec<u64> =
            keep.iter().filter_map(|n| generation::tree_owner(&self.layout, *n).ok().flatten()).collect();
        keep.extend(owners);
        let gens = generation::generations_dir(&self.layout)?;
        let mut removed = Vec::new();
        for n in numbers.iter().filter(|n| !keep.contains(n)) {
            remove_tree(&gens, &n.to_string())?;
            removed.push(format!("generation {n}"));
        }
        gens.sync(&mut self.log)?;
        removed.extend(self.gc_store(&keep)?);
        Ok(removed)
    }

    fn gc_store(&mut self, keep: &BTreeSet<u64>) -> Result<Vec<String>> {
        let mut referenced: BTreeSet<String> = BTreeSet::new();
        for n in keep {
            if let Ok(m) = generation::read_manifest(&self.layout, *n) {
                for a in m.applets.values() {
                    if let Some(dir) =
                        a.target.strip_prefix(&format!("/{LIB}/store/gnu/")).and_then(|r| r.split('/').next())
                    {
                        referenced.insert(dir.to_string());
                    }
                }
            }
        }
        let sidecars_dir = self.layout.dir(&format!("{STATE}/sidecars"), true)?;
        for name in self.managed_names()? {
            if let Some(sc) = sidecar::read(&sidecars_dir, &name)? {
                if let Some(dir) = sc.backup_dir.strip_prefix(&format!("{LIB}/store/gnu/")) {
                    referenced.insert(dir.to_string());
                }
            }
        }
        let gnu = self.layout.dir(&format!("{LIB}/store/gnu"), true)?;
        // Only directories named like ours (<gnu package>-<version>) are
        // ours to collect; anything else is left for verify to report.
        let ours = |d: &str| self.config.families.iter().any(|f| d.starts_with(&format!("{}-", f.gnu_package)));
        let mut removed = Vec::new();
        for dir in gnu.list()? {
            if ours(&dir) && !referenced.contains(&dir) && matches!(gnu.entry(&dir)?, Entry::Directory(_)) {
                remove_tree(&gnu, &dir)?;
                removed.push(format!("store {dir}"));
            }
        }
        gnu.sync(&mut self.log)?;
        Ok(removed)
    }
}

/// Whether `/usr/bin/<name>` is a regular file: never ours (we only ever put
/// symlinks there), so pacman wrote it (or restore already put it back).
fn pacman_wrote(bin: &Dir, name: &str) -> Result<bool> {
    Ok(matches!(bin.entry(name)?, Entry::File(_)))
}
