//! The traffic routers' settings on a Rollout beyond Istio's, and header routes, with Argo's JSON
//! names.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The prefix of ingress-nginx's annotations unless `annotationPrefix` says otherwise.
pub const DEFAULT_NGINX_ANNOTATION_PREFIX: &str = "nginx.ingress.kubernetes.io";

/// ingress-nginx: a canary Ingress per stable Ingress, weighted by annotations.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NginxTrafficRouting {
    /// The Ingress whose rules send to the stable Service (or `stableIngresses` for several).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_ingress: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_ingresses: Option<Vec<String>>,
    /// Defaults to nginx.ingress.kubernetes.io.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation_prefix: Option<String>,
    /// Added to the canary Ingress, the prefix put before keys without one (e.g. canary-by-header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_ingress_annotations: Option<BTreeMap<String, String>>,
    /// Added to the canary Ingress as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_ingress_annotations: Option<BTreeMap<String, String>>,
}

/// Apache APISIX: weights on the backends of an ApisixRoute's rules.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ApisixTrafficRouting {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<ApisixRouteRef>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ApisixRouteRef {
    /// The ApisixRoute (apisix.apache.org/v2) in the Rollout's namespace.
    pub name: String,
    /// Names of its `spec.http[]` rules to weigh; defaults to the one named like the route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<String>>,
}

/// The key under `trafficRouting.plugins` of Argo's Gateway API plugin, built in here.
pub const GATEWAY_API_PLUGIN: &str = "argoproj-labs/gatewayAPI";

/// `trafficRouting.plugins`: Argo Rollouts loads these as binaries; the Gateway API one is
/// built into this controller, under the same key, so manifests written for it work unchanged.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct TrafficRouterPlugins {
    #[serde(rename = "argoproj-labs/gatewayAPI", default, skip_serializing_if = "Option::is_none")]
    pub gateway_api: Option<GatewayApiTrafficRouting>,
    /// Other plugins, kept so they can be reported as not supported.
    #[serde(flatten)]
    #[schemars(skip)]
    pub others: BTreeMap<String, Value>,
}

/// The Gateway API plugin's configuration (HTTPRoute and GRPCRoute backendRef weights).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct GatewayApiTrafficRouting {
    /// One HTTPRoute; header routes are added to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_route: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_routes: Option<Vec<GatewayRoute>>,
    /// One GRPCRoute; header routes are added to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_route: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_routes: Option<Vec<GatewayRoute>>,
    /// The routes' namespace; defaults to the Rollout's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// No label on the routes while a canary has weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_in_progress_label: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress_label_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress_label_value: Option<String>,
    /// The plugin's other settings (TCP/TLS routes, route selectors), reported as not supported.
    #[serde(flatten)]
    #[schemars(skip)]
    pub others: BTreeMap<String, Value>,
}

/// The label the Gateway API plugin puts on a route while a canary has weight.
pub const DEFAULT_IN_PROGRESS_LABEL: (&str, &str) = ("rollouts.argoproj.io/gatewayapi-canary", "in-progress");

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayRoute {
    pub name: String,
    /// Whether `setHeaderRoute` steps add their rules to this route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_header_routes: Option<bool>,
}

/// A route this controller adds for a step (`trafficRouting.managedRoutes[]`), and removes at
/// the end of the update.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ManagedRoute {
    pub name: String,
}

/// `steps[].setHeaderRoute`: requests whose headers match go to the canary, whatever the weight.
/// Without `match` the route of that name is removed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct SetHeaderRoute {
    pub name: String,
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<Vec<HeaderRoutingMatch>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderRoutingMatch {
    pub header_name: String,
    pub header_value: StringMatch,
}

/// Exactly one of `exact`, `prefix` or `regex`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct StringMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

/// The routers' objects that are custom resources besides Istio's VirtualServices, read and
/// written as JSON at one version each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteKind {
    ApisixRoute,
    HttpRoute,
    GrpcRoute,
}

impl RouteKind {
    pub const ALL: [RouteKind; 3] = [RouteKind::ApisixRoute, RouteKind::HttpRoute, RouteKind::GrpcRoute];

    /// (group, version, kind, plural)
    pub fn gvk(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            RouteKind::ApisixRoute => ("apisix.apache.org", "v2", "ApisixRoute", "apisixroutes"),
            RouteKind::HttpRoute => ("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes"),
            RouteKind::GrpcRoute => ("gateway.networking.k8s.io", "v1", "GRPCRoute", "grpcroutes"),
        }
    }

    pub fn api_resource(self) -> kube::api::ApiResource {
        let (group, version, kind, plural) = self.gvk();
        kube::api::ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: format!("{group}/{version}"),
            kind: kind.into(),
            plural: plural.into(),
        }
    }

    /// How a missing API is reported on a Rollout that needs it.
    pub fn missing_api(self) -> String {
        let (group, version, kind, plural) = self.gvk();
        format!("the cluster serves no {group}/{version} {kind} ({plural}.{group}); install its CRD")
    }
}
