//! Rollback: `oxidizr-hook rollback` goes to the newest good generation
//! older than the active one and holds it; the rollback chain takes a
//! failed live smoke back to the previous generation, else a fresh GNU
//! one, else the pristine GNU files.

use std::collections::BTreeMap;

use super::generation::{self};
use super::plan::Plan;
use crate::error::{Error, ErrorId, Result};
use crate::model::state::{Profile, State};
use crate::smoke::{self, SmokeTarget};

use super::Engine;

impl Engine {
    /// `rollback`: the newest good generation older than the active one
    /// (see [`crate::model::state::older_good`]), with the whole shape: intent,
    /// flip + link, live smoke, the rollback chain when it fails, commit.
    /// The state then holds that generation (`held`). `E_POLICY` when
    /// there is nothing older. Returns (from, to, its profile).
    pub fn roll_back(&mut self, state: &mut State) -> Result<(u64, u64, Profile)> {
        let active = generation::active(&self.layout)?
            .ok_or_else(|| Error::new(ErrorId::Policy, "nothing is active: there is nothing to roll back"))?;
        let (existing, _) = generation::list(&self.layout)?;
        let target = crate::model::state::older_good(&state.history, active, &existing).ok_or_else(|| {
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

    /// The rollback chain after a failed live smoke of generation `failed`:
    /// the previous generation if it still passes smoke, else a fresh GNU
    /// generation, else the pristine GNU files. Returns where it landed.
    pub(super) fn rollback_chain(&mut self, from: Option<u64>, failed: u64, gnu_plan: &Plan) -> Result<String> {
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
}
