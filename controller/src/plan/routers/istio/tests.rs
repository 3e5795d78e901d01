//! Tests of the Istio router: routes chosen, weights read and patched.

use super::*;
use crate::api::{TcpRoute, TlsRoute};

fn config(routes: Option<Vec<&str>>) -> IstioVirtualService {
    IstioVirtualService {
        name: "vs".into(),
        routes: routes.map(|r| r.into_iter().map(String::from).collect()),
        ..Default::default()
    }
}

fn two_routes() -> Value {
    json!({
        "http": [
            {"name": "primary", "route": [
                {"destination": {"host": "stable-svc"}, "weight": 100},
                {"destination": {"host": "canary-svc.ns.svc.cluster.local"}, "weight": 0}
            ]},
            {"name": "other", "route": [{"destination": {"host": "legacy"}}]}
        ]
    })
}

#[test]
fn references_name_a_namespace_after_the_last_dot() {
    assert_eq!(virtual_service_key("vs", "ns"), ("ns".into(), "vs".into()));
    assert_eq!(virtual_service_key("vs.other", "ns"), ("other".into(), "vs".into()));
    assert_eq!(virtual_service_key("vs.other.svc.cluster.local", "ns"), ("other".into(), "vs".into()));
}

#[test]
fn routes_are_picked_by_name_single_route_or_the_only_unnamed_one() {
    let spec = two_routes();
    assert_eq!(
        managed_routes(&spec, &config(Some(vec!["primary"])), &[]).unwrap(),
        vec![RouteRef { section: "http", index: 0 }]
    );
    let missing = managed_routes(&spec, &config(Some(vec!["nope"])), &[]).unwrap_err();
    assert!(missing.contains("'nope' not found"), "{missing}");
    let ambiguous = managed_routes(&spec, &config(None), &[]).unwrap_err();
    assert!(ambiguous.contains("has 2 HTTP routes"), "{ambiguous}");
    let one_unnamed = json!({"http": [{"name": "a", "route": []}, {"route": []}]});
    assert_eq!(managed_routes(&one_unnamed, &config(None), &[]).unwrap(), vec![RouteRef { section: "http", index: 1 }]);
    let single = json!({"http": [{"name": "x", "route": []}]});
    assert_eq!(managed_routes(&single, &config(None), &[]).unwrap().len(), 1);
    assert!(managed_routes(&json!({}), &config(None), &[]).is_err());
}

#[test]
fn tls_and_tcp_routes_only_where_configured() {
    let spec = json!({
        "tls": [{"match": [{"port": 443, "sniHosts": ["a.example"]}], "route": []},
                {"match": [{"port": 8443, "sniHosts": ["b.example"]}], "route": []}],
        "tcp": [{"match": [{"port": 5432}], "route": []}]
    });
    let mut cfg = config(None);
    cfg.tls_routes = Some(vec![TlsRoute { port: Some(8443), sni_hosts: Some(vec!["b.example".into()]) }]);
    cfg.tcp_routes = Some(vec![TcpRoute { port: Some(5432) }]);
    assert_eq!(
        managed_routes(&spec, &cfg, &[]).unwrap(),
        vec![RouteRef { section: "tls", index: 1 }, RouteRef { section: "tcp", index: 0 }]
    );
    cfg.tcp_routes = Some(vec![TcpRoute { port: Some(1) }]);
    assert!(managed_routes(&spec, &cfg, &[]).unwrap_err().contains("TCP"));
}

#[test]
fn destinations_must_be_exactly_stable_and_canary() {
    let spec = two_routes();
    let primary = [RouteRef { section: "http", index: 0 }];
    assert!(check_destinations(&spec, &primary, "vs", "stable-svc", "canary-svc", 100).is_ok());
    let error = check_destinations(&spec, &primary, "vs", "stable-svc", "preview", 100).unwrap_err();
    assert!(error.contains("canary Service 'preview'"), "{error}");
    let other = [RouteRef { section: "http", index: 1 }];
    assert!(check_destinations(&spec, &other, "vs", "legacy", "canary-svc", 100).is_err());
}

#[test]
fn weights_are_read_and_patched_only_where_they_differ() {
    let spec = two_routes();
    let primary = [RouteRef { section: "http", index: 0 }];
    assert_eq!(route_weights(&spec, &primary, "canary-svc"), vec![0]);
    assert!(weight_patch(&spec, &primary, "stable-svc", "canary-svc", 0, 100).is_empty());
    let patch = weight_patch(&spec, &primary, "stable-svc", "canary-svc", 10, 100);
    assert_eq!(
        patch,
        vec![
            json!({"op": "test", "path": "/spec/http/0/route/0/destination/host", "value": "stable-svc"}),
            json!({"op": "add", "path": "/spec/http/0/route/0/weight", "value": 90}),
            json!({"op": "test", "path": "/spec/http/0/route/1/destination/host", "value": "canary-svc.ns.svc.cluster.local"}),
            json!({"op": "add", "path": "/spec/http/0/route/1/weight", "value": 10}),
        ]
    );
    // The patch applied to the object yields the weights asked for, and nothing else changes.
    let mut object = json!({"spec": spec.clone()});
    json_patch::patch(&mut object, &serde_json::from_value::<json_patch::Patch>(Value::Array(patch)).unwrap()).unwrap();
    assert_eq!(route_weights(&object["spec"], &primary, "canary-svc"), vec![10]);
    assert_eq!(object["spec"]["http"][1], spec["http"][1]);
}

#[test]
fn the_change_time_rides_in_the_weight_patch_with_or_without_annotations() {
    let at: Timestamp = "2026-12-02T10:00:00.25Z".parse().unwrap();
    for annotated in [false, true] {
        let mut object = json!({"metadata": {"resourceVersion": "7"}, "spec": {}});
        if annotated {
            object["metadata"]["annotations"] = json!({"team": "shop"});
        }
        let vs = VirtualServiceView { annotated, resource_version: Some("7".into()), ..Default::default() };
        let patch = serde_json::from_value::<json_patch::Patch>(Value::Array(crate::plan::routers::stamp_patch(
            vs.annotated,
            vs.resource_version.as_deref(),
            at,
        )))
        .unwrap();
        json_patch::patch(&mut object, &patch).unwrap();
        assert_eq!(
            object["metadata"]["annotations"][crate::api::TRAFFIC_CHANGED_ANNOTATION],
            json!("2026-12-02T10:00:00.25Z")
        );
        assert_eq!(object["metadata"]["annotations"]["team"].is_string(), annotated, "others are kept");
    }
    // Annotations added since the object was read make the patch fail instead of being lost.
    let vs = VirtualServiceView { resource_version: Some("7".into()), ..Default::default() };
    let mut newer = json!({"metadata": {"resourceVersion": "8", "annotations": {"team": "shop"}}});
    let patch = serde_json::from_value::<json_patch::Patch>(Value::Array(crate::plan::routers::stamp_patch(
        vs.annotated,
        vs.resource_version.as_deref(),
        at,
    )))
    .unwrap();
    assert!(json_patch::patch(&mut newer, &patch).is_err());
}

#[test]
fn a_missing_weight_is_written() {
    let spec = json!({"http": [{"route": [{"destination": {"host": "s"}}, {"destination": {"host": "c"}}]}]});
    let routes = [RouteRef { section: "http", index: 0 }];
    assert_eq!(weight_patch(&spec, &routes, "s", "c", 0, 100).len(), 4);
}
