//! The boot gate (`oxidizr-hook boot-gate`, `oxidizr-boot-gate.service`):
//! early in every boot, before the services that use the core commands, the
//! active generation's live check runs — every managed `/usr/bin` command
//! resolves to the very file its generation tested, and one command per
//! distinct binary executes ([`crate::smoke::verdict::live`]). When it
//! fails, the gate falls back with the engine's own rollback machinery:
//! the newest other generation whose activation (flip, links, live smoke)
//! passes, else the rollback chain's fresh GNU generation, else the
//! pristine GNU files. The state is marked degraded and the fall-back is
//! logged with [`crate::model::facts::MESSAGE_DEGRADED`]; the next boot
//! finds a generation that passes and leaves it alone.

use super::generation::{self};
use super::Engine;
use crate::error::{ErrorId, Result};
use crate::model::state::{now, HistoryEntry, Profile, State};
use crate::smoke::verdict;

/// How the degraded reason the gate records begins (the gate clears only
/// its own mark).
pub const GATE_REASON: &str = "boot gate:";

/// What the boot gate found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GateOutcome {
    /// Nothing is active (GNU's own files): nothing to check.
    NothingActive,
    /// The active generation passed its live check.
    Passed {
        /// The active generation.
        generation: u64,
    },
    /// The active generation failed; `boot_fallback = false`: reported only.
    FailedReported {
        /// The active generation.
        generation: u64,
        /// Why it failed.
        reason: String,
    },
    /// The active generation failed and the gate fell back.
    FellBack {
        /// The generation that failed.
        from: u64,
        /// Where the gate landed, for humans.
        landed: String,
        /// Why the generation failed.
        reason: String,
    },
}

impl Engine {
    /// The boot gate's work (see the module documentation). `fallback`:
    /// the `boot_fallback` setting; false only checks and reports.
    pub fn boot_gate(&mut self, state: &mut State, fallback: bool) -> Result<GateOutcome> {
        let Some(active) = generation::active(&self.layout)? else { return Ok(GateOutcome::NothingActive) };
        let reason = match generation::read_manifest(&self.layout, active) {
            Ok(m) => {
                let live = verdict::live(&self.smoke_config(), &m.applets, &m.smoke);
                if live.passed {
                    self.fact("boot-gate", format!("generation {active} passed its live check"), None, None, None);
                    // Our own fall-back of an earlier boot, on the very
                    // generation it landed on, held through a whole boot:
                    // the degraded mark has done its job (that boot's
                    // verify failed, the journal keeps the event); the
                    // hold stays until the admin or a package change moves.
                    if state.held == Some(active)
                        && state.degraded.as_ref().is_some_and(|d| d.reason.starts_with(GATE_REASON))
                    {
                        state.degraded = None;
                        self.save_state(state)?;
                        self.fact(
                            "boot-gate",
                            format!("the fall-back generation {active} passed a later boot: degraded mark cleared (still held)"),
                            None,
                            Some(active),
                            Some(active),
                        );
                    }
                    return Ok(GateOutcome::Passed { generation: active });
                }
                generation::smoke_error(&format!("generation {active} through /usr/bin"), &live).reason
            }
            Err(e) => e.reason,
        };
        if !fallback {
            self.fact(
                "boot-gate",
                format!("{reason}; boot_fallback = false: no fall-back"),
                Some(ErrorId::Smoke),
                Some(active),
                None,
            );
            return Ok(GateOutcome::FailedReported { generation: active, reason });
        }
        self.fact("smoke-live", reason.clone(), Some(ErrorId::Smoke), Some(active), None);
        // The newest other generation a committed switch made active with a
        // passed live smoke, that still exists and passes again once active.
        let (existing, _) = generation::list(&self.layout)?;
        let mut candidates: Vec<u64> = state
            .history
            .iter()
            .filter(|h| h.smoke_passed && h.generation != active && existing.contains(&h.generation))
            .map(|h| h.generation)
            .collect();
        candidates.sort_unstable_by(|a, b| b.cmp(a));
        candidates.dedup();
        let mut landed = None;
        for g in candidates {
            let Ok(m) = generation::read_manifest(&self.layout, g) else { continue };
            let (_, gnu_plan) = self.plan(m.profile, &state.pins)?;
            self.record_intent(Some(active), Some(g), Some(m.profile))?;
            let live = self.activate(&m, &gnu_plan)?;
            if live.passed {
                self.fact("rollback", format!("back on generation {g}"), None, Some(active), Some(g));
                // Held, like `rollback`: the hooks do not rebuild toward
                // the failed generation's plan on their own.
                self.commit(state, m.profile, g, true)?;
                landed = Some(format!("generation {g}"));
                break;
            }
            let err = generation::smoke_error(&format!("generation {g} through /usr/bin"), &live);
            self.fact("smoke-live", err.reason, Some(ErrorId::Smoke), Some(active), Some(g));
        }
        let landed = match landed {
            Some(l) => l,
            None => {
                let (_, gnu_plan) = self.plan(Profile::Gnu, &state.pins)?;
                self.record_intent(Some(active), None, None)?;
                let l = self.rollback_chain(None, active, &gnu_plan)?;
                // A fresh GNU generation is held like a rollback target
                // (the desired profile stays: a fixed uutils package
                // releases the hold through the hooks); it is recorded as
                // a good generation, its live smoke passed.
                if let Some(g) = generation::active(&self.layout)?.filter(|g| *g != active) {
                    state.held = Some(g);
                    state.record(HistoryEntry {
                        generation: g,
                        profile: Profile::Gnu,
                        operation: self.operation.clone(),
                        at: now(),
                        smoke_passed: true,
                    });
                }
                self.clear_intent()?;
                l
            }
        };
        let text = format!(
            "{GATE_REASON} generation {active} failed its live check at boot ({reason}); fell back to {landed}"
        );
        state.degrade(ErrorId::Smoke, text.clone());
        self.save_state(state)?;
        self.fact("degraded", text, None, Some(active), None);
        Ok(GateOutcome::FellBack { from: active, landed, reason })
    }
}
