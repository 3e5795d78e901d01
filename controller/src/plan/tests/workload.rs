//! `workloadRef`: the workload-generation annotation and `scaleDown`.

use super::sim::Sim;
use super::*;

#[test]
fn the_workload_generation_is_annotated_and_observed_in_every_state() {
    let mut sim = workload_ref_sim(ScaleDown::Never, vec![set_weight(25), pause(None)]);
    let annotation = |sim: &Sim| {
        sim.observed.rollout.metadata.annotations.as_ref().and_then(|a| a.get(WORKLOAD_GENERATION_ANNOTATION).cloned())
    };
    assert_eq!(annotation(&sim).as_deref(), Some("1"));
    assert_eq!(sim.status().workload_observed_generation.as_deref(), Some("1"));
    // The Deployment's template changes: generation 2.
    let workload = sim.observed.workload.as_mut().unwrap();
    workload.template = template("v2");
    workload.generation = Some(2);
    sim.settle();
    assert_eq!(phase(&sim), "Paused");
    assert_eq!(annotation(&sim).as_deref(), Some("2"));
    assert_eq!(sim.status().workload_observed_generation.as_deref(), Some("2"));
    let revision = sim.observed.rollout.metadata.annotations.as_ref().unwrap()[REVISION_ANNOTATION].clone();
    assert_eq!(revision, "2");
}

#[test]
fn scale_down_keeps_the_deployment_at_zero_at_every_step() {
    for mode in [ScaleDown::OnSuccess, ScaleDown::Progressively] {
        let mut sim = workload_ref_sim(mode, vec![set_weight(25), pause(None)]);
        let deployment = |sim: &Sim| sim.observed.workload.as_ref().unwrap().deployment_replicas;
        assert_eq!(deployment(&sim), Some(0), "{mode:?}: scaled down once the Rollout serves");
        let workload = sim.observed.workload.as_mut().unwrap();
        workload.template = template("v2");
        workload.generation = Some(2);
        sim.settle();
        assert_eq!(phase(&sim), "Paused");
        // A GitOps re-sync (or `kubectl scale`) mid-canary.
        sim.observed.workload.as_mut().unwrap().deployment_replicas = Some(4);
        sim.settle();
        assert_eq!(deployment(&sim), Some(0), "{mode:?}: undone at the pause of a later revision");
    }
}
