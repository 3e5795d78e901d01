//! Traffic routing: weights, Services, and the request-safe order at promotion and abort.

use super::sim::Sim;
use super::*;

#[test]
fn istio_canary_moves_traffic_and_promotes_without_dropping_requests() {
    let steps = vec![
        canary_scale(Some(2), false),
        pause(None),
        canary_scale(None, true),
        set_weight(10),
        pause(None),
        set_weight(50),
    ];
    let mut sim = Sim::new(observed(with_istio(rollout(4, steps))));
    sim.settle();
    let (v1, v2) = (hash_of("v1"), hash_of("v2"));
    assert_eq!(sim.selector("web-stable"), Some(v1.clone()));
    assert_eq!(sim.selector("web-canary"), Some(v1.clone()));
    assert_eq!(sim.vs_weights(), (100, 0));
    assert_eq!(phase(&sim), "Healthy");

    sim.update_template("v2");
    sim.settle();
    assert_eq!(phase(&sim), "Paused");
    assert_eq!((sim.rs(&v2).unwrap().spec_replicas, sim.rs(&v1).unwrap().spec_replicas), (2, 4));
    assert_eq!(sim.vs_weights(), (100, 0), "setCanaryScale moves no traffic");
    assert_eq!(sim.selector("web-canary"), Some(v2.clone()));

    sim.set_status(|s| s.pause_conditions = None);
    sim.settle();
    assert_eq!(sim.vs_weights(), (90, 10));
    assert_eq!(sim.rs(&v2).unwrap().spec_replicas, 1, "matchTrafficWeight: ceil(4 * 10%)");
    assert_eq!(sim.status().canary.as_ref().unwrap().weights.as_ref().unwrap().canary.weight, 10);
    assert!(sim.events().contains(&"TrafficWeightUpdated"));

    // An external edit of the weights is put back.
    sim.edit_vs_weights(100, 0);
    sim.settle();
    assert_eq!(sim.vs_weights(), (90, 10));

    sim.set_status(|s| s.pause_conditions = None);
    sim.settle();
    // All steps done: the canary gets every pod, then all traffic; the stable Service waits to settle.
    assert_eq!(sim.vs_weights(), (0, 100));
    assert_eq!(sim.selector("web-stable"), Some(v1.clone()), "settle before the stable Service moves");
    assert_eq!(phase(&sim), "Progressing");
    sim.wait(2);
    assert_eq!(sim.selector("web-stable"), Some(v2.clone()));
    assert_eq!(sim.vs_weights(), (0, 100), "settle again before traffic returns to the stable Service");
    assert_eq!(phase(&sim), "Progressing");
    sim.wait(2);
    assert_eq!(sim.vs_weights(), (100, 0));
    assert_eq!(phase(&sim), "Healthy");
    assert_eq!(sim.rs(&v1).unwrap().spec_replicas, 4, "old pods are kept for scaleDownDelaySeconds");
    sim.wait(30);
    assert_eq!(sim.rs(&v1).unwrap().spec_replicas, 0);
}

#[test]
fn istio_abort_moves_traffic_first_then_services_then_pods() {
    let mut sim = Sim::new(observed(with_istio(rollout(4, vec![set_weight(50), pause(None)]))));
    sim.settle();
    let (v1, v2) = (hash_of("v1"), hash_of("v2"));
    sim.update_template("v2");
    sim.settle();
    assert_eq!(sim.vs_weights(), (50, 50));
    sim.set_status(|s| s.abort = Some(true));
    let plan = sim.step();
    assert_eq!(sim.vs_weights(), (100, 0), "weight back to stable first");
    assert_eq!(sim.selector("web-canary"), Some(v2.clone()));
    assert!(plan.actions.iter().all(|a| !matches!(a, Action::SetServiceSelector { .. })));
    sim.wait(2);
    assert_eq!(sim.selector("web-canary"), Some(v1.clone()), "then the canary Service, after settling");
    assert_eq!(sim.rs(&v2).unwrap().spec_replicas, 2);
    sim.wait(31);
    assert_eq!(sim.rs(&v2).unwrap().spec_replicas, 0, "then the canary pods, after abortScaleDownDelaySeconds");
    assert_eq!(phase(&sim), "Degraded");
}

#[test]
fn no_weight_goes_to_a_canary_without_available_pods() {
    let mut sim = Sim::new(observed(with_istio(rollout(4, vec![set_weight(50)]))));
    sim.settle();
    sim.ready = false;
    sim.update_template("v2");
    sim.settle();
    assert_eq!(sim.vs_weights(), (100, 0));
    assert_eq!(sim.selector("web-canary"), Some(hash_of("v1")), "the canary Service waits for available pods");
    assert!(sim.status().message.unwrap().contains("0 of 2 pods available"), "{:?}", sim.status().message);
}

#[test]
fn services_are_released_when_the_rollout_stops_naming_them() {
    let mut sim = Sim::new(observed(with_istio(rollout(2, vec![set_weight(50)]))));
    sim.settle();
    assert_eq!(sim.observed.services["web-stable"].managed_by.as_deref(), Some("web"));
    let canary = sim.observed.rollout.spec.strategy.canary.as_mut().unwrap();
    canary.traffic_routing = None;
    canary.stable_service = None;
    canary.canary_service = None;
    sim.settle();
    for name in ["web-stable", "web-canary"] {
        assert_eq!(sim.selector(name), None, "{name} selects the app's pods again");
        assert_eq!(sim.observed.services[name].managed_by, None);
    }
}

#[test]
fn a_weight_step_lands_with_its_service_switch_weights_and_next_pause_in_one_status_write() {
    let steps = vec![set_weight(20), pause(Some(10)), set_weight(50), pause(Some(10)), set_weight(100)];
    let mut sim = Sim::new(observed(with_istio(rollout(2, steps))));
    sim.settle();
    sim.update_template("v2");
    sim.settle();
    assert_eq!((sim.status().current_step_index, sim.vs_weights()), (Some(1), (80, 20)));
    let writes_weight = |plan: &Plan, weight: i32| {
        plan.actions
            .iter()
            .any(|a| matches!(a, Action::SetVirtualServiceWeights { canary_weight, .. } if *canary_weight == weight))
    };
    let first = sim.plans.iter().find(|p| writes_weight(p, 20)).expect("a plan writes weight 20");
    assert_eq!(first.status.current_step_index, Some(1), "the step completes with its weights");
    assert!(first.status.pause_conditions.is_some(), "and the pause starts in the same write");
    let canary_switch = first.actions.iter().position(|a| a.points_service_at("web-canary", &hash_of("v2")));
    let weight = first.actions.iter().position(|a| matches!(a, Action::SetVirtualServiceWeights { .. }));
    assert!(
        canary_switch.is_some() && canary_switch < weight,
        "the canary Service is pointed at the new pods first, in the same plan: {:?}",
        first.actions
    );

    // At the pause's expiry one plan writes weight 50, completes that step and starts the next pause.
    let expiry = sim.observed.now + SignedDuration::from_secs(10);
    sim.observed.now = expiry;
    let plan = sim.step();
    assert!(writes_weight(&plan, 50));
    assert_eq!(plan.status.current_step_index, Some(3));
    assert_eq!(plan.status.pause_conditions.as_ref().map(|p| p[0].start_time.0), Some(expiry));
    assert_eq!(plan.pause_expired_at, Some(expiry));
    assert_eq!(plan.requeue_at, Some(expiry + SignedDuration::from_secs(10)));
}

#[test]
fn an_abort_after_the_stable_switch_is_refused_with_a_reason() {
    let mut sim = Sim::new(observed(with_istio(rollout(4, vec![set_weight(50)]))));
    sim.settle();
    let v2 = hash_of("v2");
    sim.update_template("v2");
    sim.settle();
    sim.wait(2);
    assert_eq!(sim.selector("web-stable"), Some(v2.clone()), "switched; the weights wait to return");
    assert_eq!(sim.vs_weights(), (0, 100));
    sim.set_status(|s| s.abort = Some(true));
    let plan = sim.step();
    let message = plan.status.message.clone().unwrap_or_default();
    assert!(message.starts_with(&format!("abort ignored: revision 2 ({v2}) is already stable; use undo")), "{message}");
    assert!(plan.events.iter().any(|e| e.warning && e.reason == "RolloutAbortIgnored"), "{:?}", plan.events);
    assert_eq!(plan.status.abort, None);
    sim.wait(2);
    assert_eq!(phase(&sim), "Healthy");
    assert_eq!(sim.vs_weights(), (100, 0));
}

#[test]
fn a_paused_rollout_still_puts_its_weights_back() {
    let steps = vec![set_weight(10), pause(None), set_weight(50)];
    let mut sim = Sim::new(observed(with_istio(rollout(4, steps))));
    sim.settle();
    sim.update_template("v2");
    sim.settle();
    sim.observed.rollout.spec.paused = Some(true);
    sim.settle();
    sim.edit_vs_weights(100, 0);
    sim.settle();
    assert_eq!(sim.vs_weights(), (90, 10));
    assert_eq!(phase(&sim), "Paused");
}
