//! Apache APISIX (apisix.apache.org/v2 ApisixRoute). STUB: being written.

use k8s_openapi::jiff::Timestamp;

use super::HeaderRoutes;
use crate::api::{CanaryStrategy, RouteKind};
use crate::plan::{Action, Observed};

/// The ApisixRoute a Rollout weighs, with the rules it manages.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagedApisixRoute {
    pub namespace: String,
    pub name: String,
    pub rules: Vec<String>,
}

/// The ApisixRoutes `canary.trafficRouting.apisix` references: the route, and one per managed
/// route (a header route is an ApisixRoute of its own, named like it).
pub fn references(_canary: &CanaryStrategy, _rollout_namespace: &str) -> Vec<(RouteKind, (String, String))> {
    Vec::new()
}

pub fn configured(
    _observed: &Observed,
    _canary: &CanaryStrategy,
    _services: (&str, &str),
) -> Result<Option<ManagedApisixRoute>, String> {
    Ok(None)
}

impl ManagedApisixRoute {
    pub fn canary_weights(&self, _observed: &Observed, _canary_service: &str) -> Vec<i32> {
        Vec::new()
    }

    pub fn set_weight(&self, _observed: &Observed, _services: (&str, &str), _weight: i32, _at: Timestamp) -> Vec<Action> {
        Vec::new()
    }

    pub fn traffic_changed_at(&self, _observed: &Observed) -> Option<Timestamp> {
        None
    }

    pub fn set_header_routes(&self, _observed: &Observed, _services: (&str, &str), _routes: &HeaderRoutes) -> Vec<Action> {
        Vec::new()
    }
}
