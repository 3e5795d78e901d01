//! The Gateway API (HTTPRoute and GRPCRoute, gateway.networking.k8s.io/v1), built in under the key
//! of Argo's plugin, `trafficRouting.plugins."argoproj-labs/gatewayAPI"`, so manifests written for
//! the plugin work unchanged. The weights go on the backendRefs of the rules that send to both the
//! stable and the canary Service (*split rules*); a route carries an in-progress label while the
//! canary has weight; header rules (`setHeaderRoute`) are added to the routes that take them
//! (`headers.rs`). Unlike the plugin, nothing is written when the routes hold what is wanted, and
//! rules or backendRefs this controller didn't create are never changed but for those weights.
//! Every write is a JSON Patch whose changes are guarded by `test` ops.

use k8s_openapi::jiff::Timestamp;
use kube::api::DynamicObject;
use serde_json::{Value, json};

use super::{HeaderRoutes, object_traffic_changed_at, pointer_escape, stamp_object};
use crate::api::{CanaryStrategy, DEFAULT_IN_PROGRESS_LABEL, GatewayApiTrafficRouting, GatewayRoute, RouteKind};
use crate::plan::{Action, Observed};

mod headers;

const FIELD: &str = r#"spec.strategy.canary.trafficRouting.plugins."argoproj-labs/gatewayAPI""#;

/// The HTTPRoutes and GRPCRoutes a Rollout weighs.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagedGatewayRoutes {
    /// The routes' namespace.
    pub namespace: String,
    /// Each route, with whether header routes are added to it.
    pub routes: Vec<(RouteKind, String, bool)>,
    /// The Rollout's namespace, where the stable and canary Services are.
    pub services_namespace: String,
    /// The stable Service (`canary_weights` is given only the canary's).
    pub stable_service: String,
    /// `managedRoutes`' names: rules this controller adds, never weighed.
    pub managed: Vec<String>,
    /// The label a route carries while the canary has weight; none with disableInProgressLabel.
    pub in_progress_label: Option<(String, String)>,
    /// What the canary and stable weights add up to (backendRef weights are relative).
    pub max_weight: i32,
}

fn settings(canary: &CanaryStrategy) -> Option<&GatewayApiTrafficRouting> {
    canary.traffic_routing.as_ref()?.plugins.as_ref()?.gateway_api.as_ref()
}

/// The routes configured, each once. As in the plugin, a single `httpRoute` or `grpcRoute` takes
/// header routes; listed ones only with `useHeaderRoutes`.
fn configured_routes(settings: &GatewayApiTrafficRouting) -> Vec<(RouteKind, String, bool)> {
    fn all(kind: RouteKind, one: &Option<String>, many: &Option<Vec<GatewayRoute>>) -> Vec<(RouteKind, String, bool)> {
        let listed = many.iter().flatten().map(|r| (kind, r.name.clone(), r.use_header_routes == Some(true)));
        one.iter().map(|name| (kind, name.clone(), true)).chain(listed).collect()
    }
    let mut routes: Vec<(RouteKind, String, bool)> = Vec::new();
    let http = all(RouteKind::HttpRoute, &settings.http_route, &settings.http_routes);
    for (kind, name, headers) in
        http.into_iter().chain(all(RouteKind::GrpcRoute, &settings.grpc_route, &settings.grpc_routes))
    {
        match routes.iter_mut().find(|(k, n, _)| *k == kind && *n == name) {
            Some(existing) => existing.2 |= headers,
            None => routes.push((kind, name, headers)),
        }
    }
    routes
}

/// The routes `trafficRouting.plugins."argoproj-labs/gatewayAPI"` references.
pub fn references(canary: &CanaryStrategy, rollout_namespace: &str) -> Vec<(RouteKind, (String, String))> {
    let Some(settings) = settings(canary) else { return Vec::new() };
    let namespace = settings.namespace.clone().unwrap_or_else(|| rollout_namespace.to_string());
    configured_routes(settings).into_iter().map(|(kind, name, _)| (kind, (namespace.clone(), name))).collect()
}

/// The routes checked against what exists: each found, with a split rule.
pub fn configured(
    observed: &Observed,
    canary: &CanaryStrategy,
    (stable, canary_service): (&str, &str),
) -> Result<Option<ManagedGatewayRoutes>, String> {
    let Some(settings) = settings(canary) else { return Ok(None) };
    let routes = configured_routes(settings);
    if routes.is_empty() {
        return Err(format!(
            "{FIELD}: No routes configured. At least one of 'httpRoutes', 'grpcRoutes', 'httpRoute' or 'grpcRoute' must be set"
        ));
    }
    let services_namespace = observed.rollout.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let disabled = settings.disable_in_progress_label == Some(true);
    let label = |value: &Option<String>, default: &str| value.clone().unwrap_or_else(|| default.to_string());
    let managed = ManagedGatewayRoutes {
        namespace: settings.namespace.clone().unwrap_or_else(|| services_namespace.clone()),
        routes,
        services_namespace,
        stable_service: stable.to_string(),
        managed: canary
            .traffic_routing
            .iter()
            .flat_map(|t| t.managed_routes.iter().flatten())
            .map(|r| r.name.clone())
            .collect(),
        in_progress_label: (!disabled).then(|| {
            let (key, value) = DEFAULT_IN_PROGRESS_LABEL;
            (label(&settings.in_progress_label_key, key), label(&settings.in_progress_label_value, value))
        }),
        max_weight: canary.max_weight(),
    };
    for (kind, name, _) in &managed.routes {
        let what = format!("{} \"{name}\"", kind.gvk().2);
        let object = observed
            .route_object(*kind, &managed.namespace, name)
            .map_err(|missing| format!("{FIELD}: {what}: {missing}"))?
            .ok_or_else(|| {
                format!("{FIELD}: {what} not found in namespace {}; create it or correct the name", managed.namespace)
            })?;
        let backends = managed.backends(stable, canary_service);
        if let Some(missing) = backends.missing(rules(object), &managed.managed) {
            return Err(format!("{FIELD}: {}", missing.replace("{route}", &what)));
        }
    }
    Ok(Some(managed))
}

/// Which of the two Services a backendRef sends to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Stable,
    Canary,
}

/// The stable and canary Services as a route's backendRefs name them.
struct Backends<'a> {
    stable: &'a str,
    canary: &'a str,
    route_namespace: &'a str,
    services_namespace: &'a str,
}

impl Backends<'_> {
    /// The Service a backendRef sends to, if it is one of the two: a core Service of that name in
    /// the Rollout's namespace (a backendRef's namespace defaults to its route's).
    fn role(&self, backend: &Value) -> Option<Role> {
        let text = |key: &str| backend.get(key).and_then(Value::as_str);
        let service = text("group").unwrap_or_default().is_empty() && text("kind").unwrap_or("Service") == "Service";
        let namespace = text("namespace").unwrap_or(self.route_namespace) == self.services_namespace;
        match text("name") {
            Some(name) if service && namespace && name == self.canary => Some(Role::Canary),
            Some(name) if service && namespace && name == self.stable => Some(Role::Stable),
            _ => None,
        }
    }

    /// Tests of the names of `rule`'s backendRefs to the two Services, at `base`: what makes the
    /// rule there the split rule read, and not a rule added before it since (a header rule has
    /// only the canary's).
    fn name_tests(&self, rule: &Value, base: &str) -> Vec<Value> {
        (backend_refs(rule).iter().enumerate())
            .filter(|(_, backend)| self.role(backend).is_some())
            .map(|(position, backend)| {
                json!({"op": "test", "path": format!("{base}/backendRefs/{position}/name"), "value": backend["name"]})
            })
            .collect()
    }

    fn roles(&self, rule: &Value) -> (bool, bool) {
        let roles: Vec<Role> = backend_refs(rule).iter().filter_map(|b| self.role(b)).collect();
        (roles.contains(&Role::Stable), roles.contains(&Role::Canary))
    }

    /// The indices of the rules this controller weighs: those it didn't add that send to both
    /// Services. A rule sending to one of them alone is left alone: a weight there can only harm
    /// (all its backendRefs at 0 makes it fail every request).
    fn split_rules(&self, rules: &[Value], managed: &[impl AsRef<str>]) -> Vec<usize> {
        let split = |rule: &Value| !is_managed(rule, managed) && self.roles(rule) == (true, true);
        rules.iter().enumerate().filter(|(_, rule)| split(rule)).map(|(index, _)| index).collect()
    }

    /// Why no rule is split, with `{route}` for the route's kind and name; `None` if one is.
    fn missing(&self, rules: &[Value], managed: &[String]) -> Option<String> {
        let (stable, canary) = (self.stable, self.canary);
        let found: Vec<(bool, bool)> =
            rules.iter().filter(|r| !is_managed(r, managed)).map(|r| self.roles(r)).collect();
        if found.contains(&(true, true)) {
            return None;
        }
        let mut message = match (found.iter().any(|f| f.0), found.iter().any(|f| f.1)) {
            (true, false) => format!(
                "backendRef to the canary Service \"{canary}\" was not found in {{route}}; add one with weight 0 beside the stable Service's in the rule whose traffic they split"
            ),
            (false, true) => format!(
                "backendRef to the stable Service \"{stable}\" was not found in {{route}}; add one with weight 100 beside the canary Service's in the rule whose traffic they split"
            ),
            (true, true) => format!(
                "no rule of {{route}} has backendRefs to both the stable Service \"{stable}\" and the canary Service \"{canary}\"; put both in the rule whose traffic they split"
            ),
            (false, false) => format!(
                "{{route}} has no backendRef to the stable Service \"{stable}\" nor to the canary Service \"{canary}\"; add both (weights 100 and 0) to the rule whose traffic they split"
            ),
        };
        if self.route_namespace != self.services_namespace {
            message.push_str(&format!(
                " (the route is in namespace {}: its backendRefs need `namespace: {}`)",
                self.route_namespace, self.services_namespace
            ));
        }
        Some(message)
    }

    /// The canary's share of a rule's traffic between the two Services, out of `max_weight`. A
    /// backendRef without a weight has 1 (the CRD's default; the apiserver fills it in), so a
    /// route the controller hasn't written yet may be at half.
    fn canary_share(&self, rule: &Value, max_weight: i32) -> i32 {
        let (mut stable, mut canary) = (0, 0);
        for backend in backend_refs(rule) {
            match self.role(backend) {
                Some(Role::Stable) => stable += weight_of(backend),
                Some(Role::Canary) => canary += weight_of(backend),
                None => {}
            }
        }
        let total = stable + canary;
        if total <= 0 {
            return 0;
        }
        super::within((i64::from(max_weight) * canary + total / 2) / total, max_weight)
    }
}

fn rules(object: &DynamicObject) -> &[Value] {
    object.data.pointer("/spec/rules").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

fn backend_refs(rule: &Value) -> &[Value] {
    rule.get("backendRefs").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

fn weight_of(backend: &Value) -> i64 {
    backend.get("weight").and_then(Value::as_i64).unwrap_or(1)
}

/// Whether this controller added `rule`: named like a managed route, or `<name>-<n>` (the
/// further rules of a header route).
fn is_managed(rule: &Value, managed: &[impl AsRef<str>]) -> bool {
    let Some(name) = rule.get("name").and_then(Value::as_str) else { return false };
    managed.iter().any(|m| {
        let suffix = name.strip_prefix(m.as_ref()).map(|rest| rest.strip_prefix('-'));
        match suffix {
            Some(None) => name.len() == m.as_ref().len(),
            Some(Some(n)) => !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()),
            None => false,
        }
    })
}

impl ManagedGatewayRoutes {
    fn backends<'a>(&'a self, stable: &'a str, canary: &'a str) -> Backends<'a> {
        Backends { stable, canary, route_namespace: &self.namespace, services_namespace: &self.services_namespace }
    }

    /// Each route that exists, with its kind, name and whether it takes header routes.
    fn found<'o>(
        &'o self,
        observed: &'o Observed,
    ) -> impl Iterator<Item = (RouteKind, &'o str, bool, &'o DynamicObject)> {
        self.routes.iter().filter_map(move |(kind, name, headers)| {
            let object = observed.route_object(*kind, &self.namespace, name).ok().flatten()?;
            Some((*kind, name.as_str(), *headers, object))
        })
    }

    fn patch(&self, kind: RouteKind, name: &str, patch: Vec<Value>, canary_weight: Option<i32>) -> Action {
        Action::PatchRoute { kind, namespace: self.namespace.clone(), name: name.to_string(), patch, canary_weight }
    }

    /// The canary's share of each split rule of each route, as observed.
    pub fn canary_weights(&self, observed: &Observed, canary_service: &str) -> Vec<i32> {
        let backends = self.backends(&self.stable_service, canary_service);
        let mut weights = Vec::new();
        for (_, _, _, object) in self.found(observed) {
            let rules = rules(object);
            let split = backends.split_rules(rules, &self.managed);
            weights.extend(split.iter().map(|&i| backends.canary_share(&rules[i], self.max_weight)));
        }
        weights
    }

    /// A patch per route that doesn't hold `weight` on every split rule (canary `weight`, stable
    /// the rest) or whose in-progress label is not as `weight` asks; `at` is recorded when the
    /// canary's share moves (or was never recorded).
    pub fn set_weight(
        &self,
        observed: &Observed,
        (stable, canary): (&str, &str),
        weight: i32,
        at: Timestamp,
    ) -> Vec<Action> {
        let backends = self.backends(stable, canary);
        let mut actions = Vec::new();
        for (kind, name, _, object) in self.found(observed) {
            let mut patch = self.weight_patch(object, &backends, weight);
            patch.extend(self.label_patch(object, weight > 0));
            if patch.is_empty() {
                continue;
            }
            let rules = rules(object);
            let split = backends.split_rules(rules, &self.managed);
            let moved = split.iter().any(|&index| backends.canary_share(&rules[index], self.max_weight) != weight);
            if moved || object_traffic_changed_at(object).is_none() {
                patch.extend(stamp_object(object, at));
            }
            actions.push(self.patch(kind, name, patch, Some(weight)));
        }
        actions
    }

    /// The weights of the split rules of `object` that differ from `weight` (canary) and the
    /// rest (stable), each rule's changes guarded by tests of its two Services' backendRef names.
    fn weight_patch(&self, object: &DynamicObject, backends: &Backends, weight: i32) -> Vec<Value> {
        let rules = rules(object);
        let mut patch = Vec::new();
        for index in backends.split_rules(rules, &self.managed) {
            let (rule, base) = (&rules[index], format!("/spec/rules/{index}"));
            let adds: Vec<Value> = (backend_refs(rule).iter().enumerate())
                .filter_map(|(position, backend)| {
                    let wanted = match backends.role(backend)? {
                        Role::Canary => weight,
                        Role::Stable => self.max_weight - weight,
                    };
                    // An absent weight is written even where its default would do: explicit from then on.
                    let path = format!("{base}/backendRefs/{position}/weight");
                    let held = backend.get("weight").and_then(Value::as_i64) == Some(i64::from(wanted));
                    (!held).then(|| json!({"op": "add", "path": path, "value": wanted}))
                })
                .collect();
            if !adds.is_empty() {
                patch.extend(backends.name_tests(rule, &base));
                patch.extend(adds);
            }
        }
        patch
    }

    /// The in-progress label put on (`on`) or taken off; a labels map is created guarded by the
    /// resourceVersion, so labels added meanwhile are not replaced.
    fn label_patch(&self, object: &DynamicObject, on: bool) -> Vec<Value> {
        let Some((key, value)) = &self.in_progress_label else { return Vec::new() };
        let labels = object.metadata.labels.as_ref();
        let path = format!("/metadata/labels/{}", pointer_escape(key));
        match (on, labels.and_then(|l| l.get(key))) {
            (true, Some(current)) if current == value => Vec::new(),
            (true, _) if labels.is_some() => vec![json!({"op": "add", "path": path, "value": value})],
            (true, _) => vec![
                json!({"op": "test", "path": "/metadata/resourceVersion", "value": object.metadata.resource_version}),
                json!({"op": "add", "path": "/metadata/labels", "value": {key.as_str(): value}}),
            ],
            (false, Some(current)) => {
                vec![json!({"op": "test", "path": path, "value": current}), json!({"op": "remove", "path": path})]
            }
            (false, None) => Vec::new(),
        }
    }

    /// When this controller last changed traffic through any of the routes.
    pub fn traffic_changed_at(&self, observed: &Observed) -> Option<Timestamp> {
        self.found(observed).filter_map(|(_, _, _, object)| object_traffic_changed_at(object)).max()
    }

    /// Whether any route takes header routes (`useHeaderRoutes`).
    pub fn routes_headers(&self) -> bool {
        self.routes.iter().any(|(_, _, headers)| *headers)
    }

    /// A patch per route whose header rules are not `routes.wanted` (none on the routes without
    /// `useHeaderRoutes`): the managed rules there are replaced by the wanted ones.
    pub fn set_header_routes(
        &self,
        observed: &Observed,
        (stable, canary): (&str, &str),
        routes: &HeaderRoutes,
    ) -> Vec<Action> {
        let backends = self.backends(stable, canary);
        let mut actions = Vec::new();
        for (kind, name, headers, object) in self.found(observed) {
            let wanted = if headers { routes.wanted.as_slice() } else { &[] };
            let split = backends.split_rules(rules(object), &self.managed);
            let patch = headers::patch(object, kind, (&backends, &split), wanted, &routes.managed);
            if !patch.is_empty() {
                actions.push(self.patch(kind, name, patch, None));
            }
        }
        actions
    }
}

#[cfg(test)]
mod tests;
