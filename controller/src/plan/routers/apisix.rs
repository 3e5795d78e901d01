//! Apache APISIX: weights on the backends of an ApisixRoute's rules (apisix.apache.org/v2), read
//! and written as JSON. The canary backend gets the weight and the stable one the rest, by a
//! JSON Patch guarded by `test`s of the rule's name and the backend's Service, written only when
//! a weight differs (upstream rewrites the whole route on every reconcile). Other backends and
//! rules are left alone. A header route (`setHeaderRoute`) is an ApisixRoute of its own, owned
//! by the Rollout (`header.rs`).

mod header;

use k8s_openapi::jiff::Timestamp;
use kube::api::DynamicObject;
use serde_json::{Value, json};

use super::super::header_routes::managed_names;
use super::super::objects::controlled_by;
use super::{HeaderRoutes, object_traffic_changed_at, stamp_object};
use crate::api::{ApisixRouteRef, CanaryStrategy, RouteKind};
use crate::plan::{Action, Observed};

const FIELD: &str = "spec.strategy.canary.trafficRouting.apisix";
const KIND: RouteKind = RouteKind::ApisixRoute;
/// The weight APISIX's ingress controller gives a backend without one. Until this controller
/// first writes (at the first reconcile of a healthy Rollout), a route written without weights,
/// as APISIX's docs advise for GitOps, splits evenly between its backends.
const DEFAULT_WEIGHT: i64 = 100;

/// The ApisixRoute a Rollout weighs, with the rules it manages.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagedApisixRoute {
    pub namespace: String,
    pub name: String,
    pub rules: Vec<String>,
    /// What the canary and stable weights add up to (APISIX's weights are relative).
    pub max_weight: i32,
}

fn route_ref(canary: &CanaryStrategy) -> Option<Option<&ApisixRouteRef>> {
    Some(canary.traffic_routing.as_ref()?.apisix.as_ref()?.route.as_ref())
}

/// The rules a route reference names; without any, the one named like the route.
fn rule_names(route: &ApisixRouteRef) -> Vec<String> {
    match &route.rules {
        Some(rules) if !rules.is_empty() => rules.clone(),
        _ => vec![route.name.clone()],
    }
}

/// The ApisixRoutes `canary.trafficRouting.apisix` references: the route, and one per managed
/// route (a header route is an ApisixRoute of its own, named like it).
pub fn references(canary: &CanaryStrategy, rollout_namespace: &str) -> Vec<(RouteKind, (String, String))> {
    let Some(Some(route)) = route_ref(canary) else { return Vec::new() };
    let names = std::iter::once(route.name.as_str()).chain(managed_names(canary));
    names.map(|name| (KIND, (rollout_namespace.to_string(), name.to_string()))).collect()
}

/// The route checked against what exists: found, each rule in it with a backend for the stable
/// and one for the canary Service, and each managed route that exists this Rollout's.
pub fn configured(
    observed: &Observed,
    canary: &CanaryStrategy,
    (stable, canary_service): (&str, &str),
) -> Result<Option<ManagedApisixRoute>, String> {
    let Some(route) = route_ref(canary) else { return Ok(None) };
    let route = route.ok_or_else(|| {
        format!(
            "{FIELD}.route: Required value: name the ApisixRoute whose rules send to the stable and canary Services"
        )
    })?;
    let namespace = observed.rollout.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let name = route.name.clone();
    let found = observed
        .route_object(KIND, &namespace, &name)
        .map_err(|missing| format!("{FIELD}: {missing}"))?
        .ok_or_else(|| {
            format!(
                "{FIELD}.route.name: Invalid value: \"{name}\": ApisixRoute \"{name}\" not found in namespace {namespace}; create it or correct the name"
            )
        })?;
    let rules = rule_names(route);
    for rule in &rules {
        check_rule(&found.data["spec"], route, rule, [("stable", stable), ("canary", canary_service)])?;
    }
    for managed in managed_names(canary) {
        let existing =
            observed.route_object(KIND, &namespace, managed).map_err(|missing| format!("{FIELD}: {missing}"))?;
        if existing.is_some_and(|object| !controlled_by(&object.metadata, &observed.rollout)) {
            return Err(format!(
                "spec.strategy.canary.trafficRouting.managedRoutes: duplicate ApisixRoute [{managed}] already exists and this Rollout doesn't control it; delete it or rename the managed route"
            ));
        }
    }
    Ok(Some(ManagedApisixRoute { namespace, name, rules, max_weight: canary.max_weight() }))
}

/// Checks that `rule` is in the route, with a backend for each of `services` (role, name).
fn check_rule(spec: &Value, route: &ApisixRouteRef, rule: &str, services: [(&str, &str); 2]) -> Result<(), String> {
    let name = &route.name;
    let found = rule_index(spec, rule).map(|index| &spec["http"][index]);
    let Some(found) = found else {
        let defaulted =
            if route.rules.as_ref().is_some_and(|r| !r.is_empty()) { "" } else { " (the default without route.rules)" };
        return Err(format!(
            "{FIELD}.route.rules: Invalid value: \"{rule}\": ApisixRoute \"{name}\" has no rule named \"{rule}\"{defaulted} in spec.http; name its rules in route.rules or correct the name"
        ));
    };
    for (role, service) in services {
        if backend_index(found, service).is_none() {
            return Err(format!(
                "{FIELD}.route.rules: Invalid value: \"{rule}\": rule \"{rule}\" of ApisixRoute \"{name}\" has no backend with serviceName {service} (the {role} Service); add one to its backends"
            ));
        }
    }
    Ok(())
}

fn rule_index(spec: &Value, rule: &str) -> Option<usize> {
    spec["http"].as_array()?.iter().position(|r| r["name"].as_str() == Some(rule))
}

/// The first backend of `rule` sending to `service`, as APISIX's traffic router picks it.
fn backend_index(rule: &Value, service: &str) -> Option<usize> {
    rule["backends"].as_array()?.iter().position(|b| b["serviceName"].as_str() == Some(service))
}

fn weight_of(backend: &Value) -> i64 {
    backend["weight"].as_i64().unwrap_or(DEFAULT_WEIGHT)
}

/// The weight of `service`'s backend in `rule` of `spec`, if there is one.
fn service_weight(spec: &Value, rule: &str, service: &str) -> Option<i64> {
    let rule = &spec["http"][rule_index(spec, rule)?];
    Some(weight_of(&rule["backends"][backend_index(rule, service)?]))
}

/// A JSON Patch giving `service` the weight `wanted` in every rule where it differs (or isn't
/// written), each change guarded by the rule's name and the backend's Service; and whether a
/// weight in force moved (not just one written as APISIX already counted it).
fn weight_patch(spec: &Value, rules: &[String], targets: &[(&str, i64)]) -> (Vec<Value>, bool) {
    let (mut patch, mut moved) = (Vec::new(), false);
    for rule in rules {
        let Some(index) = rule_index(spec, rule) else { continue };
        let base = format!("/spec/http/{index}");
        let mut guarded = false;
        for &(service, wanted) in targets {
            let Some(position) = backend_index(&spec["http"][index], service) else { continue };
            let backend = &spec["http"][index]["backends"][position];
            if backend["weight"].as_i64() == Some(wanted) {
                continue;
            }
            moved |= weight_of(backend) != wanted;
            if !guarded {
                patch.push(json!({"op": "test", "path": format!("{base}/name"), "value": rule}));
                guarded = true;
            }
            let backend_path = format!("{base}/backends/{position}");
            patch.push(json!({"op": "test", "path": format!("{backend_path}/serviceName"), "value": service}));
            patch.push(json!({"op": "add", "path": format!("{backend_path}/weight"), "value": wanted}));
        }
    }
    (patch, moved)
}

impl ManagedApisixRoute {
    fn found<'o>(&self, observed: &'o Observed) -> Option<&'o DynamicObject> {
        observed.route_object(KIND, &self.namespace, &self.name).ok().flatten()
    }

    /// The canary backend's weight in each managed rule, as observed (APISIX's default, 100,
    /// where none is written).
    pub fn canary_weights(&self, observed: &Observed, canary_service: &str) -> Vec<i32> {
        let Some(route) = self.found(observed) else { return Vec::new() };
        let weights = self.rules.iter().filter_map(|rule| service_weight(&route.data["spec"], rule, canary_service));
        weights.map(|weight| super::within(weight, self.max_weight)).collect()
    }

    /// The patch giving the canary backend `weight` and the stable one the rest in every managed
    /// rule, with `at` recorded in the same write when traffic moves; none when they hold that.
    pub fn set_weight(
        &self,
        observed: &Observed,
        (stable, canary): (&str, &str),
        weight: i32,
        at: Timestamp,
    ) -> Vec<Action> {
        let Some(route) = self.found(observed) else { return Vec::new() };
        let targets = [(canary, i64::from(weight)), (stable, i64::from(self.max_weight - weight))];
        let (mut patch, moved) = weight_patch(&route.data["spec"], &self.rules, &targets);
        if patch.is_empty() {
            return Vec::new();
        }
        // Weights written as they already were (APISIX's default made explicit) move no traffic:
        // the settle gap keeps counting from the last change.
        if moved || object_traffic_changed_at(route).is_none() {
            patch.extend(stamp_object(route, at));
        }
        vec![Action::PatchRoute {
            kind: KIND,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            patch,
            canary_weight: Some(weight),
        }]
    }

    /// When this controller last changed the route's weights.
    pub fn traffic_changed_at(&self, observed: &Observed) -> Option<Timestamp> {
        object_traffic_changed_at(self.found(observed)?)
    }

    /// The writes that put `routes.wanted` in place as ApisixRoutes of their own and delete the
    /// other managed routes this Rollout controls; none when they are in place.
    pub fn set_header_routes(
        &self,
        observed: &Observed,
        (_, canary): (&str, &str),
        routes: &HeaderRoutes,
    ) -> Vec<Action> {
        let Some(route) = self.found(observed) else { return Vec::new() };
        header::writes(observed, (route, &self.rules), canary, routes)
    }
}

#[cfg(test)]
mod tests;
