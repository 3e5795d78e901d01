//! APISIX: the ApisixRoute's backend weights through the steps, at promotion and abort, written
//! only when they differ; a bad reference InvalidSpec naming the fix; header routes as
//! ApisixRoutes of their own.

use super::*;
use crate::api::{
    ApisixRouteRef, ApisixTrafficRouting, HeaderRoutingMatch, ManagedRoute, RouteKind, SetHeaderRoute, StringMatch,
};
use crate::plan::routers::{HeaderRoutes, apisix};
use kube::api::DynamicObject;

const KIND: RouteKind = RouteKind::ApisixRoute;

fn apisix_route(name: &str, spec: serde_json::Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "apisix.apache.org/v2", "kind": "ApisixRoute",
        "metadata": {"name": name, "namespace": NAMESPACE, "uid": format!("uid-{name}"), "resourceVersion": "1"},
        "spec": spec
    }))
    .unwrap()
}

/// Rule `primary` to both Services (without weights, as APISIX's docs advise) and a mirror
/// backend; rule `admin` elsewhere.
fn main_route() -> DynamicObject {
    apisix_route(
        "web",
        json!({"http": [
            {"name": "primary", "match": {"paths": ["/*"], "hosts": ["shop.example"]}, "backends": [
                {"serviceName": "web-stable", "servicePort": 80},
                {"serviceName": "web-canary", "servicePort": 80},
                {"serviceName": "mirror", "servicePort": 80, "weight": 1}
            ]},
            {"name": "admin", "match": {"paths": ["/admin"]}, "backends": [{"serviceName": "admin", "servicePort": 80}]}
        ]}),
    )
}

/// `rollout` routed through rule `primary` of ApisixRoute `web`, with the route in place.
pub(super) fn apisix_observed(rollout: Rollout) -> Observed {
    let mut rollout = with_services(rollout);
    let canary = rollout.spec.strategy.canary.as_mut().unwrap();
    let route = ApisixRouteRef { name: "web".into(), rules: Some(vec!["primary".into()]) };
    canary.traffic_routing =
        Some(TrafficRouting { apisix: Some(ApisixTrafficRouting { route: Some(route) }), ..Default::default() });
    let mut observed = observed(rollout);
    observed.route_objects.insert(KIND, Some([((NAMESPACE.into(), "web".into()), main_route())].into()));
    observed
}

fn apisix_sim(steps: Vec<CanaryStep>) -> Sim {
    Sim::new(apisix_observed(rollout(4, steps)))
}

impl Sim {
    fn route(&self, name: &str) -> Option<&DynamicObject> {
        self.observed.route_object(KIND, NAMESPACE, name).unwrap()
    }

    fn insert_route(&mut self, route: DynamicObject) {
        let routes = self.observed.route_objects.get_mut(&KIND).unwrap().as_mut().unwrap();
        routes.insert((NAMESPACE.into(), route.metadata.name.clone().unwrap()), route);
    }

    /// (stable, canary) weights of rule `primary`.
    fn apisix_weights(&self) -> (i64, i64) {
        let backends = &self.route("web").unwrap().data["spec"]["http"][0]["backends"];
        (backends[0]["weight"].as_i64().unwrap(), backends[1]["weight"].as_i64().unwrap())
    }

    fn route_weights_written(&self) -> Vec<Option<i32>> {
        let writes = self.plans.iter().flat_map(|p| &p.actions);
        writes
            .filter_map(|a| if let Action::PatchRoute { canary_weight, .. } = a { Some(*canary_weight) } else { None })
            .collect()
    }
}

fn four_steps() -> Vec<CanaryStep> {
    vec![set_weight(20), pause(None), set_weight(50), pause(None)]
}

fn message(plan: &Plan) -> String {
    assert!(plan.actions.is_empty(), "nothing is written for an invalid Rollout: {:?}", plan.actions);
    plan.status.message.clone().unwrap_or_default()
}

#[test]
fn weights_follow_the_steps_and_go_home_after_the_stable_service_moved() {
    let mut sim = apisix_sim(four_steps());
    // APISIX splits a route without weights evenly: the stable gets it all once its Service
    // selects the pods and that settled.
    sim.run_for(3);
    assert_eq!((sim.apisix_weights(), phase(&sim).as_str()), ((100, 0), "Healthy"), "explicit weights once healthy");
    let stamped =
        apisix::ManagedApisixRoute { namespace: NAMESPACE.into(), name: "web".into(), rules: vec![], max_weight: 100 };
    assert!(stamped.traffic_changed_at(&sim.observed).is_some(), "the change recorded on the route");
    sim.update_template("v2");
    sim.settle();
    assert_eq!((sim.apisix_weights(), phase(&sim).as_str()), ((80, 20), "Paused"));
    sim.set_status(|s| s.pause_conditions = None);
    sim.settle();
    assert_eq!(sim.apisix_weights(), (50, 50));
    sim.set_status(|s| s.pause_conditions = None);
    sim.run_for(10);
    assert_eq!(sim.selector("web-stable"), Some(hash_of("v2")), "promoted: the stable Service selects the new pods");
    assert_eq!((sim.apisix_weights(), phase(&sim).as_str()), ((100, 0), "Healthy"), "and the weight went home after");
    assert_eq!(sim.route_weights_written(), [Some(0), Some(20), Some(50), Some(100), Some(0)], "each written once");
    let route = &sim.route("web").unwrap().data["spec"];
    assert_eq!(
        route["http"][0]["backends"][2],
        main_route().data["spec"]["http"][0]["backends"][2],
        "mirror untouched"
    );
    assert_eq!(route["http"][1], main_route().data["spec"]["http"][1], "the other rule untouched");
}

#[test]
fn abort_returns_the_weight_to_the_stable_first() {
    let mut sim = apisix_sim(four_steps());
    sim.settle();
    sim.update_template("v2");
    sim.settle();
    assert_eq!(sim.apisix_weights(), (80, 20));
    sim.set_status(|s| s.abort = Some(true));
    let plan = sim.step();
    assert_eq!(sim.apisix_weights(), (100, 0), "weight back to stable first");
    assert!(plan.actions.iter().all(|a| !matches!(a, Action::SetServiceSelector { .. })));
    sim.run_for(40);
    assert_eq!((sim.selector("web-canary"), phase(&sim).as_str()), (Some(hash_of("v1")), "Degraded"));
    assert_eq!(sim.apisix_weights(), (100, 0));
}

#[test]
fn nothing_is_written_while_the_weights_hold_and_drift_is_put_back() {
    let mut sim = apisix_sim(four_steps());
    sim.settle();
    sim.update_template("v2");
    sim.settle();
    let version = sim.route("web").unwrap().metadata.resource_version.clone();
    let routes = |plan: &Plan| plan.actions.iter().filter(|a| matches!(a, Action::PatchRoute { .. })).count();
    assert_eq!(routes(&plan(&sim.observed)), 0, "a second plan on the same state writes nothing");
    sim.wait(5);
    assert_eq!(sim.route("web").unwrap().metadata.resource_version, version);
    // Someone edits the canary's weight: the step's is put back, the time of the change with it.
    let route = sim.observed.route_objects.get_mut(&KIND).unwrap().as_mut().unwrap();
    route.get_mut(&(NAMESPACE.into(), "web".into())).unwrap().data["spec"]["http"][0]["backends"][1]["weight"] =
        json!(70);
    let plan = sim.step();
    assert_eq!(routes(&plan), 1);
    assert_eq!(sim.apisix_weights(), (80, 20));
}

#[test]
fn a_cluster_without_the_crd_is_invalid_naming_it() {
    let mut sim = apisix_sim(four_steps());
    sim.observed.route_objects.insert(KIND, None);
    let message = message(&sim.step());
    assert!(message.contains("spec.strategy.canary.trafficRouting.apisix: the cluster serves no apisix.apache.org/v2 ApisixRoute (apisixroutes.apisix.apache.org); install its CRD"), "{message}");
}

#[test]
fn a_missing_route_rule_or_backend_is_invalid_naming_the_fix() {
    let mut missing = apisix_sim(four_steps());
    missing.observed.route_objects.insert(KIND, Some(BTreeMap::new()));
    let text = message(&missing.step());
    assert!(text.contains("apisix.route.name: Invalid value: \"web\": ApisixRoute \"web\" not found in namespace ns; create it or correct the name"), "{text}");

    let mut no_rule = apisix_sim(four_steps());
    let routing = no_rule.observed.rollout.spec.strategy.canary.as_mut().unwrap().traffic_routing.as_mut().unwrap();
    routing.apisix.as_mut().unwrap().route.as_mut().unwrap().rules = None;
    let text = message(&no_rule.step());
    assert!(text.contains("ApisixRoute \"web\" has no rule named \"web\" (the default without route.rules)"), "{text}");

    let mut no_backend = apisix_sim(four_steps());
    let mut route = main_route();
    route.data["spec"]["http"][0]["backends"].as_array_mut().unwrap().remove(1);
    no_backend.insert_route(route);
    let text = message(&no_backend.step());
    assert!(text.contains("rule \"primary\" of ApisixRoute \"web\" has no backend with serviceName web-canary (the canary Service); add one to its backends"), "{text}");
}

fn with_managed_route(sim: &mut Sim) {
    let routing = sim.observed.rollout.spec.strategy.canary.as_mut().unwrap().traffic_routing.as_mut().unwrap();
    routing.managed_routes = Some(vec![ManagedRoute { name: "header-route".into() }]);
}

#[test]
fn a_managed_route_someone_else_holds_is_refused() {
    let mut sim = apisix_sim(four_steps());
    with_managed_route(&mut sim);
    sim.insert_route(apisix_route("header-route", json!({"http": []})));
    let text = message(&sim.step());
    assert!(text.contains("duplicate ApisixRoute [header-route] already exists"), "{text}");
}

fn exact(value: &str) -> SetHeaderRoute {
    let header_value = StringMatch { exact: Some(value.into()), ..Default::default() };
    SetHeaderRoute {
        name: "header-route".into(),
        matches: Some(vec![HeaderRoutingMatch { header_name: "X-Canary".into(), header_value }]),
    }
}

/// The header-route writes for `wanted`, applied.
fn header_writes(sim: &mut Sim, wanted: Option<&SetHeaderRoute>) -> Vec<Action> {
    let canary = sim.observed.rollout.spec.strategy.canary.clone().unwrap();
    let router = apisix::configured(&sim.observed, &canary, ("web-stable", "web-canary")).unwrap().unwrap();
    let routes = HeaderRoutes { wanted: wanted.into_iter().collect(), managed: vec!["header-route"] };
    let actions = router.set_header_routes(&sim.observed, ("web-stable", "web-canary"), &routes);
    actions.iter().for_each(|action| sim.apply_action(action));
    actions
}

#[test]
fn a_header_route_is_created_updated_and_deleted_as_wanted() {
    let mut sim = apisix_sim(four_steps());
    with_managed_route(&mut sim);
    sim.settle();
    let created = header_writes(&mut sim, Some(&exact("yes")));
    assert!(matches!(created.as_slice(), [Action::CreateRoute { .. }]), "{created:?}");
    let route = sim.route("header-route").unwrap();
    assert_eq!(route.metadata.owner_references.as_ref().unwrap()[0].uid, "uid-1");
    assert_eq!(
        route.data["spec"],
        json!({"http": [{"name": "primary", "priority": 1, "match": {"paths": ["/*"], "hosts": ["shop.example"],
            "exprs": [{"subject": {"scope": "Header", "name": "X-Canary"}, "op": "Equal", "value": "yes"}]},
            "backends": [{"serviceName": "web-canary", "servicePort": 80, "weight": 100}]}]})
    );
    assert!(header_writes(&mut sim, Some(&exact("yes"))).is_empty(), "nothing while it is in place");
    let updated = header_writes(&mut sim, Some(&exact("always")));
    assert!(matches!(updated.as_slice(), [Action::PatchRoute { canary_weight: None, .. }]), "{updated:?}");
    assert_eq!(sim.route("header-route").unwrap().data["spec"]["http"][0]["match"]["exprs"][0]["value"], "always");
    let deleted = header_writes(&mut sim, None);
    assert!(
        matches!(deleted.as_slice(), [Action::DeleteRoute { uid, .. }] if uid == "uid-header-route"),
        "{deleted:?}"
    );
    assert!(sim.route("header-route").is_none());
    assert!(header_writes(&mut sim, None).is_empty(), "nothing left to delete");
}

#[test]
fn a_header_step_holds_its_route_until_promotion_and_abort_takes_it_away() {
    let header_step = CanaryStep { set_header_route: Some(exact("yes")), ..Default::default() };
    let steps = vec![set_weight(20), header_step, pause(None), set_weight(50), pause(None)];
    for abort in [false, true] {
        let mut sim = apisix_sim(steps.clone());
        with_managed_route(&mut sim);
        sim.run_for(3);
        assert!(sim.route("header-route").is_none(), "no header route while healthy");
        sim.update_template("v2");
        sim.settle();
        assert_eq!(sim.status().current_step_index, Some(2), "the header step is done once its route is in place");
        let exprs = &sim.route("header-route").unwrap().data["spec"]["http"][0]["match"]["exprs"];
        assert_eq!(exprs[0]["value"], "yes");
        assert_eq!(sim.apisix_weights(), (80, 20), "the weighted route keeps its weights");
        if abort {
            sim.set_status(|s| s.abort = Some(true));
        } else {
            sim.set_status(|s| s.promote_full = Some(true));
        }
        sim.run_for(10);
        assert!(sim.route("header-route").is_none(), "removed (abort: {abort})");
        assert_eq!(sim.apisix_weights(), (100, 0));
    }
}
