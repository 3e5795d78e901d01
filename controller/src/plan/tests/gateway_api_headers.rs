//! Header rules (`setHeaderRoute`) on Gateway API routes: in place from their step until the
//! last step, abort or promotion, in the same plans as the weights; replaced when they differ,
//! never written twice, and only on the routes that take header routes.

use super::gateway_api::{gateway_observed, plugins, route, route_mut, weights};
use super::header_routes::{header_step, with_managed};
use super::sim::Sim;
use super::*;
use crate::api::{GatewayRoute, HeaderRoutingMatch, RouteKind, SetHeaderRoute, StringMatch};
use crate::plan::routers::{self, HeaderRoutes};

const KIND: RouteKind = RouteKind::HttpRoute;

fn header_sim(steps: Vec<CanaryStep>) -> Sim {
    let mut observed = gateway_observed(rollout(4, steps), KIND);
    observed.rollout = with_managed(observed.rollout, &["by-header"]);
    Sim::new(observed)
}

/// The names of the route's rules, in order ("" for an unnamed one).
fn rule_names(sim: &Sim) -> Vec<String> {
    let rules = route(sim, KIND).data["spec"]["rules"].as_array().unwrap();
    rules.iter().map(|r| r["name"].as_str().unwrap_or_default().to_string()).collect()
}

fn route_patched(plan: &Plan) -> bool {
    plan.actions.iter().any(|a| matches!(a, Action::PatchRoute { .. }))
}

#[test]
fn a_header_rule_holds_from_its_step_to_the_last_step() {
    let steps = vec![set_weight(20), header_step("by-header", Some("yes")), pause(None), set_weight(50), pause(None)];
    let mut sim = header_sim(steps);
    sim.settle();
    assert_eq!(rule_names(&sim), ["", "", ""], "no header rule while healthy");
    sim.update_template("v2");
    sim.settle();
    assert_eq!(sim.status().current_step_index, Some(2), "the header step is done once its rule is in place");
    assert_eq!(rule_names(&sim), ["by-header", "", "", ""]);
    assert_eq!(
        route(&sim, KIND).data["spec"]["rules"][0],
        json!({"name": "by-header",
               "matches": [{"path": {"type": "PathPrefix", "value": "/"}, "headers": [{"name": "X-Canary", "type": "Exact", "value": "yes"}]}],
               "backendRefs": [{"group": "", "kind": "Service", "name": "web-canary", "port": 80}]})
    );
    assert_eq!(weights(&sim, KIND), (80, 20), "the split rule keeps its weights");
    assert!(!route_patched(&sim.step()), "in place: nothing written");

    // A header rule someone removed is put back.
    route_mut(&mut sim.observed).data["spec"]["rules"].as_array_mut().unwrap().remove(0);
    sim.settle();
    assert_eq!(rule_names(&sim), ["by-header", "", "", ""]);

    sim.set_status(|s| s.pause_conditions = None);
    sim.settle();
    assert_eq!((rule_names(&sim).len(), weights(&sim, KIND)), (4, (50, 50)), "kept through the next weight");
    sim.set_status(|s| s.pause_conditions = None);
    sim.run_for(10);
    assert_eq!(rule_names(&sim), ["", "", ""], "removed at the last step");
    assert_eq!((weights(&sim, KIND), phase(&sim).as_str()), ((100, 0), "Healthy"));
}

#[test]
fn abort_removes_the_header_rule_in_the_plan_that_moves_the_weights() {
    let mut sim = header_sim(vec![set_weight(20), header_step("by-header", Some("yes")), pause(None)]);
    sim.settle();
    sim.update_template("v2");
    sim.settle();
    assert_eq!(rule_names(&sim), ["by-header", "", "", ""]);
    sim.set_status(|s| s.abort = Some(true));
    let plan = sim.step();
    let patches = plan.actions.iter().filter(|a| matches!(a, Action::PatchRoute { .. })).count();
    assert_eq!(patches, 2, "weights, then header rules, on the same route: {:?}", plan.actions);
    assert_eq!((rule_names(&sim), weights(&sim, KIND)), (vec!["".to_string(); 3], (100, 0)));
}

/// The writes that put `wanted` in place on the routes of `observed`.
fn header_writes(observed: &Observed, wanted: &[&SetHeaderRoute]) -> Vec<Action> {
    let canary = observed.rollout.spec.strategy.canary.as_ref().unwrap();
    let services = ("web-stable", "web-canary");
    let routers = routers::configured(observed, canary, Some(services)).unwrap();
    let routes = HeaderRoutes { wanted: wanted.to_vec(), managed: vec!["by-header"] };
    routers.iter().flat_map(|router| router.set_header_routes(observed, services, &routes)).collect()
}

fn by_header(prefix: &str) -> SetHeaderRoute {
    let value = StringMatch { prefix: Some(prefix.into()), ..Default::default() };
    let matches = vec![HeaderRoutingMatch { header_name: "X-Tenant".into(), header_value: value }];
    SetHeaderRoute { name: "by-header".into(), matches: Some(matches) }
}

#[test]
fn header_rules_are_replaced_when_they_differ_and_written_once() {
    let mut sim = header_sim(vec![set_weight(20)]);
    let (one, two) = (by_header("a.b"), by_header("c"));
    for wanted in [&one, &one, &two, &two] {
        for action in header_writes(&sim.observed, &[wanted]) {
            sim.apply_action(&action);
        }
        assert_eq!(rule_names(&sim), ["by-header", "", "", ""]);
    }
    let header = &route(&sim, KIND).data["spec"]["rules"][0]["matches"][0]["headers"][0];
    assert_eq!(*header, json!({"name": "X-Tenant", "type": "RegularExpression", "value": "c.*"}));
    assert!(header_writes(&sim.observed, &[&two]).is_empty(), "in place");
    for action in header_writes(&sim.observed, &[]) {
        sim.apply_action(&action);
    }
    assert_eq!(rule_names(&sim), ["", "", ""]);
    assert!(header_writes(&sim.observed, &[]).is_empty());
}

#[test]
fn only_routes_that_take_header_routes_get_header_rules() {
    let mut observed = gateway_observed(rollout(4, vec![set_weight(20)]), KIND);
    let plugin = plugins(&mut observed.rollout).gateway_api.as_mut().unwrap();
    plugin.http_route = None;
    plugin.http_routes = Some(vec![GatewayRoute { name: "web".into(), use_header_routes: Some(false) }]);
    assert!(header_writes(&observed, &[&by_header("a")]).is_empty());
    // One left from before useHeaderRoutes was turned off goes.
    let rules = &mut route_mut(&mut observed).data["spec"]["rules"];
    rules.as_array_mut().unwrap().push(json!({"name": "by-header", "backendRefs": [{"name": "web-canary"}]}));
    let writes = header_writes(&observed, &[&by_header("a")]);
    let Some(Action::PatchRoute { patch, .. }) = writes.first() else { panic!("{writes:?}") };
    assert_eq!(patch.iter().filter(|op| op["op"] == "remove").count(), 1, "{patch:?}");
}
