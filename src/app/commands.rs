//! The admin commands: each one parses nothing (clap did), takes the lock,
//! recovers, runs the engine, and renders `==>` text or `--json`.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;

use crate::app::cli::{Command, GlobalOpts};
use crate::app::status;
use crate::engine::generation;
use crate::engine::lock::{check_wait, Lock, LockMode};
use crate::engine::plan::{Plan, Source};
use crate::engine::{Applied, Engine, Options};
use crate::error::{Error, ErrorId, Result};
use crate::model::config::Config;
use crate::model::layout::LIB;
use crate::model::output::Output;
use crate::model::policy::{Kept, KeptBy};
use crate::model::state::{Profile, State};
use crate::pacman::dblock::{pacman_lock_is_ours, pacman_running_in, PacmanLock};
use crate::pacman::inventory::PackageDb;
use crate::verify;

/// Runs one command.
pub fn run(g: &GlobalOpts, command: &Command) -> Result<Output> {
    match command {
        Command::Status => cmd_status(g),
        Command::Use { profile, dry_run, policy } => mutate(g, "use", *dry_run, |e, s| {
            s.policy = *policy;
            apply_profile(e, s, *profile, false)
        }),
        Command::Compat { policy, applets } => {
            let config = Config::load(&g.root)?;
            let engine = Engine::new(options(g, &config, true), config, "compat")?;
            crate::app::compat::cmd_compat(engine, *policy, applets)
        }
        Command::Pin { applets, dry_run } => mutate(g, "pin", *dry_run, |e, s| pin(e, s, applets, true)),
        Command::Unpin { applets, dry_run } => mutate(g, "unpin", *dry_run, |e, s| pin(e, s, applets, false)),
        Command::PreTransaction { operation } => {
            let targets = crate::pacman::hook::read_targets(&mut std::io::stdin().lock())?;
            in_hook(g, "pre-transaction", |e, s| crate::pacman::hook::pre_transaction(e, s, *operation, &targets))
        }
        Command::PostTransaction => {
            let targets = crate::pacman::hook::read_targets(&mut std::io::stdin().lock())?;
            in_hook(g, "post-transaction", |e, s| crate::pacman::hook::post_transaction(e, s, &targets))
        }
        Command::Rollback => mutate(g, "rollback", false, rollback),
        Command::Verify { repair: false } => cmd_verify(g),
        Command::Verify { repair: true } => mutate(g, "verify --repair", false, repair),
        Command::Disable => mutate(g, "disable", false, disable),
        Command::Canary { shell, command } => canary(g, *shell, command),
        Command::BootGate => boot_gate(g),
        Command::Generations => cmd_generations(g),
        Command::Gc => mutate(g, "gc", false, |e, state| {
            let removed = e.gc(state)?;
            Ok(Output::new(
                format!("==> gc: removed {}\n", if removed.is_empty() { "nothing".into() } else { removed.join(", ") }),
                json!({ "removed": removed }),
            ))
        }),
    }
}

fn options(g: &GlobalOpts, config: &Config, dry_run: bool) -> Options {
    Options {
        root: g.root.clone(),
        dbpath: g.dbpath(),
        pacman_config: g.config.clone(),
        dry_run,
        smoke_timeout: Duration::from_secs(g.smoke_timeout.unwrap_or(config.smoke_timeout_secs)),
        keep_generations: config.keep_generations,
        reuse_smoke: false,
    }
}

/// The hook entry points: the same shape as [`mutate`], but they run inside
/// pacman's transaction, so pacman's `db.lck` is expected, not refused.
///
/// Never used (no state file): nothing to do and nothing is created, so
/// installing the package changes nothing until the admin runs `use`.
fn in_hook(
    g: &GlobalOpts,
    operation: &str,
    f: impl FnOnce(&mut Engine, &mut State) -> Result<Output>,
) -> Result<Output> {
    if std::fs::symlink_metadata(g.root.join(crate::model::layout::STATE).join(crate::model::state::STATE_FILE))
        .is_err()
    {
        let text = "==> oxidizr-arch: not enabled (run 'oxidizr-hook use uutils' to switch)\n".to_string();
        return Ok(Output::new(text, json!({ "message": "oxidizr-arch: not enabled" })));
    }
    locked(g, operation, false, true, f)
}

/// The shape of every mutating command: refuse while pacman runs, lock
/// (bounded wait), recover a pending intent, run `f`, make facts durable.
fn mutate(
    g: &GlobalOpts,
    operation: &str,
    dry_run: bool,
    f: impl FnOnce(&mut Engine, &mut State) -> Result<Output>,
) -> Result<Output> {
    locked(g, operation, dry_run, false, f)
}

fn locked(
    g: &GlobalOpts,
    operation: &str,
    dry_run: bool,
    hook: bool,
    f: impl FnOnce(&mut Engine, &mut State) -> Result<Output>,
) -> Result<Output> {
    let config = Config::load(&g.root)?;
    let lock_wait = lock_wait(g, &config)?;
    let opts = Options { reuse_smoke: hook && config.reuse_smoke_verdicts, ..options(g, &config, dry_run) };
    let mut engine = Engine::new(opts, config, operation)?;
    if dry_run {
        let mut state = engine.load_state()?;
        let mut out = f(&mut engine, &mut state)?;
        out.text = with_notes(engine.take_notes(), out.text);
        return Ok(out);
    }
    let guard = Lock::open(&engine.state_dir()?)?.acquire(LockMode::Exclusive, lock_wait)?;
    // An admin mutation holds pacman's lock too, for its whole duration:
    // a pacman transaction started meanwhile refuses to run. The hooks run
    // inside pacman's transaction, which holds it already.
    let pacman = if hook { None } else { Some(PacmanLock::take(&g.dbpath())?) };
    engine.hold(guard)?;
    let reclaimed = pacman.as_ref().is_some_and(|p| p.reclaimed);
    if reclaimed {
        let text = format!("removed {}/db.lck, left by an oxidizr-hook that crashed", g.dbpath().display());
        engine.fact("lock", text, None, None, None);
    }
    let mut state = engine.load_state()?;
    let recovered = engine.recover(&mut state)?;
    let result = f(&mut engine, &mut state);
    engine.finish();
    let mut out = result?;
    out.text = with_notes(engine.take_notes(), out.text);
    if let Some(h) = engine.released_hold() {
        out.text = format!("==> released the rollback to generation {h}: a new generation was built\n{}", out.text);
    }
    if let Some(r) = recovered {
        out.text = format!("==> recovered: {r}\n{}", out.text);
    }
    if reclaimed {
        out.text = format!("==> removed a stale db.lck left by an oxidizr-hook that crashed\n{}", out.text);
    }
    Ok(out)
}

/// The engine's lines for the admin (one per applet the policy keeps on
/// GNU) before the command's own output.
fn with_notes(notes: Vec<String>, text: String) -> String {
    notes.into_iter().map(|n| n + "\n").chain(std::iter::once(text)).collect()
}

fn apply_profile(e: &mut Engine, s: &mut State, profile: Profile, force: bool) -> Result<Output> {
    let mut out = match e.apply(s, profile, force)? {
        Applied::Planned(plan) => render_plan(&plan),
        Applied::UpToDate { generation } => Output::new(
            format!("==> profile {} already active (generation {generation})\n", profile.as_str()),
            json!({ "result": "up-to-date", "profile": profile, "generation": generation }),
        ),
        Applied::Switched { from, to, uutils, applets } => Output::new(
            format!(
                "==> profile {} active: generation {to} ({applets} applets, {uutils} from uutils)\n",
                profile.as_str()
            ),
            json!({ "result": "switched", "profile": profile, "from": from, "to": to, "applets": applets, "uutils": uutils }),
        ),
    };
    if profile == Profile::Uutils {
        out.json["policy"] = json!(e.policy(s));
        out.json["kept"] = json!(kept_on_gnu(s));
        out.json["overrides"] = json!(s.overrides);
    }
    Ok(out)
}

/// The dry-run rendering: deterministic (no times, no ids but the plan's).
pub fn render_plan(plan: &Plan) -> Output {
    let mut text = format!(
        "==> plan {}: profile {}, {} applets ({} uutils, {} GNU)\n",
        plan.id,
        plan.profile.as_str(),
        plan.applets.len(),
        plan.uutils_count(),
        plan.applets.len() - plan.uutils_count()
    );
    for (applet, p) in &plan.applets {
        let (kind, package, version) = match &p.source {
            Source::Gnu { package, version } => ("gnu", package, version),
            Source::Uutils { package, version } => ("uutils", package, version),
        };
        text.push_str(&format!("  {applet} -> {} ({kind}: {package} {version})\n", p.target));
    }
    Output::new(text, json!({ "dry_run": true, "plan": plan }))
}

fn pin(e: &mut Engine, s: &mut State, applets: &[String], add: bool) -> Result<Output> {
    for a in applets {
        crate::kernel::name::check_component(a)
            .map_err(|why| Error::new(ErrorId::Policy, format!("invalid applet name '{}': {why}", a.escape_debug())))?;
    }
    let mut next = s.pins.clone();
    let mut overrides = s.overrides.clone();
    for a in applets {
        if add {
            next.insert(a.clone());
            overrides.remove(a);
        } else {
            next.remove(a);
            // Unpinning an applet the policy keeps on GNU overrides the
            // policy for it: the admin asked for it to follow the profile.
            if s.kept.contains_key(a) {
                overrides.insert(a.clone());
            }
        }
    }
    let verb = if add { "pinned to GNU" } else { "unpinned" };
    let mut probe = s.clone();
    probe.pins = next.clone();
    probe.overrides = overrides.clone();
    let Some(profile) = s.profile else {
        if !e.opts.dry_run {
            s.pins = next;
            s.overrides = overrides;
            e.save_state(s)?;
        }
        let prefix = if e.opts.dry_run { "dry run: would be " } else { "" };
        return Ok(Output::new(
            format!("==> {prefix}{verb}: {} (no profile active: nothing to rebuild)\n", applets.join(" ")),
            json!({ "dry_run": e.opts.dry_run, "pins": probe.pins }),
        ));
    };
    if e.opts.dry_run {
        return apply_profile(e, &mut probe, profile, false);
    }
    s.pins = next;
    s.overrides = overrides;
    e.save_state(s)?;
    let mut out = apply_profile(e, s, profile, false)?;
    out.text = format!("==> {verb}: {}\n{}", applets.join(" "), out.text);
    Ok(out)
}

fn rollback(e: &mut Engine, s: &mut State) -> Result<Output> {
    let (from, to, profile) = e.roll_back(s)?;
    Ok(Output::new(
        format!(
            "==> rolled back to generation {to} (profile {}); held until the next use, pin, repair or package change\n",
            profile.as_str()
        ),
        json!({ "result": "rolled-back", "from": from, "to": to, "profile": profile, "held": true }),
    ))
}

/// `boot-gate`: never used (no state file) is "not enabled" and changes
/// nothing, like the hooks; otherwise the engine's gate under our lock, in
/// the shape of every mutating command (see [`crate::engine::bootgate`]).
fn boot_gate(g: &GlobalOpts) -> Result<Output> {
    if std::fs::symlink_metadata(g.root.join(crate::model::layout::STATE).join(crate::model::state::STATE_FILE))
        .is_err()
    {
        return Ok(Output::new(
            "==> boot gate: oxidizr-arch not enabled\n".to_string(),
            json!({ "result": "not-enabled" }),
        ));
    }
    let fallback = Config::load(&g.root)?.boot_fallback;
    mutate(g, "boot-gate", false, |e, s| {
        use crate::engine::bootgate::GateOutcome;
        Ok(match e.boot_gate(s, fallback)? {
            GateOutcome::NothingActive => Output::new(
                "==> boot gate: no generation is active (the GNU files): nothing to check\n".to_string(),
                json!({ "result": "nothing-active" }),
            ),
            GateOutcome::Passed { generation } => Output::new(
                format!("==> boot gate: generation {generation} passed its live check\n"),
                json!({ "result": "passed", "generation": generation }),
            ),
            GateOutcome::FailedReported { generation, reason } => Output {
                code: 1,
                ..Output::new(
                format!("==> boot gate: generation {generation} FAILED its live check: {reason}\n==> boot_fallback = false: no fall-back\n"),
                json!({ "result": "failed", "generation": generation, "reason": reason, "fell_back": false }),
                )
            },
            GateOutcome::FellBack { from, landed, reason } => Output::new(
                format!("==> boot gate: generation {from} FAILED its live check: {reason}\n==> fell back to {landed}; state marked degraded\n"),
                json!({ "result": "fell-back", "from": from, "landed": landed, "reason": reason, "fell_back": true }),
            ),
        })
    })
}

fn disable(e: &mut Engine, s: &mut State) -> Result<Output> {
    let n = e.disable(s)?;
    e.fact("commit", format!("disabled: {n} pristine files restored"), None, None, None);
    Ok(Output::new(
        format!("==> disabled: {n} pristine GNU files restored, our links removed\n"),
        json!({ "result": "disabled", "restored": n }),
    ))
}

fn repair(e: &mut Engine, s: &mut State) -> Result<Output> {
    let before = verify::check(e, s)?;
    let mut actions = Vec::new();
    let mut refetched = Vec::new();
    if !before.is_empty() {
        // Our directories back to mode 0755 (a hardened umask, a chmod by
        // hand): every user reaches the commands again (invariant 7).
        actions.extend(verify::repair::repair_modes(e)?);
        // Damaged stored GNU binaries first, from pacman's package cache, so
        // the rebuilt generation records their healed digests.
        if before.iter().any(|p| p.code == "store-damaged" || p.code == "store-not-pacmans") {
            refetched = verify::repair::refetch_store(e)?;
            actions.extend(refetched.iter().map(verify::repair::Refetch::line));
        }
        let pointers = verify::repair::quarantine_pointers(e)?;
        if pointers > 0 {
            actions.push(format!("quarantined {pointers} foreign pointers in /{LIB}/quarantine"));
        }
        match s.profile {
            Some(profile) => {
                e.apply(s, profile, true)?;
                actions.push(format!("rebuilt profile {}", profile.as_str()));
            }
            None => {
                let n = e.restore_pristine()?;
                actions.push(format!("restored {n} pristine files"));
            }
        }
        let moved = verify::repair::quarantine_foreign(e)?;
        if moved > 0 {
            actions.push(format!("quarantined {moved} foreign entries in /{LIB}/quarantine"));
        }
        e.gc(s)?;
    }
    let after = verify::check(e, s)?;
    let mut out = render_verify(&after);
    out.text = format!(
        "==> repair: {} problem(s) found{}\n{}",
        before.len(),
        if actions.is_empty() { String::new() } else { format!("; {}", actions.join("; ")) },
        out.text
    );
    out.json = json!({
        "before": before,
        "actions": actions,
        "refetched": refetched,
        "after": after,
        "healthy": after.is_empty()
    });
    Ok(out)
}

/// The bounded wait for our lock: `--lock-timeout`, else the
/// configuration's; out of range is `E_USAGE` / `E_CONFIG`, never a panic.
fn lock_wait(g: &GlobalOpts, config: &Config) -> Result<Duration> {
    match g.lock_timeout {
        Some(secs) => check_wait(secs, ErrorId::Usage, "--lock-timeout"),
        None => check_wait(config.lock_timeout_secs, ErrorId::Config, "lock_timeout_secs"),
    }
}

/// The exit status of `verify` when an operation is in flight (EX_TEMPFAIL):
/// nothing was judged, try again when it is over.
pub const VERIFY_BUSY: u8 = 75;

/// `verify`: reads only. It takes our lock shared (bounded wait), so it
/// never judges a switch half-way; while pacman or another oxidizr-hook
/// is mid-operation it reports that (exit 75) instead of in-flight states
/// as damage.
fn cmd_verify(g: &GlobalOpts) -> Result<Output> {
    let config = Config::load(&g.root)?;
    let wait = lock_wait(g, &config)?;
    let engine = Engine::new(options(g, &config, true), config, "verify")?;
    let dbpath = g.dbpath();
    let lck = dbpath.join("db.lck");
    if pacman_running_in(&dbpath) && !pacman_lock_is_ours(&dbpath) {
        return Ok(busy(format!("pacman is mid-transaction ({} exists)", lck.display())));
    }
    let shared = match Lock::open_existing(&g.root, &engine.layout)? {
        Some(lock) => match lock.acquire(LockMode::Shared, wait) {
            Ok(guard) => Some(guard),
            Err(e) if e.id == ErrorId::Locking => return Ok(busy(e.reason)),
            Err(e) => return Err(e),
        },
        None => None,
    };
    // Ours, while we hold our lock shared: no oxidizr-hook is running, so
    // it was left by one that crashed, and it blocks pacman.
    let stale = pacman_running_in(&dbpath) && pacman_lock_is_ours(&dbpath);
    if stale && shared.is_none() {
        return Ok(busy(format!("an oxidizr-hook holds {} (or crashed holding it)", lck.display())));
    }
    let state = engine.load_state()?;
    let mut problems = verify::check(&engine, &state)?;
    if stale {
        problems.push(verify::Problem {
            code: "stale-lock",
            detail: format!(
                "{} was left by an oxidizr-hook that crashed: pacman refuses to run; any mutating oxidizr-hook command (e.g. verify --repair) removes it",
                lck.display()
            ),
        });
    }
    let mut out = render_verify(&problems);
    if let Some(h) = state.held.filter(|h| generation::active(&engine.layout).ok().flatten() == Some(*h)) {
        out.text = format!(
            "==> held: generation {h} (rolled back by the admin; not checked against the installed packages)\n{}",
            out.text
        );
        out.json["held"] = json!(h);
    }
    Ok(out)
}

/// `verify`'s answer while an operation is in flight.
fn busy(why: String) -> Output {
    let text = format!("==> operation in progress: {why}; nothing was checked (run verify again when it is over)\n");
    let mut out = Output::new(text, json!({ "healthy": null, "in_progress": why, "problems": [] }));
    out.code = VERIFY_BUSY;
    out
}

fn render_verify(problems: &[verify::Problem]) -> Output {
    let mut text = String::new();
    if problems.is_empty() {
        text.push_str("==> healthy\n");
    }
    for p in problems {
        text.push_str(&format!("==> problem [{}]: {}\n", p.code, p.detail));
    }
    let mut out = Output::new(text, json!({ "healthy": problems.is_empty(), "problems": problems }));
    out.code = if problems.is_empty() { 0 } else { 1 };
    out
}

/// The exit code of `status` when the disk drifted from the desired
/// profile (documented in the man page).
pub const STATUS_DRIFT: u8 = 1;

/// How many drift problems `status` lists (`verify` lists them all).
const STATUS_DRIFT_SHOWN: usize = 5;

fn cmd_status(g: &GlobalOpts) -> Result<Output> {
    let config = Config::load(&g.root)?;
    let dbpath = g.dbpath();
    let inv = PackageDb::open(&g.root, &dbpath)?.inventory(&config)?;
    let engine = Engine::new(options(g, &config, true), config.clone(), "status")?;
    let state = engine.load_state()?;
    let active = generation::active(&engine.layout).ok().flatten();
    let mut text = status::to_text(&inv);
    let profile = state.profile.map_or("none (GNU files, unmanaged)", |p| p.as_str());
    text.push_str(&format!(
        "==> profile: {profile}; active generation: {}\n",
        active.map_or("none".into(), |n| n.to_string())
    ));
    if let Some(h) = state.held {
        text.push_str(&format!(
            "==> held: generation {h} (rolled back; held until the next use, pin, repair or package change)\n"
        ));
    }
    if !state.pins.is_empty() {
        text.push_str(&format!("  -> pinned to GNU: {}\n", state.pins.iter().cloned().collect::<Vec<_>>().join(" ")));
    }
    let kept = kept_on_gnu(&state);
    if state.profile == Some(Profile::Uutils) {
        let policy = engine.policy(&state);
        let listed: Vec<String> = kept
            .iter()
            .map(|(a, k)| match &k.case {
                Some(case) => format!("{a} ({}: {case})", k.kept_by.words()),
                None => format!("{a} ({})", k.kept_by.words()),
            })
            .collect();
        text.push_str(&format!(
            "==> policy {}; kept on GNU: {}\n",
            policy.as_str(),
            if listed.is_empty() { "none".to_string() } else { listed.join(", ") }
        ));
        if !state.overrides.is_empty() {
            let list = state.overrides.iter().cloned().collect::<Vec<_>>().join(" ");
            text.push_str(&format!("  -> on uutils by the admin's override of the policy: {list}\n"));
        }
    }
    if let Some(d) = &state.degraded {
        text.push_str(&format!(
            "==> DEGRADED [{}] since {}: {}\n  -> run 'oxidizr-hook verify' and 'oxidizr-hook verify --repair'\n",
            d.error_id, d.since, d.reason
        ));
    }
    // Drift: the non-executing checks of verify (cheap: no command runs).
    // A degraded state is reported as such (its failed switch left the
    // desired profile unrealized on purpose): drift is what nobody said.
    let drift = if state.degraded.is_some() { Vec::new() } else { verify::drift(&engine, &state)? };
    if !drift.is_empty() {
        text.push_str(&format!(
            "==> DRIFT: the disk no longer realizes profile {profile} ({} problem(s)):\n",
            drift.len()
        ));
        for p in drift.iter().take(STATUS_DRIFT_SHOWN) {
            text.push_str(&format!("  -> {}: {}\n", p.code, p.detail));
        }
        if drift.len() > STATUS_DRIFT_SHOWN {
            text.push_str(&format!("  -> ... and {} more\n", drift.len() - STATUS_DRIFT_SHOWN));
        }
        text.push_str("  -> run 'oxidizr-hook verify --repair' (did a pacman transaction run without its hooks?)\n");
    }
    let mut doc: serde_json::Value =
        serde_json::from_str(&status::to_json(&inv, &g.root, &dbpath)).expect("status json");
    doc["profile"] = json!(state.profile);
    doc["active_generation"] = json!(active);
    doc["pins"] = json!(state.pins);
    doc["policy"] = json!(engine.policy(&state));
    doc["kept"] = json!(kept);
    doc["overrides"] = json!(state.overrides);
    doc["degraded"] = json!(state.degraded);
    doc["drift"] = json!(drift);
    let mut out = Output::new(text, doc);
    if !drift.is_empty() {
        out.code = STATUS_DRIFT;
    }
    Ok(out)
}

/// Every applet kept on GNU and why: the admin's pins, then the policy's
/// decisions the admin did not override.
fn kept_on_gnu(state: &State) -> std::collections::BTreeMap<String, Kept> {
    let mut kept: std::collections::BTreeMap<String, Kept> =
        state.kept.iter().filter(|(a, _)| !state.overrides.contains(*a)).map(|(a, k)| (a.clone(), k.clone())).collect();
    for pin in &state.pins {
        let k = Kept { kept_by: KeptBy::Admin, reason: "pinned by the admin".into(), case: None, source: None };
        kept.insert(pin.clone(), k);
    }
    kept
}

fn cmd_generations(g: &GlobalOpts) -> Result<Output> {
    let config = Config::load(&g.root)?;
    let engine = Engine::new(options(g, &config, true), config, "generations")?;
    let (numbers, _) = generation::list(&engine.layout)?;
    let active = generation::active(&engine.layout).ok().flatten();
    let mut text = String::new();
    let mut rows = Vec::new();
    for n in numbers {
        let mark = if Some(n) == active { "*" } else { " " };
        match generation::read_manifest(&engine.layout, n) {
            Ok(m) => {
                let uutils = m.applets.values().filter(|a| matches!(a.source, Source::Uutils { .. })).count();
                text.push_str(&format!(
                    "{mark} {n:>4}  {:<6}  {} applets ({uutils} uutils)  plan {}  {}\n",
                    m.profile.as_str(),
                    m.applets.len(),
                    m.plan_id,
                    m.created
                ));
                rows.push(json!({ "generation": n, "active": Some(n) == active, "profile": m.profile, "applets": m.applets.len(), "uutils": uutils, "plan_id": m.plan_id, "created": m.created }));
            }
            Err(e) => {
                text.push_str(&format!("{mark} {n:>4}  damaged: {}\n", e.reason));
                rows.push(json!({ "generation": n, "active": Some(n) == active, "damaged": e.reason }));
            }
        }
    }
    if rows.is_empty() {
        text.push_str("==> no generations\n");
    }
    Ok(Output::new(text, json!({ "generations": rows })))
}

/// `canary`: the GNU profile's bin dir first on PATH. Uses the GNU profile
/// pointer when one exists, else the store of the installed GNU packages.
fn canary(g: &GlobalOpts, shell: bool, command: &[String]) -> Result<Output> {
    if !shell && command.is_empty() {
        return Err(Error::new(ErrorId::Usage, "canary needs --shell or a command after --"));
    }
    if g.root != std::path::Path::new("/") {
        return Err(Error::new(ErrorId::Policy, "canary runs on the live system only (no --root)"));
    }
    let config = Config::load(&g.root)?;
    let engine = Engine::new(options(g, &config, true), config, "canary")?;
    let gnu_bin = match generation::profile_pointer(&engine.layout, Profile::Gnu).ok().flatten() {
        Some(_) => format!("/{LIB}/profiles/gnu/bin"),
        None => {
            let state = engine.load_state()?;
            let (_, gnu_plan) = engine.plan(Profile::Gnu, &state.pins)?;
            let dirs: BTreeSet<String> = gnu_plan
                .applets
                .values()
                .filter_map(|a| a.target.rsplit_once('/').map(|(d, _)| d.to_string()))
                .filter(|d| std::path::Path::new(d).is_dir())
                .collect();
            if dirs.is_empty() {
                return Err(Error::new(
                    ErrorId::BackupMissing,
                    "no GNU profile and no stored GNU binaries: nothing to put first on PATH",
                ));
            }
            dirs.into_iter().collect::<Vec<_>>().join(":")
        }
    };
    let path = format!("{gnu_bin}:{}", std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()));
    let (prog, args): (String, Vec<String>) = if command.is_empty() {
        (std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into()), Vec::new())
    } else {
        (command[0].clone(), command[1..].to_vec())
    };
    eprintln!("==> canary: GNU commands first on PATH ({gnu_bin})");
    let status = std::process::Command::new(&prog)
        .args(&args)
        .env("PATH", &path)
        .env("OXIDIZR_CANARY", "1")
        .status()
        .map_err(|e| Error::io(ErrorId::Io, format!("cannot run {prog}"), e))?;
    let mut out = Output::new(String::new(), json!({ "exit": status.code() }));
    out.code = status.code().map_or(1, |c| c.clamp(0, 255) as u8);
    Ok(out)
}
