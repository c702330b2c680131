//! Compatibility intelligence: what uutils does differently from GNU on
//! this machine, per applet, before the flip.
//!
//! - [`corpus`]: the shipped differential cases and the concern list.
//! - [`differ`]: runs one case with both binaries and compares them.
//! - [`decide`]: a policy's verdict for one applet from its evidence.
//! - [`evaluate`] (here): every case of every target applet, under every
//!   locale, in parallel, reusing results recorded for the very same
//!   binaries (by content) and case text.
//!
//! The engine turns the verdicts into pins with a reason
//! ([`crate::engine`]'s policy stage); `oxidizr-hook compat` shows them.

pub mod corpus;
pub mod decide;
pub mod differ;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};
use sha2::{Digest, Sha256};

use crate::model::policy::CompatCache;
use crate::parallel::parallel_map;
use crate::smoke::verdict::{in_root, InRoot, Resolver};
use crate::smoke::{SmokeConfig, SmokeTarget};
use corpus::Corpus;
use differ::{CaseOutcome, Differ, RunResult};

/// One applet to compare: the GNU binary (None when it cannot be found)
/// and the uutils binary, as paths inside the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The applet.
    pub applet: String,
    /// The GNU binary.
    pub gnu: Option<String>,
    /// The uutils binary.
    pub uutils: String,
}

/// One case under one locale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseResult {
    /// The case id.
    pub case: String,
    /// The locale.
    pub locale: String,
    /// How it came out.
    pub outcome: CaseOutcome,
    /// True when both runs were recorded by an earlier evaluation for the
    /// same binaries and case text, and nothing was executed now.
    pub reused: bool,
}

/// Everything learned about one applet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    /// The applet.
    pub applet: String,
    /// The GNU binary compared (None: not found).
    pub gnu: Option<String>,
    /// The uutils binary compared.
    pub uutils: String,
    /// The uutils binary's plain smoke probe: Err is why it failed.
    pub probe: Result<(), String>,
    /// Every case that ran (or was reused), in corpus order, locale by locale.
    pub results: Vec<CaseResult>,
    /// Why cases did not run, when they did not.
    pub note: Option<String>,
}

impl Evidence {
    /// Why the uutils binary does not work at all, if it does not.
    pub fn broken(&self) -> Option<&str> {
        self.probe.as_ref().err().map(String::as_str)
    }

    /// The results that diverged.
    pub fn divergences(&self) -> impl Iterator<Item = &CaseResult> {
        self.results.iter().filter(|r| matches!(r.outcome, CaseOutcome::Diverged { .. }))
    }

    /// How many results came out equal.
    pub fn equal(&self) -> usize {
        self.results.iter().filter(|r| r.outcome == CaseOutcome::Equal).count()
    }

    /// How many results were unusable.
    pub fn unusable(&self) -> usize {
        self.results.iter().filter(|r| matches!(r.outcome, CaseOutcome::Unusable { .. })).count()
    }
}

/// What one evaluation found.
#[derive(Clone, Debug, Default)]
pub struct Evaluation {
    /// The locales every case ran under.
    pub locales: Vec<String>,
    /// Applet -> evidence.
    pub evidence: BTreeMap<String, Evidence>,
    /// Runs (one binary, one case, one locale) executed now.
    pub executed: usize,
    /// Runs whose result was recorded for the same binary and case text.
    pub reused: usize,
    /// Wall-clock time.
    pub duration: Duration,
}

/// After this many uutils timeouts in one applet's cases, its remaining
/// cases are not run (it is kept already; each would cost a timeout).
const TIMEOUTS_PER_APPLET: usize = 2;

/// Runs every case of every target under every locale of the root, in
/// parallel (`cfg.parallelism` workers, `cfg.timeout` per run), and
/// compares the GNU and the uutils run of each. Each run is reused from
/// `cache` when it was recorded for the same case text, locale and binary
/// content (sha256): a uutils upgrade runs only the uutils side of the
/// cases, a GNU upgrade only the GNU side, a findutils upgrade only the
/// cases of find and xargs. Leaves in `cache` exactly what this
/// evaluation used or learned (a timeout or a failure to start is never
/// recorded: it may have been the moment's).
pub fn evaluate(cfg: &SmokeConfig, corpus: &Corpus, targets: &[Target], cache: &mut CompatCache) -> Evaluation {
    let start = Instant::now();
    let locales = differ::locales(&cfg.root);
    let mut digests = Digests::new(&cfg.root, cache);
    let ids: Vec<(Option<String>, String)> = targets
        .iter()
        .map(|t| match t.gnu.as_deref() {
            // Nothing to compare with: neither binary is read.
            None => (None, String::new()),
            Some(g) => (Some(digests.of(g)), digests.of(&t.uutils)),
        })
        .collect();
    let used_digests = digests.used;
    let probes = probe(cfg, targets, &ids, cache);
    let differ = Differ::new(&cfg.root, cfg.timeout);
    let work: Vec<usize> = (0..targets.len()).collect();
    let cache_ref = &*cache;
    let per_target = parallel_map(&work, cfg.parallelism, |&i| {
        let t = &targets[i];
        let (gnu_id, uu_id) = &ids[i];
        let probe = probes[i].clone();
        let mut ev = Evidence {
            applet: t.applet.clone(),
            gnu: t.gnu.clone(),
            uutils: t.uutils.clone(),
            probe: probe.clone(),
            results: Vec::new(),
            note: None,
        };
        let mut learned = Vec::new();
        let (Some(gnu), Some(gnu_id)) = (&t.gnu, gnu_id) else {
            ev.note =
                Some("not compared (no GNU binary found, on the concern list, or compat_checks = false)".to_string());
            return (ev, learned, 0);
        };
        if let Err(why) = &probe {
            ev.note = Some(format!("the uutils binary fails its smoke probe: {why}"));
            return (ev, learned, 0);
        }
        let mut timeouts = 0;
        // One run of `binary` (id `bin_id`): recorded for the very same
        // case text, locale and binary content, or executed now.
        let mut run =
            |case: &corpus::Case, digest: &str, locale: &str, binary: &str, bin_id: &str, executed: &mut usize| {
                let key = format!("run|{digest}|{locale}|{bin_id}");
                if let Some(r) =
                    cache_ref.results.get(&key).and_then(|v| serde_json::from_value::<RunResult>(v.clone()).ok())
                {
                    learned.push((key, r.clone()));
                    return Ok(r);
                }
                *executed += 1;
                let r = differ.run(case, locale, binary)?;
                if r.finished() {
                    learned.push((key, r.clone()));
                }
                Ok(r)
            };
        let mut executed = 0;
        for case in corpus.cases_of(&t.applet) {
            let digest = case.digest();
            for locale in &locales {
                if timeouts >= TIMEOUTS_PER_APPLET {
                    ev.note = Some(format!("uutils timed out in {timeouts} cases: the remaining cases were not run"));
                    continue;
                }
                let before = executed;
                let g = run(case, &digest, locale, gnu, gnu_id, &mut executed);
                let u = match &g {
                    Ok(g) if g.finished() => run(case, &digest, locale, &t.uutils, uu_id, &mut executed),
                    _ => Err("not run: the GNU run did not finish".to_string()),
                };
                if u.as_ref().is_ok_and(RunResult::timed_out) {
                    timeouts += 1;
                }
                let outcome = differ::outcome(case, &g, &u);
                let reused = executed == before;
                ev.results.push(CaseResult { case: case.id.clone(), locale: locale.clone(), outcome, reused });
            }
        }
        (ev, learned, executed)
    });
    let mut evaluation = Evaluation { locales, ..Evaluation::default() };
    let mut results = BTreeMap::new();
    for (ev, learned, executed) in per_target {
        evaluation.executed += executed;
        evaluation.reused += ev.results.len() * 2 - executed.min(ev.results.len() * 2);
        for (key, run) in learned {
            results.insert(key, serde_json::to_value(run).expect("runs serialize"));
        }
        evaluation.evidence.insert(ev.applet.clone(), ev);
    }
    cache.results = results;
    cache.digests.retain(|k, _| used_digests.contains(k));
    evaluation.duration = start.elapsed();
    evaluation
}

/// The plain smoke probe of each target's uutils binary (the smoke's own
/// `--version` or special case), reusing a pass recorded for the same
/// binary; a failure is never reused (it may have been the moment's).
fn probe(
    cfg: &SmokeConfig,
    targets: &[Target],
    ids: &[(Option<String>, String)],
    cache: &mut CompatCache,
) -> Vec<Result<(), String>> {
    let key = |i: usize| format!("{}|{}", ids[i].1, targets[i].applet);
    // A target without a GNU binary runs no case: its probe is the smoke's.
    let to_run: Vec<usize> =
        (0..targets.len()).filter(|&i| targets[i].gnu.is_some() && cache.probes.get(&key(i)) != Some(&true)).collect();
    let smoke_targets: Vec<SmokeTarget> = to_run
        .iter()
        .map(|&i| SmokeTarget { applet: targets[i].applet.clone(), path: targets[i].uutils.clone() })
        .collect();
    let report = crate::smoke::run(cfg, &smoke_targets, None);
    let mut ran: BTreeMap<usize, Result<(), String>> = BTreeMap::new();
    for (i, check) in to_run.iter().zip(report.applets) {
        ran.insert(*i, if check.passed { Ok(()) } else { Err(check.detail) });
    }
    let mut probes = BTreeMap::new();
    let verdicts = (0..targets.len())
        .map(|i| {
            let verdict = ran.remove(&i).unwrap_or(Ok(()));
            if verdict.is_ok() && targets[i].gnu.is_some() {
                probes.insert(key(i), true);
            }
            verdict
        })
        .collect();
    cache.probes = probes;
    verdicts
}

/// The binaries' ids: the sha256 of the content, read once per file
/// identity (device, inode, size, times) and remembered in the cache.
struct Digests<'a> {
    root: Option<OwnedFd>,
    resolver: Resolver,
    cache: &'a mut CompatCache,
    used: BTreeSet<String>,
}

impl<'a> Digests<'a> {
    fn new(root: &Path, cache: &'a mut CompatCache) -> Digests<'a> {
        let fd = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).ok();
        Digests { root: fd, resolver: Resolver::new(root), cache, used: BTreeSet::new() }
    }

    /// The id of the file `inside` resolves to: `sha256:<hex>`, or
    /// `file:<identity>` when it cannot be read, or `missing` when it
    /// does not resolve.
    fn of(&mut self, inside: &str) -> String {
        let Ok(identity) = self.resolver.identify(inside) else { return "missing".to_string() };
        let key = identity.key();
        self.used.insert(key.clone());
        if let Some(sha) = self.cache.digests.get(&key) {
            return sha.clone();
        }
        match self.hash(inside) {
            Some(hex) => {
                let id = format!("sha256:{hex}");
                self.cache.digests.insert(key, id.clone());
                id
            }
            None => format!("file:{key}"),
        }
    }

    fn hash(&self, inside: &str) -> Option<String> {
        let root = self.root.as_ref()?;
        let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        let rel = inside.trim_start_matches('/');
        let fd = match in_root(|| openat2(root, rel, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty(), how)) {
            InRoot::Resolved(fd) => fd,
            InRoot::Walk | InRoot::Failed(_) => return None,
        };
        let mut file = std::fs::File::from(fd);
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => hasher.update(&buf[..n]),
                Err(_) => return None,
            }
        }
        Some(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
    }
}

/// `s` on one line, at most `max` characters (an ellipsis marks a cut).
pub fn shorten(s: &str, max: usize) -> String {
    let flat = s.replace('\n', "\\n");
    if flat.chars().count() <= max {
        return flat;
    }
    flat.chars().take(max).collect::<String>() + "…"
}
