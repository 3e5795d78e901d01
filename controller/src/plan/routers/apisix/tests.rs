//! Tests of the APISIX router's pieces: references, rules checked, the weight patch, header
//! route specs. Whole rollouts through it are in `plan/tests/apisix.rs`.

use super::header::{exprs, header_spec};
use super::*;
use crate::api::{HeaderRoutingMatch, ManagedRoute, StringMatch, TrafficRouting};

fn spec() -> Value {
    json!({"http": [
        {"name": "other", "match": {"paths": ["/admin"]}, "backends": [{"serviceName": "admin", "servicePort": 80}]},
        {"name": "method", "priority": 3, "match": {"paths": ["/*"], "hosts": ["app.example.com"], "methods": ["GET"],
            "exprs": [{"subject": {"scope": "Query", "name": "debug"}, "op": "Equal", "value": "1"}]},
         "backends": [
            {"serviceName": "web-stable", "servicePort": 80},
            {"serviceName": "legacy", "servicePort": 80, "weight": 5},
            {"serviceName": "web-canary", "servicePort": 80}
         ],
         "upstreams": [{"name": "elsewhere", "weight": 10}],
         "plugins": [{"name": "prometheus", "enable": true}]}
    ], "stream": [{"name": "tcp"}]})
}

fn route(rules: Option<Vec<&str>>) -> ApisixRouteRef {
    ApisixRouteRef { name: "web".into(), rules: rules.map(|r| r.into_iter().map(String::from).collect()) }
}

fn header(name: &str, value: StringMatch) -> HeaderRoutingMatch {
    HeaderRoutingMatch { header_name: name.into(), header_value: value }
}

#[test]
fn references_are_the_route_and_each_managed_route() {
    let mut canary = CanaryStrategy::default();
    assert!(references(&canary, "ns").is_empty());
    canary.traffic_routing = Some(TrafficRouting {
        apisix: Some(crate::api::ApisixTrafficRouting { route: Some(route(None)) }),
        managed_routes: Some(vec![ManagedRoute { name: "header-route".into() }]),
        ..Default::default()
    });
    let key = |name: &str| (RouteKind::ApisixRoute, ("ns".to_string(), name.to_string()));
    assert_eq!(references(&canary, "ns"), [key("web"), key("header-route")]);
}

#[test]
fn rules_default_to_the_route_name_and_each_needs_both_backends() {
    assert_eq!(rule_names(&route(None)), ["web"]);
    assert_eq!(rule_names(&route(Some(vec![]))), ["web"]);
    let services = [("stable", "web-stable"), ("canary", "web-canary")];
    assert!(check_rule(&spec(), &route(Some(vec!["method"])), "method", services).is_ok());
    let missing = check_rule(&spec(), &route(None), "web", services).unwrap_err();
    assert!(missing.contains("apisix.route.rules: Invalid value: \"web\": ApisixRoute \"web\" has no rule named \"web\" (the default without route.rules)"), "{missing}");
    let no_backend = check_rule(&spec(), &route(Some(vec!["other"])), "other", services).unwrap_err();
    assert!(
        no_backend.contains(
            "rule \"other\" of ApisixRoute \"web\" has no backend with serviceName web-stable (the stable Service)"
        ),
        "{no_backend}"
    );
}

#[test]
fn the_patch_sets_both_weights_guarded_and_leaves_other_backends_alone() {
    let rules = vec!["method".to_string()];
    let (patch, moved) = weight_patch(&spec(), &rules, &[("web-canary", 20), ("web-stable", 80)]);
    assert!(moved);
    assert_eq!(
        patch,
        [
            json!({"op": "test", "path": "/spec/http/1/name", "value": "method"}),
            json!({"op": "test", "path": "/spec/http/1/backends/2/serviceName", "value": "web-canary"}),
            json!({"op": "add", "path": "/spec/http/1/backends/2/weight", "value": 20}),
            json!({"op": "test", "path": "/spec/http/1/backends/0/serviceName", "value": "web-stable"}),
            json!({"op": "add", "path": "/spec/http/1/backends/0/weight", "value": 80}),
        ]
    );
    let mut patched = json!({"spec": spec()});
    let patch: json_patch::Patch = serde_json::from_value(json!(patch)).unwrap();
    json_patch::patch(&mut patched, &patch).unwrap();
    assert_eq!(patched["spec"]["http"][1]["backends"][1], spec()["http"][1]["backends"][1], "legacy untouched");
    assert_eq!(patched["spec"]["http"][0], spec()["http"][0], "the other rule untouched");
    let (again, _) = weight_patch(&patched["spec"], &rules, &[("web-canary", 20), ("web-stable", 80)]);
    assert!(again.is_empty(), "nothing to write when the weights hold");
}

#[test]
fn an_unwritten_weight_counts_as_apisix_default_and_is_made_explicit_without_moving() {
    let rules = vec!["method".to_string()];
    assert_eq!(service_weight(&spec(), "method", "web-canary"), Some(100));
    let (patch, moved) = weight_patch(&spec(), &rules, &[("web-canary", 100), ("web-stable", 0)]);
    assert!(moved, "the stable backend had APISIX's 100");
    assert_eq!(patch.len(), 5);
    let (patch, moved) = weight_patch(&spec(), &rules, &[("web-stable", 100)]);
    assert!(!moved, "100 written where APISIX counted 100 already");
    assert_eq!(patch.len(), 3);
}

#[test]
fn header_matches_become_exprs() {
    let matches = [
        header("X-Canary", StringMatch { exact: Some("yes".into()), ..Default::default() }),
        header("User-Agent", StringMatch { regex: Some(".*Firefox.*".into()), ..Default::default() }),
        header("X-Version", StringMatch { prefix: Some("v1.2+".into()), ..Default::default() }),
    ];
    let subject = |name: &str| json!({"scope": "Header", "name": name});
    assert_eq!(
        exprs(&matches),
        [
            json!({"subject": subject("X-Canary"), "op": "Equal", "value": "yes"}),
            json!({"subject": subject("User-Agent"), "op": "RegexMatch", "value": ".*Firefox.*"}),
            json!({"subject": subject("X-Version"), "op": "RegexMatch", "value": "^v1\\.2\\+.*"}),
        ]
    );
}

#[test]
fn a_header_route_holds_the_managed_rules_with_only_the_canary_one_priority_up() {
    let matches = [header("X-Canary", StringMatch { exact: Some("yes".into()), ..Default::default() })];
    let made = header_spec(&spec(), &["method".to_string()], "web-canary", &matches);
    assert_eq!(
        made,
        json!({"http": [{"name": "method", "priority": 4,
            "match": {"paths": ["/*"], "hosts": ["app.example.com"], "methods": ["GET"], "exprs": exprs(&matches)},
            "backends": [{"serviceName": "web-canary", "servicePort": 80, "weight": 100}],
            "plugins": [{"name": "prometheus", "enable": true}]}]}),
        "no stream routes, no other rules, no upstreams"
    );
    let unprioritized = json!({"http": [{"name": "web", "match": {"paths": ["/*"]},
        "backends": [{"serviceName": "web-canary", "servicePort": 80, "weight": 0}]}]});
    let made = header_spec(&unprioritized, &["web".to_string()], "web-canary", &matches);
    assert_eq!(made["http"][0]["priority"], json!(1));
    assert_eq!(made["http"][0]["backends"][0]["weight"], json!(100));
}
