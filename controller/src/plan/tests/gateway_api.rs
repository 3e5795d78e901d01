//! The Gateway API router (`plugins."argoproj-labs/gatewayAPI"`): the split rule's backendRef
//! weights through the steps and back, nothing written once in place, rules and backendRefs that
//! aren't ours left alone, the in-progress label, and a missing route, CRD or backendRef as
//! InvalidSpec. Header rules are in `gateway_api_headers.rs`.

use super::sim::Sim;
use super::*;
use crate::api::{GatewayApiTrafficRouting, RouteKind, TrafficRouterPlugins};
use kube::api::DynamicObject;
use serde_json::Value;

pub(super) const LABEL: &str = "rollouts.argoproj.io/gatewayapi-canary";

/// A route whose first rule is split (with a foreign backendRef beside), then a foreign rule and
/// a rule sending to the stable Service alone (never weighed: 0 there would fail its requests).
pub(super) fn route_object(kind: RouteKind) -> DynamicObject {
    let mut object = DynamicObject::new("web", &kind.api_resource()).within(NAMESPACE);
    object.metadata.resource_version = Some("1".into());
    object.data = json!({"spec": {"rules": [
        {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": [
            {"name": "web-stable", "port": 80, "weight": 100},
            {"name": "web-canary", "port": 80, "weight": 0},
            {"name": "legacy", "port": 80, "weight": 0}
        ]},
        {"matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}], "backendRefs": [{"name": "admin", "port": 80}]},
        {"matches": [{"path": {"type": "PathPrefix", "value": "/static"}}], "backendRefs": [{"name": "web-stable", "port": 80}]}
    ]}});
    object
}

/// Adds Gateway API routing through the route `web` of `kind` (and the Services it needs).
pub(super) fn with_gateway_api(rollout: Rollout, kind: RouteKind) -> Rollout {
    let mut rollout = with_services(rollout);
    let plugin = match kind {
        RouteKind::GrpcRoute => GatewayApiTrafficRouting { grpc_route: Some("web".into()), ..Default::default() },
        _ => GatewayApiTrafficRouting { http_route: Some("web".into()), ..Default::default() },
    };
    rollout.spec.strategy.canary.as_mut().unwrap().traffic_routing = Some(TrafficRouting {
        plugins: Some(TrafficRouterPlugins { gateway_api: Some(plugin), ..Default::default() }),
        ..Default::default()
    });
    rollout
}

/// An `Observed` of `rollout`, routed through the route `web` of `kind`, which exists.
pub(super) fn gateway_observed(rollout: Rollout, kind: RouteKind) -> Observed {
    let mut observed = observed(with_gateway_api(rollout, kind));
    let route = ((NAMESPACE.to_string(), "web".to_string()), route_object(kind));
    observed.route_objects.insert(kind, Some([route].into()));
    observed
}

pub(super) fn gateway_sim(steps: Vec<CanaryStep>) -> Sim {
    Sim::new(gateway_observed(rollout(4, steps), RouteKind::HttpRoute))
}

pub(super) fn route(sim: &Sim, kind: RouteKind) -> &DynamicObject {
    let objects = sim.observed.route_objects[&kind].as_ref().unwrap();
    &objects[&(NAMESPACE.to_string(), "web".to_string())]
}

pub(super) fn route_mut(observed: &mut Observed) -> &mut DynamicObject {
    let objects = observed.route_objects.get_mut(&RouteKind::HttpRoute).unwrap().as_mut().unwrap();
    objects.get_mut(&(NAMESPACE.to_string(), "web".to_string())).unwrap()
}

/// The rule that splits, wherever header rules put it.
pub(super) fn split_rule(sim: &Sim, kind: RouteKind) -> Value {
    let rules = route(sim, kind).data["spec"]["rules"].as_array().unwrap();
    rules.iter().find(|r| r["backendRefs"].as_array().unwrap().len() == 3).unwrap().clone()
}

/// (stable, canary) weights of the split rule.
pub(super) fn weights(sim: &Sim, kind: RouteKind) -> (i64, i64) {
    let refs = &split_rule(sim, kind)["backendRefs"];
    (refs[0]["weight"].as_i64().unwrap(), refs[1]["weight"].as_i64().unwrap())
}

fn label(sim: &Sim) -> Option<String> {
    route(sim, RouteKind::HttpRoute).metadata.labels.as_ref()?.get(LABEL).cloned()
}

/// The canary weight of every PatchRoute the plans made.
fn weight_writes(sim: &Sim) -> Vec<Option<i32>> {
    let patches = sim.plans.iter().flat_map(|p| &p.actions);
    patches
        .filter_map(|a| if let Action::PatchRoute { canary_weight, .. } = a { Some(*canary_weight) } else { None })
        .collect()
}

/// The Rollout's `trafficRouting.plugins`.
pub(super) fn plugins(rollout: &mut Rollout) -> &mut TrafficRouterPlugins {
    let routing = rollout.spec.strategy.canary.as_mut().unwrap().traffic_routing.as_mut().unwrap();
    routing.plugins.as_mut().unwrap()
}

/// A canary (20, pause, 50, pause) updated to v2 and paused at 20%.
fn paused_at_twenty() -> Sim {
    let mut sim = gateway_sim(vec![set_weight(20), pause(None), set_weight(50), pause(None)]);
    sim.settle();
    sim.update_template("v2");
    sim.settle();
    assert_eq!((weights(&sim, RouteKind::HttpRoute), phase(&sim).as_str()), ((80, 20), "Paused"));
    sim
}

#[test]
fn weights_follow_the_steps_and_go_home_after_the_stable_service_moved() {
    let mut sim = gateway_sim(vec![set_weight(20), pause(None), set_weight(50), pause(None)]);
    sim.settle();
    assert_eq!(phase(&sim), "Healthy");
    assert!(weight_writes(&sim).is_empty(), "the route holds 100/0 already: nothing written");
    let before = route(&sim, RouteKind::HttpRoute).data.clone();
    sim.update_template("v2");
    sim.settle();
    assert_eq!((weights(&sim, RouteKind::HttpRoute), label(&sim).as_deref()), ((80, 20), Some("in-progress")));
    let plan = sim.step();
    assert!(!plan.actions.iter().any(|a| matches!(a, Action::PatchRoute { .. })), "in place: {:?}", plan.actions);
    sim.set_status(|s| s.pause_conditions = None);
    sim.settle();
    assert_eq!(weights(&sim, RouteKind::HttpRoute), (50, 50));
    sim.set_status(|s| s.pause_conditions = None);
    sim.run_for(10);
    assert_eq!(sim.selector("web-stable"), Some(hash_of("v2")), "promoted: the stable Service selects the new pods");
    assert_eq!((weights(&sim, RouteKind::HttpRoute), label(&sim)), ((100, 0), None));
    assert_eq!(phase(&sim), "Healthy");
    assert_eq!(weight_writes(&sim), [Some(20), Some(50), Some(100), Some(0)], "each weight written once");

    let after = &route(&sim, RouteKind::HttpRoute).data;
    let rules = |data: &Value| data["spec"]["rules"].as_array().unwrap().clone();
    assert_eq!(rules(after)[1..], rules(&before)[1..], "the foreign rule and the stable-only rule are untouched");
    assert_eq!(after["spec"]["rules"][0]["backendRefs"][2], before["spec"]["rules"][0]["backendRefs"][2]);
    let annotations = route(&sim, RouteKind::HttpRoute).metadata.annotations.clone().unwrap();
    assert!(annotations.contains_key(TRAFFIC_CHANGED_ANNOTATION));
}

#[test]
fn abort_sends_everything_back_and_takes_the_label_off() {
    let mut sim = paused_at_twenty();
    sim.set_status(|s| s.abort = Some(true));
    sim.settle();
    assert_eq!((weights(&sim, RouteKind::HttpRoute), label(&sim)), ((100, 0), None));
    assert_eq!(phase(&sim), "Degraded");
}

#[test]
fn weights_someone_changed_are_put_back_and_the_label_stays_off_when_disabled() {
    let mut sim = paused_at_twenty();
    route_mut(&mut sim.observed).data["spec"]["rules"][0]["backendRefs"][1]["weight"] = json!(60);
    sim.run_for(3);
    assert_eq!(weights(&sim, RouteKind::HttpRoute), (80, 20));

    let mut sim = gateway_sim(vec![set_weight(20), pause(None)]);
    plugins(&mut sim.observed.rollout).gateway_api.as_mut().unwrap().disable_in_progress_label = Some(true);
    sim.settle();
    sim.update_template("v2");
    sim.settle();
    assert_eq!((weights(&sim, RouteKind::HttpRoute), label(&sim)), ((80, 20), None));
}

#[test]
fn a_grpc_route_is_weighed_the_same_way() {
    let mut sim = Sim::new(gateway_observed(rollout(4, vec![set_weight(30), pause(None)]), RouteKind::GrpcRoute));
    sim.settle();
    sim.update_template("v2");
    sim.settle();
    assert_eq!((weights(&sim, RouteKind::GrpcRoute), phase(&sim).as_str()), ((70, 30), "Paused"));
}

/// The status message of one plan of `observed`, which must write nothing.
fn invalid(observed: &Observed) -> String {
    let plan = plan(observed);
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    plan.status.message.unwrap_or_default()
}

#[test]
fn a_missing_crd_route_or_backend_ref_is_invalid_and_nothing_is_written() {
    const FIELD: &str = r#"spec.strategy.canary.trafficRouting.plugins."argoproj-labs/gatewayAPI""#;
    let fresh = || gateway_observed(rollout(4, vec![set_weight(20)]), RouteKind::HttpRoute);
    let mut no_crd = fresh();
    no_crd.route_objects.insert(RouteKind::HttpRoute, None);
    let message = invalid(&no_crd);
    assert!(
        message.contains(&format!("{FIELD}: HTTPRoute \"web\": the cluster serves no gateway.networking.k8s.io/v1 HTTPRoute (httproutes.gateway.networking.k8s.io); install its CRD")),
        "{message}"
    );
    let mut no_route = fresh();
    no_route.route_objects.insert(RouteKind::HttpRoute, Some(Default::default()));
    let message = invalid(&no_route);
    assert!(
        message.contains("HTTPRoute \"web\" not found in namespace ns; create it or correct the name"),
        "{message}"
    );

    let mut no_canary = fresh();
    let refs = &mut route_mut(&mut no_canary).data["spec"]["rules"][0]["backendRefs"];
    refs.as_array_mut().unwrap().remove(1);
    let message = invalid(&no_canary);
    assert!(
        message.contains("backendRef to the canary Service \"web-canary\" was not found in HTTPRoute \"web\"; add one"),
        "{message}"
    );

    let mut no_routes = fresh();
    plugins(&mut no_routes.rollout).gateway_api.as_mut().unwrap().http_route = None;
    assert!(invalid(&no_routes).contains("No routes configured. At least one of 'httpRoutes', 'grpcRoutes'"));
    let unsupported = plugins(&mut no_routes.rollout);
    unsupported.gateway_api.as_mut().unwrap().others.insert("tcpRoutes".into(), json!([{"name": "db"}]));
    unsupported.others.insert("argoproj-labs/contour".into(), json!({}));
    let message = invalid(&no_routes);
    assert!(
        message.contains("plugins.\"argoproj-labs/contour\" (only \"argoproj-labs/gatewayAPI\" is, built in)"),
        "{message}"
    );
    assert!(message.contains("plugins.\"argoproj-labs/gatewayAPI\".tcpRoutes) is not supported"), "{message}");
}
