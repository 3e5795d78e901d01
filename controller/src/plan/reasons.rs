//! The reasons of conditions, pause conditions and Events, as upstream names them where it has
//! them: dashboards, alerts and `kubectl argo rollouts` match on these words.

// Conditions (Progressing, Available, Paused, Healthy, Completed, InvalidSpec).
pub const AVAILABLE: &str = "AvailableReason";
pub const NEW_REPLICA_SET_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const NEW_REPLICA_SET_CREATED: &str = "NewReplicaSetCreated";
pub const REPLICA_SET_UPDATED: &str = "ReplicaSetUpdated";
pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
pub const ROLLOUT_ABORTED: &str = "RolloutAborted";
pub const ROLLOUT_PAUSED: &str = "RolloutPaused";
pub const ROLLOUT_RETRY: &str = "RolloutRetry";
pub const ROLLOUT_COMPLETED: &str = "RolloutCompleted";
pub const ROLLOUT_HEALTHY: &str = "RolloutHealthy";
pub const INVALID_SPEC: &str = "InvalidSpec";

/// The pause condition of a pause step.
pub const CANARY_PAUSE_STEP: &str = "CanaryPauseStep";
/// The pause condition of an Inconclusive analysis run.
pub const INCONCLUSIVE_ANALYSIS_RUN: &str = "InconclusiveAnalysisRun";

// Events (also ROLLOUT_ABORTED, ROLLOUT_PAUSED, ROLLOUT_COMPLETED, NEW_REPLICA_SET_CREATED and
// INVALID_SPEC above).
pub const ROLLOUT_UPDATED: &str = "RolloutUpdated";
pub const ROLLOUT_NOT_COMPLETED: &str = "RolloutNotCompleted";
pub const ROLLOUT_STEP_COMPLETED: &str = "RolloutStepCompleted";
pub const ROLLOUT_RESUMED: &str = "RolloutResumed";
pub const ROLLOUT_RESTARTED: &str = "RolloutRestarted";
pub const SCALING_REPLICA_SET: &str = "ScalingReplicaSet";
pub const SKIP_STEPS: &str = "SkipSteps";
pub const SWITCH_SERVICE: &str = "SwitchService";
pub const TRAFFIC_WEIGHT_UPDATED: &str = "TrafficWeightUpdated";
pub const HEADER_ROUTES_UPDATED: &str = "HeaderRoutesUpdated";
// Events of this controller only.
pub const ROLLOUT_ABORT_IGNORED: &str = "RolloutAbortIgnored";
pub const REPLICA_SET_RECREATED: &str = "ReplicaSetRecreated";
pub const SCALING_WORKLOAD: &str = "ScalingWorkload";
pub const WORKLOAD_RESTORED: &str = "WorkloadRestored";

/// `AnalysisRun<Phase>`: the Event of a Rollout's run changing phase.
pub fn analysis_run(phase: crate::api::AnalysisPhase) -> &'static str {
    use crate::api::AnalysisPhase::*;
    match phase {
        Pending => "AnalysisRunPending",
        Running => "AnalysisRunRunning",
        Successful => "AnalysisRunSuccessful",
        Failed => "AnalysisRunFailed",
        Error => "AnalysisRunError",
        Inconclusive => "AnalysisRunInconclusive",
    }
}
