//! Argo CD's health assessment of a Rollout, re-stated from its published rules (argoproj/argo-cd,
//! `resource_customizations/argoproj.io/Rollout/health.lua`), so tests can check what Argo CD
//! shows for our objects. Only the path a Rollout with `status.phase` takes is re-stated.

use rollouts_controller::api::{Rollout, WORKLOAD_GENERATION_ANNOTATION};

/// Argo CD's health of a resource: status and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    pub status: String,
    pub message: String,
}

fn number(text: Option<&str>) -> Option<i64> {
    text.and_then(|t| t.trim().parse().ok())
}

/// The spec has been seen: observedGeneration (a number in a string) equals the generation. A
/// non-numeric or larger one is a pre-v0.10 Rollout and counts as seen.
fn generation_observed(rollout: &Rollout) -> bool {
    let Some(status) = &rollout.status else { return false };
    match number(status.observed_generation.as_deref()) {
        None => true,
        Some(observed) => match rollout.metadata.generation {
            Some(generation) if observed <= generation => observed == generation,
            _ => true,
        },
    }
}

/// With a workloadRef and any annotations at all, the workload-generation annotation must equal
/// status.workloadObservedGeneration (both absent counts as equal).
fn workload_generation_observed(rollout: &Rollout) -> bool {
    let Some(annotations) = &rollout.metadata.annotations else { return true };
    if rollout.spec.workload_ref.is_none() {
        return true;
    }
    let wanted = number(annotations.get(WORKLOAD_GENERATION_ANNOTATION).map(String::as_str));
    let observed = number(rollout.status.as_ref().and_then(|s| s.workload_observed_generation.as_deref()));
    wanted == observed
}

/// What Argo CD shows for `rollout`.
pub fn health(rollout: &Rollout) -> Health {
    let health = |status: &str, message: &str| Health { status: status.into(), message: message.into() };
    if !generation_observed(rollout) || !workload_generation_observed(rollout) {
        return health("Progressing", "Waiting for rollout spec update to be observed");
    }
    let status = rollout.status.clone().unwrap_or_default();
    match status.phase.as_deref() {
        Some("Paused") => health("Suspended", status.message.as_deref().unwrap_or_default()),
        Some(phase) => health(phase, status.message.as_deref().unwrap_or_default()),
        // Rollouts written by controllers before v1.0; ours always have a phase once reconciled.
        None => health("Progressing", "status has not been reconciled"),
    }
}
