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

mod apply;
pub mod bootgate;
pub mod debris;
mod gc;
pub mod generation;
mod links;
pub mod lock;
pub mod mac;
pub mod mounts;
pub mod plan;
mod policy;
mod recover;
mod rollback;
pub mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorId, Result};
use crate::kernel::takeover::Known;
use crate::kernel::{Dir, FsyncLog};
use crate::model::config::Config;
use crate::model::facts::{Fact, Facts, FACTS_SCHEMA};
use crate::model::layout::{Layout, LOG, STATE};
use crate::model::state::{now, Profile, State};
use crate::pacman::inventory::PackageDb;
use crate::smoke::{self, SmokeConfig, SmokeReport, SmokeTarget};
use lock::{LockGuard, LockMode};
use plan::Plan;

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
    /// Our exclusive lock, once [`Engine::hold`] gave it: the right to
    /// mutate. Every mutating stage checks it ([`Engine::require_lock`]);
    /// dropping the engine releases it.
    guard: Option<LockGuard>,
    /// The rollback hold this run released, if any (said in one line).
    released: Option<u64>,
    /// Every fsync of this run.
    pub log: FsyncLog,
    /// The filesystem types preflight found, for its fact.
    fs_types: Option<BTreeMap<String, String>>,
    /// What was done about SELinux labels after this run's last flip.
    relabel: Option<String>,
    /// Lines for the operation's output: each applet the policy keeps on
    /// GNU, or switches only by the admin's override.
    notes: Vec<String>,
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
            guard: None,
            released: None,
            log: FsyncLog::default(),
            fs_types: None,
            relabel: None,
            notes: Vec::new(),
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
        let fact = self.base_fact(stage, decision, error, from, to);
        self.emit(fact);
    }

    /// Records a fact built by [`Engine::base_fact`] and completed by the caller.
    fn emit(&mut self, fact: Fact) {
        self.facts.emit(&fact);
        self.last_fact = Instant::now();
    }

    /// A fact with the fields every fact carries (times, flags, lock,
    /// fsync, relabel); the caller may add the optional ones.
    fn base_fact(
        &self,
        stage: &str,
        decision: impl Into<String>,
        error: Option<ErrorId>,
        from: Option<u64>,
        to: Option<u64>,
    ) -> Fact {
        let (fsync_ms, severity) = crate::model::facts::fsync_fields(&self.log);
        Fact {
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
            fsync_ms,
            severity,
            relabel: self.relabel.clone(),
            ..Fact::default()
        }
    }

    /// The lines this run has for the admin (the policy's decisions), once.
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// The generation whose rollback hold this run released (a new
    /// generation was committed over it), if any.
    pub fn released_hold(&self) -> Option<u64> {
        self.released
    }

    /// Takes our exclusive lock: the engine now owns the right to mutate
    /// (until it is dropped); the wait is carried by every later fact.
    pub fn hold(&mut self, guard: LockGuard) -> Result<()> {
        if guard.mode != LockMode::Exclusive {
            return Err(Error::new(ErrorId::Locking, "a shared lock gives no right to mutate"));
        }
        self.lock = Some((u64::try_from(guard.waited.as_millis()).unwrap_or(u64::MAX), guard.attempts));
        self.guard = Some(guard);
        Ok(())
    }

    /// `E_LOCKING` unless this engine holds our exclusive lock: called by
    /// every stage that changes the disk (intent, state, debris, GC,
    /// restore, purge, repairs), so no code path mutates without it.
    pub fn require_lock(&self) -> Result<()> {
        if self.guard.is_some() {
            return Ok(());
        }
        Err(Error::new(
            ErrorId::Locking,
            format!("internal error: '{}' tried to change the disk without holding the lock", self.operation),
        ))
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
        self.require_lock()?;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(root: &std::path::Path) -> Engine {
        let opts = Options {
            root: root.to_path_buf(),
            dbpath: root.join("var/lib/pacman"),
            pacman_config: None,
            dry_run: false,
            smoke_timeout: Duration::from_secs(5),
            keep_generations: 3,
            reuse_smoke: false,
        };
        Engine::new(opts, Config::default(), "test").unwrap()
    }

    #[test]
    fn no_stage_mutates_without_the_exclusive_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let mut e = engine(tmp.path());
        assert_eq!(e.require_lock().unwrap_err().id, ErrorId::Locking);
        assert_eq!(e.save_state(&State::default()).unwrap_err().id, ErrorId::Locking);
        assert_eq!(e.sweep_debris().unwrap_err().id, ErrorId::Locking);
        assert!(
            !tmp.path().join(STATE).join(crate::model::state::STATE_FILE).exists(),
            "state written without the lock"
        );
        let dir = e.layout.state(true).unwrap();
        let shared = lock::Lock::open(&dir).unwrap().acquire(LockMode::Shared, Duration::from_millis(50)).unwrap();
        assert_eq!(e.hold(shared).unwrap_err().id, ErrorId::Locking, "a shared lock is no right to mutate");
        let exclusive =
            lock::Lock::open(&dir).unwrap().acquire(LockMode::Exclusive, Duration::from_millis(50)).unwrap();
        e.hold(exclusive).unwrap();
        e.require_lock().unwrap();
        e.save_state(&State::default()).unwrap();
    }
}
