//! `workloadRef.scaleDown`: the referenced Deployment's replicas.

use super::Action;
use super::planner::Planner;
use super::reasons;
use crate::api::ScaleDown;

impl<'a> Planner<'a> {
    /// `workloadRef.scaleDown`: keep the referenced Deployment scaled down while the Rollout
    /// serves (on every revision, so a GitOps re-sync of its replicas is undone).
    pub(super) fn scale_down_workload(&mut self) {
        let Some(reference) = &self.observed.rollout.spec.workload_ref else {
            return;
        };
        let Some(current) = self.observed.workload.as_ref().and_then(|w| w.deployment_replicas) else {
            return;
        };
        // The Rollout serves once its own pods are all available, at any step of any revision.
        let available: i32 = self.observed.replica_sets.iter().filter(|rs| rs.owned).map(|rs| rs.available).sum();
        let serving = available >= self.replicas;
        let target = match reference.scale_down {
            Some(ScaleDown::OnSuccess) if serving => 0,
            Some(ScaleDown::Progressively) => (self.replicas - available).max(0),
            _ => return,
        };
        if target < current {
            self.actions.push(Action::ScaleWorkload { name: reference.name.clone(), replicas: target });
            self.event(
                reasons::SCALING_WORKLOAD,
                format!("Scaled Deployment {} from {current} to {target}", reference.name),
            );
        }
    }
}
