//! Analysis on a Rollout: the runs of its analysis steps and of its background analysis,
//! started, followed, stopped and cleared away; their outcomes (a failure aborts, an
//! inconclusive run pauses); and the checks of the spec that need the templates.
//!
//! Two phases of the plan: `assess_analysis`, early, so an abort or a pause it decides shapes
//! every write of the same plan; `keep_analysis_runs`, late, once the step this plan ends at is
//! known, so the run of a step reached in this plan starts in it.

mod outcome;
mod runs;
pub mod validate;

use std::collections::BTreeSet;

use super::planner::Planner;
use super::reasons;
use super::{Action, Event};
use crate::api::{
    AnalysisPhase, AnalysisRun, CanaryStatus, DEFAULT_RUN_HISTORY_LIMIT, POD_TEMPLATE_HASH_LABEL, PauseCondition,
    RolloutAnalysis, RolloutAnalysisRunStatus,
};
pub use runs::RunKind;
use runs::{RunSource, is_named_after};

impl<'a> Planner<'a> {
    /// Follows the current runs: a new revision or a retry forgets them (they are stopped as
    /// history); a Failed or Error run aborts the update; an Inconclusive one pauses it.
    pub(super) fn assess_analysis(&mut self) {
        let retrying = self.before.aborted_at.is_some() && self.next.aborted_at.is_none();
        let new_revision = self.before.current_pod_hash.as_deref() != Some(self.hash.as_str());
        if retrying || new_revision {
            self.forget_runs();
        }
        if self.aborted() || self.promoted() || self.next.promote_full == Some(true) {
            return;
        }
        for kind in [RunKind::Step(self.index()), RunKind::Background] {
            let Some(recorded) = self.run_status(kind).cloned() else { continue };
            let Some(run) = self.current_run(kind, &recorded.name) else { continue };
            let phase = outcome::phase(run);
            if phase.as_str() != recorded.status {
                self.run_phase_event(kind, &recorded, phase);
                let message = run.status.as_ref().and_then(|s| s.message.clone());
                let name = recorded.name.clone();
                self.set_run_status(kind, Some(RolloutAnalysisRunStatus { name, status: phase.to_string(), message }));
            }
            match phase {
                AnalysisPhase::Failed | AnalysisPhase::Error => {
                    self.begin_abort(Some(&outcome::verdict(run)));
                    return;
                }
                AnalysisPhase::Inconclusive => self.hold_inconclusive(kind, run, &recorded.status),
                _ => {}
            }
        }
    }

    /// An Inconclusive run pauses the rollout until someone decides: promote goes on (past the
    /// step, or with a fresh background run), abort rolls back.
    fn hold_inconclusive(&mut self, kind: RunKind, run: &AnalysisRun, recorded: &str) {
        let message = format!("{}; promote to go on, abort to roll back", outcome::verdict(run));
        if self.inconclusive_held() {
            self.wait(format!("{}: {message}", reasons::INCONCLUSIVE_ANALYSIS_RUN));
            return;
        }
        if recorded == AnalysisPhase::Inconclusive.as_str() && self.next.controller_pause == Some(true) {
            // This plan's predecessor paused for it and someone lifted the pause: promoted.
            match kind {
                RunKind::Step(_) => self.inconclusive_promoted = true,
                RunKind::Background => self.set_run_status(kind, None),
            }
            return;
        }
        let pause = PauseCondition { reason: reasons::INCONCLUSIVE_ANALYSIS_RUN.into(), start_time: self.stamp() };
        self.next.pause_conditions.get_or_insert_with(Vec::new).push(pause);
        self.next.controller_pause = Some(true);
        self.event(reasons::ROLLOUT_PAUSED, format!("Rollout is paused ({})", reasons::INCONCLUSIVE_ANALYSIS_RUN));
        self.wait(format!("{}: {message}", reasons::INCONCLUSIVE_ANALYSIS_RUN));
    }

    /// Whether an Inconclusive run holds the rollout.
    pub(super) fn inconclusive_held(&self) -> bool {
        self.pause_conditions().iter().any(|c| c.reason == reasons::INCONCLUSIVE_ANALYSIS_RUN)
    }

    /// Whether the current analysis step is done: its run is Successful (or was Inconclusive
    /// and promoted). If not, says what it waits for.
    pub(super) fn step_analysis_done(&mut self, index: usize) -> bool {
        if self.inconclusive_promoted {
            return true;
        }
        let total = self.valid.steps.len();
        let kind = RunKind::Step(index);
        let run = self.run_status(kind).and_then(|s| self.current_run(kind, &s.name));
        match run {
            Some(run) if outcome::phase(run) == AnalysisPhase::Successful => true,
            Some(run) => {
                let name = run.metadata.name.clone().unwrap_or_default();
                self.wait(format!("step {index}/{total}: analysis run {name}: {}", outcome::progress(run)));
                false
            }
            None => {
                self.wait(format!("step {index}/{total}: starting analysis"));
                false
            }
        }
    }

    /// Starts the runs the rollout needs now, and stops and clears away the others.
    pub(super) fn keep_analysis_runs(&mut self) {
        // Done with analysis: the runs still measuring stop now. (An abort keeps its runs in the
        // status, to show why.)
        if self.promoted() || self.next.promote_full == Some(true) {
            self.forget_runs();
        }
        let active =
            !(self.aborted() || self.promoted() || self.stable_missing || self.next.promote_full == Some(true));
        if active && !self.inconclusive_held() {
            let index = self.index();
            let step = self.current_step().and_then(|s| s.analysis.as_ref());
            self.keep_run(RunKind::Step(index), step);
            let background = self.valid.canary.analysis.as_ref().filter(|b| {
                self.valid.steps.is_empty() || self.next.current_step_index.unwrap_or(0) >= b.starting_step.unwrap_or(0)
            });
            self.keep_run(RunKind::Background, background.map(|b| &b.analysis));
        }
        self.stop_other_runs();
    }

    /// Keeps the current run of `kind` if it is the one `wanted` asks for, or starts it.
    fn keep_run(&mut self, kind: RunKind, wanted: Option<&'a RolloutAnalysis>) {
        let Some(analysis) = wanted else {
            self.set_run_status(kind, None);
            return;
        };
        let source = self.run_source();
        let base = source.base_name(kind);
        let current = self.run_status(kind).map(|s| s.name.clone()).filter(|name| is_named_after(name, &base));
        let name = match &current {
            // Created by an earlier plan and not in the cache yet: created again (a no-op), so a
            // run someone deleted comes back.
            Some(name) if self.observed_run(name).is_none() => name.clone(),
            Some(_) => return,
            None => {
                // A run an earlier plan started but whose status write was lost is still ours.
                if let Some(name) = self.unfinished_run(&base) {
                    let status = RolloutAnalysisRunStatus { name, status: String::new(), message: None };
                    self.set_run_status(kind, Some(status));
                    return;
                }
                self.free_run_name(&base)
            }
        };
        let made = source.run(kind, analysis, &name);
        match made {
            Ok(run) => {
                self.actions.push(Action::CreateAnalysisRun(Box::new(run)));
                if current.is_none() {
                    let status =
                        RolloutAnalysisRunStatus { name, status: AnalysisPhase::Pending.to_string(), message: None };
                    self.set_run_status(kind, Some(status));
                }
            }
            // Validation made the same run: only a race with a template change gets here.
            Err(error) => self.wait(format!("analysis run {name} can't be started yet: {error}")),
        }
    }

    /// Runs nobody follows any more are terminated; finished ones are kept up to the history
    /// limits, newest first; runs of ReplicaSets that are gone are deleted.
    fn stop_other_runs(&mut self) {
        let current: BTreeSet<String> = [RunKind::Step(0), RunKind::Background]
            .into_iter()
            .filter_map(|kind| self.run_status(kind).map(|s| s.name.clone()))
            .collect();
        let limits = self.observed.rollout.spec.analysis.as_ref();
        let mut keep_successful =
            limits.and_then(|l| l.successful_run_history_limit).unwrap_or(DEFAULT_RUN_HISTORY_LIMIT);
        let mut keep_unsuccessful =
            limits.and_then(|l| l.unsuccessful_run_history_limit).unwrap_or(DEFAULT_RUN_HISTORY_LIMIT);
        let mut newest_first: Vec<&AnalysisRun> =
            self.observed.analysis_runs.iter().filter(|r| r.metadata.deletion_timestamp.is_none()).collect();
        newest_first.sort_by(|a, b| {
            (&b.metadata.creation_timestamp, &b.metadata.name).cmp(&(&a.metadata.creation_timestamp, &a.metadata.name))
        });
        for run in newest_first {
            let name = run.metadata.name.clone().unwrap_or_default();
            let phase = outcome::phase(run);
            let followed = current.contains(&name);
            if (!followed || self.aborted()) && !phase.completed() && !run.spec.terminate {
                self.actions.push(Action::TerminateAnalysisRun { name: name.clone() });
            }
            if followed {
                continue;
            }
            let hash = run.metadata.labels.as_ref().and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL));
            let revision_gone = hash.is_none_or(|h| *h != self.hash && self.rs_by_hash(h).is_none());
            let over_limit = match phase {
                AnalysisPhase::Successful => !take(&mut keep_successful),
                AnalysisPhase::Pending | AnalysisPhase::Running => false,
                _ => !take(&mut keep_unsuccessful),
            };
            if revision_gone || over_limit {
                self.actions.push(Action::DeleteAnalysisRun { name });
            }
        }
    }

    /// A run named after `base` that still measures (not finished, not told to stop).
    fn unfinished_run(&self, base: &str) -> Option<String> {
        self.observed.analysis_runs.iter().find_map(|run| {
            let name = run.metadata.name.as_deref()?;
            let unfinished = !outcome::phase(run).completed() && !run.spec.terminate;
            (unfinished && is_named_after(name, base) && run.metadata.deletion_timestamp.is_none()).then(|| name.into())
        })
    }

    /// `base`, or the first `base.N` no run has: a retry starts a run of its own.
    fn free_run_name(&self, base: &str) -> String {
        (0..)
            .map(|n| if n == 0 { base.to_string() } else { format!("{base}.{n}") })
            .find(|name| self.observed_run(name).is_none())
            .unwrap_or_else(|| base.to_string())
    }

    fn run_source(&self) -> RunSource<'_> {
        RunSource {
            rollout: &self.observed.rollout,
            templates: &self.observed.analysis_templates,
            selector_labels: self.valid.selector.match_labels.as_ref().unwrap_or(&EMPTY),
            stable_hash: self.stable_hash().unwrap_or_default(),
            latest_hash: &self.hash,
            revision: self.revision(),
        }
    }

    fn observed_run(&self, name: &str) -> Option<&'a AnalysisRun> {
        self.observed.analysis_runs.iter().find(|r| r.metadata.name.as_deref() == Some(name))
    }

    /// The run `name` if it is the current one of `kind` (a step's run only for its step).
    fn current_run(&self, kind: RunKind, name: &str) -> Option<&'a AnalysisRun> {
        let run = self.observed_run(name)?;
        match kind {
            RunKind::Step(index) => (runs::step_index(run) == Some(index)).then_some(run),
            RunKind::Background => Some(run),
        }
    }

    fn run_status(&self, kind: RunKind) -> Option<&RolloutAnalysisRunStatus> {
        let canary = self.next.canary.as_ref()?;
        match kind {
            RunKind::Step(_) => canary.current_step_analysis_run_status.as_ref(),
            RunKind::Background => canary.current_background_analysis_run_status.as_ref(),
        }
    }

    /// Neither the step's nor the background run is followed any more.
    fn forget_runs(&mut self) {
        self.set_run_status(RunKind::Background, None);
        self.set_run_status(RunKind::Step(0), None);
    }

    fn set_run_status(&mut self, kind: RunKind, status: Option<RolloutAnalysisRunStatus>) {
        if status.is_none() && self.run_status(kind).is_none() {
            return;
        }
        let canary = self.next.canary.get_or_insert_with(CanaryStatus::default);
        match kind {
            RunKind::Step(_) => canary.current_step_analysis_run_status = status,
            RunKind::Background => canary.current_background_analysis_run_status = status,
        }
    }

    /// `AnalysisRun<Phase>`, as upstream words it (notification triggers match on these).
    fn run_phase_event(&mut self, kind: RunKind, recorded: &RolloutAnalysisRunStatus, phase: AnalysisPhase) {
        let previous = if recorded.status.is_empty() { "NoPreviousStatus" } else { recorded.status.as_str() };
        let message =
            format!("{} Analysis Run '{}' Status New: '{phase}' Previous: '{previous}'", kind.label(), recorded.name);
        let warning = matches!(phase, AnalysisPhase::Failed | AnalysisPhase::Error);
        self.events.push(Event { warning, reason: reasons::analysis_run(phase), message });
    }
}

static EMPTY: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();

/// Counts one more kept run against `limit`; false once it is used up.
fn take(limit: &mut i32) -> bool {
    if *limit <= 0 {
        return false;
    }
    *limit -= 1;
    true
}
