//! The policy stage of `use uutils`, `pin`/`unpin`, `verify --repair` and
//! the post hook: after preflight, before anything changes, the
//! differential cases decide which applets the policy keeps on GNU; they
//! become pins with a reason (`State::kept`), the rest switch.

use std::collections::{BTreeMap, BTreeSet};

use super::plan::{Plan, Source};
use super::Engine;
use crate::compat::corpus::Corpus;
use crate::compat::decide::decide;
use crate::compat::{evaluate, Evaluation, Target};
use crate::error::Result;
use crate::kernel::Entry;
use crate::model::policy::{CompatCache, Kept, KeptBy, Policy};
use crate::model::state::State;

impl Engine {
    /// The policy in force: `use --policy` recorded in the state, else the
    /// configuration's.
    pub fn policy(&self, state: &State) -> Policy {
        state.policy.unwrap_or(self.config.policy)
    }

    /// Decides, for every applet `plan` backs with uutils, whether the
    /// policy keeps it on GNU; records the decisions in `state.kept`
    /// (saved with the operation's commit), says each in a fact and a line
    /// of output, and returns the plan with the kept applets on GNU (the
    /// admin's overrides excepted).
    pub(super) fn apply_policy(&mut self, state: &mut State, plan: Plan, gnu_plan: &Plan) -> Result<Plan> {
        let policy = self.policy(state);
        let corpus = Corpus::load(&self.opts.root)?;
        let mut targets = self.compat_targets(&plan, gnu_plan)?;
        for t in &mut targets {
            // No case runs for an applet the concern list keeps anyway
            // (unless the admin overrode it: then it is compared and
            // reported like any other), nor for any with checks off (the
            // policy then decides from the concern list alone; strict
            // keeps every unproven applet).
            let listed = policy != Policy::All
                && corpus.concerns.contains_key(&t.applet)
                && !state.overrides.contains(&t.applet);
            if listed || !self.config.compat_checks {
                t.gnu = None;
            }
        }
        let eval = self.evaluate_compat(&corpus, &targets, !self.opts.dry_run && self.config.compat_checks)?;
        let mut kept: BTreeMap<String, Kept> = BTreeMap::new();
        for t in &targets {
            if let Some(k) = decide(policy, &eval.evidence[&t.applet], corpus.concerns.get(&t.applet)) {
                kept.insert(t.applet.clone(), k);
            }
        }
        let kept_count = kept.keys().filter(|a| !state.overrides.contains(*a)).count();
        let text = self.compat_summary(policy, targets.len(), &eval, kept_count);
        self.fact("compat", text, None, None, None);
        // The admin's pins, said like the policy's decisions.
        for applet in state.pins.iter().filter(|a| plan.applets.contains_key(*a)) {
            let line = format!("==> keeping {applet} on GNU: {}", KeptBy::Admin.words());
            self.say_kept(applet, KeptBy::Admin.as_str(), line);
        }
        for (applet, k) in &kept {
            if state.overrides.contains(applet) {
                let line = format!(
                    "==> {applet} follows uutils by the admin's override (the policy would keep it: {})",
                    k.line()
                );
                self.say_kept(applet, "override", line);
            } else {
                self.say_kept(applet, k.kept_by.as_str(), format!("==> keeping {applet} on GNU: {}", k.line()));
            }
        }
        let effective: BTreeSet<String> = kept.keys().filter(|a| !state.overrides.contains(*a)).cloned().collect();
        state.kept = kept;
        Ok(plan.keeping_on_gnu(gnu_plan, &effective))
    }

    /// The compat fact's decision: what ran, what was reused, what is kept.
    fn compat_summary(&self, policy: Policy, applets: usize, eval: &Evaluation, kept: usize) -> String {
        if !self.config.compat_checks {
            return format!(
                "policy {}: {applets} applets, differential checks off (compat_checks = false); {kept} kept on GNU",
                policy.as_str()
            );
        }
        let diverging = eval.evidence.values().filter(|e| e.divergences().next().is_some()).count();
        format!(
            "policy {}: {applets} applets, {} case results under {} locales ({} runs executed, {} reused); {diverging} diverge; {kept} kept on GNU",
            policy.as_str(),
            eval.evidence.values().map(|e| e.results.len()).sum::<usize>(),
            eval.locales.len(),
            eval.executed,
            eval.reused,
        )
    }

    /// One applet kept on GNU (or switched by the admin's override): a
    /// `keep` fact and the output line.
    fn say_kept(&mut self, applet: &str, kept_by: &str, line: String) {
        let mut fact = self.base_fact("keep", line.trim_start_matches("==> ").to_string(), None, None, None);
        fact.applet = Some(applet.to_string());
        fact.kept_by = Some(kept_by.to_string());
        self.emit(fact);
        self.notes.push(line);
    }

    /// The applets `plan` backs with uutils, each with its GNU binary:
    /// `/usr/bin/<applet>` while it is the regular file pacman installed
    /// (before the first switch, or just after an upgrade), else the stored
    /// copy `gnu_plan` names when it exists.
    pub fn compat_targets(&self, plan: &Plan, gnu_plan: &Plan) -> Result<Vec<Target>> {
        let bin = self.layout.bin()?;
        let mut targets = Vec::new();
        for (applet, planned) in &plan.applets {
            if !matches!(planned.source, Source::Uutils { .. }) {
                continue;
            }
            let stored = gnu_plan.applets.get(applet).map(|g| g.target.clone());
            let gnu = match bin.entry(applet)? {
                Entry::File(_) => Some(format!("/usr/bin/{applet}")),
                _ => stored.filter(|s| self.opts.root.join(s.trim_start_matches('/')).exists()),
            };
            targets.push(Target { applet: applet.clone(), gnu, uutils: planned.target.clone() });
        }
        Ok(targets)
    }

    /// Runs `corpus` for `targets`, reusing the recorded results; with
    /// `save`, records what this run used and learned (under our lock).
    pub fn evaluate_compat(&mut self, corpus: &Corpus, targets: &[Target], save: bool) -> Result<Evaluation> {
        let state_dir =
            self.opts.root.join(crate::model::layout::STATE).is_dir().then(|| self.layout.state(false)).transpose()?;
        let mut cache = CompatCache::load(state_dir.as_ref());
        cache.schema = crate::model::policy::COMPAT_SCHEMA;
        let eval = evaluate(&self.smoke_config(), corpus, targets, &mut cache);
        if save {
            self.require_lock()?;
            let dir = self.state_dir()?;
            cache.save(&dir, &mut self.log)?;
        }
        Ok(eval)
    }
}
