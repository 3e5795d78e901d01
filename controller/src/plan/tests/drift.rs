//! Drift: what someone changes by hand is put back, and no traffic moves onto empty Services.

use super::*;

#[test]
fn a_drifted_stable_selector_is_put_back() {
    let mut sim = istio_paused_at_ten();
    let v1 = hash_of("v1");
    sim.observed
        .services
        .get_mut("web-stable")
        .unwrap()
        .selector
        .insert(POD_TEMPLATE_HASH_LABEL.into(), "nopods".into());
    sim.settle();
    assert_eq!(sim.selector("web-stable"), Some(v1), "re-asserted during the pause");
    assert_eq!(sim.vs_weights(), (90, 10));
}

#[test]
fn no_weight_moves_while_the_stable_service_selects_no_available_pods() {
    let mut sim = istio_paused_at_ten();
    let v1 = hash_of("v1");
    // The stable pods all fail (a node drained, a crash loop): the stable Service selects none.
    sim.failing.push(v1);
    sim.set_status(|s| s.pause_conditions = None);
    sim.settle();
    assert_eq!(sim.vs_weights(), (90, 10), "promote moves no traffic while the stable serves nothing");
    let message = sim.status().message.unwrap_or_default();
    assert!(message.contains("waiting for Service web-stable to select available pods"), "{message}");
    sim.failing.clear();
    sim.settle();
    assert_eq!(sim.vs_weights(), (50, 50), "and moves once it does");
}

#[test]
fn a_deleted_stable_replica_set_is_created_again_and_the_rollout_completes() {
    let mut sim = istio_paused_at_ten();
    let v1 = hash_of("v1");
    sim.ready = false;
    sim.observed.replica_sets.retain(|rs| rs.hash != v1);
    let plan = sim.step();
    let recreated = plan.actions.iter().find_map(|a| match a {
        Action::RecreateReplicaSet(rs) => Some(rs.clone()),
        _ => None,
    });
    let recreated = recreated.expect("the stable ReplicaSet is created again");
    assert_eq!(recreated.metadata.name.as_deref(), Some(format!("web-{v1}").as_str()));
    assert_eq!(recreated.spec.as_ref().unwrap().replicas, Some(4));
    assert_eq!(
        recreated.spec.as_ref().unwrap().template.as_ref().unwrap().spec.as_ref().unwrap().containers[0]
            .image
            .as_deref(),
        Some("v1")
    );
    assert_eq!(sim.rs(&hash_of("v2")).unwrap().spec_replicas, 1, "the canary keeps its size");
    // Promote while the new stable pods are not ready: nothing moves until they are.
    sim.set_status(|s| s.pause_conditions = None);
    sim.settle();
    assert_eq!(sim.vs_weights(), (90, 10));
    sim.ready = true;
    sim.settle();
    assert_eq!(sim.vs_weights(), (50, 50));
    sim.set_status(|s| s.pause_conditions = None);
    sim.run_for(5);
    assert_eq!(phase(&sim), "Healthy");
}

#[test]
fn a_stable_replica_set_without_a_record_is_reported_and_nothing_moves() {
    let mut sim = istio_paused_at_ten();
    let v1 = hash_of("v1");
    sim.records.clear();
    sim.observed.replica_sets.retain(|rs| rs.hash != v1);
    sim.set_status(|s| s.pause_conditions = None);
    sim.settle();
    let message = sim.status().message.unwrap_or_default();
    assert!(
        message.contains(&format!("stable ReplicaSet web-{v1} was deleted and its pod template was not recorded")),
        "{message}"
    );
    assert_eq!(sim.vs_weights(), (90, 10));
    assert_eq!(sim.rs(&hash_of("v2")).unwrap().spec_replicas, 1, "the canary is not grown to replace it");
    // A full promotion moves traffic to the canary, the only pods left.
    sim.set_status(|s| s.promote_full = Some(true));
    sim.run_for(5);
    assert_eq!(sim.vs_weights(), (100, 0));
    assert_eq!(sim.selector("web-stable"), Some(hash_of("v2")));
    assert_eq!(phase(&sim), "Healthy");
}

#[test]
fn a_stable_selector_pointed_at_the_canary_early_is_put_back() {
    let mut sim = Sim::new(observed(with_istio(rollout(4, vec![set_weight(10), pause(None)]))));
    sim.settle();
    sim.update_template("v2");
    sim.settle();
    let (v1, v2) = (hash_of("v1"), hash_of("v2"));
    // Past the last step the canary grows to 4 pods before it gets all the traffic; meanwhile
    // someone points the stable Service at it.
    sim.ready = false;
    sim.set_status(|s| s.pause_conditions = None);
    sim.settle();
    assert_eq!(sim.vs_weights(), (90, 10));
    sim.observed.services.get_mut("web-stable").unwrap().selector.insert(POD_TEMPLATE_HASH_LABEL.into(), v2);
    sim.settle();
    assert_eq!(sim.selector("web-stable"), Some(v1), "only a promotion moves it, with all traffic on the canary");
}

#[test]
fn a_canary_keeps_its_role_while_a_deleted_stable_is_recreated() {
    let steps = vec![set_weight(10), pause(None)];
    let mut sim = Sim::new(observed(with_istio(with_ephemeral_metadata(rollout(4, steps)))));
    sim.settle();
    sim.update_template("v2");
    sim.settle();
    let (v1, v2) = (hash_of("v1"), hash_of("v2"));
    sim.ready = false;
    sim.observed.replica_sets.retain(|rs| rs.hash != v1);
    let plan = sim.step();
    let relabels_the_canary =
        plan.actions.iter().any(|a| matches!(a, Action::SetPodMetadata { hash, .. } if *hash == v2));
    assert!(!relabels_the_canary, "{:?}", plan.actions);
    let role = sim.rs(&v2).unwrap().injected.labels.clone().unwrap_or_default().get("role").cloned();
    assert_eq!(role.as_deref(), Some("canary"));
}
