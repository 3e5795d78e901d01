//! A Rollout being deleted: give the Deployment its pods back and release the Services before
//! the garbage collector removes the ReplicaSets.

use super::planner::Planner;
use super::reasons;
use super::{Action, Event, Observed, Plan, later, rollout_name, seconds};
use crate::api::{FINALIZER, WorkloadRef};

/// A Rollout being deleted gives the restored Deployment this long to become available.
const RESTORE_TIMEOUT: i64 = 600;

impl<'a> Planner<'a> {
    pub(super) fn ensure_finalizer(&mut self) {
        let rollout = &self.observed.rollout;
        let restores_workload = rollout.spec.workload_ref.as_ref().is_some_and(WorkloadRef::scales_down);
        let has = rollout.metadata.finalizers.iter().flatten().any(|f| f == FINALIZER);
        if (restores_workload || self.valid.services.is_some()) && !has {
            self.actions.push(Action::AddFinalizer);
        }
    }
}

/// A Rollout being deleted: give the Deployment its pods back, release the Services, then let
/// the garbage collector remove the ReplicaSets.
pub(super) fn finalize(observed: &Observed) -> Plan {
    let rollout = &observed.rollout;
    let mut plan = Plan { status: rollout.status.clone().unwrap_or_default(), ..Default::default() };
    if !rollout.metadata.finalizers.iter().flatten().any(|f| f == FINALIZER) {
        return plan;
    }
    let name = rollout_name(rollout);
    let replicas = rollout.spec.replicas.unwrap_or(1);
    let mut done = true;
    if let (Some(reference), Some(workload)) = (&rollout.spec.workload_ref, &observed.workload)
        && reference.scales_down()
        && let Some(current) = workload.deployment_replicas
    {
        if current < replicas {
            plan.actions.push(Action::ScaleWorkload { name: reference.name.clone(), replicas });
            plan.events.push(Event {
                warning: false,
                reason: reasons::WORKLOAD_RESTORED,
                message: format!("Scaled Deployment {} back to {replicas} before deleting the Rollout", reference.name),
            });
        }
        let deleting_since = rollout.metadata.deletion_timestamp.as_ref().map_or(observed.now, |t| t.0);
        let give_up_at = later(deleting_since, seconds(RESTORE_TIMEOUT));
        if workload.deployment_available < replicas && observed.now < give_up_at {
            done = false;
            // Nothing may change meanwhile: look again when waiting would end.
            plan.requeue_at = Some(give_up_at);
            plan.status.message = Some(format!(
                "deleting: waiting for Deployment {}: {} of {replicas} pods available",
                reference.name, workload.deployment_available
            ));
        }
    }
    for service in observed.services.values() {
        if service.managed_by.as_deref() == Some(name) {
            plan.actions.push(Action::SetServiceSelector {
                service: service.name.clone(),
                hash: None,
                changed_at: observed.now,
            });
        }
    }
    if done {
        plan.actions.push(Action::RemoveFinalizer);
    }
    plan
}
