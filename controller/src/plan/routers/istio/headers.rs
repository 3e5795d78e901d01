//! Istio header routes: HTTP routes put at the top of the VirtualService's `http`, in
//! `managedRoutes` order, sending requests whose headers all match to the canary destination of
//! the weighted route. The routes this controller manages are found by name; the others are
//! never touched.

use serde_json::{Map, Value, json};

use super::{ManagedVirtualService, destinations, host_service, section};
use crate::api::SetHeaderRoute;
use crate::plan::routers::HeaderRoutes;
use crate::plan::{Action, Observed};

/// The route for `route`: its headers in one match (all must match), to `destination`.
fn header_route(route: &SetHeaderRoute, destination: &Value) -> Value {
    let mut headers = Map::new();
    for header in route.matches.iter().flatten() {
        let value = &header.header_value;
        let matcher = match (&value.exact, &value.prefix, &value.regex) {
            (Some(exact), _, _) => json!({"exact": exact}),
            (None, Some(prefix), _) => json!({"prefix": prefix}),
            (None, None, regex) => json!({"regex": regex}),
        };
        headers.insert(header.header_name.clone(), matcher);
    }
    json!({"name": route.name, "match": [{"headers": headers}], "route": [{"destination": destination, "weight": 100}]})
}

impl ManagedVirtualService {
    /// The patch that puts `routes.wanted` at the top of `http` and removes the other managed
    /// routes; none when they are in place. Whenever anything is off, every managed route is
    /// removed (each guarded by a test of its name) and the wanted ones added again in order.
    pub fn set_header_routes(
        &self,
        observed: &Observed,
        (_, canary): (&str, &str),
        routes: &HeaderRoutes,
    ) -> Vec<Action> {
        let Some(vs) = self.found(observed) else { return Vec::new() };
        let Some(destination) = (self.routes.iter().filter(|r| r.section == "http"))
            .flat_map(|route| destinations(&vs.spec, route))
            .find(|d| host_service(d) == Some(canary))
            .and_then(|d| d.get("destination"))
        else {
            return Vec::new();
        };
        let desired: Vec<Value> = routes.wanted.iter().map(|route| header_route(route, destination)).collect();
        let http = section(&vs.spec, "http");
        let managed = |route: &Value| {
            route.get("name").and_then(Value::as_str).is_some_and(|name| routes.managed.contains(&name))
        };
        let in_place =
            http.get(..desired.len()) == Some(desired.as_slice()) && !http[desired.len()..].iter().any(managed);
        if in_place {
            return Vec::new();
        }
        let mut patch = Vec::new();
        for (index, route) in http.iter().enumerate().rev().filter(|(_, route)| managed(route)) {
            patch.push(json!({"op": "test", "path": format!("/spec/http/{index}/name"), "value": route["name"]}));
            patch.push(json!({"op": "remove", "path": format!("/spec/http/{index}")}));
        }
        // `http` has the weighted route the destination came from, so index 0 exists.
        for (index, route) in desired.into_iter().enumerate() {
            patch.push(json!({"op": "add", "path": format!("/spec/http/{index}"), "value": route}));
        }
        vec![Action::PatchVirtualService { namespace: self.namespace.clone(), name: self.name.clone(), patch }]
    }
}
