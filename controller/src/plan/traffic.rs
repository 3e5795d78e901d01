//! Istio VirtualService weights: which routes a Rollout manages, what weights they hold, and the
//! JSON Patch that sets new ones. Works on the VirtualService as JSON (no typed Istio crate).

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::VirtualServiceView;
use crate::api::{IstioVirtualService, TRAFFIC_CHANGED_ANNOTATION};

/// Namespace and name of a VirtualService reference: `name` (the Rollout's namespace) or
/// `name.namespace`, optionally followed by `.svc.cluster.local`.
pub fn virtual_service_key(reference: &str, rollout_namespace: &str) -> (String, String) {
    let trimmed = reference.trim_end_matches(".svc.cluster.local").trim_end_matches(".cluster.local");
    match trimmed.rsplit_once('.') {
        Some((name, namespace)) => (namespace.to_string(), name.to_string()),
        None => (rollout_namespace.to_string(), trimmed.to_string()),
    }
}

/// A managed route: its section (`http`, `tls` or `tcp`) and index in that list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteRef {
    pub section: &'static str,
    pub index: usize,
}

fn section<'a>(spec: &'a Value, name: &str) -> &'a [Value] {
    spec.get(name).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

/// The routes of `spec` that `config` manages, or why they can't be chosen.
pub fn managed_routes(spec: &Value, config: &IstioVirtualService) -> Result<Vec<RouteRef>, String> {
    let vs = &config.name;
    let http = section(spec, "http");
    let mut routes = Vec::new();
    match &config.routes {
        Some(names) if !names.is_empty() => {
            for wanted in names {
                let index = http
                    .iter()
                    .position(|route| route.get("name").and_then(Value::as_str) == Some(wanted))
                    .ok_or_else(|| {
                        format!("HTTP route '{wanted}' not found in VirtualService '{vs}'; check virtualService.routes")
                    })?;
                routes.push(RouteRef { section: "http", index });
            }
        }
        _ if http.len() == 1 => routes.push(RouteRef { section: "http", index: 0 }),
        _ if !http.is_empty() => {
            let unnamed: Vec<usize> =
                http.iter().enumerate().filter(|(_, route)| route.get("name").is_none()).map(|(i, _)| i).collect();
            match unnamed.as_slice() {
                [index] => routes.push(RouteRef { section: "http", index: *index }),
                _ => {
                    return Err(format!(
                        "VirtualService '{vs}' has {} HTTP routes; name the ones to manage in virtualService.routes",
                        http.len()
                    ));
                }
            }
        }
        _ => {}
    }
    for wanted in config.tls_routes.iter().flatten() {
        let found = matching(section(spec, "tls"), wanted.port, wanted.sni_hosts.as_deref());
        if found.is_empty() {
            return Err(format!(
                "no TLS route of VirtualService '{vs}' matches tlsRoutes (port {:?}, sniHosts {:?})",
                wanted.port, wanted.sni_hosts
            ));
        }
        routes.extend(found.into_iter().map(|index| RouteRef { section: "tls", index }));
    }
    for wanted in config.tcp_routes.iter().flatten() {
        let found = matching(section(spec, "tcp"), wanted.port, None);
        if found.is_empty() {
            return Err(format!("no TCP route of VirtualService '{vs}' matches tcpRoutes (port {:?})", wanted.port));
        }
        routes.extend(found.into_iter().map(|index| RouteRef { section: "tcp", index }));
    }
    if routes.is_empty() {
        return Err(format!(
            "VirtualService '{vs}' has no HTTP route to manage; add one or configure tlsRoutes/tcpRoutes"
        ));
    }
    Ok(routes)
}

/// Indices of TLS/TCP routes whose every match has the given port and SNI hosts.
fn matching(routes: &[Value], port: Option<i64>, sni_hosts: Option<&[String]>) -> Vec<usize> {
    let matches_all = |route: &Value| {
        let conditions = section(route, "match");
        !conditions.is_empty()
            && conditions.iter().all(|condition| {
                let port_ok = port.is_none_or(|p| condition.get("port").and_then(Value::as_i64) == Some(p));
                let hosts_ok = sni_hosts.is_none_or(|wanted| {
                    let mut have: Vec<&str> = section(condition, "sniHosts").iter().filter_map(Value::as_str).collect();
                    let mut want: Vec<&str> = wanted.iter().map(String::as_str).collect();
                    have.sort_unstable();
                    want.sort_unstable();
                    have == want
                });
                port_ok && hosts_ok
            })
    };
    routes.iter().enumerate().filter(|(_, route)| matches_all(route)).map(|(index, _)| index).collect()
}

/// The Service a destination host names: the text before the first '.'.
fn host_service(destination: &Value) -> Option<&str> {
    let host = destination.pointer("/destination/host")?.as_str()?;
    host.split('.').next()
}

fn destinations<'a>(spec: &'a Value, route: &RouteRef) -> &'a [Value] {
    spec.get(route.section).and_then(|list| list.get(route.index)).map(|r| section(r, "route")).unwrap_or_default()
}

fn route_label(spec: &Value, route: &RouteRef) -> String {
    let name = spec
        .get(route.section)
        .and_then(|list| list.get(route.index))
        .and_then(|r| r.get("name"))
        .and_then(Value::as_str);
    match name {
        Some(name) => format!("{} route '{name}'", route.section),
        None => format!("{} route #{}", route.section, route.index),
    }
}

/// Checks that every managed route sends to both Services and to nothing else.
pub fn check_destinations(
    spec: &Value,
    routes: &[RouteRef],
    vs: &str,
    stable: &str,
    canary: &str,
) -> Result<(), String> {
    for route in routes {
        let hosts: Vec<&str> = destinations(spec, route).iter().filter_map(host_service).collect();
        for (role, service) in [("stable", stable), ("canary", canary)] {
            if !hosts.contains(&service) {
                return Err(format!(
                    "{} of VirtualService '{vs}' has no destination for the {role} Service '{service}'; add it with weight {}",
                    route_label(spec, route),
                    if role == "stable" { 100 } else { 0 }
                ));
            }
        }
        if let Some(other) = hosts.iter().find(|host| **host != stable && **host != canary) {
            return Err(format!(
                "{} of VirtualService '{vs}' also sends to '{other}'; a managed route may only name the stable and canary Services",
                route_label(spec, route)
            ));
        }
    }
    Ok(())
}

fn weight_of(destination: &Value) -> i64 {
    destination.get("weight").and_then(Value::as_i64).unwrap_or(0)
}

/// The canary weight of each managed route (0 when it has no canary destination).
pub fn canary_weights(spec: &Value, routes: &[RouteRef], canary: &str) -> Vec<i32> {
    routes
        .iter()
        .map(|route| {
            let sum: i64 =
                destinations(spec, route).iter().filter(|d| host_service(d) == Some(canary)).map(weight_of).sum();
            i32::try_from(sum.clamp(0, 100)).unwrap_or(0)
        })
        .collect()
}

/// A JSON Patch (RFC 6902) giving `canary_weight` to the canary and the rest to the stable on
/// every managed route; empty when the weights are already right. Each change is guarded by a
/// `test` of the destination's host, so a concurrent edit makes the patch fail instead of
/// writing a weight onto the wrong destination.
pub fn weight_patch(spec: &Value, routes: &[RouteRef], stable: &str, canary: &str, canary_weight: i32) -> Vec<Value> {
    let mut operations = Vec::new();
    for route in routes {
        for (position, destination) in destinations(spec, route).iter().enumerate() {
            let wanted = match host_service(destination) {
                Some(host) if host == canary => canary_weight,
                Some(host) if host == stable => 100 - canary_weight,
                _ => continue,
            };
            if weight_of(destination) == i64::from(wanted) && destination.get("weight").is_some() {
                continue;
            }
            let base = format!("/spec/{}/{}/route/{position}", route.section, route.index);
            operations.push(json!({"op": "test", "path": format!("{base}/destination/host"), "value": destination.pointer("/destination/host")}));
            operations.push(json!({"op": "add", "path": format!("{base}/weight"), "value": wanted}));
        }
    }
    operations
}

/// JSON Patch operations that record `at` in the VirtualService's traffic-changed annotation, in
/// the same write as the weights. Without annotations the map is created, guarded by the
/// resourceVersion so annotations added meanwhile are not replaced.
pub fn stamp_patch(vs: &VirtualServiceView, at: Timestamp) -> Vec<Value> {
    let value = at.to_string();
    if vs.annotated {
        let key = TRAFFIC_CHANGED_ANNOTATION.replace('~', "~0").replace('/', "~1");
        return vec![json!({"op": "add", "path": format!("/metadata/annotations/{key}"), "value": value})];
    }
    vec![
        json!({"op": "test", "path": "/metadata/resourceVersion", "value": vs.resource_version}),
        json!({"op": "add", "path": "/metadata/annotations", "value": {TRAFFIC_CHANGED_ANNOTATION: value}}),
    ]
}

#[cfg(test)]
mod tests {
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
            managed_routes(&spec, &config(Some(vec!["primary"]))).unwrap(),
            vec![RouteRef { section: "http", index: 0 }]
        );
        let missing = managed_routes(&spec, &config(Some(vec!["nope"]))).unwrap_err();
        assert!(missing.contains("'nope' not found"), "{missing}");
        let ambiguous = managed_routes(&spec, &config(None)).unwrap_err();
        assert!(ambiguous.contains("has 2 HTTP routes"), "{ambiguous}");
        let one_unnamed = json!({"http": [{"name": "a", "route": []}, {"route": []}]});
        assert_eq!(managed_routes(&one_unnamed, &config(None)).unwrap(), vec![RouteRef { section: "http", index: 1 }]);
        let single = json!({"http": [{"name": "x", "route": []}]});
        assert_eq!(managed_routes(&single, &config(None)).unwrap().len(), 1);
        assert!(managed_routes(&json!({}), &config(None)).is_err());
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
            managed_routes(&spec, &cfg).unwrap(),
            vec![RouteRef { section: "tls", index: 1 }, RouteRef { section: "tcp", index: 0 }]
        );
        cfg.tcp_routes = Some(vec![TcpRoute { port: Some(1) }]);
        assert!(managed_routes(&spec, &cfg).unwrap_err().contains("TCP"));
    }

    #[test]
    fn destinations_must_be_exactly_stable_and_canary() {
        let spec = two_routes();
        let primary = [RouteRef { section: "http", index: 0 }];
        assert!(check_destinations(&spec, &primary, "vs", "stable-svc", "canary-svc").is_ok());
        let error = check_destinations(&spec, &primary, "vs", "stable-svc", "preview").unwrap_err();
        assert!(error.contains("canary Service 'preview'"), "{error}");
        let other = [RouteRef { section: "http", index: 1 }];
        assert!(check_destinations(&spec, &other, "vs", "legacy", "canary-svc").is_err());
    }

    #[test]
    fn weights_are_read_and_patched_only_where_they_differ() {
        let spec = two_routes();
        let primary = [RouteRef { section: "http", index: 0 }];
        assert_eq!(canary_weights(&spec, &primary, "canary-svc"), vec![0]);
        assert!(weight_patch(&spec, &primary, "stable-svc", "canary-svc", 0).is_empty());
        let patch = weight_patch(&spec, &primary, "stable-svc", "canary-svc", 10);
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
        json_patch::patch(&mut object, &serde_json::from_value::<json_patch::Patch>(Value::Array(patch)).unwrap())
            .unwrap();
        assert_eq!(canary_weights(&object["spec"], &primary, "canary-svc"), vec![10]);
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
            let patch = serde_json::from_value::<json_patch::Patch>(Value::Array(stamp_patch(&vs, at))).unwrap();
            json_patch::patch(&mut object, &patch).unwrap();
            assert_eq!(object["metadata"]["annotations"][TRAFFIC_CHANGED_ANNOTATION], json!("2026-12-02T10:00:00.25Z"));
            assert_eq!(object["metadata"]["annotations"]["team"].is_string(), annotated, "others are kept");
        }
        // Annotations added since the object was read make the patch fail instead of being lost.
        let vs = VirtualServiceView { resource_version: Some("7".into()), ..Default::default() };
        let mut newer = json!({"metadata": {"resourceVersion": "8", "annotations": {"team": "shop"}}});
        let patch = serde_json::from_value::<json_patch::Patch>(Value::Array(stamp_patch(&vs, at))).unwrap();
        assert!(json_patch::patch(&mut newer, &patch).is_err());
    }

    #[test]
    fn a_missing_weight_is_written() {
        let spec = json!({"http": [{"route": [{"destination": {"host": "s"}}, {"destination": {"host": "c"}}]}]});
        let routes = [RouteRef { section: "http", index: 0 }];
        assert_eq!(weight_patch(&spec, &routes, "s", "c", 0).len(), 4);
    }
}
