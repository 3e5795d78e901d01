//! Header routes (`setHeaderRoute`) through Istio: in place from their step until the last step,
//! abort or promotion; validated against `managedRoutes`; repaired after a drift.

use super::nginx::with_nginx;
use super::sim::Sim;
use super::*;
use crate::api::{HeaderRoutingMatch, ManagedRoute, SetHeaderRoute, StringMatch};

pub(super) fn header_step(name: &str, exact: Option<&str>) -> CanaryStep {
    let matches = exact.map(|value| {
        vec![HeaderRoutingMatch {
            header_name: "X-Canary".into(),
            header_value: StringMatch { exact: Some(value.into()), ..Default::default() },
        }]
    });
    CanaryStep { set_header_route: Some(SetHeaderRoute { name: name.into(), matches }), ..Default::default() }
}

pub(super) fn with_managed(mut rollout: Rollout, names: &[&str]) -> Rollout {
    let routing = rollout.spec.strategy.canary.as_mut().unwrap().traffic_routing.as_mut().unwrap();
    routing.managed_routes = Some(names.iter().map(|n| ManagedRoute { name: (*n).into() }).collect());
    rollout
}

fn header_sim(steps: Vec<CanaryStep>) -> Sim {
    Sim::new(observed(with_managed(with_istio(rollout(4, steps)), &["by-header"])))
}

impl Sim {
    /// The names of the VirtualService's HTTP routes, in order.
    fn http_routes(&self) -> Vec<String> {
        let vs = &self.observed.virtual_services.as_ref().unwrap()[&(NAMESPACE.to_string(), "web".to_string())];
        let http = vs.spec["http"].as_array().unwrap();
        http.iter().map(|r| r["name"].as_str().unwrap_or_default().to_string()).collect()
    }

    fn vs_http(&self, index: usize) -> serde_json::Value {
        let vs = &self.observed.virtual_services.as_ref().unwrap()[&(NAMESPACE.to_string(), "web".to_string())];
        vs.spec["http"][index].clone()
    }

    /// The weights of the route named primary, wherever the header routes put it.
    fn primary_weights(&self) -> (i64, i64) {
        let index = self.http_routes().iter().position(|n| n == "primary").unwrap();
        let route = &self.vs_http(index)["route"];
        (route[0]["weight"].as_i64().unwrap(), route[1]["weight"].as_i64().unwrap())
    }
}

#[test]
fn a_header_route_holds_from_its_step_to_the_last_step() {
    let steps = vec![set_weight(10), header_step("by-header", Some("yes")), pause(None), set_weight(50), pause(None)];
    let mut sim = header_sim(steps);
    sim.settle();
    assert_eq!(sim.http_routes(), ["primary"], "no header route while healthy");
    sim.update_template("v2");
    sim.settle();
    assert_eq!(sim.status().current_step_index, Some(2), "the header step is done once its route is in place");
    assert_eq!(sim.http_routes(), ["by-header", "primary"]);
    assert_eq!(
        sim.vs_http(0),
        json!({"name": "by-header", "match": [{"headers": {"X-Canary": {"exact": "yes"}}}],
               "route": [{"destination": {"host": "web-canary"}, "weight": 100}]})
    );
    assert_eq!(sim.primary_weights(), (90, 10), "the weighted route keeps its weights");
    assert!(sim.events().contains(&"HeaderRoutesUpdated"));

    // A second plan on the same state writes nothing; a route someone removed is put back.
    let plan = sim.step();
    assert!(plan.actions.iter().all(|a| !matches!(a, Action::PatchVirtualService { .. })), "{:?}", plan.actions);
    let vs = sim.observed.virtual_services.as_mut().unwrap();
    let spec = &mut vs.get_mut(&(NAMESPACE.to_string(), "web".to_string())).unwrap().spec;
    spec["http"].as_array_mut().unwrap().remove(0);
    sim.settle();
    assert_eq!(sim.http_routes(), ["by-header", "primary"]);

    sim.set_status(|s| s.pause_conditions = None);
    sim.settle();
    assert_eq!((sim.http_routes().len(), sim.primary_weights()), (2, (50, 50)), "kept through the next weight");

    sim.set_status(|s| s.pause_conditions = None);
    sim.settle();
    assert_eq!(sim.http_routes(), ["primary"], "removed at the last step");
    sim.wait(2);
    sim.wait(2);
    assert_eq!(phase(&sim), "Healthy");
    assert_eq!(sim.primary_weights(), (100, 0));
}

#[test]
fn abort_removes_header_routes_with_the_weights() {
    let mut sim = header_sim(vec![set_weight(20), header_step("by-header", Some("yes")), pause(None)]);
    sim.settle();
    sim.update_template("v2");
    sim.settle();
    assert_eq!(sim.http_routes(), ["by-header", "primary"]);
    sim.set_status(|s| s.abort = Some(true));
    sim.step();
    assert_eq!(sim.http_routes(), ["primary"], "header route gone in the abort's first plan");
    assert_eq!(sim.primary_weights(), (100, 0));
}

#[test]
fn a_header_step_without_match_removes_its_route() {
    let steps = vec![
        canary_scale(Some(1), false),
        header_step("by-header", Some("yes")),
        pause(None),
        header_step("by-header", None),
        pause(None),
    ];
    let mut sim = header_sim(steps);
    sim.settle();
    sim.update_template("v2");
    sim.settle();
    assert_eq!(sim.http_routes(), ["by-header", "primary"]);
    sim.set_status(|s| s.pause_conditions = None);
    sim.settle();
    assert_eq!(sim.status().current_step_index, Some(4));
    assert_eq!(sim.http_routes(), ["primary"]);
}

#[test]
fn header_routes_are_validated() {
    let step = header_step("by-header", Some("yes"));
    let regex = CanaryStep {
        set_header_route: Some(SetHeaderRoute {
            name: "by-header".into(),
            matches: Some(vec![HeaderRoutingMatch {
                header_name: "X-Canary".into(),
                header_value: StringMatch { regex: Some("(".into()), ..Default::default() },
            }]),
        }),
        ..Default::default()
    };
    let two_kinds = CanaryStep {
        set_header_route: Some(SetHeaderRoute {
            name: "by-header".into(),
            matches: Some(vec![HeaderRoutingMatch {
                header_name: "X-Canary".into(),
                header_value: StringMatch { exact: Some("a".into()), prefix: Some("b".into()), ..Default::default() },
            }]),
        }),
        ..Default::default()
    };
    let cases: Vec<(Rollout, &str)> = vec![
        (
            with_istio(rollout(4, vec![step.clone()])),
            "spec.strategy.canary.trafficRouting.managedRoutes: Required value: spec.strategy.canary.steps[0].setHeaderRoute needs it",
        ),
        (
            with_managed(with_istio(rollout(4, vec![step.clone()])), &["other"]),
            "spec.strategy.canary.steps[0].setHeaderRoute.name: Invalid value: \"by-header\": not in trafficRouting.managedRoutes",
        ),
        (
            with_managed(with_istio(rollout(4, vec![regex])), &["by-header"]),
            "spec.strategy.canary.steps[0].setHeaderRoute.match[0].headerValue.regex: Invalid value",
        ),
        (
            with_managed(with_istio(rollout(4, vec![two_kinds])), &["by-header"]),
            "set exactly one of exact, prefix or regex",
        ),
        (
            with_managed(with_istio(rollout(4, vec![step.clone()])), &["by-header", "by-header"]),
            "managedRoutes[1].name: Invalid value: \"by-header\": names must be set and unique",
        ),
        (with_managed(with_nginx(rollout(4, vec![step])), &["by-header"]), "no router here routes by header"),
    ];
    for (spec, expected) in cases {
        let mut observed = observed(spec);
        for name in ["web-stable", "web-canary"] {
            observed.services.insert(name.into(), service(name));
        }
        observed.ingresses.insert("web".into(), super::nginx::stable_ingress());
        let plan = plan(&observed);
        assert!(plan.actions.is_empty(), "{expected}: {:?}", plan.actions);
        let message = plan.status.message.unwrap();
        assert!(message.contains(expected), "expected {expected:?} in {message:?}");
    }
}

#[test]
fn no_header_route_before_the_canary_has_available_pods() {
    let mut sim = header_sim(vec![canary_scale(Some(1), false), header_step("by-header", Some("yes")), pause(None)]);
    sim.settle();
    sim.update_template("v2");
    let plan = sim.step();
    assert!(plan.actions.iter().all(|a| !matches!(a, Action::PatchVirtualService { .. })), "{:?}", plan.actions);
    assert_eq!(sim.status().current_step_index, Some(0));
    sim.settle();
    assert_eq!(sim.http_routes(), ["by-header", "primary"]);

    // Without pods for the canary the step says how to get some.
    let mut sim = header_sim(vec![header_step("by-header", Some("yes")), pause(None)]);
    sim.settle();
    sim.update_template("v2");
    sim.settle();
    assert_eq!(sim.status().current_step_index, Some(0));
    let message = sim.status().message.unwrap_or_default();
    assert!(message.contains("the canary has no pods to route by header to"), "{message}");
}
