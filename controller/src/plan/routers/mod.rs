//! Traffic routers behind one seam. A router says what it references (for `observe` and the
//! watches), what canary weight its objects hold, the write that sets a weight (with the time of
//! the change recorded in it), and when it last changed traffic. Which weight to set, and when,
//! is decided above the routers (`weights.rs`, `promotion.rs`), the same for all of them.
//!
//! A new router is a file here, a variant of `Router`, and an arm in `configured`.

pub mod istio;
pub mod nginx;

use k8s_openapi::jiff::Timestamp;

use super::{Action, Observed};
use crate::api::CanaryStrategy;

/// A router a valid Rollout sends traffic through, with what it manages.
#[derive(Clone, Debug, PartialEq)]
pub enum Router {
    Istio(istio::ManagedVirtualService),
    Nginx(nginx::ManagedIngresses),
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
    if routers.is_empty() {
        return Err("spec.strategy.canary.trafficRouting needs istio or nginx, the routers supported".into());
    }
    Ok(routers)
}

impl Router {
    /// The canary weight of each route it manages, as observed.
    pub fn canary_weights(&self, observed: &Observed, canary_service: &str) -> Vec<i32> {
        match self {
            Router::Istio(vs) => vs.canary_weights(observed, canary_service),
            Router::Nginx(ingresses) => ingresses.canary_weights(observed),
        }
    }

    /// The writes that give the canary `weight` and the stable the rest, recording `at` in
    /// them; none when the routes hold that already.
    pub fn set_weight(&self, observed: &Observed, services: (&str, &str), weight: i32, at: Timestamp) -> Vec<Action> {
        match self {
            Router::Istio(vs) => vs.set_weight(observed, services, weight, at).into_iter().collect(),
            Router::Nginx(ingresses) => ingresses.set_weight(observed, services, weight, at),
        }
    }

    /// When this controller last changed traffic through it, as recorded on its objects.
    pub fn traffic_changed_at(&self, observed: &Observed) -> Option<Timestamp> {
        match self {
            Router::Istio(vs) => vs.traffic_changed_at(observed),
            Router::Nginx(ingresses) => ingresses.traffic_changed_at(observed),
        }
    }
}
