//! Recovery: finishing or undoing an operation a crash interrupted, from
//! its write-ahead intent. The decision is [`decide`], a pure function of
//! the intent and what is on disk; the actions go through the same stages
//! as any operation (live smoke, rollback chain, commit or degrade).

use super::generation::{self};
use crate::error::{ErrorId, Result};
use crate::model::intent::Intent;
use crate::model::state::{Profile, State};

use super::Engine;

/// What recovery does with a pending intent ([`decide`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// The target generation is active and its manifest readable: the
    /// flip happened; check it live, then commit it or run the rollback chain.
    Finish {
        /// The generation the interrupted operation switched to.
        to: u64,
        /// Its profile.
        profile: Profile,
    },
    /// The operation was restoring the pristine GNU files (`disable`, the
    /// pre-remove hook): restoring is idempotent, so finish it.
    Pristine,
    /// The target never became active (or cannot be read): go back to the
    /// generation the operation started from, or to the pristine files.
    Undo,
}

/// Decides recovery from the intent, the generation `active` names now and
/// whether the intent's target manifest can be read. Pure: no disk access.
pub fn decide(intent: &Intent, active: Option<u64>, target_readable: bool) -> Recovery {
    match (intent.to_generation, intent.profile) {
        (Some(to), Some(profile)) if active == Some(to) && target_readable => Recovery::Finish { to, profile },
        (None, _) => Recovery::Pristine,
        _ => Recovery::Undo,
    }
}

impl Engine {
    /// Recovers a pending intent (left by a crash): forward when its target
    /// generation is active and published, back to where it started
    /// otherwise. Leftover staging trees are removed. Idempotent.
    pub fn recover(&mut self, state: &mut State) -> Result<Option<String>> {
        // Temporaries a killed run left (with or without an intent).
        self.sweep_debris()?;
        let dir = self.state_dir()?;
        let Some(intent) = Intent::pending(&dir)? else { return Ok(None) };
        let active = generation::active(&self.layout).ok().flatten();
        let target_readable =
            intent.to_generation.is_some_and(|to| generation::read_manifest(&self.layout, to).is_ok());
        let outcome = match decide(&intent, active, target_readable) {
            Recovery::Finish { to, profile } => {
                let (_, gnu_plan) = self.plan(profile, &state.pins)?;
                let m = generation::read_manifest(&self.layout, to)?;
                let live = self.activate(&m, &gnu_plan)?;
                if live.passed {
                    self.commit(state, profile, to, intent.operation == "rollback")?;
                    format!("finished the interrupted '{}' (generation {to})", intent.operation)
                } else {
                    let err = generation::smoke_error(&format!("generation {to} through /usr/bin"), &live);
                    self.fact("smoke-live", err.reason, Some(ErrorId::Smoke), intent.from_generation, Some(to));
                    let landed = self.rollback_chain(intent.from_generation, to, &gnu_plan)?;
                    state.degrade(
                        ErrorId::Smoke,
                        format!("generation {to} failed its live smoke; rolled back to {landed}"),
                    );
                    self.save_state(state)?;
                    format!("rolled the interrupted '{}' back to {landed}", intent.operation)
                }
            }
            Recovery::Pristine => {
                let n = self.restore_pristine()?;
                state.profile = None;
                self.save_state(state)?;
                format!("finished the interrupted '{}' ({n} pristine files)", intent.operation)
            }
            Recovery::Undo => self.recover_back(state, &intent)?,
        };
        self.clear_intent()?;
        self.fact("recover", outcome.clone(), None, intent.from_generation, intent.to_generation);
        Ok(Some(outcome))
    }

    /// Undoes an intent whose target never became active.
    pub(super) fn recover_back(&mut self, state: &mut State, intent: &Intent) -> Result<String> {
        let profile = intent.profile.or(state.profile).unwrap_or(Profile::Gnu);
        let (_, gnu_plan) = self.plan(profile, &state.pins)?;
        match intent.from_generation.and_then(|f| generation::read_manifest(&self.layout, f).ok()) {
            Some(m) => {
                let live = self.activate(&m, &gnu_plan)?;
                if live.passed {
                    return Ok(format!(
                        "rolled the interrupted '{}' back to generation {}",
                        intent.operation, m.generation
                    ));
                }
                let err = generation::smoke_error(&format!("generation {} through /usr/bin", m.generation), &live);
                self.fact("smoke-live", err.reason, Some(ErrorId::Smoke), None, Some(m.generation));
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(from: Option<u64>, to: Option<u64>, profile: Option<Profile>) -> Intent {
        Intent {
            schema: crate::model::intent::INTENT_SCHEMA,
            op_id: "test".into(),
            operation: "use".into(),
            from_generation: from,
            to_generation: to,
            profile,
            started: String::new(),
        }
    }

    #[test]
    fn a_flip_that_happened_is_finished_and_one_that_did_not_is_undone() {
        let i = intent(Some(1), Some(2), Some(Profile::Uutils));
        assert_eq!(decide(&i, Some(2), true), Recovery::Finish { to: 2, profile: Profile::Uutils });
        assert_eq!(decide(&i, Some(1), true), Recovery::Undo, "crashed before the flip");
        assert_eq!(decide(&i, None, true), Recovery::Undo, "nothing active yet");
        assert_eq!(decide(&i, Some(2), false), Recovery::Undo, "an unreadable target is never finished");
    }

    #[test]
    fn restoring_the_pristine_files_is_always_finished() {
        assert_eq!(decide(&intent(Some(3), None, None), Some(3), true), Recovery::Pristine);
        assert_eq!(decide(&intent(None, None, None), None, false), Recovery::Pristine);
    }

    #[test]
    fn an_intent_without_a_profile_is_undone() {
        assert_eq!(decide(&intent(Some(1), Some(2), None), Some(2), true), Recovery::Undo);
    }
}
