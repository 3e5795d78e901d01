//! Tests of the Gateway API router: routes configured, split rules found, shares read, the
//! in-progress label, and header rules patched in and out. Weights through the steps are walked
//! in `plan/tests/gateway_api.rs`.

use super::*;
use crate::api::{HeaderRoutingMatch, SetHeaderRoute, StringMatch};

const NS: &str = "ns";

fn backends() -> Backends<'static> {
    Backends { stable: "web-stable", canary: "web-canary", route_namespace: NS, services_namespace: NS }
}

fn route(rules: Value) -> DynamicObject {
    let mut object = DynamicObject::new("web", &RouteKind::HttpRoute.api_resource()).within(NS);
    object.metadata.resource_version = Some("7".into());
    object.data = json!({"spec": {"rules": rules}});
    object
}

/// `object` with `patch` applied, as the apiserver would (all or nothing).
fn applied(object: &DynamicObject, patch: &[Value]) -> Result<DynamicObject, json_patch::PatchError> {
    let mut json = serde_json::to_value(object).unwrap();
    json_patch::patch(&mut json, &serde_json::from_value::<json_patch::Patch>(Value::Array(patch.to_vec())).unwrap())?;
    Ok(serde_json::from_value(json).unwrap())
}

fn split_rule() -> Value {
    json!({"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": [
        {"name": "web-stable", "port": 80, "weight": 100},
        {"name": "web-canary", "port": 8080, "weight": 0}
    ]})
}

fn foreign_rule() -> Value {
    json!({"matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}], "backendRefs": [{"name": "admin", "port": 80}]})
}

fn header(name: &str, value: StringMatch) -> HeaderRoutingMatch {
    HeaderRoutingMatch { header_name: name.into(), header_value: value }
}

fn exact(value: &str) -> StringMatch {
    StringMatch { exact: Some(value.into()), ..Default::default() }
}

fn header_route(name: &str, matches: Vec<HeaderRoutingMatch>) -> SetHeaderRoute {
    SetHeaderRoute { name: name.into(), matches: Some(matches) }
}

/// The header patch of `object` for `wanted`, with `managed` the managedRoutes' names.
fn header_patch(object: &DynamicObject, wanted: &[&SetHeaderRoute], managed: &[&str]) -> Vec<Value> {
    let split = backends().split_rules(rules(object), managed);
    headers::patch(object, RouteKind::HttpRoute, (&backends(), &split), wanted, managed)
}

#[test]
fn a_single_route_takes_header_routes_and_each_route_counts_once() {
    let settings = GatewayApiTrafficRouting {
        http_route: Some("web".into()),
        http_routes: Some(vec![
            GatewayRoute { name: "web".into(), use_header_routes: None },
            GatewayRoute { name: "api".into(), use_header_routes: None },
        ]),
        grpc_routes: Some(vec![GatewayRoute { name: "web".into(), use_header_routes: Some(true) }]),
        ..Default::default()
    };
    assert_eq!(
        configured_routes(&settings),
        vec![
            (RouteKind::HttpRoute, "web".into(), true),
            (RouteKind::HttpRoute, "api".into(), false),
            (RouteKind::GrpcRoute, "web".into(), true),
        ]
    );
}

#[test]
fn managed_rules_are_the_managed_names_and_their_numbered_followers() {
    let named = |name: &str| json!({"name": name});
    let managed = ["canary-header"];
    for yes in ["canary-header", "canary-header-1", "canary-header-12"] {
        assert!(is_managed(&named(yes), &managed), "{yes}");
    }
    for no in ["canary-headers", "canary-header-", "canary-header-x", "canary", "other"] {
        assert!(!is_managed(&named(no), &managed), "{no}");
    }
    assert!(!is_managed(&json!({}), &managed), "an unnamed rule is the user's");
}

#[test]
fn a_backend_ref_is_one_of_the_services_only_as_a_core_service_in_the_rollouts_namespace() {
    let b = backends();
    assert_eq!(b.role(&json!({"name": "web-canary"})), Some(Role::Canary));
    assert_eq!(
        b.role(&json!({"name": "web-stable", "group": "", "kind": "Service", "namespace": NS})),
        Some(Role::Stable)
    );
    assert_eq!(b.role(&json!({"name": "web-canary", "kind": "ServiceImport", "group": "multicluster.x-k8s.io"})), None);
    assert_eq!(b.role(&json!({"name": "web-canary", "namespace": "other"})), None);
    let elsewhere = Backends { route_namespace: "gateways", ..backends() };
    assert_eq!(elsewhere.role(&json!({"name": "web-canary"})), None, "a route's own namespace by default");
    assert_eq!(elsewhere.role(&json!({"name": "web-canary", "namespace": NS})), Some(Role::Canary));
}

#[test]
fn the_canary_share_counts_an_absent_weight_as_one_and_ignores_other_backends() {
    let b = backends();
    let share = |refs: Value| b.canary_share(&json!({"backendRefs": refs}), 100);
    assert_eq!(share(json!([{"name": "web-stable"}, {"name": "web-canary"}])), 50, "the CRD's default is 1 each");
    assert_eq!(share(json!([{"name": "web-stable", "weight": 80}, {"name": "web-canary", "weight": 20}])), 20);
    assert_eq!(share(json!([{"name": "web-stable", "weight": 2}, {"name": "web-canary", "weight": 1}])), 33);
    assert_eq!(share(json!([{"name": "web-stable", "weight": 0}, {"name": "web-canary", "weight": 0}])), 0);
    let foreign = json!([{"name": "web-stable", "weight": 70}, {"name": "web-canary", "weight": 30}, {"name": "mirror", "weight": 50}]);
    assert_eq!(share(foreign), 30);
    let per_mille = json!([{"name": "web-stable", "weight": 995}, {"name": "web-canary", "weight": 5}]);
    assert_eq!(b.canary_share(&json!({"backendRefs": per_mille}), 1000), 5, "out of maxTrafficWeight");
}

#[test]
fn split_rules_send_to_both_services_and_were_not_added_here() {
    let managed_split =
        json!({"name": "canary-header", "backendRefs": [{"name": "web-stable"}, {"name": "web-canary"}]});
    let stable_only = json!({"backendRefs": [{"name": "web-stable"}]});
    let rules = [foreign_rule(), split_rule(), managed_split, stable_only, split_rule()];
    assert_eq!(backends().split_rules(&rules, &["canary-header"]), vec![1, 4]);
}

#[test]
fn a_route_without_a_split_rule_says_which_backend_ref_is_missing_and_how_to_fix_it() {
    let b = backends();
    let missing = |refs: Vec<Value>| {
        let rules: Vec<Value> = refs.into_iter().map(|r| json!({"backendRefs": r})).collect();
        b.missing(&rules, &[]).unwrap_or_default()
    };
    assert!(missing(vec![json!([{"name": "web-stable"}, {"name": "web-canary"}])]).is_empty());
    let canary = missing(vec![json!([{"name": "web-stable"}])]);
    assert!(
        canary.starts_with(
            "backendRef to the canary Service \"web-canary\" was not found in {route}; add one with weight 0"
        ),
        "{canary}"
    );
    let stable = missing(vec![json!([{"name": "web-canary"}])]);
    assert!(stable.starts_with("backendRef to the stable Service \"web-stable\" was not found"), "{stable}");
    let apart = missing(vec![json!([{"name": "web-stable"}]), json!([{"name": "web-canary"}])]);
    assert!(apart.starts_with("no rule of {route} has backendRefs to both"), "{apart}");
    let neither = missing(vec![json!([{"name": "admin"}])]);
    assert!(neither.contains("has no backendRef to the stable Service \"web-stable\" nor to the canary"), "{neither}");
    let elsewhere = Backends { route_namespace: "gateways", ..backends() };
    let hint = elsewhere.missing(&[split_rule()], &[]).unwrap();
    assert!(hint.ends_with("(the route is in namespace gateways: its backendRefs need `namespace: ns`)"), "{hint}");
}

fn managed_routes(label: Option<(&str, &str)>) -> ManagedGatewayRoutes {
    ManagedGatewayRoutes {
        namespace: NS.into(),
        routes: vec![(RouteKind::HttpRoute, "web".into(), true)],
        services_namespace: NS.into(),
        stable_service: "web-stable".into(),
        managed: Vec::new(),
        in_progress_label: label.map(|(k, v)| (k.into(), v.into())),
        max_weight: 100,
    }
}

#[test]
fn the_in_progress_label_is_put_on_while_the_canary_has_weight_and_taken_off_after() {
    let routes = managed_routes(Some(DEFAULT_IN_PROGRESS_LABEL));
    let (key, value) = DEFAULT_IN_PROGRESS_LABEL;
    let mut object = route(json!([split_rule()]));
    assert!(routes.label_patch(&object, false).is_empty());
    // Without labels the map is created, guarded by the resourceVersion.
    let on = routes.label_patch(&object, true);
    assert_eq!(on[0], json!({"op": "test", "path": "/metadata/resourceVersion", "value": "7"}));
    object = applied(&object, &on).unwrap();
    assert_eq!(object.metadata.labels.as_ref().unwrap()[key], value);
    assert!(routes.label_patch(&object, true).is_empty(), "in place");
    object.metadata.labels.as_mut().unwrap().insert("team".into(), "shop".into());
    object = applied(&object, &routes.label_patch(&object, false)).unwrap();
    assert_eq!(object.metadata.labels.clone().unwrap(), [("team".to_string(), "shop".to_string())].into());
    let with_team = routes.label_patch(&object, true);
    assert_eq!(
        with_team,
        vec![json!({"op": "add", "path": "/metadata/labels/rollouts.argoproj.io~1gatewayapi-canary", "value": value})]
    );
    assert!(managed_routes(None).label_patch(&object, true).is_empty(), "disableInProgressLabel");
}

#[test]
fn header_rules_go_before_the_first_split_rule_with_the_headers_added_to_its_matches() {
    let mut source = split_rule();
    source["matches"] =
        json!([{"path": {"type": "PathPrefix", "value": "/shop"}, "headers": [{"name": "x-canary", "value": "old"}]}]);
    source["filters"] = json!([{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-via", "value": "gw"}]}}]);
    let object = route(json!([foreign_rule(), source]));
    let wanted = header_route(
        "canary-header",
        vec![
            header("X-Canary", exact("yes")),
            header("X-User", StringMatch { prefix: Some("team.a+".into()), ..Default::default() }),
            header("X-Build", StringMatch { regex: Some("^v[0-9]+$".into()), ..Default::default() }),
        ],
    );
    let patch = header_patch(&object, &[&wanted], &["canary-header"]);
    let after = applied(&object, &patch).unwrap();
    let rules = rules(&after);
    assert_eq!(rules[0], foreign_rule(), "rules before the split rule stay where they are");
    assert_eq!(
        rules[1],
        json!({
            "name": "canary-header",
            "matches": [{"path": {"type": "PathPrefix", "value": "/shop"}, "headers": [
                {"name": "X-Canary", "type": "Exact", "value": "yes"},
                {"name": "X-User", "type": "RegularExpression", "value": "team\\.a\\+.*"},
                {"name": "X-Build", "type": "RegularExpression", "value": "^v[0-9]+$"}
            ]}],
            "filters": object.data["spec"]["rules"][1]["filters"],
            "backendRefs": [{"group": "", "kind": "Service", "name": "web-canary", "port": 8080}]
        }),
        "the source's header of the same name is replaced; no weight"
    );
    assert_eq!(rules[2], object.data["spec"]["rules"][1], "the split rule is untouched");
    assert!(header_patch(&after, &[&wanted], &["canary-header"]).is_empty(), "in place: nothing to write");
    assert!(applied(&after, &patch).is_err(), "applied twice (a stale cache), it fails instead of duplicating");
}

#[test]
fn header_rules_read_back_with_the_apiservers_defaults_are_in_place() {
    let object = route(json!([{"backendRefs": [{"name": "web-stable"}, {"name": "web-canary", "port": 80}]}]));
    let wanted = header_route("canary-header", vec![header("X-Canary", exact("yes"))]);
    let mut after = applied(&object, &header_patch(&object, &[&wanted], &["canary-header"])).unwrap();
    assert_eq!(
        after.data["spec"]["rules"][0]["matches"],
        json!([{"headers": [{"name": "X-Canary", "type": "Exact", "value": "yes"}]}])
    );
    let rule = &mut after.data["spec"]["rules"][0];
    rule["matches"][0]["path"] = json!({"type": "PathPrefix", "value": "/"});
    rule["backendRefs"][0]["weight"] = json!(1);
    assert!(header_patch(&after, &[&wanted], &["canary-header"]).is_empty());
}

#[test]
fn every_split_rule_gets_its_header_rule_and_grpc_matches_keep_their_method() {
    let mut grpc = split_rule();
    grpc["matches"] = json!([{"method": {"service": "shop.Cart", "method": "Add"}}]);
    let object = route(json!([split_rule(), foreign_rule(), grpc]));
    let wanted = header_route("canary-header", vec![header("x-canary", exact("yes"))]);
    let split = backends().split_rules(rules(&object), &["canary-header"]);
    let patch = headers::patch(&object, RouteKind::GrpcRoute, (&backends(), &split), &[&wanted], &["canary-header"]);
    let after = applied(&object, &patch).unwrap();
    let names: Vec<Option<&str>> = rules(&after).iter().map(|r| r.get("name").and_then(Value::as_str)).collect();
    assert_eq!(names, [Some("canary-header"), Some("canary-header-1"), None, None, None]);
    assert_eq!(
        rules(&after)[1]["matches"],
        json!([{"method": {"service": "shop.Cart", "method": "Add"}, "headers": [{"name": "x-canary", "type": "Exact", "value": "yes"}]}])
    );
}

#[test]
fn managed_rules_not_wanted_are_removed_from_the_highest_index_down_and_changed_ones_replaced() {
    let first = header_route("a", vec![header("x-a", exact("1"))]);
    let second = header_route("b", vec![header("x-b", exact("1"))]);
    let managed = ["a", "b"];
    let object = route(json!([split_rule(), foreign_rule(), split_rule()]));
    let both = applied(&object, &header_patch(&object, &[&first, &second], &managed)).unwrap();
    let names: Vec<Option<&str>> = rules(&both).iter().map(|r| r.get("name").and_then(Value::as_str)).collect();
    assert_eq!(names, [Some("a"), Some("a-1"), Some("b"), Some("b-1"), None, None, None]);

    let only_b = header_patch(&both, &[&second], &managed);
    let removals: Vec<&str> =
        only_b.iter().filter(|op| op["op"] == "remove").filter_map(|op| op["path"].as_str()).collect();
    assert_eq!(removals, ["/spec/rules/3", "/spec/rules/2", "/spec/rules/1", "/spec/rules/0"]);
    let after = applied(&both, &only_b).unwrap();
    let names: Vec<Option<&str>> = rules(&after).iter().map(|r| r.get("name").and_then(Value::as_str)).collect();
    assert_eq!(names, [Some("b"), Some("b-1"), None, None, None]);

    let changed = header_route("b", vec![header("x-b", exact("2"))]);
    let after = applied(&after, &header_patch(&after, &[&changed], &managed)).unwrap();
    assert_eq!(rules(&after)[0]["matches"][0]["headers"][0]["value"], "2");
    assert_eq!(rules(&after).len(), 5);

    let none = applied(&after, &header_patch(&after, &[], &managed)).unwrap();
    assert_eq!(rules(&none), rules(&object), "back to the user's rules, untouched");
    assert!(header_patch(&none, &[], &managed).is_empty());
}

#[test]
fn a_weight_written_first_in_the_same_plan_does_not_fail_the_header_patch() {
    let object = route(json!([split_rule()]));
    let wanted = header_route("canary-header", vec![header("x-canary", exact("yes"))]);
    let headers = header_patch(&object, &[&wanted], &["canary-header"]);
    let mut routes = managed_routes(None);
    routes.managed = vec!["canary-header".into()];
    let weighed = routes.weight_patch(&object, &backends(), 20);
    let after = applied(&applied(&object, &weighed).unwrap(), &headers).unwrap();
    assert_eq!(rules(&after)[1]["backendRefs"][1]["weight"], 20);
    // And the other way round, read before the header rule went in, a weight can't land on it.
    let stale = applied(&object, &headers).unwrap();
    assert!(applied(&stale, &weighed).is_err());
}
