//! The facts `get` and `list` show about one rollout, computed from the Rollout, its ReplicaSets
//! (when the user may list them) and the time.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use rollouts_controller::api::{
    BACKGROUND_RUN_TYPE, CanaryStep, Rollout, RolloutAnalysisRunStatus, RolloutStatus, STEP_RUN_TYPE,
};
use rollouts_controller::plan::reasons::{CANARY_PAUSE_STEP, INCONCLUSIVE_ANALYSIS_RUN};
use rollouts_controller::plan::step_list::{parse_duration, set_weight_at};

use crate::family::{revision_of, tag_of, template_hash};
use crate::phase::{PhaseInfo, client_phase};

#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub name: String,
    pub namespace: String,
    pub phase: PhaseInfo,
    pub strategy: &'static str,
    /// (current step index, number of steps), when the canary has steps.
    pub step: Option<(usize, usize)>,
    pub pause: Option<PauseState>,
    pub set_weight: i32,
    /// `None` when it depends on ReplicaSets the user may not list.
    pub actual_weight: Option<i32>,
    /// The runs the rollout follows now, as its status names them: the current step's
    /// (`Step`), then the background one (`Background`).
    pub analysis: Vec<(&'static str, RolloutAnalysisRunStatus)>,
    /// Images with their tags (stable, canary, old); `None` when the ReplicaSets are not visible.
    pub images: Option<Vec<(String, Vec<&'static str>)>>,
    pub replicas: ReplicaCounts,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicaCounts {
    pub desired: i32,
    pub current: i32,
    pub updated: i32,
    pub ready: i32,
    pub available: i32,
}

/// Why a rollout stands still, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PauseState {
    /// `spec.paused`: waits for `resume` (or `promote`).
    Manual,
    /// A pause step without a duration: waits for `promote`.
    UntilPromoted,
    /// A timed pause step, in seconds.
    Timed { remaining: u64, total: u64 },
    /// A run was Inconclusive: `promote` goes on, `abort` rolls back.
    InconclusiveAnalysis,
}

fn steps_of(rollout: &Rollout) -> &[CanaryStep] {
    rollout.spec.strategy.canary.as_ref().and_then(|c| c.steps.as_deref()).unwrap_or_default()
}

fn current_step_index(rollout: &Rollout) -> usize {
    let index = rollout.status.as_ref().and_then(|s| s.current_step_index).unwrap_or(0);
    usize::try_from(index).unwrap_or(0)
}

impl Summary {
    /// `replica_sets` are the rollout's own (see [`crate::family`]), `None` when not visible.
    /// `workload_generation`: see [`client_phase`].
    pub fn of(
        rollout: &Rollout,
        replica_sets: Option<&[ReplicaSet]>,
        workload_generation: Option<i64>,
        now: Timestamp,
    ) -> Summary {
        let status = rollout.status.clone().unwrap_or_default();
        let steps = steps_of(rollout);
        let index = current_step_index(rollout);
        let aborted = status.abort == Some(true);
        Summary {
            name: rollout.name_any(),
            namespace: rollout.namespace().unwrap_or_default(),
            phase: client_phase(rollout, workload_generation),
            strategy: strategy_name(rollout),
            step: (!steps.is_empty()).then_some((index.min(steps.len()), steps.len())),
            pause: pause_state(rollout, now),
            set_weight: if aborted { 0 } else { set_weight_at(steps, index, max_weight(rollout)) },
            actual_weight: actual_weight(rollout, replica_sets),
            analysis: current_runs(&status),
            images: replica_sets.map(|list| images(rollout, list)),
            replicas: ReplicaCounts {
                desired: rollout.spec.replicas.unwrap_or(1),
                current: status.replicas.unwrap_or(0),
                updated: status.updated_replicas.unwrap_or(0),
                ready: status.ready_replicas.unwrap_or(0),
                available: status.available_replicas.unwrap_or(0),
            },
        }
    }
}

fn current_runs(status: &RolloutStatus) -> Vec<(&'static str, RolloutAnalysisRunStatus)> {
    let Some(canary) = &status.canary else { return Vec::new() };
    [
        (STEP_RUN_TYPE, &canary.current_step_analysis_run_status),
        (BACKGROUND_RUN_TYPE, &canary.current_background_analysis_run_status),
    ]
    .into_iter()
    .filter_map(|(kind, run)| Some((kind, run.clone()?)))
    .collect()
}

fn strategy_name(rollout: &Rollout) -> &'static str {
    let strategy = &rollout.spec.strategy;
    match (&strategy.canary, &strategy.blue_green) {
        (Some(_), _) => "Canary",
        (None, Some(_)) => "BlueGreen",
        (None, None) => "-",
    }
}

fn pause_state(rollout: &Rollout, now: Timestamp) -> Option<PauseState> {
    if rollout.spec.paused == Some(true) {
        return Some(PauseState::Manual);
    }
    let conditions = rollout.status.as_ref()?.pause_conditions.as_deref().unwrap_or_default();
    if conditions.iter().any(|p| p.reason == INCONCLUSIVE_ANALYSIS_RUN) {
        return Some(PauseState::InconclusiveAnalysis);
    }
    let started = conditions.iter().find(|p| p.reason == CANARY_PAUSE_STEP)?.start_time.0;
    let step = steps_of(rollout).get(current_step_index(rollout))?;
    let Some(duration) = step.pause.as_ref()?.duration.as_ref() else { return Some(PauseState::UntilPromoted) };
    let total = parse_duration(duration)?.as_secs();
    let elapsed = u64::try_from(now.as_second() - started.as_second()).unwrap_or(0);
    Some(PauseState::Timed { remaining: total.saturating_sub(elapsed), total })
}

/// What the weights add up to: `maxTrafficWeight`, 100 by default.
fn max_weight(rollout: &Rollout) -> i32 {
    rollout.spec.strategy.canary.as_ref().map_or(100, |c| c.max_weight())
}

/// Share of traffic (out of `maxTrafficWeight`) or, without traffic routing, percentage of
/// available pods on the new revision.
fn actual_weight(rollout: &Rollout, replica_sets: Option<&[ReplicaSet]>) -> Option<i32> {
    let status = rollout.status.clone().unwrap_or_default();
    let current = status.current_pod_hash.as_deref().filter(|hash| !hash.is_empty());
    if current.is_some() && current == status.stable_rs.as_deref() {
        return Some(max_weight(rollout));
    }
    let routed = rollout.spec.strategy.canary.as_ref().is_some_and(|c| c.traffic_routing.is_some());
    if routed {
        return Some(status.canary.and_then(|c| c.weights).map_or(0, |w| w.canary.weight));
    }
    let available = |rs: &ReplicaSet| rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0);
    let replica_sets = replica_sets?;
    let total: i32 = replica_sets.iter().map(available).sum();
    let canary: i32 =
        replica_sets.iter().filter(|rs| current.is_some() && template_hash(rs) == current).map(available).sum();
    Some(if total > 0 { canary * 100 / total } else { 0 })
}

/// Container images of the stable and canary ReplicaSets, and of old ones that still have pods.
fn images(rollout: &Rollout, replica_sets: &[ReplicaSet]) -> Vec<(String, Vec<&'static str>)> {
    let mut ordered: Vec<&ReplicaSet> = replica_sets.iter().collect();
    let rank = |tag: &str| ["stable", "canary", "old"].iter().position(|t| *t == tag).unwrap_or(3);
    ordered.sort_by_key(|rs| (rank(tag_of(rollout, rs)), std::cmp::Reverse(revision_of(rs))));
    let mut images: Vec<(String, Vec<&'static str>)> = Vec::new();
    for rs in ordered {
        let tag = tag_of(rollout, rs);
        let has_pods = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) > 0
            || rs.status.as_ref().is_some_and(|s| s.replicas > 0);
        if tag == "old" && !has_pods {
            continue;
        }
        let pod_spec = rs.spec.as_ref().and_then(|s| s.template.as_ref()).and_then(|t| t.spec.as_ref());
        for container in
            pod_spec.into_iter().flat_map(|spec| spec.init_containers.iter().flatten().chain(&spec.containers))
        {
            let image = container.image.clone().unwrap_or_default();
            match images.iter_mut().find(|(known, _)| *known == image) {
                Some((_, tags)) if !tags.contains(&tag) => tags.push(tag),
                Some(_) => {}
                None => images.push((image, vec![tag])),
            }
        }
    }
    images
}
