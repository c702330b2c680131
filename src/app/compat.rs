//! `oxidizr-hook compat`: the admin's "what would change" report. Runs the
//! differential corpus for every applet with a uutils counterpart (or the
//! named ones) and shows, per applet, whether the policy switches it or
//! keeps it on GNU and why, with a reproduction of every diverging case.
//! Reads only: no lock, no state, no cache written; works before `use`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::compat::corpus::{Case, Corpus};
use crate::compat::decide::decide;
use crate::compat::differ::CaseOutcome;
use crate::compat::{Evaluation, Evidence};
use crate::engine::Engine;
use crate::error::{Error, ErrorId, Result};
use crate::model::output::Output;
use crate::model::policy::{Kept, KeptBy, Policy};
use crate::model::state::{Profile, State};

/// Runs `compat` with `engine`, opened read-only (a dry run: facts go to
/// the journal only, nothing is created).
pub fn cmd_compat(mut engine: Engine, policy: Option<Policy>, only: &[String]) -> Result<Output> {
    let state = engine.load_state()?;
    let policy = policy.unwrap_or_else(|| engine.policy(&state));
    let (plan, gnu_plan) = engine.plan(Profile::Uutils, &BTreeSet::new())?;
    let mut targets = engine.compat_targets(&plan, &gnu_plan)?;
    for applet in only {
        if !targets.iter().any(|t| &t.applet == applet) {
            return Err(Error::new(
                ErrorId::Usage,
                format!("'{}' is not an applet with a uutils counterpart here", applet.escape_debug()),
            ));
        }
    }
    if !only.is_empty() {
        targets.retain(|t| only.contains(&t.applet));
    }
    if targets.is_empty() {
        let text = "==> compat: no installed uutils package provides a managed applet: nothing to compare\n";
        return Ok(Output::new(text.to_string(), json!({ "policy": policy, "applets": {} })));
    }
    let corpus = Corpus::load(&engine.opts.root)?;
    let eval = engine.evaluate_compat(&corpus, &targets, false)?;
    let verdicts: BTreeMap<&str, Verdict> =
        eval.evidence.iter().map(|(a, ev)| (a.as_str(), verdict(policy, &state, ev, &corpus))).collect();
    Ok(Output::new(render_text(policy, &corpus, &eval, &verdicts), render_json(policy, &corpus, &eval, &verdicts)))
}

/// One applet's line of the report.
struct Verdict {
    kept: Option<Kept>,
    /// The policy would keep it, the admin's `unpin` overrides that.
    overridden: bool,
}

fn verdict(policy: Policy, state: &State, ev: &Evidence, corpus: &Corpus) -> Verdict {
    if state.pins.contains(&ev.applet) {
        let kept = Kept { kept_by: KeptBy::Admin, reason: "pinned by the admin".into(), case: None, source: None };
        return Verdict { kept: Some(kept), overridden: false };
    }
    let kept = decide(policy, ev, corpus.concerns.get(&ev.applet));
    let overridden = kept.is_some() && state.overrides.contains(&ev.applet);
    Verdict { kept: kept.filter(|_| !overridden), overridden }
}

/// Divergences of one applet grouped by case: (case, locales, outcome).
fn grouped(ev: &Evidence) -> Vec<(&str, Vec<&str>, &CaseOutcome)> {
    let mut groups: Vec<(&str, Vec<&str>, &CaseOutcome)> = Vec::new();
    for r in ev.divergences() {
        match groups.iter_mut().find(|(c, _, _)| *c == r.case) {
            Some(g) => g.1.push(&r.locale),
            None => groups.push((&r.case, vec![&r.locale], &r.outcome)),
        }
    }
    groups
}

fn state_word(ev: &Evidence, v: &Verdict) -> &'static str {
    match (&v.kept, ev.broken()) {
        (Some(_), _) => "keep",
        (None, Some(_)) => "broken",
        (None, None) => "switch",
    }
}

fn why(ev: &Evidence, v: &Verdict) -> String {
    if let Some(k) = &v.kept {
        return k.line();
    }
    if let Some(b) = ev.broken() {
        return format!("the uutils command fails its smoke probe ({b}): a switch would fail the smoke");
    }
    let diverged = grouped(ev).len();
    let base = format!("{} equal, {diverged} diverging", ev.equal());
    if v.overridden {
        format!("{base}; the admin's override (unpin) beats the policy")
    } else if diverged > 0 {
        format!("{base}; divergences reported, not acted on (policy all)")
    } else if ev.results.is_empty() {
        format!("no case covers it{}", ev.note.as_ref().map(|n| format!(" ({n})")).unwrap_or_default())
    } else {
        base
    }
}

fn render_text(policy: Policy, corpus: &Corpus, eval: &Evaluation, verdicts: &BTreeMap<&str, Verdict>) -> String {
    let mut text = format!(
        "==> compat: policy {}, {} applets with a uutils counterpart; {} case runs under {} ({} executed, {} reused) in {:.1} s\n",
        policy.as_str(),
        eval.evidence.len(),
        eval.executed + eval.reused,
        eval.locales.join(", "),
        eval.executed,
        eval.reused,
        eval.duration.as_secs_f64()
    );
    let width = eval.evidence.keys().map(|a| a.chars().count()).max().unwrap_or(0);
    for (applet, ev) in &eval.evidence {
        let v = &verdicts[applet.as_str()];
        text.push_str(&format!("  {applet:<width$}  {:<6}  {}\n", state_word(ev, v), why(ev, v)));
    }
    let kept = verdicts.values().filter(|v| v.kept.is_some()).count();
    text.push_str(&format!("==> {} switch, {kept} kept on GNU\n", verdicts.len() - kept));
    let cases: BTreeMap<&str, &Case> = corpus.cases.iter().map(|c| (c.id.as_str(), c)).collect();
    let mut any = false;
    for (applet, ev) in &eval.evidence {
        for (case_id, locales, outcome) in grouped(ev) {
            if !any {
                text.push_str("==> diverging cases (reproduce with the GNU and the uutils command, in an empty directory as {dir}):\n");
                any = true;
            }
            let CaseOutcome::Diverged { differs, gnu, uutils } = outcome else { continue };
            let what: Vec<String> = differs.iter().map(|a| format!("{a:?}").to_lowercase()).collect();
            text.push_str(&format!("  {applet}: {case_id} [{}]: {} differ\n", locales.join(", "), what.join(", ")));
            if let Some(case) = cases.get(case_id) {
                text.push_str(&format!("    $ {}\n", case.command_line()));
                for input in case.inputs() {
                    text.push_str(&format!("    input {input}\n"));
                }
                if let Some(w) = &case.why {
                    text.push_str(&format!("    guards: {w}\n"));
                }
            }
            for (who, run) in [("GNU:   ", gnu), ("uutils:", uutils)] {
                text.push_str(&format!(
                    "    {who} {}, stdout {:?}\n",
                    run.status,
                    crate::compat::shorten(&run.stdout, 160)
                ));
            }
            if differs.contains(&crate::compat::corpus::Aspect::Files) {
                let only = |a: &Vec<String>, b: &Vec<String>| -> Vec<String> {
                    a.iter().filter(|l| !b.contains(l)).take(4).cloned().collect()
                };
                for line in only(&gnu.files, &uutils.files) {
                    text.push_str(&format!("    GNU only:    {line}\n"));
                }
                for line in only(&uutils.files, &gnu.files) {
                    text.push_str(&format!("    uutils only: {line}\n"));
                }
            }
        }
    }
    text
}

fn render_json(policy: Policy, corpus: &Corpus, eval: &Evaluation, verdicts: &BTreeMap<&str, Verdict>) -> Value {
    let cases: BTreeMap<&str, &Case> = corpus.cases.iter().map(|c| (c.id.as_str(), c)).collect();
    let mut applets = serde_json::Map::new();
    for (applet, ev) in &eval.evidence {
        let v = &verdicts[applet.as_str()];
        let divergences: Vec<Value> = grouped(ev)
            .into_iter()
            .map(|(case_id, locales, outcome)| {
                let case = cases.get(case_id);
                let mut d = serde_json::to_value(outcome).expect("outcomes serialize");
                d["case"] = json!(case_id);
                d["locales"] = json!(locales);
                d["locale"] = json!(locales.first());
                d["command"] = json!(case.map(|c| c.command_line()));
                d["setup"] = json!(case.map(|c| &c.setup));
                d["stdin"] = json!(case.and_then(|c| c.stdin.as_ref()));
                d["why"] = json!(case.and_then(|c| c.why.as_ref()));
                d
            })
            .collect();
        applets.insert(
            applet.clone(),
            json!({
                "decision": if v.kept.is_some() { "keep" } else { "switch" },
                "kept_by": v.kept.as_ref().map(|k| k.kept_by.as_str()),
                "reason": why(ev, v),
                "case": v.kept.as_ref().and_then(|k| k.case.clone()),
                "source": v.kept.as_ref().and_then(|k| k.source.clone()),
                "override": v.overridden,
                "broken": ev.broken().is_some(),
                "gnu": ev.gnu,
                "uutils": ev.uutils,
                "equal": ev.equal(),
                "diverged": ev.divergences().count(),
                "unusable": ev.unusable(),
                "note": ev.note,
                "divergences": divergences,
            }),
        );
    }
    json!({
        "policy": policy,
        "corpus": corpus.origin,
        "locales": eval.locales,
        "cases": corpus.cases.len(),
        "executed": eval.executed,
        "reused": eval.reused,
        "duration_ms": eval.duration.as_millis() as u64,
        "applets": applets,
    })
}
