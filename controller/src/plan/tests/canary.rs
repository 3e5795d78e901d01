//! The canary's course: steps, pauses, abort and retry, full promotion, scaling, restart,
//! revisions.

use super::sim::Sim;
use super::*;

#[test]
fn initial_deploy_is_stable_at_once_and_healthy() {
    let mut sim = Sim::new(observed(rollout(4, vec![set_weight(25), pause(None)])));
    let first = sim.step();
    assert!(
        matches!(&first.actions[..], [Action::RecordTemplate(_), Action::CreateReplicaSet(rs), Action::AnnotateRollout { annotations }] if rs.spec.as_ref().unwrap().replicas == Some(4) && annotations[REVISION_ANNOTATION].as_deref() == Some("1")),
        "{first:#?}"
    );
    assert!(first.events.iter().any(|e| e.message.ends_with("Initial deploy")), "{:?}", first.events);
    sim.settle();
    let status = sim.status();
    let v1 = hash_of("v1");
    assert_eq!(status.stable_rs.as_deref(), Some(v1.as_str()));
    assert_eq!(status.current_step_index, Some(2));
    assert_eq!(phase(&sim), "Healthy");
    assert_eq!(status.hpa_replicas, Some(4));
    assert_eq!(status.selector.as_deref(), Some("app=web"));
    assert_eq!(status.observed_generation.as_deref(), Some("1"));
    let condition =
        |type_: &str| status.conditions.as_ref().unwrap().iter().find(|c| c.type_ == type_).map(|c| c.status.clone());
    assert_eq!(condition("Healthy").as_deref(), Some("True"));
    assert_eq!(condition("Completed").as_deref(), Some("True"));
    assert_eq!(condition("Available").as_deref(), Some("True"));
}

#[test]
fn basic_canary_walks_its_steps() {
    let mut sim = healthy_basic(vec![set_weight(25), pause(None), set_weight(50), pause(Some(5))]);
    let (v1, v2) = (hash_of("v1"), hash_of("v2"));
    sim.update_template("v2");
    sim.settle();
    assert_eq!(phase(&sim), "Paused");
    assert_eq!(sim.status().current_step_index, Some(1));
    assert_eq!(sim.rs(&v2).unwrap().spec_replicas, 1);
    assert_eq!(sim.rs(&v1).unwrap().spec_replicas, 3);
    assert!(sim.status().message.unwrap().contains("paused until promoted"), "{:?}", sim.status().message);

    // Promote the way the plugin does: clear the pause conditions.
    sim.set_status(|s| s.pause_conditions = None);
    sim.settle();
    assert_eq!(sim.status().current_step_index, Some(3));
    assert_eq!((sim.rs(&v2).unwrap().spec_replicas, sim.rs(&v1).unwrap().spec_replicas), (2, 2));
    assert_eq!(phase(&sim), "Paused");

    sim.wait(4);
    assert_eq!(sim.status().current_step_index, Some(3), "5 s have not passed");
    let plan = plan(&sim.observed);
    assert_eq!(
        plan.requeue_at,
        Some(sim.observed.now + SignedDuration::from_secs(1)),
        "requeued exactly at the pause's expiry"
    );
    sim.wait(1);
    assert_eq!(sim.status().stable_rs.as_deref(), Some(v2.as_str()));
    assert_eq!((sim.rs(&v2).unwrap().spec_replicas, sim.rs(&v1).unwrap().spec_replicas), (4, 0));
    assert_eq!(phase(&sim), "Healthy");
    assert_eq!(sim.status().current_step_index, Some(4));
}

#[test]
fn abort_returns_to_stable_and_retry_starts_over() {
    let mut sim = healthy_basic(vec![set_weight(25), pause(None), set_weight(50)]);
    let (v1, v2) = (hash_of("v1"), hash_of("v2"));
    sim.update_template("v2");
    sim.settle();
    sim.set_status(|s| s.abort = Some(true));
    sim.settle();
    assert_eq!(phase(&sim), "Degraded");
    assert!(sim.status().message.unwrap().starts_with("RolloutAborted: Rollout aborted update to revision 2"));
    assert_eq!((sim.rs(&v2).unwrap().spec_replicas, sim.rs(&v1).unwrap().spec_replicas), (0, 4));
    assert!(sim.events().contains(&"RolloutAborted"));

    sim.set_status(|s| s.abort = Some(false));
    sim.settle();
    assert_eq!(phase(&sim), "Paused");
    assert_eq!(sim.status().current_step_index, Some(1));
    assert_eq!(sim.status().aborted_at, None);
    assert_eq!(sim.rs(&v2).unwrap().spec_replicas, 1);
}

#[test]
fn abort_with_nothing_in_flight_is_a_no_op() {
    let mut sim = healthy_basic(vec![set_weight(25)]);
    sim.set_status(|s| s.abort = Some(true));
    sim.settle();
    assert_eq!(phase(&sim), "Healthy");
    assert_eq!(sim.status().abort, None);
}

#[test]
fn template_back_to_stable_is_a_fast_rollback() {
    let mut sim = healthy_basic(vec![set_weight(25), pause(None)]);
    sim.update_template("v2");
    sim.settle();
    sim.update_template("v1");
    sim.settle();
    assert_eq!(phase(&sim), "Healthy");
    assert!(sim.events().contains(&"SkipSteps"));
    assert_eq!(sim.rs(&hash_of("v2")).unwrap().spec_replicas, 0);
}

#[test]
fn promote_full_skips_the_remaining_steps() {
    let mut sim = healthy_basic(vec![set_weight(25), pause(None), set_weight(50), pause(None)]);
    sim.update_template("v2");
    sim.settle();
    sim.set_status(|s| s.promote_full = Some(true));
    sim.settle();
    assert_eq!(phase(&sim), "Healthy");
    assert_eq!(sim.status().promote_full, None);
    assert_eq!(sim.status().stable_rs, Some(hash_of("v2")));
}

#[test]
fn promote_full_overrides_an_abort() {
    let mut sim = healthy_basic(vec![set_weight(25), pause(None), set_weight(50)]);
    sim.update_template("v2");
    sim.settle();
    sim.set_status(|s| s.abort = Some(true));
    sim.settle();
    assert_eq!(phase(&sim), "Degraded");
    // What `kubectl argo rollouts promote --full` and Argo CD's promote-full action send.
    sim.set_status(|s| s.promote_full = Some(true));
    sim.settle();
    assert_eq!(phase(&sim), "Healthy");
    let status = sim.status();
    assert_eq!((status.abort, status.aborted_at, status.promote_full), (None, None, None));
    assert_eq!(status.stable_rs, Some(hash_of("v2")));
    assert!(sim.plans.iter().flat_map(|p| &p.events).any(|e| e.message.ends_with("Full promotion requested")));
}

#[test]
fn manual_pause_freezes_steps_but_not_scaling() {
    let mut sim = healthy_basic(vec![set_weight(25), pause(Some(10)), set_weight(50)]);
    sim.update_template("v2");
    sim.settle();
    sim.observed.rollout.spec.paused = Some(true);
    sim.wait(30);
    assert_eq!(phase(&sim), "Paused");
    assert_eq!(sim.status().current_step_index, Some(1), "the timed pause does not end while paused");
    // An HPA raises replicas: the pods are re-split at the same weight.
    sim.observed.rollout.spec.replicas = Some(8);
    sim.settle();
    assert_eq!((sim.rs(&hash_of("v2")).unwrap().spec_replicas, sim.rs(&hash_of("v1")).unwrap().spec_replicas), (2, 6));
    assert_eq!(sim.status().current_step_index, Some(1));
}

#[test]
fn a_paused_rollout_starts_no_new_revision() {
    let mut initial = rollout(4, vec![set_weight(25)]);
    initial.spec.paused = Some(true);
    let mut sim = Sim::new(observed(initial));
    sim.settle();
    assert!(sim.observed.replica_sets.is_empty());
    assert_eq!(phase(&sim), "Paused");
    sim.observed.rollout.spec.paused = None;
    sim.settle();
    assert_eq!(phase(&sim), "Healthy");
}

#[test]
fn steps_edit_restarts_at_step_zero() {
    let mut sim = healthy_basic(vec![set_weight(25), pause(None), set_weight(50), pause(None)]);
    sim.update_template("v2");
    sim.settle();
    sim.set_status(|s| s.pause_conditions = None);
    sim.settle();
    assert_eq!(sim.status().current_step_index, Some(3));
    sim.observed.rollout.spec.strategy.canary.as_mut().unwrap().steps =
        Some(vec![set_weight(10), pause(None), set_weight(50), pause(None)]);
    sim.settle();
    assert_eq!(sim.status().current_step_index, Some(1));
}

#[test]
fn hpa_scaling_mid_canary_resplits_without_advancing() {
    let mut sim = healthy_basic(vec![set_weight(25), pause(Some(1)), set_weight(50)]);
    sim.update_template("v2");
    sim.settle();
    let index = sim.status().current_step_index;
    sim.observed.rollout.spec.replicas = Some(8);
    sim.observed.now += SignedDuration::from_secs(5);
    let plan = sim.step();
    assert_eq!(plan.status.current_step_index, index, "the scaling reconcile doesn't advance");
}

#[test]
fn waiting_for_the_stable_to_shrink_counts_the_pods_to_go() {
    let mut sim = healthy_basic(vec![set_weight(25), pause(None)]);
    sim.ready = false;
    sim.update_template("v2");
    sim.step();
    // The stable was asked for 3 pods and still has 4: one is terminating.
    let v1 = hash_of("v1");
    let stable = sim.observed.replica_sets.iter_mut().find(|rs| rs.hash == v1).unwrap();
    assert_eq!(stable.spec_replicas, 3);
    stable.status_replicas = 4;
    let canary = sim.observed.replica_sets.iter_mut().find(|rs| rs.hash != v1).unwrap();
    canary.available = canary.spec_replicas;
    let message = plan(&sim.observed).status.message.unwrap_or_default();
    assert!(message.ends_with("to scale down to 3 pods: 1 to terminate"), "{message}");
}

#[test]
fn restart_evicts_old_pods_within_max_unavailable() {
    let mut sim = healthy_basic(vec![set_weight(25)]);
    sim.observed.pods = (0..4)
        .map(|i| PodView { name: format!("p{i}"), created: Some(t(0)), available: true, deleting: false })
        .collect();
    sim.observed.rollout.spec.restart_at = Some(Time(t(10)));
    let early = plan(&sim.observed);
    assert_eq!(early.requeue_at, Some(t(10)));
    sim.observed.now = t(10);
    let plan = plan(&sim.observed);
    let evicted: Vec<_> = plan.actions.iter().filter(|a| matches!(a, Action::EvictPod { .. })).collect();
    assert_eq!(evicted.len(), 1, "25% of 4");
    sim.observed.pods = (0..4)
        .map(|i| PodView { name: format!("n{i}"), created: Some(t(11)), available: true, deleting: false })
        .collect();
    let done = super::plan(&sim.observed);
    assert_eq!(done.status.restarted_at, Some(Time(t(10))));
}

#[test]
fn old_revisions_beyond_the_history_limit_are_deleted() {
    let mut spec = rollout(1, vec![]);
    spec.spec.revision_history_limit = Some(1);
    let mut sim = Sim::new(observed(spec));
    sim.settle();
    for image in ["v2", "v3", "v4"] {
        sim.update_template(image);
        sim.settle();
    }
    let hashes: Vec<String> = sim.observed.replica_sets.iter().map(|rs| rs.hash.clone()).collect();
    assert_eq!(hashes, vec![hash_of("v3"), hash_of("v4")]);
}

#[test]
fn a_replica_set_named_by_the_legacy_hash_is_still_the_current_revision() {
    let mut sim = healthy_basic(vec![set_weight(25), pause(None)]);
    let legacy = hash::legacy_pod_template_hash(&template("v1"), None);
    assert_ne!(legacy, hash_of("v1"));
    // As an earlier version of the controller left it.
    for rs in &mut sim.observed.replica_sets {
        rs.hash = legacy.clone();
        rs.name = format!("web-{legacy}");
    }
    sim.set_status(|s| {
        s.current_pod_hash = Some(legacy.clone());
        s.stable_rs = Some(legacy.clone());
    });
    let plan = sim.step();
    assert!(!plan.actions.iter().any(|a| matches!(a, Action::CreateReplicaSet(_))), "{:?}", plan.actions);
    assert_eq!(phase(&sim), "Healthy");
    sim.update_template("v2");
    sim.settle();
    assert!(sim.rs(&hash_of("v2")).is_some(), "a new revision gets the new hash");
}

#[test]
fn a_name_taken_by_another_object_counts_a_collision_and_changes_the_hash() {
    let mut sim = healthy_basic(vec![set_weight(25)]);
    sim.update_template("v2");
    let first = plan(&sim.observed);
    let name = |plan: &Plan| {
        plan.actions.iter().find_map(|a| match a {
            Action::CreateReplicaSet(rs) => rs.metadata.name.clone(),
            _ => None,
        })
    };
    let taken = name(&first).expect("the new revision's ReplicaSet");
    // Its create failed: another object has that name.
    let bumped = hash_collision(&sim.observed);
    assert_eq!(bumped.status.collision_count, Some(1));
    assert!(bumped.actions.is_empty());
    sim.apply(&bumped);
    let renamed = name(&plan(&sim.observed)).expect("a ReplicaSet of another name");
    assert_ne!(renamed, taken);
    sim.settle();
    assert_eq!(phase(&sim), "Healthy");
}
