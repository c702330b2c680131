//! The policy decision for one applet, from its evidence: pure, so every
//! rule is unit-tested without running anything.

use super::corpus::Concern;
use super::differ::CaseOutcome;
use super::Evidence;
use crate::model::policy::{Kept, KeptBy, Policy};

/// Whether `policy` keeps the applet of `evidence` on GNU, and why.
///
/// - An applet whose uutils binary fails its plain smoke probe (does not
///   start, hangs, `--version` fails) is never kept here: the smoke fails
///   it, and the whole profile rolls back as it always did.
/// - `all` keeps nothing.
/// - `recommended` keeps an applet on the concern list, else one with a
///   diverging case.
/// - `strict` keeps those, and an applet for which no case came out equal.
pub fn decide(policy: Policy, evidence: &Evidence, concern: Option<&Concern>) -> Option<Kept> {
    if evidence.broken().is_some() || policy == Policy::All {
        return None;
    }
    if let Some(c) = concern {
        return Some(Kept {
            kept_by: KeptBy::PolicyList,
            reason: c.reason.clone(),
            case: None,
            source: Some(c.source.clone()),
        });
    }
    if let Some(first) = evidence.divergences().next() {
        return Some(Kept {
            kept_by: KeptBy::Divergence,
            reason: summary(&first.case, &first.locale, &first.outcome),
            case: Some(first.case.clone()),
            source: None,
        });
    }
    if policy == Policy::Strict && evidence.equal() == 0 {
        let why = evidence.note.clone().unwrap_or_else(|| "no differential case came out equal".to_string());
        return Some(Kept { kept_by: KeptBy::Unchecked, reason: why, case: None, source: None });
    }
    None
}

/// `case date-r (C): stdout differs (GNU "1000000000\n", uutils "1764...")`.
pub fn summary(case: &str, locale: &str, outcome: &CaseOutcome) -> String {
    let CaseOutcome::Diverged { differs, gnu, uutils } = outcome else {
        return format!("case {case} ({locale})");
    };
    let what: Vec<String> = differs.iter().map(|a| format!("{a:?}").to_lowercase()).collect();
    let mut text = format!("case {case} ({locale}): {} differ", what.join(", "));
    let short = |s: &str| super::shorten(s, 60);
    if differs.contains(&super::corpus::Aspect::Status) {
        text.push_str(&format!(" (GNU {}, uutils {})", gnu.status, uutils.status));
    } else if differs.contains(&super::corpus::Aspect::Stdout) {
        text.push_str(&format!(" (GNU \"{}\", uutils \"{}\")", short(&gnu.stdout), short(&uutils.stdout)));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compat::corpus::Aspect;
    use crate::compat::differ::RunResult;
    use crate::compat::CaseResult;

    fn run(status: &str, stdout: &str) -> RunResult {
        RunResult { status: status.into(), stdout: stdout.into(), stdout_digest: stdout.into(), files: vec![] }
    }

    fn evidence(equal: usize, diverged: usize, probe_ok: bool) -> Evidence {
        let mut results = Vec::new();
        for i in 0..equal {
            results.push(CaseResult {
                case: format!("e{i}"),
                locale: "C".into(),
                outcome: CaseOutcome::Equal,
                reused: false,
            });
        }
        for i in 0..diverged {
            results.push(CaseResult {
                case: format!("d{i}"),
                locale: "C".into(),
                outcome: CaseOutcome::Diverged {
                    differs: vec![Aspect::Stdout],
                    gnu: run("exit status 0", "1\n"),
                    uutils: run("exit status 0", "2\n"),
                },
                reused: false,
            });
        }
        Evidence {
            applet: "date".into(),
            gnu: Some("/usr/bin/date".into()),
            uutils: "/usr/bin/uu-date".into(),
            probe: if probe_ok { Ok(()) } else { Err("exit status 1".into()) },
            results,
            note: None,
        }
    }

    fn concern() -> Concern {
        Concern { applet: "date".into(), reason: "audit".into(), source: "https://example".into() }
    }

    #[test]
    fn recommended_keeps_the_concern_list_and_divergences_only() {
        let p = Policy::Recommended;
        assert_eq!(decide(p, &evidence(3, 0, true), None), None);
        let k = decide(p, &evidence(3, 1, true), None).unwrap();
        assert_eq!((k.kept_by, k.case.as_deref()), (KeptBy::Divergence, Some("d0")));
        assert!(k.reason.contains("stdout differ") && k.reason.contains("\"1\\n\""), "{}", k.reason);
        let k = decide(p, &evidence(3, 0, true), Some(&concern())).unwrap();
        assert_eq!((k.kept_by, k.source.as_deref()), (KeptBy::PolicyList, Some("https://example")));
        assert_eq!(decide(p, &evidence(0, 0, true), None), None, "unchecked is not a reason under recommended");
    }

    #[test]
    fn all_keeps_nothing_and_strict_keeps_the_unproven_too() {
        assert_eq!(decide(Policy::All, &evidence(0, 5, true), Some(&concern())), None);
        let k = decide(Policy::Strict, &evidence(0, 0, true), None).unwrap();
        assert_eq!(k.kept_by, KeptBy::Unchecked);
        assert_eq!(decide(Policy::Strict, &evidence(1, 0, true), None), None);
        assert_eq!(decide(Policy::Strict, &evidence(1, 1, true), None).unwrap().kept_by, KeptBy::Divergence);
    }

    #[test]
    fn a_binary_that_fails_its_probe_is_left_to_the_smoke() {
        for p in [Policy::Recommended, Policy::Strict, Policy::All] {
            assert_eq!(decide(p, &evidence(0, 4, false), Some(&concern())), None, "{p:?}");
        }
    }
}
