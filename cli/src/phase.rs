//! The phase the plugin shows: the controller's `status.phase`, unless the controller has not
//! yet reacted to the latest spec or to a promote (the rules of Argo's plugin, its
//! `utils/rollout/rolloututil.go` GetRolloutPhase).

use std::fmt;

pub use rollouts_controller::api::Phase;
use rollouts_controller::api::Rollout;

/// A phase and what the rollout waits for (empty when there is nothing to say).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhaseInfo {
    pub phase: Phase,
    pub message: String,
}

impl PhaseInfo {
    fn new(phase: Phase, message: impl Into<String>) -> Self {
        PhaseInfo { phase, message: message.into() }
    }

    /// The message says the spec is invalid, which deserves its own icon.
    pub fn invalid_spec(&self) -> bool {
        self.phase == Phase::Degraded && self.message.starts_with("InvalidSpec")
    }
}

/// `<Phase>` or `<Phase> - <message>`, the line `status` prints.
impl fmt::Display for PhaseInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{}", self.phase)
        } else {
            write!(f, "{} - {}", self.phase, self.message)
        }
    }
}

pub const SPEC_NOT_OBSERVED: &str = "waiting for rollout spec update to be observed";
pub const UNPAUSE_NOT_OBSERVED: &str = "waiting for rollout to unpause";
pub const WORKLOAD_NOT_OBSERVED: &str = "waiting for rollout spec update to be observed for the reference workload";

/// The phase of `rollout` as a user should see it. `workload_generation` is the
/// `metadata.generation` of the Deployment its workloadRef names, when the user may read it.
pub fn client_phase(rollout: &Rollout, workload_generation: Option<i64>) -> PhaseInfo {
    let status = rollout.status.clone().unwrap_or_default();
    if !generation_observed(rollout) {
        return PhaseInfo::new(Phase::Progressing, SPEC_NOT_OBSERVED);
    }
    // A promote cleared the pause conditions, and the controller hasn't acted on it yet.
    let unpausing = status.controller_pause == Some(true) && status.pause_conditions.as_ref().is_none_or(Vec::is_empty);
    if unpausing {
        return PhaseInfo::new(Phase::Progressing, UNPAUSE_NOT_OBSERVED);
    }
    // A changed Deployment (e.g. `set image`) that the controller hasn't read yet: the stored
    // phase still describes the old template.
    let workload_observed = status.workload_observed_generation.as_deref().and_then(|g| g.parse::<i64>().ok());
    if let (Some(current), Some(observed)) = (workload_generation, workload_observed)
        && current != observed
    {
        return PhaseInfo::new(Phase::Progressing, WORKLOAD_NOT_OBSERVED);
    }
    let phase = status.phase.as_deref().map_or(Phase::Unknown, Phase::parse);
    PhaseInfo::new(phase, status.message.unwrap_or_default())
}

/// Whether the status describes the current spec. `observedGeneration` is a decimal string;
/// like Argo, a non-numeric one (an old spec hash) counts as observed. No status: not observed.
fn generation_observed(rollout: &Rollout) -> bool {
    let observed = rollout.status.as_ref().and_then(|s| s.observed_generation.as_deref());
    match observed.map(str::parse::<i64>) {
        None => false,
        Some(Ok(generation)) => rollout.metadata.generation == Some(generation),
        Some(Err(_)) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use rollouts_controller::api::{PauseCondition, RolloutStatus};

    fn rollout(generation: i64, status: RolloutStatus) -> Rollout {
        let mut rollout = Rollout::new("web", Default::default());
        rollout.metadata.generation = Some(generation);
        rollout.status = Some(status);
        rollout
    }

    fn observed(generation: &str, phase: &str, message: &str) -> RolloutStatus {
        RolloutStatus {
            observed_generation: Some(generation.into()),
            phase: Some(phase.into()),
            message: (!message.is_empty()).then(|| message.into()),
            ..Default::default()
        }
    }

    fn pause_step() -> PauseCondition {
        PauseCondition { reason: "CanaryPauseStep".into(), start_time: Time(Default::default()) }
    }

    #[test]
    fn the_stored_phase_is_shown_once_the_spec_is_observed() {
        let info = client_phase(&rollout(3, observed("3", "Healthy", "")), None);
        assert_eq!(info, PhaseInfo::new(Phase::Healthy, ""));
        assert_eq!(info.to_string(), "Healthy");
        let paused = client_phase(&rollout(3, observed("3", "Paused", "CanaryPauseStep")), None);
        assert_eq!(paused.to_string(), "Paused - CanaryPauseStep");
    }

    #[test]
    fn an_unobserved_generation_is_progressing() {
        let info = client_phase(&rollout(4, observed("3", "Healthy", "")), None);
        assert_eq!(info.to_string(), "Progressing - waiting for rollout spec update to be observed");
        let no_status = Rollout::new("web", Default::default());
        assert_eq!(client_phase(&no_status, None).phase, Phase::Progressing);
        assert_eq!(client_phase(&rollout(4, RolloutStatus::default()), None).message, SPEC_NOT_OBSERVED);
    }

    #[test]
    fn a_non_numeric_observed_generation_counts_as_observed() {
        let info = client_phase(&rollout(4, observed("7d8f9c", "Degraded", "RolloutAborted: x")), None);
        assert_eq!(info.phase, Phase::Degraded);
    }

    #[test]
    fn a_promote_the_controller_has_not_seen_is_progressing() {
        let mut status = observed("2", "Paused", "CanaryPauseStep");
        status.controller_pause = Some(true);
        status.pause_conditions = Some(vec![]);
        assert_eq!(
            client_phase(&rollout(2, status.clone()), None).to_string(),
            "Progressing - waiting for rollout to unpause"
        );
        status.pause_conditions = None;
        assert_eq!(client_phase(&rollout(2, status.clone()), None).message, UNPAUSE_NOT_OBSERVED);
        status.pause_conditions = Some(vec![pause_step()]);
        assert_eq!(client_phase(&rollout(2, status), None).phase, Phase::Paused);
    }

    #[test]
    fn a_workload_change_the_controller_has_not_seen_is_progressing() {
        let mut status = observed("2", "Healthy", "");
        status.workload_observed_generation = Some("5".into());
        let info = client_phase(&rollout(2, status.clone()), Some(6));
        assert_eq!(info.to_string(), format!("Progressing - {WORKLOAD_NOT_OBSERVED}"));
        assert_eq!(client_phase(&rollout(2, status.clone()), Some(5)).phase, Phase::Healthy);
        assert_eq!(client_phase(&rollout(2, status), None).phase, Phase::Healthy, "workload not readable");
        assert_eq!(client_phase(&rollout(2, observed("2", "Healthy", "")), Some(6)).phase, Phase::Healthy);
    }

    #[test]
    fn unknown_phases_are_unknown_and_invalid_specs_are_recognised() {
        assert_eq!(client_phase(&rollout(1, observed("1", "Exploded", "")), None).phase, Phase::Unknown);
        let invalid =
            client_phase(&rollout(1, observed("1", "Degraded", "InvalidSpec: The Rollout \"web\" is invalid")), None);
        assert!(invalid.invalid_spec());
        let aborted = client_phase(&rollout(1, observed("1", "Degraded", "RolloutAborted: x")), None);
        assert!(!aborted.invalid_spec());
    }
}
