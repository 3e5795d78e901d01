//! The step machine: whether the current step is done (decided in one place), completing it,
//! and pauses.

use k8s_openapi::jiff::SignedDuration;

use super::later;
use super::planner::Planner;
use super::reasons;
use super::step_list;
use crate::api::PauseCondition;

impl<'a> Planner<'a> {
    /// A scaling event (spec.replicas changed since the ReplicaSets were sized) re-splits the
    /// pods without advancing a step.
    pub(super) fn scaling_event(&self) -> bool {
        [self.new_rs, self.stable_rs()]
            .into_iter()
            .flatten()
            .filter(|rs| rs.spec_replicas > 0)
            .any(|rs| rs.desired_replicas_annotation.is_some_and(|d| d != self.replicas))
    }

    /// Steps do not move while aborted, promoted, finished, paused by a person or rescaling.
    pub(super) fn steps_held(&self) -> bool {
        self.aborted()
            || self.promoted()
            || self.at_end()
            || self.paused_by_user()
            || self.scaling_event()
            || self.stable_missing
            || self.inconclusive_held()
    }

    /// Completes the current step if it is done. Asked twice per plan: before the writes are
    /// planned, so a pause that expired hands over to the next step's sizing and weights in this
    /// same plan; and after, so a setWeight step whose weight this plan writes is done with it
    /// (the status is written only once every action succeeded): the step, its weights and the
    /// next pause land in one status write.
    pub(super) fn advance_step(&mut self, writes_planned: bool) {
        if !self.steps_held() && self.step_done(writes_planned) {
            self.complete_step(self.index());
        }
    }

    /// Whether the current step is done: the one place that decides it. A step that isn't says
    /// what it waits for.
    fn step_done(&mut self, writes_planned: bool) -> bool {
        let index = self.index();
        let step = &self.valid.steps[index];
        if self.at_match_traffic_weight() {
            // It sizes nothing itself: done once reached.
            return !writes_planned;
        }
        if let Some(pause) = &step.pause {
            return !writes_planned && self.pause_done(pause.duration.as_ref(), index);
        }
        if step.analysis.is_some() {
            return !writes_planned && self.step_analysis_done(index);
        }
        if step.set_header_route.is_some() {
            return self.header_step_done(writes_planned);
        }
        if step.set_weight.is_none() && step.set_canary_scale.is_none() {
            return false;
        }
        let sized = self.sizing_step_done(writes_planned);
        if writes_planned { sized && step.set_weight.is_some() && self.written_weight.is_some() } else { sized }
    }

    /// Whether the current setWeight or setCanaryScale step has its pods and weights; if not,
    /// what it waits for (the weights only once this plan's own writes are known).
    fn sizing_step_done(&mut self, writes_planned: bool) -> bool {
        let index = self.index();
        let total = self.valid.steps.len();
        let wants_weight = self.valid.steps[index].set_weight.is_some() && self.routed();
        let (canary, stable) = self.targets();
        let at_counts = self.at_counts(canary, stable);
        let target = step_list::set_weight_at(self.valid.steps, index, self.valid.max_weight);
        let weight_ok = !wants_weight || self.weights_after_writes().iter().all(|w| *w == target);
        if !at_counts {
            self.wait_for_counts(canary, stable);
        } else if !weight_ok && writes_planned {
            self.wait(format!("step {index}/{total}: waiting for the VirtualService weights to be set"));
        }
        at_counts && weight_ok
    }

    pub(super) fn complete_step(&mut self, index: usize) {
        let total = self.valid.steps.len();
        let step = &self.valid.steps[index];
        let description = step_list::describe_step(step);
        self.next.current_step_index = Some(i32::try_from(index + 1).unwrap_or(i32::MAX));
        self.event(
            reasons::ROLLOUT_STEP_COMPLETED,
            format!("Rollout step {}/{total} completed ({description})", index + 1),
        );
        let had_pause = !self.pause_conditions().is_empty() || self.next.controller_pause == Some(true);
        if had_pause {
            self.clear_pause();
            self.event(reasons::ROLLOUT_RESUMED, "Rollout is resumed".into());
        }
        // Entering a pause step starts its clock now.
        if let Some(next_step) = self.valid.steps.get(index + 1)
            && next_step.pause.is_some()
        {
            self.enter_pause();
            let duration = next_step.pause.as_ref().and_then(|p| p.duration.as_ref());
            self.pause_done(duration, index + 1);
        }
    }

    pub(super) fn enter_pause(&mut self) {
        self.next.pause_conditions =
            Some(vec![PauseCondition { reason: reasons::CANARY_PAUSE_STEP.into(), start_time: self.stamp() }]);
        self.next.controller_pause = Some(true);
        self.event(reasons::ROLLOUT_PAUSED, "Rollout is paused (CanaryPauseStep)".into());
    }

    /// Whether the pause step at `index` is over: promoted by a person, or its duration has
    /// passed. Messages show it as "step index/total", like the plugin.
    pub(super) fn pause_done(
        &mut self,
        duration: Option<&k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>,
        index: usize,
    ) -> bool {
        let total = self.valid.steps.len();
        let started =
            self.pause_conditions().iter().find(|c| c.reason == reasons::CANARY_PAUSE_STEP).map(|c| c.start_time.0);
        let Some(started) = started else {
            if self.next.controller_pause == Some(true) {
                return true; // the pause condition was cleared: promoted
            }
            self.enter_pause();
            return self.pause_done(duration, index);
        };
        let Some(duration) = duration.and_then(step_list::parse_duration) else {
            self.wait(format!("CanaryPauseStep: step {index}/{total}: paused until promoted"));
            return false;
        };
        let ends = later(started, SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX));
        if self.now >= ends {
            self.pause_expired_at = Some(ends);
            return true;
        }
        self.requeue_at(ends);
        self.wait(format!("CanaryPauseStep: step {index}/{total}: paused until {ends}"));
        false
    }

    /// The canary weight the replicas are sized for.
    pub(super) fn replica_weight(&self) -> i32 {
        if self.aborted() { 0 } else { step_list::set_weight_at(self.valid.steps, self.index(), self.valid.max_weight) }
    }

    /// A `setCanaryScale{matchTrafficWeight}` step only hands the canary's size back to the
    /// weights; it sizes nothing itself, so the canary never drops to zero on the way.
    pub(super) fn at_match_traffic_weight(&self) -> bool {
        !self.aborted()
            && self
                .current_step()
                .and_then(|s| s.set_canary_scale.as_ref())
                .is_some_and(|s| s.match_traffic_weight == Some(true))
    }
}
