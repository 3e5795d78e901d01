//! The Gateway API (HTTPRoute and GRPCRoute backendRef weights). STUB: being written.

use k8s_openapi::jiff::Timestamp;

use super::HeaderRoutes;
use crate::api::{CanaryStrategy, RouteKind};
use crate::plan::{Action, Observed};

/// The HTTPRoutes and GRPCRoutes a Rollout weighs.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagedGatewayRoutes {
    pub namespace: String,
    /// Each route, with whether header routes are added to it.
    pub routes: Vec<(RouteKind, String, bool)>,
}

/// The routes `trafficRouting.plugins."argoproj-labs/gatewayAPI"` references.
pub fn references(_canary: &CanaryStrategy, _rollout_namespace: &str) -> Vec<(RouteKind, (String, String))> {
    Vec::new()
}

pub fn configured(
    _observed: &Observed,
    _canary: &CanaryStrategy,
    _services: (&str, &str),
) -> Result<Option<ManagedGatewayRoutes>, String> {
    Ok(None)
}

impl ManagedGatewayRoutes {
    pub fn canary_weights(&self, _observed: &Observed, _canary_service: &str) -> Vec<i32> {
        Vec::new()
    }

    pub fn set_weight(&self, _observed: &Observed, _services: (&str, &str), _weight: i32, _at: Timestamp) -> Vec<Action> {
        Vec::new()
    }

    pub fn traffic_changed_at(&self, _observed: &Observed) -> Option<Timestamp> {
        None
    }

    /// Whether any route takes header routes (`useHeaderRoutes`).
    pub fn routes_headers(&self) -> bool {
        self.routes.iter().any(|(_, _, headers)| *headers)
    }

    pub fn set_header_routes(&self, _observed: &Observed, _services: (&str, &str), _routes: &HeaderRoutes) -> Vec<Action> {
        Vec::new()
    }
}
