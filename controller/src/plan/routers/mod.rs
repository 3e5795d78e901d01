//! Traffic routers behind one seam. A router says what it references (for `observe` and the
//! watches), what canary weight its objects hold, the write that sets a weight (with the time of
//! the change recorded in it), and when it last changed traffic. Which weight to set, and when,
//! is decided above the routers (`weights.rs`, `promotion.rs`), the same for all of them.
//!
//! A new router is a file here, a variant of `Router`, and an arm in `configured`.

pub mod apisix;
pub mod gateway_api;
pub mod istio;
pub mod nginx;

use k8s_openapi::jiff::Timestamp;
use kube::api::DynamicObject;
use serde_json::{Value, json};

use super::{Action, Observed};
use crate::api::{CanaryStrategy, RouteKind, SetHeaderRoute, TRAFFIC_CHANGED_ANNOTATION};

/// A router a valid Rollout sends traffic through, with what it manages.
#[derive(Clone, Debug, PartialEq)]
pub enum Router {
    Istio(istio::ManagedVirtualService),
    Nginx(nginx::ManagedIngresses),
    Apisix(apisix::ManagedApisixRoute),
    GatewayApi(gateway_api::ManagedGatewayRoutes),
}

/// The header routes (`setHeaderRoute`) a plan wants in place.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HeaderRoutes<'a> {
    /// In `managedRoutes` order; none outside an update, or while the canary has no available pod.
    pub wanted: Vec<&'a SetHeaderRoute>,
    /// Every name `managedRoutes` lists: those not wanted are removed.
    pub managed: Vec<&'a str>,
}

/// The custom-resource objects the routers of `canary` reference, by kind: for `observe`.
pub fn route_references(canary: &CanaryStrategy, rollout_namespace: &str) -> Vec<(RouteKind, (String, String))> {
    let mut references = apisix::references(canary, rollout_namespace);
    references.extend(gateway_api::references(canary, rollout_namespace));
    references
}

/// The routers `canary.trafficRouting` configures, checked against the objects that exist.
/// `services` are the stable and canary Services the routes send to.
pub fn configured(
    observed: &Observed,
    canary: &CanaryStrategy,
    services: Option<(&str, &str)>,
) -> Result<Vec<Router>, String> {
    let Some(routing) = &canary.traffic_routing else {
        return Ok(Vec::new());
    };
    let services = services
        .ok_or("spec.strategy.canary.trafficRouting needs stableService and canaryService: the routes send to them")?;
    let mut routers: Vec<Router> = Vec::new();
    if routing.istio.is_some() {
        routers.extend(istio::configured(observed, canary, services)?.into_iter().map(Router::Istio));
    }
    routers.extend(nginx::configured(observed, canary, services)?.map(Router::Nginx));
    routers.extend(apisix::configured(observed, canary, services)?.map(Router::Apisix));
    routers.extend(gateway_api::configured(observed, canary, services)?.map(Router::GatewayApi));
    if routers.is_empty() {
        return Err(format!(
            "spec.strategy.canary.trafficRouting needs istio, nginx, apisix or plugins.\"{}\", the routers supported",
            crate::api::GATEWAY_API_PLUGIN
        ));
    }
    Ok(routers)
}

impl Router {
    /// The canary weight of each route it manages, as observed.
    pub fn canary_weights(&self, observed: &Observed, canary_service: &str) -> Vec<i32> {
        match self {
            Router::Istio(vs) => vs.canary_weights(observed, canary_service),
            Router::Nginx(ingresses) => ingresses.canary_weights(observed),
            Router::Apisix(route) => route.canary_weights(observed, canary_service),
            Router::GatewayApi(routes) => routes.canary_weights(observed, canary_service),
        }
    }

    /// The writes that give the canary `weight` and the stable the rest, recording `at` in
    /// them; none when the routes hold that already.
    pub fn set_weight(&self, observed: &Observed, services: (&str, &str), weight: i32, at: Timestamp) -> Vec<Action> {
        match self {
            Router::Istio(vs) => vs.set_weight(observed, services, weight, at).into_iter().collect(),
            Router::Nginx(ingresses) => ingresses.set_weight(observed, services, weight, at),
            Router::Apisix(route) => route.set_weight(observed, services, weight, at),
            Router::GatewayApi(routes) => routes.set_weight(observed, services, weight, at),
        }
    }

    /// When this controller last changed traffic through it, as recorded on its objects.
    pub fn traffic_changed_at(&self, observed: &Observed) -> Option<Timestamp> {
        match self {
            Router::Istio(vs) => vs.traffic_changed_at(observed),
            Router::Nginx(ingresses) => ingresses.traffic_changed_at(observed),
            Router::Apisix(route) => route.traffic_changed_at(observed),
            Router::GatewayApi(routes) => routes.traffic_changed_at(observed),
        }
    }

    /// The writes that put `routes.wanted` in place and take the other managed routes away; none
    /// when they are in place. Routers without header routes (nginx) have none.
    pub fn set_header_routes(&self, observed: &Observed, services: (&str, &str), routes: &HeaderRoutes) -> Vec<Action> {
        match self {
            Router::Istio(vs) => vs.set_header_routes(observed, services, routes),
            Router::Nginx(_) => Vec::new(),
            Router::Apisix(route) => route.set_header_routes(observed, services, routes),
            Router::GatewayApi(routes_) => routes_.set_header_routes(observed, services, routes),
        }
    }

    /// Whether this router can route by header (`setHeaderRoute`).
    pub fn routes_headers(&self) -> bool {
        match self {
            Router::Istio(_) | Router::Apisix(_) => true,
            Router::Nginx(_) => false,
            Router::GatewayApi(routes) => routes.routes_headers(),
        }
    }
}

/// JSON Patch operations recording `at` in an object's traffic-changed annotation, in the same
/// write as its weights. Without annotations the map is created, guarded by the resourceVersion
/// so annotations added meanwhile are not replaced.
pub fn stamp_patch(annotated: bool, resource_version: Option<&str>, at: Timestamp) -> Vec<Value> {
    let value = at.to_string();
    if annotated {
        let key = pointer_escape(TRAFFIC_CHANGED_ANNOTATION);
        return vec![json!({"op": "add", "path": format!("/metadata/annotations/{key}"), "value": value})];
    }
    vec![
        json!({"op": "test", "path": "/metadata/resourceVersion", "value": resource_version}),
        json!({"op": "add", "path": "/metadata/annotations", "value": {TRAFFIC_CHANGED_ANNOTATION: value}}),
    ]
}

/// `stamp_patch` for a router object read as a `DynamicObject`.
pub fn stamp_object(object: &DynamicObject, at: Timestamp) -> Vec<Value> {
    stamp_patch(object.metadata.annotations.is_some(), object.metadata.resource_version.as_deref(), at)
}

/// When this controller last changed traffic through `object`, from its annotation.
pub fn object_traffic_changed_at(object: &DynamicObject) -> Option<Timestamp> {
    object.metadata.annotations.as_ref()?.get(TRAFFIC_CHANGED_ANNOTATION)?.parse().ok()
}

/// An observed weight within 0..=`max`, the total of the weights.
pub fn within(weight: i64, max: i32) -> i32 {
    i32::try_from(weight.clamp(0, i64::from(max))).unwrap_or(0)
}

/// A key as a JSON Pointer segment (RFC 6901).
pub fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}
