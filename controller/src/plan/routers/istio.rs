//! The Istio router: which routes of which VirtualServices a Rollout manages, what weights they
//! hold, and the JSON Patch that sets new ones. Works on the VirtualService as JSON (no typed
//! Istio crate). Istio's weights are relative (a destination gets weight/sum), so they add up to
//! `maxTrafficWeight` whatever it is.

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use crate::api::{CanaryStrategy, IstioVirtualService};
use crate::plan::{Action, Observed, VirtualServiceView};

/// A VirtualService this Rollout manages, with the routes it sets weights on.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagedVirtualService {
    pub namespace: String,
    pub name: String,
    pub routes: Vec<RouteRef>,
    /// What the canary and stable weights add up to.
    pub max_weight: i32,
}

/// The VirtualServices `canary.trafficRouting.istio` names, as (namespace, name).
pub fn references(canary: &CanaryStrategy, rollout_namespace: &str) -> Vec<(String, String)> {
    let istio = canary.traffic_routing.as_ref().and_then(|t| t.istio.as_ref());
    let all = istio.into_iter().flat_map(|i| i.virtual_service.iter().chain(i.virtual_services.iter().flatten()));
    all.map(|vs| virtual_service_key(&vs.name, rollout_namespace)).collect()
}

/// The VirtualServices to manage, checked against what exists: each found, its routes chosen,
/// and each route sending to exactly the stable and canary Services.
pub fn configured(
    observed: &Observed,
    canary: &CanaryStrategy,
    (stable, canary_service): (&str, &str),
) -> Result<Vec<ManagedVirtualService>, String> {
    const FIELD: &str = "spec.strategy.canary.trafficRouting.istio";
    let istio = canary.traffic_routing.as_ref().and_then(|t| t.istio.as_ref());
    let configs: Vec<&IstioVirtualService> = match istio.map(|i| (&i.virtual_service, &i.virtual_services)) {
        Some((Some(one), None)) => vec![one],
        Some((None, Some(many))) if !many.is_empty() => many.iter().collect(),
        _ => return Err(format!("{FIELD}: set exactly one of virtualService or virtualServices")),
    };
    let available = observed
        .virtual_services
        .as_ref()
        .ok_or(format!("{FIELD}: the cluster has no networking.istio.io VirtualService API; install Istio's CRDs"))?;
    let rollout_namespace = observed.rollout.metadata.namespace.as_deref().unwrap_or("default");
    let mut managed = Vec::with_capacity(configs.len());
    for config in configs {
        let (namespace, name) = virtual_service_key(&config.name, rollout_namespace);
        let vs = available.get(&(namespace.clone(), name.clone())).ok_or_else(|| {
            format!(
                "{FIELD}: VirtualService \"{name}\" not found in namespace {namespace}; create it or correct the name"
            )
        })?;
        let header_routes = super::super::header_routes::managed_names(canary);
        let routes = managed_routes(&vs.spec, config, &header_routes).map_err(|e| format!("{FIELD}: {e}"))?;
        check_destinations(&vs.spec, &routes, &config.name, stable, canary_service, canary.max_weight())
            .map_err(|e| format!("{FIELD}: {e}"))?;
        managed.push(ManagedVirtualService { namespace, name, routes, max_weight: canary.max_weight() });
    }
    Ok(managed)
}

impl ManagedVirtualService {
    pub(super) fn found<'o>(&self, observed: &'o Observed) -> Option<&'o VirtualServiceView> {
        observed.virtual_services.as_ref()?.get(&(self.namespace.clone(), self.name.clone()))
    }

    /// The canary weight of each managed route, as observed (within 0..=max_weight).
    pub fn canary_weights(&self, observed: &Observed, canary: &str) -> Vec<i32> {
        let Some(vs) = self.found(observed) else { return Vec::new() };
        let weights = route_weights(&vs.spec, &self.routes, canary).into_iter();
        weights.map(|weight| super::within(weight, self.max_weight)).collect()
    }

    /// The patch giving the canary `weight` and the stable the rest, with `at` recorded in the
    /// same write; `None` when the routes hold those weights already.
    pub fn set_weight(
        &self,
        observed: &Observed,
        (stable, canary): (&str, &str),
        weight: i32,
        at: Timestamp,
    ) -> Option<Action> {
        let vs = self.found(observed)?;
        let mut patch = weight_patch(&vs.spec, &self.routes, stable, canary, weight, self.max_weight);
        if patch.is_empty() {
            return None;
        }
        patch.extend(super::stamp_patch(vs.annotated, vs.resource_version.as_deref(), at));
        Some(Action::SetVirtualServiceWeights {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            patch,
            canary_weight: weight,
        })
    }

    /// When this controller last set its weights.
    pub fn traffic_changed_at(&self, observed: &Observed) -> Option<Timestamp> {
        self.found(observed)?.traffic_changed_at
    }
}

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

/// The routes of `spec` that `config` manages, or why they can't be chosen. The header routes
/// this controller adds (named in `header_routes`) are not among them.
fn managed_routes(spec: &Value, config: &IstioVirtualService, header_routes: &[&str]) -> Result<Vec<RouteRef>, String> {
    let vs = &config.name;
    let route_name = |route: &Value| route.get("name").and_then(Value::as_str).map(str::to_owned);
    let all = section(spec, "http");
    let http: Vec<(usize, &Value)> = (all.iter().enumerate())
        .filter(|(_, route)| route_name(route).is_none_or(|name| !header_routes.contains(&name.as_str())))
        .collect();
    let mut routes = Vec::new();
    match &config.routes {
        Some(names) if !names.is_empty() => {
            for wanted in names {
                let (index, _) = http
                    .iter()
                    .find(|(_, route)| route.get("name").and_then(Value::as_str) == Some(wanted))
                    .ok_or_else(|| {
                        format!("HTTP route '{wanted}' not found in VirtualService '{vs}'; check virtualService.routes")
                    })?;
                routes.push(RouteRef { section: "http", index: *index });
            }
        }
        _ if http.len() == 1 => routes.push(RouteRef { section: "http", index: http[0].0 }),
        _ if !http.is_empty() => {
            let unnamed: Vec<usize> =
                http.iter().filter(|(_, route)| route.get("name").is_none()).map(|(i, _)| *i).collect();
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
fn check_destinations(
    spec: &Value,
    routes: &[RouteRef],
    vs: &str,
    stable: &str,
    canary: &str,
    max_weight: i32,
) -> Result<(), String> {
    for route in routes {
        let hosts: Vec<&str> = destinations(spec, route).iter().filter_map(host_service).collect();
        for (role, service) in [("stable", stable), ("canary", canary)] {
            if !hosts.contains(&service) {
                return Err(format!(
                    "{} of VirtualService '{vs}' has no destination for the {role} Service '{service}'; add it with weight {}",
                    route_label(spec, route),
                    if role == "stable" { max_weight } else { 0 }
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

/// The canary weight of each managed route (0 when it has no canary destination), as written.
fn route_weights(spec: &Value, routes: &[RouteRef], canary: &str) -> Vec<i64> {
    let weight = |route| destinations(spec, route).iter().filter(|d| host_service(d) == Some(canary)).map(weight_of);
    routes.iter().map(|route| weight(route).sum()).collect()
}

/// A JSON Patch (RFC 6902) giving `canary_weight` to the canary and the rest of `max_weight` to
/// the stable on every managed route; empty when the weights are already right. Each change is
/// guarded by a `test` of the destination's host, so a concurrent edit makes the patch fail
/// instead of writing a weight onto the wrong destination.
fn weight_patch(
    spec: &Value,
    routes: &[RouteRef],
    stable: &str,
    canary: &str,
    canary_weight: i32,
    max_weight: i32,
) -> Vec<Value> {
    let mut operations = Vec::new();
    for route in routes {
        for (position, destination) in destinations(spec, route).iter().enumerate() {
            let wanted = match host_service(destination) {
                Some(host) if host == canary => canary_weight,
                Some(host) if host == stable => max_weight - canary_weight,
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

mod headers;
#[cfg(test)]
mod tests;
