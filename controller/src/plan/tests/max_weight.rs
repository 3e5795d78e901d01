//! `trafficRouting.maxTrafficWeight`: steps, router weights, status weights and canary pods all
//! count in it; nginx is told the total; weights above it are InvalidSpec.

use super::gateway_api::{gateway_sim, weights as gateway_weights};
use super::nginx::{WEIGHT, nginx_observed};
use super::*;
use crate::api::RouteKind;

const TOTAL: &str = "nginx.ingress.kubernetes.io/canary-weight-total";

fn with_max_weight(mut rollout: Rollout, max: Option<i32>) -> Rollout {
    let canary = rollout.spec.strategy.canary.as_mut().unwrap();
    canary.traffic_routing.as_mut().unwrap().max_traffic_weight = max;
    rollout
}

/// An nginx canary of 10 pods counting weights in thousandths.
fn nginx_per_mille(steps: Vec<CanaryStep>) -> Sim {
    let mut observed = nginx_observed(rollout(10, steps));
    observed.rollout = with_max_weight(observed.rollout, Some(1000));
    Sim::new(observed)
}

/// (canary, stable) weights in the status.
fn status_weights(sim: &Sim) -> (i32, i32) {
    let weights = sim.status().canary.and_then(|c| c.weights).unwrap();
    (weights.canary.weight, weights.stable.weight)
}

fn canary_pods(sim: &Sim) -> i32 {
    sim.rs(&hash_of("v2")).unwrap().spec_replicas
}

#[test]
fn nginx_weights_status_and_pods_count_in_max_traffic_weight() {
    let mut sim = nginx_per_mille(vec![set_weight(5), pause(None), set_weight(500), pause(None)]);
    sim.settle();
    assert_eq!(sim.ingress_annotation(TOTAL).as_deref(), Some("1000"), "ingress-nginx is told the total");
    assert_eq!(status_weights(&sim), (0, 1000));
    sim.update_template("v2");
    sim.settle();
    assert_eq!((sim.ingress_weight(), phase(&sim).as_str()), (5, "Paused"));
    assert_eq!((status_weights(&sim), canary_pods(&sim)), ((5, 995), 1), "0.5 % of 10 pods rounds up to one");
    sim.set_status(|s| s.pause_conditions = None);
    sim.settle();
    assert_eq!((sim.ingress_weight(), status_weights(&sim), canary_pods(&sim)), (500, (500, 500), 5));
    sim.set_status(|s| s.pause_conditions = None);
    sim.run_for(10);
    assert_eq!((sim.ingress_weight(), status_weights(&sim), phase(&sim).as_str()), (0, (0, 1000), "Healthy"));
    assert_eq!(sim.selector("web-stable"), Some(hash_of("v2")));
    assert_eq!(sim.ingress_weight_writes(), [5, 500, 1000, 0], "all of the total before the stable Service moves");
}

#[test]
fn the_total_back_at_100_takes_canary_weight_total_away() {
    let mut sim = nginx_per_mille(vec![set_weight(5), pause(None)]);
    sim.settle();
    assert!(sim.ingress_annotation(TOTAL).is_some());
    sim.observed.rollout = with_max_weight(sim.observed.rollout.clone(), Some(100));
    sim.settle();
    assert_eq!(sim.ingress_annotation(TOTAL), None, "100 is ingress-nginx's own total");
    assert_eq!(status_weights(&sim), (0, 100));
    sim.observed.rollout = with_max_weight(sim.observed.rollout.clone(), Some(1000));
    sim.settle();
    sim.observed.rollout = with_max_weight(sim.observed.rollout.clone(), None);
    sim.settle();
    assert_eq!(sim.ingress_annotation(TOTAL), None);
    assert_eq!(sim.ingress_annotation(WEIGHT).as_deref(), Some("0"));
}

#[test]
fn istio_and_gateway_api_weights_add_up_to_max_traffic_weight() {
    let steps = vec![set_weight(5), pause(None)];
    let mut istio = Sim::new(observed(with_max_weight(with_istio(rollout(4, steps.clone())), Some(1000))));
    istio.settle();
    istio.update_template("v2");
    istio.settle();
    assert_eq!(istio.vs_weights(), (995, 5), "Istio's weights are relative: any total splits");
    istio.set_status(|s| s.pause_conditions = None);
    istio.run_for(10);
    assert_eq!((istio.vs_weights(), phase(&istio).as_str()), ((1000, 0), "Healthy"));

    let mut gateway = gateway_sim(steps);
    gateway.observed.rollout = with_max_weight(gateway.observed.rollout.clone(), Some(1000));
    gateway.settle();
    gateway.update_template("v2");
    gateway.settle();
    assert_eq!(gateway_weights(&gateway, RouteKind::HttpRoute), (995, 5));
}

#[test]
fn a_weight_above_the_total_is_invalid_and_nothing_is_written() {
    let over = |max: Option<i32>, step: CanaryStep| {
        let mut observed = nginx_observed(rollout(4, vec![pause(None), step]));
        observed.rollout = with_max_weight(observed.rollout, max);
        plan(&observed)
    };
    let invalid = over(Some(1000), set_weight(1001));
    assert!(invalid.actions.is_empty());
    assert_eq!(
        invalid.status.message.as_deref(),
        Some(
            "InvalidSpec: The Rollout \"web\" is invalid: spec.strategy.canary.steps[1].setWeight is 1001, above 1000, the total of the weights (spec.strategy.canary.trafficRouting.maxTrafficWeight)"
        )
    );
    assert!(over(Some(1000), set_weight(1000)).status.message.is_none_or(|m| !m.contains("InvalidSpec")));
    let scale = CanaryStep {
        set_canary_scale: Some(SetCanaryScale { weight: Some(101), replicas: None, match_traffic_weight: None }),
        ..Default::default()
    };
    let message = over(None, scale).status.message.unwrap();
    assert!(
        message.contains("steps[1].setCanaryScale.weight is 101, above 100, the total of the weights"),
        "{message}"
    );
    // Without traffic routing a weight is a percentage of pods.
    let basic = plan(&observed(rollout(4, vec![set_weight(150)])));
    assert!(basic.actions.is_empty());
    let message = basic.status.message.unwrap();
    assert!(
        message.contains("steps[0].setWeight is 150, above 100: without traffic routing it is a percentage of pods"),
        "{message}"
    );
}
