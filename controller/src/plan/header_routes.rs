//! Header routes (`setHeaderRoute` steps, A/B testing): requests whose headers match go to the
//! canary Service whatever the weight, from the step that sets a route until the update ends.
//! The routes in force are a function of the current step (each name's latest setHeaderRoute at
//! or before it; one without `match` takes it away), so a restart or a lost write is repaired on
//! the next reconcile. They are taken away at the last step, on abort and at full promotion, and
//! held back while the canary Service has no available pod to send to.

use super::planner::Planner;
use super::reasons;
use super::routers::{HeaderRoutes, Router};
use crate::api::{CanaryStep, CanaryStrategy, SetHeaderRoute};

const FIELD: &str = "spec.strategy.canary";

/// The header routes in force at step `index`, in `managed` order.
pub fn header_routes_at<'s>(steps: &'s [CanaryStep], index: usize, managed: &[&str]) -> Vec<&'s SetHeaderRoute> {
    let end = (index + 1).min(steps.len());
    let mut latest: Vec<&SetHeaderRoute> = Vec::new();
    for route in steps[..end].iter().filter_map(|step| step.set_header_route.as_ref()) {
        latest.retain(|r| r.name != route.name);
        latest.push(route);
    }
    latest.retain(|route| route.matches.as_ref().is_some_and(|m| !m.is_empty()));
    latest.sort_by_key(|route| managed.iter().position(|name| *name == route.name));
    latest
}

/// The names `trafficRouting.managedRoutes` lists.
pub fn managed_names(canary: &CanaryStrategy) -> Vec<&str> {
    let routing = canary.traffic_routing.as_ref();
    routing.and_then(|r| r.managed_routes.as_ref()).into_iter().flatten().map(|r| r.name.as_str()).collect()
}

/// The header route steps checked against `managedRoutes` and the routers.
pub fn check(canary: &CanaryStrategy, steps: &[CanaryStep], routers: &[Router]) -> Result<(), String> {
    let managed = managed_names(canary);
    for (index, name) in managed.iter().enumerate() {
        if name.is_empty() || managed[..index].contains(name) {
            return Err(format!(
                "{FIELD}.trafficRouting.managedRoutes[{index}].name: Invalid value: \"{name}\": names must be set and unique"
            ));
        }
    }
    for (index, step) in steps.iter().enumerate() {
        let Some(route) = &step.set_header_route else { continue };
        let field = format!("{FIELD}.steps[{index}].setHeaderRoute");
        if managed.is_empty() {
            return Err(format!(
                "{FIELD}.trafficRouting.managedRoutes: Required value: {field} needs it; add managedRoutes: [{{name: {}}}]",
                route.name
            ));
        }
        if !managed.contains(&route.name.as_str()) {
            return Err(format!(
                "{field}.name: Invalid value: \"{}\": not in trafficRouting.managedRoutes; add {{name: {}}} there",
                route.name, route.name
            ));
        }
        if !routers.iter().any(Router::routes_headers) {
            return Err(format!(
                "{field}: no router here routes by header; use istio, apisix or the Gateway API (useHeaderRoutes: true) — with nginx, use additionalIngressAnnotations canary-by-header"
            ));
        }
        for (position, header) in route.matches.iter().flatten().enumerate() {
            let at = format!("{field}.match[{position}]");
            if header.header_name.is_empty() {
                return Err(format!("{at}.headerName: Required value: name the header to match"));
            }
            let value = &header.header_value;
            let set = [&value.exact, &value.prefix, &value.regex].into_iter().filter(|v| v.is_some()).count();
            if set != 1 {
                return Err(format!("{at}.headerValue: Invalid value: set exactly one of exact, prefix or regex"));
            }
            if let Some(Err(error)) = value.regex.as_deref().map(regex::Regex::new) {
                return Err(format!("{at}.headerValue.regex: Invalid value: {error}"));
            }
        }
    }
    Ok(())
}

impl Planner<'_> {
    /// The header routes the routers should hold now: none at the end of the update, on abort,
    /// once promoted, and none while the canary Service has no available pod to send to.
    fn wanted_header_routes(&self) -> Option<Vec<&SetHeaderRoute>> {
        let (_, canary_service) = self.valid.services?;
        if self.aborted() || self.promoted() || self.at_end() {
            return Some(Vec::new());
        }
        let canary_ready = self.new_available() > 0 && self.selects_after_writes(canary_service, &self.hash);
        canary_ready.then(|| header_routes_at(self.valid.steps, self.index(), &managed_names(self.valid.canary)))
    }

    /// Puts the header routes in force in place through every router that routes by header.
    /// Sets `header_routes_ready` when they are (or this plan's writes put them) in place.
    pub(super) fn route_headers(&mut self) {
        let (Some(services), true) = (self.valid.services, self.routed()) else { return };
        let managed = managed_names(self.valid.canary);
        if managed.is_empty() {
            self.header_routes_ready = true;
            return;
        }
        let wanted = self.wanted_header_routes();
        let ready = wanted.is_some();
        let routes = HeaderRoutes { wanted: wanted.unwrap_or_default(), managed };
        let writes: Vec<_> = (self.valid.routers.iter())
            .flat_map(|router| router.set_header_routes(self.observed, services, &routes))
            .collect();
        if !writes.is_empty() {
            let names: Vec<&str> = routes.wanted.iter().map(|r| r.name.as_str()).collect();
            let message = match names.as_slice() {
                [] => "Header routes removed".to_string(),
                names => format!("Header routes set: {}", names.join(", ")),
            };
            self.event(reasons::HEADER_ROUTES_UPDATED, message);
            self.actions.extend(writes);
        }
        self.header_routes_ready = ready;
    }

    /// A setHeaderRoute step is done once its routes are in place (with this plan's writes).
    pub(super) fn header_step_done(&mut self, writes_planned: bool) -> bool {
        if !writes_planned {
            return false;
        }
        if !self.header_routes_ready {
            let (index, total) = (self.index(), self.valid.steps.len());
            let message = if self.targets().0 == 0 {
                format!(
                    "step {index}/{total}: the canary has no pods to route by header to; scale it first (setCanaryScale or setWeight before this step)"
                )
            } else {
                format!("step {index}/{total}: waiting for available canary pods before routing by header")
            };
            self.wait(message);
        }
        self.header_routes_ready
    }
}
